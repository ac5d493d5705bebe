"""Rewrite the MNIST results table in docs/mnist.md from the committed journal (the table
below the ``<!-- meanfield reproduce mnist --report-only -->`` marker), and the run count in
the section's heading. Run after `meanfield reproduce mnist` (tests/test_docs_tables.py
checks the two agree)."""

import re
from pathlib import Path

from meanfield.nn import reproduce

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- meanfield reproduce mnist --report-only -->"

results = reproduce.stored_results(ROOT / "results" / "mnist" / "runs.jsonl")
table = reproduce.table_markdown(reproduce.summary(results))
doc = ROOT / "docs" / "mnist.md"
text = doc.read_text(encoding="utf-8")
if MARKER in text:  # replace the table that follows the marker
    text = re.sub(re.escape(MARKER) + r"\n(\|[^\n]*\n)+", lambda m: MARKER + "\n" + table, text)
else:
    text = text.replace("TABLE\n", MARKER + "\n" + table)
want = len(reproduce.configs("minimum"))
heading = (f"## Results (the minimum grid: all {want} runs)" if len(results) >= want
           else f"## Results (partial: {len(results)} of the minimum grid's {want} runs)")
text = re.sub(r"## Results \([^\n]*\)", heading, text)
doc.write_text(text, encoding="utf-8")
print(f"{doc}: {len(results)} runs ({want} in the minimum grid)")
