"""Every example on the documentation site is what the code prints (docs never drift).

Two kinds of block are checked, page by page, in docs/**/*.md:

- ```console blocks: ``$ meanfield ...`` followed by its exact output, run through
  :func:`meanfield.cli.main`;
- ```pycon blocks: doctests, run in order with one namespace per page (a page reads as
  one session), with ELLIPSIS and NORMALIZE_WHITESPACE.

The values are checked independently elsewhere (closed forms against quadrature and
simulation); these tests keep the pages in step with the code. README.md's console
examples are checked in test_readme.py.
"""

import contextlib
import doctest
import io
import re
import shlex
from pathlib import Path

import pytest

from meanfield.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "scripts" not in p.parts)


def blocks(page: Path, kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)


def console_examples(page: Path):
    for block in blocks(page, "console"):
        command, _, expected = block.partition("\n")
        assert command.startswith("$ meanfield "), f"{page.name}: {command!r}"
        yield shlex.split(command)[2:], expected


CONSOLE = [(p, argv, out) for p in PAGES for argv, out in console_examples(p)]
PYCON = [p for p in PAGES if blocks(p, "pycon")]


def test_the_pages_have_examples():
    assert len(CONSOLE) >= 5 and len(PYCON) >= 3


@pytest.mark.parametrize(("page", "argv", "expected"), CONSOLE,
                         ids=[f"{p.relative_to(DOCS)}:{' '.join(a[:3])}" for p, a, _ in CONSOLE])
def test_console_example(page, argv, expected):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    assert out.getvalue() == expected


@pytest.mark.parametrize("page", PYCON, ids=[str(p.relative_to(DOCS)) for p in PYCON])
def test_python_examples(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    parser = doctest.DocTestParser()
    text = "\n\n".join(blocks(page, "pycon"))
    test = parser.get_doctest(text, {}, page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = io.StringIO()
    runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()
    assert runner.tries > 0
