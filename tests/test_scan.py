r"""Verification of ``meanfield.scan`` (phase diagrams on a float64 fast path).

- (a) The central property: every point of ``phase_diagram`` (float64, with mpmath
  refinement where float64 cannot decide) has the verdict and the number of fixed points of
  ``phase_point`` (mpmath, through :func:`meanfield.diagnose.diagnose`), and the same
  v_prime, rho0, margin, chi_1 at the other stable point, sigma_w2, sigma_b2 to 1e-9.
- (b) The number of fixed points counted independently: sign changes of V(q) - q on a dense
  grid, V(q) = sigma_b2 + sigma_w2 E[phi(sqrt(q) z)^2] by ``scipy.integrate.quad`` of the
  activation's formula on each smooth piece, with tau, sigma_w2 and sigma_b2 from their
  definitions (no meanfield code).
- (c) Scale invariance: (s, m/sqrt(q*)) decides everything; q* = 1 and q* = 3 agree.
- (d) jobs = 1 / 2 and a resumed journal give identical diagrams; records, CSV, JSON and
  counts are consistent; arrays are read-only.
- (e) Hostile input raises ParameterError naming the parameter.

- (f) Regression tests of the library defects these tests found (near-tangent clip levels,
  tiny sparsities, wide clips at the lowest sparsity), all fixed.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from hypothesis import Phase, event, example, given, reject, settings, strategies as st
from scipy.integrate import quad
from scipy.stats import norm

from meanfield.diagnose import VERDICTS
from meanfield.errors import ParameterError
from meanfield.scan import FIELDS, phase_diagram, phase_point
from meanfield.testing.strategies import examples, log_uniform

NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
ALLOWED = set(VERDICTS) | {"infeasible", "unresolved"}
NUMBERS = ("tau", "sigma_w2", "sigma_b2", "v_prime", "v_second", "rho0", "margin", "chi1_other")


def close(a, b, rel, abs_=0.0):
    """Equal to ``rel`` (NaN equals NaN: 'not defined' on both paths)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rel * max(abs(a), abs(b)) + abs_


def at(d, name):
    return d.__getattribute__(name)[0, 0]


# -- (a) the float64 path against the mpmath path -------------------------------------------------

@st.composite
def points(draw):
    act = draw(st.sampled_from(["crelu", "cst"]))
    s = draw(st.floats(0.5, 0.95, exclude_max=True) if act == "crelu" else st.floats(0.0, 0.95, exclude_max=True))
    # log-uniform in [0.05, 6]; a third of the draws in [4.5, 6], where V'(q*) nears 1 and the
    # float64 path hands points to mpmath
    r = draw(st.one_of(log_uniform(0.05, 6), log_uniform(0.05, 6), log_uniform(4.5, 6)))
    return act, s, r, draw(log_uniform(0.25, 4))


def reference(act, s, r, q):
    """phase_point's answer (the mpmath path)."""
    return phase_point(act, s, r, q_star=q)


