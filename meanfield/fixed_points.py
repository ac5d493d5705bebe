r"""Every fixed point of the variance map on :math:`(0,\infty)`, found and classified.

A fixed point :math:`q^*=V(q^*)` is *stable* if :math:`V'(q^*)<1`, *unstable* if
:math:`V'(q^*)>1` and *half-stable* if :math:`V'(q^*)=1`; then :math:`V''(q^*)>0` means it
attracts from below and repels above (:math:`V''<0`: the reverse). Poole et al. 2016;
Price et al. 2024, section 3 and Lemma 2.

Why no fixed point in the searched range is missed
--------------------------------------------------
Let :math:`F(q)=V(q)-q`. The search range :math:`[q_{lo}, q_{hi}]` is covered by cells,
and on each cell float64 interval arithmetic (:mod:`meanfield._interval`, applied to the
closed forms of :math:`F, F', F''`, with mean-value refinement) proves one of:

1. :math:`0\notin F(\text{cell})`: no fixed point there;
2. :math:`0\notin F'(\text{cell})`: :math:`F` is strictly monotone, so there is at most one
   root, and there is one exactly when :math:`F` changes sign across the cell (signs
   evaluated at the caller's precision);
3. :math:`0\notin F''(\text{cell})`: :math:`F` is strictly convex (or concave), so it has one
   extremum :math:`c` in the cell (the root of the monotone :math:`F'`) and at most two
   roots, one on each side of :math:`c`, which the sign of :math:`F(c)` decides. This is
   where tangencies are handled: :math:`|F(c)|\le 10^{3-D}q` at :math:`D` digits is within
   the uncertainty of :math:`D`-digit inputs and is reported as *one* half-stable fixed
   point, never as a split pair or a miss.

Cells where none holds are split (at most 4096 live cells, down to a relative width of
:math:`10^{-12}`). All signs are evaluated at the caller's precision plus guard digits
(more where the closed form cancels, :func:`~meanfield.maps.cancellation_digits`); a value
whose size is at the noise level of that precision decides nothing. Cells that stay
undecided, or whose deciding values are noise, are sampled at that precision instead:
strict sign changes give fixed points, and stretches where :math:`|F|` is noise are
listed as ``unresolved`` (nothing is claimed there; more ``digits`` resolve them). The
report then says ``certified=False``. Finally, a root whose :math:`|F'|` is below
:math:`\sqrt{2\,\mathrm{tol}\,|F''|}` (its partner root would lie within the tolerance) is a
tangency too, and tangency candidates closer than that merge into one point at
:math:`F'=0`. Since :math:`V` is real-analytic on :math:`(0,\infty)`, its fixed points are
isolated unless :math:`V(q)=q` everywhere (checked first: the ``degenerate`` case, e.g.
ReLU with :math:`\sigma_w^2=2, \sigma_b^2=0`).

Outside the range there is no fixed point, by these bounds:

- below :math:`q_{lo}=\sigma_b^2` (rounded down): :math:`V(q)\ge\sigma_b^2>q`. (With :math:`\sigma_b^2=0`,
  :math:`q_{lo}=10^{-12}S` for the scale :math:`S`, and :math:`(0,q_{lo})` is not searched.)
- above :math:`q_{hi}`: if :math:`\phi` is bounded, :math:`V\le\sigma_b^2+\sigma_w^2\sup\phi^2`;
  if its tails are linear, :math:`|E\phi^2-\kappa q/\sigma_w^2|\le A+B\sqrt q` with
  :math:`\kappa=\sigma_w^2(a_-^2+a_+^2)/2` (tail slopes :math:`a_\pm`), so :math:`F` has the
  sign of :math:`\kappa-1` beyond an explicit :math:`q_{hi}` (``large_q`` is ``diverges`` for
  :math:`\kappa>1`, ``bounded`` otherwise). For :math:`\kappa=1` or tails of higher degree
  the range ends at :math:`10^{12}S` and ``certified=False``.

>>> from meanfield.maps import Initialisation
>>> r = fixed_points(Initialisation("relu", sigma_w2=2, sigma_b2=0))
>>> r.degenerate, r.points
(True, ())
>>> r = fixed_points(Initialisation("crelu", sigma_w2=2, sigma_b2="0.1", params={"m": 1}))
>>> [p.kind for p in r.points], r.large_q
(['stable'], 'bounded')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

from ._display import Displayed, short
from ._interval import Interval
from ._roots import bracketed_root
from ._types import Context, InitialisationLike
from .maps import (
    DEFAULT_DIGITS,
    GUARD_DIGITS,
    Initialisation,
    cancellation_digits,
    check_digits,
    compiled,
    format_value,
    operating_point,
)

__all__ = ["FixedPoint", "FixedPointReport", "fixed_points", "classify"]

_INITIAL_CELLS = 96
_SPLIT = 4
_MIN_REL_WIDTH = 1e-12
_MAX_ROUNDS = 40
_MAX_LIVE_CELLS = 4096   # budget: cells still undecided past it are sampled instead
_RUN_SAMPLES = 64        # high-precision samples per undecided run
_MAX_RUNS = 16
_FLAT_WIDTH = 1e-2       # a tangency's |F| <= tol set is narrower than this, relative to q


@dataclass(frozen=True)
class FixedPoint:
    """One fixed point q = V(q) with V'(q), V''(q), chi_1(q) and its kind."""

    q: Any
    v_prime: Any
    v_second: Any
    chi1: Any
    kind: str  # "stable" | "unstable" | "half-stable"
    attracts_from: str | None = None  # half-stable only: "below" | "above"

    def to_dict(self, digits: int = 8) -> dict:
        """The fixed point as plain data, numbers as decimal strings of ``digits`` digits."""
        return {"q": format_value(self.q, digits), "v_prime": format_value(self.v_prime, digits),
                "v_second": format_value(self.v_second, digits), "chi1": format_value(self.chi1, digits),
                "kind": self.kind, "attracts_from": self.attracts_from}


