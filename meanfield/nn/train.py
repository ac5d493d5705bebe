r"""Training a network initialised on the edge of chaos: mini-batch SGD with momentum or
Adam (:mod:`meanfield.nn.optimizers`, which gives the formulas) on softmax cross-entropy,
through the sparse passes of :class:`~meanfield.nn.MLP`; with the compiled passes each
step is one fused forward, backward and update (:func:`training_step`).

Inputs are scaled per image to mean square 1 (:func:`~meanfield.nn.normalise_inputs`), so
that every image enters the first hidden layer with pre-activation variance exactly q*.

Each epoch records the mean training loss, the test loss and accuracy, the accuracy and
the realised sparsity per layer on a fixed sample of training images and on the test
images, and the root-mean-square gradient norm per layer over the epoch's steps. A run
whose loss, gradient or parameters become NaN or infinite is stopped and recorded as
``failed`` with the epoch and step; it is not an exception. With a ``directory`` every
epoch ends with a checkpoint (parameters, optimiser state, random state), and
``resume=True`` continues from it (also to more epochs than first asked for).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((256, 20)); y = (x[:, 0] > 0).astype(int)
>>> cfg = TrainConfig("crelu", sparsity=0.7, v_prime=0.7, depth=3, width=32, epochs=3,
...                   optimizer="sgd", learning_rate=0.05, batch_size=32, outputs=2)
>>> run = train(cfg, (x[:192], y[:192], x[192:], y[192:]), progress=False)
>>> run.status, len(run.epochs), run.epochs[-1]["train_loss"] < run.epochs[0]["train_loss"]
('ok', 3, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import mpmath
import numpy as np

from .. import validation
from .._files import atomic_write, json_safe, locked
from .._jobs import thread_context
from .._display import Displayed
from .._progress import bar as progress_bar
from ..errors import DataError, InUseError, NoSolutionError, ParameterError
from . import _kernels as K
from . import optimizers
from .mlp import MLP, StepRefused, check_backend, cross_entropy, describe_backend, normalise_inputs
from .optimizers import Optimizer

__all__ = ["TrainConfig", "TrainResult", "train", "in_use", "holding_run", "OPTIMIZERS", "PROTOCOL", "DIVERGENCE_FACTOR", "LEARNT", "STOP_RULES", "PLATEAU", "BEST",
           "plateau_epoch", "best_epoch", "selected_epoch", "prepare_data", "Prepared", "evaluate",
           "initialisation"]

OPTIMIZERS = tuple(optimizers.OPTIMIZERS)
_FORMAT = "meanfield-train-1"

#: a run whose final test accuracy is below this has not learnt (chance is about 0.11)
LEARNT = 0.2
#: a run diverges (status "diverged", stopped where it happened) when the mean training loss
#: of a window of ``loss_every`` steps passes this many times the larger of its first
#: window's loss and chance, ln(outputs): a finite blow-up. Ordinary runs stay below 2x;
#: the exploding ReLU_tau runs of the committed grid, which start at losses of 1e3 to
#: 1e6 and still learn, rise at most 23-fold.
DIVERGENCE_FACTOR = 100

#: "budget": train the epochs asked for; "best": stop once the best validation accuracy
#: has stopped rising (:func:`best_epoch`); "plateau": stop once the mean validation
#: accuracy has (:func:`plateau_epoch`; the first rule tried, which loss spikes fool).
STOP_RULES = ("budget", "best", "plateau")
#: The "best" rule: the best validation accuracy so far has risen by less than ``gain``
#: over the last ``span`` epochs.
BEST = {"span": 20, "gain": 0.002}
#: The plateau rule: the mean validation accuracy of the last ``window`` epochs has risen by
#: less than ``gain`` over the ``span`` epochs before.
PLATEAU = {"window": 5, "span": 10, "gain": 0.002}


def best_epoch(accuracies, span=BEST["span"], gain=BEST["gain"]):
    """The first epoch (1-based) at which the best of the accuracies so far is less than
    ``gain`` above the best of those up to ``span`` epochs earlier; None if there is none
    yet. A dip (an optimiser's loss spike) does not move the best, so it cannot end a run
    that is still improving.

    >>> best_epoch([0.5, 0.7, 0.8] + [0.8] * 25)
    23
    >>> best_epoch([0.9, 0.2] + [0.1 * k / 30 + 0.9 for k in range(30)]) is None
    True
    """
    acc = [float(a) for a in accuracies]
    best, best_before = -math.inf, []
    for a in acc:
        best = max(best, a)
        best_before.append(best)
    for e in range(span + 1, len(acc) + 1):
        if best_before[e - 1] - best_before[e - 1 - span] < gain:
            return e
    return None


def selected_epoch(result) -> dict | None:
    """The epoch a run would be judged by, chosen on the validation split: the one with the
    highest validation accuracy (the first, on a tie); None without a validation split."""
    held = [e for e in result.epochs if "validation_accuracy" in e]
    return max(held, key=lambda e: (e["validation_accuracy"], -e["epoch"])) if held else None


def plateau_epoch(accuracies, window=PLATEAU["window"], span=PLATEAU["span"], gain=PLATEAU["gain"]):
    """The first epoch (1-based) at which the mean of the last ``window`` accuracies is less
    than ``gain`` above the mean of the ``window`` accuracies ``span`` epochs earlier; None
    if there is none yet (the rule needs ``window + span`` epochs).

    >>> plateau_epoch([0.5, 0.6, 0.7] + [0.8] * 20)
    18
    >>> plateau_epoch([0.1 * k for k in range(10)]) is None
    True
    """
    acc = [float(a) for a in accuracies]
    for e in range(window + span, len(acc) + 1):
        now = sum(acc[e - window:e]) / window
        before = sum(acc[e - window - span:e - span]) / window
        if now - before < gain:
            return e
    return None


@dataclass(frozen=True)
class TrainConfig:
    """One training run. The initialisation is the EoC one for ``sparsity`` with fixed
    point ``q_star`` (and ``clip`` or ``v_prime`` for crelu/cst); ``relu`` at sparsity
    0.5 is the plain ReLU baseline (tau = 0). ``validation``: hold out the last that many
    training images as a validation split (measured every epoch, never trained on: the
    split every choice of a study is made on). ``train_size``/``test_size``: use the first
    images only (None: all; the training images after the validation split is taken).
    ``sparsity_sample``: the training images on which accuracy and sparsity are measured
    each epoch. ``loss_every``: steps per point of the recorded loss curve. ``stop``:
    "budget" trains ``epochs`` epochs; "best" stops earlier once the best validation
    accuracy stops rising (:func:`best_epoch`), "plateau" once its recent mean does
    (:func:`plateau_epoch`), ``epochs`` then being the most."""

    activation: str
    sparsity: float
    clip: float | None = None
    v_prime: float | None = None
    q_star: float = 1.0
    # the MNIST protocol (docs/mnist.md says why), listed in PROTOCOL
    depth: int = 100
    width: int = 300
    epochs: int = 10
    seed: int = 0
    optimizer: str = "adam"
    learning_rate: float = 3e-5
    momentum: float = 0.9
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    batch_size: int = 128
    train_size: int | None = None
    test_size: int | None = None
    sparsity_sample: int = 2000
    loss_every: int = 20
    dtype: str = "float32"
    backend: str = "auto"
    outputs: int = 10
    validation: int = 0
    stop: str = "budget"

    def __post_init__(self):
        _check(self)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d) -> "TrainConfig":
        d = dict(d)
        d["betas"] = tuple(d.get("betas", (0.9, 0.999)))
        return cls(**d)

    def label(self) -> str:
        extra = (f", m = {self.clip:g}" if self.clip is not None else
                 f", V' = {self.v_prime:g}" if self.v_prime is not None else "")
        return f"{self.activation} s = {self.sparsity:g}{extra}"


def _num(v, name, lo, hi, *, open_lo=True, open_hi=False, integer=False):
    validation.number(name, v, lo, hi, lo_closed=not open_lo, hi_closed=not open_hi, integer=integer)


def _check(c: TrainConfig):
    from ..activations import by_sparsity
    from ..eoc import check_request
    if not isinstance(c.activation, str) or c.activation not in by_sparsity():
        raise ParameterError(f"activation = {c.activation!r} is not valid: must be one of "
                             f"{', '.join(by_sparsity())} (an activation known by name whose sparsity sets its "
                             "threshold; register your own with meanfield.activations.register)")
    _num(c.sparsity, "sparsity", 0, 1, open_hi=True)
    for name in ("clip", "v_prime"):
        if getattr(c, name) is not None:
            _num(getattr(c, name), name, 0, 1e6 if name == "clip" else 1, open_hi=name == "v_prime")
    check_request(c.activation, c.sparsity, clip=c.clip, v_prime=c.v_prime)
    _num(c.q_star, "q_star", 0, 1e6)
    _num(c.depth, "depth", 1, 10_000, open_lo=False, integer=True)
    _num(c.width, "width", 1, 100_000, open_lo=False, integer=True)
    _num(c.epochs, "epochs", 1, 100_000, open_lo=False, integer=True)
    _num(c.seed, "seed", 0, 2**63 - 1, open_lo=False, integer=True)
    if c.optimizer not in OPTIMIZERS:
        raise ParameterError(f"optimizer = {c.optimizer!r} is not valid: choose from {OPTIMIZERS}")
    _num(c.learning_rate, "learning_rate", 0, 1e3)
    _num(c.momentum, "momentum", 0, 1, open_lo=False, open_hi=True)
    if not (isinstance(c.betas, tuple) and len(c.betas) == 2):
        raise ParameterError(f"betas = {c.betas!r} must be a pair (beta1, beta2) in [0, 1)")
    for i, b in enumerate(c.betas):
        _num(b, f"betas[{i}]", 0, 1, open_lo=False, open_hi=True)
    _num(c.eps, "eps", 0, 1)
    _num(c.batch_size, "batch_size", 1, 1_000_000, open_lo=False, integer=True)
    for name in ("train_size", "test_size"):
        v = getattr(c, name)
        if v is not None:
            _num(v, name, 1, 10**9, open_lo=False, integer=True)
    _num(c.sparsity_sample, "sparsity_sample", 1, 10**9, open_lo=False, integer=True)
    _num(c.loss_every, "loss_every", 1, 10**9, open_lo=False, integer=True)
    if c.dtype not in ("float32", "float64"):
        raise ParameterError(f"dtype = {c.dtype!r} is not valid: must be float32 or float64")
    tiny = float(np.finfo(c.dtype).smallest_subnormal)
    if c.eps < tiny:  # it would round to 0 and Adam would divide 0 by 0 where v = 0
        raise ParameterError(f"eps = {c.eps!r} is out of range: it rounds to 0 in {c.dtype}; "
                             f"must be in [{tiny:.3g}, 1]")
    check_backend(c.backend)
    _num(c.outputs, "outputs", 2, 100_000, open_lo=False, integer=True)
    _num(c.validation, "validation", 0, 10**9, open_lo=False, integer=True)
    if c.stop not in STOP_RULES:
        raise ParameterError(f"stop = {c.stop!r} is not valid: choose from {', '.join(STOP_RULES)}")
    if c.stop != "budget" and not c.validation:
        raise ParameterError(f"stop = {c.stop!r} needs a validation split (validation > 0): the rule "
                             "reads the validation accuracy, never the test accuracy")


#: The protocol of the MNIST reproduction: TrainConfig's defaults for the optimiser, the
#: budget and the network (docs/mnist.md says why), the defaults of ``meanfield train`` and
#: ``meanfield reproduce mnist``.
PROTOCOL = {f.name: f.default for f in dataclasses.fields(TrainConfig)
            if f.name in ("optimizer", "learning_rate", "batch_size", "epochs", "momentum", "depth", "width")}


@dataclass(repr=False)
class TrainResult(Displayed):
    """``status``: "ok", "failed" (NaN or infinity) or "diverged" (a finite blow-up: the
    loss passed :data:`DIVERGENCE_FACTOR` times its start); ``failure`` says where and why;
    ``epochs``: one dict of metrics per finished epoch (``seconds``: its wall time;
    ``cpu_seconds``: the processor time of every thread of the process over it; ``backend``: the
    passes and threads it trained with, :func:`~meanfield.nn.describe_backend`); ``loss_curve``: (step, mean loss
    over the last ``loss_every`` steps); ``theory``: the EoC initialisation used."""

    config: TrainConfig
    status: str = "ok"
    failure: dict | None = None
    epochs: list = field(default_factory=list)
    loss_curve: list = field(default_factory=list)
    theory: dict = field(default_factory=dict)
    seconds: float = 0.0
    stopped: dict | None = None

    def _headline(self):
        e = self.final
        out = [("configuration", self.config.label()), ("seed", self.config.seed), ("status", self.status),
               ("epochs", len(self.epochs)), ("test_accuracy", self.test_accuracy)]
        out += [("validation_accuracy", e["validation_accuracy"])] if "validation_accuracy" in e else []
        return out + ([("stopped_at", self.stopped["epoch"])] if self.stopped else [])

    def _tidy_rows(self):
        """One row per finished epoch, its scalar metrics (per-layer lists left out)."""
        return [{"epoch": n, **{k: v for k, v in e.items() if not isinstance(v, (list, tuple, dict))}}
                for n, e in enumerate(self.epochs, start=1)]

    @property
    def final(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    @property
    def test_accuracy(self) -> float:
        """The last epoch's test accuracy; NaN for a run that failed before its first epoch ended."""
        return float(self.final.get("test_accuracy", float("nan"))) if self.epochs else float("nan")

    @property
    def learnt(self) -> bool:
        """False for a run that blew up or whose test accuracy stayed below :data:`LEARNT`."""
        return self.status == "ok" and self.test_accuracy >= LEARNT

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "config": self.config.to_dict(), "status": self.status,
                "failure": self.failure, "learnt": self.learnt, "theory": self.theory,
                "seconds": self.seconds, "epochs": self.epochs, "loss_curve": self.loss_curve,
                "stopped": self.stopped}

    @classmethod
    def from_dict(cls, d) -> "TrainResult":
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise DataError("not a meanfield training result")
        return cls(TrainConfig.from_dict(d["config"]), d["status"], d["failure"], list(d["epochs"]),
                   [tuple(p) for p in d["loss_curve"]], dict(d["theory"]), float(d["seconds"]),
                   d.get("stopped"))

    def to_json(self) -> str:
        """Strict JSON: a non-finite number (none is expected) is written as null."""
        return json.dumps(json_safe(self.to_dict()), indent=1, allow_nan=False) + "\n"

    def epochs_csv(self) -> str:
        cols = ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                "train_sparsity", "test_sparsity", "grad_norm_first", "grad_norm_last", "seconds"]
        if self.config.validation:
            cols[5:5] = ["validation_loss", "validation_accuracy"]
        lines = [",".join(cols)]
        for e in self.epochs:
            row = dict(e, train_sparsity=float(np.mean(e["train_sparsity_layers"])),
                       test_sparsity=float(np.mean(e["test_sparsity_layers"])),
                       grad_norm_first=e["grad_norm_layers"][0], grad_norm_last=e["grad_norm_layers"][-1])
            lines.append(",".join(_fmt(row[c]) for c in cols))
        return "\n".join(lines) + "\n"

    def layers_csv(self) -> str:
        lines = ["epoch,layer,train_sparsity,test_sparsity,grad_norm"]
        for e in self.epochs:
            for l, (a, b, g) in enumerate(zip(e["train_sparsity_layers"] + [""], e["test_sparsity_layers"] + [""],
                                              e["grad_norm_layers"])):
                lines.append(f"{e['epoch']},{l + 1},{_fmt(a)},{_fmt(b)},{_fmt(g)}")
        return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    return "" if v == "" else (str(v) if isinstance(v, int) else f"{float(v):.6g}")


