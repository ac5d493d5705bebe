"""One training epoch of the MNIST protocol at depth 100, width 300, s = 0.85: the sparse
step phase by phase against its bounds, then the epoch against the dense numpy pass and
against PyTorch. Every figure is measured in this one run (these machines are shared and
noisy: compare the ratios, which are measured side by side).

The network is CST on the edge of chaos with V'(q*) = 0.7 at s = 0.85 (the clipped
configuration of the reproduction), float32, batch 128, Adam at the protocol's learning
rate, on MNIST's 60000 training images (the cache of ``meanfield data mnist``; without it,
random images of the same shape, said in the output).

1. **The machine, now**: float32 GEMM throughput (numpy's BLAS, every core: the peak
   the arithmetic bounds use) and memory bandwidth (bytes read plus written per second:
   the larger of numpy's one-thread 256 MB copy and an Adam-like stream over 256 MB on
   every core; the bound of every pass over the parameters).
2. **The phases of one sparse Adam step** (``meanfield.nn.train.training_step`` with the
   compiled passes, its ``profile``): forward; loss; deltas; bound (the scans that prove
   the update finite before anything is written); update (the weight gradient formed row
   by row, its norm, and Adam, in one pass), and its two parts: the weight gradient with
   its norms (the same pass forming the rows only, timed on every other step) and Adam
   (the rest). Each phase's median time over the timed
   steps, next to its bound: max(FLOPs / peak, bytes / bandwidth), with FLOPs counted
   from the active units of each step (2 per multiply-add) and bytes the least the phase
   must move (the weights it reads; Adam's parameters and two moments, read and written).
3. **One epoch** (469 steps; ``--steps`` for fewer), each method training its own copy of
   the same network on the same batches: ``sparse`` (the fused step above: what
   ``meanfield train`` runs); ``dense`` (the dense numpy pass, its gradient applied by the
   same compiled update pass); ``torch`` (PyTorch CPU eager, autograd,
   ``torch.optim.Adam``, and the per-layer gradient norms, so that it does the same
   work). The methods take turns in blocks of 40 steps, in a rotating order, each block
   after a 0.5 s pause: an idle thread pool keeps spinning on the cores after its last
   call (OpenBLAS about 0.1 s; PyTorch's MKL/OpenMP threads 0.2 s, Intel's default
   KMP_BLOCKTIME) and slows whatever runs next. With 0.15 s pauses and blocks of 20, the
   sparse step measured 15-30% slower inside the benchmark than alone, most after a
   PyTorch block. An epoch's time is the sum of a method's
   blocks; the median step, times 469, is printed beside it. Then the epoch's evaluation
   (10000 test and 2000 training images, accuracy and sparsity per layer), sparse and
   dense.
4. **The SGD step** at batch 128: plain SGD (``MLP.sgd_step``, fused) and SGD with
   momentum 0.9 (``training_step``), against PyTorch's SGD and SGD with momentum.
5. **The targets** of the issue, met or not.

Run: ``python benchmarks/bench_epoch.py [--steps N] [--depth L] [--width N] [--sparsity S]``
(default: a full epoch of the protocol's network, about four minutes with PyTorch;
``--steps 60`` takes under a minute; ``--depth 30``, another ``--width`` or ``--sparsity``:
the same at that size or sparsity).

``--depths 1,10,30,100`` prints instead how the step's cost grows with depth: the median
sparse and dense Adam step at each depth (the two taking turns in blocks, as in 3), their
ratio, and a least-squares line through each: its slope is the cost of one hidden layer,
its intercept the cost of the rest (input and output layers, the loss, the calls), so that
the ratio of the slopes is the speedup a deep network tends to and the intercepts say why
a shallow one gains less, or more.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import meanfield as mf
from meanfield.nn import MLP, describe_backend, optimizers
from meanfield.nn import train as T

sys.path.insert(0, str(Path(__file__).parent))
from bench_sparse import torch, torch_model  # noqa: E402  (the same PyTorch network)

DEPTH, WIDTH, S, BATCH, BLOCK, PAUSE = 100, 300, 0.85, 128, 40, 0.5
PHASES = ("forward", "loss", "deltas", "bound", "update")


def protocol(depth=DEPTH, width=WIDTH, sparsity=S) -> T.TrainConfig:
    """The benchmarked network's training configuration: CST at ``sparsity`` (default S),
    V'(q*) = 0.7, the protocol's optimiser and batch, at ``depth`` and ``width``."""
    return T.TrainConfig("cst", sparsity, v_prime=0.7, **{**{k: v for k, v in T.PROTOCOL.items() if k != "epochs"},
                                                          "depth": depth, "width": width})


def data(cfg):
    """The protocol's inputs (rows of mean square 1, as ``meanfield train`` prepares them) and labels."""
    from meanfield.datasets import mnist
    from meanfield.errors import DataError
    try:
        d, what = mnist.load(), "MNIST"
    except DataError:
        rng = np.random.default_rng(0)
        d = (rng.random((60000, 784)), rng.integers(0, 10, 60000), rng.random((10000, 784)),
             rng.integers(0, 10, 10000))
        what = "random images (MNIST is not cached: meanfield data mnist)"
    p = T.prepare_data(d, cfg)
    return p.x_train, p.y_train, p.x_test, p.y_test, what


