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
  evaluated with selects only, in one pass. Batches of 16 or more are split over threads
  of our own (the kernels release the GIL), each thread taking its own samples through
  the whole depth, so there is no barrier per layer. In large batches a hidden layer
  whose inputs are less than 65% zeros is left to a BLAS product (dense wins there on 2
  threads); the input layer never is (a BLAS call leaves its worker threads spinning on
  the cores ours need).

A training step (:func:`fused_step`) is three compiled passes: the forward pass, which
also lists, packed, each layer's active inputs with their values and the units with
phi' != 0; the deltas (:func:`_delta_kernel`), formed from those lists; and the update
pass (:func:`_update_kernel`), in which each thread takes whole layers, turns the lists
into each weight row's active samples by a counting sort, forms the row of dW, adds its
norm and applies it at once with the optimiser's operations (:func:`_apply_row`): no
gradient buffer. Nothing is written before a bound has shown that the update stays
finite.

Parameters live in one flat buffer (``W^0, b^0, W^1, b^1, ...``) so a whole network is
passed to a kernel as one array; gradients use the same layout.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["ActivationTable", "Trace", "Step", "HAVE_NUMBA", "dense_forward", "dense_backward",
           "numpy_forward", "numpy_backward", "numba_forward", "numba_backward", "numba_gradient",
           "fused_step", "apply_gradient", "layer_norms", "max_abs",
           "WRITE", "SGD", "MOMENTUM", "ADAM", "NORMS"]

# numba colours its compiler errors with colorama, whose init() registers an exit handler
# that writes a terminal reset (ESC[0m) after the program's output, from every process
# that compiled a kernel; our kernels raise no compiler errors worth colouring
os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")
try:  # a dependency, but a platform without a numba wheel still gets the numpy passes
    import numba
    HAVE_NUMBA, NUMBA_ERROR = True, None
except ImportError as exc:  # pragma: no cover - exercised where numba is missing
    numba = None
    HAVE_NUMBA, NUMBA_ERROR = False, f"{type(exc).__name__}: {exc}"


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


def _forward_kernel(x, params, woff, boff, widths, ends, coef, dcoef, lin, first, last, bufs, bbits,
                    mask, logits, keep, toff, trace_h, trace_a, ioff, counts, in_start, in_idx, in_val,
                    live_start, live_idx, live_d, nlive, dconst, amax, c, nchunks):
    """Layers ``first .. last-1`` for samples ``c * batch // nchunks ..``; the input of
    layer l is ``x`` (l = 0) or ``bufs[l % 2]``; the output of the last layer goes to
    ``logits``; ``counts[l, s]``: the active inputs of layer l in sample s. ``lin``: for a
    piecewise-linear phi with at most 4 breakpoints, row i = (slope, intercept, lower end,
    phi') of piece i (ends padded with +inf), else empty.

    ``keep``: 0 keeps nothing; 1 keeps h (``trace_h``) and phi(h) (``trace_a``) of every
    hidden unit (at ``toff[l] + s * n_{l+1}``); 2 keeps what backpropagation needs, as
    lists: the active inputs of each layer and sample with their values (``in_idx``,
    ``in_val`` from ``in_start[l, s]``, ``counts`` of them), the hidden units with
    phi'(h) != 0 with phi'(h) (``live_idx``, ``live_d`` from ``live_start[l, s]``,
    ``nlive`` of them; phi' is not written where it is the same on every live piece,
    ``dconst`` != 0, as for every built-in activation), each thread's lists of a layer one after the other from
    ``ioff[l] + s0 * n_l`` (``toff[l] + s0 * n_{l+1}``; s0 its first sample: packed, so
    that the passes that read them stream them), and raises ``amax[c]`` to the largest |phi(h)| as the bits of a
    float (``bbits``: ``bufs`` seen as unsigned integers; see :func:`_max_abs_kernel`),
    which bounds the weight gradient before a fused step writes anything."""
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
    dloc = np.empty(nmax, dtype=bufs.dtype)
    mx = amax[c]
    for l in range(first, last):
        n_in = widths[l]
        n_out = widths[l + 1]
        w = params[woff[l]:woff[l] + n_in * n_out].reshape((n_in, n_out))
        b = params[boff[l]:boff[l] + n_out]
        src_buf = bufs[l % 2]
        dst_buf = bufs[(l + 1) % 2]
        ipos = ioff[l] + s0 * n_in
        lpos = toff[l] + s0 * n_out if l < layers - 1 else 0
        for s in range(s0, s1):
            src = x[s] if l == 0 else src_buf[s]
            n = 0
            for k in range(n_in):  # branchless compaction of the active units
                idx[n] = k
                n += src[k] != 0
            counts[l, s] = n
            if keep == 2:
                in_start[l, s] = ipos
                li = in_idx[ipos:ipos + n]
                lv = in_val[ipos:ipos + n]
                for t in range(n):
                    li[t] = idx[t]
                    lv[t] = src[idx[t]]
                ipos += n
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
                th = trace_h[base:base + n_out]
                for j in range(n_out):
                    th[j] = row[j]
            if fast:  # piecewise linear with at most 4 breakpoints: selects only, one pass
                # (the piece is that of the last end below h: the ends ascend)
                for j in range(n_out):
                    h = row[j]
                    sl, ic, dv = m0, c0, d0
                    u = h > e1
                    sl, ic, dv = (m1 if u else sl), (c1 if u else ic), (d1 if u else dv)
                    u = h > e2
                    sl, ic, dv = (m2 if u else sl), (c2 if u else ic), (d2 if u else dv)
                    u = h > e3
                    sl, ic, dv = (m3 if u else sl), (c3 if u else ic), (d3 if u else dv)
                    u = h > e4
                    sl, ic, dv = (m4 if u else sl), (c4 if u else ic), (d4 if u else dv)
                    row[j] = sl * h + ic
                    dloc[j] = dv
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
                    v = dcoef[i, 0]
                    for d in range(1, dcoef.shape[1]):
                        v = v * h + dcoef[i, d]
                    dloc[j] = v
                    v = coef[i, 0]
                    for d in range(1, coef.shape[1]):
                        v = v * h + coef[i, d]
                    row[j] = v
            if keep == 1:
                ta = trace_a[base:base + n_out]
                for j in range(n_out):
                    ta[j] = row[j]
            elif keep == 2:
                live_start[l, s] = lpos
                ld = live_idx[lpos:lpos + n_out]
                lv = live_d[lpos:lpos + n_out]
                nl = 0
                if dconst != 0:  # branchless compaction of the units with phi' != 0
                    for j in range(n_out):
                        ld[nl] = j
                        nl += dloc[j] != 0
                else:  # ... with their phi'
                    for j in range(n_out):
                        ld[nl] = j
                        lv[nl] = dloc[j]
                        nl += dloc[j] != 0
                nlive[l, s] = nl
                lpos += nl
                rb = bbits[(l + 1) % 2, s]  # an integer maximum vectorises; a float one with NaN would not
                for j in range(n_out):
                    bj = rb[j] & mask
                    mx = bj if bj > mx else mx
    amax[c] = mx


