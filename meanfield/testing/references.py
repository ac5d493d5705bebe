"""Independent reference evaluations of the mean-field maps, for checking the library (the
suite's tests and :func:`meanfield.testing.verify` use them).

Nothing here imports :mod:`meanfield`. Each activation is written from its definition
(Price et al. 2024, section 2) as ``phi``, ``dphi`` (slope 1 on linear parts, 0 on flat
ones, alpha on the negative leaky part) and its kinks. From those:

- ``mp_*``: arbitrary precision by ``mpmath.quad`` of the N(0, 1) integral in
  ``z = x / sqrt(q)``, split at the kinks (the integrand is smooth on each piece), with the
  quadrature's own error estimate asserted small;
  V(q) = sigma_b2 + sigma_w2 E[phi(sqrt(q) z)^2],
  V'(q) = sigma_w2 / sqrt(q) E[phi(sqrt(q) z) phi'(sqrt(q) z) z] (differentiation under the
  integral; every phi here is continuous), chi_1(q) = sigma_w2 E[phi'(sqrt(q) z)^2].
- ``f64_*``: vectorized float64 closed forms for the dense scans. On each piece phi is
  affine, phi = a x + b (a = phi' and b = phi - a x at an interior point), and
  E[(A z + B)^2; alpha < z < beta] needs only the Gaussian moments I0, I1, I2 below.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
from scipy.special import ndtr

INF = math.inf


# -- activations from their definitions ------------------------------------------------

def activation(name: str, p: dict):
    """(phi, dphi, kinks) of a built-in activation; p holds tau, m, alpha as needed."""
    tau, m, alpha = p.get("tau", 0), p.get("m", None), p.get("alpha", 0.01)
    if name == "relu0":
        return (lambda x: max(x, 0)), (lambda x: 1 if x > 0 else 0), [0]
    if name == "relu":
        return (lambda x: max(x - tau, 0)), (lambda x: 1 if x > tau else 0), [tau]
    if name == "st":
        return ((lambda x: (1 if x > 0 else -1) * max(abs(x) - tau, 0)),
                (lambda x: 1 if abs(x) > tau else 0), [-tau, tau])
    if name == "crelu":
        return ((lambda x: min(max(x - tau, 0), m)),
                (lambda x: 1 if tau < x < tau + m else 0), [tau, tau + m])
    if name == "cst":
        return ((lambda x: (1 if x > 0 else -1) * min(max(abs(x) - tau, 0), m)),
                (lambda x: 1 if tau < abs(x) < tau + m else 0), [-tau - m, -tau, tau, tau + m])
    if name == "hard_tanh":
        return (lambda x: max(-1, min(x, 1))), (lambda x: 1 if abs(x) < 1 else 0), [-1, 1]
    if name == "leaky_relu":
        return (lambda x: max(x, alpha * x)), (lambda x: 1 if x > 0 else alpha), [0]
    raise KeyError(name)


def affine_pieces(name: str, p: dict):
    """[(lo, hi, a, b)] in float64 with phi(x) = a x + b on (lo, hi), read off phi, phi'."""
    phi, dphi, kinks = activation(name, p)
    ks = sorted(set(float(k) for k in kinks))
    ends = [-INF] + ks + [INF]
    out = []
    for lo, hi in zip(ends, ends[1:]):
        mid = hi - 1.0 if lo == -INF else lo + 1.0 if hi == INF else (lo + hi) / 2
        a = float(dphi(mid))
        b = float(phi(mid)) - a * mid
        out.append((lo, hi, a, b))
    return out


# -- arbitrary precision by quadrature -------------------------------------------------

def _quad(f, pts, dps):
    val, err = mpmath.quad(f, pts, error=True)
    assert err <= mpmath.mpf(10) ** (-(dps - 8)) * max(1, abs(val)), (val, err)
    return val


#: Extra breakpoints in z: the Gaussian weight lives in |z| < 10, and tanh-sinh on a long
#: finite piece (a kink far out, e.g. hard tanh at small q) can miss it entirely.
Z_SPLITS = (-12, -6, -3, -1, 0, 1, 3, 6, 12)


