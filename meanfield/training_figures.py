"""The figures of the MNIST experiment (:mod:`meanfield.nn.reproduce`), one function per
figure, each returning a :class:`matplotlib.figure.Figure` built without pyplot (nothing
here touches the caller's backend or global state):

- :func:`accuracy_figure`: test accuracy against target sparsity, mean +- std over seeds,
  the ReLU baseline as a line (the paper's figure 4);
- :func:`learning_curves_figure`: test accuracy against epoch, one panel per part of the grid;
- :func:`loss_figure`: the training loss of the configurations where some seed failed;
- :func:`gradient_figure`: the gradient norm per layer in the first epoch.

This module sits in the plotting layer, beside :mod:`meanfield.plots` (the theory's
figures); :func:`meanfield.nn.reproduce.write_results` draws these.
"""

from __future__ import annotations

import numpy as np

from .nn.reproduce import PARTS, configuration_key, part_of_row

__all__ = ["accuracy_figure", "learning_curves_figure", "loss_figure", "gradient_figure"]


def _figure(size):
    from matplotlib.figure import Figure  # imported when a figure is drawn
    return Figure(figsize=size, layout="tight")


_STYLE = {("relu", None): ("ReLU_tau", "C3", "o"), ("st", None): ("ST_tau", "C1", "s"),
          ("crelu", 0.5): ("CReLU V'=0.5", "C0", "^"), ("crelu", 0.7): ("CReLU V'=0.7", "C9", "^"),
          ("crelu", 0.9): ("CReLU V'=0.9", "C4", "^"), ("cst", 0.5): ("CST V'=0.5", "C2", "v"),
          ("cst", 0.7): ("CST V'=0.7", "C8", "v"), ("cst", 0.9): ("CST V'=0.9", "C6", "v")}


