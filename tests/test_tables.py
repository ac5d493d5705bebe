r"""Verification of ``meanfield.tables`` (stability tables) and ``meanfield._jobs`` (the runner).

- (a) Acceptance anchors from the paper, through ``stability_table(paper_grid())``: CReLU
  s = 0.85 has m = 0.81 (V' = 0.5) and 1.74 (V' = 0.9); CST s = 0.8, V' = 0.9 has three
  fixed points (stable, unstable, stable), chi_1 > 1 at the upper one, 'exploding'; ReLU_tau
  and ST_tau with s >= 0.6 are 'half-stable'; the ReLU baseline is degenerate and 'trainable'.
  Rows equal ``eoc_parameters`` + ``diagnose`` run directly; rho(0), tau, sigma_w2, sigma_b2
  and V'(q*) of one row recomputed from the activation's formula by ``mpmath.quad``.
- (b) Formats: CSV and JSON parse back to ``records()``; Markdown and LaTeX have the right
  structure and escape what they must (hypothesis over arbitrary cell text);
  ``to_dataframe`` numbers are float64 and equal the records.
- (c) ``parse_values``: ranges are inclusive, equally spaced, of the right count; hostile
  text raises ParameterError naming the parameter.
- (d) ``Configuration`` / ``configuration_grid`` under hostile arguments: ParameterError
  naming the offending parameter; infeasible configurations give an 'infeasible' row.
- (e) Parallel and resumable: jobs = 2 and a threading backend give the same table; a
  journal resumes, holds each key once, tolerates a torn last line, and refuses (without
  touching it) a corrupt journal, a file that is not a journal and the journal of another job.
- (f) ``run_tasks`` / ``check_jobs`` with hostile ``jobs``.

Section (g) holds regression tests of the library defects these tests found (all fixed).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
import time
from decimal import Decimal
from fractions import Fraction

import joblib
import mpmath
import numpy as np
import pytest
from hypothesis import example, Phase, given, settings, strategies as st
from scipy.integrate import quad
from scipy.stats import norm

from meanfield._files import fcntl, locked
from meanfield._jobs import check_jobs, run_tasks
from meanfield.diagnose import diagnose
from meanfield.eoc import eoc_parameters
from meanfield.errors import InUseError, ParameterError
from meanfield.tables import (COLUMNS, Configuration, StabilityRow, StabilityTable, configuration_grid,
                              paper_grid, parse_values, stability_table)
from meanfield.testing.strategies import examples

from _holder import held_by_another_process

NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
DIGITS = 8
DEPTH = 100


@functools.lru_cache(maxsize=None)
def paper_table() -> StabilityTable:
    return stability_table(paper_grid(), digits=DIGITS, depth=DEPTH, progress=False)


def row_of(activation, s, v_prime=""):
    table = paper_table()
    hits = [(row, rec) for row, rec in zip(table.rows, table.records())
            if (rec["activation"], rec["sparsity"], rec["v_prime_target"]) == (activation, s, v_prime)]
    assert len(hits) == 1, (activation, s, v_prime, len(hits))
    return hits[0]


# -- (a) acceptance anchors --------------------------------------------------------------------------

def test_paper_grid_is_the_papers_grid():
    keys = [c.key for c in paper_grid()]
    assert len(keys) == len(set(keys)) == 1 + 8 + 30
    table = paper_table()
    assert len(table) == len(keys) and [r.configuration.key for r in table] == keys
    assert all(r.verdict != "infeasible" for r in table)


def test_crelu_clip_levels_of_the_paper():
    assert round(float(row_of("crelu", "0.85", "0.5")[1]["m"]), 2) == 0.81
    assert round(float(row_of("crelu", "0.85", "0.9")[1]["m"]), 2) == 1.74


def test_cst_three_fixed_points_and_exploding():
    row, rec = row_of("cst", "0.8", "0.9")
    assert rec["n_fixed_points"] == "3"
    kinds = [p.kind for p in row.fixed_points]
    assert kinds == ["stable", "unstable", "stable"]
    assert [re.search(r"\((.*)\)", t).group(1) for t in rec["fixed_points"].split("; ")] == kinds
    assert abs(row.fixed_points[0].q - 1) < 1e-15
    upper = row.fixed_points[2]
    assert upper.chi1 > 1 and len(row.other_stable_chi1) == 1 and row.other_stable_chi1[0] == upper.chi1
    assert float(rec["chi1_other_stable"]) > 1
    assert rec["verdict"] == "exploding" and rec["margin"] == "0.0"


@pytest.mark.parametrize("activation", ["relu", "st"])
@pytest.mark.parametrize("s", ["0.6", "0.7", "0.8", "0.85"])
def test_relu_tau_and_st_tau_are_half_stable(activation, s):
    row, rec = row_of(activation, s)
    assert rec["verdict"] == "half-stable", rec["reason"]
    assert rec["n_fixed_points"] == "1" and rec["fixed_points"] == "1.0(half-stable-below)"
    assert rec["margin"] == "" and rec["xi_c"] == "+inf" and rec["v_prime"] == "1.0"


def test_every_relu_and_st_row_with_s_at_least_0_6_is_half_stable():
    recs = [r for r in paper_table().records() if r["activation"] in ("relu", "st")
            and Decimal(r["sparsity"]) >= Decimal("0.6")]
    assert len(recs) == 8 and {r["verdict"] for r in recs} == {"half-stable"}


def test_relu_baseline_is_degenerate_and_trainable():
    row, rec = row_of("relu", "0.5")
    assert row.degenerate and row.n_fixed_points == mpmath.inf
    assert (rec["n_fixed_points"], rec["fixed_points"]) == ("inf", "all q")
    assert rec["verdict"] == "trainable" and rec["tau"] == "0.0" and rec["sigma_b2"] == "0.0"
    assert rec["sigma_w2"] == "2.0"
    with mpmath.workdps(30):
        assert abs(row.rho0 - 1 / mpmath.pi) < mpmath.mpf(10) ** -18  # arc-cosine kernel


def _text(v, digits=DIGITS):
    if v is None:
        return ""
    if mpmath.isinf(v):
        return "+inf" if v > 0 else "-inf"
    return mpmath.nstr(v, digits)


#: rows checked against a direct eoc_parameters + diagnose run (one of every kind of row)
DIRECT = [("relu", "0.5", ""), ("relu", "0.7", ""), ("st", "0.85", ""), ("crelu", "0.5", "0.7"),
          ("crelu", "0.85", "0.5"), ("crelu", "0.85", "0.9"), ("cst", "0.8", "0.9"), ("cst", "0.85", "0.9"),
          ("cst", "0.8", "0.7")]


@pytest.mark.parametrize("activation, s, vp", DIRECT)
def test_row_equals_a_direct_run(activation, s, vp):
    row, rec = row_of(activation, s, vp)
    work = max(DIGITS + 5, 20)
    sol = eoc_parameters(activation, s, q_star="1", v_prime=vp or None, digits=work)
    d = diagnose(sol, depth=DEPTH, digits=work)
    assert rec["verdict"] == d.verdict and rec["reason"] == d.reason
    for name, want in [("tau", sol.tau), ("m", sol.m), ("sigma_w2", sol.sigma_w2), ("sigma_b2", sol.sigma_b2),
                       ("v_prime", d.v_prime), ("v_second", d.v_second), ("rho0", d.rho0), ("xi_c", d.xi_c),
                       ("margin", d.margin)]:
        assert rec[name] == _text(want), (name, rec[name], want)
    if sol.fixed_points.degenerate:
        assert rec["n_fixed_points"] == "inf"
    else:
        pts = sol.fixed_points.points
        assert rec["n_fixed_points"] == str(len(pts))
        assert [p.kind for p in row.fixed_points] == [p.kind for p in pts]
        assert rec["fixed_points"].count(";") == len(pts) - 1
    assert rec["chi1_other_stable"] == "; ".join(_text(p.chi1) for p in d.other_stable)


# the activations written from their definitions (no meanfield code)
def _phi(name, tau, m):
    if name == "crelu":
        return lambda x: min(max(x - tau, 0), m)
    return lambda x: mpmath.sign(x) * min(max(abs(x) - tau, 0), m)  # cst


def _kinks(name, tau, m):
    return [tau, tau + m] if name == "crelu" else [-tau - m, -tau, tau, tau + m]


def _gauss_mean(f, kinks, q, dps=30):
    """E[f(sqrt(q) z)] by mpmath.quad split at the kinks."""
    with mpmath.workdps(dps):
        r = mpmath.sqrt(q)
        pts = [-mpmath.inf] + sorted({mpmath.mpf(k) / r for k in kinks} | {mpmath.mpf(0)}) + [mpmath.inf]
        return mpmath.quad(lambda z: f(r * z) * mpmath.npdf(z), pts)


@pytest.mark.parametrize("activation, s, vp", [("crelu", "0.85", "0.5"), ("cst", "0.8", "0.9")])
def test_one_row_recomputed_from_the_activation_formula(activation, s, vp):
    """tau from the sparsity, sigma_w2 = 1/E[phi'^2], sigma_b2 = q* - sigma_w2 E[phi^2],
    V'(q*) = sigma_w2 E[phi phi' z]/sqrt(q*) (the target), and
    rho(0) = (sigma_b2 + sigma_w2 E[phi(sqrt(q*) z)]^2)/q* (at c = 0 the inputs are independent).
    Only m is taken from the table (the root of V'(q*) = target)."""
    row, rec = row_of(activation, s, vp)
    with mpmath.workdps(30):
        level = mpmath.mpf(s) if activation == "crelu" else (1 + mpmath.mpf(s)) / 2
        tau = mpmath.sqrt(2) * mpmath.erfinv(2 * level - 1)
        m = row.m
        phi = _phi(activation, tau, m)
        kinks = _kinks(activation, tau, m)
        dphi = lambda x: 1 if tau < abs(x) < tau + m and (activation == "cst" or x > 0) else 0  # noqa: E731
        e_dphi2 = _gauss_mean(lambda x: dphi(x) ** 2, kinks, 1)
        sw = 1 / e_dphi2
        sb = 1 - sw * _gauss_mean(lambda x: phi(x) ** 2, kinks, 1)
        vprime = sw * _gauss_mean(lambda x: phi(x) * dphi(x) * x, kinks, 1)  # z = x at q* = 1
        rho0 = sb + sw * _gauss_mean(phi, kinks, 1) ** 2
        for got, want in [(row.tau, tau), (row.sigma_w2, sw), (row.sigma_b2, sb), (row.rho0, rho0),
                          (mpmath.mpf(vp), vprime)]:
            assert abs(got - want) < mpmath.mpf(10) ** -15 * abs(want), (got, want)
        assert rec["rho0"] == mpmath.nstr(rho0, DIGITS)


# -- (b) formats --------------------------------------------------------------------------------------

columns_st = st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=len(COLUMNS), unique=True)


