r"""The figures of the theory (matplotlib), one function per figure, each returning a Figure.

- :func:`activations_figure`: ReLU_tau, ST_tau, CReLU, CST (Price et al. 2024, section 2).
- :func:`variance_maps_figure`: V(q) against the identity on the EoC: the tangency of
  ReLU_tau/ST_tau at q* (half-stable, their Lemma 1), and CReLU/CST at several m: one
  stable fixed point, three for large m (failure mode 1).
- :func:`v_derivatives_figure`: :math:`V'(q^*)` and :math:`V''(q^*)` against m for several s.
- :func:`phase_diagram_figure`: the verdict over :math:`(s, m/\sqrt{q^*})` for CReLU and
  CST with the number of fixed points and the :math:`V'(q^*)=0.5, 0.7, 0.9` contours
  (:mod:`meanfield.scan`).
- :func:`eoc_curve_figure`: the EoC in the :math:`(\sigma_w^2,\sigma_b^2)` plane,
  parametrised by q* (Poole et al. 2016; Schoenholz et al. 2017).
- :func:`correlation_maps_figure`: :math:`\rho(c)` against the identity, and
  :math:`c^l` through depth from :math:`c^0=0`.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot), so nothing
here touches the caller's backend or global state. :func:`save_figure` writes PNG and PDF.
This module sits above the mathematical core, which never imports it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import mpmath
import numpy as np

from ._files import write_figure
from .activations import get_activation
from .correlation import correlation_map
from .diagnose import VERDICTS
from .eoc import eoc_parameters
from .errors import ParameterError
from .maps import map_values_float64
from .scan import eoc_curve, phase_diagram

if TYPE_CHECKING:  # matplotlib itself is imported when a figure is drawn
    from matplotlib.figure import Figure

__all__ = ["FIGURES", "figure", "save_figure", "activations_figure", "variance_maps_figure",
           "v_derivatives_figure", "phase_diagram_figure", "eoc_curve_figure",
           "correlation_maps_figure", "VERDICT_COLOURS"]

#: Colour of each verdict in the phase diagrams (and "infeasible": no EoC initialisation).
VERDICT_COLOURS = {
    "trainable": "#4daf4a", "too-sparse": "#80b1d3", "fragile": "#ffd92f", "exploding": "#e41a1c",
    "vanishing": "#984ea3", "half-stable": "#ff7f00", "unstable": "#7f0000", "infeasible": "#d9d9d9",
    "unresolved": "#525252"}
_ORDER = tuple(VERDICTS) + ("infeasible", "unresolved")
_STYLE = {"relu": "ReLU$_\\tau$", "st": "ST$_\\tau$", "crelu": "CReLU$_{\\tau,m}$", "cst": "CST$_{\\tau,m}$"}


def _figure(rows: int, cols: int, width: float = 5.0, height: float = 4.0) -> tuple[Figure, np.ndarray]:
    from matplotlib.figure import (
        Figure,  # matplotlib is imported when a figure is drawn, not before
    )
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(rows, cols)
    return fig, axes


def activations_figure(tau: float = 0.5, m: float = 1.0) -> Figure:
    """The four sparsifying activations at threshold ``tau`` and clip ``m``."""
    fig, axes = _figure(1, 4, 3.6, 3.4)
    x = np.linspace(-3, 3, 1201)
    for ax, name in zip(axes[0], ("relu", "st", "crelu", "cst")):
        act = get_activation(name)
        params = {"tau": tau} if name in ("relu", "st") else {"tau": tau, "m": m}
        ax.plot(x, act(x, **params), color="C0", lw=2, label=r"$\phi(x)$")
        ax.plot(x, x, color="0.6", lw=1, ls="--", label="$x$")
        ax.axvspan(-tau if name in ("st", "cst") else -3, tau, color="0.85", zorder=0,
                   label=r"$\phi(x)=0$")
        ax.set_title(f"{_STYLE[name]}: " + ", ".join(f"{k} = {v:g}" for k, v in params.items()).replace(
            "tau", r"$\tau$").replace("m =", "$m$ ="))
        ax.set_xlabel("pre-activation $x$")
        ax.set_ylabel(r"$\phi(x)$")
        ax.set_ylim(-3, 3)
        ax.set_xlim(-3, 3)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    return fig


def _fixed_point_markers(ax, sol, colour):
    for p in sol.fixed_points.points:
        filled = p.kind == "stable"
        ax.plot(float(p.q), float(p.q), "o", ms=7, color=colour, mfc=colour if filled else "white",
                zorder=6 if filled else 5)


def variance_maps_figure(q_star: float = 1.0) -> Figure:
    """V(q) against the identity on the EoC, with every fixed point marked (filled: stable,
    open: unstable or half-stable)."""
    fig, axes = _figure(2, 2, 5.2, 4.2)
    panels = [
        ("relu", [("0.6", None), ("0.7", None), ("0.85", None)], (0, 3)),
        ("st", [("0.6", None), ("0.7", None), ("0.85", None)], (0, 3)),
        ("crelu", [("0.85", "0.5"), ("0.85", "0.9"), ("0.85", "0.95")], (0, 5)),
        ("cst", [("0.8", "0.5"), ("0.8", "0.7"), ("0.8", "0.9")], (0, 5)),
    ]
    for ax, (name, configs, (lo, hi)) in zip(axes.flat, panels):
        q = np.linspace(max(lo, 1e-3), hi, 600)
        ax.plot(q, q, color="0.4", lw=1, ls="--", label="identity $V(q)=q$")
        for k, (s, target) in enumerate(configs):
            sol = eoc_parameters(name, s, q_star=repr(q_star), v_prime=target, digits=15)
            v = map_values_float64(sol.init, q).variance
            n = len(sol.fixed_points.points)
            label = f"$s$ = {s}" + (f", $V'(q^*)$ = {target} ($m$ = {float(sol.m):.3g}), {n} f.p."
                                    if target else "")
            ax.plot(q, v, color=f"C{k}", lw=1.8, label=label)
            _fixed_point_markers(ax, sol, f"C{k}")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("$q$ (pre-activation variance)")
        ax.set_ylabel("$V(q)$")
        kind = "half-stable $q^*$ (tangency)" if name in ("relu", "st") else "clipped"
        ax.set_title(f"{_STYLE[name]} on the EoC, $q^*$ = {q_star:g}: {kind}")
        from matplotlib.lines import Line2D
        handles, _ = ax.get_legend_handles_labels()
        handles += [Line2D([], [], marker="o", ls="", color="0.3", mfc="0.3", label="stable fixed point"),
                    Line2D([], [], marker="o", ls="", color="0.3", mfc="white",
                           label="half-stable or unstable fixed point")]
        ax.legend(handles=handles, fontsize=7.5, loc="upper left")
        ax.grid(alpha=0.3)
    return fig


def v_derivatives_figure(sparsities: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.85),
                         ratios: np.ndarray | None = None) -> Figure:
    """V'(q*) and V''(q*) (times q*: scale-free) against m/sqrt(q*), CReLU and CST on the EoC."""
    r = np.linspace(0.05, 4, 160) if ratios is None else np.asarray(ratios, dtype=float)
    fig, axes = _figure(2, 2, 5.2, 3.8)
    for row, name in enumerate(("crelu", "cst")):
        d = phase_diagram(name, sparsities, r, progress=False)
        for k, s in enumerate(d.sparsities):
            axes[row, 0].plot(r, d.v_prime[k], color=f"C{k}", label=f"$s$ = {s:g}")
            axes[row, 1].plot(r, d.v_second[k], color=f"C{k}", label=f"$s$ = {s:g}")
        for t in (0.5, 0.7, 0.9):
            axes[row, 0].axhline(t, color="0.5", lw=0.8, ls=":")
        axes[row, 0].set_ylabel(f"{_STYLE[name]}: $V'(q^*)$")
        axes[row, 1].set_ylabel(f"{_STYLE[name]}: $q^*\\,V''(q^*)$")
        axes[row, 1].axhline(0, color="0.5", lw=0.8)
        axes[row, 0].set_ylim(0, 1.02)
        for ax in axes[row]:
            ax.set_xlabel(r"clip level $m/\sqrt{q^*}$")
            ax.grid(alpha=0.3)
        axes[row, 0].legend(fontsize=8, loc="lower right")
        axes[row, 0].set_title(f"{_STYLE[name]}: $V'(q^*)$ on the EoC (dotted: targets 0.5, 0.7, 0.9)")
        axes[row, 1].set_title(f"{_STYLE[name]}: $V''(q^*)$ on the EoC")
    return fig


