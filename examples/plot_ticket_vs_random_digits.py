"""
Winning tickets vs. random reinitialisation on digits
=====================================================

Frankle & Carbin (2019) call a pruned subnetwork a *winning ticket* when,
reset to its original initial values θ0 and trained in isolation, it matches
the accuracy of the dense network. The evidence that the *initialisation*
matters (and not only the sparse architecture) is a control: the same mask,
trained from a **new random initialisation**, falls behind as pruning
proceeds. A second control, **random pruning**, tests whether the *mask*
found by magnitude pruning matters.

This example runs both controls against the ticket with
:func:`sklottery.analysis.ticket_curve` on scikit-learn's digits with
LeNet-300-100, then

* draws Frankle & Carbin's figures (early-stop iteration, test accuracy at
  early stop and at the end of training, against the percent of weights
  remaining) with
  :func:`~sklottery.plotting.plot_ticket_figures` and
  :class:`~sklottery.plotting.TicketCurveDisplay`;
* tests the differences with :mod:`sklottery.stats` (Welch's t-test per
  level, "matching" levels, and a three-way verdict: winning ticket, no
  ticket effect or no ticket, with its evidence);
* looks inside the masks with :func:`~sklottery.analysis.mask_analysis`.

Digits is tiny (1,797 8x8 images), so the defaults prune aggressively (50 %
of each hidden layer per round, 25 % of the output layer) to reach a few
percent of the weights in 5 rounds; 3 trials x (2 IMP chains of 6 trainings
+ 5 random-reinit trainings) take a few minutes on two CPU cores. Run it as
a script::

    python examples/plot_ticket_vs_random_digits.py            # figures in ./out
    python examples/plot_ticket_vs_random_digits.py --trials 5 --rounds 8 --show
"""

# %%
# Settings
# --------
import argparse
import os
import time

import matplotlib

parser = argparse.ArgumentParser(
    description="Winning tickets vs random reinit and random pruning on digits.")
parser.add_argument("--rounds", type=int, default=5, help="pruning rounds (default 5)")
parser.add_argument("--trials", type=int, default=3, help="trials per strategy (default 3)")
parser.add_argument("--pruning-rate", type=float, default=0.5,
                    help="hidden-layer pruning rate per round; the output layer is "
                         "pruned at half of it (default 0.5)")
parser.add_argument("--epochs", type=int, default=15,
                    help="epochs per round (default 15: ~300 iterations of 60 images)")
parser.add_argument("--n-jobs", type=int, default=2, help="parallel fits (default 2)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", default="out", help="folder for the figures (default ./out)")
parser.add_argument("--show", action="store_true", help="also show the figures")
args = parser.parse_args()

if not args.show:
    matplotlib.use("Agg")  # no display needed: the figures are only saved
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklottery import LotteryTicketClassifier, stats  # noqa: E402
from sklottery.analysis import mask_analysis, ticket_curve  # noqa: E402
from sklottery.plotting import TicketCurveDisplay, plot_ticket_figures  # noqa: E402

pd.set_option("display.width", 120)
os.makedirs(args.out, exist_ok=True)
t_start = time.perf_counter()

