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
# # Finite networks against the theory
#
# Random networks of finite width, drawn on the edge of chaos at 80% sparsity, layer by
# layer: the mean square pre-activation $q^l$, the realised sparsity and the correlation
# of input pairs, next to the infinite-width maps. The unclipped shifted ReLU has a
# half-stable $q^*$: finite-width noise pushes $q^l$ above it, and from there the
# variance grows without bound. CReLU with $V'(q^*) = 0.7$ holds every layer at $q^*$.

# %% tags=["parameters"]
import os

QUICK = os.environ.get("MEANFIELD_NOTEBOOK_QUICK") == "1"
WIDTH, DEPTH, SEEDS = (100, 30, 3) if QUICK else (300, 100, 10)

# %%
# %matplotlib inline
import numpy as np

import meanfield as mf
from meanfield.nn.simulate import simulate

runs = {
    "relu": mf.eoc_parameters("relu", sparsity="0.8"),
    "crelu": mf.eoc_parameters("crelu", sparsity="0.8", v_prime="0.7"),
}
sims = {name: simulate(sol, width=WIDTH, depth=DEPTH, seeds=SEEDS, inputs=4,
                       jacobian=not QUICK, progress=False) for name, sol in runs.items()}
for name, sim in sims.items():
    q, _ = sim.mean_and_se("q")
    s, _ = sim.mean_and_se("sparsity")
    print(f"{name:6} q^L = {q[-1]:.3g}, sparsity at layer L = {s[-1]:.3f}, "
          f"networks that ran away (q^L > 10 q*): {sim.runaway_fraction:.2f}")

# %%
sims["crelu"].figure()

# %%
sims["relu"].figure()

# %% [markdown]
# ## How far is the simulation from the theory?
#
# The largest $|$simulation $-$ theory$|$ over the layers, in standard errors of the
# mean over networks ($z$), and in value. At width 1000 both $q^l$ and the sparsity of
# the clipped network agree within 4 standard errors at every layer (`docs/nn.md`). At
# small widths the sparsity carries the $O(1/N)$ finite-width bias: a few hundredths at width 100, but
# many standard errors, since the standard error measures only the spread between
# networks.

# %%
for name, sim in sims.items():
    worst = {k: float(np.nanmax(np.abs(sim.z_scores(k)))) for k in ("q", "sparsity")}
    s, _ = sim.mean_and_se("sparsity")
    gap = float(np.nanmax(np.abs(s - sim.theory.sparsity)))
    print(f"{name:6} largest |z|: q {worst['q']:.2f}, sparsity {worst['sparsity']:.2f} "
          f"(largest sparsity gap {gap:.3f}); ran away: simulated {sim.runaway_fraction:.2f}, "
          f"finite-width model {sim.theory.runaway_probability:.2f}")
