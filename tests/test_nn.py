r"""Verification of ``meanfield.nn`` (the numpy MLP with dense and sparse passes).

Everything here is checked against things computed in this file, never against values
the code under test produced on its own:

1. **Sparse = dense.** The ``numpy`` and ``numba`` sparse passes agree with the ``dense``
   pass on the logits, on every layer of the trace and on every gradient, for random
   networks (every built-in activation with random valid parameters, depth 1..8 and a few
   deep EoC networks, uniform and non-uniform widths, batch 1, 2..15 and 16..40 -- the
   compiled pass runs samples in parallel from 16 --, float32 and float64), including
   networks where units or whole layers are switched off (forward- or backward-dead).
   Forward tolerances are elementwise against :math:`T^l`, the same network run with
   :math:`|W|`, :math:`|b|`, :math:`|x|` and the identity activation (every built-in has
   :math:`|\phi(h)|\le|h|`, :math:`|\phi'|\le1`, so :math:`T^l` bounds :math:`|h^l|` and
   the rounding error of any summation order is a few :math:`n\epsilon T^l`); gradient
   tolerances are relative to the largest entry of each array.
2. **An independent reference**: a per-sample forward/backward written here with
   broadcasting sums and outer products, ``Activation.__call__``/``derivative`` (checked
   against closed forms) and its own log-sum-exp, and its own slicing of the flat buffer.
3. **Finite differences** (float64, central, step 1e-6) of the loss for every built-in
   activation, on small networks whose pre-activations all lie at least ``KINK_MARGIN``
   from a breakpoint (checked, else the example is redrawn) and whose pieces are unchanged
   by the perturbation: random single parameters (one in every weight matrix and bias)
   and directional derivatives along random directions.
4. **Initialisation statistics** by chi-square tests whose bounds come from the sample
   size (two-sided level ``ALPHA`` each): :math:`W^l` has variance
   :math:`\sigma_w^2/n_l`, :math:`b^l` variance :math:`\sigma_b^2`, the first layer gives
   normalised inputs the pre-activation variance :math:`q^*`; seeds reproduce the buffer
   (float32 = the float64 draw rounded), different seeds differ.
5. **Hostile arguments** to ``initialise``, ``forward``, ``trace``, ``gradients``,
   ``sgd_step``: a :class:`~meanfield.errors.ParameterError` naming the parameter, or a
   finite result when the value is valid; parameters are untouched by a failed call.
6. **SGD** decreases the loss of a fixed batch by the first-order amount
   :math:`\eta|g|^2` (fails if the gradient is wrong, not just its sign).

The tests at the end (section "regressions") each showed a bug, since fixed.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import time
from decimal import Decimal
from functools import lru_cache

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from scipy import stats

from meanfield.testing.strategies import examples
from meanfield.activations import BUILTIN
from meanfield.eoc import eoc_parameters
from meanfield.errors import ParameterError
from meanfield.maps import Initialisation
from meanfield.nn import MLP, available_backends, normalise_inputs
from meanfield.nn import _kernels as K
from meanfield.nn import mlp as mlp_module

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
SPARSE = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not HAVE_NUMBA, reason="numba is not installed"))]
ALL_BACKENDS = ["dense"] + SPARSE
ACTIVATIONS = tuple(BUILTIN)  # every built-in, so a new one is tested without touching this file

#: Forward: |sparse - dense| <= RTOL * T elementwise (T: the |W|, |b|, |x| network).
FORWARD_RTOL = {np.float64: 1e-10, np.float32: 2e-5}
#: Gradients: max |sparse - dense| <= RTOL * max |dense| per array.
GRAD_RTOL = {np.float64: 1e-10, np.float32: 2e-4}
#: ... or RTOL * FLOOR * (the same sum over |terms|) where that is larger (cancellation):
#: float64 1e-13, float32 2e-5 of the absolute sum -- 100x / 10x a worst-case n*eps for n <= 40.
GRAD_FLOOR = {np.float64: 1e-3, np.float32: 0.1}
#: Finite differences: no pre-activation closer than this (times max(1, |h|)) to a kink.
KINK_MARGIN = 1e-4
FD_STEP = 1e-6
#: Two-sided level of each chi-square / z test of the initialisation statistics.
ALPHA = 1e-7


def test_numba_availability_is_reported():
    assert ("numba" in available_backends()) == HAVE_NUMBA
    assert {"dense", "numpy"} <= set(available_backends())


def test_numba_is_installed_with_the_package():
    """numba is a dependency (a plain install gets the compiled passes): the test command
    installs the package as a user would, so its absence here is a packaging fault."""
    assert HAVE_NUMBA
    assert mlp_module.describe_backend().startswith("numba (compiled sparse passes")


def test_without_numba_one_warning_says_what_is_lost(monkeypatch):
    """Where numba cannot be imported: the numpy passes, and one warning, once per
    process, in one line, saying what is lost and how to get it back."""
    import warnings
    monkeypatch.setattr(K, "HAVE_NUMBA", False)
    monkeypatch.setattr(K, "NUMBA_ERROR", "ModuleNotFoundError: No module named 'numba'")
    monkeypatch.setattr(mlp_module, "_warned", False)
    monkeypatch.delenv("MEANFIELD_NN_BACKEND", raising=False)
    net = MLP.initialise(Initialisation("cst", 3.0, 0.3, {"tau": 1.0, "m": 1.5}), width=8, depth=2,
                         input_dim=4, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            net.forward(np.ones((2, 4)))
    assert len(caught) == 1 and caught[0].category is mlp_module.PerformanceWarning
    message = str(caught[0].message)
    assert "\n" not in message and "numpy" in message and "pip install numba" in message
    assert "No module named 'numba'" in message
    assert mlp_module.describe_backend() == ("numpy (vectorized sparse passes; numba is missing: "
                                            "ModuleNotFoundError: No module named 'numba')")
    with pytest.raises(ParameterError, match="backend 'numba' needs numba"):
        net.forward(np.ones((2, 4)), backend="numba")


# -- helpers written here (not the package's) -----------------------------------------------
def layout(buffer, widths):
    """(W^l, b^l) from the documented flat layout W^0, b^0, W^1, b^1, ... (row-major)."""
    out, o = [], 0
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        w = buffer[o:o + n_in * n_out].reshape(n_in, n_out)
        o += n_in * n_out
        out.append((w, buffer[o:o + n_out]))
        o += n_out
    assert o == buffer.size, "buffer size does not match the widths"
    return out


def breakpoints(act, params):
    """Float64 breakpoints of the activation (piece i: ends[i-1] < h <= ends[i])."""
    return np.array([hi for _, hi, _ in act.numeric_pieces(False, **params)[:-1]], dtype=float)


def piece_index(ends, h):
    return np.searchsorted(ends, h, side="left")


def magnitude_bounds(net, x):
    """T^l for l = 1..L+1: the network run with |W|, |b|, |x| and phi = identity."""
    t = np.abs(np.asarray(x, dtype=np.float64).reshape(-1, net.widths[0]))
    out = []
    for w, b in layout(net.buffer.astype(np.float64), net.widths):
        t = t @ np.abs(w) + np.abs(b)
        out.append(t)
    return out


def closed_form(name, params, h, derivative=False):
    """The built-ins from their definitions (Price et al. 2024, section 2)."""
    tau = float(params.get("tau", 0.0))
    m = float(params.get("m", 0.0))
    alpha = float(params.get("alpha", 0.0))
    h = np.asarray(h, dtype=float)
    if name == "relu0":
        return (h > 0) * 1.0 if derivative else np.maximum(h, 0)
    if name == "relu":
        return (h > tau) * 1.0 if derivative else np.maximum(h - tau, 0)
    if name == "st":
        return (np.abs(h) > tau) * 1.0 if derivative else np.sign(h) * np.maximum(np.abs(h) - tau, 0)
    if name == "crelu":
        if derivative:
            return ((h > tau) & (h < tau + m)) * 1.0
        return np.minimum(np.maximum(h - tau, 0), m)
    if name == "cst":
        if derivative:
            return ((np.abs(h) > tau) & (np.abs(h) < tau + m)) * 1.0
        return np.sign(h) * np.minimum(np.maximum(np.abs(h) - tau, 0), m)
    if name == "hard_tanh":
        return ((h > -1) & (h < 1)) * 1.0 if derivative else np.clip(h, -1, 1)
    if name == "leaky_relu":
        return np.where(h > 0, 1.0, alpha) if derivative else np.maximum(h, alpha * h)
    raise AssertionError(name)


def reference_pass(net, x, labels):
    """Logits, pre-/post-activations, loss and gradients (float64), per sample.

    Own slicing of the buffer, broadcasting sums (not BLAS), ``Activation.__call__`` and
    ``derivative``, own log-sum-exp, outer-product backpropagation."""
    act, params = net.activation, net.parameters
    layers = [(w.astype(np.float64), b.astype(np.float64)) for w, b in layout(net.buffer, net.widths)]
    x = np.asarray(x, dtype=np.float64).reshape(-1, net.widths[0])
    batch, n_layers = x.shape[0], len(layers)
    a, pre, post = x, [], []
    for i, (w, b) in enumerate(layers):
        h = (a[:, :, None] * w[None, :, :]).sum(axis=1) + b
        if i == n_layers - 1:
            logits = h
            break
        a = act(h, **params)
        pre.append(h)
        post.append(a)
    losses, dlogits = [], np.empty_like(logits)
    for s in range(batch):
        z = logits[s]
        top = z.max()
        lse = top + math.log(math.fsum(math.exp(v - top) for v in z))
        losses.append(lse - z[labels[s]])
        p = np.exp(z - lse)
        p[labels[s]] = 0.0
        p[labels[s]] = -math.fsum(p)  # p_label - 1 without cancellation
        dlogits[s] = p / batch
    dphi = [act.derivative(h, **params) for h in pre]
    gw = [np.zeros_like(w) for w, _ in layers]
    gb = [np.zeros_like(b) for _, b in layers]
    for s in range(batch):
        g = dlogits[s]
        for i in range(n_layers - 1, -1, -1):
            a_in = x[s] if i == 0 else post[i - 1][s]
            gw[i] += np.outer(a_in, g)
            gb[i] += g
            if i:
                g = (layers[i][0] * g).sum(axis=1) * dphi[i - 1][s]
    return dict(logits=logits, pre=pre, post=post, loss=math.fsum(losses) / batch, gw=gw, gb=gb)


def own_loss(logits, labels):
    z = np.asarray(logits, dtype=np.float64)
    return math.fsum(
        float(np.logaddexp.reduce(z[s]) - z[s, labels[s]]) for s in range(z.shape[0])) / z.shape[0]


def assert_scaled(actual, expected, scale, rtol, what):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert np.all(np.isfinite(actual)), f"{what}: not finite"
    err = np.abs(actual - expected)
    bad = err > rtol * scale
    if bad.any():
        ratio = np.max(err / np.maximum(scale, 1e-300))
        raise AssertionError(f"{what}: {bad.sum()} of {bad.size} entries off, worst |err|/scale = "
                             f"{ratio:.3g} (rtol {rtol:g})")


def assert_normwise(actual, expected, rtol, what, floor=0.0):
    """max |actual - expected| <= rtol * max(max |expected|, floor) over the array."""
    expected = np.asarray(expected, dtype=np.float64)
    assert_scaled(actual, expected, max(float(np.max(np.abs(expected), initial=0.0)), floor), rtol, what)


def gradient_scales(net, x, labels, pre, post, logits):
    """Per layer (max S_W, max S_b): the gradient sums taken over |terms| -- |a| (x) G and
    G, G^L = |p - onehot| / batch, G^l = |phi'(h^l)| (G^{l+1} |W^l|^T). A gradient entry that
    cancels to ~0 (e.g. the output bias of a balanced batch at zero logits) can only be
    compared up to rounding at this scale. phi' by ``Activation.derivative`` (its piece
    convention at a breakpoint is the network's: h = 0 exactly is on the left piece)."""
    layers = layout(net.buffer.astype(np.float64), net.widths)
    x = np.asarray(x, dtype=np.float64).reshape(-1, net.widths[0])
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(x)), labels] -= 1
    g = np.abs(p) / len(x)
    out = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        a = np.abs(x) if i == 0 else np.abs(np.asarray(post[i - 1], dtype=np.float64))
        out[i] = (float(np.max(a.T @ g, initial=0.0)), float(np.max(g.sum(axis=0), initial=0.0)))
        if i:
            d = np.abs(net.activation.derivative(np.asarray(pre[i - 1], dtype=np.float64), **net.parameters))
            g = (g @ np.abs(layers[i][0]).T) * d
    return out


