r"""The variance map and its companions, compiled from the closed forms.

For an initialisation :math:`(\phi, \sigma_w^2, \sigma_b^2)` of a deep fully connected
network (Poole et al. 2016; Price et al. 2024, section 3):

.. math::

    V(q) = \sigma_b^2 + \sigma_w^2 E[\phi(\sqrt q z)^2],\qquad
    \chi_1(q) = \sigma_w^2 E[\phi'(\sqrt q z)^2],

with :math:`V'(q)`, :math:`V''(q)` and the sparsity :math:`P(\phi(\sqrt q z)=0)`, all
from :func:`meanfield.symbolic.derive`. Each closed form is compiled three ways, once per
activation: mpmath (arbitrary precision, the caller's ``digits``), numpy (vectorized
float64) and float64 interval arithmetic (:mod:`meanfield._interval`, used to certify the
fixed-point search).

Precision never leaks: mpmath work runs inside ``ctx.workdps(...)``.

>>> import mpmath
>>> init = Initialisation("crelu", sigma_w2=2, sigma_b2="0.1", params={"tau": 0, "m": 1})
>>> v = map_values(init, 1, digits=20).variance
>>> mpmath.nstr(v, 20)   # 0.1 + 2 (E[z^2; 0<z<1] + P(z>1))
'0.6160585509617133004'

>>> mpmath.mp.dps        # the caller's precision is untouched
15
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Mapping

import mpmath
import numpy as np

from . import _interval, closed_forms
from ._types import Context, InitialisationLike, Real, Reals
from .activations import Activation, get_activation
from .closed_forms import FORMULA_NAMES
from .errors import ParameterError
from .validation import GUARD_DIGITS, MIN_DIGITS, real
from .validation import digits as check_digits

__all__ = ["Initialisation", "MapValues", "format_value", "map_values", "map_values_float64",
           "variance_map", "check_digits", "GUARD_DIGITS", "DEFAULT_DIGITS", "to_mpf",
           "cancellation_digits", "mp_namespace", "lambdify_mp", "lambdify_np", "operating_point",
           "check_fixed_point", "working_precision", "check_q"]

#: Digits used when the caller does not say.
DEFAULT_DIGITS = 30
#: The range of q over which the float64 fast path is evaluated.
FLOAT64_Q_RANGE = (1e-100, 1e30)
_FLOAT64_MAX_LOSS = 8  # digits; past it a float64 value is recomputed with mpmath

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _numpy_pdf(v):
    v = np.asarray(v, dtype=float)
    return np.exp(-0.5 * v * v) * _INV_SQRT_2PI


def to_mpf(value, ctx=mpmath.mp):
    """``value`` as an mpf at the context's current precision (strings and fractions read
    exactly, to that precision)."""
    if isinstance(value, (str, Decimal)):
        return ctx.mpf(str(value).strip())
    if isinstance(value, Fraction):
        return ctx.mpf(value.numerator) / value.denominator
    if isinstance(value, (int, np.integer)):
        return ctx.mpf(int(value))
    if isinstance(value, (float, np.floating)):
        return ctx.mpf(float(value))
    return ctx.mpf(value)


def _numpy_functions() -> dict:
    from scipy.special import erf, ndtr  # imported on first float64 use: a solve needs none of it
    return {"Phi": ndtr, "phi": _numpy_pdf, "erf": erf}


@functools.lru_cache(maxsize=None)
def _namespace(backend: str) -> dict:
    """What compiled float64 ("np") or interval ("iv") code calls: numpy, then ours."""
    functions = _numpy_functions() if backend == "np" else _interval.NAMESPACE
    return {**{n: getattr(np, n) for n in dir(np) if not n.startswith("_")}, **functions}


#: Every name of the mpmath module that its default context also has (sqrt, exp, erf, mpf,
#: pi, ...): what compiled mpmath code may call.
_MPMATH_NAMES = tuple(n for n in dir(mpmath) if not n.startswith("_") and hasattr(mpmath.mp, n))


def mp_namespace(ctx=mpmath.mp) -> dict:
    """The names compiled mpmath code calls, bound to the context ``ctx``: every mpmath
    function and constant, Phi (the standard normal cdf) and phi (its density). Code
    compiled with it computes in ``ctx``, at ``ctx``'s precision."""
    ns = {n: getattr(ctx, n) for n in _MPMATH_NAMES}
    ns.update(Phi=ctx.ncdf, phi=ctx.npdf)
    return ns


