"""meanfield.nn.train and meanfield.nn.reproduce: the optimisers against their formulas,
the recorded metrics against direct computation, checkpoints that resume bit for bit,
blow-ups recorded (not raised), hostile configurations refused, a smoke training on real
MNIST that must learn, and the grid run through joblib, its journal and a dask cluster.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meanfield._files import fcntl
from meanfield.cli import main
from meanfield.errors import DataError, InUseError, ParameterError
from meanfield.nn import MLP
from meanfield.nn import mlp as mlp_module
from meanfield.nn import _kernels as K
from meanfield.nn import optimizers, reproduce
from meanfield.nn import train as T

from _holder import held_by_another_process
from _mnist_files import arrays, pin, write_idx_dir


def small_data(n_train=600, n_test=200, seed=0):
    a = arrays(n_train, n_test, seed)
    return (a["train_images"] / 255.0, a["train_labels"].astype(int),
            a["test_images"] / 255.0, a["test_labels"].astype(int))


SMALL = dict(activation="crelu", sparsity=0.7, v_prime=0.7, depth=3, width=32, epochs=3,
             batch_size=50, learning_rate=1e-3, optimizer="adam", sparsity_sample=300)


# -- optimisers -----------------------------------------------------------------------
def _reference(config, grads, w0):
    """The update rules written out in float64, one parameter at a time."""
    w = [float(v) for v in w0]
    m = [0.0] * len(w)
    v = [0.0] * len(w)
    for t, g in enumerate(grads, start=1):
        for i, gi in enumerate(map(float, g)):
            if config.optimizer == "sgd":
                m[i] = config.momentum * m[i] + gi
                w[i] -= config.learning_rate * m[i]
            else:
                b1, b2 = config.betas
                m[i] = b1 * m[i] + (1 - b1) * gi
                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                mh, vh = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
                w[i] -= config.learning_rate * mh / (math.sqrt(vh) + config.eps)
    return np.array(w)


@settings(max_examples=60)
@given(opt=st.sampled_from(["sgd", "adam"]), lr=st.floats(1e-6, 1.0), mom=st.floats(0, 0.99),
       b1=st.floats(0, 0.99), b2=st.floats(0.5, 0.9999), steps=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-6, 1.0, 1e4]))
def test_optimisers_match_their_formulas(opt, lr, mom, b1, b2, steps, seed, scale):
    cfg = T.TrainConfig("relu", 0.5, optimizer=opt, learning_rate=lr, momentum=mom, betas=(b1, b2),
                        dtype="float64")
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(7)
    grads = [rng.standard_normal(7) * scale for _ in range(steps)]
    o = optimizers.make(cfg, 7, np.float64)
    w = w0.copy()
    for g in grads:
        assert o.step(w, g) is None
    np.testing.assert_allclose(w, _reference(cfg, grads, w0), rtol=1e-10, atol=1e-12 * (1 + abs(w0).max()))


def _compiled_or_reference(o, w, g, widths):
    """What training_step does with a gradient in a buffer: the compiled update pass where
    the optimiser proves it finite, else the numpy reference step."""
    bound, w_max = K.max_abs(g), K.max_abs(w)
    if o.safe(bound, w_max):
        m, v = o.arrays()
        written = K.apply_gradient(g, w, widths, o.mode, o.constants(o.t + 1), m, v)[1]
        assert written is None if o.mode == K.SGD else written == K.max_abs(w)  # (plain SGD tracks none)
        o.advance(bound, written)
        return None, "compiled"
    return o.step(w, g), "reference"


@pytest.mark.skipif(not K.HAVE_NUMBA, reason="the compiled update pass needs numba")
@settings(max_examples=40, deadline=None)
@given(opt=st.sampled_from(["sgd", "adam"]), dtype=st.sampled_from(["float32", "float64"]),
       lr=st.floats(1e-7, 1.0), mom=st.floats(0, 0.99), b1=st.floats(0, 0.99), b2=st.floats(0.5, 0.9999),
       eps=st.floats(1e-12, 1e-3), steps=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
       log_scale=st.integers(-30, 30), huge=st.booleans(),
       widths=st.sampled_from([(1, 1), (3, 2, 1), (7, 40, 40, 10), (1024, 1024, 3)]))
def test_compiled_update_is_the_numpy_step_bit_for_bit(opt, dtype, lr, mom, b1, b2, eps, steps, seed,
                                                       log_scale, huge, widths):
    """The compiled update pass must not change a single bit of a run: a journal's runs
    stay reproducible whichever path made each step. Gradients over 60 orders of magnitude,
    with ``huge`` a few entries 1e10 larger still (so that g^2 overflows float32: then
    the bound refuses the compiled pass and the reference step reports it); uneven layers,
    and a layer of more rows than a work item (threads over blocks of rows)."""
    cfg = T.TrainConfig("relu", 0.5, optimizer=opt, learning_rate=lr, momentum=mom, betas=(b1, b2), eps=eps,
                        dtype=dtype)
    n = K.offsets(widths)[2]
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(n).astype(dtype)
    grads = [(rng.standard_normal(n) * 10.0 ** log_scale).astype(dtype) for _ in range(steps)]
    if huge:
        grads[0][:3] *= 1e10
    runs = []
    for compiled in (True, False):
        o, w = optimizers.make(cfg, n, np.dtype(dtype)), w0.copy()
        reasons = []
        for g in grads:
            reasons.append(_compiled_or_reference(o, w, g, widths)[0] if compiled else o.step(w, g))
            if reasons[-1] is not None:
                break
        state = [a for a in o.arrays() if a is not None]
        runs.append((reasons, [a.view(f"u{a.itemsize}").copy() for a in (w, *state)], o.t))
    (r1, a1, t1), (r2, a2, t2) = runs
    assert r1 == r2 and t1 == t2
    for x, y in zip(a1, a2):
        np.testing.assert_array_equal(x, y)


@pytest.mark.skipif(not K.HAVE_NUMBA, reason="the compiled update pass needs numba")
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_the_optimisers_bound_holds_and_admits_ordinary_steps(opt):
    """The running bounds of the state stay above the state (so a compiled step never
    writes an overflow), and ordinary gradients take the compiled pass."""
    cfg = T.TrainConfig("relu", 0.5, optimizer=opt, learning_rate=1e-2, dtype="float32")
    widths = (30, 20, 5)
    n = K.offsets(widths)[2]
    rng = np.random.default_rng(1)
    o, w = optimizers.make(cfg, n, np.float32), rng.standard_normal(n).astype(np.float32)
    for t in range(50):
        g = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3)).astype(np.float32)
        assert _compiled_or_reference(o, w, g, widths)[1] == "compiled"
        m, v = o.arrays()
        assert np.max(np.abs(m)) <= o.m_max
        if v is not None:
            assert np.max(v) <= o.v_max
    assert o.t == 50


@pytest.mark.parametrize("opt, g", [("sgd", 1e38), ("adam", 1e20), ("adam", np.inf), ("sgd", np.nan)])
def test_optimiser_refuses_an_overflowing_step(opt, g):
    """SGD: the new parameters overflow. Adam with g = 1e20: g^2 overflows float32, so v is
    infinite and the step would silently be zero: refused as well."""
    cfg = T.TrainConfig("relu", 0.5, optimizer=opt, learning_rate=1e3 if opt == "sgd" else 1e-3)
    o = optimizers.make(cfg, 3, np.float32)
    w = np.array([1.0, 2.0, 3.0], np.float32)
    reason = o.step(w, np.array([0, g, 1], np.float32))
    assert reason == ("the parameters overflowed" if opt == "sgd" else
                      "Adam's second moment overflowed (float32): a gradient entry beyond 1.8e+19")
    assert w.tolist() == [1.0, 2.0, 3.0]  # unchanged


# -- recorded metrics -----------------------------------------------------------------
def test_layer_norms_and_evaluation_match_direct_computation():
    sol = T.initialisation(T.TrainConfig(**{**SMALL, "depth": 4}))
    net = MLP.initialise(sol, width=32, depth=4, input_dim=784, seed=3)
    xtr, ytr, xte, yte = small_data()
    x = (xte / np.sqrt(np.mean(xte ** 2, axis=1, keepdims=True))).astype(np.float32)
    g = net.gradients(x[:40], yte[:40], backend="dense")
    norms = mlp_module.gradient_norms(g.buffer, net.widths)
    np.testing.assert_allclose(norms, [np.sum(w.astype(np.float64) ** 2) for w in g.weights], rtol=1e-6)
    for backend in ("dense", "numpy", "numba"):
        loss, acc, sp = T.evaluate(net, x, yte, backend, chunk=64)
        logits, trace = net.trace(x, backend="dense")
        assert acc == np.mean(np.argmax(logits, axis=1) == yte)
        np.testing.assert_allclose(sp, [np.mean(p == 0) for p in trace.post], atol=1e-12)
        assert abs(loss - T.cross_entropy(logits, yte)[0]) < 1e-5


def test_run_records_every_metric(tmp_path):
    run = T.train(T.TrainConfig(**{**SMALL, "loss_every": 5}), small_data(), directory=tmp_path, progress=False)
    assert run.status == "ok" and [e["epoch"] for e in run.epochs] == [1, 2, 3]
    e = run.epochs[-1]
    assert len(e["train_sparsity_layers"]) == 3 and len(e["grad_norm_layers"]) == 4
    assert all(0 <= v <= 1 for v in e["train_sparsity_layers"] + e["test_sparsity_layers"])
    assert run.epochs[0]["train_loss"] > run.epochs[-1]["train_loss"]
    # the realised sparsity starts at the EoC target: 0.7 at q* = 1
    assert abs(np.mean(run.epochs[0]["test_sparsity_layers"]) - 0.7) < 0.1
    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored["status"] == "ok" and len(stored["epochs"]) == 3
    assert T.TrainResult.from_dict(stored).epochs == run.epochs
    csv = (tmp_path / "epochs.csv").read_text().splitlines()
    assert csv[0].startswith("epoch,train_loss") and len(csv) == 4
    assert len((tmp_path / "layers.csv").read_text().splitlines()) == 1 + 3 * 4
    # one point per loss_every (5) steps, and one for each epoch's last steps (12 per epoch)
    assert [s for s, _ in run.loss_curve] == [5, 10, 12, 17, 22, 24, 29, 34, 36]
    assert run.loss_curve[0][1] > run.loss_curve[-1][1]


# -- checkpoints ----------------------------------------------------------------------
def test_resume_is_bit_for_bit(tmp_path, monkeypatch):
    data = small_data()
    straight = T.train(T.TrainConfig(**SMALL), data, directory=tmp_path / "a", progress=False)
    # two epochs, then resumed to three
    T.train(T.TrainConfig(**{**SMALL, "epochs": 2}), data, directory=tmp_path / "b", progress=False)
    resumed = T.train(T.TrainConfig(**SMALL), data, directory=tmp_path / "b", resume=True, progress=False)
    # interrupted in the middle of epoch 3, then resumed
    real_step, count = T.training_step, {"n": 0}

    def interrupting(*args, **kwargs):
        count["n"] += 1
        if count["n"] == 2 * 12 + 5:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(T, "training_step", interrupting)
    with pytest.raises(KeyboardInterrupt):
        T.train(T.TrainConfig(**SMALL), data, directory=tmp_path / "c", progress=False)
    monkeypatch.setattr(T, "training_step", real_step)
    assert len(json.loads((tmp_path / "c" / "result.json").read_text())["epochs"]) == 2
    again = T.train(T.TrainConfig(**SMALL), data, directory=tmp_path / "c", resume=True, progress=False)
    strip = lambda r: [{k: v for k, v in e.items() if k not in ("seconds", "cpu_seconds")} for e in r.epochs]  # noqa: E731
    assert strip(resumed) == strip(straight) == strip(again)
    assert resumed.loss_curve == straight.loss_curve == again.loss_curve
    with np.load(tmp_path / "a" / "checkpoint.npz") as za, np.load(tmp_path / "c" / "checkpoint.npz") as zc:
        assert np.array_equal(za["buffer"], zc["buffer"]) and np.array_equal(za["opt_v"], zc["opt_v"])


def test_resume_refuses_another_run_and_corrupt_checkpoints(tmp_path):
    data = small_data()
    T.train(T.TrainConfig(**{**SMALL, "epochs": 1}), data, directory=tmp_path, progress=False)
    with pytest.raises(DataError, match="another run.*learning_rate"):
        T.train(T.TrainConfig(**{**SMALL, "learning_rate": 0.1}), data, directory=tmp_path, resume=True,
                progress=False)
    raw = (tmp_path / "checkpoint.npz").read_bytes()
    (tmp_path / "checkpoint.npz").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(DataError, match="checkpoint.npz: not a readable checkpoint"):
        T.train(T.TrainConfig(**SMALL), data, directory=tmp_path, resume=True, progress=False)


def test_a_failed_run_is_kept_on_resume(tmp_path, monkeypatch):
    """A run that failed after a checkpoint: resuming returns its record, without training."""
    real, calls = T.training_step, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 12 + 3:  # epoch 2, step 3
            raise T._BlowUp("a stand-in blow-up")
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "training_step", failing)
    run = T.train(T.TrainConfig(**SMALL), small_data(), directory=tmp_path, progress=False)
    assert run.status == "failed" and run.failure == {"epoch": 2, "step": 3, "reason": "a stand-in blow-up"}
    assert len(run.epochs) == 1 and not run.learnt
    n = len(calls)
    again = T.train(T.TrainConfig(**SMALL), small_data(), directory=tmp_path, resume=True, progress=False)
    assert len(calls) == n and again.failure == run.failure and again.epochs == run.epochs


def test_resume_with_fewer_epochs_is_refused(tmp_path):
    T.train(T.TrainConfig(**{**SMALL, "epochs": 2}), small_data(), directory=tmp_path, progress=False)
    with pytest.raises(DataError, match="2 epochs, more than the 1 asked for"):
        T.train(T.TrainConfig(**{**SMALL, "epochs": 1}), small_data(), directory=tmp_path, resume=True,
                progress=False)


def test_unwritable_output_is_refused_before_training(tmp_path, monkeypatch):
    (tmp_path / "result.json").mkdir()  # the result cannot be written over a directory
    monkeypatch.setattr(T, "training_step", lambda *a: pytest.fail("trained before checking the output"))
    with pytest.raises(ParameterError, match="result.json: cannot be written"):
        T.train(T.TrainConfig(**SMALL), small_data(), directory=tmp_path, progress=False)


def test_blow_up_is_recorded_not_raised(tmp_path):
    cfg = T.TrainConfig(**{**SMALL, "activation": "relu", "sparsity": 0.5, "v_prime": None, "optimizer": "sgd",
                           "learning_rate": 900.0, "momentum": 0.9})
    run = T.train(cfg, small_data(), directory=tmp_path, progress=False)
    assert run.status == "failed" and not run.learnt
    f = run.failure
    assert f["epoch"] >= 1 and f["step"] >= 1 and f["reason"]
    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored["status"] == "failed" and stored["failure"] == f
    again = T.train(cfg, small_data(), directory=tmp_path, resume=True, progress=False)
    assert again.failure == f


# -- the validation split and the plateau rule ----------------------------------------
@settings(max_examples=200, deadline=None)
@given(acc=st.lists(st.floats(0, 1), max_size=40), window=st.integers(1, 6), span=st.integers(1, 12),
       gain=st.floats(0, 0.05))
def test_plateau_epoch_by_hand(acc, window, span, gain):
    """The rule against a direct reading: the first epoch e whose last ``window``
    accuracies average less than ``gain`` above the ``window`` ending ``span`` epochs
    earlier."""
    want = None
    for e in range(1, len(acc) + 1):
        if e >= window + span and (np.mean(acc[e - window:e]) - np.mean(acc[e - window - span:e - span])
                                   < gain - 1e-12):
            want = e
            break
    got = T.plateau_epoch(acc, window, span, gain)
    if want is None:  # (a difference within rounding of gain may go either way)
        assert got is None or abs(np.mean(acc[got - window:got]) - np.mean(acc[got - window - span:got - span])
                                  - gain) < 1e-12
    else:
        assert got is not None and got <= want


def test_the_validation_split_is_held_out(monkeypatch):
    """The last ``validation`` training images are measured every epoch and never trained
    on; train_size counts the images left after it."""
    xtr, ytr, xte, yte = small_data()
    cfg = T.TrainConfig(**{**SMALL, "validation": 100, "train_size": 450, "epochs": 2})
    d = T.prepare_data((xtr, ytr, xte, yte), cfg)
    assert (len(d.x_train), len(d.x_validation), len(d.x_test)) == (450, 100, 200)
    np.testing.assert_array_equal(d.y_validation, ytr[-100:])
    np.testing.assert_array_equal(d.y_train, ytr[:450])
    seen = []
    real = T.training_step
    monkeypatch.setattr(T, "training_step", lambda net, opt, x, *a, **k: (seen.append(x.copy()), real(net, opt, x, *a, **k))[1])
    run = T.train(cfg, (xtr, ytr, xte, yte), progress=False)
    trained = np.concatenate(seen)
    assert len(trained) == 2 * 450
    held = {row.tobytes() for row in d.x_validation}
    assert not any(row.tobytes() in held for row in trained)
    for e in run.epochs:
        assert 0 <= e["validation_accuracy"] <= 1 and e["validation_loss"] > 0
    with pytest.raises(ParameterError, match="validation = 600 is out of range"):
        T.prepare_data((xtr, ytr, xte, yte), T.TrainConfig(**{**SMALL, "validation": 600}))
    with pytest.raises(ParameterError, match="train_size = 501 is out of range.*after the validation split"):
        T.prepare_data((xtr, ytr, xte, yte), T.TrainConfig(**{**SMALL, "validation": 100, "train_size": 501}))


def test_plateau_stops_the_run_and_a_resume_keeps_it_stopped(tmp_path, monkeypatch):
    cfg = T.TrainConfig(**{**SMALL, "validation": 100, "stop": "plateau", "epochs": 60, "learning_rate": 3e-3})
    run = T.train(cfg, small_data(), directory=tmp_path, progress=False)
    acc = [e["validation_accuracy"] for e in run.epochs]
    assert run.status == "ok" and run.stopped["rule"] == "plateau"
    assert run.stopped["epoch"] == len(run.epochs) == T.plateau_epoch(acc) < 60
    assert T.plateau_epoch(acc[:-1]) is None  # it stopped at the first epoch the rule allowed
    stored = T.TrainResult.from_dict(json.loads((tmp_path / "result.json").read_text()))
    assert stored.stopped == run.stopped
    monkeypatch.setattr(T, "training_step", lambda *a, **k: pytest.fail("a stopped run trained again"))
    again = T.train(cfg, small_data(), directory=tmp_path, resume=True, progress=False)
    assert again.epochs == run.epochs and again.stopped == run.stopped


def test_a_resume_may_change_when_the_run_ends(tmp_path):
    """The stop rule, like the epochs, decides when a run ends, not how it trains: a run
    resumed under another rule continues where it was, bit for bit."""
    base = {**SMALL, "validation": 100, "epochs": 4}
    straight = T.train(T.TrainConfig(**{**base, "stop": "budget"}), small_data(), progress=False)
    T.train(T.TrainConfig(**{**base, "epochs": 2, "stop": "plateau"}), small_data(), directory=tmp_path,
            progress=False)
    again = T.train(T.TrainConfig(**{**base, "stop": "best"}), small_data(), directory=tmp_path, resume=True,
                    progress=False)
    strip = lambda r: [{k: v for k, v in e.items() if k not in ("seconds", "cpu_seconds")} for e in r.epochs]  # noqa: E731
    assert strip(again) == strip(straight) and again.config.stop == "best"
    with pytest.raises(DataError, match="another run.*learning_rate"):
        T.train(T.TrainConfig(**{**base, "stop": "best", "learning_rate": 0.5}), small_data(), directory=tmp_path,
                resume=True, progress=False)


def test_the_plateau_rule_reads_validation_never_test():
    with pytest.raises(ParameterError, match="stop = 'plateau' needs a validation split"):
        T.TrainConfig(**{**SMALL, "stop": "plateau"})
    # journals written before these fields existed still load
    d = T.TrainConfig(**SMALL).to_dict()
    del d["validation"], d["stop"]
    assert T.TrainConfig.from_dict(d) == T.TrainConfig(**SMALL)


# -- hostile configurations -----------------------------------------------------------
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
                    st.sampled_from([(0.9,), (0.9, 1.0), (0.5, 0.5), [], "adam", "sgd", "relu", "cst"]))
_FIELDS = [f.name for f in T.dataclasses.fields(T.TrainConfig)]


@settings(max_examples=300)
@given(changes=st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=3))
def test_config_fuzz(changes):
    """Any field set to anything: a valid configuration, or a ParameterError that names a
    field that was changed (or, where the activation or its clip changed, clip / v_prime)
    and says what is valid."""
    kw = {**SMALL, **changes}
    try:
        cfg = T.TrainConfig(**kw)
    except ParameterError as exc:
        msg = str(exc)
        blamable = set(changes) | ({"clip", "v_prime"} if {"activation", "clip", "v_prime"} & set(changes) else set())
        assert any(re.search(rf"\b{re.escape(name)}\b", msg) for name in blamable), (changes, msg)
        assert re.search(r"must|choose from|go with|needs|not one of", msg), msg
    else:
        assert cfg.to_dict()["activation"] in ("relu", "st", "crelu", "cst")


def test_eps_that_rounds_to_zero_is_refused(dtype="float32"):
    """(In float64 every positive Python float is kept, and eps = 0 is refused as out of range.)"""
    tiny = float(np.finfo(dtype).smallest_subnormal)
    T.TrainConfig(**{**SMALL, "dtype": dtype, "eps": tiny})  # the smallest that is kept
    with pytest.raises(ParameterError, match=rf"eps = .* rounds to 0 in {dtype}; must be in \["):
        T.TrainConfig(**{**SMALL, "dtype": dtype, "eps": tiny / 4})


@pytest.mark.parametrize("data", [None, (1, 2), (np.zeros(3), [0], np.zeros((1, 3)), [0]),
                                  (np.zeros((0, 3)), np.zeros(0, int), np.ones((2, 3)), np.zeros(2, int)), (np.ones((4, 3)), np.zeros(4, int), np.ones((2, 5)), np.zeros(2, int)),
                                  (np.zeros((4, 3)), np.zeros(4, int), np.zeros((2, 3)), np.zeros(2, int)),
                                  (np.full((4, 3), np.nan), np.zeros(4, int), np.ones((2, 3)), np.zeros(2, int)),
                                  (np.ones((4, 3)), np.full(4, 10), np.ones((2, 3)), np.zeros(2, int))])
def test_bad_data_is_refused(data):
    with pytest.raises(ParameterError):
        T.train(T.TrainConfig(**SMALL), data, progress=False)


# -- real MNIST: the smoke training CI runs -------------------------------------------
@pytest.mark.parametrize("activation, v_prime", [("crelu", 0.7), ("relu", None)])
def test_smoke_training_on_mnist_learns(real_mnist, activation, v_prime):
    """A few thousand images, depth 10, width 100: the accuracy must rise well above chance."""
    s = 0.85 if activation == "crelu" else 0.5
    cfg = T.TrainConfig(activation, s, v_prime=v_prime, depth=10, width=100, epochs=3, train_size=4000,
                        test_size=1000, learning_rate=1e-3, optimizer="adam", batch_size=64)
    run = T.train(cfg, real_mnist, progress=False)
    acc = [e["test_accuracy"] for e in run.epochs]
    assert run.status == "ok" and acc[-1] > acc[0] and acc[-1] > 0.75, acc
    if activation == "crelu":  # the clipped network stays near its EoC sparsity while it learns
        assert abs(np.mean(run.epochs[-1]["test_sparsity_layers"]) - 0.85) < 0.05


# -- the command line -----------------------------------------------------------------
def test_cli_train_and_resume(tmp_path, monkeypatch, capsys):
    d = write_idx_dir(tmp_path / "idx", pin(monkeypatch))
    base = ["train", "--activation", "cst", "--sparsity", "0.8", "--v-prime", "0.5", "--depth", "3",
            "--width", "24", "--batch-size", "50", "--data", str(d), "--no-progress", "-o", str(tmp_path / "run")]
    assert main(base + ["--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "cst s = 0.8, V' = 0.5" in out and "wrote" in out
    assert main(base + ["--epochs", "2", "--resume", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [e["epoch"] for e in got["epochs"]] == [1, 2] and got["config"]["optimizer"] == "adam"
    # the same directory again without --resume: refused before anything is overwritten
    before = (tmp_path / "run" / "result.json").read_bytes()
    assert main(base + ["--epochs", "1"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "result.json").read_bytes() == before
    assert main(base + ["--epochs", "1", "--force", "--json"]) == 0
    assert [e["epoch"] for e in json.loads(capsys.readouterr().out)["epochs"]] == [1]
    capsys.readouterr()
    # a usage error, found before the data load (here the data directory does not exist)
    no_data = [a if a != str(d) else str(tmp_path / "missing") for a in base]
    assert main(no_data + ["--resume", "--force"]) == 2
    err = capsys.readouterr().err
    assert "--resume and --force exclude each other" in err and "missing" not in err


_TRAIN_FLAGS = ["--activation", "--sparsity", "--clip", "--v-prime", "--q-star", "--depth", "--width",
                "--epochs", "--optimizer", "--lr", "--momentum", "--batch-size", "--train-size",
                "--test-size", "--seed", "--dtype", "--backend"]


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(_TRAIN_FLAGS), st.one_of(
    st.sampled_from(["relu", "st", "crelu", "cst", "adam", "sgd", "nan", "inf", "-1", "0", "1e400", "",
                     "0.85", "0.7", "2", "float64", "numba", "dense"]),
    st.floats(allow_nan=True).map(repr), st.integers(-5, 10**12).map(str), st.text(max_size=5))), max_size=6))
def test_cli_train_fuzz(tmp_path_factory, pairs):
    """Hostile arguments to train: a clean one-line error (exit 2), or a (tiny) run whose
    summary holds no NaN."""
    import contextlib
    import io
    import re
    data = arrays(60, 20)
    d = tmp_path_factory.getbasetemp() / "fuzz-idx"
    if not d.exists():
        write_idx_dir(d, data)
    argv = ["train", "--data", str(d), "--no-progress", "--depth", "2", "--width", "8", "--epochs", "1"]
    for flag, value in pairs:
        if flag in ("--depth", "--width", "--epochs", "--train-size", "--test-size", "--batch-size"):
            try:  # keep the accepted runs tiny
                if int(value) > 50:
                    continue
            except ValueError:
                pass
        argv += [flag, value]
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        pin(mp, data)  # the test files pass as MNIST
        code = main(argv)
    if code == 0:
        assert err.getvalue() == "" and "epoch" in out.getvalue()
        assert not re.search(r"\bnan\b", out.getvalue(), re.IGNORECASE)
    else:
        assert code == 2, (argv, out.getvalue(), err.getvalue())
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("meanfield: error: ") and "Traceback" not in err.getvalue()


# -- the reproduction -----------------------------------------------------------------
def test_minimum_grid_covers_what_the_issue_asks():
    got = {(c["activation"], c["sparsity"], c["v_prime"]) for c in reproduce.grid("minimum")}
    want = {("relu", 0.5, None)} | {(a, s, None) for a in ("relu", "st") for s in (0.7, 0.85)} | {
        (a, s, v) for a in ("crelu", "cst") for s in (0.7, 0.85) for v in (0.5, 0.7, 0.9)}
    assert got == want
    full = {(c["activation"], c["sparsity"], c["v_prime"]) for c in reproduce.grid("full")}
    assert want < full and len(full) == 1 + 2 * 4 + 2 * 4 * 3
    cs = reproduce.configs("minimum", seeds=5)
    assert len(cs) == 17 * 5 and {c.depth for c in cs} == {100} and {c.width for c in cs} == {300}
    with pytest.raises(ParameterError):
        reproduce.grid("tiny")


TINY = dict(depth=2, width=16, epochs=1, batch_size=50, sparsity_sample=100)



@pytest.mark.skipif(fcntl is None, reason="no flock on this platform: one process per run directory")
def test_a_run_another_process_is_training_is_refused_untouched(tmp_path):
    """Two processes training one run directory would mix their checkpoints: the second is
    refused with InUseError naming the directory, and writes nothing."""
    data = small_data()
    T.train(T.TrainConfig(**{**SMALL, "epochs": 1}), data, directory=tmp_path, progress=False)
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir() if f.name != T.LOCK}
    assert not T.in_use(tmp_path)
    with held_by_another_process(tmp_path / T.LOCK):
        assert T.in_use(tmp_path)
        with pytest.raises(InUseError, match=re.escape(str(tmp_path)) + ".*another process is training"):
            T.train(T.TrainConfig(**SMALL), data, directory=tmp_path, resume=True, progress=False)
        assert {f.name: f.read_bytes() for f in tmp_path.iterdir() if f.name != T.LOCK} == before
    assert not T.in_use(tmp_path)
    run = T.train(T.TrainConfig(**SMALL), data, directory=tmp_path, resume=True, progress=False)
    assert len(run.epochs) == 3


@pytest.mark.skipif(fcntl is None, reason="no flock on this platform")
def test_two_study_drivers_share_a_study(tmp_path, monkeypatch, capsys, load_script):
    """scripts/mnist_studies.py skips a run another driver is training (its directory is
    locked), whether it sees the lock before starting or only when the run refuses it."""
    script = load_script("scripts/mnist_studies.py")
    monkeypatch.setattr(script, "ROOT", tmp_path)
    monkeypatch.setenv("MEANFIELD_DATA", str(tmp_path / "cache"))
    cfgs = reproduce.study_configs("long", seeds=1)[:3]  # three runs are enough, and quicker
    every = reproduce.study_configs
    monkeypatch.setattr(reproduce, "study_configs", lambda name, **kw: every(name, **kw)[:3])
    runs_dir = reproduce.default_runs_dir(tmp_path / "results" / "mnist-long")
    busy = runs_dir / reproduce.run_key(cfgs[0])
    busy.mkdir(parents=True)
    with held_by_another_process(busy / T.LOCK):
        script.main(["--plan", "long:0", "--dry-run"])
        *lines, summary = capsys.readouterr().out.splitlines()
        assert lines[0] == f"long: {reproduce.run_key(cfgs[0])}: running: another driver is training it"
        assert len(lines) == len(cfgs) and all(line.endswith(": to run") for line in lines[1:])
        assert summary == "long: 0 done, 1 running, 2 to run; no finished run to estimate the rest by"

        def refused(configs_, **kwargs):  # the lock was taken between the check and the run
            raise InUseError(f"{runs_dir / reproduce.run_key(configs_[0])} is held")

        monkeypatch.setattr(script.reproduce, "run_grid", refused)
        script.main(["--plan", "long:0"])
        out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("skipped: another driver is training it")
    assert all(": skipped: " in line for line in out[2::2]) and len(out) == 1 + 2 * (len(cfgs) - 1)
    journal = tmp_path / "results" / "mnist-long" / "runs.jsonl"
    assert not journal.exists()
    # a run that finishes: the driver writes the study's tables from the journal it holds
    header, entry = (Path(__file__).resolve().parents[1] / "results" / "mnist-long" / "runs.jsonl"
                     ).read_text().splitlines()[:2]

    def finished(configs_, **kwargs):
        journal.parent.mkdir(parents=True, exist_ok=True)
        journal.write_text(header + "\n" + entry + "\n")
        return [T.TrainResult.from_dict(json.loads(entry)["result"])]

    monkeypatch.setattr(script.reproduce, "run_grid", finished)
    journal.parent.mkdir(parents=True)
    with held_by_another_process(journal) as other:  # another driver writing its tables
        other.release(after=1.5)
        t0 = time.monotonic()
        script.main(["--plan", "long:0"])
        waited = time.monotonic() - t0
    assert waited > 1.2, "the driver wrote the tables without holding the journal"
    out = capsys.readouterr().out.splitlines()
    assert sum("stopped by the best rule at epoch 57; test 0.9591" in line for line in out) == len(cfgs)
    assert (journal.parent / "table.md").is_file() and (journal.parent / "study.md").is_file()


@pytest.mark.skipif(fcntl is None, reason="no flock on this platform")
def test_the_studies_dry_run_shows_how_far_each_unfinished_run_is(tmp_path, monkeypatch, capsys, load_script):
    """--dry-run gives the epochs behind a run another driver is training and behind an
    interrupted one (its checkpoint's epochs.csv), and nothing for a run not started."""
    script = load_script("scripts/mnist_studies.py")
    monkeypatch.setattr(script, "ROOT", tmp_path)
    monkeypatch.setenv("MEANFIELD_DATA", str(tmp_path / "cache"))
    cfgs = reproduce.study_configs("long", seeds=1)[:3]
    every = reproduce.study_configs
    monkeypatch.setattr(reproduce, "study_configs", lambda name, **kw: every(name, **kw)[:3])
    runs_dir = reproduce.default_runs_dir(tmp_path / "results" / "mnist-long")
    held, interrupted = (runs_dir / reproduce.run_key(c) for c in cfgs[:2])
    for folder, rows in ((held, 63), (interrupted, 2)):
        folder.mkdir(parents=True)
        (folder / "epochs.csv").write_text("epoch,test_accuracy\n" + "".join(f"{e},0.5\n" for e in range(1, rows + 1)))
    with held_by_another_process(held / T.LOCK):
        script.main(["--plan", "long:0", "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"long: {reproduce.run_key(cfgs[0])}: running: another driver is training it, 63 of at "
                     f"most {cfgs[0].epochs} epochs done",
                     f"long: {reproduce.run_key(cfgs[1])}: to run (resumes from its checkpoint, 2 of at most "
                     f"{cfgs[1].epochs} epochs done)",
                     f"long: {reproduce.run_key(cfgs[2])}: to run",
                     "long: 0 done, 1 running, 2 to run; no finished run to estimate the rest by"]


def test_a_study_driver_gives_blas_the_threads_numba_has_unless_told_otherwise(load_script):
    """Two drivers of NUMBA_NUM_THREADS=1 must not each run numpy's BLAS on every core (the
    dense layers of a ReLU run at s = 0.5 go to BLAS); a BLAS setting of the user's stands."""
    blas = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    follow = load_script("scripts/mnist_studies.py").blas_threads_follow_numba
    for env in ({"NUMBA_NUM_THREADS": "1", "PATH": "/bin"}, {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": ""}):
        assert follow(env) == "1"  # an empty variable is no setting (OpenBLAS ignores it)
        assert {k: env[k] for k in blas} == dict.fromkeys(blas, "1")
    for mine in blas:
        env = {"NUMBA_NUM_THREADS": "1", mine: "2"}
        assert follow(env) is None and env == {"NUMBA_NUM_THREADS": "1", mine: "2"}
    env = {"PATH": "/bin"}  # no core budget given: BLAS keeps its default
    assert follow(env) is None and env == {"PATH": "/bin"}
    # run as a script, it sets them before anything loads numpy (whose BLAS reads them once)
    probe = ("import os, runpy, sys\n"
             "class Spy:\n"
             "    seen = []\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name == 'numpy' and not Spy.seen:\n"
             "            Spy.seen.append(os.environ.get('OPENBLAS_NUM_THREADS'))\n"
             "sys.meta_path.insert(0, Spy())\n"
             "script = sys.argv[1]\n"
             "sys.argv = [script, '--help']\n"
             "try:\n"
             "    runpy.run_path(script, run_name='__main__')\n"
             "except SystemExit:\n"
             "    pass\n"
             "print('numpy loaded with OPENBLAS_NUM_THREADS =', Spy.seen)\n")
    script = Path(__file__).resolve().parents[1] / "scripts" / "mnist_studies.py"
    env = {k: v for k, v in os.environ.items() if k not in blas}
    env["NUMBA_NUM_THREADS"] = "1"
    done = subprocess.run([sys.executable, "-c", probe, str(script)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip().endswith("numpy loaded with OPENBLAS_NUM_THREADS = ['1']"), done.stdout + done.stderr


def test_the_studies_estimate_of_the_time_left_goes_by_the_finished_runs(tmp_path, load_script):
    """Each unfinished run counts the median hours of its configuration's finished runs,
    less the seconds of the epochs it has behind it; with none finished, its own pace over
    the epochs it has left, else the median of all finished runs."""
    script = load_script("scripts/mnist_studies.py")
    relu = [_curve("relu", 0.5, None, s, [0.9]) for s in range(3)]
    cst = _curve("cst", 0.85, 0.7, 0, [0.9])
    for r, hours in zip(relu + [cst], (1.0, 2.0, 6.0, 0.5)):
        r.seconds = hours * 3600
    started = tmp_path / "started"
    started.mkdir()
    (started / "epochs.csv").write_text("epoch,seconds\n1,1800\n2,1800\n")  # an hour behind it
    crelu = _curve("crelu", 0.85, 0.7, 1, [0.9]).config
    unfinished = [(relu[0].config, tmp_path / "none"), (relu[1].config, started), (cst.config, tmp_path / "none"),
                  (crelu, tmp_path / "none")]
    # relu: median 2 h, twice, one with an hour behind it; cst 0.5 h; crelu: none finished,
    # so the median of all four (1.5 h)
    assert script.hours_left(unfinished, relu + [cst]) == pytest.approx(2 + 1 + 0.5 + 1.5)
    assert script.hours_left(unfinished, []) is None
    # no finished run of its configuration, but two epochs behind it at half an hour each:
    # its own pace over the epochs it has left, with or without other finished runs
    longer = dataclasses.replace(crelu, epochs=10)
    assert script.hours_left([(longer, started)], relu + [cst]) == pytest.approx(8 * 0.5)
    assert script.hours_left([(longer, started)], []) == pytest.approx(8 * 0.5)


def test_the_sgd_study_takes_the_best_clipped_configuration_at_its_best_validation_epochs(tmp_path, monkeypatch, load_script):
    """scripts/mnist_studies.py chooses at each run's best validation epoch (the epoch a run
    is judged by), not its last, and only once every run of the long study is in."""
    script = load_script("scripts/mnist_studies.py")
    monkeypatch.setattr(script, "ROOT", tmp_path)
    journal = tmp_path / "results" / "mnist-long" / "runs.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_text("")
    # CReLU peaks high and ends low; CST is steady: the last epochs would choose CST
    runs = [_curve("relu", 0.5, None, 0, [0.95, 0.96]), _curve("crelu", 0.85, 0.7, 0, [0.80, 0.95, 0.85]),
            _curve("cst", 0.85, 0.7, 0, [0.90, 0.91])]
    monkeypatch.setattr(reproduce, "study_configs", lambda name, **kw: [r.config for r in runs])
    monkeypatch.setattr(reproduce, "stored_results", lambda path: runs)
    assert script.best_clipped(journal) == {"activation": "crelu", "sparsity": 0.85, "v_prime": 0.7}
    assert "not the sgd grid's" in script.sgd_grid_problem()  # the sgd grid holds CST, V' = 0.7
    runs[1] = _curve("crelu", 0.85, 0.7, 0, [0.80, 0.89, 0.85])
    assert script.best_clipped(journal) == {"activation": "cst", "sparsity": 0.85, "v_prime": 0.7}
    assert script.sgd_grid_problem() is None
    # a further seed (--plan long:3-4), not one of the study's, does not change the choice
    further = runs + [_curve("crelu", 0.85, 0.7, 1, [0.99])]
    monkeypatch.setattr(reproduce, "stored_results", lambda path: further)
    assert script.best_clipped(journal) == {"activation": "cst", "sparsity": 0.85, "v_prime": 0.7}
    monkeypatch.setattr(reproduce, "stored_results", lambda path: runs[:2])  # CST's run not in yet
    assert script.best_clipped(journal) is None and "not finished" in script.sgd_grid_problem()


def _tiny_configs():
    cs = [c for c in reproduce.configs("minimum", seeds=2, **TINY) if c.sparsity == 0.85 or c.sparsity == 0.5]
    return [c for c in cs if c.activation in ("relu", "crelu") and c.v_prime in (None, 0.7)]


def test_run_grid_journal_resumes_run_by_run(tmp_path, monkeypatch):
    d = write_idx_dir(tmp_path / "idx", arrays(200, 100))
    cs = _tiny_configs()
    journal = tmp_path / "out" / "runs.jsonl"
    first = reproduce.run_grid(cs[:3], data=d, verify=False, journal=journal, runs_dir=tmp_path / "runs")
    assert len(journal.read_text().splitlines()) == 1 + 3
    calls = []
    real = reproduce._run_one
    monkeypatch.setattr(reproduce, "_run_one", lambda *a: calls.append(a) or real(*a))
    every = reproduce.run_grid(cs, data=d, verify=False, journal=journal, runs_dir=tmp_path / "runs")
    assert len(calls) == len(cs) - 3  # the three journalled runs were not trained again
    assert [r.epochs for r in every[:3]] == [r.epochs for r in first]
    rows = reproduce.summary(reproduce.stored_results(journal))
    assert sum(r["seeds"] for r in rows) == len(cs)
    with pytest.raises(ParameterError, match="another job"):  # another protocol: refused
        reproduce.run_grid(reproduce.configs("minimum", seeds=1, **{**TINY, "epochs": 2})[:1], data=d,
                           verify=False, journal=journal)
    # a key entered twice (an appended rerun) counts once, with its last result
    lines = journal.read_text().splitlines()
    again = json.loads(lines[1])
    again["result"]["epochs"][-1]["test_accuracy"] = 0.123
    journal.write_text("\n".join(lines + [json.dumps(again)]) + "\n")
    stored = reproduce.stored_results(journal)
    assert len(stored) == len(cs) and sum(r["seeds"] for r in reproduce.summary(stored)) == len(cs)
    assert stored[0].epochs[-1]["test_accuracy"] == 0.123
    paths = reproduce.write_results(reproduce.stored_results(journal), tmp_path / "res")
    assert {p.name for p in paths} >= {"table.md", "table.csv", "accuracy.png", "loss-curves.png",
                                       "gradient-norms.png", "learning-curves.png", "accuracy-by-epoch.csv"}


def test_figures_of_one_part_of_the_grid_mark_the_empty_panel(tmp_path):
    """A study of one configuration (CReLU only) leaves the ST/CST panel without a series:
    it says so, and no figure warns of a legend without artists."""
    d = write_idx_dir(tmp_path / "idx", arrays(200, 100))
    cs = [c for c in _tiny_configs() if c.activation == "crelu"]
    results = reproduce.run_grid(cs, data=d, verify=False)
    from meanfield.training_figures import accuracy_figure
    fig = accuracy_figure(reproduce.summary(results))
    left, right = fig.axes[:2]
    assert left.get_legend() is not None and right.get_legend() is None
    assert [t.get_text() for t in right.texts] == ["no runs of ST_tau / CST"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reproduce.write_results(results, tmp_path / "res")


def test_a_configuration_the_theory_cannot_diagnose_still_trains(capsys):
    """CReLU with m = 1e6 at s = 0.5 is ReLU in all but name: V has no isolated fixed point
    to diagnose. The prediction says so; training is not blocked by it."""
    cfg = T.TrainConfig(**{**SMALL, "sparsity": 0.5, "v_prime": None, "clip": 1e6})
    verdict, reason = T.diagnosis(cfg)
    assert verdict == "undiagnosed" and "fixed point" in reason
    assert T.train(cfg, small_data(), progress=False).status == "ok"


def test_another_protocol_gets_its_own_journal_and_checkpoints(tmp_path, monkeypatch, capsys):
    """Depth 30 next to the committed depth-100 results: its own output directory and run
    keys, while the protocol's keys (those of the committed journal) stay as they were."""
    assert reproduce.protocol_tag(reproduce.configs("minimum")[0]) == ""
    c30 = reproduce.configs("minimum", depth=30)[0]
    assert reproduce.protocol_tag(c30) == "depth30" and reproduce.run_key(c30) == "relu-s0.5-seed0-depth30"
    assert reproduce.run_key(reproduce.configs("minimum")[0]) == "relu-s0.5-seed0"
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "mnist", "--depth", "30", "--report-only"]) == 2
    assert "results/mnist-depth30/runs.jsonl: no such journal" in capsys.readouterr().err


def test_reproduce_filters_select_part_of_the_grid(tmp_path, monkeypatch, capsys):
    """--only, --sparsities and --v-primes: the runs handed to the grid, and a clear error for
    a value the grid does not have."""
    seen = []
    monkeypatch.setattr(reproduce, "run_grid", lambda cs, **kw: seen.append(cs) or [])
    monkeypatch.chdir(tmp_path)
    base = ["reproduce", "mnist", "--seeds", "2", "--epochs", "40"]
    assert main(base + ["--only", "baseline,crelu", "--sparsities", "0.85", "--v-primes", "0.7"]) == 2
    assert "results/mnist-epochs40/runs.jsonl: no finished runs" in capsys.readouterr().err
    got = [(c.activation, c.sparsity, c.v_prime, c.seed, c.epochs) for c in seen[-1]]
    # seed by seed: every configuration's first seed before any second one
    assert got == [c for k in range(2) for c in (("relu", 0.5, None, k, 40), ("crelu", 0.85, 0.7, k, 40))]
    assert main(base + ["--sparsities", "0.7", "--v-primes", "0.5,0.9"]) == 2
    assert {(c.activation, c.sparsity, c.v_prime) for c in seen[-1]} == {
        ("relu", 0.5, None), ("relu", 0.7, None), ("st", 0.7, None),
        *((a, 0.7, v) for a in ("crelu", "cst") for v in (0.5, 0.9))}
    capsys.readouterr()
    for flag, value in [("--sparsities", "0.6"), ("--sparsities", "nan,x"), ("--v-primes", "0.8"),
                        ("--v-primes", "")]:
        n = len(seen)
        assert main(base + [flag, value]) == 2
        err = capsys.readouterr().err
        assert len(seen) == n and flag in err and ("choose from" in err or "must be" in err or "is empty" in err), err


def test_reproduce_of_part_of_a_grid_reports_the_whole_journal(tmp_path, capsys, real_mnist):
    """A run of one part (--only) rewrites the directory's table and figures from every run
    of its journal, so the parts run before are not dropped: the same as --report-only."""
    out = tmp_path / "out"
    protocol = ["--depth", "2", "--width", "16", "--epochs", "1", "--batch-size", "50", "--train-size", "300",
                "--test-size", "100"]
    base = ["reproduce", "mnist", "-o", str(out), *protocol, "--seeds", "1", "--no-progress"]
    assert main(base + ["--only", "crelu", "--sparsities", "0.85", "--v-primes", "0.7"]) == 0
    assert main(base + ["--only", "baseline"]) == 0
    capsys.readouterr()
    rows = [line.split(" | ")[0] for line in (out / "table.md").read_text().splitlines()[2:]]
    assert rows == ["| ReLU", "| CReLU"]
    curves = (out / "accuracy-by-epoch.csv").read_text()
    assert "\nrelu,0.5," in curves and "\ncrelu,0.85,0.7," in curves
    table = (out / "table.md").read_text()
    assert main(["reproduce", "mnist", "-o", str(out), *protocol, "--report-only"]) == 0
    assert (out / "table.md").read_text() == table


_SELECT = ["--grid", "--only", "--sparsities", "--v-primes", "--seeds", "--first-seed", "--jobs", "--epochs"]


@settings(max_examples=80, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(_SELECT), st.one_of(
    st.sampled_from(["minimum", "full", "baseline", "crelu,cst", "relu_tau", "0.85", "0.7,0.85", "0.5,0.9",
                     "0.6", "nan", "inf", "-1", "0", "1", "2", "", ",", "1e400"]),
    st.floats(allow_nan=True).map(repr), st.integers(-5, 10**6).map(str), st.text(max_size=5))), max_size=5))
def test_cli_reproduce_selection_fuzz(tmp_path_factory, pairs):
    """Hostile grid selections: a one-line error naming the problem (exit 2), or the grid
    handed exactly the runs the flags select."""
    import contextlib
    import io
    argv = ["reproduce", "mnist", "-o", str(tmp_path_factory.getbasetemp() / "sel")]
    for flag, value in pairs:
        argv += [flag, value]
    seen, err = [], io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(err):
        mp.setattr(reproduce, "run_grid", lambda cs, **kw: seen.append(cs) or [])
        code = main(argv)
    assert code == 2, argv  # run_grid returns nothing here: "no finished runs" at the best
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("meanfield: error: ") and "Traceback" not in err.getvalue()
    if seen:  # every selected run is one the flags ask for
        opts = {}
        for flag, value in pairs:
            opts[flag] = value
        for c in seen[0]:
            if "--only" in opts:
                assert reproduce.part(c) in opts["--only"].split(",")
            if "--sparsities" in opts and reproduce.part(c) != "baseline":
                assert c.sparsity in {float(w) for w in opts["--sparsities"].split(",")}
            if "--v-primes" in opts and c.v_prime is not None:
                assert c.v_prime in {float(w) for w in opts["--v-primes"].split(",")}
    else:
        assert "no finished runs" not in err.getvalue()


def test_run_grid_on_a_dask_cluster(tmp_path):
    """joblib's dask backend on a LocalCluster of two worker processes: the same results."""
    distributed = pytest.importorskip("dask.distributed")
    import joblib
    d = write_idx_dir(tmp_path / "idx", arrays(200, 100))
    cs = _tiny_configs()[:4]
    local = reproduce.run_grid(cs, data=d, verify=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        with joblib.parallel_config(backend="dask"), distributed.get_task_stream(client) as stream:
            remote = reproduce.run_grid(cs, data=d, verify=False, journal=tmp_path / "j.jsonl")
        workers = client.run(os.getpid)
    assert len(set(workers.values())) == 2 and os.getpid() not in workers.values()
    # the runs were executed by the workers, not in this process
    ran = [t for t in stream.data if "_call" in str(t["key"]) or "batch" in str(t["key"])]
    assert ran and {t["worker"] for t in ran} <= set(workers), stream.data
    # the same numbers up to float32 rounding: a dask worker gives BLAS one thread, which
    # changes the summation order of the dense (ReLU) passes
    flat = lambda r: np.concatenate([np.ravel(np.asarray(v, float)) for e in r.epochs  # noqa: E731
                                     for k, v in sorted(e.items()) if k not in ("seconds", "cpu_seconds", "backend")])
    for a, b in zip(local, remote):
        assert a.config == b.config
        np.testing.assert_allclose(flat(a), flat(b), rtol=1e-4)
    assert len((tmp_path / "j.jsonl").read_text().splitlines()) == 1 + 4


def _result(act, s, v, seed, acc, status="ok", sp=0.85):
    cfg = T.TrainConfig(act, s, v_prime=v, seed=seed, depth=2, width=4, epochs=1)
    epochs = [] if status == "failed" and acc is None else [{
        "epoch": 1, "train_loss": 1.0, "train_accuracy": acc, "test_loss": 1.0, "test_accuracy": acc,
        "train_sparsity_layers": [sp, sp], "test_sparsity_layers": [sp, sp + 0.01],
        "grad_norm_layers": [1.0, 1.0, 1.0], "seconds": 1.0}]
    return T.TrainResult(cfg, status, {"epoch": 1, "step": 3, "reason": "x"} if status != "ok" else None,
                         epochs, [(1, 2.0)], {"m": 1.0, "tau": 1.0, "fixed_points": [[1.0, "stable"]]})


def test_summary_statistics():
    rs = [_result("crelu", 0.85, 0.9, 0, 0.95), _result("crelu", 0.85, 0.9, 1, 0.11),
          _result("crelu", 0.85, 0.9, 2, None, "failed"), _result("relu", 0.5, None, 0, 0.96, sp=0.5)]
    rows = {(r["activation"], r["sparsity"]): r for r in reproduce.summary(rs)}
    c = rows[("crelu", 0.85)]
    assert (c["seeds"], c["learnt"], c["blew_up"]) == (3, 1, 1)
    # the run that blew up in its first epoch measured nothing: no accuracy, no sparsity
    assert c["measured"] == 2 and c["accuracies"] == {"0": 0.95, "1": 0.11, "2": None}
    assert math.isclose(c["accuracy_mean"], 0.53) and math.isclose(c["accuracy_std"], 0.84 / math.sqrt(2))
    assert math.isclose(c["test_sparsity"], 0.855) and math.isclose(c["train_sparsity"], 0.85)
    assert math.isclose(c["test_sparsity_learnt"], 0.855)
    text = reproduce.table_markdown(list(rows.values()))
    # the prediction is the diagnosis of the configuration (at its depth), before training
    from meanfield.diagnose import diagnose_eoc
    predicted = diagnose_eoc(T.initialisation(rs[0].config), depth=rs[0].config.depth).verdict
    assert c["diagnosis"] == predicted and c["diagnosis_reason"]
    assert (f"| CReLU | 0.85 | 0.9 | 1.000 | stable | 1 | {predicted} | 3 | 1 | 1 | 0.5300 +- 0.5940 (2 runs) "
            "| 0.850 (0.850-0.850) |") in text
    assert "| 1 | trainable | 1 | 1 | 0 | 0.9600 | 0.500 | 0.505 |" in text  # ReLU; one run: no std, no range
    # every seed blew up at once: nothing measured, shown as such, and the JSON stays strict
    dead = reproduce.summary([_result("st", 0.85, None, k, None, "failed") for k in range(2)])[0]
    assert dead["accuracy_mean"] is None and dead["test_sparsity"] is None
    assert "| 2 | 0 | 2 | - | - | - |" in reproduce.table_markdown([dead])
    json.dumps(dead, allow_nan=False)


def test_a_corrupt_journal_is_named(tmp_path):
    d = write_idx_dir(tmp_path / "idx", arrays(200, 100))
    cs = _tiny_configs()[:1]
    journal = tmp_path / "runs.jsonl"
    reproduce.run_grid(cs, data=d, verify=False, journal=journal)
    lines = journal.read_text().splitlines()
    entry = json.loads(lines[1])
    del entry["result"]["config"]
    journal.write_text("\n".join([lines[0], json.dumps(entry)]) + "\n")
    with pytest.raises(ParameterError, match="runs.jsonl is corrupt"):
        reproduce.run_grid(cs, data=d, verify=False, journal=journal)


def test_a_refused_step_keeps_its_loss_and_gradient_norms():
    cfg = T.TrainConfig(**SMALL)
    net = MLP.initialise(T.initialisation(cfg), width=32, depth=3, input_dim=784, seed=0)
    xtr, ytr, _, _ = small_data()
    x = (xtr[:50] / np.sqrt(np.mean(xtr[:50] ** 2, axis=1, keepdims=True))).astype(np.float32)

    class Refusing(optimizers.Adam):
        def safe(self, bound, w_max):  # so that the reference step decides
            return False

        def step(self, w, g):
            return "refused"

    grad = np.empty_like(net.buffer)
    before = net.buffer.copy()
    with pytest.raises(T._BlowUp, match="refused") as e:
        T.training_step(net, Refusing(net.buffer.size, net.dtype, learning_rate=1e-3), x, ytr[:50], "dense", grad)
    want = net.gradients(x, ytr[:50], backend="dense")
    assert abs(e.value.details["loss"] - want.loss) < 1e-6
    np.testing.assert_allclose(e.value.details["grad_norm_layers"],
                               [np.linalg.norm(w.astype(np.float64)) for w in want.weights], rtol=1e-5)
    assert np.array_equal(net.buffer, before)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.lists(st.floats(0.0, 1.0), min_size=0, max_size=6), st.booleans()),
                min_size=1, max_size=5))
def test_learning_curves_end_at_the_tables_accuracy(runs):
    # each run: its test accuracies by epoch, and whether it blew up after them (a run with
    # no epoch blew up in its first); the ones that did not blow up all ran the full length
    n = max([len(a) for a, _ in runs] + [1])
    rs = []
    for seed, (accs, blew) in enumerate(runs):
        failed = blew or not accs
        accs = accs if failed else accs + [0.5] * (n - len(accs))
        r = _result("crelu", 0.85, 0.7, seed, None, "failed") if failed else _result("crelu", 0.85, 0.7, seed, 0.5)
        r.epochs[:] = [dict(_result("crelu", 0.85, 0.7, seed, a).epochs[0], epoch=k + 1) for k, a in enumerate(accs)]
        rs.append(r)
    rows = reproduce.learning_curves(rs)
    measured = [r for r in rs if r.epochs]
    if not measured:
        assert rows == []
        return
    assert [r["epoch"] for r in rows] == list(range(1, max(len(r.epochs) for r in measured) + 1))
    assert all(r["runs"] == len(measured) for r in rows)
    for row in rows:  # by hand: every run's accuracy at that epoch, or its last one
        col = [r.epochs[min(row["epoch"], len(r.epochs)) - 1]["test_accuracy"] for r in measured]
        assert math.isclose(row["accuracy_mean"], float(np.mean(col)), abs_tol=1e-12)
        assert (row["accuracy_min"], row["accuracy_max"]) == (min(col), max(col))
        assert row["accuracy_std"] is None if len(col) == 1 else math.isclose(
            row["accuracy_std"], float(np.std(col, ddof=1)), abs_tol=1e-12)
    table = reproduce.summary(rs)[0]
    assert math.isclose(rows[-1]["accuracy_mean"], table["accuracy_mean"], abs_tol=1e-12)
    lines = reproduce.learning_curves_csv(rows).splitlines()
    assert len(lines) == 1 + len(rows) and lines[0].startswith("activation,sparsity,v_prime")


# -- a study's own table ------------------------------------------------------------------
def _curve(act, s, v, seed, accs, status="ok", plateau=None):
    """A result with one epoch per accuracy in ``accs`` (validation = test + 0.01)."""
    r = _result(act, s, v, seed, accs[0] if accs else None, status)
    r.epochs[:] = [dict(_result(act, s, v, seed, a).epochs[0], epoch=k + 1, validation_accuracy=a + 0.01)
                   for k, a in enumerate(accs)]
    r.stopped = None if plateau is None else {"rule": "plateau", "epoch": plateau}
    return r


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy, on near-equal samples
@settings(max_examples=60, deadline=None)
@given(a=st.lists(st.floats(0.5, 1.0), min_size=2, max_size=6), b=st.lists(st.floats(0.5, 1.0), min_size=2, max_size=6))
def test_welch_interval_is_scipys(a, b):
    """Against scipy's Welch t test, an independent implementation."""
    from scipy import stats
    d, lo, hi = reproduce.welch_interval(a, b)
    assert math.isclose(d, np.mean(a) - np.mean(b), abs_tol=1e-12)
    if np.var(a) + np.var(b) == 0:
        return
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert math.isclose(lo, ci.low, abs_tol=1e-9) and math.isclose(hi, ci.high, abs_tol=1e-9)


def test_study_summary_by_hand():
    base = [_curve("relu", 0.5, None, k, [0.80, 0.92, 0.95, 0.96 + 0.002 * k], plateau=4) for k in range(3)]
    clip = [_curve("crelu", 0.85, 0.7, 0, [0.5, 0.85, 0.91, 0.92, 0.94]),
            _curve("crelu", 0.85, 0.7, 1, [0.4, 0.7, 0.89]),
            _curve("crelu", 0.85, 0.7, 2, [0.3], status="failed")]
    rows = {r["activation"]: r for r in reproduce.study_summary(base + clip)}
    b, c = rows["relu"], rows["crelu"]
    assert (b["stopped_by_rule"], b["epochs_min"], b["epochs_max"], b["epoch_90"], b["epoch_93"]) == (3, 4, 4, 2, 3)
    assert b["gap"] is None  # the baseline has no gap to itself
    assert (c["seeds"], c["measured"], c["blew_up"], c["stopped_by_rule"]) == (3, 3, 1, 0)
    assert (c["epochs_min"], c["epochs_median"], c["epochs_max"]) == (1, 3.0, 5)
    # 0.90 first reached at epoch 3 by seed 0 only; 0.93 at epoch 5 by seed 0 only
    assert (c["epoch_90"], c["epoch_90_runs"], c["epoch_93"], c["epoch_93_runs"]) == (3, 1, 5, 1)
    final = [0.94, 0.89, 0.3]
    assert math.isclose(c["accuracy_mean"], np.mean(final))
    assert math.isclose(c["validation_mean"], np.mean(final) + 0.01)
    # judged at the epoch of best validation accuracy (validation = test + 0.01 here: the best test)
    assert math.isclose(c["selected_mean"], np.mean([0.94, 0.89, 0.3]))
    d, lo, hi = reproduce.welch_interval(final, [0.96, 0.962, 0.964])
    assert (c["gap"], c["gap_low"], c["gap_high"]) == (d, lo, hi)
    assert c["within_2_points"] is False and c["surely_within_2_points"] is False
    text = reproduce.study_markdown(list(rows.values()))
    assert "| ReLU | 2 | 3 | 4-4-4 | 3 |" in text and "| 3 (1/3) | 5 (1/3) |" in text


def test_study_note_counts_machine_time_and_passes():
    """The machine time under a study's table: wall and CPU hours, CPU-seconds per second
    (a run on one thread uses at most one), and the passes and threads each run trained
    with, as its last epoch recorded them (journals from before the record say so)."""
    a, b, c = (_curve("relu", 0.5, None, k, [0.9, 0.95]) for k in range(3))
    for r, cpu, backend in ((a, 1.8, "numba (2 threads)"), (b, 0.9, "numba (1 thread)")):
        for e in r.epochs:
            e.update(seconds=1800.0, cpu_seconds=1800.0 * cpu, backend=backend)
    for r in (a, b, c):
        r.seconds = 3600.0
    head = reproduce.study_note([a, b, c]).split("\n")[0]
    # CPU time from a and b alone (c did not record it): (2 * 1800 * 1.8 + 2 * 1800 * 0.9) s
    assert head.startswith("3 runs, 3.0 h of wall time; 2.7 CPU-hours over the epochs that recorded it "
                           "(2 whole runs; 1.35 CPU-seconds per second).")
    assert head.endswith("by run's last epoch: not recorded: 1; numba (1 thread): 1; numba (2 threads): 1.")


def test_an_epoch_records_its_passes_and_threads():
    for backend in ("numpy", "dense"):
        r = T.train(T.TrainConfig(**{**SMALL, "epochs": 1, "backend": backend}), small_data(), progress=False)
        recorded = r.epochs[-1]["backend"]
        assert recorded.startswith({"numpy": "numpy (vectorized", "dense": "dense (numpy matrix"}[backend])
        assert recorded == mlp_module.describe_backend(backend)


def test_a_dip_does_not_decide_a_run():
    """The test accuracy a study judges a run by is that of its best validation epoch, so
    a last epoch in a loss spike does not count; and the best rule keeps training through
    the dip while the best still rises."""
    dip = _curve("crelu", 0.85, 0.7, 0, [0.5, 0.8, 0.9, 0.92, 0.6])
    [row] = reproduce.study_summary([dip])
    assert row["accuracy_mean"] == 0.6 and row["selected_mean"] == 0.92
    assert T.best_epoch([0.5, 0.8, 0.9, 0.92, 0.6] + [0.93 + 0.001 * k for k in range(30)], span=20) is None
    assert T.best_epoch([0.5, 0.8, 0.9, 0.92] + [0.6, 0.92] * 15, span=20) == 24


def test_prediction_correlation_counts_blow_ups_as_chance(monkeypatch):
    """Spearman's rho between the verdicts (as PREDICTED_RANK) and the mean accuracy, a run
    that blew up counted as 0.1."""
    from scipy import stats
    verdicts = {("relu", 0.5): "trainable", ("crelu", 0.85): "too-sparse", ("relu", 0.85): "half-stable",
                ("cst", 0.85): "trainable"}
    monkeypatch.setattr(reproduce, "diagnosis", lambda c: (verdicts[(c.activation, c.sparsity)], ""))
    rs = [_result("relu", 0.5, None, 0, 0.95), _result("crelu", 0.85, 0.5, 0, 0.6),
          _result("relu", 0.85, None, 0, 0.4, status="failed"), _result("relu", 0.85, None, 1, None, "failed"),
          _result("cst", 0.85, 0.7, 0, 0.9)]
    rho, p, n = reproduce.prediction_correlation(rs)
    want = stats.spearmanr([2, 1, 0, 2], [0.95, 0.6, 0.1, 0.9])
    assert n == 4 and math.isclose(rho, want.statistic) and math.isclose(p, want.pvalue)


def test_mean_accuracy_counts_blow_ups_as_chance_at_the_last_or_the_judged_epoch():
    """The per-configuration accuracy behind every rank correlation: the mean over seeds, a
    run that blew up (measured or not) counting as 0.1, a run that stayed ok but at chance
    counting as what it measured; each run at its last epoch, or with ``judged`` at its best
    validation epoch."""
    rs = [_curve("crelu", 0.85, 0.7, 0, [0.5, 0.9, 0.3]), _curve("crelu", 0.85, 0.7, 1, [0.12]),
          _curve("crelu", 0.85, 0.7, 2, [0.8], status="failed"), _result("crelu", 0.85, 0.7, 3, None, "failed"),
          _curve("relu", 0.5, None, 0, [0.95, 0.96])]
    last = reproduce.mean_accuracy(rs)
    judged = reproduce.mean_accuracy(rs, judged=True)
    key = reproduce.configuration_key(rs[0].config)
    assert last[key][0] == rs[0].config and set(last) == {key, reproduce.configuration_key(rs[-1].config)}
    assert math.isclose(last[key][1], (0.3 + 0.12 + 0.1 + 0.1) / 4)
    assert math.isclose(judged[key][1], (0.9 + 0.12 + 0.1 + 0.1) / 4)
    assert math.isclose(judged[reproduce.configuration_key(rs[-1].config)][1], 0.96)
    assert [reproduce.run_accuracy(r, judged=True) for r in rs[:4]] == [0.9, 0.12, 0.1, 0.1]


def test_training_inputs_are_normalise_inputs_bit_for_bit():
    """One scaling of the inputs: the training splits are :func:`normalise_inputs` of the
    images (float64), then the run's dtype; the historic rounding (no division by the
    maximum for ordinary data) is kept, pinned on an image of MNIST's scale."""
    from meanfield.nn import normalise_inputs
    data = small_data()
    cfg = T.TrainConfig(**{**SMALL, "validation": 100})
    prepared = T.prepare_data(data, cfg)
    x = np.asarray(data[0], dtype=np.float64)
    np.testing.assert_array_equal(prepared.x_train, normalise_inputs(x[:500]).astype(np.float32))
    np.testing.assert_array_equal(prepared.x_test, normalise_inputs(data[2]).astype(np.float32))
    row = np.arange(784.0) % 256 / 255.0
    np.testing.assert_array_equal(normalise_inputs(row)[0], row / np.sqrt(np.mean(row * row)))
    for bad, word in ((np.full((2, 3), np.nan), "NaN"), (np.zeros((1, 3)), "all zeros")):
        with pytest.raises(ParameterError, match=word):
            normalise_inputs(bad, what="train images")


def test_a_finite_blow_up_is_recorded_as_diverged(tmp_path, monkeypatch):
    """A loss that grows without becoming NaN (the issue's 7e7 with chance accuracy) ends the
    run as "diverged" at the window where it passes DIVERGENCE_FACTOR x max(first loss,
    ln 10), with the epoch, step and loss; a resume keeps that record; the tables count
    it with the blow-ups; a run that rises less (the exploding ReLU_tau runs that learn)
    is not touched."""
    from meanfield.nn import reproduce
    real = T.training_step
    calls = {"n": 0}

    def growing(net, opt, x, y, backend, grad, owned=False):
        real(net, opt, x, y, backend, grad, owned=owned)
        calls["n"] += 1
        return 2.5 * 1.5 ** calls["n"], np.ones(net.depth + 1)

    monkeypatch.setattr(T, "training_step", growing)
    cfg = T.TrainConfig(**{**SMALL, "loss_every": 2, "epochs": 3})
    run = T.train(cfg, small_data(), directory=tmp_path, progress=False)
    assert run.status == "diverged" and not run.learnt
    first = run.loss_curve[0][1]
    assert run.failure["loss"] > T.DIVERGENCE_FACTOR * max(first, math.log(10))
    assert run.loss_curve[-2][1] <= T.DIVERGENCE_FACTOR * max(first, math.log(10))  # the first window past it
    steps_per_epoch = 12  # 600 training images (small_data), batch 50
    assert (run.failure["epoch"] - 1) * steps_per_epoch + run.failure["step"] == run.loss_curve[-1][0]
    assert "diverged" in run.failure["reason"]
    again = T.train(cfg, small_data(), directory=tmp_path, resume=True, progress=False)
    assert again.status == "diverged" and again.failure == run.failure
    assert reproduce.summary([run])[0]["blew_up"] == 1

    def rising_23_fold(net, opt, x, y, backend, grad, owned=False):
        real(net, opt, x, y, backend, grad, owned=owned)
        calls["n"] += 1
        return 60.0 * min(calls["n"], 23), np.ones(net.depth + 1)

    calls["n"] = 0
    monkeypatch.setattr(T, "training_step", rising_23_fold)
    rising = T.train(T.TrainConfig(**{**SMALL, "loss_every": 1, "epochs": 3}), small_data(), progress=False)
    assert rising.status == "ok"  # 23-fold above its start: within the rule


def test_runs_in_threads_leave_mpmath_s_precision_alone():
    """Two initialisations and diagnoses side by side in threads, each in its thread's own
    mpmath context: the global precision is untouched and each gives what one alone does."""
    import concurrent.futures

    import mpmath

    from meanfield.nn.train import TrainConfig, _diagnosis, initialisation
    configs = [TrainConfig("cst", 0.85, v_prime=v, depth=30) for v in (0.5, 0.7, 0.9, 0.6)]
    alone = [float(initialisation(c).sigma_w2) for c in configs]
    before = mpmath.mp.prec
    _diagnosis.cache_clear()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(lambda c: T.diagnosis(c), configs * 2))
    assert mpmath.mp.prec == before
    assert verdicts[:4] == verdicts[4:]
    assert alone == [float(initialisation(c).sigma_w2) for c in configs]


