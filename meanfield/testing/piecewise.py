"""Piecewise-polynomial activations as numbers: the independent quadrature reference of
the maps (built-ins from their definitions, random piecewise polynomials from their
rational coefficients) and a hypothesis strategy for random activations. Nothing here
takes a closed form from meanfield; :attr:`RandomActivation.activation` builds the
:class:`~meanfield.activations.Activation` that is checked against the reference.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import mpmath
from hypothesis import strategies as st
from mpmath import mpf

__all__ = ["gauss_expect", "Reference", "builtin_reference", "RandomActivation", "random_activations"]


# -- reference quadrature --------------------------------------------------------------

def _one_side_integral(g: Callable, a, b):
    """(integral, error estimate) of g over [a, b], 0 <= a < b <= inf, where g carries the
    factor exp((a^2 - z^2)/2), which decays at rate ~s = max(a, 1) from z = a.

    In u = (z - a) s the decay is O(1); u in [0, 40] (or the whole piece, if shorter) is
    mapped onto [0, 1], and the rest, where g < e^-40 g(a), is integrated as it is.
    """
    s = max(a, mpf(1))
    top = (b - a) * s
    if mpmath.isinf(top):
        value, err = mpmath.quad(lambda u: g(a + u / s), [0, mpmath.inf], error=True)
        return value / s, err / s
    head = min(top, mpf(40))
    value, err = mpmath.quad(lambda v: g(a + head * v / s), [0, 1], error=True)
    value, err = value * head, err * head
    if top > head:
        rest, rest_err = mpmath.quad(lambda u: g(a + u / s), [head, top], error=True)
        value, err = value + rest, err + rest_err
    return value / s, err / s


def _expectation(f: Callable, q, breakpoints, unit):
    root_q = mpmath.sqrt(q)
    cuts = sorted({mpf(b) / root_q for b in breakpoints} | {mpf(0)})
    ends = [mpmath.ninf, *cuts, mpmath.inf]
    total = total_err = mpf(0)
    for a, b in zip(ends, ends[1:]):
        if a == b:
            continue
        if a >= 0:
            value, err = _one_side_integral(
                lambda z: f(root_q * z) / unit * mpmath.exp((a - z) * (a + z) / 2), a, b)
        else:  # b <= 0: mirror onto [-b, -a]
            value, err = _one_side_integral(
                lambda z: f(-root_q * z) / unit * mpmath.exp((b - z) * (b + z) / 2), -b, -a)
        weight = mpmath.npdf(min(abs(a), abs(b))) * unit
        total, total_err = total + value * weight, total_err + err * weight
    return total, total_err


def gauss_expect(f: Callable, q, breakpoints, unit=1, size=0) -> mpf:
    """E[f(sqrt(q) z)], z ~ N(0, 1), by ``mpmath.quad`` in z at the current precision,
    split at the breakpoints and at 0.

    mpmath's error estimate is absolute, so the integrand is rescaled to O(1): f by
    ``unit`` (its expected size; if that proves wrong, by the result, and again), and the
    density on each piece to npdf(z0) exp((z0^2 - z^2)/2), z0 the end nearest 0. Fails
    loudly unless the error estimate is below 10^(10 - dps) of the result (or of ``size``).
    """
    unit = mpf(unit)
    for _ in range(3):
        total, err = _expectation(f, q, breakpoints, unit)
        if err <= mpf(10) ** (10 - mpmath.mp.dps) * max(abs(total), size):
            return total
        unit = abs(total) or unit
    raise AssertionError(f"reference quadrature did not converge: {total} +- {err}")


@dataclass(frozen=True)
class Reference:
    """phi and phi' written from the definition, with their breakpoints (mpmath).

    ``degree`` and ``coeff`` bound the pieces (degree, largest |coefficient|), ``dcoeff``
    the coefficients of their derivatives; they only set the natural scales.
    """

    phi: Callable
    dphi: Callable
    kinks: Callable  # () -> breakpoints, formed at the current precision
    degree: int = 1
    coeff: mpf = mpf(1)
    dcoeff: mpf = mpf(1)

    def e_phi2(self, q):
        return gauss_expect(lambda t: self.phi(t) ** 2, q, self.kinks(), self.scale(q))

    def e_dphi2(self, q):
        return gauss_expect(lambda t: self.dphi(t) ** 2, q, self.kinks(), self.dscale(q))

    def sparsity(self, q):
        return gauss_expect(lambda t: 1 if self.phi(t) == 0 else 0, q, self.kinks())

    def reach(self, q=0):
        """sqrt(q) + max(1, |breakpoints|)."""
        return mpmath.sqrt(q) + max([mpf(1)] + [abs(mpf(b)) for b in self.kinks()])

    def scale(self, q):
        """Natural size of E[phi^2]: the bound (sum_k |c_k| r^k)^2, r = reach(q)."""
        return (self.coeff * (self.degree + 1) * self.reach(q) ** self.degree) ** 2

    def dscale(self, q):
        """Natural size of E[phi'^2], likewise."""
        return (self.dcoeff * self.degree * self.reach(q) ** (self.degree - 1)) ** 2


def builtin_reference(name: str, p: dict) -> Reference:
    """The built-in activations from their definitions (Price et al. 2024, section 2)."""
    # Float parameters are exact in mpf; sums like tau + m are formed at call time.
    tau, m, alpha = (mpf(p.get(k, 0)) for k in ("tau", "m", "alpha"))
    sign = mpmath.sign
    phi, dphi, kinks = {
        "relu0": (lambda t: max(t, 0), lambda t: 1 if t > 0 else 0, lambda: (0,)),
        "relu": (lambda t: max(t - tau, 0), lambda t: 1 if t > tau else 0, lambda: (tau,)),
        "st": (lambda t: sign(t) * max(abs(t) - tau, 0),
               lambda t: 1 if abs(t) > tau else 0, lambda: (-tau, tau)),
        "crelu": (lambda t: min(max(t - tau, 0), m),
                  lambda t: 1 if tau < t < tau + m else 0, lambda: (tau, tau + m)),
        "cst": (lambda t: sign(t) * min(max(abs(t) - tau, 0), m),
                lambda t: 1 if tau < abs(t) < tau + m else 0,
                lambda: (-tau - m, -tau, tau, tau + m)),
        "hard_tanh": (lambda t: max(-1, min(t, 1)), lambda t: 1 if abs(t) < 1 else 0,
                      lambda: (-1, 1)),
        "leaky_relu": (lambda t: max(t, alpha * t), lambda t: 1 if t > 0 else alpha,
                       lambda: (0,)),
    }[name]
    return Reference(phi, dphi, kinks)


def _mpf(r: Fraction) -> mpf:
    """A Fraction at the current precision."""
    return mpf(r.numerator) / r.denominator


def _horner(coeffs, t):
    """sum_k coeffs[k] t^k, Fraction coefficients taken at the current precision."""
    out = mpf(0)
    for c in reversed(coeffs):
        out = out * t + _mpf(c)
    return out


@dataclass(frozen=True)
class RandomActivation:
    """Piecewise polynomial: ``polys[i]`` (Fraction coefficients, low degree first; empty
    is the zero polynomial) on (breaks[i-1], breaks[i])."""

    breaks: tuple
    polys: tuple

    @property
    def activation(self):
        """The :class:`~meanfield.activations.Activation` with these pieces (sympy)."""
        import sympy as sp

        from meanfield.activations import Activation, Piece, x
        rational = lambda r: sp.Rational(r.numerator, r.denominator)  # noqa: E731
        ends = [-sp.oo, *map(rational, self.breaks), sp.oo]
        return Activation("random", tuple(
            Piece(lo, hi, sum((rational(c) * x ** k for k, c in enumerate(poly)), sp.S.Zero))
            for lo, hi, poly in zip(ends, ends[1:], self.polys)))

    def _piece(self, t) -> int:
        return bisect.bisect_left([_mpf(b) for b in self.breaks], t)

    def reference(self) -> Reference:
        derivs = [[k * c for k, c in enumerate(p)][1:] for p in self.polys]
        return Reference(
            phi=lambda t: _horner(self.polys[self._piece(t)], t),
            dphi=lambda t: _horner(derivs[self._piece(t)], t),
            kinks=lambda: tuple(_mpf(b) for b in self.breaks),
            degree=max(1, *(len(p) - 1 for p in self.polys)),
            coeff=_mpf(max([Fraction(1)] + [abs(c) for p in self.polys for c in p])),
            dcoeff=_mpf(max([Fraction(1)] + [abs(c) for p in derivs for c in p])),
        )


@st.composite
def random_activations(draw):
    """1-4 sorted rational breakpoints in [-5, 5]; per piece a polynomial of degree 0-3
    with rational coefficients in [-3, 3] (or 0); continuous or not."""
    n = draw(st.integers(1, 4))
    breaks = sorted(draw(st.lists(st.fractions(-5, 5, max_denominator=64),
                                  min_size=n, max_size=n, unique=True)))
    coeff = st.fractions(-3, 3, max_denominator=16)
    polys = [draw(st.one_of(st.just([]), st.lists(coeff, min_size=1, max_size=4)))
             for _ in range(n + 1)]
    if draw(st.booleans(), label="continuous"):  # shift each constant term to match
        for i, b in enumerate(breaks):
            jump = sum(c * b ** k for k, c in enumerate(polys[i])) - sum(
                c * b ** k for k, c in enumerate(polys[i + 1]))
            head = polys[i + 1][:1] or [Fraction(0)]
            polys[i + 1] = [head[0] + jump, *polys[i + 1][1:]]
    return RandomActivation(tuple(breaks), tuple(tuple(p) for p in polys))
