r"""The closed forms of an activation as Python source, and the store that keeps them.

:mod:`meanfield.symbolic` derives, for an activation, the expressions named in
:data:`FORMULA_NAMES` (:math:`E[\phi^2]`, :math:`E[\phi'^2]`, the sparsity,
:math:`V(q)`, :math:`\chi_1(q)`, the boundary terms, :math:`V'(q)`, :math:`V''(q)`), and
sympy's printers write each as the source of a function of
``(q, sigma_w2, sigma_b2, *parameters)`` for two targets: ``"mpmath"`` (arbitrary
precision) and ``"numpy"`` (float64 arrays; the same source computes on the intervals of
:mod:`meanfield._interval`). :func:`function` compiles a source in the namespace its
caller gives (:mod:`meanfield.maps` gives mpmath, numpy or interval functions).

A derivation store (set by a layer above the core: :mod:`meanfield._derivations` keeps it
on disk) keeps, per activation, that source and sympy's ``srepr`` of each expression, so
that a process that finds its activation there neither derives nor imports sympy. A stored
text is used only after a check that it is what this module writes: functions whose body
is arithmetic on their arguments and a fixed set of names. A damaged or foreign file is
derived again, never run.

>>> from meanfield.activations import CRELU
>>> print(source(CRELU, "mpmath", "sparsity"))
def _lambdifygenerated(q, sigma_w2, sigma_b2, tau, m):
    return Phi(tau/sqrt(q))
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json

from .activations import Activation

__all__ = ["FORMULA_NAMES", "PRINTERS", "set_derivation_store", "derivation_key", "entry", "source", "function",
           "read_entry", "sympy_version"]

#: The closed forms derived for every activation, in print order.
FORMULA_NAMES = ("e_phi2", "e_dphi2", "sparsity", "variance", "chi1", "boundary", "v_prime", "v_second")
#: The targets each closed form is printed for.
PRINTERS = ("mpmath", "numpy")
#: The names printed code may use besides its arguments (what sympy's mpmath and numpy
#: printers write for these closed forms: a piecewise term prints as ``select``/``equal``
#: for numpy and as a conditional expression for mpmath).
CODE_NAMES = frozenset({"Phi", "phi", "erf", "erfc", "sqrt", "exp", "log", "pi", "mpf", "select", "equal", "nan",
                        "inf", "not_equal", "less", "greater", "less_equal", "greater_equal", "logical_and",
                        "logical_or", "logical_not", "True", "False"})
_FORMAT = 2  # of the stored text: 1 held srepr only
#: The largest stored text read (a derivation of a built-in is about 20 kB).
_MAX_TEXT = 2_000_000
#: The largest magnitude of a number in a power's exponent in stored code.
_MAX_EXPONENT = 64

#: ``(load, save)`` set by :func:`set_derivation_store`.
_store = None
_entries: dict = {}
_code_objects: dict = {}


def set_derivation_store(load=None, save=None) -> None:
    """Take an activation's closed forms from ``load(activation, key)`` (the text
    :func:`entry` wrote, or None) before deriving them, and give new ones to
    ``save(activation, key, text)`` (both None: no store). The core does no I/O itself.
    Set it before the first closed form is compiled: what a process has compiled stays."""
    global _store
    _store = (load, save) if load is not None or save is not None else None
    _entries.clear()


def has_store() -> bool:
    return _store is not None


@functools.lru_cache(maxsize=1)
def sympy_version() -> str:
    """The installed sympy's version, read without importing sympy: from its
    ``release.py`` (a few ms), else from the package metadata (about 50 ms)."""
    import importlib.util
    import re
    from pathlib import Path
    try:
        release = Path(importlib.util.find_spec("sympy").origin).parent / "release.py"
        found = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", release.read_text(encoding="utf-8"))
        if found:
            return found.group(1)
    except (OSError, AttributeError, TypeError):
        pass
    from importlib.metadata import version
    return version("sympy")


def derivation_key(activation: Activation) -> str:
    """What a stored derivation must match: the activation's definition, the formulas,
    the stored format and the versions of meanfield and sympy (a hex digest)."""
    from . import __version__
    text = repr((__version__, sympy_version(), _FORMAT, FORMULA_NAMES, activation.name, activation.definition))
    return hashlib.sha256(text.encode()).hexdigest()


def entry(activation: Activation) -> dict:
    """``{"formulas": {name: srepr}, "code": {printer: {name: source}}}`` for
    ``activation``: from this process's memory, else from the store, else derived by
    :mod:`meanfield.symbolic` (and given to the store)."""
    if activation in _entries:
        return _entries[activation]
    key = text = None
    if _store is not None:
        load, save = _store
        key = derivation_key(activation)
        text = load(activation, key) if load is not None else None
    found = None
    if text is not None:
        try:
            found = read_entry(text, activation.parameter_names)
        except ValueError:
            found = None
    if found is None:
        from . import symbolic  # sympy: only when the store does not have the activation
        found = symbolic.printed(activation)
        if _store is not None and _store[1] is not None:
            _store[1](activation, key, json.dumps(found, indent=0))
    _entries[activation] = found
    return found


def read_entry(text: str, parameters: tuple[str, ...]) -> dict:
    """The entry that ``text`` holds, checked (ValueError if it is not what :func:`entry`
    writes for an activation with these parameter names)."""
    try:
        if len(text) > _MAX_TEXT:
            raise ValueError
        data = json.loads(text)
        formulas, code = data["formulas"], data["code"]
        ok = (isinstance(formulas, dict) and set(formulas) == set(FORMULA_NAMES)
              and all(isinstance(v, str) for v in formulas.values())
              and isinstance(code, dict) and set(code) == set(PRINTERS)
              and all(isinstance(code[p], dict) and set(code[p]) == set(FORMULA_NAMES) for p in PRINTERS))
    except Exception:  # any damage to the text
        raise ValueError("not a stored derivation") from None
    if not ok:
        raise ValueError("not a stored derivation")
    arguments = ("q", "sigma_w2", "sigma_b2", *parameters)
    for printer in PRINTERS:
        for src in code[printer].values():
            check_source(src, arguments)
    return data


def check_source(src, arguments: tuple[str, ...]) -> None:
    """ValueError unless ``src`` is one function of ``arguments`` returning arithmetic on
    them and numbers, calls of :data:`CODE_NAMES` and powers whose base holds an argument
    and whose exponent is a number of magnitude at most 64 (so that nothing it computes
    can be large or slow: no power of constants, no repeated list)."""
    if not isinstance(src, str) or len(src) > _MAX_TEXT:
        raise ValueError("not source")
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ValueError("not source") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        raise ValueError("not one function")
    fn = tree.body[0]
    a = fn.args
    if (fn.decorator_list or fn.returns or len(fn.body) != 1 or not isinstance(fn.body[0], ast.Return)
            or [x.arg for x in a.args] != list(arguments) or any(x.annotation for x in a.args)
            or a.posonlyargs or a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.kw_defaults
            or getattr(fn, "type_params", None)):
        raise ValueError("not a closed form's function")
    allowed = CODE_NAMES | set(arguments)
    simple = (ast.Load, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.List, ast.Tuple,
              ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.keyword)
    for node in ast.walk(fn.body[0].value):
        if isinstance(node, ast.Name):
            if node.id not in allowed:
                raise ValueError(f"uses {node.id!r}")
        elif isinstance(node, ast.Constant):
            if type(node.value) not in (int, float, bool) or not abs(node.value) <= 1e300:
                raise ValueError(f"constant {node.value!r}")
        elif isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in CODE_NAMES):
                raise ValueError("calls what is not a closed form's function")
        elif isinstance(node, ast.BinOp) and (isinstance(node.left, (ast.List, ast.Tuple))
                                              or isinstance(node.right, (ast.List, ast.Tuple))):
            raise ValueError("arithmetic on a list")
        elif not isinstance(node, simple):
            raise ValueError(type(node).__name__)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            if not any(isinstance(n, ast.Name) and n.id in arguments for n in ast.walk(node.left)):
                raise ValueError("a power of constants")
            for n in ast.walk(node.right):  # numbers (mpmath's printer writes mpf(3)/mpf(2))
                number = (isinstance(n, (ast.Constant, ast.UnaryOp, ast.BinOp, ast.unaryop, ast.operator, ast.Load))
                          or (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "mpf")
                          or (isinstance(n, ast.Name) and n.id == "mpf"))
                if (not number or (isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow))
                        or (isinstance(n, ast.Constant) and not abs(n.value) <= _MAX_EXPONENT)):
                    raise ValueError("an exponent that is not a small number")


def source(activation: Activation, printer: str, name: str) -> str:
    """The source of closed form ``name`` of ``activation`` for ``printer``."""
    return entry(activation)["code"][printer][name]


def function(activation: Activation, printer: str, name: str, namespace: dict):
    """Closed form ``name`` of ``activation`` as a function of ``(q, sigma_w2, sigma_b2,
    *parameters)`` whose names resolve in ``namespace`` (compiled once per source)."""
    src = source(activation, printer, name)
    if src not in _code_objects:
        _code_objects[src] = (compile(src, f"<{activation.name}: {name}, {printer}>", "exec"),
                              ast.parse(src).body[0].name)
    code, function_name = _code_objects[src]
    scope = dict(namespace)
    exec(code, scope)  # noqa: S102 - printed by sympy, or a stored text checked by check_source
    return scope[function_name]
