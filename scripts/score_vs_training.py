"""The trainability score of ``meanfield.diagnose`` against measured MNIST accuracy.

For each configuration of a results journal (``results/mnist/runs.jsonl`` by default:
depth 100, 10 epochs, the calibration set of the score; ``results/mnist-depth30/runs.jsonl``,
the held-out set), the diagnosis at the run's depth and width, its score, and the mean test
accuracy over its seeds, a run that blew up counting as chance (0.1:
``meanfield.nn.reproduce.mean_accuracy``, the rule of the verdicts' rank correlation);
then Spearman's rank correlation of score and accuracy, over all configurations and within
the trainable verdict. Each run's accuracy is that of its last epoch, or with ``--judged``
that of its best validation epoch, the epoch the studies judge a run by.

Run: ``python scripts/score_vs_training.py [--judged] [runs.jsonl ...]``; writes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scipy.stats import spearmanr

import meanfield as mf
from meanfield.nn import reproduce

ROOT = Path(__file__).resolve().parents[1]


def scored(journal: Path, judged: bool = False) -> list[tuple]:
    """(activation, sparsity, V' or '-', verdict, score, mean accuracy) per configuration."""
    out = []
    for config, accuracy in reproduce.mean_accuracy(reproduce.stored_results(journal), judged=judged).values():
        v_prime = None if config.v_prime is None else repr(config.v_prime)
        sol = mf.eoc_parameters(config.activation, sparsity=repr(config.sparsity), v_prime=v_prime, digits=15)
        d = mf.diagnose(sol, depth=config.depth, width=config.width, digits=15)
        out.append((config.activation, repr(config.sparsity), v_prime or "-", d.verdict, d.score, accuracy))
    return out


def spearman(rows) -> tuple[float, float]:
    """Spearman's rho of score and accuracy over all rows, and within the trainable verdict."""
    rho = spearmanr([r[4] for r in rows], [r[5] for r in rows]).statistic
    inside = [r for r in rows if r[3] == "trainable"]
    within = spearmanr([r[4] for r in inside], [r[5] for r in inside]).statistic if len(inside) > 2 else float("nan")
    return float(rho), float(within)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("journals", nargs="*", type=Path, default=[ROOT / "results" / "mnist" / "runs.jsonl"])
    parser.add_argument("--judged", action="store_true", help="each run at its best validation epoch")
    args = parser.parse_args(argv)
    for journal in args.journals:
        rows = scored(journal, args.judged)
        epoch = "best validation epoch" if args.judged else "last epoch"
        print(f"{journal}: {len(rows)} configurations, each run's accuracy at its {epoch}")
        print(f"  {'activation':>10} {'s':>5} {'V_prime':>7} {'verdict':>12} {'score':>6} {'accuracy':>8}")
        for a, s, v, verdict, score, acc in sorted(rows, key=lambda r: r[4]):
            print(f"  {a:>10} {s:>5} {v:>7} {verdict:>12} {score:6.3f} {acc:8.4f}")
        rho, within = spearman(rows)
        inside = sum(r[3] == "trainable" for r in rows)
        print(f"  Spearman(score, accuracy) = {rho:.3f} over all; {within:.3f} within 'trainable' ({inside})")


if __name__ == "__main__":
    main()