# -- 1. the machine ----------------------------------------------------------------------
def peak_flops(repeats=5) -> float:
    """float32 GEMM FLOP/s of numpy's BLAS (2000^3, best of ``repeats``)."""
    a = np.random.default_rng(0).random((2000, 2000), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    return 2 * 2000 ** 3 / best


def bandwidth(repeats=5) -> tuple[float, float]:
    """Bytes per second (read plus written, best of ``repeats``) of numpy's 256 MB
    streaming copy, one thread, and of a stream like Adam's (read g; read and write p, m,
    v; 4 x 64 MB) split over NUMBA_NUM_THREADS threads (every core unless that variable
    says otherwise): the larger is the bound's bandwidth (numpy's copy alone, 26-29 GB/s,
    understated what two cores move, 44-55 GB/s, by about 40%)."""
    src = np.ones(1 << 26, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    copy = 2 * src.nbytes / min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    try:
        import numba
    except ImportError:
        return copy, copy
    import concurrent.futures

    @numba.njit(nogil=True, error_model="numpy", boundscheck=False)
    def stream(g, p, m, v, c, nc):  # (the slices make the loop vectorise)
        n = p.shape[0]
        a, b = c * n // nc, (c + 1) * n // nc
        g, p, m, v = g[a:b], p[a:b], m[a:b], v[a:b]
        for j in range(b - a):
            mi = m[j] * np.float32(0.9) + g[j]
            vi = v[j] * np.float32(0.5) + g[j] * g[j]
            m[j] = mi
            v[j] = vi
            p[j] = p[j] - mi * np.float32(1e-9) / (vi + np.float32(1.0))
    n = 1 << 24
    arrays = [np.ones(n, dtype=np.float32) for _ in range(4)]
    threads = numba.config.NUMBA_NUM_THREADS
    pool = concurrent.futures.ThreadPoolExecutor(threads)

    def run():
        for f in [pool.submit(stream, *arrays, c, threads) for c in range(threads)]:
            f.result()
    run()
    multi = 7 * 4 * n / min(_timed(run) for _ in range(repeats))
    pool.shutdown()
    return copy, multi


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


# -- 2. the phases -----------------------------------------------------------------------
def phases(net, cfg, x, y, batches, flops, bw):
    opt = optimizers.make(cfg, net.buffer.size, net.dtype)
    grad = np.empty_like(net.buffer)
    rows, split = [], []
    for i, idx in enumerate(batches):
        # every other step also times the update pass forming the weight gradient and its
        # norms alone (it writes nothing; those steps' own phases are not used)
        prof = {"gradient": None} if i % 2 else {}
        T.training_step(net, opt, x[idx], y[idx], "numba", grad, profile=prof, owned=True)
        (split if i % 2 else rows).append(prof)
    rows, split = rows[2:], split[2:]  # the first steps warm the caches
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    med["bound"] += med.pop("safe")  # the optimiser's test is part of the bound
    gradient = statistics.median(r["gradient"] for r in split)
    p = net.buffer.size * 4  # bytes of the parameters (float32)
    trace = sum(net.widths[1:]) * BATCH * 4  # bytes of one pass over the deltas
    work = {  # (FLOPs, bytes) each phase must at least do and move
        "forward": (2 * med["forward_terms"], p),
        "loss": (0.0, 0.0),
        "deltas": (2 * med["delta_terms"], p + trace),
        "bound": (0.0, 0.0),
        "update": (2 * med["update_terms"] + 10 * net.buffer.size, 6 * p + trace),
        "gradient": (2 * med["update_terms"], trace),  # (the deltas and lists: in L2/L3)
        "optimiser": (10 * net.buffer.size, 6 * p),
    }
    med["gradient"] = gradient
    med["optimiser"] = med["update"] - gradient
    print(f"2. One sparse Adam step, phase by phase (median of {len(rows)} steps); bound = max(FLOPs / "
          f"{flops / 1e9:.0f} GFLOP/s, bytes / {bw / 1e9:.1f} GB/s)")
    print(f"   {'phase':>8} {'ms':>7} {'GFLOP':>7} {'MB':>7} {'bound ms':>9} {'x bound':>8}")
    total = total_bound = 0.0
    for name in PHASES:
        f, b = work[name]
        bound = max(f / flops, b / bw)
        total += med[name]
        total_bound += bound
        ratio = f"{med[name] / bound:7.1f}x" if bound else "       -"
        print(f"   {name:>8} {med[name] * 1e3:7.2f} {f / 1e9:7.3f} {b / 1e6:7.1f} {bound * 1e3:9.2f} {ratio}")
        if name == "update":  # its two parts (not added to the step again)
            for part, label in (("gradient", "- dW"), ("optimiser", "- Adam")):
                f, b = work[part]
                bound = max(f / flops, b / bw)
                print(f"   {label:>8} {med[part] * 1e3:7.2f} {f / 1e9:7.3f} {b / 1e6:7.1f} "
                      f"{bound * 1e3:9.2f} {med[part] / bound:7.1f}x")
    print(f"   {'step':>8} {total * 1e3:7.2f} {'':>7} {'':>7} {total_bound * 1e3:9.2f} {total / total_bound:7.1f}x"
          f"   (x {-(-len(x) // BATCH)} steps: {total * -(-len(x) // BATCH):.1f} s an epoch at this pace)")
    return med, total_bound


# -- 3. the epoch ------------------------------------------------------------------------
def ours(net, backend, cfg):
    opt = optimizers.make(cfg, net.buffer.size, net.dtype)
    grad = np.empty_like(net.buffer)

    def step(x, y):  # as meanfield train runs it (it owns the parameters)
        return T.training_step(net, opt, x, y, backend, grad, owned=True)[0]
    return step


def peer(model, cfg, optimizer="adam"):
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, betas=cfg.betas, eps=cfg.eps)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=cfg.momentum)
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y.astype(np.int64)))
        loss.backward()
        [float(w.grad.norm()) for w in weights]
        opt.step()
        return float(loss.detach())
    return step


