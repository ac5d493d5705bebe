"""One training epoch of the MNIST protocol at depth 100, width 300, s = 0.85: the sparse
passes against the dense numpy pass and against PyTorch, every figure measured in this run.

The network is CST on the edge of chaos with V'(q*) = 0.7 at s = 0.85 (the clipped
configuration of the reproduction), float32, batch 128, Adam at the protocol's learning
rate, on MNIST's 60000 training images (the cache of ``meanfield data mnist``; without it,
random images of the same shape, said in the output). Each method trains its own copy of
the same initial network on the same batches in the same order:

- ``sparse``: ``meanfield.nn.train.training_step`` with the compiled sparse passes (what
  ``meanfield train`` runs: gradient, per-layer gradient norms, overflow check, Adam);
- ``dense``: the same step with the dense numpy pass;
- ``sparse-np``: the sparse step with Adam written in numpy (ten passes over the
  parameters) instead of the compiled one-pass kernel: what fusing the update saves;
- ``torch``: PyTorch CPU eager, autograd, ``torch.optim.Adam``, and the per-layer
  gradient norms (so that it does the same work).

The methods take turns in blocks of 20 steps, in a rotating order, each block after a
0.15 s pause (an idle BLAS or OpenMP pool spins for about 0.1 s after its last call and
slows whatever runs next; see bench_sparse.py). An epoch's time is the sum of a method's
blocks. The test-set evaluation (10000 images, with the sparsity per layer) is
timed once after the epoch, sparse and dense (PyTorch has no sparsity count to time).

Run: ``python benchmarks/bench_epoch.py [--steps N]`` (default: a full epoch, 469 steps,
about four minutes for all four methods; ``--steps`` times the first N steps only).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

import meanfield as mf
from meanfield.nn import MLP
from meanfield.nn import train as T

sys.path.insert(0, str(Path(__file__).parent))
from bench_sparse import torch, torch_model  # noqa: E402  (the same PyTorch network)

DEPTH, WIDTH, S, BATCH, BLOCK, PAUSE = 100, 300, 0.85, 128, 20, 0.15


def data(cfg):
    """The protocol's inputs (``train._prepare``: rows of mean square 1) and labels."""
    from meanfield.datasets import mnist
    from meanfield.errors import DataError
    try:
        d, what = mnist.load(), "MNIST"
    except DataError:
        rng = np.random.default_rng(0)
        d = (rng.random((60000, 784)), rng.integers(0, 10, 60000), rng.random((10000, 784)),
             rng.integers(0, 10, 10000))
        what = "random images (MNIST is not cached: meanfield data mnist)"
    return (*T._prepare(d, cfg), what)


def ours(net, backend, cfg, fused=None):
    opt = T._Optimizer(cfg, net.buffer.size, net.dtype, fused=fused)
    grad = np.empty_like(net.buffer)

    def step(x, y):
        return T.training_step(net, opt, x, y, backend, grad)[0]
    return step


def peer(model, cfg):
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, betas=cfg.betas, eps=cfg.eps)
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y.astype(np.int64)))
        loss.backward()
        [float(w.grad.norm()) for w in weights]
        opt.step()
        return float(loss.detach())
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="time the first N steps (default: the epoch)")
    a = ap.parse_args(argv)
    cfg = T.TrainConfig("cst", S, v_prime=0.7, **{k: v for k, v in T.PROTOCOL.items() if k != "epochs"})
    x, y, xt, yt, what = data(cfg)
    sol = T.initialisation(cfg)
    net = MLP.initialise(sol, width=WIDTH, depth=DEPTH, input_dim=784, seed=0)
    order = np.random.default_rng(0).permutation(len(x))
    steps = -(-len(x) // BATCH) if a.steps is None else min(a.steps, -(-len(x) // BATCH))
    batches = [order[i * BATCH:(i + 1) * BATCH] for i in range(steps)]
    methods = {"sparse": ours(net.copy(), "numba", cfg), "dense": ours(net.copy(), "dense", cfg),
               "sparse-np": ours(net.copy(), "numba", cfg, fused=False)}
    if torch is not None:
        methods["torch"] = peer(torch_model(net), cfg)
    print(f"one epoch: {steps} steps of batch {BATCH} on {what}; depth {DEPTH}, width {WIDTH}, cst s = {S}, "
          f"V' = 0.7, float32, Adam lr {cfg.learning_rate:g}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, meanfield {mf.__version__}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", no torch"))
    for name, step in methods.items():  # compile, warm the caches: untimed
        step(x[batches[0]], y[batches[0]])
    spent = dict.fromkeys(methods, 0.0)
    losses = {k: [] for k in methods}
    names = list(methods)
    for b, start in enumerate(range(0, steps, BLOCK)):
        for name in names[b % len(names):] + names[:b % len(names)]:
            time.sleep(PAUSE)
            t0 = time.perf_counter()
            for idx in batches[start:start + BLOCK]:
                losses[name].append(methods[name](x[idx], y[idx]))
            spent[name] += time.perf_counter() - t0
    print(f"{'method':>8} {'epoch s':>8} {'ms/step':>8} {'last loss':>9}")
    for name in methods:
        print(f"{name:>8} {spent[name]:>8.1f} {spent[name] / steps * 1e3:>8.1f} {np.mean(losses[name][-20:]):>9.3f}")
    # evaluation of the test set, sparse and dense
    trained = {"sparse": "numba", "dense": "dense"}
    for name, backend in trained.items():
        t0 = time.perf_counter()
        T._evaluate(net, xt, yt, backend)
        print(f"test-set evaluation with per-layer sparsity, {name}: {time.perf_counter() - t0:.2f} s")
    sp = spent["sparse"]
    print(f"epoch: sparse vs dense numpy {spent['dense'] / sp:.2f}x, "
          f"fused Adam vs numpy Adam (both sparse) {spent['sparse-np'] / sp:.2f}x"
          + (f", sparse vs PyTorch {spent['torch'] / sp:.2f}x" if torch is not None else " (no PyTorch)"))


if __name__ == "__main__":
    main()