def dead_value(act, params):
    """A pre-activation inside a constant piece (phi' = 0) at least 0.01 wide, preferring
    a piece where phi = 0 (forward-dead); None if there is none."""
    best = None
    for lo, hi, poly in act.numeric_pieces(False, **params):
        if poly.order > 0 or np.any(poly.coeffs[:-1]):
            continue
        if hi - lo < 0.01:
            continue
        v = hi - 1.0 if lo == -math.inf else lo + 1.0 if hi == math.inf else (lo + hi) / 2
        if best is None or (poly(v) == 0 and best[1] != 0):
            best = (v, poly(v))
    return None if best is None else best[0]


# -- strategies ------------------------------------------------------------------------------
TAU = st.one_of(st.just(0.0), st.floats(0.01, 2.0))
PARAM_STRATEGIES = {"tau": TAU, "m": st.floats(0.05, 3.0),
                    "alpha": st.one_of(st.just(0.0), st.floats(1e-6, 1.0), st.floats(-1.0, -1e-6))}


def test_every_builtin_parameter_has_a_strategy():
    assert set(BUILTIN) == set(ACTIVATIONS)
    for act in BUILTIN.values():
        assert {p.name for p in act.parameters} <= set(PARAM_STRATEGIES), act.name


@st.composite
def initialisations(draw, activations=ACTIVATIONS):
    name = draw(st.sampled_from(activations))
    act = BUILTIN[name]
    params = {p.name: draw(PARAM_STRATEGIES[p.name]) for p in act.parameters}
    sw2 = draw(st.floats(0.3, 4.0))
    sb2 = draw(st.one_of(st.just(0.0), st.floats(1e-3, 1.0)))
    return Initialisation(name, sw2, sb2, params)


BATCHES = st.one_of(st.just(1), st.integers(2, 15), st.integers(16, 40))


