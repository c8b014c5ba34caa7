"""What a 95 %-sparse LeNet-300-100 buys: saved size and predict time vs the dense network.

Three measurements, printed in one run:

1. **Saved size.** LeNet-300-100 (784-300-100-10) is fitted twice on
   Fashion-MNIST training images (``--n-train``, ``--epochs`` per round):
   dense (``n_rounds=0``) and pruned by IMP to ``--sparsity`` (default 95 %:
   ``target_sparsity``, the estimator's default rates and rewinding). Both are
   saved with ``pickle.dumps`` and ``joblib.dump`` (to memory); the sizes and
   the sparse/dense ratio are printed, and, for reference, the size of the
   plain ``__dict__`` (the state as pickled before :mod:`sklottery.persistence`
   packed it).
2. **Predict time.** ``predict`` of both estimators on 50 000 x 784 images
   (``--n-predict``), alternating dense and sparse ``--repeats`` times after
   one warm-up call each (which builds the cached inference module), with
   ``n_threads`` set to each of ``--threads``; medians, and the ratio of the
   medians. For reference the dense network through skorch's
   ``predict_proba`` (the path ``predict`` took before) is timed too.
3. **Sparse-format threshold.** One 784 -> 300 layer with random masks of
   each density in ``--densities`` on ``--n-predict`` rows: dense
   ``torch.nn.functional.linear`` against torch's sparse products, CSR and
   COO, in both orientations (``W_sparse @ X.T``, transposes included, and
   ``X @ W.T`` with a sparse ``W.T``), ``torch.sparse.addmm`` (COO), CSR per
   block of rows, and sklottery's product (:class:`sklottery.inference.
   SparseLinearT`: ``embedding_bag`` over CSR arrays on transposed blocks of
   :data:`sklottery.inference.SPARSE_CHUNK` rows, transposes included). Medians
   of ``--format-repeats``; a method is no longer timed at higher densities
   once it is over twice as slow as dense. The crossover of a method is the
   highest density up to which it beat dense at every density measured.

If the Fashion-MNIST files cannot be found locally (nothing is downloaded),
random data of the same shape is used and the output says so
(``--random-data`` forces it).

Run:  python benchmarks/bench_export.py [--threads 1 2] [--repeats 7]
                                        [--n-train 12000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import io
import pickle
import statistics
import time
import warnings

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch.nn import functional as F

from sklottery import LotteryTicketClassifier, inference
from sklottery.datasets import fetch_fashion_mnist


def load_data(force_random=False):
    """Fashion-MNIST (train, test) as float32 in [0, 1]; random data if not found."""
    if not force_random:
        try:
            X, y = fetch_fashion_mnist(subset="train", return_X_y=True,
                                       download_if_missing=False)
            Xt, yt = fetch_fashion_mnist(subset="test", return_X_y=True,
                                         download_if_missing=False)
            return X, y, Xt, yt, "Fashion-MNIST"
        except OSError as exc:
            print(f"Fashion-MNIST not found locally: RANDOM data of the same shape is used "
                  f"instead ({exc})")
    rng = np.random.RandomState(0)
    X = rng.rand(70000, 784).astype(np.float32)
    y = rng.randint(0, 10, 70000)
    return X[:60000], y[:60000], X[60000:], y[60000:], "random data (784 features)"


def fit(X, y, args, **kw):
    est = LotteryTicketClassifier(hidden_layer_sizes=(300, 100), max_epochs=args.epochs,
                                  n_threads=max(args.threads), random_state=0, **kw)
    t0 = time.perf_counter()
    est.fit(X, y)
    return est, time.perf_counter() - t0


def sizes(est):
    pickled = len(pickle.dumps(est))
    buf = io.BytesIO()
    joblib.dump(est, buf)
    plain = len(pickle.dumps(BaseEstimator.__getstate__(est)))
    return pickled, len(buf.getvalue()), plain


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def section_sizes(dense, sparse):
    print("\n1. Saved size (bytes)")
    d, s = sizes(dense), sizes(sparse)
    print(f"  {'':36s} {'dense':>12s} {'sparse':>12s} {'ratio':>7s}")
    for i, what in enumerate(["pickle.dumps", "joblib.dump",
                              "plain __dict__ (as before packing)"]):
        print(f"  {what:36s} {d[i]:>12,d} {s[i]:>12,d} {s[i] / d[i]:>7.3f}")
    print(f"  sparse pickle / dense pickle as before packing: {s[0] / d[2]:.3f}")


def section_predict(dense, sparse, X, args):
    print(f"\n2. predict on {X.shape[0]} x {X.shape[1]} (seconds: median of {args.repeats}, "
          "dense and sparse alternating)")
    print(f"  inference module of the sparse estimator: "
          f"{inference.inference_cache(sparse).module}".replace("\n", "\n  "))
    print(f"  {'threads':>7s} {'dense':>9s} {'sparse':>9s} {'dense/sparse':>13s} "
          f"{'min dense/min sparse':>21s} {'dense via skorch (before)':>26s}")
    for threads in args.threads:
        dense.set_params(n_threads=threads)
        sparse.set_params(n_threads=threads)
        dense.predict(X), sparse.predict(X)  # warm-up: builds the cached modules
        td, ts = [], []
        for _ in range(args.repeats):
            td.append(timed(lambda: dense.predict(X)))
            ts.append(timed(lambda: sparse.predict(X)))
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        Xt = torch.from_numpy(X)
        old = statistics.median(timed(lambda: dense.net_.predict_proba(Xt))
                                for _ in range(max(1, args.repeats // 2)))
        torch.set_num_threads(previous)
        md, ms = statistics.median(td), statistics.median(ts)
        print(f"  {threads:>7d} {md:>9.4f} {ms:>9.4f} {md / ms:>13.2f} "
              f"{min(td) / min(ts):>21.2f} {old:>26.4f}")
    acc_d = dense.score(args.X_test, args.y_test)
    acc_s = sparse.score(args.X_test, args.y_test)
    print(f"  test accuracy: dense {acc_d:.4f}, sparse {acc_s:.4f}")


def _methods(W, b, X):
    """name -> callable computing X @ W.T + b (all include their transposes)."""
    Wcsr, Wcoo = W.to_sparse_csr(), W.to_sparse().coalesce()
    WTcsr, WTcoo = W.t().contiguous().to_sparse_csr(), W.t().contiguous().to_sparse().coalesce()
    bcol = b[:, None]
    run = inference.TransposedRun([inference.SparseLinearT(W, b)])
    chunk = inference.SPARSE_CHUNK

    def csr_blocks():
        return torch.cat([torch.addmm(bcol, Wcsr, X[s:s + chunk].t().contiguous()).t()
                          for s in range(0, X.shape[0], chunk)])

    return {
        "CSR W@X.T": lambda: (torch.mm(Wcsr, X.t().contiguous()) + bcol).t(),
        "COO W@X.T": lambda: (torch.sparse.mm(Wcoo, X.t().contiguous()) + bcol).t(),
        "COO addmm": lambda: torch.sparse.addmm(bcol.expand(W.shape[0], X.shape[0]), Wcoo,
                                                X.t().contiguous()).t(),
        "CSR X@W.T": lambda: torch.mm(X, WTcsr) + b,
        "COO X@W.T": lambda: torch.mm(X, WTcoo) + b,
        f"CSR per {chunk} rows": csr_blocks,
        "embedding_bag": lambda: run(X),
    }


def section_formats(args):
    n, n_in, n_out = args.n_predict, 784, 300
    print(f"\n3. Sparse formats: {n_in} -> {n_out} layer on {n} rows, ms (median of "
          f"{args.format_repeats}); '-' = not timed (over 2x dense at a lower density)")
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(n, n_in, generator=gen)
    W0 = torch.randn(n_out, n_in, generator=gen)
    b = torch.randn(n_out, generator=gen)
    previous = torch.get_num_threads()
    crossover_all = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        names = None
        rows, out_of_race = [], set()
        for density in args.densities:
            W = W0 * (torch.rand(n_out, n_in, generator=gen) < density)
            methods = _methods(W, b, X)
            names = list(methods)
            ref = F.linear(X, W, b)
            times = {}
            with torch.no_grad():
                for name, fn in [("dense linear", lambda: F.linear(X, W, b))] + list(
                        methods.items()):
                    if name in out_of_race:
                        times[name] = None
                        continue
                    if name != "dense linear":
                        err = float((fn() - ref).abs().max())
                        assert err < 1e-3, (name, err)
                    else:
                        fn()
                    times[name] = 1000 * statistics.median(
                        timed(fn) for _ in range(args.format_repeats))
            for name in names:
                if times[name] is not None and times[name] > 2 * times["dense linear"]:
                    out_of_race.add(name)
            rows.append((density, times))
        header = ["dense linear"] + names
        print(f"\n  {threads} thread(s)")
        print("  " + f"{'density':>8s}" + "".join(f"{h:>18s}" for h in header))
        for density, times in rows:
            cells = "".join(f"{'-':>18s}" if times[h] is None else f"{times[h]:>18.1f}"
                            for h in header)
            print(f"  {density:>8.3f}{cells}")
        crossover = {}
        for name in names:
            crossover[name] = None
            for density, times in rows:
                if times[name] is None or times[name] >= times["dense linear"]:
                    break
                crossover[name] = density
        print("  crossover (beats dense up to this density): " + ", ".join(
            f"{k} {'never' if v is None else v}" for k, v in crossover.items()))
        crossover_all[threads] = crossover
    torch.set_num_threads(previous)
    print(f"\n  sklottery.inference.SPARSE_MAX_DENSITY = {inference.SPARSE_MAX_DENSITY} "
          "(embedding_bag crossover here: " + ", ".join(
              f"{t} thread(s) {c['embedding_bag']}" for t, c in crossover_all.items()) + ")")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch threads to time with (default: 1 2)")
    parser.add_argument("--repeats", type=int, default=7, help="predict repeats (default 7)")
    parser.add_argument("--n-train", type=int, default=12000,
                        help="training images (default 12000)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per round (default 2)")
    parser.add_argument("--sparsity", type=float, default=0.95,
                        help="target_sparsity of the pruned network (default 0.95)")
    parser.add_argument("--n-predict", type=int, default=50000,
                        help="rows to predict (default 50000)")
    parser.add_argument("--densities", type=float, nargs="+",
                        default=[0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3])
    parser.add_argument("--format-repeats", type=int, default=3)
    parser.add_argument("--skip-formats", action="store_true",
                        help="skip the sparse-format measurement")
    parser.add_argument("--random-data", action="store_true",
                        help="use random data of Fashion-MNIST's shape")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    X, y, args.X_test, args.y_test, source = load_data(args.random_data)
    X_predict = np.ascontiguousarray(X[:args.n_predict])
    print(f"torch {torch.__version__}; data: {source}; LeNet-300-100 fitted on "
          f"{args.n_train} images, {args.epochs} epochs per round, random_state=0")
    dense, t_dense = fit(X[:args.n_train], y[:args.n_train], args, n_rounds=0)
    sparse, t_sparse = fit(X[:args.n_train], y[:args.n_train], args,
                           target_sparsity=args.sparsity)
    print(f"  dense: 1 round, {t_dense:.1f} s; sparse: {len(sparse.rounds_)} rounds, "
          f"{t_sparse:.1f} s, {100 * (1 - sparse.sparsity_):.2f} % of the weights left "
          f"(by layer: " + ", ".join(f"{k} {v:.2f} %" for k, v in
                                     sparse.rounds_[-1]["remaining_by_layer"].items()) + ")")
    section_sizes(dense, sparse)
    section_predict(dense, sparse, X_predict, args)
    if not args.skip_formats:
        section_formats(args)


if __name__ == "__main__":
    main()
