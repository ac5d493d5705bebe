r"""The kernel map of a pair of inputs, the correlation map and its fixed points.

Two inputs whose pre-activations have variances :math:`q_1, q_2` and covariance
:math:`q_{12}=c\sqrt{q_1q_2}` are mapped by one layer to (Poole et al. 2016, eq. 3-5;
the NNGP kernel recursion)

.. math::

    q_1' = V(q_1),\quad q_2' = V(q_2),\quad q_{12}' = \sigma_b^2 + \sigma_w^2 K(c),\qquad
    K(c) = E[\phi(u_1)\phi(u_2)],

with :math:`(u_1,u_2)` centred Gaussian. At a fixed point :math:`q^*=V(q^*)` the
correlation map is :math:`\rho(c)=(\sigma_b^2+\sigma_w^2K(c))/q^*`, so :math:`\rho(1)=1`
and :math:`\rho'(1)=\chi_1(q^*)`.

**Closed forms.** Price's theorem (Price 1958; Poole et al. 2016, appendix) gives
:math:`K^{(n)}(c)=(q_1q_2)^{n/2}E[\phi^{(n)}(u_1)\phi^{(n)}(u_2)]`, derivatives in the
sense of distributions. At :math:`c=0` the factors are independent, so
:math:`K^{(n)}(0)=(q_1q_2)^{n/2}E[\phi^{(n)}(u_1)]E[\phi^{(n)}(u_2)]`, closed forms
(:func:`meanfield.symbolic.derivative_mean`). If :math:`\phi` has degree d, then
:math:`\phi^{(d+1)}` is a finite sum of Dirac derivatives at the breakpoints
(:func:`meanfield.symbolic.dirac_part`), and :math:`K^{(d+1)}(t)` is a finite sum of
derivatives of the bivariate normal density at pairs of breakpoints: a closed form. By
Taylor's theorem with integral remainder

.. math::

    K(c) = \sum_{n\le d} K^{(n)}(0)\frac{c^n}{n!} + \int_0^c \frac{(c-t)^d}{d!}K^{(d+1)}(t)\,dt.

The remainder is the one-dimensional integral behind the bivariate normal rectangle
probabilities (Drezner and Wesolowsky 1990; Owen's T in another form). It is evaluated with
the substitution :math:`t=\sin\theta`, which makes the integrand smooth up to
:math:`c=\pm1`, by tanh-sinh quadrature at the requested precision. When every kink is at
0 (ReLU, leaky ReLU) it is elementary (:func:`meanfield.symbolic.origin_remainder`) and the
arc-cosine kernel (Cho and Saul 2009) comes out exactly.

**Derivatives.** :math:`\rho^{(n)}(c)=\sigma_w^2K^{(n)}(c)/q^*`, from the same formula with
the Taylor part shortened; :math:`\rho''` needs no integral for piecewise-linear
activations. At :math:`c=1`, :math:`K^{(n)}(1)=q^{*n}E[(\phi^{(n)})^2]` is :math:`+\infty`
as soon as :math:`\phi^{(n)}` has a Dirac part: :math:`\rho''(1)` diverges for every
kinked activation (like :math:`(1-c^2)^{-1/2}`), :math:`\rho'(1)` for a discontinuous one.
At :math:`c=-1` only breakpoints at mirrored positions :math:`\pm b` can make it diverge.
Such values are returned as :class:`Divergent`, never as a number.

**Fixed points** (:func:`correlation_fixed_points`). Mehler's expansion
:math:`\rho(c)=\sigma_b^2/q^*+(\sigma_w^2/q^*)\sum_n a_n^2c^n` (:math:`a_n` the Hermite
coefficients of :math:`\phi(\sqrt{q^*}z)`) has nonnegative coefficients, so on
:math:`[0,1]` :math:`\rho` is convex and :math:`|\rho^{(k)}(c)|\le\rho^{(k)}(|c|)`. Hence:
if :math:`\chi_1(q^*)\le1` (ordered phase or EoC) :math:`\rho(c)-c` decreases strictly on
:math:`[-1,1)` and :math:`c^*=1` is the only fixed point; if :math:`\chi_1(q^*)>1` (chaotic)
there is exactly one more in :math:`[0,1)`, and :math:`[-1,0)` is searched cell by cell
with the bounds above, so no fixed point is missed. Depth scales (Schoenholz et al. 2017):
:math:`\xi_c=-1/\log\rho'(c^*)` at the attracting :math:`c^*`, infinite on the EoC.

>>> from meanfield.maps import Initialisation
>>> relu = Initialisation("relu0", sigma_w2=2, sigma_b2=0)
>>> v = correlation_map(relu, 0, q_star=1, digits=20)
>>> print(mpmath.nstr(v.rho, 20), mpmath.nstr(v.rho_prime, 20))   # 1/pi and 1/2 (arc-cosine kernel)
0.31830988618379067154 0.5
>>> print(correlation_map(relu, 1, q_star=1).rho_second)
+inf
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import mpmath
import sympy as sp

from . import validation
from ._roots import bracketed_root
from ._types import Context, InitialisationLike, Real, Reals
from .activations import Activation
from .errors import ParameterError
from .maps import (
    DEFAULT_DIGITS,
    GUARD_DIGITS,
    Initialisation,
    check_fixed_point,
    check_q,
    format_value,
    lambdify_mp,
    map_values,
    operating_point,
    to_mpf,
    working_precision,
)
from .symbolic import (
    bivariate_density_derivative,
    bx,
    by,
    corr,
    degree,
    derivative_mean,
    dirac_part,
    origin_remainder,
)
from .symbolic import q as q_symbol

#: Most digits the quadrature is asked for (see :data:`meanfield.validation.CORRELATION_MAX_DIGITS`).
MAX_DIGITS = validation.CORRELATION_MAX_DIGITS

__all__ = ["MAX_DIGITS", "Divergent", "KernelValues", "CorrelationValues", "CorrelationFixedPoint",
           "CorrelationReport", "kernel_map", "correlation_map", "correlation_fixed_points",
           "depth_scale", "correlation_digits"]


@dataclass(frozen=True)
class Divergent:
    """A quantity with no finite value: ``sign`` times infinity, and why."""

    sign: int
    reason: str = field(default="", compare=False)

    def __str__(self):
        return "+inf" if self.sign > 0 else "-inf"

    def __float__(self):
        return math.inf if self.sign > 0 else -math.inf


@dataclass(frozen=True)
class KernelValues:
    """One layer of the kernel map: inputs (q1, q2, q12), outputs, and the correlations
    c = q12 / sqrt(q1 q2) before and after (computed at the working precision)."""

    q1: Any
    q2: Any
    q12: Any
    q1_next: Any
    q2_next: Any
    q12_next: Any
    c: Any
    c_next: Any


@dataclass(frozen=True)
class CorrelationValues:
    """rho(c), rho'(c) and rho''(c) (mpf, or :class:`Divergent` at c = +-1)."""

    c: Any
    rho: Any
    rho_prime: Any
    rho_second: Any

    def to_dict(self, digits: int = 8) -> dict:
        """c, rho, rho', rho'' as decimal strings of ``digits`` digits (+inf / -inf where divergent)."""
        return {k: format_value(getattr(self, k), digits) for k in ("c", "rho", "rho_prime", "rho_second")}


