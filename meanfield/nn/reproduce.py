r"""The MNIST experiment of Price et al. (ICLR 2024), reproduced with a stated protocol.

Fully connected networks of depth L (100, and 30) and width 300, initialised on the edge
of chaos with q* = 1 for a target sparsity s, trained on MNIST (:mod:`meanfield.nn.train`,
protocol :data:`~meanfield.nn.train.PROTOCOL`), five seeds per configuration. The paper's
grid (:func:`grid`):

- ReLU (tau = 0, s = 0.5): the baseline;
- ReLU_tau and ST_tau at s in {0.6, 0.7, 0.8, 0.85}: on the EoC q* is half-stable
  (V'(q) = chi_1(q) for every q), and the theory predicts that deep networks run away;
- CReLU and CST at the same s with m chosen so that V'(q*) in {0.5, 0.7, 0.9}: q* is
  stable; too large m (V' = 0.9) can add fixed points, too sparse trains badly.

``grid="minimum"`` is the subset the issue asks to commit first: the baseline, the
unclipped pair at s = 0.7 and 0.85, and the clipped pair at s = 0.7 and 0.85 with all
three V' targets. Runs go through :func:`meanfield._jobs.run_tasks` (joblib; a
``joblib.parallel_config(backend="dask")`` block moves them to a dask cluster), each
finished run is appended to a journal at once, and a rerun skips what the journal holds;
each run also checkpoints every epoch in its own directory, so an interrupted run resumes
from its last epoch. The process training a run holds its directory locked
(:func:`meanfield.nn.train.in_use`): another process reaching that run stops with
:class:`~meanfield.errors.InUseError` naming it, instead of mixing checkpoints
(``scripts/mnist_studies.py`` checks first and skips such runs, so that its drivers can
share a study). Processes sharing the journal append to it in turns.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .._files import atomic_write, locked, write_figure
from ..errors import ParameterError
from .train import TrainConfig, TrainResult, diagnosis, selected_epoch, train

__all__ = ["grid", "configs", "STUDIES", "Study", "study_configs", "default_runs_dir", "run_key", "run_grid", "locked_journal", "summary", "table_markdown", "table_csv", "learning_curves",
           "learning_curves_csv", "study_summary", "study_markdown", "study_csv", "study_note", "welch_interval",
           "prediction_correlation", "mean_accuracy", "run_accuracy", "PREDICTED_RANK",
           "THRESHOLDS", "write_results", "stored_results", "protocol_tag", "PARTS", "part", "part_of_row",
           "configuration_key", "GRIDS"]

GRIDS = ("minimum", "full", "key", "sgd")
SPARSITIES = (0.6, 0.7, 0.8, 0.85)
V_PRIMES = (0.5, 0.7, 0.9)


def grid(name: str = "minimum") -> list[dict]:
    """The configurations (activation, sparsity, v_prime) of a grid, the most telling first
    (the baseline, then s = 0.85, then smaller s), so that a partial run says the most.
    ``key``: the configurations that decide the paper's claims at s = 0.85 (the baseline;
    CReLU and CST with V'(q*) = 0.5 and 0.7; CReLU with V' = 0.9, failure mode 1);
    ``sgd``: the baseline and the best clipped configuration at s = 0.85, chosen on the
    validation accuracy of the long study at each run's best validation epoch (CST,
    V' = 0.7; see docs/mnist.md)."""
    if name not in GRIDS:
        raise ParameterError(f"grid = {name!r} is not valid: choose from {GRIDS}")
    base = dict(activation="relu", sparsity=0.5, v_prime=None)
    if name == "key":
        return [base] + [dict(activation=a, sparsity=0.85, v_prime=v)
                         for a, v in (("crelu", 0.7), ("cst", 0.7), ("crelu", 0.5), ("cst", 0.5), ("crelu", 0.9))]
    if name == "sgd":
        return [base, dict(activation="cst", sparsity=0.85, v_prime=0.7)]
    s_values = (0.85, 0.7) if name == "minimum" else (0.85, 0.8, 0.7, 0.6)
    out = [base]
    for s in s_values:
        # the unclipped pair first (runs that blow up are short), then V' = 0.7, the
        # middle target, for both clipped activations, then the extremes
        out += [dict(activation=act, sparsity=s, v_prime=None) for act in ("relu", "st")]
        out += [dict(activation=act, sparsity=s, v_prime=v) for v in (0.7, 0.9, 0.5) for act in ("crelu", "cst")]
    return out


