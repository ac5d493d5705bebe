"""What the commands share: the one-line-error parser, the arguments several commands take
(the initialisation, --digits, --jobs), decimal output and the resumable output files.

Numbers are read as decimal strings (nothing is lost to float parsing) and written as
decimal strings of the requested significant digits.
"""

from __future__ import annotations

import argparse
import json
import re

import mpmath

from ..activations import BUILTIN, get_activation
from ..eoc import eoc_parameters
from .._files import write_figure
from ..errors import ParameterError
from ..fixed_points import fixed_points
from ..maps import DEFAULT_DIGITS, Initialisation
from ..validation import MAX_DIGITS, MIN_DIGITS


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, then printed by :func:`main`)."""

    def error(self, message):
        raise UsageError(message)


class LazyChoices:
    """An option's choices, computed when first needed (the option is given, or help or an
    error is shown): listing them may import what a command that does not use them should
    not (sympy, matplotlib). Give the argument a ``metavar``: argparse lists the choices of
    one without a metavar as soon as it is added."""

    def __init__(self, compute):
        self._compute = compute
        self._values = None

    def _get(self):
        if self._values is None:
            self._values = tuple(self._compute())
        return self._values

    def __contains__(self, value):
        return value in self._get()

    def __iter__(self):
        return iter(self._get())

    def __len__(self):
        return len(self._get())


def jobs_args(parser):
    parser.add_argument("--jobs", type=int, default=1,
                        help="parallel workers (joblib; -1: all cores; default 1); never more than the tasks, nor 2 per core")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def digits_arg(parser, default: int = DEFAULT_DIGITS, maximum: int = MAX_DIGITS):
    """--digits: in every command, the significant digits written, each of them correct. The
    computation carries more: at least MIN_DIGITS, plus the guard digits of the solvers."""
    def count(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not 1 <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be an integer from 1 to {maximum}")
        return value
    parser.add_argument("--digits", type=count, default=default, metavar="D",
                        help=f"significant digits written, 1 to {maximum} (default {default}); the "
                        f"computation carries more")


def working_digits(a) -> int:
    """The digits to compute at for --digits: never fewer than the solvers' minimum."""
    return max(a.digits, MIN_DIGITS)


def emit(data: dict, lines: list[str], as_json: bool):
    print(json.dumps(data, indent=2) if as_json else "\n".join(lines))


CONFIG_HELP = """The initialisation: with --sparsity, the EoC initialisation of Price et al.
(as `meanfield eoc`); with --sigma-w2 and --sigma-b2, that initialisation (q* its only
stable fixed point unless --q-star is given); otherwise the EoC initialisation with the
given --tau / --clip / --alpha at --q-star."""


def config_args(c):
    """The initialisation of correlation, diagnose and simulate (see CONFIG_HELP)."""
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


def activation_params(a, act) -> dict:
    """The activation parameters given by --tau, --clip, --alpha (an error for one that
    does not apply to ``act``)."""
    given = {"tau": a.tau, "m": a.clip, "alpha": a.alpha}
    names = {p.name for p in act.parameters}
    flags = {"tau": "--tau", "m": "--clip", "alpha": "--alpha"}
    for k, v in given.items():
        if v is not None and k not in names:
            raise ParameterError(f"{flags[k]} does not apply to {act.name}")
    return {k: v for k, v in given.items() if v is not None}


def init_from(a) -> Initialisation:
    act = get_activation(a.activation)
    return Initialisation(act, a.sigma_w2, a.sigma_b2, activation_params(a, act))


