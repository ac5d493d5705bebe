"""Run the MNIST studies of docs/mnist.md one run at a time, committing each finished run.

    python scripts/mnist_studies.py [--plan long:0-2,depth30:0-4,sgd:0] [--commit] [--dry-run]

Each step of the plan is ``STUDY:SEEDS``: the study's configurations (``meanfield.nn.
reproduce.STUDIES``) for those seeds. The runs that decide the paper's claim (the ReLU
baseline at s = 0.5, the clipped networks at s = 0.85 with V'(q*) = 0.7) come first, every
step's in plan order, seed by seed; then the rest, likewise; the ``sgd`` study last, as it
needs the long study's choice (``--order seed``: each step whole, seed by seed, before the
next). Every run is resumable: its checkpoints
live in the user cache (``reproduce.default_runs_dir``), outside the work tree, and a run
the study's journal (``results/mnist-STUDY/runs.jsonl``) already holds is skipped, so
the same command continues wherever the last one stopped (a session's end kills it; run
it again). After each run the study's table, study table and figures are rewritten from
its journal, and with ``--commit`` the results directory is committed (that path only),
so that no finished run is ever lost.

Before the ``sgd`` study (the protocol the paper is reported to have used, on the baseline
and the best clipped configuration at s = 0.85), the best clipped configuration is taken
from the long study's validation accuracy (never its test accuracy); if it is not the one
the ``sgd`` grid holds, the script says so, skips the ``sgd`` study and goes on with the
rest of the plan.

Two drivers, each with ``NUMBA_NUM_THREADS=1``, finish more runs per hour on a two-core
machine than one on both cores (``benchmarks/bench_throughput.py``; docs/mnist.md gives
the commands). Run as a script, a driver gives numpy's BLAS as many threads as numba
unless ``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS``, ``OMP_NUM_THREADS`` or
``MKL_NUM_THREADS`` says otherwise (:func:`blas_threads_follow_numba`). Drivers may share
a study: a run another driver is training is skipped (its directory is locked while it
trains), and each driver writes and commits a study's tables holding its journal, so the
two never mix halves of each other's writes.

``--park`` (after stopping the drivers) keeps every unfinished run's checkpoint directory
in the repository's object store, under ``refs/meanfield-runs/STUDY/KEY``, and
``--unpark`` (before starting them) puts each back in the cache where the cache lacks its
checkpoint or has fewer of its epochs (``--park`` never replaces a parked copy with one of
fewer epochs): for a machine that keeps its git repository, and nothing else, between
sessions. A parked run finished since is dropped. ``git gc --prune=now`` then frees the
space of runs no longer parked.

``--dry-run`` lists every run of the plan as done, running (another driver holds it) or
to run, with the epochs a running or interrupted run has behind it, then each study's
count and a rough estimate of the hours of one core left (:func:`hours_left`). Otherwise
it prints one line per run started and finished, with the epoch at which it stopped, its
final validation and test accuracy and its hours.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: the variables that set the threads of numpy's BLAS: OpenBLAS takes the first of
#: OPENBLAS_, GOTO_ and OMP_NUM_THREADS that is set, MKL its own
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def blas_threads_follow_numba(environ) -> str | None:
    """A driver's cores are ``NUMBA_NUM_THREADS``: unless one of BLAS_THREAD_VARIABLES is
    set, give numpy's BLAS (which trains the layers too dense for the sparse passes, as
    ReLU's at s = 0.5) as many threads, so that two drivers of one thread each do not run
    four threads on two cores. Returns the number set, or None if nothing was set."""
    n = environ.get("NUMBA_NUM_THREADS")
    if not n or any(environ.get(v) for v in BLAS_THREAD_VARIABLES):  # an empty one counts as unset
        return None
    for v in BLAS_THREAD_VARIABLES:
        environ[v] = n
    return n


if __name__ == "__main__":
    blas_threads_follow_numba(os.environ)  # before numpy loads its BLAS, which reads them once

from meanfield.errors import InUseError, ParameterError  # noqa: E402
from meanfield.nn import reproduce  # noqa: E402
from meanfield.nn.train import holding_run, in_use, selected_epoch  # noqa: E402

#: where ``--park`` keeps unfinished runs: refs no branch holds and no clone fetches
PARKED = "refs/meanfield-runs"

DEFAULT_PLAN = "long:0-2,depth30:0-4,sgd:0"


def parse_plan(text: str) -> list[tuple[str, list[int]]]:
    steps = []
    for part in text.split(","):
        name, _, seeds = part.strip().partition(":")
        if name not in reproduce.STUDIES:
            raise SystemExit(f"--plan: unknown study {name!r}: choose from {', '.join(reproduce.STUDIES)}")
        lo, _, hi = seeds.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise SystemExit(f"--plan: {part!r}: seeds must be N or N-M") from None
        steps.append((name, list(range(first, last + 1))))
    return steps


def parse_activations(text: str) -> set[str]:
    known = {c.activation for name in reproduce.STUDIES for c in reproduce.study_configs(name)}
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    if not chosen or not chosen <= known:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(sorted(known))}, comma-separated")
    return chosen


def best_clipped(journal: Path) -> dict | None:
    """The clipped configuration at s = 0.85 with the highest mean validation accuracy in
    the long study, each run's taken at the epoch it is judged by (its best validation
    epoch, ``selected_epoch``, as in study.md); None until every run of the long study
    (every key configuration, each of its seeds) is in its journal. Only the study's own
    seeds count: runs of further seeds (``--plan long:3-4``) do not change the choice."""
    if not journal.exists():
        return None
    wanted = {reproduce.run_key(c) for c in reproduce.study_configs("long")}
    results = [r for r in reproduce.stored_results(journal) if reproduce.run_key(r.config) in wanted]
    if len({reproduce.run_key(r.config) for r in results}) < len(wanted):
        return None
    by: dict = {}
    for r in results:
        chosen = selected_epoch(r)
        if r.config.activation in ("crelu", "cst") and r.config.sparsity == 0.85 and chosen:
            by.setdefault((r.config.activation, r.config.v_prime), []).append(chosen["validation_accuracy"])
    if not by:
        return None
    (act, v), _ = max(by.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))
    return {"activation": act, "sparsity": 0.85, "v_prime": v}


def git(*args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(["git", "-C", str(ROOT), *args], input=stdin, capture_output=True)
    if done.returncode:
        raise SystemExit(f"git {args[0]}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def finished_keys(name: str) -> set[str]:
    journal = ROOT / "results" / f"mnist-{name}" / "runs.jsonl"
    return {reproduce.run_key(r.config) for r in reproduce.stored_results(journal)} if journal.exists() else set()


#: the files a run's checkpoint directory holds (meanfield.nn.train writes them)
RUN_FILES = ("checkpoint.npz", "epochs.csv", "layers.csv", "result.json")


def park() -> None:
    """Each unfinished run's checkpoint directory (every study's), as a tree in the
    repository's object store under PARKED/STUDY/KEY, unless what is parked there has more
    epochs; a parked run since finished is dropped. A run being trained is not parked: each
    run's lock is held from the check to the ref, so that no driver starts it meanwhile."""
    parked = {(name, key): tree for name, key, _, tree in parked_runs()}
    for name in reproduce.STUDIES:
        done = finished_keys(name)
        runs_dir = reproduce.default_runs_dir(ROOT / "results" / f"mnist-{name}")
        for folder in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
            if folder.name in done or not (folder / "checkpoint.npz").is_file():
                continue
            try:
                with holding_run(folder):
                    print(f"{name}: {folder.name}: {park_one(name, folder, parked.get((name, folder.name)))}",
                          flush=True)
            except InUseError:
                print(f"{name}: {folder.name}: not parked: another process holds it (a driver training it?); "
                      "stop it first", flush=True)
            except ParameterError as exc:  # the lock cannot be taken there
                print(f"{name}: {folder.name}: not parked: {exc}", flush=True)
    for name, key, ref, _ in parked_runs():
        if key in finished_keys(name):
            git("update-ref", "-d", ref)
            print(f"{name}: {key}: no longer parked: finished", flush=True)