def _delta_kernel(params, woff, widths, live_start, live_idx, live_d, nlive, dconst, gtrace, goff, batch,
                  gbits, mask, gmax, c, nchunks):
    """g^l = phi'(h^l) * (g^{l+1} W^l^T) for l = L-1 .. 1, each sample from its own
    g^{l+1} (gtrace at goff[l]), only for the units with phi' != 0 and from the j with
    g^{l+1}_j != 0 (both found in the forward pass's lists ``live_idx``, ``live_d``,
    ``nlive``; phi' is ``dconst`` throughout where that is not 0); ``gmax[c]`` becomes the largest |g| formed, as the bits of a float
    (``gbits``: ``gtrace`` seen as unsigned integers; see :func:`_max_abs_kernel`). Each
    g^l_k is formed from its own sample alone, by a path chosen from that sample's live
    deltas, so a gradient does not depend on the thread count or on the batch it shares a
    pass with."""
    layers = widths.shape[0] - 1
    wmax = widths[1:].max()
    s0 = c * batch // nchunks
    s1 = (c + 1) * batch // nchunks
    gidx = np.empty(wmax, dtype=np.int64)
    gval = np.empty(wmax, dtype=gtrace.dtype)
    same = np.full(wmax, dconst, dtype=gtrace.dtype)  # phi' of every live unit, if one value
    mx = mask ^ mask
    for l in range(layers - 1, 0, -1):
        n_in = widths[l]
        n_out = widths[l + 1]
        w = params[woff[l]:woff[l] + n_in * n_out].reshape((n_in, n_out))
        for s in range(s0, s1):
            g = gtrace[goff[l] + s * n_out:goff[l] + (s + 1) * n_out]
            n = 0
            if l == layers - 1:  # the logits' deltas
                for j in range(n_out):
                    gidx[n] = j
                    gval[n] = g[j]
                    n += g[j] != 0
            else:  # nonzero at most where phi' != 0 in the layer above
                above = live_start[l, s]
                for u in range(nlive[l, s]):
                    j = live_idx[above + u]
                    gidx[n] = j
                    gval[n] = g[j]
                    n += g[j] != 0
            out = gtrace[goff[l - 1] + s * n_in:goff[l - 1] + (s + 1) * n_in]
            for k in range(n_in):
                out[k] = 0
            here = live_start[l - 1, s]
            m = nlive[l - 1, s]
            kidx = live_idx[here:here + m]  # the units that can carry a gradient, and phi'
            dd = live_d[here:here + m] if dconst == 0 else same[:m]
            if n == 0:
                continue
            if 4 * n < n_out:  # few live deltas: gather them, eight rows at a time (eight
                # independent sums in flight; one sum alone waits on each addition)
                t = 0
                j0 = gidx[0]
                v0 = gval[0]
                while t + 8 <= m:
                    ka, kb, kc, kd = kidx[t], kidx[t + 1], kidx[t + 2], kidx[t + 3]
                    ke, kf, kg, kh = kidx[t + 4], kidx[t + 5], kidx[t + 6], kidx[t + 7]
                    wa, wb, wc, wd = w[ka], w[kb], w[kc], w[kd]
                    we, wf, wg, wh = w[ke], w[kf], w[kg], w[kh]
                    aa, ab, ac, ad = wa[j0] * v0, wb[j0] * v0, wc[j0] * v0, wd[j0] * v0
                    ae, af, ag, ah = we[j0] * v0, wf[j0] * v0, wg[j0] * v0, wh[j0] * v0
                    for u in range(1, n):
                        j = gidx[u]
                        gv = gval[u]
                        aa += wa[j] * gv
                        ab += wb[j] * gv
                        ac += wc[j] * gv
                        ad += wd[j] * gv
                        ae += we[j] * gv
                        af += wf[j] * gv
                        ag += wg[j] * gv
                        ah += wh[j] * gv
                    out[ka] = aa * dd[t]
                    out[kb] = ab * dd[t + 1]
                    out[kc] = ac * dd[t + 2]
                    out[kd] = ad * dd[t + 3]
                    out[ke] = ae * dd[t + 4]
                    out[kf] = af * dd[t + 5]
                    out[kg] = ag * dd[t + 6]
                    out[kh] = ah * dd[t + 7]
                    t += 8
                while t + 4 <= m:
                    ka, kb, kc, kd = kidx[t], kidx[t + 1], kidx[t + 2], kidx[t + 3]
                    wa, wb, wc, wd = w[ka], w[kb], w[kc], w[kd]
                    aa, ab, ac, ad = wa[j0] * v0, wb[j0] * v0, wc[j0] * v0, wd[j0] * v0
                    for u in range(1, n):
                        j = gidx[u]
                        gv = gval[u]
                        aa += wa[j] * gv
                        ab += wb[j] * gv
                        ac += wc[j] * gv
                        ad += wd[j] * gv
                    out[ka] = aa * dd[t]
                    out[kb] = ab * dd[t + 1]
                    out[kc] = ac * dd[t + 2]
                    out[kd] = ad * dd[t + 3]
                    t += 4
                while t < m:
                    k = kidx[t]
                    wk = w[k]
                    acc = wk[j0] * v0
                    for u in range(1, n):
                        acc += wk[gidx[u]] * gval[u]
                    out[k] = acc * dd[t]
                    t += 1
            else:  # a contiguous dot product per live row (a gather per term costs more
                # than the zeros it skips)
                for t in range(m):
                    k = kidx[t]
                    out[k] = _dot(w[k], g, n_out) * dd[t]
            ob = gbits[goff[l - 1] + s * n_in:goff[l - 1] + (s + 1) * n_in]
            for k in range(n_in):
                bk = ob[k] & mask
                mx = bk if bk > mx else mx
    gmax[c] = mx


