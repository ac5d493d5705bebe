"""Rewrite the MNIST results tables in docs/mnist.md from the committed journals (the table
below each ``<!-- meanfield reproduce mnist --report-only [-o DIR] -->`` marker, DIR
defaulting to results/mnist), and the run count in the heading of the protocol's results.
Run after `meanfield reproduce mnist` (tests/test_docs_tables.py checks they agree)."""

import re
from pathlib import Path

from meanfield.nn import reproduce

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"(<!-- meanfield reproduce mnist --report-only(?: -o (\S+))? -->)\n(\|[^\n]*\n)+")


def _table(directory: str) -> str:
    return reproduce.table_markdown(reproduce.summary(reproduce.stored_results(ROOT / directory / "runs.jsonl")))


doc = ROOT / "docs" / "mnist.md"
text = MARKER.sub(lambda m: m.group(1) + "\n" + _table(m.group(2) or "results/mnist"), doc.read_text(encoding="utf-8"))
results = reproduce.stored_results(ROOT / "results" / "mnist" / "runs.jsonl")
want = len(reproduce.configs("minimum"))
heading = (f"## Results (the minimum grid: all {want} runs)" if len(results) >= want
           else f"## Results (partial: {len(results)} of the minimum grid's {want} runs)")
text = re.sub(r"## Results \([^\n]*\)", heading, text)
doc.write_text(text, encoding="utf-8")
print(f"{doc}: {len(results)} runs ({want} in the minimum grid)")
