r"""Vectorized interval arithmetic in float64 for the compiled closed forms.

An :class:`Interval` holds arrays ``lo <= hi``; every operation returns an enclosure of
the exact range, widened outward after each step (one ulp for arithmetic, a relative
``1e-13`` for ``exp``, ``Phi`` and ``phi``, whose library implementations are accurate to a
few ulps), so the enclosures are rigorous up to that stated margin. Only what the closed
forms of :mod:`meanfield.symbolic` use is implemented: ``+ - * /``, powers, ``sqrt``,
``exp``, :math:`\Phi` (increasing) and :math:`\varphi` (even, decreasing in :math:`|x|`).

>>> import numpy as np
>>> t = Interval(np.array([-1.0]), np.array([2.0]))
>>> r = t * t
>>> bool(r.lo[0] <= -2.0 and r.hi[0] >= 4.0)
True
"""

from __future__ import annotations

import math

import numpy as np

# math's erf and erfc, elementwise: the C library's, accurate to a few ulps (scipy.special
# is not imported here: it costs a command that only solves about 0.2 s)
_erf = np.frompyfunc(math.erf, 1, 1)
_erfc = np.frompyfunc(math.erfc, 1, 1)
_SQRT_HALF = math.sqrt(0.5)


def _float(a):
    return np.asarray(a, dtype=float)


def ndtr(v):
    """The standard normal cdf, 0.5 erfc(-v / sqrt 2), elementwise."""
    return 0.5 * _float(_erfc(-np.asarray(v, dtype=float) * _SQRT_HALF))


def erf_float64(v):
    """erf, elementwise."""
    return _float(_erf(np.asarray(v, dtype=float)))


_FUNC_PAD = 1e-13
_TINY = 1e-300
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _down(a):
    return np.nextafter(a, -np.inf)


def _up(a):
    return np.nextafter(a, np.inf)


def _pad(lo, hi, rel):
    return lo - np.abs(lo) * rel - _TINY, hi + np.abs(hi) * rel + _TINY


class Interval:
    """Arrays of intervals ``[lo, hi]`` (broadcasting like numpy)."""

    __slots__ = ("lo", "hi")
    __array_priority__ = 1000  # numpy scalars defer to our reflected operators

    def __init__(self, lo, hi=None):
        lo = np.asarray(lo, dtype=float)
        self.lo = lo
        self.hi = lo if hi is None else np.asarray(hi, dtype=float)

    @staticmethod
    def _wrap(v):
        return v if isinstance(v, Interval) else Interval(v)

    def __repr__(self):
        return f"Interval({self.lo!r}, {self.hi!r})"

    def contains_zero(self):
        return (self.lo <= 0) & (self.hi >= 0)

    # arithmetic ------------------------------------------------------------------
    def __add__(self, other):
        o = self._wrap(other)
        return Interval(_down(self.lo + o.lo), _up(self.hi + o.hi))

    __radd__ = __add__

    def __neg__(self):
        return Interval(-self.hi, -self.lo)

    def __sub__(self, other):
        return self + (-self._wrap(other))

    def __rsub__(self, other):
        return self._wrap(other) + (-self)

    def __mul__(self, other):
        o = self._wrap(other)
        with np.errstate(invalid="ignore"):
            p = np.stack(np.broadcast_arrays(self.lo * o.lo, self.lo * o.hi,
                                             self.hi * o.lo, self.hi * o.hi))
        p = np.where(np.isnan(p), 0.0, p)  # 0 * inf: the zero factor is exact
        return Interval(_down(p.min(axis=0)), _up(p.max(axis=0)))

    __rmul__ = __mul__

    def reciprocal(self):
        bad = self.contains_zero()
        with np.errstate(divide="ignore"):
            lo = np.where(bad, -np.inf, _down(1.0 / self.hi))
            hi = np.where(bad, np.inf, _up(1.0 / self.lo))
        return Interval(lo, hi)

    def __truediv__(self, other):
        return self * self._wrap(other).reciprocal()

    def __rtruediv__(self, other):
        return self._wrap(other) * self.reciprocal()

    def __pow__(self, p):
        p = float(p)
        if p == 0:
            return Interval(np.ones_like(self.lo))
        if p.is_integer():
            n = int(p)
            if n < 0:
                return (self ** (-n)).reciprocal()
            a, b = self.lo ** n, self.hi ** n
            if n % 2:
                lo, hi = a, b
            else:
                zero = self.contains_zero()
                lo = np.where(zero, 0.0, np.minimum(a, b))
                hi = np.maximum(a, b)
            lo, hi = _pad(lo, hi, 4e-16 * n)
            if n % 2 == 0:
                lo = np.maximum(lo, 0.0)
            return Interval(lo, hi)
        # fractional powers only of non-negative bases (q**(3/2) and the like)
        base_lo = np.maximum(self.lo, 0.0)
        a, b = base_lo ** p, self.hi ** p
        lo, hi = (a, b) if p > 0 else (b, a)
        lo, hi = _pad(lo, hi, 1e-15)
        return Interval(np.maximum(lo, 0.0), hi)


def sqrt(v):
    v = Interval._wrap(v)
    return Interval(_down(np.sqrt(np.maximum(v.lo, 0.0))), _up(np.sqrt(np.maximum(v.hi, 0.0))))


def exp(v):
    v = Interval._wrap(v)
    lo, hi = _pad(np.exp(v.lo), np.exp(v.hi), _FUNC_PAD)
    return Interval(np.maximum(lo, 0.0), hi)


#: Relative error of Phi(v) per v^2 from rounding its argument v / sqrt 2 (one ulp, 2^-53,
#: scaled by |d log erfc(z) / dz| z, about 2 z^2 = v^2 in the tail), with a margin.
_CDF_TAIL_PAD = 2.5e-16


def normal_cdf(v):
    v = Interval._wrap(v)
    tail = _CDF_TAIL_PAD * np.maximum(v.lo * v.lo, v.hi * v.hi)
    lo, hi = _pad(ndtr(v.lo), ndtr(v.hi), _FUNC_PAD + np.where(np.isfinite(tail), tail, 0.0))
    return Interval(np.maximum(lo, 0.0), np.minimum(hi, 1.0))


def normal_pdf(v):
    v = Interval._wrap(v)
    a, b = np.abs(v.lo), np.abs(v.hi)
    far = np.maximum(a, b)
    near = np.where(v.contains_zero(), 0.0, np.minimum(a, b))
    lo, hi = _pad(np.exp(-0.5 * far * far) * _INV_SQRT_2PI,
                  np.exp(-0.5 * near * near) * _INV_SQRT_2PI, _FUNC_PAD)
    return Interval(np.maximum(lo, 0.0), hi)


def erf(v):
    v = Interval._wrap(v)
    lo, hi = _pad(erf_float64(v.lo), erf_float64(v.hi), _FUNC_PAD)
    return Interval(np.maximum(lo, -1.0), np.minimum(hi, 1.0))


#: Namespace for ``sympy.lambdify`` (numpy printer) that evaluates on intervals.
NAMESPACE = {"Phi": normal_cdf, "phi": normal_pdf, "sqrt": sqrt, "exp": exp, "erf": erf,
             "pi": math.pi}
