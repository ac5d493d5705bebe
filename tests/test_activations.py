"""Activations written as text (the built-ins, and any user's): sympy reads them as the
same expressions as the sympy-written definitions, the numeric path (no sympy) evaluates
them as the sympy path does, bad text is refused with the reason, and identity (==, hash,
pickling) does not depend on how an activation was written."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from meanfield.activations import BUILTIN, Activation, Parameter, Piece, alpha, m, tau, x
from meanfield.errors import ParameterError

# The built-ins as they were written with sympy, independently of their text.
SYMPY_WRITTEN = {
    "relu0": ((Piece(-sp.oo, 0, 0), Piece(0, sp.oo, x)), ()),
    "relu": ((Piece(-sp.oo, tau, 0), Piece(tau, sp.oo, x - tau)), (Parameter(tau, 0.0, default=0.0),)),
    "st": ((Piece(-sp.oo, -tau, x + tau), Piece(-tau, tau, 0), Piece(tau, sp.oo, x - tau)),
           (Parameter(tau, 0.0, default=0.0),)),
    "crelu": ((Piece(-sp.oo, tau, 0), Piece(tau, tau + m, x - tau), Piece(tau + m, sp.oo, m)),
              (Parameter(tau, 0.0, default=0.0), Parameter(m, 0.0, lower_open=True))),
    "cst": ((Piece(-sp.oo, -tau - m, -m), Piece(-tau - m, -tau, x + tau), Piece(-tau, tau, 0),
             Piece(tau, tau + m, x - tau), Piece(tau + m, sp.oo, m)),
            (Parameter(tau, 0.0, default=0.0), Parameter(m, 0.0, lower_open=True))),
    "hard_tanh": ((Piece(-sp.oo, -1, -1), Piece(-1, 1, x), Piece(1, sp.oo, 1)), ()),
    "leaky_relu": ((Piece(-sp.oo, 0, alpha * x), Piece(0, sp.oo, x)),
                   (Parameter(alpha, -1.0, 1.0, default="0.01"),)),
}


def _sympy_written(name):
    pieces, parameters = SYMPY_WRITTEN[name]
    return Activation(name, pieces, parameters)


def test_every_builtin_has_a_sympy_written_twin():
    assert set(SYMPY_WRITTEN) == set(BUILTIN)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_text_reads_as_the_sympy_written_pieces(name):
    text, written = BUILTIN[name], _sympy_written(name)
    assert text.pieces == written.pieces
    assert text.symbols == written.symbols  # same names and assumptions
    assert text == written and written == text and hash(text) == hash(written)
    assert text.definition[0] == "text" and written.definition[0] == "sympy"


_MAGNITUDES = st.floats(1e-100, 5)  # what validation accepts (besides 0)
_VALUES = {"tau": st.just(0.0) | _MAGNITUDES, "m": _MAGNITUDES,
           "alpha": st.just(0.0) | st.floats(1e-100, 1) | st.floats(-1, -1e-100)}


@pytest.mark.parametrize("name", sorted(BUILTIN))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_the_numeric_path_evaluates_text_as_sympy_does(name, data):
    text, written = BUILTIN[name], _sympy_written(name)
    values = {p.name: data.draw(_VALUES[p.name], label=p.name) for p in text.parameters}
    xs = np.linspace(-8, 8, 97)
    for derivative in (False, True):
        a = text.numeric_pieces(derivative, **values)
        b = written.numeric_pieces(derivative, **values)
        assert [(lo, hi) for lo, hi, _ in a] == [(lo, hi) for lo, hi, _ in b]
        for (_, _, pa), (_, _, pb) in zip(a, b):
            np.testing.assert_allclose(pa(xs), pb(xs), rtol=1e-15, atol=1e-15)
    np.testing.assert_array_equal(text(xs, **values), written(xs, **values))


def test_unordered_breakpoints_are_refused_in_text_as_in_sympy():
    bump = Activation("bump", (Piece("-oo", "a", "0"), Piece("a", "b", "1"), Piece("b", "oo", "0")),
                      (Parameter("a"), Parameter("b")))
    assert bump.parameter_values(a=0, b=1) == {"a": 0, "b": 1}
    with pytest.raises(ParameterError, match="unordered breakpoints"):
        bump.parameter_values(a=1, b=0)


@pytest.mark.parametrize("pieces, message", [
    ((Piece("-oo", "0", "0"), Piece("1", "oo", "x")), "do not meet"),
    ((Piece("0", "1", "0"), Piece("1", "oo", "x")), "-oo"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "y")), "'y'"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "x**0.5")), "whole power"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "1/x")), "divides"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "exp(x)")), "only numbers"),
    ((Piece("-oo", "x", "0"), Piece("x", "oo", "x")), "'x'"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "x +")), "not arithmetic"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "__import__('os')")), "only numbers"),
    # text that would run code in sympy's string parser, hang or exhaust memory
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "x/(1 - 1) + __import__('os').system('true')")), "only numbers"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "x**10**9")), "exponent"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "x**20000")), "exponent"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "9**9**9")), "exponent"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "((x**64)**64)**64")), "degree"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "1e400*x")), "magnitude"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "(-1)**0.5*x")), "not real"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "-" * 999 + "x")), "nested"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "+".join(["x"] * 300000))), "at most 1000"),
    ((Piece("-oo", "0", "0"), Piece("0", "oo", "x.real")), "only numbers"),
])
def test_bad_text_is_refused_with_the_reason(pieces, message):
    with pytest.raises(ValueError, match=message):
        Activation("bad", pieces)


def test_a_text_activation_derives_as_its_sympy_twin():
    from meanfield.symbolic import derive
    half = Activation("half_relu_text", (Piece("-oo", "tau", "0"), Piece("tau", "oo", "(x - tau)/2")),
                      (Parameter("tau", 0.0, default=0.0),))
    twin = Activation("half_relu_text", (Piece(-sp.oo, tau, 0), Piece(tau, sp.oo, (x - tau) / 2)),
                      (Parameter(tau, 0.0, default=0.0),))
    assert half == twin
    assert derive(half).v_prime == derive(twin).v_prime


@pytest.mark.parametrize("name", ["cst", "leaky_relu"])
def test_pickling_keeps_identity(name):
    act = BUILTIN[name]
    back = pickle.loads(pickle.dumps(act))
    assert back == act and hash(back) == hash(act) and back.definition == act.definition
    _ = act.pieces  # the sympy pieces, once read, travel too
    assert pickle.loads(pickle.dumps(act)).pieces == act.pieces


def test_activations_differing_in_a_piece_or_a_range_differ():
    relu = BUILTIN["relu"]
    assert BUILTIN["cst"] != BUILTIN["crelu"]
    pieces = (Piece("-oo", "tau", "0"), Piece("tau", "oo", "x - tau"))
    assert Activation("relu", pieces, (Parameter("tau", 0.0, default=0.0),)) == relu
    assert Activation("relu", pieces, (Parameter("tau", -1.0, default=0.0),)) != relu
    assert Activation("relu", pieces[:1] + (Piece("tau", "oo", "x"),), relu.parameters) != relu


def test_text_written_differently_is_the_same_activation():
    a = Activation("w", (Piece("-oo", "tau", "0"), Piece("tau", "oo", "x - tau")), (Parameter("tau", 0.0),))
    b = Activation("w", (Piece("-oo", "tau", "0"), Piece("tau", "oo", "-tau+x")), (Parameter("tau", 0.0),))
    assert a == b and hash(a) == hash(b)


def test_text_without_a_value_at_some_parameters_is_refused_there_by_name():
    pole = Activation("pole", (Piece("-oo", "0", "0"), Piece("0", "oo", "x/(tau - 1)")), (Parameter("tau", 0.0),))
    assert pole.parameter_values(tau=2) == {"tau": 2}
    with pytest.raises(ParameterError, match="pole.*no finite value"):
        pole.parameter_values(tau=1)


def test_the_repr_of_a_text_activation_is_its_text_and_reads_back():
    import subprocess
    import sys
    code = ("import sys; from meanfield.activations import CST; r = repr(CST); "
            "print('sympy' in sys.modules, \"Piece('tau', 'tau + m', 'x - tau')\" in r)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.split()
    assert out == ["False", "True"]  # printing a built-in does not import sympy
    from meanfield.activations import CST, SparsityRule
    names = {"Activation": Activation, "Piece": Piece, "Parameter": Parameter, "SparsityRule": SparsityRule,
             "inf": float("inf")}
    assert eval(repr(CST), names) == CST  # noqa: S307 - our own repr