@dataclass(frozen=True, repr=False)
class FixedPointReport(Displayed):
    """All fixed points of V on the searched range, in increasing q, and the large-q behaviour.

    ``large_q`` is ``"diverges"`` (V(q) > q for all large q: the variance grows without
    bound from above the last fixed point), ``"bounded"`` (V(q) < q for all large q) or
    ``"degenerate"`` (every q is a fixed point). ``certified`` is True when the search
    range was covered by proven cells (module docstring); ``unresolved`` lists ranges
    where |V(q) - q| stayed below the working precision's noise, so that no sign, and no
    fixed point, could be decided there, and the range around a fixed point whose crossing
    is so shallow that it is located only to that range (raise ``digits`` to resolve them).
    """

    init: Initialisation
    points: tuple[FixedPoint, ...]
    large_q: str
    degenerate: bool
    search_range: tuple[float, float]
    certified: bool
    digits: int
    unresolved: tuple[tuple[float, float], ...] = ()

    def _headline(self):
        points = "; ".join(f"{short(p.q)} {p.kind}" for p in self.points) or "none"
        return [("activation", self.init.activation.name), ("points", points), ("large_q", self.large_q),
                ("certified", self.certified)] + ([("unresolved", len(self.unresolved))] if self.unresolved else [])

    def _tidy_rows(self):
        return [{"q": p.q, "kind": p.kind, "v_prime": p.v_prime, "v_second": p.v_second, "chi1": p.chi1,
                 "attracts_from": p.attracts_from} for p in self.points]

    @property
    def stable(self) -> tuple[FixedPoint, ...]:
        return tuple(p for p in self.points if p.kind == "stable")

    def to_dict(self, digits: int = 8) -> dict:
        """The report as plain data (what ``meanfield fixed-points --json`` prints): the
        points under ``fixed_points``, numbers as decimal strings of ``digits`` digits, the
        search range and unresolved ranges as float reprs.

        >>> from meanfield.eoc import eoc_parameters
        >>> d = eoc_parameters("relu", sparsity="0.7").fixed_points.to_dict(6)
        >>> d["fixed_points"][0]["q"], d["fixed_points"][0]["kind"], d["large_q"]
        ('1.00000', 'half-stable', 'diverges')
        """
        return {"fixed_points": [p.to_dict(digits) for p in self.points], "large_q": self.large_q,
                "degenerate": self.degenerate, "certified": self.certified,
                "search_range": [repr(float(v)) for v in self.search_range],
                "unresolved": [[repr(float(a)), repr(float(b))] for a, b in self.unresolved]}

    def summary(self, digits: int = 8) -> str:
        """The report as text, values to ``digits`` significant digits (what
        ``meanfield fixed-points`` prints).

        >>> from meanfield.eoc import eoc_parameters
        >>> print(eoc_parameters("crelu", sparsity="0.85", v_prime="0.7").fixed_points.summary(6))
        fixed points in [...]: 1
          q = 1.00000  V' = 0.700000  V'' = ...  chi1 = 1.00000  stable
        large q: bounded
        """
        if self.degenerate:
            return "fixed points: every q > 0 (V(q) = q identically)"
        lo, hi = self.search_range
        lines = [f"fixed points in [{lo:.6g}, {hi:.6g}]"
                 f"{'' if self.certified else ' (not certified: see docs/theory.md, Every fixed point)'}: {len(self.points)}"]
        for p in self.points:
            side = f", attracts from {p.attracts_from}" if p.attracts_from else ""
            lines.append(f"  q = {format_value(p.q, digits)}  V' = {format_value(p.v_prime, digits)}  "
                         f"V'' = {format_value(p.v_second, digits)}  chi1 = {format_value(p.chi1, digits)}  {p.kind}{side}")
        for a, b in self.unresolved:
            lines.append(f"  unresolved: |V(q) - q| is below the working precision on [{a:.6g}, {b:.6g}]"
                         " (ask for more digits)")
        lines.append(f"large q: {self.large_q}")
        return "\n".join(lines)


