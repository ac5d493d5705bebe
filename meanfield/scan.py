r"""Phase diagrams: the verdict over a dense grid of (s, m/sqrt(q*)), on a float64 fast path.

For a clipped activation (CReLU, CST) on the edge of chaos, everything the verdict needs
depends only on the sparsity s and the clip ratio :math:`r=m/\sqrt{q^*}` (scale
invariance, Price et al. 2024: :math:`\phi_{c\tau,cm}(cx)=c\,\phi_{\tau,m}(x)`). For each
point this module evaluates the closed forms of :mod:`meanfield.maps` in float64,
vectorized over a whole row of clip ratios and a grid of q:

- the EoC weights :math:`\sigma_w^2=1/E[\phi'^2]`, :math:`\sigma_b^2=q^*-\sigma_w^2E[\phi^2]`
  (a point with :math:`\sigma_b^2<0` is ``infeasible``);
- every fixed point: the zeros of :math:`g(q)=(V(q)-q)/(q-q^*)` on
  :math:`[\sigma_b^2, \sigma_b^2+\sigma_w^2m^2]`, which holds them all since
  :math:`\sigma_b^2\le V\le\sigma_b^2+\sigma_w^2m^2`; dividing out the known root
  :math:`q^*` keeps g well conditioned there. Sign changes are bisected; local extrema of
  g are refined by golden section, so a pair of fixed points closer than the grid is found;
- their kinds from :math:`V'`, :math:`\chi_1` at the other stable ones, the margin
  :math:`\min_{q>q^*}(q-V(q))/(q-q^*)` and :math:`\rho(0)=(\sigma_b^2+\sigma_w^2E[\phi]^2)/q^*`;
- the verdict, by the very rules of :func:`meanfield.diagnose.diagnose` (with a
  ``width``, the finite-width model of :mod:`meanfield.finite_width` decides the rules that
  ask whether a network leaves q*'s basin, as there).

Where float64 cannot decide (a fixed point or an extremum of g within 1e-7 of the
identity, :math:`V'` within 1e-7 of 1 at a fixed point, the margin or :math:`\rho(0)` within
1e-9 of a threshold, or an expected cancellation past 8 digits), the point is recomputed
with mpmath by :func:`~meanfield.diagnose.diagnose` at 20 digits and marked ``refined``.
So every verdict is the one the high-precision path gives; the reported numbers are
float64: relative error about 1e-12, except that :math:`\sigma_b^2` and :math:`\rho(0)`
carry an absolute error of about :math:`10^{-16}q^*` (relative 1e-9 where
:math:`\sigma_b^2\approx10^{-7}q^*`).

>>> d = phase_diagram("cst", [0.8], [1.6105503, 0.7217])
>>> d.verdict.tolist(), d.n_fixed_points.tolist()
([['exploding', 'too-sparse']], [[3, 1]])
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from . import validation
from ._display import Displayed
from ._jobs import run_tasks, thread_context
from ._types import ActivationLike, FilePath
from .activations import by_sparsity, get_activation
from .correlation import CorrelationReport
from .diagnose import ESCAPE_PATHS, MARGIN_MIN, RHO0_MAX, diagnose_eoc, verdict
from .eoc import eoc_parameters
from .errors import NoSolutionError, ParameterError
from .fixed_points import FixedPoint, FixedPointReport
from .finite_width import finite_width_model
from .maps import Initialisation, check_q, compiled, lambdify_np
from .symbolic import derivative_mean
from .symbolic import q as q_symbol

__all__ = ["PhaseDiagram", "phase_diagram", "phase_point", "eoc_curve", "clipped_by_sparsity", "FIELDS"]

#: The per-point fields of a :class:`PhaseDiagram`.
FIELDS = ("verdict", "n_fixed_points", "tau", "sigma_w2", "sigma_b2", "v_prime", "v_second",
          "rho0", "margin", "chi1_other", "refined")
_GRID = 600          # q points per configuration
_UNDECIDED = 1e-7    # |g| or |V' - 1| below this: float64 cannot decide
_THRESHOLD_TOL = 1e-9
_MAX_POINTS = 1_000_000


@functools.lru_cache(maxsize=None)
def _mean_phi(act):
    """E[phi(sqrt(q) z)] compiled for numpy (closed form of meanfield.symbolic)."""
    return lambdify_np((q_symbol,) + act.symbols, derivative_mean(act, 0))


def clipped_by_sparsity() -> tuple[str, ...]:
    """The activations known by name whose phase diagram can be drawn: clipped, with a
    sparsity rule, and with no parameter but the rule's threshold and clip (the float64
    path of a diagram evaluates them in that order)."""
    return tuple(k for k, a in by_sparsity().items() if a.sparsity_rule.clipped
                 and [p.name for p in a.parameters] == [a.sparsity_rule.threshold, a.sparsity_rule.clip])


def _golden_min(f, a, b, iters=50):
    """Vectorized golden-section search for the minimum of f on [a, b] (arrays): (x, f(x))."""
    g = (math.sqrt(5) - 1) / 2
    for _ in range(iters):
        x1, x2 = b - g * (b - a), a + g * (b - a)
        left = f(x1) < f(x2)
        a, b = np.where(left, a, x1), np.where(left, x2, b)
    x = 0.5 * (a + b)
    return x, f(x)


def _bisect(f, a, b, iters=60):
    """Vectorized bisection of sign changes of f on [a, b] (f(a) f(b) < 0)."""
    fa = f(a)
    for _ in range(iters):
        mid = 0.5 * (a + b)
        fm = f(mid)
        same = np.sign(fm) == np.sign(fa)
        a, fa = np.where(same, mid, a), np.where(same, fm, fa)
        b = np.where(same, b, mid)
    return 0.5 * (a + b)


class _Row:
    """The float64 closed forms of one activation at one s, for a vector of clip ratios."""

    def __init__(self, act, s: float, q_star: float, ratios: np.ndarray):
        self.act = act
        self.np = compiled(act).np
        level = act.sparsity_rule.level(s)
        self.q_star = q_star
        from scipy.special import ndtri  # not needed to list what a diagram can draw
        self.tau = math.sqrt(q_star) * float(ndtri(level))
        self.m = ratios * math.sqrt(q_star)
        with np.errstate(all="ignore"):
            e_dphi2 = self.np["e_dphi2"](q_star, 1.0, 0.0, self.tau, self.m)
            e_phi2 = self.np["e_phi2"](q_star, 1.0, 0.0, self.tau, self.m)
            self.sigma_w2 = 1.0 / e_dphi2
            self.sigma_b2 = q_star - self.sigma_w2 * e_phi2
            self.e_phi = _mean_phi(act)(q_star, self.tau, self.m) * np.ones_like(self.m)

    def f(self, name, q, j):
        """Closed form ``name`` at q (array) for the configurations j (broadcast with q)."""
        with np.errstate(all="ignore"):
            return self.np[name](q, self.sigma_w2[j], np.maximum(self.sigma_b2[j], 0.0),
                                 self.tau, self.m[j])

    def g(self, q, j):
        return (self.f("variance", q, j) - q) / (q - self.q_star)

    def escape(self, j: int, width: int, depth: int):
        """The ``escape`` function of :func:`meanfield.diagnose.verdict` for configuration j
        at ``width`` (the finite-width model from q*, as :func:`meanfield.diagnose.diagnose`
        runs it), run only if a rule asks, once per basin edge."""
        known = {}

        def escape(edge):
            if edge not in known:
                rule = self.act.sparsity_rule
                init = Initialisation(self.act, float(self.sigma_w2[j]), max(float(self.sigma_b2[j]), 0.0),
                                      {rule.threshold: self.tau, rule.clip: float(self.m[j])})
                p, se, _ = finite_width_model(init, self.q_star, width=width, depth=depth, paths=ESCAPE_PATHS,
                                              threshold=None if edge is None else float(edge))
                known[edge] = (p, se)
            return known[edge]
        return escape


def _float64_row(act, s: float, q_star: float, ratios: np.ndarray, depth: int, width: int | None = None):
    """Per-point results for one s: a dict of arrays (see FIELDS) and the undecided mask."""
    R = _Row(act, s, q_star, ratios)
    n = len(ratios)
    out = {k: np.full(n, np.nan) for k in FIELDS if k not in ("verdict", "refined")}
    out["n_fixed_points"] = np.full(n, -1)
    verdict = np.array(["infeasible"] * n, dtype=object)
    reason = [""] * n
    undecided = np.zeros(n, dtype=bool)
    out["tau"][:] = R.tau
    feasible = np.isfinite(R.sigma_w2) & (R.sigma_w2 < 1e30) & (R.sigma_b2 >= -_THRESHOLD_TOL * q_star)
    undecided |= np.abs(R.sigma_b2) < _THRESHOLD_TOL * q_star
    for j in range(n):
        if feasible[j]:
            out["sigma_w2"][j], out["sigma_b2"][j] = R.sigma_w2[j], max(R.sigma_b2[j], 0.0)
        else:
            reason[j] = (f"sigma_b2 = {R.sigma_b2[j]:.4g} < 0: no edge-of-chaos initialisation of "
                         f"{act.name} with s = {s}, m = {R.m[j]:.6g}")
    idx = np.nonzero(feasible & ~undecided)[0]
    if idx.size:
        sb = np.maximum(R.sigma_b2[idx], 0.0)
        lo = np.maximum(sb * (1 - 1e-12), 1e-12 * q_star)
        hi = (sb + R.sigma_w2[idx] * R.m[idx] ** 2) * (1 + 1e-9) + 1e-12 * q_star
        # float64 loses about 2 log10(q / m^2) digits on the clip piece (maps.cancellation_digits)
        undecided[idx[2 * np.log10(np.maximum(hi / R.m[idx] ** 2, 1.0)) > 8]] = True
        u = np.linspace(0.0, 1.0, _GRID)
        qs = lo[:, None] * (hi / lo)[:, None] ** u[None, :]
        near = np.abs(qs / q_star - 1) < 1e-4   # g is ill-conditioned there: replaced by V'(q*) - 1
        jj = idx[:, None]
        vp_star = R.f("v_prime", q_star, idx)
        vs_star = R.f("v_second", q_star, idx)
        gs = np.where(near, (vp_star - 1)[:, None], R.g(qs, jj))
        # margin min_{q > q*} (q - V(q)) / (q - q*): grid minimum, then golden section around it
        neg = np.where(qs > q_star * (1 + 1e-4), -gs, np.inf)
        k = np.argmin(neg, axis=1)
        rows = np.arange(len(idx))
        a = np.maximum(qs[rows, np.maximum(k - 1, 0)], q_star * (1 + 1e-4))  # only above q*
        b = qs[rows, np.minimum(k + 1, _GRID - 1)]
        _, best = _golden_min(lambda t: -R.g(t, idx), a, b)
        margins = np.minimum(np.minimum(best, neg[rows, k]), 1 - vp_star)
        for r, j in enumerate(idx):
            res = _one_point(R, j, qs[r], gs[r], vp_star[r], vs_star[r], margins[r], depth, width)
            if res is None:
                undecided[j] = True
                continue
            verdict[j], reason[j] = res.pop("verdict"), res.pop("reason")
            for k, v in res.items():
                out[k][j] = v
    return out, verdict, reason, undecided


def _one_point(R: _Row, j: int, q: np.ndarray, g: np.ndarray, vp_star: float, vs_star: float,
               margin_above: float, depth: int, width: int | None = None):
    """Fixed points, margin, rho(0) and the verdict of configuration j (at ``width``, if
    given); None if undecided."""
    q_star = R.q_star
    if not (np.all(np.isfinite(g)) and math.isfinite(vp_star)) or abs(vp_star - 1) < _UNDECIDED:
        return None
    sign = np.sign(g)
    brackets = list(np.nonzero(sign[:-1] * sign[1:] < 0)[0])
    # a local extremum of g towards zero may hide two close roots: refine it
    mag = np.abs(g)
    ext = np.nonzero((mag[1:-1] <= mag[:-2]) & (mag[1:-1] <= mag[2:]) & (sign[1:-1] == sign[:-2])
                     & (sign[1:-1] == sign[2:]))[0] + 1
    step = np.maximum(np.abs(g[ext] - g[ext - 1]), np.abs(g[ext + 1] - g[ext]))
    ext = ext[mag[ext] < 4 * step + _UNDECIDED]  # farther from 0 than g varies: no root there
    roots = []
    for k in ext:
        s = sign[k]
        x, fx = _golden_min(lambda t: s * R.g(t, j), np.array(q[k - 1]), np.array(q[k + 1]))
        x, fx = float(x), float(fx)
        if abs(fx) < _UNDECIDED:
            return None
        if fx < 0:  # two roots around the extremum
            roots += [float(_bisect(lambda t: R.g(t, j), np.array(q[k - 1]), np.array(x))),
                      float(_bisect(lambda t: R.g(t, j), np.array(x), np.array(q[k + 1])))]
    for k in brackets:
        roots.append(float(_bisect(lambda t: R.g(t, j), np.array(q[k]), np.array(q[k + 1]))))
    roots = sorted(roots)
    points = [FixedPoint(q_star, vp_star, vs_star, 1.0, "stable" if vp_star < 1 else "unstable")]
    for r in roots:
        vp = float(R.f("v_prime", r, j))
        if abs(vp - 1) < _UNDECIDED:
            return None
        points.append(FixedPoint(r, vp, float(R.f("v_second", r, j)), float(R.f("chi1", r, j)),
                                 "stable" if vp < 1 else "unstable"))
    points.sort(key=lambda p: p.q)
    point = next(p for p in points if p.q == q_star)
    others = tuple(p for p in points if p is not point and p.kind != "unstable")
    if any(abs(p.chi1 - 1) < _UNDECIDED for p in others):
        return None
    below = [p.q for p in points if p.q < q_star and p.kind != "stable"]
    upper = next((p.q for p in points if p.q > q_star and p.kind != "stable"), None)
    basin = (below[-1] if below else None, upper)
    if point.kind != "stable":
        margin = None
    elif any(p.q > q_star for p in points):
        margin = 0.0
    else:
        margin = float(margin_above)
        if not math.isfinite(margin) or abs(margin - MARGIN_MIN) < _THRESHOLD_TOL:
            return None
    rho0 = (R.sigma_b2[j] + R.sigma_w2[j] * R.e_phi[j] ** 2) / q_star
    if abs(rho0 - RHO0_MAX) < _THRESHOLD_TOL:
        return None
    report = FixedPointReport(None, tuple(points), "bounded", False, (float(q[0]), float(q[-1])), False, 16)
    corr = CorrelationReport(None, q_star, (), rho0, 1.0, "edge of chaos", None, False, (), 16)
    escape = None if width is None else R.escape(j, width, depth)
    verdict_, reason = verdict(point, report, others, basin, margin, corr, depth, escape)
    return {"verdict": verdict_, "reason": reason, "n_fixed_points": len(points), "v_prime": vp_star,
            "v_second": vs_star, "rho0": rho0, "margin": np.nan if margin is None else margin,
            "chi1_other": max((p.chi1 for p in others), default=np.nan)}


def phase_point(activation: str, sparsity, clip_ratio, *, q_star=1.0, depth: int = 100,
                width: int | None = None, digits: int = 20) -> dict[str, Any]:
    """One point by the high-precision path (:func:`meanfield.diagnose.diagnose`), as floats."""
    m = float(clip_ratio) * math.sqrt(float(q_star))
    ctx = thread_context()  # points computed in threads must not share mpmath's precision
    try:
        sol = eoc_parameters(activation, repr(float(sparsity)), q_star=repr(float(q_star)),
                             clip=repr(m), digits=digits, ctx=ctx)
    except NoSolutionError as exc:
        return {"verdict": "infeasible", "reason": str(exc), "n_fixed_points": -1}
    try:
        d = diagnose_eoc(sol, depth=depth, width=width, digits=digits, ctx=ctx)
    except ParameterError as exc:  # q* unresolved even at digits + 30 (a nearly linear map)
        return {"verdict": "unresolved", "reason": str(exc), "n_fixed_points": -1}
    f = lambda v: float("nan") if v is None else float(v)  # noqa: E731
    return {"verdict": d.verdict, "reason": d.reason, "n_fixed_points": len(d.fixed_points.points),
            "tau": f(sol.tau), "sigma_w2": f(sol.sigma_w2), "sigma_b2": f(sol.sigma_b2),
            "v_prime": f(d.v_prime), "v_second": f(d.v_second), "rho0": f(d.rho0), "margin": f(d.margin),
            "chi1_other": max((float(p.chi1) for p in d.other_stable), default=float("nan"))}


def _row_task(activation: str, s: float, q_star: float, ratios: list[float], depth: int,
              width: int | None = None) -> dict:
    """One row of the diagram (fixed s): float64 everywhere, mpmath where float64 is undecided."""
    from .activations import get_activation
    act = get_activation(activation)
    r = np.asarray(ratios, dtype=float)
    out, verdict, reason, undecided = _float64_row(act, s, q_star, r, depth, width)
    refined = np.zeros(len(r), dtype=bool)
    for j in np.nonzero(undecided)[0]:
        res = phase_point(activation, s, r[j], q_star=q_star, depth=depth, width=width)
        verdict[j], reason[j] = res.pop("verdict"), res.pop("reason")
        for k, v in res.items():
            out[k][j] = v
        refined[j] = True
    row = {k: [None if isinstance(v, float) and math.isnan(v) else v for v in out[k].tolist()] for k in out}
    row.update(verdict=list(verdict), reason=reason, refined=refined.tolist())
    return row


@dataclass(frozen=True, repr=False)
class PhaseDiagram(Displayed):
    """Per-point results over ``sparsities`` x ``clip_ratios`` (arrays of shape (n_s, n_r)).

    ``verdict`` holds the verdict words (``infeasible`` where no EoC initialisation
    exists; ``unresolved`` where even 50 digits cannot tell q* from a fixed point next to
    it, which happens only where V(q) - q is below 1e-40, e.g. CST at s = 0 with
    m > 10 sqrt(q*): a nearly linear network), ``n_fixed_points`` the number of fixed points of V (-1: infeasible),
    ``refined`` where the point was decided by mpmath; numbers are NaN where undefined.
    """

    activation: str
    q_star: float
    depth: int
    sparsities: np.ndarray
    clip_ratios: np.ndarray
    verdict: np.ndarray
    reason: np.ndarray
    n_fixed_points: np.ndarray
    tau: np.ndarray
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    v_prime: np.ndarray
    v_second: np.ndarray
    rho0: np.ndarray
    margin: np.ndarray
    chi1_other: np.ndarray
    refined: np.ndarray
    #: the width the verdicts are for (None: infinite width)
    width: int | None = None

    def _headline(self):
        words, counts = np.unique(self.verdict, return_counts=True)
        return [("activation", self.activation), ("grid", f"{len(self.sparsities)} x {len(self.clip_ratios)}"),
                ("q_star", self.q_star), ("depth", self.depth),
                ("width", "infinite" if self.width is None else self.width),
                ("verdicts", ", ".join(f"{w} {n}" for w, n in zip(words, counts)))]

    def _tidy_rows(self):
        return self.records()

    def records(self) -> list[dict]:
        """One dict per point (s, clip_ratio, q*, the depth and width the verdict is for
        (width None: infinite), then :data:`FIELDS` and the reason)."""
        out = []
        for i, s in enumerate(self.sparsities):
            for j, r in enumerate(self.clip_ratios):
                rec = {"activation": self.activation, "sparsity": float(s), "clip_ratio": float(r),
                       "q_star": self.q_star, "depth": self.depth, "width": self.width}
                for k in FIELDS:
                    v = getattr(self, k)[i, j]
                    rec[k] = v.item() if hasattr(v, "item") else v
                rec["reason"] = str(self.reason[i, j])
                out.append(rec)
        return out

    def to_csv(self) -> str:
        import csv
        import io
        buf = io.StringIO()
        recs = self.records()
        writer = csv.DictWriter(buf, fieldnames=list(recs[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows([{k: _csv_cell(v) for k, v in r.items()} for r in recs])
        return buf.getvalue()

    def to_json(self) -> str:
        clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
        return json.dumps([{k: clean(v) for k, v in r.items()} for r in self.records()], indent=1) + "\n"

    def counts(self) -> dict[str, int]:
        """How many points have each verdict."""
        words, n = np.unique(self.verdict.astype(str), return_counts=True)
        return {str(w): int(c) for w, c in zip(words, n)}


def _csv_cell(v):
    """An undefined number (NaN) is an empty cell and an infinite one '+inf' / '-inf', as in
    the stability table's CSV: the text 'nan' never appears."""
    if isinstance(v, float) and not math.isfinite(v):
        return "" if math.isnan(v) else ("+inf" if v > 0 else "-inf")
    return v


