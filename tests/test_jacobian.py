r"""Verification of ``meanfield.jacobian`` (moments of the input-output Jacobian's spectrum).

The library predicts, for N -> infinity and Gaussian weights (Pennington, Schoenholz and
Ganguli 2017/2018), the mean m1 = chi_1(q*)^L and the variance m1^2 L mu2 / mu1^2 of the
squared singular values of J = W_L D_{L-1} ... W_1 D_0, mu_k = E[phi'(sqrt(q*) z)^(2k)].
Checked here against things computed without meanfield's math:

- a Monte Carlo simulation of random finite networks in numpy (activations written here
  from their definitions): the per-network moments tr(JJ^T)/N and
  tr((JJ^T)^2)/N - (tr(JJ^T)/N)^2, averaged over independent networks, agree with the
  theory within 3 standard errors for four configurations (numbers below);
- mu_1, mu_2 and chi_1 by ``mpmath.quad`` of the definitions (``_reference``), for random
  parameters of every continuous built-in activation, at fixed points q* built here
  (sigma_b2 = q* - sigma_w2 E[phi^2] by quadrature): mean = chi_1^L,
  relative_variance = L mu2 / mu1^2, variance = mean^2 relative_variance;
- activations whose derivative is 0 or 1, on the EoC: mean 1 and variance L / P(phi' != 0),
  with P from the normal cdf (for ReLU_tau and ST_tau P = 1 - s: the spread grows with s);
- bad depth, digits, q_star, a discontinuous activation, phi' = 0 a.s.: ParameterError.

Monte Carlo: finite-N bias versus the standard error
----------------------------------------------------
The theory is the N -> infinity limit; at width N the network moments carry a bias of
relative size about c / N. Dev runs (float32 products, seeds 11; 800 / 400 / 150 networks
at N = 250 / 500 / 1000) measured c for the relative bias of (mean, variance):

=============================  ==  ==========  ===========  ===================
configuration                  L   c (mean)    c (var)      k (per-net sd)
=============================  ==  ==========  ===========  ===================
relu  s=0.5 (EoC, sb=0)        3   ~0 (+-2)    5 .. 10      1.8, 3.1
cst   s=0.6 V'=0.7 (EoC)       3   ~0 (+-2)    ~9           2.6, 4.5
hard_tanh sw=1.8 sb=0.1        4   ~2 (+-2)    6 .. 9       1.8, 3.2
crelu s=0.85 V'=0.5 (EoC)      3   ~0 (+-4)    27 .. 37     5.3, 10
relu  s=0.8 (EoC)              3   12 .. 15    ~60          5.9, 12
=============================  ==  ==========  ===========  ===================

(k: the per-network relative standard deviation is k / sqrt(N).) The tests run N = 1000
with 24 networks, so the relative standard error is k / sqrt(24000) (2 % .. 6.5 %) and the
bias c / 1000 (0 .. 3.7 %): at most 0.3 SE for the mean and 0.35 / 0.3 / 0.5 / 0.55 SE
for the variance of the four tested configurations. ReLU at s = 0.8 is *not* tested by
Monte Carlo: its bias (1.3 % mean, 6 % variance at N = 1000, ~0.4 / 0.8 SE) is not
negligible at an affordable N (Richardson extrapolation 2 m(N) - m(N/2) would remove it
but triples the standard error).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, event, given, settings, strategies as st

from meanfield.testing import references as R
from meanfield.activations import Activation, Piece, x
from meanfield.eoc import eoc_parameters
from meanfield.errors import NoSolutionError, ParameterError
from meanfield.jacobian import MAX_DEPTH, JacobianSpectrum, jacobian_spectrum
from meanfield.maps import Initialisation
from meanfield.testing.strategies import examples, log_uniform, tidy

def rel_close(got, want, rel):
    return abs(got - want) <= rel * abs(want)


# -- references by quadrature ----------------------------------------------------------------

def dphi_moment(name, p, q, power, dps):
    """E[phi'(sqrt(q) z)^power] by mpmath.quad of the definition, split at the kinks."""
    with mpmath.workdps(dps):
        _, dphi, kinks = R.activation(name, {k: mpmath.mpf(v) for k, v in p.items()})
        r = mpmath.sqrt(mpmath.mpf(q))
        pts = R._points(kinks, r)
        return R._quad(lambda z: mpmath.mpf(dphi(r * z)) ** power * mpmath.npdf(z), pts, dps)


def phi2_moment(name, p, q, dps):
    """E[phi(sqrt(q) z)^2] by quadrature (V with sigma_w2 = 1, sigma_b2 = 0)."""
    return R.mp_variance(name, p, 1, 0, q, dps)


def active_fraction(name, p, q, dps):
    """P(phi'(sqrt(q) z) != 0) from the normal cdf, for the {0, 1}-derivative activations."""
    with mpmath.workdps(dps):
        r = mpmath.sqrt(mpmath.mpf(q))
        tau = mpmath.mpf(p.get("tau", 0))
        ncdf = mpmath.ncdf
        if name in ("relu", "relu0"):
            return 1 - ncdf(tau / r)
        if name == "st":
            return 2 * (1 - ncdf(tau / r))
        if name == "crelu":
            return ncdf((tau + p["m"]) / r) - ncdf(tau / r)
        if name == "cst":
            return 2 * (ncdf((tau + p["m"]) / r) - ncdf(tau / r))
        if name == "hard_tanh":
            return 2 * ncdf(1 / r) - 1
        raise KeyError(name)


# -- moments against quadrature, every continuous built-in -----------------------------------

@st.composite
def activation_and_fixed_point(draw):
    """(name, params, q*, sigma_w2, sigma_b2): q* is a fixed point by construction, with
    sigma_b2 = q* - sigma_w2 E[phi^2](q*) >= 0 from the quadrature."""
    name = draw(st.sampled_from(["relu0", "relu", "st", "crelu", "cst", "hard_tanh", "leaky_relu"]))
    q = draw(log_uniform(1e-3, 1e3))
    r = math.sqrt(q)
    p = {}
    if name in ("relu", "st", "crelu", "cst"):
        p["tau"] = tidy(draw(st.one_of(st.just(0.0), st.floats(0, 2.5))) * r)
    if name in ("crelu", "cst"):
        p["m"] = draw(log_uniform(1e-2, 10)) * r
    if name == "leaky_relu":
        p["alpha"] = tidy(draw(st.floats(-1, 1)))
    share = draw(st.floats(0.05, 1.0))  # sigma_w2 E[phi^2] / q*
    return name, p, q, share


@settings(max_examples=examples(40), deadline=None)
@given(cfg=activation_and_fixed_point(), depth=st.one_of(st.integers(1, 12), log_uniform(1, MAX_DEPTH).map(int)),
       digits=st.sampled_from([15, 30, 50]))
def test_moments_agree_with_quadrature(cfg, depth, digits):
    name, p, q, share = cfg
    dps = digits + 12
    with mpmath.workdps(dps):
        e2 = phi2_moment(name, p, q, dps)
        assume(e2 > 0)
        sw = share * mpmath.mpf(q) / e2
        sb = mpmath.mpf(q) - sw * e2
        if sb < 0:
            sb = mpmath.mpf(0)
        assume(1e-30 < sw < 1e29)
        mu1 = dphi_moment(name, p, q, 2, dps)
        mu2 = dphi_moment(name, p, q, 4, dps)
        assume(mu1 > mpmath.mpf(10) ** -60)
        chi1 = sw * mu1
        init = Initialisation(name, sigma_w2=sw, sigma_b2=sb, params=p)
        v = R.mp_variance(name, p, sw, sb, q, dps)
        assert abs(v - q) < mpmath.mpf(10) ** (5 - digits) * q  # q* is a fixed point
    spec = jacobian_spectrum(init, q_star=q, depth=depth, digits=digits)
    assert isinstance(spec, JacobianSpectrum) and spec.depth == depth
    tol = mpmath.mpf(10) ** (5 - digits)
    with mpmath.workdps(dps):
        assert rel_close(spec.mu1, mu1, tol), (spec.mu1, mu1)
        assert rel_close(spec.mu2, mu2, tol), (spec.mu2, mu2)
        # chi_1^L: the relative error of chi_1 is multiplied by L
        want_mean = chi1 ** depth
        assert rel_close(spec.mean, want_mean, tol * depth), (spec.mean, want_mean)
        rel_var = depth * mu2 / mu1 ** 2
        assert rel_close(spec.relative_variance, rel_var, tol), (spec.relative_variance, rel_var)
        assert rel_close(spec.variance, want_mean ** 2 * rel_var, 3 * tol * depth)
        assert rel_close(spec.variance / spec.mean ** 2, rel_var, 3 * tol * depth)
    event(f"{name}, chi1 {'<' if chi1 < 1 else '>='} 1")


@pytest.mark.parametrize("alpha", ["-1", "-0.5", "0", "0.01", "0.3", "1"])
def test_leaky_relu_on_the_eoc_closed_form(alpha):
    """phi = max(x, alpha x), sigma_w2 = 2 / (1 + alpha^2), sigma_b2 = 0: V(q) = q, chi_1 = 1,
    mu1 = (1 + alpha^2) / 2, mu2 = (1 + alpha^4) / 2, so var = L 2 (1 + alpha^4) / (1 + alpha^2)^2."""
    with mpmath.workdps(40):
        a = mpmath.mpf(alpha)
        init = Initialisation("leaky_relu", sigma_w2=2 / (1 + a * a), sigma_b2=0, params={"alpha": alpha})
        for depth in (1, 7, 1000):
            spec = jacobian_spectrum(init, q_star="2.5", depth=depth, digits=30)
            want = depth * 2 * (1 + a ** 4) / (1 + a * a) ** 2
            assert abs(spec.mean - 1) < mpmath.mpf(10) ** -27 * depth
            assert rel_close(spec.variance, want, mpmath.mpf(10) ** -27 * depth), (spec.variance, want)


def test_linear_network_is_the_fuss_catalan_variance():
    """phi = x (ST with tau = 0): J is a product of L Ginibre matrices, whose squared
    singular values have mean sigma_w2^L and second moment (L + 1) sigma_w2^(2L)
    (Fuss-Catalan): variance L sigma_w2^(2L)."""
    init = Initialisation("st", sigma_w2="0.7", sigma_b2="0.2", params={"tau": 0})
    with mpmath.workdps(50):
        q_star = mpmath.mpf("0.2") / (1 - mpmath.mpf("0.7"))  # V(q) = 0.2 + 0.7 q
    for depth in (1, 2, 5, 40):
        spec = jacobian_spectrum(init, q_star=q_star, depth=depth, digits=30)
        with mpmath.workdps(40):
            sw = mpmath.mpf("0.7")
            assert rel_close(spec.mean, sw ** depth, mpmath.mpf(10) ** -28)
            assert rel_close(spec.variance, depth * sw ** (2 * depth), mpmath.mpf(10) ** -28)
            assert abs(spec.mu1 - 1) < 1e-28 and abs(spec.mu2 - 1) < 1e-28


# -- {0, 1}-valued derivatives on the EoC: variance L / P(phi' != 0) ---------------------------

@st.composite
def binary_derivative_eoc(draw):
    name = draw(st.sampled_from(["relu", "st", "crelu", "cst", "hard_tanh"]))
    q = draw(log_uniform(1e-3, 1e3))
    if name == "hard_tanh":
        return name, None, None, q
    lo = 0.5 if name in ("relu", "crelu") else 0.0
    s = draw(st.floats(lo, 0.99).map(tidy))
    vp = draw(st.floats(0.05, 0.95)) if name in ("crelu", "cst") else None
    return name, s, vp, q


@settings(max_examples=examples(30), deadline=None)
@given(cfg=binary_derivative_eoc(), depth=st.integers(1, 2000), digits=st.sampled_from([15, 30]))
def test_binary_derivative_on_the_eoc_variance_is_depth_over_active_fraction(cfg, depth, digits):
    name, s, vp, q = cfg
    try:
        if name == "hard_tanh":
            sol = eoc_parameters(name, q_star=q, digits=digits)
        else:
            sol = eoc_parameters(name, sparsity=s, q_star=q, v_prime=vp, digits=digits)
    except NoSolutionError:  # hard tanh: sigma_b2 < 0 for large q*
        event(f"{name}: no EoC")
        return
    p = {k: v for k, v in sol.init.params}
    spec = jacobian_spectrum(sol, depth=depth, digits=digits)
    tol = mpmath.mpf(10) ** (5 - digits) * depth
    with mpmath.workdps(digits + 12):
        frac = active_fraction(name, p, sol.q_star, digits + 12)
        if name in ("relu", "st"):
            assert abs(frac - (1 - mpmath.mpf(s))) < tol  # the sparsity is 1 - P(phi' != 0)
        assert abs(spec.mean - 1) < tol, spec.mean
        assert rel_close(spec.variance, depth / frac, tol), (spec.variance, depth / frac)
        assert rel_close(spec.mu1, frac, tol) and rel_close(spec.mu2, frac, tol)
    event(name)


@pytest.mark.parametrize("name, sparsities", [
    ("relu", ["0.5", "0.6", "0.7", "0.8", "0.9", "0.95", "0.99"]),
    ("st", ["0", "0.2", "0.5", "0.8", "0.9", "0.99"]),
])
def test_spread_grows_with_sparsity_on_the_eoc(name, sparsities):
    """ReLU_tau and ST_tau on the EoC: mean 1 and variance L / (1 - s), increasing in s."""
    depth = 10
    variances = []
    for s in sparsities:
        spec = jacobian_spectrum(eoc_parameters(name, sparsity=s, digits=20), depth=depth, digits=20)
        with mpmath.workdps(30):
            assert abs(spec.mean - 1) < 1e-18
            assert rel_close(spec.variance, depth / (1 - mpmath.mpf(s)), 1e-17), (s, spec.variance)
        variances.append(spec.variance)
    assert all(a < b for a, b in zip(variances, variances[1:])), variances


def test_explicit_q_star_overrides_the_solutions_own():
    """CST, s = 0.8, V' = 0.9 has a second stable fixed point q3 ~ 3.47 (located here by
    root-finding on the quadrature V): at q_star = q3 the mean is chi_1(q3)^L, not 1."""
    sol = eoc_parameters("cst", sparsity="0.8", v_prime="0.9", digits=30)
    p = dict(sol.init.params)
    with mpmath.workdps(40):
        f = lambda q: R.mp_variance("cst", p, sol.sigma_w2, sol.sigma_b2, q, 40) - q  # noqa: E731
        assert f(mpmath.mpf("2.5")) > 0 > f(mpmath.mpf(5))
        q3 = mpmath.findroot(f, (mpmath.mpf("2.5"), mpmath.mpf(5)), solver="anderson")
        chi1 = sol.sigma_w2 * dphi_moment("cst", p, q3, 2, 40)
    own = jacobian_spectrum(sol, depth=3)
    upper = jacobian_spectrum(sol, q_star=q3, depth=3)
    with mpmath.workdps(40):
        assert chi1 > 1 and rel_close(upper.mean, chi1 ** 3, 1e-27), (upper.mean, chi1 ** 3)
        assert rel_close(own.mean, 1, 1e-28)


@pytest.mark.parametrize("depth", [np.int64(7), np.int32(7)])
def test_numpy_integer_depth_is_accepted_like_digits(depth):
    """digits accepts numpy integers (check_digits); depth = np.int64(7) is an integer too,
    yet was rejected with 'depth must be an integer ... got np.int64(7)'."""
    sol = eoc_parameters("relu", sparsity="0.6", digits=15)
    spec = jacobian_spectrum(sol, depth=depth, digits=np.int64(15))
    assert spec.depth == 7 and abs(spec.variance - 7 / mpmath.mpf("0.4")) < 1e-12


def test_largest_depth_is_exact_without_overflow():
    init = Initialisation("hard_tanh", sigma_w2="1.8", sigma_b2="0.1")
    q = ht_fixed_point()
    for depth in (MAX_DEPTH - 1, MAX_DEPTH):
        spec = jacobian_spectrum(init, q_star=q, depth=depth, digits=20)
        with mpmath.workdps(40):
            mu1 = dphi_moment("hard_tanh", {}, q, 2, 40)  # = mu2 (phi' is 0 or 1)
            log_mean = depth * mpmath.log(mpmath.mpf("1.8") * mu1)  # ~ 1.9e4: mean ~ 10^8276
            assert abs(mpmath.log(spec.mean) - log_mean) < 1e-12 * log_mean
            log_var = 2 * log_mean + mpmath.log(depth) - mpmath.log(mu1)
            assert abs(mpmath.log(spec.variance) - log_var) < 1e-12 * log_mean
            assert mpmath.isfinite(spec.mean) and mpmath.isfinite(spec.variance)


# -- errors -------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("depth", [0, -1, 1.5, 2.0, True, False, MAX_DEPTH + 1, 10**9, "5", None, NAN, INF])
def test_bad_depth_raises_parameter_error(depth):
    sol = eoc_parameters("relu", sparsity="0.7", digits=15)
    with pytest.raises(ParameterError) as info:
        jacobian_spectrum(sol, depth=depth)
    msg = str(info.value)
    assert "depth" in msg and str(MAX_DEPTH) in msg, msg


@pytest.mark.parametrize("depth", [1, 2, MAX_DEPTH])
def test_depth_range_ends_are_accepted(depth):
    spec = jacobian_spectrum(eoc_parameters("relu", sparsity="0.6", digits=15), depth=depth, digits=15)
    assert spec.depth == depth and abs(spec.variance - depth / mpmath.mpf("0.4")) < 1e-10 * depth


STEP = Activation("step", (Piece(-sp.oo, 0, sp.Integer(0)), Piece(0, sp.oo, sp.Integer(1))))
JUMP_RELU = Activation("jump_relu", (Piece(-sp.oo, 0, sp.Integer(0)), Piece(0, sp.oo, x + 1)))
SHIFTED_SIGN = Activation("sign_plus_x", (Piece(-sp.oo, 1, x - 1), Piece(1, sp.oo, x + 1)))


@pytest.mark.parametrize("act", [STEP, JUMP_RELU, SHIFTED_SIGN])
def test_discontinuous_activation_raises(act):
    """phi with a jump: phi' has a Dirac mass and E[phi'^2] is infinite."""
    init = Initialisation(act, sigma_w2=1, sigma_b2="0.5")
    with pytest.raises(ParameterError, match="jump"):
        jacobian_spectrum(init, q_star=1, depth=3)


def test_phi_prime_vanishing_almost_surely_raises():
    const = Activation("const_two", (Piece(-sp.oo, sp.oo, sp.Integer(2)),))
    init = Initialisation(const, sigma_w2=1, sigma_b2=0)
    with pytest.raises(ParameterError, match="q_star"):
        jacobian_spectrum(init, q_star=4, depth=3)


@pytest.mark.parametrize("kw, word", [
    ({}, "q_star"),
    ({"q_star": 0}, "q_star"), ({"q_star": -1}, "q_star"), ({"q_star": NAN}, "q_star"),
    ({"q_star": INF}, "q_star"), ({"q_star": "abc"}, "q_star"), ({"q_star": 1e40}, "q_star"),
    ({"q_star": 1, "digits": 7}, "digits"), ({"q_star": 1, "digits": 1001}, "digits"),
    ({"q_star": 1, "digits": 20.0}, "digits"), ({"q_star": 1, "digits": True}, "digits"),
])
def test_bad_q_star_or_digits_raise_naming_the_parameter(kw, word):
    init = Initialisation("relu", sigma_w2=2, sigma_b2=0)
    with pytest.raises(ParameterError) as info:
        jacobian_spectrum(init, depth=3, **kw)
    assert word in str(info.value), str(info.value)


@pytest.mark.parametrize("bad", ["relu", None, 3, {"activation": "relu"}])
def test_non_initialisation_raises(bad):
    with pytest.raises(ParameterError):
        jacobian_spectrum(bad, q_star=1, depth=3)


@pytest.mark.parametrize("outer", [15, 40])
def test_precision_does_not_leak(outer):
    with mpmath.workdps(outer):
        jacobian_spectrum(eoc_parameters("crelu", sparsity="0.85", v_prime="0.5", digits=15),
                          depth=5, digits=50)
        assert mpmath.mp.dps == outer
        with pytest.raises(ParameterError):
            jacobian_spectrum(Initialisation(STEP, sigma_w2=1, sigma_b2=1), q_star=1, depth=2)
        assert mpmath.mp.dps == outer
    assert mpmath.mp.dps == 15


# -- Monte Carlo: random finite networks in numpy ------------------------------------------------

def np_activation(name, p):
    """(phi, phi') vectorized in numpy, from the definitions (Price et al. 2024, section 2)."""
    tau, m = float(p.get("tau", 0.0)), p.get("m")
    m = None if m is None else float(m)
    if name == "relu":
        return (lambda h: np.maximum(h - tau, 0.0)), (lambda h: (h > tau).astype(float))
    if name == "crelu":
        return ((lambda h: np.clip(h - tau, 0.0, m)),
                (lambda h: ((h > tau) & (h < tau + m)).astype(float)))
    if name == "cst":
        return ((lambda h: np.sign(h) * np.clip(np.abs(h) - tau, 0.0, m)),
                (lambda h: ((np.abs(h) > tau) & (np.abs(h) < tau + m)).astype(float)))
    if name == "hard_tanh":
        return (lambda h: np.clip(h, -1.0, 1.0)), (lambda h: (np.abs(h) < 1.0).astype(float))
    raise KeyError(name)


def simulate(name, p, sigma_w2, sigma_b2, q_star, width, depth, networks, seed):
    """Per network: (tr(JJ^T)/N, tr((JJ^T)^2)/N - (tr(JJ^T)/N)^2) for
    J = W_L D_{L-1} ... W_1 D_0, W_l ~ N(0, sigma_w2/N), b_l ~ N(0, sigma_b2),
    h_0 ~ N(0, q*) i.i.d., h_{l+1} = W_{l+1} phi(h_l) + b_{l+1}, D_l = diag(phi'(h_l)).
    The forward pass is float64; the N x N products are float32 (their rounding, ~1e-7
    relative, is far below the statistical errors), the traces are summed in float64."""
    phi, dphi = np_activation(name, p)
    rng = np.random.default_rng(seed)
    n = width
    sd_w, sd_b, sd_h = math.sqrt(sigma_w2 / n), math.sqrt(sigma_b2), math.sqrt(q_star)
    out = np.empty((networks, 2))
    for k in range(networks):
        h = sd_h * rng.standard_normal(n)
        jac = None
        for layer in range(depth):
            w = rng.standard_normal((n, n))
            w *= sd_w
            d = dphi(h).astype(np.float32)
            w32 = w.astype(np.float32)
            jac = w32 * d[None, :] if jac is None else w32 @ (d[:, None] * jac)
            if layer < depth - 1:
                h = w @ phi(h) + sd_b * rng.standard_normal(n)
        m1 = float(np.einsum("ij,ij->", jac, jac, dtype=np.float64)) / n
        gram = jac @ jac.T
        m2 = float(np.einsum("ij,ij->", gram, gram, dtype=np.float64)) / n
        out[k] = m1, m2 - m1 * m1
    return out


def ht_fixed_point():
    """The fixed point of hard tanh with sigma_w2 = 1.8, sigma_b2 = 0.1, by bisection on the
    quadrature V (V - q changes sign once on [0.5, 2])."""
    with mpmath.workdps(40):
        f = lambda q: R.mp_variance("hard_tanh", {}, "1.8", "0.1", q, 40) - q  # noqa: E731
        assert f(mpmath.mpf("0.5")) > 0 > f(mpmath.mpf(2))
        return mpmath.findroot(f, (mpmath.mpf("0.5"), mpmath.mpf(2)), solver="anderson")


def mc_config(tag):
    """(name, params, sigma_w2, sigma_b2, q*, an argument for jacobian_spectrum)."""
    if tag == "hard_tanh":
        init = Initialisation("hard_tanh", sigma_w2="1.8", sigma_b2="0.1")
        q = ht_fixed_point()
        return "hard_tanh", {}, 1.8, 0.1, float(q), init, q
    name, s, vp = tag
    sol = eoc_parameters(name, sparsity=s, v_prime=vp, digits=20)
    p = {k: float(v) for k, v in sol.init.params}
    return name, p, float(sol.sigma_w2), float(sol.sigma_b2), float(sol.q_star), sol, None


MC_WIDTH, MC_NETWORKS = 1000, 24


@pytest.mark.parametrize("tag, depth, seed", [
    (("relu", "0.5", None), 3, 101),      # ReLU baseline (sigma_b2 = 0, V(q) = q)
    (("cst", "0.6", "0.7"), 3, 102),
    ("hard_tanh", 4, 103),                # off the EoC: chi_1 = 1.21, mean 2.14
    (("crelu", "0.85", "0.5"), 3, 104),   # sparse: P(phi' != 0) = 0.118
])
def test_moments_agree_with_monte_carlo_of_finite_networks(tag, depth, seed):
    name, p, sw, sb, q, arg, q_arg = mc_config(tag)
    spec = jacobian_spectrum(arg, q_star=q_arg, depth=depth, digits=20)
    theory = np.array([float(spec.mean), float(spec.variance)])
    runs = simulate(name, p, sw, sb, q, MC_WIDTH, depth, MC_NETWORKS, seed)
    estimate = runs.mean(axis=0)
    se = runs.std(axis=0, ddof=1) / math.sqrt(MC_NETWORKS)
    z = (estimate - theory) / se
    # the standard errors are what the docstring's bias budget assumes (k / sqrt(N n))
    assert np.all(se < 0.1 * theory), (se, theory)
    assert np.all(np.abs(z) <= 3), (
        f"theory (mean, var) = {theory}, Monte Carlo = {estimate} +- {se} (z = {z})")
