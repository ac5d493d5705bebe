"""Finite-width simulation against the theory (meanfield.nn.simulate, `meanfield simulate`).

The acceptance checks of issue 5: on the edge of chaos, wide networks with the clipped
activations follow the variance map and the sparsity formula layer by layer (within 3
standard errors over 10 networks); the unclipped ReLU_tau and ST_tau run away in most
networks, as the finite-width model predicts. Every expected value comes from the core's
closed forms, an independent quadrature, or an independent simulation written here.
"""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import meanfield as mf
import meanfield.nn
from meanfield.errors import ParameterError
from meanfield.nn import finite_width_model, jacobian_theory, simulate, theory_trajectory
from meanfield.maps import lambdify_mp
from meanfield.symbolic import power_mean, q as q_symbol

from meanfield.testing.references import mp_moment
from meanfield.testing.strategies import examples
from test_cli import assert_clean_failure, call


def eoc(act, s, v_prime=None):
    return mf.eoc_parameters(act, sparsity=s, v_prime=v_prime, digits=20)


# -- the acceptance checks ---------------------------------------------------------------

@pytest.mark.parametrize("act,s,v_prime,q_first", [
    ("crelu", "0.85", "0.7", None),
    ("cst", "0.85", "0.7", None),
    ("crelu", "0.8", "0.5", 2.5),   # from q^1 = 2.5 q*: the theory's trajectory moves
    ("cst", "0.7", "0.5", 3.0),
])
def test_clipped_eoc_follows_the_theory_layer_by_layer(act, s, v_prime, q_first):
    """Width 1000, depth 50, 40 networks: mean q^l and realised sparsity against V iterated
    and P(phi = 0) at every layer.

    The bound is family-wise: with the theory exact, the largest of the 50 layers' |z|
    exceeds 3 in about 46% of sets of 10 networks and 14% of sets of 40, but exceeds 4 in
    about 1% of sets of 40 (measured from 240 networks, whose own largest |z| is 1.96:
    docs/nn.md). So 4 standard errors at every layer is the test whose false alarms are as
    rare as a single 3-sigma one; the largest |z| is also printed by `meanfield simulate`."""
    sim = simulate(eoc(act, s, v_prime), width=1000, depth=50, inputs=2, seeds=40,
                   q_first=q_first, jacobian=False, correlations=False, progress=False, jobs=2)
    assert sim.theory.kind == "stable"
    for name in ("q", "sparsity"):
        z = sim.z_scores(name)
        assert np.all(np.isfinite(z)) and np.max(np.abs(z)) < 4, (name, np.round(z, 2))
        # and no drift: the layers' mean z is small (a bias of 1 se would show here)
        assert abs(np.mean(z)) < 1, (name, np.mean(z))
    assert not sim.runaway.any() and sim.theory.runaway_probability == 0
    # the theory moves where it should: from q_first to q* = 1
    assert sim.theory.q[0] == pytest.approx(q_first or 1)
    assert abs(sim.theory.q[-1] - 1) < 1e-6


@pytest.mark.parametrize("act,s", [("relu", "0.7"), ("st", "0.7"), ("relu", "0.85"), ("st", "0.85")])
def test_unclipped_eoc_runs_away_as_the_finite_width_model_predicts(act, s):
    """Width 300, depth 100, 20 networks: most run away (q^L > 10 q*) although the
    infinite-width map stays at the half-stable q*; the finite-width model's probability
    agrees with the observed fraction within 3 binomial standard errors."""
    seeds = 20
    sim = simulate(eoc(act, s), width=300, depth=100, inputs=2, seeds=seeds, jacobian=False,
                   correlations=False, progress=False)
    assert sim.theory.kind == "half-stable"
    assert np.allclose(sim.theory.q, 1, atol=1e-12)       # infinite width: never moves
    assert sim.runaway_fraction > 0.5
    p = sim.theory.runaway_probability
    assert p > 0.5
    assert abs(sim.runaway_fraction - p) <= 3 * math.sqrt(p * (1 - p) / seeds) + 0.02


