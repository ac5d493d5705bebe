r"""Wide random networks layer by layer, next to what the theory predicts of them.

For each seed a network of width :math:`N` and depth :math:`L` is drawn from the
initialisation (:meth:`meanfield.nn.MLP.initialise`: :math:`W^l_{ij}\sim N(0,\sigma_w^2/N)`,
:math:`b^l_j\sim N(0,\sigma_b^2)`, the first layer scaled so that its pre-activation
variance is :math:`q^1`) and fed :math:`K` inputs on a great circle,
:math:`x_k=\sqrt{d\,\overline{x^2}}\,(\cos\theta_k u+\sin\theta_k v)`,
:math:`\theta_k=\pi k/K`, so that the pairs :math:`(k, k+d)` share the input correlation
:math:`\cos(\pi d/K)`. Per hidden layer it records

- :math:`q^l=\frac1{NK}\sum_{k,j}(h^l_{kj})^2`, against the variance map
  :math:`q^{l+1}=V(q^l)` (Poole et al. 2016, eq. 3);
- the realised sparsity, the fraction of units with :math:`\phi(h)=0`, against
  :math:`P(\phi(\sqrt{q^l}z)=0)` (Price et al. 2024, section 3);
- the correlation :math:`c^l` of each input pair, averaged over the pairs of one input
  correlation, against the kernel map iterated from :math:`(q^1,q^1,q^1c^1)`
  (:func:`meanfield.correlation.kernel_map`; Poole et al. 2016, eq. 5);
- the Jacobian :math:`\partial h^L/\partial h^1=\prod_{l=1}^{L-1}D^lW^l` of the first
  input, the mean and variance of its squared singular values, against
  :func:`jacobian_theory` along the theory's :math:`q^l` (at :math:`q^l=q^*`, this is
  :func:`meanfield.jacobian.jacobian_spectrum` at depth :math:`L-1`; Pennington et al.
  2018);
- whether the seed runs away: :math:`q^L>10\,q^*`.

**The finite-width prediction of running away** is
:func:`meanfield.finite_width.finite_width_model` (the chain of :math:`Q^l` with the
width's fluctuations; its module docstring derives it): the fraction of networks that
run away and the spread of :math:`q^l`, without drawing a single weight matrix. The
simulation here checks it.

Seeds run through :func:`meanfield._jobs.run_tasks` (joblib workers, a progress bar,
and a journal from which an interrupted run resumes).

>>> import meanfield as mf
>>> sol = mf.eoc_parameters("cst", sparsity="0.8", v_prime="0.7", digits=15)
>>> sim = simulate(sol, width=200, depth=5, inputs=3, seeds=3, progress=False)
>>> sim.q.shape, sim.c.shape, sim.c0.round(3).tolist()
((3, 5), (3, 5, 2), [0.5, -0.5])
>>> bool(abs(sim.theory.q - 1).max() < 1e-12)      # on the EoC every layer is at q* = 1
True
>>> sim.runaway_fraction, sim.theory.runaway_probability
(0.0, 0.0)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import mpmath
import numpy as np

from .. import validation
from .._files import json_safe
from .._jobs import run_tasks
from ..correlation import kernel_map
from .._display import Displayed
from ..errors import ParameterError
from ..jacobian import power_mean as power_mean_mp
from ..finite_width import FROZEN, RUNAWAY_FACTOR, finite_width_model
from ..maps import FLOAT64_Q_RANGE, Initialisation, map_values, operating_point
from ..symbolic import dirac_part
from .mlp import MLP, check_backend, check_dtype

__all__ = ["Simulation", "Theory", "simulate", "theory_trajectory", "finite_width_model",
           "simulation_figure", "jacobian_theory", "RUNAWAY_FACTOR"]

#: Largest width^2 depth of one simulated network.
MAX_WEIGHTS = 5 * 10**8
_DIGITS = 20  # working digits of the infinite-width maps (they are compared to float64 data)


@dataclass(frozen=True)
class Theory:
    """What the theory predicts, per hidden layer ``l = 1..depth`` (float64 arrays).

    ``q``, ``sparsity``: the infinite-width maps from ``q_first``; ``c``: (depth, pairs),
    the kernel map from the input correlations (None if not computed); ``kind``: the kind
    of q* as a fixed point of V; ``jacobian_mean``/``jacobian_variance``: the spectrum of the
    depth-(L-1) Jacobian along ``q`` (:func:`jacobian_theory`; None if phi has jumps);
    ``runaway_probability`` (with its Monte Carlo standard error ``runaway_se``) and
    ``q_band`` (the 10/50/90% quantiles of q^l, shape (3, depth)): the finite-width model
    of :func:`finite_width_model` at the simulated width."""

    q: np.ndarray
    sparsity: np.ndarray
    c: np.ndarray | None
    kind: str
    jacobian_mean: float | None
    jacobian_variance: float | None
    runaway_probability: float
    runaway_se: float
    q_band: np.ndarray
    paths: int


@dataclass(frozen=True, repr=False)
class Simulation(Displayed):
    """Per-seed measurements (float64 arrays; seeds along the first axis) and the theory.

    ``q``, ``sparsity``: (seeds, depth); ``c``: (seeds, depth, pairs) for the input
    correlations ``c0``; ``jacobian_mean``/``jacobian_variance``: (seeds,) or None.
    A layer whose pre-activations overflowed has q = inf and c = nan."""

    activation: str
    params: dict
    sigma_w2: float
    sigma_b2: float
    q_star: float
    q_first: float
    width: int
    depth: int
    inputs: int
    seeds: tuple
    dtype: str
    backend: str
    c0: np.ndarray
    q: np.ndarray
    sparsity: np.ndarray
    c: np.ndarray
    jacobian_mean: np.ndarray | None
    jacobian_variance: np.ndarray | None
    theory: Theory = field(repr=False)

    @property
    def layers(self) -> np.ndarray:
        return np.arange(1, self.depth + 1)

    @property
    def runaway(self) -> np.ndarray:
        """Per seed: q^L > RUNAWAY_FACTOR q* (or overflowed)."""
        return ~(self.q[:, -1] <= RUNAWAY_FACTOR * self.q_star)

    def _headline(self):
        return [("activation", self.activation), ("width", self.width), ("depth", self.depth),
                ("networks", len(self.seeds)), ("q_star", self.q_star), ("kind", self.theory.kind),
                ("runaway", f"{int(self.runaway.sum())} of {len(self.seeds)}"),
                ("runaway_model", self.theory.runaway_probability)]

    def _tidy_rows(self):
        """One row per layer: the mean over networks, its standard error and the theory
        of q, the sparsity and the correlation of the first input pair."""
        qm, qs = self.mean_and_se("q")
        sm, ss = self.mean_and_se("sparsity")
        cm, cs = self.mean_and_se("c") if self.c.shape[-1] else (None, None)
        rows = []
        for l in range(self.depth):
            row = {"layer": l + 1, "q": qm[l], "q_se": qs[l], "q_median": float(np.median(self.q[:, l])),
                   "q_theory": self.theory.q[l], "sparsity": sm[l], "sparsity_se": ss[l],
                   "sparsity_theory": self.theory.sparsity[l]}
            if cm is not None:
                row.update(c0=float(self.c0[0]), c=cm[l, 0], c_se=cs[l, 0],
                           c_theory=None if self.theory.c is None else self.theory.c[l, 0])
            rows.append(row)
        return rows

    @property
    def runaway_fraction(self) -> float:
        return float(np.mean(self.runaway))

    def mean_and_se(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean over seeds and its standard error (std / sqrt(seeds); nan for one seed) of
        ``q``, ``sparsity`` or ``c``. For ``c``, over the seeds where it is defined (nan
        where it is in none: see :attr:`undefined_correlations`)."""
        data = getattr(self, name)
        if name == "c":
            n = np.isfinite(data).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(n > 0, np.nansum(data, axis=0) / np.maximum(n, 1), np.nan)
                dev = np.where(np.isfinite(data), data - mean, 0.0)
                se = np.where(n > 1, np.sqrt((dev * dev).sum(axis=0) / np.maximum(n - 1, 1) / np.maximum(n, 1)),
                              np.nan)
            return mean, se
        with np.errstate(invalid="ignore"):
            mean = data.mean(axis=0)
            se = (data.std(axis=0, ddof=1) / math.sqrt(len(self.seeds)) if len(self.seeds) > 1
                  else np.full_like(mean, np.nan))
        return mean, se

    @property
    def undefined_correlations(self) -> int:
        """How many (network, layer, input correlation) entries of ``c`` are undefined (nan):
        every pair of that input correlation had an input whose pre-activations were all zero
        or overflowed."""
        return int(np.sum(~np.isfinite(self.c)))

    def z_scores(self, name: str) -> np.ndarray:
        """(mean - theory) / standard error per layer (and pair, for ``c``)."""
        mean, se = self.mean_and_se(name)
        theory = getattr(self.theory, name)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (mean - theory) / se

    def summary(self) -> dict:
        """Everything as JSON-able data (non-finite numbers as None)."""
        out = {"activation": self.activation, "params": self.params, "sigma_w2": self.sigma_w2,
               "sigma_b2": self.sigma_b2, "q_star": self.q_star, "q_first": self.q_first,
               "width": self.width, "depth": self.depth, "inputs": self.inputs,
               "seeds": list(self.seeds), "dtype": self.dtype, "backend": self.backend,
               "c0": self.c0, "runaway_factor": RUNAWAY_FACTOR,
               "runaway": self.runaway, "runaway_fraction": self.runaway_fraction}
        layers = {"layer": self.layers}
        for name in ("q", "sparsity", "c"):
            mean, se = self.mean_and_se(name)
            layers[name] = {"mean": mean, "se": se, "theory": getattr(self.theory, name),
                            "per_seed": getattr(self, name)}
        out["layers"] = layers
        out["jacobian"] = None if self.jacobian_mean is None else {
            "depth": self.depth - 1, "mean_per_seed": self.jacobian_mean,
            "variance_per_seed": self.jacobian_variance,
            "theory_mean": self.theory.jacobian_mean, "theory_variance": self.theory.jacobian_variance}
        t = self.theory
        out["theory"] = {"kind": t.kind, "runaway_probability": t.runaway_probability,
                         "runaway_se": t.runaway_se, "paths": t.paths,
                         "q_band": dict(zip(("q10", "q50", "q90"), t.q_band))}
        return json_safe(out)

    def to_json(self) -> str:
        return json.dumps(self.summary(), indent=1, allow_nan=False) + "\n"

    def figure(self):
        return simulation_figure(self)