PARTS = ("baseline", "relu_tau", "st_tau", "crelu", "cst")


def part(c) -> str:
    """Which part of the grid a configuration is: one of :data:`PARTS`."""
    if c.activation == "relu":
        return "baseline" if c.sparsity == 0.5 else "relu_tau"
    return {"st": "st_tau"}.get(c.activation, c.activation)


def configs(name="minimum", *, seeds=5, first_seed=0, **protocol) -> list[TrainConfig]:
    """One :class:`TrainConfig` per configuration of :func:`grid` and seed, seed by seed
    (every configuration's first seed, then every second one, ...: a study cut short has
    the same seeds of each); ``protocol`` overrides the protocol, TrainConfig's defaults
    (depth, width, epochs, learning_rate, ...)."""
    if not (isinstance(seeds, int) and not isinstance(seeds, bool) and 1 <= seeds <= 1000):
        raise ParameterError(f"seeds = {seeds!r} is out of range: must be an integer in [1, 1000]")
    return [TrainConfig(**{**protocol, **c, "seed": first_seed + k}) for k in range(seeds) for c in grid(name)]


@dataclass(frozen=True)
class Study:
    """A training study: a grid, seeds, and what its protocol changes of
    :data:`~meanfield.nn.train.PROTOCOL`; its results go to ``results/mnist-NAME`` (:data:`STUDIES`)."""

    grid: str
    seeds: int
    protocol: dict
    about: str


#: The studies that settle the paper's claims (docs/mnist.md). Every choice a study makes
#: (when a run stops) is made on the validation split: the last 10000 training images.
STUDIES = {
    "long": Study("key", 3, dict(validation=10_000, stop="best", epochs=200),
                  "the key configurations at depth 100, each trained until its best validation accuracy "
                  "stops rising (at most 200 epochs)"),
    "depth30": Study("minimum", 5, dict(depth=30, validation=10_000, stop="best", epochs=200),
                     "the minimum grid at depth 30, each run until its best validation accuracy stops rising"),
    "sgd": Study("sgd", 1, dict(optimizer="sgd", momentum=0.0, learning_rate=1e-4, validation=10_000, epochs=200),
                 "the protocol the paper is reported to have used: plain SGD, learning rate 1e-4, 200 epochs"),
}


def study_configs(name: str, *, seeds=None, first_seed=0, **run) -> list[TrainConfig]:
    """The configurations of the study ``name`` (:data:`STUDIES`), seed by seed; ``run``:
    how to run them (dtype, backend), not what they are."""
    if name not in STUDIES:
        raise ParameterError(f"study = {name!r} is not valid: choose from {', '.join(STUDIES)}")
    st = STUDIES[name]
    return configs(st.grid, seeds=st.seeds if seeds is None else seeds, first_seed=first_seed,
                   **st.protocol, **run)


def default_runs_dir(output_dir) -> Path:
    """Where the runs of a reproduction written to ``output_dir`` keep their checkpoints:
    ``runs/NAME`` in the user cache (:func:`meanfield.datasets.mnist.cache_dir`), outside
    any work tree, so that they outlive a checkout and are never committed."""
    from ..datasets.mnist import cache_dir
    return cache_dir() / "runs" / Path(output_dir).resolve().name


_PER_RUN = ("activation", "sparsity", "clip", "v_prime", "seed")


def protocol_tag(c: TrainConfig) -> str:
    """What of ``c``'s protocol differs from the protocol (TrainConfig's defaults), e.g.
    ``"depth30"`` or ``"depth30-epochs5"``; "" for the protocol itself."""
    ref = TrainConfig(**{k: getattr(c, k) for k in _PER_RUN}).to_dict()
    mine = c.to_dict()
    return "-".join(f"{k}{mine[k]}".replace(" ", "").replace("_", "") for k in mine
                    if k not in _PER_RUN and mine[k] != ref[k])


