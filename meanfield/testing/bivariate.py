"""Independent references for the kernel map E[phi(u1) phi(u2)], for the tests.

Nothing here imports :mod:`meanfield`. The activations come from ``_reference.activation``
(written from their definitions); every built-in is piecewise affine, so on each piece
(lo, hi) phi(x) = a x + b with a = phi'(mid), b = phi(mid) - a mid, read off phi and phi'
(and checked at a second point).

The pair is written with two independent standard normals z1, z2:

    u1 = s1 z1,   u2 = s2 (c z1 + r z2),   s_i = sqrt(q_i),  r = sqrt(1 - c^2),

so that E[phi(u1) phi(u2)] = int npdf(z1) phi(s1 z1) G(z1) dz1 with the conditional mean
G(z1) = int npdf(z2) phi(s2 (c z1 + r z2)) dz2. For fixed z1 the inner integrand has its
kinks where the conditional argument crosses a breakpoint b: z2 = (b / s2 - c z1) / r.
As a function of z1, G changes fast (on the scale sigma = r / |c|) around the crossing
points z1 = b / (c s2), so the outer integral is split and refined there too.

- :func:`kernel_2d`: a genuine two-dimensional quadrature. Both integrals are
  Gauss-Legendre (nodes computed here by Newton's method on the Legendre recurrence) on
  panels of width <= 1 in the Gaussian variable (<= sigma near the crossings), split at
  every kink. The inner rule on whole unit cells is the same for every z1, so its sums
  (of npdf and z npdf) are formed once and reused; cells cut by a moving kink get their
  own nodes. The plane is truncated to the square |z1|, |z2| <= Z where the normal mass
  outside is below 10^-(dps + 4) of the smallest scale of phi.
- :func:`kernel_conditional`: the same outer integral by ``mpmath.quad`` (tanh-sinh, with
  its error estimate asserted), the inner one in closed form from the normal cdf/pdf:
  int_g^d (A + B z) npdf(z) dz = A (Phi(d) - Phi(g)) + B (npdf(g) - npdf(d)). Cheap at
  high precision: the reference for mpmath.diff.
- :func:`kernel_diagonal`: c = +-1, where u2 = +-sqrt(q2 / q1) u1: a one-dimensional
  ``mpmath.quad`` of phi(s1 z) phi(+-s2 z) npdf(z), split at every kink of both factors.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.special import ndtr

import mpmath
from mpmath import mpf

from . import references as R

__all__ = ["affine_pieces", "slope_jumps", "gauss_legendre", "kernel_2d", "kernel_conditional",
           "kernel_diagonal", "derivative_diagonal", "second_moment", "cauchy_schwarz_scale",
           "rho_reference", "arccos_kernel", "kernel_f64", "rho_f64"]


# -- the activation as affine pieces ---------------------------------------------------

def affine_pieces(name: str, p: dict):
    """[(lo, hi, a, b)] at the current precision, phi(x) = a x + b on (lo, hi)."""
    phi, dphi, kinks = R.activation(name, {k: mpf(v) for k, v in p.items()})
    ks = sorted(set(mpf(k) for k in kinks))
    ends = [mpmath.ninf, *ks, mpmath.inf]
    out = []
    for lo, hi in zip(ends, ends[1:]):
        if lo == hi:
            continue
        if mpmath.isinf(lo) and mpmath.isinf(hi):
            t1, t2 = mpf(-1), mpf(1)
        elif mpmath.isinf(lo):
            t1, t2 = hi - 1, hi - 2
        elif mpmath.isinf(hi):
            t1, t2 = lo + 1, lo + 2
        else:
            t1, t2 = lo + (hi - lo) / 3, lo + 2 * (hi - lo) / 3
        a = mpf(dphi(t1))
        b = mpf(phi(t1)) - a * t1
        assert abs(mpf(phi(t2)) - (a * t2 + b)) <= 100 * mpmath.eps * (1 + abs(t2) + abs(b)), \
            f"{name} is not affine on ({lo}, {hi})"
        out.append((lo, hi, a, b))
    return out


def _nonzero(pieces):
    return [pc for pc in pieces if pc[2] != 0 or pc[3] != 0]


def _reach(pieces, s):
    """|z| below which phi(s z) vanishes identically (0 if it does not vanish near 0)."""
    dist = []
    for lo, hi, _, _ in _nonzero(pieces):
        if lo <= 0 <= hi:
            return mpf(0)
        dist.append(lo if lo > 0 else -hi)
    return min(dist) / s


def _cutoff(pieces, s1, s2, dps):
    """Z: outside |z| <= Z the normal mass is < 10^-(dps + 4) of phi's own scale."""
    t = max(_reach(pieces, s1), _reach(pieces, s2))
    return int(mpmath.ceil(mpmath.sqrt(2 * mpmath.log(10) * (dps + 4) + t * t)))


