r"""Forward and backward passes of a fully connected network, dense and sparse.

Layer :math:`l` maps the row vector :math:`a^l` (width :math:`n_l`, :math:`a^0=x`) to
:math:`h^{l+1}=a^lW^l+b^l` with :math:`W^l` of shape :math:`(n_l,n_{l+1})`, and
:math:`a^{l+1}=\phi(h^{l+1})` for the hidden layers; the last :math:`h` are the logits.
Backpropagation with :math:`g^{l+1}=\partial\mathcal L/\partial h^{l+1}`:

.. math::

    \frac{\partial\mathcal L}{\partial W^l}=\sum_b (a^l_b)^\top g^{l+1}_b,\qquad
    \frac{\partial\mathcal L}{\partial b^l}=\sum_b g^{l+1}_b,\qquad
    g^l=\phi'(h^l)\odot g^{l+1}(W^l)^\top .

**Sparsity.** A unit with :math:`a^l_k=0` contributes nothing to :math:`h^{l+1}`, so only
the rows :math:`W^l_{k,:}` of active units are read; a unit with :math:`\phi'(h^l_k)=0`
(below the threshold, or clipped) has :math:`g^l_k=0`, so its row of :math:`(W^l)^\top`
products is never formed, and :math:`\partial\mathcal L/\partial W^l_{kj}` is nonzero only
where :math:`a^l_k\ne0` and :math:`g^{l+1}_j\ne0`. Three implementations, equal up to the
order of floating-point summation:

- ``dense``: numpy matrix products, every unit (the reference);
- ``numpy``: the same products restricted, layer by layer, to the units that are active
  in some row of the batch (portable; it wins when the batch is small);
- ``numba``: the whole network in one compiled call. Per sample the active units are
  compacted with a branchless index write (``idx[n] = k; n += a[k] != 0``) and each adds
  its weight row with one axpy (the approach measured fastest in
  ``shared/reference/perf-notes.md``); layers are processed one after the other with the
  samples in parallel, so a layer's weights stay in cache across the batch.

Parameters live in one flat buffer (``W^0, b^0, W^1, b^1, ...``) so a whole network is
passed to a kernel as one array; gradients use the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ActivationTable", "Trace", "HAVE_NUMBA", "dense_forward", "dense_backward",
           "numpy_forward", "numpy_backward", "numba_forward", "numba_backward"]

try:  # the compiled path is optional: ``pip install meanfield[fast]``
    import numba
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is missing
    numba = None
    HAVE_NUMBA = False


class ActivationTable:
    """A piecewise-polynomial activation as arrays a kernel can evaluate.

    ``ends`` are the breakpoints; piece ``i`` holds ``ends[i-1] < h <= ends[i]`` (the
    convention of :meth:`meanfield.activations.Activation.__call__`); ``coef[i]`` and
    ``dcoef[i]`` are the coefficients of phi and phi' on piece i, highest power first.
    """

    def __init__(self, activation, params: dict, dtype):
        pieces = activation.numeric_pieces(False, **params)
        dpieces = activation.numeric_pieces(True, **params)
        degree = max(len(p.coeffs) for _, _, p in pieces)
        self.dtype = np.dtype(dtype)
        self.ends = np.array([hi for _, hi, _ in pieces[:-1]], dtype=self.dtype)
        self.coef = np.zeros((len(pieces), degree), dtype=self.dtype)
        self.dcoef = np.zeros((len(pieces), max(degree - 1, 1)), dtype=self.dtype)
        for i, ((_, _, p), (_, _, d)) in enumerate(zip(pieces, dpieces)):
            self.coef[i, degree - len(p.coeffs):] = p.coeffs
            self.dcoef[i, self.dcoef.shape[1] - len(d.coeffs):] = d.coeffs

    def _eval(self, coef, h):
        index = np.searchsorted(self.ends, h, side="left")
        c = coef[index]
        out = c[..., 0].copy()
        for d in range(1, coef.shape[1]):
            out *= h
            out += c[..., d]
        return out

    def phi(self, h):
        if self.coef.shape[1] == 2:  # piecewise linear (every built-in): two gathers
            index = np.searchsorted(self.ends, h, side="left")
            return self.coef[index, 0] * h + self.coef[index, 1]
        return self._eval(self.coef, h)

    def dphi(self, h):
        return self._eval(self.dcoef, h)


@dataclass(frozen=True)
class Trace:
    """What a forward pass keeps for the backward pass: per hidden layer the
    pre-activations h (``pre``) and activations phi(h) (``post``), each (batch, width);
    ``flat``: the buffers they view (compiled path); ``counts``: active units per layer and
    sample (compiled path)."""

    pre: list
    post: list
    flat: tuple | None = None
    counts: np.ndarray | None = None


def _views(buffer, widths):
    """(W^l, b^l) views into the flat parameter (or gradient) buffer."""
    out, offset = [], 0
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        w = buffer[offset:offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        out.append((w, buffer[offset:offset + n_out]))
        offset += n_out
    return out


def offsets(widths) -> tuple[np.ndarray, np.ndarray, int]:
    """Start of each W^l and b^l in the flat buffer, and the buffer's size."""
    woff, boff, offset = [], [], 0
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        woff.append(offset)
        offset += n_in * n_out
        boff.append(offset)
        offset += n_out
    return np.array(woff, dtype=np.int64), np.array(boff, dtype=np.int64), offset