@dataclass(frozen=True)
class CorrelationFixedPoint:
    """A fixed point c* = rho(c*) with rho'(c*) and its kind.

    ``kind``: "stable" (rho' < 1), "unstable" (rho' > 1), "marginal" (c* = 1 with
    rho'(1) = 1, the EoC: attracts every c < 1, but sub-exponentially) or "half-stable"
    (an interior tangency, attracting from ``attracts_from``).
    """

    c: Any
    rho_prime: Any
    kind: str
    attracts_from: str | None = None
    #: xi_c = -1 / log rho'(c*) for an attracting point (inf when rho'(c*) = 1 to the
    #: digits of the report), None for a repelling one
    depth_scale: Any = None

    def to_dict(self, digits: int = 8) -> dict:
        """The fixed point as plain data, numbers as decimal strings of ``digits`` digits."""
        return {"c": format_value(self.c, digits), "rho_prime": format_value(self.rho_prime, digits),
                "kind": self.kind, "attracts_from": self.attracts_from,
                "depth_scale": format_value(self.depth_scale, digits)}


@dataclass(frozen=True)
class CorrelationReport:
    """Every fixed point of the correlation map in [-1, 1], with rho(0) and xi_c.

    ``phase``: "ordered" (chi_1(q*) < 1), "edge of chaos" (= 1) or "chaotic" (> 1).
    ``attractor`` is the fixed point that uncorrelated inputs (c = 0) converge to, and
    ``xi_c`` its depth scale. ``degenerate``: rho(c) = c for every c (a linear activation).
    """

    init: Initialisation
    q_star: Any
    points: tuple[CorrelationFixedPoint, ...]
    rho0: Any
    chi1: Any
    phase: str
    attractor: CorrelationFixedPoint | None
    degenerate: bool
    unresolved: tuple = ()
    digits: int = DEFAULT_DIGITS

    @property
    def xi_c(self):
        """Depth scale of the attractor of c = 0; inf when rho(c) = c for every c."""
        if self.degenerate:
            return mpmath.inf
        return None if self.attractor is None else self.attractor.depth_scale

    def to_dict(self, digits: int | None = None) -> dict:
        """The report as plain data (the fixed-point part of ``meanfield correlation --json``):
        numbers as decimal strings of ``digits`` digits (default: the report's).

        >>> from meanfield.eoc import eoc_parameters
        >>> d = correlation_fixed_points(eoc_parameters("relu", sparsity="0.5")).to_dict(6)
        >>> d["phase"], d["xi_c"], [(p["c"], p["kind"]) for p in d["fixed_points"]]
        ('edge of chaos', '+inf', [('1.00000', 'marginal')])
        """
        d = self.digits if digits is None else digits
        return {"activation": self.init.activation.name, "q_star": format_value(self.q_star, d),
                "phase": self.phase, "chi1": format_value(self.chi1, d), "rho0": format_value(self.rho0, d),
                "xi_c": format_value(self.xi_c, d), "fixed_points": [p.to_dict(d) for p in self.points],
                "degenerate": self.degenerate,
                "unresolved": [[repr(float(a)), repr(float(b))] for a, b in self.unresolved]}