@settings(max_examples=examples(25), deadline=None)
@given(columns=columns_st, digits=st.integers(1, 30))
def test_csv_and_json_parse_back_to_the_records(columns, digits):
    table = paper_table()
    want = [{c: r[c] for c in columns} for r in table.records(digits)]
    got_csv = list(csv.DictReader(io.StringIO(table.format("csv", columns=columns, digits=digits))))
    assert got_csv == want
    got_json = json.loads(table.format("json", columns=columns, digits=digits))
    assert got_json == want
    assert all(list(r) == list(columns) for r in got_json)  # column order kept


def _markdown_cells(line):
    assert line.startswith("| ") and line.endswith(" |"), line
    cells = re.split(r" \| ", line[2:-2])  # an escaped pipe is "\|": never " | "
    return [c.replace("\\|", "|") for c in cells]


@settings(max_examples=examples(20), deadline=None)
@given(columns=columns_st)
def test_markdown_structure(columns):
    table = paper_table()
    lines = table.format("markdown", columns=columns).rstrip("\n").split("\n")
    assert len(lines) == 2 + len(table)
    assert _markdown_cells(lines[0]) == list(columns)
    assert lines[1] == "|" + "---|" * len(columns)
    for line, rec in zip(lines[2:], table.records()):
        assert _markdown_cells(line) == [rec[c] for c in columns]


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}"}
_LATEX_TOKEN = re.compile("|".join(re.escape(v) for v in sorted(_LATEX_ESCAPES.values(), key=len, reverse=True)))
_UNESCAPED_AMP = re.compile(r"(?<!\\)&")


