#!/usr/bin/python3
"""Checks that the C++ folders include each other only the way the
architecture allows (docs/ARCHITECTURE.md, "Layout"). Run by every build
(server/CMakeLists.txt) and by tests/layout_test.py.

Usage: check_layout.py ROOT   (exit 1 listing each forbidden include)
"""
import pathlib
import re
import sys
from typing import Iterator

# Folder -> the project folders its files may include from (its own is
# always allowed). A folder not listed here may include any project folder.
SERVER_LAYERS = {
    "server/backend": [],
    "server/core": ["server/backend"],
    "server/shadow": ["server/backend", "server/core"],
    "server/router": ["server/backend", "server/core", "server/shadow"],
    "server/repository": ["server/backend", "server/core", "server/shadow", "server/router"],
    # The services see the lifecycle only through server/router/.
    "server/api": ["server/backend", "server/core", "server/shadow", "server/router"],
    "server": ["server/api", "server/backend", "server/core", "server/repository",
               "server/router", "server/shadow"],
}
PROGRAMS = {name: [] for name in ("client/camera", "client/classify", "client/admin", "bridge",
                                      "sparkplug")}
# matid-plc takes its frames and publishes its results as the camera does.
PROGRAMS["client/plc"] = ["client/camera"]
# Every program's folders may use common/; common/ uses nothing of theirs.
ALLOWED = {folder: allowed + ["common"] for folder, allowed in {**SERVER_LAYERS, **PROGRAMS}.items()}
ALLOWED["common"] = []

# Include prefixes that are project folders (anything else is a library or
# generated code, e.g. absl/, matid/v1/, inference/).
PROJECT = ("server", "client", "bridge", "sparkplug", "common", "bench", "fuzz", "tests")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder_of(include: str) -> "str | None":
    """The project folder an include path names, longest layer first."""
    parts = include.split("/")
    if parts[0] not in PROJECT or len(parts) < 2:
        return None
    if parts[0] in ("server", "client") and len(parts) > 2:
        return parts[0] + "/" + parts[1]
    return parts[0]


def violations(root: str) -> "Iterator[str]":
    root = pathlib.Path(root)
    for folder, allowed in sorted(ALLOWED.items()):
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.iterdir()):
            if path.suffix not in (".h", ".cc"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                target = folder_of(match.group(1))
                if target is None or target == folder or target in allowed:
                    continue
                yield (f"{path.relative_to(root)}:{number}: includes {match.group(1)}, "
                       f"but {folder}/ may include only "
                       f"{', '.join(f'{a}/' for a in allowed) or 'its own folder'}")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    found = list(violations(argv[1]))
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"check_layout: {len(found)} forbidden include(s); see scripts/check_layout.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
