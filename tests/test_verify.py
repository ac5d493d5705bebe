"""meanfield.testing.verify and ``meanfield verify``: every built-in and the how-to's own
activation pass; a closed form perturbed by 1e-8 fails with a shrunk counterexample that
names the property, and the command exits with status 1."""

from __future__ import annotations

import contextlib
import io

import pytest
import sympy as sp
from hypothesis import given, settings

from meanfield.activations import BUILTIN, Activation, Parameter, Piece, m, tau, x
from meanfield.cli import main
from meanfield.testing import PROPERTIES, verify
from meanfield.testing.strategies import near_tangencies


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_passes(name):
    report = verify(name, examples=4, digits=15)
    assert report.passed, report.summary()
    assert [r.name for r in report.results] == list(PROPERTIES)
    assert all(r.examples == 4 and r.largest_error <= 1e-13 for r in report.results if not r.skipped)
    assert [r.name for r in report.results if r.skipped] == (["scale invariance"] if name == "hard_tanh" else [])


def test_the_how_to_activation_passes():
    soft = Activation("soft_crelu", (Piece(-sp.oo, tau, sp.Integer(0)), Piece(tau, tau + m, x - tau),
                                     Piece(tau + m, sp.oo, m + (x - tau - m) / 10)),
                      (Parameter(tau, 0.0, default=0.0), Parameter(m, 0.0, lower_open=True)))
    report = verify(soft, examples=4, digits=15)
    assert report.passed, report.summary()


@pytest.fixture
def broken_v_prime(monkeypatch):
    """V'(q) of every activation off by a factor 1 + 1e-8: what a wrong boundary term does."""
    import meanfield.maps as maps
    real = maps.evaluator

    def perturbed(activation, backend, name, *args, **kwargs):
        f = real(activation, backend, name, *args, **kwargs)
        if name != "v_prime":
            return f
        return lambda *a: f(*a) * (1 + sp.Rational(1, 10**8) if backend != "mp" else 1 + 1e-8)

    monkeypatch.setattr(maps, "evaluator", perturbed)


def test_a_broken_closed_form_fails_with_a_shrunk_counterexample(broken_v_prime):
    report = verify("relu", examples=6, digits=15, properties=["V' and V'' against d/dq of V"])
    [result] = report.results
    assert not report.passed and not result.passed and result.name == "V' and V'' against d/dq of V"
    assert "tau = " in result.counterexample and "q = " in result.counterexample
    assert "FAIL" in report.summary() and "counterexample" in report.summary()


def test_the_command_exits_1_on_a_failure(broken_v_prime):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["verify", "--activation", "relu", "--examples", "3", "--digits", "15"])
    assert code == 1, out.getvalue()
    assert "V' and V'' against d/dq of V     FAIL" in out.getvalue()


def test_bad_arguments_name_the_flag():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["verify", "--activation", "crelu", "--clip", "-1"]) == 2
        assert main(["verify", "--activation", "crelu", "--examples", "0"]) == 2
    assert "--clip" in err.getvalue() and "examples" in err.getvalue()


@settings(max_examples=20, deadline=None)
@given(near_tangencies())
def test_a_tangency_touches_from_above_on_both_sides(case):
    """At a tangency q* of V and the identity (ReLU_tau, ST_tau on the EoC, V''(q*) > 0),
    V(q) - q >= 0 on both sides, to the digits of the computation."""
    import mpmath

    from meanfield import eoc_parameters, map_values
    name, s, q = case
    sol = eoc_parameters(name, str(s), digits=30)
    v = map_values(sol.init, q, digits=30).variance
    gap, scale = v - mpmath.mpf(q), mpmath.mpf(10) ** -25
    assert gap >= -scale, (name, s, q, gap)
    # V(q) - q = V''(q*) (q - 1)^2 / 2 + O(|q - 1|^3)
    assert mpmath.almosteq(gap, sol.v_second / 2 * (mpmath.mpf(q) - 1) ** 2, rel_eps=10 * abs(q - 1) + 1e-6,
                           abs_eps=1e-26)