def park_one(name: str, folder: Path, tree: str | None) -> str:
    """Park the run in ``folder`` (its lock held) unless ``tree``, its parked copy, has
    more epochs; what was done, in words."""
    try:
        have = epochs_done(folder)[0]
        further = parked_epochs(tree) if tree is not None else -1
        if further > have:
            return f"not parked: the parked copy has {further} epochs, the cache {have} (run --unpark)"
        entries = b"".join(b"100644 blob %s\t%s\n" % (
            git("hash-object", "-w", "--no-filters", "--", str(folder / f)).strip(), f.encode())
            for f in RUN_FILES if (folder / f).is_file())
        # compare and swap: another --park meanwhile may have parked more epochs
        git("update-ref", f"{PARKED}/{name}/{folder.name}", git("mktree", stdin=entries).decode().strip(),
            tree or "0" * 40)
    except SystemExit as exc:  # one run's failure does not stop the others
        return f"not parked: {exc}"
    return f"parked ({have} epochs done)"


def parked_runs() -> list[tuple[str, str, str, str]]:
    """(study, key, ref, tree) of every parked run."""
    out = []
    for line in git("for-each-ref", "--format=%(objectname) %(refname)", PARKED).decode().splitlines():
        tree, ref = line.split(" ", 1)
        name, _, key = ref[len(PARKED) + 1:].partition("/")
        out.append((name, key, ref, tree))
    return out


