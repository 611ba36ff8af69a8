#!/usr/bin/python3
"""docs/flags.md is what the programs' --help prints now, and the flags the
docs' tables name (docs/server.md) are flags the server has: neither the
generated reference nor the hand-written pages can drift from the code."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

from scripts import flag_reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))


class FlagReferenceTest(unittest.TestCase):
    def test_the_reference_is_what_the_programs_print(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "scripts.flag_reference", "--build_dir", BUILD, "--check"],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr[-4000:])

    def test_every_flag_a_docs_table_names_exists(self) -> None:
        server_help = flag_reference.help_text(BUILD, "matid-server")
        known = set(re.findall(r"^\s+--(\w+)", server_help, flags=re.M))
        self.assertIn("model_repository", known)
        with open(os.path.join(ROOT, "docs", "server.md")) as page:
            rows = [line for line in page if line.startswith("| `--")]
        self.assertGreater(len(rows), 10)
        for row in rows:
            for flag in re.findall(r"`--(\w+)", row.split("|")[1]):
                self.assertIn(flag, known, f"docs/server.md names --{flag}: {row.strip()}")

    def test_a_stale_reference_is_reported_with_the_difference(self) -> None:
        text = flag_reference.reference(BUILD)
        for program in flag_reference.PROGRAMS:
            self.assertIn(f"## {program}\n", text)
        self.assertNotIn(ROOT + "/", text, "source paths are relative to the project")
        stale = text.replace("--log_level", "--log_verbosity", 1)
        with tempfile.NamedTemporaryFile("w", suffix=".md") as doc:
            doc.write(stale)
            doc.flush()
            result = subprocess.run(
                [sys.executable, "-m", "scripts.flag_reference", "--build_dir", BUILD, "--check",
                 "--doc", doc.name], cwd=ROOT, capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 1)
        self.assertIn("-    --log_verbosity", result.stderr)
        self.assertIn("+    --log_level", result.stderr)
        self.assertIn("is stale", result.stderr)


if __name__ == "__main__":
    unittest.main()
