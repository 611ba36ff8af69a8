#!/usr/bin/python3
"""The size rules (scripts/check_code_size.py): the tree keeps them, and the
scan finds long functions wherever they are: inside anonymous and named
namespaces, in classes, as function-try-blocks, with lambdas and braces in
strings and comments inside them."""
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

from scripts import check_code_size

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def body(lines: int) -> str:
    return "".join(f"  x += {i};\n" for i in range(lines - 2))


class CodeSizeTest(unittest.TestCase):
    def test_the_tree_keeps_the_limits(self) -> None:
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "scripts", "check_code_size.py"), ROOT],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_functions_are_found_at_every_depth(self) -> None:
        source = textwrap.dedent("""\
            namespace matid {
            namespace {
            int InAnonymousNamespace() {
            %s}
            }  // namespace
            struct Holder {
              int Inline() const {
            %s  }
            };
            int Holder::TryBlock() const try {
            %s} catch (...) {
              return 0;
            }
            int WithLambda() {
              auto f = [] { return "}"; };  // a } in a comment
              /* { */
            %s}
            }  // namespace matid
            """) % (body(61), body(61), body(61), body(59))
        found = {name: length for name, _, length in check_code_size.functions(source)}
        self.assertEqual(found["InAnonymousNamespace"], 61)
        self.assertEqual(found["Inline"], 61)
        self.assertEqual(found["Holder::TryBlock"], 61)
        self.assertEqual(found["WithLambda"], 61)

    def test_the_limits_are_named(self) -> None:
        with tempfile.TemporaryDirectory() as root:
            os.makedirs(os.path.join(root, "server", "core"))
            with open(os.path.join(root, "server", "core", "long.cc"), "w") as out:
                out.write("namespace {\nvoid Sixty() {\n%s}\nvoid SixtyOne() {\n%s}\n}\n"
                          % (body(60), body(61)))
                out.write("// filler\n" * 450)
            found = list(check_code_size.violations(root, ["server"]))
        self.assertEqual(len(found), 2, found)
        self.assertIn("server/core/long.cc: 573 lines; the limit is 500", found)
        self.assertTrue(any("SixtyOne is 61 lines; the limit is 60" in f for f in found), found)


if __name__ == "__main__":
    unittest.main()