def _label_spots(d):
    """Where to put the V' contour labels: on a row of s away from the paper grid's rows."""
    rows = [i for i in range(len(d.sparsities)) if 0.2 <= i / max(len(d.sparsities) - 1, 1) <= 0.8] or [0]
    far = lambda i: min(abs(d.sparsities[i] - t) for t in (0.5, 0.6, 0.7, 0.8, 0.85))  # noqa: E731
    i = max(rows, key=far)
    spots = []
    for level in (0.5, 0.7, 0.9):
        v = d.v_prime[i]
        ok = np.isfinite(v)
        if ok.sum() > 1 and v[ok].min() < level < v[ok].max():
            spots.append((float(np.interp(level, v[ok], d.clip_ratios[ok])), float(d.sparsities[i])))
    return spots or None


def _paper_points(activation):
    """(m, s) of the paper's grid for a clipped activation: s = 0.5..0.85, V' = 0.5, 0.7, 0.9."""
    pts = [(float(eoc_parameters(activation, s, v_prime=t, digits=15).m), float(s))
           for s in ("0.5", "0.6", "0.7", "0.8", "0.85") for t in ("0.5", "0.7", "0.9")]
    return [p[0] for p in pts], [p[1] for p in pts]


def phase_diagram_figure(diagrams: Iterable | None = None, *, n: int = 100, jobs=None,
                         progress: bool | None = None, mark_paper_grid: bool = True,
                         recommendations: Iterable = ()) -> Figure:
    """Verdict over (s, m/sqrt(q*)) per activation, with the boundary of the three-fixed-point
    region (hatched) and the V'(q*) = 0.5, 0.7, 0.9 contours. ``diagrams``: PhaseDiagram
    objects, or None to compute CReLU and CST on an ``n`` x ``n`` grid. ``recommendations``:
    :class:`~meanfield.recommend.Recommendation` objects, drawn on their activation's panel
    (the recommended m as a star, the trainable band of m as a bar)."""
    if diagrams is None:
        r = np.linspace(0.05, 4.0, n)
        diagrams = [phase_diagram("crelu", np.linspace(0.5, 0.95, n), r, jobs=jobs, progress=progress),
                    phase_diagram("cst", np.linspace(0.0, 0.95, n), r, jobs=jobs, progress=progress)]
    diagrams = list(diagrams)
    fig, axes = _figure(1, len(diagrams), 5.6, 4.8)
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch
    cmap = ListedColormap([VERDICT_COLOURS[v] for v in _ORDER])
    norm = BoundaryNorm(np.arange(len(_ORDER) + 1) - 0.5, len(_ORDER))
    present = set()
    # panels with areas share the sparsity axis; one that starts higher (CReLU: s >= 0.5 on
    # the EoC) shows the rest as a grey band, so that the two read against each other
    spans = [(float(np.min(d.sparsities)), float(np.max(d.sparsities))) for d in diagrams
             if min(d.verdict.shape) > 1]
    s_lo, s_hi = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (None, None)
    for ax, d in zip(axes[0], diagrams):
        present |= set(d.verdict.ravel().tolist())
        if min(d.verdict.shape) == 1:  # one row or column of the grid: no area to colour
            _phase_line(ax, d)
            continue
        codes = np.vectorize(_ORDER.index)(d.verdict)
        ax.pcolormesh(d.clip_ratios, d.sparsities, codes, cmap=cmap, norm=norm, shading="nearest",
                      rasterized=True)
        three = (d.n_fixed_points >= 3).astype(float)
        if three.any() and not three.all():
            ax.contourf(d.clip_ratios, d.sparsities, three, levels=[0.5, 1.5], colors="none",
                        hatches=["///"])
            ax.contour(d.clip_ratios, d.sparsities, three, levels=[0.5], colors="k", linewidths=1.2)
        cs = ax.contour(d.clip_ratios, d.sparsities, d.v_prime, levels=[0.5, 0.7, 0.9],
                        colors="k", linewidths=0.9, linestyles="--")
        ax.clabel(cs, fmt=lambda v: f"V'={v:g}", fontsize=8, manual=_label_spots(d))
        if mark_paper_grid and math.isclose(d.q_star, 1.0):
            ms, ss = _paper_points(d.activation)
            ax.plot(ms, ss, "o", color="k", mfc="white", ms=5, label="paper grid")
        _recommended(ax, [r for r in recommendations if r.activation == d.activation])
        low = float(np.min(d.sparsities))
        if s_lo is not None and low > s_lo:
            ax.axhspan(s_lo, low, color="0.88", zorder=0)
            ax.text(float(np.mean(d.clip_ratios[[0, -1]])), (s_lo + low) / 2,
                    f"outside the grid: $s$ < {low:g}" + (" (no EoC initialisation)"
                                                          if low == get_activation(d.activation).sparsity_rule.lowest
                                                          else ""), ha="center", va="center", fontsize=9)
        if s_lo is not None:
            ax.set_ylim(s_lo, s_hi)
        ax.set_xlabel(r"clip level $m/\sqrt{q^*}$")
        ax.set_ylabel("sparsity $s$")
        ax.set_title(f"{_STYLE[d.activation]} on the EoC, depth {d.depth}"
                     + ("" if d.width is None else f", width {d.width}"))
    handles = [Patch(facecolor=VERDICT_COLOURS[v], edgecolor="k", label=v) for v in _ORDER if v in present]
    areas = any(min(d.verdict.shape) > 1 for d in diagrams)
    if areas:
        handles.append(Patch(facecolor="white", edgecolor="k", hatch="///", label="3 fixed points"))
    from matplotlib.lines import Line2D
    if mark_paper_grid and areas:
        handles.append(Line2D([], [], marker="o", color="k", mfc="white", ls="", label="paper grid"))
    if any(True for _ in recommendations):
        handles.append(Line2D([], [], marker="*", color="k", mfc="gold", ms=11, ls="-", lw=2,
                              label="recommended m (bar: trainable band)"))
    # one row under two panels; under a single panel, rows of three so it is not cropped
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3 * len(diagrams)),
               fontsize=9)
    return fig


