"""The ``meanfield`` command line: EoC parameters, fixed points, maps, correlation maps,
diagnostics, formulas, tables.

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
from .correlation import Divergent, correlation_fixed_points, correlation_map
from .diagnose import diagnose
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

    for name, help_text in (("correlation", "the correlation map rho(c) at q*, its fixed points, xi_c"),
                            ("diagnose", "every diagnostic and a verdict for one initialisation")):
        c = sub.add_parser(name, help=help_text, description=_CONFIG_HELP)
        c.add_argument("--activation", required=True, choices=sorted(BUILTIN))
        c.add_argument("--sparsity", help="target sparsity s (relu, st, crelu, cst): EoC initialisation")
        c.add_argument("--q-star", help="fixed point q* (default 1 on the EoC; else the only stable one)")
        g = c.add_mutually_exclusive_group()
        g.add_argument("--clip", help="clip level m (crelu, cst)")
        g.add_argument("--v-prime", help="target V'(q*) in (0, 1) (crelu, cst, with --sparsity)")
        c.add_argument("--tau", help="threshold tau (without --sparsity)")
        c.add_argument("--alpha", help="negative slope (leaky_relu)")
        c.add_argument("--sigma-w2", help="weight variance (with --sigma-b2: not on the EoC)")
        c.add_argument("--sigma-b2", help="bias variance")
        if name == "correlation":
            c.add_argument("--points", type=int, default=11,
                           help="number of c values, evenly spaced on [-1, 1] (default 11)")
            c.add_argument("--c", help="comma-separated c values instead of --points (write --c=-1,0,1)")
        else:
            c.add_argument("--depth", type=int, default=100, help="depth L for the Jacobian (default 100)")
        _digits_arg(c)
        c.add_argument("--json", action="store_true")

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


def _activation_params(a, act) -> dict:
    """The activation parameters given by --tau, --clip, --alpha (an error for one that
    does not apply to ``act``)."""
    given = {"tau": a.tau, "m": a.clip, "alpha": a.alpha}
    names = {p.name for p in act.parameters}
    flags = {"tau": "--tau", "m": "--clip", "alpha": "--alpha"}
    for k, v in given.items():
        if v is not None and k not in names:
            raise ParameterError(f"{flags[k]} does not apply to {act.name}")
    return {k: v for k, v in given.items() if v is not None}


def _init_from(a) -> Initialisation:
    act = get_activation(a.activation)
    return Initialisation(act, a.sigma_w2, a.sigma_b2, _activation_params(a, act))


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


_CONFIG_HELP = """The initialisation: with --sparsity, the EoC initialisation of Price et al.
(as `meanfield eoc`); with --sigma-w2 and --sigma-b2, that initialisation (q* its only
stable fixed point unless --q-star is given); otherwise the EoC initialisation with the
given --tau / --clip / --alpha at --q-star."""


def _configuration(a):
    """(Initialisation or EoCSolution, q*) from the shared arguments of correlation/diagnose."""
    act = get_activation(a.activation)
    if a.sparsity is not None:
        for flag, v in (("--tau", a.tau), ("--alpha", a.alpha), ("--sigma-w2", a.sigma_w2),
                        ("--sigma-b2", a.sigma_b2)):
            if v is not None:
                raise ParameterError(f"{flag} does not go with --sparsity (the EoC sets it)")
        sol = eoc_parameters(act.name, a.sparsity, q_star=a.q_star or "1", clip=a.clip,
                             v_prime=a.v_prime, digits=a.digits)
        return sol, None
    if a.v_prime is not None:
        raise ParameterError("--v-prime goes with --sparsity")
    if (a.sigma_w2 is None) != (a.sigma_b2 is None):
        raise ParameterError("give both --sigma-w2 and --sigma-b2, or neither (EoC)")
    if a.sigma_w2 is not None:
        return _init_from(a), a.q_star
    sol = eoc_parameters(act.name, q_star=a.q_star or "1", digits=a.digits, **_activation_params(a, act))
    return sol, None


def _v(value, digits):
    """A number, Divergent or infinity as a decimal string ('+inf', '-inf')."""
    if value is None:
        return None
    if isinstance(value, Divergent):
        return str(value)
    if mpmath.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return _s(value, digits)


def _stable_q_star(config):
    """q* for an explicit initialisation without --q-star: its only attracting fixed point."""
    report = fixed_points(config)
    attracting = [p for p in report.points if p.kind != "unstable"]
    if len(attracting) != 1:
        where = ", ".join(mpmath.nstr(p.q, 8) for p in report.points) or "none"
        raise ParameterError(f"give --q-star: V has {len(attracting)} attracting fixed points "
                             f"(fixed points: {where})")
    return attracting[0].q


def _cmd_correlation(a):
    config, q_star = _configuration(a)
    if q_star is None and not hasattr(config, "q_star"):
        q_star = _stable_q_star(config)
    if a.c is not None:
        cs = [v.strip() for v in a.c.split(",") if v.strip()]
        if not cs:
            raise ParameterError("--c needs at least one value in [-1, 1]")
    else:
        if not 2 <= a.points <= 1001:
            raise ParameterError(f"--points = {a.points} is out of range: must be in [2, 1001]")
        cs = [mpmath.mpf(-1) + 2 * mpmath.mpf(i) / (a.points - 1) for i in range(a.points)]
    d = a.digits
    values = correlation_map(config, cs, q_star=q_star, digits=d)
    report = correlation_fixed_points(config, q_star=q_star, digits=d)
    rows = [{"c": _v(v.c, d), "rho": _v(v.rho, d), "rho_prime": _v(v.rho_prime, d),
             "rho_second": _v(v.rho_second, d)} for v in values]
    points = [{"c": _v(p.c, d), "rho_prime": _v(p.rho_prime, d), "kind": p.kind,
               "depth_scale": _v(p.depth_scale, d)} for p in report.points]
    data = {"activation": a.activation, "q_star": _v(report.q_star, d), "phase": report.phase,
            "chi1": _v(report.chi1, d), "rho0": _v(report.rho0, d), "xi_c": _v(report.xi_c, d),
            "fixed_points": points, "degenerate": report.degenerate,
            "unresolved": [[repr(x), repr(y)] for x, y in report.unresolved], "map": rows, "digits": d}
    width = max(d + 8, 12)
    lines = [f"correlation map of {a.activation} at q* = {_v(report.q_star, d)} ({report.phase}, "
             f"chi_1 = {_v(report.chi1, d)})",
             ("  " + "".join(f"{h:<{width}}" for h in ("c", "rho", "rho'", "rho''"))).rstrip()]
    lines += ["  " + "".join(f"{r[k]:<{width}}" for k in ("c", "rho", "rho_prime", "rho_second")).rstrip()
              for r in rows]
    lines.append(f"rho(0) = {data['rho0']}")
    if report.degenerate:
        lines.append("fixed points: every c (rho(c) = c identically)")
    else:
        lines.append(f"fixed points: {len(points)}")
        lines += [f"  c* = {p['c']}  rho'(c*) = {p['rho_prime']}  {p['kind']}"
                  f"{'' if p['depth_scale'] is None else '  xi = ' + p['depth_scale']}" for p in points]
    for x, y in report.unresolved:
        lines.append(f"  unresolved: [{x:.6g}, {y:.6g}] (raise --digits)")
    lines.append(f"xi_c = {data['xi_c']}")
    _emit(data, lines, a.json)


def _cmd_diagnose(a):
    config, q_star = _configuration(a)
    d = a.digits
    diag = diagnose(config, q_star=q_star, depth=a.depth, digits=d)
    p = diag.q_star_point
    jac = diag.jacobian
    data = {
        "activation": a.activation, "verdict": diag.verdict, "reason": diag.reason,
        "q_star": _v(diag.q_star, d), "sigma_w2": _v(mpmath.mpf(diag.init.sigma_w2), d),
        "sigma_b2": _v(mpmath.mpf(diag.init.sigma_b2), d),
        "parameters": {k: _v(mpmath.mpf(v), d) for k, v in diag.init.params},
        "v_prime": _v(p.v_prime, d), "v_second": _v(p.v_second, d), "kind": p.kind,
        "xi_q": _v(diag.xi_q, d), **_report_json(diag.fixed_points, d),
        "other_stable": [{"q": _v(o.q, d), "chi1": _v(o.chi1, d)} for o in diag.other_stable],
        "basin": [_v(b, d) for b in diag.basin], "margin": _v(diag.margin, d),
        "margin_at": _v(diag.margin_at, d), "rho0": _v(diag.rho0, d), "xi_c": _v(diag.xi_c, d),
        "correlation_fixed_points": [{"c": _v(c.c, d), "rho_prime": _v(c.rho_prime, d), "kind": c.kind}
                                     for c in diag.correlation.points],
        "depth": diag.depth,
        "jacobian": None if jac is None else {"mean": _v(jac.mean, d), "variance": _v(jac.variance, d),
                                              "relative_variance": _v(jac.relative_variance, d)},
        "digits": d,
    }
    lines = [f"verdict: {diag.verdict}: {diag.reason}",
             f"{a.activation}: q* = {data['q_star']} ({p.kind}), sigma_w2 = {data['sigma_w2']}, "
             f"sigma_b2 = {data['sigma_b2']}"
             + "".join(f", {k} = {v}" for k, v in data["parameters"].items()),
             f"  V'(q*) = {data['v_prime']}  V''(q*) = {data['v_second']}  xi_q = {data['xi_q']}"]
    lines += _report_text(diag.fixed_points, d)
    for o in data["other_stable"]:
        lines.append(f"  other stable fixed point q = {o['q']}: chi_1 = {o['chi1']}")
    lines.append(f"basin of q*: ({data['basin'][0] or '0'}, {data['basin'][1] or 'inf'})")
    if diag.margin is not None:
        lines.append(f"smallest margin (q - V(q))/(q - q*) above q*: {data['margin']}"
                     + (f" at q = {data['margin_at']}" if diag.margin_at is not None else ""))
    lines.append(f"correlation map: rho(0) = {data['rho0']}, xi_c = {data['xi_c']}, fixed points "
                 + ", ".join(f"{c['c']} ({c['kind']})" for c in data["correlation_fixed_points"]))
    if jac is None:
        lines.append("Jacobian: phi has jumps, its moments are infinite")
    else:
        lines.append(f"Jacobian at depth {diag.depth}: squared singular values have mean "
                     f"{data['jacobian']['mean']} and variance {data['jacobian']['variance']}")
    _emit(data, lines, a.json)


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
             "correlation": _cmd_correlation, "diagnose": _cmd_diagnose,
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
    except BrokenPipeError:  # e.g. `meanfield correlation ... | head`: the reader left
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