def run_key(c: TrainConfig) -> str:
    """The run's name in a journal and its checkpoint directory: its configuration, seed and
    whatever of its protocol differs from :data:`~meanfield.nn.train.PROTOCOL`."""
    v = "" if c.v_prime is None else f"-v{c.v_prime!r}"
    m = "" if c.clip is None else f"-m{c.clip!r}"
    tag = protocol_tag(c)  # runs of other protocols never share a checkpoint directory
    return f"{c.activation}-s{c.sparsity!r}{v}{m}-seed{c.seed}" + (f"-{tag}" if tag else "")


def _run_one(config_dict: dict, data_path, verify: bool, runs_dir, progress):
    """One run, in a worker: loads the data itself (a cluster worker gets paths, not 55 MB)."""
    from ..datasets import mnist
    config = TrainConfig.from_dict(config_dict)
    data = mnist.load(data_path, verify=verify)
    directory = None if runs_dir is None else Path(runs_dir) / run_key(config)
    return train(config, data, directory=directory, resume=True, progress=progress).to_dict()


def run_grid(configs_: list[TrainConfig], *, data=None, verify=True, journal=None, runs_dir=None,
             jobs=None, progress=None) -> list[TrainResult]:
    """Train every configuration (see the module docstring); ``data``: a path for
    :func:`meanfield.datasets.mnist.load` (None: the cache). Returns the results in the
    order of ``configs_``."""
    from .._jobs import run_tasks
    tasks = [(run_key(c), (c.to_dict(), None if data is None else str(data), verify,
                        None if runs_dir is None else str(runs_dir), False)) for c in configs_]
    protocols = [{k: v for k, v in c.to_dict().items() if k not in _PER_RUN} for c in configs_]
    if any(p != protocols[0] for p in protocols):
        raise ParameterError("the configurations of one reproduction must share the protocol "
                             "(depth, width, optimiser, epochs, ...)")
    # the protocol names the journal's job: results of another protocol are never mixed in
    job = {"experiment": "mnist", "verify": verify, "protocol": protocols[0] if protocols else {}}
    done = run_tasks(_run_one, tasks, job=job, jobs=jobs, progress=progress, journal=journal,
                     desc="mnist runs", decode=lambda key, r: TrainResult.from_dict(r))
    # journalled runs come back decoded, fresh ones as the dicts the workers returned
    return [done[k] if isinstance(done[k], TrainResult) else TrainResult.from_dict(done[k]) for k, _ in tasks]


def locked_journal(journal):
    """Hold the journal of :func:`run_grid` for a ``with`` block: runs finishing in other
    processes wait to append to it, so that what is written from it meanwhile (tables,
    figures, a commit of them) agrees with it."""
    return locked(journal)


# -- the table ------------------------------------------------------------------------
def configuration_key(c: TrainConfig) -> tuple:
    """What identifies a configuration across seeds: activation, sparsity, V', depth, width."""
    return (c.activation, c.sparsity, c.v_prime, c.depth, c.width)