#: What the update pass does with each row of the gradient it forms: write it (the
#: gradient), plain SGD, SGD with momentum, Adam; or nothing (its norm only).
WRITE, SGD, MOMENTUM, ADAM, NORMS = 0, 1, 2, 3, 4


def _apply_row(mode, acc, w, m, v, k):
    """Row update of ``mode`` from the gradient row ``acc`` (see :func:`_update_kernel`).
    Each operation is the one numpy's step does, in the same order and precision (no fused
    multiply-add: numba contracts nothing without fastmath), so that the two agree bit for
    bit. (No running maximum here: a reduction in the loop stops it vectorising, 5x.)"""
    n = w.shape[0]
    if mode == WRITE:
        for j in range(n):
            w[j] = acc[j]
    elif mode == SGD:  # w <- dW * (-lr) + w
        nlr = k[0]
        for j in range(n):
            w[j] = acc[j] * nlr + w[j]
    elif mode == NORMS:
        pass
    elif mode == MOMENTUM:  # m <- mu m + g; w <- w - lr m
        mu, lr = k[0], k[1]
        for j in range(n):
            mi = m[j] * mu + acc[j]
            m[j] = mi
            w[j] = w[j] - mi * lr
    else:  # Adam: m <- b1 m + c1 g; v <- b2 v + c2 g^2; w <- w - lr1 m / (r2 sqrt(v) + eps)
        b1, c1, b2, c2, r2, eps, lr1 = k[0], k[1], k[2], k[3], k[4], k[5], k[6]
        for j in range(n):
            gi = acc[j]
            mi = m[j] * b1 + c1 * gi
            vi = v[j] * b2 + gi * gi * c2
            m[j] = mi
            v[j] = vi
            w[j] = w[j] - mi / (np.sqrt(vi) * r2 + eps) * lr1


def _dot(a, b, n):
    """sum_j a[j] b[j], j < n, compiled with reassociation so that it runs in vector
    lanes. It replaced eight scalar partial sums: the delta pass at s = 0.7 went from 28.8
    to 11.5 ms (``benchmarks/results/bench_epoch-depth30-s0.7-2026-12-07-*.txt``), and on
    that machine (AVX-512, 256-bit lanes) its sums were the old ones bit for bit (a
    throwaway A/B). Elsewhere the order is the compiled code's: fixed, the same for every
    sample."""
    acc = a[0] * 0
    for j in range(n):
        acc += a[j] * b[j]
    return acc


def _row_max(bits, mask, mx):
    """max(mx, the largest of ``bits & mask``): the largest |v| of a row of floats seen as
    unsigned integers (see :func:`_max_abs_kernel`)."""
    for j in range(bits.shape[0]):
        b = bits[j] & mask
        mx = b if b > mx else mx
    return mx


def _square_sum(row):
    """sum(row**2) in float64. Compiled with reassociation allowed (its own flags: it is
    not inlined by numba), so that the sum vectorises: 4x faster than one sum in order, and
    only a diagnostic (the norms of the gradient) depends on its order."""
    sq = 0.0
    for j in range(row.shape[0]):
        e = np.float64(row[j])
        sq += e * e
    return sq


