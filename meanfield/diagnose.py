r"""What the theory predicts for one initialisation, before training: the diagnostics and a verdict.

For a fixed point :math:`q^*` of the variance map :math:`V` (Price et al. 2024, sections
3-4; Poole et al. 2016; Schoenholz et al. 2017; Pennington et al. 2017) a :class:`Diagnosis`
gathers

- :math:`V'(q^*)`, :math:`V''(q^*)`, the depth scale :math:`\xi_q=-1/\log|V'(q^*)|` and every
  fixed point of V with its kind, and :math:`\chi_1` at every other stable fixed point
  (:math:`\chi_1>1` there means exploding gradients: failure mode 1);
- the basin of :math:`q^*`: the nearest repelling fixed points below and above it, and the
  smallest margin :math:`(q-V(q))/(q-q^*)` over :math:`q^*<q<q_u` (:math:`q_u` the next
  fixed point above, or the end of the searched range). Near :math:`q^*` the margin is
  :math:`1-V'(q^*)`; a small margin means V nearly touches the identity above q*, so that
  a perturbation of the variance decays slowly or not at all;
- the correlation map: :math:`\rho(0)` (how correlated two unrelated inputs stay),
  its fixed points and :math:`\xi_c` (:mod:`meanfield.correlation`);
- the mean and variance of the squared singular values of the input-output Jacobian at
  depth L (:mod:`meanfield.jacobian`).

**Verdict**: one word, from the first rule that applies (each with its reason):

1. ``unstable``: :math:`V'(q^*)>1`, q* repels.
2. ``half-stable``: :math:`V'(q^*)=1` (ReLU_tau and ST_tau on the EoC): q* attracts from one
   side only; above it the variance grows (Price et al. 2024, Lemma 1).
3. ``exploding``: another stable fixed point with :math:`\chi_1>1` (failure mode 1; three
   fixed points for large m), or the variance grows without bound past the basin, or the
   chaotic phase (:math:`\chi_1(q^*)>1`) deeper than :math:`6\xi_c`.
   ``vanishing``: the ordered phase (:math:`\chi_1(q^*)<1`) deeper than :math:`6\xi_c`:
   gradients shrink like :math:`\chi_1^L` and all inputs look alike (Schoenholz et al.
   2017 find networks trainable up to about :math:`6\xi_c` layers).
4. ``fragile``: another attracting fixed point (with :math:`\chi_1\le1`), or a margin below
   :data:`MARGIN_MIN`: the basin is open but V nearly meets the identity above q*.
5. ``too-sparse``: :math:`\rho(0)\ge` :data:`RHO0_MAX`: inputs stay strongly correlated
   through depth, the paper's failure mode 2 candidate (training stalls even with small m).
6. ``trainable``: none of the above (including V(q) = q for every q, the ReLU baseline with
   :math:`\sigma_b^2=0`, where the variance is kept at any scale).

**Width** (``width=N``): a finite network's variance is a noisy version of the map
(:mod:`meanfield.finite_width`), so rules 2-4 become statements about probability. For a
half-stable q*, and for q* whose basin ends at a repelling fixed point below another
stable one (three fixed points), the diagnosis gives the probability that a network of
width N leaves the basin within its depth (``escape``: runs past 10 q*, or past the
basin's upper edge). Where it is below :data:`ESCAPE_MAX` the rule does not fail the
network: the verdict is that of the rules after it, its reason says why (for example,
ReLU_tau at s = 0.8 is ``half-stable`` at depth 100 and width 300, where most networks
run away, and ``trainable`` at depth 10 and width 3000, where almost none do).
Without a width the verdict is the infinite-width one.

**Score** (:attr:`Diagnosis.score`): one number that orders configurations across and
within verdicts. Its integer part is the verdict's tier (:data:`SCORE_TIERS`: 4
``trainable``, 3 ``too-sparse``, 2 ``fragile``, 0 the rest), and its fraction is
:math:`1-\rho(0)` (the less correlated unrelated inputs stay, the better). For the
failing verdicts it is :math:`(1-\rho(0)+1-p)/2`, with p the probability of leaving the
basin at the diagnosed width (1 without a width). Beyond the ordinal tiers it fits no
constant. On the 17 depth-100 MNIST configurations of ``results/mnist`` (width 300), on
which it was chosen, its Spearman correlation with the measured accuracy is 0.94; on the
same configurations at depth 30, held out, it is far lower, about 0.64 (docs/theory.md,
"The trainability score": where it misses and why).

The two thresholds are heuristics, not theorems. They were calibrated on the outcomes
Price et al. (2024) report for MNIST at depth 100 (see ``docs/theory.md``), and they are
module constants you can change.

>>> from meanfield.eoc import eoc_parameters
>>> d = diagnose(eoc_parameters("cst", sparsity="0.8", v_prime="0.9"), depth=100)
>>> d.verdict, len(d.fixed_points.points), mpmath.nstr(d.other_stable[0].chi1, 4)
('exploding', 3, '1.891')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

from . import validation
from ._display import Displayed
from ._types import Context, InitialisationLike, Real
from .correlation import (
    CorrelationReport,
    correlation_digits,
    correlation_fixed_points,
    depth_scale,
)
from .errors import NoSolutionError, ParameterError
from .finite_width import finite_width_model
from .fixed_points import FixedPoint, FixedPointReport, fixed_points
from .jacobian import JacobianSpectrum, jacobian_spectrum
from .maps import (
    DEFAULT_DIGITS,
    check_q,
    format_value,
    map_values,
    map_values_float64,
    operating_point,
    to_mpf,
)
from .symbolic import dirac_part

__all__ = ["Diagnosis", "diagnose", "diagnose_eoc", "verdict", "MARGIN_MIN", "RHO0_MAX", "DEPTH_SCALES",
           "VERDICTS", "ESCAPE_MAX", "ESCAPE_PATHS", "SCORE_TIERS"]

#: Below this margin (q - V(q)) / (q - q*) above q* the verdict is "fragile".
MARGIN_MIN = 0.05
#: From this rho(0) on the verdict is "too-sparse".
RHO0_MAX = 0.65
#: With a width: a network that leaves the basin of q* with at most this probability
#: within its depth is not failed by rules 2-4.
ESCAPE_MAX = 0.05
#: Paths of the finite-width model behind ``escape`` (standard error at most 0.008).
ESCAPE_PATHS = 4000
#: The integer part of :attr:`Diagnosis.score` per verdict (the failing verdicts: 0).
SCORE_TIERS = {"trainable": 4, "too-sparse": 3, "fragile": 2}
#: Every verdict, in the order the rules are tried.
VERDICTS = ("unstable", "half-stable", "exploding", "vanishing", "fragile", "too-sparse", "trainable")
#: Off the EoC a network deeper than this many correlation depth scales is not trainable
#: (Schoenholz et al. 2017, figure 5).
DEPTH_SCALES = 6


@dataclass(frozen=True, repr=False)
class Diagnosis(Displayed):
    """The diagnostics of one initialisation at its fixed point q* (see the module docstring)."""

    init: Any
    q_star: Any
    depth: int
    q_star_point: FixedPoint
    fixed_points: FixedPointReport
    other_stable: tuple[FixedPoint, ...]
    basin: tuple[Any, Any]  # nearest repelling fixed points below / above q* (None: none)
    margin: Any
    margin_at: Any
    xi_q: Any
    correlation: CorrelationReport
    jacobian: JacobianSpectrum | None
    verdict: str
    reason: str
    #: the width the verdict is for (None: infinite width)
    width: int | None = None
    #: (probability, standard error) that a network of that width leaves the basin of q*
    #: within the depth (finite-width model), where rules 2-4 asked; else None
    escape: tuple[float, float] | None = None

    def _headline(self):
        return [("activation", self.init.activation.name), ("verdict", self.verdict), ("q_star", self.q_star),
                ("v_prime", self.v_prime), ("kind", self.q_star_point.kind), ("depth", self.depth),
                ("width", self.width), ("escape", None if self.escape is None else self.escape[0]),
                ("score", self.score),
                ("xi_q", self.xi_q), ("xi_c", self.xi_c)]

    def _tidy_rows(self):
        return [dict(self._headline(), sigma_w2=self.init.sigma_w2, sigma_b2=self.init.sigma_b2,
                     margin=self.margin, rho0=self.rho0, reason=self.reason)]

    @property
    def v_prime(self):
        return self.q_star_point.v_prime

    @property
    def score(self) -> float:
        """The trainability score (module docstring): the verdict's tier plus a fraction
        from rho(0) (and, for a failing verdict, the probability of staying in the basin).

        >>> from meanfield.eoc import eoc_parameters
        >>> [round(diagnose(eoc_parameters("crelu", sparsity="0.7", v_prime=v)).score, 3) for v in ("0.5", "0.9")]
        [4.421, 4.533]
        """
        fraction = 1 - float(self.rho0)
        tier = SCORE_TIERS.get(self.verdict)
        if tier is not None:
            return tier + fraction
        stays = 0.0 if self.escape is None else 1 - self.escape[0]
        return (fraction + stays) / 2

    @property
    def v_second(self):
        return self.q_star_point.v_second

    @property
    def rho0(self):
        return self.correlation.rho0

    @property
    def xi_c(self):
        return self.correlation.xi_c

    def to_dict(self, digits: int = 8) -> dict:
        """The diagnosis as plain data (what ``meanfield diagnose --json`` prints): numbers
        as decimal strings of ``digits`` significant digits, +inf / -inf for infinities.

        >>> from meanfield.eoc import eoc_parameters
        >>> d = diagnose(eoc_parameters("crelu", sparsity="0.85", v_prime="0.7")).to_dict(6)
        >>> d["verdict"], d["kind"], d["v_prime"], d["fixed_points"][0]["kind"]
        ('trainable', 'stable', '0.700000', 'stable')
        """
        v = lambda value: format_value(value, digits)  # noqa: E731
        p, jac, init = self.q_star_point, self.jacobian, self.init
        return {
            "activation": init.activation.name, "verdict": self.verdict, "reason": self.reason,
            "q_star": v(self.q_star), **{k: x for k, x in init.to_dict(digits).items() if k != "activation"},
            "v_prime": v(p.v_prime), "v_second": v(p.v_second), "kind": p.kind, "xi_q": v(self.xi_q),
            **self.fixed_points.to_dict(digits),
            "other_stable": [{"q": v(o.q), "chi1": v(o.chi1)} for o in self.other_stable],
            "basin": [v(b) for b in self.basin], "margin": v(self.margin), "margin_at": v(self.margin_at),
            "rho0": v(self.rho0), "xi_c": v(self.xi_c),
            "correlation_fixed_points": [c.to_dict(digits) for c in self.correlation.points],
            "depth": self.depth, "jacobian": None if jac is None else jac.to_dict(digits),
            "width": self.width, "score": self.score,
            "escape": None if self.escape is None else {"probability": self.escape[0], "standard_error": self.escape[1]},
        }

    def summary(self, digits: int = 8, name: str | None = None) -> str:
        """The diagnosis as text (what ``meanfield diagnose`` prints), values to ``digits``
        significant digits; ``name`` labels the activation (default: its own name).

        >>> from meanfield.eoc import eoc_parameters
        >>> d = diagnose(eoc_parameters("crelu", sparsity="0.85", v_prime="0.7"))
        >>> print(d.summary(4).splitlines()[0])
        verdict: trainable: q* stable (V'(q*) = 0.7, margin ...), rho(0) = ...
        """
        p, jac, init = self.q_star_point, self.jacobian, self.init
        v = lambda value: format_value(value, digits)  # noqa: E731
        params = "".join(f", {k} = {v(mpmath.mpf(x))}" for k, x in init.params)
        lines = [f"verdict: {self.verdict}: {self.reason}",
                 f"trainability score: {self.score:.3f}",
                 f"{name or init.activation.name}: q* = {v(self.q_star)} ({p.kind}), "
                 f"sigma_w2 = {v(mpmath.mpf(init.sigma_w2))}, sigma_b2 = {v(mpmath.mpf(init.sigma_b2))}"
                 + params,
                 f"  V'(q*) = {v(p.v_prime)}  V''(q*) = {v(p.v_second)}  xi_q = {v(self.xi_q)}",
                 self.fixed_points.summary(digits)]
        for o in self.other_stable:
            lines.append(f"  other stable fixed point q = {v(o.q)}: chi_1 = {v(o.chi1)}")
        lo, hi = ("0" if self.basin[0] is None else v(self.basin[0]),
                  "inf" if self.basin[1] is None else v(self.basin[1]))
        if p.kind == "unstable":
            lines.append("basin of q*: none (q* repels on both sides)")
        elif p.kind == "half-stable" and p.attracts_from == "below":
            lines.append(f"basin of q*: ({lo}, q*] (attracts from below only)")
        elif p.kind == "half-stable" and p.attracts_from == "above":
            lines.append(f"basin of q*: [q*, {hi}) (attracts from above only)")
        else:
            lines.append(f"basin of q*: ({lo}, {hi})")
        if self.margin is not None:
            lines.append(f"smallest margin (q - V(q))/(q - q*) above q*: {v(self.margin)}"
                         + (f" at q = {v(self.margin_at)}" if self.margin_at is not None else ""))
        lines.append(f"correlation map: rho(0) = {v(self.rho0)}, xi_c = {v(self.xi_c)}, fixed points "
                     + ", ".join(f"{v(c.c)} ({c.kind})" for c in self.correlation.points))
        if self.escape is not None:
            lines.append(f"finite width {self.width}: a network leaves the basin of q* within {self.depth} "
                         f"layers with probability {self.escape[0]:.3f} (+- {self.escape[1]:.3f})")
        if jac is None:
            lines.append("Jacobian: phi has jumps, its moments are infinite")
        else:
            lines.append(f"Jacobian at depth {self.depth}: squared singular values have mean "
                         f"{v(jac.mean)} and variance {v(jac.variance)}")
        return "\n".join(lines)


def _margin(init, q_star, q_end, ctx):
    """min over q* < q < q_end of (q - V(q)) / (q - q*) and where (float64 scan, then mpmath)."""
    q0 = float(q_star)
    gaps = np.geomspace(1e-4 * q0, max(float(q_end) - q0, 2e-4 * q0), 400)
    qs = q0 + gaps
    values = (qs - map_values_float64(init, qs).variance) / (qs - q0)
    i = int(np.argmin(values))

    def margin_at(log_gap):
        q = q_star + ctx.exp(log_gap)
        return (q - map_values(init, q, digits=20, ctx=ctx).variance) / (q - q_star)

    lo = ctx.log(gaps[max(i - 1, 0)])
    hi = ctx.log(gaps[min(i + 1, len(gaps) - 1)])
    golden = (ctx.sqrt(5) - 1) / 2
    a, b = lo + (1 - golden) * (hi - lo), lo + golden * (hi - lo)
    fa, fb = margin_at(a), margin_at(b)
    for _ in range(40):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - golden) * (hi - lo)
            fa = margin_at(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = margin_at(b)
    best, where = (fa, a) if fa < fb else (fb, b)
    return best, q_star + ctx.exp(where)


def verdict(point, report, others, basin, margin, correlation, depth, escape=None) -> tuple[str, str]:
    """(verdict, reason) of :data:`VERDICTS`, from the diagnostics of q* (``point``, a
    :class:`FixedPoint`), the fixed-point ``report``, the ``other`` stable points, q*'s
    ``basin``, the ``margin`` above q*, the correlation report and the ``depth``: the rules,
    tried in the order of :data:`VERDICTS` (docs/theory.md gives them). ``escape``: None
    (infinite width), or a function of the basin's upper edge (None: 10 q*) giving
    (probability, standard error) that a finite network leaves the basin within the depth:
    where that is at most :data:`ESCAPE_MAX`, rules 2-4 let the network pass, and the
    reason of the verdict that follows says so."""
    n = mpmath.nstr
    notes = []

    def passes(edge, what):
        if escape is None:
            return False, ""
        p, se = escape(edge)
        odds = f"at this width {p:.1%} (+- {se:.1%}) of networks {what} within {depth} layers"
        if p <= ESCAPE_MAX:
            notes.append(f"{odds} (finite-width model)")
            return True, ""
        return False, f"; {odds}"

    def said(word, reason):
        return word, "; ".join(notes + [reason]) if notes else reason

    if point.kind == "unstable":
        return "unstable", f"V'(q*) = {n(point.v_prime, 4)} > 1: q* repels"
    if point.kind == "half-stable":
        above = ("the variance grows without bound" if report.large_q == "diverges"
                 else f"the variance drifts to q = {n(basin[1], 4)}" if basin[1] is not None
                 else "the variance drifts away")
        side = "above" if point.attracts_from == "below" else "below"
        reason = (f"V'(q*) = 1 with V''(q*) = {n(point.v_second, 4)}: q* attracts only "
                  f"from {point.attracts_from}; {side} it {above}")
        ok, odds = passes(None, "run away") if side == "above" else (False, "")
        if not ok:
            return "half-stable", reason + odds
        notes.append(f"q* is half-stable ({reason})")
    if point.kind == "neutral" and correlation.rho0 < RHO0_MAX:
        return ("trainable", f"V(q) = q for every q: the variance is kept at any scale (V' = 1), "
                f"rho(0) = {n(correlation.rho0, 3)}")
    hot = [p for p in others if p.chi1 > 1]
    if hot:
        p = hot[0]
        reason = (f"{len(report.points)} fixed points: q = {n(p.q, 5)} is stable with "
                  f"chi_1 = {n(p.chi1, 4)} > 1 (exploding gradients); the basin of q* ends at "
                  f"q = {n(basin[1], 5) if basin[1] is not None else n(basin[0], 5)}")
        ok, odds = passes(basin[1], "leave the basin") if basin[1] is not None and p.q > point.q else (False, "")
        if not ok:
            return "exploding", reason + odds
        notes.append(reason)
        others = tuple(o for o in others if o is not p)
    if report.large_q == "diverges" and basin[1] is not None:
        reason = f"past q = {n(basin[1], 5)} the variance grows without bound"
        ok, odds = passes(basin[1], "leave the basin")
        if not ok:
            return "exploding", reason + odds
        notes.append(reason)
    xi_c = correlation.xi_c
    if correlation.phase != "edge of chaos" and xi_c is not None and depth > DEPTH_SCALES * xi_c:
        chi1 = correlation.chi1
        word = "exploding" if correlation.phase == "chaotic" else "vanishing"
        return said(word, f"{correlation.phase} phase, chi_1(q*) = {n(chi1, 4)}: depth {depth} > "
                    f"{DEPTH_SCALES} xi_c = {n(DEPTH_SCALES * xi_c, 3)}; gradients scale like chi_1^L = "
                    f"{n(chi1 ** depth, 3)}")
    if others:
        p = others[0]
        reason = (f"a second attracting fixed point q = {n(p.q, 5)} (chi_1 = {n(p.chi1, 4)}); "
                  "perturbations past the basin of q* end there")
        ok, odds = passes(basin[1], "leave the basin") if basin[1] is not None and p.q > point.q else (False, "")
        if not ok:
            return said("fragile", reason + odds)
        notes.append(reason)
    if point.kind == "stable" and margin < MARGIN_MIN:
        return said("fragile", f"margin (q - V(q))/(q - q*) falls to {n(margin, 3)} < {MARGIN_MIN} above "
                    "q*: variance perturbations decay slowly, near failure mode 1")
    if correlation.rho0 >= RHO0_MAX:
        return said("too-sparse", f"rho(0) = {n(correlation.rho0, 3)} >= {RHO0_MAX}: unrelated inputs "
                    "stay correlated (failure mode 2 candidate)")
    if point.kind != "stable":  # half-stable, let through at this width
        return said("trainable", f"rho(0) = {n(correlation.rho0, 3)}")
    return said("trainable", f"q* stable (V'(q*) = {n(point.v_prime, 3)}, margin {n(margin, 3)}), "
                f"rho(0) = {n(correlation.rho0, 3)}")


def diagnose(init: InitialisationLike, *, q_star: Real | None = None, depth: int = 100,
             width: int | None = None, digits: int = DEFAULT_DIGITS, ctx: Context = mpmath.mp) -> Diagnosis:
    """Every diagnostic of ``init`` (an Initialisation or an EoCSolution) at the fixed point
    ``q_star`` (default: the EoCSolution's own, or the only stable fixed point), for a
    network of ``depth`` hidden layers and, if given, ``width`` units per layer (module
    docstring: a finite width turns rules 2-4 into probabilities; the model's paths are
    seeded, so a diagnosis is reproducible).

    >>> from meanfield.eoc import eoc_parameters
    >>> sol = eoc_parameters("relu", sparsity="0.8")
    >>> [diagnose(sol, depth=L, width=N).verdict for L, N in ((100, 300), (10, 3000))]
    ['half-stable', 'trainable']
    """
    digits = correlation_digits(digits)
    depth = validation.depth(depth)
    if width is not None:
        width = validation.width(width)
    if q_star is not None:
        check_q(q_star, "q_star")
    solution = init.at_digits(digits, ctx) if hasattr(init, "at_digits") else init
    init, own = operating_point(solution)
    report = getattr(solution, "fixed_points", None) if own is not None else None
    if not isinstance(report, FixedPointReport) or report.digits < digits:
        report = fixed_points(init, digits=digits, ctx=ctx)
    q_star = q_star if q_star is not None else own
    if report.degenerate:  # V(q) = q for all q (e.g. ReLU with sigma_b2 = 0 on the EoC)
        if q_star is None:
            raise ParameterError("give q_star: every q is a fixed point of V")
        v = map_values(init, q_star, digits=digits, ctx=ctx)
        neutral = FixedPoint(v.q, v.v_prime, v.v_second, v.chi1, "neutral")
        report = FixedPointReport(init, (neutral,), "degenerate", True, report.search_range,
                                  report.certified, digits)
    if q_star is None:
        attracting = [p for p in report.points if p.kind != "unstable"]
        if len(attracting) != 1:
            where = ", ".join(mpmath.nstr(p.q, 6) for p in report.points) or "none"
            raise ParameterError(f"give q_star: V has {len(attracting)} attracting fixed points "
                                 f"(fixed points: {where})")
        q_star = attracting[0].q
    with ctx.workdps(digits + 10):
        q = to_mpf(q_star, ctx)
        if not report.points:
            raise NoSolutionError("V has no fixed point: there is nothing to diagnose")
        point = min(report.points, key=lambda p: abs(p.q - q))
        if abs(point.q - q) > ctx.mpf(10) ** (-(digits // 2)) * q:
            raise ParameterError(f"q_star = {q_star} is not a fixed point of V; its fixed points: "
                                 + ", ".join(mpmath.nstr(p.q, 8) for p in report.points))
        others = tuple(p for p in report.points if p is not point and p.kind != "unstable")
        below = [p.q for p in report.points if p.q < point.q and p.kind != "stable"]
        above = [p.q for p in report.points if p.q > point.q]
        upper_repeller = next((p.q for p in report.points if p.q > point.q and p.kind != "stable"), None)
        basin = (below[-1] if below else None, upper_repeller)
        margin = margin_at = None
        if point.kind == "neutral":
            margin, margin_at = ctx.zero, None
        elif point.kind == "stable":
            if above:
                margin, margin_at = ctx.zero, above[0]
            else:
                end = ctx.mpf(report.search_range[1])
                margin, margin_at = _margin(init, point.q, end, ctx)
                margin = min(margin, 1 - point.v_prime)
        correlation = correlation_fixed_points(init, q_star=point.q, digits=digits, ctx=ctx)
        jacobian = None  # phi with jumps: phi' has Dirac masses, the moments are infinite
        if not dirac_part(init.activation, 1):
            jacobian = jacobian_spectrum(init, q_star=point.q, depth=depth, digits=digits, ctx=ctx)
        escape = asked = None
        if width is not None:
            q_point = float(point.q)

            def escape(edge):
                nonlocal asked
                threshold = None if edge is None else float(edge)
                p, se, _ = finite_width_model(init, q_point, width=width, depth=depth, paths=ESCAPE_PATHS,
                                              threshold=threshold)
                asked = (p, se)
                return asked
        verdict_, reason = verdict(point, report, others, basin, margin, correlation, depth, escape)
        margin = margin if margin is None else +margin
        # V'(q*) = 1 exactly for half-stable and neutral points: xi_q is infinite there
        xi_q = (ctx.inf if point.kind in ("half-stable", "neutral")
                else +depth_scale(point.v_prime, ctx.mpf(10) ** (3 - digits), ctx))
    return Diagnosis(init=init, q_star=point.q, depth=depth, q_star_point=point, fixed_points=report,
                     other_stable=others, basin=basin, margin=margin,
                     margin_at=margin_at, xi_q=xi_q, correlation=correlation,
                     jacobian=jacobian, verdict=verdict_, reason=reason, width=width, escape=asked)


def diagnose_eoc(solution, *, depth: int = 100, width: int | None = None, digits: int = DEFAULT_DIGITS,
                 ctx=mpmath.mp) -> Diagnosis:
    """:func:`diagnose` of an EoCSolution at its own q*, raising the digits (by 10, then 30)
    when they do not resolve q* from a fixed point next to it: at D digits two fixed points
    closer than about 10^((3-D)/2) q* merge into one half-stable point (docs/theory.md), and
    a q* with sigma_b^2 below 10^-D q* cannot be told from sigma_b^2 = 0.

    >>> from meanfield.eoc import eoc_parameters
    >>> sol = eoc_parameters("cst", sparsity="0.8", clip="5.6", digits=20)
    >>> d = diagnose_eoc(sol, digits=20)
    >>> d.verdict, [p.kind for p in d.fixed_points.points]
    ('exploding', ['stable', 'unstable', 'stable'])
    """
    for extra in (0, 10, 30):
        try:
            return diagnose(solution, depth=depth, width=width, digits=min(digits + extra, 200), ctx=ctx)
        except ParameterError:
            if extra == 30 or digits + extra >= 200:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
