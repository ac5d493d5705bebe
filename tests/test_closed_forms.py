"""The closed forms of meanfield, checked against independent high-precision quadrature.

For z ~ N(0, 1) and x = sqrt(q) z, meanfield derives (sympy) and evaluates (mpmath, numpy)
E[phi(x)^2], E[phi'(x)^2], the sparsity P(phi(x) = 0), V(q) = sigma_b2 + sigma_w2 E[phi^2],
chi1(q) = sigma_w2 E[phi'^2], V'(q) and V''(q). No expected value here comes from the
library:

- each activation (the built-ins, and hypothesis-generated piecewise polynomials) is
  written again from its definition in mpmath (max/min/sign, or Horner on the pieces);
- expectations are ``mpmath.quad`` integrals against the normal density, split at the
  kinks, at ``REF_DPS`` working digits (:func:`gauss_expect`);
- V' and V'' are ``mpmath.diff`` of that quadrature, or, for the float64 check, the
  quadrature of phi^2 against d/dq and d^2/dq^2 of the N(0, q) density.

Checked: 1. the sympy closed forms and ``map_values`` (30 digits) against quadrature;
2. V', V'' against ``mpmath.diff`` (20 digits); 3. ``map_values_float64`` over q in
1e-6..1e6 (error below 1e-13 of each quantity's natural scale); 4. numpy ``act(xs)`` and
``act.derivative(xs)``; 5. mpmath precision is restored by ``map_values`` (also on error)
and the requested digits are delivered.

Tolerance (:func:`assert_close`): ``digits`` significant digits, except where the exact
value is ~0, i.e. below ``10**-NEGLIGIBLE`` of the quantity's natural scale (sigma_w2 for
chi1, the size (sqrt(q) + max|breakpoint|)^2 of phi^2 for E[phi^2], ...); there the error
must be below ``10**-(digits + NEGLIGIBLE)`` of the scale. Deep tails, where the values
are tiny but must keep their significant digits, are checked separately and relatively.

A remaining library defect is pinned by a strict xfail: the float64 relative accuracy of
V at large q for activations with a finite non-constant piece right of 0.

Parameters range widely: q in 1e-4..1e4, tau in [0, 5], m in (1e-3, 10], sigma_w2 in
1e-2..1e2, sigma_b2 in {0} u 1e-3..10 (numbers are kept to 0 or magnitudes 1e-30..1e30,
inside what meanfield accepts).
Run with ``-s`` to see the largest errors observed.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given, settings, strategies as st
from mpmath import mpf

from meanfield.activations import (CRELU, CST, HARD_TANH, LEAKY_RELU, RELU, RELU_TAU, ST,
                                   Activation)
from meanfield.errors import ParameterError
from meanfield.maps import Initialisation, map_values, map_values_float64
from meanfield.symbolic import derive
from meanfield.testing.piecewise import (RandomActivation, Reference, builtin_reference, gauss_expect,
                                        random_activations)

REF_DPS = 45          # working digits of the reference quadrature
DIGITS = 30           # digits asked of the library, and required of it
DERIV_DIGITS = 20     # digits required of V', V'' against mpmath.diff
NEGLIGIBLE = 15       # |value| < 10**-NEGLIGIBLE * scale counts as ~0
FLOAT64_RTOL = 1e-13  # float64 fast path, relative to the natural scale
EPS = np.finfo(float).eps

#: Largest error seen per (check, quantity), relative (or scaled where the value is ~0).
MAX_ERRORS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_max_errors():
    yield
    print("\nlargest errors observed (relative, or scaled where the value is ~0):")
    for (check, name), err in sorted(MAX_ERRORS.items()):
        print(f"  {check:<13} {name:<12} {err:.2e}")


def _record(check: str, name: str, err) -> None:
    MAX_ERRORS[check, name] = max(MAX_ERRORS.get((check, name), 0.0), float(err))


def assert_close(got, ref, scale, *, digits=DIGITS, negligible=NEGLIGIBLE, check="", what=""):
    """``digits`` significant digits of ``ref``, or, where ``|ref|`` is below
    ``10**-negligible`` of ``scale`` (~0), an error below ``10**-(digits + negligible)``
    of ``scale``."""
    with mpmath.workdps(REF_DPS + 20):
        size = max(abs(mpf(ref)), mpf(10) ** -negligible * abs(mpf(scale)))
        err = abs(mpf(got) - mpf(ref)) / size if size else abs(mpf(got))
    _record(check, what, err)
    assert err <= mpf(10) ** -digits, (
        f"{what}: got {mpmath.nstr(got, digits + 5)}, want {mpmath.nstr(ref, digits + 5)} "
        f"(error {mpmath.nstr(err, 3)} of {mpmath.nstr(size, 3)})")




# -- strategies ------------------------------------------------------------------------

def log_uniform(lo_exp, hi_exp):
    return st.floats(lo_exp, hi_exp).map(lambda e: 10.0 ** e)


def supported(strategy):
    """Numbers that are 0 or of magnitude 1e-30 .. 1e30 (meanfield rejects extreme ones)."""
    return strategy.filter(lambda v: v == 0 or 1e-30 <= abs(v) <= 1e30)


Q = log_uniform(-4, 4)
SIGMA_W2 = log_uniform(-2, 2)
SIGMA_B2 = st.one_of(st.just(0.0), log_uniform(-3, 1))
TAU = supported(st.floats(0, 5))
M = st.floats(1e-3, 10, exclude_min=True)

BUILTINS = {
    "relu0": (RELU, st.fixed_dictionaries({})),
    "relu": (RELU_TAU, st.fixed_dictionaries({"tau": TAU})),
    "st": (ST, st.fixed_dictionaries({"tau": TAU})),
    "crelu": (CRELU, st.fixed_dictionaries({"tau": TAU, "m": M})),
    "cst": (CST, st.fixed_dictionaries({"tau": TAU, "m": M})),
    "hard_tanh": (HARD_TANH, st.fixed_dictionaries({})),
    "leaky_relu": (LEAKY_RELU, st.fixed_dictionaries({"alpha": supported(st.floats(-1, 1))})),
}


# -- the library's closed forms, evaluated here ----------------------------------------

_MP_NAMESPACE = [{"Phi": mpmath.ncdf, "phi": mpmath.npdf}, "mpmath"]


def closed_form(act: Activation, name: str, q, params: dict):
    """``derive(act).<name>`` (sympy), lambdified here onto mpmath, sigma_w2 = 1, sigma_b2 = 0.

    The exact formula is evaluated with 60 digits to spare: on a short piece its terms
    q^(k/2) M_k cancel (map_values adds working digits for that; this check does not).
    """
    f = derive(act)
    fn = sp.lambdify(f.arguments, getattr(f, name), modules=_MP_NAMESPACE)
    with mpmath.workdps(mpmath.mp.dps + 60):
        return fn(mpf(q), mpf(1), mpf(0), *(mpf(params[s.name]) for s in act.symbols))


def check_against_quadrature(act, ref: Reference, params, q, sigma_w2, sigma_b2, check):
    got = map_values(Initialisation(act, sigma_w2, sigma_b2, params=params), q, digits=DIGITS)
    with mpmath.workdps(REF_DPS):
        q, sw, sb = mpf(q), mpf(sigma_w2), mpf(sigma_b2)
        e2, ed2, sparsity = ref.e_phi2(q), ref.e_dphi2(q), ref.sparsity(q)
        scale, dscale = ref.scale(q), ref.dscale(q)
        cases = {  # name: (library value, reference, natural scale)
            "e_phi2": (closed_form(act, "e_phi2", q, params), e2, scale),
            "e_dphi2": (closed_form(act, "e_dphi2", q, params), ed2, dscale),
            "sparsity": (closed_form(act, "sparsity", q, params), sparsity, 1),
            "V": (got.variance, sb + sw * e2, sb + sw * scale),
            "chi1": (got.chi1, sw * ed2, sw * dscale),
            "map sparsity": (got.sparsity, sparsity, 1),
        }
    for what, (value, want, size) in cases.items():
        assert_close(value, want, size, check=check, what=what)


# -- 1. closed forms against quadrature, 30 digits -------------------------------------

@pytest.mark.parametrize("name", BUILTINS)
@settings(max_examples=12, deadline=None)
@given(data=st.data(), q=Q, sigma_w2=SIGMA_W2, sigma_b2=SIGMA_B2)
def test_builtin_closed_forms_match_quadrature(name, data, q, sigma_w2, sigma_b2):
    act, param_strategy = BUILTINS[name]
    params = data.draw(param_strategy, label="params")
    check_against_quadrature(act, builtin_reference(name, params), params, q,
                             sigma_w2, sigma_b2, check="builtin")


@settings(max_examples=15, deadline=None)
@given(rnd=random_activations(), q=Q, sigma_w2=SIGMA_W2, sigma_b2=SIGMA_B2)
def test_random_piecewise_polynomial_matches_quadrature(rnd, q, sigma_w2, sigma_b2):
    check_against_quadrature(rnd.activation, rnd.reference(), {}, q, sigma_w2, sigma_b2,
                             check="random")


# -- 2. V'(q), V''(q) against mpmath.diff of the quadrature ----------------------------

def derivatives_by_diff(ref: Reference, q):
    """(E'(q), E''(q)) for E(q) = E[phi(sqrt(q) z)^2]: mpmath.diff of the quadrature.

    mpmath.diff evaluates E at (DERIV_DIGITS + 5 + 6)(n + 1) digits; the central step
    h = 1e-15 q keeps the truncation error ~h^2 below 1e-30 and the noise ~(quadrature
    error)/h^2 far below that (mpmath's own h, ~1e-29 q, leaves ~1e-22 of E/q^2).
    """
    with mpmath.workdps(DERIV_DIGITS + 5):
        h = mpf(q) / mpf(10) ** 15
        return (mpmath.diff(ref.e_phi2, mpf(q), 1, h=h),
                mpmath.diff(ref.e_phi2, mpf(q), 2, h=h))


def check_derivatives(act, ref: Reference, params, q, sigma_w2, sigma_b2, check):
    got = map_values(Initialisation(act, sigma_w2, sigma_b2, params=params), q, digits=DIGITS)
    d1, d2 = derivatives_by_diff(ref, q)
    with mpmath.workdps(REF_DPS):
        scale = sigma_w2 * ref.scale(mpf(q)) / mpf(q)
        for what, value, want, size in (("V'", got.v_prime, sigma_w2 * d1, scale),
                                        ("V''", got.v_second, sigma_w2 * d2, scale / q)):
            assert_close(value, want, size, digits=DERIV_DIGITS, check=check, what=what)


@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(sorted(BUILTINS)), data=st.data(), q=Q, sigma_w2=SIGMA_W2,
       sigma_b2=SIGMA_B2)
def test_builtin_derivatives_match_numerical_differentiation(name, data, q, sigma_w2,
                                                             sigma_b2):
    act, param_strategy = BUILTINS[name]
    params = data.draw(param_strategy, label="params")
    check_derivatives(act, builtin_reference(name, params), params, q, sigma_w2, sigma_b2,
                      check="diff")


@settings(max_examples=6, deadline=None)
@given(rnd=random_activations(), q=Q, sigma_w2=SIGMA_W2)
def test_random_derivatives_match_numerical_differentiation(rnd, q, sigma_w2):
    check_derivatives(rnd.activation, rnd.reference(), {}, q, sigma_w2, 0,
                      check="diff random")


# -- deep tails: small values keep their significant digits --------------------------

@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(["relu", "st", "crelu", "cst"]), t=st.floats(5, 500),
       m=M, q=Q)
@example(name="crelu", t=10.0, m=1.0, q=0.25)  # chi1 had 25 digits, V 20, before the fix
@example(name="crelu", t=25.0, m=1.0, q=0.04)  # chi1 was exactly 0
@example(name="cst", t=10.0, m=0.5, q=0.09)
def test_deep_tail_keeps_significant_digits(name, t, m, q):
    """tau = t sqrt(q) puts every piece but the zero one far in the upper tail, where
    chi1 and V = E[phi^2] (sigma_w2 = 1, sigma_b2 = 0) are tiny but representable: they
    must still have DIGITS significant digits (regression test: Phi(b) - Phi(a) of two
    upper-tail points used to cancel to 0)."""
    params = {"tau": t * q ** 0.5, **({"m": m} if name in ("crelu", "cst") else {})}
    act, ref = BUILTINS[name][0], builtin_reference(name, params)
    got = map_values(Initialisation(act, 1, 0, params=params), q, digits=DIGITS)
    with mpmath.workdps(REF_DPS):
        want = {"chi1": ref.e_dphi2(mpf(q)), "variance": ref.e_phi2(mpf(q))}
    for what, value in want.items():
        assert value > 0
        assert_close(getattr(got, what), value, 0, check="deep tail", what=what)


def test_leaky_relu_alpha_zero_sparsity():
    """alpha = 0 makes leaky_relu the ReLU: P(phi = 0) = 1/2 (regression test: only pieces
    whose polynomial is identically 0 used to count, giving 0)."""
    got = map_values(Initialisation(LEAKY_RELU, 2, 0, params={"alpha": 0}), 1).sparsity
    with mpmath.workdps(REF_DPS):
        want = builtin_reference("leaky_relu", {"alpha": 0.0}).sparsity(mpf(1))
    assert_close(got, want, 1, check="alpha = 0", what="sparsity")


# -- 3. the float64 fast path over 12 orders of magnitude of q -------------------------

FLOAT64_Q = 10.0 ** np.linspace(-6, 6, 25)
FLOAT64_DPS = 20
FLOAT64_SIGMA_W2 = 1.7
#: A fixed discontinuous random activation with a cubic piece.
FIXED_RANDOM = RandomActivation(
    (Fraction(-3, 2), Fraction(1, 3), Fraction(2)),
    ((Fraction(1, 2), Fraction(-1, 3)), (),
     (Fraction(0), Fraction(1), Fraction(0), Fraction(-2, 7)),
     (Fraction(5, 4), Fraction(1, 8), Fraction(-1, 16))))
FLOAT64_CASES = {
    "relu0": (RELU, {}), "relu": (RELU_TAU, {"tau": 0.7}), "st": (ST, {"tau": 1.3}),
    "crelu": (CRELU, {"tau": 0.5, "m": 1.74}), "cst": (CST, {"tau": 0.25, "m": 0.81}),
    "hard_tanh": (HARD_TANH, {}), "leaky_relu": (LEAKY_RELU, {"alpha": -0.3}),
    "random": (FIXED_RANDOM.activation, {}),
}


def _float64_reference_activation(case) -> Reference:
    if case == "random":
        return FIXED_RANDOM.reference()
    return builtin_reference(case, FLOAT64_CASES[case][1])


@functools.lru_cache(maxsize=None)
def float64_reference(case: str, q: float) -> dict:
    """{name: (value, natural scale)} at q for sigma_w2 = FLOAT64_SIGMA_W2, sigma_b2 = 0,
    at FLOAT64_DPS digits; V' and V'' by differentiating the N(0, q) density under the
    integral: d/dq -> He2(z)/(2q), d^2/dq^2 -> He4(z)/(4q^2), He2 = z^2 - 1,
    He4 = z^4 - 6z^2 + 3."""
    ref = _float64_reference_activation(case)
    with mpmath.workdps(FLOAT64_DPS):
        q, sw = mpf(q), mpf(FLOAT64_SIGMA_W2)
        e2, scale = ref.e_phi2(q), ref.scale(q)
        he2 = gauss_expect(lambda t: ref.phi(t) ** 2 * (t * t / q - 1), q, ref.kinks(),
                           unit=scale, size=e2)
        he4 = gauss_expect(lambda t: ref.phi(t) ** 2 * ((t * t / q - 6) * t * t / q + 3), q,
                           ref.kinks(), unit=scale, size=e2)
        return {
            "variance": (sw * e2, sw * scale),
            "v_prime": (sw * he2 / (2 * q), sw * scale / q),
            "v_second": (sw * he4 / (4 * q * q), sw * scale / q ** 2),
            "chi1": (sw * ref.e_dphi2(q), sw * ref.dscale(q)),
            "sparsity": (ref.sparsity(q), mpf(1)),
        }


@pytest.mark.parametrize("case", FLOAT64_CASES)
def test_float64_fast_path_against_mpmath(case):
    """Error below FLOAT64_RTOL of the natural scale of each term, at every q.
    sigma_b2 = 0, so that V is as small as E[phi^2]."""
    act, params = FLOAT64_CASES[case]
    got = map_values_float64(Initialisation(act, FLOAT64_SIGMA_W2, 0, params=params),
                             FLOAT64_Q)
    for i, q in enumerate(FLOAT64_Q):
        for name, (want, scale) in float64_reference(case, q).items():
            value = getattr(got, name)[i]
            assert np.isfinite(value), f"{name}({q:g}) = {value}"
            with mpmath.workdps(FLOAT64_DPS):
                err = abs(mpf(value) - want)
                if abs(want) > FLOAT64_RTOL * scale:  # relative error where not ~0
                    _record("float64 rel", name, err / abs(want))
                _record("float64 scaled", name, err / scale)
                assert err <= FLOAT64_RTOL * scale, (
                    f"{name}({q:g}): float64 {value!r}, mpmath {mpmath.nstr(want, 17)}")


_V_LOSES_DIGITS = pytest.mark.xfail(strict=True, reason=(
    "library limitation, documented in docs/theory.md: in the float64 closed form of a "
    "finite piece [a, b] right of 0 (the linear part of crelu/cst, a polynomial on a short "
    "interval) the terms q^(k/2) M_k cancel, so V loses relative accuracy growing like "
    "eps q / width^2 until the expected loss passes 8 digits and mpmath redoes the point: "
    "worst seen 4.1e-12 (crelu, q = 1e5), 2.3e-12 (cst, q = 1e4), 3.3e-12 (random, q = 1e2) "
    "against the 1e-12 asked here"))


@pytest.mark.parametrize("case", [
    pytest.param(c, marks=_V_LOSES_DIGITS) if c in ("crelu", "cst", "random")
    else c for c in FLOAT64_CASES])
def test_float64_variance_is_relatively_accurate(case):
    """With sigma_b2 > 0, V >= sigma_b2 is never ~0: float64 should give it to 1e-12."""
    act, params = FLOAT64_CASES[case]
    sigma_b2 = 0.3
    got = map_values_float64(Initialisation(act, FLOAT64_SIGMA_W2, sigma_b2, params=params),
                             FLOAT64_Q).variance
    with mpmath.workdps(FLOAT64_DPS):
        errors = [abs(value - want) / want for value, want in zip(
            got, (sigma_b2 + float64_reference(case, q)["variance"][0] for q in FLOAT64_Q))]
    worst = int(np.argmax(errors))
    _record("float64 V rel", case, errors[worst])
    assert errors[worst] <= 1e-12, f"V({FLOAT64_Q[worst]:g}): relative error {errors[worst]}"


# -- 4. numpy evaluation of phi and phi' -----------------------------------------------

@pytest.mark.parametrize("name", BUILTINS)
@settings(max_examples=20, deadline=None)
@given(data=st.data(), xs=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=20))
def test_numpy_evaluation_matches_definition(name, data, xs):
    """act(xs) to a few ulps of |x| + max|kink| (kinks included: phi is continuous);
    act.derivative(xs) exactly, away from the kinks; and the reference phi' is the
    derivative (mpmath.diff) of the reference phi."""
    act, param_strategy = BUILTINS[name]
    params = data.draw(param_strategy, label="params")
    ref = builtin_reference(name, params)
    kinks = [float(k) for k in ref.kinks()]
    xs = np.array(xs + kinks)
    values, slopes = act(xs, **params), act.derivative(xs, **params)
    reach = float(ref.reach())
    with mpmath.workdps(30):
        for t, value, slope in zip(xs, values, slopes):
            size = abs(t) + reach
            assert abs(value - ref.phi(mpf(t))) <= 4 * EPS * size, f"phi({t!r}) = {value!r}"
            if min(abs(t - k) for k in kinks) > 1e-9 * size:
                assert slope == ref.dphi(mpf(t)), f"phi'({t!r}) = {slope!r}"
                assert abs(mpmath.diff(ref.phi, mpf(t)) - ref.dphi(mpf(t))) < 1e-20


@settings(max_examples=40, deadline=None)
@given(rnd=random_activations(), xs=st.lists(st.floats(-10, 10), min_size=1, max_size=20))
def test_numpy_evaluation_of_random_activation(rnd, xs):
    """act(xs), act.derivative(xs) against Horner on the exact rational pieces, to 1e-13
    of sum_k |c_k| |x|^k, away from the breakpoints (a null set where phi may jump)."""
    act, ref = rnd.activation, rnd.reference()
    bps = [float(b) for b in rnd.breaks]
    xs = np.array([t for t in xs + [bps[0] - 1, bps[-1] + 1] + [(a + b) / 2 for a, b in
                                                                 zip(bps, bps[1:])]
                   if min(abs(t - b) for b in bps) > 1e-9])
    values, slopes = act(xs), act.derivative(xs)
    with mpmath.workdps(30):
        for t, value, slope in zip(xs, values, slopes):
            size = (ref.degree + 1) * max(1.0, abs(t)) ** ref.degree
            assert abs(value - ref.phi(mpf(t))) <= 1e-13 * ref.coeff * size, f"phi({t!r})"
            assert abs(slope - ref.dphi(mpf(t))) <= 1e-13 * ref.dcoeff * size, f"phi'({t!r})"


# -- 5. precision -------------------------------------------------------------------------

class _NotAnMpf:
    """Passes map_values' float() validation of q, then fails to become an mpf inside it."""

    def __float__(self):
        return 1.0


PRECISION_PARAMS = {"crelu": {"m": 1}, "cst": {"m": 1}}


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(BUILTINS)), digits=st.integers(8, 150),
       outer_dps=st.integers(5, 80), q=Q)
