"""The figures, and the sweep commands of the command line: table over grids,
phase-diagram, plot, demo (issue 4).

- Every figure renders to PNG and PDF with labelled axes, a legend, and no text outside
  the canvas (clipped text).
- ``phase-diagram`` and ``table -o`` write their files, resume from a journal, and remove
  it when done; an interrupt exits 130 and says how to resume.
- ``demo`` writes everything it lists.
- Random and hostile arguments to the new commands: exit 0 or a one-line error, never a
  traceback or NaN.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from meanfield.cli import main, sweeps
from meanfield.plots import FIGURES, figure, save_figure
from meanfield.scan import phase_diagram


def call(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def clean_failure(code, out, err):
    assert code == 2, (code, out, err)
    assert err.startswith("meanfield: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


# --- figures ---------------------------------------------------------------------------

_SMALL = {"phase-diagram": {"n": 12, "progress": False}, "correlation-maps": {"points": 21, "depth": 30},
          "v-derivatives": {"ratios": np.linspace(0.1, 4, 30)}}


@pytest.fixture(scope="module")
def figures():
    return {name: figure(name, **_SMALL.get(name, {})) for name in FIGURES}


@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_is_labelled_and_nothing_is_clipped(name, figures, tmp_path):
    fig = figures[name]
    paths = save_figure(fig, tmp_path / name, ("png", "pdf"))
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    axes = fig.get_axes()
    assert axes
    for ax in axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), (name, ax.get_title())
        assert ax.get_title().strip()
    assert fig.legends or any(ax.get_legend() is not None for ax in axes), name
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # lays out the figure as savefig does
    renderer = canvas.get_renderer()
    width, height = canvas.get_width_height()
    # what is drawn: each axes with its tick labels, axis labels and title; the legends
    boxes = [(ax.get_title(), ax.get_tightbbox(renderer)) for ax in axes]
    boxes += [("figure legend", leg.get_window_extent(renderer)) for leg in fig.legends]
    for what, box in boxes:
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, \
            (name, what, box, (width, height))


def test_unknown_figure_and_format_are_refused():
    from meanfield.errors import ParameterError
    with pytest.raises(ParameterError, match="figure"):
        figure("nope")
    with pytest.raises(ParameterError, match="format"):
        save_figure(figure("activations"), "/tmp/x", ("gif",))


def test_plot_command_writes_png_and_pdf(tmp_path, capsys):
    code, out, err = call(["plot", "activations", "-o", str(tmp_path), "--formats", "png,pdf"], capsys)
    assert code == 0, err
    for ext in ("png", "pdf"):
        assert (tmp_path / f"activations.{ext}").stat().st_size > 1000
        assert str(tmp_path / f"activations.{ext}") in out


# --- phase-diagram and table on the command line -------------------------------------------

def test_phase_diagram_command_resumes_from_its_journal(tmp_path, capsys):
    s, r = [0.6, 0.7, 0.8], [0.5, 1.0, 1.6105503]
    out_file = tmp_path / "cst.csv"
    journal = Path(f"{out_file}.partial.jsonl")
    phase_diagram("cst", s[:2], r, journal=journal, progress=False)   # an "interrupted" run
    assert journal.exists()
    code, out, err = call(["phase-diagram", "--activation", "cst", "--sparsity", "0.6,0.7,0.8",
                           "--clip-ratio", "0.5,1.0,1.6105503", "-o", str(out_file),
                           "--figure", str(tmp_path / "cst.png"), "--no-progress"], capsys)
    assert code == 0, err
    assert not journal.exists()
    assert (tmp_path / "cst.png").stat().st_size > 1000
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    fresh = phase_diagram("cst", s, r, progress=False).records()
    assert [(float(x["sparsity"]), float(x["clip_ratio"]), x["verdict"]) for x in rows] == \
        [(f["sparsity"], f["clip_ratio"], f["verdict"]) for f in fresh]
    assert "exploding 1" in out


def test_table_command_over_a_grid(tmp_path, capsys):
    out_file = tmp_path / "t.csv"
    code, out, err = call(["table", "--activation", "crelu,relu", "--sparsity", "0.6:0.7:0.1",
                           "--v-prime", "0.5", "--format", "csv", "-o", str(out_file), "--jobs", "2",
                           "--no-progress"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert [(r["activation"], r["sparsity"]) for r in rows] == [
        ("crelu", "0.6"), ("crelu", "0.7"), ("relu", "0.6"), ("relu", "0.7")]
    assert all(r["verdict"] == "half-stable" for r in rows if r["activation"] == "relu")
    assert not Path(f"{out_file}.partial.jsonl").exists()
    code, out, err = call(["table", "--activation", "cst", "--sparsity", "0.8", "--v-prime", "0.9",
                           "--format", "latex", "--columns", "activation,fixed_points,verdict"], capsys)
    assert code == 0, err
    assert r"\toprule" in out and "exploding" in out and out.count(r"\\") == 2
    # a finite width: ReLU_tau at s = 0.6 passes at depth 30 (2% of networks run away), the
    # three-fixed-point CST point is fragile at depth 5 (tests/test_diagnose.py checks both)
    code, out, err = call(["table", "--activation", "relu", "--sparsity", "0.6", "--depth", "30", "--width", "300",
                           "--format", "csv", "--columns", "verdict,reason"], capsys)
    assert code == 0, err
    assert out.splitlines()[1].startswith("trainable,at this width")
    code, out, err = call(["phase-diagram", "--activation", "cst", "--sparsity", "0.8", "--clip-ratio",
                           "1.6105503363856677", "--depth", "5", "--width", "300", "--no-progress"], capsys)
    assert code == 0, err
    assert list(csv.DictReader(io.StringIO(out)))[0]["verdict"] == "fragile"


def test_interrupt_says_how_to_resume(monkeypatch, capsys, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(sweeps, "stability_table", interrupted)
    out_file = tmp_path / "t.md"
    code, out, err = call(["table", "-o", str(out_file)], capsys)
    assert code == 130 and f"{out_file}.partial.jsonl: rerun the same command to resume" in err
    code, out, err = call(["table"], capsys)  # without -o nothing is kept: no promise of a resume
    assert code == 130 and err.strip() == "meanfield: interrupted"


@pytest.mark.parametrize("argv, word", [
    (["table", "--sparsity", "0.6"], "--activation"),
    (["table", "--activation", "crelu"], "--sparsity"),
    (["table", "--activation", "crelu", "--sparsity", "0.6"], "clip"),
    (["table", "--activation", "relu", "--sparsity", "0.6", "--columns", "nope"], "columns"),
    (["table", "--activation", "relu", "--sparsity", "1:0:0.1"], "sparsity"),
    (["table", "--activation", "relu", "--sparsity", "0.6", "--jobs", "0"], "jobs"),
    (["table", "--activation", "relu", "--sparsity", "0.6", "-o", "/nonexistent-dir/x.md"], "nonexistent"),
    (["phase-diagram", "--activation", "cst", "--sparsity", "1.2", "--clip-ratio", "1"], "sparsit"),
    (["phase-diagram", "--activation", "cst", "--sparsity", "0.5", "--clip-ratio", "0"], "--clip-ratio"),
    (["phase-diagram", "--activation", "relu", "--sparsity", "0.5", "--clip-ratio", "1"], "activation"),
    (["table", "--activation", "relu", "--sparsity", "0.6", "--width", "0"], "width"),
    (["phase-diagram", "--activation", "cst", "--sparsity", "0.5", "--clip-ratio", "1", "--width", "-2"], "width"),
    (["plot", "nope"], "nope"),
    (["plot", "activations", "--formats", "gif"], "formats"),
])
def test_bad_sweep_arguments(argv, word, capsys):
    code, out, err = call(argv, capsys)
    clean_failure(code, out, err)
    assert word in err


_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["", "0", "-1", "nan", "inf", "1:0:1", "0.5:0.6:0", "a,b", "0.6,0.6",
                                     "1e400", "é", "crelu", "cst", "relu", "2", "0.7"]),
                    st.text(max_size=6))


@settings(max_examples=60, deadline=None)
@given(command=st.sampled_from(["table", "phase-diagram", "plot"]),
       pairs=st.lists(st.tuples(st.sampled_from(["--activation", "--sparsity", "--clip-ratio", "--q-star",
                                                 "--clip", "--v-prime", "--depth", "--width", "--format",
                                                 "--columns", "--jobs", "--digits", "--formats"]),
                                _VALUES), min_size=1, max_size=5))
def test_fuzz_sweep_commands(command, pairs, tmp_path_factory):
    """Hostile arguments, on small grids (the defaults below are overridden by later flags)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    base = {"table": ["table", "--activation", "relu", "--sparsity", "0.6"],
            "phase-diagram": ["phase-diagram", "--activation", "cst", "--sparsity", "0.6",
                              "--clip-ratio", "1"],
            "plot": ["plot", "activations", "-o", str(tmp), "--formats", "png"]}[command]
    argv = base + [x for pair in pairs for x in pair] + ["--no-progress"]
    import contextlib
    out_buf, err_buf = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out_buf), contextlib.redirect_stderr(err_buf):
        code = main(argv)
    out, err = out_buf.getvalue(), err_buf.getvalue()
    if code == 0:
        assert not re.search(r"\bnan\b", out, re.IGNORECASE)
    else:
        clean_failure(code, out, err)


