r"""The optimisers of :mod:`meanfield.nn.train`, on the flat parameter vector :math:`w`
with the batch gradient :math:`g_t`:

- SGD with momentum :math:`\mu` (the form PyTorch uses):
  :math:`v_t=\mu v_{t-1}+g_t,\ w_t=w_{t-1}-\eta v_t`;
- Adam (Kingma and Ba 2015): :math:`m_t=\beta_1m_{t-1}+(1-\beta_1)g_t`,
  :math:`v_t=\beta_2v_{t-1}+(1-\beta_2)g_t^2`,
  :math:`w_t=w_{t-1}-\eta\,\hat m_t/(\sqrt{\hat v_t}+\epsilon)` with the bias-corrected
  :math:`\hat m_t=m_t/(1-\beta_1^t)`, :math:`\hat v_t=v_t/(1-\beta_2^t)`.

Each optimiser is written twice, and the two agree bit for bit: :meth:`Optimizer.step`,
in numpy, is the reference, and checks the new parameters before it keeps them; the
compiled update pass of :mod:`meanfield.nn._kernels` applies the same operations, in the
same order and precision, to each row of the gradient as it is formed (``mode`` and
:meth:`Optimizer.constants` tell it what to do). The compiled pass writes as it goes, so it
runs only where :meth:`Optimizer.safe` has proved beforehand that nothing it writes can
overflow: from a bound on the gradient, the largest parameter, and running bounds on the
optimiser's own state (kept by :meth:`Optimizer.advance`, with the rounding of each
operation allowed for). Otherwise the caller takes the reference step, which says what
overflowed.

To add an optimiser: subclass :class:`Optimizer` here (its numpy step, its state, its
bound) and register it in :data:`OPTIMIZERS`; without a compiled mode (``mode = None``)
it always takes the reference step.

>>> import numpy as np
>>> opt = Adam(3, np.float64, learning_rate=0.1)
>>> w = np.zeros(3)
>>> opt.step(w, np.array([1.0, -2.0, 0.0])), w.round(6).tolist()
(None, [-0.1, 0.1, 0.0])
"""

from __future__ import annotations

import math

import numpy as np

from . import _kernels as K

__all__ = ["Optimizer", "SGD", "Adam", "OPTIMIZERS", "make"]


class Optimizer:
    """An optimiser's state for ``size`` parameters of ``dtype``: ``t`` steps taken, the
    state arrays (in the parameters' flat layout), and bounds on their magnitudes."""

    #: the compiled update pass's mode (:data:`meanfield.nn._kernels.MOMENTUM`, ...), or None
    mode: int | None = None

    def __init__(self, size: int, dtype):
        self.dtype = np.dtype(dtype)
        self.size = size
        self.t = 0
        #: the largest |w| the last compiled step wrote (None: unknown, after a numpy step)
        self.w_max: float | None = None
        self._tmp = None
        f = np.finfo(self.dtype)
        self._big = float(f.max) / 16  # what a bound must stay below (room for rounding)
        self._eps = float(f.eps)

    @property
    def tmp(self) -> np.ndarray:
        """The numpy step's scratch (made on first use: the compiled pass needs none)."""
        if self._tmp is None:
            self._tmp = np.empty(self.size, dtype=self.dtype)
        return self._tmp

    # -- the reference -----------------------------------------------------------------
    def step(self, w, g) -> str | None:
        """w <- w - update(g) in place, unless the new parameters (or the state) would not
        be finite: then w is left as it was and the reason is returned (the optimiser's
        own state has moved on; the run stops there). None: stepped."""
        self.t += 1
        with np.errstate(over="ignore", invalid="ignore"):
            reason = self._numpy_step(w, g)
        if reason is None and not np.all(np.isfinite(self.tmp)):
            reason = "the parameters overflowed"
        if reason is None:
            w[...] = self.tmp
        self._rescan()
        self.w_max = None
        return reason

    def _numpy_step(self, w, g) -> str | None:
        """The new parameters into ``self.tmp`` (state updated in place)."""
        raise NotImplementedError

    # -- the compiled pass ---------------------------------------------------------------
    def constants(self, t: int) -> tuple:
        """The constants of step ``t`` for the compiled pass, as the dtype's floats."""
        raise NotImplementedError

    def arrays(self) -> tuple:
        """The state arrays the compiled pass updates: (m, v), None where unused."""
        raise NotImplementedError

    def safe(self, bound: float, w_max: float) -> bool:
        """Whether step t + 1 stays finite for every gradient entry at most ``bound`` in
        magnitude and parameters at most ``w_max``."""
        raise NotImplementedError

    def advance(self, bound: float, w_max: float | None = None):
        """Count a step taken by the compiled pass with gradient entries at most ``bound``
        (which wrote parameters at most ``w_max``) and update the running bounds of the
        state."""
        self.t += 1
        self.w_max = w_max

    def _rescan(self):
        """Recompute the bounds of the state from the state itself."""

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict:
        raise NotImplementedError

    def load(self, z):
        raise NotImplementedError

    def _up(self, x: float, ops: int) -> float:
        """x raised by the rounding of ``ops`` floating-point operations."""
        return x * (1 + 2 * ops * self._eps)