def test_correlations_follow_the_kernel_map():
    """c^l of input pairs with c^0 = cos(pi/4), 0, cos(3 pi/4) against the iterated kernel
    map, with a finite-width allowance of 0.02 (the O(1/N) bias of a ratio)."""
    sim = simulate(eoc("cst", "0.8", "0.5"), width=1000, depth=20, inputs=4, seeds=6,
                   jacobian=False, progress=False, backend="dense")
    mean, se = sim.mean_and_se("c")
    assert mean.shape == (20, 3)
    assert np.all(np.abs(mean - sim.theory.c) < 4 * se + 0.02), np.round(mean - sim.theory.c, 3)
    # the theory itself: layer 1 is the first-layer kernel, later layers follow rho
    sb2 = float(sim.sigma_b2)
    c1 = (1 - sb2) * sim.c0 + sb2
    assert np.allclose(sim.theory.c[0], c1)
    rho = mf.correlation_map(eoc("cst", "0.8", "0.5"), [float(v) for v in c1], digits=15)
    assert np.allclose(sim.theory.c[1], [float(r.rho) for r in rho], rtol=1e-8)


def test_jacobian_spectrum_at_initialisation():
    """Mean of the squared singular values of dh^L/dh^1 over networks against chi_1^(L-1) = 1
    on the EoC; the theory along a constant q* is the core's jacobian_spectrum."""
    sol = eoc("crelu", "0.7", "0.7")
    sim = simulate(sol, width=600, depth=11, inputs=1, seeds=8, correlations=False, progress=False)
    spec = mf.jacobian_spectrum(sol, depth=10, digits=20)
    assert sim.theory.jacobian_mean == pytest.approx(float(spec.mean), rel=1e-12)
    assert sim.theory.jacobian_variance == pytest.approx(float(spec.variance), rel=1e-12)
    jm = sim.jacobian_mean
    se = jm.std(ddof=1) / math.sqrt(len(jm))
    assert abs(jm.mean() - 1) < 4 * se + 0.05, (jm.mean(), se)
    # the variance L mu2/mu1^2 = 10 / P(phi' != 0) is matched to finite-width accuracy
    assert 0.5 < np.median(sim.jacobian_variance) / sim.theory.jacobian_variance < 1.5


def test_jacobian_theory_along_a_trajectory_multiplies_chi1():
    """Along a moving q^l the mean is prod chi_1(q^l), from map_values (independent of
    the power means used by jacobian_theory)."""
    sol = eoc("cst", "0.8", "0.9")
    qs, _, _ = theory_trajectory(sol.init, 2.0, 12)
    mean, var = jacobian_theory(sol.init, qs)
    chi = [float(mf.map_values(sol.init, q, digits=20).chi1) for q in qs]
    assert mean == pytest.approx(math.prod(chi), rel=1e-10)
    assert var > 0


# -- the finite-width model --------------------------------------------------------------

def _exact_chain(init, width, depth, paths, seed):
    """The Markov chain of Q^l itself (module docstring of meanfield.nn.simulate): each step
    draws the N pre-activations of a layer and averages phi^2 over them. No closed form."""
    act, params = init.activation, init.parameters
    sw2, sb2 = float(init.sigma_w2), float(init.sigma_b2)
    rng = np.random.default_rng(seed)
    q = np.ones(paths)
    for _ in range(depth - 1):
        h = np.sqrt(q)[:, None] * rng.standard_normal((paths, width))
        q = sb2 + sw2 * np.mean(act(h, **params) ** 2, axis=1)
        q = np.minimum(q, 1e30)
    return float(np.mean(q > 10))