def _latex_unescape(cell):
    """The text a LaTeX cell shows; asserts that no special character is left raw."""
    back = {v: k for k, v in _LATEX_ESCAPES.items()}
    raw = _LATEX_TOKEN.sub("", cell)
    assert not set(raw) & set(_LATEX_ESCAPES), (cell, raw)
    return _LATEX_TOKEN.sub(lambda mt: back[mt.group(0)], cell)


def _latex_rows(text, columns):
    """The cells of ``format("latex", columns=columns)`` as the records' strings, one list
    per row in ``columns``' order: the two cells of an aligned number joined, the reason
    read back from the notes its mark points to."""
    from meanfield.tables import _ALIGNED
    shown = [c for c in columns if c != "reason"]
    lines = text.rstrip("\n").split("\n")
    spec = "".join("r@{}l" if c in _ALIGNED else "l" for c in shown)
    assert lines[0] == r"\begin{tabular}{" + spec + "}"
    assert lines[1] == r"\toprule" and lines[3] == r"\midrule"
    end = lines.index(r"\end{tabular}")
    assert lines[end - 1] == r"\bottomrule"
    notes = {}
    if end + 1 < len(lines):
        assert lines[end + 1] == r"\par\smallskip\footnotesize"
        for line in lines[end + 2:]:
            m = re.fullmatch(r"\\textsuperscript\{(\w+)\} (.*)\\\\", line)
            assert m, line
            notes[m.group(1)] = _latex_unescape(m.group(2))
    n_amp = sum(2 if c in _ALIGNED else 1 for c in shown) - 1
    out = []
    for line in lines[4:end - 1]:
        assert line.endswith(r" \\") and line.count(r"\\") - line.count(r"\\multicolumn") == 1, line
        cells = line[:-3]
        # a \multicolumn{2} cell stands for two: count it twice
        assert len(_UNESCAPED_AMP.findall(cells)) + cells.count(r"\multicolumn{2}") == n_amp, line
        parts, row = iter(_unpad(_UNESCAPED_AMP.split(cells))), {}
        for c in shown:
            cell = next(parts)
            mark_here = "reason" in columns and c == ("verdict" if "verdict" in shown else shown[0])
            if c in _ALIGNED and not cell.startswith(r"\multicolumn"):
                frac = next(parts)
                m = re.search(r"\\textsuperscript\{(\w+)\}$", frac)
                if m and mark_here:
                    row["reason"], frac = notes[m.group(1)], frac[:m.start()]
                power = re.search(r"\\ensuremath\{\\times 10\^\{(-?\d+)\}\}$", frac)
                if power:
                    frac = frac[:power.start()]
                cell = _latex_unescape(cell) + _latex_unescape(frac) + (f"e{power.group(1)}" if power else "")
            elif c in _ALIGNED:
                m = re.search(r"\\textsuperscript\{(\w+)\}$", cell)
                if m and mark_here:
                    row["reason"], cell = notes[m.group(1)], cell[:m.start()]
                inner = cell[len(r"\multicolumn{2}{c}{"):-1]
                cell = {"": "", r"$\infty$": "+inf", r"$-\infty$": "-inf"}[inner]
            else:
                m = re.search(r"\\textsuperscript\{(\w+)\}$", cell)
                if m and mark_here:
                    row["reason"] = notes[m.group(1)]
                    cell = cell[:m.start()]
                cell = _latex_unescape(cell)
            row[c] = cell
        row.setdefault("reason", "")
        out.append([row[c] for c in columns])
    return out


def _exponent_as_written(text):
    """A record's number as the LaTeX cells give it back: 1.5e-07 as 1.5e-7, inf as +inf."""
    if text == "inf":
        return "+inf"
    m = re.fullmatch(r"([-+]?[\d.]+)[eE]([-+]?\d+)", text)
    return f"{m.group(1)}e{int(m.group(2))}" if m else text