@settings(max_examples=examples(40), deadline=None, phases=NO_SHRINK)
@given(point=points())
@example(point=("cst", 0.8, 1.6105503, 1.0))     # three fixed points: 'exploding'
@example(point=("cst", 0.8, 5.2, 2.0))           # V'(q*) = 1 - 1.6e-8: refined by mpmath
@example(point=("cst", 0.0, 6.0, 0.5))           # s = 0 (tau = 0), refined
@example(point=("crelu", 0.85, 1.7394909, 3.0))  # margin 0.041: 'fragile'
@example(point=("crelu", 0.8, 1.8517196, 1.0))   # margin 0.082, just above MARGIN_MIN: 'trainable'
def test_fast_path_agrees_with_the_mpmath_path(point):
    act, s, r, q = point
    if 0 < s < 1e-100:  # below the supported magnitudes: refused up front
        with pytest.raises(ParameterError, match="sparsities"):
            phase_diagram(act, [s], [r], q_star=q, progress=False)
        return
    ref = reference(act, s, r, q)
    d = phase_diagram(act, [s], [r], q_star=q, progress=False)
    event(f"refined={bool(at(d, 'refined'))}")
    event(f"verdict={ref['verdict']}")
    assert at(d, "verdict") == ref["verdict"], (at(d, "verdict"), ref["verdict"], at(d, "reason"), ref["reason"])
    assert at(d, "n_fixed_points") == ref["n_fixed_points"]
    if ref["verdict"] in ("infeasible", "unresolved"):
        return
    for name in NUMBERS:
        # absolute floors where float64 cannot give 1e-9 relative: sigma_b2 = q* - sigma_w2 E[phi^2]
        # (and rho0 = sigma_b2/q* for cst, E[phi] = 0) cancel when sigma_b2 << q* (s ~ 0, wide clip);
        # margin may be 0; tau: float64 forms (1 + s)/2 and loses s below ~1e-16
        floor = {"sigma_b2": 1e-12 * q, "rho0": 1e-12, "margin": 1e-12,
                 "tau": 1e-15 * math.sqrt(q)}.get(name, 0.0)
        assert close(float(at(d, name)), ref[name], 1e-9, floor), (name, float(at(d, name)), ref[name])


def test_central_property_covers_both_paths_and_several_verdicts():
    """The strategy's corners: fast-path points with 1 and 3 fixed points, and refined points."""
    d = phase_diagram("cst", [0.8], [0.7217, 1.6105503, 5.2], progress=False)
    assert d.verdict.tolist() == [["too-sparse", "exploding", "exploding"]]
    assert d.n_fixed_points.tolist() == [[1, 3, 3]]
    assert d.refined.tolist() == [[False, False, True]]  # V'(q*) = 1 - 1.6e-8 at m = 5.2
    for j, r in enumerate([0.7217, 1.6105503, 5.2]):
        ref = phase_point("cst", 0.8, r)
        assert d.verdict[0, j] == ref["verdict"] and d.n_fixed_points[0, j] == ref["n_fixed_points"]


# -- (b) independent count of the fixed points ------------------------------------------------------

def reference_map(act, s, r, q_star):
    """(sigma_w2, sigma_b2, V) of the EoC initialisation, from the definitions only."""
    level = s if act == "crelu" else (1 + s) / 2
    tau = math.sqrt(q_star) * norm.ppf(level)
    m = r * math.sqrt(q_star)
    copies = 1 if act == "crelu" else 2  # cst: phi is odd, phi^2 and phi'^2 even

    def e_phi2(q):
        sd = math.sqrt(q)
        ramp = quad(lambda x: (x - tau) ** 2 * norm.pdf(x / sd) / sd, tau, tau + m, epsabs=0, epsrel=1e-13,
                    limit=200)[0]
        return copies * (ramp + m * m * norm.sf((tau + m) / sd))

    e_dphi2 = copies * (norm.sf(tau / math.sqrt(q_star)) - norm.sf((tau + m) / math.sqrt(q_star)))
    sw = 1 / e_dphi2
    sb = q_star - sw * e_phi2(q_star)
    return sw, sb, lambda q: sb + sw * e_phi2(q)


def count_sign_changes(v, lo, hi, n=2500, q_star=None):
    grid = np.geomspace(lo, hi, n)
    if q_star is not None:
        grid = np.unique(np.append(grid, [q_star * (1 - 1e-6), q_star * (1 + 1e-6)]))
    f = np.array([v(q) - q for q in grid])
    signs = np.where(np.abs(f) > 1e-11 * grid, np.sign(f), 0)
    signs = signs[signs != 0]
    return int(np.sum(signs[1:] != signs[:-1]))


COUNT_CASES = [("cst", 0.8, 1.6105503, 1.0, 3), ("crelu", 0.85, 1.7394909, 1.0, 1),
               ("cst", 0.85, 1.5342803, 1.0, 3), ("cst", 0.8, 1.6105503 / math.sqrt(3), 3.0, 1),
               ("crelu", 0.5, 1.0, 0.5, 1), ("cst", 0.3, 3.0, 2.0, 3), ("crelu", 0.9, 0.2, 1.0, 1)]