@pytest.mark.parametrize("act,s", [("relu", "0.7"), ("st", "0.8")])
def test_finite_width_model_matches_the_exact_chain(act, s):
    init = eoc(act, s).init
    p, se, band = finite_width_model(init, 1.0, width=300, depth=100, paths=4000, seed=1)
    exact = _exact_chain(init, 300, 100, 2000, seed=2)
    assert abs(p - exact) < 3 * math.sqrt(exact * (1 - exact) / 2000) + 3 * se + 0.02
    assert band.shape == (3, 100) and np.all(band[0] <= band[1]) and np.all(band[1] <= band[2])


def test_finite_width_model_infinite_width_limit():
    """As N grows the chain concentrates on V iterated: the band closes around it."""
    init = eoc("crelu", "0.8", "0.5").init
    qs, _, _ = theory_trajectory(init, 3.0, 15)
    _, _, band = finite_width_model(init, 3.0, width=10**6, depth=15, paths=2000)
    assert np.allclose(band[1], qs, rtol=2e-3)
    assert np.all(band[2] - band[0] < 0.02 * qs)


@settings(max_examples=examples(12), deadline=None)
@given(act=st.sampled_from(["relu0", "relu", "st", "crelu", "cst", "hard_tanh", "leaky_relu"]),
       tau=st.floats(0, 2), m=st.floats(0.05, 3), alpha=st.floats(-1, 1),
       q=st.floats(1e-2, 1e2))
@example(act="relu", tau=1.0, m=1.0, alpha=0.0, q=0.015625)  # E[phi^4] = 7e-22: deep tail
def test_fourth_moment_closed_form_against_quadrature(act, tau, m, alpha, q):
    """E[phi(sqrt(q) z)^4] (power_mean, used for the fluctuation size) against mpmath.quad."""
    a = mf.get_activation(act)
    p = {k: v for k, v in (("tau", tau), ("m", m), ("alpha", alpha)) if k in {x.name for x in a.parameters}}
    f = lambdify_mp((q_symbol,) + a.symbols, power_mean(a, 4))
    with mpmath.workdps(60):  # the closed form cancels in the deep tails (tau / sqrt(q) = 20)
        closed = f(mpmath.mpf(q), *[mpmath.mpf(p[sym.name]) for sym in a.symbols])
    ref = mp_moment(act, p, q, 4, 40)  # certified to 1e-32 absolute: E[phi^4] can be 1e-22
    assert float(closed) == pytest.approx(float(ref), rel=1e-12, abs=1e-31)


# -- properties over the parameter space --------------------------------------------------