@st.composite
def cases(draw, max_depth=8, max_width=24, max_input=20, max_outputs=10, min_outputs=1, batches=BATCHES,
          dtypes=("float32", "float64"), activations=ACTIVATIONS, kill=True):
    """(net, x, labels): a random network, inputs (some entries, columns or rows zero) and
    labels; with ``kill``, some hidden units or whole layers are made dead (weights into
    them zero, bias inside a constant piece)."""
    init = draw(initialisations(activations))
    depth = draw(st.integers(1, max_depth))
    if draw(st.booleans()):
        width, d = draw(st.integers(1, max_width)), depth
    else:
        width, d = draw(st.lists(st.integers(1, max_width), min_size=depth, max_size=depth)), None
    input_dim = draw(st.integers(1, max_input))
    outputs = draw(st.integers(min_outputs, max_outputs))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**32))
    q_star = draw(st.one_of(st.none(), st.floats(float(init.sigma_b2) + 0.05, 5.0)))
    net = MLP.initialise(init, width=width, depth=d, input_dim=input_dim, outputs=outputs,
                         q_star=q_star, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    batch = draw(batches)
    x = rng.standard_normal((batch, input_dim))
    zeros = draw(st.sampled_from(["none", "entries", "columns", "row"]))
    if zeros == "entries":
        x[rng.random(x.shape) < draw(st.floats(0, 1))] = 0.0
    elif zeros == "columns":
        x[:, rng.random(input_dim) < draw(st.floats(0, 1))] = 0.0
    elif zeros == "row":
        x[rng.integers(batch)] = 0.0
    scale = np.sqrt(np.mean(x * x, axis=1, keepdims=True))
    x = np.divide(x, scale, out=np.zeros_like(x), where=scale > 0)
    labels = rng.integers(0, outputs, size=batch)
    dead = dead_value(net.activation, net.parameters)
    if kill and dead is not None:
        mode = draw(st.sampled_from(["none", "units", "layer"]))
        if mode != "none":
            hidden = range(net.depth)  # weights[i] feeds hidden layer i + 1
            for i in sorted(set(draw(st.lists(st.sampled_from(hidden), min_size=1, max_size=3)))):
                w, b = net.weights[i], net.biases[i]
                cols = (np.arange(w.shape[1]) if mode == "layer"
                        else np.flatnonzero(rng.random(w.shape[1]) < draw(st.floats(0, 1))))
                w[:, cols] = 0.0
                b[cols] = dead
            event(f"killed {mode}")
    return net, x, labels


# == 1. sparse passes agree with the dense pass ===============================================
def check_against_dense(net, x, labels, backend):
    dt = net.dtype.type
    t = magnitude_bounds(net, x)
    ends = breakpoints(net.activation, net.parameters).astype(net.dtype)
    logits_d, trace_d = net.trace(x, backend="dense")
    logits_s, trace_s = net.trace(x, backend=backend)
    assert logits_s.dtype == net.dtype and logits_s.shape == (len(x), net.widths[-1])
    assert_scaled(logits_s, logits_d, t[-1], FORWARD_RTOL[dt], f"{backend} logits")
    assert len(trace_s.pre) == len(trace_s.post) == net.depth
    for i in range(net.depth):
        assert trace_s.pre[i].shape == trace_s.post[i].shape == (len(x), net.widths[i + 1])
        assert_scaled(trace_s.pre[i], trace_d.pre[i], t[i], FORWARD_RTOL[dt], f"{backend} pre[{i}]")
        assert_scaled(trace_s.post[i], trace_d.post[i], t[i], FORWARD_RTOL[dt], f"{backend} post[{i}]")
    # forward without a trace is the same pass
    np.testing.assert_array_equal(net.forward(x, backend=backend), logits_s)
    if trace_s.counts is not None:  # compiled path: active inputs per layer and sample
        inputs = [x] + list(trace_s.post)
        for i, a in enumerate(inputs):
            np.testing.assert_array_equal(trace_s.counts[i], np.count_nonzero(a, axis=1))
    flipped = any(np.any(piece_index(ends, hs) != piece_index(ends, hd))
                  for hs, hd in zip(trace_s.pre, trace_d.pre))
    if flipped:  # a pre-activation within rounding of a kink: phi' legitimately differs
        event("kink flip: gradients not compared")
        return
    g_d = net.gradients(x, labels, backend="dense")
    g_s = net.gradients(x, labels, backend=backend)
    assert g_s.buffer.dtype == net.dtype and g_s.buffer.shape == net.buffer.shape
    big = 1 + float(np.max(np.abs(logits_d)))  # the loss is a difference of terms of this size
    assert math.isclose(g_s.loss, g_d.loss, rel_tol=1e-12 if dt is np.float64 else 1e-5,
                        abs_tol=(1e-13 if dt is np.float64 else 1e-6) * big)
    scales = gradient_scales(net, x, labels, trace_d.pre, trace_d.post, logits_d)
    for i, ((wd, bd), (ws, bs)) in enumerate(zip(layout(g_d.buffer, net.widths),
                                                 layout(g_s.buffer, net.widths))):
        assert_normwise(ws, wd, GRAD_RTOL[dt], f"{backend} dL/dW[{i}]", floor=GRAD_FLOOR[dt] * scales[i][0])
        assert_normwise(bs, bd, GRAD_RTOL[dt], f"{backend} dL/db[{i}]", floor=GRAD_FLOOR[dt] * scales[i][1])
        np.testing.assert_array_equal(g_s.weights[i], ws)
        np.testing.assert_array_equal(g_s.biases[i], bs)
        assert np.shares_memory(g_s.weights[i], g_s.buffer)


@pytest.mark.parametrize("backend", SPARSE)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@settings(max_examples=examples(30), suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_sparse_passes_match_dense(backend, activation, data):
    net, x, labels = data.draw(cases(activations=(activation,)))
    check_against_dense(net, x, labels, backend)


@pytest.mark.parametrize("backend", SPARSE)
@settings(max_examples=examples(25))
@given(case=cases(max_depth=3, max_width=40, max_input=40, batches=st.integers(16, 40)))
def test_sparse_passes_match_dense_wide_batches(backend, case):
    """Batches from 16 (the compiled pass runs samples in parallel) with wider layers."""
    check_against_dense(*case, backend)


@pytest.mark.parametrize("backend", SPARSE)
@settings(max_examples=examples(20))
@given(case=cases(batches=st.just(1)))
def test_sparse_passes_match_dense_single_sample(backend, case):
    net, x, labels = case
    check_against_dense(net, x, labels, backend)
    # a single sample may also be given as a vector (and its label as a scalar)
    np.testing.assert_array_equal(net.forward(x[0], backend=backend), net.forward(x, backend=backend))
    assert net.gradients(x[0], labels[0], backend=backend).loss == net.gradients(x, labels, backend=backend).loss


@lru_cache(maxsize=None)
def eoc(name):
    spec = {"cst": dict(sparsity="0.85", v_prime="0.7"), "crelu": dict(sparsity="0.7", v_prime="0.8"),
            "relu": dict(sparsity="0.6"), "st": dict(sparsity="0.5")}[name]
    return eoc_parameters(name, digits=15, **spec)


@pytest.mark.parametrize("backend", SPARSE)
@pytest.mark.parametrize("name,depth,width,batch", [("cst", 40, 30, 17), ("crelu", 30, 25, 1),
                                                    ("relu", 25, 40, 20), ("st", 60, 16, 5)])
def test_deep_eoc_networks_sparse_match_dense(backend, name, depth, width, batch):
    sol = eoc(name)
    net = MLP.initialise(sol, width=width, depth=depth, input_dim=50, dtype="float64", seed=depth)
    x = normalise_inputs(np.random.default_rng(batch).standard_normal((batch, 50)))
    labels = np.arange(batch) % 10
    t = magnitude_bounds(net, x)
    # deep EoC networks: T grows geometrically while h stays O(1), so compare against
    # the per-layer scale of h itself as well (normwise) -- tighter than T here
    _, trace_d = net.trace(x, backend="dense")
    _, trace_s = net.trace(x, backend=backend)
    for i in range(depth):
        assert_normwise(trace_s.pre[i], trace_d.pre[i], 1e-9, f"pre[{i}]")
        assert_scaled(trace_s.post[i], trace_d.post[i], t[i], 1e-10, f"post[{i}]")
        assert 0 < np.mean(trace_d.pre[i] ** 2) < 10 * float(sol.q_star)  # on the edge of chaos
    check_against_dense(net, x, labels, backend)
    ref = reference_pass(net, x, labels)
    g = net.gradients(x, labels, backend=backend)
    for i in range(depth + 1):
        assert_normwise(g.weights[i], ref["gw"][i], 1e-8, f"dL/dW[{i}] vs reference")


# == 2. an independent reference ==============================================================
@pytest.mark.parametrize("name", ACTIVATIONS)
@settings(max_examples=examples(10))
@given(data=st.data())
def test_activation_calls_match_closed_forms(name, data):
    """The reference uses ``Activation.__call__``/``derivative``; pin them to the definitions."""
    init = data.draw(initialisations((name,)))
    params = init.parameters
    h = np.random.default_rng(data.draw(st.integers(0, 1000))).normal(0, 3, 200)
    ends = breakpoints(init.activation, params)
    h = h[np.min(np.abs(h[:, None] - ends[None, :]), axis=1) > 1e-9]
    np.testing.assert_allclose(init.activation(h, **params), closed_form(name, params, h), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(init.activation.derivative(h, **params), closed_form(name, params, h, True),
                               rtol=0, atol=0)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@settings(max_examples=examples(40))
@given(case=cases(max_depth=5, max_width=12, max_input=10, batches=st.integers(1, 20)))
def test_passes_match_independent_reference(backend, case):
    net, x, labels = case
    dt = net.dtype.type
    ref = reference_pass(net, x, labels)
    t = magnitude_bounds(net, x)
    # float32: the network's arithmetic is float32 (and its breakpoints are rounded to it)
    frtol = {np.float64: 1e-12, np.float32: 2e-6}[dt]
    grtol = {np.float64: 1e-10, np.float32: 2e-4}[dt]
    for w, b, (w2, b2) in zip(net.weights, net.biases, layout(net.buffer, net.widths)):
        assert np.shares_memory(w, net.buffer) and np.array_equal(w, w2) and np.array_equal(b, b2)
    logits, trace = net.trace(x, backend=backend)
    assert_scaled(logits, ref["logits"], t[-1], frtol, "logits")
    for i in range(net.depth):
        assert_scaled(trace.pre[i], ref["pre"][i], t[i], frtol, f"pre[{i}]")
        assert_scaled(trace.post[i], ref["post"][i], t[i], frtol, f"post[{i}]")
    ends64 = breakpoints(net.activation, net.parameters)
    ends_net = ends64.astype(net.dtype)
    if any(np.any(piece_index(ends64, hr) != piece_index(ends_net, hn))
           for hr, hn in zip(ref["pre"], trace.pre)):
        event("kink flip: gradients not compared")
        return
    g = net.gradients(x, labels, backend=backend)
    big = 1 + float(np.max(np.abs(ref["logits"])))
    assert math.isclose(g.loss, ref["loss"], rel_tol=1e-12 if dt is np.float64 else 1e-5,
                        abs_tol=(1e-13 if dt is np.float64 else 1e-6) * big)
    scales = gradient_scales(net, x, labels, ref["pre"], ref["post"], ref["logits"])
    for i in range(net.depth + 1):
        assert_normwise(g.weights[i], ref["gw"][i], grtol, f"dL/dW[{i}]", floor=GRAD_FLOOR[dt] * scales[i][0])
        assert_normwise(g.biases[i], ref["gb"][i], grtol, f"dL/db[{i}]", floor=GRAD_FLOOR[dt] * scales[i][1])


def test_reference_catches_a_wrong_gradient():
    """The comparison is not vacuous: a gradient off by 1e-6 in one entry is caught."""
    init = Initialisation("cst", 3.0, 0.2, {"tau": 0.3, "m": 1.2})
    net = MLP.initialise(init, width=[7, 5], input_dim=4, outputs=3, dtype="float64", seed=5)
    x = normalise_inputs(np.random.default_rng(0).standard_normal((6, 4)))
    labels = np.array([0, 1, 2, 0, 1, 2])
    ref = reference_pass(net, x, labels)
    g = net.gradients(x, labels, backend="dense")
    assert_normwise(g.weights[1], ref["gw"][1], 1e-10, "ok")
    bad = g.weights[1].copy()
    bad.flat[np.argmax(np.abs(bad))] *= 1 + 1e-6
    with pytest.raises(AssertionError):
        assert_normwise(bad, ref["gw"][1], 1e-10, "perturbed")


# == 3. gradients against central finite differences =========================================
def pre_activations(net, x):
    """Hidden pre-activations (float64) with the closed-form activations (fast)."""
    name, params = net.activation.name, net.parameters
    a, out = np.asarray(x, dtype=np.float64), []
    for w, b in layout(net.buffer.astype(np.float64), net.widths)[:-1]:
        out.append(a @ w + b)
        a = closed_form(name, params, out[-1])
    return out


def kink_distance(net, x):
    """min over pre-activations and breakpoints of |h - bp| / max(1, |h|)."""
    ends = breakpoints(net.activation, net.parameters)
    out = math.inf
    for h in pre_activations(net, x):
        d = np.abs(h[..., None] - ends) / np.maximum(1.0, np.abs(h))[..., None]
        out = min(out, float(d.min(initial=math.inf)))
    return out


def pieces_of(net, x):
    ends = breakpoints(net.activation, net.parameters)
    return [piece_index(ends, h) for h in pre_activations(net, x)]


def perturbed(net, direction, step):
    other = net.copy()
    other.buffer[...] += step * direction
    return other


@pytest.mark.parametrize("name", ACTIVATIONS)
@settings(max_examples=examples(15))
@given(data=st.data())
def test_gradients_match_finite_differences(name, data):
    net, x, labels = data.draw(cases(max_depth=3, max_width=6, max_input=5, min_outputs=2, max_outputs=4,
                                     batches=st.integers(1, 6), dtypes=("float64",),
                                     activations=(name,), kill=False))
    margin = kink_distance(net, x)
    assume(margin > KINK_MARGIN)  # redraw: too close to a breakpoint for a central difference
    base_pieces = pieces_of(net, x)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32)))
    # one random weight and bias entry of every layer, plus random entries anywhere
    index, offset = [], 0
    for w, b in layout(net.buffer, net.widths):
        index += [offset + rng.integers(w.size), offset + w.size + rng.integers(b.size)]
        offset += w.size + b.size
    index += list(rng.integers(net.buffer.size, size=4))
    directions = []
    for i in index:
        e = np.zeros(net.buffer.size)
        e[i] = 1.0
        directions.append(e)
    for _ in range(3):
        v = rng.standard_normal(net.buffer.size)
        directions.append(v / np.linalg.norm(v))
    fd = []
    for v in directions:
        plus, minus = perturbed(net, v, FD_STEP), perturbed(net, v, -FD_STEP)
        for other in (plus, minus):  # the perturbation crosses no kink
            for p0, p1 in zip(base_pieces, pieces_of(other, x)):
                assume(np.array_equal(p0, p1))
        fd.append((own_loss(plus.forward(x, backend="dense"), labels)
                   - own_loss(minus.forward(x, backend="dense"), labels)) / (2 * FD_STEP))
    fd = np.array(fd)
    logits = net.forward(x, backend="dense")
    big = 1 + float(np.max(np.abs(logits)))  # the loss is a difference of terms this large
    assert math.isclose(own_loss(logits, labels), net.gradients(x, labels, backend="dense").loss,
                        rel_tol=1e-13, abs_tol=1e-13 * big)
    for backend in available_backends():
        g = net.gradients(x, labels, backend=backend).buffer
        analytic = np.array([g @ v for v in directions])
        # truncation ~ step^2 * (third derivative) ~ 1e-12; rounding ~ eps * big / step ~ 2e-10 * big
        tol = 1e-6 * np.abs(analytic) + 1e-8 * big
        assert np.all(np.abs(fd - analytic) <= tol), (backend, fd, analytic, margin)