def _recommended(ax, recs):
    """Each recommendation at (m/sqrt(q*), s): a star, and a bar over the m of its band."""
    for r in recs:
        scale = math.sqrt(r.q_star)
        rows = sorted(r.scan, key=lambda row: row["v_prime"])
        lo, hi = r.band
        inside = [row["m"] / scale for row in rows if lo - 1e-9 <= row["v_prime"] <= hi + 1e-9]
        if len(inside) > 1:
            ax.plot([min(inside), max(inside)], [r.sparsity] * 2, "-", color="k", lw=2, zorder=3)
        ax.plot([r.m / scale], [r.sparsity], "*", color="k", mfc="gold", ms=12, zorder=4)


def _phase_line(ax, d):
    """A phase diagram of one row or column: V'(q*) along the axis that varies, each point
    coloured by its verdict (a grid of one s, or one clip ratio, has no area to colour)."""
    along_r = d.verdict.shape[1] > 1 or d.verdict.shape[0] == 1
    x = d.clip_ratios if along_r else d.sparsities
    v, verdict = d.v_prime.ravel(), d.verdict.ravel()
    ax.plot(x, v, "-", color="0.6", lw=1, zorder=1)
    ax.scatter(x, np.where(np.isfinite(v), v, 0.0), c=[VERDICT_COLOURS[w] for w in verdict], edgecolors="k",
               s=40, zorder=2)
    fixed = (f"$s$ = {d.sparsities[0]:g}" if along_r else rf"$m/\sqrt{{q^*}}$ = {d.clip_ratios[0]:g}")
    ax.set_xlabel(r"clip level $m/\sqrt{q^*}$" if along_r else "sparsity $s$")
    ax.set_ylabel(r"$V'(q^*)$ (infeasible points at 0)")
    ax.set_title(f"{_STYLE[d.activation]} on the EoC, depth {d.depth}, {fixed}")
    ax.grid(alpha=0.3)


