"""Verification of ``meanfield.eoc`` (edge-of-chaos initialisation by target sparsity).

The library's answer (tau, m, sigma_w2, sigma_b2 and the fixed-point report) is checked
against the defining conditions evaluated independently, never against its own numbers:

- EoC conditions at q*, by ``_reference`` quadrature (phi from its definition, nothing
  imported from meanfield): chi_1(q*) = 1, V(q*) = q*, V'(q*) = the target, and the
  sparsity P(phi(sqrt(q*) z) = 0) = s as an integral of the density over phi's zero set;
- ReLU_tau and ST_tau (Price et al. 2024, Lemma 1 / result 2): sigma_w2 = 1/(1 - s) and
  the only fixed point is q*, half-stable attracting from below, with large_q "diverges"
  (checked with an independent float64 scan too), for s over its range and q* over
  decades;
- published anchors: CReLU, s = 0.85, q* = 1: V'(q*) = 0.5 at m = 0.81, 0.9 at m = 1.74
  (m solved here by bisection on the quadrature); CST, s = 0.8, V'(q*) = 0.9: three fixed
  points stable < unstable < stable (roots located here independently) with chi_1 > 1 at
  the upper one; neighbours of that regime are scanned for missed or misclassified points;
- clipping: q* stable for every s and m; V'(q*) increases in m from ~0 to ~1;
  with m given, sigma_w2 and sigma_b2 are recomputed here and NoSolutionError must be
  raised exactly when sigma_b2 < 0 (also for a custom affine activation phi = x + c);
- bad input raises ParameterError naming the parameter and its range; precision does not
  leak.
"""

from __future__ import annotations

import functools
import math

import mpmath
import pytest
import sympy as sp
from hypothesis import event, given, settings, strategies as st

from meanfield.testing import references as R
from meanfield.activations import Activation, Piece, x
from meanfield.eoc import eoc_parameters
from meanfield.errors import NoSolutionError, ParameterError
from meanfield.testing.strategies import examples, log_uniform

S_MIN = {"relu": 0.5, "crelu": 0.5, "st": 0.0, "cst": 0.0}


def tol(digits, scale=1):
    return mpmath.mpf(10) ** (5 - digits) * max(1, abs(scale))


def params_of(sol):
    p = {"tau": sol.tau}
    if sol.m is not None:
        p["m"] = sol.m
    return p


def quantile_tau(name, s, q_star, dps):
    """tau from the sparsity by the normal quantile (mpmath.erfinv)."""
    with mpmath.workdps(dps):
        s, q = mpmath.mpf(s), mpmath.mpf(q_star)
        level = s if name in ("relu", "crelu") else (1 + s) / 2
        return mpmath.sqrt(2 * q) * mpmath.erfinv(2 * level - 1)


def sparsity_ref(name, tau, q, dps):
    """P(phi(sqrt(q) z) = 0): the N(0, 1) mass of phi's zero set {x <= tau} / {|x| <= tau}."""
    with mpmath.workdps(dps):
        t = mpmath.mpf(tau) / mpmath.sqrt(q)
        lo = -mpmath.inf if name in ("relu", "crelu") else -t
        return mpmath.quad(mpmath.npdf, [lo, t])


def assert_eoc_conditions(sol, name, s, digits, v_prime=None):
    """chi_1(q*) = 1, V(q*) = q*, V'(q*) = v_prime (if given), sparsity = s: all by quadrature."""
    dps = digits + 12
    q = sol.q_star
    v, vp, chi1 = R.mp_maps(name, params_of(sol), sol.sigma_w2, sol.sigma_b2, q, dps)
    assert abs(chi1 - 1) < tol(digits), f"chi_1(q*) - 1 = {mpmath.nstr(chi1 - 1, 3)}"
    assert abs(v - q) < tol(digits, q), f"V(q*) - q* = {mpmath.nstr(v - q, 3)}"
    with mpmath.workdps(dps):
        s_ref = sparsity_ref(name, sol.tau, q, dps)
        assert abs(s_ref - mpmath.mpf(s)) < tol(digits), (s_ref, s)
        assert abs(sol.sparsity - s_ref) < tol(digits)
    assert abs(sol.chi1 - chi1) < tol(digits) and abs(sol.v_prime - vp) < tol(digits)
    if v_prime is not None:
        with mpmath.workdps(dps):
            assert abs(vp - mpmath.mpf(v_prime)) < tol(digits), (vp, v_prime)
    assert sol.sigma_b2 >= 0
    return vp


