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


STUDY_JOURNALS = [j for j in JOURNALS if (j.parent / "study.md").exists()]


@pytest.mark.parametrize("journal", STUDY_JOURNALS, ids=[j.parent.name for j in STUDY_JOURNALS])
def test_committed_study_files_are_those_of_the_journal(journal):
    """results/*/study.md and study.csv (when to stop, the accuracy at the best validation
    epoch, the gap to ReLU, machine time, rank correlation) are what the code writes from
    the committed journal."""
    from meanfield.nn import reproduce
    results = reproduce.stored_results(journal)
    study = reproduce.study_summary(results)
    assert (journal.parent / "study.md").read_text(encoding="utf-8") == \
        reproduce.study_markdown(study) + "\n" + reproduce.study_note(results)
    assert (journal.parent / "study.csv").read_text(encoding="utf-8") == reproduce.study_csv(study)


def test_the_documented_rank_correlation_is_that_of_the_journal():
    """docs/mnist.md's rho of the theory's verdicts against the 10-epoch grid's accuracy is
    what the code computes from the committed journal."""
    from meanfield.nn import reproduce
    text = (ROOT / "docs" / "mnist.md").read_text(encoding="utf-8")
    found = re.search(r"\*\*rho = ([0-9.]+) \(p = ([0-9.e-]+)\)\*\*", text)
    assert found, "docs/mnist.md: the 10-epoch grid's rank correlation is missing"
    rho, p, n = reproduce.prediction_correlation(reproduce.stored_results(JOURNAL))
    assert (found.group(1), float(found.group(2)), n) == (f"{rho:.3f}", float(f"{p:.2g}"), 17)


# -- the studies' tables in docs/mnist.md, typed from their journals ------------------------
STUDY_MARKER = re.compile(r"<!-- study (results/[\w-]+)(?: seeds (\d+)-(\d+))? -->")
LABEL = re.compile(r"(ReLU_tau|ST_tau|CReLU|CST|ReLU)(?: \(s = ([\d.]+)\))?(?:, s = ([\d.]+))?"
                   r"(?:, V'(?:\(q\*\))? = ([\d.]+))?")
ACTIVATION = {"ReLU": "relu", "ReLU_tau": "relu", "ST_tau": "st", "CReLU": "crelu", "CST": "cst"}


def _study_tables():
    """(journal, seeds or None, header, rows, line) for every table of docs/mnist.md under a
    ``<!-- study results/NAME [seeds A-B] -->`` marker; rows as lists of cells."""
    lines = (ROOT / "docs" / "mnist.md").read_text(encoding="utf-8").split("\n")
    out = []
    for i, line in enumerate(lines):
        m = STUDY_MARKER.fullmatch(line.strip())
        if not m:
            continue
        start = next(k for k in range(i + 1, len(lines)) if lines[k].strip())
        end = next((k for k in range(start, len(lines)) if not lines[k].startswith("|")), len(lines))
        rows = [[c.strip() for c in row.strip().strip("|").split("|")] for row in lines[start:end]]
        seeds = range(int(m.group(2)), int(m.group(3)) + 1) if m.group(2) else None
        out.append((ROOT / m.group(1) / "runs.jsonl", seeds, rows[0], rows[2:], start + 1))
    return out


STUDY_TABLES = _study_tables()


def _configuration(label: str):
    m = LABEL.match(label)
    assert m, f"not a configuration: {label!r}"
    name, base_s, s, v = m.groups()
    sparsity = 0.5 if name == "ReLU" else float(s or base_s)
    return ACTIVATION[name], sparsity, None if v is None else float(v)


def test_docs_mnist_marks_its_study_tables():
    """The per-run and summary tables of the studies are all under a marker, so that the
    test below reads every one of them."""
    text = (ROOT / "docs" / "mnist.md").read_text(encoding="utf-8")
    headers = [line for line in text.split("\n")
               if line.startswith("| configuration |") and ("stopped at epoch" in line or "gap to ReLU" in line)]
    assert len(headers) == len(STUDY_TABLES) >= 4


@pytest.mark.parametrize("journal, seeds, header, rows, line", STUDY_TABLES,
                         ids=[f"mnist.md:{t[-1]}" for t in STUDY_TABLES])
