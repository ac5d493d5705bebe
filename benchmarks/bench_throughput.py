"""Training steps per second on the whole machine: one run on every core, or one run per
core at the same time.

A study of many runs (``scripts/mnist_studies.py``) cares about the machine's throughput,
not one run's speed. With C cores it can train one run at a time on C threads (the
default: ``NUMBA_NUM_THREADS`` is every core), or C runs at once on one thread each
(``NUMBA_NUM_THREADS=1``, one driver per study). The second avoids the hand-offs between
threads inside every pass, but the runs share the memory bandwidth and the L3 cache.

For each depth this times, in fresh processes, the protocol's sparse Adam step (CST,
s = 0.85, V'(q*) = 0.7, width 300, batch 128, float32, real MNIST if cached: the step
of ``meanfield train``) over ``--steps`` steps after 10 untimed ones:

- ``one run``: one process on every core; its steps per second;
- ``C runs``: C processes on one core each, started together; the sum of their steps per
  second;

and their ratio: above 1, running the study's runs side by side on one core each finishes
more runs per hour. The two layouts take turns ``--rounds`` times (the machine is shared
and noisy); the medians are printed. No physical bound is printed: both layouts do the
same work, and the per-phase bounds are ``bench_epoch.py``'s.

Run: ``python benchmarks/bench_throughput.py [--depths 30,100] [--steps 150] [--rounds 3]``
(about a minute per depth and round).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def worker(depth: int, steps: int) -> None:
    """Time ``steps`` sparse Adam steps at ``depth``; print {"ms": per step} as JSON."""
    sys.path.insert(0, str(HERE))
    import bench_epoch as B
    from meanfield.nn import MLP
    from meanfield.nn import train as T
    cfg = B.protocol(depth)
    x, y, *_ = B.data(cfg)
    net = MLP.initialise(T.initialisation(cfg), width=cfg.width, depth=depth, input_dim=784, seed=0)
    order = np.random.default_rng(0).permutation(len(x))
    step = B.ours(net, "numba", cfg)  # the step of meanfield train
    for i in range(10 + steps):
        if i == 10:
            t0 = time.perf_counter()
        idx = order[i * B.BATCH:(i + 1) * B.BATCH]
        step(x[idx], y[idx])
    print(json.dumps({"ms": (time.perf_counter() - t0) / steps * 1e3}), flush=True)


def timed(depth: int, steps: int, processes: int, threads: int) -> list[float]:
    """Per-step ms of ``processes`` workers started together, ``threads`` each."""
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", str(depth), "--steps", str(steps)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    out = []
    for p in procs:
        text, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed (exit {p.returncode}): {' '.join(cmd)}")
        out.append(json.loads(text.strip().splitlines()[-1])["ms"])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--depths", default="30,100", help="comma-separated depths (default 30,100)")
    ap.add_argument("--steps", type=int, default=150, help="timed steps per worker (default 150)")
    ap.add_argument("--rounds", type=int, default=3, help="turns of the two layouts (default 3)")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker is not None:
        worker(a.worker, a.steps)
        return
    try:
        depths = [int(v) for v in a.depths.split(",") if v.strip()]
    except ValueError:
        ap.error(f"--depths: comma-separated whole numbers, got {a.depths!r}")
    if not depths or min(depths) < 1 or max(depths) > 1000:
        ap.error("--depths: at least one depth, each from 1 to 1000")
    if not 10 <= a.steps <= 5000 or not 1 <= a.rounds <= 20:
        ap.error("--steps: 10 to 5000; --rounds: 1 to 20")
    cores = os.cpu_count() or 1
    print(f"Training throughput: {cores} cores, load average {os.getloadavg()[0]:.2f}; cst s = 0.85, V' = 0.7, "
          f"width 300, batch 128, Adam; {a.steps} steps per worker, {a.rounds} rounds, medians")
    print(f"   {'depth':>5} {'one run ms/step':>16} {'steps/s':>8} {f'{cores} runs ms/step':>16} "
          f"{'steps/s':>8} {'ratio':>6}")
    for depth in depths:
        one, many = [], []
        for _ in range(a.rounds):
            one.append(1e3 / timed(depth, a.steps, 1, cores)[0])
            many.append(sum(1e3 / ms for ms in timed(depth, a.steps, cores, 1)))
        r1, rc = statistics.median(one), statistics.median(many)
        print(f"   {depth:5d} {1e3 / r1:16.2f} {r1:8.1f} {cores * 1e3 / rc:16.2f} {rc:8.1f} {rc / r1:5.2f}x",
              flush=True)
    print(f"   load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
