#!/usr/bin/python3
"""matid-classify as a newcomer runs it, stdout and stderr on one terminal
or file: every table row on its own line, error rows included, and the
summary line last, on a line of its own."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD, "test_model"))
from tests.edge_harness import Process  # noqa: E402


class ClassifyOutputTest(unittest.TestCase):
    def test_summary_is_last_and_alone_on_its_line(self) -> None:
        tmp = tempfile.mkdtemp(prefix="matid-classify-cli-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        server = Process([os.path.join(BUILD, "bin", "matid-server"), f"--model_dir={MODEL}",
                          "--host=127.0.0.1", "--port=0", "--metrics_port=-1", "--threads=1"],
                         r"serving grpc_port=(\d+)", os.path.join(tmp, "server.log"))
        self.addCleanup(server.stop)
        images = os.path.join(tmp, "images")
        subprocess.run([sys.executable, "-m", "model_export.fashion_mnist",
                        "--split", "test", "--count", "150", "--out", images],
                       cwd=ROOT, check=True, capture_output=True)
        bad = 0
        for folder, _, files in os.walk(images):  # some broken files among the good ones
            for name in sorted(files)[:3]:
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(b"\x89PNG\r\n\x1a\n broken")
                bad += 1
        merged = os.path.join(tmp, "out.txt")
        with open(merged, "w") as out:
            done = subprocess.run([os.path.join(BUILD, "bin", "matid-classify"),
                                   f"--server=127.0.0.1:{server.match.group(1)}", images],
                                  stdout=out, stderr=out, timeout=120)
        self.assertEqual(done.returncode, 1)  # some images failed
        with open(merged) as f:
            lines = f.read().splitlines()
        self.assertRegex(lines[-1], rf"^matid-classify: 150 images, {150 - bad} classified, "
                                    rf"{bad} failed in ")
        rows = lines[1:-1]
        self.assertTrue(lines[0].startswith("PATH"))
        self.assertEqual(len(rows), 150)
        for row in rows:
            self.assertRegex(row, r"^(\.\.\.|/)\S+\.png  ")  # a path (shortened past 60 characters)
            self.assertNotIn("matid-classify:", row)
        self.assertEqual(sum("INVALID_ARGUMENT" in row for row in rows), bad)


if __name__ == "__main__":
    unittest.main(verbosity=2)