def initialisation(config: TrainConfig, ctx=None):
    """The :class:`~meanfield.eoc.EoCSolution` of ``config`` (in the mpmath context
    ``ctx``; default mpmath's global one)."""
    from ..eoc import eoc_parameters
    return eoc_parameters(config.activation, repr(config.sparsity), q_star=repr(config.q_star),
                          clip=None if config.clip is None else repr(config.clip),
                          v_prime=None if config.v_prime is None else repr(config.v_prime), digits=15,
                          ctx=mpmath.mp if ctx is None else ctx)


def diagnosis(config: TrainConfig) -> tuple[str, str]:
    """(verdict, reason): what the theory predicts for ``config``'s initialisation at its
    depth, before any training (:func:`meanfield.diagnose.diagnose_eoc`; cached). Where
    the theory has nothing to say (no fixed point to diagnose), the verdict is
    "undiagnosed" and the reason says why: the network can still be trained."""
    return _diagnosis(config.activation, config.sparsity, config.clip, config.v_prime, config.q_star,
                      config.depth)


@functools.lru_cache(maxsize=256)
def _diagnosis(activation, sparsity, clip, v_prime, q_star, depth):
    from ..diagnose import diagnose_eoc
    config = TrainConfig(activation, sparsity, clip=clip, v_prime=v_prime, q_star=q_star, depth=depth)
    try:
        ctx = thread_context()  # runs trained side by side in threads must not share mpmath's precision
        d = diagnose_eoc(initialisation(config, ctx), depth=depth, ctx=ctx)
    except NoSolutionError as exc:
        return "undiagnosed", " ".join(str(exc).split())
    return d.verdict, d.reason


