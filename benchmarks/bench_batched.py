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

Then the physical reference of a batched step: the per-network cost of one
training step of ``--members`` LeNet-300-100 (784 -> 300 -> 100 -> 10) on
random 784-feature data, pruned to 80 % (a round-1 mask), through the
batched trainer (``fit_many``, no validation split, one thread) against a
hand-written loop over the same stacked members: one ``baddbmm`` per layer,
cross-entropy, the masked gradients and torch's fused Adam, nothing else.

Run:  python benchmarks/bench_batched.py [--epochs 10] [--rounds 3] [--trials 5] [--repeats 3]
      python benchmarks/bench_batched.py --step-only [--members 10]
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
from sklottery.training import fit_many

CONFIGS = [
    ("batched, n_jobs=1 (default)", dict(batched=True, n_jobs=None)),
    ("batched=False, n_jobs=1", dict(batched=False, n_jobs=None)),
    ("batched=False, n_jobs=2", dict(batched=False, n_jobs=2)),
    ("batched, n_jobs=2", dict(batched=True, n_jobs=2)),
]


def _step_data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)


def round1_masks(members, seed=1, keep=0.8):
    """Round-1 style masks: 80 % of every layer kept (the output layer 90 %)."""
    g = torch.Generator().manual_seed(seed)
    sizes = [784, 300, 100, 10]
    out = []
    for _ in range(members):
        masks = {}
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            k = keep if i < 2 else 1 - (1 - keep) / 2
            masks[f"layers.{2 * i}.weight"] = torch.rand(b, a, generator=g) < k
        out.append(masks)
    return out


def batched_step(members, n, bs, epochs):
    """Seconds per network per step through the batched trainer."""
    X, y = _step_data(n)
    ests = [LotteryTicketClassifier(max_epochs=epochs, n_rounds=0, batch_size=bs,
                                    validation_fraction=0, random_state=s, n_threads=1)
            for s in range(members)]
    fit_many([(e, X, y, {"initial_masks": m}) for e, m in zip(ests, round1_masks(members))])
    rec = ests[0].rounds_[0]
    return rec["seconds"] / rec["n_iter"]  # seconds is already per member


def hand_step(members, n, bs, epochs, n_features=784):
    """Seconds per network per step of the hand-written stacked loop."""
    X, y = _step_data(n)
    X = X[:, :n_features].copy()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    sizes = [n_features, 300, 100, 10]
    g = torch.Generator().manual_seed(0)
    Ws = [(torch.randn(members, a, b, generator=g) * a ** -0.5).requires_grad_()
          for a, b in zip(sizes, sizes[1:])]
    bs_ = [torch.zeros(members, 1, b).requires_grad_() for b in sizes[1:]]
    masks = [torch.stack([m[f"layers.{2 * i}.weight"][:, :sizes[i]].t()
                          for m in round1_masks(members)]).float() for i in range(3)]
    with torch.no_grad():
        for W, m in zip(Ws, masks):
            W.mul_(m)
    opt = torch.optim.Adam(Ws + bs_, lr=1e-3, fused=True)
    steps = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        perms = torch.stack([torch.randperm(n, generator=g) for _ in range(members)])
        for start in range(0, n, bs):
            idx = perms[:, start:start + bs]
            h, yb = Xt[idx], yt[idx]
            for i, (W, b) in enumerate(zip(Ws, bs_)):
                h = torch.baddbmm(b, h, W)
                if i < 2:
                    h = torch.relu(h)
            loss = torch.nn.functional.cross_entropy(
                h.flatten(0, 1), yb.flatten(), reduction="none").view(members, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            with torch.no_grad():
                for W, m in zip(Ws, masks):
                    W.grad.mul_(m)
            opt.step()
            steps += 1
    return (time.perf_counter() - t0) / steps / members


def step_reference(members, repeats, n=6000, bs=60, epochs=2):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        b, h = [], []
        for _ in range(repeats):
            b.append(batched_step(members, n, bs, epochs))
            h.append(hand_step(members, n, bs, epochs))
    finally:
        torch.set_num_threads(previous)
    bm, hm = statistics.median(b), statistics.median(h)
    print(f"one training step of {members} LeNet-300-100 (batch {bs}, 80 % of the weights "
          f"kept), one thread, median of {repeats}:")
    print(f"  batched trainer      {bm * 1e3:7.3f} ms per network per step")
    print(f"  hand-written loop    {hm * 1e3:7.3f} ms per network per step "
          "(stacked baddbmm, cross-entropy, masked gradients, fused Adam)")
    print(f"  ratio                {bm / hm:7.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-only", action="store_true",
                        help="only the per-step comparison with the hand-written loop")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strategies", default="rewind,random,random_mask")
    args = parser.parse_args()
    if args.step_only:
        return step_reference(args.members, args.repeats)
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
    # the compute floor of the curve: its member-steps at the hand-written loop's
    # cost per network-step on the same shapes (digits: 64 features), one core
    member_steps = int(ref["n_iter"].sum())
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cost = statistics.median(hand_step(10, len(X), 60, 2, n_features=X.shape[1])
                                 for _ in range(args.repeats))
    finally:
        torch.set_num_threads(previous)
    floor = member_steps * cost
    print(f"  compute floor: {member_steps} member-steps x {cost * 1e3:.3f} ms (hand-written "
          f"stacked loop, 10 members, one core) = {floor:.2f} s on one core, "
          f"{floor / 2:.2f} s on two; batched=False, n_jobs=1 is "
          f"{med[CONFIGS[1][0]] / (floor / 2):.2f}x the two-core floor")
    step_reference(args.members, args.repeats)


if __name__ == "__main__":
    main()
