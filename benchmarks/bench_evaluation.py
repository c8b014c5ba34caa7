"""Cost of the evaluation grid (``eval_every``) in a ticket_curve-style fit.

:func:`sklottery.analysis.ticket_curve` evaluates the validation loss (for the
early-stop iteration) and the test accuracy on the estimator's evaluation grid,
``eval_every='auto'`` = every ``min(100, iterations per epoch)`` iterations, as
Frankle & Carbin evaluate every 100 iterations. This script measures what that
costs on digits (LeNet-300-100, batch 60, 1213 training / 135 validation / 449
test images, 15 epochs = 315 iterations per round, as ``python -m sklottery
compare``): one round is fitted with the grid and once with a single
evaluation at the end of the round (``eval_every`` larger than the round), both
with ticket_curve's test-set callback. The two alternate, after a warm-up fit
each, and the medians are compared, so background load affects both alike.

Run:  python benchmarks/bench_evaluation.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sklottery import LotteryTicketClassifier
from sklottery.analysis import EvaluationCallback


def fit_seconds(X, y, X_test, y_test, eval_every):
    cb = EvaluationCallback(torch.as_tensor(X_test, dtype=torch.float32),
                            torch.as_tensor(y_test), torch.as_tensor(X, dtype=torch.float32),
                            torch.as_tensor(y))
    est = LotteryTicketClassifier(n_rounds=0, max_epochs=15, eval_every=eval_every,
                                  callbacks=[("ev", cb)], random_state=0,
                                  n_threads=None)  # --threads
    t0 = time.perf_counter()
    est.fit(X, y)
    seconds = time.perf_counter() - t0
    n_iter = est.rounds_[0]["n_iter"]
    every = n_iter if eval_every != "auto" else min(100, n_iter // 15)
    return seconds, -(-n_iter // min(every, n_iter))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0,
                                              stratify=y)
    grid, end_only = [], []
    fit_seconds(X_tr, y_tr, X_te, y_te, "auto")  # warm-up
    fit_seconds(X_tr, y_tr, X_te, y_te, 10**9)
    for _ in range(args.repeats):
        s, n_grid = fit_seconds(X_tr, y_tr, X_te, y_te, "auto")
        grid.append(s)
        s, n_end = fit_seconds(X_tr, y_tr, X_te, y_te, 10**9)
        end_only.append(s)
    a, b = statistics.median(grid), statistics.median(end_only)
    print(f"digits, LeNet-300-100, one round of 15 epochs, {args.threads} torch thread(s), "
          f"median of {args.repeats}")
    print(f"  eval_every='auto' ({n_grid} evaluations): {1000 * a:8.1f} ms")
    print(f"  one evaluation at the end ({n_end}):      {1000 * b:8.1f} ms")
    print(f"  ratio {a / b:.3f}  (overhead of the grid {100 * (a / b - 1):+.1f} %)")


if __name__ == "__main__":
    main()