def depth_scale(factor: Real, tol: Real = 0, ctx: Context = mpmath.mp) -> mpmath.mpf:
    """-1 / log|factor| (Schoenholz et al. 2017): inf when ||factor| - 1| <= tol, 0 when
    factor = 0 or diverges. Evaluated at ``ctx``'s precision: call it inside the solver's
    working precision, where ``tol`` is the noise level of ``factor``."""
    if isinstance(factor, Divergent):
        return ctx.zero
    f = abs(factor)
    if abs(f - 1) <= tol:
        return ctx.inf
    if f == 0:
        return ctx.zero
    return -1 / ctx.log(f)


# --- compiled pieces -------------------------------------------------------------------

_e, _a = sp.symbols("e a", real=True)


@functools.lru_cache(maxsize=None)
def _template_expressions(i: int, j: int):
    r"""(k, near_plus, near_minus) with :math:`\partial_x^i\partial_y^j f = N/(1-c^2)^k f`;
    N written in (x, e, a) with e = 1 - c, a = x - y (plus) or e = 1 + c, a = x + y (minus)
    so that nothing cancels as c -> +-1."""
    expr = bivariate_density_derivative(i, j)
    num, den = sp.fraction(sp.together(expr))
    k = sp.degree(den, corr) // 2 if den.has(corr) else 0
    num = sp.expand(num * (1 - corr**2) ** k / den) if k else sp.expand(num / den)
    plus = sp.expand(num.subs({corr: 1 - _e, by: bx - _a}))
    minus = sp.expand(num.subs({corr: _e - 1, by: _a - bx}))
    return k, plus, minus


def _template(i: int, j: int, ctx):
    """:func:`_template_expressions` compiled for the context ``ctx``."""
    k, plus, minus = _template_expressions(i, j)
    return k, lambdify_mp((bx, _e, _a), plus, ctx), lambdify_mp((bx, _e, _a), minus, ctx)


def _compiled_means(activation: Activation, n: int, ctx):
    return lambdify_mp((q_symbol,) + activation.symbols, derivative_mean(activation, n), ctx)


def _compiled_diracs(activation: Activation, n: int, ctx):
    syms = activation.symbols
    return tuple((lambdify_mp(syms, t.position, ctx), t.order, lambdify_mp(syms, t.weight, ctx))
                 for t in dirac_part(activation, n))