def _update_kernel(in_start, counts, in_idx, in_val, gtrace, goff, batch, widths, woff, boff, items,
                   grad, from_grad, params, pbits, mask, m, v, mode, k, norms, wmax, csc_s, csc_v, ptrs,
                   accs, c, nchunks):
    """The gradient of each weight row, applied as it is formed: row k of dW^l is
    sum_s a^l[s, k] g^{l+1}[s, :] over the samples with a^l[s, k] != 0, summed in the order
    of s (db^l = sum_s g^{l+1}[s, :]); ``from_grad``: read the rows from ``grad`` instead
    (a gradient computed elsewhere). Each row then goes to :func:`_apply_row` with
    ``mode`` and the constants ``k`` (WRITE: ``params`` is the gradient's buffer; SGD:
    rows with no active sample are left alone); ``norms[c, l]`` adds the squared norm of
    each weight row (float64); momentum and Adam (which write every row) raise ``wmax[c]``
    to the largest |w| they write, as bits (``pbits``: ``params`` seen as unsigned
    integers; see :func:`_max_abs_kernel`), for the next step's bound.

    The active samples of each row come from the active units of each sample, which the
    forward pass listed (``in_idx``, ``in_val``, ``counts``), turned around by a counting sort: work
    in proportion to the nonzeros, not to batch x width. Thread c takes the items c,
    c + nchunks, ... of ``items`` (layer, first row, end row: a layer, or a block of a
    wide one), so the threads share nothing."""
    track = mode == MOMENTUM or mode == ADAM
    mx = mask ^ mask
    acc = accs[c]
    cs = csc_s[c]
    cv = csc_v[c]
    ptr = ptrs[c]
    for it in range(c, items.shape[0], nchunks):
        l = items[it, 0]
        r0 = items[it, 1]
        r1 = items[it, 2]
        nr = r1 - r0
        n_out = widths[l + 1]
        g = gtrace[goff[l]:goff[l] + batch * n_out].reshape((batch, n_out))
        row = acc[:n_out]
        if r0 == 0:  # the bias
            if from_grad:
                for j in range(n_out):
                    row[j] = grad[boff[l] + j]
            else:
                for j in range(n_out):
                    row[j] = 0
                for s in range(batch):
                    gs = g[s]
                    for j in range(n_out):
                        row[j] += gs[j]
            _apply_row(mode, row, params[boff[l]:boff[l] + n_out], m[boff[l]:boff[l] + n_out],
                       v[boff[l]:boff[l] + n_out], k)
            if track:
                mx = _row_max(pbits[boff[l]:boff[l] + n_out], mask, mx)
        if not from_grad:  # each row's active samples, in the order of s (counting sort)
            for r in range(nr + 1):
                ptr[r] = 0
            for s in range(batch):
                lst = in_idx[in_start[l, s]:in_start[l, s] + counts[l, s]]
                for t in range(lst.shape[0]):
                    kk = lst[t]
                    if r0 <= kk < r1:
                        ptr[kk - r0 + 1] += 1
            for r in range(nr):
                ptr[r + 1] += ptr[r]
            for s in range(batch):
                start = in_start[l, s]
                lst = in_idx[start:start + counts[l, s]]
                vals = in_val[start:start + counts[l, s]]
                for t in range(lst.shape[0]):
                    kk = lst[t]
                    if r0 <= kk < r1:
                        p = ptr[kk - r0]
                        cs[p] = s
                        cv[p] = vals[t]
                        ptr[kk - r0] = p + 1
            # ptr[r] is now the end of row r's list, and its start is ptr[r - 1] (0 for r = 0)
        for r in range(nr):
            start = woff[l] + (r0 + r) * n_out
            if from_grad:
                for j in range(n_out):
                    row[j] = grad[start + j]
            else:
                t = ptr[r - 1] if r > 0 else 0
                end = ptr[r]
                if mode == SGD and t == end:
                    continue
                for j in range(n_out):
                    row[j] = 0
                while t + 8 <= end:  # eight samples per pass over the row, added in order
                    v0, v1, v2, v3, v4, v5, v6, v7 = cv[t], cv[t + 1], cv[t + 2], cv[t + 3], cv[t + 4], cv[t + 5], cv[t + 6], cv[t + 7]
                    g0, g1, g2, g3 = g[cs[t]], g[cs[t + 1]], g[cs[t + 2]], g[cs[t + 3]]
                    g4, g5, g6, g7 = g[cs[t + 4]], g[cs[t + 5]], g[cs[t + 6]], g[cs[t + 7]]
                    for j in range(n_out):
                        row[j] = (((((((row[j] + v0 * g0[j]) + v1 * g1[j]) + v2 * g2[j]) + v3 * g3[j])
                                    + v4 * g4[j]) + v5 * g5[j]) + v6 * g6[j]) + v7 * g7[j]
                    t += 8
                while t + 4 <= end:
                    v0, v1, v2, v3 = cv[t], cv[t + 1], cv[t + 2], cv[t + 3]
                    g0, g1, g2, g3 = g[cs[t]], g[cs[t + 1]], g[cs[t + 2]], g[cs[t + 3]]
                    for j in range(n_out):
                        row[j] = (((row[j] + v0 * g0[j]) + v1 * g1[j]) + v2 * g2[j]) + v3 * g3[j]
                    t += 4
                while t < end:
                    v0 = cv[t]
                    g0 = g[cs[t]]
                    for j in range(n_out):
                        row[j] += v0 * g0[j]
                    t += 1
            norms[c, l] += _square_sum(row)
            _apply_row(mode, row, params[start:start + n_out], m[start:start + n_out],
                       v[start:start + n_out], k)
            if track:  # (the row is in L1: an integer maximum over it costs little)
                mx = _row_max(pbits[start:start + n_out], mask, mx)
    wmax[c] = mx


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


_COMPILED = {}
_SOURCES = {"forward": _forward_kernel, "delta": _delta_kernel, "update": _update_kernel,
            "max_abs": _max_abs_kernel}


