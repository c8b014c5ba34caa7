"""Thread policies on a quiet and on a busy machine: which default cannot collapse?

On a small machine that runs other jobs, OpenMP's worker threads spin while
they wait (libgomp's default active wait policy), so with two torch threads
on two busy cores a fit can slow down many times over. This script measures,
for each thread policy, the seconds per training round of a fit in a fresh
subprocess (the OpenMP settings are read when torch loads), once on a quiet
machine and once with competing CPU-bound processes running, and prints each
policy's ratio to the best policy of the same condition.

Policies:

* ``1 thread``: ``n_threads=1``, sklottery's default;
* ``torch's threads``: ``n_threads=None``, torch's own setting (as many
  threads as cores) and OpenMP's default (active, spinning) wait policy;
* ``passive wait``: torch's threads with ``OMP_WAIT_POLICY=PASSIVE`` set
  before torch loads (threads sleep instead of spinning).

Run::

    python benchmarks/bench_threads.py            # digits and a 20000 x 784 problem
    python benchmarks/bench_threads.py --competitors 4 --repeats 3

The medians are of ``--repeats`` fits per policy, alternated between
policies, all in one run of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time
setup = json.loads(sys.argv[1])
import numpy as np
import torch
from sklottery import LotteryTicketClassifier
if setup["data"] == "digits":
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    epochs = 10
else:
    rng = np.random.RandomState(0)
    X = rng.rand(20000, 784).astype(np.float32)
    y = (X[:, :392].sum(1) > X[:, 392:].sum(1)).astype(int)
    epochs = 1
clf = LotteryTicketClassifier(n_rounds=1, max_epochs=epochs, random_state=0,
                              n_threads=setup["n_threads"])
t0 = time.perf_counter()
clf.fit(X, y)
seconds = [r["seconds"] for r in clf.rounds_]
print(json.dumps({"round_seconds": float(np.median(seconds)),
                  "threads": setup["n_threads"] or torch.get_num_threads(),
                  "wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)")}))
"""

POLICIES = {
    "1 thread (default)": dict(env={}, n_threads=1),
    "torch's threads (None)": dict(env={}, n_threads=None),
    "passive wait": dict(env={"OMP_WAIT_POLICY": "PASSIVE"}, n_threads=None),
}


def run_child(policy, data):
    spec = POLICIES[policy]
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    env.update(spec["env"])
    setup = dict(n_threads=spec["n_threads"], data=data)
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(setup)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def competitors(n):
    """``n`` CPU-bound processes (busy loops), started now."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def measure(data, repeats, load):
    procs = competitors(load)
    try:
        time.sleep(1.0 if load else 0.0)
        times = {p: [] for p in POLICIES}
        info = {}
        for _ in range(repeats):
            for policy in POLICIES:
                res = run_child(policy, data)
                times[policy].append(res["round_seconds"])
                info[policy] = res
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
    med = {p: sorted(v)[len(v) // 2] for p, v in times.items()}
    return med, info


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--competitors", type=int, default=4,
                        help="busy-loop processes for the busy condition (default 4: a load "
                             "of about 5 on 2 cores with the fit itself)")
    parser.add_argument("--data", default="digits,random",
                        help="digits (1797 x 64, 10 epochs a round) and/or random "
                             "(20000 x 784, 1 epoch a round)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores; seconds per round (median of {args.repeats} fits, "
          "each in a fresh process); ratio = to the best policy of the same condition\n")
    for data in args.data.split(","):
        for load in (0, args.competitors):
            med, info = measure(data, args.repeats, load)
            best = min(med.values())
            cond = "quiet" if not load else f"{load} competing busy processes"
            print(f"{data}, {cond}:")
            for policy, sec in med.items():
                i = info[policy]
                print(f"  {policy:<26} {sec:8.3f} s/round  ratio {sec / best:5.2f}  "
                      f"(torch threads {i['threads']}, OMP_WAIT_POLICY {i['wait_policy']})")
            print(flush=True)


if __name__ == "__main__":
    main()