# -- the theory ------------------------------------------------------------------------
def theory_trajectory(init: Initialisation, q_first, depth: int, c0=(), *, correlations=True):
    """Infinite width: (q, sparsity, c) per hidden layer 1..depth from q^1 = ``q_first`` and
    first-layer correlations ``c0`` (float64 arrays; c is (depth, len(c0)) or None)."""
    q = np.full(depth, np.inf)  # layers past the supported range (q > 1e30) run away: inf
    s = np.full(depth, np.nan)  # and have no sparsity computed
    qv = mpmath.mpf(q_first)
    reached = 0
    for l in range(depth):
        if qv > FLOAT64_Q_RANGE[1]:
            break
        v = map_values(init, qv, digits=_DIGITS)
        q[l], s[l] = float(qv), float(v.sparsity)
        qv, reached = v.variance, l + 1
    if not correlations or len(c0) == 0:
        return q, s, None
    c = np.full((depth, len(c0)), np.nan)
    for p, c1 in enumerate(c0):
        q12 = mpmath.mpf(float(c1)) * q[0]
        for l in range(reached):
            c[l, p] = float(q12) / q[l]
            if l + 1 < reached:
                q12 = kernel_map(init, q[l], q[l], _clamp(q12, q[l]), digits=10).q12_next
    return q, s, c