@settings(max_examples=examples(5), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(act=st.sampled_from(["crelu", "cst"]), s=st.sampled_from(["0.6", "0.7", "0.8", "0.85"]),
       v_prime=st.sampled_from(["0.3", "0.5", "0.7"]), q_first=st.floats(0.5, 4))
def test_property_stable_eoc_tracks_the_theory(act, s, v_prime, q_first):
    """Random stable EoC configurations and starting variances, width 500, depth 10,
    16 networks: q^l and sparsity within 4.5 standard errors of the theory at every layer
    (with the theory exact, a layer's |t| with 15 degrees of freedom passes 4.5 with
    probability 4e-4: under 1% for the 20 comparisons of one example)."""
    sol = eoc(act, s, v_prime)
    if not q_first > float(sol.sigma_b2):
        return
    sim = simulate(sol, width=500, depth=10, inputs=2, seeds=16, q_first=q_first,
                   jacobian=False, correlations=False, progress=False)
    for name in ("q", "sparsity"):
        assert np.max(np.abs(sim.z_scores(name))) < 4.5, name


# -- reproducibility, journals, output ----------------------------------------------------

def test_reproducible_and_backends_agree():
    sol = eoc("cst", "0.8", "0.7")
    kw = dict(width=60, depth=6, inputs=3, seeds=3, progress=False, correlations=False)
    a = simulate(sol, backend="dense", **kw)
    b = simulate(sol, backend="numpy", **kw)
    c = simulate(sol, backend="dense", **kw)
    assert np.array_equal(a.q, c.q) and np.array_equal(a.jacobian_mean, c.jacobian_mean)
    assert np.allclose(a.q, b.q, rtol=1e-12) and np.allclose(a.sparsity, b.sparsity)
    d = simulate(sol, backend="dense", first_seed=3, **kw)
    assert not np.allclose(a.q, d.q)


def test_backends_agree_on_wide_layers():
    """The sparse kernels against the dense pass where the batch holds several inputs and
    the layers are wide (a compiled kernel once lost track of its buffers at width 1000)."""
    sol = eoc("cst", "0.8", "0.5")
    kw = dict(width=1000, depth=4, inputs=4, seeds=1, progress=False, jacobian=False,
              correlations=False)
    dense = simulate(sol, backend="dense", **kw)
    for backend in mf.nn.available_backends():
        other = simulate(sol, backend=backend, **kw)
        assert np.allclose(other.q, dense.q, rtol=1e-10), backend
        assert np.allclose(other.c, dense.c, rtol=1e-10), backend


def test_journal_resumes_and_jobs_do_not_change_results(tmp_path):
    sol = eoc("crelu", "0.8", "0.5")
    kw = dict(width=50, depth=5, inputs=2, progress=False, correlations=False, backend="dense")
    journal = tmp_path / "sim.partial.jsonl"
    first = simulate(sol, seeds=2, journal=journal, **kw)
    lines = journal.read_text().splitlines()
    assert len(lines) == 3                              # header + 2 seeds
    full = simulate(sol, seeds=4, journal=journal, jobs=2, **kw)   # resumes: 2 more
    assert len(journal.read_text().splitlines()) == 5
    assert np.array_equal(full.q[:2], first.q)
    fresh = simulate(sol, seeds=4, **kw)
    assert np.array_equal(full.q, fresh.q)
    with pytest.raises(ParameterError, match="another job"):
        simulate(sol, seeds=2, journal=journal, **{**kw, "width": 51})


def test_json_has_no_nan_and_round_trips():
    sim = simulate(eoc("relu", "0.9"), width=100, depth=60, inputs=2, seeds=4, progress=False,
                   correlations=False)
    data = json.loads(sim.to_json())
    assert data["runaway_fraction"] == sim.runaway_fraction
    assert len(data["layers"]["q"]["mean"]) == 60
    assert data["theory"]["kind"] == "half-stable"


# -- hostile input ----------------------------------------------------------------------

_HOSTILE = st.one_of(st.none(), st.booleans(), st.just(float("nan")), st.just(float("inf")),
                     st.integers(-10, 0), st.integers(10**9, 10**12), st.text(max_size=4),
                     st.floats(-1e3, 0), st.just([1, 2]))


@settings(max_examples=examples(60), deadline=None)
@given(name=st.sampled_from(["width", "depth", "inputs", "seeds", "first_seed", "q_first",
                             "q_star", "paths", "dtype", "backend", "jacobian", "jobs"]),
       value=_HOSTILE)
def test_simulate_rejects_hostile_arguments(name, value):
    sol = eoc("crelu", "0.8", "0.5")
    kw = dict(width=20, depth=3, inputs=2, seeds=2, progress=False, correlations=False)
    if name in ("first_seed",) and isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**62:
        return  # a valid seed
    if name == "q_star" and value is None:
        return  # None: the solution's own q*
    if name == "q_first" and (value is None or (isinstance(value, int) and value >= 10**9)):
        return  # the default, or a valid (large) starting variance
    if name == "jobs" and (value is None or (value == -1 and not isinstance(value, bool))):
        return  # joblib's default, or every core
    if name == "jacobian" and isinstance(value, bool):
        return
    kw[name] = value
    with pytest.raises(ParameterError):
        simulate(sol, **kw)


def test_simulate_errors_name_the_parameter():
    sol = eoc("crelu", "0.8", "0.5")
    with pytest.raises(ParameterError, match="width"):
        simulate(sol, width=1, depth=2)
    with pytest.raises(ParameterError, match="q_first"):
        simulate(sol, width=10, depth=2, q_first=float(sol.sigma_b2) / 2)
    with pytest.raises(ParameterError, match="q_star"):
        simulate(sol.init, width=10, depth=2, q_star=2.0)
    with pytest.raises(ParameterError, match="width\\^2 depth"):
        simulate(sol, width=100_000, depth=10)


# -- the command line -------------------------------------------------------------------

def test_cli_simulate_writes_json_and_figure(tmp_path):
    out, fig = tmp_path / "sim.json", tmp_path / "sim.png"
    code, text, err = call(["simulate", "--activation", "st", "--sparsity", "0.8", "--width", "80",
                            "--depth", "40", "--seeds", "4", "--inputs", "2", "--no-progress",
                            "-o", str(out), "--figure", str(fig)])
    assert code == 0, err
    assert "run away (q^L > 10 q*)" in text and "finite-width model" in text
    data = json.loads(out.read_text())
    assert data["activation"] == "st" and len(data["seeds"]) == 4
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "sim.json.partial.jsonl").exists()


