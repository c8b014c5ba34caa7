"""Peak memory of ``LotteryTicketClassifier.fit`` beyond the data it is given.

Each case runs in a fresh Python process, which

1. imports sklottery and runs a warm-up fit on a few hundred rows, so that
   torch's one-time allocations (kernels, thread pools, skorch's imports)
   are not counted;
2. builds ``X`` (``rows x features`` uniform values, drawn directly in the
   requested dtype: no float64 temporary for float32) and integer labels;
3. records its resident memory, resets the kernel's peak counter (writing
   ``5`` to ``/proc/self/clear_refs``; where that is not possible the peak
   is ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which ``X`` already
   dominates);
4. fits ``LotteryTicketClassifier(n_rounds=0, max_epochs=..., ...)`` (default
   ``validation_fraction=0.1``, so the validation split is included) and
   reads the peak resident memory (``VmHWM``).

It prints the extra peak in MiB and as a multiple of ``X``'s size
(``X.nbytes``: float64 input is twice as large as float32 input of the same
shape). The network (LeNet-300-100 with Adam: about 3 MiB of weights and
moments) and the batches are small next to ``X``; what remains is the data
the estimator prepares from ``X`` (a float32 training/validation split) and
whatever else it copies.

Like the other benchmarks it imports the installed sklottery; to measure a
checkout, put it first: ``PYTHONPATH=. python benchmarks/bench_memory.py``.
One run on this project's 2-core machine (200 000 x 784, 1 epoch): +632 MiB
= 1.06 x a float32 X, +629 MiB = 0.53 x a float64 X; before batches gathered
their own rows and the split was cast block by block, +1157 MiB = 1.93 x and
+1683 MiB = 1.41 x (a shuffled copy of the training set every epoch, and a
float64 copy of the split before its cast).

Run:  python benchmarks/bench_memory.py [--rows 200000] [--features 784]
      [--dtype float32 float64] [--epochs 1] [--one-process] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

MIB = 2 ** 20


def _status_kib(field):
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _maxrss_kib():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS


def _reset_peak():
    """Reset the kernel's peak-RSS counter (VmHWM); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def child(rows, features, dtypes, epochs, batch_size):
    """Measure one fit per dtype in this process; returns a list of dicts of numbers.

    With several dtypes, each fit starts after the previous data and model are
    freed, from the resident memory then, with the peak counter reset.
    """
    import gc

    import numpy as np

    from sklottery import LotteryTicketClassifier

    params = dict(hidden_layer_sizes=(300, 100), n_rounds=0, max_epochs=epochs,
                  batch_size=batch_size, random_state=0)
    rng = np.random.default_rng(0)
    warm = rng.random((500, features), dtype=np.float32)
    for dtype in dtypes:
        LotteryTicketClassifier(**params).fit(warm.astype(dtype), rng.integers(0, 10, 500))
    del warm
    results = []
    for dtype in dtypes:
        gc.collect()
        X = rng.random((rows, features), dtype=np.dtype(dtype))  # no float64 temporary
        y = rng.integers(0, 10, rows)
        rss_before = _status_kib("VmRSS")
        reset = _reset_peak()
        if not reset and len(results):
            raise RuntimeError("several dtypes in one process need a resettable peak (Linux)")
        before = rss_before if (reset and rss_before is not None) else _maxrss_kib()
        clf = LotteryTicketClassifier(**params).fit(X, y)
        after = _status_kib("VmHWM") if reset else _maxrss_kib()
        assert clf.rounds_  # the fit happened
        extra = (after - before) * 1024
        results.append({"rows": rows, "features": features, "dtype": dtype, "epochs": epochs,
                        "x_bytes": int(X.nbytes), "extra_peak_bytes": int(extra),
                        "copies_of_x": extra / X.nbytes,
                        "peak_counter": "VmHWM" if reset else "ru_maxrss"})
        del X, y, clf
    return results


def measure(rows, features, dtypes=("float32",), epochs=1, batch_size=1000, python=None,
            env=None):
    """Run :func:`child` for ``dtypes`` in one fresh interpreter and return its numbers."""
    cmd = [python or sys.executable, os.path.abspath(__file__), "--child", "--rows", str(rows),
           "--features", str(features), "--dtype", *dtypes, "--epochs", str(epochs),
           "--batch-size", str(batch_size)]
    env = dict(os.environ if env is None else env)
    env.setdefault("OMP_NUM_THREADS", "1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return [json.loads(line) for line in out.stdout.strip().splitlines()[-len(dtypes):]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"],
                        choices=["float32", "float64"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="one JSON line per case")
    parser.add_argument("--one-process", action="store_true",
                        help="all dtypes in one fresh process, one after the other (quicker)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        for r in child(args.rows, args.features, args.dtype, args.epochs, args.batch_size):
            print(json.dumps(r), flush=True)
        return
    groups = [args.dtype] if args.one_process else [[d] for d in args.dtype]
    for group in groups:
        for r in measure(args.rows, args.features, group, args.epochs, args.batch_size):
            _report(r, args.json)


def _report(r, as_json):
    if as_json:
        print(json.dumps(r), flush=True)
    else:
        dtype = r["dtype"]
        print(f"X {r['rows']} x {r['features']} {dtype} ({r['x_bytes'] / MIB:.0f} MiB), "
              f"{r['epochs']} epoch(s), validation_fraction=0.1: extra peak "
              f"{r['extra_peak_bytes'] / MIB:.0f} MiB = {r['copies_of_x']:.2f} x X "
              f"[{r['peak_counter']}]", flush=True)


if __name__ == "__main__":
    main()
