"""Identities of the mean-field maps (Price et al. 2024, sections 2-3; the team's notes in
/work/shared/reference/paper-notes.md), checked on ``map_values`` at 30 digits.

- Stein's lemma: V' = chi1 for ReLU_tau and ST_tau (their kinks sit where phi = 0); the
  clip adds -sigma_w2 (m / sqrt q) npdf((tau + m) / sqrt q) for CReLU, twice that for CST.
- Scale invariance: phi_{c tau, c m}(c x) = c phi_{tau, m}(x), so (tau, m, q, sigma_b2) ->
  (c tau, c m, c^2 q, c^2 sigma_b2) maps V to c^2 V and keeps V', q V'', chi1, sparsity.
- tau -> 0: ReLU_0 is ReLU (V = sigma_b2 + sigma_w2 q / 2), ST_0 the identity
  (V = sigma_b2 + sigma_w2 q), and V(0) - V(tau) = k sigma_w2 tau sqrt(2q/pi) + O(tau^2).
- m -> infinity: CReLU / CST with m = 60 sqrt(q) are ReLU_tau / ST_tau to 30 digits.
- CST is the odd extension of CReLU: E_cst[phi^2] = 2 E_crelu[phi^2] and likewise phi'^2,
  so CST with sigma_w2 is CReLU with 2 sigma_w2, and CST sparsity s is CReLU's (1 + s)/2.

Every right-hand side is either an analytic formula written here (mpmath) or the library
at *other* arguments, so each identity can fail. Values are compared to ``DIGITS``
significant digits, or, where ~0 (below 1e-15 of the quantity's natural scale), to
1e-(DIGITS + 15) of that scale, as in tests/test_closed_forms.py.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import mpmath
import pytest
from hypothesis import given, settings, strategies as st
from mpmath import mpf

from meanfield.activations import CRELU, CST, RELU, RELU_TAU, ST
from meanfield.maps import Initialisation, map_values

DIGITS = 30
NEGLIGIBLE = 15
FIELDS = ("variance", "v_prime", "v_second", "chi1", "sparsity")


def log_uniform(lo_exp, hi_exp):
    return st.floats(lo_exp, hi_exp).map(lambda e: 10.0 ** e)


Q = log_uniform(-4, 4)
SIGMA_W2 = log_uniform(-2, 2)
SIGMA_B2 = st.one_of(st.just(0.0), log_uniform(-3, 1))
TAU = st.one_of(st.just(0.0), st.floats(1e-20, 5))  # meanfield takes 0 or |v| >= 1e-30
M = st.floats(1e-3, 10, exclude_min=True)


def maps(act, q, sigma_w2, sigma_b2, **params):
    return map_values(Initialisation(act, sigma_w2, sigma_b2, params=params), q, digits=DIGITS)


def natural_scales(q, sigma_w2, sigma_b2, reach) -> dict:
    """Natural size of each field: phi(x)^2 <= (|x| + reach)^2, |phi'| <= 1."""
    size = (mpmath.sqrt(mpf(q)) + mpf(reach)) ** 2
    return {"variance": mpf(sigma_b2) + mpf(sigma_w2) * size,
            "v_prime": mpf(sigma_w2) * size / mpf(q),
            "v_second": mpf(sigma_w2) * size / mpf(q) ** 2,
            "chi1": mpf(sigma_w2), "sparsity": mpf(1)}


def assert_close(got, want, scale, what=""):
    """``DIGITS`` significant digits, or absolute where ``want`` is ~0 on ``scale``."""
    with mpmath.workdps(DIGITS + 40):
        size = max(abs(mpf(want)), mpf(10) ** -NEGLIGIBLE * abs(mpf(scale)))
        err = abs(mpf(got) - mpf(want)) / size if size else abs(mpf(got))
    assert err <= mpf(10) ** -DIGITS, (
        f"{what}: {mpmath.nstr(got, DIGITS + 5)} != {mpmath.nstr(want, DIGITS + 5)} "
        f"(error {mpmath.nstr(err, 3)} of {mpmath.nstr(size, 3)})")


def assert_maps_close(got, want: dict, scales: dict):
    for name, value in want.items():
        assert_close(getattr(got, name), value, scales[name], what=name)


