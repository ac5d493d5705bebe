"""The derivation store (meanfield/_derivations.py over meanfield.symbolic's text form):
exact round trips, refusal of damaged or foreign files, and the command line's use of it
(the same output read from the store as derived, a damaged file derived again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sympy as sp

from meanfield import symbolic
from meanfield.activations import BUILTIN, Activation, Piece, get_activation, x
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
])
def test_damaged_or_foreign_text_is_refused_not_run(text):
    with pytest.raises(ValueError, match="not a stored derivation"):
        formulas_from_text(get_activation("relu"), text)


def test_the_key_changes_with_versions_and_pieces(monkeypatch):
    act = get_activation("crelu")
    key = symbolic.derivation_key(act)
    assert key == symbolic.derivation_key(get_activation("crelu"))
    assert key != symbolic.derivation_key(get_activation("cst"))
    monkeypatch.setattr(sp, "__version__", "0.0.0")
    assert symbolic.derivation_key(act) != key


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
    assert json.loads(stored.read_text()).keys() == set(FORMULA_NAMES)
    assert _eoc(tmp_path, MEANFIELD_NO_DERIVATION_CACHE="1") == first


def test_an_unwritable_store_costs_only_the_derivation(tmp_path):
    (tmp_path / "derivations").write_text("a file where the directory would be")
    assert json.loads(_eoc(tmp_path))["activation"] == "cst"
