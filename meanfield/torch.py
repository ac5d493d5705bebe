r"""The theory in a PyTorch network: activations, the edge-of-chaos initialisation, sparsity.

A thin adapter over the framework-free core (the convention of DeepMind's dks): nothing in
the core imports it, and torch is imported only here (``pip install 'meanfield[torch]'``).

- :class:`PiecewiseActivation`: any :class:`~meanfield.activations.Activation` (the
  built-ins or a user's piecewise polynomial) as a module, exactly the core's definition:
  on piece :math:`i`, :math:`t_{i-1} < h \le t_i` (a breakpoint belongs to the piece on its
  left, as in :class:`~meanfield.activations.Activation`), :math:`\phi` and :math:`\phi'`
  are the piece's polynomial and its derivative: :math:`\phi' = 0` on a flat piece (the
  zero and the clipped parts), and at a breakpoint the gradient is the left piece's;
- :func:`eoc_init_`: the Linear and Conv layers of a model drawn as the theory describes,
  :math:`W\sim N(0,\sigma_w^2/\text{fan-in})`, :math:`b\sim N(0,\sigma_b^2)`, fan-in = input
  channels x kernel size, the first layer matched to q* as :mod:`meanfield.nn` does
  (:func:`meanfield.nn.mlp.first_layer_sigma_w2`); with ``seed``, the draw of
  :meth:`meanfield.nn.MLP.initialise`, so that a seed gives the same network in both;
- :func:`mlp`: the fully connected network of the paper (Linear, activation, ..., Linear);
- :class:`SparsityRecorder`: forward hooks on every :class:`PiecewiseActivation` of a model
  that record the fraction of exact zeros each one outputs.

>>> import torch, meanfield as mf
>>> from meanfield.torch import mlp, SparsityRecorder
>>> sol = mf.eoc_parameters("crelu", sparsity="0.85", v_prime="0.7", digits=15)
>>> net = mlp(sol, width=300, depth=10, input_dim=784, seed=0)
>>> x = torch.randn(256, 784)
>>> x = x / x.pow(2).mean(dim=1, keepdim=True).sqrt()      # mean square 1, as q* assumes
>>> with SparsityRecorder(net) as rec:
...     logits = net(x)
>>> logits.shape, len(rec.last)
(torch.Size([256, 10]), 10)
>>> bool(abs(sum(rec.last) / 10 - 0.85) < 0.02)             # the theory: P(phi = 0) = 0.85
True
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import validation
from .activations import Activation, get_activation
from .errors import ParameterError
from .nn.mlp import as_initialisation, draw_layers, first_layer_sigma_w2

__all__ = ["PiecewiseActivation", "eoc_init_", "initialised_layers", "mlp", "SparsityRecorder"]

#: The layers :func:`eoc_init_` draws (their fan-in: ``weight[0].numel()``).
LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def _coefficients(activation: Activation, params: dict, derivative: bool) -> tuple[np.ndarray, np.ndarray]:
    """(breakpoints, coefficients per piece, highest power first) in float64, from the
    core's numeric pieces."""
    pieces = activation.numeric_pieces(derivative, **params)
    degree = max(len(p.coeffs) for _, _, p in pieces)
    coef = np.zeros((len(pieces), degree))
    for i, (_, _, p) in enumerate(pieces):
        coef[i, degree - len(p.coeffs):] = np.asarray(p.coeffs, dtype=float)
    ends = np.array([float(hi) for _, hi, _ in pieces[:-1]])
    return ends, coef


def _horner(coef, index, h):
    out = coef[:, 0][index]
    for d in range(1, coef.shape[1]):
        out = out * h + coef[:, d][index]
    return out


class _Piecewise(torch.autograd.Function):
    """phi(h), with phi'(h) from the derivative's own coefficients in the backward pass
    (not autograd through the pieces: the core's phi' exactly, 0 on flat pieces)."""

    @staticmethod
    def forward(ctx, h, ends, coef, dcoef):
        index = torch.bucketize(h, ends, right=False)  # ends[i-1] < h <= ends[i]
        ctx.save_for_backward(h, index, dcoef)
        return _horner(coef, index, h)

    @staticmethod
    def backward(ctx, grad):
        h, index, dcoef = ctx.saved_tensors
        return grad * _horner(dcoef, index, h), None, None, None