def interleaved(methods, x, y, batches):
    """Seconds each method spends on the batches, in blocks of BLOCK steps taking turns;
    each method's median step (seconds) and the mean loss of its last 20 steps."""
    for step in methods.values():  # compile, warm the caches: untimed
        step(x[batches[0]], y[batches[0]])
    spent = dict.fromkeys(methods, 0.0)
    steps = {k: [] for k in methods}
    losses = {k: [] for k in methods}
    names = list(methods)
    for b, start in enumerate(range(0, len(batches), BLOCK)):
        for name in names[b % len(names):] + names[:b % len(names)]:
            time.sleep(PAUSE)
            t0 = time.perf_counter()
            for idx in batches[start:start + BLOCK]:
                t1 = time.perf_counter()
                losses[name].append(methods[name](x[idx], y[idx]))
                steps[name].append(time.perf_counter() - t1)
            spent[name] += time.perf_counter() - t0
    return spent, {k: statistics.median(v) for k, v in steps.items()}, {k: float(np.mean(v[-20:])) for k, v in losses.items()}


def epoch(net, cfg, x, y, xt, yt, batches, steps_per_epoch):
    methods = {"sparse": ours(net.copy(), "numba", cfg), "dense": ours(net.copy(), "dense", cfg)}
    if torch is not None:
        methods["torch"] = peer(torch_model(net), cfg)
    spent, median, losses = interleaved(methods, x, y, batches)
    scale = steps_per_epoch / len(batches)
    label = "one epoch" if scale == 1 else f"{len(batches)} steps, scaled to an epoch of {steps_per_epoch}"
    print(f"3. Adam, {label}: seconds")
    print(f"   {'method':>8} {'epoch s':>8} {'ms/step':>8} {'median ms':>9} {'x469 s':>7} {'last loss':>9}")
    for name in methods:
        print(f"   {name:>8} {spent[name] * scale:8.1f} {spent[name] / len(batches) * 1e3:8.1f} "
              f"{median[name] * 1e3:9.1f} {median[name] * steps_per_epoch:7.1f} {losses[name]:9.3f}")
    evals = {}
    sample = np.random.default_rng(0).permutation(len(x))[:2000]
    for name, backend in (("sparse", "numba"), ("dense", "dense")):
        t0 = time.perf_counter()
        T.evaluate(net, xt, yt, backend)
        T.evaluate(net, x[np.sort(sample)], y[np.sort(sample)], backend)
        evals[name] = time.perf_counter() - t0
        print(f"   evaluation of an epoch (10000 test + 2000 training images, sparsity per layer), {name}: "
              f"{evals[name]:.2f} s")
    sp = spent["sparse"] * scale
    ratios = {k: spent[k] / spent["sparse"] for k in methods if k != "sparse"}
    print("   sparse epoch " + ", ".join(f"{r:.2f}x faster than {k}" for k, r in ratios.items())
          + " (median steps: " + ", ".join(f"{median[k] / median['sparse']:.2f}x {k}" for k in ratios)
          + f"); with its evaluation {sp + evals['sparse']:.1f} s")
    return sp, ratios, evals["sparse"]