# -- Gauss-Legendre ------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def gauss_legendre(n: int, dps: int):
    """(nodes, weights) of the n-point Gauss-Legendre rule on [-1, 1], to dps digits."""
    with mpmath.workdps(dps + 15):
        tol = mpf(10) ** (-(dps + 12))
        xs, ws = [], []
        for i in range(1, n + 1):
            x = mpmath.cos(mpmath.pi * (i - mpf(1) / 4) / (n + mpf(1) / 2))
            for _ in range(100):
                p0, p1 = mpf(1), x
                for k in range(2, n + 1):
                    p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
                dp = n * (x * p1 - p0) / (x * x - 1)
                step = p1 / dp
                x -= step
                if abs(step) < tol:
                    break
            p0, p1 = mpf(1), x
            for k in range(2, n + 1):
                p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
            dp = n * (x * p1 - p0) / (x * x - 1)
            xs.append(x)
            ws.append(2 / ((1 - x * x) * dp * dp))
        assert abs(mpmath.fsum(ws) - 2) < tol * 100
    return tuple(xs), tuple(ws)


class _Rule:
    def __init__(self, n, dps):
        self.xs, self.ws = gauss_legendre(n, dps)

    def apply(self, f, a, b):
        """sum of w_i f(x_i) over [a, b] (f of the node)."""
        h, m = (b - a) / 2, (a + b) / 2
        return h * mpmath.fsum(w * f(m + h * x) for x, w in zip(self.xs, self.ws))

    def moments(self, a, b):
        """(int_a^b npdf, int_a^b z npdf) by the rule."""
        h, m = (b - a) / 2, (a + b) / 2
        s0 = s1 = mpf(0)
        for x, w in zip(self.xs, self.ws):
            z = m + h * x
            g = w * mpmath.npdf(z)
            s0 += g
            s1 += g * z
        return h * s0, h * s1


class _InnerMoments:
    """F_k(t) = int_{-Z}^t z^k npdf(z) dz (k = 0, 1) by Gauss-Legendre: whole unit cells
    [j, j + 1] from prefix sums (formed once), the last part cell by its own nodes."""

    def __init__(self, rule: _Rule, Z: int):
        self.rule, self.Z = rule, Z
        self.prefix = {-Z: (mpf(0), mpf(0))}
        p0 = p1 = mpf(0)
        for j in range(-Z, Z):
            m0, m1 = rule.moments(mpf(j), mpf(j + 1))
            p0, p1 = p0 + m0, p1 + m1
            self.prefix[j + 1] = (p0, p1)

    def __call__(self, t):
        Z = self.Z
        if t <= -Z:
            return self.prefix[-Z]
        if t >= Z:
            return self.prefix[Z]
        j = int(mpmath.floor(t))
        p0, p1 = self.prefix[j]
        if t == j:
            return p0, p1
        m0, m1 = self.rule.moments(mpf(j), t)
        return p0 + m0, p1 + m1


