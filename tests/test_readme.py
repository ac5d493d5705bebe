"""The README's console example is what the code prints (docs never drift).

The values themselves are checked independently elsewhere (three fixed points of CST at
s = 0.8, V' = 0.9 against quadrature in test_fixed_points / test_eoc); this test only keeps
the README in step with the command line.
"""

import contextlib
import io
import re
import shlex
from pathlib import Path

from meanfield.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def console_examples():
    text = README.read_text(encoding="utf-8")
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        command, _, expected = block.partition("\n")
        assert command.startswith("$ .venv/bin/meanfield ")
        yield shlex.split(command)[2:], expected


def test_readme_console_examples_match():
    examples = list(console_examples())
    assert examples, "the README has no console example"
    for argv, expected in examples:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(argv) == 0
        assert out.getvalue() == expected, argv
