"""Every result table printed in README.md and docs/*.md is what the code produces.

A result table (a markdown table whose header starts with ``| activation |``) must be
preceded by an HTML comment ``<!-- meanfield table ARGS -->``; the test runs
``meanfield table ARGS --no-progress`` and compares its output with the table, line by line.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from meanfield.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- meanfield ((?:table|reproduce mnist --report-only)[^>]*?) -->")
JOURNAL = ROOT / "results" / "mnist" / "runs.jsonl"
# every committed reproduction: the protocol's and those of other protocols (a budget study);
# a study whose first run is still training has a journal of one line and no table yet
JOURNALS = sorted(j for j in (ROOT / "results").glob("*/runs.jsonl")
                  if len(j.read_text(encoding="utf-8").splitlines()) > 1)


def _tables(path: Path):
    """(marker arguments or None, table text, line number) for every result table."""
    lines = path.read_text(encoding="utf-8").split("\n")
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("| activation |"):
            start = i
            while i < len(lines) and lines[i].startswith("|"):
                i += 1
            prev = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
            m = MARKER.fullmatch(prev.strip())
            out.append((m.group(1) if m else None, "\n".join(lines[start:i]) + "\n", start + 1))
        i += 1
    return out


CASES = [(p, args, table, line) for p in DOCUMENTS for args, table, line in _tables(p)]


def test_the_documents_hold_result_tables():
    assert any(p.name == "tables.md" for p, *_ in CASES)
    assert any(p.name == "README.md" for p, *_ in CASES)


@pytest.mark.parametrize("path, args, table, line", CASES,
                         ids=[f"{p.name}:{line}" for p, _, _, line in CASES])
def test_table_is_what_the_code_prints(path, args, table, line, capsys):
    assert args is not None, f"{path.name}:{line}: a result table without a <!-- meanfield table ... --> marker"
    if args.startswith("reproduce"):  # the MNIST results: the table of the committed journal
        words = shlex.split(args)
        out = words[words.index("-o") + 1] if "-o" in words else "results/mnist"
        printed = _reproduction_table(ROOT / out / "runs.jsonl")
    else:
        assert main(shlex.split(args) + ["--no-progress"]) == 0
        printed = capsys.readouterr().out
    assert printed == table, f"{path.name}:{line} differs from `meanfield {args}`"


def _reproduction_table(journal: Path = JOURNAL) -> str:
    from meanfield.nn import reproduce
    return reproduce.table_markdown(reproduce.summary(reproduce.stored_results(journal)))


def test_the_protocols_results_are_committed():
    assert JOURNAL in JOURNALS


@pytest.mark.parametrize("journal", JOURNALS, ids=[j.parent.name for j in JOURNALS])
def test_committed_results_table_is_that_of_the_journal(journal):
    """results/*/table.md is what `meanfield reproduce mnist --report-only` writes from
    the committed journal (so the table never drifts from the runs behind it)."""
    assert (journal.parent / "table.md").read_text(encoding="utf-8") == _reproduction_table(journal)


@pytest.mark.parametrize("journal", JOURNALS, ids=[j.parent.name for j in JOURNALS])
def test_committed_csv_files_are_those_of_the_journal(journal):
    from meanfield.nn import reproduce
    results = reproduce.stored_results(journal)
    assert (journal.parent / "table.csv").read_text(encoding="utf-8") == \
        reproduce.table_csv(reproduce.summary(results))
    assert (journal.parent / "accuracy-by-epoch.csv").read_text(encoding="utf-8") == \
        reproduce.learning_curves_csv(reproduce.learning_curves(results))


def test_the_documented_rank_correlation_is_that_of_the_journal():
    """docs/mnist.md's rho of the theory's verdicts against the 10-epoch grid's accuracy is
    what the code computes from the committed journal."""
    from meanfield.nn import reproduce
    text = (ROOT / "docs" / "mnist.md").read_text(encoding="utf-8")
    found = re.search(r"\*\*rho = ([0-9.]+) \(p = ([0-9.e-]+)\)\*\*", text)
    assert found, "docs/mnist.md: the 10-epoch grid's rank correlation is missing"
    rho, p, n = reproduce.prediction_correlation(reproduce.stored_results(JOURNAL))
    assert (found.group(1), float(found.group(2)), n) == (f"{rho:.3f}", float(f"{p:.2g}"), 17)