@functools.lru_cache(maxsize=None)
def _compiled_origin(k: int, ctx):
    return lambdify_mp((corr,), origin_remainder(k), ctx)


def _diracs(init: Initialisation, n: int, ctx) -> list[tuple[Any, int, Any]]:
    """Dirac part of phi^(n) at the initialisation's parameters: [(position, order, weight)],
    merged where positions coincide (e.g. ST at tau = 0), zero weights dropped."""
    params = [to_mpf(v, ctx) for _, v in init.params]
    merged: dict[tuple, list] = {}
    for pos, order, weight in _compiled_diracs(init.activation, n, ctx):
        b, w = ctx.mpf(pos(*params)), ctx.mpf(weight(*params))
        merged.setdefault((b, order), []).append(w)
    out = []
    for (b, order), ws in merged.items():
        w = ctx.fsum(ws)
        if abs(w) > 64 * ctx.eps * ctx.fsum(abs(v) for v in ws):
            out.append((b, order, w))
    return out


class _Kernel:
    """K and its c-derivatives for one initialisation at (q1, q2), at ctx's precision."""

    def __init__(self, init: Initialisation, q1, q2, ctx):
        self.ctx = ctx
        self.d = degree(init.activation)
        self.s1, self.s2 = ctx.sqrt(q1), ctx.sqrt(q2)
        params = [to_mpf(v, ctx) for _, v in init.params]
        s12 = self.s1 * self.s2
        self.taylor = [s12**n * _compiled_means(init.activation, n, ctx)(q1, *params)
                       * _compiled_means(init.activation, n, ctx)(q2, *params) for n in range(self.d + 1)]
        self.diracs = _diracs(init, self.d + 1, ctx)
        # every singular term a plain Dirac at 0: the remainder is elementary
        self.origin = all(b == 0 and order == 0 for b, order, _ in self.diracs)
        self._node_cache: dict = {}
        self._node_cache_top = None

    @functools.lru_cache(maxsize=None)
    def _pairs(self, r: int):
        """Per pair of Dirac terms of phi^(d+1+r): the constants of its density term.
        Pairs (a, b) and (b, a) are merged when the two sides are alike (q1 = q2)."""
        ctx = self.ctx
        symmetric = self.s1 == self.s2
        out = []
        for ia, (b1, i0, w1) in enumerate(self.diracs):
            for ib, (b2, j0, w2) in enumerate(self.diracs):
                i, j = i0 + r, j0 + r
                if symmetric and ib < ia and i == j:
                    continue
                mult = 2 if symmetric and ib > ia and i == j else 1
                x, y = b1 / self.s1, b2 / self.s2
                coef = mult * (-1) ** (i + j) * w1 * w2 / (self.s1 ** (i + 1) * self.s2 ** (j + 1))
                k, near_plus, near_minus = _template(i, j, ctx)
                plain = i == 0 and j == 0
                out.append((x, 2 * x * y, (x - y) ** 2, (x + y) ** 2, coef, k,
                            None if plain else near_plus, None if plain else near_minus, x - y, x + y))
        return tuple(out)

    def singular(self, n: int, sin_t, cos_t):
        """K^(n)(t), n >= d + 1, at t = sin_t with cos_t = sqrt(1 - t^2) > 0."""
        ctx = self.ctx
        cos2 = cos_t * cos_t
        plus = sin_t >= 0
        e = cos2 / (1 + sin_t) if plus else cos2 / (1 - sin_t)  # 1 - t or 1 + t (no cancellation)
        # terms below exp(-cutoff) are beneath the working precision
        cutoff = 2 * (ctx.prec * 0.6931471805599453 + 40)
        total = ctx.zero
        for x, xy2, am2, ap2, coef, k, near_plus, near_minus, am, ap in self._pairs(n - self.d - 1):
            quad_form = (am2 + e * xy2) / cos2 if plus else (ap2 - e * xy2) / cos2
            if quad_form > cutoff:
                continue
            term = coef * ctx.exp(-quad_form / 2)
            if near_plus is not None:
                term *= (near_plus(x, e, am) if plus else near_minus(x, e, ap)) / cos2**k
            total += term
        return (self.s1 * self.s2) ** n * total / (2 * ctx.pi * cos_t)

    def derivative(self, n: int, c):
        """K^(n)(c) for -1 <= c <= 1 (at c = +-1 only where it is finite; see _endpoint)."""
        ctx, d = self.ctx, self.d
        if n >= d + 1:
            if abs(c) == 1:
                return ctx.zero  # finite limits there are 0 (see _endpoint)
            return self.singular(n, c, ctx.sqrt((1 - c) * (1 + c)))
        k = d - n
        value = ctx.fsum(self.taylor[m] * c ** (m - n) / ctx.factorial(m - n) for m in range(n, d + 1))
        if not self.diracs:
            return value
        if self.origin:
            w = ctx.fsum(w for _, _, w in self.diracs)
            return value + (self.s1 * self.s2) ** d * w * w * _compiled_origin(k, self.ctx)(c)
        return value + self._remainder(k, c)

    def _remainder(self, k: int, c):
        r"""\int_0^c (c - t)^k / k! K^(d+1)(t) dt, with t = sin(theta)."""
        ctx = self.ctx
        if c == 0:
            return ctx.zero
        top = ctx.asin(c)
        fact = ctx.factorial(k)
        if self._node_cache_top != (top, ctx.prec):  # keep only the current interval's nodes
            self._node_cache_top, self._node_cache = (top, ctx.prec), {}

        def integrand(theta):
            weight = self._singular_at(theta)
            if k == 0 or weight == 0:
                return weight
            s, co = ctx.sin(theta), ctx.cos(theta)
            gap = c - s if abs(c) != 1 else (co * co / (1 + s) if c > 0 else -co * co / (1 - s))
            return gap**k / fact * weight

        value, err = ctx.quad(integrand, [0, top], error=True, maxdegree=10)
        return value

    def _singular_at(self, theta):
        """K^(d+1)(sin theta) cos theta, cached: rho and rho' at one c share the nodes."""
        hit = self._node_cache.get(theta)
        if hit is None:
            co = self.ctx.cos(theta)
            hit = self._node_cache[theta] = (self.singular(self.d + 1, self.ctx.sin(theta), co) * co
                                           if co > 0 else self.ctx.zero)
        return hit


