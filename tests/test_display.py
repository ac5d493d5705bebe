"""Results as a notebook shows them: a short one-line repr (no mpf(...), no dataclass
dump), an HTML table, and a tidy DataFrame whose numbers are float64 and equal the
result's own values (meanfield/_display.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from meanfield.diagnose import diagnose
from meanfield.eoc import eoc_parameters
from meanfield.nn import reproduce
from meanfield.nn.simulate import simulate
from meanfield.scan import phase_diagram
from meanfield.tables import configuration_grid, stability_table

pd = pytest.importorskip("pandas")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results():
    sol = eoc_parameters("crelu", "0.85", v_prime="0.7", digits=12)
    run = reproduce.stored_results(ROOT / "results" / "mnist" / "runs.jsonl")[0]
    return {
        "EoCSolution": (sol, 1),
        "FixedPointReport": (sol.fixed_points, len(sol.fixed_points.points)),
        "Diagnosis": (diagnose(sol), 1),
        "StabilityTable": (stability_table(configuration_grid(["relu", "cst"], ["0.7", "0.8"], v_primes=["0.9"]),
                                           progress=False), 4),
        "PhaseDiagram": (phase_diagram("cst", np.linspace(0.5, 0.9, 3), np.linspace(1, 2, 2), progress=False), 6),
        "Simulation": (simulate(sol, width=40, depth=6, seeds=3, progress=False), 6),
        "TrainResult": (run, len(run.epochs)),
    }


NAMES = ["EoCSolution", "FixedPointReport", "Diagnosis", "StabilityTable", "PhaseDiagram", "Simulation",
         "TrainResult"]


@pytest.mark.parametrize("name", NAMES)
def test_short_repr(results, name):
    obj, _ = results[name]
    text = repr(obj)
    assert text.startswith(f"{name}(") and text.endswith(")")
    assert "\n" not in text and len(text) < 250, text
    assert "mpf(" not in text and "array(" not in text and "np." not in text


@pytest.mark.parametrize("name", NAMES)
def test_html_repr(results, name):
    obj, _ = results[name]
    page = obj._repr_html_()
    assert page.startswith("<div>") and page.endswith("</div>") and "<table>" in page
    assert len(page) < 20_000 and "mpf(" not in page


@pytest.mark.parametrize("name", NAMES)
def test_tidy_dataframe(results, name):
    obj, n_rows = results[name]
    frame = obj.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and len(frame) == n_rows
    assert not any(frame[c].dtype == object and frame[c].map(lambda v: "mpf" in repr(v)).any() for c in frame)


def test_dataframe_values_are_the_results(results):
    sol, _ = results["EoCSolution"]
    row = sol.to_dataframe().iloc[0]
    assert row["sigma_w2"] == float(sol.sigma_w2) and row["m"] == float(sol.m) and row["kind"] == "stable"
    report, _ = results["FixedPointReport"]
    assert list(report.to_dataframe()["q"]) == [float(p.q) for p in report.points]
    sim, _ = results["Simulation"]
    frame = sim.to_dataframe()
    assert np.allclose(frame["q"], sim.q.mean(axis=0)) and np.allclose(frame["q_theory"], sim.theory.q)
    assert list(frame["layer"]) == list(range(1, sim.depth + 1))
    run, _ = results["TrainResult"]
    frame = run.to_dataframe()
    assert list(frame["test_accuracy"]) == [e["test_accuracy"] for e in run.epochs]
    diagram, _ = results["PhaseDiagram"]
    frame = diagram.to_dataframe()
    assert sorted(set(frame["sparsity"])) == list(diagram.sparsities)
    assert list(frame["verdict"]) == [str(v) for v in diagram.verdict.ravel()]