class SGD(Optimizer):
    """SGD with momentum ``momentum`` (PyTorch's form: v <- mu v + g; w <- w - lr v); with
    ``momentum=0`` plain SGD, w <- w - lr g, which keeps no state (the compiled pass then
    skips the weight rows whose gradient is zero)."""

    def __init__(self, size, dtype, *, learning_rate, momentum=0.9):
        super().__init__(size, dtype)
        self.learning_rate, self.momentum = learning_rate, momentum
        self.mode = K.MOMENTUM if momentum else K.SGD
        self.m = np.zeros(size, dtype=self.dtype) if momentum else None
        self.m_max = 0.0

    def _numpy_step(self, w, g):
        if self.m is None:  # w + g * (-lr): the compiled pass's operations
            np.multiply(g, -self.learning_rate, out=self.tmp)
            np.add(self.tmp, w, out=self.tmp)
            return None
        self.m *= self.momentum
        self.m += g
        np.multiply(self.m, self.learning_rate, out=self.tmp)
        np.subtract(w, self.tmp, out=self.tmp)
        return None

    def constants(self, t):
        f = self.dtype.type
        return (f(self.momentum), f(self.learning_rate)) if self.m is not None else (f(-self.learning_rate),)

    def arrays(self):
        return self.m, None

    def _next_m(self, bound):
        return self._up(float(self.dtype.type(self.momentum)) * self.m_max + bound, 2)

    def safe(self, bound, w_max):
        m = self._next_m(bound)
        step = self._up(float(self.dtype.type(self.learning_rate)) * m, 2)
        return m < self._big and w_max + step < self._big

    def advance(self, bound, w_max=None):
        m = self._next_m(bound)
        super().advance(bound, w_max)
        self.m_max = m

    def _rescan(self):
        if self.m is not None:
            self.m_max = K.max_abs(self.m) if K.HAVE_NUMBA else float(np.max(np.abs(self.m), initial=0.0))

    def state(self):
        return {"t": np.array(self.t)} | ({} if self.m is None else {"m": self.m})

    def load(self, z):
        self.t = int(z["t"])
        if self.m is not None:
            self.m[...] = z["m"]
        self._rescan()
        self.w_max = None


class Adam(Optimizer):
    """Adam with ``betas`` = (beta1, beta2) and ``eps``."""

    mode = K.ADAM

    def __init__(self, size, dtype, *, learning_rate, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(size, dtype)
        self.learning_rate, self.betas, self.eps = learning_rate, tuple(betas), eps
        self.m = np.zeros(size, dtype=self.dtype)
        self.v = np.zeros(size, dtype=self.dtype)
        self.m_max = self.v_max = 0.0

    def _numpy_step(self, w, g):
        b1, b2 = self.betas
        tmp = self.tmp
        self.m *= b1
        self.m += (1 - b1) * g
        self.v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        self.v += tmp
        # lr * m_hat / (sqrt(v_hat) + eps)
        np.sqrt(self.v, out=tmp)
        tmp *= 1 / math.sqrt(1 - b2 ** self.t)
        tmp += self.eps
        np.divide(self.m, tmp, out=tmp)
        tmp *= self.learning_rate / (1 - b1 ** self.t)
        np.subtract(w, tmp, out=tmp)
        # an overflowing g^2 makes v infinite and the step zero, not infinite
        if not np.all(np.isfinite(self.v)):
            return (f"Adam's second moment overflowed ({self.v.dtype}): a gradient entry beyond "
                    f"{math.sqrt(float(np.finfo(self.v.dtype).max)):.2g}")
        return None

    def constants(self, t):
        """(b1, 1 - b1, b2, 1 - b2, 1 / sqrt(1 - b2^t), eps, lr / (1 - b1^t)): the
        scalars numpy's step uses, rounded to the dtype as numpy rounds them."""
        f = self.dtype.type
        b1, b2 = self.betas
        return (f(b1), f(1 - b1), f(b2), f(1 - b2), f(1 / math.sqrt(1 - b2 ** t)), f(self.eps),
                f(self.learning_rate / (1 - self.betas[0] ** t)))

    def arrays(self):
        return self.m, self.v

    def _next(self, bound):
        b1, c1, b2, c2, _, eps, lr1 = map(float, self.constants(self.t + 1))
        m = self._up(b1 * self.m_max + c1 * bound, 2)
        v = self._up(b2 * self.v_max + c2 * bound * bound, 3)
        return m, v, self._up(lr1 * m / eps, 3)  # |m| / (r sqrt(v) + eps) <= |m| / eps

    def safe(self, bound, w_max):
        m, v, step = self._next(bound)
        return m < self._big and v < self._big and w_max + step < self._big

    def advance(self, bound, w_max=None):
        m, v, _ = self._next(bound)
        super().advance(bound, w_max)
        self.m_max, self.v_max = m, v

    def _rescan(self):
        scan = K.max_abs if K.HAVE_NUMBA else (lambda a: float(np.max(np.abs(a), initial=0.0)))
        self.m_max, self.v_max = scan(self.m), scan(self.v)

    def state(self):
        return {"t": np.array(self.t), "m": self.m, "v": self.v}

    def load(self, z):
        self.t = int(z["t"])
        self.m[...] = z["m"]
        self.v[...] = z["v"]
        self._rescan()
        self.w_max = None


#: The optimisers by name, each with the names of its hyperparameters in a TrainConfig.
OPTIMIZERS = {"sgd": (SGD, ("learning_rate", "momentum")),
              "adam": (Adam, ("learning_rate", "betas", "eps"))}


def make(config, size: int, dtype) -> Optimizer:
    """The optimiser ``config.optimizer`` with the hyperparameters of ``config``."""
    cls, names = OPTIMIZERS[config.optimizer]
    return cls(size, dtype, **{name: getattr(config, name) for name in names})