def parked_files(tree: str) -> dict[str, str]:
    """{file name: blob} of a parked run's tree (only the names of RUN_FILES)."""
    files = {}
    for line in git("ls-tree", tree).decode().splitlines():
        meta, file_name = line.split("\t", 1)
        if file_name in RUN_FILES and meta.split()[1] == "blob":
            files[file_name] = meta.split()[2]
    return files


def parked_epochs(tree: str) -> int:
    blob = parked_files(tree).get("epochs.csv")
    text = git("cat-file", "blob", blob).decode(errors="replace") if blob else ""
    return sum(1 for _ in csv.DictReader(text.splitlines()))


def unpark() -> None:
    """Put each parked run back in the cache, unless the cache has its checkpoint and as
    many of its epochs (or a driver is training it: its lock is held from the check to the
    last file written); drop those finished since they were parked."""
    for name, key, ref, tree in parked_runs():
        if key in finished_keys(name):
            git("update-ref", "-d", ref)
            print(f"{name}: {key}: no longer parked: finished", flush=True)
            continue
        folder = reproduce.default_runs_dir(ROOT / "results" / f"mnist-{name}") / key
        try:
            files = parked_files(tree)
        except SystemExit as exc:
            print(f"{name}: {key}: left parked: {exc}", flush=True)
            continue
        if "/" in key or "checkpoint.npz" not in files:
            print(f"{name}: {key}: left parked: not a run's checkpoint directory", flush=True)
            continue
        made = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with holding_run(folder):
                print(f"{name}: {key}: {unpark_one(folder, tree, files)}", flush=True)
        except InUseError:
            print(f"{name}: {key}: left parked: another process holds it (a driver training it?); stop it "
                  "first", flush=True)
        except (ParameterError, OSError) as exc:  # the lock or the directory cannot be made there
            print(f"{name}: {key}: left parked: {getattr(exc, 'strerror', None) or exc}", flush=True)
            if made:
                shutil.rmtree(folder, ignore_errors=True)


def unpark_one(folder: Path, tree: str, files: dict[str, str]) -> str:
    """Write the parked run ``tree`` (its ``files``) into ``folder`` (its lock held)
    unless the cache has its checkpoint and as many epochs; what was done, in words. All
    or nothing: every file is fetched before any replaces the cache's."""
    partial = {file_name: folder / (file_name + ".unparking") for file_name in files}
    try:
        if (folder / "checkpoint.npz").is_file() and epochs_done(folder)[0] >= parked_epochs(tree):
            return f"left parked: the cache has it ({epochs_done(folder)[0]} epochs done)"
        for file_name, blob in files.items():
            partial[file_name].write_bytes(git("cat-file", "blob", blob))
    except (SystemExit, OSError) as exc:  # one run's failure does not stop the others
        for path in partial.values():
            path.unlink(missing_ok=True)
        return f"left parked: {getattr(exc, 'strerror', None) or exc}"
    for file_name, path in partial.items():
        path.replace(folder / file_name)
    return f"put back in the cache ({epochs_done(folder)[0]} epochs done)"


def is_core(c) -> bool:
    """A run of the comparison the paper's claim rests on: the baseline, or clipped at
    s = 0.85 with V'(q*) = 0.7."""
    return (c.activation == "relu" and c.sparsity == 0.5) or (
        c.activation in ("crelu", "cst") and c.sparsity == 0.85 and c.v_prime == 0.7)