@pytest.mark.parametrize("act, s, r, q, n", COUNT_CASES)
def test_number_of_fixed_points_against_a_quadrature_scan(act, s, r, q, n):
    sw, sb, v = reference_map(act, s, r, q)
    m = r * math.sqrt(q)
    assert sb > 0
    counted = count_sign_changes(v, 0.5 * sb, 1.5 * (sb + sw * m * m), q_star=q)
    assert counted == n
    d = phase_diagram(act, [s], [r], q_star=q, progress=False)
    assert at(d, "n_fixed_points") == counted
    assert close(float(at(d, "sigma_w2")), sw, 1e-9) and close(float(at(d, "sigma_b2")), sb, 1e-9)
    assert abs(v(q) - q) < 1e-11 * q  # the reference puts q* on the map too


def test_cst_anchor_three_fixed_points_is_exploding():
    d = phase_diagram("cst", [0.8], [1.6105503, 0.7217], progress=False)
    assert d.verdict.tolist() == [["exploding", "too-sparse"]] and d.n_fixed_points.tolist() == [[3, 1]]
    assert at(d, "chi1_other") > 1 and at(d, "margin") == 0


# -- (c) scale invariance ----------------------------------------------------------------------------

@pytest.mark.parametrize("act, sparsities", [("cst", [0.0, 0.3, 0.8, 0.9]), ("crelu", [0.5, 0.7, 0.85, 0.9])])
def test_scale_invariance(act, sparsities):
    ratios = [0.05, 0.3, 0.9, 1.6105503, 2.5, 4.0]
    a = phase_diagram(act, sparsities, ratios, q_star=1.0, progress=False)
    b = phase_diagram(act, sparsities, ratios, q_star=3.0, progress=False)
    assert np.array_equal(a.verdict, b.verdict) and np.array_equal(a.n_fixed_points, b.n_fixed_points)
    for name, scale in [("v_prime", 1), ("rho0", 1), ("v_second", 3), ("sigma_w2", 1), ("sigma_b2", 1 / 3),
                        ("tau", 1 / math.sqrt(3))]:
        x, y = getattr(a, name), getattr(b, name) * scale
        ok = np.isclose(x, y, rtol=1e-10, atol=1e-13, equal_nan=True)
        assert ok.all(), (name, x[~ok], y[~ok])


# -- (d) parallel, journal, records -----------------------------------------------------------------

SMALL_S = [0.0, 0.18, 0.36, 0.54, 0.72, 0.9]
SMALL_R = [0.05, 0.118, 0.28, 0.66, 1.6105503, 4.0]


def _grid(**kw):
    return phase_diagram("cst", SMALL_S, SMALL_R, progress=False, **kw)


_FRESH = {}


def fresh():
    if "d" not in _FRESH:
        _FRESH["d"] = _grid(jobs=1)
    return _FRESH["d"]


def same(a, b):
    for k in FIELDS + ("reason",):
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype and x.shape == y.shape, k
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), k
        else:
            assert np.array_equal(x, y), k
    assert np.array_equal(a.sparsities, b.sparsities) and np.array_equal(a.clip_ratios, b.clip_ratios)
    assert a.records() == b.records() or _nan_equal(a.records(), b.records())


def _nan_equal(ra, rb):
    norm_ = lambda r: {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}  # noqa: E731
    assert [norm_(r) for r in ra] == [norm_(r) for r in rb]
    return True


def test_small_grid_is_well_formed():
    d = fresh()
    assert d.verdict.shape == (6, 6)
    assert set(d.verdict.ravel()) <= ALLOWED and "nan" not in set(d.verdict.ravel())
    ok = d.verdict != "infeasible"
    for name in ("tau", "sigma_w2", "sigma_b2", "v_prime", "v_second", "rho0"):
        assert np.isfinite(getattr(d, name)[ok]).all(), name
    assert (d.n_fixed_points[ok] >= 1).all() and (d.n_fixed_points[~ok] == -1).all()
    assert sum(d.counts().values()) == d.verdict.size == 36
    assert d.counts() == {v: int((d.verdict == v).sum()) for v in set(d.verdict.ravel())}


