"""Benchmark of the sparse passes of ``meanfield.nn``; every figure is measured in this one run.

Networks of depth 100, width 300, float32, on the edge of chaos for the CST activation
with V'(q*) = 0.7 (``mf.eoc_parameters("cst", sparsity=s, v_prime="0.7")``), inputs
normalised by :func:`meanfield.nn.normalise_inputs` so that the realised sparsity of the
hidden units is about s (printed).  The compared methods take turns inside one loop
in blocks of four timed calls, the order rotating every round; before its block a method
runs untimed for 0.15 s (``SETTLE``), so that it is not timed while the previous method's
BLAS or OpenMP workers still spin for work on the cores, or with the previous method's data
in the caches (this is each method's steady state, the one a loop of its calls sees); each
call takes the next of several distinct random inputs (a repeated input lets the branch
predictor learn the zero pattern), and every figure is a median over the calls; numba is compiled (or loaded from its cache) before
any timing.

1. Forward pass, sparse backends (``numpy``, ``numba`` and ``auto``) against the dense
   numpy pass, at s in {0.5, 0.7, 0.8, 0.85, 0.9, 0.95} and batch 1, 32, 128, 1024, next
   to the ideal 1 / (1 - s).
2. Training step (forward, backward, SGD update: ``MLP.sgd_step``) at batch 128, sparse
   against dense numpy, at s in {0.8, 0.85, 0.9}; PyTorch's dense step (autograd + SGD)
   on a copy of the same network in the same loop.
3. PyTorch CPU (eager, ``torch.no_grad``, default threads) dense forward of the same
   network at batch 1 and 128, s = 0.9, in one loop with the sparse and dense passes.
4. The performance targets (depth 100, width 300, float32, s = 0.9): batch 1 sparse
   forward >= 8x faster than dense numpy and faster than PyTorch; batch 128 sparse forward
   >= 2x faster than dense numpy; the sparse training step no slower than PyTorch's dense
   one at s = 0.8, 0.85, 0.9.  "sparse" is ``backend="auto"`` (what a user gets).

Run: ``python benchmarks/bench_sparse.py [--quick]`` (``--quick``: fewer sparsities,
batches and repeats, under a minute; the default run takes a few minutes).  PyTorch is
optional (``pip install 'meanfield[bench]'``); without it section 3 and the PyTorch parts
of the targets are skipped with a note.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

import meanfield as mf
from meanfield.nn import MLP, available_backends, default_backend, normalise_inputs
from meanfield.nn import _kernels as K

try:
    import torch
except ImportError:  # the peer is optional
    torch = None

DEPTH, WIDTH, INPUT, OUTPUTS = 100, 300, 784, 10
LR = 1e-3


#: Untimed calls of a method before its timed calls, for at least this long (s): a
#: multithreaded BLAS (or OpenMP) call leaves its workers spinning for work for about
#: 0.1 s, and whatever runs on the cores then is up to 2x slower (measured on the CI
#: machine kind: a numba forward pass took 15 ms instead of 8 ms right after a dense one).
SETTLE = 0.15


def interleaved(methods: dict, repeats: int, inputs: int, reset: dict | None = None,
                block: int = 4, settle: float = SETTLE) -> dict:
    """Median seconds of each ``methods[name](i)`` (i: the input to use).  The methods take
    turns in blocks of ``block`` timed calls, the order rotating every round; each block
    starts with untimed calls of the same method for ``settle`` seconds (at least one), so
    that no method is timed with another's worker threads still spinning or its data in
    the caches.  Call r uses input r % inputs; ``reset[name]()``, if given, runs untimed
    before every call."""
    names = list(methods)
    reset = reset or {}
    nothing = lambda: None  # noqa: E731
    times = {name: [] for name in names}
    rounds = -(-repeats // block)
    r = 0
    for k in range(rounds):
        order = names[k % len(names):] + names[:k % len(names)]
        for name in order:
            t_end, q = time.perf_counter() + settle, 0
            while q == 0 or time.perf_counter() < t_end:  # settle (and warm on the first round),
                reset.get(name, nothing)()  # cycling the inputs as the timed calls do (one
                methods[name]((r + q) % inputs)  # input repeated for 0.15 s trains the branch
                q += 1  # predictor on its zero pattern: the next inputs then took 20% longer)
            for j in range(block):
                reset.get(name, nothing)()
                t0 = time.perf_counter()
                methods[name]((r + j) % inputs)
                times[name].append(time.perf_counter() - t0)
        r += block
    return {name: statistics.median(v) for name, v in times.items()}


def network(s: str) -> MLP:
    sol = mf.eoc_parameters("cst", sparsity=s, v_prime="0.7", digits=15)
    return MLP.initialise(sol, width=WIDTH, depth=DEPTH, input_dim=INPUT, outputs=OUTPUTS, seed=0)


def inputs(batch: int, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [normalise_inputs(rng.standard_normal((batch, INPUT))).astype(np.float32) for _ in range(n)]


def realised_sparsity(net: MLP, x: np.ndarray) -> float:
    """Fraction of hidden units at exactly 0 (dense pass)."""
    _, trace = net.trace(x, backend="dense")
    return float(np.mean([np.mean(a == 0) for a in trace.post]))


def sparse_backends() -> list[str]:
    return [b for b in ("numpy", "numba") if b in available_backends()] + ["auto"]


def fmt_ms(t: float) -> str:
    return f"{t * 1e3:8.3f}" if t < 0.01 else f"{t * 1e3:8.2f}" if t < 1 else f"{t * 1e3:8.0f}"


# -- PyTorch peer ----------------------------------------------------------------------
class _CST(torch.nn.Module if torch else object):
    """The clipped soft threshold sign(h) min(max(|h| - tau, 0), m), as PyTorch ops."""

    def __init__(self, tau, m):
        super().__init__()
        self.tau, self.m = tau, m

    def forward(self, h):
        return torch.clamp(torch.nn.functional.softshrink(h, self.tau), -self.m, self.m)


def torch_model(net: MLP):
    """The same network in PyTorch (weights copied; ``nn.Linear`` stores W^T)."""
    p = net.parameters
    layers = []
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(net.weights) - 1:
            layers.append(_CST(float(p["tau"]), float(p["m"])))
    return torch.nn.Sequential(*layers)


def torch_forward(model, xs):
    tx = [torch.from_numpy(x) for x in xs]

    def run(i):
        with torch.no_grad():
            model(tx[i])
    return run


def torch_restore(model, start):
    with torch.no_grad():
        for p, p0 in zip(model.parameters(), start):
            p.copy_(p0)


def torch_step(model, xs, labels):
    tx = [torch.from_numpy(x) for x in xs]
    tl = [torch.from_numpy(lab.astype(np.int64)) for lab in labels]
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def run(i):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(tx[i]), tl[i])
        loss.backward()
        opt.step()
    return run


# -- sections --------------------------------------------------------------------------
def warm_up(net: MLP) -> float:
    """Compile (or load from numba's cache) every kernel variant; seconds taken."""
    t0 = time.perf_counter()
    for batch in (1, 128):
        x = inputs(batch, 1, 99)[0]
        for backend in sparse_backends():
            net.forward(x, backend=backend)
            net.gradients(x, np.zeros(batch, dtype=np.int64), backend=backend)
    return time.perf_counter() - t0


def bench_forward(sparsities, batches, repeats, n_inputs, results):
    backends = sparse_backends()
    print(f"1. Forward pass, depth {DEPTH}, width {WIDTH}, float32, CST on the EoC with V'(q*) = 0.7: "
          "dense numpy time (ms) and speed-up of each sparse backend")
    print(f"   (auto = {default_backend()}; medians of {repeats} interleaved repeats over {n_inputs} "
          "distinct inputs, fewer at batch 1024)")
    head = "".join(f"{b:>9}" for b in backends)
    print(f"   {'s':>5} {'realised':>8} {'ideal':>6} {'batch':>6} {'dense ms':>9}{head}   (x faster than dense)")
    for s in sparsities:
        net = network(s)
        real = realised_sparsity(net, inputs(128, 1, 7)[0])
        for batch in batches:
            reps = repeats if batch < 1024 else max(3, repeats // 3)
            xs = inputs(batch, n_inputs if batch < 1024 else 3, 1000 + batch)
            methods = {"dense": lambda i, xs=xs, net=net: net.forward(xs[i], backend="dense")}
            for b in backends:
                methods[b] = lambda i, xs=xs, b=b, net=net: net.forward(xs[i], backend=b)
            t = interleaved(methods, reps, len(xs))
            results[("forward", s, batch)] = t
            ratios = "".join(f"{t['dense'] / t[b]:8.2f}x" for b in backends)
            print(f"   {s:>5} {real:8.3f} {1 / (1 - float(s)):5.1f}x {batch:6d} {fmt_ms(t['dense']):>9}{ratios}")
        del net


def bench_training(sparsities, repeats, n_inputs, results):
    backends = sparse_backends()
    print("2. Training step (forward + backward + SGD update) at batch 128: time (ms); every step")
    print("   starts from the same initial network (restored untimed before each call: a step")
    print("   changes the network, and at lr = 1e-3 these deep nets lose their sparsity in ~20 steps)")
    cols = ["dense"] + backends + (["torch"] if torch else [])
    print(f"   {'s':>5} " + "".join(f"{c:>9}" for c in cols) + "   auto vs dense, auto vs torch")
    rng = np.random.default_rng(5)
    for s in sparsities:
        net = network(s)
        xs = inputs(128, n_inputs, 2000)
        labels = [rng.integers(0, OUTPUTS, 128) for _ in xs]
        methods, reset = {}, {}
        for b in ["dense"] + backends:
            copy = net.copy()  # each method trains its own copy
            scratch = np.empty_like(copy.buffer)
            methods[b] = lambda i, c=copy, b=b, sc=scratch: c.sgd_step(xs[i], labels[i], LR, backend=b, scratch=sc)
            reset[b] = lambda c=copy, net=net: np.copyto(c.buffer, net.buffer)
        if torch:
            model = torch_model(net)
            start = [p.detach().clone() for p in model.parameters()]
            methods["torch"] = torch_step(model, xs, labels)
            reset["torch"] = lambda m=model, st=start: torch_restore(m, st)
        t = interleaved(methods, repeats, len(xs), reset)
        results[("train", s)] = t
        line = "".join(f"{fmt_ms(t[c]):>9}" for c in cols)
        vs_torch = f", {t['torch'] / t['auto']:.2f}x" if torch else ""
        print(f"   {s:>5} {line}   {t['dense'] / t['auto']:.2f}x{vs_torch}")
        del net, methods, reset


def bench_torch(repeats, n_inputs, results):
    if torch is None:
        print("3. PyTorch peer: skipped (torch is not installed: pip install 'meanfield[bench]')")
        return
    print(f"3. PyTorch {torch.__version__} CPU eager, torch.no_grad, {torch.get_num_threads()} threads: "
          "dense forward of the same network (s = 0.9), time (ms)")
    net = network("0.9")
    model = torch_model(net)
    x = inputs(4, 1, 3)[0]
    with torch.no_grad():
        diff = float(np.max(np.abs(model(torch.from_numpy(x)).numpy() - net.forward(x, backend="dense"))))
    print(f"   (max |logits difference| PyTorch vs meanfield dense on 4 inputs: {diff:.1e}, float32)")
    print(f"   {'batch':>6} {'torch':>9} {'dense':>9} {'auto':>9}   auto vs torch, auto vs dense")
    for batch in (1, 128):
        xs = inputs(batch, n_inputs, 3000 + batch)
        methods = {"torch": torch_forward(model, xs),
                   "dense": lambda i, xs=xs: net.forward(xs[i], backend="dense"),
                   "auto": lambda i, xs=xs: net.forward(xs[i], backend="auto")}
        t = interleaved(methods, repeats if batch == 1 else max(5, repeats // 2), len(xs))
        results[("torch_forward", batch)] = t
        print(f"   {batch:6d} {fmt_ms(t['torch']):>9} {fmt_ms(t['dense']):>9} {fmt_ms(t['auto']):>9}   "
              f"{t['torch'] / t['auto']:.2f}x, {t['dense'] / t['auto']:.2f}x")


def summary(results):
    print("4. Targets (depth 100, width 300, float32, s = 0.9; sparse = backend 'auto')")
    rows = []
    f1 = results.get(("forward", "0.9", 1))
    if f1:
        r = f1["dense"] / f1["auto"]
        rows.append((f"batch 1 sparse forward >= 8x faster than dense numpy: {r:.2f}x", r >= 8))
    t1 = results.get(("torch_forward", 1))
    if t1:
        r = t1["torch"] / t1["auto"]
        rows.append((f"batch 1 sparse forward faster than PyTorch: {t1['auto'] * 1e3:.3f} ms vs "
                     f"{t1['torch'] * 1e3:.3f} ms ({r:.2f}x)", r > 1))
    else:
        rows.append(("batch 1 sparse forward faster than PyTorch: not measured (no torch)", None))
    f128 = results.get(("forward", "0.9", 128))
    if f128:
        r = f128["dense"] / f128["auto"]
        rows.append((f"batch 128 sparse forward >= 2x faster than dense numpy: {r:.2f}x", r >= 2))
    for s in ("0.8", "0.85", "0.9"):
        t = results.get(("train", s))
        if t and "torch" in t:
            rows.append((f"s = {s}: sparse training step no slower than PyTorch dense: "
                         f"{t['auto'] * 1e3:.1f} ms vs {t['torch'] * 1e3:.1f} ms", t["auto"] <= t["torch"]))
        elif t:
            rows.append((f"s = {s}: sparse training step vs PyTorch: not measured (no torch)", None))
    for text, ok in rows:
        print(f"   {'met    ' if ok else 'not measured' if ok is None else 'NOT met'}  {text}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer sparsities, batches and repeats (< 1 min)")
    args = ap.parse_args(argv)
    if args.quick:
        sparsities, batches, reps_fwd, reps_train, reps_torch, n_in = ("0.7", "0.9"), (1, 128), 9, 3, 9, 4
    else:
        sparsities, batches, reps_fwd, reps_train, reps_torch = ("0.5", "0.7", "0.8", "0.85", "0.9", "0.95"), (1, 32, 128, 1024), 25, 9, 41
        n_in = 8
    import numba  # noqa: F401  (versions only; the backends work without it)
    print(f"meanfield sparse-pass benchmark{' (--quick)' if args.quick else ''}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, numpy {np.__version__}, numba {numba.__version__ if K.HAVE_NUMBA else '-'}"
          f" ({numba.get_num_threads() if K.HAVE_NUMBA else 0} threads), torch {torch.__version__ if torch else '-'}; "
          f"load average {os.getloadavg()[0]:.2f}")
    t_start = time.perf_counter()
    print(f"   numba kernels compiled or loaded from cache in {warm_up(network('0.9')):.1f} s (not timed below)")
    results: dict = {}
    bench_forward(sparsities, batches, reps_fwd, n_in, results)
    bench_training(("0.8", "0.85", "0.9"), reps_train, n_in, results)
    bench_torch(reps_torch, n_in, results)
    summary(results)
    load = os.getloadavg()[0]
    note = "  (other processes were busy: figures are noisier)" if load > 1.5 else ""
    print(f"   total {time.perf_counter() - t_start:.0f} s; load average at the end {load:.2f}{note}")


if __name__ == "__main__":
    main()
