"""The figures: ``plot`` (one of the paper's figures, or all) and ``demo``, the main job: the
paper-grid table, both phase diagrams, every figure and a simulation of each verdict.
"""

from __future__ import annotations

from .._progress import stage
from ..activations import get_activation
from ..eoc import eoc_parameters
from ..errors import ParameterError
from ..tables import paper_grid, stability_table
from ._common import LazyChoices, jobs_args, progress, remove_journal, write_output


def register(sub):
    """Add plot and demo to the subparsers ``sub``."""
    pl = sub.add_parser("plot", help="draw a figure by name, or all (meanfield plot --help lists them)")
    pl.add_argument("name", choices=LazyChoices(lambda: (*_figure_names(), "all")), metavar="NAME",
                    help="the figure: %(choices)s")
    pl.add_argument("-o", "--output-dir", default="out", help="directory (default out)")
    pl.add_argument("--formats", default="png,pdf", help="comma-separated: png, pdf, svg (default png,pdf)")
    jobs_args(pl)
    pl.set_defaults(handler=_cmd_plot)

    de = sub.add_parser("demo", help="the paper-grid table, phase diagrams, every figure and two "
                        "simulations into a directory")
    de.add_argument("-o", "--output-dir", default="out", help="directory (default out)")
    jobs_args(de)
    de.set_defaults(handler=_cmd_demo, interrupt_hint=lambda a: (
        f"; finished work is kept in the *.partial.jsonl journals of {a.output_dir}: rerun the same "
        "command to resume"))


def _figure_names():
    from ..plots import FIGURES
    return list(FIGURES)


def _formats(text):
    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad or not formats:
        raise ParameterError(f"--formats {text!r}: choose from png, pdf, svg")
    return formats


def _cmd_plot(a):
    from pathlib import Path

    from ..plots import FIGURES, figure, save_figure
    names = list(FIGURES) if a.name == "all" else [a.name]
    if names[0] not in FIGURES:
        raise ParameterError(f"figure {a.name!r} unknown: choose from {', '.join(FIGURES)} or all")
    formats = _formats(a.formats)
    for name in names:
        kwargs = {"jobs": a.jobs, "progress": progress(a)} if name == "phase-diagram" else {}
        try:
            paths = save_figure(figure(name, **kwargs), Path(a.output_dir) / name, formats)
        except OSError as exc:
            raise ParameterError(f"--output-dir {a.output_dir}: {exc.strerror}") from None
        print("wrote " + ", ".join(str(p) for p in paths))


#: The demo's simulations: width 300, depth 100, 10 networks each.
DEMO_SIMULATIONS = (("relu", "0.8", None), ("crelu", "0.8", "0.7"))


def _cmd_demo(a):
    """The main job: the paper-grid table in four formats, both phase diagrams, every figure,
    and a simulation of the half-stable ReLU_tau and the stable CReLU on the EoC."""
    import time
    from pathlib import Path

    import numpy as np

    from ..plots import FIGURES, figure, phase_diagram_figure, save_figure
    from ..scan import phase_diagram

    out = Path(a.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"--output-dir {out}: {exc.strerror}") from None
    show = progress(a)
    start = time.perf_counter()
    steps = 4 + len(DEMO_SIMULATIONS)
    stage(f"demo [1/{steps}]: the paper-grid stability table (39 configurations)", show)
    table = stability_table(paper_grid(), digits=6, depth=100, jobs=a.jobs, progress=show,
                            journal=out / "table.partial.jsonl")
    written = []
    for fmt, ext in (("markdown", "md"), ("csv", "csv"), ("latex", "tex"), ("json", "json")):
        write_output(out / f"table.{ext}", table.format(fmt))
        written.append(out / f"table.{ext}")
    remove_journal(out / "table.partial.jsonl")
    counts = {}
    for row in table:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    print(f"paper grid: {len(table)} configurations: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    diagrams = []
    r = np.linspace(0.05, 4.0, 100)
    for k, act in enumerate(("crelu", "cst")):  # the paper's two
        stage(f"demo [{2 + k}/{steps}]: the {act} phase diagram (100 sparsities x 100 clip ratios)", show)
        s_lo = get_activation(act).sparsity_rule.lowest
        journal = out / f"phase-diagram-{act}.partial.jsonl"
        d = phase_diagram(act, np.linspace(s_lo, 0.95, 100), r, jobs=a.jobs, progress=show,
                          journal=journal)
        write_output(out / f"phase-diagram-{act}.csv", d.to_csv())
        remove_journal(journal)
        written.append(out / f"phase-diagram-{act}.csv")
        diagrams.append(d)
    stage(f"demo [4/{steps}]: the figures ({', '.join(FIGURES)})", show)
    for name in FIGURES:
        fig = phase_diagram_figure(diagrams) if name == "phase-diagram" else figure(name)
        try:
            written += save_figure(fig, out / name, ("png", "pdf"))
        except OSError as exc:
            raise ParameterError(f"--output-dir {out}: {exc.strerror}") from None
    from ..nn.simulate import simulate
    for k, (act, s, v_prime) in enumerate(DEMO_SIMULATIONS):  # the theory's two verdicts, checked
        stage(f"demo [{5 + k}/{steps}]: simulation of {act} at s = {s} (10 networks, width 300, depth 100)", show)
        sol = eoc_parameters(act, s, v_prime=v_prime, digits=20)
        stem = f"simulate-{act}-{s}"
        journal = out / f"{stem}.partial.jsonl"
        sim = simulate(sol, width=300, depth=100, inputs=4, seeds=10, jobs=a.jobs,
                       progress=show, journal=journal)
        write_output(out / f"{stem}.json", sim.to_json())
        remove_journal(journal)
        written.append(out / f"{stem}.json")
        try:
            written += save_figure(sim.figure(), out / stem, ("png",))
        except OSError as exc:
            raise ParameterError(f"--output-dir {out}: {exc.strerror}") from None
        print(f"simulation, {act} at s = {s} on the EoC ({sim.theory.kind} q*): "
              f"{int(sim.runaway.sum())} of {len(sim.seeds)} networks run away (finite-width "
              f"model: {sim.theory.runaway_probability:.2f})")
    print(f"wrote {len(written)} files to {out}/ in {time.perf_counter() - start:.0f} s:")
    for path in written:
        print(f"  {path}")