# -- data ----------------------------------------------------------------------------
class Prepared(NamedTuple):
    """The splits of :func:`prepare_data`: images with rows of mean square 1, in the
    run's dtype, and integer labels; the validation split is empty without one."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_validation: np.ndarray
    y_validation: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def prepare_data(data, config: TrainConfig) -> Prepared:
    """The training, validation and test splits of ``data`` for ``config``: the validation
    split is the last ``config.validation`` training images, the training split the first
    ``train_size`` of the rest."""
    if hasattr(data, "images") and hasattr(data, "labels"):  # a datasets.mnist.MNIST
        arrays = (data.images("train"), data.labels("train"), data.images("test"), data.labels("test"))
    else:
        try:
            arrays = tuple(data)
        except TypeError:
            arrays = ()
        if len(arrays) != 4:
            raise ParameterError("data must be an MNIST object or (x_train, y_train, x_test, y_test)")
    raw = {}
    for i, name in ((0, "train"), (2, "test")):
        x, y = np.asarray(arrays[i]), np.asarray(arrays[i + 1])
        if (x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0 or x.dtype.kind not in "biuf"
                or y.shape != (len(x),) or y.dtype.kind not in "iu"):
            raise ParameterError(f"{name} data must be (n, dim) numbers with n >= 1 and n integer labels")
        raw[name] = (x, y)
    if raw["train"][0].shape[1] != raw["test"][0].shape[1]:
        raise ParameterError("train and test images differ in dimension")
    (x, y), held = raw["train"], config.validation
    if held >= len(x):
        raise ParameterError(f"validation = {held} is out of range: the data hold {len(x)} training images, "
                             "and some must be left to train on")
    raw["validation"] = (x[len(x) - held:], y[len(x) - held:])
    raw["train"] = (x[:len(x) - held], y[:len(x) - held])
    out = []
    for name in ("train", "validation", "test"):
        x, y = raw[name]
        n = getattr(config, f"{name}_size", None) or len(x)
        if n > len(x):
            after = " after the validation split" if name == "train" and held else ""
            raise ParameterError(f"{name}_size = {n} is out of range: the data hold {len(x)} {name} images{after}")
        out += _scaled(x[:n], y[:n], name, config) if n else [np.empty((0, x.shape[1]), config.dtype),
                                                             np.empty(0, np.intp)]
    return Prepared(*out)


def _scaled(x, y, name, config):
    """Images as rows of mean square 1 (float64 arithmetic, then the run's dtype), and labels."""
    x = normalise_inputs(x, what=f"{name} images")
    y = y.astype(np.intp)
    if y.min() < 0 or y.max() >= config.outputs:
        raise ParameterError(f"{name} labels must lie in [0, {config.outputs - 1}]")
    return [np.ascontiguousarray(x, dtype=config.dtype), y]


# -- evaluation ----------------------------------------------------------------------
def evaluate(net: MLP, x, y, backend, chunk=500):
    """(loss, accuracy, sparsity per hidden layer) over all of x."""
    losses, correct, active = 0.0, 0, np.zeros(net.depth)
    for i in range(0, len(x), chunk):
        xb, yb = x[i:i + chunk], y[i:i + chunk]
        logits, counts = net.activity(xb, backend=backend)
        loss, _ = cross_entropy(logits, yb)
        losses += loss * len(xb)
        correct += int(np.sum(np.argmax(logits, axis=1) == yb))
        active += counts
    units = np.array(net.widths[1:-1], dtype=np.float64) * len(x)
    return losses / len(x), correct / len(x), (units - active) / units


#: A step that would not be finite (the network unchanged): recorded, not raised, by :func:`train`.
_BlowUp = StepRefused


def training_step(net: MLP, opt: Optimizer, x, y, backend: str, grad: np.ndarray, profile=None,
                  owned: bool = False):
    """One step in place (:meth:`MLP.step`): (batch loss, squared gradient norm of each
    weight matrix); raises :class:`~meanfield.nn.mlp.StepRefused` (the network unchanged)
    where the step would not be finite."""
    done = net.step(x, y, opt, backend=backend, scratch=grad, owned=owned, profile=profile)
    return done.loss, done.norms


# -- the run -------------------------------------------------------------------------
def _write_outputs(directory: Path, result: TrainResult):
    for name, text in (("result.json", result.to_json()), ("epochs.csv", result.epochs_csv()),
                       ("layers.csv", result.layers_csv())):
        atomic_write(directory / name, lambda fh, t=text: fh.write(t.encode()))


def _save_checkpoint(directory: Path, net, opt, rng, result):
    state = {"buffer": net.buffer, **{f"opt_{k}": v for k, v in opt.state().items()},
             "rng": np.array(json.dumps(rng.bit_generator.state)), "result": np.array(result.to_json())}
    atomic_write(directory / "checkpoint.npz", lambda fh: np.savez(fh, **state))


def _load_checkpoint(directory: Path, config: TrainConfig, net, opt, rng) -> TrainResult:
    path = directory / "checkpoint.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            result = TrainResult.from_dict(json.loads(str(z["result"])))
            old = result.config.to_dict()
            new = config.to_dict()
            when = ("epochs", "stop")  # when the run ends, not how it trains: a resume may change them
            if {k: v for k, v in old.items() if k not in when} != {k: v for k, v in new.items() if k not in when}:
                diff = sorted(k for k in new if k not in when and old.get(k) != new[k])
                raise DataError(f"{path}: the checkpoint is of another run (it differs in {', '.join(diff)}): "
                                "use another directory, or drop --resume to start afresh")
            if len(result.epochs) > config.epochs:
                raise DataError(f"{path}: the checkpoint has {len(result.epochs)} epochs, more than the "
                                f"{config.epochs} asked for: ask for at least {len(result.epochs)}, or use "
                                "another directory")
            if z["buffer"].shape != net.buffer.shape or z["buffer"].dtype != net.buffer.dtype:
                raise DataError(f"{path}: the checkpoint's parameters do not fit the network")
            net.buffer[...] = z["buffer"]
            opt.load({k[4:]: z[k] for k in z.files if k.startswith("opt_")})
            rng.bit_generator.state = json.loads(str(z["rng"]))
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file raises almost anything
        raise DataError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc}): delete it to "
                        "start afresh") from None
    if result.config.stop != config.stop:
        result.stopped = None  # judged again by the new rule
    result.config = config
    return result