# -- dense reference -------------------------------------------------------------------
def dense_forward(x, buffer, widths, table, keep):
    """Logits, and with ``keep`` the hidden pre-activations and activations per layer."""
    hs, acts = [], []
    a = x
    layers = _views(buffer, widths)
    for i, (w, b) in enumerate(layers):
        h = a @ w + b
        if i == len(layers) - 1:
            return h, (Trace(hs, acts) if keep else None)
        a = table.phi(h)
        if keep:
            hs.append(h)
            acts.append(a)
    raise AssertionError("unreachable")


def dense_backward(x, buffer, widths, table, trace, g, grad):
    """Write dL/dparameters into ``grad`` (flat) given g = dL/dlogits."""
    layers = _views(buffer, widths)
    grads = _views(grad, widths)
    hs, acts = trace.pre, trace.post
    for i in range(len(layers) - 1, -1, -1):
        w, _ = layers[i]
        a = x if i == 0 else acts[i - 1]
        np.matmul(a.T, g, out=grads[i][0])
        np.sum(g, axis=0, out=grads[i][1])
        if i:
            g = (g @ w.T) * table.dphi(hs[i - 1])


# -- vectorized sparse numpy -----------------------------------------------------------
#: Above this fraction of active units (in some row of the batch) the dense product is used.
NUMPY_DENSE_ABOVE = 0.5


def numpy_forward(x, buffer, widths, table, keep):
    hs, acts = [], []
    a = x
    layers = _views(buffer, widths)
    for i, (w, b) in enumerate(layers):
        active = np.flatnonzero(a.any(axis=0)) if a.shape[0] > 1 else np.flatnonzero(a[0])
        if active.size <= NUMPY_DENSE_ABOVE * a.shape[1]:
            h = a[:, active] @ w[active] + b  # only the rows of active units are read
        else:
            h = a @ w + b
        if i == len(layers) - 1:
            return h, (Trace(hs, acts) if keep else None)
        a = table.phi(h)
        if keep:
            hs.append(h)
            acts.append(a)
    raise AssertionError("unreachable")


def numpy_backward(x, buffer, widths, table, trace, g, grad):
    layers = _views(buffer, widths)
    grads = _views(grad, widths)
    hs, acts = trace.pre, trace.post
    for i in range(len(layers) - 1, -1, -1):
        w, _ = layers[i]
        dw, db = grads[i]
        a = x if i == 0 else acts[i - 1]
        rows = np.flatnonzero(a.any(axis=0))
        cols = np.flatnonzero(g.any(axis=0))
        np.sum(g, axis=0, out=db)
        if rows.size * cols.size <= NUMPY_DENSE_ABOVE * dw.size:
            dw[...] = 0
            dw[np.ix_(rows, cols)] = a[:, rows].T @ g[:, cols]
        else:
            np.matmul(a.T, g, out=dw)
        if i:
            d = table.dphi(hs[i - 1])
            live = np.flatnonzero(d.any(axis=0))  # units that can carry a gradient
            g_prev = np.zeros((g.shape[0], w.shape[0]), dtype=g.dtype)
            if live.size * cols.size <= NUMPY_DENSE_ABOVE * w.size:
                g_prev[:, live] = (g[:, cols] @ w[np.ix_(live, cols)].T) * d[:, live]
            else:
                g_prev = (g @ w.T) * d
            g = g_prev