# -- the range to search ------------------------------------------------------------------

def _numeric_pieces(init: Initialisation):
    return init.activation.numeric_pieces(**init.parameters)


def _sup_abs(poly: np.poly1d, lo: float, hi: float) -> float:
    """max |poly| on [lo, hi] (finite), from the ends and the critical points."""
    cand = [lo, hi] + [r.real for r in np.atleast_1d(poly.deriv().r)
                       if abs(r.imag) < 1e-12 and lo < r.real < hi] if poly.order > 0 else [lo, hi]
    return max(abs(poly(c)) for c in cand) * (1 + 1e-9)


def _range_and_tail(init: Initialisation):
    """(q_lo, q_hi, large_q, certified, scale) as described in the module docstring."""
    pieces = _numeric_pieces(init)
    sw, sb = float(init.sigma_w2), float(init.sigma_b2)
    finite = [b for lo, hi, _ in pieces for b in (lo, hi) if math.isfinite(b)]
    scale = max([1.0, sb] + [b * b for b in finite])
    # float(sigma_b2) may round above the exact sigma_b2: start just below it
    q_lo = sb * (1 - 4e-16) if sb > 0 else 1e-12 * scale
    left, right = pieces[0][2], pieces[-1][2]
    b_left, b_right = (pieces[0][1], pieces[-1][0]) if len(pieces) > 1 else (0.0, 0.0)
    lo_mid, hi_mid = min(b_left, 0.0), max(b_right, 0.0)

    def sup_middle(lo, hi):
        best = 0.0
        for a, b, poly in pieces:
            a, b = max(a, lo), min(b, hi)
            if a <= b:
                best = max(best, _sup_abs(poly, a, b))
        return best

    if left.order <= 0 and right.order <= 0:  # bounded activation
        sup2 = max(left(0.0) ** 2, right(0.0) ** 2, sup_middle(b_left, b_right) ** 2)
        return q_lo, (sb + sw * sup2) * (1 + 1e-9) + 1e-300, "bounded", True, scale
    if left.order <= 1 and right.order <= 1:  # linear tails
        a_m, c_m = (left.c[0], left.c[1]) if left.order == 1 else (0.0, left(0.0))
        a_p, c_p = (right.c[0], right.c[1]) if right.order == 1 else (0.0, right(0.0))
        kappa = sw * (a_m**2 + a_p**2) / 2
        big_a = max(c_m**2, c_p**2) + sup_middle(lo_mid, hi_mid) ** 2 \
            + max(a_m**2, a_p**2) * max(lo_mid**2, hi_mid**2)
        big_b = 2 * max(abs(a_m * c_m), abs(a_p * c_p)) * math.sqrt(2 / math.pi)
        gap = abs(kappa - 1)
        if gap > 1e-9:
            const = sw * big_a + (sb if kappa < 1 else 0.0)
            t = (sw * big_b + math.sqrt((sw * big_b) ** 2 + 4 * gap * const)) / (2 * gap)
            q_hi = max(t * t, lo_mid**2, hi_mid**2, q_lo) * 1.01 + 1e-300
            return q_lo, q_hi, ("diverges" if kappa > 1 else "bounded"), True, scale
    return q_lo, 1e12 * scale, None, False, scale