def training_backend(config: TrainConfig) -> str:
    """``auto``: the compiled sparse passes where the hidden layers are sparse enough for
    them to pay (from ``_kernels.NUMBA_SPARSE_FROM`` zeros), else the dense BLAS pass
    (measured at s = 0.5, depth 100: 95 ms a gradient dense, 225-270 ms sparse)."""
    from .mlp import default_backend
    if config.backend != "auto":
        return config.backend
    if default_backend() == "numba" and config.sparsity < K.NUMBA_SPARSE_FROM:
        return "dense"
    return default_backend()


def _finished(folder: Path, config: TrainConfig):
    try:
        old = TrainResult.from_dict(json.loads((folder / "result.json").read_text()))
    except Exception:  # noqa: BLE001 - no record, or a torn one: train
        return None
    return old if old.status != "ok" and old.config == config else None


def _diverged(result: TrainResult) -> dict | None:
    """Where the last window's mean loss passes :data:`DIVERGENCE_FACTOR` times the larger
    of the first window's and chance: the reason and the loss; else None."""
    first, last = result.loss_curve[0][1], result.loss_curve[-1][1]
    reference = max(first, math.log(result.config.outputs))
    if last <= DIVERGENCE_FACTOR * reference:
        return None
    return {"reason": f"diverged: the training loss {last:.4g} passed {DIVERGENCE_FACTOR} x {reference:.4g} "
                      f"(the larger of its first value {first:.4g} and chance, ln {result.config.outputs})",
            "loss": last}