def q_star_point(sol, digits):
    near = [pt for pt in sol.fixed_points.points if abs(pt.q - sol.q_star) < tol(digits, sol.q_star)]
    assert len(near) == 1, [(pt.q, pt.kind) for pt in sol.fixed_points.points]
    return near[0]


def scan(sol, name):
    p = {k: float(v) for k, v in params_of(sol).items()}
    return R.check_against_scan(sol.fixed_points, name, p, float(sol.sigma_w2), float(sol.sigma_b2))


# -- ReLU_tau and ST_tau: one half-stable fixed point, sigma_w2 = 1/(1 - s) -------------------

@st.composite
def unclipped(draw):
    name = draw(st.sampled_from(["relu", "st"]))
    if name == "relu":  # s - 1/2 over decades down to 1e-6, and up to s = 0.999
        s = draw(st.one_of(st.floats(0.5 + 1e-6, 0.999), log_uniform(1e-6, 0.499).map(lambda d: 0.5 + d)))
    else:
        s = draw(st.one_of(st.floats(1e-6, 0.999), log_uniform(1e-6, 0.999)))
    return name, s, draw(log_uniform(1e-4, 1e4))


@settings(max_examples=examples(40), deadline=None)
@given(cfg=unclipped(), digits=st.sampled_from([15, 30, 50]))
def test_relu_and_st_on_the_eoc_have_one_half_stable_fixed_point(cfg, digits):
    name, s, q_star = cfg
    sol = eoc_parameters(name, sparsity=s, q_star=q_star, digits=digits)
    with mpmath.workdps(digits + 12):
        assert abs(sol.sigma_w2 * (1 - mpmath.mpf(s)) - 1) < tol(digits)  # paper: 1/(1 - s)
        assert abs(sol.tau - quantile_tau(name, s, q_star, digits + 12)) < tol(digits, math.sqrt(q_star))
    assert sol.m is None
    vp = assert_eoc_conditions(sol, name, s, digits)
    assert abs(vp - 1) < tol(digits)  # V' = chi_1 for these two (Stein's lemma)

    rep = sol.fixed_points
    assert len(rep.points) == 1, [(pt.q, pt.kind) for pt in rep.points]
    (pt,) = rep.points
    assert (pt.kind, pt.attracts_from) == ("half-stable", "below")
    assert rep.large_q == "diverges" and not rep.degenerate
    # F' = V' - 1 has a simple root at q* (q* V'' >= 1e-7 here): located to ~D digits.
    assert abs(pt.q - q_star) < tol(digits, q_star)
    changes = scan(sol, name)
    assert changes == []  # V(q) - q >= 0 everywhere: the scan sees no sign change


@pytest.mark.parametrize("name, s, digits", [
    ("st", "1e-12", 15), ("st", "1e-8", 15), ("relu", "0.50000001", 15), ("st", "1e-24", 30),
    ("st", "1e-11", 15), ("st", "1e-14", 15), ("st", "1e-23", 30), ("st", "1e-43", 50),
])
def test_relu_st_at_tiny_excess_sparsity_is_still_one_half_stable_point(name, s, digits):
    """Below the range of the property test above (s >= 1e-6): q* is still an exact fixed
    point whose kind follows from V'(q*) = 1 and V''(q*) > 0, both resolved at D + 15
    working digits; V(q) - q >= 0 everywhere, so neither 'unstable' nor a miss is right.
    (Regression: at 9fc6308..b850d97 these came out 'unstable', split, or missing.)"""
    sol = eoc_parameters(name, sparsity=s, digits=digits)
    with mpmath.workdps(digits + 12):  # the reference: q* = 1 is a fixed point
        v = R.mp_variance(name, params_of(sol), sol.sigma_w2, sol.sigma_b2, 1, digits + 12)
        assert abs(v - 1) < tol(digits)
    pts = sol.fixed_points.points
    assert [(pt.kind, pt.attracts_from) for pt in pts] == [("half-stable", "below")]
    assert abs(pts[0].q - 1) < 1e-6


