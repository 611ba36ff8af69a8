#!/usr/bin/python3
"""The Python side's house rules, read from the sources: every public
function and method is annotated (nested helpers are not public), and no
module edits sys.path except to reach the gRPC stubs generated into the
build folder (a package import cannot reach them)."""
import ast
import glob
import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ("model_export", "tests", "bench", "scripts")


def sources() -> list[str]:
    files = []
    for folder in FOLDERS:
        files += sorted(glob.glob(os.path.join(ROOT, folder, "*.py")))
    return files


def public_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """Module-level functions and methods of module-level classes."""
    found = []
    for node in tree.body:
        members = node.body if isinstance(node, ast.ClassDef) else [node]
        for member in members:
            if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    not member.name.startswith("_") or member.name == "__init__"):
                found.append(member)
    return found


def unannotated(function: ast.FunctionDef) -> list[str]:
    arguments = function.args.posonlyargs + function.args.args + function.args.kwonlyargs
    missing = [a.arg for a in arguments if a.annotation is None and a.arg not in ("self", "cls")]
    for star in (function.args.vararg, function.args.kwarg):
        if star is not None and star.annotation is None:
            missing.append("*" + star.arg)
    if function.returns is None and function.name != "__init__":
        missing.append("return")
    return missing


def absolute_sibling_imports(tree: ast.Module, path: str) -> list[tuple[int, str]]:
    """`import X` / `from X import` anywhere in the file (also inside
    functions), where X.py sits beside it: inside a package that only works
    when the folder happens to be on sys.path."""
    folder = os.path.dirname(path)
    siblings = {os.path.splitext(os.path.basename(p))[0]
                for p in glob.glob(os.path.join(folder, "*.py"))}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module.split(".")[0]]
        found += [(node.lineno, name) for name in names if name in siblings]
    return sorted(found)


class PythonStyleTest(unittest.TestCase):
    def test_public_functions_are_annotated(self) -> None:
        problems = []
        for path in sources():
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for function in public_functions(tree):
                missing = unannotated(function)
                if missing:
                    problems.append(f"{os.path.relpath(path, ROOT)}:{function.lineno} "
                                    f"{function.name}: {', '.join(missing)}")
        self.assertEqual(problems, [], "public functions without type hints")

    def test_sys_path_is_edited_only_for_generated_stubs(self) -> None:
        problems = []
        for path in sources():
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    if "sys.path.insert" in line and not re.search(r'["\']python["\']\)', line):
                        if path.endswith("python_style_test.py"):
                            continue
                        problems.append(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}")
        self.assertEqual(problems, [], "import through the package instead")

    def test_packages_import_their_own_modules_relatively(self) -> None:
        problems = []
        for path in sources():
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for line, name in absolute_sibling_imports(tree, path):
                problems.append(f"{os.path.relpath(path, ROOT)}:{line}: import {name}")
        self.assertEqual(problems, [], "a package module imports its sibling as 'from . import X'")

    def test_the_checks_see_what_they_look_for(self) -> None:
        tree = ast.parse("def f(a, b: int):\n    pass\nclass C:\n    def g(self) -> int:\n"
                         "        return 1\n    def _h(self):\n        pass\n")
        functions = public_functions(tree)
        self.assertEqual([f.name for f in functions], ["f", "g"])
        self.assertEqual(unannotated(functions[0]), ["a", "return"])
        self.assertEqual(unannotated(functions[1]), [])
        nested = ast.parse("def f():\n    import dataset\n    from train import x\n"
                           "    from . import dataset\n    import os\n")
        self.assertEqual(absolute_sibling_imports(
            nested, os.path.join(ROOT, "model_export", "cli.py")),
            [(2, "dataset"), (3, "train")])


if __name__ == "__main__":
    unittest.main()
