#!/usr/bin/python3
"""Checks the size rules of the style guide: no function over 60 lines and
no source file over 500 lines in the folders given (default: server/,
client/, bridge/, sparkplug/, common/). Functions are found by their braces after
comments, strings and preprocessor lines are blanked, at any depth of
namespaces (named or anonymous), classes and structs; lambdas and blocks
count as part of the function they are in.

Usage: check_code_size.py ROOT [FOLDER...]   (exit 1 listing each excess)
"""
import pathlib
import re
import sys
from typing import Iterator

MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 500
DEFAULT_FOLDERS = ("server", "client", "bridge", "sparkplug", "common")

SCOPE = re.compile(r"\b(namespace|class|struct|union|enum)\b[^()]*$|\bextern\s*\"\"\s*$")
FUNCTION_HEAD = re.compile(
    r"\)\s*(const)?\s*(noexcept)?\s*(override|final)?\s*(->\s*[\w:<>,\s*&]+)?\s*(try)?$")
NAME = re.compile(r"([\w:~]+)\s*\(")


def blank(text: str) -> str:
    """Comments, string and character literals and preprocessor lines
    replaced by blanks, keeping every newline."""
    def keep_lines(match: re.Match) -> str:
        return "\n" * match.group(0).count("\n")
    text = re.sub(r"/\*.*?\*/", keep_lines, text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'R"(\w*)\((.*?)\)\1"', lambda m: '""' + keep_lines(m), text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\\n])*"', '""', text)
    text = re.sub(r"'(\\.|[^'\\\n])+'", "''", text)
    return re.sub(r"^\s*#[^\n]*", "", text, flags=re.M)


def functions(text: str) -> Iterator[tuple[str, int, int]]:
    """(name, first line, line count) of each function body in `text`."""
    text = blank(text)
    stack: list[tuple[str, int, str]] = []  # (kind, line, name)
    line = 1
    for i, char in enumerate(text):
        if char == "\n":
            line += 1
        elif char == "{":
            kind, name = "block", ""
            if all(k == "scope" for k, _, _ in stack):
                before = text[max(0, i - 400):i]
                statement = re.split(r"[;{}]", before)[-1]
                if SCOPE.search(statement):
                    kind = "scope"
                elif FUNCTION_HEAD.search(before.rstrip()) or re.search(r"\)\s*:", statement):
                    kind = "function"
                    names = NAME.findall(statement)
                    name = names[0] if names else "?"
            stack.append((kind, line, name))
        elif char == "}" and stack:
            kind, start, name = stack.pop()
            if kind == "function":
                yield name, start, line - start + 1


def violations(root: str, folders: list[str]) -> Iterator[str]:
    for folder in folders:
        for path in sorted(pathlib.Path(root, folder).rglob("*")):
            if path.suffix not in (".h", ".cc"):
                continue
            text = path.read_text()
            relative = path.relative_to(root)
            lines = text.count("\n")
            if lines > MAX_FILE_LINES:
                yield f"{relative}: {lines} lines; the limit is {MAX_FILE_LINES}"
            for name, start, length in functions(text):
                if length > MAX_FUNCTION_LINES:
                    yield (f"{relative}:{start}: {name} is {length} lines; "
                           f"the limit is {MAX_FUNCTION_LINES}")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    found = list(violations(argv[1], argv[2:] or list(DEFAULT_FOLDERS)))
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