def commit(out: Path, message: str):
    for attempt in range(5):  # another git process may hold the index lock for a moment
        add = subprocess.run(["git", "-C", str(ROOT), "add", "--", str(out)], capture_output=True, text=True)
        done = subprocess.run(["git", "-C", str(ROOT), "commit", "-q", "-m", message, "--", str(out)],
                              capture_output=True, text=True)
        if add.returncode == 0 and (done.returncode == 0 or "nothing to commit" in done.stdout + done.stderr):
            return
        time.sleep(2 + 3 * attempt)
    print(f"   (could not commit {out}: {done.stderr.strip() or done.stdout.strip()})", flush=True)


def epochs_done(run_dir: Path) -> tuple[int, float]:
    """The epochs the run in ``run_dir`` has finished and their seconds: from its
    ``epochs.csv``, rewritten after every epoch with its checkpoint ((0, 0.0) if none)."""
    try:
        with open(run_dir / "epochs.csv", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):  # a listing must not stop on a damaged file
        return 0, 0.0
    try:
        seconds = sum(float(r["seconds"]) for r in rows)
    except (KeyError, TypeError, ValueError):
        seconds = 0.0
    return len(rows), seconds


def progress(run_dir: Path, cfg) -> str:
    """", 63 of at most 200 epochs done" for a run with epochs behind it, else ""."""
    n, _ = epochs_done(run_dir)
    return f", {n} of at most {cfg.epochs} epochs done" if n else ""


def hours_left(unfinished, results) -> float | None:
    """Hours of one core the ``unfinished`` runs ((configuration, run directory) pairs) of
    a study need, roughly: each the median wall time of the finished runs of its
    configuration (any seed) in ``results``, less the time of the epochs it has behind it;
    with none finished, its own pace over the epochs it has left (at most
    ``configuration.epochs``), or with no epoch behind it either, the median of all the
    finished runs. None where neither gives a figure."""
    def shape(c):
        return c.activation, c.sparsity, c.v_prime

    hours = [r.seconds / 3600 for r in results]
    total = 0.0
    for cfg, run_dir in unfinished:
        same = [r.seconds / 3600 for r in results if shape(r.config) == shape(cfg)]
        n, seconds = epochs_done(run_dir)
        if same:
            total += max(0.0, statistics.median(same) - seconds / 3600)
        elif n and seconds > 0:
            total += max(0, cfg.epochs - n) * seconds / n / 3600
        elif hours:
            total += statistics.median(hours)
        else:
            return None
    return total