def _points(kinks, r):
    inner = sorted(set([mpmath.mpf(k) / r for k in kinks] + [mpmath.mpf(z) for z in Z_SPLITS]))
    return [-mpmath.inf] + inner + [mpmath.inf]


def _setup(name, p, q):
    """phi, phi', the split points in z and sqrt(q), at the current working precision."""
    phi, dphi, kinks = activation(name, {k: mpmath.mpf(v) for k, v in p.items()})
    r = mpmath.sqrt(mpmath.mpf(q))
    return phi, dphi, _points(kinks, r), r


def mp_maps(name, p, sigma_w2, sigma_b2, q, dps):
    """(V(q), V'(q), chi_1(q)) by mpmath.quad at ``dps`` working digits."""
    with mpmath.workdps(dps):
        phi, dphi, pts, r = _setup(name, p, q)
        sw, sb = mpmath.mpf(sigma_w2), mpmath.mpf(sigma_b2)
        e2 = _quad(lambda z: phi(r * z) ** 2 * mpmath.npdf(z), pts, dps)
        e1 = _quad(lambda z: phi(r * z) * dphi(r * z) * z * mpmath.npdf(z), pts, dps)
        ed = _quad(lambda z: dphi(r * z) ** 2 * mpmath.npdf(z), pts, dps)
        return +(sb + sw * e2), +(sw * e1 / r), +(sw * ed)


def mp_variance(name, p, sigma_w2, sigma_b2, q, dps):
    """V(q) alone (one quadrature instead of three)."""
    with mpmath.workdps(dps):
        phi, _, pts, r = _setup(name, p, q)
        e2 = _quad(lambda z: phi(r * z) ** 2 * mpmath.npdf(z), pts, dps)
        return +(mpmath.mpf(sigma_b2) + mpmath.mpf(sigma_w2) * e2)


def mp_moment(name, p, q, power, dps):
    """E[phi(sqrt(q) z)^power] for z ~ N(0, 1) by mpmath.quad at ``dps`` working digits
    (certified to about 10^-(dps - 8), absolute for a small moment)."""
    with mpmath.workdps(dps):
        phi, _, pts, r = _setup(name, p, q)
        return _quad(lambda z: phi(r * z) ** power * mpmath.npdf(z), pts, dps)