def _stopped(result: TrainResult) -> bool:
    """Whether the run's stop rule ends it after its last epoch (sets ``result.stopped``)."""
    rule = result.config.stop
    if rule == "budget":
        return False
    accuracies = [x["validation_accuracy"] for x in result.epochs]
    e = best_epoch(accuracies) if rule == "best" else plateau_epoch(accuracies)
    if e is not None and result.stopped is None:
        result.stopped = {"rule": rule, "epoch": e, **(BEST if rule == "best" else PLATEAU)}
    return e is not None


def train(config: TrainConfig, data, *, directory=None, resume: bool = False, overwrite: bool = False,
          progress=None) -> TrainResult:
    """Train the network of ``config`` on ``data`` (an :class:`~meanfield.datasets.mnist.MNIST`
    or ``(x_train, y_train, x_test, y_test)``). ``directory``: write ``result.json``,
    ``epochs.csv``, ``layers.csv`` and ``checkpoint.npz`` there after every epoch;
    ``resume``: continue from its checkpoint; a directory that already holds a run is
    otherwise refused, unless ``overwrite``. ``progress``: a tqdm bar per epoch (None:
    on a terminal only). With ``stop="plateau"`` the run ends at the first epoch where
    the validation accuracy has stopped rising (``result.stopped`` says when), or after
    ``epochs``; a resumed run that had stopped does not train again."""
    if not isinstance(config, TrainConfig):
        raise ParameterError(f"config must be a TrainConfig, got {type(config).__name__}")
    folder = None if directory is None else Path(directory)
    if folder is None:
        return _train(config, data, None, resume, overwrite, progress)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"directory {folder}: {exc.strerror}") from None
    # a second process training this run would mix its checkpoints with ours; the lock is
    # retried for a moment, as ``in_use`` holds it for as long as a probe takes (a tool
    # copying the run's files under ``holding_run`` may hold it longer: then we stop)
    with locked(folder / LOCK, wait=2.0, busy=f"is held: another process is training the run in {folder} "
                                              "(or copying its files); wait for it to finish, or choose "
                                              "another directory"):
        return _train(config, data, folder, resume, overwrite, progress)


