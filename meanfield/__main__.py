"""``python -m meanfield``: the command line, as the ``meanfield`` script."""

import sys

from .cli import main

sys.exit(main())