def eoc_curve_figure(q_stars: np.ndarray | None = None) -> Figure:
    """The EoC curves (sigma_w^2(q*), sigma_b^2(q*)) for fixed activation parameters, with
    q* = 0.1, 1, 10 marked (left: log axes; right: linear zoom)."""
    q = np.geomspace(1e-2, 1e2, 400) if q_stars is None else np.asarray(q_stars, dtype=float)
    fig, axes = _figure(1, 2, 5.4, 4.4)
    curves = [("relu", {"tau": 0.0}), ("relu", {"tau": 0.5}), ("st", {"tau": 0.5}),
              ("crelu", {"tau": 0.5, "m": 1.0}), ("cst", {"tau": 0.5, "m": 1.0}),
              ("hard_tanh", {})]
    for k, (name, params) in enumerate(curves):
        w, b = eoc_curve(name, q, **params)
        label = {"hard_tanh": "hard tanh"}.get(name, _STYLE.get(name, name))
        label += "".join(f", {'$' + chr(92) + 'tau$' if p == 'tau' else '$m$'} = {v:g}" for p, v in params.items())
        if name == "relu" and not params["tau"]:
            label += " (one point for all $q^*$)"
        if name == "relu" and not params["tau"]:  # one point, (2, 0): on top of the curves
            axes[0, 1].plot(w[:1], b[:1], "*", color=f"C{k}", ms=16, mec="k", zorder=10, label=None)
            # sigma_b^2 = 0 has no place on the log axis: drawn on its lower edge, and said
            axes[0, 0].plot(w[:1], [1e-3], "*", color=f"C{k}", ms=16, mec="k", zorder=10, clip_on=False,
                            label=label)
            axes[0, 0].annotate(r"ReLU: $\sigma_b^2$ = 0 (below the axis)", (float(w[0]), 1e-3),
                                xytext=(8, 10), textcoords="offset points", fontsize=8)
            continue
        for ax in axes[0]:
            ax.plot(w, b, color=f"C{k}", lw=1.8, label=label if ax is axes[0, 0] else None)
            for qm, mk in ((0.1, "v"), (1.0, "s"), (10.0, "^")):
                wm, bm = eoc_curve(name, [qm], **params)
                ax.plot(wm, bm, mk, color=f"C{k}", ms=6, mec="k")
    for ax in axes[0]:
        ax.set_xlabel(r"weight variance $\sigma_w^2$")
        ax.set_ylabel(r"bias variance $\sigma_b^2$")
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(r"EoC: $\chi_1(q^*)=1$, $V(q^*)=q^*$, $q^*\in[10^{-2},10^2]$")
    axes[0, 0].set_xscale("log")
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylim(1e-3, 1e2)
    axes[0, 1].set_xlim(0.9, 8)
    axes[0, 1].set_ylim(-0.05, 2)
    axes[0, 1].set_title("zoom; markers at $q^*$ = 0.1 (down), 1 (square), 10 (up)")
    fig.legend(loc="outside lower center", ncol=3, fontsize=9)
    return fig


