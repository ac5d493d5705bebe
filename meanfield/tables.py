"""Tables of edge-of-chaos initialisations and their fixed points.

One row per configuration (activation, sparsity s, q*, clip m or target V'(q*)): the EoC
parameters of :func:`meanfield.eoc.eoc_parameters` and the fixed points of the variance
map with their kinds. The default grid is the one of Price et al. (2024, section 4): the
ReLU baseline; ReLU_tau and ST_tau at s = 0.6 ... 0.85; CReLU and CST at s = 0.5 ... 0.85
with V'(q*) in {0.5, 0.7, 0.9}; q* = 1.

>>> rows = eoc_table([Configuration("crelu", "0.85", v_prime="0.5")], digits=10)
>>> rows[0]["m"], rows[0]["fixed_points"]
('0.8095281637', '1.0(stable)')
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import mpmath

from .eoc import eoc_parameters
from .errors import ParameterError

__all__ = ["Configuration", "paper_grid", "eoc_table", "COLUMNS", "format_table"]


@dataclass(frozen=True)
class Configuration:
    """One EoC configuration: activation, sparsity, q*, and clip or V' target (clipped only)."""

    activation: str
    sparsity: str
    q_star: str = "1"
    clip: str | None = None
    v_prime: str | None = None


def paper_grid() -> list[Configuration]:
    """The configurations of the paper's MNIST grid (q* = 1)."""
    grid = [Configuration("relu", "0.5")]
    for act in ("relu", "st"):
        grid += [Configuration(act, s) for s in ("0.6", "0.7", "0.8", "0.85")]
    for act in ("crelu", "cst"):
        grid += [Configuration(act, s, v_prime=t)
                 for s in ("0.5", "0.6", "0.7", "0.8", "0.85") for t in ("0.5", "0.7", "0.9")]
    return grid


COLUMNS = ("activation", "sparsity", "q_star", "v_prime_target", "tau", "m", "sigma_w2",
           "sigma_b2", "v_prime", "v_second", "n_fixed_points", "fixed_points", "large_q")


def _num(v, digits):
    return "" if v is None else mpmath.nstr(v, digits)


def eoc_table(configurations, *, digits: int = 8) -> list[dict]:
    """Rows (dicts of strings keyed by :data:`COLUMNS`), values shown to ``digits`` digits.

    Each solve runs at ``max(digits, 30)`` digits; fixed points are listed as
    ``q(kind)`` separated by ``; `` (``all q`` when every q is a fixed point).
    """
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 100:
        raise ParameterError(f"digits = {digits!r} is out of range: must be an integer in [1, 100]")
    rows = []
    for c in configurations:
        sol = eoc_parameters(c.activation, c.sparsity, q_star=c.q_star, clip=c.clip,
                             v_prime=c.v_prime, digits=max(digits, 30))
        fp = sol.fixed_points
        points = "all q" if fp.degenerate else "; ".join(
            f"{mpmath.nstr(p.q, digits)}({p.kind}{'-' + p.attracts_from if p.attracts_from else ''})"
            for p in fp.points)
        rows.append({
            "activation": c.activation, "sparsity": c.sparsity, "q_star": c.q_star,
            "v_prime_target": c.v_prime or "",
            "tau": _num(sol.tau, digits), "m": _num(sol.m, digits),
            "sigma_w2": _num(sol.sigma_w2, digits), "sigma_b2": _num(sol.sigma_b2, digits),
            "v_prime": _num(sol.v_prime, digits), "v_second": _num(sol.v_second, digits),
            "n_fixed_points": "inf" if fp.degenerate else str(len(fp.points)),
            "fixed_points": points, "large_q": fp.large_q,
        })
    return rows


def format_table(rows: list[dict], fmt: str) -> str:
    """Render rows as ``markdown``, ``csv`` or ``json``."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    raise ValueError(f"format must be markdown, csv or json; got {fmt!r}")
