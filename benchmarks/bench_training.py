"""Per-epoch training cost of LotteryTicketClassifier vs a hand-written torch loop.

Both train the same network (LeNet-300-100-style MLP), with the same batch
size, optimizer (Adam), learning rate and the same ~50 % random masks
(gradients masked before the step, weights re-masked after it). The
estimator's epoch time is skorch's own per-epoch timer (``history[:, 'dur']``,
validation disabled); the hand loop is timed with ``time.perf_counter``. The
two loops alternate epoch by epoch, after one warm-up epoch each, and the
medians are compared, so background load affects both alike.

:class:`HandLoop`, :class:`EstimatorLoop` and :func:`compare` take any module
of :mod:`sklottery.modules` (``benchmarks/bench_images.py`` uses them for
LeNet-300-100 and Conv-2 on Fashion-MNIST).

Run:  python benchmarks/bench_training.py [--epochs 20] [--skip-large]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.datasets import load_digits

from sklottery import LotteryTicketClassifier
from sklottery.modules import get_module_class, layer_kinds

#: The MLP of Frankle & Carbin's LeNet-300-100 (estimator and module keywords).
LENET_300_100 = dict(hidden_layer_sizes=(300, 100))


def random_masks(module, keep=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = dict(module.named_parameters())
    return {n: torch.rand(params[n].shape, generator=g) < keep for n in layer_kinds(module)}


class HandLoop:
    """The same training written directly in torch: one call = one epoch.

    Trains ``module_cls(**module_kwargs)`` (built after ``torch.manual_seed(0)``).
    """

    def __init__(self, X, y, module_cls, module_kwargs, masks, batch_size, lr):
        torch.manual_seed(0)
        self.model = module_cls(**module_kwargs)
        params = dict(self.model.named_parameters())
        self.pairs = [(params[n], m.to(torch.float32)) for n, m in masks.items()]
        with torch.no_grad():
            for p, keep in self.pairs:
                p.mul_(keep)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.X = torch.as_tensor(X, dtype=torch.float32)
        self.y = torch.as_tensor(y, dtype=torch.int64)
        self.g = torch.Generator().manual_seed(0)
        self.batch_size = batch_size

    def epoch(self):
        t0 = time.perf_counter()
        self.model.train()
        perm = torch.randperm(len(self.X), generator=self.g)
        Xp, yp = self.X[perm], self.y[perm]
        bs = self.batch_size
        for start in range(0, len(Xp), bs):
            xb, yb = Xp[start:start + bs], yp[start:start + bs]
            self.opt.zero_grad()
            loss = self.loss_fn(self.model(xb), yb)
            loss.backward()
            for p, keep in self.pairs:
                p.grad.mul_(keep)
            self.opt.step()
            with torch.no_grad():
                for p, keep in self.pairs:
                    p.mul_(keep)
            loss.item()
        return time.perf_counter() - t0


class EstimatorLoop:
    """LotteryTicketClassifier's skorch net: one call = one epoch of its fit loop.

    ``estimator_kwargs`` choose the network (``module``, ``input_shape``,
    ``hidden_layer_sizes``...). An epoch is timed by skorch's own timer
    (``history[-1, 'dur']``), or with ``wall_clock=True`` by
    ``time.perf_counter`` around the whole ``net_.fit_loop`` call (skorch's
    hooks and history included).
    """

    def __init__(self, X, y, estimator_kwargs, masks, batch_size, lr, wall_clock=False):
        self.clf = LotteryTicketClassifier(
            **estimator_kwargs, max_epochs=1, batch_size=batch_size, learning_rate_init=lr,
            n_rounds=0, validation_fraction=0, random_state=0,
            n_threads=None,  # torch's setting, as the hand-written loop
        ).fit(X, y, initial_masks=masks)
        # the same tensors fit() trains on (validation_fraction=0: all of X, in order)
        self.X = torch.as_tensor(np.asarray(X, dtype=np.float32).reshape(len(X), -1))
        self.y = torch.as_tensor(np.searchsorted(self.clf.classes_, y), dtype=torch.int64)
        self.wall_clock = wall_clock

    def epoch(self):
        net = self.clf.net_
        t0 = time.perf_counter()
        net.fit_loop(self.X, self.y, epochs=1)
        if self.wall_clock:
            return time.perf_counter() - t0
        return net.history[-1, "dur"]  # skorch's own epoch timer


def compare(name, X, y, n_epochs, batch_size=60, lr=1.2e-3, estimator_kwargs=None,
            module_kwargs=None, wall_clock=False, details=False):
    """Time ``n_epochs`` alternating epochs of both loops; print and return the median ratio.

    ``estimator_kwargs`` go to :class:`~sklottery.LotteryTicketClassifier`,
    ``module_kwargs`` (plus ``n_features`` and ``n_classes``) to the same
    module class for the hand loop; both default to LeNet-300-100.
    ``details`` adds a line with the ratio of the fastest epochs, the median
    of the per-pair ratios and every epoch time.
    """
    estimator_kwargs = LENET_300_100 if estimator_kwargs is None else estimator_kwargs
    module_kwargs = LENET_300_100 if module_kwargs is None else module_kwargs
    module_cls = get_module_class(estimator_kwargs.get("module"))
    module_kwargs = dict(module_kwargs, n_features=X.shape[1], n_classes=len(np.unique(y)))
    masks = random_masks(module_cls(**module_kwargs))
    ours = EstimatorLoop(X, y, estimator_kwargs, masks, batch_size, lr, wall_clock)
    assert type(ours.clf.net_.module_) is module_cls
    hand = HandLoop(X, y, module_cls, module_kwargs, masks, batch_size, lr)
    ours.epoch(), hand.epoch()  # warm-up
    t_ours, t_hand = [], []
    for _ in range(n_epochs):  # alternate, so background load hits both alike
        t_ours.append(ours.epoch())
        t_hand.append(hand.epoch())
    o, h = statistics.median(t_ours), statistics.median(t_hand)
    n_iter = -(-len(X) // batch_size)
    print(f"{name:<18} {X.shape[0]:>6}x{X.shape[1]:<4} ({n_iter:>4} batches/epoch) median: "
          f"sklottery {o * 1e3:8.1f} ms/epoch  hand loop {h * 1e3:8.1f} ms/epoch  "
          f"ratio {o / h:5.3f}  ({1e3 * o / n_iter:.2f} vs {1e3 * h / n_iter:.2f} ms/batch)",
          flush=True)
    if details:
        paired = statistics.median(a / b for a, b in zip(t_ours, t_hand))
        print(f"{'':<18} min ratio {min(t_ours) / min(t_hand):5.3f}, median of paired ratios "
              f"{paired:5.3f}; epochs (s): sklottery {' '.join(f'{t:.2f}' for t in t_ours)} | "
              f"hand {' '.join(f'{t:.2f}' for t in t_hand)}", flush=True)
    return o / h


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20,
                        help="timed epochs of each loop, alternating (default 20)")
    parser.add_argument("--skip-large", action="store_true", help="only the digits case")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"MLP 300-100, Adam, batch 60, ~50 % masks; median of {args.epochs} epochs")
    X, y = load_digits(return_X_y=True)
    compare("digits", (X / 16).astype(np.float32), y, args.epochs)
    if not args.skip_large:
        rng = np.random.RandomState(0)
        Xl = rng.rand(60000, 784).astype(np.float32)
        yl = rng.randint(0, 10, 60000)
        compare("random 60k x 784", Xl, yl, max(3, args.epochs // 5))


if __name__ == "__main__":
    main()