def _unpad(cells):
    """Cells joined by " & ": drop exactly the separator's spaces (a cell keeps its own)."""
    out = []
    for i, c in enumerate(cells):
        if i > 0:
            assert c.startswith(" "), cells
            c = c[1:]
        if i < len(cells) - 1:
            assert c.endswith(" "), cells
            c = c[:-1]
        out.append(c)
    return out


@settings(max_examples=examples(20), deadline=None)
@given(columns=columns_st)
@example(columns=["sparsity", "reason"])  # the note's mark on an aligned number (found by CI)
@example(columns=["xi_c", "reason"])      # and on a number spanning both cells
def test_latex_structure(columns):
    table = paper_table()
    if list(columns) == ["reason"]:
        return  # the reasons are the notes of a table with other columns
    rows = _latex_rows(table.format("latex", columns=columns), columns)
    assert len(rows) == len(table)
    for cells, rec in zip(rows, table.records()):
        assert cells == [_exponent_as_written(rec[c]) for c in columns]


#: cell text: printable, no line breaks (rows are one line), with every special character
CELL_TEXT = st.text(st.one_of(st.sampled_from(list("|_^<>%&$#{}~\\ '\"")),
                              st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))), max_size=30)


@settings(max_examples=examples(60), deadline=None)
@given(verdicts=st.lists(st.tuples(CELL_TEXT, CELL_TEXT), min_size=1, max_size=4))
def test_every_format_escapes_arbitrary_cell_text(verdicts):
    rows = tuple(StabilityRow(Configuration("relu", "0.6"), v, r) for v, r in verdicts)
    table = StabilityTable(rows, DIGITS, DEPTH)
    cols = ("activation", "verdict", "reason", "n_fixed_points")
    want = [{c: rec[c] for c in cols} for rec in table.records()]
    assert [r["verdict"] for r in want] == [v for v, _ in verdicts]
    assert list(csv.DictReader(io.StringIO(table.format("csv", columns=cols)))) == want
    assert json.loads(table.format("json", columns=cols)) == want
    rows_tex = _latex_rows(table.format("latex", columns=cols), cols)
    assert rows_tex == [list(w.values()) for w in want]
    if not any("\\" in v + r for v, r in verdicts):  # a backslash before | is another matter (GFM)
        md = table.format("markdown", columns=cols).rstrip("\n").split("\n")
        assert len(md) == 2 + len(rows)
        for line, w in zip(md[2:], want):
            # a cell that ends (or begins) with a space keeps it: compare after the padding
            assert line.count("|") - line.count("\\|") == len(cols) + 1, line
            assert _markdown_cells(line) == list(w.values())


def test_latex_special_characters_of_real_reasons_are_escaped():
    table = paper_table()
    text = table.format("latex", columns=("verdict", "reason"))
    reasons = "".join(r["reason"] for r in table.records())
    assert "_" in reasons and "<" in reasons and ">" in reasons  # the reasons do hold them
    body = text.split(r"\midrule")[1].replace(r"\par\smallskip\footnotesize", "")
    for ch in "_^<>%&$#":
        assert not re.search(r"(?<![\\])" + re.escape(ch), _LATEX_TOKEN.sub("", body)), ch


def test_unknown_format_or_columns_raise():
    table = paper_table()
    with pytest.raises(ParameterError, match="format"):
        table.format("html")
    for cols in ([], ["nope"], ["activation", "Verdict"]):
        with pytest.raises(ParameterError, match="columns"):
            table.format("csv", columns=cols)


def test_to_dataframe():
    pd = pytest.importorskip("pandas")
    table = paper_table()
    frame = table.to_dataframe()
    recs = table.records(17)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == len(table)
    for col in ("sparsity", "v_prime_target", "tau", "m", "sigma_w2", "sigma_b2", "v_prime", "v_second",
                "rho0", "xi_c", "margin"):
        assert frame[col].dtype == np.float64, (col, frame[col].dtype)
        for got, rec in zip(frame[col], recs):
            text = rec[col]
            if text == "":
                assert math.isnan(got), (col, got)
            elif text in ("+inf", "-inf"):
                assert got == float(text.replace("+", ""))
            else:
                assert got == float(text), (col, got, text)
    assert np.all(np.isinf(frame["xi_c"])) and np.all(frame["xi_c"] > 0)  # "+inf" on the EoC
    assert frame["n_fixed_points"].dtype == np.float64  # "inf" of the ReLU baseline
    assert list(frame["n_fixed_points"]) == [float(r["n_fixed_points"]) for r in recs]
    assert list(frame["verdict"]) == [r["verdict"] for r in recs]
    assert pd.api.types.is_numeric_dtype(frame["q_star"]) and (frame["q_star"] == 1).all()


# -- (c) parse_values ---------------------------------------------------------------------------------