def test_jobs_2_equals_jobs_1():
    same(_grid(jobs=2), fresh())


def test_journal_resume_equals_fresh(tmp_path):
    path = tmp_path / "pd.jsonl"
    part = phase_diagram("cst", SMALL_S[:2], SMALL_R, progress=False, journal=path)
    assert np.array_equal(part.verdict, fresh().verdict[:2])
    same(_grid(journal=path, jobs=2), fresh())
    lines = path.read_text().splitlines()
    keys = [json.loads(line)["key"] for line in lines[1:]]
    assert sorted(keys) == sorted(repr(float(s)) for s in SMALL_S)
    same(_grid(journal=path), fresh())  # a rerun reads everything back
    with pytest.raises(ParameterError, match="journal"):  # other clip ratios: another job
        phase_diagram("cst", SMALL_S, SMALL_R[:-1], progress=False, journal=path)


def test_records_csv_json_are_consistent():
    d = fresh()
    recs = d.records()
    assert len(recs) == 36
    assert [(r["sparsity"], r["clip_ratio"]) for r in recs] == [(s, r) for s in SMALL_S for r in SMALL_R]
    for rec in recs:
        i, j = SMALL_S.index(rec["sparsity"]), SMALL_R.index(rec["clip_ratio"])
        for k in FIELDS:
            v = getattr(d, k)[i, j]
            assert rec[k] == v or (isinstance(rec[k], float) and math.isnan(rec[k]) and math.isnan(v)), k
    rows = list(csv.DictReader(io.StringIO(d.to_csv())))
    assert len(rows) == 36 and list(rows[0]) == list(recs[0])
    for row, rec in zip(rows, recs):
        want = {k: ("" if math.isnan(v) else ("+inf" if v > 0 else "-inf"))
                if isinstance(v, float) and not math.isfinite(v) else "" if v is None else str(v)
                for k, v in rec.items()}  # (width None, infinite: an empty cell)
        assert row["depth"] == str(d.depth) and row["width"] == ""
        assert row == want
    text = d.to_json()
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text)
    assert len(back) == 36
    for row, rec in zip(back, recs):
        for k, v in rec.items():
            if isinstance(v, float) and not math.isfinite(v):
                assert row[k] is None, k
            else:
                assert row[k] == v, k
    assert any(row["margin"] is None for row in back) or all(np.isfinite(d.margin).ravel())


def test_arrays_are_read_only():
    d = fresh()
    for k in FIELDS + ("reason",):
        with pytest.raises(ValueError):
            getattr(d, k)[0, 0] = getattr(d, k)[0, 1]
    for arr in (d.sparsities, d.clip_ratios):
        with pytest.raises(ValueError):
            arr[0] = 0.5


# -- (e) hostile input -----------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
HOSTILE = [
    ({"activation": "relu"}, "activation"), ({"activation": "st"}, "activation"),
    ({"activation": "CST"}, "activation"), ({"activation": None}, "activation"),
    ({"sparsities": []}, "sparsities"), ({"clip_ratios": []}, "clip_ratios"),
    ({"sparsities": [NAN]}, "sparsities"), ({"sparsities": [0.6, INF]}, "sparsities"),
    ({"sparsities": [-0.1]}, "sparsities"), ({"sparsities": [1.0]}, "sparsities"),
    ({"sparsities": [0.99, 1.5]}, "sparsities"), ({"sparsities": ["x"]}, "sparsities"),
    ({"sparsities": None}, "sparsities"), ({"sparsities": [[0.6]]}, "sparsities"),
    ({"activation": "crelu", "sparsities": [0.49]}, "sparsities"),
    ({"clip_ratios": [NAN]}, "clip_ratios"), ({"clip_ratios": [-1.0]}, "clip_ratios"),
    ({"clip_ratios": [0.0]}, "clip_ratios"), ({"clip_ratios": [1e-3]}, "clip_ratios"),
    ({"clip_ratios": [1e3]}, "clip_ratios"), ({"clip_ratios": [INF]}, "clip_ratios"),
    ({"q_star": 0}, "q_star"), ({"q_star": -1.0}, "q_star"), ({"q_star": NAN}, "q_star"),
    ({"q_star": INF}, "q_star"), ({"q_star": "abc"}, "q_star"), ({"q_star": None}, "q_star"),
    ({"depth": 0}, "depth"), ({"depth": -3}, "depth"), ({"depth": 1.5}, "depth"), ({"depth": True}, "depth"),
    ({"sparsities": list(np.linspace(0, 0.9, 1001)), "clip_ratios": list(np.geomspace(0.01, 10, 1000))},
     "points"),
    ({"jobs": 0}, "jobs"), ({"jobs": "2"}, "jobs"),
]