def test_finite_difference_check_catches_a_wrong_gradient():
    """A 2% error in the gradient of one layer fails the finite-difference comparison."""
    init = Initialisation("crelu", 2.5, 0.3, {"tau": 0.2, "m": 1.5})
    net = MLP.initialise(init, width=[5, 4], input_dim=3, outputs=3, dtype="float64", seed=2)
    x = normalise_inputs(np.random.default_rng(2).standard_normal((4, 3)))
    labels = np.array([0, 1, 2, 1])
    assert kink_distance(net, x) > KINK_MARGIN
    g = net.gradients(x, labels, backend="dense").buffer.copy()
    i = int(np.argmax(np.abs(g)))
    e = np.zeros_like(g)
    e[i] = 1.0
    fd = (own_loss(perturbed(net, e, FD_STEP).forward(x, backend="dense"), labels)
          - own_loss(perturbed(net, e, -FD_STEP).forward(x, backend="dense"), labels)) / (2 * FD_STEP)
    assert abs(fd - g[i]) <= 1e-6 * abs(g[i]) + 1e-8
    assert not abs(fd - 1.02 * g[i]) <= 1e-6 * abs(g[i]) + 1e-8


# == 4. initialisation statistics =============================================================
def chi2_bounds(n):
    return stats.chi2.ppf(ALPHA / 2, n), stats.chi2.ppf(1 - ALPHA / 2, n)


