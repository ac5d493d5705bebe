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
# # MNIST: the committed results
#
# The runs of `meanfield reproduce mnist` (depth 100, width 300, the protocol of
# `docs/mnist.md`), read from the journal `results/mnist/runs.jsonl`. This notebook
# trains nothing: it summarises and plots what the journal holds, as
# `meanfield reproduce mnist --report-only` does.

# %% tags=["parameters"]
import os
from pathlib import Path

JOURNAL = Path(os.environ.get("MEANFIELD_MNIST_JOURNAL", "../results/mnist/runs.jsonl"))

# %%
# %matplotlib inline
from meanfield import training_figures
from meanfield.nn import reproduce

results = reproduce.stored_results(JOURNAL)
rows = reproduce.summary(results)
print(f"{len(results)} runs in {JOURNAL}")
print(reproduce.table_markdown(rows))

# %% [markdown]
# ## Test accuracy against sparsity

# %%
fig = training_figures.accuracy_figure(rows)  # a Figure without pyplot: shown as the cell's value
fig

# %% [markdown]
# ## Every run's test accuracy through training
#
# The clipped networks at 85% sparsity learn, but much more slowly than the ReLU
# baseline; CReLU at $V'(q^*) = 0.9$ (diagnosed `fragile`) collapses.

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(8, 4.5))
colours = {}
for r in results:
    if r.status != "ok":
        continue
    c = r.config
    label = f"{c.activation} s={c.sparsity}" + (f" V'={c.v_prime}" if c.v_prime else "")
    acc = [e["test_accuracy"] for e in r.epochs]
    line = ax.plot(range(1, len(acc) + 1), acc, color=colours.get(label), lw=1,
                   label=None if label in colours else label)[0]
    colours.setdefault(label, line.get_color())
ax.set_xlabel("epoch")
ax.set_ylabel("test accuracy")
ax.legend(fontsize=8);

# %% [markdown]
# ## Loss curves of the failing configurations, and gradient norms per layer

# %%
fig = training_figures.loss_figure(results)
fig

# %%
fig = training_figures.gradient_figure(results)
fig
