r"""A fully connected network initialised from the mean-field theory.

Hidden layers :math:`h^{l+1}=\phi(h^l)W^l+b^l` of widths :math:`n_1..n_L`, a linear
read-out to the logits, softmax cross-entropy. The initialisation is the one the theory
describes (Poole et al. 2016; Schoenholz et al. 2017):

.. math::

    W^l_{ij}\sim N(0,\sigma_w^2/n_l),\qquad b^l_j\sim N(0,\sigma_b^2),

and the first layer is scaled so that its pre-activations have variance exactly the
fixed point :math:`q^*` for inputs of mean square ``input_mean_square``:
:math:`\sigma_{w,1}^2=(q^*-\sigma_b^2)/\overline{x^2}` (so that :math:`q^1=q^*`), which
is what "initialising on the edge of chaos" means for the first layer.

>>> import meanfield as mf
>>> from meanfield.nn import MLP
>>> sol = mf.eoc_parameters("cst", sparsity="0.85", v_prime="0.7", digits=15)
>>> net = MLP.initialise(sol, width=300, depth=20, input_dim=784, seed=0)
>>> net.widths[:3], net.widths[-2:], net.dtype
((784, 300, 300), (300, 10), dtype('float32'))
>>> x = normalise_inputs(np.random.default_rng(1).standard_normal((4, 784)))
>>> logits = net.forward(x)
>>> logits.shape
(4, 10)
>>> bool(np.allclose(logits, net.forward(x, backend="dense"), rtol=1e-4, atol=1e-5))
True
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import validation
from ..activations import Activation
from ..errors import ParameterError
from ..maps import Initialisation
from . import _kernels as K

__all__ = ["MLP", "Gradients", "StepResult", "StepRefused", "BACKENDS", "available_backends", "default_backend",
           "describe_backend", "check_backend", "check_dtype", "gradient_norms", "PerformanceWarning",
           "normalise_inputs", "cross_entropy", "first_layer_sigma_w2", "draw_layers", "as_initialisation"]

#: ``dense``: numpy matrix products (the reference); ``numpy``: the vectorized sparse
#: pass; ``numba``: the compiled sparse pass; ``auto``: ``numba`` where it is installed,
#: else ``numpy`` (the environment variable ``MEANFIELD_NN_BACKEND`` overrides ``auto``).
BACKENDS = ("auto", "dense", "numpy", "numba")

_FORWARD = {"dense": K.dense_forward, "numpy": K.numpy_forward, "numba": K.numba_forward}
_BACKWARD = {"dense": K.dense_backward, "numpy": K.numpy_backward, "numba": K.numba_backward}

#: Largest total number of parameters (1e9: 4 GB in float32).
MAX_PARAMETERS = 10**9


def available_backends() -> tuple[str, ...]:
    """The backends usable here (``numba`` only where numba is installed)."""
    return ("dense", "numpy") + (("numba",) if K.HAVE_NUMBA else ())


def default_backend() -> str:
    """What ``backend="auto"`` means here."""
    wanted = os.environ.get("MEANFIELD_NN_BACKEND", "auto")
    if wanted != "auto":
        return check_backend(wanted, "MEANFIELD_NN_BACKEND")
    if not K.HAVE_NUMBA:
        _warn_no_numba()
    return "numba" if K.HAVE_NUMBA else "numpy"


#: What a user without numba loses (measured by benchmarks/bench_sparse.py and bench_epoch.py).
NO_NUMBA = ("numba cannot be imported ({reason}), so meanfield.nn runs its sparse passes in numpy: "
            "about 13x slower forward and several times slower training; pip install numba")
_warned = False


def _warn_no_numba():
    """Warn once per process, in one line, that the compiled passes are missing."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(NO_NUMBA.format(reason=K.NUMBA_ERROR), PerformanceWarning, stacklevel=4)


class PerformanceWarning(UserWarning):
    """The compiled passes are not available: results are the same, only slower."""


def describe_backend(backend: str = "auto") -> str:
    """One line saying which passes ``backend`` runs here, for a log or a report.

    >>> describe_backend("dense")
    'dense (numpy matrix products)'
    """
    b = check_backend(backend)
    if b == "numba":
        n = K.numba.config.NUMBA_NUM_THREADS
        return f"numba (compiled sparse passes, numba {K.numba.__version__}, {n} thread{'' if n == 1 else 's'})"
    if b == "numpy":
        return "numpy (vectorized sparse passes" + ("" if K.HAVE_NUMBA else
                                                    f"; numba is missing: {K.NUMBA_ERROR}") + ")"
    return "dense (numpy matrix products)"