def summary(results: list[TrainResult]) -> list[dict]:
    """One row per configuration: seeds, how many learnt / blew up, and over the runs that
    measured anything (finished at least one epoch; a run that blew up later counts with its
    last finished epoch) the test accuracy (mean, std, each seed's) and the realised
    train/test sparsity (mean, min, max; also the mean over the runs that learnt). A run
    that blew up in its first epoch measured nothing: it is counted in ``blew_up``, never
    given an accuracy. Undefined values are None."""
    groups: dict = {}
    for r in results:
        groups.setdefault(configuration_key(r.config), []).append(r)
    rows = []
    for (act, s, v, depth, width), rs in groups.items():
        measured = [r for r in rs if r.epochs]
        acc = np.array([r.test_accuracy for r in measured])
        th = rs[0].theory
        verdict, reason = diagnosis(rs[0].config)  # the prediction, made without training
        row = {
            "activation": act, "sparsity": s, "v_prime": v, "depth": depth, "width": width,
            "m": th.get("m"), "tau": th.get("tau"),
            "fixed_points": "all" if th.get("degenerate") else len(th.get("fixed_points", [])),
            "q_star_kind": _q_star_kind(th),
            "diagnosis": verdict, "diagnosis_reason": reason,
            "seeds": len(rs), "learnt": sum(r.learnt for r in rs),
            "blew_up": sum(r.status != "ok" for r in rs), "measured": len(measured),
            "epochs": max(len(r.epochs) for r in rs),
            "accuracy_mean": float(acc.mean()) if len(acc) else None,
            "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else None,
            "accuracies": {str(r.config.seed): r.test_accuracy if r.epochs else None for r in rs}}
        for part_ in ("train", "test"):
            sp = np.array([np.mean(r.final[f"{part_}_sparsity_layers"]) for r in measured])
            learnt = [float(x) for x, r in zip(sp, measured) if r.learnt]
            row.update({f"{part_}_sparsity": float(sp.mean()) if len(sp) else None,
                        f"{part_}_sparsity_min": float(sp.min()) if len(sp) else None,
                        f"{part_}_sparsity_max": float(sp.max()) if len(sp) else None,
                        f"{part_}_sparsity_learnt": float(np.mean(learnt)) if learnt else None})
        rows.append(row)
    order = {p: i for i, p in enumerate(PARTS)}
    return sorted(rows, key=lambda r: (r["depth"], order[part_of_row(r)], r["sparsity"], r["v_prime"] or 0))


def _q_star_kind(theory) -> str:
    """The kind of the fixed point q* (the one nearest theory["q_star"])."""
    if theory.get("degenerate"):
        return "every q fixed"
    points = theory.get("fixed_points") or []
    if not points:
        return "-"
    q = theory.get("q_star", 1.0)
    return min(points, key=lambda p: abs(p[0] - q))[1]


def _name(row) -> str:
    """The activation's label; the ReLU baseline (relu at s = 0.5: tau = 0) as "ReLU"."""
    from ..activations import get_activation
    if row["activation"] == "relu" and row["sparsity"] == 0.5:
        return "ReLU"
    return get_activation(row["activation"]).label


def _accuracy_cell(r) -> str:
    if r["accuracy_mean"] is None:
        return "-"
    std = "" if r["accuracy_std"] is None else f" +- {r['accuracy_std']:.4f}"
    n = "" if r["measured"] == r["seeds"] else f" ({r['measured']} runs)"
    return f"{r['accuracy_mean']:.4f}{std}{n}"


def _sparsity_cell(r, part_) -> str:
    mean, lo, hi = (r[f"{part_}_sparsity{k}"] for k in ("", "_min", "_max"))
    if mean is None:
        return "-"
    return f"{mean:.3f}" if r["measured"] == 1 else f"{mean:.3f} ({lo:.3f}-{hi:.3f})"


def table_markdown(rows) -> str:
    """The diagnosis: :func:`meanfield.diagnose.diagnose_eoc`'s verdict on the
    initialisation, a prediction made without training. Test accuracy and sparsity over
    the runs that finished an epoch (their count in
    brackets where it is not every seed; "-": none did); sparsity: mean (min-max)."""
    head = ("| activation | s | V'(q*) | m | q* | fixed points | diagnosis | seeds | learnt | blew up | "
            "test accuracy | train sparsity | test sparsity |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        m = "" if r["m"] is None else f"{r['m']:.3f}"
        v = "" if r["v_prime"] is None else f"{r['v_prime']:g}"
        lines.append(f"| {_name(r)} | {r['sparsity']:g} | {v} | {m} | {r['q_star_kind']} | {r['fixed_points']} | "
                     f"{r['diagnosis']} | {r['seeds']} | {r['learnt']} | {r['blew_up']} | {_accuracy_cell(r)} | "
                     f"{_sparsity_cell(r, 'train')} | {_sparsity_cell(r, 'test')} |")
    return "\n".join(lines) + "\n"


def _csv(rows, cols) -> str:
    """``cols`` of ``rows`` as CSV: floats to 6 significant digits, None as an empty cell."""
    out = [",".join(cols)]
    for r in rows:
        out.append(",".join("" if r[c] is None else (f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]))
                            for c in cols))
    return "\n".join(out) + "\n"