def describe(r) -> str:
    e = r.final
    val = f", validation {e['validation_accuracy']:.4f}" if "validation_accuracy" in e else ""
    stop = (f"stopped by the {r.stopped['rule']} rule at epoch {r.stopped['epoch']}" if r.stopped
            else f"{len(r.epochs)} epochs")
    state = "failed: " + r.failure["reason"] if r.status != "ok" else stop
    acc = f"test {r.test_accuracy:.4f}" if r.epochs else "no epoch finished"
    return f"{state}; {acc}{val}; {r.seconds / 3600:.2f} h"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plan", default=DEFAULT_PLAN, help=f"STUDY:SEEDS,... (default {DEFAULT_PLAN})")
    ap.add_argument("--commit", action="store_true", help="git commit each study's results after each run")
    ap.add_argument("--dry-run", action="store_true", help="list what would run, and what is done")
    ap.add_argument("--activations", type=parse_activations, default=None, metavar="A,B",
                    help="train only these activations' runs (e.g. cst): a run too long for the "
                         "session left to it can wait for a longer one")
    ap.add_argument("--order", choices=("core-first", "seed"), default="core-first",
                    help="core-first (default): the baseline and the clipped V'=0.7 runs at s=0.85 of "
                         "every seed before the others; seed: seed by seed")
    parking = ap.add_mutually_exclusive_group()
    parking.add_argument("--park", action="store_true",
                         help="keep every unfinished run's checkpoint in the git repository (refs/meanfield-runs/), "
                              "for a machine that keeps nothing else; then exit")
    parking.add_argument("--unpark", action="store_true", help="put parked runs back in the cache; then exit")
    a = ap.parse_args(argv)
    if (a.park or a.unpark) and (a.dry_run or a.commit or a.activations or a.plan != DEFAULT_PLAN):
        ap.error("--park and --unpark take no other option: they act on every study's unfinished runs")
    if a.park or a.unpark:
        park() if a.park else unpark()
        return
    steps = parse_plan(a.plan)
    queue = []  # (study, configuration) in the order they run
    for rank, (name, seeds) in enumerate(steps):
        for cfg in reproduce.study_configs(name, seeds=max(seeds) + 1):
            if cfg.seed in seeds and (a.activations is None or cfg.activation in a.activations):
                queue.append((rank, name, cfg))
    if a.order == "core-first":  # every step's core runs, then the rest; sgd waits for the long study
        queue.sort(key=lambda item: (item[1] == "sgd", not is_core(item[2]), item[0], item[2].seed))
    tally: dict = {}  # study: [done, running, to run, [(configuration, run directory) unfinished]]
    for _, name, cfg in queue:
        out = ROOT / "results" / f"mnist-{name}"
        journal = out / "runs.jsonl"
        key = reproduce.run_key(cfg)
        count = tally.setdefault(name, [0, 0, 0, []])
        if key in finished_keys(name):
            print(f"{name}: {key}: done", flush=True)
            count[0] += 1
            continue
        runs_dir = reproduce.default_runs_dir(out)
        if in_use(runs_dir / key):
            print(f"{name}: {key}: {'running' if a.dry_run else 'skipped'}: another driver is training it"
                  f"{progress(runs_dir / key, cfg)}", flush=True)
            count[1] += 1
            count[3].append((cfg, runs_dir / key))
            continue
        if a.dry_run:
            resumes = progress(runs_dir / key, cfg)
            print(f"{name}: {key}: to run" + (f" (resumes from its checkpoint{resumes})" if resumes else ""),
                  flush=True)
            count[2] += 1
            count[3].append((cfg, runs_dir / key))
            continue
        if name == "sgd":  # asked again for each run: the long study may finish meanwhile
            refused = sgd_grid_problem()
            if refused:
                print(f"sgd: {key}: skipped: {refused}", flush=True)
                continue
        print(f"{name}: {key}: started {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
        try:
            [result] = reproduce.run_grid([cfg], journal=journal, runs_dir=runs_dir, progress=False)
        except InUseError as exc:  # another driver took it since the check above
            print(f"{name}: {key}: skipped: {exc}", flush=True)
            continue
        with reproduce.locked_journal(journal):  # tables, figures and commit agree with the journal
            results = reproduce.stored_results(journal)
            reproduce.write_results(results, out)
            print(f"{name}: {key}: {describe(result)}", flush=True)
            if a.commit:
                commit(out, f"MNIST study {name}: {key} finished ({describe(result)}); "
                            f"{len(results)} runs in the journal")
    if a.dry_run:
        for name, (done, running, to_run, unfinished) in tally.items():
            journal = ROOT / "results" / f"mnist-{name}" / "runs.jsonl"
            left = hours_left(unfinished, reproduce.stored_results(journal) if journal.exists() else [])
            estimate = ("" if not unfinished else "; no finished run to estimate the rest by" if left is None
                        else f"; about {left:.1f} h of one core left (each run at the median time of its "
                             f"configuration's finished runs, less its epochs behind it; with none finished, at "
                             f"its own pace)")
            print(f"{name}: {done} done, {running} running, {to_run} to run{estimate}", flush=True)


def sgd_grid_problem() -> str | None:
    """Why the sgd study cannot run yet (None if it can): it trains the long study's best
    clipped configuration (by validation), which must be the one ``reproduce.grid('sgd')``
    holds."""
    best = best_clipped(ROOT / "results" / "mnist-long" / "runs.jsonl")
    held = [g for g in reproduce.grid("sgd") if g["activation"] != "relu"]
    if best is None:
        return ("the long study is not finished: the best clipped configuration is chosen on its "
                "validation split once every one of its runs is in its journal")
    if held != [best]:
        return (f"the long study's best clipped configuration by validation accuracy is {best}, not the "
                f"sgd grid's {held}: change reproduce.grid('sgd') and docs/mnist.md")
    return None


if __name__ == "__main__":
    main()
