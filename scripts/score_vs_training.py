"""The trainability score of ``meanfield.diagnose`` against measured MNIST accuracy.

For each configuration of a results table (``results/mnist/table.csv`` by default: depth
100, the calibration set of the score; ``results/mnist-depth30/table.csv`` or ``study.csv``,
the held-out set), the diagnosis at the table's depth and width, its score, and the mean
test accuracy with blown-up seeds counted as chance (0.1); then Spearman's rank correlation
of score and accuracy, over all configurations and within the trainable verdict. A
``table.csv`` gives each run's last epoch; a study's ``study.csv`` gives each run at its
best validation epoch, the epoch the studies judge a run by.

Run: ``python scripts/score_vs_training.py [TABLE.csv ...]``; writes nothing.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from scipy.stats import spearmanr

import meanfield as mf

ROOT = Path(__file__).resolve().parents[1]


def measured(row) -> float:
    """Mean test accuracy over a configuration's seeds, a seed without one at chance (0.1)."""
    if "selected_mean" in row:  # a study.csv: every run with an epoch, at its best validation epoch
        counted, mean = int(row["measured"]), row["selected_mean"]
    else:  # a table.csv: the runs that learnt, at their last epoch
        counted, mean = int(row["learnt"]), row["accuracy_mean"]
    seeds = int(row["seeds"])
    return ((float(mean) * counted if mean else 0.0) + 0.1 * (seeds - counted)) / seeds


def scored(table: Path) -> list[tuple]:
    out = []
    for row in csv.DictReader(table.open(encoding="utf-8")):
        sol = mf.eoc_parameters(row["activation"], sparsity=row["sparsity"], v_prime=row["v_prime"] or None,
                                digits=15)
        d = mf.diagnose(sol, depth=int(row["depth"]), width=int(row["width"]), digits=15)
        out.append((row["activation"], row["sparsity"], row["v_prime"] or "-", d.verdict, d.score, measured(row)))
    return out


def main(paths) -> None:
    for table in paths or [ROOT / "results" / "mnist" / "table.csv"]:
        rows = scored(Path(table))
        print(f"{table}: {len(rows)} configurations")
        print(f"  {'activation':>10} {'s':>5} {'V_prime':>7} {'verdict':>12} {'score':>6} {'accuracy':>8}")
        for a, s, v, verdict, score, acc in sorted(rows, key=lambda r: r[4]):
            print(f"  {a:>10} {s:>5} {v:>7} {verdict:>12} {score:6.3f} {acc:8.4f}")
        rho = spearmanr([r[4] for r in rows], [r[5] for r in rows]).statistic
        inside = [r for r in rows if r[3] == "trainable"]
        within = spearmanr([r[4] for r in inside], [r[5] for r in inside]).statistic if len(inside) > 2 else float("nan")
        print(f"  Spearman(score, accuracy) = {rho:.3f} over all; {within:.3f} within 'trainable' ({len(inside)})")


if __name__ == "__main__":
    main(sys.argv[1:])