decimal_st = st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=examples(200), deadline=None)
@given(start=decimal_st, width=st.decimals(0, 100, places=4), step=st.decimals(Decimal("0.0001"), 50, places=4))
def test_ranges_are_inclusive_and_equally_spaced(start, width, step):
    stop = start + width
    count = int(width // step) + 1
    if count > 100_000:
        with pytest.raises(ParameterError, match="sparsity"):
            parse_values(f"{start}:{stop}:{step}", "sparsity")
        return
    values = parse_values(f"{start}:{stop}:{step}", "sparsity")
    assert all(isinstance(v, str) for v in values)
    ds = [Decimal(v) for v in values]
    assert len(ds) == count
    assert ds[0] == start and ds[-1] <= stop < ds[-1] + step
    assert all(b - a == step for a, b in zip(ds, ds[1:]))
    if width % step == 0:
        assert ds[-1] == stop  # the end is included


@settings(max_examples=examples(100), deadline=None)
@given(items=st.lists(st.one_of(decimal_st.map(str), st.floats(-1e6, 1e6).map(repr),
                                st.integers(-10**6, 10**6).map(str)), min_size=1, max_size=8),
       pad=st.sampled_from(["", " "]))
def test_lists_and_single_values(items, pad):
    values = parse_values(",".join(pad + i + pad for i in items), "q_star")
    assert [Decimal(v) for v in values] == [Decimal(i) for i in items]


HOSTILE_TEXT = ["", " ", "a:b", "1:0:0.1", "nan", "NaN", "1:2:0", "1:2:-1", "inf", "-Infinity", "1:inf:1",
                "1:2", "1:2:3:4", "::", "1,,2", ",", "1,x", "0:1:1e-6", "0:1e9:1", "1e5,sNaN", "0x10",
                "1/2", "½", "one", None, 1, 0.5, b"0.5", ["0.5"]]


@pytest.mark.parametrize("text", HOSTILE_TEXT, ids=[repr(t) for t in HOSTILE_TEXT])
def test_hostile_text_raises_naming_the_parameter(text):
    with pytest.raises(ParameterError, match="clip_ratio"):
        parse_values(text, "clip_ratio")


@settings(max_examples=examples(300), deadline=None)
@given(text=st.text(st.sampled_from(list("0123456789.:,-+eE naif_ ")), max_size=14))
def test_fuzzed_text_gives_decimals_or_parameter_error(text):
    try:
        values = parse_values(text, "sparsity")
    except ParameterError as exc:
        assert "sparsity" in str(exc)
        return
    except ArithmeticError:  # the known decimal.Overflow (test_extreme_exponents_raise_parameter_error)
        assert re.search(r"[eE][+-]?\d{6,}", text), text
        return
    assert values and all(Decimal(v).is_finite() for v in values)


# -- (d) Configuration and configuration_grid -----------------------------------------------------

SPEC = {"relu": (0.5, False), "st": (0.0, False), "crelu": (0.5, True), "cst": (0.0, True)}


def _number(v):
    """float(v) if meanfield should accept v as a real number, else None (the oracle)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str, Decimal)):
        return None
    try:
        f = float(v.strip() if isinstance(v, str) else v)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(f) or abs(f) > 1e30 or 0 < abs(f) < 1e-100:
        return None
    return f


def offending(activation, sparsity, q_star, clip, v_prime):
    """The parameter a Configuration must complain about (None: valid) and the words of its message."""
    if not (isinstance(activation, str) and activation in SPEC):
        return ("activation",)
    s_min, clipped = SPEC[activation]
    s = _number(sparsity)
    if s is None or not s_min <= s < 1:
        return ("sparsity",)
    q = _number(q_star)
    if q is None or not q > 0:
        return ("q_star",)
    if not clipped:
        return ("clip", "v_prime") if clip is not None or v_prime is not None else None
    if (clip is None) == (v_prime is None):
        return ("clip", "v_prime")
    if clip is not None:
        m = _number(clip)
        return ("clip",) if m is None or not m > 0 else None
    t = _number(v_prime)
    return ("v_prime",) if t is None or not 0 < t < 1 else None


NUMBERS = st.one_of(
    st.floats(-2, 2), st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3),
    st.decimals(-2, 2, places=3).map(str),
    st.sampled_from([None, True, False, "", " ", "abc", "nan", "inf", "-inf", "1e999", "1e-200", "-0.0", " 0.7 ",
                     "0.5", "0.6", "0.99", "1", "0", Decimal("NaN"), Decimal("0.75"), 1e-320, 2.0, "1e30", "1e31"]))
ACTIVATIONS = st.one_of(st.sampled_from(["relu", "st", "crelu", "cst", "relu0", "hard_tanh", "RELU", " relu", "",
                                         None, 3, True]), st.text(max_size=5))


@settings(max_examples=examples(400), deadline=None)
@given(activation=ACTIVATIONS, sparsity=NUMBERS, q_star=NUMBERS,
       clip=st.one_of(st.none(), NUMBERS), v_prime=st.one_of(st.none(), NUMBERS))
def test_configuration_under_hostile_arguments(activation, sparsity, q_star, clip, v_prime):
    bad = offending(activation, sparsity, q_star, clip, v_prime)
    try:
        cfg = Configuration(activation, sparsity, q_star, clip=clip, v_prime=v_prime)
    except ParameterError as exc:
        assert bad is not None, f"rejected a valid configuration: {exc}"
        message = str(exc)
        assert "\n" not in message and all(w in message for w in bad), (message, bad)
        return
    assert bad is None, f"accepted {bad}"
    # the stored numbers are decimal texts of the given values
    for given_v, stored in [(sparsity, cfg.sparsity), (q_star, cfg.q_star), (clip, cfg.clip), (v_prime, cfg.v_prime)]:
        if given_v is not None:
            assert isinstance(stored, str) and float(stored) == _number(given_v)
    assert cfg.key.startswith(f"{activation} s={cfg.sparsity} q*={cfg.q_star}")


@settings(max_examples=examples(150), deadline=None)
@given(activations=st.lists(ACTIVATIONS, max_size=3), sparsities=st.lists(NUMBERS, max_size=3),
       q_stars=st.lists(NUMBERS, min_size=1, max_size=2),
       clips=st.one_of(st.none(), st.lists(NUMBERS, max_size=2)),
       v_primes=st.one_of(st.none(), st.lists(NUMBERS, max_size=2)))
def test_configuration_grid_under_hostile_arguments(activations, sparsities, q_stars, clips, v_primes):
    try:
        grid = configuration_grid(activations, sparsities, q_stars=q_stars, clips=clips, v_primes=v_primes)
    except ParameterError as exc:
        message = str(exc)
        assert "\n" not in message
        assert re.search(r"activation|sparsity|q_star|clip|v_prime|V'|grid", message), message
        if clips is not None and v_primes is not None:
            assert "clip" in message
        return
    assert grid and all(isinstance(c, Configuration) for c in grid)
    assert not (clips is not None and v_primes is not None)
    n = 0
    for act in activations:
        clipped = SPEC[act][1]
        n += len(sparsities) * len(q_stars) * (1 if not clipped else len(clips if clips is not None else v_primes))
    assert len(grid) == n


def test_configuration_grid_messages():
    with pytest.raises(ParameterError, match="clip"):
        configuration_grid(["crelu"], ["0.6"])
    with pytest.raises(ParameterError, match="clip"):
        configuration_grid(["cst"], ["0.6"], clips=["1"], v_primes=["0.5"])
    with pytest.raises(ParameterError, match="empty"):
        configuration_grid([], ["0.6"])
    with pytest.raises(ParameterError, match="sparsity"):
        configuration_grid(["relu"], ["0.6", "1.2"])
    with pytest.raises(ParameterError, match="v_prime"):
        configuration_grid(["crelu"], ["0.6"], v_primes=["0.5", "1"])


#: Configurations without an EoC initialisation in practice. sigma_b2 < 0 never happens for
#: crelu/cst (see test_sigma_b2_is_never_negative_for_the_clipped_activations); what does
#: happen: a clip so small that sigma_w2 = 1/E[phi'^2] leaves the supported range, and a V'
#: target so close to 0 that the working precision cannot reach it.
INFEASIBLE = [Configuration("cst", "0.8", clip="1e-35"), Configuration("crelu", "0.6", clip="1e-40"),
              Configuration("cst", "0.8", v_prime="1e-60"), Configuration("crelu", "0.99", v_prime="1e-90")]


def test_infeasible_configurations_give_an_infeasible_row():
    feasible = Configuration("crelu", "0.85", v_prime="0.5")
    table = stability_table(INFEASIBLE + [feasible], digits=6, progress=False)
    recs = table.records()
    for rec in recs[:-1]:
        assert rec["verdict"] == "infeasible" and rec["reason"], rec
        assert all(rec[k] == "" for k in ("tau", "m", "sigma_w2", "sigma_b2", "v_prime", "rho0", "xi_c",
                                          "margin", "n_fixed_points", "fixed_points"))
    assert recs[-1]["verdict"] == "too-sparse"  # one corner does not stop the rest
    assert "sigma_w2" in recs[0]["reason"] and "v_prime" in recs[2]["reason"]
    for fmt in ("csv", "markdown", "latex", "json"):
        assert "infeasible" in table.format(fmt)
    frame = table.to_dataframe() if _has_pandas() else None
    if frame is not None:
        assert frame["rho0"].isna().sum() == len(INFEASIBLE)


def _has_pandas():
    try:
        import pandas  # noqa: F401
        return True
    except ImportError:
        return False


def test_sigma_b2_is_never_negative_for_the_clipped_activations():
    """Why no infeasible row comes from sigma_b2 < 0: on the EoC sigma_b2 / q* = 1 - E[phi^2]/E[phi'^2]
    (scale invariance) and, for cst (crelu is half of it in both), E[phi^2] <= E[phi'^2] with
    equality only in the limit tau = 0, m -> inf. Checked on a grid by quadrature."""
    worst = -1.0
    for t in np.linspace(0, 4, 17):
        for m in np.geomspace(1e-3, 12, 30):
            p = 2 * (norm.sf(t) - norm.sf(t + m))
            e2 = 2 * quad(lambda z: (z - t) ** 2 * norm.pdf(z), t, t + m, epsabs=0, epsrel=1e-12)[0] \
                + 2 * m * m * norm.sf(t + m)
            worst = max(worst, e2 / p)
    assert worst < 1 + 1e-12


# -- (e) parallel, resumable --------------------------------------------------------------------------

SMALL = [Configuration("relu", "0.6"), Configuration("crelu", "0.85", v_prime="0.9"),
         Configuration("cst", "0.8", v_prime="0.9"), Configuration("relu", "0.5"),
         Configuration("cst", "0.8", clip="1e-35")]


@functools.lru_cache(maxsize=None)
def small_fresh(digits=6):
    return stability_table(SMALL, digits=digits, jobs=1, progress=False)


def test_jobs_2_equals_jobs_1():
    assert stability_table(SMALL, digits=6, jobs=2, progress=False).records() == small_fresh().records()


def test_backend_switch_without_code_changes():
    before = mpmath.mp.prec
    with joblib.parallel_config(backend="threading", n_jobs=2):
        table = stability_table(SMALL, digits=6, progress=False)
    # rows run side by side in threads, each in an mpmath context of its own: one row
    # leaving its precision could otherwise lower another's, and leave the global one raised
    assert mpmath.mp.prec == before
    assert table.records() == small_fresh().records()


def _journal_keys(path):
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "meanfield-journal-1"
    return header, [json.loads(line)["key"] for line in lines[1:]]


def test_journal_resume_equals_fresh_run(tmp_path):
    path = tmp_path / "sub" / "table.jsonl"
    part = stability_table(SMALL[:2], digits=6, progress=False, journal=path)
    assert part.records() == small_fresh().records()[:2]
    full = stability_table(SMALL, digits=6, progress=False, journal=path, jobs=2)
    assert full.records() == small_fresh().records()
    header, keys = _journal_keys(path)
    assert header["job"] == {"kind": "stability_table", "digits": 6, "depth": 100}
    assert sorted(keys) == sorted(c.key for c in SMALL)  # each key once
    # a rerun computes nothing and changes nothing
    before = path.read_bytes()
    again = stability_table(SMALL, digits=6, progress=False, journal=path)
    assert again.records() == small_fresh().records() and path.read_bytes() == before
    # a journal holds the full working precision: other digits of the records are exact too
    assert again.records(4) == small_fresh().records(4)


def test_journal_torn_last_line_is_tolerated(tmp_path):
    path = tmp_path / "t.jsonl"
    stability_table(SMALL[:3], digits=6, progress=False, journal=path)
    lines = path.read_text().splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]
    path.write_text("".join(lines[:-1]) + torn)  # the last task was being written when killed
    table = stability_table(SMALL, digits=6, progress=False, journal=path)
    assert table.records() == small_fresh().records()
    _, keys = _journal_keys(path)
    assert sorted(keys) == sorted(c.key for c in SMALL)


def test_journal_with_a_torn_header_is_restarted(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"format": "meanfield-journal-1", "job": {"kind": "stabil')
    assert stability_table(SMALL[:1], digits=6, progress=False, journal=path).records() == \
        small_fresh().records()[:1]
    assert _journal_keys(path)[1] == [SMALL[0].key]


def _refused(path, match, digits=6, depth=100):
    """ParameterError naming the journal; the file is left as it was. ``match``: what the
    message should say; see test_journal_messages_say_what_is_wrong for why it is not asserted."""
    before = path.read_bytes()
    with pytest.raises(ParameterError, match="journal") as info:
        stability_table(SMALL, digits=digits, depth=depth, progress=False, journal=path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before  # never truncated, never modified
    return str(info.value)


def test_journal_corrupt_middle_line_is_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    stability_table(SMALL[:3], digits=6, progress=False, journal=path)
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:10] + "\n"
    path.write_text("".join(lines))
    _refused(path, "corrupt")
    lines[2] = '{"key": "relu s=0.6 q*=1", "result": {"verdict": 3}}\n'  # valid JSON, not a row
    path.write_text("".join(lines))
    _refused(path, "corrupt")


@pytest.mark.parametrize("content", ["name,value\na,1\nb,2\n", "precious notes", "{}\n{}\n", "[1, 2]\n",
                                     '{"format": "meanfield-journal-2", "job": {}}\n', "\x00\xff binary\n"])
def test_a_file_that_is_not_a_journal_is_refused_untouched(tmp_path, content):
    path = tmp_path / "results.csv"
    path.write_bytes(content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content)
    _refused(path, "not a meanfield journal")


def test_journal_of_another_job_is_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    stability_table(SMALL[:2], digits=6, progress=False, journal=path)
    _refused(path, "another job", digits=7)
    _refused(path, "another job", depth=50)


def test_journal_of_a_phase_diagram_is_refused(tmp_path):
    from meanfield.scan import phase_diagram
    path = tmp_path / "t.jsonl"
    phase_diagram("crelu", [0.6], [1.0], progress=False, journal=path)
    _refused(path, "another job")


# -- (f) run_tasks and check_jobs ----------------------------------------------------------------------

HOSTILE_JOBS = [0, -2, -1024, 1.5, 2.0, True, False, "2", 10**6, 1025, [2], float("nan")]


@pytest.mark.parametrize("jobs", HOSTILE_JOBS, ids=[repr(j) for j in HOSTILE_JOBS])
def test_hostile_jobs_raise(jobs):
    with pytest.raises(ParameterError, match="jobs"):
        check_jobs(jobs)
    with pytest.raises(ParameterError, match="jobs"):
        run_tasks(pow, [("a", (2, 3))], job={"k": 1}, jobs=jobs, progress=False)
    with pytest.raises(ParameterError, match="jobs"):
        stability_table(SMALL[:1], jobs=jobs, progress=False)


@pytest.mark.parametrize("jobs", [None, 1, 2, -1, 1024, np.int64(2)])
def test_valid_jobs(jobs):
    assert check_jobs(jobs) == jobs


def _square(x):
    return x * x


@settings(max_examples=examples(10), deadline=None)
@given(xs=st.lists(st.integers(-1000, 1000), unique=True, max_size=20), jobs=st.sampled_from([None, 1, 2]))
def test_run_tasks_returns_every_result(xs, jobs):
    tasks = [(str(x), (x,)) for x in xs]
    with joblib.parallel_config(backend="threading"):
        out = run_tasks(_square, tasks, job={"k": 1}, jobs=jobs, progress=False)
    assert out == {str(x): x * x for x in xs}


def test_run_tasks_journal_and_duplicate_keys(tmp_path):
    path = tmp_path / "j.jsonl"
    calls = []

    def f(x):
        calls.append(x)
        return {"sq": x * x}

    tasks = [(f"k{x}", (x,)) for x in range(5)]
    with joblib.parallel_config(backend="threading"):
        run_tasks(f, tasks[:3], job={"k": 1}, progress=False, journal=path)
        out = run_tasks(f, tasks, job={"k": 1}, progress=False, journal=path,
                        decode=lambda key, d: d)
    assert out == {f"k{x}": {"sq": x * x} for x in range(5)} and sorted(calls) == [0, 1, 2, 3, 4]
    with pytest.raises(ParameterError, match="twice"):
        run_tasks(f, tasks + tasks[:1], job={"k": 1}, progress=False)



@pytest.mark.skipif(fcntl is None, reason="no flock on this platform: one process per journal")
def test_a_journal_line_another_process_is_writing_is_waited_for(tmp_path):
    """Two processes share a journal: one is half-way through appending a line when the
    other starts. The second waits for the line instead of cutting it off as torn (which
    would lose that result and train it again), and takes it as done."""
    path = tmp_path / "j.jsonl"
    header = json.dumps({"format": "meanfield-journal-1", "job": {"k": 1}}) + "\n"
    line = json.dumps({"key": "k0", "result": {"sq": 0, "pad": "x" * 20_000}}) + "\n"
    path.write_text(header)
    calls = []

    def f(x):
        calls.append(x)
        return {"sq": x * x}

    with held_by_another_process(path, head=line[:1000], tail=line[1000:]) as other:
        other.release(after=1.5)  # the run below blocks on the lock until then
        t0 = time.monotonic()
        out = run_tasks(f, [("k0", (0,)), ("k1", (1,))], job={"k": 1}, progress=False, journal=path,
                        decode=lambda key, d: d)
        waited = time.monotonic() - t0
    assert waited > 1.2, "the run did not wait for the lock"
    assert calls == [1] and out["k0"]["sq"] == 0 and out["k1"] == {"sq": 1}
    assert _journal_keys(path)[1] == ["k0", "k1"]  # every line whole, each key once


def test_a_line_left_half_written_by_a_killed_process_is_cut_off_before_the_next(tmp_path):
    """A process sharing the journal dies while appending (after this one has read it):
    the next line this one appends must start a line of its own, not merge with the part."""
    path = tmp_path / "j.jsonl"

    def f(x):
        if x == 1:  # meanwhile, another process is killed in the middle of a line
            with open(path, "ab") as fh:
                fh.write(b'{"key": "zz", "result": {"sq"')
        return {"sq": x * x}

    with joblib.parallel_config(backend="threading"):
        out = run_tasks(f, [("k0", (0,)), ("k1", (1,)), ("k2", (2,))], job={"k": 1}, progress=False,
                        journal=path, decode=lambda key, d: d)
    assert _journal_keys(path)[1] == ["k0", "k1", "k2"]  # every line whole
    again = run_tasks(f, [("k0", (0,)), ("k1", (1,)), ("k2", (2,))], job={"k": 1}, progress=False,
                      journal=path, decode=lambda key, d: d)
    assert again == out == {f"k{x}": {"sq": x * x} for x in range(3)}


@pytest.mark.skipif(fcntl is None, reason="no flock on this platform")
def test_a_lock_names_its_file_and_dies_with_its_process(tmp_path):
    path = tmp_path / "x.lock"
    with held_by_another_process(path) as other:
        with pytest.raises(InUseError, match=re.escape(str(path)) + " is in use by another process"):
            with locked(path, wait=False):
                pass
        other.kill()  # a killed holder leaves no lock behind
        with locked(path, wait=False):
            pass

# -- (g) defects found by these tests (regression tests of the defects these tests found; all fixed) -------------

def test_range_never_passes_its_stop():
    values = parse_values("0:0.9999999999:1", "sparsity")
    assert all(Decimal(v) <= Decimal("0.9999999999") for v in values), values


@pytest.mark.parametrize("text", ["0:1:1e-999999999", "1e999999999:1e999999999:1"])
def test_extreme_exponents_raise_parameter_error(text):
    with pytest.raises(ParameterError, match="sparsity"):
        parse_values(text, "sparsity")


def test_unhashable_activation_raises_parameter_error():
    with pytest.raises(ParameterError, match="activation"):
        Configuration(["relu"], "0.6")


@pytest.mark.parametrize("kw", [{"activations": None}, {"sparsities": None}, {"q_stars": None}])
def test_non_iterable_grid_axes_raise_parameter_error(kw):
    args = {"activations": ["relu"], "sparsities": ["0.6"], **kw}
    with pytest.raises(ParameterError):
        configuration_grid(args.pop("activations"), args.pop("sparsities"), **args)


@pytest.mark.parametrize("kw", [{"sparsity": b"0.6"}, {"sparsity": Fraction(3, 5)}, {"q_star": b"2"}])
def test_values_that_cannot_be_stored_are_refused_at_once(kw):
    args = {"activation": "relu", "sparsity": "0.6", **kw}
    with pytest.raises(ParameterError):
        Configuration(**args)


@pytest.mark.parametrize("digits", [-1, 0, 2.5, True, 100])
def test_hostile_record_digits_raise(digits):
    table = small_fresh()
    with pytest.raises(ParameterError, match="digits"):
        table.records(digits)


def test_dataframe_q_star_is_float64():
    pytest.importorskip("pandas")
    assert paper_table().to_dataframe()["q_star"].dtype == np.float64


@pytest.mark.parametrize("content, words", [("precious notes\nline 2\n", "not a meanfield journal"),
                                            ('{"format": "meanfield-journal-1", "job": {"kind": "x"}}\n',
                                             "another job")])
def test_journal_messages_say_what_is_wrong(tmp_path, content, words):
    path = tmp_path / "results.txt"
    path.write_text(content)
    assert words in _refused(path, words)


def test_near_tangent_clip_gives_a_row():
    table = stability_table([Configuration("cst", "0.8", clip="5.6"), Configuration("relu", "0.6")],
                            progress=False)
    assert table.records()[0]["verdict"] in ("exploding", "half-stable")
