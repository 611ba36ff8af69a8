"""Makes a script run under Debian's /usr/bin/python3.

The python3 first on PATH may be another interpreter without Debian's
python3-torch, -opencv and -grpcio. Call ensure() before importing them: it
re-executes the current script with /usr/bin/python3 when needed.
"""
import os
import sys

DEBIAN_PYTHON = "/usr/bin/python3"


def ensure() -> None:
    if os.path.realpath(sys.executable) == os.path.realpath(DEBIAN_PYTHON):
        return
    if not os.path.exists(DEBIAN_PYTHON):
        return
    # Started with -m (python3 -m model_export ...): start the same module.
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = ["-m", spec.name] if spec is not None else [sys.argv[0]]
    os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON] + program + sys.argv[1:])