def table_csv(rows) -> str:
    cols = ["activation", "sparsity", "v_prime", "m", "tau", "q_star_kind", "fixed_points", "diagnosis", "depth",
            "width", "seeds",
            "learnt", "blew_up", "measured", "epochs", "accuracy_mean", "accuracy_std",
            *(f"{p}_sparsity{k}" for p in ("train", "test") for k in ("", "_min", "_max", "_learnt"))]
    return _csv(rows, cols)


def learning_curves(results: list[TrainResult]) -> list[dict]:
    """Test accuracy epoch by epoch: one row per configuration and epoch, with the mean, std
    (ddof 1), min and max over the runs that measured anything, and their number. As in
    :func:`summary`, a run that blew up after some epochs counts with its last finished
    epoch from then on (its parameters stay as they were), so each configuration's last row
    is the table's accuracy. This is what a training-budget study reads: when each
    configuration comes near its final accuracy, and whether it is still rising."""
    groups: dict = {}
    for r in results:
        if r.epochs:
            groups.setdefault(configuration_key(r.config), []).append([e["test_accuracy"] for e in r.epochs])
    rows = []
    for (act, s, v, depth, width), curves in groups.items():
        n = max(len(c) for c in curves)
        acc = np.array([c + [c[-1]] * (n - len(c)) for c in curves], dtype=float)  # carry the last epoch on
        for k in range(n):
            col = acc[:, k]
            rows.append({"activation": act, "sparsity": s, "v_prime": v, "depth": depth, "width": width,
                         "epoch": k + 1, "runs": len(col), "accuracy_mean": float(col.mean()),
                         "accuracy_std": float(col.std(ddof=1)) if len(col) > 1 else None,
                         "accuracy_min": float(col.min()), "accuracy_max": float(col.max())})
    return rows


def learning_curves_csv(rows) -> str:
    cols = ["activation", "sparsity", "v_prime", "depth", "width", "epoch", "runs", "accuracy_mean",
            "accuracy_std", "accuracy_min", "accuracy_max"]
    return _csv(rows, cols)


# -- a study: how long each configuration takes, and its gap to the baseline ----------
#: The accuracies whose first epoch a study reports (the paper's baseline is about 0.94).
THRESHOLDS = (0.90, 0.93)


def _first_epoch(run, threshold):
    """The first epoch whose test accuracy reaches ``threshold``; None if none does."""
    return next((e["epoch"] for e in run.epochs if e["test_accuracy"] >= threshold), None)


def welch_interval(a, b, level=0.95):
    """(mean(a) - mean(b), lower, upper): Welch's t interval for the difference of means of
    two independent samples (each of at least two values); (difference, None, None)
    otherwise.

    >>> d, lo, hi = welch_interval([0.90, 0.91, 0.92], [0.94, 0.95, 0.96])
    >>> round(d, 4), round(lo, 4), round(hi, 4)
    (-0.04, -0.0627, -0.0173)
    """
    from scipy import stats
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return d, None, None
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(va + vb))
    if se == 0:
        return d, d, d
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = float(stats.t.ppf(0.5 + level / 2, df))
    return d, d - t * se, d + t * se


def _judged(run) -> float:
    """The test accuracy a run is judged by: at its epoch of highest validation accuracy
    (:func:`meanfield.nn.train.selected_epoch`: chosen on the validation split, so a last
    epoch that fell in a loss spike does not decide it), else at its last epoch."""
    e = selected_epoch(run)
    return float(e["test_accuracy"]) if e is not None else run.test_accuracy