def correlation_digits(digits) -> int:
    """The digits a correlation-map computation may be asked for: at most
    :data:`MAX_DIGITS` (its quadrature cost grows like digits^3)."""
    return validation.digits(digits, maximum=MAX_DIGITS, why="the correlation map's quadrature cost grows "
                             "like digits^3")


def kernel_map(init: InitialisationLike, q1: Real, q2: Real, q12: Real, *, digits: int = DEFAULT_DIGITS,
               ctx: Context = mpmath.mp) -> KernelValues:
    """One layer of the kernel map: (q1, q2, q12) -> (V(q1), V(q2), q12'), to ``digits``.

    >>> init = Initialisation("relu0", sigma_w2=2, sigma_b2=0)
    >>> k = kernel_map(init, 1, 4, 0, digits=15)
    >>> print(k.q1_next, k.q2_next, k.q12_next)      # 2 sqrt(1 * 4) / (2 pi)
    1.0 4.0 0.636619772367581
    """
    digits = correlation_digits(digits)
    init, _ = operating_point(init, digits=digits, ctx=ctx)
    check_q(q1, "q1")
    check_q(q2, "q2")
    validation.real("q12", q12, "with |q12| <= sqrt(q1 q2)")
    with ctx.workdps(working_precision(init, digits, q1, q2)):
        a, b, ab = to_mpf(q1, ctx), to_mpf(q2, ctx), to_mpf(q12, ctx)
        limit = ctx.sqrt(a * b)
        if abs(ab) > limit * (1 + 4 * ctx.eps):
            raise ParameterError(f"q12 = {q12} is out of range: must satisfy |q12| <= sqrt(q1 q2) = "
                                 f"{mpmath.nstr(limit, 8)} (a covariance)")
        c = max(-1, min(1, ab / limit))
        kernel = _Kernel(init, a, b, ctx)
        sw2, sb2 = to_mpf(init.sigma_w2, ctx), to_mpf(init.sigma_b2, ctx)
        q12_next = +(sb2 + sw2 * kernel.derivative(0, c))
        va = map_values(init, q1, digits=digits, ctx=ctx).variance
        vb = map_values(init, q2, digits=digits, ctx=ctx).variance
        c_next = +(q12_next / ctx.sqrt(va * vb))
        c = +(ab / limit)
    return KernelValues(q1=a, q2=b, q12=ab, q1_next=va, q2_next=vb, q12_next=q12_next, c=c, c_next=c_next)


