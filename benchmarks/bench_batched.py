"""A ticket curve batched vs unbatched: wall time of the same experiment.

``ticket_curve`` on scikit-learn's digits with ``compare``'s default
strategies (rewind, random_mask chains; random-reinit mask controls),
LeNet-300-100, 5 trials: the batched trainer (the default; the trials x
chain strategies train as one stacked model round by round, then the
controls of each round) against ``batched=False`` (every run its own skorch
fit) with ``n_jobs=1`` and ``n_jobs=2``, and the batched trainer with
``n_jobs=2`` (each worker batches half of the runs). All four run in one
process, one after another, each ``--repeats`` times (alternating); medians
and ratios are printed, and the results are checked to agree (same test
accuracies to 1e-4).

Run:  python benchmarks/bench_batched.py [--epochs 10] [--rounds 3] [--trials 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from sklearn.datasets import load_digits

from sklottery import LotteryTicketClassifier
from sklottery.analysis import ticket_curve

CONFIGS = [
    ("batched, n_jobs=1 (default)", dict(batched=True, n_jobs=None)),
    ("batched=False, n_jobs=1", dict(batched=False, n_jobs=None)),
    ("batched=False, n_jobs=2", dict(batched=False, n_jobs=2)),
    ("batched, n_jobs=2", dict(batched=True, n_jobs=2)),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strategies", default="rewind,random,random_mask")
    args = parser.parse_args()
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    # torch's threads (as the README's numbers were measured); ticket_curve caps
    # them per worker with n_jobs
    est = LotteryTicketClassifier(max_epochs=args.epochs, n_rounds=args.rounds,
                                  n_threads=None)
    strategies = args.strategies.split(",")
    print(f"ticket_curve on digits ({len(X)} samples), LeNet-300-100, strategies "
          f"{strategies}, {args.trials} trials, {args.rounds} rounds x {args.epochs} epochs; "
          f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads in the parent")
    times = {name: [] for name, _ in CONFIGS}
    results = {}
    for rep in range(args.repeats):
        for name, kw in CONFIGS:
            t0 = time.perf_counter()
            df = ticket_curve(est, X, y, strategies=strategies, n_trials=args.trials,
                              random_state=0, **kw)
            times[name].append(time.perf_counter() - t0)
            results[name] = df
    ref = results[CONFIGS[1][0]]
    for name, df in results.items():
        diff = float(np.max(np.abs(df["test_acc"].to_numpy() - ref["test_acc"].to_numpy())))
        if diff > 1e-4:
            print(f"  WARNING: {name} differs from the unbatched run by {diff:.2e} in test_acc")
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"  {'configuration':<30} {'seconds (median of %d)' % args.repeats:>24}   runs")
    for name, _ in CONFIGS:
        print(f"  {name:<30} {med[name]:>24.2f}   "
              + " ".join(f"{t:.2f}" for t in times[name]))
    b1 = med[CONFIGS[0][0]]
    best_batched = min(b1, med[CONFIGS[3][0]])
    print(f"  speed-up of the batched trainer (n_jobs=1) over batched=False, n_jobs=1: "
          f"{med[CONFIGS[1][0]] / b1:.2f}x")
    print(f"  speed-up of the best batched run over batched=False, n_jobs=2: "
          f"{med[CONFIGS[2][0]] / best_batched:.2f}x")
    print(f"  rows per run: {len(ref)}; largest test_acc difference to batched=False: "
          + f"{max(float(np.max(np.abs(df['test_acc'] - ref['test_acc']))) for df in results.values()):.1e}")


if __name__ == "__main__":
    main()
