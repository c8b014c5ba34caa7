"""
Tuning the pruning schedule with GridSearchCV
=============================================

:class:`~sklottery.LotteryTicketClassifier` is a regular scikit-learn
estimator: its pruning schedule (``pruning_rate``, ``n_rounds`` or
``target_sparsity``) and its reset strategy (``reinit``) are
hyper-parameters like any other, so they can be tuned with
:class:`~sklearn.model_selection.GridSearchCV` inside a
:class:`~sklearn.pipeline.Pipeline`.

One thing to keep in mind: ``score`` is the accuracy of the **final**
network, at whatever sparsity the candidate's schedule reaches. A plain search
therefore compares networks of *different sizes* and, since pruning rarely
improves accuracy by more than the noise, tends to pick the least pruned
candidate. This example shows the plain search, then two ways to make
sparsity part of the question:

* a ``refit`` rule that picks the sparsest candidate within one standard
  deviation of the best score;
* a fixed ``target_sparsity`` (every candidate ends at the same size) and a
  search over how to get there (``reinit``, ``pruning_rate``).

A 100-unit hidden layer and 10 epochs per round keep the default run to a
minute or two on two CPU cores (``--n-jobs 2``). Run it as a script::

    python examples/plot_grid_search.py                  # figure in ./out
"""

# %%
# Settings
# --------
import argparse
import os
import time

import matplotlib

parser = argparse.ArgumentParser(
    description="GridSearchCV over the pruning schedule on digits.")
parser.add_argument("--epochs", type=int, default=10, help="epochs per round (default 10)")
parser.add_argument("--hidden", default="100",
                    help="hidden layer sizes, comma-separated (default 100)")
parser.add_argument("--n-jobs", type=int, default=2, help="parallel fits (default 2)")
parser.add_argument("--cv", type=int, default=3, help="folds (default 3)")
parser.add_argument("--target-sparsity", type=float, default=0.9,
                    help="fixed sparsity of the second search (default 0.9)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", default="out", help="folder for the figure (default ./out)")
parser.add_argument("--show", action="store_true", help="also show the figure")
args = parser.parse_args()

if not args.show:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklottery import LotteryTicketClassifier  # noqa: E402
from sklottery.pruning import remaining_schedule  # noqa: E402

pd.set_option("display.width", 140)
os.makedirs(args.out, exist_ok=True)
t_start = time.perf_counter()
hidden = tuple(int(h) for h in args.hidden.split(","))

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=args.seed
)

# %%
# The pipeline
# ------------
# The scaler is refitted on every training fold. A fixed ``random_state``
# gives every candidate the same initialisation θ0 on a given fold, so the
# candidates differ only by their pruning schedule.
pipe = make_pipeline(
    StandardScaler(),
    LotteryTicketClassifier(hidden_layer_sizes=hidden, max_epochs=args.epochs,
                            random_state=args.seed),
)
STEP = "lotteryticketclassifier__"


def weights_left(pruning_rate, n_rounds):
    """% of prunable weights left after ``n_rounds`` (hidden rate p, output p / 2)."""
    sizes = dict(zip(range(len(hidden) + 1), np.multiply([64, *hidden], [*hidden, 10])))
    rates = {i: pruning_rate for i in sizes}
    rates[len(hidden)] = pruning_rate / 2
    return 100 * remaining_schedule(sizes, rates, n_rounds)[-1]


def short(params):
    """Parameter names without the pipeline step prefix."""
    return {k.replace(STEP, ""): v for k, v in params.items()}


def results_table(search):
    """cv_results_ as a readable table, best first."""
    res = pd.DataFrame(search.cv_results_)
    params = pd.json_normalize(res["params"]).rename(columns=lambda c: c.replace(STEP, ""))
    table = pd.concat([params, res[["mean_test_score", "std_test_score", "rank_test_score",
                                    "mean_fit_time"]]], axis=1)
    return table.sort_values(["rank_test_score", "mean_fit_time"]).reset_index(drop=True)


# %%
# 1. A plain search
# -----------------
# Two pruning rates x two round counts x two reset strategies:
#
# * ``reinit='rewind'``: winning tickets, survivors rewound to θ0;
# * ``reinit='fresh'``: survivors re-drawn at random after every prune (the
#   mask is still found by magnitude pruning, but of randomly re-initialised
#   networks).
#
# ``refit=True`` (the default) refits the best candidate on the whole
# training set.
grid = {
    STEP + "pruning_rate": [0.2, 0.5],
    STEP + "n_rounds": [2, 4],
    STEP + "reinit": ["rewind", "fresh"],
}
t0 = time.perf_counter()
search = GridSearchCV(pipe, grid, cv=args.cv, n_jobs=args.n_jobs).fit(X_train, y_train)
t_plain = time.perf_counter() - t0
table = results_table(search)
table.insert(3, "weights_left_%", [weights_left(p, n) for p, n in
                                   zip(table["pruning_rate"], table["n_rounds"])])
print(f"plain search: {len(table)} candidates x {args.cv} folds in {t_plain:.0f} s")
print(table.round(4).to_string(index=False))
best = search.best_estimator_[-1]
print(f"best: {short(search.best_params_)}\n  CV accuracy {search.best_score_:.4f}, "
      f"{100 - 100 * best.sparsity_:.1f} % of weights left, "
      f"test accuracy {search.score(X_test, y_test):.4f}")