def test_relu_st_tiny_excess_sparsity_sweep():
    """s = 1e-k (st) and 1/2 + 1e-k (relu) for k = 6 .. D + 8: always one half-stable point
    at q* = 1. (Below ~1e-(D+15) V(q) = q to working precision and 'degenerate' would be
    acceptable; the sweep stops well above that.)"""
    bad = []
    for digits in (15, 30, 50):
        for k in range(6, digits + 9):
            for name, s in (("st", f"1e-{k}"), ("relu", "0." + "5" + "0" * (k - 2) + "1")):
                rep = eoc_parameters(name, sparsity=s, digits=digits).fixed_points
                got = [(pt.kind, pt.attracts_from) for pt in rep.points]
                if got != [("half-stable", "below")] or abs(rep.points[0].q - 1) > 1e-6:
                    bad.append((name, s, digits, got))
    assert bad == [], f"{len(bad)} failures, e.g. {bad[:6]}"


# -- published anchors --------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def clip_for_target(name, s, target, dps):
    """m with V'(1) = target on the EoC at q* = 1, by bisection on the quadrature."""
    with mpmath.workdps(dps):
        tau = quantile_tau(name, s, 1, dps)

        def g(m):
            p = {"tau": tau, "m": m}
            _, de, ed = R.mp_maps(name, p, 1, 0, 1, dps)  # E'[phi^2](1), E[phi'^2](1)
            return de / ed - mpmath.mpf(target)  # V'(1) with sigma_w2 = 1 / E[phi'^2]

        lo, hi = mpmath.mpf("0.01"), mpmath.mpf(10)
        assert g(lo) < 0 < g(hi)
        return mpmath.findroot(g, (lo, hi), solver="anderson", tol=mpmath.mpf(10) ** (8 - dps))


@pytest.mark.parametrize("target, anchor, prefix", [("0.5", "0.81", "0.8095"), ("0.9", "1.74", "1.7395")])
@pytest.mark.parametrize("digits", [15, 30, 50])
def test_crelu_s085_clip_levels_match_published_anchors(target, anchor, prefix, digits):
    m_ref = clip_for_target("crelu", "0.85", target, 62)
    assert round(float(m_ref), 2) == float(anchor) and abs(m_ref - mpmath.mpf(prefix)) < 6e-5
    sol = eoc_parameters("crelu", sparsity="0.85", v_prime=target, digits=digits)
    assert abs(sol.m - m_ref) < tol(digits), (sol.m, m_ref)
    assert_eoc_conditions(sol, "crelu", "0.85", digits, v_prime=target)
    assert q_star_point(sol, digits).kind == "stable"
    scan(sol, "crelu")


def _roots_by_bisection(name, p, sw, sb, brackets, dps):
    with mpmath.workdps(dps):
        f = lambda q: R.mp_variance(name, p, sw, sb, q, dps) - q
        return [mpmath.findroot(f, (mpmath.mpf(a), mpmath.mpf(b)), solver="anderson",
                                tol=mpmath.mpf(10) ** (8 - dps)) for a, b, _ in brackets]