def _clamp(q12, q):
    return max(min(q12, mpmath.mpf(q)), -mpmath.mpf(q))  # |c| <= 1 after rounding


def jacobian_theory(init: Initialisation, qs) -> tuple[float, float]:
    r"""Mean and variance of the squared singular values of :math:`\prod_l D^lW^l` with
    layer l at variance ``qs[l]``: the free factors' means multiply and their relative
    variances :math:`\mu_2/\mu_1^2` add (Pennington et al. 2018), which at ``qs = q*``
    is :func:`meanfield.jacobian.jacobian_spectrum`."""
    act = init.activation
    with mpmath.workdps(_DIGITS):
        params = [mpmath.mpf(v) for _, v in init.params]
        sw2 = mpmath.mpf(init.sigma_w2)
        log_mean, rel = mpmath.mpf(0), mpmath.mpf(0)
        for qv in qs:
            mu1, mu2 = (power_mean_mp(act, k)(mpmath.mpf(float(qv)), *params) for k in (2, 4))
            if not mu1 > 0:
                return 0.0, 0.0
            log_mean += mpmath.log(sw2 * mu1)
            rel += mu2 / mu1**2
        mean = mpmath.exp(log_mean)
        return float(mean), float(mean**2 * rel)


# -- one seed --------------------------------------------------------------------------
def _circle_inputs(k: int, dim: int, mean_square: float, rng) -> np.ndarray:
    basis, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    theta = np.pi * np.arange(k) / k
    return math.sqrt(dim * mean_square) * (np.outer(np.cos(theta), basis[:, 0])
                                           + np.outer(np.sin(theta), basis[:, 1]))


