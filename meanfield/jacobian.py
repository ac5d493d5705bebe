r"""Moments of the input-output Jacobian's spectrum at depth L.

For a depth-L network at the fixed point :math:`q^*` the input-output Jacobian is
:math:`J=\prod_{l=1}^{L}W_lD_l` with :math:`D_l=\mathrm{diag}(\phi'(h_l))` and
:math:`W_l` having i.i.d. :math:`N(0,\sigma_w^2/N)` entries. As the width
:math:`N\to\infty` the S-transforms of the free factors multiply (Pennington, Schoenholz
and Ganguli 2017, eq. 12-16; 2018, section 3), which gives the mean and the variance of the
squared singular values :math:`\lambda` of :math:`J`:

.. math::

    m_1 = E[\lambda] = (\sigma_w^2\mu_1)^L = \chi_1(q^*)^L,\qquad
    \sigma^2 = \mathrm{Var}[\lambda] = m_1^2\,L\,\frac{\mu_2}{\mu_1^2},\qquad
    \mu_k = E[\phi'(\sqrt{q^*}z)^{2k}],

the Gaussian-weight case (:math:`s_1=-1` in their notation). For activations whose
derivative is 0 or 1, :math:`\mu_2/\mu_1^2 = 1/P(\phi'\ne0)`: on the EoC the spread grows
like :math:`L/(1-s)` with the sparsity s even though :math:`m_1=1`.

>>> from meanfield.eoc import eoc_parameters
>>> spec = jacobian_spectrum(eoc_parameters("relu", sparsity="0.8", digits=15), depth=10)
>>> print(spec.mean, mpmath.nstr(spec.variance, 10))      # 1 and 10 / (1 - 0.8)
1.0 50.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mpmath

from . import validation
from ._types import Context, InitialisationLike, Real
from .errors import ParameterError
from .maps import (
    DEFAULT_DIGITS,
    GUARD_DIGITS,
    cancellation_digits,
    check_digits,
    check_fixed_point,
    format_value,
    lambdify_mp,
    operating_point,
    to_mpf,
)
from .symbolic import derivative_power_mean, dirac_part
from .symbolic import q as q_symbol
from .validation import MAX_DEPTH

__all__ = ["JacobianSpectrum", "jacobian_spectrum", "power_mean", "MAX_DEPTH"]

@dataclass(frozen=True)
class JacobianSpectrum:
    """Mean and variance of the squared singular values of the depth-``depth`` Jacobian."""

    depth: int
    mean: Any
    variance: Any
    mu1: Any
    mu2: Any

    @property
    def relative_variance(self):
        """variance / mean^2 = L mu2 / mu1^2."""
        return self.depth * self.mu2 / self.mu1**2

    def to_dict(self, digits: int = 8) -> dict:
        """Mean, variance and relative variance as decimal strings of ``digits`` digits."""
        return {"depth": self.depth, "mean": format_value(self.mean, digits),
                "variance": format_value(self.variance, digits),
                "relative_variance": format_value(self.relative_variance, digits)}


def power_mean(activation, power: int, ctx=mpmath.mp):
    """E[phi'(sqrt(q) z)^power] as a function of (q, *activation parameters), computing in
    the mpmath context ``ctx`` (from :func:`meanfield.symbolic.derivative_power_mean`)."""
    return lambdify_mp((q_symbol,) + activation.symbols, derivative_power_mean(activation, power), ctx)


def jacobian_spectrum(init: InitialisationLike, *, q_star: Real | None = None, depth: int = 100,
                      digits: int = DEFAULT_DIGITS, ctx: Context = mpmath.mp) -> JacobianSpectrum:
    """Mean and variance of the Jacobian's squared singular values at depth ``depth``, every
    layer at ``q_star`` (taken from an EoCSolution when one is given)."""
    depth = validation.depth(depth)
    digits = check_digits(digits)
    init, q_star = operating_point(init, q_star, digits=digits, required=True, ctx=ctx)
    act = init.activation
    if dirac_part(act, 1):
        raise ParameterError(f"{act.name} has jumps: phi' has Dirac masses there and the "
                             "Jacobian's moments are infinite")
    check_fixed_point(init, q_star, digits, ctx, "the moments assume every layer at q*")
    with ctx.workdps(digits + GUARD_DIGITS + cancellation_digits(init, float(q_star))):
        q = to_mpf(q_star, ctx)
        params = [to_mpf(v, ctx) for _, v in init.params]
        mu1, mu2 = (power_mean(act, k, ctx)(q, *params) for k in (2, 4))
        if not mu1 > 0:
            raise ParameterError(f"phi' vanishes almost surely at q_star = {q_star}: the Jacobian is 0")
        chi1 = to_mpf(init.sigma_w2, ctx) * mu1
        mean = chi1**depth
        variance = mean**2 * depth * mu2 / mu1**2
        return JacobianSpectrum(depth, +mean, +variance, +mu1, +mu2)
