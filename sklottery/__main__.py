"""Command line: ``python -m sklottery {demo,compare} ...``.

``demo``     one IMP run on scikit-learn's bundled digits, printing the
             per-round table and the final sparsity and accuracy.
``compare``  winning tickets vs controls across data sets: table, CSV, PNG
             figures and a self-contained HTML report with a verdict per
             data set.

Run ``python -m sklottery compare --help`` for every option.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import os
import sys
import time

import numpy as np

TABULAR = ("digits", "breast_cancer", "wine", "iris")
IMAGE = ("fashion_mnist", "mnist1d")
DATASETS = TABULAR + IMAGE


def load_dataset(name, max_samples=None, random_state=0):
    """Return ``(X, y, description)`` for a data set name of the compare command."""
    from sklearn import datasets as skd

    if name in TABULAR:
        loader = getattr(skd, f"load_{name}")
        X, y = loader(return_X_y=True)
        desc = f"sklearn load_{name}"
    elif name == "fashion_mnist":
        from .datasets import fetch_fashion_mnist

        X, y = fetch_fashion_mnist(return_X_y=True, download_if_missing=False)
        desc = "Fashion-MNIST (train split)"
    elif name == "mnist1d":
        from .datasets import load_mnist1d

        X, y = load_mnist1d(return_X_y=True, random_state=random_state)
        desc = "MNIST-1D (generated locally)"
    else:
        raise SystemExit(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    X = np.asarray(X, dtype=np.float32)
    if max_samples and len(X) > max_samples:
        rng = np.random.RandomState(random_state)
        idx = np.sort(rng.choice(len(X), max_samples, replace=False))
        X, y = X[idx], y[idx]
        desc += f", random subset of {max_samples}"
    return X, np.asarray(y), desc


def _auto_epochs(n_train, batch_size, min_iterations):
    """Epochs so that every round trains at least ``min_iterations`` iterations."""
    per_epoch = max(1, math.ceil(n_train / batch_size))
    return int(min(500, max(1, math.ceil(min_iterations / per_epoch))))


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


# ---------------------------------------------------------------------- demo
def demo(args):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from . import LotteryTicketClassifier

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0,
                                              stratify=y)
    clf = LotteryTicketClassifier(n_rounds=args.rounds, max_epochs=args.epochs,
                                  random_state=args.random_state, verbose=1)
    model = make_pipeline(StandardScaler(), clf)
    print(f"LotteryTicketClassifier on digits: {len(X_tr)} train / {len(X_te)} test, "
          f"LeNet-300-100, {args.rounds} rounds of 20 % (output layer 10 %), "
          f"{args.epochs} epochs per round, rewind to theta0\n")
    t0 = time.perf_counter()
    model.fit(X_tr, y_tr)
    print(f"\nfinal network: {100 * clf.sparsity_:.2f} % of weights pruned "
          f"({100 - 100 * clf.sparsity_:.2f} % left), test accuracy "
          f"{model.score(X_te, y_te):.4f}; {time.perf_counter() - t0:.1f} s")
    return 0


# ------------------------------------------------------------------- compare
def compare(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from tqdm.auto import tqdm

    from . import LotteryTicketClassifier, stats
    from .analysis import STRATEGIES, n_runs, ticket_curve
    from .plotting import plot_ticket_figures

    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    for s in strategies:
        if s not in STRATEGIES:
            raise SystemExit(f"unknown strategy {s!r}; choose from {', '.join(STRATEGIES)}")
    for d in names:
        if d not in DATASETS:
            raise SystemExit(f"unknown data set {d!r}; choose from {', '.join(DATASETS)}")
    os.makedirs(args.out, exist_ok=True)
    hidden = tuple(int(h) for h in args.hidden.split(",")) if args.hidden else ()
    t_start = time.perf_counter()
    frames, sections, summary_rows = [], [], []
    for name in names:
        X, y, desc = load_dataset(name, args.max_samples, args.random_state)
        n_train = int(len(X) * (1 - args.test_size) * 0.9)
        epochs = args.epochs or _auto_epochs(n_train, args.batch_size, args.min_iterations)
        clf = LotteryTicketClassifier(
            hidden_layer_sizes=hidden, n_rounds=args.rounds, pruning_rate=args.pruning_rate,
            max_epochs=epochs, batch_size=args.batch_size, learning_rate_init=args.lr,
            device=args.device,
        )
        est = make_pipeline(StandardScaler(), clf)
        total = n_runs(clf, strategies, args.trials)
        t0 = time.perf_counter()
        with tqdm(total=total, desc=f"{name}", unit="run", disable=args.quiet,
                  file=sys.stderr) as bar:
            df = ticket_curve(est, X, y, strategies=strategies, n_trials=args.trials,
                              test_size=args.test_size, n_jobs=args.n_jobs,
                              random_state=args.random_state, progress=bar.update)
        seconds = time.perf_counter() - t0
        df.insert(0, "dataset", name)
        frames.append(df)
        summary = stats.matching_summary(df.drop(columns="dataset"), metric="test_acc")
        verdict = stats.verdict(summary)
        curve = stats.summarize_curve(df.drop(columns="dataset"), metric="test_acc")
        fig = plot_ticket_figures(df.drop(columns="dataset"))
        fig.suptitle(f"{name}: {desc}")
        png = _png(fig)
        plt.close(fig)
        with open(os.path.join(args.out, f"{name}.png"), "wb") as f:
            f.write(png)
        table = curve.pivot_table(index="weights_remaining", columns="strategy",
                                  values="mean", sort=False)
        table = table.sort_index(ascending=False)
        std = curve.pivot_table(index="weights_remaining", columns="strategy", values="std",
                                sort=False).reindex(table.index)
        shown = table.copy().astype(object)
        for col in table.columns:
            shown[col] = [
                f"{100 * m:.1f}" + ("" if not np.isfinite(s) else f"±{100 * s:.1f}")
                if np.isfinite(m) else "" for m, s in zip(table[col], std[col])
            ]
        shown.index = [f"{w:.1f}" for w in table.index]
        shown.index.name = "% weights"
        print(f"\n== {name} ({desc}; {len(X)} samples, {args.trials} trials, "
              f"{epochs} epochs/round, {seconds:.0f} s) ==")
        print("test accuracy % (mean±std over trials)")
        print(shown.to_string())
        print(verdict, flush=True)
        summary_rows.append({
            "dataset": name, "samples": len(X), "epochs_per_round": epochs,
            "dense_acc": summary["dense_mean"], "dense_std": summary["dense_std"],
            "ticket_matching_level": summary["ticket_matching_level"],
            "seconds": seconds, "verdict": verdict,
        })
        sections.append((name, desc, verdict, shown, png, len(X), epochs, seconds))
    results = pd.concat(frames, ignore_index=True)
    results.to_csv(os.path.join(args.out, "results.csv"), index=False)
    curves = stats.summarize_curve(results, by=("dataset", "strategy", "weights_remaining"))
    curves.to_csv(os.path.join(args.out, "summary.csv"), index=False)
    tests = stats.compare_to_ticket(results)
    tests.to_csv(os.path.join(args.out, "tests.csv"), index=False)
    pd.DataFrame(summary_rows).to_csv(os.path.join(args.out, "verdicts.csv"), index=False)
    total_seconds = time.perf_counter() - t_start
    _write_report(os.path.join(args.out, "report.html"), sections, args, strategies,
                  total_seconds)
    print(f"\nwrote {args.out}/results.csv, summary.csv, tests.csv, verdicts.csv, "
          f"{', '.join(n + '.png' for n in names)}, report.html  ({total_seconds:.0f} s)")
    return 0


def _write_report(path, sections, args, strategies, total_seconds):
    from . import __version__
    from .stats import strategy_label

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>sklottery: does the lottery ticket hypothesis hold?</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:right}.verdict{background:#f3f7ee;padding:.6em;border-left:4px solid "
        "#6a4}</style></head><body>",
        "<h1>Winning tickets vs controls</h1>",
        f"<p>sklottery {html.escape(__version__)}. Strategies: "
        f"{html.escape(', '.join(strategy_label(s) for s in strategies))}. "
        f"{args.trials} trials, {args.rounds} pruning rounds of "
        f"{100 * args.pruning_rate:g} % (output layer at half rate), hidden layers "
        f"{html.escape(args.hidden or 'none')}, Adam lr {args.lr:g}, batch {args.batch_size}, "
        f"test fraction {args.test_size:g}. A ticket <em>matches</em> dense when its mean "
        "test accuracy is at least the dense mean minus one standard deviation; p-values "
        f"are Welch's t-test, ticket vs control. Total time {total_seconds:.0f} s.</p>",
    ]
    for name, desc, verdict, shown, png, n, epochs, seconds in sections:
        parts.append(f"<h2>{html.escape(name)}</h2><p>{html.escape(desc)}; {n} samples; "
                     f"{epochs} epochs per round; {seconds:.0f} s.</p>")
        parts.append(f"<p class='verdict'>{html.escape(verdict)}</p>")
        parts.append("<p>Test accuracy % (mean ± std over trials) by % of weights left:</p>")
        parts.append(shown.to_html(escape=True))
        parts.append(f"<p><img alt='{html.escape(name)} ticket curves' "
                     f"src='data:image/png;base64,{base64.b64encode(png).decode()}'></p>")
    parts.append("</body></html>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))


# ---------------------------------------------------------------------- main
def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m sklottery",
        description="Lottery tickets as scikit-learn estimators: a demo and the "
                    "cross-dataset comparison of winning tickets with controls.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="one IMP run on bundled digits (per-round table)",
                       description="Iterative magnitude pruning of LeNet-300-100 on "
                                   "sklearn's digits with rewinding to theta0; prints one "
                                   "line per round and the final sparsity and accuracy.")
    d.add_argument("--rounds", type=int, default=5, help="pruning rounds (default 5)")
    d.add_argument("--epochs", type=int, default=20, help="epochs per round (default 20)")
    d.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    d.set_defaults(func=demo)

    c = sub.add_parser(
        "compare",
        help="winning tickets vs controls across data sets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run the winning ticket (IMP with rewinding to theta0) and control strategies on\n"
            "several data sets with replicate trials; print a table per data set, and write\n"
            "results.csv (one row per data set x strategy x trial x round), summary.csv\n"
            "(mean/std/CI per level), tests.csv (Welch t-test and Hedges' g, ticket vs each\n"
            "control), verdicts.csv, one PNG per data set (test accuracy and early-stop\n"
            "iteration vs %% weights remaining) and report.html (self-contained, figures\n"
            "embedded, a plain-language verdict per data set).\n\n"
            "Strategies: rewind (winning ticket), rewind_k (late rewinding), random (ticket\n"
            "mask, new random init: Frankle & Carbin's control), random_mask (random\n"
            "pruning), continue (prune + fine-tune), scratch_e / scratch_b (Liu et al.:\n"
            "same epochs / same compute budget), one_shot, same_sign (Zhou et al.).\n\n"
            "Defaults are fast (a few minutes on 2 CPU cores with the bundled data sets).\n"
            "Frankle & Carbin's full protocol on LeNet-300-100 is, for instance:\n"
            "  python -m sklottery compare --datasets fashion_mnist --rounds 18 --trials 5\n"
            "      --pruning-rate 0.2\n"
            "      --hidden 300,100 --lr 1.2e-3 --batch-size 60 --min-iterations 50000\n"
            "      --strategies rewind,random,random_mask --n-jobs -1\n"
            "(fashion_mnist needs the data files: see sklottery.datasets.fetch_fashion_mnist;\n"
            "mnist1d needs `pip install mnist1d`.)"
        ),
    )
    c.add_argument("--datasets", default="digits,breast_cancer,wine,iris",
                   help=f"comma-separated, from: {', '.join(DATASETS)} "
                        "(default: digits,breast_cancer,wine,iris)")
    c.add_argument("--strategies", default="rewind,random,random_mask",
                   help="comma-separated strategies (default: rewind,random,random_mask)")
    c.add_argument("--rounds", type=int, default=5,
                   help="pruning rounds (default 5: with the default rate 50%%, 25%%, ... "
                        "3.5%% of weights)")
    c.add_argument("--trials", type=int, default=3, help="replicates per strategy (default 3)")
    c.add_argument("--pruning-rate", type=float, default=0.5,
                   help="fraction of remaining weights pruned per round, output layer at "
                        "half of it (default 0.5, so that 5 fast rounds reach the sparse "
                        "levels where tickets and controls part; Frankle & Carbin use 0.2 "
                        "with --rounds 18)")
    c.add_argument("--hidden", default="300,100",
                   help="hidden layer sizes, comma-separated (default 300,100)")
    c.add_argument("--lr", type=float, default=1.2e-3, help="Adam learning rate (1.2e-3)")
    c.add_argument("--batch-size", type=int, default=60, help="minibatch size (default 60)")
    c.add_argument("--epochs", type=int, default=None,
                   help="epochs per round (default: enough for --min-iterations)")
    c.add_argument("--min-iterations", type=int, default=300,
                   help="with no --epochs: at least this many iterations per round "
                        "(default 300; F&C use 50000)")
    c.add_argument("--test-size", type=float, default=0.25,
                   help="held-out test fraction per trial (default 0.25)")
    c.add_argument("--max-samples", type=int, default=None,
                   help="random subset of each data set (default: all)")
    c.add_argument("--n-jobs", type=int, default=-1,
                   help="parallel runs with joblib, torch threads capped per run so the "
                        "CPUs are not oversubscribed (default -1: one run per CPU)")
    c.add_argument("--device", default="cpu", help="torch device (default cpu)")
    c.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    c.add_argument("--out", default="sklottery_compare",
                   help="output folder (default ./sklottery_compare)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=compare)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
