"""The calibration of the layer-by-layer test in docs/nn.md: how often the largest of 50
layers' |z| passes 3 or 4 when the theory is exact.

240 networks of CReLU s = 0.85, V'(q*) = 0.7 (width 1000, depth 50, seeds 5000..5239); sets
of 10 and 40 of them are resampled 2000 times, and each set's largest |z| over the layers is
counted. Run: python docs/scripts/z_calibration.py   (about 3 minutes on two cores)
"""

import numpy as np

import meanfield as mf
from meanfield.nn import simulate

sol = mf.eoc_parameters("crelu", sparsity="0.85", v_prime="0.7", digits=20)
sim = simulate(sol, width=1000, depth=50, inputs=2, seeds=240, first_seed=5000, jacobian=False,
               correlations=False, progress=False, jobs=2)
z_all = sim.z_scores("q")
print(f"all 240 networks: largest |z| of q {np.abs(z_all).max():.2f}, mean z {z_all.mean():.2f}")
rng = np.random.default_rng(0)
for size in (10, 40):
    for name in ("q", "sparsity"):
        data, theory = getattr(sim, name), getattr(sim.theory, name)
        largest = []
        for _ in range(2000):
            x = data[rng.choice(len(data), size, replace=False)]
            z = (x.mean(0) - theory) / (x.std(0, ddof=1) / np.sqrt(size))
            largest.append(np.abs(z).max())
        largest = np.array(largest)
        print(f"{size} networks, {name}: P(largest |z| > 3) = {np.mean(largest > 3):.3f}, "
              f"P(> 4) = {np.mean(largest > 4):.3f}")