def study_summary(results: list[TrainResult]) -> list[dict]:
    """One row per configuration of a study, beside :func:`summary`'s: when its runs
    stopped (the stop rules read the validation accuracy; a run without one trains its
    budget), the final validation and test accuracy, the test accuracy at the epoch of
    highest validation accuracy (``selected``, :func:`_judged`), the first epoch at which
    the test accuracy reached each of :data:`THRESHOLDS` (median over the runs that reached
    it, and how many did), and the gap of the selected test accuracy to the ReLU baseline
    of the same depth, with Welch's 95% interval; ``within_2_points``: the gap's mean is
    above -0.02, ``surely_within_2_points``: its whole interval is."""
    groups: dict = {}
    for r in results:
        groups.setdefault(configuration_key(r.config), []).append(r)
    base = {k[3]: [_judged(r) for r in rs if r.epochs] for k, rs in groups.items()
            if k[0] == "relu" and k[1] == 0.5}
    rows = []
    for (act, s, v, depth, width), rs in groups.items():
        measured = [r for r in rs if r.epochs]
        acc = [r.test_accuracy for r in measured]
        judged = [_judged(r) for r in measured]
        val = [r.final["validation_accuracy"] for r in measured if "validation_accuracy" in r.final]
        row = {"activation": act, "sparsity": s, "v_prime": v, "depth": depth, "width": width,
               "seeds": len(rs), "measured": len(measured), "blew_up": sum(r.status != "ok" for r in rs),
               "stopped_by_rule": sum(r.stopped is not None for r in rs),
               "epochs_min": min((len(r.epochs) for r in rs), default=None),
               "epochs_median": float(np.median([len(r.epochs) for r in rs])) if rs else None,
               "epochs_max": max((len(r.epochs) for r in rs), default=None),
               "validation_mean": float(np.mean(val)) if val else None,
               "accuracy_mean": float(np.mean(acc)) if acc else None,
               "accuracy_std": float(np.std(acc, ddof=1)) if len(acc) > 1 else None,
               "selected_mean": float(np.mean(judged)) if judged else None,
               "selected_std": float(np.std(judged, ddof=1)) if len(judged) > 1 else None}
        for thr in THRESHOLDS:
            reached = [e for e in (_first_epoch(r, thr) for r in measured) if e is not None]
            key = f"epoch_{round(thr * 100)}"
            row[key] = float(np.median(reached)) if reached else None
            row[f"{key}_runs"] = len(reached)
        ref = base.get(depth)
        if ref and judged and not (act == "relu" and s == 0.5):
            d, lo, hi = welch_interval(judged, ref)
            row.update(gap=d, gap_low=lo, gap_high=hi, within_2_points=d > -0.02,
                       surely_within_2_points=None if lo is None else lo > -0.02)
        else:
            row.update(gap=None, gap_low=None, gap_high=None, within_2_points=None, surely_within_2_points=None)
        rows.append(row)
    order = {p: i for i, p in enumerate(PARTS)}
    return sorted(rows, key=lambda r: (r["depth"], order[part_of_row(r)], r["sparsity"], r["v_prime"] or 0))


#: The theory's verdicts as a predicted order (:func:`prediction_correlation`): 2, the
#: network should train; 1, it should train badly (``fragile``: failure mode 1, collapses
#: seed by seed; ``too-sparse``: failure mode 2, slow); 0, it should fail (q* half-stable
#: or unstable, gradients exploding or vanishing).
PREDICTED_RANK = {"trainable": 2, "fragile": 1, "too-sparse": 1, "half-stable": 0, "unstable": 0,
                  "exploding": 0, "vanishing": 0}


def run_accuracy(run: TrainResult, judged: bool = False) -> float:
    """The test accuracy a rank correlation counts for one run: chance (0.1) if it blew up or
    measured nothing; else that of its last epoch, or with ``judged`` that of its epoch of
    highest validation accuracy (the epoch the studies judge a run by; its last without a
    validation split)."""
    if run.status != "ok" or not run.epochs:
        return 0.1
    return _judged(run) if judged else float(run.test_accuracy)