# -- interval branch and bound ---------------------------------------------------------

def _ulp_interval(v: float) -> Interval:
    return Interval(np.nextafter(v, -np.inf), np.nextafter(v, np.inf))


def _enclosures(init: Initialisation, lo: np.ndarray, hi: np.ndarray):
    """Interval enclosures of F, F', F'' on the cells [lo, hi] (mean-value refined)."""
    fns = compiled(init.activation).iv
    args = tuple(_ulp_interval(v) for v in init.float_arguments())
    cell = Interval(lo, hi)
    mid = np.sqrt(lo * hi)
    pmid = Interval(mid)
    w = Interval._wrap  # a constant closed form (e.g. V'' = 0 for ReLU) comes back as a number
    f_c = w(fns["variance"](cell, *args)) - cell
    d1_c = w(fns["v_prime"](cell, *args)) - 1.0
    d2_c = w(fns["v_second"](cell, *args))
    f_m = w(fns["variance"](pmid, *args)) - pmid
    d1_m = w(fns["v_prime"](pmid, *args)) - 1.0
    offset = cell - pmid
    f_mv = f_m + d1_c * offset
    d1_mv = d1_m + d2_c * offset

    def meet(a, b):
        return Interval(np.maximum(a.lo, b.lo), np.minimum(a.hi, b.hi))

    return meet(f_c, f_mv), meet(d1_c, d1_mv), _broadcast(d2_c, lo.shape)


def _broadcast(iv: Interval, shape) -> Interval:
    return Interval(np.broadcast_to(iv.lo, shape), np.broadcast_to(iv.hi, shape))


def _classify_cells(init: Initialisation, q_lo: float, q_hi: float):
    """Split [q_lo, q_hi] into cells, each tagged 'none', 'monotone', 'convex', 'concave'
    or 'undecided'. Returns a list of (lo, hi, tag) in increasing order."""
    edges = np.geomspace(q_lo, q_hi, _INITIAL_CELLS + 1)
    lo, hi = edges[:-1], edges[1:]
    done = []
    for _ in range(_MAX_ROUNDS):
        if lo.size == 0:
            break
        f, d1, d2 = _enclosures(init, lo, hi)
        f = _broadcast(f, lo.shape)
        d1 = _broadcast(d1, lo.shape)
        no_root = ~f.contains_zero()
        monotone = ~no_root & ~d1.contains_zero()
        curved = ~no_root & ~monotone & ~d2.contains_zero()
        for tag, sel in (("monotone", monotone), ("curved", curved)):
            for a, b, s in zip(lo[sel], hi[sel], d2.lo[sel]):
                done.append((a, b, ("convex" if s > 0 else "concave") if tag == "curved" else tag))
        rest = ~(no_root | monotone | curved)
        lo, hi = lo[rest], hi[rest]
        tiny = (hi - lo) <= _MIN_REL_WIDTH * hi
        for a, b in zip(lo[tiny], hi[tiny]):
            done.append((a, b, "undecided"))
        lo, hi = lo[~tiny], hi[~tiny]
        if lo.size * _SPLIT > _MAX_LIVE_CELLS:
            break
        if lo.size:
            t = np.linspace(0.0, 1.0, _SPLIT + 1)
            sub = lo[:, None] * (hi / lo)[:, None] ** t[None, :]
            sub[:, 0], sub[:, -1] = lo, hi
            lo, hi = sub[:, :-1].ravel(), sub[:, 1:].ravel()
    done.extend((a, b, "undecided") for a, b in zip(lo, hi))
    done.sort()
    return done