#: The file in a run directory that the process training it holds locked (see :func:`in_use`).
LOCK = ".lock"


def in_use(directory) -> bool:
    """Whether a process is training in ``directory`` now (it holds the directory's lock:
    :func:`train` takes it, and a second process training the same run is refused with
    :class:`~meanfield.errors.InUseError` instead of mixing checkpoints)."""
    folder = Path(directory)
    if not (folder / LOCK).is_file():
        return False
    try:
        with holding_run(folder):
            return False
    except InUseError:
        return True


def holding_run(directory) -> contextlib.AbstractContextManager:
    """A context holding the lock :func:`train` holds on the run in ``directory`` (an
    existing directory), so that no process trains it meanwhile: for a tool that copies or
    replaces a run's files (a :func:`train` started meanwhile on it stops with
    :class:`~meanfield.errors.InUseError` after 2 s). Does not wait:
    :class:`~meanfield.errors.InUseError` if another process holds it (training the run,
    or copying its files)."""
    folder = Path(directory)
    return locked(folder / LOCK, wait=False, busy=f"is held by another process (training the run in {folder}, "
                                                  "or copying its files): wait for it, or stop it")


def _train(config: TrainConfig, data, folder: Path | None, resume: bool, overwrite: bool, progress):
    xtr, ytr, xva, yva, xte, yte = prepare_data(data, config)
    sol = initialisation(config, thread_context())  # its values are read as floats below
    seeds = np.random.SeedSequence(config.seed).spawn(2)
    net = MLP.initialise(sol, width=config.width, depth=config.depth, input_dim=xtr.shape[1],
                         outputs=config.outputs, dtype=config.dtype,
                         seed=int(seeds[0].generate_state(1, np.uint64)[0] >> np.uint64(1)))
    rng = np.random.default_rng(seeds[1])
    opt = optimizers.make(config, net.buffer.size, net.dtype)
    grad = np.empty_like(net.buffer)
    sample = np.random.default_rng(config.seed).permutation(len(xtr))[:config.sparsity_sample]
    xs, ys = xtr[np.sort(sample)], ytr[np.sort(sample)]
    theory = {"tau": float(sol.tau), "m": None if sol.m is None else float(sol.m),
              "sigma_w2": float(sol.sigma_w2), "sigma_b2": float(sol.sigma_b2),
              "q_star": float(sol.q_star), "v_prime": float(sol.v_prime), "sparsity": float(sol.sparsity),
              "fixed_points": [[float(p.q), p.kind] for p in sol.fixed_points.points],
              "degenerate": bool(sol.fixed_points.degenerate)}
    if (folder is not None and not resume and not overwrite
            and any((folder / n).is_file() for n in ("checkpoint.npz", "result.json"))):
        raise ParameterError(f"{folder} already holds a run: resume it (--resume), replace it "
                             "(--force), or choose another directory")
    if overwrite and not resume and folder is not None:  # a replaced run must not come back on --resume
        for name in ("checkpoint.npz", "result.json"):
            (folder / name).unlink(missing_ok=True)
    if resume and folder is not None and (folder / "checkpoint.npz").exists():
        result = _load_checkpoint(folder, config, net, opt, rng)
        done = _finished(folder, config)
        if done is not None:  # a failed or diverged run ends again the same way: keep its record
            return done
    else:
        result = TrainResult(config, theory=theory)
    if folder is not None:
        _write_outputs(folder, result)  # a directory we cannot write fails now, not after an epoch
    backend = training_backend(config)
    steps_per_epoch = -(-len(xtr) // config.batch_size)
    start = time.perf_counter() - result.seconds
    while result.status == "ok" and len(result.epochs) < config.epochs and not _stopped(result):
        epoch = len(result.epochs) + 1
        t0, c0 = time.perf_counter(), time.process_time()
        order = rng.permutation(len(xtr))
        loss_sum, sq_norms, window = 0.0, np.zeros(config.depth + 1), []
        bar = progress_bar(total=steps_per_epoch, desc=f"{config.label()} seed {config.seed} epoch {epoch}",
                           unit="step", progress=progress)
        try:
            for step in range(steps_per_epoch):
                idx = order[step * config.batch_size:(step + 1) * config.batch_size]
                where = {"epoch": epoch, "step": step + 1}
                try:
                    loss, norms = training_step(net, opt, xtr[idx], ytr[idx], backend, grad, owned=True)
                except _BlowUp as exc:
                    result.status, result.failure = "failed", dict(where, reason=str(exc), **exc.details)
                    break
                sq_norms += norms
                loss_sum += loss
                window.append(loss)
                if len(window) == config.loss_every:
                    result.loss_curve.append(((epoch - 1) * steps_per_epoch + step + 1, float(np.mean(window))))
                    window = []
                    diverged = _diverged(result)
                    if diverged:
                        result.status, result.failure = "diverged", dict(where, **diverged)
                        break
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{loss:.3g}", refresh=False)
                bar.update(1)
        finally:
            bar.close()
        if window:  # the epoch's last steps (or those before a blow-up)
            result.loss_curve.append(((epoch - 1) * steps_per_epoch + step + (result.status == "ok"),
                                      float(np.mean(window))))
        if result.status != "ok":
            break
        try:
            test_loss, test_acc, test_sp = evaluate(net, xte, yte, backend)
            _, train_acc, train_sp = evaluate(net, xs, ys, backend)
            held = evaluate(net, xva, yva, backend) if len(xva) else None
        except ParameterError as exc:
            result.status = "failed"
            result.failure = {"epoch": epoch, "step": steps_per_epoch, "reason": " ".join(str(exc).split())}
            break
        result.epochs.append({
            "epoch": epoch, "train_loss": loss_sum / steps_per_epoch, "train_accuracy": train_acc,
            "test_loss": test_loss, "test_accuracy": test_acc,
            "train_sparsity_layers": [float(v) for v in train_sp],
            "test_sparsity_layers": [float(v) for v in test_sp],
            "grad_norm_layers": [float(v) for v in np.sqrt(sq_norms / steps_per_epoch)],
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "backend": describe_backend(backend)})
        if held is not None:
            result.epochs[-1].update(validation_loss=held[0], validation_accuracy=held[1])
        _stopped(result)
        result.seconds = time.perf_counter() - start
        if folder is not None:
            _save_checkpoint(folder, net, opt, rng, result)
            _write_outputs(folder, result)
    result.seconds = time.perf_counter() - start
    if folder is not None:
        _write_outputs(folder, result)
    return result