def _one_seed(init, q_star, q_first, width, depth, inputs, dtype, backend, jacobian, seed):
    net = MLP.initialise(init, width=width, depth=depth, input_dim=width, q_star=q_star,
                         dtype=dtype, seed=seed)
    mean_square = (q_first - net.sigma_b2) / net.first_sigma_w2
    x = _circle_inputs(inputs, width, mean_square, np.random.default_rng([seed, 1]))
    _, trace = net.trace(x, backend=backend, finite=False)  # a runaway network may overflow
    pre = np.stack(trace.pre).astype(np.float64)           # (depth, inputs, width)
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.mean(pre * pre, axis=(1, 2))
        q[~np.isfinite(q)] = np.inf
        sparsity = np.mean(np.stack(trace.post) == 0, axis=(1, 2))
        gram = np.einsum("lkn,ljn->lkj", pre, pre)
        norm = np.sqrt(np.einsum("lkk->lk", gram))
        corr = gram / (norm[:, :, None] * norm[:, None, :])
        c = np.array([[_defined_mean(np.diagonal(corr[l], d)) for d in range(1, inputs)]
                      for l in range(depth)]).reshape(depth, inputs - 1)
        jm = jv = None
        if jacobian:
            jm, jv = _jacobian_moments(net, pre[:, 0, :])
    return {"q": q.tolist(), "sparsity": sparsity.tolist(), "c": c.tolist(),
            "jacobian": None if jm is None else [jm, jv]}


def _defined_mean(values: np.ndarray) -> float:
    """The mean of the finite values (a pair's correlation is undefined, nan, when one
    input's pre-activations are all zero, every unit of the layer below inactive, which a
    narrow network meets, or overflowed); nan when none is."""
    finite = values[np.isfinite(values)]
    return float(np.mean(finite)) if finite.size else math.nan


