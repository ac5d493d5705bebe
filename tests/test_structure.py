"""The package's structure: private names stay in their module, the mathematical core
imports nothing above it, and a command that draws nothing does not load matplotlib."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "meanfield"
MODULES = sorted(PACKAGE.rglob("*.py"))
#: The mathematical core, in the order of the data flow; none of it may import what sits above.
CORE = ("activations", "symbolic", "closed_forms", "maps", "eoc", "fixed_points", "correlation", "jacobian", "finite_width", "diagnose",
        "validation", "errors", "_interval", "_roots")
ABOVE = ("meanfield.plots", "meanfield.training_figures", "meanfield.cli", "meanfield.nn", "meanfield.datasets", "meanfield._jobs",
         "meanfield.tables", "meanfield.scan", "meanfield.torch", "matplotlib", "joblib", "tqdm", "torch")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` reads from."""
    if not node.level:
        return node.module or ""
    base = _module_name(path).split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def _is_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def _violations(path: Path):
    """Private names a module takes from another, non-private module of the package: by
    ``from X import _name`` or by ``X._name`` on a module it imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = {}  # local name -> imported non-private meanfield module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(path, node)
            if not source.startswith("meanfield"):
                continue
            for a in node.names:
                target = f"{source}.{a.name}"
                if _is_module(target):
                    if not _private(target):
                        aliases[a.asname or a.name] = target
                    continue
                if a.name.startswith("_") and not a.name.startswith("__") and not _private(source):
                    yield f"from {source} import {a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("meanfield") and not _private(a.name):
                    aliases[a.asname or a.name] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            yield f"{aliases[node.value.id]}.{node.attr}"


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_no_module_takes_a_private_name_of_another(path):
    found = sorted(set(_violations(path)))
    assert not found, f"{path.relative_to(ROOT)} uses private names of other modules: {found}"


def test_the_check_finds_a_private_import(tmp_path):
    """The check itself: a module written to break the rule is caught."""
    bad = PACKAGE / "nn" / "_probe_for_test.py"
    bad.write_text("from ..maps import _MODULES\nfrom .. import maps\nx = maps._MODULES\n", encoding="utf-8")
    try:
        assert sorted(set(_violations(bad))) == ["from meanfield.maps import _MODULES", "meanfield.maps._MODULES"]
    finally:
        bad.unlink()


@pytest.mark.parametrize("name", CORE)
def test_the_core_imports_nothing_above_it(name):
    tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(_resolve(PACKAGE / f"{name}.py", node))
            imported.update(f"{_resolve(PACKAGE / f'{name}.py', node)}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    bad = sorted(i for i in imported for above in ABOVE if i == above or i.startswith(above + "."))
    assert not bad, f"meanfield.{name} imports {bad}"


def test_eoc_does_not_load_matplotlib_or_numba():
    code = ("import sys; from meanfield.cli import main; "
            "main(['eoc', '--activation', 'cst', '--sparsity', '0.8', '--v-prime', '0.9', '--digits', '10']); "
            "print('matplotlib' in sys.modules, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False False"), out


def test_every_command_has_a_handler_in_its_group():
    """Each command module's parsers name their handler, and the handler is that module's own."""
    import argparse

    from meanfield.cli import COMMAND_GROUPS, build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    homes = {}
    for name, parser in sub.choices.items():
        handler = parser.get_default("handler")
        assert callable(handler), f"meanfield {name} sets no handler"
        homes[name] = handler.__module__
    assert set(homes.values()) == {g.__name__ for g in COMMAND_GROUPS}
    assert len(homes) >= 14


def test_the_facade_names_each_export_once_and_imports_them_lazily():
    """meanfield/__init__.py: the names of _EXPORTS are exactly those its TYPE_CHECKING
    block imports (what the API docs read) and __all__; importing the package loads none
    of their modules, and each name resolves to its module's object."""
    import meanfield
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    static = {(("." * n.level) + (n.module or ""), a.name) for n in block.body if isinstance(n, ast.ImportFrom)
              for a in n.names}
    lazy = {(module, name) for module, names in meanfield._EXPORTS.items() for name in names}
    assert static == lazy
    assert set(meanfield.__all__) == {name for _, name in lazy} | {"ParameterError", "NoSolutionError"}
    code = ("import sys, meanfield; heavy = [m for m in ('sympy', 'scipy', 'mpmath', 'numpy', 'meanfield.maps') "
            "if m in sys.modules]; print(heavy); print(meanfield.derive.__module__, meanfield.nstr.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1].startswith("meanfield.symbolic mpmath."), out


def test_a_submodule_import_does_not_shadow_the_facade_function():
    code = ("import meanfield as mf, meanfield.tables, meanfield.fixed_points, meanfield.diagnose; "
            "print(callable(mf.fixed_points), callable(mf.diagnose), mf.diagnose.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "meanfield.diagnose"], out


def test_every_public_function_is_annotated():
    """Each function of the facade says what it takes and returns (meanfield/_types.py
    names the argument types: Real, ActivationLike, InitialisationLike, Context, ...)."""
    import inspect

    import meanfield
    missing = []
    for name in meanfield.__all__:
        obj = getattr(meanfield, name)
        if inspect.isfunction(obj) and obj.__module__.startswith("meanfield"):
            sig = inspect.signature(obj)
            bare = [p.name for p in sig.parameters.values()
                    if p.annotation is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            if bare or sig.return_annotation is inspect.Signature.empty:
                missing.append((name, bare))
    assert not missing, missing
