"""The closed forms of each activation kept on disk between processes, so that a command
neither imports sympy nor runs its derivation again (about 0.4 s of a cold
``meanfield eoc``): the text of :mod:`meanfield.closed_forms` (sympy's srepr of every closed
form and its printed source).

One file per activation and key, ``CACHE/derivations/NAME-KEY.json`` (CACHE as for the
data: ``$MEANFIELD_DATA``, else ``$XDG_CACHE_HOME/meanfield``, else ``~/.cache/meanfield``);
the key (:func:`meanfield.closed_forms.derivation_key`) covers the activation's definition,
the formulas, the text's format and the versions of meanfield and sympy, so a file of another version is never
read. The files are safe to delete. A file that cannot be read or parsed is derived
again and rewritten; a directory that cannot be written is left alone (the derivation is
then only kept in memory). ``MEANFIELD_NO_DERIVATION_CACHE=1`` turns the store off.

The mathematical core does no I/O: :func:`install` gives :mod:`meanfield.closed_forms` the
functions below (the command line calls it).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import closed_forms
from ._files import atomic_write, cache_root

__all__ = ["install", "directory"]


def directory() -> Path:
    return cache_root() / "derivations"


def _path(activation, key: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in activation.name)[:40]
    return directory() / f"{safe}-{key[:24]}.json"


def _load(activation, key):
    try:
        return _path(activation, key).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _save(activation, key, text):
    try:
        directory().mkdir(parents=True, exist_ok=True)
        atomic_write(_path(activation, key), text)
    except Exception:  # a cache that cannot be written costs a derivation, never the answer
        pass


def install() -> bool:
    """Keep derivations on disk from now on in this process (False when turned off)."""
    if os.environ.get("MEANFIELD_NO_DERIVATION_CACHE"):
        return False
    closed_forms.set_derivation_store(_load, _save)
    return True
