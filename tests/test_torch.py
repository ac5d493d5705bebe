"""meanfield.torch against the core and against meanfield.nn.

- the activation modules equal the core's phi and phi' (float64, bit for bit: the same
  Horner steps) at random points and at every breakpoint, for every built-in over its
  parameter space and for random piecewise polynomials (continuous or not);
- the same seed's network in meanfield.nn and in torch: the same parameters, logits and
  gradients (float64, relative 1e-10), at the paper's depth 100;
- the realised sparsity at initialisation against the theory's P(phi = 0) within 3
  standard errors (measured over independent networks), and the first layer's variance
  against q*;
- fan-in of Conv layers, errors, and that nothing else in the package imports torch.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import meanfield as mf  # noqa: E402
from meanfield.errors import ParameterError  # noqa: E402
from meanfield.nn import MLP, cross_entropy  # noqa: E402
from meanfield.testing.piecewise import random_activations  # noqa: E402
from meanfield.testing.strategies import examples, parameter_values  # noqa: E402
from meanfield.torch import PiecewiseActivation, SparsityRecorder, eoc_init_, mlp  # noqa: E402

BUILTINS = sorted(mf.BUILTIN)
PAPER = {"relu": None, "st": None, "crelu": "0.7", "cst": "0.7"}


def points(ends, rng):
    """Random points over the breakpoints' range and beyond, the breakpoints themselves and
    their float neighbours."""
    ends = np.asarray(ends, dtype=float)
    span = max(1.0, float(np.max(np.abs(ends)))) if ends.size else 1.0
    near = np.concatenate([ends, np.nextafter(ends, -np.inf), np.nextafter(ends, np.inf)])
    return np.concatenate([rng.uniform(-3 * span, 3 * span, 200), near, [0.0, -0.0]])


def check_module_against_core(act, params):
    module = PiecewiseActivation(act, **params)
    ends = [float(hi) for _, hi, _ in act.numeric_pieces(False, **params)[:-1]]
    xs = points(ends, np.random.default_rng(0))
    h = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    out = module(h)
    out.backward(torch.ones_like(out))
    np.testing.assert_array_equal(out.detach().numpy(), act(xs, **params))
    np.testing.assert_array_equal(h.grad.numpy(), act.derivative(xs, **params))


@pytest.mark.parametrize("name", BUILTINS)
@settings(max_examples=examples(15), deadline=None)
@given(data=st.data())
def test_builtin_modules_are_the_core_phi_and_dphi(name, data):
    act = mf.get_activation(name)
    check_module_against_core(act, data.draw(parameter_values(act)))


@settings(max_examples=examples(25), deadline=None)
@given(random=random_activations())
def test_user_piecewise_polynomials_are_the_core_phi_and_dphi(random):
    check_module_against_core(random.activation, {})


def test_flat_pieces_and_breakpoints_take_the_left_piece():
    act = PiecewiseActivation("cst", tau=0.5, m=1.0)  # 0 on [-0.5, 0.5]; slope 1; clipped at |h| = 1.5
    h = torch.tensor([-2.0, -1.5, -0.5, 0.0, 0.5, 1.5, 2.0], dtype=torch.float64, requires_grad=True)
    out = act(h)
    out.sum().backward()
    assert out.tolist() == [-1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    assert h.grad.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]


def test_float32_evaluates_in_float32_like_meanfield_nn():
    sol = mf.eoc_parameters("crelu", sparsity="0.85", v_prime="0.7", digits=15)
    act = PiecewiseActivation(sol)
    h = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    out = act(h)
    assert out.dtype == torch.float32
    table = MLP.initialise(sol, width=4, depth=1, input_dim=2).table()
    np.testing.assert_array_equal(out.numpy(), table.phi(h.numpy()))


# -- the same network in meanfield.nn and in torch -----------------------------------------

def torch_gradients(net, x, labels):
    net.zero_grad()
    logits = net(torch.from_numpy(x))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels))
    loss.backward()
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    return logits.detach().numpy(), float(loss.detach()), [(m.weight.grad.numpy().T, m.bias.grad.numpy()) for m in linear]


@pytest.mark.parametrize("name,depth", [(n, 6) for n in PAPER] + [("crelu", 100)])
def test_same_seed_same_network_logits_and_gradients(name, depth):
    sol = mf.eoc_parameters(name, sparsity="0.85" if name != "st" else "0.7", v_prime=PAPER[name], digits=15)
    ours = MLP.initialise(sol, width=50, depth=depth, input_dim=30, outputs=7, dtype="float64", seed=3)
    theirs = mlp(sol, width=50, depth=depth, input_dim=30, outputs=7, dtype=torch.float64, seed=3)
    linear = [m for m in theirs if isinstance(m, torch.nn.Linear)]
    for (w, b), m in zip(zip(ours.weights, ours.biases), linear):  # the same draw, bit for bit
        np.testing.assert_array_equal(m.weight.detach().numpy().T, w)
        np.testing.assert_array_equal(m.bias.detach().numpy(), b)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 30))
    x /= np.sqrt(np.mean(x * x, axis=1, keepdims=True))
    labels = rng.integers(0, 7, 16)
    logits, loss, grads = torch_gradients(theirs, x, labels)
    expected = ours.forward(x, backend="dense")
    np.testing.assert_allclose(logits, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
    g = ours.gradients(x, labels, backend="dense")
    assert loss == pytest.approx(g.loss, rel=1e-10)
    assert loss == pytest.approx(cross_entropy(expected, labels)[0], rel=1e-10)
    for (tw, tb), w, b in zip(grads, g.weights, g.biases):
        for got, want in ((tw, w), (tb, b)):
            scale = max(np.abs(want).max(), 1e-300)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * scale)


# -- initialisation: sparsity and the first layer --------------------------------------------

@pytest.mark.parametrize("name,s,v_prime", [("crelu", "0.85", "0.7"), ("cst", "0.85", "0.5"),
                                            ("relu", "0.7", None), ("st", "0.5", None)])
def test_realised_sparsity_at_initialisation_matches_the_theory(name, s, v_prime):
    """Mean over 3 hidden layers of width 400 and 200 inputs, per network; 12 networks: the
    mean within 3 standard errors (their spread) of P(phi(sqrt(q*) z) = 0) = s."""
    sol = mf.eoc_parameters(name, sparsity=s, v_prime=v_prime, digits=15)
    theory = float(mf.map_values(sol.init, sol.q_star, digits=15).sparsity)
    assert theory == pytest.approx(float(s), abs=1e-12)
    torch.manual_seed(0)
    per_network = []
    for seed in range(12):
        net = mlp(sol, width=400, depth=3, input_dim=100, dtype=torch.float64, seed=seed)
        x = torch.from_numpy(np.random.default_rng(100 + seed).standard_normal((200, 100)))
        x = x / x.pow(2).mean(dim=1, keepdim=True).sqrt()
        with SparsityRecorder(net) as rec:
            net(x)
        assert rec.mean() == rec.last and len(rec.last) == 3
        per_network.append(np.mean(rec.last))
    mean, se = np.mean(per_network), np.std(per_network, ddof=1) / math.sqrt(len(per_network))
    assert abs(mean - theory) < 3 * se + 1e-12, (mean, theory, se)


def test_first_layer_is_matched_to_q_star():
    sol = mf.eoc_parameters("cst", sparsity="0.85", v_prime="0.7", q_star=2.5, digits=15)
    model = torch.nn.Sequential(torch.nn.Linear(500, 2000, dtype=torch.float64), PiecewiseActivation(sol),
                                torch.nn.Linear(2000, 10, dtype=torch.float64))
    eoc_init_(model, sol, input_mean_square=4.0, seed=0)
    x = 2.0 * torch.from_numpy(np.random.default_rng(0).standard_normal((400, 500)))  # mean square 4
    with torch.no_grad():
        q = model[0](x).pow(2).mean().item()
    assert q == pytest.approx(2.5, rel=0.03)


def test_conv_fan_in_is_channels_times_kernel():
    sol = mf.eoc_parameters("relu", sparsity="0.5", digits=15)  # sigma_w^2 = 2
    model = torch.nn.Sequential(torch.nn.Conv1d(4, 8, 5), PiecewiseActivation(sol),
                                torch.nn.Conv2d(32, 64, 3, groups=2), PiecewiseActivation(sol),
                                torch.nn.Linear(64, 10))
    eoc_init_(model, sol, seed=1)
    for layer, fan_in in ((model[2], 16 * 9), (model[4], 64)):
        assert layer.weight.var().item() * fan_in / 2 == pytest.approx(1, rel=0.08)
    torch.manual_seed(0)
    eoc_init_(model, sol)  # torch's generator: the same variances
    assert model[2].weight.var().item() * 16 * 9 / 2 == pytest.approx(1, rel=0.08)


def test_errors_name_the_problem():
    sol = mf.eoc_parameters("relu", sparsity="0.5", digits=15)
    with pytest.raises(ParameterError, match="no Linear or Conv"):
        eoc_init_(torch.nn.Sequential(torch.nn.ReLU()), sol)
    with pytest.raises(ParameterError, match="no PiecewiseActivation"):
        SparsityRecorder(torch.nn.Linear(2, 2))
    with pytest.raises(ParameterError, match="width"):
        mlp(sol, width=0, depth=2, input_dim=3)
    with pytest.raises(ParameterError):
        PiecewiseActivation("crelu", tau=0.5, m=-1.0)
    with pytest.raises(TypeError, match="floating-point"):
        PiecewiseActivation(sol)(torch.tensor([1, 2]))
    with pytest.raises(ParameterError, match="not both"):
        PiecewiseActivation(sol, tau=1.0)


def test_only_the_adapter_imports_torch():
    package = Path(mf.__file__).parent
    for path in package.rglob("*.py"):
        if path.name == "torch.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(n == "torch" or n.startswith("torch.") for n in names), path
