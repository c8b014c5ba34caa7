"""Masked training per batch against the plain dense torch loop (the physical reference).

LeNet-300-100 on a random 20000 x 784 array, Adam 1.2e-3, batch 60: a plain
dense torch loop (no masks, no skorch) against the estimator training a
round with masks leaving 80 % and 5 % of the weights (random masks, as a
pruning round would give). The estimator's time per batch is skorch's epoch
timer divided by the batches of the epoch (validation off). Epochs alternate
between the two after a warm-up epoch each; medians are compared.

Before the fix the masked rounds paid a tax: ``torch.sqrt`` in Adam's step
over the exact-zero second moments of pruned weights (a tensor holding zeros
is square-rooted several times slower on this CPU; the script prints that
micro-benchmark too). The trainer now uses torch's fused Adam kernel (one
pass over each weight tensor per step, no slow path on zeros); the dense
loop is timed both as written (torch's default Adam) and with the same fused
kernel, so the ratio against the latter isolates what masking and skorch
cost. ``--unfused`` measures the estimator with the default Adam kernel
instead (whose pruned entries' second moments the trainer then starts at 1,
:func:`sklottery.training.prime_adam_state`), ``--unfused --no-prime`` the
original behaviour.

``--long`` measures training over several epochs of one run instead: Adam's
moments of dead units then decay into denormal floats, which CPUs process
many times slower; the trainer flushes denormals to zero while it trains
(:func:`sklottery.training.flush_denormals`). It prints ms per batch per epoch
for the plain dense loop (as written, and with flushing) and for a masked
estimator round (as shipped, and with flushing switched off).

Run:  python benchmarks/bench_masked_step.py [--epochs 5] [--threads 1] [--unfused [--no-prime]] [--long]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np
import torch

import sklottery.training.skorch as training
from sklottery import LotteryTicketClassifier
from sklottery.modules import MLP


def sqrt_micro(n=235_200, repeats=200):
    out = {}
    for name, t in [("zeros", torch.zeros(n)), ("ones", torch.ones(n)),
                    ("20 % zeros", (torch.rand(n) > 0.2).float())]:
        for _ in range(20):
            torch.sqrt(t)
        t0 = time.perf_counter()
        for _ in range(repeats):
            torch.sqrt(t)
        out[name] = (time.perf_counter() - t0) / repeats * 1e6
    return out


class DenseLoop:
    """The plain dense loop: one call = the first epoch of a fresh network and Adam.

    Like the estimator's round (a fresh optimizer every round), every call
    starts from a new network: both sides are timed on the same stage of
    training (long runs let Adam's moments of dead units decay into denormal
    floats, which slows any loop; see the note printed at the end).
    """

    def __init__(self, X, y, batch_size, lr, fused=False):
        self.X, self.y, self.bs, self.lr, self.fused = X, y, batch_size, lr, fused
        self.loss = torch.nn.CrossEntropyLoss()
        self.g = torch.Generator().manual_seed(0)

    def __call__(self):
        torch.manual_seed(0)
        model = MLP(784, 10)  # LeNet-300-100 with the estimator's Glorot init
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, fused=self.fused or None)
        perm = torch.randperm(len(self.X), generator=self.g)
        X, y = self.X[perm], self.y[perm]
        t0 = time.perf_counter()
        for i in range(0, len(X), self.bs):
            opt.zero_grad()
            self.loss(model(X[i:i + self.bs]), y[i:i + self.bs]).backward()
            opt.step()
        return (time.perf_counter() - t0) / -(-len(X) // self.bs)


class MaskedRound:
    """The estimator training one round under masks keeping ``keep`` of the weights."""

    def __init__(self, X, y, batch_size, lr, keep):
        self.est = LotteryTicketClassifier(max_epochs=1, batch_size=batch_size,
                                           learning_rate_init=lr, n_rounds=0,
                                           validation_fraction=0, random_state=0,
                                           n_threads=None)  # --threads, as the loops
        g = torch.Generator().manual_seed(1)
        shapes = {"layers.0.weight": (300, 784), "layers.2.weight": (100, 300),
                  "layers.4.weight": (10, 100)}
        self.masks = {n: torch.rand(s, generator=g) < keep for n, s in shapes.items()}
        self.X, self.y = X.numpy(), y.numpy()
        self.bs = batch_size

    def __call__(self):
        self.est.fit(self.X, self.y, initial_masks=self.masks)
        hist = self.est.net_.history
        return float(hist[-1, "dur"]) / -(-len(self.X) // self.bs)


def long_runs(epochs):
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.random((20000, 784), dtype=np.float32))
    y = torch.as_tensor(rng.integers(0, 10, 20000))
    n_batches = -(-len(X) // 60)

    def dense(flush):
        torch.manual_seed(0)
        model = MLP(784, 10)
        opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
        loss = torch.nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(0)
        out = []
        with training.flush_denormals() if flush else contextlib.nullcontext():
            for _ in range(epochs):
                perm = torch.randperm(len(X), generator=g)
                Xp, yp = X[perm], y[perm]
                t0 = time.perf_counter()
                for i in range(0, len(X), 60):
                    opt.zero_grad()
                    loss(model(Xp[i:i + 60]), yp[i:i + 60]).backward()
                    opt.step()
                out.append(1000 * (time.perf_counter() - t0) / n_batches)
        return out

    def estimator(flush):
        original = training.flush_denormals
        if not flush:
            training.flush_denormals = contextlib.nullcontext
        try:
            masks = MaskedRound(X, y, 60, 1.2e-3, 0.2).masks
            est = LotteryTicketClassifier(max_epochs=epochs, n_rounds=0, validation_fraction=0,
                                          random_state=0, n_threads=None)
            est.fit(X.numpy(), y.numpy(), initial_masks=masks)
        finally:
            training.flush_denormals = original
        return [1000 * float(d) / n_batches for d in est.net_.history[:, "dur"]]

    print(f"LeNet-300-100, 20000 x 784, Adam, batch 60, ms per batch in epochs 1..{epochs}")
    for name, times in [("dense loop", dense(False)), ("dense loop, flushing", dense(True)),
                        ("estimator, 20 % weights (as shipped)", estimator(True)),
                        ("estimator, 20 % weights, no flushing", estimator(False))]:
        print(f"  {name:<40} " + " ".join(f"{t:6.2f}" for t in times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--unfused", action="store_true",
                        help="the estimator with torch's default (unfused) Adam kernel")
    parser.add_argument("--no-prime", action="store_true",
                        help="with --unfused: without priming Adam's state (the original)")
    parser.add_argument("--long", action="store_true",
                        help="several epochs of one run: the denormal slowdown")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.long:
        return long_runs(args.epochs)
    if args.no_prime:
        training.prime_adam_state = lambda *a, **k: None
    if args.unfused:
        import sklottery.base as base

        original = base.BaseLotteryTicket._build_net

        def unfused(self, *a, **k):
            net = original(self, *a, **k)
            net.set_params(optimizer__fused=None)
            return net

        base.BaseLotteryTicket._build_net = unfused
    micro = sqrt_micro()
    print("torch.sqrt over 235,200 floats: " + ", ".join(
        f"{k} {v:.0f} us" for k, v in micro.items()))
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.random((20000, 784), dtype=np.float32))
    y = torch.as_tensor(rng.integers(0, 10, 20000))
    dense = DenseLoop(X, y, 60, 1.2e-3)
    dense_fused = DenseLoop(X, y, 60, 1.2e-3, fused=True)
    print(f"LeNet-300-100, 20000 x 784, Adam, batch 60, {args.threads} torch thread(s), "
          f"median of {args.epochs} alternating epochs"
          + (" (estimator: unfused Adam)" if args.unfused else "")
          + (" (Adam state NOT primed)" if args.no_prime else ""))
    print("  ms per batch: plain dense loop (default Adam) | plain dense loop (fused Adam) "
          "| masked estimator round; ratios to each loop")
    for keep in (0.8, 0.05):
        masked = MaskedRound(X, y, 60, 1.2e-3, keep)
        dense(), dense_fused(), masked()  # warm-up
        d, f, m = [], [], []
        for _ in range(args.epochs):
            d.append(dense())
            f.append(dense_fused())
            m.append(masked())
        md, mf, mm = (statistics.median(v) for v in (d, f, m))
        print(f"  {100 * keep:4.0f} % weights left: {1000 * md:.3f} | {1000 * mf:.3f} | "
              f"{1000 * mm:.3f}   ratios {mm / md:.2f} | {mm / mf:.2f}")


if __name__ == "__main__":
    main()
