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
  compacted with a branchless index write (``idx[n] = k; n += a[k] != 0``) and their
  weight rows are added eight at a time (one pass over the accumulator per eight rows,
  summed in the order of k); a piecewise-linear phi with at most four breakpoints is
  evaluated with selects only (vectorised). Batches of 16 or more are split over threads
  of our own (the kernels release the GIL), each thread taking its own samples through
  the whole depth, so there is no barrier per layer. In large batches a hidden layer
  whose inputs are less than 65% zeros is left to a BLAS product (dense wins there on 2
  threads); the input layer never is (a BLAS call leaves its worker threads spinning on
  the cores ours need). Backward: the deltas are formed only for units with phi' != 0
  (phi' is kept by the forward pass) from the nonzero entries of the next layer's
  deltas, then each row of dW sums over the samples in which its unit is active. The SGD
  step (:func:`numba_sgd_step`) applies each row of dW to the parameters as it is formed,
  without a gradient buffer, once a bound has shown that the step cannot overflow. Adam
  (:func:`adam_step`) is one elementwise pass over the parameters, bit for bit numpy's ten.

Parameters live in one flat buffer (``W^0, b^0, W^1, b^1, ...``) so a whole network is
passed to a kernel as one array; gradients use the same layout.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
from dataclasses import dataclass

import numpy as np

__all__ = ["ActivationTable", "Trace", "HAVE_NUMBA", "dense_forward", "dense_backward",
           "numpy_forward", "numpy_backward", "numba_forward", "numba_backward", "adam_step"]

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

    def piece(self, h) -> np.ndarray:
        """The piece of each h: the number of breakpoints below it (searchsorted's 'left'
        side), counted with one comparison per breakpoint in int8 (4-5x faster than
        ``np.searchsorted`` for the few breakpoints of an activation)."""
        h = np.asarray(h)
        if len(self.ends) > 100:  # int8 counts overflow; a long table is searched
            return np.searchsorted(self.ends, h, side="left")
        index = np.zeros(h.shape, dtype=np.int8)
        for e in self.ends:
            index += np.greater(h, e).view(np.int8)
        return index

    def _eval(self, coef, h):
        index = self.piece(h)
        if coef.shape[1] == 1:
            return coef[:, 0].take(index)
        if coef.shape[1] == 2:  # piecewise linear (every built-in): two gathers
            return coef[:, 0].take(index) * h + coef[:, 1].take(index)
        c = coef[index]
        out = c[..., 0].copy()
        for d in range(1, coef.shape[1]):
            out *= h
            out += c[..., d]
        return out

    def phi(self, h):
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
def _forward(x, buffer, widths, table, keep, affine):
    """Logits, and with ``keep`` the hidden pre-activations and activations per layer;
    ``affine(a, w, b)`` computes a w + b."""
    hs, acts = [], []
    a = x
    layers = _views(buffer, widths)
    for i, (w, b) in enumerate(layers):
        h = affine(a, w, b)
        if i == len(layers) - 1:
            return h, (Trace(hs, acts) if keep else None)
        a = table.phi(h)
        if keep:
            hs.append(h)
            acts.append(a)
    raise AssertionError("unreachable")


def _dense_affine(a, w, b):
    return a @ w + b


def dense_forward(x, buffer, widths, table, keep):
    """Logits, and with ``keep`` the hidden pre-activations and activations per layer."""
    return _forward(x, buffer, widths, table, keep, _dense_affine)


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


def _sparse_affine(a, w, b):
    active = np.flatnonzero(a.any(axis=0)) if a.shape[0] > 1 else np.flatnonzero(a[0])
    if active.size <= NUMPY_DENSE_ABOVE * a.shape[1]:
        return a[:, active] @ w[active] + b  # only the rows of active units are read
    return a @ w + b


def numpy_forward(x, buffer, widths, table, keep):
    return _forward(x, buffer, widths, table, keep, _sparse_affine)


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
# Each kernel is compiled once, serially, and takes ``(c, nchunks)``: it does the c-th of
# nchunks shares of the work, and :func:`_run` calls the shares from as many threads at
# once (the kernels release the GIL).  numba's own ``parallel=True`` compiles a ``prange``
# body into a gufunc whose inner loops vectorise worse: measured 1.6x slower per thread
# here, which made two threads slower than one.  The forward and the delta pass give each
# thread its own samples for the whole depth (no barrier per layer: a busy second core
# slows a call down instead of stalling it at every layer); the weight pass gives thread
# c the blocks of rows c, c + nchunks, ...

def _act(coef, ends, h):
    """phi(h) (or phi'(h) with the derivative's coefficients): the piece index without a
    branch (``ends[i-1] < h <= ends[i]``), then Horner."""
    i = 0
    for e in range(ends.shape[0]):
        i += h > ends[e]
    v = coef[i, 0]
    for d in range(1, coef.shape[1]):
        v = v * h + coef[i, d]
    return v


def _forward_kernel(x, params, woff, boff, widths, ends, coef, dcoef, lin, first, last, bufs,
                    logits, trace_h, trace_a, trace_d, toff, keep, counts, c, nchunks):
    """Layers ``first .. last-1`` for samples ``c * batch // nchunks ..``; the input of
    layer l is ``x`` (l = 0) or ``bufs[l % 2]``; the output of the last layer goes to
    ``logits``.  ``keep``: 0 keeps nothing, 1 keeps h (``trace_h``) and phi(h)
    (``trace_a``), 2 keeps phi(h) and phi'(h) (``trace_d``, what backpropagation needs).
    ``lin``: for a piecewise-linear phi with at most 4 breakpoints, row i = (slope,
    intercept, lower end, phi') of piece i (ends padded with +inf), else empty."""
    batch = x.shape[0]
    layers = widths.shape[0] - 1
    nmax = 1
    for l in range(first, last + 1):
        nmax = max(nmax, widths[l])
    fast = lin.shape[0] == 5
    lz = lin if fast else np.zeros((5, 4), dtype=lin.dtype)
    m0, m1, m2, m3, m4 = lz[0, 0], lz[1, 0], lz[2, 0], lz[3, 0], lz[4, 0]  # slopes
    c0, c1, c2, c3, c4 = lz[0, 1], lz[1, 1], lz[2, 1], lz[3, 1], lz[4, 1]  # intercepts
    e1, e2, e3, e4 = lz[1, 2], lz[2, 2], lz[3, 2], lz[4, 2]
    d0, d1, d2, d3, d4 = lz[0, 3], lz[1, 3], lz[2, 3], lz[3, 3], lz[4, 3]  # phi'
    s0 = c * batch // nchunks
    s1 = (c + 1) * batch // nchunks
    idx = np.empty(nmax, dtype=np.int64)
    piece = np.empty(nmax, dtype=np.int32)
    for l in range(first, last):
        n_in = widths[l]
        n_out = widths[l + 1]
        w = params[woff[l]:woff[l] + n_in * n_out].reshape((n_in, n_out))
        b = params[boff[l]:boff[l] + n_out]
        src_buf = bufs[l % 2]
        dst_buf = bufs[(l + 1) % 2]
        for s in range(s0, s1):
            src = x[s] if l == 0 else src_buf[s]
            n = 0
            for k in range(n_in):  # branchless compaction of the active units
                idx[n] = k
                n += src[k] != 0
            counts[l, s] = n
            row = dst_buf[s]
            for j in range(n_out):
                row[j] = b[j]
            t = 0
            while t + 8 <= n:  # eight weight rows per pass over the accumulator (7% faster
                # than four: more rows in flight), summed in the order of k
                k0, k1, k2, k3 = idx[t], idx[t + 1], idx[t + 2], idx[t + 3]
                k4, k5, k6, k7 = idx[t + 4], idx[t + 5], idx[t + 6], idx[t + 7]
                v0, v1, v2, v3 = src[k0], src[k1], src[k2], src[k3]
                v4, v5, v6, v7 = src[k4], src[k5], src[k6], src[k7]
                w0, w1, w2, w3 = w[k0], w[k1], w[k2], w[k3]
                w4, w5, w6, w7 = w[k4], w[k5], w[k6], w[k7]
                for j in range(n_out):
                    row[j] = (((((((row[j] + v0 * w0[j]) + v1 * w1[j]) + v2 * w2[j]) + v3 * w3[j])
                                + v4 * w4[j]) + v5 * w5[j]) + v6 * w6[j]) + v7 * w7[j]
                t += 8
            while t + 4 <= n:
                k0, k1, k2, k3 = idx[t], idx[t + 1], idx[t + 2], idx[t + 3]
                v0, v1, v2, v3 = src[k0], src[k1], src[k2], src[k3]
                w0, w1, w2, w3 = w[k0], w[k1], w[k2], w[k3]
                for j in range(n_out):
                    row[j] = (((row[j] + v0 * w0[j]) + v1 * w1[j]) + v2 * w2[j]) + v3 * w3[j]
                t += 4
            while t < n:
                k0 = idx[t]
                v0 = src[k0]
                w0 = w[k0]
                for j in range(n_out):
                    row[j] += v0 * w0[j]
                t += 1
            if l == layers - 1:
                for j in range(n_out):
                    logits[s, j] = row[j]
                continue
            base = toff[l] + s * n_out
            if keep == 1:
                for j in range(n_out):
                    trace_h[base + j] = row[j]
            if fast:  # piecewise linear with at most 4 breakpoints: selects only
                if keep == 2:
                    for j in range(n_out):
                        h = row[j]
                        u1 = h > e1
                        u2 = h > e2
                        u3 = h > e3
                        u4 = h > e4
                        trace_d[base + j] = d4 if u4 else (d3 if u3 else (d2 if u2 else (d1 if u1 else d0)))
                for j in range(n_out):
                    h = row[j]
                    u1 = h > e1
                    u2 = h > e2
                    u3 = h > e3
                    u4 = h > e4
                    sl = m4 if u4 else (m3 if u3 else (m2 if u2 else (m1 if u1 else m0)))
                    ic = c4 if u4 else (c3 if u3 else (c2 if u2 else (c1 if u1 else c0)))
                    row[j] = sl * h + ic
            else:  # piece by piece (an inner loop over breakpoints would not vectorise)
                for j in range(n_out):
                    piece[j] = 0
                for e in range(ends.shape[0]):
                    t_e = ends[e]
                    for j in range(n_out):
                        piece[j] += row[j] > t_e
                for j in range(n_out):
                    i = piece[j]
                    h = row[j]
                    if keep == 2:
                        v = dcoef[i, 0]
                        for d in range(1, dcoef.shape[1]):
                            v = v * h + dcoef[i, d]
                        trace_d[base + j] = v
                    v = coef[i, 0]
                    for d in range(1, coef.shape[1]):
                        v = v * h + coef[i, d]
                    row[j] = v
            if keep != 0:
                for j in range(n_out):
                    trace_a[base + j] = row[j]


def _delta_kernel(params, woff, widths, trace_d, toff, gtrace, goff, batch, c, nchunks):
    """g^l = phi'(h^l) * (g^{l+1} W^l^T) for l = L-1 .. 1, each sample from its own
    g^{l+1} (gtrace at goff[l]), only for the units with phi' != 0 (``trace_d``) and the j
    with g != 0."""
    layers = widths.shape[0] - 1
    wmax = widths[1:].max()
    s0 = c * batch // nchunks
    s1 = (c + 1) * batch // nchunks
    gidx = np.empty(wmax, dtype=np.int64)
    gval = np.empty(wmax, dtype=trace_d.dtype)
    kidx = np.empty(wmax, dtype=np.int64)
    for l in range(layers - 1, 0, -1):
        n_in = widths[l]
        n_out = widths[l + 1]
        w = params[woff[l]:woff[l] + n_in * n_out].reshape((n_in, n_out))
        for s in range(s0, s1):
            g = gtrace[goff[l] + s * n_out:goff[l] + (s + 1) * n_out]
            n = 0
            for j in range(n_out):
                gidx[n] = j
                gval[n] = g[j]
                n += g[j] != 0
            dd = trace_d[toff[l - 1] + s * n_in:toff[l - 1] + (s + 1) * n_in]
            out = gtrace[goff[l - 1] + s * n_in:goff[l - 1] + (s + 1) * n_in]
            m = 0
            for k in range(n_in):  # units that can carry a gradient: phi'(h) != 0
                kidx[m] = k
                m += dd[k] != 0
                out[k] = 0
            if n == 0:
                continue
            if 4 * n < n_out:  # few live deltas: gather them
                for t in range(m):
                    k = kidx[t]
                    wk = w[k]
                    acc = wk[gidx[0]] * gval[0]
                    for u in range(1, n):
                        acc += wk[gidx[u]] * gval[u]
                    out[k] = acc * dd[k]
                continue
            # else a contiguous dot product per live row, in 8 independent partial sums
            # (a gather per term costs more than the zeros it skips)
            for t in range(m):
                k = kidx[t]
                wk = w[k]
                a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = wk[0] * 0
                j = 0
                while j + 8 <= n_out:
                    a0 += wk[j] * g[j]
                    a1 += wk[j + 1] * g[j + 1]
                    a2 += wk[j + 2] * g[j + 2]
                    a3 += wk[j + 3] * g[j + 3]
                    a4 += wk[j + 4] * g[j + 4]
                    a5 += wk[j + 5] * g[j + 5]
                    a6 += wk[j + 6] * g[j + 6]
                    a7 += wk[j + 7] * g[j + 7]
                    j += 8
                acc = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
                while j < n_out:
                    acc += wk[j] * g[j]
                    j += 1
                out[k] = acc * dd[k]


#: Rows of dW a thread takes at a time in the weight pass (fewer cache lines shared).
_ROW_BLOCK = 8


def _weight_kernel(x, trace_a, toff, gtrace, goff, widths, woff, boff, out, rows_l, rows_k,
                   nlr, update, c, nchunks):
    """Row k of dW^l is sum_s a^l[s, k] g^{l+1}[s, :] over the samples with a^l[s, k] != 0
    (rows with k = -1: db^l = sum_s g^{l+1}[s, :]).  ``update`` False: write it into
    ``out`` (the gradient, flat); True: ``out`` is the parameters, and the row becomes
    ``dW * nlr + out`` (SGD with nlr = -learning rate; rows with no active sample are left
    alone).  Thread c takes the blocks of rows c, c + nchunks, ..."""
    batch = x.shape[0]
    nrows = rows_l.shape[0]
    sidx = np.empty(batch, dtype=np.int64)
    sval = np.empty(batch, dtype=out.dtype)
    acc = np.empty(widths[1:].max(), dtype=out.dtype)
    for r0 in range(c * _ROW_BLOCK, nrows, nchunks * _ROW_BLOCK):
        for r in range(r0, min(r0 + _ROW_BLOCK, nrows)):
            l = rows_l[r]
            k = rows_k[r]
            n_in = widths[l]
            n_out = widths[l + 1]
            g = gtrace[goff[l]:goff[l] + batch * n_out].reshape((batch, n_out))
            if k < 0:
                dst = out[boff[l]:boff[l] + n_out]
                for j in range(n_out):
                    acc[j] = 0
                for s in range(batch):
                    gs = g[s]
                    for j in range(n_out):
                        acc[j] += gs[j]
            else:
                dst = out[woff[l] + k * n_out:woff[l] + (k + 1) * n_out]
                n = 0
                for s in range(batch):
                    v = x[s, k] if l == 0 else trace_a[toff[l - 1] + s * n_in + k]
                    sidx[n] = s
                    sval[n] = v
                    n += v != 0
                if update and n == 0:
                    continue
                for j in range(n_out):
                    acc[j] = 0
                t = 0
                while t + 4 <= n:
                    v0, v1, v2, v3 = sval[t], sval[t + 1], sval[t + 2], sval[t + 3]
                    g0, g1, g2, g3 = g[sidx[t]], g[sidx[t + 1]], g[sidx[t + 2]], g[sidx[t + 3]]
                    for j in range(n_out):
                        acc[j] = (((acc[j] + v0 * g0[j]) + v1 * g1[j]) + v2 * g2[j]) + v3 * g3[j]
                    t += 4
                while t < n:
                    v0 = sval[t]
                    g0 = g[sidx[t]]
                    for j in range(n_out):
                        acc[j] += v0 * g0[j]
                    t += 1
            if update:
                for j in range(n_out):
                    dst[j] = acc[j] * nlr + dst[j]
            else:
                for j in range(n_out):
                    dst[j] = acc[j]


def _max_abs_kernel(bits, mask, out, c, nchunks):
    """out[c] = the largest |v| of share c of an array of floats seen as unsigned integers
    (``bits``): with the sign bit masked off, IEEE floats order as their bit patterns, and
    inf and NaN lie above every finite value, so an integer maximum (exact, and it
    vectorises) finds both the largest magnitude and any non-finite value."""
    n = bits.shape[0]
    part = bits[c * n // nchunks:(c + 1) * n // nchunks]  # (a loop over a slice vectorises,
    mx = mask ^ mask  # one over i0..i1 did not; a literal 0 would make mx an int64)
    for i in range(part.shape[0]):
        v = part[i] & mask
        if v > mx:
            mx = v
    out[c] = mx


def _adam_kernel(g, m, v, w, out, b1, c1, b2, c2, r2, eps, lr1, c, nchunks):
    """Share c of one Adam step: m <- b1 m + c1 g, v <- b2 v + c2 g^2 in place and
    out <- w - lr1 m / (r2 sqrt(v) + eps), with every constant a float of the arrays'
    dtype. Each operation is the one numpy's step does, in the same order and precision
    (no fused multiply-add: numba contracts nothing without fastmath), so the two steps
    agree bit for bit; one pass instead of numpy's ten, and no 36 MB temporary."""
    n = g.shape[0]
    i0, i1 = c * n // nchunks, (c + 1) * n // nchunks
    gs, ms, vs, ws, os = g[i0:i1], m[i0:i1], v[i0:i1], w[i0:i1], out[i0:i1]
    for i in range(gs.shape[0]):  # a loop over slices vectorises (see _max_abs_kernel)
        gi = gs[i]
        mi = ms[i] * b1 + c1 * gi
        vi = vs[i] * b2 + gi * gi * c2
        ms[i] = mi
        vs[i] = vi
        os[i] = ws[i] - mi / (np.sqrt(vi) * r2 + eps) * lr1


_COMPILED = {}
_SOURCES = {"forward": _forward_kernel, "delta": _delta_kernel, "weight": _weight_kernel,
            "max_abs": _max_abs_kernel, "adam": _adam_kernel}


def _compiled(name: str):
    """The numba kernel ``name``, compiled on first use (cached on disk by numba)."""
    if name not in _COMPILED:
        opts = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
        helpers = {"_act": numba.njit(inline="always", **opts)(_act)}
        source = _SOURCES[name]
        func = type(source)(source.__code__, {**source.__globals__, **helpers}, source.__name__)
        _COMPILED[name] = numba.njit(**opts)(func)
    return _COMPILED[name]


#: Batches at least this large are split over the threads (each thread its own samples).
NUMBA_PARALLEL_FROM = 16
#: Large batches: a layer whose inputs have a smaller zero fraction than this is computed
#: by a BLAS matrix product instead (with 2 threads the dense product wins below ~0.7).
NUMBA_SPARSE_FROM = 0.65

_POOL = None
_POOL_LOCK = threading.Lock()


def _run(name, args, nchunks):
    """``kernel(*args, c, nchunks)`` for c = 0 .. nchunks-1, share 0 in this thread and
    the others in a pool of threads kept for the process."""
    global _POOL
    kernel = _compiled(name)
    if nchunks == 1:
        kernel(*args, 0, 1)
        return
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < nchunks - 1:
            _POOL = concurrent.futures.ThreadPoolExecutor(max_workers=nchunks - 1,
                                                          thread_name_prefix="meanfield-nn")
        pool = _POOL
    futures = [pool.submit(kernel, *args, c, nchunks) for c in range(1, nchunks)]
    try:
        kernel(*args, 0, nchunks)
    finally:
        for f in futures:
            f.result()


def _linear(table):
    """The (5, 4) table of the forward kernel's branch-free phi and phi', or an empty one."""
    lin = getattr(table, "_lin", None)
    if lin is None:
        if table.coef.shape[1] == 2 and table.ends.shape[0] <= 4 and table.dcoef.shape[1] == 1:
            lin = np.zeros((5, 4), dtype=table.dtype)
            n = table.coef.shape[0]
            lin[:n, :2] = table.coef
            lin[:n, 3] = table.dcoef[:, 0]
            lin[n:] = lin[n - 1]  # never selected: their lower end is +inf
            lin[:, 2] = np.inf
            lin[1:n, 2] = table.ends
        else:
            lin = np.zeros((0, 4), dtype=table.dtype)
        table._lin = lin
    return lin


_LAYOUTS: dict = {}


def _layout(widths, batch):
    """Offsets a kernel needs, computed once per (widths, batch): weight and bias offsets,
    widths as an array, the trace offsets of each hidden layer (``toff``) and of each
    layer's output deltas (``goff``)."""
    key = (tuple(widths), batch)
    got = _LAYOUTS.get(key)
    if got is None:
        woff, boff, _ = offsets(widths)
        widths_arr = np.asarray(widths, dtype=np.int64)
        toff = np.concatenate([[0], np.cumsum(widths_arr[1:-1] * batch)]).astype(np.int64)
        goff = np.concatenate([[0], np.cumsum(widths_arr[1:] * batch)]).astype(np.int64)
        if len(_LAYOUTS) > 64:
            _LAYOUTS.clear()
        got = _LAYOUTS[key] = (woff, boff, widths_arr, toff, goff)
    return got


def _threads(batch):
    """Threads for a batch: ``NUMBA_NUM_THREADS`` (every core unless that environment
    variable says otherwise) from NUMBA_PARALLEL_FROM samples on, else 1."""
    return min(numba.config.NUMBA_NUM_THREADS, batch) if batch >= NUMBA_PARALLEL_FROM else 1


def _forward_into(x, buffer, widths, table, keep, trace_h, trace_a, trace_d, logits, counts,
                  bufs):
    """The compiled forward pass into the arrays given (``keep`` as in the kernel)."""
    batch = x.shape[0]
    layers = len(widths) - 1
    woff, boff, widths_arr, toff, _ = _layout(widths, batch)
    nchunks = _threads(batch)
    args = (woff, boff, widths_arr, table.ends, table.coef, table.dcoef, _linear(table))
    tail = (trace_h, trace_a, trace_d, toff, keep, counts)
    if nchunks == 1:  # small batches: always sparse (at batch 1 it reads fewer rows)
        _run("forward", (x, buffer, *args, 0, layers, bufs, logits, *tail), 1)
        return
    l = 0
    layers_w = _views(buffer, widths)
    while l < layers:
        # the first layer is always ours: a BLAS call before our threads run leaves its
        # workers spinning for work, on the cores our threads need (measured: it made the
        # sparse layers after it 2-3x slower)
        a = x if l == 0 else bufs[l % 2, :, :widths[l]]
        if l > 0 and np.count_nonzero(a) > (1 - NUMBA_SPARSE_FROM) * a.size:  # a dense layer: BLAS
            w, b = layers_w[l]
            h = a @ w
            h += b
            counts[l] = np.count_nonzero(a, axis=1)
            if l == layers - 1:
                logits[...] = h
                return
            act = table.phi(h)
            bufs[(l + 1) % 2, :, :widths[l + 1]] = act
            if keep == 1:
                trace_h[toff[l]:toff[l + 1]] = h.ravel()
            if keep == 2:
                trace_d[toff[l]:toff[l + 1]] = table.dphi(h).ravel()
            if keep:
                trace_a[toff[l]:toff[l + 1]] = act.ravel()
            l += 1
            continue
        # sparse from here on: the first layer alone (to measure its output), the rest in one call
        stop = 1 if l == 0 else layers
        _run("forward", (x, buffer, *args, l, stop, bufs, logits, *tail), nchunks)
        l = stop


def numba_forward(x, buffer, widths, table, keep):
    x = np.ascontiguousarray(x)
    batch = x.shape[0]
    layers = len(widths) - 1
    toff = _layout(widths, batch)[3]
    size = int(toff[-1]) if keep else 0
    trace_h = np.empty(size, dtype=x.dtype)
    trace_a = np.empty(size, dtype=x.dtype)
    logits = np.empty((batch, widths[-1]), dtype=x.dtype)
    counts = np.empty((layers, batch), dtype=np.int64)
    bufs = np.empty((2, batch, max(widths[1:])), dtype=x.dtype)
    _forward_into(x, buffer, widths, table, 1 if keep else 0, trace_h, trace_a, trace_a[:0],
                  logits, counts, bufs)
    if not keep:
        return logits, None
    hidden = widths[1:-1]
    hs = [trace_h[toff[i]:toff[i + 1]].reshape(batch, n) for i, n in enumerate(hidden)]
    acts = [trace_a[toff[i]:toff[i + 1]].reshape(batch, n) for i, n in enumerate(hidden)]
    return logits, Trace(hs, acts, (trace_h, trace_a), counts)


def _deltas(x, buffer, widths, trace_d, g, gtrace):
    """Fill ``gtrace`` (flat, ``goff`` layout) with g^{l+1} (batch, n_{l+1}) for
    l = 0 .. L: the hidden layers' deltas, then ``g`` = dL/dlogits."""
    batch = x.shape[0]
    woff, _, widths_arr, toff, goff = _layout(widths, batch)
    gtrace[goff[len(widths) - 2]:] = np.asarray(g, dtype=x.dtype).ravel()
    _run("delta", (buffer, woff, widths_arr, trace_d, toff, gtrace, goff, batch), _threads(batch))


def numba_backward(x, buffer, widths, table, trace, g, grad):
    x = np.ascontiguousarray(x)
    batch = x.shape[0]
    woff, boff, widths_arr, toff, goff = _layout(widths, batch)
    if trace.flat is None:  # a trace of another backend: gather it into flat buffers
        flat = tuple(np.concatenate([v.ravel() for v in vs] or [np.empty(0, x.dtype)])
                     for vs in (trace.pre, trace.post))
    else:
        flat = trace.flat
    trace_h, trace_a = flat[0], flat[1]
    gtrace = np.empty(int(goff[-1]), dtype=x.dtype)
    _deltas(x, buffer, widths, table.dphi(trace_h), g, gtrace)
    rows_l, rows_k = _weight_rows(tuple(widths))
    _run("weight", (x, trace_a, toff, gtrace, goff, widths_arr, woff, boff, grad, rows_l, rows_k,
                    grad.dtype.type(0), False), _threads(batch))


def max_abs(a) -> float:
    """The largest |v| of a float array (inf if it holds inf or NaN), by the compiled
    integer scan of :func:`_max_abs_kernel`."""
    a = np.ascontiguousarray(a).ravel()
    if a.size == 0:
        return 0.0
    kind = {4: (np.uint32, 0x7FFFFFFF), 8: (np.uint64, 0x7FFFFFFFFFFFFFFF)}[a.dtype.itemsize]
    bits = a.view(kind[0])
    nchunks = min(numba.config.NUMBA_NUM_THREADS, 8) if a.size >= 1 << 20 else 1
    out = np.zeros(nchunks, dtype=kind[0])
    _run("max_abs", (bits, kind[0](kind[1]), out), nchunks)
    v = float(out.max().view(a.dtype))
    return v if math.isfinite(v) else math.inf


def adam_step(g, m, v, w, out, betas, eps, learning_rate, t):
    """Adam's step ``t`` (1, 2, ...) by the compiled :func:`_adam_kernel`: m and v updated
    in place, the new parameters written to ``out`` (w is not touched)."""
    f = g.dtype.type
    b1, b2 = betas
    args = (g, m, v, w, out, f(b1), f(1 - b1), f(b2), f(1 - b2), f(1 / math.sqrt(1 - b2 ** t)),
            f(eps), f(learning_rate / (1 - b1 ** t)))
    nchunks = min(numba.config.NUMBA_NUM_THREADS, 8) if g.size >= 1 << 20 else 1
    _run("adam", args, nchunks)


_WORK = threading.local()


def _workspace(widths, batch, dtype):
    """Arrays of the training step, kept per thread and per (widths, batch, dtype) so that
    a step does not fault in 50 MB of fresh pages (none of them leaves this module)."""
    key = (tuple(widths), batch, np.dtype(dtype))
    work = getattr(_WORK, "arrays", None)
    if work is None or work[0] != key:
        toff, goff = _layout(widths, batch)[3:]
        size = int(toff[-1])
        work = (key, dict(trace_a=np.empty(size, dtype), trace_d=np.empty(size, dtype),
                          gtrace=np.empty(int(goff[-1]), dtype),
                          logits=np.empty((batch, widths[-1]), dtype),
                          counts=np.empty((len(widths) - 1, batch), np.int64),
                          bufs=np.empty((2, batch, max(widths[1:])), dtype)))
        _WORK.arrays = work
    return work[1]


def numba_sgd_step(x, buffer, widths, table, loss_and_grad, learning_rate):
    """One SGD step in place without a gradient buffer: forward (keeping phi and phi'),
    ``loss, g = loss_and_grad(logits)``, deltas, then each row of W^l and b^l updated as
    its gradient is formed.  Returns ``("ok", loss)``; ``("forward", None)`` when the
    logits are not finite; ``("unsafe", None)`` when the step could overflow (then nothing
    has changed, and the caller takes the buffered path, which reports it).

    Nothing is written before it is known to be safe: with A = max |a| over the inputs and
    hidden activations, G = max |g| over all deltas, |W| the largest parameter, every
    partial sum of a gradient entry is at most batch * A * G (times 1 + batch * eps), so
    the step cannot overflow or make a NaN when batch * A * G and |W| + lr * batch * A * G
    stay below a quarter of the largest float."""
    x = np.ascontiguousarray(x)
    batch = x.shape[0]
    woff, boff, widths_arr, toff, goff = _layout(widths, batch)
    work = _workspace(widths, batch, x.dtype)
    trace_a, trace_d, gtrace, logits = work["trace_a"], work["trace_d"], work["gtrace"], work["logits"]
    _forward_into(x, buffer, widths, table, 2, trace_a[:0], trace_a, trace_d, logits,
                  work["counts"], work["bufs"])
    if not np.all(np.isfinite(logits)):
        return "forward", None
    loss, g = loss_and_grad(logits)
    _deltas(x, buffer, widths, trace_d, g, gtrace)
    big = float(np.finfo(x.dtype).max) / 4
    a_max = max(max_abs(x), max_abs(trace_a))
    g_max = max_abs(gtrace)
    bound = batch * a_max * g_max
    if not (bound < big and max_abs(buffer) + learning_rate * bound < big):
        return "unsafe", None
    rows_l, rows_k = _weight_rows(tuple(widths))
    _run("weight", (x, trace_a, toff, gtrace, goff, widths_arr, woff, boff, buffer, rows_l,
                    rows_k, buffer.dtype.type(-learning_rate), True), _threads(batch))
    return "ok", loss


_ROWS: dict = {}


def _weight_rows(widths):
    """(layer, row) of every row of the gradient, row -1 standing for the bias."""
    if widths not in _ROWS:
        ls, ks = [], []
        for l, n_in in enumerate(widths[:-1]):
            ls.append(np.full(n_in + 1, l, dtype=np.int64))
            ks.append(np.arange(-1, n_in, dtype=np.int64))
        _ROWS.clear()
        _ROWS[widths] = (np.concatenate(ls), np.concatenate(ks))
    return _ROWS[widths]
