"""The runaway table of docs/nn.md: networks of width 300 and depth 100 on the edge of
chaos, 20 per row; the fraction whose q^L passes 10 q* against the finite-width model.

Run: python docs/scripts/runaway_table.py   (about two minutes on two cores)
"""

import math

import meanfield as mf
from meanfield.nn import simulate

ROWS = [(act, s, None) for act in ("relu", "st") for s in ("0.6", "0.7", "0.8", "0.85", "0.9")]
ROWS += [("crelu", "0.85", "0.9"), ("cst", "0.85", "0.9"), ("crelu", "0.85", "0.7"), ("cst", "0.85", "0.7")]

print("| activation (EoC, q* = 1) | s | V'(q*) target | kind of q* | networks run away | finite-width model |")
print("|---|---|---|---|---|---|")
for act, s, v_prime in ROWS:
    sol = mf.eoc_parameters(act, sparsity=s, v_prime=v_prime, digits=20)
    sim = simulate(sol, width=300, depth=100, inputs=2, seeds=20, jacobian=False,
                   correlations=False, progress=False, jobs=2)
    n, p = len(sim.seeds), sim.theory.runaway_probability
    print(f"| {act} | {s} | {v_prime or '-'} | {sim.theory.kind} | {int(sim.runaway.sum())}/{n} "
          f"= {sim.runaway_fraction:.2f} | {p:.3f} (binomial se for {n}: {math.sqrt(p * (1 - p) / n):.2f}) |")
