"""The notebooks run, top to bottom, with small parameters (so they never go stale).

Each notebook is a jupytext percent script (notebooks/*.py). It is read with jupytext,
executed by nbclient in a fresh python3 kernel (the interpreter running the tests, via
ipykernel) with MEANFIELD_NOTEBOOK_QUICK=1, and must finish without an error and show
at least one figure. The assertions inside the notebooks (closed forms against
quadrature, simulation against theory) run as part of it.
"""

import os
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SCRIPTS = sorted(p for p in NOTEBOOKS.glob("*.py") if not p.name.startswith("_"))


def test_every_analysis_has_a_notebook():
    assert {p.stem for p in SCRIPTS} >= {"variance_maps", "phase_diagram", "correlation_maps",
                                         "simulation", "mnist_results"}


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_notebook_runs(script, monkeypatch, tmp_path):
    nb = jupytext.read(script)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert any("parameters" in c.metadata.get("tags", ()) for c in nb.cells), \
        "a notebook keeps its sizes in one cell tagged 'parameters'"
    monkeypatch.setenv("MEANFIELD_NOTEBOOK_QUICK", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows figures
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError with the cell and traceback on failure
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", ())
              if "image/png" in o.get("data", {})]
    assert images, f"{script.name} shows no figure"