@functools.lru_cache(maxsize=1024)
def lambdify_mp(arguments: tuple, expression, ctx=mpmath.mp):
    """``expression`` (sympy) compiled to a function of ``arguments`` that computes with the
    mpmath context ``ctx`` (one compilation per context, cached)."""
    import sympy
    return sympy.lambdify(arguments, expression, modules=[mp_namespace(ctx), "mpmath"])


def lambdify_np(arguments: tuple, expression):
    """``expression`` (sympy) compiled to a vectorized float64 function of ``arguments``
    (scipy's ndtr for Phi)."""
    import sympy
    return sympy.lambdify(arguments, expression, modules=[_numpy_functions(), "numpy"])


@functools.lru_cache(maxsize=4096)
def evaluator(activation: Activation, backend: str, name: str, ctx=mpmath.mp):
    """The closed form ``name`` of ``activation`` compiled for ``backend`` ("mp": mpmath in
    the context ``ctx``, "np": numpy float64, "iv": float64 intervals), compiled on first
    use and cached. Arguments: ``(q, sigma_w2, sigma_b2, *activation parameters)``."""
    if backend == "mp":
        return closed_forms.function(activation, "mpmath", name, mp_namespace(ctx))
    return closed_forms.function(activation, "numpy", name, _namespace(backend))


class _Backend(Mapping):
    """``compiled(act).mp["variance"]`` style access to :func:`evaluator`."""

    def __init__(self, activation, backend, ctx=mpmath.mp):
        self._key = (activation, backend)
        self._ctx = ctx

    def __getitem__(self, name):
        if name not in FORMULA_NAMES:
            raise KeyError(name)
        return evaluator(*self._key, name, self._ctx)

    def context(self, ctx) -> "_Backend":
        """The same formulas computing in the mpmath context ``ctx``."""
        return self if ctx is self._ctx else _Backend(*self._key, ctx)

    def __iter__(self):
        return iter(FORMULA_NAMES)

    def __len__(self):
        return len(FORMULA_NAMES)


@dataclass(frozen=True)
class _Compiled:
    mp: Mapping[str, Any]
    np: Mapping[str, Any]
    iv: Mapping[str, Any]


@functools.lru_cache(maxsize=None)
def compiled(activation: Activation) -> _Compiled:
    """Every closed form of ``activation``, per backend, compiled lazily (see :func:`evaluator`)."""
    return _Compiled(*(_Backend(activation, b) for b in ("mp", "np", "iv")))