def _outer_panels(lo, hi, crossings, sigma):
    """[lo, hi] cut into panels: at every integer, and around each crossing point x0 at
    x0 + k sigma (|k| <= 6) and x0 + 2 k sigma (6 < |k| <= 12) when sigma < 1."""
    cuts = {lo, hi}
    for j in range(int(mpmath.ceil(lo)), int(mpmath.floor(hi)) + 1):
        cuts.add(mpf(j))
    if sigma is not None and sigma < 1:
        for x0 in crossings:
            for k in list(range(-6, 7)) + [k for k in range(-12, 13, 2) if abs(k) > 6]:
                x = x0 + k * sigma
                if lo < x < hi:
                    cuts.add(x)
    cuts = sorted(cuts)
    return list(zip(cuts, cuts[1:]))


# -- the conditional mean G(z1) --------------------------------------------------------

def _setup(name, p, q1, q2, c):
    q1, q2, c = mpf(q1), mpf(q2), mpf(c)
    pieces = affine_pieces(name, p)
    s1, s2 = mpmath.sqrt(q1), mpmath.sqrt(q2)
    r = mpmath.sqrt((1 - c) * (1 + c))
    return pieces, s1, s2, c, r


def _conditional_mean(pieces, s2, c, r, z1, moments):
    """G(z1) = E[phi(s2 (c z1 + r z2))] from the moments (F0, F1) of each piece's z2-range."""
    total = mpf(0)
    cache = {}

    def at(t):
        if t not in cache:
            cache[t] = moments(t)
        return cache[t]

    centre = c * z1
    for lo, hi, a, b in _nonzero(pieces):
        g = mpmath.ninf if mpmath.isinf(lo) else (lo / s2 - centre) / r
        d = mpmath.inf if mpmath.isinf(hi) else (hi / s2 - centre) / r
        (g0, g1), (d0, d1) = at(g), at(d)
        big_a = a * s2 * centre + b
        big_b = a * s2 * r
        total += big_a * (d0 - g0) + big_b * (d1 - g1)
    return total


def _closed_conditional_mean(pieces, s2, c, r, z1):
    """G(z1) with the inner integral in closed form; Phi(d) - Phi(g) taken in the tail it
    lies in (no cancellation of two numbers near 1)."""
    total = mpf(0)
    centre = c * z1
    for lo, hi, a, b in _nonzero(pieces):
        g = mpmath.ninf if mpmath.isinf(lo) else (lo / s2 - centre) / r
        d = mpmath.inf if mpmath.isinf(hi) else (hi / s2 - centre) / r
        if g >= 0:
            mass = mpmath.ncdf(-g) - mpmath.ncdf(-d)
        else:
            mass = mpmath.ncdf(d) - mpmath.ncdf(g)
        first = ((0 if mpmath.isinf(g) else mpmath.npdf(g))
                 - (0 if mpmath.isinf(d) else mpmath.npdf(d)))
        total += (a * s2 * centre + b) * mass + a * s2 * r * first
    return total


def _outer_structure(pieces, s1, s2, c, r, Z):
    """The nonzero pieces of phi(s1 z1) as z1-intervals in [-Z, Z], the crossing points and
    their scale sigma = r / |c| (None for c = 0: G is then constant)."""
    spans = []
    for lo, hi, a, b in _nonzero(pieces):
        zl = max(-Z, lo / s1) if not mpmath.isinf(lo) else mpf(-Z)
        zh = min(Z, hi / s1) if not mpmath.isinf(hi) else mpf(Z)
        if zl < zh:
            spans.append((zl, zh, a, b))
    if c == 0:
        return spans, [], None
    crossings = sorted({k / (c * s2) for lo, hi, _, _ in pieces for k in (lo, hi)
                        if not mpmath.isinf(k)})
    return spans, crossings, r / abs(c)


# -- the references -------------------------------------------------------------------------