def _jacobian_moments(net: MLP, h: np.ndarray):
    """Mean and variance of the squared singular values of prod_{l=1}^{L-1} D^l W^l."""
    table = net.table()
    n = h.shape[1]
    m = np.eye(n)
    for l in range(1, net.depth):
        d = table.dphi(h[l - 1].astype(net.dtype)).astype(np.float64)
        m = (m * d[None, :]) @ net.weights[l].astype(np.float64)
    s1 = float(np.sum(m * m)) / n
    s2 = float(np.sum(np.square(m @ m.T))) / n
    return s1, max(s2 - s1 * s1, 0.0)


# -- the simulation --------------------------------------------------------------------
def simulate(init, *, width: int, depth: int, inputs: int = 4, seeds: int = 10,
             first_seed: int = 0, q_star=None, q_first=None, dtype="float64",
             backend: str = "auto", jacobian: bool = True, correlations: bool = True,
             paths: int = 20000, jobs=None, progress: bool | None = None,
             journal=None) -> Simulation:
    """Simulate ``seeds`` networks (seeds ``first_seed, first_seed + 1, ...``) of ``width``
    and ``depth`` on ``inputs`` inputs, next to the theory (module docstring).

    ``init``: an EoCSolution or an Initialisation with ``q_star`` (a fixed point of V);
    ``q_first``: the first layer's pre-activation variance (default q*); ``jacobian``,
    ``correlations``: skip those (the Jacobian costs depth N^3 flops per seed); ``paths``:
    of the finite-width model; ``jobs``, ``progress``, ``journal``: as for
    :func:`meanfield.stability_table` (a journal makes the run resumable seed by seed).
    """
    init, q_star = operating_point(init, q_star, digits=_DIGITS, required=True)
    q_star_f = validation.positive("q_star", q_star)
    # q* must be a fixed point: the theory's layers sit at it
    v_star = float(map_values(init, q_star, digits=_DIGITS).variance)
    if not abs(v_star - q_star_f) <= 1e-9 * q_star_f:
        raise ParameterError(f"q_star = {q_star} is not a fixed point of V (V(q_star) = {v_star:.10g})")
    width = validation.integer("width", width, 2, 100_000)
    depth = validation.integer("depth", depth, 1, 10_000)
    inputs = validation.integer("inputs", inputs, 1, 64)
    seeds = validation.integer("seeds", seeds, 1, 100_000)
    first_seed = validation.integer("first_seed", first_seed, 0, 2**62)
    paths = validation.integer("paths", paths, 1, 10**7)
    if width**2 * depth > MAX_WEIGHTS:
        raise ParameterError(f"width^2 depth = {width**2 * depth} is too large: at most {MAX_WEIGHTS:.0e} "
                             "weights (4 GB in float64)")
    if not isinstance(jacobian, bool) or not isinstance(correlations, bool):
        raise ParameterError("jacobian and correlations must be True or False")
    q_first_f = q_star_f if q_first is None else validation.positive("q_first", q_first)
    if not q_first_f > float(init.sigma_b2):
        raise ParameterError(f"q_first = {q_first_f} must exceed sigma_b2 = {float(init.sigma_b2)} "
                             "(the bias alone gives that variance)")
    dtype = str(check_dtype(dtype))
    backend = check_backend(backend)
    if jacobian and dirac_part(init.activation, 1):
        jacobian = False  # phi has jumps: the Jacobian's moments are infinite

    seed_list = tuple(range(first_seed, first_seed + seeds))
    job = {"simulate": 1, "activation": init.activation.name,
           "params": {k: str(v) for k, v in init.params}, "sigma_w2": str(init.sigma_w2),
           "sigma_b2": str(init.sigma_b2), "q_star": str(q_star), "q_first": q_first_f,
           "width": width, "depth": depth, "inputs": inputs, "dtype": dtype,
           "jacobian": jacobian}
    tasks = [(str(s), (init, q_star_f, q_first_f, width, depth, inputs, dtype, backend, jacobian, s))
             for s in seed_list]
    results = run_tasks(_one_seed, tasks, job=job, jobs=jobs, progress=progress,
                        journal=journal, desc="seeds")
    rows = [results[str(s)] for s in seed_list]
    q = np.array([r["q"] for r in rows], dtype=float)
    sparsity = np.array([r["sparsity"] for r in rows], dtype=float)
    c = np.array([r["c"] for r in rows], dtype=float).reshape(seeds, depth, inputs - 1)
    jac = np.array([r["jacobian"] for r in rows], dtype=float) if jacobian else None

    c0 = np.cos(np.pi * np.arange(1, inputs) / inputs)
    c0[np.abs(c0) < 1e-15] = 0.0  # cos(pi/2)
    c1 = ((q_first_f - float(init.sigma_b2)) * c0 + float(init.sigma_b2)) / q_first_f
    tq, ts, tc = theory_trajectory(init, q_first_f, depth, c1, correlations=correlations)
    if tc is None:
        tc = np.full((depth, inputs - 1), np.nan)
    kind = _kind(init, q_star)
    jm = jv = None
    if jacobian and depth > 1:
        jm, jv = jacobian_theory(init, tq[:-1])
    p, p_se, band = finite_width_model(init, q_first_f, width=width, depth=depth,
                                       q_star=q_star_f, paths=paths, seed=first_seed)
    theory = Theory(tq, ts, tc, kind, jm, jv, p, p_se, band, paths)
    return Simulation(init.activation.name, {k: float(v) for k, v in init.params},
                      float(init.sigma_w2), float(init.sigma_b2), q_star_f, q_first_f, width,
                      depth, inputs, seed_list, dtype, backend, c0, q, sparsity, c,
                      None if jac is None else jac[:, 0], None if jac is None else jac[:, 1],
                      theory)