class PiecewiseActivation(torch.nn.Module):
    """An activation of the core as a module: ``PiecewiseActivation(init)`` for an
    :class:`~meanfield.eoc.EoCSolution` or :class:`~meanfield.maps.Initialisation` (its
    activation and parameters), or ``PiecewiseActivation("crelu", tau=..., m=...)`` (a name
    or an :class:`~meanfield.activations.Activation`, and its parameters). Evaluated in the
    input's dtype (the coefficients rounded to it, as :mod:`meanfield.nn` does).

    >>> import torch
    >>> act = PiecewiseActivation("crelu", tau=0.5, m=1.0)
    >>> h = torch.tensor([-1.0, 0.5, 0.75, 1.5, 2.0], dtype=torch.float64, requires_grad=True)
    >>> act(h).tolist()
    [0.0, 0.0, 0.25, 1.0, 1.0]
    >>> act(h).sum().backward(); h.grad.tolist()        # at the kink h = 0.5 and h = 1.5: left piece
    [0.0, 0.0, 1.0, 1.0, 0.0]
    """

    def __init__(self, activation, **params):
        super().__init__()
        if hasattr(activation, "init") or hasattr(activation, "sigma_w2"):
            if params:
                raise ParameterError("give the parameters either in the initialisation or as keywords, not both")
            init, _ = as_initialisation(activation)
            activation, params = init.activation, dict(init.params)
        act = get_activation(activation)
        values = act.parameter_values(**params)  # validated: names, ranges, finiteness
        self.activation = act
        self.parameters_ = {k: float(v) for k, v in values.items()}
        ends, coef = _coefficients(act, values, False)
        _, dcoef = _coefficients(act, values, True)
        self.register_buffer("ends", torch.from_numpy(ends), persistent=False)
        self.register_buffer("coef", torch.from_numpy(coef), persistent=False)
        self.register_buffer("dcoef", torch.from_numpy(dcoef), persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if not h.is_floating_point():
            raise TypeError(f"{self.activation.name}: the input must be a floating-point tensor, got {h.dtype}")
        ends, coef, dcoef = (t.to(device=h.device, dtype=h.dtype) for t in (self.ends, self.coef, self.dcoef))
        return _Piecewise.apply(h, ends, coef, dcoef)

    def extra_repr(self) -> str:
        values = ", ".join(f"{k}={v:.6g}" for k, v in self.parameters_.items())
        return f"{self.activation.name}" + (f", {values}" if values else "")


def initialised_layers(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The layers of ``module`` that :func:`eoc_init_` draws, in the order of
    ``module.modules()`` (the first is matched to q*)."""
    return [m for m in module.modules() if isinstance(m, LAYERS)]


def eoc_init_(module: torch.nn.Module, init, *, q_star=None, input_mean_square=1.0,
              seed: int | None = None) -> torch.nn.Module:
    r"""Draw every Linear and Conv layer of ``module`` (in place) on the edge of chaos of
    ``init`` (an :class:`~meanfield.eoc.EoCSolution`, or an
    :class:`~meanfield.maps.Initialisation` with ``q_star`` to match the first layer):
    :math:`W\sim N(0,\sigma_w^2/\text{fan-in})` with fan-in = input channels (per group)
    x kernel size, :math:`b\sim N(0,\sigma_b^2)`, the first layer with
    :math:`\sigma_{w,1}^2=(q^*-\sigma_b^2)/\overline{x^2}` for inputs of mean square
    ``input_mean_square``. ``seed``: drawn in float64 by ``numpy.random.default_rng(seed)``
    in the order of :meth:`meanfield.nn.MLP.initialise` (the same seed, the same network;
    weights drawn as (fan-in, outputs) and transposed); ``None``: by torch's generator (so
    ``torch.manual_seed`` applies). Returns ``module``.

    >>> import torch, meanfield as mf
    >>> sol = mf.eoc_parameters("relu", sparsity="0.5", digits=15)    # sigma_w^2 = 2, q* = 1
    >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3))
    >>> _ = eoc_init_(model, sol, seed=0)
    >>> w = model[2].weight
    >>> bool(abs(w.var().item() * 64 * 9 / 2 - 1) < 0.02)             # fan-in 64 x 3 x 3
    True
    """
    layers = initialised_layers(module)
    if not layers:
        raise ParameterError(f"eoc_init_: {type(module).__name__} has no Linear or Conv layer to initialise")
    base, q_star = as_initialisation(init, q_star)
    sw2, sb2 = float(base.sigma_w2), float(base.sigma_b2)
    first = first_layer_sigma_w2(base, q_star, input_mean_square)
    shapes = [(layer.weight[0].numel(), layer.weight.shape[0]) for layer in layers]
    with torch.no_grad():
        if seed is not None:
            draws = draw_layers(shapes, first, sw2, sb2, seed)
            for layer, (w, b) in zip(layers, draws):
                weight = torch.from_numpy(np.ascontiguousarray(w.T)).reshape(layer.weight.shape)
                layer.weight.copy_(weight)
                if layer.bias is not None:
                    layer.bias.copy_(torch.from_numpy(b))
        else:
            for i, (layer, (fan_in, _)) in enumerate(zip(layers, shapes)):
                layer.weight.normal_(0.0, math.sqrt((first if i == 0 else sw2) / fan_in))
                if layer.bias is not None:
                    layer.bias.normal_(0.0, math.sqrt(sb2))
    return module


def mlp(init, *, width: int, depth: int, input_dim: int, outputs: int = 10, q_star=None,
        input_mean_square=1.0, seed: int | None = None, dtype=torch.float32) -> torch.nn.Sequential:
    """The network of :class:`meanfield.nn.MLP` as a ``torch.nn.Sequential``: ``depth``
    hidden Linear layers of ``width`` units, each followed by the activation of ``init``,
    then a Linear read-out to ``outputs`` logits, drawn by :func:`eoc_init_` (with the same
    ``seed``, the same parameters as ``MLP.initialise``)."""
    width = validation.width(width)
    depth = validation.integer("depth", depth, 1, 100_000)
    input_dim = validation.integer("input_dim", input_dim, 1, 10_000_000)
    outputs = validation.integer("outputs", outputs, 1, 1_000_000)
    layers: list[torch.nn.Module] = []
    n = input_dim
    for _ in range(depth):
        layers += [torch.nn.Linear(n, width, dtype=dtype), PiecewiseActivation(init)]
        n = width
    layers.append(torch.nn.Linear(n, outputs, dtype=dtype))
    return eoc_init_(torch.nn.Sequential(*layers), init, q_star=q_star,
                     input_mean_square=input_mean_square, seed=seed)


class SparsityRecorder:
    """Forward hooks on every :class:`PiecewiseActivation` of ``model`` recording the
    fraction of its outputs that are exactly 0: ``last`` (the last forward pass, one value
    per activation in the order of ``model.modules()``) and ``mean()`` (over every pass
    since the start or :meth:`reset`, weighted by the number of outputs). Use it as a
    context manager, or call :meth:`remove` to take the hooks off."""

    def __init__(self, model: torch.nn.Module):
        self.modules = [m for m in model.modules() if isinstance(m, PiecewiseActivation)]
        if not self.modules:
            raise ParameterError(f"SparsityRecorder: {type(model).__name__} has no PiecewiseActivation")
        self.reset()
        self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.modules)]

    def _hook(self, i):
        def record(_module, _inputs, output):
            with torch.no_grad():
                zeros, total = int((output == 0).sum()), output.numel()
            self.last[i] = zeros / total if total else math.nan
            self._zeros[i] += zeros
            self._total[i] += total
        return record

    def reset(self) -> None:
        n = len(self.modules)
        self.last: list[float] = [math.nan] * n
        self._zeros, self._total = [0] * n, [0] * n

    def mean(self) -> list[float]:
        return [z / t if t else math.nan for z, t in zip(self._zeros, self._total)]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "SparsityRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