# -- high precision ---------------------------------------------------------------------

class _Precise:
    """F, F', F'' of one initialisation at the context's working precision."""

    def __init__(self, init: Initialisation, ctx):
        self.fns = compiled(init.activation).mp.context(ctx)
        self.args = init.arguments(None, ctx)[1:]
        self.ctx = ctx

    def f(self, q):
        return self.fns["variance"](q, *self.args) - q

    def d1(self, q):
        return self.fns["v_prime"](q, *self.args) - 1

    def d2(self, q):
        return self.fns["v_second"](q, *self.args)


def _noise(q, ctx):
    """Rounding noise of F(q) at the working precision (cancellation is paid for by
    :func:`~meanfield.maps.cancellation_digits`)."""
    return ctx.eps * 256 * q


def _sign(v, tol) -> int:
    return 0 if abs(v) <= tol else (1 if v > 0 else -1)


def _roots_in_cells(cells, P: _Precise, ctx, tol_rel):
    """(q, tangent) for every root, cell by cell, and the cells handed on to sampling
    because a value that decides them is at the noise level of the working precision
    (a noise-level value decides nothing: it is not taken for a root)."""
    roots, undecided = [], []
    cache = {}

    def sign_at(e):
        if e not in cache:
            v = P.f(ctx.mpf(e))
            cache[e] = (v, _sign(v, _noise(e, ctx)))
        return cache[e]

    def d1_sign(e):
        v = P.d1(ctx.mpf(e))
        return v, _sign(v, _noise(1, ctx))

    def monotone(a, b):
        (fa, sa), (fb, sb) = sign_at(a), sign_at(b)
        if sa == 0 or sb == 0:
            return False
        if sa != sb:
            roots.append((bracketed_root(P.f, ctx.mpf(a), ctx.mpf(b), fa, fb, ctx), False))
        return True

    def curved(a, b, up):
        (ga, sga), (gb, sgb) = d1_sign(a), d1_sign(b)
        if sga == 0 or sgb == 0:
            return False
        if sga * up > 0 or sgb * up < 0:  # the extremum is at an end: monotone on the cell
            return monotone(a, b)
        c = bracketed_root(P.d1, ctx.mpf(a), ctx.mpf(b), ga, gb, ctx)
        fc = P.f(c)
        tol = tol_rel * c
        # A tangency: |F| <= tol only on a narrow set around c (width from F''(c)).
        if abs(fc) <= tol and 2 * tol <= _FLAT_WIDTH**2 * c * c * abs(P.d2(c)):
            roots.append((c, True))
            return True
        sc = _sign(fc, _noise(c, ctx))
        if sc == 0:  # F = F' = 0 at working precision, F'' != 0 proven: a double root
            roots.append((c, True))
            return True
        (fa, sa), (fb, sb) = sign_at(a), sign_at(b)
        if 0 in (sa, sb):
            return False
        crossed = False
        for lo, hi, flo, fhi, slo, shi in ((ctx.mpf(a), c, fa, fc, sa, sc), (c, ctx.mpf(b), fc, fb, sc, sb)):
            if slo != shi:
                roots.append((bracketed_root(P.f, lo, hi, flo, fhi, ctx), False))
                crossed = True
        if not crossed and abs(fc) <= tol:  # touches zero within the D-digit tolerance
            roots.append((c, True))
        return True

    for a, b, tag in cells:
        if tag == "monotone":
            decided = monotone(a, b)
        elif tag in ("convex", "concave"):
            decided = curved(a, b, 1 if tag == "convex" else -1)
        else:
            decided = False
        if not decided:
            undecided.append((a, b, "undecided"))
    return roots, undecided