def _compiled(name: str):
    """The numba kernel ``name``, compiled on first use (cached on disk by numba)."""
    if name not in _COMPILED:
        opts = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
        helpers = {"_act": numba.njit(inline="always", **opts)(_act),
                   "_apply_row": numba.njit(inline="always", **opts)(_apply_row),
                   "_square_sum": numba.njit(fastmath={"reassoc", "nsz"}, **opts)(_square_sum),
                   "_dot": numba.njit(fastmath={"reassoc", "nsz", "contract"}, **opts)(_dot),
                   "_row_max": numba.njit(inline="always", **opts)(_row_max)}
        source = _SOURCES[name]
        func = type(source)(source.__code__, {**source.__globals__, **helpers}, source.__name__)
        # the passes' multiply-adds as fused multiply-adds (one rounding, not two: 12-15%
        # faster on the forward pass, measured); the update pass keeps Adam's and SGD's
        # arithmetic exactly as the numpy reference rounds it
        fast = {"fastmath": {"contract"}} if name in ("forward", "delta") else {}
        _COMPILED[name] = numba.njit(**opts, **fast)(func)
    return _COMPILED[name]


#: Batches at least this large are split over the threads (each thread its own samples).
NUMBA_PARALLEL_FROM = 16
#: Large batches: a layer whose inputs have a smaller zero fraction than this is computed
#: by a BLAS matrix product instead (with 2 threads the dense product wins below ~0.7).
NUMBA_SPARSE_FROM = 0.65
#: The update pass splits a weight matrix of more rows than this into blocks (work items).
ITEM_ROWS = 512

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


def _unit_slope(table):
    """phi' on every piece where it is not 0, if that is one constant (the dtype's float),
    else 0: then the lists need not carry phi'."""
    if table.dcoef.shape[1] == 1:
        slopes = set(float(d) for d in table.dcoef[:, 0] if d != 0)
        if len(slopes) == 1:
            return table.dtype.type(slopes.pop())
    return table.dtype.type(0)


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


@dataclass(frozen=True)
class _Layout:
    """Offsets into the flat buffers, for one (widths, batch): of W^l and b^l in the
    parameters (``woff``, ``boff``), of each hidden layer's (batch, n) block in a trace
    (``toff``), of each layer's output deltas (``goff``) and of each layer's lists of
    active inputs (``ioff``); ``widths`` as an array."""

    woff: np.ndarray
    boff: np.ndarray
    widths: np.ndarray
    toff: np.ndarray
    goff: np.ndarray
    ioff: np.ndarray


_LAYOUTS: dict = {}


def _layout(widths, batch) -> _Layout:
    key = (tuple(widths), batch)
    got = _LAYOUTS.get(key)
    if got is None:
        woff, boff, _ = offsets(widths)
        w = np.asarray(widths, dtype=np.int64)

        def starts(sizes):
            return np.concatenate([[0], np.cumsum(sizes * batch)]).astype(np.int64)
        if len(_LAYOUTS) > 64:
            _LAYOUTS.clear()
        got = _LAYOUTS[key] = _Layout(woff, boff, w, starts(w[1:-1]), starts(w[1:]), starts(w[:-1]))
    return got


_ITEMS: dict = {}


def _items(widths):
    """The update pass's work items (layer, first row, end row): each weight matrix, in
    blocks of at most ``ITEM_ROWS`` rows, the largest first (so the threads end together)."""
    key = tuple(widths)
    if key not in _ITEMS:
        items = [(l, r, min(r + ITEM_ROWS, n_in)) for l, n_in in enumerate(widths[:-1])
                 for r in range(0, n_in, ITEM_ROWS)]
        items.sort(key=lambda it: -(it[2] - it[1]) * widths[it[0] + 1])
        if len(_ITEMS) > 64:
            _ITEMS.clear()
        _ITEMS[key] = np.array(items, dtype=np.int64).reshape(-1, 3)
    return _ITEMS[key]


def _threads(batch):
    """Threads for a batch: ``NUMBA_NUM_THREADS`` (every core unless that environment
    variable says otherwise) from NUMBA_PARALLEL_FROM samples on, else 1."""
    return min(numba.config.NUMBA_NUM_THREADS, batch) if batch >= NUMBA_PARALLEL_FROM else 1


_BITS = {4: (np.uint32, 0x7FFFFFFF), 8: (np.uint64, 0x7FFFFFFFFFFFFFFF)}


def _bits(a):
    """``a`` seen as unsigned integers of its width, and the mask that clears their sign
    bit: with it, IEEE floats order as their bit patterns (inf and NaN above all others)."""
    kind, mask = _BITS[a.dtype.itemsize]
    return a.view(kind), kind(mask)


def _worst(maxima, dtype) -> float:
    """The largest of per-thread maxima kept as bits (:func:`_bits`), inf if it is NaN or
    infinite."""
    v = float(np.max(maxima).view(dtype))
    return v if math.isfinite(v) else math.inf


def _arrays(widths, batch, dtype, keep):
    """Fresh arrays for a forward pass that keeps ``keep`` (see :func:`_forward_kernel`)."""
    lay = _layout(widths, batch)
    dtype = np.dtype(dtype)
    dense = int(lay.toff[-1]) if keep == 1 else 0
    hidden = int(lay.toff[-1]) if keep == 2 else 0
    inputs = int(lay.ioff[-1]) if keep == 2 else 0
    layers = len(widths) - 1
    return dict(trace_h=np.empty(dense, dtype), trace_a=np.empty(dense, dtype),
                in_idx=np.empty(inputs, np.int32), in_val=np.empty(inputs, dtype),
                live_idx=np.empty(hidden, np.int32), live_d=np.empty(hidden, dtype),
                counts=np.empty((layers, batch), np.int64), nlive=np.empty((layers, batch), np.int64),
                in_start=np.empty((layers, batch), np.int64), live_start=np.empty((layers, batch), np.int64),
                logits=np.empty((batch, widths[-1]), dtype), bufs=np.empty((2, batch, max(widths[1:])), dtype),
                amax=np.zeros(numba.config.NUMBA_NUM_THREADS, _BITS[dtype.itemsize][0]))