def test_precision_never_leaks(name, digits, outer_dps, q):
    init = Initialisation(BUILTINS[name][0], 2, "0.1", params=PRECISION_PARAMS.get(name, {}))
    with mpmath.workdps(outer_dps):
        before = (mpmath.mp.prec, mpmath.mp.dps)
        map_values(init, q, digits=digits)
        assert (mpmath.mp.prec, mpmath.mp.dps) == before
        with pytest.raises(TypeError):
            map_values(init, _NotAnMpf(), digits=digits)
        assert (mpmath.mp.prec, mpmath.mp.dps) == before
        with pytest.raises(ParameterError):
            map_values(init, -q, digits=digits)
        assert (mpmath.mp.prec, mpmath.mp.dps) == before


@settings(max_examples=20, deadline=None)
@given(digits=st.integers(8, 100), outer_dps=st.integers(5, 30), q=log_uniform(-2, 4),
       tau=TAU, sigma_w2=SIGMA_W2)
def test_requested_digits_are_delivered(digits, outer_dps, q, tau, sigma_w2):
    """ReLU_tau against its textbook closed form, written here at digits + 30:
    E[max(x - tau, 0)^2] = (q + tau^2) Phi(-t) - tau sqrt(q) phi(t), t = tau / sqrt(q)."""
    with mpmath.workdps(outer_dps):
        got = map_values(Initialisation(RELU_TAU, sigma_w2, 0, params={"tau": tau}), q,
                         digits=digits)
    with mpmath.workdps(digits + 30):
        q_, tau_ = mpf(q), mpf(tau)
        t = tau_ / mpmath.sqrt(q_)
        e2 = (q_ + tau_ ** 2) * mpmath.ncdf(-t) - tau_ * mpmath.sqrt(q_) * mpmath.npdf(t)
        want = {"variance": sigma_w2 * e2, "chi1": sigma_w2 * mpmath.ncdf(-t),
                "v_prime": sigma_w2 * mpmath.ncdf(-t), "sparsity": mpmath.ncdf(t)}
        for name, value in want.items():
            assert abs(getattr(got, name) - value) <= mpf(10) ** -digits * value, name
