r"""Stability tables: the theory's verdict for every configuration of a grid.

A configuration is one edge-of-chaos initialisation of Price et al. (2024, section 4):
an activation (``relu`` = ReLU_tau, ``st`` = ST_tau, ``crelu``, ``cst``), a target
sparsity s (which sets tau), the fixed point q*, and for the clipped activations either
the clip level m or a target :math:`V'(q^*)`. Each row holds the EoC parameters
(:func:`meanfield.eoc.eoc_parameters`), :math:`V'(q^*)`, :math:`V''(q^*)`, every fixed
point of V with its kind, :math:`\chi_1` at the other stable fixed points,
:math:`\rho(0)`, :math:`\xi_c`, the margin, and the verdict with its reason
(:func:`meanfield.diagnose.diagnose`), all computed with mpmath and reported to
``digits`` significant digits. A configuration without an EoC initialisation
(:math:`\sigma_b^2<0`, or no m reaching the V' target) gets the verdict ``infeasible``
with the reason, so that one corner of a sweep does not stop the rest; one whose q* cannot
be told from a neighbouring fixed point even at 30 more digits gets ``unresolved``.

The default grid is the paper's MNIST grid: the ReLU baseline; ReLU_tau and ST_tau at
s = 0.6 ... 0.85; CReLU and CST at s = 0.5 ... 0.85 with :math:`V'(q^*)\in\{0.5,0.7,0.9\}`;
q* = 1.

>>> table = stability_table([Configuration("crelu", "0.85", v_prime="0.5")], digits=6)
>>> row = table.records()[0]
>>> row["m"], row["fixed_points"], row["verdict"]
('0.809528', '1.0(stable)', 'too-sparse')
>>> print(table.format("markdown", columns=("activation", "sparsity", "m", "rho0")), end="")
| activation | sparsity | m | rho0 |
|---|---|---|---|
| crelu | 0.85 | 0.809528 | 0.696421 |
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from decimal import (
    ROUND_FLOOR,
    Decimal,
    DecimalException,
    Inexact,
    InvalidOperation,
    localcontext,
)
from typing import Any, Iterable, Sequence

import mpmath
import numpy as np

from . import validation
from ._display import Displayed
from ._jobs import run_tasks, thread_context
from ._types import FilePath
from .activations import by_sparsity, get_activation
from .eoc import check_request, eoc_parameters
from .errors import NoSolutionError, ParameterError
from .fixed_points import FixedPoint
from .maps import check_q

__all__ = ["MAX_TABLE_DIGITS", "Configuration", "configuration_grid", "paper_grid", "parse_values", "StabilityRow",
           "StabilityTable", "stability_table", "COLUMNS", "FORMATS"]

#: Every column of a table, in order.
COLUMNS = ("activation", "sparsity", "q_star", "v_prime_target", "tau", "m", "sigma_w2", "sigma_b2",
           "v_prime", "v_second", "n_fixed_points", "fixed_points", "chi1_other_stable", "rho0",
           "xi_c", "margin", "verdict", "reason")
#: Output formats of :meth:`StabilityTable.format`.
FORMATS = ("csv", "markdown", "latex", "json")
_NUMERIC = ("tau", "m", "sigma_w2", "sigma_b2", "v_prime", "v_second", "rho0", "xi_c", "margin")
_LATEX_HEADERS = {
    "activation": "activation", "sparsity": "$s$", "q_star": "$q^*$",
    "v_prime_target": "target $V'$", "tau": r"$\tau$", "m": "$m$", "sigma_w2": r"$\sigma_w^2$",
    "sigma_b2": r"$\sigma_b^2$", "v_prime": "$V'(q^*)$", "v_second": "$V''(q^*)$",
    "n_fixed_points": "\\#f.p.", "fixed_points": "fixed points (kind)",
    "chi1_other_stable": r"$\chi_1$ other stable", "rho0": r"$\rho(0)$", "xi_c": r"$\xi_c$",
    "margin": "margin", "verdict": "verdict", "reason": "reason"}
_MAX_VALUES = 100_000
#: The columns of ``format("latex")`` when none are chosen: what a paper's table shows
#: (the fixed points, rho(0)'s companions and the prose reason stay in the CSV and JSON).
LATEX_COLUMNS = ("activation", "sparsity", "v_prime_target", "tau", "m", "sigma_w2", "sigma_b2", "v_second",
                 "rho0", "xi_c", "verdict")
#: Columns of numbers, aligned on the decimal point in LaTeX (two cells: ``r@{}l``).
_ALIGNED = ("sparsity", "q_star", "v_prime_target") + _NUMERIC + ("n_fixed_points",)


def _decimal_text(name: str, value) -> str:
    if isinstance(value, (np.integer, np.floating)):  # a numpy scalar: its Python value
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ParameterError(f"{name} = {validation.shown(value)} is not a number: give a decimal string, int or float "
                             f"(not {type(value).__name__})")
    return value.strip() if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Configuration:
    """One EoC configuration (numbers kept as the decimal strings given).

    >>> Configuration("cst", "0.8", v_prime="0.9").key
    "cst s=0.8 q*=1 V'=0.9"
    >>> Configuration("crelu", "0.85")
    Traceback (most recent call last):
    ...
    meanfield.errors.ParameterError: crelu needs exactly one of clip (m > 0) or v_prime (in (0, 1))
    """

    activation: str
    sparsity: str
    q_star: str = "1"
    clip: str | None = None
    v_prime: str | None = None

    def __post_init__(self):
        if not isinstance(self.activation, str) or self.activation not in by_sparsity():
            raise ParameterError(f"activation = {self.activation!r} is not one of "
                                 f"{', '.join(by_sparsity())} (tables are over target sparsities)")
        # in the order of the arguments: sparsity, q_star, then the clip or V' target
        object.__setattr__(self, "sparsity", _decimal_text("sparsity", self.sparsity))
        validation.interval("sparsity", self.sparsity, get_activation(self.activation).sparsity_rule.lowest, 1.0,
                            lo_closed=True)
        object.__setattr__(self, "q_star", _decimal_text("q_star", self.q_star))
        check_q(self.q_star, "q_star")
        check_request(self.activation, self.sparsity, clip=self.clip, v_prime=self.v_prime)
        for name in ("clip", "v_prime"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _decimal_text(name, getattr(self, name)))

    @property
    def key(self) -> str:
        """A short unique name, e.g. ``"cst s=0.8 q*=1 V'=0.9"``."""
        tail = f" m={self.clip}" if self.clip is not None else f" V'={self.v_prime}" if self.v_prime else ""
        return f"{self.activation} s={self.sparsity} q*={self.q_star}{tail}"


def parse_values(text: str, name: str) -> list[str]:
    """Decimal values from ``"a:b:step"`` (from a to b inclusive), ``"a,b,c"`` or ``"a"``.

    >>> parse_values("0.5:0.7:0.05", "sparsity")
    ['0.50', '0.55', '0.60', '0.65', '0.70']
    >>> parse_values("1,2.5", "q_star")
    ['1', '2.5']
    """
    if not isinstance(text, str) or not text.strip():
        raise ParameterError(f"{name} = {text!r}: give a value, a list a,b,c or a range start:stop:step")

    def number(t):
        try:
            d = Decimal(t.strip())
        except InvalidOperation:
            d = None
        if d is None or not d.is_finite():
            raise ParameterError(f"{name} = {text!r}: {t.strip()!r} is not a finite decimal number")
        return d

    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ParameterError(f"{name} = {text!r}: a range is start:stop:step")
        start, stop, step = (number(p) for p in parts)
        if not step > 0 or stop < start:
            raise ParameterError(f"{name} = {text!r}: a range needs step > 0 and stop >= start")
        try:  # decimal arithmetic is exact here: 0.5:0.95:0.05 has exactly 10 values
            with localcontext() as dc:
                dc.prec = 60
                dc.traps[Inexact] = False
                count = int(((stop - start) / step).to_integral_value(rounding=ROUND_FLOOR)) + 1
                if count > _MAX_VALUES:
                    raise ParameterError(f"{name} = {text!r}: {count} values; at most {_MAX_VALUES}")
                return [str(start + i * step) for i in range(count)]
        except DecimalException:
            raise ParameterError(f"{name} = {text!r}: the range is out of the supported magnitudes") from None
    values = [number(p) for p in text.split(",")]
    if len(values) > _MAX_VALUES:
        raise ParameterError(f"{name} = {text!r}: at most {_MAX_VALUES} values")
    return [str(v) for v in values]


def configuration_grid(activations: Iterable[str], sparsities: Iterable, *, q_stars: Iterable = ("1",),
                       clips: Iterable | None = None, v_primes: Iterable | None = None) -> list[Configuration]:
    """Every combination; the clipped activations take each clip level (or each V' target),
    the unclipped ones appear once per (s, q*). Give ``clips`` or ``v_primes``, not both,
    when the grid has a clipped activation.

    >>> [c.key for c in configuration_grid(["relu", "crelu"], ["0.6"], v_primes=["0.5", "0.9"])]
    ['relu s=0.6 q*=1', "crelu s=0.6 q*=1 V'=0.5", "crelu s=0.6 q*=1 V'=0.9"]
    """
    def as_list(values, name):
        if isinstance(values, (str, bytes)) or values is None:
            raise ParameterError(f"{name} must be a list of values, got {values!r}")
        try:
            return list(values)
        except TypeError:
            raise ParameterError(f"{name} must be a list of values, got {values!r}") from None

    activations, sparsities = as_list(activations, "activations"), as_list(sparsities, "sparsities")
    q_stars = as_list(q_stars, "q_stars")
    clips = None if clips is None else as_list(clips, "clips")
    v_primes = None if v_primes is None else as_list(v_primes, "v_primes")
    if clips is not None and v_primes is not None:
        raise ParameterError("give clip levels or V' targets, not both")
    grid = []
    for act in activations:
        clipped = isinstance(act, str) and act in by_sparsity() and get_activation(act).sparsity_rule.clipped
        if clipped and clips is None and v_primes is None:
            raise ParameterError(f"{act} is clipped: give clip levels (--clip) or V'(q*) targets (--v-prime)")
        for s in sparsities:
            for q in q_stars:
                if not clipped:
                    grid.append(Configuration(act, s, q))
                elif clips is not None:
                    grid += [Configuration(act, s, q, clip=m) for m in clips]
                else:
                    grid += [Configuration(act, s, q, v_prime=t) for t in v_primes]
    if not grid:
        raise ParameterError("the grid is empty")
    return grid


def paper_grid() -> list[Configuration]:
    """The configurations of the paper's MNIST grid (q* = 1)."""
    grid = [Configuration("relu", "0.5")]
    grid += configuration_grid(["relu", "st"], ["0.6", "0.7", "0.8", "0.85"])
    grid += configuration_grid(["crelu", "cst"], ["0.5", "0.6", "0.7", "0.8", "0.85"],
                               v_primes=["0.5", "0.7", "0.9"])
    return grid


@dataclass(frozen=True)
class StabilityRow:
    """The theory's account of one configuration (mpf values; None where not defined).

    ``fixed_points`` is empty and ``degenerate`` True when every q is a fixed point.
    """

    configuration: Configuration
    verdict: str
    reason: str
    tau: Any = None
    m: Any = None
    sigma_w2: Any = None
    sigma_b2: Any = None
    v_prime: Any = None
    v_second: Any = None
    fixed_points: tuple[FixedPoint, ...] = ()
    degenerate: bool = False
    large_q: str = ""
    other_stable_chi1: tuple = ()
    rho0: Any = None
    xi_c: Any = None
    margin: Any = None

    @property
    def n_fixed_points(self):
        return mpmath.inf if self.degenerate else len(self.fixed_points)


def _text(v, digits) -> str:
    if v is None:
        return ""
    if mpmath.isinf(v):
        return "+inf" if v > 0 else "-inf"
    return mpmath.nstr(v, digits)


def _record(row: StabilityRow, digits: int) -> dict[str, str]:
    c = row.configuration
    rec = {"activation": c.activation, "sparsity": c.sparsity, "q_star": c.q_star,
           "v_prime_target": c.v_prime or ""}
    rec.update({k: _text(getattr(row, k), digits) for k in _NUMERIC})
    if row.verdict in ("infeasible", "unresolved"):
        rec["n_fixed_points"] = rec["fixed_points"] = ""
    elif row.degenerate:
        rec["n_fixed_points"], rec["fixed_points"] = "inf", "all q"
    else:
        rec["n_fixed_points"] = str(len(row.fixed_points))
        rec["fixed_points"] = "; ".join(
            f"{_text(p.q, digits)}({p.kind}{'-' + p.attracts_from if p.attracts_from else ''})"
            for p in row.fixed_points)
    rec["chi1_other_stable"] = "; ".join(_text(v, digits) for v in row.other_stable_chi1)
    rec["verdict"], rec["reason"] = row.verdict, row.reason
    return {k: rec[k] for k in COLUMNS}


def _latex_escape(text: str) -> str:
    out = []
    for ch in text:
        out.append({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                    "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                    "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}.get(ch, ch))
    return "".join(out)


def _latex_number(text: str) -> str:
    """A number's two cells of an ``r@{}l`` column: the integer part, and the point with the
    digits after it (an exponent as a power of ten); infinities and blanks span both."""
    if text in ("", "+inf", "-inf", "inf"):
        shown = {"": "", "+inf": r"$\infty$", "inf": r"$\infty$", "-inf": r"$-\infty$"}[text]
        return r"\multicolumn{2}{c}{" + shown + "}"
    mantissa, _, exponent = text.lower().partition("e")
    whole, dot, fraction = mantissa.partition(".")
    power = rf"\ensuremath{{\times 10^{{{int(exponent)}}}}}" if exponent else ""
    return f"{_latex_escape(whole)} & {_latex_escape(dot + fraction)}{power}"


def _latex_table(rows: list[dict[str, str]], columns: Sequence[str]) -> str:
    """A booktabs tabular: numbers aligned on the decimal point, the reasons (if asked for)
    as notes under the table, each marked on its row's verdict (or first) cell."""
    shown = [c for c in columns if c != "reason"]
    if not shown:
        raise ParameterError("columns: the LaTeX table needs a column besides reason (the reasons are its notes)")
    notes: dict[str, str] = {}  # reason -> mark, in the order of first use
    mark_at = "verdict" if "verdict" in shown else shown[0]
    spec = "".join("r@{}l" if c in _ALIGNED else "l" for c in shown)
    head = " & ".join(r"\multicolumn{2}{c}{" + _LATEX_HEADERS[c] + "}" if c in _ALIGNED else _LATEX_HEADERS[c]
                      for c in shown)
    lines = [r"\begin{tabular}{" + spec + "}", r"\toprule", head + r" \\", r"\midrule"]
    for r in rows:
        cells = []
        for c in shown:
            cell = _latex_number(r[c]) if c in _ALIGNED else _latex_escape(r[c])
            if c == mark_at and "reason" in columns and r["reason"]:
                mark = notes.setdefault(r["reason"], chr(ord("a") + len(notes)) if len(notes) < 26
                                        else str(len(notes) + 1))
                cell += r"\textsuperscript{" + mark + "}"
            cells.append(cell)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines.append(r"\par\smallskip\footnotesize")
        lines += [r"\textsuperscript{" + m + "} " + _latex_escape(reason) + r"\\" for reason, m in notes.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, repr=False)
class StabilityTable(Displayed):
    """Rows of a sweep, in the order of its configurations; ``digits``: digits reported."""

    rows: tuple[StabilityRow, ...]
    digits: int
    depth: int
    columns: tuple[str, ...] = field(default=COLUMNS)
    #: the width the verdicts are for (None: infinite width)
    width: int | None = None

    def __len__(self):
        return len(self.rows)

    def _headline(self):
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r.verdict] = counts.get(r.verdict, 0) + 1
        return [("rows", len(self.rows)), ("depth", self.depth),
                ("width", "infinite" if self.width is None else self.width), ("digits", self.digits),
                ("verdicts", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))]

    def _tidy_rows(self):
        return self.records()

    def __iter__(self):
        return iter(self.rows)

    def records(self, digits: int | None = None) -> list[dict[str, str]]:
        """One dict of decimal strings per row, keyed by :data:`COLUMNS`."""
        digits = self.digits if digits is None else min(_check_table_digits(digits), self.digits + 5)
        return [_record(r, digits) for r in self.rows]

    def format(self, fmt: str = "markdown", *, columns: Sequence[str] | None = None,
               digits: int | None = None) -> str:
        """The table as ``csv``, ``markdown``, ``latex`` or ``json`` text. LaTeX is a booktabs
        tabular for a paper: by default the columns :data:`LATEX_COLUMNS`, numbers aligned
        on the decimal point, the reasons (when ``columns`` holds ``reason``) as notes."""
        if columns is None and fmt == "latex" and self.columns == COLUMNS:
            columns = LATEX_COLUMNS
        columns = tuple(columns) if columns is not None else self.columns
        bad = [c for c in columns if c not in COLUMNS]
        if bad or not columns:
            raise ParameterError(f"columns {bad or '(none)'} unknown: choose from {', '.join(COLUMNS)}")
        rows = [{c: r[c] for c in columns} for r in self.records(digits)]
        if fmt == "json":
            return json.dumps(rows, indent=2) + "\n"
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            return buf.getvalue()
        if fmt == "markdown":
            cell = lambda t: t.replace("|", "\\|")  # noqa: E731
            lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows]
            return "\n".join(lines) + "\n"
        if fmt == "latex":
            return _latex_table(rows, columns)
        raise ParameterError(f"format = {fmt!r}: choose one of {', '.join(FORMATS)}")

    def to_dataframe(self):
        """A pandas DataFrame (numbers as float64, infinities as inf; needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_dataframe needs pandas: pip install 'meanfield[pandas]'") from None
        recs = self.records(min(self.digits + 5, 17))
        frame = pd.DataFrame(recs, columns=list(COLUMNS))
        for col in _NUMERIC + ("sparsity", "q_star", "v_prime_target", "n_fixed_points"):
            frame[col] = pd.to_numeric(frame[col].replace({"": "nan", "+inf": "inf"}),
                                       errors="coerce").astype("float64")
        return frame


# --- computing rows ------------------------------------------------------------------------

def _row_data(config: Configuration, digits: int, depth: int, width: int | None = None) -> dict:
    """One row as its journal data, computed in its thread's own mpmath context
    (:func:`meanfield._jobs.thread_context`: rows run side by side in threads must not share
    mpmath's global precision). The data is read back, as a journal is, in the calling
    process."""
    return _encode(_row(config, digits, depth, width, thread_context()))


def _row(config: Configuration, digits: int, depth: int, width: int | None = None, ctx=mpmath.mp) -> StabilityRow:
    work = max(digits + 5, 20)
    try:
        sol = eoc_parameters(config.activation, config.sparsity, q_star=config.q_star,
                             clip=config.clip, v_prime=config.v_prime, digits=work, ctx=ctx)
    except NoSolutionError as exc:
        return StabilityRow(config, "infeasible", str(exc))
    try:
        from .diagnose import diagnose_eoc  # the correlation map's sympy: only when a table is computed
        d = diagnose_eoc(sol, depth=depth, width=width, digits=work, ctx=ctx)
    except ParameterError as exc:  # q* not resolved from a neighbour even at work + 30 digits
        return StabilityRow(config, "unresolved", str(exc))
    point = d.q_star_point
    return StabilityRow(
        config, d.verdict, d.reason, tau=sol.tau, m=sol.m, sigma_w2=sol.sigma_w2,
        sigma_b2=sol.sigma_b2, v_prime=point.v_prime, v_second=point.v_second,
        fixed_points=() if sol.fixed_points.degenerate else sol.fixed_points.points,
        degenerate=sol.fixed_points.degenerate, large_q=sol.fixed_points.large_q,
        other_stable_chi1=tuple(p.chi1 for p in d.other_stable), rho0=d.rho0, xi_c=d.xi_c,
        margin=d.margin)


def _encode(row: StabilityRow) -> dict:
    """JSON data for the journal: numbers as decimal strings with every working digit."""
    num = lambda v: None if v is None else mpmath.nstr(v, 40, strip_zeros=False)  # noqa: E731
    data = {k: num(getattr(row, k)) for k in _NUMERIC}
    data.update(verdict=row.verdict, reason=row.reason, degenerate=row.degenerate, large_q=row.large_q,
                other_stable_chi1=[num(v) for v in row.other_stable_chi1],
                fixed_points=[[num(p.q), num(p.v_prime), num(p.v_second), num(p.chi1), p.kind,
                               p.attracts_from] for p in row.fixed_points])
    return data


def _readable(config: Configuration, data: dict) -> dict:
    """``data`` if it reads as a row (a journal's damaged line raises, and the journal is
    refused as corrupt)."""
    _decode(config, data)
    return data


def _decode(config: Configuration, data: dict) -> StabilityRow:
    with mpmath.workdps(45):
        num = lambda v: None if v is None else +mpmath.mpf(v)  # noqa: E731
        return StabilityRow(
            config, str(data["verdict"]), str(data["reason"]),
            **{k: num(data[k]) for k in _NUMERIC},
            degenerate=bool(data["degenerate"]), large_q=str(data["large_q"]),
            other_stable_chi1=tuple(num(v) for v in data["other_stable_chi1"]),
            fixed_points=tuple(FixedPoint(num(q), num(vp), num(vs), num(c), str(kind), af)
                               for q, vp, vs, c, kind, af in data["fixed_points"]))


#: The most digits a table reports (its rows are computed at 5 more, at least 20).
MAX_TABLE_DIGITS = 30


def _check_table_digits(digits):
    """Digits shown in a table: an integer in [1, 30] (each row is computed at 5 more)."""
    return validation.integer("digits", digits, 1, MAX_TABLE_DIGITS)


def stability_table(configurations: Sequence[Configuration], *, digits: int = 8, depth: int = 100,
                    width: int | None = None, jobs: int | None = None, progress: bool | None = None,
                    journal: FilePath | None = None) -> StabilityTable:
    """The stability table of ``configurations``, values to ``digits`` significant digits,
    with the verdicts of :func:`meanfield.diagnose.diagnose` for networks of ``depth``
    hidden layers and, if given, ``width`` units per layer (a finite width decides the
    half-stable, fragile and three-fixed-point rules by the probability that a network
    leaves q*'s basin; the reason gives it).

    Rows are computed at ``max(digits + 5, 20)`` digits, in parallel on ``jobs`` joblib
    workers (None: joblib's default, which a ``joblib.parallel_config`` block may set),
    with a progress bar (``progress``: True, False, or None for a terminal only). With a
    ``journal`` file each finished row is saved at once, and a rerun with the same
    arguments resumes from it (:mod:`meanfield._jobs`).
    """
    digits = _check_table_digits(digits)
    depth = validation.depth(depth)
    width = None if width is None else validation.width(width)
    try:
        configs = list(configurations)
    except TypeError:
        configs = []
    if not configs or not all(isinstance(c, Configuration) for c in configs):
        raise ParameterError("configurations must be a non-empty list of Configuration")
    by_key = {c.key: c for c in configs}
    job = {"kind": "stability_table", "digits": digits, "depth": depth}
    if width is not None:  # (a journal of infinite width keeps its old key)
        job["width"] = width
    tasks = [(c.key, (c, digits, depth, width)) for c in configs]
    results = run_tasks(_row_data, tasks, job=job, jobs=jobs, progress=progress, journal=journal,
                        desc="stability table", decode=lambda key, data: _readable(by_key[key], data))
    return StabilityTable(tuple(_decode(c, results[c.key]) for c in configs), digits, depth, width=width)
