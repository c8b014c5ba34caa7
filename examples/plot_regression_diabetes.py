"""
Lottery tickets for regression: diabetes progression
====================================================

:class:`~sklottery.LotteryTicketRegressor` runs the same iterative magnitude
pruning as the classifier, with a squared-error loss, R² as its score and
standardised targets (``scale_y=True``, undone by ``predict``). This example
asks the lottery-ticket question on scikit-learn's diabetes data (442
patients, 10 features, disease progression after one year):

* a single fit in a :class:`~sklearn.pipeline.Pipeline`, its per-round table
  and its test R² against plain least squares;
* :func:`~sklottery.analysis.ticket_curve` with the winning ticket, random
  reinitialisation and random pruning over several trials, judged on R² (higher
  is better) and on the mean squared error (lower is better, in the units of
  ``y``) by :func:`~sklottery.stats.matching_summary`;
* Frankle & Carbin's figures, in R².

Diabetes is small and noisy: least squares explains about half of the
variance, and a 10-64-1 MLP has far more weights than the problem needs, so
expect sparse networks to match dense easily. Whether the *initialisation*
matters is what the controls tell. Run it as a script (about a minute on two
CPU cores)::

    python examples/plot_regression_diabetes.py              # figure in ./out
    python examples/plot_regression_diabetes.py --trials 10
"""

# %%
# Settings
# --------
import argparse
import os
import time

import matplotlib

parser = argparse.ArgumentParser(description="Lottery tickets on diabetes (regression).")
parser.add_argument("--rounds", type=int, default=5, help="pruning rounds (default 5)")
parser.add_argument("--trials", type=int, default=5, help="trials per strategy (default 5)")
parser.add_argument("--pruning-rate", type=float, default=0.5,
                    help="hidden-layer pruning rate per round; output layer at half of it "
                         "(default 0.5)")
parser.add_argument("--epochs", type=int, default=30, help="epochs per round (default 30)")
parser.add_argument("--n-jobs", type=int, default=2, help="parallel fits (default 2)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", default="out", help="folder for the figure (default ./out)")
parser.add_argument("--show", action="store_true", help="also show the figure")
args = parser.parse_args()

if not args.show:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklottery import LotteryTicketRegressor, stats  # noqa: E402
from sklottery.analysis import ticket_curve  # noqa: E402
from sklottery.plotting import plot_ticket_figures  # noqa: E402

pd.set_option("display.width", 120)
os.makedirs(args.out, exist_ok=True)
t_start = time.perf_counter()

X, y = load_diabetes(return_X_y=True)
reg = LotteryTicketRegressor(hidden_layer_sizes=(64,), n_rounds=args.rounds,
                             pruning_rate=args.pruning_rate, max_epochs=args.epochs,
                             batch_size=32, learning_rate_init=1e-3, random_state=args.seed)

# %%
# One fit
# -------
# The scaler is part of the pipeline, so it is refitted on the training data
# only. ``rounds_`` has one record per round; ``valid_r2`` is measured on the
# estimator's own validation split (10 % of the training data).
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=args.seed)
pipe = make_pipeline(StandardScaler(), reg).fit(X_tr, y_tr)
fitted = pipe[-1]
table = pd.DataFrame(fitted.rounds_)[["round", "weights_remaining", "valid_loss", "valid_r2",
                                      "early_stop_iteration", "seconds"]]
print(table.round(3).to_string(index=False))
lin = make_pipeline(StandardScaler(), LinearRegression()).fit(X_tr, y_tr)
print(f"\ntest R2: pruned MLP ({100 - 100 * fitted.sparsity_:.1f} % of weights left) "
      f"{pipe.score(X_te, y_te):.3f}; least squares {lin.score(X_te, y_te):.3f}")

# %%
# Ticket vs controls
# ------------------
# Every trial has its own 75/25 split and initialisation; the mask controls
# ('random') train the ticket's mask of every round from a new initialisation.
results = ticket_curve(make_pipeline(StandardScaler(), reg), X, y,
                       strategies=["rewind", "random", "random_mask"], n_trials=args.trials,
                       n_jobs=args.n_jobs, random_state=args.seed)
curve = stats.summarize_curve(results, metric="test_r2")
print("\ntest R2 at the end of training, mean over trials")
print(curve.pivot_table(index="weights_remaining", columns="strategy", values="mean")
      .sort_index(ascending=False).round(3).to_string())

# %%
# The verdict, on R² and on the mean squared error (lower is better: the
# direction is inferred from the metric's name).
for metric in ("test_r2", "test_mse"):
    summary = stats.matching_summary(results, metric=metric)
    print(f"\nverdict on {metric}: {summary['verdict']}")
    print("  " + stats.verdict(summary))

# %%
# Frankle & Carbin's figures, in R²
fig = plot_ticket_figures(results)
fig.suptitle(f"LotteryTicketRegressor on diabetes, {args.trials} trials (mean ± std)")
path = os.path.join(args.out, "regression_diabetes.png")
fig.savefig(path, dpi=110)
print(f"\nwrote {path}; {time.perf_counter() - t_start:.0f} s in all")
if args.show:
    plt.show()
