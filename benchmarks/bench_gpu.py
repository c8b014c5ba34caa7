"""Batched LeNet-300-100 steps on a CUDA device, against the physical references.

Prints, from one run on the device:

* the fp32 matmul peak of the device (an 8192^3 matmul);
* ms per training step for 1, 10, 50 and 200 LeNet-300-100 members at batch
  60 on 60 000 random 784-feature rows (the Fashion-MNIST shape), pruned to
  80 %:

  - ``plain loop``: one network, a plain eager torch loop (only for 1 member);
  - ``floor (graph)``: a hand-written stacked step (masked gradients, fused
    capturable Adam, per-member batch indices drawn on the device) captured
    in one CUDA graph: what a launch-free step costs;
  - every registered trainer that accepts the request (``batched``, and a
    CUDA-graph trainer once one is registered), through ``fit_many``:
    ``RoundResult.seconds`` is per member, so a step of the batch costs
    ``seconds * members / n_iter`` (a group of one member trains with the
    skorch trainer, as ``fit_many`` schedules it);

  and the GFLOP/s each reaches (6 x multiply-adds per sample: forward and
  backward);
* optionally (``--reproduce``) the wall time of ``python -m sklottery
  reproduce frankle-carbin-lenet --full --device cuda``.

Run on a GPU machine: ``python benchmarks/bench_gpu.py [--members 1,10,50,200]``
(``benchmarks/gpu_check.sh`` runs it with the CUDA tests). Without CUDA it
says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_batched import round1_masks  # noqa: E402  (the same round-1 masks)

SIZES = (784, 300, 100, 10)
MACS = sum(a * b for a, b in zip(SIZES, SIZES[1:]))  # multiply-adds per sample


def _sync():
    torch.cuda.synchronize()


def matmul_peak(n=8192, repeats=10):
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    a @ b
    _sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync()
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e9


def plain_loop(X, y, bs, steps):
    """One network, an eager torch loop: ms per step."""
    model = torch.nn.Sequential(torch.nn.Linear(784, 300), torch.nn.ReLU(),
                                torch.nn.Linear(300, 100), torch.nn.ReLU(),
                                torch.nn.Linear(100, 10)).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    n = len(X)
    perm = torch.randperm(n, device="cuda")
    for warm in (True, False):
        _sync()
        t0 = time.perf_counter()
        for s in range(10 if warm else steps):
            idx = perm[(s * bs) % (n - bs):][:bs]
            loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync()
    return (time.perf_counter() - t0) / steps * 1e3


def graph_floor(X, y, members, bs, steps):
    """A hand-written stacked step captured in one CUDA graph: ms per step."""
    n = len(X)
    torch.cuda.manual_seed(0)  # the index draws use the default CUDA generator (graph-safe)
    Ws = [(torch.randn(members, a, b, device="cuda") * a ** -0.5).requires_grad_()
          for a, b in zip(SIZES, SIZES[1:])]
    bs_ = [torch.zeros(members, 1, b, device="cuda").requires_grad_() for b in SIZES[1:]]
    masks = [torch.stack([m[f"layers.{2 * i}.weight"].t() for m in round1_masks(members)])
             .float().cuda() for i in range(3)]
    opt = torch.optim.Adam(Ws + bs_, lr=1e-3, fused=True, capturable=True)

    def step():
        idx = torch.randint(0, n, (members, bs), device="cuda")
        h = X[idx]
        for i, (W, b) in enumerate(zip(Ws, bs_)):
            h = torch.baddbmm(b, h, W)
            if i < 2:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(
            h.flatten(0, 1), y[idx].flatten(), reduction="none").view(members, -1).mean(1)
        loss.sum().backward()
        for W, m in zip(Ws, masks):
            W.grad.mul_(m)
        opt.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=False)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=False)
    with torch.cuda.graph(graph):
        step()
    for _ in range(10):
        graph.replay()
    _sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        graph.replay()
    _sync()
    return (time.perf_counter() - t0) / steps * 1e3


def trainer_step(name, Xh, yh, members, bs, epochs=1):
    """ms per batched step of registered trainer ``name`` through fit_many."""
    from sklottery import LotteryTicketClassifier
    from sklottery.training import fit_many

    ests = [LotteryTicketClassifier(max_epochs=epochs, n_rounds=0, batch_size=bs,
                                    validation_fraction=0, random_state=s, device="cuda",
                                    n_threads=1) for s in range(members)]
    fit_many([(e, Xh, yh, {"initial_masks": m}) for e, m in zip(ests, round1_masks(members))],
             trainer=name)
    rec = ests[0].rounds_[0]
    return rec["seconds"] * members / rec["n_iter"] * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="1,10,50,200")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--reproduce", action="store_true",
                        help="also time reproduce frankle-carbin-lenet --full --device cuda")
    parser.add_argument("--reproduce-timeout", type=int, default=900)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here (torch.cuda.is_available() is False)")
        return 2
    from sklottery.training import TRAINERS

    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"fp32 matmul 8192^3: {matmul_peak():.0f} GFLOP/s")
    bs, n = 60, 60000
    rng = np.random.default_rng(0)
    Xh = rng.random((n, 784), dtype=np.float32)
    yh = rng.integers(0, 10, n)
    X, y = torch.from_numpy(Xh).cuda(), torch.from_numpy(yh).cuda()
    names = [t for t in TRAINERS if t != "skorch"]
    print(f"{'members':>8} {'plain loop':>11} {'floor (graph)':>14} "
          + " ".join(f"{t:>12}" for t in names) + "   (ms per step; GFLOP/s)")
    for members in (int(m) for m in args.members.split(",")):
        flops = 6 * MACS * bs * members  # forward + backward
        row = [plain_loop(X, y, bs, args.steps) if members == 1 else float("nan"),
               graph_floor(X, y, members, bs, args.steps)]
        for t in names:
            try:
                row.append(trainer_step(t, Xh, yh, members, bs))
            except Exception as exc:  # noqa: BLE001 - report and go on
                print(f"  {t} with {members} members failed: {type(exc).__name__}: {exc}")
                row.append(float("nan"))
        print(f"{members:>8} " + " ".join(
            f"{v:>7.3f} ({flops / v / 1e6:>5.0f})" if np.isfinite(v) else f"{'-':>13}"
            for v in row), flush=True)
    if args.reproduce:
        t0 = time.perf_counter()
        try:
            rc = subprocess.run([sys.executable, "-m", "sklottery", "reproduce",
                                 "frankle-carbin-lenet", "--full", "--device", "cuda"],
                                timeout=args.reproduce_timeout).returncode
            print(f"reproduce frankle-carbin-lenet --full --device cuda: "
                  f"{time.perf_counter() - t0:.0f} s (exit {rc})")
        except subprocess.TimeoutExpired:
            print(f"reproduce frankle-carbin-lenet --full --device cuda: stopped after "
                  f"{args.reproduce_timeout} s (not finished)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