def _undecided_runs(cells):
    """Merge adjacent undecided cells into runs [(lo, hi)]."""
    runs = []
    for a, b, tag in cells:
        if tag != "undecided":
            continue
        if runs and runs[-1][1] >= a:
            runs[-1] = (runs[-1][0], max(runs[-1][1], b))
        else:
            runs.append((a, b))
    while len(runs) > _MAX_RUNS:  # bound the sampling work: close the narrowest log gap
        i = min(range(len(runs) - 1), key=lambda k: runs[k + 1][0] / runs[k][1])
        runs[i:i + 2] = [(runs[i][0], runs[i + 1][1])]
    return runs


def _sample_runs(runs, P: _Precise, ctx):
    """Roots at strict sign changes of F sampled on each undecided run, and the ranges
    where |F| is below the precision's noise (``unresolved``: nothing is claimed there)."""
    roots, unresolved = [], []
    for a, b in runs:
        grid = [ctx.mpf(float(v)) for v in np.geomspace(a, b, _RUN_SAMPLES + 1)]
        vals = [P.f(g) for g in grid]
        signs = [_sign(v, _noise(g, ctx)) for g, v in zip(grid, vals)]
        flat = [k for k, sg in enumerate(signs) if sg == 0]
        if flat:
            unresolved.append((float(grid[max(flat[0] - 1, 0)]), float(grid[min(flat[-1] + 1, _RUN_SAMPLES)])))
        strict = [k for k, sg in enumerate(signs) if sg != 0]
        for k0, k1 in zip(strict, strict[1:]):  # a change of strict signs, flat samples between or not
            if signs[k0] != signs[k1]:
                roots.append((bracketed_root(P.f, grid[k0], grid[k1], vals[k0], vals[k1], ctx), False))
    return roots, unresolved


def _is_tangent(q, d1, d2, tol_rel) -> bool:
    """Is a root with F'(q) = d1, F''(q) = d2 a tangency at this tolerance? Its partner root
    (where F turns back) would lie where the minimum of |F|, about d1^2 / (2 |d2|), is below
    tol; and the set where |F| <= tol must be narrow (else it is a flat stretch)."""
    tol = tol_rel * q
    return d1 * d1 <= 2 * tol * abs(d2) and 2 * tol <= _FLAT_WIDTH**2 * q * q * abs(d2)


def _consolidate(found, P: _Precise, ctx, tol_rel, digits):
    """Sort the roots, drop copies (a root on a shared cell edge is found twice), and merge
    roots that are one tangency at this precision into a single tangent point."""
    out = []
    for q, tangent in sorted(found, key=lambda r: r[0]):
        d1, d2 = P.d1(q), P.d2(q)
        # V'(q) = 1 at working precision is half-stable by definition
        tangent = tangent or _is_tangent(q, d1, d2, tol_rel) or (abs(d1) <= _noise(1, ctx) and d2 != 0)
        if out:
            q0, t0, d1_0, d2_0 = out[-1]
            same = abs(q - q0) <= ctx.mpf(10) ** (-digits) * q
            pair = t0 and tangent and abs(q - q0) <= 4 * ctx.sqrt(2 * tol_rel * q / abs(d2))
            if same or pair:
                if d1_0 * d1 < 0:  # two roots astride F' = 0, one point at D digits
                    q = bracketed_root(P.d1, q0, q, d1_0, d1, ctx)
                    d1, d2 = P.d1(q), P.d2(q)
                    tangent = True
                out[-1] = (q, t0 or tangent, d1, d2)
                continue
        out.append((q, tangent, d1, d2))
    return [(q, tangent) for q, tangent, _, _ in out]