# -- Stein's lemma: V' against chi1 and the clip terms ---------------------------------

@pytest.mark.parametrize("act", [RELU_TAU, ST], ids=str)
@settings(max_examples=150, deadline=None)
@given(q=Q, tau=TAU, sigma_w2=SIGMA_W2, sigma_b2=SIGMA_B2)
def test_v_prime_is_chi1_when_kinks_sit_at_zero(act, q, tau, sigma_w2, sigma_b2):
    v = maps(act, q, sigma_w2, sigma_b2, tau=tau)
    assert_close(v.v_prime, v.chi1, sigma_w2, what="V' - chi1")


@pytest.mark.parametrize("act, clips", [(CRELU, 1), (CST, 2)], ids=str)
@settings(max_examples=150, deadline=None)
@given(q=Q, tau=TAU, m=M, sigma_w2=SIGMA_W2, sigma_b2=SIGMA_B2)
def test_v_prime_loses_the_clip_terms(act, clips, q, tau, m, sigma_w2, sigma_b2):
    v = maps(act, q, sigma_w2, sigma_b2, tau=tau, m=m)
    with mpmath.workdps(DIGITS + 20):
        root_q = mpmath.sqrt(mpf(q))
        clip = clips * sigma_w2 * (mpf(m) / root_q) * mpmath.npdf((mpf(tau) + mpf(m)) / root_q)
        want = v.chi1 - clip
    # Natural size: sigma_w2 (chi1 <= sigma_w2, clip <= sigma_w2 max_u u npdf(u)).
    assert_close(v.v_prime, want, sigma_w2, what="V'")


# -- scale invariance ------------------------------------------------------------------

SCALED = [(RELU, ()), (RELU_TAU, ("tau",)), (ST, ("tau",)), (CRELU, ("tau", "m")),
          (CST, ("tau", "m"))]


@pytest.mark.parametrize("act, names", SCALED, ids=[str(a) for a, _ in SCALED])
@settings(max_examples=100, deadline=None)
@given(q=Q, tau=TAU, m=M, sigma_w2=SIGMA_W2, sigma_b2=SIGMA_B2,
       c=st.integers(1, 10 ** 6).map(lambda k: Decimal(k) / 1000))
def test_scale_invariance(act, names, q, tau, m, sigma_w2, sigma_b2, c):
    """Inputs are exact decimal strings, so c tau, c m, c^2 q, c^2 sigma_b2 are exact."""
    given_ = {"tau": Decimal(tau), "m": Decimal(m), "q": Decimal(q), "sb": Decimal(sigma_b2)}
    with localcontext() as ctx:
        ctx.prec = 200
        scaled = {"tau": c * given_["tau"], "m": c * given_["m"], "q": c * c * given_["q"],
                  "sb": c * c * given_["sb"]}
    run = lambda v: maps(act, str(v["q"]), sigma_w2, str(v["sb"]),  # noqa: E731
                         **{k: str(v[k]) for k in names})
    base, big = run(given_), run(scaled)
    with mpmath.workdps(DIGITS + 20):
        c2 = mpf(str(c)) ** 2
        reach = sum(float(given_[k]) for k in names) + 1
        scales = natural_scales(q, sigma_w2, sigma_b2, reach)
        assert_maps_close(big, {"variance": c2 * base.variance, "v_prime": base.v_prime,
                                "v_second": base.v_second / c2, "chi1": base.chi1,
                                "sparsity": base.sparsity},
                          {**scales, "variance": c2 * scales["variance"],
                           "v_second": scales["v_second"] / c2})


# -- tau -> 0 --------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(q=Q, sigma_w2=SIGMA_W2, sigma_b2=SIGMA_B2)
def test_tau_zero_is_relu_and_identity(q, sigma_w2, sigma_b2):
    scales = natural_scales(q, sigma_w2, sigma_b2, 1)
    with mpmath.workdps(DIGITS + 20):
        q_, sw, sb = mpf(q), mpf(sigma_w2), mpf(sigma_b2)
        relu = {"variance": sb + sw * q_ / 2, "v_prime": sw / 2, "v_second": 0,
                "chi1": sw / 2, "sparsity": mpf(1) / 2}
        identity = {"variance": sb + sw * q_, "v_prime": sw, "v_second": 0, "chi1": sw,
                    "sparsity": 0}
    relu_tau0 = maps(RELU_TAU, q, sigma_w2, sigma_b2, tau=0)
    assert_maps_close(relu_tau0, relu, scales)
    assert_maps_close(maps(RELU, q, sigma_w2, sigma_b2), relu, scales)
    assert_maps_close(maps(ST, q, sigma_w2, sigma_b2, tau=0), identity, scales)
    relu0 = maps(RELU, q, sigma_w2, sigma_b2)
    assert_maps_close(relu_tau0, {k: getattr(relu0, k) for k in FIELDS}, scales)