def check_backend(backend, name="backend") -> str:
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ParameterError(f"{name} = {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return default_backend()
    if backend == "numba" and not K.HAVE_NUMBA:
        raise ParameterError(f"backend 'numba' needs numba, which cannot be imported ({K.NUMBA_ERROR}): "
                             "pip install numba")
    return backend


def check_dtype(dtype) -> np.dtype:
    try:
        dt = None if dtype is None else np.dtype(dtype)  # np.dtype(None) would be float64
    except Exception:  # noqa: BLE001 - numpy raises TypeError, ValueError or SyntaxError
        dt = None
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):  # dtype == None is float64
        raise ParameterError(f"dtype = {dtype!r} is not supported: must be float32 or float64")
    return dt


def normalise_inputs(x, *, what: str = "inputs") -> np.ndarray:
    """Scale each row of ``x`` to mean square 1 (``|x|^2 = dim``), the inputs for which the
    first layer's pre-activation variance is q* (float64). Rows whose largest entry is
    beyond 1e+-100 are first divided by it (x * x would over- or underflow); others are
    not, so that the rounding is that of x / |x| (the committed MNIST runs' inputs).
    ``what`` names the array in errors.

    >>> normalise_inputs([[3.0, 4.0]])
    array([[0.84852814, 1.13137085]])
    """
    try:
        x = np.array(x, dtype=np.float64, ndmin=2)
    except (TypeError, ValueError, OverflowError):
        raise ParameterError(f"{what} must be a real (batch, dim) array of numbers") from None
    if x.ndim != 2 or x.shape[1] == 0:
        raise ParameterError(f"{what} must be a (batch, dim) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ParameterError(f"{what} contain NaN or infinity")
    peak = np.max(np.abs(x), axis=1, keepdims=True)
    if np.any(peak == 0):
        raise ParameterError(f"{what}: a row is all zeros and cannot be scaled to mean square 1")
    if np.any(peak > 1e100) or np.any(peak < 1e-100):
        x = x / peak
    return x / np.sqrt(np.mean(x * x, axis=1, keepdims=True))


def cross_entropy(logits, labels) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logsum = np.log(np.exp(z).sum(axis=1))
    batch = z.shape[0]
    loss = float(np.mean(logsum - z[np.arange(batch), labels]))
    p = np.exp(z - logsum[:, None])
    rows = np.arange(batch)
    p[rows, labels] = 0.0
    # p_label - 1 as minus the other classes' mass: no cancellation for a confident p_label
    p[rows, labels] = -p.sum(axis=1)
    return loss, (p / batch).astype(logits.dtype)


@dataclass(frozen=True, eq=False)
class Gradients:
    """dL/dparameters in the network's flat layout; ``weights``/``biases`` are views."""

    loss: float
    buffer: np.ndarray
    weights: tuple
    biases: tuple


def as_initialisation(init, q_star=None):
    """(Initialisation, q*) of an EoCSolution (its q* unless ``q_star`` is given) or of an
    Initialisation (``q_star`` as given); anything else is a ParameterError."""
    if hasattr(init, "init") and hasattr(init, "q_star"):  # an EoCSolution
        return init.init, (init.q_star if q_star is None else q_star)
    if not isinstance(init, Initialisation):
        raise ParameterError(f"init must be an EoCSolution or an Initialisation, got {type(init).__name__}")
    return init, q_star


def first_layer_sigma_w2(init, q_star=None, input_mean_square=1.0) -> float:
    r"""sigma_w^2 of the first layer: :math:`(q^*-\sigma_b^2)/\overline{x^2}`, so that inputs
    of mean square ``input_mean_square`` give pre-activations of variance exactly q*
    (``init``: an EoCSolution, whose q* is used unless ``q_star`` is given, or an
    Initialisation); without a q*, the network's sigma_w^2.

    >>> import meanfield as mf
    >>> sol = mf.eoc_parameters("relu", sparsity="0.5", q_star=2, digits=15)
    >>> first_layer_sigma_w2(sol), first_layer_sigma_w2(sol, input_mean_square=4)
    (2.0, 0.5)
    """
    init, q_star = as_initialisation(init, q_star)
    sb2 = float(init.sigma_b2)
    if q_star is None:
        return float(init.sigma_w2)
    q = validation.positive("q_star", q_star)
    ms = validation.positive("input_mean_square", input_mean_square)
    if not q > sb2:
        raise ParameterError(f"q_star = {q} must exceed sigma_b2 = {sb2} to match the first layer")
    return (q - sb2) / ms


def draw_layers(shapes, first_sigma_w2, sigma_w2, sigma_b2, seed):
    """For each weight shape (fan_in, fan_out) in turn: the weights, N(0, sigma_w^2 /
    fan_in) (``first_sigma_w2`` for the first), then the fan_out biases, N(0, sigma_b^2),
    drawn in float64 from ``numpy.random.default_rng(seed)`` in that order: the one draw
    of :meth:`MLP.initialise` and of :func:`meanfield.torch.eoc_init_`, so that a seed
    gives the same network in both."""
    rng = np.random.default_rng(seed)
    for i, (fan_in, fan_out) in enumerate(shapes):
        var = (first_sigma_w2 if i == 0 else sigma_w2) / fan_in
        w = rng.standard_normal((fan_in, fan_out)) * math.sqrt(var)
        yield w, rng.standard_normal(fan_out) * math.sqrt(sigma_b2)


@dataclass(frozen=True, eq=False)
class MLP:
    """A fully connected network: ``widths = (input, hidden..., outputs)``, parameters in
    one flat buffer (``weights[l]`` is the (n_l, n_{l+1}) view, ``biases[l]`` the n_{l+1}
    view), and the activation with its parameters. Build one with :meth:`initialise`."""

    activation: Activation
    params: tuple
    widths: tuple
    buffer: np.ndarray
    weights: tuple
    biases: tuple
    sigma_w2: float
    sigma_b2: float
    first_sigma_w2: float
    seed: int | None

    # -- construction ----------------------------------------------------------------
    @classmethod
    def initialise(cls, init, *, width, depth: int | None = None, input_dim: int,
                   outputs: int = 10, q_star=None, input_mean_square=1.0,
                   dtype="float32", seed: int = 0) -> "MLP":
        """A network drawn from an initialisation.

        ``init``: an :class:`~meanfield.eoc.EoCSolution` (its q* sets the first layer) or
        an :class:`~meanfield.maps.Initialisation` (explicit sigma_w^2, sigma_b^2; give
        ``q_star`` to match the first layer to it, else the first layer uses sigma_w^2 too).
        ``width``: the hidden width, or one width per hidden layer; ``depth``: the number
        of hidden layers. ``seed`` makes the draw reproducible: the same seed gives the same
        parameters in float32 and float64 (drawn in float64, then rounded).
        """
        init, q_star = as_initialisation(init, q_star)
        if isinstance(width, numbers.Integral) and not isinstance(width, bool):
            depth = validation.integer("depth", depth, 1, 100_000)
            hidden = (validation.width(width),) * depth
        else:
            try:
                hidden = tuple(width)
            except TypeError:
                raise ParameterError(f"width must be an integer or a sequence of integers, got {width!r}") from None
            hidden = tuple(validation.width(w) for w in hidden)
            if not hidden or (depth is not None and depth != len(hidden)):
                raise ParameterError(f"depth = {depth!r} does not match the {len(hidden)} widths given")
        input_dim = validation.integer("input_dim", input_dim, 1, 10_000_000)
        outputs = validation.integer("outputs", outputs, 1, 1_000_000)
        if seed is not None:
            seed = validation.integer("seed", seed, 0, 2**63 - 1)
        dt = check_dtype(dtype)
        widths = (input_dim,) + hidden + (outputs,)
        _, _, size = K.offsets(widths)
        if size > MAX_PARAMETERS:
            raise ParameterError(f"the network has {size} parameters: at most {MAX_PARAMETERS} are supported")
        sw2, sb2 = float(init.sigma_w2), float(init.sigma_b2)
        first = first_layer_sigma_w2(init, q_star, input_mean_square)
        if not math.sqrt(first) * 100 < float(np.finfo(dt).max):  # the weights' scale
            raise ParameterError(f"first_sigma_w2 = (q_star - sigma_b2) / input_mean_square = {first:.3g} "
                                 f"is too large for {dt}: raise input_mean_square")
        buffer = np.empty(size, dtype=dt)
        net = cls._from_buffer(init, widths, buffer, sw2, sb2, first, seed)
        shapes = [w.shape for w in net.weights]
        for (w, b), (wv, bv) in zip(zip(net.weights, net.biases), draw_layers(shapes, first, sw2, sb2, seed)):
            w[...], b[...] = wv, bv
        return net

    @classmethod
    def _from_buffer(cls, init, widths, buffer, sw2, sb2, first, seed):
        views = K._views(buffer, widths)
        return cls(init.activation, init.params, tuple(widths), buffer,
                   tuple(w for w, _ in views), tuple(b for _, b in views), sw2, sb2, first, seed)

    def copy(self) -> "MLP":
        """An independent copy (its own parameter buffer)."""
        init = Initialisation(self.activation, self.sigma_w2, self.sigma_b2, self.params)
        return self._from_buffer(init, self.widths, self.buffer.copy(), self.sigma_w2,
                                 self.sigma_b2, self.first_sigma_w2, self.seed)

    def astype(self, dtype) -> "MLP":
        """The same network with parameters in ``dtype`` (float32 or float64)."""
        init = Initialisation(self.activation, self.sigma_w2, self.sigma_b2, self.params)
        return self._from_buffer(init, self.widths, self.buffer.astype(check_dtype(dtype)),
                                 self.sigma_w2, self.sigma_b2, self.first_sigma_w2, self.seed)

    # -- properties ------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        return self.buffer.dtype

    @property
    def depth(self) -> int:
        """The number of hidden layers."""
        return len(self.widths) - 2

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.params)

    def table(self) -> K.ActivationTable:
        """The activation as the arrays the passes evaluate (kept on the network: looking
        it up by its sympy/mpmath parameters costs more than a batch-1 layer)."""
        got = self.__dict__.get("_table")
        if got is None:
            got = _table(self.activation, self.params, self.dtype.str)
            object.__setattr__(self, "_table", got)  # a cache, not state: frozen stays frozen
        return got

    # -- passes ----------------------------------------------------------------------
    def _inputs(self, x) -> np.ndarray:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError):
            raise ParameterError("inputs must be a numeric array") from None
        if arr.dtype.kind not in "biuf":
            raise ParameterError(f"inputs must be a real numeric array, got dtype {arr.dtype}")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.widths[0] or arr.shape[0] == 0:
            raise ParameterError(f"inputs must have shape (batch, {self.widths[0]}) with batch >= 1, "
                                 f"got {np.shape(x)}")
        # an input already contiguous in our dtype is used as it is (no copy, no errstate:
        # 1% of a batch-1 pass); float64 beyond float32's range is reported below
        if arr.dtype != self.dtype or not arr.flags.c_contiguous:
            with _quiet():
                arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if not np.isfinite(arr).all():
            raise ParameterError("inputs contain NaN or infinity (after conversion to "
                                 f"{self.dtype}): they must be finite")
        return arr

    def _labels(self, labels, batch) -> np.ndarray:
        try:
            arr = np.asarray(labels)
        except (TypeError, ValueError):
            raise ParameterError(f"labels must be {batch} integers in [0, {self.widths[-1] - 1}]") from None
        if arr.ndim == 0:
            arr = arr[None]
        if arr.dtype.kind not in "iu" or arr.shape != (batch,):
            raise ParameterError(f"labels must be {batch} integers in [0, {self.widths[-1] - 1}]")
        if arr.size and (arr.min() < 0 or arr.max() >= self.widths[-1]):
            raise ParameterError(f"labels must lie in [0, {self.widths[-1] - 1}]")
        return arr.astype(np.intp)

    def check_batch(self, x, labels) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, labels)`` as the passes take them: inputs (batch, input_dim) of the
        network's dtype, finite, and ``batch`` integer labels in [0, outputs); anything
        else raises ParameterError."""
        xs = self._inputs(x)
        return xs, self._labels(labels, xs.shape[0])

    def overflow_error(self, what) -> ParameterError:
        """The error for a pass or step (``what``) that overflowed."""
        return ParameterError(f"the {what} overflowed ({self.dtype}): inputs or weights too large "
                              "for the network (a diverging initialisation, or a learning rate too "
                              "large); use smaller ones, or float64")

    def forward(self, x, *, backend: str = "auto") -> np.ndarray:
        """The logits, (batch, outputs), for inputs (batch, input_dim) or (input_dim,).
        A pass that overflows raises ParameterError rather than returning inf or NaN."""
        x = self._inputs(x)
        with _quiet():  # an overflow is detected below, and reported once
            logits, _ = _FORWARD[check_backend(backend)](x, self.buffer, self.widths, self.table(), False)
        if not np.isfinite(logits).all():
            raise self.overflow_error("forward pass")
        return logits

    def trace(self, x, *, backend: str = "auto", finite: bool = True) -> tuple[np.ndarray, K.Trace]:
        """The logits and, per hidden layer, the pre-activations and activations.
        ``finite=False`` returns a pass that overflowed as it is (inf and NaN included),
        for a study of diverging networks (:func:`meanfield.nn.simulate`)."""
        x = self._inputs(x)
        with _quiet():
            logits, trace = _FORWARD[check_backend(backend)](x, self.buffer, self.widths, self.table(), True)
        if finite is not False and not np.all(np.isfinite(logits)):
            raise self.overflow_error("forward pass")
        return logits, trace

    def activity(self, x, *, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """The logits and, per hidden layer, the number of nonzero activations summed over
        the batch (the compiled pass counts them as it goes: no trace is kept)."""
        x = self._inputs(x)
        backend = check_backend(backend)
        with _quiet():
            if backend == "numba":
                logits, trace = K.numba_forward(x, self.buffer, self.widths, self.table(), False)
                active = trace.counts[1:].sum(axis=1)  # the inputs of layers 1.. are the hidden units
            else:
                logits, trace = _FORWARD[backend](x, self.buffer, self.widths, self.table(), True)
                active = np.array([np.count_nonzero(a) for a in trace.post])
        if not np.all(np.isfinite(logits)):
            raise self.overflow_error("forward pass")
        return logits, active

    def _check_out(self, out, name):
        if out is None:
            return np.empty_like(self.buffer)
        if (not isinstance(out, np.ndarray) or out.shape != self.buffer.shape
                or out.dtype != self.dtype or not out.flags.writeable):
            raise ParameterError(f"{name} must be a writeable {self.dtype} array of shape {self.buffer.shape}")
        if np.may_share_memory(out, self.buffer):
            raise ParameterError(f"{name} shares memory with the parameters: it must be a separate array")
        return out

    def gradients(self, x, labels, *, backend: str = "auto", out: np.ndarray | None = None,
                  _name: str = "out") -> Gradients:
        """Mean cross-entropy of the batch and its gradient with respect to every
        parameter (backpropagation through the sparse pass of ``backend``); ``out``: a
        buffer to write the gradient into (same shape and dtype as ``buffer``)."""
        backend = check_backend(backend)
        x, labels = self.check_batch(x, labels)
        out = self._check_out(out, _name)
        table = self.table()
        if backend == "numba":  # the compiled passes keep what the backward pass needs
            with _quiet():
                step = K.numba_gradient(x, self.buffer, self.widths, table,
                                        lambda logits: cross_entropy(logits, labels), out)
            if step.status == "forward":
                raise self.overflow_error("forward pass")
            loss = step.loss  # (an "ok" bound proves the gradient finite: no scan)
            if step.status != "ok" and not np.all(np.isfinite(out)):
                raise self.overflow_error("backward pass")
        else:
            with _quiet():
                logits, trace = _FORWARD[backend](x, self.buffer, self.widths, table, True)
            if not np.all(np.isfinite(logits)):
                raise self.overflow_error("forward pass")
            loss, g = cross_entropy(logits, labels)
            with _quiet():
                _BACKWARD[backend](x, self.buffer, self.widths, table, trace, g, out)
            if not np.all(np.isfinite(out)):
                raise self.overflow_error("backward pass")
        views = K._views(out, self.widths)
        return Gradients(loss, out, tuple(w for w, _ in views), tuple(b for _, b in views))

    def step(self, x, labels, optimizer, *, backend: str = "auto", scratch: np.ndarray | None = None,
             owned: bool = False, profile: dict | None = None) -> "StepResult":
        """One training step in place with ``optimizer`` (:mod:`meanfield.nn.optimizers`):
        the batch loss before the step and the squared gradient norm of each weight matrix.
        A step whose pass, loss or update would not be finite raises :class:`StepRefused`
        and changes nothing.

        With the compiled passes (``numba``) the step is fused: each row of the gradient is
        applied as it is formed, no gradient buffer (:func:`meanfield.nn._kernels.fused_step`);
        with the other passes the gradient goes to ``scratch`` (made if not given) and the
        compiled update pass (or, without numba, the numpy step) applies it. Either way the
        update runs only where the optimiser has proved that it stays finite
        (:meth:`~meanfield.nn.optimizers.Optimizer.safe`); otherwise the numpy reference step
        decides, and says what overflowed. Every path gives the same parameters, bit for bit,
        for the same gradient. ``owned``: nothing but ``optimizer`` has written the
        parameters since its last step (as in :func:`meanfield.nn.train.train`), so the
        largest |w| that step wrote stands in for a scan of them. ``profile``: a dict that
        receives the seconds and work of each phase of a fused step."""
        backend = check_backend(backend)
        fast = K.HAVE_NUMBA and optimizer.mode is not None
        if fast and backend == "numba":
            xs, ys = self.check_batch(x, labels)
            if scratch is not None:
                self._check_out(scratch, "scratch")
            m, v = optimizer.arrays()
            known = optimizer.w_max if owned else None
            with _quiet():
                step = K.fused_step(xs, self.buffer, self.widths, self.table(), lambda z: cross_entropy(z, ys),
                                    optimizer.mode, optimizer.constants(optimizer.t + 1), m, v, profile=profile,
                                    safe=lambda b: optimizer.safe(b, K.max_abs(self.buffer) if known is None else known))
            if step.status == "forward":
                raise StepRefused(" ".join(str(self.overflow_error("forward pass")).split()))
            if step.status == "ok":
                optimizer.advance(step.bound, step.w_max)
                return StepResult(step.loss, step.norms)
            # "unsafe": the checked path below decides, from the same gradient
        try:
            g = self.gradients(x, labels, backend=backend, out=scratch, _name="scratch")
        except StepRefused:
            raise
        except ParameterError as exc:
            if "overflowed" not in str(exc):  # bad arguments, not an overflowing pass
                raise
            raise StepRefused(" ".join(str(exc).split())) from None
        if not math.isfinite(g.loss):
            raise StepRefused("the loss is not finite")
        grad = g.buffer
        if fast:
            bound, w_max = K.max_abs(grad), K.max_abs(self.buffer)
            if optimizer.safe(bound, w_max):
                m, v = optimizer.arrays()
                norms, written = K.apply_gradient(grad, self.buffer, self.widths, optimizer.mode,
                                                  optimizer.constants(optimizer.t + 1), m, v)
                optimizer.advance(bound, written)
                return StepResult(g.loss, norms)
        norms = gradient_norms(grad, self.widths)
        failure = optimizer.step(self.buffer, grad)
        if failure is not None:  # the finite loss and gradient of the failing step are kept
            details = {"loss": g.loss}
            if np.all(np.isfinite(norms)):
                details["grad_norm_layers"] = [float(v) for v in np.sqrt(norms)]
            raise StepRefused(failure, **details)
        return StepResult(g.loss, norms)

    def sgd_step(self, x, labels, learning_rate, *, backend: str = "auto",
                 scratch: np.ndarray | None = None) -> float:
        """One step of plain SGD in place (:meth:`step` with
        ``optimizers.SGD(momentum=0)``); returns the batch loss before the step. A step that
        would make a parameter overflow raises ParameterError and changes nothing."""
        from .optimizers import SGD
        lr = validation.positive("learning_rate", learning_rate)
        try:
            return self.step(x, labels, SGD(self.buffer.size, self.dtype, learning_rate=lr, momentum=0.0),
                             backend=backend, scratch=scratch).loss
        except StepRefused as exc:
            if str(exc) == "the parameters overflowed":
                raise self.overflow_error("SGD step") from None
            raise


class StepRefused(ParameterError):
    """A training step whose pass, loss or update would not be finite: nothing was changed.
    ``details``: what was still finite of it (the batch loss, the gradient norm per layer)."""

    def __init__(self, reason, **details):
        super().__init__(reason)
        self.details = details


@dataclass(frozen=True)
class StepResult:
    """What :meth:`MLP.step` did: the batch loss before the step and the squared gradient
    norm of each weight matrix (float64)."""

    loss: float
    norms: np.ndarray


def gradient_norms(grad: np.ndarray, widths) -> np.ndarray:
    """The squared Frobenius norm of each weight matrix of a gradient in the flat layout
    (compiled, in one pass, where numba is installed; else einsum: not BLAS, whose idle
    worker threads would slow the sparse kernels that follow)."""
    if K.HAVE_NUMBA:
        return K.layer_norms(grad, widths)
    return np.array([np.einsum("ij,ij->", w, w, dtype=np.float64) for w, _ in K._views(grad, widths)])


def _quiet():
    return np.errstate(over="ignore", invalid="ignore")

_TABLES: dict = {}


def _table(activation, params, dtype) -> K.ActivationTable:
    key = (activation, params, dtype)
    if key not in _TABLES:
        _TABLES[key] = K.ActivationTable(activation, dict(params), np.dtype(dtype))
    return _TABLES[key]
