"""Per-epoch training cost on Fashion-MNIST: LotteryTicketClassifier vs a hand-written torch loop.

Two networks of Frankle & Carbin (2019) on 28x28 Fashion-MNIST images:
LeNet-300-100 (``module=None``, the MLP) and Conv-2 (``module='conv2'``,
``input_shape=(1, 28, 28)``). For each, the estimator's skorch net and a
hand-written torch loop train the same module class (same constructor
arguments), with batch 60, Adam (lr 1.2e-3) and the same ~50 % random masks on
every prunable layer, applied by multiplication to the gradients before each
optimizer step and to the weights after it. Validation is disabled.

One call of either loop is one epoch over the same data, timed with
``time.perf_counter`` around the whole epoch (for the estimator:
``net_.fit_loop(X, y, epochs=1)``, skorch's hooks and history included). The
two loops alternate epoch by epoch, after one warm-up epoch each, and the
medians are compared, so background load affects both alike; the ratio of the
fastest epochs and the median of the per-pair ratios are printed too (more
robust on a busy machine). The loops and the timing are those of
``benchmarks/bench_training.py`` (:class:`HandLoop`, :class:`EstimatorLoop`,
:func:`compare`), imported from it.

Conv-2 costs about 60 times more per image than LeNet-300-100 on a CPU, so it
runs on a subset of the training images by default (``--n-conv2``); the subset
sizes are printed. If the Fashion-MNIST files cannot be found locally (nothing
is downloaded), random data of the same shape is used instead and the output
says so; ``--random-data`` forces it.

On a busy machine a few long epochs give noisy ratios; many short ones are
steadier, e.g. ``--only LeNet-300-100 --n-lenet 6000 --epochs 25`` or
``--only Conv-2 --n-conv2 120 --conv2-epochs 25``.

Run:  python benchmarks/bench_images.py [--epochs 5] [--conv2-epochs 3]
                                         [--n-lenet 60000] [--n-conv2 1200]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

from sklottery.datasets import fetch_fashion_mnist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_training import compare  # noqa: E402

BATCH_SIZE = 60
LR = 1.2e-3

#: name -> (estimator keyword arguments, module constructor keyword arguments)
NETWORKS = {
    "LeNet-300-100": (
        dict(module=None, hidden_layer_sizes=(300, 100), n_threads=None),
        dict(hidden_layer_sizes=(300, 100)),
    ),
    "Conv-2": (
        dict(module="conv2", input_shape=(1, 28, 28), n_threads=None),
        dict(input_shape=(1, 28, 28)),
    ),
}


def load_data(force_random=False):
    """Fashion-MNIST training images as (n, 784) float32 in [0, 1], and labels.

    Returns ``(X, y, source)``; random data of the same shape when the files
    are not available locally.
    """
    if not force_random:
        try:
            X, y = fetch_fashion_mnist(subset="train", return_X_y=True,
                                       download_if_missing=False)
            return X, y, "Fashion-MNIST training split"
        except OSError as exc:
            print(f"Fashion-MNIST not found locally, so RANDOM data of the same shape "
                  f"(60000 x 784 uniform in [0, 1], random labels) is used instead. "
                  f"Timings barely depend on the values. ({exc})")
    rng = np.random.RandomState(0)
    X = rng.rand(60000, 784).astype(np.float32)
    y = rng.randint(0, 10, 60000)
    return X, y, "random data (60000 x 784)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5,
                        help="timed LeNet-300-100 epochs of each loop, alternating (default 5)")
    parser.add_argument("--conv2-epochs", type=int, default=3,
                        help="timed Conv-2 epochs of each loop (default 3)")
    parser.add_argument("--n-lenet", type=int, default=60000,
                        help="training images for LeNet-300-100 (default: all 60000)")
    parser.add_argument("--n-conv2", type=int, default=1200,
                        help="training images for Conv-2 (default 1200)")
    parser.add_argument("--only", choices=sorted(NETWORKS), help="time one network only")
    parser.add_argument("--random-data", action="store_true",
                        help="use random data of Fashion-MNIST's shape")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y, source = load_data(args.random_data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); data: {source}; "
          f"batch {BATCH_SIZE}, Adam lr {LR}, ~50 % random masks; validation off; "
          "median epoch times, loops alternating")
    rng = np.random.RandomState(0)
    plan = [("LeNet-300-100", args.n_lenet, args.epochs),
            ("Conv-2", args.n_conv2, args.conv2_epochs)]
    for name, n, epochs in plan:
        if args.only and name != args.only:
            continue
        idx = rng.permutation(len(X))[:min(n, len(X))]
        estimator_kwargs, module_kwargs = NETWORKS[name]
        compare(name, X[idx], y[idx], epochs, batch_size=BATCH_SIZE, lr=LR,
                estimator_kwargs=estimator_kwargs, module_kwargs=module_kwargs,
                wall_clock=True, details=True)


if __name__ == "__main__":
    main()