# %%
# The experiment
# --------------
# The template estimator is a :class:`~sklearn.pipeline.Pipeline`, so the
# scaler is fitted on each trial's training split only. ``ticket_curve``
# overrides ``reinit`` / ``pruning_criterion`` per strategy:
#
# * ``'rewind'``: IMP, survivors rewound to θ0 (the winning ticket);
# * ``'random'``: the ticket's mask of every round trained once from a fresh
#   random initialisation (another seed);
# * ``'random_mask'``: random pruning at the same rates, θ0 kept.
#
# Each trial has its own stratified 75/25 split and its own θ0, shared by the
# strategies of that trial (paired comparisons). Of the training part the
# estimator holds out 10 % to find the early-stop iteration (minimum
# validation loss).
X, y = load_digits(return_X_y=True)
estimator = make_pipeline(
    StandardScaler(),
    LotteryTicketClassifier(
        hidden_layer_sizes=(300, 100),
        max_epochs=args.epochs,
        batch_size=60,
        learning_rate_init=1.2e-3,
        pruning_rate=args.pruning_rate,
        n_rounds=args.rounds,
    ),
)
results, runs = ticket_curve(
    estimator, X, y,
    strategies=("rewind", "random", "random_mask"),
    n_trials=args.trials,
    n_jobs=args.n_jobs,
    random_state=args.seed,
    return_runs=True,
)
print(f"ticket_curve: {len(results)} rows in {time.perf_counter() - t_start:.0f} s")
print(results.head(8).round(4).to_string(index=False))
results.to_csv(os.path.join(args.out, "ticket_vs_random_digits.csv"), index=False)

# %%
# Mean ± std over trials
# ----------------------
# :func:`~sklottery.stats.summarize_curve` groups by strategy and level
# (``weights_remaining`` in %, rounded to 2 decimals).
curve = stats.summarize_curve(results, metric="test_acc")
mean = curve.pivot_table(index="weights_remaining", columns="strategy", values="mean")
std = curve.pivot_table(index="weights_remaining", columns="strategy", values="std")
table = (100 * mean).round(1).astype(str) + " ± " + (100 * std).round(1).astype(str)
table = table.where(mean.notna(), "-").sort_index(ascending=False)
print("\ntest accuracy (%) at the end of training, mean ± std over trials")
print(table.to_string())

# %%
# The early-stop iteration is measured on the estimator's evaluation grid
# (``eval_every='auto'``: every 100 iterations, or every epoch when an epoch
# is shorter, as here), so it takes values that are multiples of the grid
# step, and it cannot exceed the training length: a network
# whose validation loss still falls at the last epoch reports the last
# iteration. On digits, at the default 15 epochs (315 iterations), the
# validation loss of most runs is still falling at the end, so this column,
# and the left panel below, mostly sit at the training length: the accuracy
# is the informative measure here. Longer training (``--epochs 50``) gives
# early stopping room to move, at about three times the cost.
es = stats.summarize_curve(results, metric="early_stop_iteration")
es = es.pivot_table(index="weights_remaining", columns="strategy", values="mean")
print(f"\nearly-stop iteration, mean over trials (training length: "
      f"{int(results['n_iter'].max())} iterations)")
print(es.sort_index(ascending=False).round(0).to_string())

# %%
# Frankle & Carbin's figures
# --------------------------
# Left to right: the early-stop iteration (minimum validation loss, on the
# estimator's evaluation grid), a proxy for how fast a network learns, with the
# training length dotted; test accuracy at the early-stop iteration; test
# accuracy at the end of training, in percent. The dashed line and grey band
# are the dense network's mean ± std; the legend below says what is shaded.
fig = plot_ticket_figures(results)
fig.suptitle(f"LeNet-300-100 on digits, {args.trials} trials (mean ± std)")
fig.savefig(os.path.join(args.out, "ticket_vs_random_digits.png"), dpi=100)

# %%
# The same display, one panel at a time: the test accuracy *at the early-stop
# iteration* (the quantity of F&C's Figure 3), ticket and random reinit only.
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
disp = TicketCurveDisplay.from_results(results, kind="early_stop_accuracy",
                                       strategies=["rewind", "random"], ax=ax)
ax.set_title("Test accuracy at early stop")
disp.figure_.savefig(os.path.join(args.out, "ticket_vs_random_digits_early_stop.png"),
                     dpi=100)

