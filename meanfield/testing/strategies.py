"""What property tests share (the suite's and a user's): the example-count scale and strategies."""

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


def parameter_values(activation):
    """Dicts of the activation's parameters, each drawn within its range (the closed end
    itself included, an open one avoided; unbounded ranges over a few orders of magnitude).

    >>> from meanfield.activations import get_activation
    >>> example = parameter_values(get_activation("crelu")).example()
    >>> sorted(example), example["m"] > 0
    (['m', 'tau'], True)
    """
    from meanfield.activations import get_activation
    act = get_activation(activation)

    def one(p):
        lo, hi = p.lower, p.upper
        if math.isfinite(lo) and math.isfinite(hi):
            inner = st.floats(lo, hi, exclude_min=p.lower_open, exclude_max=p.upper_open)
        elif math.isfinite(lo):
            inner = log_uniform(1e-2, 10).map(lambda d: lo + d)
            if not p.lower_open:
                inner = st.one_of(st.just(float(lo)), inner)
        elif math.isfinite(hi):
            inner = log_uniform(1e-2, 10).map(lambda d: hi - d)
        else:
            inner = st.floats(-3, 3)
        return inner.map(tidy)

    return st.fixed_dictionaries({p.name: one(p) for p in act.parameters})


def initialisations(activation, params: dict | None = None):
    """(parameters, sigma_w2, sigma_b2) of ``activation``: the parameters drawn within their
    ranges (or ``params``, fixed), sigma_w2 from 0.1 to 10 and sigma_b2 0 or from 1e-3 to
    1, spread over the orders of magnitude."""
    values = parameter_values(activation) if params is None else st.just(dict(params))
    return st.tuples(values, log_uniform(0.1, 10),
                     st.one_of(st.just(0.0), log_uniform(1e-3, 1)))


def eoc_configurations():
    """(activation, sparsity, V'(q*) target or None) of the paper's activations on the edge
    of chaos: ReLU_tau and ST_tau at s in [0.5, 0.95], CReLU and CST with V'(q*) in
    [0.3, 0.95] as well (CST from s = 0.1)."""
    unclipped = st.tuples(st.sampled_from(["relu", "st"]), st.floats(0.5, 0.95), st.none())
    clipped = st.tuples(st.just("crelu"), st.floats(0.5, 0.95), st.floats(0.3, 0.95))
    cst = st.tuples(st.just("cst"), st.floats(0.1, 0.95), st.floats(0.3, 0.95))
    return st.one_of(unclipped, clipped, cst).map(lambda t: (t[0], round(t[1], 6),
                                                             None if t[2] is None else round(t[2], 6)))


def near_tangencies():
    """(activation, sparsity, q) with q within 1e-12 .. 1e-2 (relative) of q* = 1 on either
    side, for ReLU_tau and ST_tau on the edge of chaos, where q* is a tangency of V and the
    identity (V'(q*) = 1): the hardest place for a root finder and a sign test.

    >>> name, s, q = near_tangencies().example()
    >>> name in ("relu", "st") and 0 < abs(q - 1) <= 1e-2
    True
    """
    offset = st.floats(-12, -2).map(lambda e: 10.0 ** e)
    return st.tuples(st.sampled_from(["relu", "st"]), st.floats(0.5, 0.95).map(lambda s: round(s, 6)),
                     st.tuples(offset, st.sampled_from([-1.0, 1.0])).map(lambda t: 1.0 + t[1] * t[0]))
