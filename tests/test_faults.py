"""Fault injection: the file system failing under the jobs, unbounded resources and finite
blow-ups (issue 24's campaign, kept in the suite so that its failures cannot come back).

Each failure of the issue has a test here (the fifth, a finite blow-up recorded as ``ok``,
is ``tests/test_train.py::test_a_finite_blow_up_is_recorded_as_diverged``):

1. a journal or output that cannot be written: one line naming the file, exit status 2,
   the work finished before the fault kept and resumed to the same output;
2. a phase diagram of one row or one column: drawn as a line, its data written first, a
   figure format checked before the work;
3. worker processes bounded by the tasks and the cores;
4. gzip files inflated in bounded chunks, never past the size the format allows;
6. hostile flag values: empty values, numpy scalars and runaway q in messages, a corrupt
   data file.

The read-only and full file systems are real tmpfs mounts where the test may mount one
(root in a container); elsewhere those cases skip, and a monkeypatched ``ENOSPC`` covers a
disk that fills up in the middle of a job.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import os
import re
import shutil
import struct
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meanfield import ParameterError
from meanfield.cli import main


def call(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code, err, *names):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("meanfield: error: "), err
    for name in names:
        assert str(name) in err, (name, err)


# -- places where nothing can be written --------------------------------------------------
@contextlib.contextmanager
def tmpfs(where: Path, options: str):
    """A tmpfs mounted at ``where`` (the test skips where mounting is not allowed)."""
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture(params=["through-a-file", "read-only", "full"])
def unwritable(request, tmp_path):
    """A directory in which new files cannot be written, and the cause's words."""
    kind = request.param
    if kind == "through-a-file":
        (tmp_path / "plain").write_text("a regular file")
        yield tmp_path / "plain" / "sub", ("Not a directory", "not a directory")
    elif kind == "read-only":
        with tmpfs(tmp_path / "ro", "ro,size=1m") as d:
            yield d, ("Read-only file system",)
    else:
        with tmpfs(tmp_path / "full", "size=64k") as d:
            fd = os.open(d / "filler", os.O_WRONLY | os.O_CREAT)
            with contextlib.suppress(OSError):  # fill it to the last block
                while True:
                    os.write(fd, b"\0" * 4096)
            os.close(fd)
            yield d, ("No space left on device",)


ONE_ROW_JOBS = {
    "table": ["table", "--activation", "relu", "--sparsity", "0.6", "-o", "{d}/t.csv"],
    "simulate": ["simulate", "--activation", "relu", "--sparsity", "0.6", "--width", "8", "--depth", "2",
                 "--seeds", "2", "--no-jacobian", "-o", "{d}/s.json"],
    "phase-diagram": ["phase-diagram", "--activation", "crelu", "--sparsity", "0.6", "--clip-ratio", "1,2",
                      "-o", "{d}/p.csv"],
    "phase-diagram figure": ["phase-diagram", "--activation", "crelu", "--sparsity", "0.6", "--clip-ratio",
                             "1,2", "--figure", "{d}/p.png"],
    "plot": ["plot", "activations", "--formats", "png", "-o", "{d}/figs"],
}


@pytest.mark.parametrize("job", ONE_ROW_JOBS)
def test_a_file_that_cannot_be_written_is_one_line(job, unwritable):
    """Failure 1: read-only directory, full disk, a path through a regular file."""
    d, causes = unwritable
    code, out, err = call([a.format(d=d) for a in ONE_ROW_JOBS[job]])
    assert_one_line_error(code, err, d)
    assert any(c in err for c in causes), err
    assert "Traceback" not in err


def test_a_disk_that_fills_during_a_job_keeps_the_finished_work(tmp_path, monkeypatch):
    """Failure 1, the journal's write failing after two tasks (ENOSPC): one line naming the
    journal; the finished tasks stay in it; the same command, once the disk has room,
    resumes to the output of an uninterrupted run."""
    import meanfield._jobs as jobs
    argv = ["table", "--activation", "relu", "--sparsity", "0.6,0.7,0.8,0.9"]
    clean = tmp_path / "clean.csv"
    assert call([*argv, "-o", clean])[0] == 0
    real_open, writes = open, {"n": 0}

    class FillingUp:
        def __init__(self, fh):
            self._fh = fh

        def write(self, text):
            writes["n"] += 1
            if writes["n"] > 3:  # the header and two results fit
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self._fh.write(text)

        def __getattr__(self, name):
            return getattr(self._fh, name)

    def filling_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return FillingUp(fh) if "a" in mode else fh

    monkeypatch.setattr(jobs, "open", filling_open, raising=False)
    out = tmp_path / "t.csv"
    code, _, err = call([*argv, "-o", out])
    journal = tmp_path / "t.csv.partial.jsonl"
    assert_one_line_error(code, err, journal, "No space left on device")
    assert not out.exists()
    assert len(journal.read_text().splitlines()) == 3  # the header and the two finished rows
    monkeypatch.undo()
    assert call([*argv, "-o", out])[0] == 0
    assert out.read_bytes() == clean.read_bytes()