# --- the main job ------------------------------------------------------------------------------

def run_on_a_terminal(argv, timeout=900):
    """``meanfield ARGV`` in a subprocess whose stderr is a fresh pty (of size 0 x 0, as a
    bare terminal reports) and whose stdout is a pipe: (exit status, stdout, stderr)."""
    import os
    import pty
    import subprocess
    import sys
    import threading
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "meanfield", *argv], stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the pty closed with the process
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=timeout)
    reader.join(10)
    os.close(master)
    return proc.returncode, out.decode(), b"".join(chunks).decode("utf-8", "replace")


def test_demo_writes_everything_it_lists_and_shows_progress_on_a_terminal(tmp_path, capsys):
    """The main job on a terminal: a line per stage and a bar in each long stage on stderr
    (a bare pty reports 0 x 0: tqdm would hide the bars), the results on stdout, and no
    terminal codes left behind (numba's colorama reset)."""
    code, out, err = run_on_a_terminal(["demo", "-o", str(tmp_path), "--jobs", "2"])
    assert code == 0, err
    for k in range(1, 7):
        assert f"demo [{k}/6]: " in err, err
    bars = re.findall(r"(stability table|phase diagram \w+|seeds):\s+\d+%\|", err)
    assert {"stability table", "phase diagram crelu", "phase diagram cst", "seeds"} <= set(bars), set(bars)
    assert "\x1b" not in out and "\x1b[0m" not in err
    listed = [Path(line.strip()) for line in out.splitlines() if line.startswith("  ")]
    names = {p.name for p in listed}
    assert {"table.md", "table.csv", "table.tex", "table.json", "phase-diagram-crelu.csv",
            "phase-diagram-cst.csv"} <= names
    assert {f"{n}.{e}" for n in FIGURES for e in ("png", "pdf")} <= names
    assert all(p.stat().st_size > 0 for p in listed)
    assert not list(tmp_path.glob("*.partial.jsonl"))
    assert "paper grid: 39 configurations" in out
    for stem in ("simulate-relu-0.8", "simulate-crelu-0.8"):
        assert {f"{stem}.json", f"{stem}.png"} <= names
        data = json.loads((tmp_path / f"{stem}.json").read_text())
        assert data["width"] == 300 and data["depth"] == 100 and len(data["seeds"]) == 10
    assert "relu at s = 0.8 on the EoC (half-stable q*)" in out
    assert "crelu at s = 0.8 on the EoC (stable q*): 0 of 10 networks run away" in out
    code, table_out, _ = call(["table", "--no-progress"], capsys)
    assert (tmp_path / "table.md").read_text() == table_out


def test_no_progress_on_a_terminal_shows_only_the_results(tmp_path):
    argv = ["phase-diagram", "--activation", "crelu", "--sparsity", "0.5:0.9:0.02", "--clip-ratio", "0.5:3:0.5",
            "--jobs", "2", "-o", str(tmp_path / "pd.csv")]
    code, out, err = run_on_a_terminal([*argv, "--no-progress"])
    assert code == 0 and err == "", err
    assert "wrote " in out and "\x1b" not in out
