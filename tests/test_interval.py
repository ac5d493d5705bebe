"""The float64 interval functions that certify the fixed-point search enclose the exact
value: each checked against mpmath at 50 digits, on points spread over every order of
magnitude where the closed forms evaluate them (|x| from 1e-100 to 40, both signs) and on
intervals of every width."""

from __future__ import annotations

import math

import mpmath
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from meanfield import _interval
from meanfield._interval import Interval

MAGNITUDES = st.builds(lambda e, sign, frac: sign * (1 + frac) * 10.0 ** e, st.integers(-100, 1),
                       st.sampled_from([-1.0, 1.0]), st.floats(0, 3)).filter(lambda v: abs(v) <= 40) | st.just(0.0)

EXACT = {
    "normal_cdf": lambda v: mpmath.ncdf(v),
    "normal_pdf": lambda v: mpmath.npdf(v),
    "erf": lambda v: mpmath.erf(v),
    "exp": lambda v: mpmath.exp(v),
}


def _contains(iv: Interval, value) -> bool:
    return mpmath.mpf(float(iv.lo)) <= value <= mpmath.mpf(float(iv.hi))


@settings(max_examples=300, deadline=None)
@given(a=MAGNITUDES | st.floats(-38, -20), b=MAGNITUDES | st.floats(-38, -20))
def test_every_function_encloses_the_exact_range(a, b):
    lo, hi = min(a, b), max(a, b)
    iv = Interval(np.array(lo), np.array(hi))
    with mpmath.workdps(50):
        for name, exact in EXACT.items():
            out = getattr(_interval, name)(iv)
            # monotone (cdf, erf, exp) or even and falling in |x| (pdf): the range's ends
            ends = [exact(mpmath.mpf(lo)), exact(mpmath.mpf(hi))]
            if name == "normal_pdf" and lo <= 0 <= hi:
                ends.append(exact(mpmath.mpf(0)))
            assert all(_contains(out, e) for e in ends), (name, lo, hi, out)


@settings(max_examples=200, deadline=None)
@given(v=MAGNITUDES)
def test_the_float64_cdf_and_erf_are_accurate_to_a_few_ulps_where_not_underflowing(v):
    with mpmath.workdps(50):
        for fn, exact in ((_interval.ndtr, mpmath.ncdf), (_interval.erf_float64, mpmath.erf)):
            want = exact(mpmath.mpf(v))
            got = float(fn(v))
            # rounding v / sqrt 2 costs about v^2 ulps in the tail (scipy's ndtr does the same)
            allowed = 1e-14 + (2.5e-16 * v * v if fn is _interval.ndtr else 0.0)
            if abs(want) > 1e-290:  # the enclosure's absolute padding covers the subnormal range
                assert abs(mpmath.mpf(got) - want) <= allowed * abs(want), (fn.__name__, v, got)


def test_the_cdf_at_the_far_tail_and_infinities():
    assert float(_interval.ndtr(-math.inf)) == 0.0 and float(_interval.ndtr(math.inf)) == 1.0
    assert math.isnan(float(_interval.ndtr(math.nan)))
    assert float(_interval.ndtr(-40.0)) == 0.0  # 3.7e-350 underflows, and the enclosure pads by 1e-300
    np.testing.assert_array_equal(_interval.ndtr(np.array([[0.0, 0.0]])), [[0.5, 0.5]])