@pytest.mark.parametrize("act, k", [(RELU_TAU, 1), (ST, 2)], ids=str)
@settings(max_examples=150, deadline=None)
@given(q=Q, eps=log_uniform(-12, -2), sigma_w2=SIGMA_W2, sigma_b2=SIGMA_B2)
def test_small_tau_is_first_order_in_tau(act, k, q, eps, sigma_w2, sigma_b2):
    """dE/dtau = -2k E[(x - tau)_+] is -k sqrt(2q/pi) at 0 and |d^2E/dtau^2| <= 2k, so
    |V(0) - V(eps) - k sigma_w2 eps sqrt(2q/pi)| <= k sigma_w2 eps^2 (Taylor)."""
    drop = maps(act, q, sigma_w2, sigma_b2, tau=0).variance - maps(
        act, q, sigma_w2, sigma_b2, tau=eps).variance
    with mpmath.workdps(DIGITS + 20):
        first_order = k * sigma_w2 * mpf(eps) * mpmath.sqrt(2 * mpf(q) / mpmath.pi)
        assert abs(drop - first_order) <= k * sigma_w2 * mpf(eps) ** 2 * (1 + mpf(10) ** -20)


# -- m -> infinity ---------------------------------------------------------------------

@pytest.mark.parametrize("clipped, unclipped", [(CRELU, RELU_TAU), (CST, ST)], ids=str)
@settings(max_examples=150, deadline=None)
@given(q=Q, tau=TAU, sigma_w2=SIGMA_W2, sigma_b2=SIGMA_B2)
def test_huge_clip_is_no_clip(clipped, unclipped, q, tau, sigma_w2, sigma_b2):
    """With m = 60 sqrt(q) the clip is reached with probability ~npdf(60) ~ 1e-783."""
    m = 60 * q ** 0.5
    got = maps(clipped, q, sigma_w2, sigma_b2, tau=tau, m=m)
    want = maps(unclipped, q, sigma_w2, sigma_b2, tau=tau)
    assert_maps_close(got, {k: getattr(want, k) for k in FIELDS},
                      natural_scales(q, sigma_w2, sigma_b2, tau + 1))


# -- CST is CReLU with twice sigma_w2 ----------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(q=Q, s=st.floats(1e-6, 0.999), m=M, sigma_w2=SIGMA_W2, sigma_b2=SIGMA_B2)
def test_cst_at_sparsity_s_is_crelu_at_sparsity_half_one_plus_s(q, s, m, sigma_w2, sigma_b2):
    """tau = sqrt(q) Phi^-1((1 + s)/2) = sqrt(2q) erfinv(s) gives CST sparsity
    2 Phi(tau / sqrt q) - 1 = s and CReLU sparsity (1 + s)/2."""
    with mpmath.workdps(60):
        tau = mpmath.nstr(mpmath.sqrt(2 * mpf(q)) * mpmath.erfinv(mpf(s)), 55)
    cst = maps(CST, q, sigma_w2, sigma_b2, tau=tau, m=m)
    crelu = maps(CRELU, q, 2 * sigma_w2, sigma_b2, tau=tau, m=m)
    scales = natural_scales(q, 2 * sigma_w2, sigma_b2, float(tau) + m)
    assert_maps_close(cst, {k: getattr(crelu, k) for k in FIELDS if k != "sparsity"}, scales)
    with mpmath.workdps(DIGITS + 20):
        assert_close(cst.sparsity, s, 1, what="CST sparsity")
        assert_close(crelu.sparsity, (1 + mpf(s)) / 2, 1, what="CReLU sparsity")
