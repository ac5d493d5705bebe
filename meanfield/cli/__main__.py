"""``python -m meanfield.cli``: the command line, as the ``meanfield`` script."""

import sys

from . import main

sys.exit(main())