def _iterate_gap(u_grid, h_grid, depth):
    """1 - c^l from c^0 = 0 through ``depth`` layers. Near c = 1 the map of a kinked
    activation is 1 - rho(c) = (1 - c) h(u), u = sqrt(1 - c), with h smooth in u
    (h(0) = rho'(1)): interpolating h in u keeps the polynomial approach to 1 exact."""
    from scipy.interpolate import PchipInterpolator
    h = PchipInterpolator(u_grid, h_grid)
    gap = [1.0]
    for _ in range(depth):
        gap.append(gap[-1] * float(h(math.sqrt(gap[-1]))))
    return np.array(gap)


def correlation_maps_figure(points: int = 51, depth: int = 100) -> Figure:
    """rho(c) - c on [-1, 1] at q* = 1 (its zeros are the fixed points c*) and 1 - c^l
    through depth from uncorrelated inputs, for the ReLU baseline, ReLU_tau and clipped
    configurations."""
    fig, axes = _figure(1, 2, 5.4, 4.2)
    configs = [("relu", "0.5", None), ("relu", "0.8", None), ("crelu", "0.85", "0.5"),
               ("crelu", "0.85", "0.9"), ("cst", "0.8", "0.5"), ("cst", "0.8", "0.9")]
    u = np.linspace(0.0, math.sqrt(2.0), points)   # c = 1 - u^2: dense near c = 1
    u[-1] = math.sqrt(2.0)
    c = np.clip(1.0 - u ** 2, -1.0, 1.0)
    for k, (name, s, target) in enumerate(configs):
        sol = eoc_parameters(name, s, v_prime=target, digits=15)
        values = correlation_map(sol, [mpmath.mpf(float(v)) for v in c], digits=15)
        rho = np.array([float(v.rho) for v in values])
        h = np.empty_like(rho)
        h[0] = float(values[0].rho_prime)
        h[1:] = (1.0 - rho[1:]) / (1.0 - c[1:])
        label = ("ReLU ($\\tau$ = 0, $s$ = 0.5)" if (name, s) == ("relu", "0.5") else
                 f"{_STYLE[name]} $s$ = {s}" + (f", $V'$ = {target}" if target else ""))
        axes[0, 0].plot(c, rho - c, color=f"C{k}", lw=1.6, label=label)
        gap = _iterate_gap(u, h, depth)
        axes[0, 1].plot(np.arange(depth + 1)[1:], gap[1:], color=f"C{k}", lw=1.6, label=label)
    axes[0, 0].axhline(0, color="0.4", lw=1, ls="--")
    axes[0, 0].set_xlabel("input correlation $c$")
    axes[0, 0].set_ylabel(r"$\rho(c) - c$")
    axes[0, 0].set_title(r"correlation map at $q^*$ = 1 (zeros: fixed points $c^*$)")
    axes[0, 1].set_xlabel("layer $l$")
    axes[0, 1].set_ylabel(r"$1 - c^l$, where $c^{l+1}=\rho(c^l)$, $c^0=0$")
    axes[0, 1].set_xscale("log")
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_title("uncorrelated inputs through depth")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize=8, loc="lower left")
    return fig


#: Figure names for :func:`figure` and ``meanfield plot NAME``.
FIGURES = {
    "activations": activations_figure,
    "variance-maps": variance_maps_figure,
    "v-derivatives": v_derivatives_figure,
    "phase-diagram": phase_diagram_figure,
    "eoc-curve": eoc_curve_figure,
    "correlation-maps": correlation_maps_figure,
}


def figure(name: str, **kwargs) -> Figure:
    """The figure called ``name`` (a key of :data:`FIGURES`)."""
    if name not in FIGURES:
        raise ParameterError(f"figure {name!r} unknown: choose from {', '.join(FIGURES)}")
    return FIGURES[name](**kwargs)


def save_figure(fig: Figure, stem, formats: Sequence[str] = ("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` to ``stem.png``, ``stem.pdf`` (…); returns the paths written."""
    paths = []
    for fmt in formats:
        if fmt not in ("png", "pdf", "svg"):
            raise ParameterError(f"figure format {fmt!r} unknown: choose from png, pdf, svg")
        path = Path(f"{stem}.{fmt}")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_figure(fig, path, dpi=dpi)
        paths.append(path)
    return paths
