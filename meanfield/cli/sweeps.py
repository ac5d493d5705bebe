"""The sweeps: ``table`` (the stability table of a grid of EoC configurations, default the
paper's) and ``phase-diagram`` (the verdict over a grid of sparsity and clip ratio
m/sqrt(q*)). Both keep finished rows in a journal beside their output, so an interrupted
sweep resumes.
"""

from __future__ import annotations

from ..activations import get_activation
from ..errors import ParameterError
from ..tables import (
    COLUMNS,
    MAX_TABLE_DIGITS,
    FORMATS,
    configuration_grid,
    paper_grid,
    parse_values,
    stability_table,
)
from ._common import (LazyChoices, check_figure, digits_arg, jobs_args, journal_for, journal_hint, progress, remove_journal,
                      save_figure_file, write_output)


def register(sub):
    """Add the sweeps to the subparsers ``sub``."""
    t = sub.add_parser("table", help="stability table over a grid (default: the paper's grid)",
                       description=TABLE_HELP)
    t.add_argument("--activation", help="comma-separated activations among relu, st, crelu, cst "
                   "(default: the paper's grid)")
    t.add_argument("--sparsity", help="sparsities: S, S1,S2,... or START:STOP:STEP")
    t.add_argument("--q-star", default="1", help="fixed points q* (same forms; default 1)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--clip", help="clip levels m of crelu/cst (same forms)")
    g.add_argument("--v-prime", help="target V'(q*) values of crelu/cst (same forms)")
    t.add_argument("--depth", type=int, default=100, help="network depth for the verdict (default 100)")
    t.add_argument("--width", type=int, default=None,
                   help="units per layer N for the verdict (default: infinite width; see diagnose --width)")
    t.add_argument("--format", choices=FORMATS, default="markdown")
    t.add_argument("--columns", help=f"comma-separated columns (default all: {','.join(COLUMNS)})")
    digits_arg(t, default=6, maximum=MAX_TABLE_DIGITS)
    jobs_args(t)
    t.add_argument("-o", "--output", help="write to this file (resumable: see below)")
    t.set_defaults(handler=_cmd_table, interrupt_hint=journal_hint)

    d = sub.add_parser("phase-diagram", help="verdict over a grid of (s, m/sqrt(q*)) for crelu or cst",
                       description=PHASE_HELP)
    d.add_argument("--activation", required=True, choices=LazyChoices(_clipped), metavar="ACTIVATION",
                   help="%(choices)s")
    d.add_argument("--sparsity", help="sparsities, START:STOP:STEP or S1,S2,... (default 100 values over "
                   "[0.5 (crelu) or 0, 0.95])")
    d.add_argument("--clip-ratio", help="clip ratios m/sqrt(q*), START:STOP:STEP or R1,R2,... (default 100 "
                   "values over [0.05, 4])")
    d.add_argument("--q-star", default="1", help="fixed point q* (default 1)")
    d.add_argument("--depth", type=int, default=100, help="network depth for the verdict (default 100)")
    d.add_argument("--width", type=int, default=None,
                   help="units per layer N for the verdict (default: infinite width; about 0.1-0.4 s more per "
                        "point where the finite-width model is asked)")
    d.add_argument("--format", choices=("csv", "json"), default="csv")
    jobs_args(d)
    d.add_argument("-o", "--output", help="write the points to this file (resumable)")
    d.add_argument("--figure", help="also draw the diagram: FILE.png or FILE.pdf")
    d.set_defaults(handler=_cmd_phase_diagram, interrupt_hint=journal_hint)

    r = sub.add_parser("recommend", help="the clip level the theory recommends for crelu or cst at a sparsity",
                       description=RECOMMEND_HELP)
    r.add_argument("--activation", required=True, choices=LazyChoices(_clipped), metavar="ACTIVATION",
                   help="%(choices)s")
    r.add_argument("--sparsity", required=True, help="sparsities: S, S1,S2,... or START:STOP:STEP")
    r.add_argument("--depth", type=int, default=100, help="hidden layers L (default 100)")
    r.add_argument("--width", type=int, default=None, help="units per layer N (default: infinite width)")
    r.add_argument("--q-star", default="1", help="fixed point q* (default 1)")
    r.add_argument("--json", action="store_true")
    r.add_argument("--figure", help="also draw the recommendations on the phase diagram: FILE.png or FILE.pdf")
    jobs_args(r)
    r.set_defaults(handler=_cmd_recommend)


TABLE_HELP = """One row per configuration: EoC parameters, V'(q*), V''(q*), every fixed point
and its kind, chi_1 at the other stable fixed points, rho(0), xi_c, the margin and the
verdict with its reason. Values are read as START:STOP:STEP (inclusive), S1,S2,... or S.
With -o FILE, each finished row is also kept in FILE.partial.jsonl, so that an interrupted
run resumes when the same command is given again; the journal is removed once FILE is
written."""