# %%
# Is the ticket better than the controls?
# ---------------------------------------
# :func:`~sklottery.stats.compare_to_ticket` runs a Welch t-test of ticket vs
# control at every level: ``diff`` is ticket - control (in accuracy), with a
# 95 % confidence interval and Hedges' g. With 3 trials the tests have little
# power; treat p-values as a screening, not a proof. The dense round is not
# tested: every chain starts from the same dense network there.
cmp = stats.compare_to_ticket(results, metric="test_acc")
cols = ["strategy", "weights_remaining", "mean_ticket", "mean_control", "diff",
        "ci_low", "ci_high", "p_value", "hedges_g"]
print("\nticket vs controls (test accuracy, Welch t-test per level)")
print(cmp[cols].round(4).to_string(index=False))

# %%
# A ticket *matches* the dense network at a level when the 95 % interval of
# ticket - dense lies above -1 point (a non-inferiority test within a margin).
# It is a *winning* ticket only if it also beats the controls there (the
# interval of ticket - control above 0); matching is tested from the least
# pruned level down and the advantage from the most pruned level up, each
# stopping at its first failure. :func:`~sklottery.stats.matching_summary`
# gives one of four verdicts (``winning_ticket``; ``no_ticket_effect`` when
# the controls are shown equivalent; ``no_ticket``; ``inconclusive`` with its
# reason) and :func:`~sklottery.stats.verdict` says it with the evidence
# (level, differences with their intervals, Hedges' g, one-sided p, trials
# and test samples, and how many trials would decide). The same is done for
# the early-stop iteration (lower is better: does the ticket learn at least
# as fast as dense?).
summary = stats.matching_summary(results, metric="test_acc")
print(f"\nverdict: {summary['verdict']}; controls at {summary['verdict_level']:.1f} % "
      "weights:")
print(summary["controls"].drop(columns="label").round(4).to_string(index=False))
print("\nverdict (test accuracy):  ", stats.verdict(summary))
summary_es = stats.matching_summary(results, metric="early_stop_iteration")
print("verdict (early-stop iteration):", stats.verdict(summary_es))

# %%
# Inside the masks
# ----------------
# :func:`~sklottery.analysis.mask_analysis` reads the per-round masks and
# weights that ``ticket_curve(..., return_runs=True)`` kept for the chains.
#
# * Per-layer sparsity of the final ticket (trial 0): the output layer is
#   pruned at half the rate.
report = mask_analysis(runs, strategy="rewind")
print("\nfinal ticket, trial 0: weights left per layer")
print(report["layer_sparsity"].round(4).to_string())

# %%
# * Jaccard similarity of the final masks of different trials. Each trial has
#   its own θ0 and data split; two random masks at density ``d`` would have a
#   Jaccard of about ``d / (2 - d)``.
density = report["layer_sparsity"].loc["__total__", "fraction_remaining"]
print(f"\nJaccard of the final ticket masks across trials "
      f"(random masks at this density: ~{density / (2 - density):.3f})")
print(report["overlap_trials"].round(3).to_string())
print("\nJaccard of consecutive rounds' masks (trial 0)")
rounds = report["overlap_rounds"]
print(rounds[rounds["trial"] == 0].round(3).to_string(index=False))

# %%
# * Sign preservation: the fraction of surviving weights whose sign after the
#   last round of training equals their sign in θ0 (Zhou et al., 2019, found
#   that keeping the signs matters). For random ±, 50 % would be chance.
print("\nsurviving weights with the sign of θ0 after training, per trial")
print(report["sign_kept"].round(3).to_string(index=False))

# %%
# * Weight movement in the dense round: mean ``|w_final - w_init|`` of the weights
#   that the first prune kept vs removed. Magnitude pruning keeps large final
#   weights, which tend to be the ones that moved most.
mv = report["movement"]
print("\nmean |w_final - w0| in the dense round, kept vs pruned (trial 0)")
print(mv[mv["trial"] == 0].drop(columns="trial").round(4).to_string(index=False))

print(f"\nfigures saved in {os.path.abspath(args.out)}")
print(f"total time {time.perf_counter() - t_start:.0f} s")
if args.show:
    plt.show()
