"""Long jobs: many independent tasks, run through joblib, with a progress bar and a journal.

- **Parallel**: tasks go through :class:`joblib.Parallel`, so ``jobs`` picks the number of
  workers and a ``joblib.parallel_config(backend=...)`` block around the call (dask, ray,
  ...) moves them to a cluster without code changes.
- **Progress**: a tqdm bar on stderr that appears only once the job has run for a second.
- **Resumable**: with a ``journal`` file every finished task is appended to it (one JSON
  line, flushed at once), and a rerun of the same job skips what the journal holds. An
  interrupted job (Ctrl-C, a killed process) loses at most the tasks that were running.
  The journal's first line names the job, so that a journal of another job is refused
  instead of being mixed in.

This module is infrastructure for :mod:`meanfield.tables` and :mod:`meanfield.scan`; the
mathematical core never imports it.
"""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ParameterError

__all__ = ["run_tasks", "check_jobs"]

_FORMAT = "meanfield-journal-1"


def check_jobs(jobs):
    """``jobs``: None (joblib's default: 1 unless a ``parallel_config`` says otherwise),
    a positive integer, or -1 (every core)."""
    if jobs is None:
        return None
    if isinstance(jobs, numbers.Integral) and not isinstance(jobs, bool):
        jobs = int(jobs)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not (jobs >= 1 or jobs == -1):
        raise ParameterError(f"jobs = {jobs!r} is out of range: must be a positive integer or -1 (all cores)")
    if jobs > 1024:
        raise ParameterError(f"jobs = {jobs} is out of range: must be at most 1024")
    return jobs


def _read_journal(path: Path, job: dict) -> dict[str, Any]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().split("\n")
    complete, last = lines[:-1], lines[-1]  # ``last``: empty, or cut short by an interrupt
    if not complete:  # nothing or a torn header: only a file this module began may be reset
        if last and not last.startswith(json.dumps({"format": _FORMAT})[:-1]):
            raise ParameterError(f"journal {path} is not a meanfield journal: delete it or choose "
                                 "another output file")
        path.write_text("", encoding="utf-8")
        return {}
    try:
        header = json.loads(complete[0])
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        raise ParameterError(f"journal {path} is not a meanfield journal: delete it or choose another output file")
    if header.get("job") != json.loads(json.dumps(job)):
        raise ParameterError(f"journal {path} holds the results of another job ({header.get('job')}); "
                             "delete it to start afresh, or rerun that job to resume it")
    done: dict[str, Any] = {}
    for n, line in enumerate(complete[1:], start=2):
        try:
            entry = json.loads(line)
            done[entry["key"]] = entry["result"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ParameterError(f"journal {path} is corrupt at line {n}: delete it to start afresh") from None
    if last:  # drop the torn last line
        path.write_text("\n".join(complete) + "\n", encoding="utf-8")
    return done


def _call(func, key, args):
    return key, func(*args)


def run_tasks(func: Callable, tasks: Sequence[tuple[str, tuple]], *, job: dict, jobs=None,
              progress: bool | None = None, journal: str | os.PathLike | None = None,
              desc: str = "", encode: Callable = lambda r: r, decode: Callable = lambda key, r: r) -> dict:
    """``{key: func(*args)}`` for every ``(key, args)`` in ``tasks`` (keys unique).

    ``job`` (a JSON-able dict) identifies the job in the journal; ``encode``/``decode``
    turn a result into JSON-able data and back (``decode(key, data)``). ``progress``: True shows the bar, False
    hides it, None shows it on a terminal only.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    jobs = check_jobs(jobs)
    keys = [k for k, _ in tasks]
    if len(set(keys)) != len(keys):
        raise ParameterError("the grid holds the same configuration twice")
    results: dict[str, Any] = {}
    fh = None
    if journal is not None:
        path = Path(journal)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ParameterError(f"journal {path}: {exc.strerror}") from None
        if path.exists():
            wanted = set(keys)
            stored = _read_journal(path, job)  # its own errors say what is wrong
            try:
                results = {k: decode(k, v) for k, v in stored.items() if k in wanted}
            except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError):
                raise ParameterError(f"journal {path} is corrupt: delete it to start afresh") from None
        fh = open(path, "a", encoding="utf-8")
        if fh.tell() == 0:
            fh.write(json.dumps({"format": _FORMAT, "job": job}) + "\n")
            fh.flush()
    todo = [(k, a) for k, a in tasks if k not in results]
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=desc, unit="task",
               disable=(not progress) if progress is not None else None, delay=1.0, leave=False)
    try:
        if todo:
            stream = Parallel(n_jobs=jobs, return_as="generator_unordered")(
                delayed(_call)(func, k, a) for k, a in todo)
            for key, result in stream:
                results[key] = result
                if fh is not None:
                    fh.write(json.dumps({"key": key, "result": encode(result)}) + "\n")
                    fh.flush()
                bar.update(1)
    finally:
        bar.close()
        if fh is not None:
            fh.close()
    return results
