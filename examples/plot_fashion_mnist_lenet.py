"""
==========================================================
Winning tickets of LeNet-300-100 on Fashion-MNIST
==========================================================

This example repeats the LeNet-300-100 experiment of Frankle & Carbin (2019,
"The Lottery Ticket Hypothesis", Figures 3 and 4) on Fashion-MNIST:

* **winning ticket**: iterative magnitude pruning (IMP) with rewinding. After
  each training round the smallest 20 % of the surviving hidden weights (10 %
  of the output layer) are pruned and the survivors are reset to their
  *original* initial values θ0 (``reinit='rewind'``);
* **random reinitialisation** (the control): the ticket's mask of each round,
  trained from a *fresh* random initialisation (another seed, ``n_rounds=0``,
  ``fit(X, y, initial_masks=ticket_masks)``).

:func:`sklottery.analysis.ticket_curve` runs both (strategies ``'rewind'``
and ``'random'``) and evaluates every network on the Fashion-MNIST test split
on the estimator's evaluation grid (every 100 iterations by default, as
Frankle & Carbin); the ticket's per-round masks and test accuracies are
captured *during* its single IMP fit, so no round is trained twice.
:func:`sklottery.stats.summarize_curve` averages the trials and
:func:`sklottery.plotting.plot_ticket_figures` draws Frankle & Carbin's
figures (early-stop iteration, test accuracy at early stop and at the end).

By default a **reduced protocol** runs in a few minutes on two CPU cores:
10,000 training images (9,000 train / 1,000 validation), 5 epochs per round,
5 pruning rounds and 2 trials. ``--full`` selects Frankle & Carbin's protocol:
55,000 train / 5,000 validation images, 50K iterations per round (55 epochs
of 917 minibatches of 60), Adam with learning rate 1.2e-3, 20 % / 10 %
pruning, 18 rounds (1.8 % of the weights left) and 5 trials. Every setting has
its own flag (``--help``); flags given with ``--full`` override it.

Run as a script::

    python examples/plot_fashion_mnist_lenet.py              # reduced, minutes
    python examples/plot_fashion_mnist_lenet.py --full --device cuda
"""

# %%
# Settings
# --------
import argparse
import os
import tempfile
import time

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sklottery import LotteryTicketClassifier, stats  # noqa: E402
from sklottery.analysis import n_runs, ticket_curve  # noqa: E402
from sklottery.datasets import fetch_fashion_mnist  # noqa: E402
from sklottery.plotting import plot_ticket_figures  # noqa: E402

PROTOCOLS = {
    # n_train includes the validation images (held out by the estimator).
    "reduced": dict(n_train=10_000, n_val=1_000, n_test=10_000, epochs=5, rounds=5,
                    trials=2),
    "full": dict(n_train=60_000, n_val=5_000, n_test=10_000, epochs=55, rounds=18,
                 trials=5),
}

parser = argparse.ArgumentParser(
    description="LeNet-300-100 winning tickets vs random reinitialisation on Fashion-MNIST."
)
parser.add_argument("--full", action="store_true",
                    help="Frankle & Carbin's protocol (55k/5k images, 55 epochs, "
                         "18 rounds, 5 trials) instead of the reduced one")
parser.add_argument("--n-train", type=int, help="training images, validation included "
                    "(reduced 10000, full 60000)")
parser.add_argument("--n-val", type=int, help="of which validation (reduced 1000, full 5000)")
parser.add_argument("--n-test", type=int, help="test images (default: all 10000)")
parser.add_argument("--epochs", type=int, help="epochs per round (reduced 5, full 55)")
parser.add_argument("--rounds", type=int, help="pruning rounds (reduced 5, full 18)")
parser.add_argument("--trials", type=int, help="independent trials (reduced 2, full 5)")
parser.add_argument("--batch-size", type=int, default=60)
parser.add_argument("--lr", type=float, default=1.2e-3, help="Adam learning rate")
parser.add_argument("--pruning-rate", type=float, default=0.2,
                    help="hidden-layer rate per round (output layer: half of it)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
parser.add_argument("--n-jobs", type=int, default=1,
                    help="parallel fits (joblib; default 1, -1: all cores)")
parser.add_argument("--threads", type=int, default=1,
                    help="torch threads per fit, the estimator's n_threads (default 1, which "
                         "cannot collapse on a busy machine; more can be faster on an idle one)")
parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "sklottery_examples"),
                    help="folder for the PNG figure (default: %(default)s)")
args = parser.parse_args()

settings = dict(PROTOCOLS["full" if args.full else "reduced"])
for key in settings:
    value = getattr(args, key)
    if value is not None:
        settings[key] = value
print("protocol:", "full" if args.full else "reduced",
      ", ".join(f"{k}={v}" for k, v in settings.items()),
      f"batch_size={args.batch_size} lr={args.lr} pruning_rate={args.pruning_rate} "
      f"device={args.device} n_jobs={args.n_jobs} threads={args.threads}")