def configuration(a):
    """(Initialisation or EoCSolution, q*) from the shared arguments of correlation/diagnose."""
    act = get_activation(a.activation)
    if a.sparsity is not None:
        for flag, v in (("--tau", a.tau), ("--alpha", a.alpha), ("--sigma-w2", a.sigma_w2),
                        ("--sigma-b2", a.sigma_b2)):
            if v is not None:
                raise ParameterError(f"{flag} does not go with --sparsity (the EoC sets it)")
        sol = eoc_parameters(act.name, a.sparsity, q_star="1" if a.q_star is None else a.q_star, clip=a.clip,
                             v_prime=a.v_prime, digits=working_digits(a))
        return sol, None
    if a.v_prime is not None:
        raise ParameterError("--v-prime goes with --sparsity")
    if (a.sigma_w2 is None) != (a.sigma_b2 is None):
        raise ParameterError("give both --sigma-w2 and --sigma-b2, or neither (EoC)")
    if a.sigma_w2 is not None:
        return init_from(a), a.q_star
    sol = eoc_parameters(act.name, q_star="1" if a.q_star is None else a.q_star, digits=working_digits(a), **activation_params(a, act))
    return sol, None


def stable_q_star(config):
    """q* for an explicit initialisation without --q-star: its only attracting fixed point."""
    report = fixed_points(config)
    attracting = [p for p in report.points if p.kind != "unstable"]
    if len(attracting) != 1:
        where = ", ".join(mpmath.nstr(p.q, 8) for p in report.points) or "none"
        raise ParameterError(f"give --q-star: V has {len(attracting)} attracting fixed points "
                             f"(fixed points: {where})")
    return attracting[0].q


def write_output(path, text):
    from .._files import atomic_write, check_writable
    check_writable(path, what=f"--output {path}")
    atomic_write(path, text, what=f"--output {path}", hint="choose another file")


def journal_for(output):
    """The journal beside ``output``, once the output can be written (checked before any
    work, so that a long job does not end on an unwritable path)."""
    if output is None:
        return None
    from .._files import check_writable
    check_writable(output, what=f"--output {output}")
    return f"{output}.partial.jsonl"


#: The formats a --figure file may have (its extension).
FIGURE_FORMATS = (".png", ".pdf", ".svg")


def check_figure(path, flag: str = "--figure"):
    """A --figure file: a known format and a writable place, checked before any work."""
    if path is None:
        return None
    if not str(path).lower().endswith(FIGURE_FORMATS):
        raise ParameterError(f"{flag} {path}: the file name must end in .png, .pdf or .svg")
    from .._files import check_writable
    check_writable(path, what=f"{flag} {path}")
    return path


def save_figure_file(fig, path, flag: str = "--figure"):
    """Save ``fig`` to ``path`` atomically; a failure is one line naming the flag and the file."""
    write_figure(fig, path, what=f"{flag} {path}")


def remove_journal(journal):
    if journal is not None:
        import os
        try:
            os.remove(journal)
        except FileNotFoundError:
            pass


def progress(a):
    """The progress argument of the library's long jobs: off with --no-progress, else automatic."""
    return False if a.no_progress else None


def journal_hint(a) -> str:
    """What an interrupted sweep with -o kept (added to the 'interrupted' message)."""
    if getattr(a, "output", None) is None:
        return ""
    return (f"; finished work is kept in {a.output}.partial.jsonl: rerun the same command to resume")


#: The library's name of a parameter where the command line calls it otherwise.
LIBRARY_NAMES = {"m": "clip", "learning_rate": "lr", "sparsities": "sparsity", "clip_ratios": "clip_ratio"}


def in_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """``message`` with the library's parameter names replaced by this command's flags
    (``sparsity = 1.5 ...`` -> ``--sparsity = 1.5 ...``, ``needs m in (0, inf)`` ->
    ``needs --clip in (0, inf)``): a name is replaced where it stands for the parameter
    (followed by ``=``, ``must``, ``in`` and an interval, or ``(``) and only if the
    command has that flag."""
    flags = {a.dest: max(a.option_strings, key=len) for a in parser._actions if a.option_strings}
    flags.update({name: flags[dest] for name, dest in LIBRARY_NAMES.items() if dest in flags})
    names = sorted((n for n in flags if n != "help"), key=len, reverse=True)
    if not names:
        return message
    pattern = r"(?<![\w'-])(" + "|".join(map(re.escape, names)) + r")(?= = | must | in [\[(]| \()"
    return re.sub(pattern, lambda m: flags[m.group(1)], message)
