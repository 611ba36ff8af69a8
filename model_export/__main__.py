"""Entry point of `python3 -m model_export`: see cli.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian_python  # noqa: E402

debian_python.ensure()

import cli  # noqa: E402

sys.exit(cli.main())