def kernel_2d(name, p, q1, q2, c, dps=34, n=16):
    """E[phi(u1) phi(u2)] by two-dimensional Gauss-Legendre quadrature (module docstring),
    |c| < 1, at ``dps`` working digits (about dps - 2 correct digits of the Cauchy-Schwarz
    scale with the default n = 16)."""
    with mpmath.workdps(dps):
        pieces, s1, s2, c, r = _setup(name, p, q1, q2, c)
        assert r > 0, "kernel_2d needs |c| < 1"
        Z = _cutoff(pieces, s1, s2, dps)
        rule = _Rule(n, dps)
        moments = _InnerMoments(rule, Z)
        spans, crossings, sigma = _outer_structure(pieces, s1, s2, c, r, Z)
        total = mpf(0)
        for zl, zh, a, b in spans:
            def f(z1, a=a, b=b):
                return (a * s1 * z1 + b) * mpmath.npdf(z1) * _conditional_mean(
                    pieces, s2, c, r, z1, moments)
            for lo, hi in _outer_panels(zl, zh, crossings, sigma):
                total += rule.apply(f, lo, hi)
        return +total


def kernel_conditional(name, p, q1, q2, c, dps=50, n=32, check=False):
    """E[phi(u1) phi(u2)] for |c| < 1: the outer integral by Gauss-Legendre on the panels
    of :func:`kernel_2d` (n nodes each), the inner one in closed form (module docstring).
    ``check``: also with n + 8 nodes, and assert the two agree to 10^(6 - dps)."""
    with mpmath.workdps(dps):
        pieces, s1, s2, c, r = _setup(name, p, q1, q2, c)
        assert r > 0, "kernel_conditional needs |c| < 1"
        Z = _cutoff(pieces, s1, s2, dps)
        spans, crossings, sigma = _outer_structure(pieces, s1, s2, c, r, Z)
        results = []
        for nodes in ((n, n + 8) if check else (n,)):
            rule = _Rule(nodes, dps)
            total = mpf(0)
            for zl, zh, a, b in spans:
                def f(z1, a=a, b=b):
                    return (a * s1 * z1 + b) * mpmath.npdf(z1) * _closed_conditional_mean(
                        pieces, s2, c, r, z1)
                for lo, hi in _outer_panels(zl, zh, crossings, sigma):
                    total += rule.apply(f, lo, hi)
            results.append(total)
        if check:
            scale = mpmath.sqrt(second_moment(pieces, s1, dps) * second_moment(pieces, s2, dps))
            assert abs(results[0] - results[1]) <= mpf(10) ** (6 - dps) * scale, results
        return +results[0]


def _diagonal_points(pieces, scales, Z):
    pts = {mpf(-Z), mpf(Z)} | {mpf(k) for k in R.Z_SPLITS if abs(k) < Z}
    for lo, hi, _, _ in pieces:
        for k in (lo, hi):
            if not mpmath.isinf(k):
                for s in scales:
                    if abs(k / s) < Z:
                        pts.add(k / s)
    return sorted(pts)


def kernel_diagonal(name, p, q1, q2, sign, dps=40):
    """E[phi(s1 z) phi(sign s2 z)], z ~ N(0, 1): the kernel at c = sign = +-1."""
    with mpmath.workdps(dps):
        pieces = affine_pieces(name, p)
        phi = R.activation(name, {k: mpf(v) for k, v in p.items()})[0]
        s1, s2 = mpmath.sqrt(mpf(q1)), mpmath.sqrt(mpf(q2))
        Z = _cutoff(pieces, s1, s2, dps)
        pts = _diagonal_points(pieces, (s1, s2), Z)
        value, err = mpmath.quad(lambda z: phi(s1 * z) * phi(sign * s2 * z) * mpmath.npdf(z),
                                 pts, error=True)
        scale = mpmath.sqrt(second_moment(pieces, s1, dps) * second_moment(pieces, s2, dps))
        assert err <= mpf(10) ** (6 - dps) * scale, (value, err)
        return +value