def test_cli_backends_match_the_library():
    from meanfield.cli.networks import NN_BACKENDS
    from meanfield.nn import BACKENDS
    assert NN_BACKENDS == BACKENDS


@pytest.mark.parametrize("argv", [
    ["simulate", "--activation", "crelu", "--sparsity", "0.8", "--v-prime", "0.5", "--width", "10"],
    ["simulate", "--activation", "crelu", "--sparsity", "0.8", "--v-prime", "0.5", "--width", "0", "--depth", "3"],
    ["simulate", "--activation", "crelu", "--sparsity", "0.8", "--v-prime", "0.5", "--width", "10",
     "--depth", "3", "--q-first", "nan"],
    ["simulate", "--activation", "relu", "--sparsity", "0.8", "--width", "10", "--depth", "3",
     "--figure", "x.gif"],
    ["simulate", "--activation", "relu", "--sparsity", "0.8", "--width", "10", "--depth", "3",
     "-o", "/nonexistent-dir/x.json"],
    ["simulate", "--activation", "relu", "--sparsity", "0.8", "--width", "10", "--depth", "3",
     "--dtype", "float16"],
    ["simulate", "--activation", "relu", "--sparsity", "0.8", "--width", "10", "--depth", "3",
     "--seeds", "-2"],
    ["simulate", "--activation", "relu", "--sparsity", "1.5", "--width", "10", "--depth", "3"],
])
def test_cli_simulate_bad_arguments(argv):
    assert_clean_failure(*call(argv))


_SMALL = st.one_of(st.integers(-3, 12).map(str), st.sampled_from(["", "nan", "inf", "-1", "1e9", "x", "0.5"]))


@settings(max_examples=examples(40), deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(["--width", "--depth", "--inputs", "--seeds", "--q-first",
                                                  "--paths", "--every", "--sparsity", "--v-prime",
                                                  "--clip", "--first-seed", "--dtype", "--backend"]),
                                _SMALL), max_size=5))
def test_cli_simulate_fuzz(pairs):
    """Random and hostile values on top of a small valid command: exit 0 with no NaN in the
    output, or a one-line error."""
    argv = ["simulate", "--activation", "cst", "--width", "12", "--depth", "3", "--seeds", "2",
            "--no-progress", "--no-jacobian", "--no-correlations", "--paths", "50"]
    for flag, value in pairs:
        if flag in ("--width", "--paths") and value in ("1e9",):
            value = "x"  # a valid but enormous size is work, not hostility
        argv += [flag, value]
    if "--sparsity" not in argv:
        argv += ["--sparsity", "0.8"]
    code, out, err = call(argv)
    if code == 0:
        assert "nan" not in out.lower()
    else:
        assert_clean_failure(code, out, err)