@dataclass(frozen=True)
class Initialisation:
    """A network initialisation: activation, weight and bias variances, activation parameters.

    Numbers may be given as int, float, decimal string, :class:`decimal.Decimal` or mpf;
    strings are read to the full working precision of each computation.

    >>> Initialisation("relu", sigma_w2=2, sigma_b2=0).parameters
    {'tau': 0.0}
    >>> Initialisation("relu", sigma_w2=-1, sigma_b2=0)
    Traceback (most recent call last):
    ...
    meanfield.errors.ParameterError: sigma_w2 = -1 is out of range: must be > 0 (finite)
    """

    activation: Activation
    sigma_w2: Any
    sigma_b2: Any
    params: Any = ()

    def __post_init__(self):
        act = get_activation(self.activation)
        object.__setattr__(self, "activation", act)
        real("sigma_w2", self.sigma_w2, "> 0")
        real("sigma_b2", self.sigma_b2, ">= 0")
        if not float(self.sigma_w2) > 0:
            raise ParameterError(f"sigma_w2 = {self.sigma_w2} is out of range: must be > 0 (finite)")
        if not float(self.sigma_b2) >= 0 or to_mpf(self.sigma_b2) < 0:
            raise ParameterError(f"sigma_b2 = {self.sigma_b2} is out of range: must be >= 0 (finite)")
        params = self.params
        if isinstance(params, Mapping):
            params = params.items()
        try:
            params = [(k, v) for k, v in params]
        except (TypeError, ValueError):
            raise ParameterError(f"params must be a mapping of parameter names to values, got {self.params!r}") from None
        given = {k: v for k, v in params if v is not None}
        values = act.parameter_values(**given)
        object.__setattr__(self, "params", tuple((p.name, values[p.name]) for p in act.parameters))

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.params)

    def arguments(self, q, ctx=mpmath.mp) -> tuple:
        """The positional arguments of the compiled mpmath evaluators, at ``ctx``'s precision."""
        return (q, to_mpf(self.sigma_w2, ctx), to_mpf(self.sigma_b2, ctx)) + tuple(
            to_mpf(v, ctx) for _, v in self.params)

    def float_arguments(self) -> tuple:
        return (float(self.sigma_w2), float(self.sigma_b2)) + tuple(float(v) for _, v in self.params)

    def to_dict(self, digits: int = 8) -> dict:
        """The initialisation as plain data: the activation's name, the variances and the
        parameters as decimal strings of ``digits`` significant digits.

        >>> Initialisation("crelu", sigma_w2=2, sigma_b2="0.5", params={"tau": 0, "m": 1}).to_dict(3)
        {'activation': 'crelu', 'sigma_w2': '2.00', 'sigma_b2': '0.500', 'parameters': {'tau': '0.0', 'm': '1.00'}}
        """
        return {"activation": self.activation.name,
                "sigma_w2": format_value(to_mpf(self.sigma_w2), digits),
                "sigma_b2": format_value(to_mpf(self.sigma_b2), digits),
                "parameters": {k: format_value(to_mpf(v), digits) for k, v in self.params}}


@dataclass(frozen=True)
class MapValues:
    """V(q), V'(q), V''(q), chi_1(q) and the sparsity at one q (mpf) or many (arrays)."""

    q: Any
    variance: Any
    v_prime: Any
    v_second: Any
    chi1: Any
    sparsity: Any

    def to_dict(self, digits: int = 8) -> dict:
        """The values as plain data (what ``meanfield map --json`` prints): decimal strings
        of ``digits`` significant digits, lists of them for arrays."""
        def text(v):
            return [format_value(x, digits) for x in v] if np.ndim(v) else format_value(v, digits)
        return {"q": text(self.q), "variance": text(self.variance), "v_prime": text(self.v_prime),
                "v_second": text(self.v_second), "chi1": text(self.chi1), "sparsity": text(self.sparsity)}


def format_value(value, digits: int) -> str | None:
    """A number as a decimal string of ``digits`` significant digits, zeros kept; +inf /
    -inf as such (also for a quantity that is only infinite, such as
    :class:`meanfield.correlation.Divergent`); None stays None. The one number format of
    the result types' ``summary`` and ``to_dict``.

    >>> format_value(mpmath.mpf(2) / 3, 6), format_value(mpmath.inf, 6), format_value(None, 6)
    ('0.666667', '+inf', None)
    """
    if value is None:
        return None
    if not isinstance(value, (mpmath.mpf, int, float)) and hasattr(value, "__float__"):
        value = float(value)  # numpy scalars, and Divergent: +-inf
    if mpmath.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return mpmath.nstr(value, digits, strip_zeros=False)


