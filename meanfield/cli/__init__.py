"""The ``meanfield`` command line: EoC parameters, fixed points, maps, correlation maps,
diagnostics, formulas, stability tables, phase diagrams, figures, simulation and training.

Numbers are read as decimal strings (so nothing is lost to float parsing) and written as
decimal strings carrying the requested digits; ``--json`` gives machine-readable output.
Bad arguments give one line on stderr and exit status 2, never a traceback.

Each command lives in one module of this package, which adds its parser and handler in
``register``: :mod:`.theory` (eoc, fixed-points, map, correlation, diagnose, formula),
:mod:`.sweeps` (table, phase-diagram), :mod:`.figures` (plot, demo) and :mod:`.networks`
(simulate, data, train, reproduce).

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
import sys

from .. import __version__
from ..errors import ParameterError
from . import figures, networks, sweeps, theory, verification
from ._common import Parser, UsageError, in_flags

__all__ = ["main", "build_parser"]

#: What ``meanfield --help`` says above the commands, and below them.
DESCRIPTION = ("The mean-field theory of deep networks with sparsity-inducing activations "
               "(Price et al., ICLR 2024): edge-of-chaos parameters, fixed points, maps, correlation "
               "maps, diagnostics, formulas, stability tables, phase diagrams, figures, simulation "
               "and training.")
EPILOG = ("Numbers are read and written as decimal strings; --json gives machine-readable output. "
          "Bad arguments give one line on stderr and exit status 2. "
          "'meanfield COMMAND --help' describes a command.")

#: The modules of the commands, in the order of ``meanfield --help``.
COMMAND_GROUPS = (theory, sweeps, figures, networks, verification)


def build_parser() -> Parser:
    """The parser of every command; each sets ``handler`` (and may set ``interrupt_hint``)."""
    p = Parser(prog="meanfield", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"meanfield {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return p


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad arguments, 130 interrupted)."""
    parser, args = build_parser(), None
    try:
        args = parser.parse_args(argv)
        _refuse_empty(_command_parser(parser, args.command), args)
        from .. import _derivations
        _derivations.install()  # closed forms derived once per version, then read from disk
        args.handler(args)
    except (UsageError, ParameterError) as exc:
        message = " ".join(str(exc).split())  # one line
        if args is not None:  # the library's names for the flags of this command
            message = in_flags(message, _command_parser(parser, args.command))
        print(f"meanfield: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the command's own checks did not foresee: still one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"meanfield: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except KeyboardInterrupt:
        hint = getattr(args, "interrupt_hint", None)
        print("meanfield: interrupted" + (hint(args) if hint else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `meanfield correlation ... | head`: the reader left
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


def _refuse_empty(command: Parser, args) -> None:
    """An empty value (``--q-star ''``, ``-o ''``) is an error, not the flag's default."""
    for action in command._actions:
        if action.option_strings and getattr(args, action.dest, None) == "":
            raise UsageError(f"{max(action.option_strings, key=len)} is empty: give a value or leave the flag out")


def _command_parser(parser: Parser, command: str) -> Parser:
    """The subparser of ``command``."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