# -- 4. the SGD step ---------------------------------------------------------------------
def sgd(net, cfg, x, y, batches):
    lr = 1e-4
    plain = net.copy()
    methods = {"sparse SGD": lambda a, b: plain.sgd_step(a, b, lr, backend="numba")}
    mcfg = T.TrainConfig(**{**cfg.to_dict(), "optimizer": "sgd", "learning_rate": lr, "betas": cfg.betas})
    methods["sparse SGD+mom"] = ours(net.copy(), "numba", mcfg)
    if torch is not None:
        model_a, model_b = torch_model(net), torch_model(net)
        opt_a = torch.optim.SGD(model_a.parameters(), lr=lr)

        def torch_plain(a, b):
            opt_a.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model_a(torch.from_numpy(a)), torch.from_numpy(b.astype(np.int64)))
            loss.backward()
            opt_a.step()
            return float(loss.detach())
        methods["torch SGD"] = torch_plain
        methods["torch SGD+mom"] = peer(model_b, mcfg, optimizer="sgd")
    spent, _, _ = interleaved(methods, x, y, batches)
    ms = {k: v / len(batches) * 1e3 for k, v in spent.items()}
    print(f"4. SGD at batch 128 (lr {lr:g}; {len(batches)} steps each): ms per step")
    for k, v in ms.items():
        print(f"   {k:>15} {v:8.1f}")
    out = {}
    if torch is not None:
        out = {"plain": ms["torch SGD"] / ms["sparse SGD"], "momentum": ms["torch SGD+mom"] / ms["sparse SGD+mom"]}
        print(f"   sparse vs PyTorch: plain SGD {out['plain']:.2f}x, with momentum {out['momentum']:.2f}x faster")
    return out