def derivative_diagonal(name, p, q1, q2, sign, dps=40):
    """E[phi'(s1 z) phi'(sign s2 z)]: by Price's theorem (Stein's lemma) dK/dc at c = sign,
    for a continuous phi (phi' bounded, its jumps a null set)."""
    with mpmath.workdps(dps):
        pieces = affine_pieces(name, p)
        s1, s2 = mpmath.sqrt(mpf(q1)), mpmath.sqrt(mpf(q2))

        def slope(x):
            for lo, hi, a, _ in pieces:
                if lo < x < hi:
                    return a
            return mpf(0)  # a kink: a null set, never a quadrature node of a split rule
        Z = _cutoff(pieces, s1, s2, dps)
        pts = _diagonal_points(pieces, (s1, s2), Z)
        value, err = mpmath.quad(lambda z: slope(s1 * z) * slope(sign * s2 * z) * mpmath.npdf(z),
                                 pts, error=True)
        assert err <= mpf(10) ** (6 - dps), (value, err)
        return +value


def slope_jumps(name, p):
    """[(b, jump of phi' at b)] for the kinks where phi' does jump (phi continuous there):
    phi'' has the Dirac mass jump * delta_b."""
    out = []
    pieces = affine_pieces(name, p)
    for (lo, hi, a, b), (lo2, hi2, a2, b2) in zip(pieces, pieces[1:]):
        assert abs((a * hi + b) - (a2 * hi + b2)) <= 100 * mpmath.eps * (1 + abs(hi)), "phi jumps"
        if a2 != a:
            out.append((hi, a2 - a))
    return out


def second_moment(pieces, s, dps):
    """E[phi(s z)^2] (1-D quadrature, split at the kinks): the Cauchy-Schwarz scale."""
    with mpmath.workdps(dps):
        Z = _cutoff(pieces, s, s, dps)
        pts = _diagonal_points(pieces, (s,), Z)

        def f(z):
            x = s * z
            for lo, hi, a, b in pieces:
                if lo <= x <= hi:
                    return (a * x + b) ** 2 * mpmath.npdf(z)
            raise AssertionError(x)
        return +mpmath.quad(f, pts)


def cauchy_schwarz_scale(name, p, q1, q2, dps=40):
    """sqrt(E[phi(u1)^2] E[phi(u2)^2]), the natural size of E[phi(u1) phi(u2)]."""
    with mpmath.workdps(dps):
        pieces = affine_pieces(name, p)
        return +mpmath.sqrt(second_moment(pieces, mpmath.sqrt(mpf(q1)), dps)
                            * second_moment(pieces, mpmath.sqrt(mpf(q2)), dps))


def rho_reference(name, p, sigma_w2, sigma_b2, q_star, c, dps=40, n=24):
    """rho(c) = (sigma_b2 + sigma_w2 K(c)) / q* with K by :func:`kernel_conditional` (or
    :func:`kernel_diagonal` at c = +-1), q1 = q2 = q*."""
    with mpmath.workdps(dps):
        c = mpf(c)
        if abs(c) == 1:
            k = kernel_diagonal(name, p, q_star, q_star, int(c), dps)
        else:
            k = kernel_conditional(name, p, q_star, q_star, c, dps, n)
        return +((mpf(sigma_b2) + mpf(sigma_w2) * k) / mpf(q_star))


def arccos_kernel(q1, q2, c):
    """E[relu(u1) relu(u2)] (Cho and Saul 2009, degree 1), at the current precision."""
    q1, q2, c = mpf(q1), mpf(q2), mpf(c)
    theta = mpmath.acos(c)
    return mpmath.sqrt(q1 * q2) / (2 * mpmath.pi) * (
        mpmath.sqrt((1 - c) * (1 + c)) + (mpmath.pi - theta) * c)



# -- float64, for dense scans ----------------------------------------------------------------

_F64_NODES = np.polynomial.legendre.leggauss(20)


def _f64_npdf(v):
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.exp(-0.5 * v * v) / math.sqrt(2 * math.pi)
    return np.where(np.isinf(v), 0.0, out)


def _f64_cutoff(pieces, s1, s2):
    def reach(s):
        dist = []
        for lo, hi, a, b in pieces:
            if a == 0 and b == 0:
                continue
            if lo <= 0 <= hi:
                return 0.0
            dist.append(lo if lo > 0 else -hi)
        return min(dist) / s
    t = max(reach(s1), reach(s2))
    return math.ceil(math.sqrt(2 * math.log(10) * 20 + t * t))


