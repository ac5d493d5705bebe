"""The checks every public entry point applies to its arguments, and their constants.

Each check returns the value it accepts (normalised where that is useful) or raises
:class:`~meanfield.errors.ParameterError` with one sentence that names the parameter, says
what was given and what is valid. Booleans (Python's and numpy's) are never numbers here;
numbers may be given as int, float, numpy scalars, decimal strings, :class:`decimal.Decimal`
or mpf (strings are read to the full working precision by the computations).

>>> real("q", "0.5", "> 0")
'0.5'
>>> real("sigma_w2", float("nan"), "> 0")
Traceback (most recent call last):
...
meanfield.errors.ParameterError: sigma_w2 = nan is not finite: must be a finite number > 0
>>> digits(40)
40
>>> working_digits(20, extra=3)
38
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import ParameterError

__all__ = ["shown", "MAGNITUDE_RANGE", "MIN_DIGITS", "MAX_DIGITS", "CORRELATION_MAX_DIGITS", "GUARD_DIGITS", "MAX_DEPTH", "MAX_WIDTH",
           "real", "digits", "working_digits", "interval", "integer", "positive", "depth", "width", "number"]

#: Magnitudes a number may have (besides 0): what the closed forms are tested over.
MAGNITUDE_RANGE = (1e-100, 1e30)
#: The significant digits a computation may be asked for.
MIN_DIGITS, MAX_DIGITS = 8, 1000
#: Most digits the correlation quadrature is asked for (its cost grows about like digits^3:
#: 200 digits take tens of seconds for one configuration).
CORRELATION_MAX_DIGITS = 200
#: Extra decimal digits carried internally beyond what the caller asks for.
GUARD_DIGITS = 15
#: The deepest network the Jacobian's moments and the diagnoses are asked about.
MAX_DEPTH = 100_000

def shown(value) -> str:
    """``value`` as an error message shows it: its repr, but a numpy scalar as its Python
    value and type and an mpmath number as its digits (never ``np.float64(0.3)`` or
    ``mpf('0.3')``).

    >>> shown(np.float64(0.3)), shown(3), shown("x")
    ('0.3 (numpy float64)', '3', "'x'")
    """
    if isinstance(value, np.generic):
        return f"{value.item()!r} (numpy {type(value).__name__})"
    if type(value).__module__.startswith("mpmath"):
        return str(value)
    return repr(value)


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def real(name: str, value, valid: str):
    """``value`` if it is a finite real number that is 0 or of magnitude in
    :data:`MAGNITUDE_RANGE`; ``valid`` states the valid range for the error message.
    mpf values are accepted as they are (any object with ``__float__`` that is not a
    bool, bytes or a container)."""
    problem = None
    if _not_a_number(value) or isinstance(value, (list, tuple, dict, set)):
        problem = "is not a number"
    elif isinstance(value, complex) or (isinstance(value, np.generic) and np.iscomplexobj(value)):
        problem = "is not a real number"
    else:
        try:
            v = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            problem = "is not a number"
        except OverflowError:
            problem = "is outside the supported magnitudes 1e-100 .. 1e30"
        else:
            if math.isnan(v) or math.isinf(v):
                problem = "is not finite"
            elif abs(v) > MAGNITUDE_RANGE[1] or 0 < abs(v) < MAGNITUDE_RANGE[0]:
                problem = "is outside the supported magnitudes 1e-100 .. 1e30"
    if problem:
        raise ParameterError(f"{name} = {shown(value)} {problem}: must be a finite number {valid}")
    return value


def digits(value, *, maximum: int = MAX_DIGITS, why: str = "") -> int:
    """Significant decimal digits asked of a computation: an integer in
    [:data:`MIN_DIGITS`, ``maximum``]; ``why`` explains a smaller maximum."""
    if _is_bool(value) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ParameterError(f"digits must be an integer in [{MIN_DIGITS}, {maximum}], got {shown(value)}")
    if not MIN_DIGITS <= value <= maximum:
        raise ParameterError(f"digits = {value} is out of range: must be in [{MIN_DIGITS}, {maximum}]"
                             + (f" ({why})" if why else ""))
    return int(value)


def working_digits(asked: int, extra: int = 0) -> int:
    """The working precision (decimal digits) of a computation asked for ``asked`` digits
    that loses ``extra`` digits to cancellation: :data:`GUARD_DIGITS` more than both."""
    return int(asked) + GUARD_DIGITS + int(extra)


def interval(name: str, value, lo: float, hi: float, *, lo_closed: bool = False, hi_closed: bool = False):
    """``value`` if it is a real number in the interval from ``lo`` to ``hi`` (open unless
    said closed)."""
    rng = f"{'[' if lo_closed else '('}{lo:g}, {hi:g}{']' if hi_closed else ')'}"
    real(name, value, f"in {rng}")
    v = float(value)
    if not ((lo <= v if lo_closed else lo < v) and (v <= hi if hi_closed else v < hi)):
        raise ParameterError(f"{name} = {value} is out of range: must be in {rng}")
    return value


def integer(name: str, value, lo: int, hi: int) -> int:
    """``value`` as an int if it is an integer (Python or numpy, not a bool) in [lo, hi]."""
    if _is_bool(value) or not isinstance(value, (numbers.Integral, np.integer)) or not lo <= value <= hi:
        raise ParameterError(f"{name} must be an integer in [{lo}, {hi}], got {shown(value)}")
    return int(value)


def _not_a_number(value) -> bool:
    """Things ``float()`` would take but that are not numbers here: bools and bytes."""
    return _is_bool(value) or value is None or isinstance(value, (bytes, bytearray))


def positive(name: str, value, lo: float = 0.0, hi: float = 1e30) -> float:
    """``value`` as a float if it is a finite real number in (lo, hi]."""
    v = math.nan
    if not _not_a_number(value):
        try:
            v = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError, OverflowError):
            pass
    if not (math.isfinite(v) and lo < v <= hi):
        raise ParameterError(f"{name} = {shown(value)} is out of range: must be a finite number in ({lo:g}, {hi:g}]")
    return v


def depth(value) -> int:
    """A network depth: an integer in [1, :data:`MAX_DEPTH`]."""
    return integer("depth", value, 1, MAX_DEPTH)


#: The widest hidden layer a model or diagnosis takes.
MAX_WIDTH = 1_000_000


def width(value) -> int:
    """A hidden layer's width: an integer in [1, :data:`MAX_WIDTH`]."""
    return integer("width", value, 1, MAX_WIDTH)


def number(name: str, value, lo: float, hi: float, *, lo_closed: bool = False, hi_closed: bool = True,
           integer: bool = False):
    """``value`` if it is a plain Python number (an int, or a float unless ``integer``; not a
    bool, a string or a numpy scalar: what a configuration that is written to JSON holds)
    in the interval from ``lo`` to ``hi`` (open or closed as said)."""
    rng = f"{'[' if lo_closed else '('}{lo}, {hi}{']' if hi_closed else ')'}"
    kinds = (int,) if integer else (int, float)
    if _is_bool(value) or type(value) not in kinds:
        raise ParameterError(f"{name} = {shown(value)} must be {'an integer' if integer else 'a number'} in {rng}")
    if not (math.isfinite(value) and (value >= lo if lo_closed else value > lo)
            and (value <= hi if hi_closed else value < hi)):
        raise ParameterError(f"{name} = {shown(value)} is out of range: must be in {rng}")
    return value