def cancellation_digits(init: Initialisation, q, *, tails: bool = True):
    """Extra working digits that the closed forms lose to cancellation at ``q`` (an int, or
    an array of them for an array of q).

    Two regimes (d: the degree of a piece's polynomial, at least 1). A finite piece of
    width w much narrower than sqrt(q) has terms that cancel by about (q / w^2)^d. A
    breakpoint b far out in the tail, alpha = |b| / sqrt(q) >> 1, has terms that cancel
    by about alpha^(4d) (the asymptotic series of Phi against phi). The tail terms are
    exponentially small, so that loss is relative to a tiny value; ``tails=False`` leaves
    it out (the float64 path keeps such values, whose absolute error stays ~1e-16).
    """
    qs = np.asarray(q, dtype=float)
    worst = np.zeros_like(qs)
    for lo, hi, poly in init.activation.numeric_pieces(**init.parameters):
        d = max(poly.order, 1)
        width = hi - lo
        if math.isfinite(width) and width > 0:
            worst = np.maximum(worst, d * np.log10(np.maximum(1.0, qs / width**2)))
        for b in (lo, hi) if tails else ():
            if math.isfinite(b) and b != 0:
                worst = np.maximum(worst, 4 * d * np.log10(np.maximum(1.0, abs(b) / np.sqrt(qs))))
    digits = np.ceil(worst).astype(int) + np.where(worst > 0, 3, 0)
    return int(digits) if digits.ndim == 0 else digits


def check_q(q, name: str = "q"):
    real(name, q, "> 0")
    if not float(q) > 0:
        raise ParameterError(f"{name} = {q} is out of range: must be > 0 (finite)")
    return q


def operating_point(init, q_star=None, *, digits=None, required=False, ctx=mpmath.mp) -> tuple[Initialisation, Any]:
    """(Initialisation, q*) of an operating point given as an :class:`Initialisation` (q* as
    given, or None) or as an EoC solution (:class:`meanfield.eoc.EoCSolution`: its own q*
    unless one is given; solved again if it carries fewer than ``digits``, since an EoC
    known to 20 digits is chaotic or ordered at 60). ``required``: a missing q* is an
    error; ``ctx``: the mpmath context of a solve again. The one place where "an
    Initialisation or an EoC solution?" is decided."""
    if isinstance(init, Initialisation):
        own = None
    elif isinstance(getattr(init, "init", None), Initialisation) and hasattr(init, "q_star"):
        if digits is not None and hasattr(init, "at_digits"):
            init = init.at_digits(digits, ctx)
        init, own = init.init, init.q_star
    else:
        raise ParameterError(f"expected an Initialisation or an EoCSolution, got {type(init).__name__}")
    q_star = own if q_star is None else q_star
    if q_star is None and required:
        raise ParameterError("q_star is required (a fixed point of V) unless an EoCSolution is given")
    return init, q_star


