"""A user's activation is first-class: defined as in docs/howto/custom-activation.md, with
its sparsity rule, it goes through the EoC solve by sparsity, the diagnosis, the
simulation and training by sparsity, as the built-ins do."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

import meanfield as mf
from meanfield.activations import Activation, Parameter, Piece, SparsityRule, get_activation, register, tau, m, x
from meanfield.errors import ParameterError

SOFT = Activation(
    "soft_crelu_test",
    (Piece(-sp.oo, tau, sp.Integer(0)), Piece(tau, tau + m, x - tau), Piece(tau + m, sp.oo, m + (x - tau - m) / 10)),
    (Parameter(tau, 0.0, default=0.0), Parameter(m, 0.0, lower_open=True)),
    description="shifted ReLU with slope 1/10 above tau + m",
    sparsity_rule=SparsityRule(clip="m"),
    label="soft CReLU")


def test_eoc_by_sparsity_and_the_rule_is_checked():
    sol = mf.eoc_parameters(SOFT, sparsity="0.85", v_prime="0.7", digits=20)
    with mpmath.workdps(30):
        assert abs(sol.sparsity - mpmath.mpf("0.85")) < 1e-18
        assert abs(sol.v_prime - mpmath.mpf("0.7")) < 1e-18
        assert abs(sol.chi1 - 1) < 1e-18
    assert sol.tau == sol.init.parameters["tau"] and sol.m == sol.init.parameters["m"]
    # a rule that does not match the pieces is caught by the solve, not trusted
    wrong = Activation("soft_wrong_rule", SOFT.pieces, SOFT.parameters, sparsity_rule=SparsityRule(symmetric=True,
                                                                                                 clip="m"))
    with pytest.raises(ParameterError, match="sparsity rule of soft_wrong_rule does not match its pieces"):
        mf.eoc_parameters(wrong, sparsity="0.85", v_prime="0.7", digits=20)
    # and without a rule, sparsity is refused with what to do instead
    with pytest.raises(ParameterError, match="has none: give its parameters instead"):
        mf.eoc_parameters("leaky_relu", sparsity="0.5")


def test_diagnose_and_simulate():
    sol = mf.eoc_parameters(SOFT, sparsity="0.85", v_prime="0.7", digits=20)
    from meanfield.diagnose import VERDICTS, diagnose
    d = diagnose(sol, depth=30, digits=20)
    assert d.verdict in VERDICTS and d.reason
    from meanfield.nn import simulate
    sim = simulate(sol, width=64, depth=8, inputs=2, seeds=2, jacobian=False, progress=False)
    assert sim.q.shape == (2, 8) and np.all(np.isfinite(sim.q))
    # realised sparsity of the hidden layers near the target (finite width: loose)
    assert abs(float(np.mean(sim.sparsity)) - 0.85) < 0.1


def test_train_by_sparsity_once_registered():
    from meanfield.nn import train as T
    with pytest.raises(ParameterError, match="register your own"):
        T.TrainConfig(SOFT.name, 0.85, v_prime=0.7)
    register(SOFT)
    assert get_activation(SOFT.name) is SOFT
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((300, 12))
    ys = (xs[:, 0] > 0).astype(int)
    cfg = T.TrainConfig(SOFT.name, 0.85, v_prime=0.7, depth=4, width=32, epochs=2, learning_rate=3e-3,
                        optimizer="adam", batch_size=32, outputs=2, sparsity_sample=100)
    run = T.train(cfg, (xs[:240], ys[:240], xs[240:], ys[240:]), progress=False)
    assert run.status == "ok" and len(run.epochs) == 2
    assert abs(np.mean(run.epochs[0]["test_sparsity_layers"]) - 0.85) < 0.15
    # the name is taken now: another activation cannot have it
    other = Activation(SOFT.name, (Piece(-sp.oo, sp.oo, x),))
    with pytest.raises(ParameterError, match="is taken by another activation"):
        register(other)
