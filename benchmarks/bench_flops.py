"""Achieved GFLOP/s of fit on 60000 x 784 beside the machine's matmul peak.

The physical reference for training speed is what the CPU can multiply: a
large ``torch.mm`` (2048 x 2048 by 2048 x 2048, median of repeats) timed in
the same run and with the same threads. Against it the script times one
epoch of LeNet-300-100 (784-300-100-10, Adam, batch 60) on the 60000
Fashion-MNIST training images (``dataset-fashion-mnist``; a random array of
the same shape where the files are missing) trained by the estimator, and
by a plain dense torch loop for comparison, and prints the achieved GFLOP/s
of each and their share of the peak. ``--batch-size`` shows how much of the
gap is the small batch (each step is a 60-row matmul plus per-step
overheads: optimizer, masking, bookkeeping).

FLOPs per sample, counted exactly: forward 2 x 266,200 multiply-adds;
backward 2 x 266,200 for the weight gradients plus 2 x 31,000 for the input
gradients of layers 2 and 3 (the first layer's input needs none), so
1,126,800 per sample, 67.6 GFLOP per epoch of 60000.

Run:  python benchmarks/bench_flops.py [--threads 1 2] [--batch-size 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from sklottery import LotteryTicketClassifier
from sklottery.datasets import fetch_fashion_mnist
from sklottery.modules import MLP

LAYERS = [(784, 300), (300, 100), (100, 10)]
MACS = sum(a * b for a, b in LAYERS)  # 266,200
FLOPS_PER_SAMPLE = 4 * MACS + 2 * sum(a * b for a, b in LAYERS[1:])


def matmul_peak(n=2048, repeats=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def data():
    try:
        X, y = fetch_fashion_mnist(subset="train", return_X_y=True, download_if_missing=False)
        return X.astype(np.float32), y.astype(np.int64), "Fashion-MNIST train (60000 x 784)"
    except OSError:
        rng = np.random.default_rng(0)
        return (rng.random((60000, 784), dtype=np.float32), rng.integers(0, 10, 60000),
                "random 60000 x 784 (Fashion-MNIST files not found)")


def plain_epoch(X, y, batch_size):
    torch.manual_seed(0)
    model = MLP(784, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    loss = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    perm = torch.randperm(len(Xt))
    Xt, yt = Xt[perm], yt[perm]
    t0 = time.perf_counter()
    for i in range(0, len(Xt), batch_size):
        opt.zero_grad()
        loss(model(Xt[i:i + batch_size]), yt[i:i + batch_size]).backward()
        opt.step()
    return time.perf_counter() - t0


def estimator_epoch(X, y, batch_size):
    est = LotteryTicketClassifier(max_epochs=1, n_rounds=0, batch_size=batch_size,
                                  validation_fraction=0, random_state=0,
                                  n_threads=None)  # the threads set above
    est.fit(X, y)
    return float(est.net_.history[-1, "dur"])  # the training epoch, without set-up


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[60])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X, y, what = data()
    flops = FLOPS_PER_SAMPLE * len(X)
    print(f"LeNet-300-100 on {what}: {FLOPS_PER_SAMPLE:,} FLOP per sample, "
          f"{flops / 1e9:.1f} GFLOP per epoch")
    print(f"  {'threads':>7} {'batch':>5} {'mm peak GFLOP/s':>16} {'plain loop GFLOP/s':>19} "
          f"{'estimator GFLOP/s':>18} {'s/epoch (plain | est.)':>24} {'% of peak (plain | est.)':>25}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        peak = matmul_peak()
        for bs in args.batch_size:
            plain, est = [], []
            for _ in range(args.repeats):  # alternating
                plain.append(plain_epoch(X, y, bs))
                est.append(estimator_epoch(X, y, bs))
            p, e = statistics.median(plain), statistics.median(est)
            gp, ge = flops / p / 1e9, flops / e / 1e9
            print(f"  {threads:>7} {bs:>5} {peak:>16.1f} {gp:>19.1f} {ge:>18.1f} "
                  f"{p:>11.2f} | {e:<10.2f} {100 * gp / peak:>12.1f} | {100 * ge / peak:<10.1f}")


if __name__ == "__main__":
    main()