def mean_accuracy(results: list[TrainResult], judged: bool = False) -> dict:
    """{:func:`configuration_key`: (its config, mean of :func:`run_accuracy` over its seeds)}."""
    groups: dict = {}
    for r in results:
        groups.setdefault(configuration_key(r.config), []).append(r)
    return {key: (rs[0].config, float(np.mean([run_accuracy(r, judged) for r in rs]))) for key, rs in groups.items()}


def prediction_correlation(results: list[TrainResult]):
    """(Spearman's rho, its two-sided p-value, the number of configurations) between the
    theory's verdict on each configuration (:data:`PREDICTED_RANK`, from the initialisation
    alone) and its mean final test accuracy over seeds, a run that blew up counting as
    chance (0.1; :func:`mean_accuracy`); configurations the theory cannot diagnose are left
    out. None where fewer than three configurations, or no spread in either, are left."""
    from scipy import stats
    pred, meas = [], []
    for config, accuracy in mean_accuracy(results).values():
        rank = PREDICTED_RANK.get(diagnosis(config)[0])
        if rank is None:
            continue
        pred.append(rank)
        meas.append(accuracy)
    if len(pred) < 3 or len(set(pred)) < 2 or len(set(meas)) < 2:
        return None
    rho, p = stats.spearmanr(pred, meas)
    return float(rho), float(p), len(pred)


_STUDY_COLUMNS = ["activation", "sparsity", "v_prime", "depth", "width", "seeds", "measured", "blew_up",
                  "stopped_by_rule", "epochs_min", "epochs_median", "epochs_max", "validation_mean", "accuracy_mean",
                  "accuracy_std", "selected_mean", "selected_std", "epoch_90", "epoch_90_runs", "epoch_93", "epoch_93_runs", "gap", "gap_low",
                  "gap_high", "within_2_points", "surely_within_2_points"]


def study_csv(rows) -> str:
    return _csv(rows, _STUDY_COLUMNS)


