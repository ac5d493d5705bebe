"""Benchmark of the sweeps (issue 4); every figure is measured in this one run.

1. A 100 x 100 phase diagram over (s, m/sqrt(q*)) for one activation with ``jobs=2``
   (cold workers included, as a user sees it): wall time and per-point cost. Target: < 60 s.
2. The same diagram with ``jobs=1``: the parallel speed-up.
3. The float64 fast path against the mpmath path (``phase_point``: ``diagnose`` at 20
   digits) on a sample of the same points: per-point cost and the ratio.
4. The paper-grid stability table (39 rows, ``diagnose`` per row) with ``jobs=2``.

Run: ``python benchmarks/bench_sweeps.py [activation]`` (default cst).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from meanfield.scan import phase_diagram, phase_point
from meanfield.tables import paper_grid, stability_table


def main(activation: str = "cst") -> None:
    s_lo = 0.5 if activation == "crelu" else 0.0
    s = np.linspace(s_lo, 0.95, 100)
    r = np.linspace(0.05, 4.0, 100)
    n = s.size * r.size

    t0 = time.perf_counter()
    d2 = phase_diagram(activation, s, r, jobs=2, progress=False)
    t2 = time.perf_counter() - t0
    t0 = time.perf_counter()
    d1 = phase_diagram(activation, s, r, jobs=1, progress=False)
    t1 = time.perf_counter() - t0
    same = bool(np.array_equal(d1.verdict, d2.verdict))

    rng = np.random.default_rng(0)
    sample = [(float(s[i]), float(r[j])) for i, j in zip(rng.integers(0, 100, 20), rng.integers(0, 100, 20))]
    phase_point(activation, *sample[0])  # compile outside the timing
    t0 = time.perf_counter()
    agree = sum(phase_point(activation, si, ri)["verdict"] == d1.verdict[list(s).index(si), list(r).index(ri)]
                for si, ri in sample)
    t_mp = (time.perf_counter() - t0) / len(sample)

    t0 = time.perf_counter()
    table = stability_table(paper_grid(), digits=6, jobs=2, progress=False)
    t_table = time.perf_counter() - t0

    print(f"phase diagram {activation}, 100 x 100 = {n} points")
    print(f"  jobs=2: {t2:6.2f} s  ({t2 / n * 1e3:.2f} ms per point)   target < 60 s: "
          f"{'met' if t2 < 60 else 'NOT met'}")
    print(f"  jobs=1: {t1:6.2f} s  ({t1 / n * 1e3:.2f} ms per point)   speed-up with 2 jobs: {t1 / t2:.2f}x; "
          f"same verdicts: {same}")
    print(f"  points decided by mpmath (float64 undecided): {int(d1.refined.sum())}; "
          f"verdicts: {d1.counts()}")
    print(f"mpmath path (phase_point, diagnose at 20 digits): {t_mp * 1e3:.0f} ms per point; "
          f"fast path (jobs=1) is {t_mp / (t1 / n):.0f}x cheaper; same verdict on {agree}/{len(sample)} sampled points")
    print(f"paper-grid stability table ({len(table)} rows, diagnose per row, jobs=2): {t_table:.1f} s "
          f"({t_table / len(table) * 1e3:.0f} ms per row)")


if __name__ == "__main__":
    main(*sys.argv[1:])
