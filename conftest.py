"""Test configuration for the whole suite (tests/ and the doctests of meanfield/).

The command line keeps derivations on disk (meanfield/_derivations.py); the suite runs it
in-process, so that store is off here, and tests/test_derivations.py turns it on in
directories of its own.
"""

import os

os.environ["MEANFIELD_NO_DERIVATION_CACHE"] = "1"


import warnings  # noqa: E402

import mpmath  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _mpmath_precision_is_restored(request):
    """Every test must leave mpmath's global precision as it found it (the library sets
    precision only with context managers). A test that does not is named in a warning,
    and the precision is put back so that later tests (doctests print at it) are not hit."""
    before = mpmath.mp.prec
    yield
    if mpmath.mp.prec != before:
        warnings.warn(f"{request.node.nodeid} left mpmath.mp.prec at {mpmath.mp.prec} (was {before})",
                      stacklevel=1)
        mpmath.mp.prec = before