class _CorrelationMap:
    """rho and its derivatives at a fixed point q*, at ctx's working precision."""

    def __init__(self, init: Initialisation, q_star, ctx):
        self.init, self.ctx = init, ctx
        self.q = q = to_mpf(q_star, ctx)
        self.kernel = _Kernel(init, q, q, ctx)
        self.sw2, self.sb2 = to_mpf(init.sigma_w2, ctx), to_mpf(init.sigma_b2, ctx)
        self.v = self.sb2 + self.sw2 * self.kernel.derivative(0, ctx.one)  # V(q*)

    def rho(self, c):
        return (self.sb2 + self.sw2 * self.kernel.derivative(0, c)) / self.v

    def derivative(self, n: int, c):
        if abs(c) == 1:
            end = self._endpoint(n, int(c))
            if end is not None:
                return end
        return self.sw2 * self.kernel.derivative(n, c) / self.v

    def _endpoint(self, n: int, side: int):
        """A :class:`Divergent` if rho^(n)(side) diverges, else None (then it is finite)."""
        ctx = self.ctx
        terms = _diracs(self.init, n, ctx)
        if not terms:
            return None
        where = ", ".join(mpmath.nstr(b, 6) for b in sorted({b for b, _, _ in terms}))
        if side == 1:
            return Divergent(1, f"phi^({n}) has Dirac masses (at {where}): rho^({n})(c) -> +inf as c -> 1")
        mirrored = [(t1, t2) for t1 in terms for t2 in terms if t2[0] == -t1[0]]
        if not mirrored:
            return None
        if any(t1[1] or t2[1] for t1, t2 in mirrored):
            raise ParameterError(f"rho^({n})(-1) is not determined here: phi has jumps at mirrored "
                                 f"breakpoints (at {where}); evaluate at c > -1")
        lead = ctx.fsum(t1[2] * t2[2] * ctx.exp(-t1[0] ** 2 / (2 * self.q)) for t1, t2 in mirrored)
        if abs(lead) <= 64 * ctx.eps * ctx.fsum(abs(t1[2] * t2[2]) for t1, t2 in mirrored):
            raise ParameterError(f"rho^({n})(-1): the divergent terms cancel; evaluate at c > -1")
        sign = 1 if lead > 0 else -1
        return Divergent(sign, f"phi^({n}) has Dirac masses at mirrored points +-b: "
                               f"rho^({n})(c) -> {'+' if sign > 0 else '-'}inf as c -> -1")


def _check_c(c):
    validation.real("c", c, "in [-1, 1]")
    if not -1 <= float(c) <= 1:
        raise ParameterError(f"c = {c} is out of range: must be in [-1, 1] (a correlation)")
    return c


def correlation_map(init: InitialisationLike, c: Reals, *, q_star: Real | None = None,
                    digits: int = DEFAULT_DIGITS,
                    ctx: Context = mpmath.mp) -> CorrelationValues | list[CorrelationValues]:
    """rho(c), rho'(c), rho''(c) at the fixed point ``q_star`` (a :class:`CorrelationValues`,
    or a list of them when ``c`` is a sequence). ``init`` may be an EoCSolution (then q*
    is its own).

    >>> from meanfield.eoc import eoc_parameters
    >>> sol = eoc_parameters("crelu", sparsity="0.85", v_prime="0.5", digits=20)
    >>> v = correlation_map(sol, [0, 1], digits=20)
    >>> print(mpmath.nstr(v[0].rho, 10), v[1].rho, mpmath.nstr(v[1].rho_prime, 10), v[1].rho_second)
    0.6964206555 1.0 1.0 +inf
    """
    digits = correlation_digits(digits)
    init, q_star = operating_point(init, q_star, digits=digits, required=True, ctx=ctx)
    many = isinstance(c, (list, tuple)) or (hasattr(c, "__len__") and not isinstance(c, str))
    cs = [_check_c(v) for v in (c if many else [c])]
    with ctx.workdps(digits + GUARD_DIGITS):  # 1 + 1e-22 as a string passes float(c) <= 1
        for v in cs:
            if abs(to_mpf(v, ctx)) > 1:
                raise ParameterError(f"c = {v} is out of range: must be in [-1, 1] (a correlation)")
    check_fixed_point(init, q_star, digits, ctx)
    out = []
    with ctx.workdps(working_precision(init, digits, q_star)):
        cmap = _CorrelationMap(init, q_star, ctx)
        # |rho| <= 1 and |rho'(c)| <= rho'(1) (Mehler): below 10^-digits of those scales a
        # value is 0 to the digits asked for (rho'(-1) of CReLU came out as ~1e-30)
        floor = ctx.mpf(10) ** (-digits)
        slope = cmap.derivative(1, ctx.one)
        for value in cs:
            cm = to_mpf(value, ctx)
            rho, rp, rs = cmap.rho(cm), cmap.derivative(1, cm), cmap.derivative(2, cm)
            if abs(rho) < floor:
                rho = ctx.zero
            if not isinstance(slope, Divergent):
                if not isinstance(rp, Divergent) and abs(rp) < floor * slope:
                    rp = ctx.zero
                if not isinstance(rs, Divergent) and abs(rs) < floor * slope:
                    rs = ctx.zero  # e.g. rho''(0) of an odd activation
            out.append(CorrelationValues(cm, +rho, rp if isinstance(rp, Divergent) else +rp,
                                         rs if isinstance(rs, Divergent) else +rs))
    return out if many else out[0]


