r"""A clip level for a target sparsity: the middle of the band between the two failure modes.

For a clipped activation (CReLU, CST) on the edge of chaos at sparsity s, the clip level
m, or equivalently :math:`V'(q^*)` (:func:`meanfield.eoc.eoc_parameters` solves one from
the other), trades the paper's two failure modes against each other (Price et al. 2024,
section 4):

- small m (small :math:`V'(q^*)`): most active units sit on the clipped piece, so that
  unrelated inputs stay correlated through depth (:math:`\rho(0)` rises towards 1) and the
  Jacobian is badly conditioned: the ``too-sparse`` verdict of :mod:`meanfield.diagnose`,
  :math:`\rho(0)\ge` :data:`~meanfield.diagnose.RHO0_MAX`;
- large m (:math:`V'(q^*)` towards 1): V nearly touches the identity above q*, and
  further on a second, exploding fixed point appears (failure mode 1): the ``fragile`` and
  ``exploding`` verdicts, which with a width are the probability that a network of that
  width leaves the basin of q* within its depth (:mod:`meanfield.finite_width`).

Between them lies a band of ``trainable`` :math:`V'(q^*)`, :math:`[V'_{lo}, V'_{hi})`.
:func:`recommend` finds its edges (a scan of :math:`V'(q^*)` on a grid of step
:data:`GRID_STEP`, then bisection of each edge to :data:`EDGE_TOLERANCE`) and recommends
its middle, as far from both failure modes as the band allows. Where the band is empty
(at high sparsity every stable choice is ``too-sparse``: no m removes failure mode 2), it
recommends :data:`BACK_OFF` below the upper edge: the least correlated choice that keeps
q*'s basin safe. These two rules and the one constant were chosen on the depth-100 MNIST
results of ``results/mnist`` (best measured :math:`V'(q^*)` = 0.7 of 0.5, 0.7, 0.9 for CReLU
and CST at s = 0.7 and 0.85); docs/theory.md gives them and how they fare.

>>> rec = recommend("crelu", "0.85", depth=100)
>>> round(rec.v_prime, 2), [round(e, 2) for e in rec.band]
(0.77, [0.64, 0.9])
>>> rec.reasons[0]
"below V'(q*) = 0.64: too-sparse (rho(0) >= 0.65: unrelated inputs stay correlated)"
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath

from . import validation
from ._display import Displayed
from ._types import ActivationLike, Real
from .activations import get_activation
from .diagnose import RHO0_MAX, diagnose
from .eoc import eoc_parameters
from .errors import ParameterError

__all__ = ["Recommendation", "recommend", "GRID_STEP", "EDGE_TOLERANCE", "BACK_OFF", "FAILING"]

#: The scan of V'(q*) before the edges are bisected.
GRID_STEP = 0.05
#: How finely the band's edges are located (in V'(q*)).
EDGE_TOLERANCE = 0.005
#: Where no V'(q*) is trainable: how far below the upper edge the recommendation sits.
BACK_OFF = 0.05
#: The verdicts of failure mode 1 (the upper side of the band).
FAILING = ("unstable", "half-stable", "exploding", "fragile")
_DIGITS = 15


@dataclass(frozen=True, repr=False)
class Recommendation(Displayed):
    """What :func:`recommend` found: the recommended ``v_prime`` and the clip level ``m``
    it gives (with tau, sigma_w^2, sigma_b^2 in ``solution``), the ``band`` (lo, hi) of
    trainable V'(q*) (lo = hi: none), the ``scan`` (one row per V'(q*) tried: v_prime, m,
    verdict, reason, rho0, margin, escape probability) and the ``reasons`` in words."""

    activation: str
    sparsity: float
    depth: int
    width: int | None
    q_star: float
    v_prime: float
    m: float
    band: tuple[float, float]
    solution: Any
    scan: tuple[dict, ...]
    reasons: tuple[str, ...]

    def _headline(self):
        return [("activation", self.activation), ("sparsity", self.sparsity), ("depth", self.depth),
                ("width", self.width), ("v_prime", self.v_prime), ("m", self.m),
                ("band", f"[{self.band[0]:.3f}, {self.band[1]:.3f})")]

    def _tidy_rows(self):
        return [dict(activation=self.activation, sparsity=self.sparsity, depth=self.depth, width=self.width,
                     recommended=abs(row["v_prime"] - self.v_prime) < 1e-12, **row) for row in self.scan]

    def to_dict(self) -> dict:
        return {"activation": self.activation, "sparsity": self.sparsity, "depth": self.depth,
                "width": self.width, "q_star": self.q_star, "v_prime": self.v_prime, "m": self.m,
                "tau": float(self.solution.tau), "sigma_w2": float(self.solution.sigma_w2),
                "sigma_b2": float(self.solution.sigma_b2), "band": list(self.band),
                "reasons": list(self.reasons), "scan": list(self.scan)}

    def summary(self) -> str:
        lines = [f"{self.activation} at sparsity {self.sparsity:g}, depth {self.depth}"
                 + (f", width {self.width}" if self.width else " (infinite width)")
                 + f": V'(q*) = {self.v_prime:.3f}, m = {self.m:.4g} (q* = {self.q_star:g})",
                 f"  tau = {float(self.solution.tau):.6g}, sigma_w2 = {float(self.solution.sigma_w2):.6g}, "
                 f"sigma_b2 = {float(self.solution.sigma_b2):.6g}"]
        lines += [f"  {r}" for r in self.reasons]
        return "\n".join(lines)


def _short(reason: str) -> str:
    """The rule of a verdict's reason, without its numbers' detail."""
    return reason.split(":")[0] if ":" in reason else reason


def recommend(activation: ActivationLike, sparsity: Real, *, depth: int = 100, width: int | None = None,
              q_star: Real = 1, progress: Callable[[float], None] | None = None) -> Recommendation:
    """The clip level the theory recommends for a clipped ``activation`` (its sparsity rule
    has a clip parameter: CReLU, CST) at ``sparsity`` for a network of ``depth`` layers
    and, if given, ``width`` units (module docstring). ``progress``: a callable given each
    V'(q*) as it is diagnosed (for a progress bar)."""
    act = get_activation(activation)
    rule = act.sparsity_rule
    if rule is None or not rule.clipped:
        raise ParameterError(f"recommend needs a clipped activation whose sparsity sets its threshold "
                             f"(crelu, cst or one like them), got {act.name}")
    depth = validation.depth(depth)
    if width is not None:
        width = validation.width(width)
    cache: dict[float, dict] = {}

    def at(v: float) -> dict:
        v = round(v, 6)
        if v not in cache:
            if progress is not None:
                progress(v)
            sol = eoc_parameters(act, sparsity=sparsity, v_prime=repr(v), q_star=q_star, digits=_DIGITS)
            d = diagnose(sol, depth=depth, width=width, digits=_DIGITS)
            cache[v] = {"v_prime": v, "m": float(sol.m), "verdict": d.verdict, "reason": d.reason,
                        "rho0": float(d.rho0), "margin": None if d.margin is None else float(d.margin),
                        "escape": None if d.escape is None else d.escape[0], "_solution": sol}
        return cache[v]

    def side(v: float) -> int:  # -1 too sparse, 0 trainable, 1 failure mode 1
        verdict = at(v)["verdict"]
        return 1 if verdict in FAILING else -1 if verdict == "too-sparse" else 0

    def edge(lo: float, hi: float, on_lo_side) -> float:
        """Where, between lo (``on_lo_side``) and hi (not), ``on_lo_side`` stops holding."""
        while hi - lo > EDGE_TOLERANCE:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if on_lo_side(mid) else (lo, mid)
        return (lo + hi) / 2

    steps = int(round(1 / GRID_STEP))
    grid = [k * GRID_STEP for k in range(1, steps)]
    sides = [side(v) for v in grid]
    if sides[0] == 1:
        raise ParameterError(f"{act.name} at sparsity {sparsity}: every V'(q*) from {grid[0]:g} up fails "
                             f"({at(grid[0])['verdict']}): no clip level is recommended")
    # the upper edge: the first failing grid point (none: the band reaches V' = 1)
    up = next((i for i, sd in enumerate(sides) if sd == 1), None)
    hi = 1.0 if up is None else edge(grid[up - 1], grid[up], lambda v: side(v) != 1)
    trainable = [i for i, sd in enumerate(sides) if sd == 0]
    reasons = []
    if trainable:
        first = trainable[0]
        lo = grid[0] if first == 0 else edge(grid[first - 1], grid[first], lambda v: side(v) == -1)
        if first > 0:
            reasons.append(f"below V'(q*) = {lo:.2f}: too-sparse (rho(0) >= {RHO0_MAX}: unrelated inputs stay "
                           "correlated)")
        target = (lo + hi) / 2
        why = "the middle of the trainable band, as far from both failure modes as it allows"
    else:
        lo = hi
        reasons.append(f"no V'(q*) below {hi:.2f} gives rho(0) < {RHO0_MAX}: every stable choice is too-sparse "
                       "(failure mode 2 at this sparsity, whatever m)")
        target = max(hi - BACK_OFF, grid[0])
        why = f"{BACK_OFF} below the upper edge: the least correlated choice that keeps q*'s basin safe"
    if up is not None:
        failing = at(grid[up])
        reasons.append(f"from V'(q*) = {hi:.2f}: {failing['verdict']} ({_short(failing['reason'])})")
    else:
        reasons.append("no V'(q*) below 1 fails on the upper side")
    rec = at(target)
    reasons.append(f"recommended V'(q*) = {rec['v_prime']:.3f}: {why}; there {rec['verdict']}, "
                   f"rho(0) = {rec['rho0']:.3f}")
    scan = tuple({k: x for k, x in row.items() if not k.startswith("_")} for _, row in sorted(cache.items()))
    return Recommendation(act.name, float(mpmath.mpf(sparsity)), depth, width, float(q_star), rec["v_prime"],
                          rec["m"], (lo, hi), rec["_solution"], scan, tuple(reasons))