def check_fixed_point(init: Initialisation, q_star, digits, ctx=mpmath.mp,
                      why="the correlation map is defined at a fixed point"):
    """``q_star`` must be a fixed point of V (to half the digits); ``why`` says who needs it."""
    check_q(q_star, "q_star")
    v = map_values(init, q_star, digits=digits, ctx=ctx).variance
    with ctx.workdps(digits + GUARD_DIGITS):  # q* read to the digits asked for, not to 15
        q = to_mpf(q_star, ctx)
        off = abs(v - q) > ctx.mpf(10) ** (-(digits // 2)) * q
    if off:
        raise ParameterError(f"q_star = {q_star} is not a fixed point of V (V(q_star) = "
                             f"{mpmath.nstr(v, 10)}): {why}")


def working_precision(init: Initialisation, digits: int, *qs) -> int:
    """The working precision (decimal digits) for ``digits`` of the maps at every q in
    ``qs``: the guard digits and the most the closed forms lose to cancellation there."""
    from .validation import working_digits
    return working_digits(digits, max((cancellation_digits(init, float(q)) for q in qs), default=0))


def _evaluate(init: Initialisation, q_mpf, names, ctx) -> dict:
    fns = compiled(init.activation).mp.context(ctx)
    args = init.arguments(q_mpf, ctx)
    return {name: fns[name](*args) for name in names}


def map_values(init: InitialisationLike, q: Reals, *, digits: int = DEFAULT_DIGITS,
               ctx: Context = mpmath.mp) -> MapValues:
    """V, V', V'', chi_1 and sparsity at ``q`` to ``digits`` significant digits (mpf).
    ``init``: an :class:`Initialisation` (or an EoC solution: its own).

    >>> init = Initialisation("relu", sigma_w2=2, sigma_b2=0)
    >>> v = map_values(init, "0.5", digits=20)
    >>> print(v.variance, v.v_prime, v.sparsity)
    0.5 1.0 0.5
    """
    init, _ = operating_point(init)
    digits = check_digits(digits)
    check_q(q)
    with ctx.workdps(digits + GUARD_DIGITS + cancellation_digits(init, q)):
        q_mpf = to_mpf(q, ctx)
        vals = _evaluate(init, q_mpf, ("variance", "v_prime", "v_second", "chi1", "sparsity"), ctx)
        vals = {k: +v for k, v in vals.items()}
    return MapValues(q=q_mpf, **vals)


def variance_map(init: InitialisationLike, q: Real, *, digits: int = DEFAULT_DIGITS,
                 ctx: Context = mpmath.mp) -> mpmath.mpf:
    """V(q) to ``digits`` significant digits.

    >>> print(variance_map(Initialisation("st", sigma_w2=1, sigma_b2=0), 2, digits=10))
    2.0
    """
    return map_values(init, q, digits=digits, ctx=ctx).variance


def map_values_float64(init: InitialisationLike, q: float | np.ndarray) -> MapValues:
    """The same maps vectorized in float64 over an array of ``q`` (the fast path).

    >>> import numpy as np
    >>> init = Initialisation("relu", sigma_w2=2, sigma_b2=0)
    >>> map_values_float64(init, np.array([1.0, 4.0])).variance
    array([1., 4.])
    >>> float(map_values_float64(init, 3.0).variance)     # a scalar q gives 0-d arrays
    3.0
    """
    init, _ = operating_point(init)
    if isinstance(q, (bool, np.bool_, bytes, bytearray, str)):
        raise ParameterError(f"q = {q!r} is not an array of numbers: q must be numbers in [1e-100, 1e30]")
    try:
        q = np.asarray(q, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise ParameterError("q must be an array of numbers in [1e-100, 1e30]") from None
    if not np.all(np.isfinite(q)) or np.any(q < FLOAT64_Q_RANGE[0]) or np.any(q > FLOAT64_Q_RANGE[1]):
        raise ParameterError("q must lie in [1e-100, 1e30] everywhere (the supported magnitudes)")
    fns = compiled(init.activation).np
    args = (q,) + init.float_arguments()
    out = {}
    with np.errstate(all="ignore"):  # phi underflowing against a power of q: checked below
        for name in ("variance", "v_prime", "v_second", "chi1", "sparsity"):
            out[name] = np.broadcast_to(np.asarray(fns[name](*args), dtype=float), q.shape).copy()
    # Points where float64 would lose more than 8 digits to cancellation, or where phi
    # underflowed against a power of q (0 * inf = NaN), are redone with mpmath.
    redo = ~np.ones(q.shape, dtype=bool)
    for name, value in out.items():
        redo |= ~np.isfinite(value)
    redo |= cancellation_digits(init, q, tails=False) > _FLOAT64_MAX_LOSS
    for i in zip(*np.nonzero(np.atleast_1d(redo))):
        i = i if q.ndim else ()
        exact = map_values(init, float(q[i]), digits=MIN_DIGITS)
        for name, value in out.items():
            value[i] = float(getattr(exact, name))
    return MapValues(q=q, **out)