@pytest.mark.parametrize("digits", [15, 30, 50])
def test_cst_s08_vprime09_has_three_fixed_points_and_exploding_upper_one(digits):
    sol = eoc_parameters("cst", sparsity="0.8", v_prime="0.9", digits=digits)
    assert_eoc_conditions(sol, "cst", "0.8", digits, v_prime="0.9")
    pts = sol.fixed_points.points
    assert [pt.kind for pt in pts] == ["stable", "unstable", "stable"]
    assert abs(pts[0].q - 1) < tol(digits)
    assert sol.fixed_points.large_q == "bounded"
    changes = scan(sol, "cst")
    assert len(changes) == 3
    p = params_of(sol)
    ref = _roots_by_bisection("cst", p, sol.sigma_w2, sol.sigma_b2, changes[1:], min(digits, 30) + 12)
    for pt, q in zip(pts[1:], ref):
        assert abs(pt.q - q) < tol(min(digits, 30), q), (pt.q, q)
    for pt in pts[1:]:  # residual at the full requested precision
        assert abs(R.mp_variance("cst", p, sol.sigma_w2, sol.sigma_b2, pt.q, digits + 12) - pt.q) < tol(digits, pt.q)
    _, _, chi1_top = R.mp_maps("cst", p, sol.sigma_w2, sol.sigma_b2, pts[2].q, 40)
    assert chi1_top > 1, chi1_top  # failure mode 1: exploding gradients at the upper point
    assert abs(pts[2].chi1 - chi1_top) < tol(min(digits, 28))


@settings(max_examples=examples(40), deadline=None)
@given(name=st.sampled_from(["cst", "crelu"]), s=st.floats(0.7, 0.9), target=st.floats(0.85, 0.99))
def test_near_the_three_fixed_point_regime_nothing_is_missed(name, s, target):
    sol = eoc_parameters(name, sparsity=s, v_prime=target, digits=15)
    changes = scan(sol, name)
    kinds = [pt.kind for pt in sol.fixed_points.points]
    event(f"{name}: {kinds}")
    assert q_star_point(sol, 15).kind == "stable"
    assert len(changes) == len(kinds)
    if len(kinds) == 3:
        assert kinds == ["stable", "unstable", "stable"]
        p = params_of(sol)
        for pt in sol.fixed_points.points:
            v = R.mp_variance(name, p, sol.sigma_w2, sol.sigma_b2, pt.q, 27)
            assert abs(v - pt.q) < tol(15, pt.q)


# -- clipped activations: q* is stable; V'(q*) runs from 0 to 1 with m -----------------------

@st.composite
def clipped(draw):
    name = draw(st.sampled_from(["crelu", "cst"]))
    lo = S_MIN[name]
    s = draw(st.one_of(st.just(lo), st.floats(lo, 0.99).map(lambda v: 0.0 if v < 1e-100 else v)))
    return name, s, draw(log_uniform(1e-3, 1e3))


@settings(max_examples=examples(30), deadline=None)
@given(cfg=clipped(), target=st.floats(0.01, 0.99), digits=st.sampled_from([15, 30, 50]))
def test_clipped_eoc_meets_the_conditions_and_q_star_is_stable(cfg, target, digits):
    name, s, q_star = cfg
    sol = eoc_parameters(name, sparsity=s, q_star=q_star, v_prime=target, digits=digits)
    assert abs(sol.tau - quantile_tau(name, s, q_star, digits + 12)) < tol(digits, math.sqrt(q_star))
    assert_eoc_conditions(sol, name, s, digits, v_prime=target)
    pt = q_star_point(sol, digits)
    assert pt.kind == "stable" and abs(pt.v_prime - mpmath.mpf(target)) < tol(digits)
    assert sol.fixed_points.large_q == "bounded"
    event(f"{len(sol.fixed_points.points)} fixed points")


def weights_ref(name, p, q_star, dps):
    """(sigma_w2, sigma_b2) of the EoC at q*, from the quadrature."""
    with mpmath.workdps(dps):
        e2, _, ed = R.mp_maps(name, p, 1, 0, q_star, dps)
        return 1 / ed, mpmath.mpf(q_star) - e2 / ed