def assert_normal_sample(values, variance, what):
    """values ~ iid N(0, variance): sum(v^2)/variance ~ chi2(n), mean ~ N(0, variance/n)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    lo, hi = chi2_bounds(n)
    s = float(np.sum(values ** 2) / variance)
    assert lo <= s <= hi, f"{what}: sum v^2/var = {s:.1f} outside [{lo:.1f}, {hi:.1f}] (n = {n})"
    z = abs(float(np.mean(values))) * math.sqrt(n / variance)
    assert z <= stats.norm.isf(ALPHA / 2), f"{what}: mean is {z:.2f} standard errors from 0"


@settings(max_examples=examples(12))
@given(init=initialisations(), seed=st.integers(0, 2**63 - 1),
       q_star=st.one_of(st.none(), st.floats(1.05, 6.0)), ms=st.floats(0.2, 5.0))
def test_initial_weight_and_bias_variances(init, seed, q_star, ms):
    sw2, sb2 = float(init.sigma_w2), float(init.sigma_b2)
    widths = [220, 160]
    net = MLP.initialise(init, width=widths, input_dim=180, outputs=40, q_star=q_star,
                         input_mean_square=ms, dtype="float64", seed=seed)
    assert net.widths == (180, 220, 160, 40) and net.depth == 2 and net.seed == seed
    first = sw2 if q_star is None else (q_star - sb2) / ms
    assert math.isclose(net.first_sigma_w2, first, rel_tol=1e-12)
    for i, (w, b) in enumerate(layout(net.buffer, net.widths)):
        assert_normal_sample(w, (first if i == 0 else sw2) / w.shape[0], f"W[{i}]")
        if sb2 == 0:
            assert not np.any(b), f"b[{i}] must be 0 when sigma_b2 = 0"
        else:
            assert_normal_sample(b, sb2, f"b[{i}]")


@settings(max_examples=examples(10))
@given(data=st.data(), seed=st.integers(0, 2**32), ms=st.floats(0.2, 5.0),
       source=st.sampled_from(["eoc", "init"]))
def test_first_layer_gives_q_star(data, seed, ms, source):
    """For inputs of mean square ms the first pre-activations are N(0, q*); each deeper
    layer, given the previous activations a, is N(0, sigma_w2 |a|^2/n + sigma_b2)."""
    if source == "eoc":
        sol = eoc(data.draw(st.sampled_from(["cst", "crelu", "relu", "st"])))
        q, sw2, sb2, target = float(sol.q_star), float(sol.init.sigma_w2), float(sol.init.sigma_b2), sol
    else:
        init = data.draw(initialisations())
        sw2, sb2 = float(init.sigma_w2), float(init.sigma_b2)
        q = data.draw(st.floats(sb2 + 0.1, 8.0))
        target = init
    d, width = 30, 6000
    net = MLP.initialise(target, width=[width, 2000], input_dim=d, outputs=1, q_star=q,
                         input_mean_square=ms, dtype="float64", seed=seed)
    x = np.random.default_rng(seed + 7).standard_normal(d)
    x *= math.sqrt(ms * d) / np.linalg.norm(x)  # mean square ms
    _, trace = net.trace(x, backend="dense")
    assert_normal_sample(trace.pre[0], q, "h^1 (variance q*)")
    a = trace.post[0]
    assert_normal_sample(trace.pre[1], sw2 * float(np.mean(a * a)) + sb2, "h^2 given a^1")


@settings(max_examples=examples(15))
@given(init=initialisations(), seed=st.integers(0, 2**63 - 1), other=st.integers(0, 2**63 - 1),
       width=st.one_of(st.integers(1, 30), st.lists(st.integers(1, 30), min_size=1, max_size=5)))
def test_seeds_reproduce_the_draw(init, seed, other, width):
    kw = dict(width=width, depth=3 if isinstance(width, int) else None, input_dim=7, outputs=4)
    a = MLP.initialise(init, seed=seed, dtype="float64", **kw)
    np.random.seed(seed % 2**32)  # the global numpy state plays no part
    np.random.standard_normal(10)
    b = MLP.initialise(init, seed=seed, dtype="float64", **kw)
    np.testing.assert_array_equal(a.buffer, b.buffer)
    c = MLP.initialise(init, seed=seed, dtype="float32", **kw)
    assert c.dtype == np.float32 and a.dtype == np.float64
    np.testing.assert_array_equal(c.buffer, a.buffer.astype(np.float32))  # float64 draw, rounded
    np.testing.assert_array_equal(a.astype("float32").buffer, c.buffer)
    assume(other != seed)
    d = MLP.initialise(init, seed=other, dtype="float64", **kw)
    assert not np.array_equal(d.buffer, a.buffer)


def test_unseeded_draws_differ_and_copies_are_independent():
    init = Initialisation("relu", 2.0, 0.1, {"tau": 0.2})
    a = MLP.initialise(init, width=20, depth=2, input_dim=10, seed=None)
    b = MLP.initialise(init, width=20, depth=2, input_dim=10, seed=None)
    assert a.seed is None and not np.array_equal(a.buffer, b.buffer)
    c = a.copy()
    np.testing.assert_array_equal(c.buffer, a.buffer)
    assert not np.shares_memory(c.buffer, a.buffer)
    c.buffer[:] = 0
    assert np.any(a.buffer) and not np.any(c.weights[0])  # the copy's views see its own buffer
    for net in (a, c):
        for w, b in zip(net.weights, net.biases):
            assert np.shares_memory(w, net.buffer) and np.shares_memory(b, net.buffer)


# == 5. hostile arguments =====================================================================
HOSTILE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10**40, 0),
    st.integers(10**7 + 1, 10**40),  # above every size limit (no huge valid allocation)
    st.sampled_from([None, True, False, "", "abc", "nan", "-inf", "1e999", "1.5", [1.0], [], (),
                     {"a": 1}, 1 + 2j, Decimal("NaN"), Decimal("-1"), mpmath.mpf("nan"),
                     mpmath.mpf("-inf"), -0.0, 1e-320, np.float64("nan"), np.int64(-5),
                     np.array([1, 2]), object(), b"3", 2**63, -2**63]),  # np.bool_: see known bugs
    st.text(max_size=6),
)
SMALL_VALID_INT = st.integers(1, 40)


def check_error(exc, names):
    message = str(exc)
    assert "\n" not in message and message, message
    assert any(n in message for n in names), (message, names)


def as_valid_int(v, lo, hi):
    """v if it is an integer in [lo, hi] (no bools), else None."""
    import numbers
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        return None
    return int(v) if lo <= v <= hi else None


def as_valid_positive(v, hi=1e30):
    """float(v) if v is a real number (or numeric string) in (0, hi], else None (bools and
    bytes are not numbers, though float() takes them)."""
    if isinstance(v, (bool, np.bool_, bytes, bytearray)):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) and 0 < f <= hi else None


BASE_INIT = Initialisation("cst", 3.0, 0.2, {"tau": 0.3, "m": 1.0})
INIT_ARGS = ("width", "depth", "input_dim", "outputs", "q_star", "input_mean_square", "dtype",
             "seed", "init")


@settings(max_examples=examples(300))
@given(arg=st.sampled_from(INIT_ARGS),
       value=st.one_of(HOSTILE, SMALL_VALID_INT, st.floats(0.5, 3),
                       st.sampled_from(["float32", "f8", "float16", "int32", "f4,f4", ">f8", "O", "V", "U3"])),
       with_q=st.booleans())
def test_initialise_hostile(arg, value, with_q):
    if arg == "dtype":  # np.dtype's ValueError/SyntaxError escape: test_dtype_specs_numpy_rejects_with_value_error
        try:
            np.dtype(value)
        except TypeError:
            pass
        except Exception:
            assume(False)
    if arg == "input_mean_square":  # tiny values overflow W^0: test_first_layer_weights_are_finite
        assume(not 0 < (as_valid_positive(value) or 1.0) < 1e-60)
    kw = dict(width=3, depth=2, input_dim=4, outputs=3, dtype="float32", seed=1)
    if with_q or arg == "input_mean_square":
        kw.update(q_star=1.5, input_mean_square=1.0)
    init = BASE_INIT
    if arg == "init":
        init = value
    else:
        kw[arg] = value
    t0 = time.perf_counter()
    try:
        net = MLP.initialise(init, **kw)
    except ParameterError as exc:
        names = {"width": ["width", "parameters"], "depth": ["depth"], "init": ["init"]}.get(arg, [arg])
        check_error(exc, names)
        ok = False
    else:
        ok = True
        assert np.all(np.isfinite(net.buffer)) and net.widths[0] == kw["input_dim"]
    assert time.perf_counter() - t0 < 5
    valid = {
        "width": as_valid_int(value, 1, 10**6) is not None,  # depth = 2 given
        "depth": as_valid_int(value, 1, 10**5) is not None,
        "input_dim": as_valid_int(value, 1, 10**7) is not None,
        "outputs": as_valid_int(value, 1, 10**6) is not None,
        "seed": value is None or as_valid_int(value, 0, 2**63 - 1) is not None,
        "q_star": value is None or (as_valid_positive(value) or 0) > 0.2,  # must exceed sigma_b2 = 0.2
        "input_mean_square": as_valid_positive(value) is not None,
        "dtype": not isinstance(value, bool) and value is not None and _is_float_dtype(value),
        "init": False,
    }[arg]
    if arg == "width" and valid is False and not isinstance(value, (str, bytes)):
        # a sequence of valid widths is valid too (with depth = 2: exactly two of them)
        try:
            seq = list(value)
        except TypeError:
            seq = None
        valid = seq is not None and len(seq) == 2 and all(as_valid_int(w, 1, 10**6) for w in seq)
    assert ok == valid, (arg, value, ok)


def _is_float_dtype(value):
    try:
        return np.dtype(value) in (np.dtype("float32"), np.dtype("float64"))
    except Exception:
        return False


@pytest.mark.parametrize("kw", [dict(width=10**6, depth=10**5), dict(width=10**6, depth=2),
                                dict(width=[10**6, 10**6]), dict(width=200, depth=1, input_dim=10**7),
                                dict(width=40000, depth=1, input_dim=40000)])
def test_initialise_rejects_too_many_parameters_before_allocating(kw):
    kw.setdefault("input_dim", 10)
    t0 = time.perf_counter()
    with pytest.raises(ParameterError, match="parameters"):
        MLP.initialise(BASE_INIT, **kw)
    assert time.perf_counter() - t0 < 1


@pytest.mark.parametrize("kw,name", [(dict(width=[3, 4], depth=3), "depth"), (dict(width=[]), "width"),
                                     (dict(width=3), "depth"), (dict(width=[3, True]), "width"),
                                     (dict(width=[3, 2.0]), "width"), (dict(width="33"), "width"),
                                     (dict(width=3, depth=2, q_star=0.1), "q_star"),
                                     (dict(width=3, depth=2, q_star=1, input_mean_square=0), "input_mean_square")])
def test_initialise_argument_combinations(kw, name):
    with pytest.raises(ParameterError) as info:
        MLP.initialise(BASE_INIT, input_dim=3, **kw)
    check_error(info.value, [name])


NET = MLP.initialise(BASE_INIT, width=[6, 5], input_dim=4, outputs=3, dtype="float32", seed=3)
X_OK = normalise_inputs(np.random.default_rng(0).standard_normal((5, 4)))
Y_OK = np.array([0, 1, 2, 0, 1])

VALID_X = st.one_of(
    st.just(X_OK), st.just(X_OK.tolist()), st.just(X_OK[0]), st.just(X_OK.astype(np.float16)),
    st.just(np.asfortranarray(X_OK)), st.just(np.ones((2, 8))[:, ::2]), st.just(np.zeros((3, 4))),
    st.just((X_OK * 10).astype(np.int8)), st.just(np.ones((2, 4), dtype=bool)),
    st.just(np.full((1, 4), 2**40, dtype=np.int64)),
    st.lists(st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4), min_size=1, max_size=20),
)
BAD_X = st.one_of(
    HOSTILE,
    st.just(np.array([[np.nan, 1, 2, 3]])), st.just(np.array([[np.inf, 1, 2, 3]])),
    st.just(np.full((2, 4), 1e39)),  # finite in float64, infinite in float32
    st.just(np.empty((0, 4))), st.just(np.ones((2, 5))), st.just(np.ones((2, 3))), st.just(np.ones(3)),
    st.just(np.ones((1, 2, 4))), st.just(np.ones((2, 4), dtype=complex)), st.just(np.array([["a"] * 4])),
    st.just([[1, 2, 3, 4], [1, 2, 3]]), st.just(np.array([[1, 2, 3, None]], dtype=object)),
    st.just(np.array(["2020-01-01"] * 4, dtype="datetime64[D]")), st.just([[10**40] * 4]),
    st.lists(st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4), min_size=1, max_size=6).map(
        lambda v: np.array(v)[:, :3]),
    # some entry NaN, infinite, or beyond float32 (NET is float32)
    st.lists(st.lists(st.one_of(st.floats(-1e3, 1e3), st.floats(allow_nan=True, allow_infinity=True)),
                      min_size=4, max_size=4), min_size=1, max_size=6).filter(
        lambda v: any(not abs(f) < 3.5e38 for r in v for f in r)),  # (float32 max: 3.40282e38)
)
def _backends():
    return ["auto"] + list(available_backends())


BAD_BACKEND = st.one_of(HOSTILE.filter(lambda v: not isinstance(v, np.ndarray)),
                        st.sampled_from(["cuda", "NUMPY", " dense", "auto ", b"numpy", ["numpy"], ("dense",)]),
                        st.text(max_size=8).filter(lambda s: s not in _backends()))


def check_logits(out, batch):
    assert isinstance(out, np.ndarray) and out.shape == (batch, NET.widths[-1]) and out.dtype == NET.dtype
    assert np.all(np.isfinite(out))


@settings(max_examples=examples(200))
@given(x=st.one_of(VALID_X.map(lambda v: (v, True)), BAD_X.map(lambda v: (v, False))),
       backend=st.one_of(st.sampled_from(_backends()).map(lambda v: (v, True)), BAD_BACKEND.map(lambda v: (v, False))),
       method=st.sampled_from(["forward", "trace"]))
def test_forward_and_trace_hostile(x, backend, method):
    (x, x_ok), (backend, b_ok) = x, backend
    before = NET.buffer.copy()
    t0 = time.perf_counter()
    try:
        out = getattr(NET, method)(x, backend=backend)
    except ParameterError as exc:
        check_error(exc, (["inputs"] if not x_ok else []) + (["backend"] if not b_ok else []))
        assert not (x_ok and b_ok)
    else:
        assert x_ok and b_ok, (x, backend)
        batch = np.asarray(x).reshape(-1, 4).shape[0]
        check_logits(out if method == "forward" else out[0], batch)
    assert time.perf_counter() - t0 < 10
    np.testing.assert_array_equal(NET.buffer, before)


VALID_LABELS = st.one_of(
    st.lists(st.integers(0, 2), min_size=5, max_size=5),
    st.lists(st.integers(0, 2), min_size=5, max_size=5).map(tuple),
    st.sampled_from([np.int8, np.uint8, np.int64, np.uint64, np.intp]).flatmap(
        lambda t: st.lists(st.integers(0, 2), min_size=5, max_size=5).map(lambda v: np.array(v, dtype=t))),
)
BAD_LABELS = st.one_of(
    HOSTILE,
    st.lists(st.integers(0, 2), min_size=0, max_size=4), st.lists(st.integers(0, 2), min_size=6, max_size=9),
    st.lists(st.integers(-10**30, 10**30), min_size=5, max_size=5).filter(lambda v: not all(0 <= i <= 2 for i in v)),
    st.lists(st.floats(0, 2), min_size=5, max_size=5), st.just([True, False, True, False, True]),
    st.just(np.zeros((5, 1), dtype=int)), st.just(["0", "1", "2", "0", "1"]), st.just(np.full(5, np.nan)),
    st.just(np.array([0, 1, 2, 0, 3])), st.just(np.array([0, 1, 2, 0, -1])), st.just([0, 1, 2, 0, 2**70]),
)
BAD_LR = st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: as_valid_positive(v) is None),
                   st.integers(-10**40, 0), st.integers(2 * 10**30, 10**40),  # (10**30 + 1 rounds to 1e30: valid)
                   st.floats(1e30, 1e300, exclude_min=True), st.floats(-1e3, 0),
                   st.sampled_from([None, True, False, "", "abc", "nan", "-inf", "1e999", "-1", [0.1], (), {"a": 1},
                                    1j, Decimal("NaN"), mpmath.mpf("nan"), -0.0, np.float64("nan"), np.int64(-5),
                                    np.array([0.1, 0.2]), object(), b"0.1"]),
                   st.text(max_size=6).filter(lambda v: as_valid_positive(v) is None))


@settings(max_examples=examples(250))
@given(x=st.one_of(VALID_X.map(lambda v: (v, True)), BAD_X.map(lambda v: (v, False))),
       labels=st.one_of(VALID_LABELS.map(lambda v: (v, True)), BAD_LABELS.map(lambda v: (v, False))),
       backend=st.one_of(st.sampled_from(_backends()).map(lambda v: (v, True)), BAD_BACKEND.map(lambda v: (v, False))),
       lr=st.one_of(st.floats(1e-6, 1.0).map(lambda v: (v, True)), BAD_LR.map(lambda v: (v, False))),
       out=st.sampled_from(["none", "good", "shape", "dtype", "2d"]),
       method=st.sampled_from(["gradients", "sgd_step"]))
def test_gradients_and_sgd_step_hostile(x, labels, backend, lr, out, method):
    (x, x_ok), (labels, l_ok), (backend, b_ok), (lr, lr_ok) = x, labels, backend, lr
    if x_ok:  # the labels strategies are for a batch of 5: adapt the valid inputs
        x = np.resize(np.asarray(x, dtype=float).reshape(-1, 4), (5, 4))
    net = NET.copy()
    before = net.buffer.copy()
    buf = {"none": None, "good": np.empty_like(net.buffer), "shape": np.empty(net.buffer.size + 1, net.dtype),
           "dtype": np.empty(net.buffer.size, np.float64), "2d": np.empty((1, net.buffer.size), net.dtype)}[out]
    o_ok = out in ("none", "good")
    if method == "sgd_step":
        call, ok = (lambda: net.sgd_step(x, labels, lr, backend=backend, scratch=buf)), x_ok and l_ok and b_ok and lr_ok and o_ok
        names = ["inputs", "labels", "backend", "learning_rate", "out", "scratch"]
    else:
        call, ok = (lambda: net.gradients(x, labels, backend=backend, out=buf)), x_ok and l_ok and b_ok and o_ok
        names = ["inputs", "labels", "backend", "out"]
    t0 = time.perf_counter()
    try:
        result = call()
    except ParameterError as exc:
        check_error(exc, names)
        assert not ok, (str(exc), x, labels, backend, lr, out)
        np.testing.assert_array_equal(net.buffer, before)  # a failed call changes nothing
    else:
        assert ok, (x, labels, backend, lr, out)
        if method == "gradients":
            assert math.isfinite(result.loss) and np.all(np.isfinite(result.buffer))
            if buf is not None:
                assert result.buffer is buf
            np.testing.assert_array_equal(net.buffer, before)
        else:
            assert math.isfinite(result) and np.all(np.isfinite(net.buffer))
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("value", ["bogus", "NUMPY", "", "cuda"])
def test_environment_backend_hostile(monkeypatch, value):
    monkeypatch.setenv("MEANFIELD_NN_BACKEND", value)
    with pytest.raises(ParameterError) as info:
        NET.forward(X_OK)
    check_error(info.value, ["MEANFIELD_NN_BACKEND"])
    NET.forward(X_OK, backend="dense")  # an explicit backend does not read the variable


@pytest.mark.parametrize("value", ["dense", "numpy", "auto"] + (["numba"] if HAVE_NUMBA else []))
def test_environment_backend_selects_the_pass(monkeypatch, value):
    monkeypatch.setenv("MEANFIELD_NN_BACKEND", value)
    assert mlp_module.default_backend() == (value if value != "auto" else ("numba" if HAVE_NUMBA else "numpy"))
    np.testing.assert_array_equal(NET.forward(X_OK), NET.forward(X_OK, backend=mlp_module.default_backend()))


# == 6. SGD decreases the loss ================================================================
@pytest.mark.parametrize("backend", ALL_BACKENDS)
@settings(max_examples=examples(25))
@given(case=cases(max_depth=4, max_width=16, max_input=10, batches=st.integers(1, 12), dtypes=("float64",)),
       step=st.floats(1e-7, 1e-6))
def test_sgd_step_decreases_the_loss_by_the_first_order_amount(backend, case, step):
    """A step of length ``step`` along -g: L0 - L1 = eta |g|^2 (1 + O(step))."""
    net, x, labels = case
    # a step of length <= 1e-6 crosses no kink (at a kink, e.g. h = 0 exactly for a zero input
    # and zero bias, the loss is not differentiable and the first-order amount is one-sided)
    assume(kink_distance(net, x) > 1e-5)
    g = net.gradients(x, labels, backend=backend)
    norm2 = float(np.sum(g.buffer.astype(np.float64) ** 2))
    assume(norm2 > 1e-4)  # (a network with every unit dead has no gradient to follow)
    lr = step / math.sqrt(norm2)
    expected_update = net.buffer - lr * g.buffer
    loss0 = own_loss(net.forward(x, backend="dense"), labels)
    returned = net.sgd_step(x, labels, lr, backend=backend)
    big = 1 + float(np.max(np.abs(net.forward(x, backend="dense"))))
    assert math.isclose(returned, loss0, rel_tol=1e-12, abs_tol=1e-13 * big)  # the loss before the step
    np.testing.assert_allclose(net.buffer, expected_update, rtol=1e-15, atol=1e-17)
    loss1 = own_loss(net.forward(x, backend="dense"), labels)
    assert loss1 < loss0
    ratio = (loss0 - loss1) / (lr * norm2)
    assert 0.9 < ratio < 1.1, ratio


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("name", ["cst", "relu"])
def test_sgd_training_float32_with_scratch(backend, name):
    net = MLP.initialise(eoc(name), width=32, depth=4, input_dim=20, outputs=4, seed=11)
    assert net.dtype == np.float32
    x = normalise_inputs(np.random.default_rng(4).standard_normal((8, 20)))
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    scratch = np.empty_like(net.buffer)
    losses = [net.sgd_step(x, labels, 0.05, backend=backend, scratch=scratch) for _ in range(30)]
    final = own_loss(net.forward(x, backend="dense"), labels)
    assert all(math.isfinite(v) for v in losses)
    assert final < 0.7 * losses[0], (losses[0], final)
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 25  # (nearly) monotone


NUMBA_ONLY = pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")


def buffered_step(net, x, labels, lr):
    """What one SGD step must give: parameters - lr * gradient (the gradient of the same
    backend), or None where a parameter would overflow."""
    g = net.gradients(x, labels, backend="numba").buffer
    with np.errstate(over="ignore", invalid="ignore"):
        new = g * net.dtype.type(-lr) + net.buffer
    return new if np.all(np.isfinite(new)) else None


@NUMBA_ONLY
@settings(max_examples=examples(40))
@given(case=cases(max_depth=5, max_width=40, max_input=30), lr=st.floats(1e-4, 1.0))
def test_fused_numba_step_equals_the_buffered_step(case, lr):
    """The numba step applies each row of dW as it forms it (no gradient buffer, threads
    over blocks of rows from batch 16): bit for bit parameters - lr * gradient."""
    net, x, labels = case
    expected = buffered_step(net, x, labels, lr)
    assume(expected is not None)
    loss_before = net.gradients(x, labels, backend="numba").loss
    loss = net.sgd_step(x, labels, lr, backend="numba")
    np.testing.assert_array_equal(net.buffer, expected)
    assert loss == loss_before  # the loss of the batch before the step


@NUMBA_ONLY
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [3, 24])
def test_fused_step_near_overflow_changes_nothing_or_matches(dtype, batch):
    """Learning rates up to 1e30 and inputs up to near overflow: the fused step either
    proves it cannot overflow and applies it, or hands it to the buffered path; either way
    the result is parameters - lr * gradient, or a ParameterError with the parameters
    untouched."""
    base = MLP.initialise(eoc("relu"), width=20, depth=3, input_dim=6, outputs=3, dtype=dtype, seed=2)
    x0 = normalise_inputs(np.random.default_rng(batch).standard_normal((batch, 6)))
    labels = np.arange(batch) % 3
    outcomes = set()
    scales = (1.0, 1e4, 1e8, 1e12) + ((1e40, 1e150, 1e250, 1e300) if dtype == "float64" else ())
    for scale, lr in itertools.product(scales, (1e-3, 1e10, 1e20, 1e30)):
        net, x = base.copy(), x0 * scale
        try:
            expected = buffered_step(net, x, labels, lr)
        except ParameterError:  # the forward or backward pass itself overflows
            expected = None
        before = net.buffer.copy()
        if expected is None:
            with pytest.raises(ParameterError, match="overflow"):
                net.sgd_step(x, labels, lr, backend="numba")
            np.testing.assert_array_equal(net.buffer, before)
            outcomes.add("raised")
        else:
            net.sgd_step(x, labels, lr, backend="numba")
            np.testing.assert_array_equal(net.buffer, expected)
            outcomes.add("stepped")
    assert outcomes == {"raised", "stepped"}  # both branches were exercised


@NUMBA_ONLY
@pytest.mark.parametrize("batch", [1, 7, 128])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@settings(max_examples=examples(4), deadline=None)
@given(init=st.data())
def test_compiled_gradient_matches_dense_at_the_protocol_batches(activation, batch, init):
    """Every built-in activation at batch 1, 7 and 128 (the protocol's batch: both threads,
    and a work item per layer), uneven widths, float64: the compiled gradient against the
    dense one to relative 1e-10 (``check_against_dense``)."""
    net = MLP.initialise(init.draw(initialisations((activation,))), width=[37, 5, 64, 23], depth=4,
                         input_dim=41, outputs=10, dtype="float64", seed=batch)
    x = normalise_inputs(np.random.default_rng(batch).standard_normal((batch, 41)))
    x[:, ::3] = 0.0  # inactive inputs, as MNIST's borders
    check_against_dense(net, x, np.arange(batch) % 10, "numba")


def _train_step(net, opt, x, labels):
    """``training_step`` with the compiled passes: (loss, norms), or the reason it refused."""
    from meanfield.nn import train as T
    try:
        return T.training_step(net, opt, x, labels, "numba", np.empty_like(net.buffer))
    except T._BlowUp as exc:
        return str(exc)


def _reference_step(net, opt, x, labels):
    """The gradient of the compiled passes into a buffer, then the optimiser's numpy step:
    (loss, None), or the reason it refused."""
    try:
        g = net.gradients(x, labels, backend="numba")
    except ParameterError as exc:
        return str(exc)
    reason = opt.step(net.buffer, g.buffer)
    return (g.loss, None) if reason is None else reason


def _bits(*arrays):
    return [a.view(f"u{a.itemsize}").copy() for a in arrays if a is not None]


@NUMBA_ONLY
@settings(max_examples=examples(40), deadline=None)
@given(case=cases(max_depth=5, max_width=40, max_input=30, batches=BATCHES | st.just(128)),
       opt=st.sampled_from(["sgd", "adam"]), lr=st.floats(1e-5, 0.1), steps=st.integers(1, 3))
def test_fused_training_step_is_the_gradient_then_the_numpy_step(case, opt, lr, steps):
    """The fused step (each row of the gradient applied by the optimiser as it is formed)
    against the gradient in a buffer followed by the optimiser's numpy step: the same
    parameters and optimiser state bit for bit, the same loss, for SGD with momentum and
    Adam, over several steps."""
    from meanfield.nn import optimizers
    from meanfield.nn import train as T
    net, x, labels = case
    cfg = T.TrainConfig("relu", 0.5, optimizer=opt, learning_rate=lr, dtype=str(net.dtype))
    fused, ref = net.copy(), net.copy()
    o_fused = optimizers.make(cfg, net.buffer.size, net.dtype)
    o_ref = optimizers.make(cfg, net.buffer.size, net.dtype)
    for _ in range(steps):
        a = _train_step(fused, o_fused, x, labels)
        b = _reference_step(ref, o_ref, x, labels)
        if isinstance(a, str) or isinstance(b, str):  # both refuse (an overflowing pass)
            assert isinstance(a, str) and isinstance(b, str), (a, b)
            break
        assert a[0] == b[0]
        for u, v in zip(_bits(fused.buffer, *o_fused.arrays()), _bits(ref.buffer, *o_ref.arrays())):
            np.testing.assert_array_equal(u, v)
        assert o_fused.t == o_ref.t
        # what the step wrote, which train() takes for the next step's bound instead of a scan
        assert o_fused.w_max == K.max_abs(fused.buffer)


@NUMBA_ONLY
@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_step_that_would_overflow_leaves_the_network_untouched(opt, dtype):
    """Inputs and learning rates up to near overflow: the fused step either proves its
    update finite and applies it (then it is the numpy step's, bit for bit) or writes
    nothing, and the numpy step decides: it steps, or it refuses (a blow-up, the
    parameters unchanged)."""
    from meanfield.nn import optimizers
    base = MLP.initialise(eoc("relu"), width=20, depth=3, input_dim=6, outputs=3, dtype=dtype, seed=2)
    x0 = normalise_inputs(np.random.default_rng(0).standard_normal((24, 6)))
    labels = np.arange(24) % 3
    outcomes = set()
    scales = (1.0, 1e8, 1e16, 1e30) + ((1e100, 1e200, 1e300) if dtype == "float64" else ())
    cls = {"sgd": optimizers.SGD, "adam": optimizers.Adam}[opt]
    for scale, lr in itertools.product(scales, (1e-3, 1e10, 1e30)):
        fused, ref = base.copy(), base.copy()
        o_fused, o_ref = (cls(base.buffer.size, base.dtype, learning_rate=lr) for _ in range(2))
        a = _train_step(fused, o_fused, x0 * scale, labels)
        b = _reference_step(ref, o_ref, x0 * scale, labels)
        if isinstance(a, str):
            assert isinstance(b, str)
            np.testing.assert_array_equal(fused.buffer, base.buffer)  # untouched
            outcomes.add("refused")
        else:
            assert not isinstance(b, str) and a[0] == b[0]
            for u, v in zip(_bits(fused.buffer, *o_fused.arrays()), _bits(ref.buffer, *o_ref.arrays())):
                np.testing.assert_array_equal(u, v)
            outcomes.add("stepped")
    assert outcomes == {"refused", "stepped"}  # both branches were exercised


@NUMBA_ONLY
@pytest.mark.parametrize("split", [False, True])
def test_a_profiled_step_is_the_same_step(split):
    """Profiling a fused Adam step (the benchmark's phases; with ``gradient`` asked for, the
    update pass run once more beforehand, writing nothing) changes nothing the step
    computes, and reports every phase, each a time, and the work done."""
    from meanfield.nn import optimizers
    from meanfield.nn import train as T
    base = MLP.initialise(eoc("cst"), width=30, depth=4, input_dim=6, outputs=3, dtype="float32", seed=5)
    x = normalise_inputs(np.random.default_rng(1).standard_normal((40, 6)))  # (two threads from 16)
    labels = np.arange(40) % 3
    plain, profiled = base.copy(), base.copy()
    o_plain, o_prof = (optimizers.Adam(base.buffer.size, base.dtype, learning_rate=1e-2) for _ in range(2))
    for _ in range(3):
        prof = {"gradient": None} if split else {}
        a = T.training_step(plain, o_plain, x, labels, "numba", np.empty_like(plain.buffer))
        b = T.training_step(profiled, o_prof, x, labels, "numba", np.empty_like(plain.buffer), profile=prof)
        assert a[0] == b[0]
        np.testing.assert_array_equal(a[1], b[1])  # the norms the real pass returns
        assert (o_plain.t, o_plain.w_max) == (o_prof.t, o_prof.w_max)
        for u, v in zip(_bits(plain.buffer, *o_plain.arrays()), _bits(profiled.buffer, *o_prof.arrays())):
            np.testing.assert_array_equal(u, v)
        phases = {"forward", "loss", "deltas", "bound", "safe", "update"} | ({"gradient"} if split else set())
        assert phases <= prof.keys() and all(0 <= prof[k] < 10 for k in phases)
        assert prof["forward_terms"] == prof["update_terms"] > 0 and prof["delta_terms"] > 0


@NUMBA_ONLY
def test_fused_step_with_a_huge_parameter_takes_the_checked_path():
    """A parameter near the largest float in a row no sample uses: the bound cannot prove
    the step safe, so the buffered path decides (here: the step is fine)."""
    net = MLP.initialise(eoc("cst"), width=20, depth=3, input_dim=6, outputs=3, dtype="float32", seed=2)
    x = normalise_inputs(np.random.default_rng(0).standard_normal((20, 6)))
    x[:, 0] = 0.0  # input 0 is inactive in every sample: row 0 of W^0 gets no gradient
    net.weights[0][0, 0] = np.finfo(np.float32).max
    labels = np.arange(20) % 3
    expected = buffered_step(net, x, labels, 1e-2)
    net.sgd_step(x, labels, 1e-2, backend="numba")
    np.testing.assert_array_equal(net.buffer, expected)


@NUMBA_ONLY
@settings(max_examples=examples(60))
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]),
       size=st.one_of(st.integers(1, 100), st.integers((1 << 20) - 2, (1 << 20) + 40)))
def test_max_abs_matches_numpy(data, dtype, size):
    """The integer scan of |x| (threads from 2^20 entries) against numpy, with
    infinities, NaN, signed zeros and subnormals placed at random."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32)))
    a = (rng.standard_normal(size) * 10.0 ** rng.integers(-300 if dtype is np.float64 else -40, 30, size)).astype(dtype)
    for _ in range(data.draw(st.integers(0, 3))):
        a[rng.integers(size)] = data.draw(st.sampled_from([np.inf, -np.inf, np.nan, -0.0, 5e-324, -1e-45]))
    expected = float(np.max(np.abs(a)))
    got = K.max_abs(a)
    assert got == (expected if math.isfinite(expected) else math.inf)


# == regressions: bugs these tests found, fixed ==================================
@pytest.mark.parametrize("dtype", ["abc", 1, [1], "float64x", None, "float16", "f4,f4", ">f8", "int64", "O"])
def test_initialise_and_astype_reject_unknown_dtypes(dtype):
    """(An earlier _check_dtype let every unparseable dtype through as float64, because
    numpy's ``dtype('float64') == None`` is True.)"""
    with pytest.raises(ParameterError, match="dtype"):
        MLP.initialise(BASE_INIT, width=3, depth=1, input_dim=2, dtype=dtype)
    with pytest.raises(ParameterError, match="dtype"):
        NET.astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "f4", "single", np.float32, "float64", "f8", "double", float,
                                   np.dtype("float64"), "=f8"])