def _g(cmap, c):
    return cmap.rho(c) - c


def correlation_fixed_points(init: InitialisationLike, *, q_star: Real | None = None,
                             digits: int = DEFAULT_DIGITS, ctx: Context = mpmath.mp) -> CorrelationReport:
    """Every fixed point of rho in [-1, 1], classified, with rho(0) and xi_c (see the module
    docstring for why none is missed).

    >>> identity = Initialisation("st", sigma_w2=1, sigma_b2=0, params={"tau": 0})
    >>> r = correlation_fixed_points(identity, q_star=1, digits=15)
    >>> r.degenerate
    True
    >>> from meanfield.eoc import eoc_parameters
    >>> r = correlation_fixed_points(eoc_parameters("relu", sparsity="0.7"))
    >>> [(p.c, p.kind) for p in r.points], r.phase, r.xi_c
    ([(mpf('1.0'), 'marginal')], 'edge of chaos', mpf('+inf'))
    """
    digits = correlation_digits(digits)
    init, q_star = operating_point(init, q_star, digits=digits, required=True, ctx=ctx)
    check_fixed_point(init, q_star, digits, ctx)
    with ctx.workdps(working_precision(init, digits, q_star)):
        cmap = _CorrelationMap(init, q_star, ctx)
        tol = ctx.mpf(10) ** (3 - digits)
        rho0 = cmap.rho(ctx.zero)
        chi1 = cmap.derivative(1, ctx.one)
        chi1_value = ctx.inf if isinstance(chi1, Divergent) else chi1
        if abs(chi1_value - 1) <= tol:
            phase = "edge of chaos"
        else:
            phase = "ordered" if chi1_value < 1 else "chaotic"
        # affine phi: rho(c) = rho(0) + rho'(0) c; with rho(1) = 1 it is the identity iff rho(0) = 0
        affine = not _diracs(init, 2, ctx) and degree(init.activation) <= 1
        if affine and rho0 <= tol:
            return CorrelationReport(init, cmap.q, (), +rho0, chi1, phase, None, True, (), digits)
        roots = [ctx.one]
        unresolved = []
        if phase == "chaotic":
            roots += _chaotic_roots(cmap, rho0, tol, unresolved)
        points = []
        for c in sorted(set(roots)):
            rp = cmap.derivative(1, c)
            value = ctx.inf if isinstance(rp, Divergent) else rp
            if abs(value - 1) <= tol:
                kind, side = ("marginal", "below") if c == 1 else ("half-stable", None)
            else:
                kind, side = ("stable" if value < 1 else "unstable"), None
            xi = None if kind == "unstable" else +depth_scale(rp, tol, ctx)
            points.append(CorrelationFixedPoint(+c, rp if isinstance(rp, Divergent) else +rp, kind, side, xi))
        attractor = _attractor(points)
        return CorrelationReport(init, cmap.q, tuple(points), +rho0,
                                 chi1 if isinstance(chi1, Divergent) else +chi1, phase, attractor,
                                 False, tuple(unresolved), digits)


