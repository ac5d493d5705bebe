# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Variance maps and their fixed points
#
# Price et al. (ICLR 2024), figures 1-3: the four sparsifying activations, their
# variance maps $V(q) = \sigma_b^2 + \sigma_w^2 E[\phi(\sqrt q z)^2]$ on the edge of
# chaos, and why clipping matters. For the unclipped shifted ReLU and soft threshold,
# $V'(q) = \chi_1(q)$ for every $q$ (their Lemma 1), so an edge-of-chaos initialisation
# ($\chi_1(q^*) = 1$) has $V'(q^*) = 1$: a half-stable fixed point. Clipping adds a
# boundary term that makes $V'(q^*) < 1$.

# %% tags=["parameters"]
import os

QUICK = os.environ.get("MEANFIELD_NOTEBOOK_QUICK") == "1"  # the test suite's small run
SPARSITY = "0.8"

# %%
# %matplotlib inline
import mpmath
import numpy as np
from scipy import integrate

import meanfield as mf
from meanfield import plots

plots.activations_figure(tau=0.5, m=1.0)

# %% [markdown]
# ## The edge of chaos at 80% sparsity
#
# For each activation the EoC fixes $\tau$ (from the sparsity) and
# $(\sigma_w^2, \sigma_b^2)$ (from $\chi_1(q^*) = 1$ and $V(q^*) = q^*$ at $q^* = 1$). The
# clipped ones take the clip through the target $V'(q^*)$.

# %%
solutions = {
    "relu": mf.eoc_parameters("relu", sparsity=SPARSITY),
    "st": mf.eoc_parameters("st", sparsity=SPARSITY),
    "crelu": mf.eoc_parameters("crelu", sparsity=SPARSITY, v_prime="0.7"),
    "cst": mf.eoc_parameters("cst", sparsity=SPARSITY, v_prime="0.9"),
}
for name, sol in solutions.items():
    kinds = ", ".join(f"{mf.nstr(p.q, 5)} ({p.kind})" for p in sol.fixed_points.points)
    print(f"{name:6} tau = {mf.nstr(sol.tau, 6):8} sigma_w2 = {mf.nstr(sol.sigma_w2, 6):8} "
          f"V'(q*) = {mf.nstr(sol.v_prime, 4):6} fixed points: {kinds}")

# %% [markdown]
# CST at $V'(q^*) = 0.9$ has **three** fixed points: a perturbation past the unstable
# one sends the network to the upper stable point, where $\chi_1 > 1$ (the paper's
# failure mode 1).
#
# ## $V'(q) = \chi_1(q)$ for the unclipped activations, checked by quadrature
#
# The closed forms against `scipy.integrate.quad` split at the kinks, on $q$ spread over
# six orders of magnitude; $V'$ by the heat equation,
# $V'(q) = \frac{\sigma_w^2}{2} E[(\phi^2)''(\sqrt q z)]$, integrated as $\sigma_w^2 E[\phi'^2 + \phi\phi'']$
# plus the boundary terms, which vanish here because $\phi = 0$ at every kink.

# %%
init = solutions["relu"].init
tau, sw2 = float(solutions["relu"].tau), float(init.sigma_w2)


def chi1_quad(q):
    # sigma_w^2 P(sqrt(q) z > tau): phi' = 1 above the kink
    f = lambda z: np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731
    return sw2 * integrate.quad(f, tau / np.sqrt(q), np.inf, epsabs=0, epsrel=1e-12)[0]


qs = np.logspace(-3, 3, 7 if QUICK else 25)
worst = 0.0
for q in qs:
    v = mf.map_values(init, repr(float(q)), digits=20)
    assert abs(v.v_prime - v.chi1) < mpmath.mpf(10) ** -18  # the identity, to 18 digits
    worst = max(worst, abs(float(v.chi1) - chi1_quad(q)) / float(v.chi1))
print(f"V'(q) = chi_1(q) at {len(qs)} points of [1e-3, 1e3]; closed form against quad: "
      f"largest relative difference {worst:.1e}")
assert worst < 1e-10

# %% [markdown]
# ## The variance maps
#
# $V(q)$ against the identity: the tangency of ReLU$_\tau$ and ST$_\tau$ at $q^* = 1$
# (half-stable) and the clipped maps crossing it once (stable), or three times for a
# large clip.

# %%
plots.variance_maps_figure()

# %% [markdown]
# ## $V'(q^*)$ and $V''(q^*)$ against the clip level (figure 3)

# %%
plots.v_derivatives_figure(sparsities=(0.6, 0.85) if QUICK else (0.5, 0.6, 0.7, 0.8, 0.85))

# %% [markdown]
# $V'(q^*)$ rises with $m$ towards 1, the unclipped limit. Where $V''(q^*) > 0$ and
# $V'(q^*)$ is close to 1 the map bends back towards the identity above $q^*$: two
# more fixed points appear, the origin of the exploding region of the
# [phase diagram](phase_diagram.py).