def accuracy_figure(rows):
    fig = _figure((10, 5.2))
    axes = fig.subplots(1, 2, sharey=True)
    base = [r for r in rows if r["activation"] == "relu" and r["sparsity"] == 0.5]
    for ax, acts in zip(axes, (("relu", "crelu"), ("st", "cst"))):
        for (act, v), (label, color, marker) in _STYLE.items():
            if act not in acts:
                continue
            rs = sorted((r for r in rows if r["activation"] == act and r["v_prime"] == v and r["sparsity"] != 0.5),
                        key=lambda r: r["sparsity"])
            dx = {None: -0.009, 0.5: -0.003, 0.7: 0.003, 0.9: 0.009}.get(v, 0.0)  # side by side, not on top
            ok = [r for r in rs if r["accuracy_mean"] is not None]
            if ok:
                ax.errorbar([r["sparsity"] + dx for r in ok], [r["accuracy_mean"] for r in ok],
                            yerr=[r["accuracy_std"] or 0.0 for r in ok], label=label, color=color, marker=marker,
                            capsize=3)
            dead = [r["sparsity"] + dx for r in rs if r["accuracy_mean"] is None]
            if dead:  # no accuracy to plot: every seed blew up in its first epoch
                ax.plot(dead, [0.02] * len(dead), "x", color=color, ms=9, mew=2,
                        label=f"{label}: every seed blew up")
        if base and base[0]["accuracy_mean"] is not None:
            ax.axhline(base[0]["accuracy_mean"], color="k", ls="--", lw=1, label="ReLU baseline")
        xs = [r["sparsity"] for r in rows if r["sparsity"] != 0.5]
        if xs:
            ax.set_xlim(min(xs) - 0.03, max(xs) + 0.03)
        ax.set_xlabel("target sparsity s (series shifted apart by < 0.01)")
        ax.set_ylim(0, 1)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)  # below: never on a point
        else:  # a part of the grid that was not run (e.g. a study of one configuration)
            ax.text(0.5, 0.5, "no runs of " + {"relu": "ReLU_tau / CReLU", "st": "ST_tau / CST"}[acts[0]],
                    transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (mean +- std over seeds)")
    depth = rows[0]["depth"] if rows else "?"
    width = rows[0]["width"] if rows else "?"
    fig.suptitle(f"MNIST, depth {depth}, width {width}, EoC with q* = 1")
    return fig


def learning_curves_figure(curve_rows):
    """Test accuracy against epoch (mean over seeds, min-max band), one panel per part of
    the grid, the ReLU baseline in every panel; solid s >= 0.85, dashed below."""
    parts = [p for p in PARTS[1:] if any(part_of_row(r) == p for r in curve_rows)] or ["baseline"]
    cols = min(2, len(parts))
    nrows = -(-len(parts) // cols)
    fig = _figure((5.5 * cols, 5.0 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False, sharey=True)
    series: dict = {}
    for r in curve_rows:
        series.setdefault((r["activation"], r["sparsity"], r["v_prime"]), []).append(r)
    for ax, p in zip(axes.flat, parts):
        for (act, s, v), rs in series.items():
            p_ = part_of_row(rs[0])
            if p_ not in (p, "baseline"):
                continue
            label, color, _ = ("ReLU baseline", "k", ".") if p_ == "baseline" else _STYLE.get((act, v), (act, "C7", "."))
            if p_ != "baseline":
                label += f" s={s:g}"
            ep = [r["epoch"] for r in rs]
            ax.plot(ep, [r["accuracy_mean"] for r in rs], "-" if s >= 0.85 or p_ == "baseline" else "--",
                    color=color, lw=1.2, label=f"{label} ({rs[0]['runs']} runs)")
            ax.fill_between(ep, [r["accuracy_min"] for r in rs], [r["accuracy_max"] for r in rs], color=color,
                            alpha=0.12, lw=0)
        ax.set_title(_PART_NAMES[p], fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)  # below: off the curves
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (mean; band: min-max)")
    for ax in list(axes.flat)[len(parts):]:
        ax.axis("off")
    return fig


_PART_NAMES = {"baseline": "ReLU", "relu_tau": "ReLU_tau", "st_tau": "ST_tau", "crelu": "CReLU", "cst": "CST"}


def loss_figure(results):
    """Training loss of the configurations where some seed failed (blew up or did not learn)."""
    groups: dict = {}
    for r in results:
        groups.setdefault(configuration_key(r.config), []).append(r)
    failing = [(k, rs) for k, rs in groups.items() if any(not r.learnt for r in rs)]
    n = max(1, len(failing))
    cols = min(3, n)
    fig = _figure((4 * cols, 3 * -(-n // cols)))
    axes = fig.subplots(-(-n // cols), cols, squeeze=False)
    for ax, (k, rs) in zip(axes.flat, failing):
        for k, r in enumerate(rs):
            curve = list(r.loss_curve)
            last = (r.failure or {}).get("loss")
            if last is not None:  # the loss of the step that blew up
                curve.append(((r.failure["epoch"] - 1) * _steps(r) + r.failure["step"], last))
            if curve:
                steps, loss = zip(*curve)
                label = f"seed {r.config.seed}" + (f" ({_ended(r)} at step {r.failure['step']})" if r.failure else "")
                ax.plot(steps, loss, lw=1, marker="." if len(curve) < 30 else None, color=f"C{k}", label=label)
                if r.failure:
                    ax.plot(steps[-1:], loss[-1:], "x", color=f"C{k}", ms=8)
            elif r.failure:  # overflowed before any finite loss: listed, with nothing to draw
                ax.plot([], [], "x", color=f"C{k}",
                        label=f"seed {r.config.seed} ({_ended(r)} at step {r.failure['step']}: no finite loss)")
        ax.set_title(rs[0].config.label(), fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        if ax.get_lines():
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(failing):]:
        ax.axis("off")
    if not failing:  # say so, rather than leave a blank figure
        axes.flat[0].text(0.5, 0.5, "every run learnt and none blew up:\nno training loss to show here",
                          ha="center", va="center", fontsize=10, transform=axes.flat[0].transAxes)
    return fig


def _ended(r) -> str:
    """How a run that did not finish ended: "blew up" (NaN, infinity) or "diverged"."""
    return "diverged" if r.status == "diverged" else "blew up"


def _steps(r) -> int:
    """Steps per epoch of a run."""
    n = r.config.train_size or 60000
    return -(-n // r.config.batch_size)


def gradient_figure(results):
    """RMS gradient norm per layer in the first epoch, the median over seeds; for a
    configuration whose runs blew up, the gradient norms of the failing step (dashed)."""
    fig = _figure((6, 4))
    ax = fig.subplots()
    groups: dict = {}
    for r in results:
        if r.epochs:
            groups.setdefault(configuration_key(r.config), []).append(r.epochs[0]["grad_norm_layers"])
        elif (r.failure or {}).get("grad_norm_layers"):
            groups.setdefault(configuration_key(r.config) + ("blew up",), []).append(r.failure["grad_norm_layers"])
    for (act, s, v, *rest), norms in groups.items():
        style = _STYLE.get((act, v), ("ReLU", "k", "."))
        label = "ReLU" if (act, s) == ("relu", 0.5) else f"{style[0]} s={s:g}"
        failed = "blew up" in rest
        if failed:
            label += " (step that blew up)"
        ls = "--" if failed else "-" if s >= 0.85 or s == 0.5 else ":"
        ax.plot(np.arange(1, len(norms[0]) + 1), np.median(np.array(norms), axis=0), ls, color=style[1],
                label=label, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("layer (1 = first hidden layer's weights; last = read-out)")
    ax.set_ylabel("gradient norm: RMS over epoch 1")
    ax.legend(fontsize=6, ncol=2)
    return fig