def mp_v_second(name, p, sigma_w2, sigma_b2, q, dps):
    """V''(q) by a central difference of the quadrature V' (for its sign and size)."""
    with mpmath.workdps(dps):
        q = mpmath.mpf(q)
        h = q * mpmath.mpf(10) ** (-max(6, dps // 4))
        up = mp_maps(name, p, sigma_w2, sigma_b2, q + h, dps)[1]
        dn = mp_maps(name, p, sigma_w2, sigma_b2, q - h, dps)[1]
        return (up - dn) / (2 * h)


# -- float64 closed forms for dense scans ------------------------------------------------

def _npdf(v):
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.exp(-0.5 * v * v) / math.sqrt(2 * math.pi)
    return np.where(np.isinf(v), 0.0, out)


def _vphi(v):  # v * pdf(v), 0 at +-inf
    with np.errstate(invalid="ignore", over="ignore"):
        out = v * _npdf(v)
    return np.where(np.isinf(v), 0.0, out)


def _mass(al, be):  # P(al < z < be) without cancellation in either tail
    return np.where(al >= 0, ndtr(-al) - ndtr(-be), ndtr(be) - ndtr(al))


def f64_maps(name, p, sigma_w2, sigma_b2, q):
    """(V(q), V'(q)) on an array of q, float64, from the affine pieces."""
    q = np.asarray(q, dtype=float)
    r = np.sqrt(q)
    e2 = np.zeros_like(q)
    e1 = np.zeros_like(q)
    for lo, hi, a, b in affine_pieces(name, p):
        al = np.full_like(q, -INF) if lo == -INF else lo / r
        be = np.full_like(q, INF) if hi == INF else hi / r
        i0 = _mass(al, be)
        i1 = _npdf(al) - _npdf(be)
        i2 = i0 + _vphi(al) - _vphi(be)
        big_a = a * r
        e2 += big_a**2 * i2 + 2 * big_a * b * i1 + b * b * i0
        e1 += a * (a * i2 + b * i1 / r)
    return sigma_b2 + sigma_w2 * e2, sigma_w2 * e1


def resolved_signs(name, p, sigma_w2, sigma_b2, q, rel=1e-11):
    """sign(V(q) - q) where float64 resolves it (|V - q| > rel * max(q, V)), else 0."""
    v, _ = f64_maps(name, p, sigma_w2, sigma_b2, q)
    f = v - q
    return np.where(np.abs(f) > rel * np.maximum(q, np.abs(v)), np.sign(f), 0.0)


def sign_change_intervals(q, signs):
    """[(q_i, q_j)] between consecutive resolved (nonzero) signs that differ."""
    idx = np.flatnonzero(signs)
    out = []
    for i, j in zip(idx, idx[1:]):
        if signs[i] != signs[j]:
            out.append((q[i], q[j], signs[i]))
    return out


# -- the dense-scan comparison used by both test files ------------------------------------

def check_against_scan(report, name, p, sigma_w2, sigma_b2, per_decade=600):
    """Compare a FixedPointReport with an independent float64 scan of sign(V(q) - q).

    The grid runs a decade beyond the reported search range (below it only when
    sigma_b2 > 0, where V(q) >= sigma_b2 > q rules roots out; the range above only when the
    report is certified). Asserts that every resolved sign change brackets a reported
    point of the matching kind (+ to -: stable, - to +: unstable), that every reported
    point is a float64 root whose kind agrees with sign(V'(q) - 1), and that the sign of
    V(q) - q above the range agrees with ``large_q``. Returns the sign-change intervals.
    """
    q_lo, q_hi = (float(v) for v in report.search_range)
    lo = q_lo / 10 if sigma_b2 > 0 else q_lo
    hi = q_hi * 10 if report.certified else q_hi
    n = int(per_decade * math.log10(hi / lo)) + 200
    grid = np.geomspace(lo, hi, n)
    pts = [(float(pt.q), pt) for pt in report.points]
    for q in pts:
        grid = np.append(grid, [q[0] * (1 - 1e-7), q[0] * (1 + 1e-7)])
    grid = np.unique(grid)
    signs = resolved_signs(name, p, sigma_w2, sigma_b2, grid)
    changes = sign_change_intervals(grid, signs)
    for a, b, s_left in changes:
        want = "stable" if s_left > 0 else "unstable"
        inside = [pt for q, pt in pts if a * (1 - 1e-12) <= q <= b * (1 + 1e-12)]
        assert any(pt.kind == want for pt in inside), (
            f"sign change of V(q) - q in [{a!r}, {b!r}] ({'+ to -' if s_left > 0 else '- to +'}) "
            f"but reported points are {[(q, pt.kind) for q, pt in pts]}")
    for q, pt in pts:
        assert q_lo * (1 - 1e-12) <= q <= q_hi * (1 + 1e-12), (q, report.search_range)
        v, vp = (float(t[0]) for t in f64_maps(name, p, sigma_w2, sigma_b2, np.array([q])))
        assert abs(v - q) <= 1e-9 * max(q, abs(v)), f"reported q = {q!r} but V(q) = {v!r}"
        if pt.kind == "half-stable":
            assert abs(vp - 1) < 1e-6, f"half-stable q = {q!r} but V'(q) = {vp!r}"
        elif abs(vp - 1) > 1e-6:
            assert pt.kind == ("stable" if vp < 1 else "unstable"), (q, pt.kind, vp)
    if report.certified and report.large_q in ("diverges", "bounded"):
        above = signs[grid > q_hi * (1 + 1e-9)]
        above = above[above != 0]
        assert above.size > 0
        expect = 1.0 if report.large_q == "diverges" else -1.0
        assert np.all(above == expect), f"large_q = {report.large_q} but V(q) - q changes sign above q_hi"
    return changes