def classify(q, v_prime, v_second, tangent: bool, ctx=mpmath.mp) -> tuple[str, str | None]:
    """Kind of a fixed point from V'(q), V''(q) (and whether it was found as a tangency)."""
    if tangent:
        return "half-stable", ("below" if v_second > 0 else "above")
    return ("stable", None) if v_prime < 1 else ("unstable", None)


def _is_degenerate(P: _Precise, scale: float, ctx) -> bool:
    """V(q) = q identically? (V is analytic, so a few scattered points decide.)"""
    for t in ("0.3719", "1.9133", "13.27", "151.9"):
        q = ctx.mpf(t) * scale
        if abs(P.f(q)) > ctx.eps * 2**10 * q:
            return False
    return True


def fixed_points(init: InitialisationLike, *, digits: int = DEFAULT_DIGITS,
                 ctx: Context = mpmath.mp) -> FixedPointReport:
    """Every fixed point of the variance map of ``init``, classified (see module docstring).

    >>> from meanfield.maps import Initialisation
    >>> # ReLU: V(q) = sigma_b2 + sigma_w2 q / 2, so q* = 0.5 / (1 - 1/2) = 1 with V' = 1/2
    >>> r = fixed_points(Initialisation("relu0", sigma_w2=1, sigma_b2="0.5"), digits=20)
    >>> [(mpmath.nstr(p.q, 20), mpmath.nstr(p.v_prime, 3), p.kind) for p in r.points], r.large_q
    ([('1.0', '0.5', 'stable')], 'bounded')
    """
    digits = check_digits(digits)
    init, _ = operating_point(init)
    q_lo, q_hi, large_q, certified, scale = _range_and_tail(init)
    q_lo, q_hi = float(q_lo), float(q_hi)
    with ctx.workdps(digits + GUARD_DIGITS + cancellation_digits(init, max(q_hi, scale))):
        P = _Precise(init, ctx)
        if _is_degenerate(P, scale, ctx):
            return FixedPointReport(init, (), "degenerate", True, (q_lo, q_hi), True, digits)
        points, unresolved = [], ()
        if q_hi > q_lo:
            cells = _classify_cells(init, q_lo, q_hi)
            tol_rel = ctx.mpf(10) ** (3 - digits)
            found, handed_on = _roots_in_cells(cells, P, ctx, tol_rel)
            runs = _undecided_runs(sorted(cells + handed_on))
            if runs:
                certified = False
                extra, unresolved = _sample_runs(runs, P, ctx)
                found += extra
            merged = _consolidate(found, P, ctx, tol_rel, digits)
            blurred = []
            for q, tangent in merged:
                vp, vs = P.d1(q) + 1, P.d2(q)
                # a crossing so shallow that |F| stays below the noise over more than the D-digit
                # width: a root is proven in the bracket, its place only to +-width (said so)
                width = _noise(q, ctx) / abs(vp - 1) if vp != 1 else ctx.inf
                if not tangent and width > ctx.mpf(10) ** (-digits) * q:
                    blurred.append((float(max(q - width, q_lo)), float(min(q + width, q_hi))))
                chi1 = P.fns["chi1"](q, *P.args)
                kind, side = classify(q, vp, vs, tangent, ctx)
                points.append(FixedPoint(+q, +vp, +vs, +chi1, kind, side))
            if blurred:
                certified = False
                unresolved = sorted(list(unresolved) + blurred)
        if large_q is None:
            large_q = "diverges" if P.f(ctx.mpf(q_hi)) > 0 else "bounded"
    return FixedPointReport(init, tuple(points), large_q, False, (q_lo, q_hi), certified, digits,
                            tuple(unresolved))
