"""Progress for long jobs: one tqdm configuration for every bar, and stage lines.

``progress`` means the same everywhere: True shows the bar, False hides it, None shows it
when stderr is a terminal (nothing but the results when output goes to a file or a pipe,
or in a notebook without a terminal). A terminal that reports a size of zero (a bare pty, as
``script`` or an IDE console gives) would make tqdm hide every bar: it is taken as 80 x 24.
"""

from __future__ import annotations

import os
import sys

__all__ = ["bar", "shown", "stage"]


def shown(progress) -> bool:
    """Whether a job with this ``progress`` argument shows its progress now."""
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())
    return bool(progress)


def _size() -> tuple[int, int]:
    """(columns, rows) of the terminal on stderr; 80 x 24 where it reports zero."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return 80, 24
    return size.columns or 80, size.lines or 24


def bar(*, total: int, desc: str = "", unit: str = "task", progress=None, initial: int = 0,
        delay: float = 1.0):
    """A tqdm bar on stderr that appears once the work has run ``delay`` seconds and is
    removed when it closes."""
    from tqdm.auto import tqdm
    show = shown(progress)
    columns, rows = _size() if show else (None, None)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, delay=delay, leave=False,
                disable=not show, file=sys.stderr, ncols=columns, nrows=rows)


def stage(text: str, progress=None) -> None:
    """One line on stderr saying what a long job does next (when its progress is shown)."""
    if shown(progress):
        print(text, file=sys.stderr, flush=True)