# -- compiled (numba) ------------------------------------------------------------------
# One Python source, compiled twice: serially (small batches, where starting threads
# costs more than it saves) and with the samples of each layer in parallel.

def _piece_index(h, ends):
    i = 0
    while i < ends.shape[0] and h > ends[i]:
        i += 1
    return i


def _poly(coef, i, h):
    v = coef[i, 0]
    for d in range(1, coef.shape[1]):
        v = v * h + coef[i, d]
    return v


def _forward_kernel(x, params, woff, boff, widths, ends, coef, logits, trace_h, trace_a,
                    toff, keep, counts):
    batch = x.shape[0]
    layers = widths.shape[0] - 1
    wmax = widths.max()
    cur = np.zeros((batch, wmax), dtype=x.dtype)
    nxt = np.zeros((batch, wmax), dtype=x.dtype)
    idx = np.empty((batch, wmax), dtype=np.int64)
    n0 = widths[0]
    for s in range(batch):
        for k in range(n0):
            cur[s, k] = x[s, k]
    for l in range(layers):
        n_in = widths[l]
        n_out = widths[l + 1]
        w = params[woff[l]:woff[l] + n_in * n_out].reshape((n_in, n_out))
        b = params[boff[l]:boff[l] + n_out]
        last = l == layers - 1
        for s in numba.prange(batch):
            n = 0
            for k in range(n_in):  # branchless compaction of the active units
                idx[s, n] = k
                n += cur[s, k] != 0
            counts[l, s] = n
            row = nxt[s]
            for j in range(n_out):
                row[j] = b[j]
            for t in range(n):
                k = idx[s, t]
                v = cur[s, k]
                wk = w[k]
                for j in range(n_out):
                    row[j] += v * wk[j]
            if last:
                for j in range(n_out):
                    logits[s, j] = row[j]
            else:
                base = toff[l] + s * n_out
                for j in range(n_out):
                    h = row[j]
                    a = _poly(coef, _piece_index(h, ends), h)
                    row[j] = a
                    if keep:
                        trace_h[base + j] = h
                        trace_a[base + j] = a
        cur, nxt = nxt, cur


def _backward_kernel(x, params, woff, boff, widths, ends, dcoef, trace_h, trace_a, toff,
                     g_out, grad):
    batch = x.shape[0]
    layers = widths.shape[0] - 1
    wmax = widths.max()
    g = np.zeros((batch, wmax), dtype=x.dtype)
    g_prev = np.zeros((batch, wmax), dtype=x.dtype)
    gidx = np.empty((batch, wmax), dtype=np.int64)
    gcount = np.empty(batch, dtype=np.int64)
    n_last = widths[layers]
    for s in range(batch):
        for j in range(n_last):
            g[s, j] = g_out[s, j]
    for l in range(layers - 1, -1, -1):
        n_in = widths[l]
        n_out = widths[l + 1]
        w = params[woff[l]:woff[l] + n_in * n_out].reshape((n_in, n_out))
        dw = grad[woff[l]:woff[l] + n_in * n_out].reshape((n_in, n_out))
        db = grad[boff[l]:boff[l] + n_out]
        for s in numba.prange(batch):  # units that carry a gradient
            n = 0
            for j in range(n_out):
                gidx[s, n] = j
                n += g[s, j] != 0
            gcount[s] = n
        for j in numba.prange(n_out):
            acc = g[0, j] * 0
            for s in range(batch):
                acc += g[s, j]
            db[j] = acc
        # dW[k, j] = sum_s a[s, k] g[s, j]: rows in parallel, only active k and live j
        a_base = toff[l - 1] if l > 0 else 0
        for k in numba.prange(n_in):
            row = dw[k]
            for j in range(n_out):
                row[j] = 0
            for s in range(batch):
                v = x[s, k] if l == 0 else trace_a[a_base + s * n_in + k]
                if v != 0:
                    for t in range(gcount[s]):
                        j = gidx[s, t]
                        row[j] += v * g[s, j]
        if l > 0:
            for s in numba.prange(batch):
                base = a_base + s * n_in
                for k in range(n_in):
                    h = trace_h[base + k]
                    d = _poly(dcoef, _piece_index(h, ends), h)
                    acc = d * 0
                    if d != 0:  # phi'(h) = 0: the unit carries no gradient
                        wk = w[k]
                        for t in range(gcount[s]):
                            j = gidx[s, t]
                            acc += wk[j] * g[s, j]
                        acc *= d
                    g_prev[s, k] = acc
            g, g_prev = g_prev, g