def test_the_studies_tables_in_docs_mnist_are_those_of_their_journals(journal, seeds, header, rows, line):
    """Each row of a study's table in docs/mnist.md, typed by hand, is what its committed
    journal says: a run's stopping epoch, its test accuracy at its best validation epoch
    and the first epoch its test accuracy reached 0.90; a configuration's mean +- standard
    deviation over the seeds the marker names, its gap to ReLU in points with Welch's 95%
    interval, and the median epoch to 0.90."""
    from meanfield.nn import reproduce
    from meanfield.nn.train import selected_epoch
    results = [r for r in reproduce.stored_results(journal) if seeds is None or r.config.seed in seeds]
    col = {name: k for k, name in enumerate(header)}
    label = None
    if "stopped at epoch" in col:  # one row per run
        for cells in rows:
            label = cells[col["configuration"]] or label
            act, s, v = _configuration(label)
            seed = int(cells[col["seed"]]) if "seed" in col else 0
            [run] = [r for r in results if (r.config.activation, r.config.sparsity, r.config.v_prime, r.config.seed)
                     == (act, s, v, seed)]
            where = f"mnist.md:{line}: {label}, seed {seed}"
            assert int(cells[col["stopped at epoch"]]) == len(run.epochs), where
            assert cells[col["test accuracy at best validation"]].split()[0] == \
                f"{selected_epoch(run)['test_accuracy']:.4f}", where
            first = next((e["epoch"] for e in run.epochs if e["test_accuracy"] >= 0.90), None)
            reached = cells[col["reaches 0.90 at epoch"]].split()[0]
            assert (None if reached == "never" else int(reached)) == first, where
        return
    summary = {(r["activation"], r["sparsity"], r["v_prime"]): r for r in reproduce.study_summary(results)}
    for cells in rows:
        row = summary[_configuration(cells[col["configuration"]])]
        where = f"mnist.md:{line}: {cells[col['configuration']]}"
        assert row["seeds"] == len(seeds), where
        assert cells[col["accuracy"]] == f"{row['selected_mean']:.4f} +- {row['selected_std']:.4f}", where
        gap = [float(g) for g in re.findall(r"[-+]?\d+\.\d+", cells[col["gap to ReLU, 95% interval (Welch)"]])]
        expected = [] if row["gap"] is None else [100 * row[k] for k in ("gap", "gap_low", "gap_high")]
        assert len(gap) == len(expected), where
        for typed, exact in zip(gap, expected):  # rounded to 0.1 point (an exact half either way)
            assert abs(typed - exact) <= 0.05 + 1e-9, f"{where}: {typed} for {exact:.4f} points"
        median = cells[col["median epoch to reach 0.90"]].split()[0]
        assert (None if median == "never" else float(median)) == row["epoch_90"], where


def test_the_documented_spearman_of_the_score_is_that_of_the_journals(load_script):
    """docs/theory.md's rank correlations of the trainability score with the measured
    accuracy, on the depth-100 grid it was chosen on and on the depth-30 grid held out
    (last epoch, and best validation epoch), are what scripts/score_vs_training.py computes
    from the committed journals."""
    module = load_script("scripts/score_vs_training.py")
    text = re.sub(r"\s+", " ", (ROOT / "docs" / "theory.md").read_text(encoding="utf-8"))
    calibration = re.search(r"Spearman's rank correlation of score and accuracy there is \*\*([0-9.]+)\*\*", text)
    last = re.search(r"ranks them with Spearman \*\*([0-9.]+)\*\* against the mean last-epoch accuracy", text)
    judged = re.search(r"\*\*([0-9.]+)\*\* against each run's accuracy at its best validation epoch", text)
    assert calibration and last and judged, "docs/theory.md: a rank correlation of the score is missing"
    depth30 = ROOT / "results" / "mnist-depth30" / "runs.jsonl"
    assert calibration.group(1) == f"{module.spearman(module.scored(ROOT / 'results' / 'mnist' / 'runs.jsonl'))[0]:.3f}"
    assert last.group(1) == f"{module.spearman(module.scored(depth30))[0]:.3f}"
    assert judged.group(1) == f"{module.spearman(module.scored(depth30, judged=True))[0]:.3f}"