@pytest.mark.parametrize("kw, word", HOSTILE, ids=[f"{w}-{i}" for i, (_, w) in enumerate(HOSTILE)])
def test_hostile_input_raises_naming_the_parameter(kw, word):
    args = {"activation": "cst", "sparsities": [0.6], "clip_ratios": [1.0], "progress": False, **kw}
    with pytest.raises(ParameterError, match=word) as info:
        phase_diagram(args.pop("activation"), args.pop("sparsities"), args.pop("clip_ratios"), **args)
    assert "\n" not in str(info.value)


@settings(max_examples=examples(30), deadline=None)
@given(act=st.sampled_from(["crelu", "cst"]),
       s=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=3),
       r=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=3))
def test_random_axes_never_give_nan_verdicts(act, s, r):
    s_min = 0.5 if act == "crelu" else 0.0
    good_s = all(math.isfinite(v) and s_min <= v < 1 and (v == 0 or v >= 1e-100) for v in s)
    good_r = all(math.isfinite(v) and 1e-3 < v < 1e3 for v in r)
    if not (good_s and good_r):
        with pytest.raises(ParameterError, match="sparsities" if not good_s else "clip_ratios"):
            phase_diagram(act, s, r, progress=False)
        return
    if len(set(s)) < len(s):
        reject()  # duplicates: refused, see test_duplicate_sparsities_raise
    d = phase_diagram(act, s, r, progress=False)
    assert set(d.verdict.ravel()) <= ALLOWED


def test_duplicate_sparsities_raise():
    with pytest.raises(ParameterError):
        phase_diagram("cst", [0.6, 0.6], [1.0], progress=False)


# -- (f) defects (regression tests of the defects these tests found; all fixed) ---------------------------------------------

@pytest.mark.parametrize("act, s, r", [("cst", 0.8, 5.6), ("cst", 0.54, 6.0), ("crelu", 0.9, 5.5),
                                       ("cst", 0.94, 5.2)])
def test_near_tangent_point_is_diagnosed(act, s, r):
    d = phase_diagram(act, [s], [r], progress=False)
    assert at(d, "verdict") in ALLOWED


@pytest.mark.parametrize("call", ["diagram", "point"])
def test_tiny_sparsity_is_refused_by_both(call):
    """A nonzero sparsity below 1e-100 is outside the supported magnitudes, on both paths."""
    with pytest.raises(ParameterError, match="sparsit"):
        if call == "diagram":
            phase_diagram("cst", [1e-150], [6.0], progress=False)
        else:
            phase_point("cst", 1e-150, 1.0)


@pytest.mark.parametrize("act, s, r", [("cst", 0.0, 15.0), ("cst", 0.0, 500.0), ("crelu", 0.5, 12.0),
                                       ("crelu", 0.5, 50.0)])
def test_wide_clip_at_the_lowest_sparsity_gives_a_point(act, s, r):
    d = phase_diagram(act, [s], [r], progress=False)
    assert at(d, "verdict") in ALLOWED