def _check_axis(values, name, lo, hi, lo_closed):
    try:
        arr = np.asarray([float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a list of numbers") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ParameterError(f"{name} must be a non-empty list of numbers")
    ok = np.isfinite(arr) & ((arr >= lo) if lo_closed else (arr > lo)) & (arr < hi)
    if not ok.all():
        bad = arr[~ok][0]
        raise ParameterError(f"{name} must hold values in {'[' if lo_closed else '('}{lo:g}, {hi:g}) only, "
                             f"got {float(bad):g}")
    tiny = (arr != 0) & (np.abs(arr) < 1e-100)
    if tiny.any():
        raise ParameterError(f"{name} must hold nonzero values of at least 1e-100 only, got {float(arr[tiny][0]):g}")
    return arr


def phase_diagram(activation: str, sparsities: Sequence, clip_ratios: Sequence, *, q_star: float = 1.0,
                  depth: int = 100, width: int | None = None, jobs: int | None = None,
                  progress: bool | None = None, journal: FilePath | None = None) -> PhaseDiagram:
    """The verdict and its ingredients at every (s, m/sqrt(q*)) for ``crelu`` or ``cst``,
    for networks of ``depth`` hidden layers and, if given, ``width`` units per layer (as in
    :func:`meanfield.diagnose.diagnose`: the finite-width model decides the half-stable,
    fragile and three-fixed-point rules, at a cost of about 0.1-0.4 s per point that asks).

    Rows (one per sparsity) run on ``jobs`` joblib workers, with a progress bar and an
    optional resumable ``journal`` as in :func:`meanfield.tables.stability_table`.
    """
    clipped = clipped_by_sparsity()
    if not isinstance(activation, str) or activation not in clipped:
        raise ParameterError(f"activation = {activation!r}: phase diagrams are over the clip level, "
                             f"for a clipped activation with a sparsity rule: {', '.join(clipped)}")
    s_min = get_activation(activation).sparsity_rule.lowest
    s = _check_axis(sparsities, "sparsities", s_min, 1.0, True)
    r = _check_axis(clip_ratios, "clip_ratios", 1e-3, 1e3, False)
    if s.size * r.size > _MAX_POINTS:
        raise ParameterError(f"{s.size} x {r.size} points: at most {_MAX_POINTS}")
    check_q(q_star, "q_star")
    q = float(q_star)
    depth = validation.depth(depth)
    width = None if width is None else validation.width(width)
    job = {"kind": "phase_diagram", "activation": activation, "q_star": q, "depth": depth,
           "clip_ratios": r.tolist()}
    if width is not None:  # (a journal of infinite width keeps its old key)
        job["width"] = width
    tasks = [(repr(float(si)), (activation, float(si), q, r.tolist(), depth, width)) for si in s]
    results = run_tasks(_row_task, tasks, job=job, jobs=jobs, progress=progress, journal=journal,
                        desc=f"phase diagram {activation}", decode=_decode_row)
    rows = [results[k] for k, _ in tasks]
    arrays = {}
    for k in FIELDS + ("reason",):
        col = [row[k] for row in rows]
        if k in ("verdict", "reason"):
            arr = np.array(col, dtype=object).astype(str)
        elif k == "n_fixed_points":
            arr = np.array(col, dtype=int)
        elif k == "refined":
            arr = np.array(col, dtype=bool)
        else:
            arr = np.array([[np.nan if v is None else v for v in c] for c in col], dtype=float)
        arr.setflags(write=False)
        arrays[k] = arr
    s.setflags(write=False)
    r.setflags(write=False)
    return PhaseDiagram(activation, q, depth, s, r, **arrays, width=width)


def _decode_row(key, data):
    if not isinstance(data, dict) or set(data) != set(FIELDS) | {"reason"}:
        raise ValueError("not a row")
    return data


def eoc_curve(activation: ActivationLike, q_stars: Sequence, **params: float) -> tuple[np.ndarray, np.ndarray]:
    r"""The edge of chaos in the :math:`(\sigma_w^2, \sigma_b^2)` plane for fixed activation
    parameters, parametrised by the fixed point q* (float64; Poole et al. 2016, figure 1):
    :math:`\sigma_w^2=1/E[\phi'^2]`, :math:`\sigma_b^2=q^*-\sigma_w^2E[\phi^2]`, NaN where
    :math:`\sigma_b^2<0` (no EoC initialisation with that q*).

    >>> w, b = eoc_curve("relu", [1.0, 4.0], tau=0)   # ReLU: the single point (2, 0)
    >>> w.tolist(), b.tolist()
    ([2.0, 2.0], [0.0, 0.0])
    """
    from .activations import get_activation
    act = get_activation(activation)
    values = act.parameter_values(**params)
    q = _check_axis(q_stars, "q_stars", 1e-100, 1e30, False)
    args = [float(values[name]) for name in act.parameter_names]
    fns = compiled(act).np
    with np.errstate(all="ignore"):
        sigma_w2 = 1.0 / (fns["e_dphi2"](q, 1.0, 0.0, *args) * np.ones_like(q))
        sigma_b2 = q - sigma_w2 * fns["e_phi2"](q, 1.0, 0.0, *args)
    sigma_b2 = np.where(np.abs(sigma_b2) <= 1e-12 * q, 0.0, sigma_b2)
    bad = ~np.isfinite(sigma_w2) | (sigma_b2 < 0)
    return np.where(bad, np.nan, sigma_w2), np.where(bad, np.nan, sigma_b2)
