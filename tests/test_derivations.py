"""The derivation store (meanfield/_derivations.py over meanfield.closed_forms's text:
sympy's srepr and the printed source of every closed form): exact round trips, refusal of
damaged or foreign files, and the command line's use of it (the same output read from the
store as derived, a damaged file derived again, and no sympy or scipy.special imported by
a solve whose closed forms are stored)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sympy as sp

from meanfield import closed_forms, symbolic
from meanfield.activations import BUILTIN, Activation, Piece, get_activation, x
from meanfield.closed_forms import check_source, read_entry
from meanfield.symbolic import FORMULA_NAMES, _derive, formulas_from_text, formulas_to_text


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_text_round_trip_is_exact(name):
    act = get_activation(name)
    f = _derive(act)
    g = formulas_from_text(act, formulas_to_text(f))
    for n in FORMULA_NAMES:
        assert getattr(g, n) == getattr(f, n), n  # structurally equal sympy expressions


def test_a_custom_activation_round_trips():
    from meanfield.activations import Parameter, m, tau
    act = Activation("soft_crelu_test", (Piece(-sp.oo, tau, sp.Integer(0)), Piece(tau, tau + m, (x - tau) ** 2),
                                          Piece(tau + m, sp.oo, m**2 + (x - tau - m) / 10)),
                     (Parameter(tau, 0.0, default=0.0), Parameter(m, 0.0, lower_open=True)))
    f = _derive(act)
    assert formulas_from_text(act, formulas_to_text(f)).v_prime == f.v_prime


@pytest.mark.parametrize("text", [
    "not json", "{}", json.dumps({n: "Integer(1)" for n in FORMULA_NAMES[:-1]}),
    json.dumps({n: "__import__('os').system('true')" for n in FORMULA_NAMES}),
    json.dumps({n: "Integer.__class__" for n in FORMULA_NAMES}),
    json.dumps({n: "Symbol('q').__subclasses__()" for n in FORMULA_NAMES}),
    json.dumps({n: "Float(1e300 ** 2)" for n in FORMULA_NAMES}),
    json.dumps({n: "1" for n in FORMULA_NAMES}),
    json.dumps({n: "sympify('1')" for n in FORMULA_NAMES}),  # sympy's string parser evaluates
    json.dumps({n: "parse_expr('1')" for n in FORMULA_NAMES}),
    json.dumps({n: "Pow(Integer(9), Pow(Integer(9), Integer(9)))" for n in FORMULA_NAMES}),  # a huge power
    json.dumps({n: "Pow(Integer(2), Integer(100000))" for n in FORMULA_NAMES}),
    json.dumps({n: "Add(" * 5000 + ")" * 5000 for n in FORMULA_NAMES}),
])
def test_damaged_or_foreign_text_is_refused_not_run(text):
    with pytest.raises(ValueError, match="not a stored derivation"):
        formulas_from_text(get_activation("relu"), text)


def test_the_key_changes_with_versions_and_pieces(monkeypatch):
    act = get_activation("crelu")
    key = closed_forms.derivation_key(act)
    assert key == closed_forms.derivation_key(get_activation("crelu"))
    assert key != closed_forms.derivation_key(get_activation("cst"))
    other = Activation("crelu", (Piece("-oo", "tau", "0"), Piece("tau", "oo", "x - tau")), act.parameters)
    assert closed_forms.derivation_key(other) != key  # same name, other pieces
    monkeypatch.setattr(closed_forms, "sympy_version", lambda: "0.0.0")
    assert closed_forms.derivation_key(act) != key


def _custom():
    from meanfield.activations import Parameter, m, tau
    return Activation("soft_crelu_code", (Piece(-sp.oo, tau, sp.Integer(0)), Piece(tau, tau + m, (x - tau) ** 2),
                                          Piece(tau + m, sp.oo, m**2 + (x - tau - m) / 10)),
                      (Parameter(tau, 0.0, default=0.0), Parameter(m, 0.0, lower_open=True)))


@pytest.mark.parametrize("name", [*sorted(BUILTIN), "custom"])
def test_printed_code_passes_the_check_it_is_read_with(name):
    # else the store would never be read, and every process would derive again
    act = _custom() if name == "custom" else get_activation(name)
    entry = symbolic.printed(act)
    assert read_entry(json.dumps(entry), act.parameter_names) == entry


def test_code_read_from_text_computes_what_sympy_compiles():
    import mpmath

    from meanfield.maps import lambdify_mp, mp_namespace
    act = _custom()
    f = _derive(act)
    with mpmath.workdps(40):
        args = [mpmath.mpf(v) for v in ("1.7", "2.1", "0.3", "0.4", "1.1")]
        for n in FORMULA_NAMES:
            stored = closed_forms.function(act, "mpmath", n, mp_namespace())
            assert stored(*args) == lambdify_mp(f.arguments, getattr(f, n))(*args), n


@pytest.mark.parametrize("src", [
    "import os",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return __import__('os').system('true')",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return q.__class__",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return (lambda: q)()",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return open('x')",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return [c for c in q]",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return 'text'",
    "def f(q, sigma_w2, sigma_b2, tau):\n    x = 1\n    return q",
    "def f(q, sigma_w2, sigma_b2):\n    return q",
    "@Phi\ndef f(q, sigma_w2, sigma_b2, tau):\n    return q",
    "def f(q, sigma_w2, sigma_b2, tau, *rest):\n    return q",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return q[0]",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return q\ndef g():\n    return 1",
    "def f(q, sigma_w2, sigma_b2, tau:",
    None,
    "def f(q, sigma_w2, sigma_b2, tau):\n    return 9**9**9",  # hangs if run
    "def f(q, sigma_w2, sigma_b2, tau):\n    return q**9**9",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return q**tau",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return [0]*10**10",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return q()",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return 1e400*q",
    "def f(q: print('x'), sigma_w2, sigma_b2, tau):\n    return q",
    "def f(q, /, sigma_w2, sigma_b2, tau):\n    return q",
    "def f(q, sigma_w2, sigma_b2, tau):\n    return " + "(" * 5000 + "q" + ")" * 5000,
])
def test_foreign_code_is_refused_not_run(src):
    check_source("def f(q, sigma_w2, sigma_b2, tau):\n    return Phi(-tau/sqrt(q))*sigma_w2 + sigma_b2",
                 ("q", "sigma_w2", "sigma_b2", "tau"))  # the form printed code has
    with pytest.raises(ValueError):
        check_source(src, ("q", "sigma_w2", "sigma_b2", "tau"))


@pytest.mark.parametrize("damage", ["drop a formula", "drop a printer", "foreign code", "formulas not text",
                                    "code not a mapping", "code a list", "printers a list"])
def test_a_damaged_entry_is_refused(damage):
    act = get_activation("relu")
    entry = json.loads(json.dumps(symbolic.printed(act)))
    if damage == "drop a formula":
        del entry["code"]["numpy"]["v_prime"]
    elif damage == "drop a printer":
        del entry["code"]["mpmath"]
    elif damage == "foreign code":
        entry["code"]["mpmath"]["sparsity"] = "def f(q, sigma_w2, sigma_b2, tau):\n    return exit()"
    elif damage == "formulas not text":
        entry["formulas"]["chi1"] = 1
    elif damage == "code not a mapping":
        entry["code"]["mpmath"] = 5
    elif damage == "code a list":
        entry["code"]["mpmath"] = [[1]]
    else:
        entry["code"] = [["mpmath"], ["numpy"]]
    with pytest.raises(ValueError):
        read_entry(json.dumps(entry), act.parameter_names)


def _eoc(tmp_path, **env):
    run = subprocess.run([sys.executable, "-m", "meanfield", "eoc", "--activation", "cst", "--sparsity", "0.8",
                          "--v-prime", "0.9", "--json"], capture_output=True, text=True, timeout=120,
                         env={**{k: v for k, v in os.environ.items() if k != "MEANFIELD_NO_DERIVATION_CACHE"},
                              "MEANFIELD_DATA": str(tmp_path), **env})
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_the_command_line_reads_what_it_derived(tmp_path):
    first = _eoc(tmp_path)
    [stored] = (tmp_path / "derivations").glob("cst-*.json")
    assert _eoc(tmp_path) == first  # read from the store
    stored.write_text('{"e_phi2": "Integer(')  # damaged: derived again, and rewritten
    assert _eoc(tmp_path) == first
    assert json.loads(stored.read_text()).keys() == {"formulas", "code"}
    assert _eoc(tmp_path, MEANFIELD_NO_DERIVATION_CACHE="1") == first


def test_an_unwritable_store_costs_only_the_derivation(tmp_path):
    (tmp_path / "derivations").write_text("a file where the directory would be")
    assert json.loads(_eoc(tmp_path))["activation"] == "cst"


def test_a_solve_from_the_store_imports_neither_sympy_nor_scipy_special(tmp_path):
    code = """
import sys, io, contextlib
import meanfield.cli
with contextlib.redirect_stdout(io.StringIO()):
    meanfield.cli.main(["eoc", "--activation", "cst", "--sparsity", "0.8", "--v-prime", "0.9"])
print(sorted(m for m in ("sympy", "scipy.special", "matplotlib") if m in sys.modules))
"""
    env = {**{k: v for k, v in os.environ.items() if k != "MEANFIELD_NO_DERIVATION_CACHE"},
           "MEANFIELD_DATA": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert runs[0].stdout.strip() == "['sympy']"  # the first derives, and stores
    assert runs[1].stdout.strip() == "[]"


def test_the_sympy_version_read_without_sympy_is_sympys():
    assert closed_forms.sympy_version() == sp.__version__
