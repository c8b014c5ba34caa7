"""A grid search on a local Dask cluster vs one process: the measured speed-up.

``GridSearchCV(LotteryTicketClassifier(...), grid, cv=3)`` on scikit-learn's
digits over a fixed grid of 4 candidates (12 fits of 3 IMP rounds each):
once in this process (``n_jobs=1``; torch uses its default threads), once
under ``joblib.parallel_config(backend="dask")`` on a
:class:`distributed.LocalCluster` of ``--workers`` worker processes x 1
thread on the loopback interface (``n_jobs=-1``; each worker's torch runs
one thread, Dask's default). The cluster's start-up is timed separately.
Both searches must pick the same parameters with the same scores.

Run:  python benchmarks/bench_dask.py [--workers 2] [--epochs 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import joblib
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sklottery import LotteryTicketClassifier

GRID = {"learning_rate_init": [1.2e-3, 3e-3], "pruning_rate": [0.2, 0.5]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import distributed

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    est = LotteryTicketClassifier(max_epochs=args.epochs, n_rounds=3, random_state=0)
    n_fits = 3 * int(np.prod([len(v) for v in GRID.values()]))
    print(f"GridSearchCV on digits: {n_fits} fits (LeNet-300-100, 3 rounds x {args.epochs} "
          f"epochs); {os.cpu_count()} CPUs, torch {torch.get_num_threads()} threads locally")
    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                       processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    startup = time.perf_counter() - t0
    local_t, dask_t = [], []
    try:
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            local = GridSearchCV(est, GRID, cv=3, n_jobs=1).fit(X, y)
            local_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with joblib.parallel_config(backend="dask"):
                remote = GridSearchCV(est, GRID, cv=3, n_jobs=-1).fit(X, y)
            dask_t.append(time.perf_counter() - t0)
            same = (remote.best_params_ == local.best_params_ and np.allclose(
                remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]))
            if not same:
                print("  WARNING: the cluster's search differs from the local one")
    finally:
        client.close()
        cluster.close()
    lm, dm = statistics.median(local_t), statistics.median(dask_t)
    print(f"  cluster start-up ({args.workers} workers x 1 thread): {startup:.2f} s")
    print(f"  n_jobs=1 in this process:  {lm:.2f} s  (runs: "
          + " ".join(f"{t:.2f}" for t in local_t) + ")")
    print(f"  Dask LocalCluster, n_jobs=-1: {dm:.2f} s  (runs: "
          + " ".join(f"{t:.2f}" for t in dask_t) + ")")
    print(f"  speed-up: {lm / dm:.2f}x; same best parameters and scores: {same}")


if __name__ == "__main__":
    main()
