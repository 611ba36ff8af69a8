"""Entry point of `python3 -m model_export`: see cli.py."""
import sys

from . import debian_python  # noqa: E402

debian_python.ensure()

from . import cli  # noqa: E402

sys.exit(cli.main())