def test_the_studies_driver_trains_only_the_activations_asked_for(tmp_path, monkeypatch, capsys, load_script):
    """--activations cst keeps the sgd study's ReLU run (hours longer than its clipped one)
    out of the queue; an activation no study has is refused by name."""
    script = load_script("scripts/mnist_studies.py")
    monkeypatch.setattr(script, "ROOT", tmp_path)
    monkeypatch.setenv("MEANFIELD_DATA", str(tmp_path / "cache"))
    script.main(["--plan", "sgd:0", "--dry-run", "--activations", "cst"])
    lines = capsys.readouterr().out.splitlines()
    cst = [c for c in reproduce.study_configs("sgd") if c.activation == "cst"]
    assert cst and lines == [f"sgd: {reproduce.run_key(c)}: to run" for c in cst] + [
        f"sgd: 0 done, 0 running, {len(cst)} to run; no finished run to estimate the rest by"]
    with pytest.raises(SystemExit):
        script.main(["--plan", "sgd:0", "--dry-run", "--activations", "tanh"])
    assert "--activations: 'tanh': choose from crelu, cst, relu, st" in capsys.readouterr().err


@pytest.mark.skipif(fcntl is None, reason="no flock on this platform")
def test_parked_runs_come_back_byte_for_byte(tmp_path, monkeypatch, capsys, load_script):
    """--park keeps an unfinished run's files (not its lock or leftovers) in the repository's
    object store, and --unpark writes them back exactly, each holding the run's lock while it
    acts; a run being trained is neither parked nor written over, a parked copy is never
    replaced by a shorter one, a cache with the checkpoint and as many epochs is left alone,
    a run whose files cannot all be read is left as it was, and a run finished since is
    dropped."""
    script = load_script("scripts/mnist_studies.py")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.setattr(script, "ROOT", tmp_path)
    monkeypatch.setenv("MEANFIELD_DATA", str(tmp_path / "cache"))
    long_run, held_run = (reproduce.run_key(c) for c in reproduce.study_configs("long")[:2])
    runs_dir = reproduce.default_runs_dir(tmp_path / "results" / "mnist-long")
    files = {"checkpoint.npz": np.random.default_rng(0).bytes(300_000), "layers.csv": b"layer\r\n1\r\n",
             "epochs.csv": b"epoch,seconds\n1,2.5\n2,2.5\n3,2.5\n", "result.json": b'{"x": 1}'}
    for key in (long_run, held_run):
        (runs_dir / key).mkdir(parents=True)
        (runs_dir / key / T.LOCK).touch()
        (runs_dir / key / ".checkpoint.npz.tmp123").write_bytes(b"half a checkpoint")
        for name, data in files.items():
            (runs_dir / key / name).write_bytes(data)
    locked_while_acting = []  # whether the run's lock is held at each check and each copy

    def spy(real, folder_arg):
        def called(*args):
            locked_while_acting.append((real.__name__, T.in_use(args[folder_arg])))
            return real(*args)
        return called
    for fn, folder_arg in (("park_one", 1), ("unpark_one", 0), ("epochs_done", 0)):
        monkeypatch.setattr(script, fn, spy(getattr(script, fn), folder_arg))
    with held_by_another_process(runs_dir / held_run / T.LOCK):
        script.main(["--park"])
    out = capsys.readouterr().out
    assert f"long: {long_run}: parked (3 epochs done)" in out
    assert f"long: {held_run}: not parked: another process holds it (a driver training it?); stop it first" in out

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True).stdout
    refs = git("for-each-ref", "--format=%(refname)").split()
    assert refs == [f"refs/meanfield-runs/long/{long_run}"]
    assert git("ls-tree", "--name-only", refs[0]).split() == sorted(files)

    def cache():
        return {f.name: f.read_bytes() for f in (runs_dir / long_run).iterdir() if f.name in files}
    (runs_dir / long_run / "epochs.csv").write_bytes(b"epoch,seconds\n1,2.5\n")  # a cache that lost epochs
    (runs_dir / long_run / "result.json").write_bytes(b"torn")
    tree = git("rev-parse", refs[0])
    script.main(["--park"])  # the parked copy is further: it stays
    assert "not parked: the parked copy has 3 epochs, the cache 1 (run --unpark)" in capsys.readouterr().out
    assert git("rev-parse", refs[0]) == tree
    script.main(["--unpark"])
    assert "put back in the cache (3 epochs done)" in capsys.readouterr().out
    assert cache() == files
    script.main(["--unpark"])
    assert "left parked: the cache has it (3 epochs done)" in capsys.readouterr().out
    (runs_dir / long_run / "checkpoint.npz").unlink()  # all its epochs, but no checkpoint
    with held_by_another_process(runs_dir / long_run / T.LOCK):
        script.main(["--unpark"])
    assert f"long: {long_run}: left parked: another process holds it" in capsys.readouterr().out
    assert not (runs_dir / long_run / "checkpoint.npz").exists()
    script.main(["--unpark"])
    assert "put back in the cache (3 epochs done)" in capsys.readouterr().out
    assert cache() == files
    shutil.rmtree(runs_dir / long_run)  # a cache that lost the run altogether
    (runs_dir / held_run / "epochs.csv").write_bytes(b"epoch,seconds\n1,2.5\n")
    real_git, fetched = script.git, []

    def failing_git(*args, **kwargs):  # the third blob cannot be read
        if args[0] == "cat-file" and args[1] == "blob":
            fetched.append(args)
            if len(fetched) == 3:
                raise SystemExit("git cat-file: a broken object store")
        return real_git(*args, **kwargs)
    monkeypatch.setattr(script, "git", failing_git)
    script.main(["--unpark"])
    out = capsys.readouterr().out
    assert f"long: {held_run}: left parked: git cat-file: a broken object store" in out
    assert f"long: {long_run}: put back in the cache (3 epochs done)" in out
    assert cache() == files
    held_files = {f.name: f.read_bytes() for f in (runs_dir / held_run).iterdir()}
    assert held_files["epochs.csv"] == b"epoch,seconds\n1,2.5\n" and not any(
        n.endswith(".unparking") for n in held_files), "all or nothing"
    monkeypatch.setattr(script, "git", real_git)
    script.main(["--unpark"])
    assert f"long: {held_run}: put back in the cache (3 epochs done)" in capsys.readouterr().out

    with pytest.raises(SystemExit):
        script.main(["--park", "--unpark"])
    monkeypatch.setattr(script, "finished_keys", lambda name: {long_run} if name == "long" else set())
    script.main(["--park"])  # the run no longer being trained is parked now
    out = capsys.readouterr().out
    assert f"long: {long_run}: no longer parked: finished" in out and f"long: {held_run}: parked" in out
    assert git("for-each-ref", "--format=%(refname)").split() == [f"refs/meanfield-runs/long/{held_run}"]
    assert {fn for fn, _ in locked_while_acting} == {"park_one", "unpark_one", "epochs_done"}
    assert all(held for _, held in locked_while_acting), locked_while_acting
    # a --park that saw no parked copy does not replace one parked since (compare and swap)
    ref = f"refs/meanfield-runs/long/{held_run}"
    before = git("rev-parse", ref)
    assert script.park_one("long", runs_dir / held_run, None).startswith("not parked: git update-ref")
    assert git("rev-parse", ref) == before