def depth_scan(depths, width, steps=40):
    """Median sparse and dense Adam steps at each depth, and the lines through them."""
    print(f"Step cost by depth: width {width}, batch {BATCH}, cst s = {S}, V' = 0.7, float32, Adam; "
          f"median of {steps} steps each, sparse and dense taking turns; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"   {'depth':>5} {'sparse ms':>10} {'dense ms':>9} {'ratio':>6}")
    rows = []
    for depth in depths:
        cfg = protocol(depth, width)
        x, y, *_ = data(cfg)
        net = MLP.initialise(T.initialisation(cfg), width=width, depth=depth, input_dim=784, seed=0)
        order = np.random.default_rng(0).permutation(len(x))
        batches = [order[i * BATCH:(i + 1) * BATCH] for i in range(steps)]
        methods = {"sparse": ours(net.copy(), "numba", cfg), "dense": ours(net.copy(), "dense", cfg)}
        _, median, _ = interleaved(methods, x, y, batches)
        rows.append((depth, median["sparse"], median["dense"]))
        print(f"   {depth:5d} {median['sparse'] * 1e3:10.2f} {median['dense'] * 1e3:9.2f} "
              f"{median['dense'] / median['sparse']:5.2f}x", flush=True)
    if len(rows) >= 2:
        d = np.array([r[0] for r in rows], dtype=float)
        fits = {k: np.polyfit(d, np.array([r[i] for r in rows]) * 1e3, 1) for i, k in ((1, "sparse"), (2, "dense"))}
        for k, (slope, icept) in fits.items():
            print(f"   {k:>6}: {slope:.3f} ms per hidden layer + {icept:.2f} ms (least squares over the depths)")
        print(f"   per hidden layer: {fits['dense'][0] / fits['sparse'][0]:.2f}x; the rest: "
              f"{fits['dense'][1] / fits['sparse'][1]:.2f}x")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="time the first N steps (default: the epoch)")
    ap.add_argument("--depth", type=int, default=DEPTH, help=f"hidden layers (default {DEPTH})")
    ap.add_argument("--width", type=int, default=WIDTH, help=f"hidden width (default {WIDTH})")
    ap.add_argument("--sparsity", type=float, default=S,
                    help=f"the hidden layers' sparsity at initialisation (default {S}; the studies also run 0.7)")
    ap.add_argument("--depths", help="instead: the step's cost at these depths (e.g. 1,10,30,100)")
    a = ap.parse_args(argv)
    if not 0.5 <= a.sparsity < 1:
        ap.error(f"--sparsity {a.sparsity}: must be in [0.5, 1)")
    if a.depths:
        try:
            depths = [int(v) for v in a.depths.split(",") if v.strip()]
        except ValueError:
            ap.error(f"--depths: comma-separated whole numbers, got {a.depths!r}")
        if not depths or min(depths) < 1:
            ap.error("--depths: at least one depth, each >= 1")
        depth_scan(depths, a.width)
        return
    cfg = protocol(a.depth, a.width, a.sparsity)
    x, y, xt, yt, what = data(cfg)
    net = MLP.initialise(T.initialisation(cfg), width=a.width, depth=a.depth, input_dim=784, seed=0)
    order = np.random.default_rng(0).permutation(len(x))
    steps_per_epoch = -(-len(x) // BATCH)
    steps = steps_per_epoch if a.steps is None else max(10, min(a.steps, steps_per_epoch))
    batches = [order[i * BATCH:(i + 1) * BATCH] for i in range(steps)]
    print(f"Training epoch benchmark: {steps} steps of batch {BATCH} on {what}; depth {a.depth}, width {a.width}, "
          f"cst s = {a.sparsity:g}, V' = 0.7, float32, Adam lr {cfg.learning_rate:g}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, meanfield {mf.__version__}, "
          f"backend {describe_backend()}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", no torch")
          + f"; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    flops, (copy_bw, stream_bw) = peak_flops(), bandwidth()
    bw = max(copy_bw, stream_bw)
    print(f"1. This machine now: float32 GEMM {flops / 1e9:.0f} GFLOP/s (numpy BLAS), memory {bw / 1e9:.1f} GB/s "
          f"(read + write: an Adam-like stream on every core; numpy's one-thread copy {copy_bw / 1e9:.1f} GB/s)")
    med, step_bound = phases(net.copy(), cfg, x, y, batches[:min(len(batches), 40)], flops, bw)
    sp, ratios, ev = epoch(net, cfg, x, y, xt, yt, batches, steps_per_epoch)
    sgd_ratios = sgd(net, cfg, x, y, batches[:min(len(batches), 120)])
    print("5. Targets")
    rows = [(f"an epoch of the protocol in at most 15 s: {sp:.1f} s (stretch: under 10 s)", sp <= 15)]
    for k in ("dense", "torch"):
        if k in ratios:
            rows.append((f"at least 3.5x faster than {k}: {ratios[k]:.2f}x", ratios[k] >= 3.5))
        else:
            rows.append((f"at least 3.5x faster than {k}: not measured (no torch)", None))
    if sgd_ratios:
        rows.append((f"the SGD step at least 3x faster than PyTorch's: {sgd_ratios['plain']:.2f}x "
                     f"(with momentum {sgd_ratios['momentum']:.2f}x)", sgd_ratios["plain"] >= 3))
    step = sum(med[k] for k in PHASES)
    print(f"   (for the record: the step is {step / step_bound:.1f}x its bound, {step * 1e3:.1f} ms against "
          f"{step_bound * 1e3:.1f} ms; the stretch target, an epoch under 10 s, is {'met' if sp < 10 else 'not met'})")
    for text, ok in rows:
        print(f"   {'met    ' if ok else 'not measured' if ok is None else 'NOT met'}  {text}")
    print(f"   load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
