"""Start-up: what a user waits for before the first answer, in fresh interpreters.

Prints, each the median of REPEATS cold processes measured in this one run (these
machines are shared: compare the lines of one run, not runs):

1. ``python -c pass``: the interpreter itself, the floor of everything below;
2. ``python -c "import meanfield"`` (the facade imports its modules on first use);
3. ``meanfield eoc --activation cst --sparsity 0.8 --v-prime 0.9`` end to end, with its
   closed forms read from the derivation store (``meanfield/_derivations.py``; the first
   run fills it) and without it (``MEANFIELD_NO_DERIVATION_CACHE=1``: derived by sympy);
4. where (3) spends its time, from one in-process run: the imports of its modules
   (sympy, scipy.special, numpy, mpmath), the symbolic derivation of CST's closed forms,
   and the solve.

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


def breakdown() -> list[tuple[str, float]]:
    """One in-process run of the eoc command, split into its stages (fresh interpreter)."""
    code = r"""
import time, json
t = [time.perf_counter()]
import numpy; t.append(time.perf_counter())
import mpmath; t.append(time.perf_counter())
import scipy.special; t.append(time.perf_counter())
import sympy; t.append(time.perf_counter())
import meanfield.cli, meanfield.eoc; t.append(time.perf_counter())
from meanfield.symbolic import derive
derive("cst"); t.append(time.perf_counter())
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    meanfield.cli.main(%r)
t.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(t, t[1:])]))
""" % EOC
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    import json
    names = ["import numpy", "import mpmath", "import scipy.special", "import sympy",
             "import meanfield.cli (the rest)", "derive CST's closed forms (sympy)", "compile and solve"]
    return list(zip(names, json.loads(out)))


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
    print("where the eoc command's time goes (one run):")
    for name, seconds in breakdown():
        print(f"  {name:38s} {seconds:6.3f} s")


if __name__ == "__main__":
    main()
