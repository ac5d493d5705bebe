"""meanfield.recommend: the clip level between the two failure modes.

- the band's edges are where the verdict changes (checked by diagnosing either side);
- the recommendation lies in the band (its middle), or BACK_OFF below the upper edge
  when no V'(q*) is trainable;
- against training: for CReLU and CST at s = 0.7 and 0.85 (depth 100, the committed
  results/mnist table: 10 epochs, 5 seeds), the recommended V'(q*) is nearer to the
  measured best of V' in {0.5, 0.7, 0.9} than to the other two;
- bad input and the command line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from meanfield.cli import main
from meanfield.diagnose import diagnose
from meanfield.eoc import eoc_parameters
from meanfield.errors import ParameterError
from meanfield.recommend import BACK_OFF, EDGE_TOLERANCE, FAILING, recommend

TABLE = Path(__file__).resolve().parents[1] / "results" / "mnist" / "table.csv"


def measured_best():
    """{(activation, sparsity): V'(q*) of the best mean test accuracy} of the clipped rows."""
    rows = [r for r in csv.DictReader(TABLE.open(encoding="utf-8")) if r["v_prime"]]
    best = {}
    for r in rows:
        key = (r["activation"], r["sparsity"])
        acc = float(r["accuracy_mean"]) if r["accuracy_mean"] else 0.1  # none learnt: chance
        if key not in best or acc > best[key][1]:
            best[key] = (float(r["v_prime"]), acc)
    return {k: v for k, (v, _) in best.items()}


@pytest.fixture(scope="module")
def recommendations():
    return {(a, s): recommend(a, s, depth=100) for a in ("crelu", "cst") for s in ("0.7", "0.85")}


def verdict_at(a, s, v):
    return diagnose(eoc_parameters(a, sparsity=s, v_prime=repr(round(v, 6)), digits=15), depth=100,
                    digits=15).verdict


@pytest.mark.parametrize("key", [("crelu", "0.7"), ("crelu", "0.85"), ("cst", "0.7"), ("cst", "0.85")])
def test_recommendation_is_nearest_the_measured_best(recommendations, key):
    rec = recommendations[key]
    best = measured_best()[key]
    grid = (0.5, 0.7, 0.9)
    nearest = min(grid, key=lambda v: abs(v - rec.v_prime))
    assert nearest == best, (key, rec.v_prime, best)


@pytest.mark.parametrize("key", [("crelu", "0.85"), ("cst", "0.7"), ("cst", "0.85")])
def test_band_edges_are_where_the_verdict_changes(recommendations, key):
    rec = recommendations[key]
    a, s = key
    lo, hi = rec.band
    step = EDGE_TOLERANCE
    assert verdict_at(a, s, hi - step) not in FAILING
    assert verdict_at(a, s, hi + step) in FAILING
    if lo < hi:  # a trainable band: too-sparse below it, trainable inside
        assert verdict_at(a, s, lo - step) == "too-sparse"
        assert verdict_at(a, s, lo + step) == "trainable"
        assert rec.v_prime == pytest.approx((lo + hi) / 2, abs=1e-6)
        assert verdict_at(a, s, rec.v_prime) == "trainable"
    else:  # none trainable: BACK_OFF below the upper edge, still not failing
        assert rec.v_prime == pytest.approx(hi - BACK_OFF, abs=1e-6)
        assert verdict_at(a, s, rec.v_prime) == "too-sparse"
    assert rec.m == pytest.approx(float(eoc_parameters(a, sparsity=s, v_prime=repr(rec.v_prime), digits=15).m))


def test_bad_input_names_the_parameter():
    with pytest.raises(ParameterError, match="clipped"):
        recommend("relu", "0.7")
    with pytest.raises(ParameterError, match="width"):
        recommend("crelu", "0.7", width=0)
    with pytest.raises(ParameterError, match="depth"):
        recommend("crelu", "0.7", depth=0)


def test_command_line(capsys, tmp_path):
    assert main(["recommend", "--activation", "cst", "--sparsity", "0.7", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 1 and data[0]["activation"] == "cst" and 0.5 < data[0]["v_prime"] < 0.9
    assert main(["recommend", "--activation", "crelu", "--sparsity", "0.8", "--depth", "30", "--width", "300"]) == 0
    out = capsys.readouterr().out
    assert "crelu at sparsity 0.8, depth 30, width 300: V'(q*) = " in out and "recommended" in out
