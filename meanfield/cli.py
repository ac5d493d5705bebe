"""The ``meanfield`` command line: EoC parameters, fixed points, maps, formulas, tables.

Numbers are read as decimal strings (so nothing is lost to float parsing) and written as
decimal strings carrying the requested digits; ``--json`` gives machine-readable output.
Bad arguments give one line on stderr and exit status 2, never a traceback.

>>> main(["eoc", "--activation", "relu", "--sparsity", "0.7", "--digits", "10", "--json"])
... # doctest: +ELLIPSIS
{
  "activation": "relu",
  ...
  "sigma_w2": "3.333333333",
  ...
0
"""

from __future__ import annotations

import argparse
import json
import sys

import mpmath

from . import __version__
from .activations import BUILTIN, PAPER_ACTIVATIONS, get_activation
from .eoc import eoc_parameters
from .errors import ParameterError
from .fixed_points import FixedPointReport, fixed_points
from .maps import DEFAULT_DIGITS, Initialisation, map_values
from .symbolic import FORMULA_NAMES, Formulas, derive
from .tables import eoc_table, format_table, paper_grid

__all__ = ["main"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, then printed by :func:`main`)."""

    def error(self, message):
        raise _UsageError(message)


def _digits_arg(parser):
    parser.add_argument("--digits", type=int, default=DEFAULT_DIGITS,
                        help=f"significant decimal digits (default {DEFAULT_DIGITS})")


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="meanfield", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"meanfield {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    e = sub.add_parser("eoc", help="edge-of-chaos parameters for a target sparsity")
    e.add_argument("--activation", required=True, choices=PAPER_ACTIVATIONS)
    e.add_argument("--sparsity", required=True, help="target sparsity s")
    e.add_argument("--q-star", default="1", help="fixed point q* (default 1)")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--clip", help="clip level m (crelu, cst)")
    g.add_argument("--v-prime", help="target V'(q*) in (0, 1) (crelu, cst)")
    _digits_arg(e)
    e.add_argument("--json", action="store_true")

    for name, help_text in (("fixed-points", "every fixed point of V, classified"),
                            ("map", "V, V', V'', chi_1 and sparsity at q")):
        f = sub.add_parser(name, help=help_text)
        f.add_argument("--activation", required=True, choices=sorted(BUILTIN))
        f.add_argument("--tau", help="threshold tau (relu, st, crelu, cst)")
        f.add_argument("--clip", help="clip level m (crelu, cst)")
        f.add_argument("--alpha", help="negative slope (leaky_relu)")
        f.add_argument("--sigma-w2", required=True, help="weight variance sigma_w^2")
        f.add_argument("--sigma-b2", required=True, help="bias variance sigma_b^2")
        if name == "map":
            f.add_argument("--q", required=True, help="pre-activation variance q")
        _digits_arg(f)
        f.add_argument("--json", action="store_true")

    fo = sub.add_parser("formula", help="the derived closed forms")
    fo.add_argument("--activation", required=True, choices=sorted(BUILTIN))
    fo.add_argument("--latex", action="store_true", help="LaTeX instead of plain text")
    fo.add_argument("--json", action="store_true")

    t = sub.add_parser("table", help="EoC table of the paper's grid")
    t.add_argument("--format", choices=("markdown", "csv", "json"), default="markdown")
    t.add_argument("--digits", type=int, default=6, help="digits shown (default 6)")
    t.add_argument("-o", "--output", help="write to this file instead of stdout")
    return p


def _s(v, digits):
    return None if v is None else mpmath.nstr(v, digits, strip_zeros=False)


def _points_json(report: FixedPointReport, digits):
    return [{"q": _s(p.q, digits), "v_prime": _s(p.v_prime, digits),
             "v_second": _s(p.v_second, digits), "chi1": _s(p.chi1, digits),
             "kind": p.kind, "attracts_from": p.attracts_from} for p in report.points]


def _report_json(report: FixedPointReport, digits):
    return {"fixed_points": _points_json(report, digits), "large_q": report.large_q,
            "degenerate": report.degenerate, "certified": report.certified,
            "search_range": [repr(float(v)) for v in report.search_range],
            "unresolved": [[repr(float(a)), repr(float(b))] for a, b in report.unresolved]}


def _report_text(report: FixedPointReport, digits) -> list[str]:
    if report.degenerate:
        return ["fixed points: every q > 0 (V(q) = q identically)"]
    lo, hi = report.search_range
    head = (f"fixed points in [{lo:.6g}, {hi:.6g}]"
            f"{'' if report.certified else ' (not certified, see docs)'}: {len(report.points)}")
    lines = [head]
    for p in report.points:
        side = f", attracts from {p.attracts_from}" if p.attracts_from else ""
        lines.append(f"  q = {_s(p.q, digits)}  V' = {_s(p.v_prime, digits)}  "
                     f"V'' = {_s(p.v_second, digits)}  chi1 = {_s(p.chi1, digits)}  {p.kind}{side}")
    for a, b in report.unresolved:
        lines.append(f"  unresolved: |V(q) - q| is below the working precision on [{a:.6g}, {b:.6g}]"
                     " (raise --digits)")
    lines.append(f"large q: {report.large_q}")
    return lines


def _emit(data: dict, lines: list[str], as_json: bool):
    print(json.dumps(data, indent=2) if as_json else "\n".join(lines))


def _cmd_eoc(a):
    sol = eoc_parameters(a.activation, a.sparsity, q_star=a.q_star, clip=a.clip,
                         v_prime=a.v_prime, digits=a.digits)
    d = a.digits
    fields = {"tau": sol.tau, "m": sol.m, "sigma_w2": sol.sigma_w2, "sigma_b2": sol.sigma_b2,
              "chi1": sol.chi1, "v_prime": sol.v_prime, "v_second": sol.v_second,
              "sparsity": sol.sparsity}
    data = {"activation": a.activation, "q_star": _s(sol.q_star, d),
            **{k: _s(v, d) for k, v in fields.items()}, **_report_json(sol.fixed_points, d),
            "digits": d}
    lines = [f"{a.activation} on the edge of chaos, q* = {_s(sol.q_star, d)}"]
    lines += [f"  {k:<9} {_s(v, d)}" for k, v in fields.items() if v is not None]
    _emit(data, lines + _report_text(sol.fixed_points, d), a.json)


def _init_from(a) -> Initialisation:
    act = get_activation(a.activation)
    given = {"tau": a.tau, "m": a.clip, "alpha": a.alpha}
    names = {p.name for p in act.parameters}
    flags = {"tau": "--tau", "m": "--clip", "alpha": "--alpha"}
    for k, v in given.items():
        if v is not None and k not in names:
            raise ParameterError(f"{flags[k]} does not apply to {act.name}")
    return Initialisation(act, a.sigma_w2, a.sigma_b2, {k: v for k, v in given.items() if k in names})


def _cmd_fixed_points(a):
    init = _init_from(a)
    report = fixed_points(init, digits=a.digits)
    data = {"activation": a.activation, **_report_json(report, a.digits), "digits": a.digits}
    _emit(data, _report_text(report, a.digits), a.json)


def _cmd_map(a):
    v = map_values(_init_from(a), a.q, digits=a.digits)
    fields = {"q": v.q, "V": v.variance, "v_prime": v.v_prime, "v_second": v.v_second,
              "chi1": v.chi1, "sparsity": v.sparsity}
    data = {"activation": a.activation, **{k: _s(x, a.digits) for k, x in fields.items()},
            "digits": a.digits}
    _emit(data, [f"{k:<9} {_s(x, a.digits)}" for k, x in fields.items()], a.json)


def _cmd_formula(a):
    f = derive(a.activation)
    render = f.latex if a.latex else f.text
    data = {name: render(name) for name in FORMULA_NAMES}
    lines = [f"{Formulas.description(n)}:\n  {data[n]}" for n in FORMULA_NAMES]
    _emit({"activation": a.activation, **data}, lines, a.json)


def _cmd_table(a):
    text = format_table(eoc_table(paper_grid(), digits=a.digits), a.format)
    if a.output:
        try:
            with open(a.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise ParameterError(f"--output {a.output}: {exc.strerror}") from None
        print(f"wrote {a.output}")
    else:
        print(text, end="")


_COMMANDS = {"eoc": _cmd_eoc, "fixed-points": _cmd_fixed_points, "map": _cmd_map,
             "formula": _cmd_formula, "table": _cmd_table}


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad arguments)."""
    try:
        args = _build_parser().parse_args(argv)
        _COMMANDS[args.command](args)
    except (_UsageError, ParameterError) as exc:
        message = " ".join(str(exc).split())  # one line
        print(f"meanfield: error: {message}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print("meanfield: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
