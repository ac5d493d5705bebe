"""Start-up: what a user waits for before the first answer, in fresh interpreters.

Prints, each the median of REPEATS cold processes measured in this one run (these
machines are shared: compare the lines of one run, not runs):

1. ``python -c pass``: the interpreter itself, the floor of everything below;
2. ``python -c "import meanfield"`` (the facade imports its modules on first use);
3. ``meanfield eoc --activation cst --sparsity 0.8 --v-prime 0.9`` end to end, with its
   closed forms read from the derivation store (``meanfield/_derivations.py``; the first
   run fills it) and without it (``MEANFIELD_NO_DERIVATION_CACHE=1``: derived by sympy);
4. where (3) spends its time, from one in-process run with the store filled: the imports
   of numpy, mpmath and the rest of the command line, then reading the stored closed
   forms, compiling and solving; and which heavy modules it imported (none is expected:
   built-in activations are text, and the store holds the closed forms' source, so
   neither sympy nor scipy.special is needed).

Targets (issue 25): ``import meanfield`` under 0.3 s and the cold ``meanfield eoc``
under 0.5 s on an idle machine. Run: ``python benchmarks/bench_startup.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

REPEATS = 5
EOC = ["eoc", "--activation", "cst", "--sparsity", "0.8", "--v-prime", "0.9"]


def cold(argv: list[str], env=None) -> float:
    import os
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *argv], check=True, capture_output=True, env={**os.environ, **(env or {})})
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def breakdown() -> tuple[list[tuple[str, float]], list[str]]:
    """One in-process run of the eoc command from the store, split into its stages (fresh
    interpreter), and the heavy modules it imported."""
    code = r"""
import time, json, sys, contextlib, io
t = [time.perf_counter()]
import numpy; t.append(time.perf_counter())
import mpmath; t.append(time.perf_counter())
import meanfield.cli; t.append(time.perf_counter())
with contextlib.redirect_stdout(io.StringIO()):
    meanfield.cli.main(%r)
t.append(time.perf_counter())
heavy = [m for m in ("sympy", "scipy.special", "matplotlib") if m in sys.modules]
print(json.dumps([[b - a for a, b in zip(t, t[1:])], heavy]))
""" % EOC
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    import json
    times, heavy = json.loads(out)
    names = ["import numpy", "import mpmath", "import meanfield.cli (the rest)",
             "read the store, compile and solve"]
    return list(zip(names, times)), heavy


def main():
    floor = cold(["-c", "pass"])
    imp = cold(["-c", "import meanfield"])
    subprocess.run([sys.executable, "-m", "meanfield", *EOC], check=True, capture_output=True)  # fills the store
    eoc = cold(["-m", "meanfield", *EOC])
    derived = cold(["-m", "meanfield", *EOC], {"MEANFIELD_NO_DERIVATION_CACHE": "1"})
    print(f"median of {REPEATS} cold processes each:")
    print(f"  python -c pass                 {floor:6.3f} s")
    print(f"  import meanfield               {imp:6.3f} s   (target < 0.3 s; {imp - floor:.3f} s above the floor)")
    print(f"  meanfield {' '.join(EOC)}")
    print(f"    closed forms from the store  {eoc:6.3f} s   (target < 0.5 s; {eoc - floor:.3f} s above the floor)")
    print(f"    derived anew by sympy        {derived:6.3f} s")
    stages, heavy = breakdown()
    print("where the eoc command's time goes (one run, closed forms from the store):")
    for name, seconds in stages:
        print(f"  {name:38s} {seconds:6.3f} s")
    print(f"  heavy modules imported: {', '.join(heavy) or 'none (no sympy, scipy.special, matplotlib)'}")


if __name__ == "__main__":
    main()
