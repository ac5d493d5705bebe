"""Long jobs: many independent tasks, run through joblib, with a progress bar and a journal.

- **Parallel**: tasks go through :class:`joblib.Parallel`, so ``jobs`` picks the number of
  workers and a ``joblib.parallel_config(backend=...)`` block around the call (dask, ray,
  ...) moves them to a cluster without code changes. The workers are bounded by the work
  and the machine: never more than the tasks left, nor than :data:`WORKERS_PER_CORE` per
  core (the tasks are CPU-bound: more processes only contend).
- **Progress**: a tqdm bar on stderr that appears only once the job has run for a second.
- **Resumable**: with a ``journal`` file every finished task is appended to it (one JSON
  line, flushed at once), and a rerun of the same job skips what the journal holds. An
  interrupted job (Ctrl-C, a killed process) loses at most the tasks that were running.
  Processes sharing a journal take turns on it (an exclusive lock while one reads it or
  appends a line), so none reads another's half-written line or cuts it off; a line left
  half-written by a killed process is cut off before the next is appended. The lock is a
  POSIX ``flock``: on a local file system (NFS emulates it with locks that do not hold
  between two opens of one process).
  The journal's first line names the job, so that a journal of another job is refused
  instead of being mixed in. A journal that cannot be opened, read or written (a read-only
  directory, a full disk, a path through a file) is a :class:`ParameterError` naming the
  file and the cause; what was already written stays as it was.

This module is infrastructure for :mod:`meanfield.tables` and :mod:`meanfield.scan`; the
mathematical core never imports it.
"""

from __future__ import annotations

import json
import numbers
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from ._files import locked
from ._progress import bar as progress_bar
from .errors import ParameterError

__all__ = ["run_tasks", "check_jobs", "workers", "WORKERS_PER_CORE", "thread_context"]

_local = threading.local()


def thread_context():
    """An mpmath context of this thread's own, made on first use: tasks that a thread
    backend runs side by side must not share mpmath's global precision (one leaving its
    ``workdps`` would lower another's). Whatever a task returns from it must be plain data
    (its numbers are of this context's type, which does not pickle)."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        import mpmath
        ctx = _local.ctx = mpmath.MPContext()
    return ctx

_FORMAT = "meanfield-journal-1"
#: The most worker processes per core that a job starts, whatever ``jobs`` asks for.
WORKERS_PER_CORE = 2


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


def workers(jobs, tasks: int) -> int:
    """The worker processes a job of ``tasks`` tasks starts for ``jobs`` (checked as by
    :func:`check_jobs`; None: 1): at most the tasks, and at most
    :data:`WORKERS_PER_CORE` per core.

    >>> workers(1000, 3), workers(1, 50), workers(None, 50)
    (3, 1, 1)
    """
    jobs = check_jobs(jobs)
    cores = os.cpu_count() or 1
    wanted = cores if jobs == -1 else (jobs or 1)
    return max(1, min(wanted, tasks, WORKERS_PER_CORE * cores))


def _journal_error(path, exc: OSError) -> ParameterError:
    cause = exc.strerror or str(exc) or type(exc).__name__
    return ParameterError(f"journal {path}: cannot be written ({cause}): choose another output file "
                          "or free the space; finished work already in it is kept")


def _read_journal(fh, path: Path, job: dict) -> dict[str, Any]:
    """The results in the journal open (binary, read and append) as ``fh``, which the
    caller holds locked; a torn last line (a process killed while writing it) is cut off,
    through ``fh``, so that what is appended next starts a line of its own."""
    fh.seek(0)
    data = fh.read()
    lines = data.split(b"\n")
    complete, last = lines[:-1], lines[-1]  # ``last``: empty, or cut short by an interrupt
    if not complete:  # nothing or a torn header: only a file this module began may be reset
        if last and not last.decode("utf-8", "replace").startswith(json.dumps({"format": _FORMAT})[:-1]):
            raise ParameterError(f"journal {path} is not a meanfield journal: delete it or choose "
                                 "another output file")
        fh.truncate(0)
        return {}
    try:
        header = json.loads(complete[0].decode("utf-8", "replace"))
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
            entry = json.loads(line.decode("utf-8", "replace"))
            done[entry["key"]] = entry["result"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ParameterError(f"journal {path} is corrupt at line {n}: delete it to start afresh") from None
    if last:  # drop the torn last line
        fh.truncate(len(data) - len(last))
    return done


def _cut_torn_tail(fh):
    """Before an append (``fh`` held locked): if the journal does not end a line, another
    process died writing it; cut that part line off, so that the next line stays whole."""
    size = os.fstat(fh.fileno()).st_size
    if size == 0 or os.pread(fh.fileno(), 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:  # back to the last newline, a block at a time
        start = max(0, end - 65536)
        block = os.pread(fh.fileno(), end - start, start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            fh.truncate(start + cut + 1)
            return
        end = start
    fh.truncate(0)


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
            fh = open(path, "a+b")
            with locked(fh):  # another process appending to it finishes its line first
                stored = _read_journal(fh, path, job)  # its own errors say what is wrong
                try:
                    wanted = set(keys)
                    results = {k: decode(k, v) for k, v in stored.items() if k in wanted}
                except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError):
                    raise ParameterError(f"journal {path} is corrupt: delete it to start afresh") from None
                if os.fstat(fh.fileno()).st_size == 0:
                    fh.write((json.dumps({"format": _FORMAT, "job": job}) + "\n").encode())
                    fh.flush()
        except OSError as exc:
            if fh is not None:
                _close_quietly(fh)
            raise _journal_error(path, exc) from None
        except BaseException:  # its own error, or an interrupt while waiting for the lock
            if fh is not None:
                _close_quietly(fh)
            raise
    todo = [(k, a) for k, a in tasks if k not in results]
    bar = progress_bar(total=len(tasks), initial=len(tasks) - len(todo), desc=desc, progress=progress)
    try:
        if todo:
            n_jobs = None if jobs is None else workers(jobs, len(todo))  # None: parallel_config decides
            stream = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                delayed(_call)(func, k, a) for k, a in todo)
            for key, result in stream:
                results[key] = result
                if fh is not None:
                    try:
                        with locked(fh):  # a line is whole before another process reads or appends
                            _cut_torn_tail(fh)
                            fh.write((json.dumps({"key": key, "result": encode(result)}) + "\n").encode())
                            fh.flush()
                    except OSError as exc:
                        raise _journal_error(path, exc) from None
                bar.update(1)
    finally:
        bar.close()
        if fh is not None:
            _close_quietly(fh)
    return results


def _close_quietly(fh):
    """Close a journal whose failure, if any, was already reported (or is reported by the
    next write): a close that fails on a full disk loses only the unflushed tail."""
    try:
        fh.close()
    except OSError:
        pass
