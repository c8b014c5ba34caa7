"""
Structured vs unstructured tickets: where Liu et al.'s claim holds
==================================================================

Liu et al. (2019) found that for *structured* pruning (whole filters or
neurons removed) training the pruned architecture from scratch is as good as
pruning and fine-tuning, so the value of such pruning is the architecture it
finds; for *unstructured* pruning (single weights, Frankle & Carbin's
setting) training from scratch can fall short at high sparsity unless it
gets the same compute budget (scratch-B). Frankle & Carbin found that the
original initialisation matters for unstructured tickets at small learning
rates.

This example runs both on the same data with
:func:`sklottery.reproduce.structured_comparison`: for
``pruning_granularity='weight'`` and ``'neuron'`` and at two learning rates,
the winning ticket (rewind to θ0), prune + fine-tune (``'continue'``) and
Liu et al.'s scratch-E / scratch-B (for neurons: the smaller *dense* MLP the
mask defines, from a fresh initialisation). Run it as a script (a few
minutes on two CPU cores)::

    python examples/plot_structured_liu.py              # figure in ./out
    python examples/plot_structured_liu.py --trials 5
"""

# %%
# Settings
# --------
import argparse
import os
import time

import matplotlib

parser = argparse.ArgumentParser(description="Structured vs unstructured tickets (Liu et al.).")
parser.add_argument("--rounds", type=int, default=3, help="pruning rounds (default 3)")
parser.add_argument("--trials", type=int, default=2, help="trials (default 2)")
parser.add_argument("--epochs", type=int, default=8, help="epochs per round (default 8)")
parser.add_argument("--n-jobs", type=int, default=2, help="parallel fits (default 2)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", default="out", help="folder for the figure (default ./out)")
parser.add_argument("--show", action="store_true", help="also show the figure")
args = parser.parse_args()

if not args.show:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from sklottery import stats  # noqa: E402
from sklottery.reproduce import structured_comparison  # noqa: E402

pd.set_option("display.width", 140)
os.makedirs(args.out, exist_ok=True)
t_start = time.perf_counter()

X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X / 16, y, test_size=0.3, stratify=y,
                                          random_state=args.seed)
learning_rates = (1e-3, 1e-2)
results = structured_comparison(X_tr, y_tr, X_te, y_te, learning_rates=learning_rates,
                                epochs=args.epochs, rounds=args.rounds, trials=args.trials,
                                hidden=(128, 64), random_state=args.seed, n_jobs=args.n_jobs)

# %%
# Test accuracy (%) per granularity, learning rate, strategy and level
curve = stats.summarize_curve(results, by=("granularity", "learning_rate_init", "strategy",
                                           "weights_remaining"))
table = curve.pivot_table(index=["granularity", "learning_rate_init", "weights_remaining"],
                          columns="strategy", values="mean", sort=False)
print((100 * table).round(1).to_string())

# %%
# At the sparsest level: is scratch as good as fine-tuning (Liu et al.), and is
# the ticket better than scratch-E, its random re-initialisation (F&C)?
for (granularity, lr), part in results.groupby(["granularity", "learning_rate_init"]):
    part = part.drop(columns=["granularity", "learning_rate_init"])
    level = part.loc[part.strategy == "rewind", "weights_remaining"].min()
    at = part[part["weights_remaining"].round(2) == round(level, 2)]
    means = at.groupby("strategy")["test_acc"].mean()
    summary = stats.matching_summary(part, controls=["scratch_e"])
    print(f"\n{granularity}, lr {lr:g}, {level:.1f} % of weights: "
          + ", ".join(f"{s} {100 * m:.1f} %" for s, m in means.items()))
    print("  ticket vs scratch-E: " + stats.verdict(summary))

# %%
# One panel per granularity x learning rate
fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharey=True, layout="constrained")
for ax, ((granularity, lr), part) in zip(axes.ravel(),
                                         curve.groupby(["granularity", "learning_rate_init"])):
    for strategy, line in part.groupby("strategy"):
        line = line.sort_values("weights_remaining", ascending=False)
        ax.plot(line["weights_remaining"], 100 * line["mean"], marker="o", markersize=3,
                label=stats.strategy_label(strategy))
    ax.set_xscale("log")
    levels = sorted(part["weights_remaining"].unique())
    ax.set_xticks(levels, [f"{v:.3g}" for v in levels])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.invert_xaxis()
    ax.set_title(f"{granularity}, learning rate {lr:g}")
    ax.set_xlabel("Weights remaining (%)")
    ax.set_ylabel("Test accuracy (%)")
    ax.grid(True, alpha=0.3)
handles, labels = axes.ravel()[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize="small")
path = os.path.join(args.out, "structured_liu.png")
fig.savefig(path, dpi=110)
print(f"\nwrote {path}; {time.perf_counter() - t_start:.0f} s in all")
if args.show:
    plt.show()
