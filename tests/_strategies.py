"""What the property tests share: the example-count scale and a few strategies."""

from __future__ import annotations

import math
import os

from hypothesis import strategies as st

#: Scale every hypothesis test's example count, e.g. MEANFIELD_TEST_SCALE=20 for a long hunt.
SCALE = float(os.environ.get("MEANFIELD_TEST_SCALE", "1"))


def examples(n):
    return max(1, round(n * SCALE))


def log_uniform(lo, hi):
    """Floats spread evenly over the orders of magnitude of [lo, hi]."""
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: 10.0 ** e)


def tidy(v):
    """0 for magnitudes below 1e-90 (meanfield takes 0 or |v| in [1e-100, 1e30])."""
    return 0.0 if abs(v) < 1e-90 else v