@pytest.mark.parametrize("name", ["x" * 300 + ".csv", "a\0b.csv", "dir/", "."])
def test_hostile_output_names_are_one_line(tmp_path, name):
    """Names too long for the file system, with a NUL byte, or naming a directory."""
    code, out, err = call(["table", "--activation", "relu", "--sparsity", "0.6", "-o", f"{tmp_path}/{name}"])
    if name in ("dir/", "."):
        (tmp_path / "dir").mkdir(exist_ok=True)
        code, out, err = call(["table", "--activation", "relu", "--sparsity", "0.6", "-o", tmp_path / name])
    assert_one_line_error(code, err, "--output")


# -- 2: a phase diagram of one row or one column ------------------------------------------
@pytest.mark.parametrize("sparsity, ratios, n", [("0.6", "1,2,3", 3), ("0.55,0.6,0.65", "2", 3)])
def test_a_one_row_or_column_phase_diagram_is_drawn_as_a_line(tmp_path, sparsity, ratios, n):
    data, fig = tmp_path / "pd.csv", tmp_path / "pd.png"
    code, out, err = call(["phase-diagram", "--activation", "crelu", "--sparsity", sparsity,
                           "--clip-ratio", ratios, "-o", data, "--figure", fig])
    assert code == 0, err
    assert len(data.read_text().strip().splitlines()) == 1 + n
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_figure_format_is_checked_before_the_work(tmp_path):
    data = tmp_path / "pd.csv"
    code, out, err = call(["phase-diagram", "--activation", "crelu", "--sparsity", "0.6", "--clip-ratio", "1",
                           "-o", data, "--figure", tmp_path / "pd.gif"])
    assert_one_line_error(code, err, "--figure", "pd.gif")
    assert list(tmp_path.iterdir()) == []  # nothing computed, nothing written


def test_the_data_are_written_before_a_figure_that_fails(tmp_path, monkeypatch):
    from meanfield.cli import _common

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(tmp_path / "pd.png"))

    monkeypatch.setattr(_common, "write_figure", broken)
    data = tmp_path / "pd.csv"
    code, out, err = call(["phase-diagram", "--activation", "crelu", "--sparsity", "0.6", "--clip-ratio",
                           "1,2", "-o", data, "--figure", tmp_path / "pd.png"])
    assert code == 2 and "pd.png" in err and "Traceback" not in err
    assert len(data.read_text().strip().splitlines()) == 3


# -- 3: worker processes --------------------------------------------------------------------
def test_workers_are_bounded_by_the_tasks_and_the_cores():
    from meanfield._jobs import WORKERS_PER_CORE, workers
    cores = os.cpu_count() or 1
    assert workers(1001, 1) == 1
    assert workers(-1, 10**6) == cores
    assert workers(1024, 10**6) == min(1024, WORKERS_PER_CORE * cores)
    assert workers(None, 7) == 1 and workers(3, 7) == min(3, WORKERS_PER_CORE * cores)
    with pytest.raises(ParameterError, match="jobs"):
        workers(0, 5)