def study_markdown(rows) -> str:
    """The study's table: stopping epochs (min-median-max; how many runs their stop rule
    ended), final validation and test accuracy, the test accuracy at the epoch of highest
    validation accuracy, the first epoch reaching 0.90 and 0.93 (median; runs that did /
    runs), and the gap of that selected test accuracy to the baseline with its 95%
    interval."""
    head = ("| configuration | depth | runs | stopped at epoch | by the rule | validation | test accuracy | "
            "test at best validation | reaches 0.90 at | reaches 0.93 at | gap to ReLU [95% CI] |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]

    def f(x, fmt=".4f"):
        return "-" if x is None else format(x, fmt)
    for r in rows:
        name = _name(r) + ("" if r["activation"] in ("relu", "st") else f" V'={r['v_prime']:g}")
        name += "" if r["sparsity"] == 0.5 and r["activation"] == "relu" else f" s={r['sparsity']:g}"
        def mean_sd(key):
            return "-" if r[f"{key}_mean"] is None else (
                f"{r[f'{key}_mean']:.4f}" + ("" if r[f"{key}_std"] is None else f" +- {r[f'{key}_std']:.4f}"))
        acc, sel = mean_sd("accuracy"), mean_sd("selected")
        stop = "-" if r["epochs_min"] is None else (
            f"{r['epochs_min']}-{f(r['epochs_median'], 'g')}-{r['epochs_max']}" if r["seeds"] > 1
            else f"{r['epochs_min']}")
        reach = [("-" if r[f"epoch_{t}"] is None else f(r[f"epoch_{t}"], "g")) + f" ({r[f'epoch_{t}_runs']}/{r['measured']})"
                 for t in (90, 93)]
        gap = "" if r["gap"] is None else (f"{r['gap']:+.4f}" + ("" if r["gap_low"] is None else
                                                              f" [{r['gap_low']:+.4f}, {r['gap_high']:+.4f}]"))
        lines.append(f"| {name} | {r['depth']} | {r['seeds']} | {stop} | {r['stopped_by_rule']} | "
                     f"{f(r['validation_mean'])} | {acc} | {sel} | {reach[0]} | {reach[1]} | {gap} |")
    return "\n".join(lines) + "\n"


def study_note(results) -> str:
    """The lines under a study's table: the machine time its runs took, and the rank
    correlation of the theory's verdicts with the measured accuracy
    (:func:`prediction_correlation`)."""
    hours = sum(r.seconds for r in results) / 3600
    timed = [e for r in results for e in r.epochs if "cpu_seconds" in e]
    line = f"{len(results)} runs, {hours:.1f} h of wall time"
    if timed:
        measured = sum(1 for r in results if r.epochs and all("cpu_seconds" in e for e in r.epochs))
        cpu, wall = sum(e["cpu_seconds"] for e in timed), sum(e["seconds"] for e in timed)
        rate = f"; {cpu / wall:.2f} CPU-seconds per second" if wall > 0 else ""
        line += f"; {cpu / 3600:.1f} CPU-hours over the epochs that recorded it ({measured} whole runs{rate})"
    backends = collections.Counter(r.epochs[-1].get("backend", "not recorded") for r in results if r.epochs)
    lines = [line + ". Passes and threads, by run's last epoch: "
             + "; ".join(f"{b}: {n}" for b, n in sorted(backends.items())) + "."]
    c = prediction_correlation(results)
    if c is None:
        lines.append("Rank correlation of the theory's verdicts with the accuracy: too few configurations.")
    else:
        rho, p, n = c
        lines.append(f"Rank correlation (Spearman) of the theory's verdict (2 trainable; 1 fragile or too-sparse; "
                     f"0 half-stable, unstable, exploding or vanishing) with the mean final test accuracy (a run "
                     f"that blew up counts as chance, 0.1): rho = {rho:.3f} over {n} configurations (p = {p:.2g}).")
    return "\n\n".join(lines) + "\n"


def part_of_row(r) -> str:
    """:func:`part` of a row of :func:`summary` or :func:`learning_curves`."""
    return part(SimpleNamespace(activation=r["activation"], sparsity=r["sparsity"]))


def write_results(results, directory, *, formats=("png",)) -> list[Path]:
    """Table (markdown, CSV, JSON) and figures (:mod:`meanfield.training_figures`) into
    ``directory``; returns the paths."""
    try:
        return _write_results(results, Path(directory), formats)
    except OSError as exc:
        raise ParameterError(f"{directory}: the results cannot be written ({exc.strerror})") from None


def _write_results(results, directory, formats):
    from ..training_figures import accuracy_figure, gradient_figure, learning_curves_figure, loss_figure
    directory.mkdir(parents=True, exist_ok=True)
    rows = summary(results)
    paths = []
    curves = learning_curves(results)
    study = study_summary(results)
    for name, text in (("table.md", table_markdown(rows)), ("table.csv", table_csv(rows)),
                       ("table.json", json.dumps(rows, indent=1, allow_nan=False) + "\n"),
                       ("accuracy-by-epoch.csv", learning_curves_csv(curves)),
                       ("study.md", study_markdown(study) + "\n" + study_note(results)),
                       ("study.csv", study_csv(study))):
        paths.append(atomic_write(directory / name, text))
    for name, fig in (("accuracy", accuracy_figure(rows)), ("loss-curves", loss_figure(results)),
                      ("gradient-norms", gradient_figure(results)),
                      ("learning-curves", learning_curves_figure(curves))):
        for fmt in formats:
            paths.append(write_figure(fig, directory / f"{name}.{fmt}", dpi=120))
    return paths


def stored_results(journal) -> list[TrainResult]:
    """Every run the journal of :func:`run_grid` holds (whatever grid it was run for), in the
    order of their first entry; a key entered twice counts once, with its last result, as
    the grid's resume reads it."""
    path = Path(journal)
    if not path.exists():
        raise ParameterError(f"{path}: no such journal: run the reproduction first")
    out: dict[str, TrainResult] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if n == 1 or not line.endswith("\n"):
                continue
            try:
                entry = json.loads(line)
                out[str(entry["key"])] = TrainResult.from_dict(entry["result"])
            except Exception:  # noqa: BLE001
                raise ParameterError(f"{path} is corrupt at line {n}: delete that line or the file") from None
    return list(out.values())
