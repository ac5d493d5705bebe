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
# # Correlation maps
#
# Two inputs with pre-activation correlation $c$ come out of a layer at $q^*$ with
# correlation $\rho(c) = (\sigma_b^2 + \sigma_w^2 E[\phi(u_1)\phi(u_2)]) / q^*$ (Poole et
# al. 2016), $(u_1, u_2)$ bivariate normal with variance $q^*$ and correlation $c$. On the
# edge of chaos $\rho'(1) = \chi_1 = 1$, so $c = 1$ is marginal and the depth scale
# $\xi_c$ is infinite; but $\rho(0)$, how alike two *orthogonal* inputs look after one
# layer, grows with sparsity. Large $\rho(0)$ is the paper's failure mode 2.

# %% tags=["parameters"]
import os

QUICK = os.environ.get("MEANFIELD_NOTEBOOK_QUICK") == "1"
POINTS = 11 if QUICK else 51

# %%
# %matplotlib inline
import numpy as np
from scipy import integrate

import meanfield as mf
from meanfield import plots

plots.correlation_maps_figure(points=POINTS)

# %% [markdown]
# ## $\rho$ in closed form against a two-dimensional quadrature
#
# `correlation_map` uses Price's theorem: closed forms at $c = 0$ plus a one-dimensional
# integral of bivariate normal densities at the breakpoints. Here it is checked against a
# nested `scipy.integrate.quad` (split at the kinks) of $E[\phi(u_1)\phi(u_2)]$.

# %%
sol = mf.eoc_parameters("crelu", sparsity="0.85", v_prime="0.7")
tau, m = float(sol.tau), float(sol.m)
sw2, sb2 = float(sol.sigma_w2), float(sol.sigma_b2)
phi = lambda x: min(max(x - tau, 0.0), m)  # noqa: E731


def rho_quad(c):
    # u1 = z1, u2 = c z1 + sqrt(1 - c^2) z2 (q* = 1); nested quad, the inner integral
    # split at the kinks of phi(u2), the outer one starting at phi(u1)'s kink
    s = np.sqrt(1 - c * c)
    pdf = lambda z: np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731

    def inner(z1):
        a, b = (tau - c * z1) / s, (tau + m - c * z1) / s
        ramp = integrate.quad(lambda z2: (c * z1 + s * z2 - tau) * pdf(z2), a, b, epsabs=1e-13)[0]
        flat = integrate.quad(lambda z2: m * pdf(z2), b, max(b, 0) + 12, epsabs=1e-13)[0]
        return phi(z1) * pdf(z1) * (ramp + flat)

    val = integrate.quad(inner, tau, tau + m, epsabs=1e-13)[0] + integrate.quad(inner, tau + m, 14, epsabs=1e-13)[0]
    return sb2 + sw2 * val


cs = [0.0, 0.5, 0.9] if QUICK else [0.0, 0.25, 0.5, 0.75, 0.9, 0.99]
values = mf.correlation_map(sol, cs)
for c, v in zip(cs, values):
    q = rho_quad(c)
    print(f"c = {c:5}: rho = {mf.nstr(v.rho, 12):15} quadrature {q:.12f}   difference {abs(float(v.rho) - q):.1e}")
    assert abs(float(v.rho) - q) < 1e-9

# %% [markdown]
# ## $\rho(0)$ and the depth scale across the clip level
#
# A larger clip (larger $V'(q^*)$) separates inputs better: $\rho(0)$ falls. The verdict
# calls a configuration too sparse when $\rho(0) \ge 0.65$.

# %%
for vp in ("0.5", "0.6", "0.7", "0.8", "0.9"):
    s = mf.eoc_parameters("crelu", sparsity="0.85", v_prime=vp)
    rep = mf.correlation_fixed_points(s)
    print(f"V'(q*) = {vp}: m = {mf.nstr(s.m, 4):6} rho(0) = {mf.nstr(rep.rho0, 4):6} "
          f"xi_c = {mf.nstr(rep.xi_c, 4)}  phase: {rep.phase}")

# %% [markdown]
# Off the edge of chaos the depth scale is finite: with $\sigma_w^2$ 10% below the EoC
# value (the ordered phase), correlations converge to the fixed point $c^* < 1$ within
# a few $\xi_c$ layers, and deep networks cannot tell inputs apart.

# %%
off = mf.Initialisation("crelu", sigma_w2=str(0.9 * sw2), sigma_b2=str(sb2), params={"tau": tau, "m": m})
q_star = [p.q for p in mf.fixed_points(off).points if p.kind == "stable"][0]
rep = mf.correlation_fixed_points(off, q_star=q_star)
print(f"q* = {mf.nstr(q_star, 6)}, phase: {rep.phase}, xi_c = {mf.nstr(rep.xi_c, 4)}, "
      f"attractor c* = {mf.nstr(rep.attractor.c, 6)}")