def test_jobs_1001_on_one_row_starts_one_worker(tmp_path, monkeypatch):
    import joblib
    asked = []
    real = joblib.Parallel

    class Recording(real):
        def __init__(self, *args, **kwargs):
            asked.append(kwargs.get("n_jobs"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(joblib, "Parallel", Recording)
    code, out, err = call(["table", "--activation", "relu", "--sparsity", "0.6", "--jobs", "1001"])
    assert code == 0, err
    assert asked == [1]


# -- 4: gzip bombs ----------------------------------------------------------------------------
def _idx_header(n: int) -> bytes:
    return struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">III", n, 28, 28)


def _gzip_of(head: bytes, zeros: int) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as gz:
        gz.write(head)
        block = b"\0" * 2**20
        for _ in range(zeros // len(block)):
            gz.write(block)
    return buffer.getvalue()


def test_an_idx_gzip_bomb_stops_at_the_size_its_header_announces(tmp_path):
    """Failure 4: a small gzip file announcing 10 images but inflating to 256 MB is
    refused after reading about what the header allows, in bounded memory."""
    from meanfield.datasets.mnist import read_idx
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(_gzip_of(_idx_header(10), 256 * 2**20))
    assert bomb.stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(ParameterError, match=re.escape(str(bomb))):
            read_idx(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, peak  # the file inflates to 256 MB


def test_a_pickle_gzip_bomb_stops_at_the_limit(tmp_path, monkeypatch):
    from meanfield.datasets import mnist
    monkeypatch.setattr(mnist, "MAX_DATA_BYTES", 8 * 2**20)
    bomb = tmp_path / "mnist.pkl.gz"
    bomb.write_bytes(_gzip_of(b"", 64 * 2**20))
    tracemalloc.start()
    try:
        with pytest.raises(ParameterError, match=re.escape(str(bomb))):
            mnist.read_pickle(bomb, verify=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, peak


# -- 6: hostile flag values -------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["eoc", "--activation", "crelu", "--sparsity", "0.6", "--v-prime", "0.7", "--q-star", ""],
    ["diagnose", "--activation", "crelu", "--sparsity", "0.6", "--v-prime", "0.7", "--q-star", ""],
    ["correlation", "--activation", "relu", "--sparsity", "0.6", "--q-star", ""],
    ["simulate", "--activation", "relu", "--sparsity", "0.6", "--width", "4", "--depth", "2", "--q-star", ""],
    ["table", "--activation", "relu", "--sparsity", "0.6", "-o", ""],
    ["phase-diagram", "--activation", "crelu", "--sparsity", "0.6", "--clip-ratio", "1", "--figure", ""],
])
def test_an_empty_value_is_an_error_not_the_default(argv):
    code, out, err = call(argv)
    flag = argv[argv.index("") - 1]
    assert_one_line_error(code, err)
    assert re.search(r"--(q-star|output|figure) is empty|--q-star = ''", err), err
    assert flag in err or (flag == "-o" and "--output" in err)


def test_numpy_scalars_are_shown_as_numbers():
    from meanfield import eoc_parameters
    from meanfield.tables import configuration_grid
    for call_ in (lambda: configuration_grid(["relu"], [np.float64(0.3)]),
                  lambda: configuration_grid(["relu"], [np.float32(0.3)]),
                  lambda: eoc_parameters("relu", np.float64(1.3))):
        with pytest.raises(ParameterError) as info:
            call_()
        assert "np." not in str(info.value) and "sparsity" in str(info.value)


@pytest.mark.parametrize("act", [["relu", "--sparsity", "0.7"], ["st", "--sparsity", "0.7"],
                                 ["cst", "--sparsity", "0.7", "--v-prime", "0.7"]])
def test_simulate_from_the_largest_q_runs_away_without_nan_or_mpf(act):
    """``--q-first 1e30``: the theory passes its range at the next layer (st), which is
    reported as a runaway, not as an error about ``q = mpf(...)``; the correlation of a
    layer where an input's units are all inactive is left out, not averaged in as NaN."""
    code, out, err = call(["simulate", "--activation", *act, "--width", "10", "--depth", "3",
                           "--q-first", "1e30"])
    assert code == 0, err
    assert not re.search(r"\bnan\b|mpf", out, re.IGNORECASE), out
    if act[0] == "st":
        assert "runs away" in out


def test_a_corrupt_data_file_is_not_to_be_deleted(tmp_path):
    """The user's own file: check it or fetch MNIST anew (only the cache is ours to delete)."""
    bad = tmp_path / "mnist.npz"
    np.savez(bad, a=np.zeros(3))
    code, out, err = call(["train", "--activation", "relu", "--sparsity", "0.5", "--data", bad, "--json"])
    assert_one_line_error(code, err, bad)
    assert "delete" not in err and "check the file" in err


# -- the CLI fuzz, with file-system faults ---------------------------------------------------
_PLACES = ["{bad}/x", "{file}/x", "{missing}/x", "{tmp}", "{tmp}/" + "y" * 260, "{tmp}/ok"]
_SUFFIXES = ["", ".csv", ".json", ".png", ".gif", ".pdf", "/"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["table", "simulate", "phase-diagram", "phase-diagram-figure", "plot"]),
       place=st.sampled_from(_PLACES), suffix=st.sampled_from(_SUFFIXES))
def test_fuzz_output_paths(tmp_path, command, place, suffix):
    """Any output path: exit 0 having written it, or one line naming the flag (no traceback)."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "bad").mkdir(exist_ok=True)
    os.chmod(tmp_path / "bad", 0o500)  # unwritable for a non-root user; root writes it
    path = place.format(bad=tmp_path / "bad", file=tmp_path / "file", missing=tmp_path / "missing",
                        tmp=tmp_path) + suffix
    argv = {"table": ["table", "--activation", "relu", "--sparsity", "0.6", "-o", path],
            "simulate": ["simulate", "--activation", "relu", "--sparsity", "0.6", "--width", "4", "--depth", "2",
                         "--seeds", "2", "--no-jacobian", "-o", path],
            "phase-diagram": ["phase-diagram", "--activation", "crelu", "--sparsity", "0.6", "--clip-ratio", "1",
                              "-o", path],
            "phase-diagram-figure": ["phase-diagram", "--activation", "crelu", "--sparsity", "0.6",
                                     "--clip-ratio", "1", "--figure", path],
            "plot": ["plot", "activations", "--formats", "png", "-o", path]}[command]
    try:
        code, out, err = call(argv)
    finally:
        os.chmod(tmp_path / "bad", 0o700)
    if code == 0:
        assert Path(path).exists(), (argv, out)
    else:
        assert_one_line_error(code, err)
        assert re.search(r"--(output|figure|output-dir)\b", err), err