def _list_rows(a, counts, starts, idx, vals, offset):
    """The nonzeros of each row of ``a`` (batch, width) as lists packed from ``offset``:
    their number into ``counts``, where each starts into ``starts``, their columns and
    values into ``idx``, ``vals`` (what the kernels write for a layer they compute, done
    here for one computed by BLAS)."""
    counts[:] = np.count_nonzero(a, axis=1)
    starts[:] = offset + np.concatenate([[0], np.cumsum(counts[:-1])])
    rows, cols = np.nonzero(a)
    idx[offset:offset + cols.size] = cols
    vals[offset:offset + cols.size] = a[rows, cols]


def _forward_into(x, buffer, widths, table, keep, arrays):
    """The compiled forward pass into ``arrays`` (:func:`_arrays`, :func:`_workspace`;
    ``keep`` as in :func:`_forward_kernel`)."""
    batch = x.shape[0]
    layers = len(widths) - 1
    lay = _layout(widths, batch)
    nchunks = _threads(batch)
    ar = arrays
    ar["amax"][:] = 0
    bbits, mask = _bits(ar["bufs"])
    args = (lay.woff, lay.boff, lay.widths, table.ends, table.coef, table.dcoef, _linear(table))
    tail = (ar["logits"], keep, lay.toff, ar["trace_h"], ar["trace_a"], lay.ioff, ar["counts"], ar["in_start"],
            ar["in_idx"], ar["in_val"], ar["live_start"], ar["live_idx"], ar["live_d"], ar["nlive"],
            _unit_slope(table), ar["amax"])
    bufs = ar["bufs"]
    if nchunks == 1:  # small batches: always sparse (at batch 1 it reads fewer rows)
        _run("forward", (x, buffer, *args, 0, layers, bufs, bbits, mask, *tail), 1)
        return
    l = 0
    layers_w = _views(buffer, widths)
    toff = lay.toff
    while l < layers:
        # the first layer is always ours: a BLAS call before our threads run leaves its
        # workers spinning for work, on the cores our threads need (measured: it made the
        # sparse layers after it 2-3x slower)
        a = x if l == 0 else bufs[l % 2, :, :widths[l]]
        if l > 0 and np.count_nonzero(a) > (1 - NUMBA_SPARSE_FROM) * a.size:  # a dense layer: BLAS
            w, b = layers_w[l]
            h = a @ w
            h += b
            if keep == 2:
                _list_rows(a, ar["counts"][l], ar["in_start"][l], ar["in_idx"], ar["in_val"], lay.ioff[l])
            else:
                ar["counts"][l] = np.count_nonzero(a, axis=1)
            if l == layers - 1:
                ar["logits"][...] = h
                return
            act = table.phi(h)
            bufs[(l + 1) % 2, :, :widths[l + 1]] = act
            if keep == 1:
                ar["trace_h"][toff[l]:toff[l + 1]] = h.ravel()
                ar["trace_a"][toff[l]:toff[l + 1]] = act.ravel()
            if keep == 2:
                _list_rows(table.dphi(h), ar["nlive"][l], ar["live_start"][l], ar["live_idx"], ar["live_d"], toff[l])
                amax = ar["amax"]
                amax[0] = max(amax[0], np.array(max_abs(act), dtype=act.dtype).view(amax.dtype))
            l += 1
            continue
        # sparse from here on: the first layer alone (to measure its output), the rest in one call
        stop = 1 if l == 0 else layers
        _run("forward", (x, buffer, *args, l, stop, bufs, bbits, mask, *tail), nchunks)
        l = stop


def numba_forward(x, buffer, widths, table, keep):
    x = np.ascontiguousarray(x)
    batch = x.shape[0]
    arrays = _arrays(widths, batch, x.dtype, 1 if keep else 0)
    _forward_into(x, buffer, widths, table, 1 if keep else 0, arrays)
    logits, counts = arrays["logits"], arrays["counts"]
    if not keep:
        return logits, Trace([], [], None, counts)
    toff = _layout(widths, batch).toff
    trace_h, trace_a = arrays["trace_h"], arrays["trace_a"]
    hidden = widths[1:-1]
    hs = [trace_h[toff[i]:toff[i + 1]].reshape(batch, n) for i, n in enumerate(hidden)]
    acts = [trace_a[toff[i]:toff[i + 1]].reshape(batch, n) for i, n in enumerate(hidden)]
    return logits, Trace(hs, acts, (trace_h, trace_a), counts)


def _deltas(x, buffer, widths, table, g, work):
    """Fill ``work["gtrace"]`` (flat, ``goff`` layout) with g^{l+1} (batch, n_{l+1}) for
    l = 0 .. L: the hidden layers' deltas, then ``g`` = dL/dlogits; ``work["gmax"][c]``:
    the largest |g| thread c formed, as bits (:func:`_bits`)."""
    batch = x.shape[0]
    lay = _layout(widths, batch)
    gtrace, gmax = work["gtrace"], work["gmax"]
    gtrace[lay.goff[len(widths) - 2]:] = np.asarray(g, dtype=x.dtype).ravel()
    gmax[:] = 0
    gbits, mask = _bits(gtrace)
    _run("delta", (buffer, lay.woff, lay.widths, work["live_start"], work["live_idx"], work["live_d"], work["nlive"],
                   _unit_slope(table),
                   gtrace, lay.goff, batch, gbits, mask, gmax), _threads(batch))


