"""Test configuration for the whole suite (tests/ and the doctests of meanfield/).

The command line keeps derivations on disk (meanfield/_derivations.py); the suite runs it
in-process, so that store is off here, and tests/test_derivations.py turns it on in
directories of its own.
"""

import os

os.environ["MEANFIELD_NO_DERIVATION_CACHE"] = "1"