PHASE_HELP = """The verdict of every EoC configuration on a grid of sparsity s and clip ratio
m/sqrt(q*), on the float64 fast path (points that float64 cannot decide are recomputed with
mpmath). Values are read as START:STOP:STEP (inclusive), S1,S2,... or S, e.g. --sparsity
0.5:0.95:0.05 --clip-ratio 0.25:4:0.25 for a coarse 10 x 16 grid. With -o FILE, finished
rows are kept in FILE.partial.jsonl until FILE is written, so an interrupted run resumes."""


RECOMMEND_HELP = """The clip level m (and V'(q*)) the theory recommends at each sparsity: the middle
of the band of V'(q*) whose verdict is trainable, between too-sparse below (rho(0) >= 0.65)
and fragile or exploding above (with --width: the probability that a network of that
width leaves the basin of q* within --depth layers); where no V'(q*) is trainable, 0.05
below the upper edge. Prints the band and the reasons; --figure draws them on the phase
diagram (a 60 x 60 grid; with --width, at that width too, which takes minutes where the
finite-width model is asked)."""


def _cmd_recommend(a):
    import json

    from ..recommend import recommend
    sparsities = parse_values(a.sparsity, "sparsity")
    check_figure(a.figure)
    found = []
    for s in sparsities:
        rec = recommend(a.activation, s, depth=a.depth, width=a.width, q_star=a.q_star)
        found.append(rec)
        if not a.json:
            print(rec.summary(), flush=True)
    if a.json:
        print(json.dumps([r.to_dict() for r in found], indent=2))
    if a.figure:
        import numpy as np

        from ..plots import phase_diagram_figure
        from ..scan import phase_diagram
        s_lo = get_activation(a.activation).sparsity_rule.lowest
        d = phase_diagram(a.activation, np.linspace(s_lo, 0.95, 60), np.linspace(0.05, 4.0, 60),
                          q_star=a.q_star, depth=a.depth, width=a.width, jobs=a.jobs, progress=progress(a))
        save_figure_file(phase_diagram_figure([d], recommendations=found), a.figure)
        print(f"wrote {a.figure}")


def _values(text, name):
    return parse_values(text, name) if text is not None else None


def _cmd_table(a):
    if a.activation is None:
        if any(v is not None for v in (a.sparsity, a.clip, a.v_prime)) or a.q_star != "1":
            raise ParameterError("--sparsity, --q-star, --clip and --v-prime need --activation "
                                 "(without it the table is the paper's grid)")
        grid = paper_grid()
    else:
        if a.sparsity is None:
            raise ParameterError("--activation needs --sparsity (e.g. --sparsity 0.5:0.95:0.05)")
        grid = configuration_grid(a.activation.split(","), parse_values(a.sparsity, "sparsity"),
                                  q_stars=parse_values(a.q_star, "q_star"),
                                  clips=_values(a.clip, "clip"), v_primes=_values(a.v_prime, "v_prime"))
    columns = None if a.columns is None else [c.strip() for c in a.columns.split(",")]
    if columns is not None and [c for c in columns if c not in COLUMNS]:
        raise ParameterError(f"--columns: unknown {[c for c in columns if c not in COLUMNS]}; "
                             f"choose from {', '.join(COLUMNS)}")
    journal = journal_for(a.output)
    table = stability_table(grid, digits=a.digits, depth=a.depth, width=a.width, jobs=a.jobs,
                            progress=progress(a), journal=journal)
    text = table.format(a.format, columns=columns)
    if a.output:
        write_output(a.output, text)
        remove_journal(journal)
        print(f"wrote {a.output} ({len(table)} rows)")
    else:
        print(text, end="")


def _axis(text, name, default):
    if text is None:
        return default
    return [float(v) for v in parse_values(text, name)]


def _cmd_phase_diagram(a):
    import numpy as np

    from ..scan import phase_diagram
    s_lo = get_activation(a.activation).sparsity_rule.lowest
    s = _axis(a.sparsity, "sparsity", np.linspace(s_lo, 0.95, 100))
    r = _axis(a.clip_ratio, "clip_ratio", np.linspace(0.05, 4.0, 100))
    journal = journal_for(a.output)
    check_figure(a.figure)
    d = phase_diagram(a.activation, s, r, q_star=a.q_star, depth=a.depth, width=a.width, jobs=a.jobs,
                      progress=progress(a), journal=journal)
    text = d.to_csv() if a.format == "csv" else d.to_json()
    if a.output:  # the data first: a figure that fails loses nothing
        write_output(a.output, text)
        remove_journal(journal)
    elif not a.figure:
        print(text, end="")
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(d.counts().items()))
    print(f"{a.activation}: {len(s)} x {len(r)} points: {counts}; {int(d.refined.sum())} decided by mpmath")
    if a.output:
        print(f"wrote {a.output}")
    if a.figure:
        from ..plots import phase_diagram_figure
        save_figure_file(phase_diagram_figure([d]), a.figure)
        print(f"wrote {a.figure}")


def _clipped():
    from ..scan import clipped_by_sparsity
    return clipped_by_sparsity()