def _update(batch, widths, buffer, mode, consts, m, v, work, grad=None):
    """The update pass (:func:`_update_kernel`) over every weight and bias, from the
    lists and deltas in ``work`` (or from ``grad``): (the squared gradient norm of each
    weight matrix, the largest |w| written by momentum or Adam, else None)."""
    lay = _layout(widths, batch)
    items = _items(widths)
    nchunks = max(1, min(_threads(batch) if grad is None else numba.config.NUMBA_NUM_THREADS, len(items)))
    norms, wmax = work["norms"], work["wmax"]
    norms[...] = 0
    dummy = buffer[:0]
    pbits, mask = _bits(buffer)
    _run("update", (work["in_start"], work["counts"], work["in_idx"], work["in_val"], work["gtrace"], lay.goff,
                    batch, lay.widths, lay.woff, lay.boff, items, dummy if grad is None else grad, grad is not None,
                    buffer, pbits, mask, dummy if m is None else m, dummy if v is None else v, mode,
                    np.asarray(consts, dtype=buffer.dtype), norms, wmax, work["csc_s"], work["csc_v"], work["ptrs"],
                    work["accs"]), nchunks)
    written = _worst(wmax[:nchunks], buffer.dtype) if mode in (MOMENTUM, ADAM) else None
    return norms[:nchunks].sum(axis=0), written


def max_abs(a) -> float:
    """The largest |v| of a float array (inf if it holds inf or NaN), by the compiled
    integer scan of :func:`_max_abs_kernel`."""
    a = np.ascontiguousarray(a).ravel()
    if a.size == 0:
        return 0.0
    bits, mask = _bits(a)
    nchunks = min(numba.config.NUMBA_NUM_THREADS, 8) if a.size >= 1 << 20 else 1
    out = np.zeros(nchunks, dtype=bits.dtype)
    _run("max_abs", (bits, mask, out), nchunks)
    return _worst(out, a.dtype)


_WORK = threading.local()


def _workspace(widths, batch, dtype):
    """Arrays of the training step, kept per thread and per (widths, batch, dtype) so that
    a step does not fault in fresh pages (none of them leaves this module); the two most
    recent shapes are kept (a training batch, and the batch-free one of apply_gradient)."""
    key = (tuple(widths), batch, np.dtype(dtype))
    kept = getattr(_WORK, "kept", None)
    if kept is None:
        kept = _WORK.kept = {}
    work = kept.pop(key, None)
    if work is None:
        lay = _layout(widths, batch)
        threads = numba.config.NUMBA_NUM_THREADS
        rows = min(max(widths[:-1]), ITEM_ROWS)
        bits = _BITS[np.dtype(dtype).itemsize][0]
        work = dict(_arrays(widths, batch, dtype, 2), gtrace=np.empty(int(lay.goff[-1]), dtype),
                    gmax=np.zeros(threads, bits), wmax=np.zeros(threads, bits),
                    norms=np.zeros((threads, len(widths) - 1)),
                    csc_s=np.empty((threads, rows * batch), np.int32),
                    csc_v=np.empty((threads, rows * batch), dtype),
                    ptrs=np.empty((threads, rows + 1), np.int64),
                    accs=np.empty((threads, max(widths[1:])), dtype))
        while len(kept) >= 2:
            kept.pop(next(iter(kept)))
    kept[key] = work  # the most recent last
    return work


@dataclass(frozen=True)
class Step:
    """What :func:`fused_step` did. ``status``: "ok" (the update was applied), "forward"
    (the logits are not finite; nothing was written), "unsafe" (``safe`` could not prove
    the update finite; nothing was written, the caller takes the checked path). ``loss``:
    the batch loss before the step (None if the forward pass failed); ``bound``: a bound
    on |every gradient entry|; ``norms``: the squared gradient norm of each weight matrix;
    ``w_max``: the largest |w| the update wrote (momentum and Adam, which write them all)."""

    status: str
    loss: float | None = None
    bound: float = math.inf
    norms: np.ndarray | None = None
    w_max: float | None = None


def _gradient_pass(x, buffer, widths, table, loss_and_grad, profile=None):
    """Forward (keeping the lists) and deltas into the workspace: (workspace, loss, bound),
    or (None, None, inf) where the logits are not finite. The bound is batch * A * G with
    A = max |a| over the inputs and hidden activations and G = max |g| over all deltas
    (both kept by the passes as they run), raised by (1 + (batch + 1) eps): no partial sum
    of a gradient entry (at most batch terms, each at most A G) exceeds it, rounding
    included. ``profile``: a dict that receives the seconds of each phase."""
    clock = time.perf_counter
    t0 = clock()
    batch = x.shape[0]
    work = _workspace(widths, batch, x.dtype)
    _forward_into(x, buffer, widths, table, 2, work)
    logits = work["logits"]
    if not np.all(np.isfinite(logits)):
        return None, None, math.inf
    t1 = clock()
    loss, g = loss_and_grad(logits)
    t2 = clock()
    _deltas(x, buffer, widths, table, g, work)
    t3 = clock()
    a_max = max(max_abs(x), _worst(work["amax"], x.dtype))
    bound = batch * a_max * max(max_abs(g), _worst(work["gmax"], x.dtype))
    bound *= 1 + (batch + 1) * float(np.finfo(x.dtype).eps)
    if profile is not None:
        profile.update(forward=t1 - t0, loss=t2 - t1, deltas=t3 - t2, bound=clock() - t3)
    return work, loss, (bound if math.isfinite(bound) else math.inf)  # (0 * inf would be NaN)


