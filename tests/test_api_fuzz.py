"""The public API under random and hostile arguments.

Every call either returns finite numbers or raises :class:`meanfield.ParameterError`
(a ValueError) whose message names the offending parameter: never NaN, never a hang,
never another exception type from deep inside numpy or mpmath.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import meanfield as mf

HOSTILE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10**40, 10**40),
    st.sampled_from([None, True, "", "abc", "nan", "-inf", "1e999", [1.0], {"a": 1}, 1 + 2j,
                     Decimal("NaN"), mpmath.mpf("nan"), mpmath.mpf("-inf"), -0.0, 1e-320,
                     np.bool_(True), b"1", bytearray(b"2"), Fraction(1, 3), np.float32("nan"), 10**400,
                     np.int64(7), np.float64(0.5), object()]),
    st.text(max_size=6),
)
REASONABLE = st.one_of(st.floats(1e-6, 1e6), st.floats(-1e3, 1e3))


def finite(v) -> bool:
    return v is None or mpmath.isfinite(v)


def check_error(exc: mf.ParameterError, names):
    message = str(exc)
    assert "\n" not in message
    assert any(n in message for n in names), (message, names)


ACTIVATIONS = ["relu", "st", "crelu", "cst", "relu0", "hard_tanh", "leaky_relu"]


def param_names(act):
    return [p.name for p in mf.get_activation(act).parameters]


@settings(max_examples=200)
@given(act=st.sampled_from(ACTIVATIONS), sw=st.one_of(HOSTILE, REASONABLE),
       sb=st.one_of(HOSTILE, REASONABLE), p1=st.one_of(HOSTILE, REASONABLE),
       p2=st.one_of(HOSTILE, REASONABLE), q=st.one_of(HOSTILE, REASONABLE))
def test_initialisation_and_maps(act, sw, sb, p1, p2, q):
    params = dict(zip(param_names(act), (p1, p2)))
    try:
        init = mf.Initialisation(act, sw, sb, params)
    except mf.ParameterError as exc:
        check_error(exc, ["sigma_w2", "sigma_b2", "tau", "m", "alpha", "breakpoints"])
        return
    try:
        v = mf.map_values(init, q, digits=20)
    except mf.ParameterError as exc:
        check_error(exc, ["q"])
        return
    assert all(finite(getattr(v, f)) for f in ("variance", "v_prime", "v_second", "chi1", "sparsity"))


@settings(max_examples=60)
@given(act=st.sampled_from(ACTIVATIONS),
       sw=st.floats(1e-6, 1e6), sb=st.one_of(st.just(0.0), st.floats(1e-8, 1e4)),
       p1=st.one_of(st.just(0.0), st.floats(1e-6, 50)), p2=st.floats(1e-4, 50))
def test_fixed_points_random_valid(act, sw, sb, p1, p2):
    """Valid but wide-ranging configurations finish quickly with finite, verified output."""
    params = dict(zip(param_names(act), (p1 if act != "leaky_relu" else min(p1, 1.0), p2)))
    init = mf.Initialisation(act, sw, sb, params)
    t0 = time.perf_counter()
    r = mf.fixed_points(init, digits=20)
    assert time.perf_counter() - t0 < 20
    assert r.large_q in ("diverges", "bounded", "degenerate")
    for p in r.points:
        assert finite(p.q) and p.q > 0 and finite(p.v_prime) and finite(p.chi1)
        with mpmath.workdps(30):
            v = mf.map_values(init, p.q, digits=25).variance
            assert abs(v - p.q) <= mpmath.mpf(10) ** -15 * max(1, p.q)


@settings(max_examples=150)
@given(act=st.one_of(st.sampled_from(["relu", "st", "crelu", "cst", "hard_tanh", "x"]), HOSTILE),
       s=st.one_of(HOSTILE, st.floats(-1, 2)), q_star=st.one_of(HOSTILE, REASONABLE),
       clip=st.one_of(st.none(), HOSTILE, REASONABLE), vp=st.one_of(st.none(), HOSTILE, st.floats(-1, 2)),
       digits=st.one_of(st.integers(-5, 60), HOSTILE))
def test_eoc_parameters_hostile(act, s, q_star, clip, vp, digits):
    try:
        sol = mf.eoc_parameters(act, s, q_star=q_star, clip=clip, v_prime=vp, digits=digits)
    except mf.ParameterError as exc:
        check_error(exc, ["activation", "sparsity", "q_star", "clip", "v_prime", "digits",
                          "sigma_b2", "tau", "m"])
        return
    for f in ("tau", "m", "sigma_w2", "sigma_b2", "chi1", "v_prime", "v_second", "sparsity"):
        assert finite(getattr(sol, f))
    assert abs(sol.chi1 - 1) < 1e-10


@pytest.mark.parametrize("bad", [np.array([1.0, np.nan]), np.array([0.0]), np.array([-1.0]),
                                 [np.inf], [1e-300], [1e31], ["x"]])
def test_float64_path_rejects_bad_q(bad):
    init = mf.Initialisation("crelu", 2, 0.1, {"tau": 0.5, "m": 1})
    with pytest.raises(mf.ParameterError, match="q"):
        mf.map_values_float64(init, bad)


def test_float64_path_is_finite_over_wide_range():
    init = mf.Initialisation("cst", 5.1, 0.62, {"tau": 1.28, "m": 1.6})
    v = mf.map_values_float64(init, np.geomspace(1e-100, 1e30, 401))
    for f in ("variance", "v_prime", "v_second", "chi1", "sparsity"):
        assert np.all(np.isfinite(getattr(v, f))), f


def test_wrong_types():
    with pytest.raises(mf.ParameterError, match="activation"):
        mf.get_activation(3)
    with pytest.raises(mf.ParameterError, match="digits"):
        mf.map_values(mf.Initialisation("relu", 2, 0), 1, digits=2.5)
    with pytest.raises(mf.ParameterError, match="digits"):
        mf.fixed_points(mf.Initialisation("relu", 2, 0), digits=10**6)
    with pytest.raises(mf.ParameterError, match="tau"):
        mf.Initialisation("relu", 2, 0, {"tau": -1})
    with pytest.raises(mf.ParameterError, match="no parameter"):
        mf.Initialisation("relu", 2, 0, {"m": 1})


def test_precision_does_not_leak_on_error():
    before = mpmath.mp.prec
    with pytest.raises(mf.ParameterError):
        mf.eoc_parameters("crelu", "0.85", v_prime="2", digits=80)
    mf.eoc_parameters("cst", "0.8", v_prime="0.9", digits=80)
    assert mpmath.mp.prec == before
    assert math.isclose(float(mf.eoc_parameters("crelu", "0.85", v_prime="0.9", digits=10).m),
                        1.7394908817, rel_tol=1e-9)


# -- correlation map, Jacobian, diagnose ---------------------------------------------------

RELU_EOC = mf.Initialisation("relu0", 2, 0)          # V(q) = q: every q* > 0 is a fixed point
CST_EOC = mf.eoc_parameters("cst", "0.6", v_prime="0.7", digits=20)


def finite_or_divergent(v) -> bool:
    return isinstance(v, mf.Divergent) or finite(v)


@settings(max_examples=120, deadline=None)
@given(q1=st.one_of(HOSTILE, REASONABLE), q2=st.one_of(HOSTILE, REASONABLE),
       q12=st.one_of(HOSTILE, REASONABLE), digits=st.one_of(st.integers(-5, 300), HOSTILE))
def test_kernel_map_hostile(q1, q2, q12, digits):
    t0 = time.perf_counter()
    try:
        k = mf.kernel_map(CST_EOC, q1, q2, q12, digits=digits if not isinstance(digits, int) else min(digits, 40))
    except mf.ParameterError as exc:
        check_error(exc, ["q1", "q2", "q12", "digits"])
        return
    assert time.perf_counter() - t0 < 30
    assert all(finite(v) for v in (k.q1_next, k.q2_next, k.q12_next))
    assert abs(k.q12_next) <= mpmath.sqrt(k.q1_next * k.q2_next) * (1 + 1e-15)  # a covariance


@settings(max_examples=120, deadline=None)
@given(c=st.one_of(HOSTILE, st.floats(-1.5, 1.5)), q_star=st.one_of(st.none(), HOSTILE, REASONABLE),
       which=st.sampled_from(["relu", "cst", "object"]))
def test_correlation_map_hostile(c, q_star, which):
    target = {"relu": RELU_EOC, "cst": CST_EOC, "object": object()}[which]
    try:
        v = mf.correlation_map(target, c, q_star=q_star if which != "relu" or q_star is not None else 1,
                               digits=15)
    except mf.ParameterError as exc:
        check_error(exc, ["c =", "q_star", "Initialisation"])
        return
    for v in v if isinstance(v, list) else [v]:  # a sequence of c gives a list
        assert finite(v.rho) and -1 - 1e-12 <= v.rho <= 1 + 1e-12
        assert finite_or_divergent(v.rho_prime) and finite_or_divergent(v.rho_second)


@settings(max_examples=60, deadline=None)
@given(depth=st.one_of(HOSTILE, st.integers(-3, 10**6)), q_star=st.one_of(st.none(), HOSTILE, REASONABLE),
       digits=st.one_of(st.integers(-5, 300), HOSTILE))
def test_jacobian_and_diagnose_hostile(depth, q_star, digits):
    for call in (mf.jacobian_spectrum, mf.diagnose):
        try:
            out = call(CST_EOC, q_star=q_star, depth=depth,
                       digits=digits if not isinstance(digits, int) else min(digits, 60))
        except mf.ParameterError as exc:
            check_error(exc, ["depth", "q_star", "digits", "fixed point"])
            continue
        spectrum = out if call is mf.jacobian_spectrum else out.jacobian
        assert finite(spectrum.mean) and finite(spectrum.variance) and spectrum.variance >= 0
        if call is mf.diagnose:
            assert out.verdict in mf.diagnose.__globals__["VERDICTS"]


# -- every public entry point, a hostile value in each of its arguments ---------------------
_SOL = None


def _sol():
    global _SOL
    if _SOL is None:
        _SOL = mf.eoc_parameters("crelu", sparsity="0.7", v_prime="0.7", digits=20)
    return _SOL


#: (name, call with one argument replaced, the names an error may give for it)
ENTRY_POINTS = [
    ("map_values.init", lambda v: mf.map_values(v, 1, digits=20), ["Initialisation", "init"]),
    ("map_values.q", lambda v: mf.map_values(_sol().init, v, digits=20), ["q"]),
    ("map_values.digits", lambda v: mf.map_values(_sol().init, 1, digits=v), ["digits"]),
    ("map_values_float64.init", lambda v: mf.map_values_float64(v, 1.0), ["Initialisation", "init"]),
    ("map_values_float64.q", lambda v: mf.map_values_float64(_sol().init, v), ["q"]),
    ("fixed_points.init", lambda v: mf.fixed_points(v, digits=20), ["Initialisation", "init"]),
    ("fixed_points.digits", lambda v: mf.fixed_points(_sol().init, digits=v), ["digits"]),
    ("eoc_parameters.activation", lambda v: mf.eoc_parameters(v, sparsity="0.7"), ["activation"]),
    ("eoc_parameters.sparsity", lambda v: mf.eoc_parameters("relu", sparsity=v, digits=20), ["sparsity"]),
    ("eoc_parameters.q_star", lambda v: mf.eoc_parameters("relu", sparsity="0.7", q_star=v, digits=20), ["q_star"]),
    ("eoc_parameters.v_prime", lambda v: mf.eoc_parameters("crelu", sparsity="0.7", v_prime=v, digits=20),
     ["v_prime"]),
    ("eoc_parameters.clip", lambda v: mf.eoc_parameters("crelu", sparsity="0.7", clip=v, digits=20), ["clip"]),
    ("correlation_map.c", lambda v: mf.correlation_map(_sol(), v, digits=20), ["c"]),
    ("correlation_map.q_star", lambda v: mf.correlation_map(_sol().init, 0.5, q_star=v, digits=20), ["q_star"]),
    ("jacobian_spectrum.depth", lambda v: mf.jacobian_spectrum(_sol(), depth=v, digits=20), ["depth"]),
    ("diagnose.depth", lambda v: mf.diagnose(_sol(), depth=v, digits=20), ["depth"]),
    ("diagnose.init", lambda v: mf.diagnose(v), ["Initialisation", "init"]),
    ("stability_table.configurations", lambda v: mf.stability_table(v), ["configurations"]),
    ("stability_table.digits", lambda v: mf.stability_table([mf.Configuration("relu", "0.7")], digits=v),
     ["digits"]),
    ("Configuration.sparsity", lambda v: mf.Configuration("relu", v), ["sparsity"]),
    ("Initialisation.sigma_w2", lambda v: mf.Initialisation("relu", v, 0), ["sigma_w2"]),
]


@pytest.mark.parametrize("name, call, names", ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
@settings(max_examples=25, deadline=None)
@given(value=HOSTILE)
def test_every_entry_point_refuses_hostile_values_by_name(name, call, names, value):
    """A finite answer, or a ParameterError that names the argument: never another
    exception (TypeError, AttributeError, OverflowError) from deep inside."""
    try:
        call(value)
    except mf.NoSolutionError:
        pass  # a valid request the EoC cannot meet (m = 1e-38: phi' is 0 almost surely): said so
    except mf.ParameterError as exc:
        check_error(exc, names)


def test_the_issue_examples():
    """The hostile inputs a review found, each once by hand."""
    init = mf.Initialisation("relu", 2, 0)
    for call, name in [(lambda: mf.map_values("relu", 1), "Initialisation"),
                       (lambda: mf.map_values_float64(init, 10**400), "q"),
                       (lambda: mf.Initialisation("relu", sigma_w2=np.bool_(True), sigma_b2=0), "sigma_w2"),
                       (lambda: mf.stability_table(0.5), "configurations"),
                       (lambda: mf.map_values(init, b"1"), "q")]:
        with pytest.raises(mf.ParameterError, match=name):
            call()
    # a Fraction is a number, read exactly: for this ReLU V(q) = q, so V(1/3) = 1/3 to the digits asked
    v = mf.map_values(init, Fraction(1, 3), digits=30).variance
    with mpmath.workdps(40):
        assert abs(v - mpmath.mpf(1) / 3) < mpmath.mpf(10) ** -30
