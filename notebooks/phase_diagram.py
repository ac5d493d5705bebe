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
# # The phase diagram of clipped sparsifying activations
#
# Every edge-of-chaos initialisation of CReLU and CST at sparsity $s$ and clip level
# $m/\sqrt{q^*}$, with the verdict of `meanfield.diagnose` at depth 100: trainable,
# fragile (the variance map comes within 5% of the identity above $q^*$), too sparse
# ($\rho(0) \ge 0.65$: unrelated inputs come out alike, failure mode 2) or exploding (a
# second stable fixed point with $\chi_1 > 1$, failure mode 1).

# %% tags=["parameters"]
import os

QUICK = os.environ.get("MEANFIELD_NOTEBOOK_QUICK") == "1"
N = 16 if QUICK else 100   # points per axis

# %%
# %matplotlib inline
import collections

import numpy as np

import meanfield as mf
from meanfield import plots

diagrams = {
    "crelu": mf.phase_diagram("crelu", np.linspace(0.5, 0.95, N), np.linspace(0.05, 4, N), progress=False),
    "cst": mf.phase_diagram("cst", np.linspace(0.0, 0.95, N), np.linspace(0.05, 4, N), progress=False),
}
for name, d in diagrams.items():
    counts = collections.Counter(str(v) for v in d.verdict.ravel())
    print(name, dict(sorted(counts.items())))

# %%
plots.phase_diagram_figure(list(diagrams.values()))

# %% [markdown]
# ## How sparse can a trainable network be?
#
# The largest sparsity with at least one trainable clip level, and the band of
# $V'(q^*)$ that is trainable there.

# %%
for name, d in diagrams.items():
    rows = [i for i in range(len(d.sparsities)) if (d.verdict[i] == "trainable").any()]
    i = rows[-1]
    ok = d.verdict[i] == "trainable"
    print(f"{name}: trainable up to s = {d.sparsities[i]:.3f}, there with V'(q*) in "
          f"[{d.v_prime[i][ok].min():.2f}, {d.v_prime[i][ok].max():.2f}]")

# %% [markdown]
# ## The paper's grid
#
# The configurations the paper trains on MNIST (its grid of $s$ and $V'(q^*)$), with
# their verdicts at full precision.

# %%
table = mf.stability_table(
    [c for c in mf.paper_grid() if not QUICK or c.sparsity in ("0.7", "0.85")], digits=8)
print(table.format("markdown", columns=["activation", "sparsity", "v_prime_target", "m",
                                        "n_fixed_points", "rho0", "margin", "verdict"]))
