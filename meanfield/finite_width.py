r"""Finite width: how likely a network of width N leaves the basin of q* within L layers.

For one input, given layer :math:`l`, the pre-activations of layer :math:`l+1` are
independent :math:`N(0,Q^{l+1})` with :math:`Q^{l+1}=\sigma_b^2+\sigma_w^2\frac1N\sum_k
\phi(h^l_k)^2`, and given :math:`Q^l` the :math:`h^l_k` are independent :math:`N(0,Q^l)`. So
:math:`Q^l` is a Markov chain whose step has mean :math:`V(Q^l)` and, by the central limit
theorem over the layer's :math:`N` units, variance
:math:`\sigma_w^4(E[\phi^4]-E[\phi^2]^2)/N`, both closed forms
(:func:`meanfield.symbolic.power_mean`). At infinite width :math:`Q^l=q^*` for ever; at a
half-stable :math:`q^*` (:math:`V'(q^*)=1`, :math:`V''>0`: ReLU\ :sub:`tau` and ST\ :sub:`tau`
on the edge of chaos) the fluctuations push :math:`Q` above :math:`q^*`, where
:math:`V(q)>q`, and it runs away; past the repelling fixed point of a three-fixed-point V
(large m) it falls into the other stable point. :func:`finite_width_model` iterates the
Gaussian form of this chain over many paths: the fraction of networks that leave the basin
within the depth, and the spread of :math:`q^l`, without drawing a weight matrix
(:mod:`meanfield.nn.simulate` checks it against networks drawn in full). The chain is the
mean-field recursion of Poole et al. (2016) with the width's
:math:`O(1/N)` fluctuations kept, as in the finite-width corrections of Hanin (2018).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import validation
from .maps import FLOAT64_Q_RANGE, Initialisation, lambdify_np, map_values_float64
from .symbolic import power_mean, q as q_symbol

__all__ = ["finite_width_model", "RUNAWAY_FACTOR", "FROZEN"]

#: A network runs away when q^L exceeds this multiple of q* (where q* has no basin edge above).
RUNAWAY_FACTOR = 10
#: x the threshold: where a path has run away for good (it is frozen there).
FROZEN = 1e3
_QUANTILES = (0.1, 0.5, 0.9)


@functools.lru_cache(maxsize=None)
def _fourth_moment(activation):
    return lambdify_np((q_symbol,) + activation.symbols, power_mean(activation, 4))


def finite_width_model(init: Initialisation, q_first, *, width: int, depth: int,
                       q_star=None, paths: int = 20000, seed: int = 0, threshold=None):
    """The finite-width chain of q^l for one input (module docstring), as
    ``(runaway_probability, its standard error, q_band)``: the fraction of ``paths`` with
    q^depth > ``threshold`` (default RUNAWAY_FACTOR q*; the upper edge of q*'s basin where
    it has one) and the 10/50/90% quantiles of q^l (3, depth), the latter including the
    chi-square spread of the measured q^l = Q^l chi2_N / N. A path that passes 1e3 times
    the threshold is frozen there: it has run away (the band is capped at that level, and
    the float64 maps need no mpmath recomputation of narrow pieces).

    >>> import meanfield as mf
    >>> sol = mf.eoc_parameters("relu", sparsity="0.8", digits=15)   # half-stable q* = 1
    >>> deep, _, _ = finite_width_model(sol.init, 1.0, width=300, depth=100, paths=2000)
    >>> shallow, _, _ = finite_width_model(sol.init, 1.0, width=3000, depth=10, paths=2000)
    >>> deep > 0.5, shallow < 0.05
    (True, True)
    """
    width = validation.width(width)
    depth = validation.integer("depth", depth, 1, 10**5)
    paths = validation.integer("paths", paths, 1, 10**7)
    q_star = float(q_first if q_star is None else q_star)
    limit = RUNAWAY_FACTOR * q_star if threshold is None else validation.positive("threshold", threshold)
    act = init.activation
    sw2, sb2 = float(init.sigma_w2), float(init.sigma_b2)
    params = [float(v) for _, v in init.params]
    fourth = _fourth_moment(act)
    lo = max(sb2, FLOAT64_Q_RANGE[0])
    # a path this far past the threshold has run away for good (V is bounded for clipped
    # activations, and V(q) > q above a half-stable q*): it is frozen there
    frozen = FROZEN * limit
    rng = np.random.default_rng(seed)
    Q = np.full(paths, float(q_first))
    band = np.empty((len(_QUANTILES), depth))
    for l in range(depth):
        measured = Q * rng.chisquare(width, paths) / width
        band[:, l] = np.quantile(measured, _QUANTILES)
        if l + 1 == depth:
            break
        live = Q < frozen
        q = Q[live]
        with np.errstate(over="ignore", invalid="ignore"):
            v = map_values_float64(init, q).variance
            e2 = (v - sb2) / sw2
            var = sw2 * sw2 * np.maximum(fourth(q, *params) - e2 * e2, 0) / width
            Q[live] = np.clip(v + np.sqrt(var) * rng.standard_normal(q.size), lo, frozen)
    p = float(np.mean(~(Q <= limit)))
    return p, math.sqrt(p * (1 - p) / paths), band