_COMPILED = {}


def _compiled(name: str, parallel: bool):
    """The numba kernel ``name``, compiled on first use (cached on disk by numba)."""
    key = (name, parallel)
    if key not in _COMPILED:
        opts = dict(cache=True, nogil=True, error_model="numpy")
        helpers = {f.__name__: numba.njit(inline="always", **opts)(f) for f in (_piece_index, _poly)}
        source = {"forward": _forward_kernel, "backward": _backward_kernel}[name]
        func = type(source)(source.__code__, {**source.__globals__, **helpers}, source.__name__)
        # a distinct name per variant: numba's disk cache is indexed by qualified name
        func.__qualname__ = f"{source.__qualname__}_{'parallel' if parallel else 'serial'}"
        _COMPILED[key] = numba.njit(parallel=parallel, **opts)(func)
    return _COMPILED[key]


#: Batches at least this large run the samples of each layer on all threads.
NUMBA_PARALLEL_FROM = 16


def numba_forward(x, buffer, widths, table, keep):
    woff, boff, _ = offsets(widths)
    widths_arr = np.asarray(widths, dtype=np.int64)
    batch = x.shape[0]
    hidden = widths_arr[1:-1]
    toff = np.concatenate([[0], np.cumsum(hidden * batch)]).astype(np.int64)
    size = int(toff[-1]) if keep else 0
    trace_h = np.empty(size, dtype=x.dtype)
    trace_a = np.empty(size, dtype=x.dtype)
    logits = np.empty((batch, widths[-1]), dtype=x.dtype)
    counts = np.empty((len(widths) - 1, batch), dtype=np.int64)
    kernel = _compiled("forward", batch >= NUMBA_PARALLEL_FROM)
    kernel(x, buffer, woff, boff, widths_arr, table.ends, table.coef, logits, trace_h, trace_a,
           toff, keep, counts)
    if not keep:
        return logits, None
    hs = [trace_h[toff[i]:toff[i + 1]].reshape(batch, n) for i, n in enumerate(hidden)]
    acts = [trace_a[toff[i]:toff[i + 1]].reshape(batch, n) for i, n in enumerate(hidden)]
    return logits, Trace(hs, acts, (trace_h, trace_a), counts)


def numba_backward(x, buffer, widths, table, trace, g, grad):
    woff, boff, _ = offsets(widths)
    widths_arr = np.asarray(widths, dtype=np.int64)
    batch = x.shape[0]
    if trace.flat is None:  # a trace of another backend: gather it into flat buffers
        trace = Trace(trace.pre, trace.post,
                      tuple(np.concatenate([v.ravel() for v in vs] or [np.empty(0, x.dtype)])
                            for vs in (trace.pre, trace.post)), None)
    trace_h, trace_a = trace.flat
    hidden = widths_arr[1:-1]
    toff = np.concatenate([[0], np.cumsum(hidden * batch)]).astype(np.int64)
    kernel = _compiled("backward", batch >= NUMBA_PARALLEL_FROM)
    kernel(x, buffer, woff, boff, widths_arr, table.ends, table.dcoef, trace_h, trace_a, toff,
           np.ascontiguousarray(g), grad)