def _attractor(points):
    """The attracting fixed point whose basin holds c = 0."""
    below = [p for p in points if p.c <= 0]
    above = [p for p in points if p.c > 0]
    # between neighbouring repelling points exactly one attracting one sits; walk from 0
    for p in points:
        if p.c == 0 and p.kind != "unstable":
            return p
    candidates = []
    lo = max((p.c for p in below if p.kind == "unstable"), default=None)
    hi = min((p.c for p in above if p.kind == "unstable"), default=None)
    for p in points:
        if p.kind != "unstable" and (lo is None or p.c > lo) and (hi is None or p.c < hi):
            candidates.append(p)
    return min(candidates, key=lambda p: abs(p.c)) if candidates else None


def _chaotic_roots(cmap, rho0, tol, unresolved):
    """Fixed points other than 1 when chi_1(q*) > 1 (see the module docstring)."""
    ctx = cmap.ctx
    roots = []
    g = functools.partial(_g, cmap)
    # [0, 1): g convex, g(1) = 0, g'(1) > 0: one root iff g(0) > 0, c = 0 itself if g(0) = 0
    if rho0 <= tol:  # 0 to the digits asked for (an odd phi with sigma_b2 = 0)
        roots.append(ctx.zero)
    else:
        # g < 0 just below 1; the root may sit very close to 1 when chi_1 - 1 is tiny
        # (g(1 - d) ~ -(chi_1 - 1) d + O(d^1.5)), so try d = 2^-1, 2^-2, 2^-4, 2^-8, ...
        bits = 1
        while True:
            delta = ctx.ldexp(1, -bits)
            g_hi = g(1 - delta)
            if g_hi < 0:
                break
            if bits >= ctx.prec - 16:
                unresolved.append((float(1 - delta), 1.0))  # closer to 1 than the precision
                break
            bits = min(2 * bits, ctx.prec - 16)
        if g_hi >= 0:
            return roots
        roots.append(bracketed_root(g, ctx.zero, 1 - delta, rho0, g_hi, ctx))
    # [-1, 0): cells; |rho'(c)| <= rho'(|c|), and rho' is increasing on [0, 1]
    rho_p = functools.lru_cache(maxsize=None)(lambda c: _finite(cmap.derivative(1, c), ctx))
    g_p = lambda c: cmap.derivative(1, c) - 1  # noqa: E731 - only used at interior points
    min_width = ctx.mpf(10) ** (-(ctx.dps // 3))
    stack = [(-ctx.one, ctx.zero)]
    g_end = {-ctx.one: g(-ctx.one), ctx.zero: rho0}
    if abs(g_end[-ctx.one]) <= tol:  # rho(-1) = -1, e.g. an odd phi with sigma_b2 = 0
        roots.append(-ctx.one)
        g_end[-ctx.one] = ctx.zero
    for _ in range(20000):
        if not stack:
            break
        a, b = stack.pop()
        mid = (a + b) / 2
        g_mid = g(mid)
        bound1 = rho_p(abs(a)) + 1
        if abs(g_mid) > bound1 * (b - a) / 2:
            continue  # no root in [a, b]
        spread = rho_p(abs(a)) - rho_p(abs(b))  # >= |g'(c) - g'(mid)| on [a, b]
        if abs(g_p(mid)) > spread:  # g monotone on [a, b]
            for end in (a, b):
                if end not in g_end:
                    g_end[end] = g(end)
            ga, gb = g_end[a], g_end[b]
            if ga * gb < 0:
                roots.append(bracketed_root(g, a, b, ga, gb, ctx))
            continue
        if abs(g_mid) <= tol * 10 and abs(g_p(mid)) <= ctx.sqrt(tol):
            # rho(c) - c and its slope at the noise level (a nearly linear c-map): finer
            # cells cannot decide anything, so say so instead of halving to the floor
            unresolved.append((float(a), float(b)))
            continue
        if b - a < min_width:
            unresolved.append((float(a), float(b)))
            continue
        stack += [(a, mid), (mid, b)]
    else:
        unresolved.append((-1.0, 0.0))
    merged = []  # adjacent unresolved cells as one range
    for lo, hi in sorted(unresolved):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    unresolved[:] = merged
    return [r for r in roots if r < 1]


def _finite(v, ctx):
    return ctx.inf if isinstance(v, Divergent) else v
