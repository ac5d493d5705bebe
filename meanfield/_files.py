"""Writing results: one atomic writer and one JSON-safe conversion for every module that
writes files (the training harness, the data cache, the command line, the journals' readers).

- :func:`atomic_write`: the data goes to a temporary file beside the target, which then
  replaces it, so a reader never sees a half-written file and an interrupted write leaves
  the old one; a file that cannot be written raises :class:`~meanfield.errors.ParameterError`
  (or the error class given) naming the file and the cause.
- :func:`locked`: an exclusive lock on a file for a ``with`` block, so that processes
  sharing a journal or a run directory take turns instead of tearing each other's lines.
- :func:`json_safe`: numpy scalars and arrays as Python numbers and lists, NaN and infinity
  as None, so that ``json.dumps(..., allow_nan=False)`` writes strict JSON.

Infrastructure above the mathematical core, which never imports it.
"""

from __future__ import annotations

import errno
import math
import numbers
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import InUseError, ParameterError

try:
    import fcntl
except ImportError:  # Windows: no flock; there, one process per journal and run directory
    fcntl = None

__all__ = ["cache_root", "check_writable", "atomic_write", "write_figure", "json_safe", "locked"]


def cache_root() -> Path:
    """meanfield's cache directory (data, derivations, run checkpoints):
    ``$MEANFIELD_DATA``, else ``$XDG_CACHE_HOME/meanfield``, else ``~/.cache/meanfield``."""
    env = os.environ.get("MEANFIELD_DATA")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "meanfield"


def atomic_write(path, data: str | bytes | Callable, *, what: str | None = None, error=ParameterError,
                 hint: str = "choose another directory", mode: int = 0o644) -> Path:
    """Write ``data`` (text, bytes, or a function that writes to a binary file object) to
    ``path`` atomically; ``what`` names the file in an error (default: the path),
    ``error`` and ``hint`` say what to raise and what to do. Returns the path."""
    path = Path(path)
    name = what or str(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise error(f"{name}: cannot be written ({getattr(exc, 'strerror', None) or exc}): {hint}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, mode)  # mkstemp's 0600 would hide a shared file from other users
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise error(f"{name}: cannot be written ({exc.strerror or exc}): {hint}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_figure(fig, path, *, dpi: int = 150, what: str | None = None, error=ParameterError,
                 hint: str = "choose another file") -> Path:
    """Save the matplotlib figure ``fig`` to ``path`` (the format from its extension)
    atomically, as :func:`atomic_write`: a failure leaves any earlier file whole."""
    import io
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix[1:].lower(), dpi=dpi)
    return atomic_write(path, buffer.getvalue(), what=what, error=error, hint=hint)


def check_writable(path, *, what: str | None = None, error=ParameterError,
                   hint: str = "choose another file") -> Path:
    """Check, before any work, that a file can be written at ``path``: its directory exists
    and takes a new file (a probe is created and removed: permission bits say nothing to
    root, a read-only mount does), and ``path`` is not a directory. Returns the path."""
    if str(path).endswith(("/", os.sep)):  # Path() would drop the slash that names a directory
        raise error(f"{what or path}: ends in {os.sep}, a directory's name: give a file name")
    path = Path(path)
    name = what or str(path)
    parent = path.parent
    try:
        missing = _not_a_directory(parent)
        problem = (f"{missing}: {hint}" if missing
                   else "is a directory: give a file name" if path.is_dir() else None)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        problem = f"cannot be written ({getattr(exc, 'strerror', None) or exc}): {hint}"
    if problem:
        raise error(f"{name}: {problem}")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix="." + path.name[:64] + ".probe.")
        os.close(fd)
        os.unlink(probe)
        if len(path.name.encode()) > os.pathconf(parent, "PC_NAME_MAX"):  # the probe's name was cut short
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        cause = getattr(exc, "strerror", None) or str(exc)
        raise error(f"{name}: cannot be written ({cause}): {hint}") from None
    return path


def _not_a_directory(directory: Path) -> str | None:
    """Why new files cannot be made in ``directory`` as far as its path shows (None if it is
    a directory): the nearest existing ancestor is a file, or the directory is missing."""
    if directory.is_dir():
        return None
    for above in (directory, *directory.parents):
        if above.exists():
            return (f"{above} is not a directory" if not above.is_dir()
                    else f"the directory {directory} does not exist")
    return f"the directory {directory} does not exist"


@contextmanager
def locked(file, *, wait: bool | float = True, busy: str = "is in use by another process"):
    """Hold an exclusive advisory lock (POSIX ``flock``) on ``file``, an open file or a path
    (created if missing; read access is enough), for the ``with`` block. If another process
    holds it: ``wait=True`` waits for it, ``False`` raises
    :class:`~meanfield.errors.InUseError` (the file's name followed by ``busy``), a number
    of seconds retries that long first (a lock held for a moment, as by a probe, is not
    a busy one). The lock belongs to the open file, so a killed process leaves none behind,
    and two opens of one file exclude each other even within a process (on a local file
    system). Where ``flock`` is missing (Windows) the block runs unlocked."""
    own = not hasattr(file, "fileno")
    name = file if own else getattr(file, "name", file)
    if own:
        try:
            fd = os.open(file, os.O_RDONLY | os.O_CREAT, 0o644)
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
            raise ParameterError(f"{name}: cannot be opened to lock it "
                                 f"({getattr(exc, 'strerror', None) or exc})") from None
    else:
        fd = file.fileno()
    try:
        if fcntl is not None:
            _lock(fd, name, wait, busy)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        if own:
            os.close(fd)


def _lock(fd, name, wait, busy):
    deadline = None if isinstance(wait, bool) else time.monotonic() + float(wait)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait is True else fcntl.LOCK_NB))
            return
        except BlockingIOError:
            if deadline is None or time.monotonic() > deadline:
                raise InUseError(f"{name} {busy}") from None
            time.sleep(0.05)
        except OSError as exc:  # no locks on this file system (ENOLCK, EOPNOTSUPP, ...)
            raise ParameterError(f"{name}: cannot be locked ({exc.strerror or exc}): use a local "
                                 "directory") from None


def json_safe(value):
    """``value`` with numpy scalars and arrays as Python numbers and lists, and NaN and
    infinity as None (recursively through dicts, lists and tuples).

    >>> json_safe({"a": [1.0, float("nan")], "b": np.float32(2.5), "c": np.arange(2)})
    {'a': [1.0, None], 'b': 2.5, 'c': [0, 1]}
    """
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        return v if math.isfinite(v) else None
    return value
