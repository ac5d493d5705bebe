"""Benchmark of the analytic core; every figure is measured in this one run.

1. The float64 vectorized closed form of the CST variance map against
   ``scipy.integrate.quad`` split at the kinks: time per value (ratio) and the largest
   error of each against a 40-digit mpmath reference.
2. One full ``eoc_parameters`` solve with every fixed point classified, at 50 digits
   (compiled forms warm): median over repetitions, for several configurations.
3. ``meanfield eoc`` end to end in a fresh interpreter (cold: imports, derivation,
   compilation): median of a few runs.

Targets (issue 2): >= 100x faster than quad at equal or better accuracy; the 50-digit
solve under 50 ms; ``meanfield eoc`` cold under 3 s. Run: ``python benchmarks/bench_maps.py``.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time

import mpmath
import numpy as np
from scipy import integrate

import meanfield as mf

TAU, M, SW, SB = 0.84, 1.61, 5.1, 0.62  # near the paper's CST s = 0.8 configuration


def v_quad(q, tight=True):
    """V(q) by scipy quad over x ~ N(0, q), split at the kinks (the integrand is even, so
    the positive half is doubled; the dead zone contributes 0)."""
    norm = 1.0 / math.sqrt(2 * math.pi * q)

    def dens(x):
        y = min(max(x - TAU, 0.0), M)
        return y * y * math.exp(-x * x / (2 * q)) * norm

    tol = {"epsabs": 1e-15, "epsrel": 1e-13} if tight else {}
    parts = integrate.quad(dens, TAU, TAU + M, **tol)[0] + integrate.quad(dens, TAU + M, np.inf, **tol)[0]
    return SB + SW * 2 * parts


def v_reference(q):
    with mpmath.workdps(40):
        t, m, q = mpmath.mpf(TAU), mpmath.mpf(M), mpmath.mpf(q)
        f = lambda x: min(max(abs(x) - t, 0), m) ** 2 * mpmath.npdf(x, 0, mpmath.sqrt(q))  # noqa: E731
        return mpmath.mpf(SB) + mpmath.mpf(SW) * 2 * mpmath.quad(f, [t, t + m, mpmath.inf])


def bench_closed_form():
    init = mf.Initialisation("cst", sigma_w2=SW, sigma_b2=SB, params={"tau": TAU, "m": M})
    qs = np.geomspace(1e-3, 1e3, 10_000)
    mf.map_values_float64(init, qs[:10])  # compile outside the timing
    fn = mf.maps.evaluator(init.activation, "np", "variance")
    args = init.float_arguments()
    reps = []
    for _ in range(7):  # the public fast path: all five maps plus its cancellation check
        t0 = time.perf_counter()
        mf.map_values_float64(init, qs)
        reps.append((time.perf_counter() - t0) / qs.size)
    t_closed = statistics.median(reps)
    sample = qs[:: qs.size // 200]
    check = sample[:: max(1, sample.size // 40)]
    ref = np.array([float(v_reference(q)) for q in check])
    err_closed = np.max(np.abs(fn(check, *args) - ref) / np.abs(ref))
    print("1. CST variance map, float64, q in [1e-3, 1e3] (errors against 40-digit mpmath)")
    print(f"   map_values_float64 (V, V', V'', chi1, sparsity; 1e4 q): {t_closed * 1e9:9.1f} ns per q, "
          f"max rel. error {err_closed:.1e}")
    met = True
    for label, tight in (("default tolerances", False), ("epsabs=1e-15, epsrel=1e-13", True)):
        t0 = time.perf_counter()
        for q in sample:
            v_quad(q, tight)
        t_quad = (time.perf_counter() - t0) / sample.size
        err_quad = np.max(np.abs(np.array([v_quad(q, tight) for q in check]) - ref) / np.abs(ref))
        ratio = t_quad / t_closed
        better = err_closed <= err_quad
        print(f"   scipy quad split at the kinks, {label}: {t_quad * 1e9:9.1f} ns per value, "
              f"max rel. error {err_quad:.1e}; closed form {ratio:,.0f}x faster, "
              f"{'as or more' if better else 'less'} accurate")
        met = met and ratio >= 100
    print(f"   target >= 100x faster than quad: {'met' if met else 'NOT met'}")
    lo = check[check <= 10]
    err_lo = np.max(np.abs(fn(lo, *args) - ref[: lo.size]) / np.abs(ref[: lo.size]))
    print(f"   closed form error for q <= 10: {err_lo:.1e}; above, the clip piece is narrow against "
          f"sqrt(q) and its terms cancel (error ~1e-16 q / V)")


def bench_solve():
    cases = [("cst", "0.8", "0.9"), ("crelu", "0.85", "0.5"), ("relu", "0.7", None), ("st", "0.85", None)]
    print("2. eoc_parameters + every fixed point classified, 50 digits (warm), median of 15")
    worst = 0.0
    for act, s, vp in cases:
        mf.eoc_parameters(act, s, v_prime=vp, digits=50)  # compile outside the timing
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            sol = mf.eoc_parameters(act, s, v_prime=vp, digits=50)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        worst = max(worst, med)
        kinds = ", ".join(p.kind for p in sol.fixed_points.points)
        print(f"   {act:5} s={s:4} V'={vp or '1':4}: {med * 1e3:6.1f} ms  ({kinds})")
    print(f"   slowest median {worst * 1e3:.1f} ms (target < 50 ms): {'met' if worst < 0.05 else 'NOT met'}")


def bench_cold_cli():
    cmd = [sys.executable, "-m", "meanfield.cli", "eoc", "--activation", "cst",
           "--sparsity", "0.8", "--v-prime", "0.9", "--digits", "50"]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print("3. `meanfield eoc --activation cst --sparsity 0.8 --v-prime 0.9 --digits 50`, cold process")
    print(f"   median of 3: {med:.2f} s (target < 3 s): {'met' if med < 3 else 'NOT met'}")


if __name__ == "__main__":
    bench_closed_form()
    bench_solve()
    bench_cold_cli()