# %%
# What did the search optimise? The cross-validated accuracy of each
# candidate's final network, irrespective of its size: the candidates with
# 80 % of their weights compete with those with 10 %. Unless pruning helps
# (it can, a little, as a regulariser), the winner is whichever is luckiest
# among the mildly pruned ones, and the score differences are often within
# one standard deviation across folds.
#
# 2. Prefer the sparsest good candidate
# -------------------------------------
# ``refit`` accepts a callable that receives ``cv_results_`` and returns the
# index of the candidate to refit. This one keeps the candidates whose mean
# score is within one standard deviation of the best and, among them, takes
# the one with the fewest weights left (a "one standard error" rule for
# sparsity). ``GridSearchCV(pipe, grid, refit=sparsest_within_one_std)``
# would apply it directly; here the rule is applied to the search above,
# which avoids cross-validating the grid a second time, and the chosen
# candidate is refitted by hand.
def sparsest_within_one_std(cv_results):
    mean, std = cv_results["mean_test_score"], cv_results["std_test_score"]
    best = np.argmax(mean)
    ok = np.flatnonzero(mean >= mean[best] - std[best])
    left = [weights_left(cv_results["params"][i][STEP + "pruning_rate"],
                         cv_results["params"][i][STEP + "n_rounds"]) for i in ok]
    return int(ok[np.argmin(left)])


i = sparsest_within_one_std(search.cv_results_)
params = search.cv_results_["params"][i]
chosen = clone(pipe).set_params(**params).fit(X_train, y_train)
print(f"\nsparsest within one std of the best: "
      f"{short(params)}\n  CV accuracy "
      f"{search.cv_results_['mean_test_score'][i]:.4f}, "
      f"{100 - 100 * chosen[-1].sparsity_:.1f} % of weights left, "
      f"test accuracy {chosen.score(X_test, y_test):.4f}")

# %%
# 3. Fix the sparsity, search how to get there
# --------------------------------------------
# With ``target_sparsity`` every candidate ends with (about) the same number
# of weights: the number of rounds is the fewest that reaches it at the given
# ``pruning_rate`` (and ``n_rounds`` is ignored): 4 rounds at 0.5 (9.7 % of
# the weights left), 2 rounds at 0.8 (8.3 %). The search then answers a
# fairer question: at about 10 % of the weights, which reset strategy and
# which schedule give the best network? ``'continue'`` is classic pruning with
# fine-tuning (the trained weights are kept after every prune). Keep the
# training budget in mind when reading the answer: with few epochs per round,
# ``'continue'`` keeps refining already-trained weights while ``'rewind'``
# and ``'fresh'`` retrain from an initialisation every round.
fixed = {
    STEP + "target_sparsity": [args.target_sparsity],
    STEP + "pruning_rate": [0.5, 0.8],
    STEP + "reinit": ["rewind", "fresh", "continue"],
}
t0 = time.perf_counter()
fixed_search = GridSearchCV(pipe, fixed, cv=args.cv, n_jobs=args.n_jobs).fit(X_train, y_train)
t_fixed = time.perf_counter() - t0
ftable = results_table(fixed_search).drop(columns="target_sparsity")
ftable.insert(2, "rounds", [
    next(n for n in range(100) if weights_left(p, n) <= 100 * (1 - args.target_sparsity) + 1e-9)
    for p in ftable["pruning_rate"]])
ftable.insert(3, "weights_left_%", [weights_left(p, n) for p, n in
                                    zip(ftable["pruning_rate"], ftable["rounds"])])
print(f"\nfixed target_sparsity={args.target_sparsity}: {len(ftable)} candidates x "
      f"{args.cv} folds in {t_fixed:.0f} s")
print(ftable.round(4).to_string(index=False))
fbest = fixed_search.best_estimator_[-1]
print(f"best: {short(fixed_search.best_params_)}\n  CV accuracy {fixed_search.best_score_:.4f}, "
      f"{100 - 100 * fbest.sparsity_:.1f} % of weights left after "
      f"{fbest.n_rounds_} rounds, test accuracy {fixed_search.score(X_test, y_test):.4f}")

# %%
# The trade-off at a glance
# -------------------------
# Mean cross-validated accuracy (± std over folds) against the weights left,
# for the plain search (circles) and the fixed-sparsity search (squares).
fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
colors = {"rewind": "C0", "fresh": "C1", "continue": "C2"}
for tab, marker in ((table, "o"), (ftable, "s")):
    for reinit, part in tab.groupby("reinit"):
        ax.errorbar(part["weights_left_%"], part["mean_test_score"],
                    yerr=part["std_test_score"], fmt=marker, capsize=3,
                    color=colors[reinit], alpha=0.8,
                    label=f"{reinit}" + (" (fixed sparsity)" if marker == "s" else ""))
ax.set_xscale("log")
levels = sorted(set(table["weights_left_%"].round(1)) | set(ftable["weights_left_%"].round(1)))
ax.set_xticks(levels, [f"{v:g}" for v in levels])
ax.minorticks_off()
ax.invert_xaxis()
ax.set_xlabel("Weights remaining (%)")
ax.set_ylabel(f"Mean CV accuracy ({args.cv} folds)")
ax.set_title("GridSearchCV over the pruning schedule (digits)")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
path = os.path.join(args.out, "grid_search_digits.png")
fig.savefig(path, dpi=100)
print(f"\nfigure saved to {os.path.abspath(path)}")
print(f"total time {time.perf_counter() - t_start:.0f} s")
if args.show:
    plt.show()