@settings(max_examples=examples(30), deadline=None)
@given(cfg=clipped(), m_rel=log_uniform(1e-3, 10), digits=st.sampled_from([15, 30]))
def test_clip_given_q_star_is_stable_or_no_solution(cfg, m_rel, digits):
    name, s, q_star = cfg
    clip = m_rel * math.sqrt(q_star)
    p = {"tau": quantile_tau(name, s, q_star, digits + 20), "m": clip}
    sw, sb = weights_ref(name, p, q_star, digits + 20)
    if sb < -tol(digits, q_star):
        with pytest.raises(NoSolutionError, match=r"sigma_b2.*>= 0"):
            eoc_parameters(name, sparsity=s, q_star=q_star, clip=clip, digits=digits)
        event("sigma_b2 < 0: NoSolutionError")
        return
    sol = eoc_parameters(name, sparsity=s, q_star=q_star, clip=clip, digits=digits)
    assert sol.m == clip
    assert abs(sol.sigma_w2 - sw) < tol(digits, sw) and abs(sol.sigma_b2 - sb) < tol(digits, q_star)
    vp = assert_eoc_conditions(sol, name, s, digits)
    assert 0 < vp < 1 + tol(digits)
    if 1 - vp > mpmath.mpf(10) ** (4 - digits / 2):
        # the dip of V - q between q* and the unstable point above it is then deeper than
        # 10^(6-D) q: stability is decidable at D digits, and must come out "stable"
        assert q_star_point(sol, digits).kind == "stable"
        event("q* stable")
    else:
        event("V'(q*) within 10^(4-D/2) of 1: q* not separable at D digits")


@settings(max_examples=examples(8), deadline=None)
@given(cfg=clipped())
def test_v_prime_at_q_star_rises_from_zero_to_one_with_the_clip(cfg):
    name, s, q_star = cfg
    values = []
    for m_rel in (1e-4, 1e-2, 0.3, 1, 3, 30):
        sol = eoc_parameters(name, sparsity=s, q_star=q_star, clip=m_rel * math.sqrt(q_star), digits=15)
        values.append(R.mp_maps(name, params_of(sol), sol.sigma_w2, sol.sigma_b2, q_star, 25)[1])
    assert all(a < b for a, b in zip(values, values[1:])), values
    assert 0 < values[0] < 1e-3 and values[-1] > 1 - 1e-9, values


@pytest.mark.parametrize("name", ["crelu", "cst"])
@pytest.mark.parametrize("target", ["0.999", "0.99999"])
def test_q_star_stays_stable_and_separate_close_to_tangency(name, target):
    """V'(q*) = 1 - 1e-5: the unstable point sits ~2e-5 q* above q*; at 30 digits the
    two are far apart and must both be reported (q* stable, the other unstable)."""
    s = "0.8"
    sol = eoc_parameters(name, sparsity=s, v_prime=target, digits=30)
    pts = sol.fixed_points.points
    assert [pt.kind for pt in pts][:2] == ["stable", "unstable"]
    assert abs(pts[0].q - 1) < tol(30)
    assert abs(R.mp_variance(name, params_of(sol), sol.sigma_w2, sol.sigma_b2, pts[1].q, 42) - pts[1].q) < tol(30)
    scan(sol, name)


# -- no solution -----------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def affine(c):
    return Activation(f"affine_plus_{c}", (Piece(-sp.oo, sp.oo, x + sp.Rational(c)),))


@settings(max_examples=examples(15), deadline=None)
@given(c=st.sampled_from(["1", "-1/2", "3"]), q_star=log_uniform(1e-3, 1e3))
def test_affine_activation_has_no_eoc(c, q_star):
    """phi = x + c: E[phi'^2] = 1 and E[phi^2] = q + c^2, so sigma_b2 = -c^2 < 0."""
    with pytest.raises(NoSolutionError) as info:
        eoc_parameters(affine(c), q_star=q_star)
    assert isinstance(info.value, ParameterError)
    assert "sigma_b2" in str(info.value) and ">= 0" in str(info.value)


def test_constant_activation_has_no_eoc():
    const = Activation("const_one", (Piece(-sp.oo, sp.oo, sp.Integer(1)),))
    with pytest.raises(NoSolutionError):
        eoc_parameters(const, q_star=1)