def test_initialise_accepts_float_dtypes(dtype):
    assert MLP.initialise(BASE_INIT, width=3, depth=1, input_dim=2, dtype=dtype).dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", [("f4", -1), {"names": ["a"], "formats": ["f4"], "offsets": [-1]}, ",",
                                   "(,)f4"])
def test_dtype_specs_numpy_rejects_with_value_error(dtype):
    with pytest.raises(ParameterError, match="dtype"):
        MLP.initialise(BASE_INIT, width=3, depth=1, input_dim=2, dtype=dtype)


@pytest.mark.parametrize("out", [[0.0] * NET.buffer.size, "abc", 3.0])
@pytest.mark.parametrize("method", ["gradients", "sgd_step"])
def test_out_must_be_an_array(out, method):
    net = NET.copy()
    with pytest.raises(ParameterError, match="out|scratch"):
        if method == "gradients":
            net.gradients(X_OK, Y_OK, backend="dense", out=out)
        else:
            net.sgd_step(X_OK, Y_OK, 0.1, backend="dense", scratch=out)


def test_sgd_step_scratch_error_names_scratch():
    with pytest.raises(ParameterError, match="scratch"):
        NET.copy().sgd_step(X_OK, Y_OK, 0.1, scratch=np.empty(NET.buffer.size + 1, NET.dtype))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_read_only_out_is_rejected(backend):
    out = np.empty_like(NET.buffer)
    out.flags.writeable = False
    with pytest.raises(ParameterError, match="out"):
        NET.gradients(X_OK, Y_OK, backend=backend, out=out)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_strided_out(backend):
    """A non-contiguous out of the right shape and dtype: the right gradient, or a
    ParameterError (an earlier numba kernel failed here with a TypingError)."""
    out = np.zeros(2 * NET.buffer.size, NET.dtype)[::2]
    try:
        g = NET.gradients(X_OK, Y_OK, backend=backend, out=out)
    except ParameterError as exc:
        check_error(exc, ["out"])
        return
    assert np.shares_memory(g.buffer, out)
    np.testing.assert_allclose(out, NET.gradients(X_OK, Y_OK, backend="dense").buffer, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_out_aliasing_the_parameters(backend):
    net = NET.astype("float64")
    true = net.gradients(X_OK, Y_OK, backend=backend).buffer.copy()
    expected_step = net.buffer - 0.1 * true
    try:
        net.copy().gradients(X_OK, Y_OK, backend=backend, out=None)  # sanity
        other = net.copy()
        g = other.gradients(X_OK, Y_OK, backend=backend, out=other.buffer)
        np.testing.assert_allclose(g.buffer, true, rtol=1e-12)
        other = net.copy()
        other.sgd_step(X_OK, Y_OK, 0.1, backend=backend, scratch=other.buffer)
        np.testing.assert_allclose(other.buffer, expected_step, rtol=1e-12)
    except ParameterError:
        pass


@pytest.mark.parametrize("ms,dtype", [(1e-167, "float32"), (1e-80, "float32"), (1e-320, "float64")])
def test_first_layer_weights_are_finite(ms, dtype):
    try:
        net = MLP.initialise(BASE_INIT, width=3, depth=1, input_dim=4, q_star=1.5, input_mean_square=ms,
                             dtype=dtype)
    except ParameterError as exc:
        check_error(exc, ["input_mean_square", "first"])
        return
    assert np.all(np.isfinite(net.buffer)) and math.isfinite(net.first_sigma_w2)


@pytest.mark.parametrize("arg", ["q_star", "input_mean_square", "learning_rate"])
def test_numpy_bool_is_not_a_number(arg):
    with pytest.raises(ParameterError, match=arg):
        if arg == "learning_rate":
            NET.copy().sgd_step(X_OK, Y_OK, np.True_)
        else:
            kw = {"q_star": 1.5, "input_mean_square": 1.0, arg: np.True_}
            MLP.initialise(BASE_INIT, width=3, depth=1, input_dim=4, **kw)


@pytest.mark.parametrize("arg", ["width", "depth", "input_dim", "outputs", "seed"])
def test_numpy_bool_sizes_are_rejected(arg):
    kw = dict(width=3, depth=1, input_dim=4, outputs=2, seed=0)
    kw[arg] = np.True_
    with pytest.raises(ParameterError) as info:
        MLP.initialise(BASE_INIT, **kw)
    check_error(info.value, [arg])


def test_ragged_labels():
    with pytest.raises(ParameterError, match="labels"):
        NET.gradients(X_OK, [[0], [1, 2], 0, 1, 2])


@pytest.mark.parametrize("backend", [np.array("numpy"), np.array(["numpy"]), np.array(["numpy", "dense"])])
def test_array_backend(backend):
    with pytest.raises(ParameterError, match="backend"):
        NET.forward(X_OK, backend=backend)


@pytest.mark.parametrize("case", ["float32 inputs 3e38", "float64 inputs 1e308", "sigma_w2 1e30"])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_overflow_never_gives_nan(case, backend):
    if case == "sigma_w2 1e30":
        net = MLP.initialise(Initialisation("relu", 1e30, 0.1), width=8, depth=6, input_dim=4, seed=0)
        x = X_OK
    elif case.startswith("float32"):
        net, x = NET, np.full((2, 4), 3e38)
    else:
        net = MLP.initialise(Initialisation("relu", 2.0, 0.1), width=8, depth=6, input_dim=4, seed=0,
                             dtype="float64")
        x = np.full((2, 4), 1e308)
    for init_net in (net,):
        try:
            logits = init_net.forward(x, backend=backend)
            loss = init_net.gradients(x, np.zeros(len(x), dtype=int), backend=backend).loss
        except ParameterError:
            continue
        assert np.all(np.isfinite(logits)) and math.isfinite(loss)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_sgd_step_keeps_parameters_finite(backend):
    net = MLP.initialise(Initialisation("relu", 2.0, 0.1, {"tau": 0.1}), width=8, depth=4, input_dim=4, seed=0)
    for _ in range(2):
        try:
            loss = net.sgd_step(X_OK, Y_OK, 1e30, backend=backend)
        except ParameterError:
            return
        assert math.isfinite(loss) and np.all(np.isfinite(net.buffer))


@pytest.mark.parametrize("x,invalid", [(["a"], True), ([[1, 2], [3]], True), ([[1 + 1j]], True),
                                       ([[1e200, 1.0]], False), ([[1e-160, 1e-160]], False), ([[1e-200]], False)])
def test_normalise_inputs_hostile(x, invalid):
    try:
        out = normalise_inputs(x)
    except ParameterError as exc:
        check_error(exc, ["inputs"])
        assert invalid, f"a finite nonzero row was rejected: {exc}"
        return
    assert not invalid
    np.testing.assert_allclose(np.mean(out * out, axis=1), 1.0, rtol=1e-12)


MAGNITUDE = st.one_of(st.just(0.0), st.floats(1e-100, 1e100), st.floats(-1e100, -1e-100))


@settings(max_examples=examples(60))
@given(dim=st.integers(1, 6), rows=st.integers(1, 5), data=st.data())
def test_normalise_inputs_gives_mean_square_one(dim, rows, data):
    x = np.array(data.draw(st.lists(st.lists(MAGNITUDE, min_size=dim, max_size=dim), min_size=rows, max_size=rows)))
    zero_row = bool(np.any(np.all(x == 0, axis=1)))
    try:
        out = normalise_inputs(x)
    except ParameterError as exc:
        check_error(exc, ["inputs", "row"])
        assert zero_row
        return
    assert not zero_row
    np.testing.assert_allclose(np.mean(out * out, axis=1), 1.0, rtol=1e-12)
    ratio = out / np.where(x == 0, 1, x)
    for r, row in zip(ratio, x):  # each row is scaled by one positive factor
        nz = r[row != 0]
        assert np.all(nz > 0) and np.allclose(nz, nz[0], rtol=1e-13)


def test_cross_entropy_gradient_of_a_confident_prediction():
    """dL/dz_label = p_label - 1 = -sum of the other classes, to full relative precision
    even when p_label rounds to 1 (a subtraction from 1 would give 0 or 1e-16 noise)."""
    from meanfield.nn import cross_entropy
    z = np.array([[40.0, 0.0, -3.0]])
    loss, g = cross_entropy(z, np.array([0]))
    others = np.exp(0.0 - 40) + np.exp(-3.0 - 40)
    assert g[0, 0] == pytest.approx(-others / (1 + others), rel=1e-14)
    assert loss == pytest.approx(math.log1p(others), rel=1e-14)
