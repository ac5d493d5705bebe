"""How a result shows in a notebook: a one-line ``repr``, a small HTML table
(``_repr_html_``) and a tidy pandas DataFrame (``to_dataframe``: one row per
configuration, fixed point, grid point, layer or epoch, numbers as float64).

A result type mixes in :class:`Displayed` (with ``@dataclass(repr=False)``, so that the
dataclass keeps this repr) and gives two methods:

- ``_headline()``: the few (name, value) pairs the repr and the HTML table show;
- ``_tidy_rows()``: the rows of its DataFrame, as dicts of plain Python values.

Numbers are shown to 6 significant digits (mpmath numbers as floats would be, without
their repr's ``mpf('...')``); the results keep every digit they were computed with.
"""

from __future__ import annotations

import html
import numbers

__all__ = ["Displayed", "short", "plain"]

#: Rows of the DataFrame previewed in the HTML table.
PREVIEW_ROWS = 8


def plain(value):
    """``value`` as a plain Python value for a DataFrame: mpmath and numpy numbers as
    float (or int), strings, bools and None as they are."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def short(value) -> str:
    """``value`` as a repr shows it: numbers to 6 significant digits.

    >>> import mpmath
    >>> short(mpmath.mpf(2) / 3), short(None), short("stable"), short(3)
    ('0.666667', 'None', 'stable', '3')
    """
    value = plain(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class Displayed:
    """Mixin: ``repr``, ``_repr_html_`` and ``to_dataframe`` from ``_headline`` and
    ``_tidy_rows``."""

    def _headline(self) -> list[tuple[str, object]]:  # pragma: no cover - each type gives its own
        raise NotImplementedError

    def _tidy_rows(self) -> list[dict]:  # pragma: no cover - each type gives its own
        raise NotImplementedError

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={short(v)}" for k, v in self._headline())
        return f"{type(self).__name__}({inner})"

    def _repr_html_(self) -> str:
        head = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(short(v))}</td></tr>"
                       for k, v in self._headline())
        parts = [f"<div><strong>{html.escape(type(self).__name__)}</strong>", f"<table>{head}</table>"]
        rows = self._tidy_rows()
        if len(rows) > 1:
            columns = list(rows[0])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(short(r.get(c)))}</td>" for c in columns)
                           + "</tr>" for r in rows[:PREVIEW_ROWS])
            more = (f"<p>{len(rows) - PREVIEW_ROWS} more rows: <code>.to_dataframe()</code></p>"
                    if len(rows) > PREVIEW_ROWS else "")
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
                         + f"</tr>{body}</table>{more}")
        return "".join(parts) + "</div>"

    def to_dataframe(self):
        """A pandas DataFrame of the result, tidy: one row per entry, numbers as float64
        (needs pandas: ``pip install 'meanfield[pandas]'``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_dataframe needs pandas: pip install 'meanfield[pandas]'") from None
        return pd.DataFrame([{k: plain(v) for k, v in row.items()} for row in self._tidy_rows()])