def _f64_panels(lo, hi, crossings, sigma):
    cuts = {lo, hi} | {float(j) for j in range(math.ceil(lo), math.floor(hi) + 1)}
    if sigma is not None and sigma < 1:
        for x0 in crossings:
            for k in list(range(-6, 7)) + [k for k in range(-12, 13, 2) if abs(k) > 6]:
                if lo < x0 + k * sigma < hi:
                    cuts.add(x0 + k * sigma)
    cuts = np.array(sorted(cuts))
    return cuts[:-1], cuts[1:]


def _f64_nodes(lo, hi):
    xs, ws = _F64_NODES
    h, m = (hi - lo) / 2, (hi + lo) / 2
    return (m[:, None] + h[:, None] * xs[None, :]).ravel(), (h[:, None] * ws[None, :]).ravel()


def kernel_f64(name, p, q1, q2, c):
    """E[phi(u1) phi(u2)] in float64 (about 1e-14 of the Cauchy-Schwarz scale), the scheme of
    :func:`kernel_conditional` with numpy (20-point Gauss-Legendre); c = +-1 included."""
    pieces = [pc for pc in R.affine_pieces(name, p)]
    live = [pc for pc in pieces if pc[2] != 0 or pc[3] != 0]
    s1, s2 = math.sqrt(q1), math.sqrt(q2)
    c = float(c)
    Z = _f64_cutoff(pieces, s1, s2)
    if abs(c) == 1:  # u2 = c s2 z
        cuts = {-Z, Z} | {float(j) for j in range(-Z, Z + 1)}
        for lo, hi, _, _ in pieces:
            for k in (lo, hi):
                for s in (s1, c * s2):
                    if math.isfinite(k) and abs(k / s) < Z:
                        cuts.add(k / s)
        cuts = np.array(sorted(cuts))
        z, w = _f64_nodes(cuts[:-1], cuts[1:])

        def phi(x):
            out = np.zeros_like(x)
            for lo, hi, a, b in pieces:
                sel = (x > lo) & (x <= hi)
                out[sel] = a * x[sel] + b
            return out
        return float(np.sum(w * phi(s1 * z) * phi(c * s2 * z) * _f64_npdf(z)))
    r = math.sqrt((1 - c) * (1 + c))
    crossings = sorted({k / (c * s2) for lo, hi, _, _ in pieces for k in (lo, hi)
                        if math.isfinite(k)}) if c != 0 else []
    sigma = r / abs(c) if c != 0 else None
    total = 0.0
    for lo, hi, a, b in live:
        zl = max(-Z, lo / s1) if math.isfinite(lo) else -Z
        zh = min(Z, hi / s1) if math.isfinite(hi) else Z
        if not zl < zh:
            continue
        z1, w = _f64_nodes(*_f64_panels(zl, zh, crossings, sigma))
        centre = c * z1
        g_total = np.zeros_like(z1)
        for lo2, hi2, a2, b2 in live:
            g = np.full_like(z1, -np.inf) if not math.isfinite(lo2) else (lo2 / s2 - centre) / r
            d = np.full_like(z1, np.inf) if not math.isfinite(hi2) else (hi2 / s2 - centre) / r
            mass = np.where(g >= 0, ndtr(-g) - ndtr(-d), ndtr(d) - ndtr(g))
            g_total += (a2 * s2 * centre + b2) * mass + a2 * s2 * r * (_f64_npdf(g) - _f64_npdf(d))
        total += float(np.sum(w * (a * s1 * z1 + b) * _f64_npdf(z1) * g_total))
    return total


def rho_f64(name, p, sigma_w2, sigma_b2, q_star, cs):
    """rho(c) = (sigma_b2 + sigma_w2 K(c)) / q* on an array of c, float64."""
    sigma_w2, sigma_b2, q_star = float(sigma_w2), float(sigma_b2), float(q_star)
    return np.array([(sigma_b2 + sigma_w2 * kernel_f64(name, p, q_star, q_star, c)) / q_star
                     for c in cs])
