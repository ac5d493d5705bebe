"""The theory's commands: ``eoc`` (the EoC parameters for a target sparsity), ``fixed-points``,
``map`` (V, V', V'', chi_1 and the sparsity at q), ``correlation`` (the map rho(c) at q*, its
fixed points and depth scale xi_c), ``diagnose`` (every diagnostic and a verdict) and
``formula`` (the derived closed forms).
"""

from __future__ import annotations

import mpmath

from ..activations import BUILTIN, by_sparsity
from ..correlation import Divergent, correlation_fixed_points, correlation_map
from ..diagnose import diagnose
from ..eoc import eoc_parameters
from ..errors import ParameterError
from ..fixed_points import FixedPointReport, fixed_points
from ..maps import map_values
from ..symbolic import FORMULA_NAMES, Formulas, derive
from ._common import (
    CONFIG_HELP,
    config_args,
    configuration,
    decimal,
    digits_arg,
    emit,
    init_from,
    stable_q_star,
)


def register(sub):
    """Add the theory's commands to the subparsers ``sub``."""
    e = sub.add_parser("eoc", help="edge-of-chaos parameters for a target sparsity")
    e.add_argument("--activation", required=True, choices=tuple(by_sparsity()))
    e.add_argument("--sparsity", required=True, help="target sparsity s")
    e.add_argument("--q-star", default="1", help="fixed point q* (default 1)")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--clip", help="clip level m (crelu, cst)")
    g.add_argument("--v-prime", help="target V'(q*) in (0, 1) (crelu, cst)")
    digits_arg(e)
    e.add_argument("--json", action="store_true")
    e.set_defaults(handler=_cmd_eoc)

    for name, help_text, handler in (("fixed-points", "every fixed point of V, classified", _cmd_fixed_points),
                                     ("map", "V, V', V'', chi_1 and sparsity at q", _cmd_map)):
        f = sub.add_parser(name, help=help_text)
        f.add_argument("--activation", required=True, choices=sorted(BUILTIN))
        f.add_argument("--tau", help="threshold tau (relu, st, crelu, cst)")
        f.add_argument("--clip", help="clip level m (crelu, cst)")
        f.add_argument("--alpha", help="negative slope (leaky_relu)")
        f.add_argument("--sigma-w2", required=True, help="weight variance sigma_w^2")
        f.add_argument("--sigma-b2", required=True, help="bias variance sigma_b^2")
        if name == "map":
            f.add_argument("--q", required=True, help="pre-activation variance q")
        digits_arg(f)
        f.add_argument("--json", action="store_true")
        f.set_defaults(handler=handler)

    for name, help_text, handler in (
            ("correlation", "the correlation map rho(c) at q*, its fixed points, xi_c", _cmd_correlation),
            ("diagnose", "every diagnostic and a verdict for one initialisation", _cmd_diagnose)):
        c = sub.add_parser(name, help=help_text, description=CONFIG_HELP)
        config_args(c)
        if name == "correlation":
            c.add_argument("--points", type=int, default=11,
                           help="number of c values, evenly spaced on [-1, 1] (default 11)")
            c.add_argument("--c", help="comma-separated c values instead of --points (write --c=-1,0,1)")
        else:
            c.add_argument("--depth", type=int, default=100, help="depth L for the Jacobian (default 100)")
        digits_arg(c)
        c.add_argument("--json", action="store_true")
        c.set_defaults(handler=handler)

    fo = sub.add_parser("formula", help="the derived closed forms")
    fo.add_argument("--activation", required=True, choices=sorted(BUILTIN))
    fo.add_argument("--latex", action="store_true", help="LaTeX instead of plain text")
    fo.add_argument("--json", action="store_true")
    fo.set_defaults(handler=_cmd_formula)


def _cmd_eoc(a):
    sol = eoc_parameters(a.activation, a.sparsity, q_star=a.q_star, clip=a.clip,
                         v_prime=a.v_prime, digits=a.digits)
    d = a.digits
    fields = {"tau": sol.tau, "m": sol.m, "sigma_w2": sol.sigma_w2, "sigma_b2": sol.sigma_b2,
              "chi1": sol.chi1, "v_prime": sol.v_prime, "v_second": sol.v_second,
              "sparsity": sol.sparsity}
    data = {"activation": a.activation, "q_star": decimal(sol.q_star, d),
            **{k: decimal(v, d) for k, v in fields.items()}, **_report_json(sol.fixed_points, d),
            "digits": d}
    lines = [f"{a.activation} on the edge of chaos, q* = {decimal(sol.q_star, d)}"]
    lines += [f"  {k:<9} {decimal(v, d)}" for k, v in fields.items() if v is not None]
    emit(data, lines + _report_text(sol.fixed_points, d), a.json)


def _cmd_fixed_points(a):
    init = init_from(a)
    report = fixed_points(init, digits=a.digits)
    data = {"activation": a.activation, **_report_json(report, a.digits), "digits": a.digits}
    emit(data, _report_text(report, a.digits), a.json)


def _cmd_map(a):
    v = map_values(init_from(a), a.q, digits=a.digits)
    fields = {"q": v.q, "V": v.variance, "v_prime": v.v_prime, "v_second": v.v_second,
              "chi1": v.chi1, "sparsity": v.sparsity}
    data = {"activation": a.activation, **{k: decimal(x, a.digits) for k, x in fields.items()},
            "digits": a.digits}
    emit(data, [f"{k:<9} {decimal(x, a.digits)}" for k, x in fields.items()], a.json)


def _v(value, digits):
    """A number, Divergent or infinity as a decimal string ('+inf', '-inf')."""
    if value is None:
        return None
    if isinstance(value, Divergent):
        return str(value)
    if mpmath.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return decimal(value, digits)


def _cmd_correlation(a):
    config, q_star = configuration(a)
    if q_star is None and not hasattr(config, "q_star"):
        q_star = stable_q_star(config)
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
    emit(data, lines, a.json)


def _cmd_diagnose(a):
    config, q_star = configuration(a)
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
    lines = diag.summary(d, name=a.activation).replace("(raise the digits)", "(raise --digits)").split("\n")
    emit(data, lines, a.json)


def _cmd_formula(a):
    f = derive(a.activation)
    render = f.latex if a.latex else f.text
    data = {name: render(name) for name in FORMULA_NAMES}
    lines = [f"{Formulas.description(n)}:\n  {data[n]}" for n in FORMULA_NAMES]
    emit({"activation": a.activation, **data}, lines, a.json)


def _points_json(report: FixedPointReport, digits):
    return [{"q": decimal(p.q, digits), "v_prime": decimal(p.v_prime, digits),
             "v_second": decimal(p.v_second, digits), "chi1": decimal(p.chi1, digits),
             "kind": p.kind, "attracts_from": p.attracts_from} for p in report.points]


def _report_json(report: FixedPointReport, digits):
    return {"fixed_points": _points_json(report, digits), "large_q": report.large_q,
            "degenerate": report.degenerate, "certified": report.certified,
            "search_range": [repr(float(v)) for v in report.search_range],
            "unresolved": [[repr(float(a)), repr(float(b))] for a, b in report.unresolved]}


def _report_text(report: FixedPointReport, digits) -> list[str]:
    return report.summary(digits).replace("(raise the digits)", "(raise --digits)").split("\n")