def fused_step(x, buffer, widths, table, loss_and_grad, mode, consts=(0,), m=None, v=None,
               safe=lambda bound: True, profile=None) -> Step:
    """One training step of the compiled passes: the forward pass, ``loss, g =
    loss_and_grad(logits)``, the deltas, then the update pass, in which each row of the
    gradient is applied (``mode``, ``consts``, ``m``, ``v``: see :func:`_apply_row`) as
    soon as it is formed: no gradient buffer, one pass over the parameters and the
    optimiser's state. Nothing is written unless ``safe(bound)`` (the optimiser's own
    test that what it writes stays finite, given the bound of :func:`_gradient_pass`).

    ``profile``: a dict that receives the seconds of each phase (forward, loss, deltas,
    bound, safe, update; if it holds the key ``gradient`` on the way in, the update pass
    is run once more beforehand, forming the rows and their norms only, which writes
    nothing, and ``gradient`` receives its seconds) and the work done:
    ``forward_terms`` (multiply-adds of the forward pass: active inputs times layer
    width), ``delta_terms`` (multiply-adds of the
    deltas, at most: units with phi' != 0 times nonzero deltas of the layer above) and
    ``update_terms`` (multiply-adds forming the weight gradient, as many as forward)."""
    x = np.ascontiguousarray(x)
    work, loss, bound = _gradient_pass(x, buffer, widths, table, loss_and_grad, profile)
    if work is None:
        return Step("forward")
    t0 = time.perf_counter()
    ok = safe(bound)
    t1 = time.perf_counter()
    if not ok:
        return Step("unsafe", loss, bound)
    if profile is not None:
        profile["safe"] = t1 - t0
    if profile is not None and "gradient" in profile:  # the same pass forming the rows and
        # their norms only (it writes nothing): the weight gradient's part of the update
        _update(x.shape[0], widths, buffer, NORMS, (0,), None, None, work)
        t2 = time.perf_counter()
        profile["gradient"] = t2 - t1
        t1 = t2
    norms, written = _update(x.shape[0], widths, buffer, mode, consts, m, v, work)
    if profile is not None:
        profile["update"] = time.perf_counter() - t1
        w = np.asarray(widths, dtype=np.float64)
        counts, live = work["counts"].astype(np.float64), work["nlive"][:-1].astype(np.float64)
        terms = float(np.sum(counts.sum(axis=1) * w[1:]))
        profile.update(forward_terms=terms, update_terms=terms,
                       delta_terms=float(np.sum(live[:-1] * live[1:]) + np.sum(live[-1]) * w[-1]))
    return Step("ok", loss, bound, norms, written)


def numba_gradient(x, buffer, widths, table, loss_and_grad, out) -> Step:
    """dL/dparameters into ``out`` by the compiled passes (:func:`fused_step` in WRITE
    mode, with ``out`` in place of the parameters). Status "unsafe": the gradient may have
    overflowed (it was written all the same: the caller checks it)."""
    x = np.ascontiguousarray(x)
    work, loss, bound = _gradient_pass(x, buffer, widths, table, loss_and_grad)
    if work is None:
        return Step("forward")
    norms = _update(x.shape[0], widths, out, WRITE, (0,), None, None, work)[0]
    return Step("ok" if bound < float(np.finfo(x.dtype).max) / 4 else "unsafe", loss, bound, norms)


def apply_gradient(grad, buffer, widths, mode, consts, m=None, v=None):
    """The update pass for a gradient already in ``grad`` (flat, the parameters' layout):
    (the squared norm of each weight matrix, the largest |w| written by momentum or Adam).
    The caller has made sure that the update stays finite."""
    return _update(0, widths, buffer, mode, consts, m, v, _workspace(widths, 0, buffer.dtype), grad=grad)


def layer_norms(grad, widths) -> np.ndarray:
    """The squared norm of each weight matrix of a gradient (float64), in one pass."""
    return apply_gradient(grad, grad, widths, NORMS, (0,))[0]


def numba_backward(x, buffer, widths, table, trace, g, grad):
    """dL/dparameters into ``grad`` from a forward trace (of any backend) and g = dL/dlogits:
    the lists the compiled forward pass would have kept, made from the trace, then the
    compiled deltas and update pass."""
    x = np.ascontiguousarray(x)
    batch = x.shape[0]
    lay = _layout(widths, batch)
    work = dict(_workspace(widths, batch, x.dtype))  # its arrays, these lists
    for l in range(len(widths) - 1):
        a = x if l == 0 else trace.post[l - 1]
        _list_rows(np.asarray(a, dtype=x.dtype), work["counts"][l], work["in_start"][l], work["in_idx"],
                   work["in_val"], lay.ioff[l])
        if l < len(widths) - 2:
            _list_rows(table.dphi(trace.pre[l]), work["nlive"][l], work["live_start"][l], work["live_idx"],
                       work["live_d"], lay.toff[l])
    _deltas(x, buffer, widths, table, g, work)
    _update(batch, widths, grad, WRITE, (0,), None, None, work)
