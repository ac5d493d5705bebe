"""The theory's commands: ``eoc`` (the EoC parameters for a target sparsity), ``fixed-points``,
``map`` (V, V', V'', chi_1 and the sparsity at q), ``correlation`` (the map rho(c) at q*, its
fixed points and depth scale xi_c), ``diagnose`` (every diagnostic and a verdict) and
``formula`` (the derived closed forms).
"""

from __future__ import annotations

from fractions import Fraction

from ..activations import BUILTIN, by_sparsity
from ..closed_forms import FORMULA_NAMES
from ..eoc import eoc_parameters
from ..errors import ParameterError
from ..fixed_points import fixed_points
from ..maps import map_values
from ..validation import CORRELATION_MAX_DIGITS
from ._common import (CONFIG_HELP, config_args, configuration, digits_arg, emit, init_from, stable_q_star,
                      working_digits)


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
            c.add_argument("--depth", type=int, default=100,
                           help="depth L of the network: for the Jacobian, and with --width for the verdict (default 100)")
            c.add_argument("--width", type=int, default=None,
                           help="width N of the network: the verdict for that width (the probability that a "
                                "network leaves the basin of q* within L layers); default: infinite width")
        digits_arg(c, maximum=CORRELATION_MAX_DIGITS)  # both compute the correlation map
        c.add_argument("--json", action="store_true")
        c.set_defaults(handler=handler)

    fo = sub.add_parser("formula", help="the derived closed forms")
    fo.add_argument("--activation", required=True, choices=sorted(BUILTIN))
    fo.add_argument("--latex", action="store_true", help="LaTeX instead of plain text")
    fo.add_argument("--json", action="store_true")
    fo.set_defaults(handler=_cmd_formula)


def _cmd_eoc(a):
    sol = eoc_parameters(a.activation, a.sparsity, q_star=a.q_star, clip=a.clip,
                         v_prime=a.v_prime, digits=working_digits(a))
    data = {**sol.to_dict(a.digits), "digits": a.digits}
    lines = [f"{a.activation} on the edge of chaos, q* = {data['q_star']}"]
    lines += [f"  {k:<9} {data[k]}" for k in ("tau", "m", "sigma_w2", "sigma_b2", "chi1", "v_prime", "v_second",
                                              "sparsity") if data[k] is not None]
    emit(data, lines + sol.fixed_points.summary(a.digits).split("\n"), a.json)


def _cmd_fixed_points(a):
    report = fixed_points(init_from(a), digits=working_digits(a))
    data = {"activation": a.activation, **report.to_dict(a.digits), "digits": a.digits}
    emit(data, report.summary(a.digits).split("\n"), a.json)


def _cmd_map(a):
    values = map_values(init_from(a), a.q, digits=working_digits(a)).to_dict(a.digits)
    data = {"activation": a.activation, **values, "digits": a.digits}
    names = {"variance": "V", "v_prime": "V'", "v_second": "V''"}
    emit(data, [f"{names.get(k, k):<9} {x}" for k, x in values.items()], a.json)


def _cmd_correlation(a):
    from ..correlation import correlation_fixed_points, correlation_map  # sympy: imported by the commands that need it
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
        cs = [Fraction(2 * i, a.points - 1) - 1 for i in range(a.points)]  # exact: read at any digits
    d, work = a.digits, working_digits(a)
    rows = [v.to_dict(d) for v in correlation_map(config, cs, q_star=q_star, digits=work)]
    report = correlation_fixed_points(config, q_star=q_star, digits=work)
    data = {**report.to_dict(d), "activation": a.activation, "map": rows, "digits": d}
    width = max(d + 8, 12)
    lines = [f"correlation map of {a.activation} at q* = {data['q_star']} ({report.phase}, "
             f"chi_1 = {data['chi1']})",
             ("  " + "".join(f"{h:<{width}}" for h in ("c", "rho", "rho'", "rho''"))).rstrip()]
    lines += ["  " + "".join(f"{r[k]:<{width}}" for k in ("c", "rho", "rho_prime", "rho_second")).rstrip()
              for r in rows]
    lines.append(f"rho(0) = {data['rho0']}")
    if report.degenerate:
        lines.append("fixed points: every c (rho(c) = c identically)")
    else:
        lines.append(f"fixed points: {len(data['fixed_points'])}")
        lines += [f"  c* = {p['c']}  rho'(c*) = {p['rho_prime']}  {p['kind']}"
                  f"{'' if p['depth_scale'] is None else '  xi = ' + p['depth_scale']}" for p in data["fixed_points"]]
    for x, y in report.unresolved:
        lines.append(f"  unresolved: [{x:.6g}, {y:.6g}] (ask for more --digits)")
    lines.append(f"xi_c = {data['xi_c']}")
    emit(data, lines, a.json)


def _cmd_diagnose(a):
    from ..diagnose import diagnose
    config, q_star = configuration(a)
    diag = diagnose(config, q_star=q_star, depth=a.depth, width=a.width, digits=working_digits(a))
    emit({**diag.to_dict(a.digits), "digits": a.digits}, diag.summary(a.digits, name=a.activation).split("\n"),
         a.json)


def _cmd_formula(a):
    from ..symbolic import Formulas, derive
    f = derive(a.activation)
    render = f.latex if a.latex else f.text
    data = {name: render(name) for name in FORMULA_NAMES}
    lines = [f"{Formulas.description(n)}:\n  {data[n]}" for n in FORMULA_NAMES]
    emit({"activation": a.activation, **data}, lines, a.json)