t_start = time.perf_counter()

# %%
# Data
# ----
# Pixels are scaled to [0, 1]. The training subset is drawn at random (the
# same for every trial); the estimator holds out ``n_val`` of it, stratified,
# to measure the validation loss whose minimum is the early-stop iteration.
X_all, y_all = fetch_fashion_mnist(subset="train", return_X_y=True)
X_test, y_test = fetch_fashion_mnist(subset="test", return_X_y=True)
rng = np.random.RandomState(args.seed)
n_train = min(settings["n_train"], len(X_all))
idx = rng.permutation(len(X_all))[:n_train]
X, y = X_all[idx], y_all[idx]
test_idx = np.sort(rng.permutation(len(X_test))[:min(settings["n_test"], len(X_test))])
X_test, y_test = X_test[test_idx], y_test[test_idx]
print(f"train {n_train - settings['n_val']} + validation {settings['n_val']} images, "
      f"test {len(X_test)} images")

# %%
# Tickets and random reinitialisations
# ------------------------------------
# With ``X_test`` given, every trial trains on all of ``X`` and is tested on
# the Fashion-MNIST test split; trials differ by their θ0 and seeds.
# ``test_acc`` is the accuracy at the end of a round's training,
# ``early_stop_iteration`` the iteration of minimum validation loss.
estimator = LotteryTicketClassifier(
    hidden_layer_sizes=(300, 100),
    n_rounds=settings["rounds"],
    max_epochs=settings["epochs"],
    batch_size=args.batch_size,
    learning_rate_init=args.lr,
    pruning_rate=args.pruning_rate,
    output_pruning_rate="half",
    validation_fraction=settings["n_val"] / n_train,
    device=args.device,
    n_threads=args.threads,
)
strategies = ["rewind", "random"]
n_fits = n_runs(estimator, strategies, settings["trials"])
print(f"fits done (of {n_fits}, one IMP chain or one control each):", end="", flush=True)
fits_done = iter(range(1, n_fits + 1))
results = ticket_curve(estimator, X, y, strategies=strategies, n_trials=settings["trials"],
                       X_test=X_test, y_test=y_test, random_state=args.seed,
                       n_jobs=args.n_jobs,
                       progress=lambda: print(f" {next(fits_done)}", end="", flush=True))
print(f" ({time.perf_counter() - t_start:.0f} s)")
seconds = results.groupby("strategy", sort=False)["seconds"].agg(["count", "sum"])
print("training time:", ", ".join(f"{s} {int(r['count'])} trainings {r['sum']:.1f} s"
                                  for s, r in seconds.iterrows()))

# %%
# Results
# -------
# Mean ± standard deviation over the trials (``ddof=1``) per round. Round 0
# is the dense network; the random reinitialisation control starts at round 1.
by = ["strategy", "round", "weights_remaining"]
acc = stats.summarize_curve(results, metric="test_acc", by=by).set_index(by)
es = stats.summarize_curve(results, metric="early_stop_iteration", by=by).set_index(by)


def mean_std(summary, strategy, scale=100.0, fmt="{:.2f}"):
    """'mean ± std' strings of one strategy's rows of a summary (std 0 for one trial)."""
    rows = summary.loc[strategy]
    return ((scale * rows["mean"]).map(fmt.format) + " ± "
            + (scale * rows["std"].fillna(0.0)).map(fmt.format))


table = pd.DataFrame({
    "ticket acc": mean_std(acc, "rewind"), "reinit acc": mean_std(acc, "random"),
    "ticket ES it": mean_std(es, "rewind", 1, "{:.0f}"),
    "reinit ES it": mean_std(es, "random", 1, "{:.0f}"),
}).fillna("-").reset_index().rename(columns={"weights_remaining": "% remaining"})
print(f"\nLeNet-300-100 on Fashion-MNIST, test accuracy (%) at the end of each round, "
      f"{settings['trials']} trial(s)")
print(table.to_string(index=False, float_format="{:.2f}".format))

# %%
# Accuracy vs. weights remaining
# ------------------------------
# As in the paper, the x axis is logarithmic and reversed: sparser networks
# are further right. The dashed line and grey band are the dense network.
os.makedirs(args.out, exist_ok=True)
fig = plot_ticket_figures(results)
fig.suptitle(f"LeNet-300-100, Fashion-MNIST ({'full' if args.full else 'reduced'} protocol, "
             f"{settings['trials']} trial(s), mean ± std)")
path = os.path.join(args.out, "fashion_mnist_lenet300_100.png")
fig.savefig(path, dpi=100)
print(f"\nfigure saved to {path}")
print(f"total time {time.perf_counter() - t_start:.1f} s")