def test_relu_at_half_sparsity_is_the_degenerate_relu_eoc():
    """s = 1/2: tau = 0, sigma_w2 = 2, sigma_b2 = 0 and V(q) = q for every q."""
    sol = eoc_parameters("relu", sparsity="0.5")
    assert sol.tau == 0 and sol.sigma_w2 == 2 and sol.sigma_b2 == 0
    assert sol.fixed_points.degenerate and sol.fixed_points.large_q == "degenerate"


# -- invalid requests -------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("args, kw, words", [
    (("relu", 0.4999), {}, ("sparsity", "[0.5, 1)")),
    (("crelu", 0.2), {"v_prime": 0.5}, ("sparsity", "[0.5, 1)")),
    (("relu", 1), {}, ("sparsity", "[0.5, 1)")),
    (("st", -0.01), {}, ("sparsity", "[0, 1)")),
    (("cst", 1.0), {"clip": 1}, ("sparsity", "[0, 1)")),
    (("st", NAN), {}, ("sparsity",)),
    (("relu", INF), {}, ("sparsity",)),
    (("st", "abc"), {}, ("sparsity",)),
    (("crelu", 0.7), {"v_prime": 0}, ("v_prime", "(0, 1)")),
    (("crelu", 0.7), {"v_prime": 1}, ("v_prime", "(0, 1)")),
    (("cst", 0.7), {"v_prime": 1.5}, ("v_prime", "(0, 1)")),
    (("cst", 0.7), {"v_prime": -0.1}, ("v_prime", "(0, 1)")),
    (("cst", 0.7), {"v_prime": NAN}, ("v_prime",)),
    (("crelu", 0.7), {"clip": 0}, ("clip", "> 0")),
    (("crelu", 0.7), {"clip": -1}, ("clip", "> 0")),
    (("cst", 0.7), {"clip": INF}, ("clip",)),
    (("crelu", 0.7), {"clip": 1, "v_prime": 0.5}, ("clip", "v_prime")),
    (("cst", 0.7), {}, ("clip", "v_prime")),
    (("relu", 0.7), {"clip": 1}, ("clip",)),
    (("st", 0.7), {"v_prime": 0.5}, ("v_prime",)),
    (("relu", 0.7), {"q_star": 0}, ("q_star", "> 0")),
    (("relu", 0.7), {"q_star": -1}, ("q_star", "> 0")),
    (("st", 0.7), {"q_star": NAN}, ("q_star",)),
    (("st", 0.7), {"q_star": INF}, ("q_star",)),
    (("relu", 0.7), {"digits": 7}, ("digits", "[8, 1000]")),
    (("relu", 0.7), {"digits": 1001}, ("digits", "[8, 1000]")),
    (("relu", 0.7), {"digits": 20.0}, ("digits", "[8, 1000]")),
    (("relu", 0.7), {"digits": True}, ("digits", "[8, 1000]")),
    (("hard_tanh", 0.7), {}, ("sparsity",)),
    (("nope", 0.7), {}, ("activation",)),
    (("crelu", 0.7), {"v_prime": 0.5, "tau": 1}, ("tau",)),
])
def test_infeasible_requests_name_the_parameter_and_range(args, kw, words):
    with pytest.raises(ParameterError) as info:
        eoc_parameters(*args, **kw)
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


@pytest.mark.parametrize("outer", [15, 40])
def test_precision_does_not_leak(outer):
    with mpmath.workdps(outer):
        eoc_parameters("cst", sparsity="0.8", v_prime="0.9", digits=50)
        assert mpmath.mp.dps == outer
        eoc_parameters("relu", sparsity="0.7", digits=8)
        assert mpmath.mp.dps == outer
        for bad in ({"digits": 3}, {"v_prime": 2}):
            with pytest.raises(ParameterError):
                eoc_parameters("crelu", sparsity="0.7", **bad)
            assert mpmath.mp.dps == outer
        with pytest.raises(NoSolutionError):
            eoc_parameters(affine("1"), q_star=2)
        assert mpmath.mp.dps == outer
    assert mpmath.mp.dps == 15