def _kind(init, q_star) -> str:
    from ..fixed_points import fixed_points
    report = fixed_points(init, digits=_DIGITS)
    if report.degenerate:
        return "every q is fixed"
    if not report.points:
        return "not found"
    near = min(report.points, key=lambda p: abs(p.q - mpmath.mpf(q_star)))
    return near.kind


# -- the figure ------------------------------------------------------------------------
def simulation_figure(sim: Simulation):
    """q^l, sparsity and c^l through depth (mean +- 1 and 3 standard errors over seeds,
    thin lines per seed) against the theory, and the Jacobian's spectrum per seed."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    jac = sim.jacobian_mean is not None
    fig = Figure(figsize=(11, 8.6), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    layers = sim.layers
    name = f"{sim.activation} ({', '.join(f'{k} = {v:.4g}' for k, v in sim.params.items())})"
    runaway = (f"run away ($q^L > {RUNAWAY_FACTOR}\\,q^*$): {int(sim.runaway.sum())} of {len(sim.seeds)} networks; "
               f"finite-width theory {sim.theory.runaway_probability:.2f}")
    fig.suptitle(f"{name}, width {sim.width}, depth {sim.depth}, {len(sim.seeds)} networks, "
                 f"$q^*$ = {sim.q_star:.4g} ({sim.theory.kind})\n{runaway}", fontsize=10)

    ax = axes[0]
    finite = np.where(np.isfinite(sim.q), sim.q, np.nan)
    for row in finite:
        ax.plot(layers, row, color="0.75", lw=0.6)
    mean, se = sim.mean_and_se("q")
    log = bool(np.nanmax(finite, initial=0) > 20 * np.nanmin(finite[finite > 0], initial=np.inf))
    if log:  # runaway seeds: the median shows the typical seed, a band of +-se is not positive
        ax.plot(layers, np.nanmedian(finite, axis=0), color="C0", lw=1.5, label="simulation, median")
    else:
        _band(ax, layers, mean, se, "C0", "simulation, mean")
    # the model's paths stop at the level where they have run away for good: not drawn
    frozen = 0.5 * FROZEN * RUNAWAY_FACTOR * sim.q_star
    band = np.where(sim.theory.q_band < frozen, sim.theory.q_band, np.nan)
    cut = " (each until its paths have run away)" if np.isnan(band).any() else ""
    ax.fill_between(layers, band[0], band[2], color="C1", alpha=0.2,
                    label="finite-width theory, 10-90%" + cut)
    ax.plot(layers, band[1], color="C1", lw=1, label="finite-width theory, median")
    ax.plot(layers, sim.theory.q, color="k", lw=1.5, ls="--", label="mean-field theory V(q)")
    ax.plot([], [], color="0.75", lw=0.6, label="one seed")
    if log:
        ax.set_yscale("log")
    ax.set(xlabel="layer l", ylabel="$q^l$ (mean square pre-activation)", title="variance")
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)

    ax = axes[1]
    mean, se = sim.mean_and_se("sparsity")
    _band(ax, layers, mean, se, "C0", "simulation")
    ax.plot(layers, sim.theory.sparsity, color="k", ls="--", lw=1.5, label="theory $P(\\phi=0)$")
    ax.set(xlabel="layer l", ylabel="fraction of units with $\\phi(h)=0$", title="realised sparsity")
    ax.legend(fontsize=8)

    ax = axes[2]
    mean, se = sim.mean_and_se("c")
    for p, c0 in enumerate(sim.c0):
        _band(ax, layers, mean[:, p], se[:, p], f"C{p % 10}", f"$c^0$ = {c0:.2f}", ("-", "--", "-.", ":")[p % 4])
        if np.all(np.isfinite(sim.theory.c[:, p])):
            ax.plot(layers, sim.theory.c[:, p], color="k", ls="--", lw=1)
    ax.plot([], [], color="k", ls="--", lw=1, label="kernel map")
    ax.set(xlabel="layer l", ylabel="$c^l$", title="correlation of input pairs")
    if len(sim.c0):
        ax.legend(fontsize=8)

    ax = axes[3]
    if not jac:
        ax.set_axis_off()
    else:
        seeds = np.arange(len(sim.seeds))
        values = [sim.jacobian_mean, sim.jacobian_variance]
        theory = [sim.theory.jacobian_mean, sim.theory.jacobian_variance]
        # the axis spans the theory and the medians, 10^6 either side; a runaway network's
        # moments (up to 10^65) are drawn on its edge as triangles
        centre = [v for v in (*theory, *(np.median(x) for x in values)) if v is not None and v > 0]
        lo, hi = (min(centre) / 1e6, max(centre) * 1e6) if centre else (1e-6, 1e6)
        for x, t, colour, marker, what in zip(values, theory, ("C0", "C3"), ("o", "s"), ("mean", "variance")):
            inside = (x >= lo) & (x <= hi)
            ax.scatter(seeds[inside], x[inside], color=colour, s=14, marker=marker, label=f"{what}, per network")
            for edge, where, arrow in ((x > hi, hi, "^"), (x < lo, lo, "v")):
                if edge.any():
                    ax.scatter(seeds[edge], np.full(edge.sum(), where), color=colour, s=30, marker=arrow,
                               clip_on=False, label=f"{what} beyond the axis")
            ax.axhline(np.median(x), color=colour, ls=":", lw=1.2, label=f"{what}, median over networks")
            if t is not None:
                ax.axhline(t, color=colour, ls="--", label=f"theory {what}")
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="network (seed)", ylabel="moments of the squared singular values",
               title=f"Jacobian $\\partial h^L/\\partial h^1$, depth {sim.depth} ({sim.depth - 1} layer maps)")
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    return fig


def _band(ax, x, mean, se, colour, label, ls="-"):
    # the line above every band (zorder): curves that meet stay visible, each in its own style
    ax.plot(x, mean, color=colour, lw=1.5, ls=ls, zorder=3, label=label + " (bands: 1 and 3 s.e.)")
    finite = np.isfinite(se)
    if finite.any():
        ax.fill_between(x, mean - 3 * se, mean + 3 * se, where=finite, color=colour, alpha=0.12, lw=0)
        ax.fill_between(x, mean - se, mean + se, where=finite, color=colour, alpha=0.25, lw=0)
