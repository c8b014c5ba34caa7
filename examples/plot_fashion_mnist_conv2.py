"""
==========================================================
Winning tickets of Conv-2 on Fashion-MNIST
==========================================================

This example repeats the Conv-2 experiment of Frankle & Carbin (2019, "The
Lottery Ticket Hypothesis", Figure 5: two 3x3 convolutions of 64 channels, a
2x2 max pool, fully connected layers 256, 256, 10) on Fashion-MNIST images of
shape ``(1, 28, 28)`` instead of CIFAR-10:

* **winning ticket**: iterative magnitude pruning (IMP) with rewinding. After
  each training round 10 % of the surviving convolution weights
  (``conv_pruning_rate=0.1``), 20 % of the hidden fully connected weights
  (``pruning_rate=0.2``) and 10 % of the output layer
  (``output_pruning_rate='half'``) are pruned, by magnitude, layer by layer,
  and the survivors are reset to their *original* initial values θ0
  (``reinit='rewind'``);
* **random reinitialisation** (the control): the ticket's mask of each round,
  trained from a *fresh* random initialisation. This is a new
  :class:`~sklottery.LotteryTicketClassifier` with another ``random_state``,
  ``n_rounds=0`` and ``fit(X, y, initial_masks=ticket_masks)``.

Both are evaluated on the Fashion-MNIST test split after every round. The
ticket's per-round masks and test predictions are captured *during* its single
IMP fit by a small skorch callback (``on_train_begin`` copies the masks the
estimator applies, ``on_train_end`` predicts the test set), so no round is
trained twice.

Conv-2 costs about 60 times more per image than LeNet-300-100 (the second
convolution alone is 29M multiply-adds per 28x28 image), so the default
**reduced protocol**, which runs in a few minutes on two CPU cores, is small:
1,000 training images (900 train / 100 validation), 2 epochs per round, 3
pruning rounds, 2 trials, 1,000 test images, and Adam with learning rate 1e-3
to make up for the few iterations. Its accuracies are far below those of the
full protocol; it shows the mechanics, not the paper's numbers. ``--full``
selects Frankle & Carbin's Conv-2 protocol: 55,000 train / 5,000 validation
images, 20K iterations per round (22 epochs of 917 minibatches of 60), Adam
with learning rate 2e-4, 20 rounds (1.2 % of the fully connected weights
left), 5 trials, the whole test split; it needs a GPU (``--device cuda``).
Every setting has its own flag (``--help``); flags given with ``--full``
override it.

Run as a script::

    python examples/plot_fashion_mnist_conv2.py              # reduced, minutes
    python examples/plot_fashion_mnist_conv2.py --full --device cuda
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
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from skorch.callbacks import Callback  # noqa: E402

from sklottery import LotteryTicketClassifier  # noqa: E402
from sklottery.datasets import fetch_fashion_mnist  # noqa: E402
from sklottery.modules import layer_kinds  # noqa: E402

PROTOCOLS = {
    # n_train includes the validation images (held out by the estimator).
    "reduced": dict(n_train=1_000, n_val=100, n_test=1_000, epochs=2, rounds=3,
                    trials=2, lr=1e-3),
    "full": dict(n_train=60_000, n_val=5_000, n_test=10_000, epochs=22, rounds=20,
                 trials=5, lr=2e-4),
}

parser = argparse.ArgumentParser(
    description="Conv-2 winning tickets vs random reinitialisation on Fashion-MNIST."
)
parser.add_argument("--full", action="store_true",
                    help="Frankle & Carbin's Conv-2 protocol (55k/5k images, 22 epochs, "
                         "lr 2e-4, 20 rounds, 5 trials) instead of the reduced one")
parser.add_argument("--n-train", type=int, help="training images, validation included "
                    "(reduced 1000, full 60000)")
parser.add_argument("--n-val", type=int, help="of which validation (reduced 100, full 5000)")
parser.add_argument("--n-test", type=int, help="test images (reduced 1000, full 10000)")
parser.add_argument("--epochs", type=int, help="epochs per round (reduced 2, full 22)")
parser.add_argument("--rounds", type=int, help="pruning rounds (reduced 3, full 20)")
parser.add_argument("--trials", type=int, help="independent trials (reduced 2, full 5)")
parser.add_argument("--lr", type=float, help="Adam learning rate (reduced 1e-3, full 2e-4)")
parser.add_argument("--batch-size", type=int, default=60)
parser.add_argument("--pruning-rate", type=float, default=0.2,
                    help="fully connected rate per round (output layer: half of it)")
parser.add_argument("--conv-pruning-rate", type=float, default=0.1,
                    help="convolution rate per round")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
parser.add_argument("--threads", type=int,
                    help="torch.set_num_threads (default: torch's); use 1 on a busy "
                         "machine, where competing threads slow small networks down")
parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "sklottery_examples"),
                    help="folder for the PNG figure (default: %(default)s)")
args = parser.parse_args()

settings = dict(PROTOCOLS["full" if args.full else "reduced"])
for key in settings:
    value = getattr(args, key)
    if value is not None:
        settings[key] = value
if args.threads:
    torch.set_num_threads(args.threads)
print("protocol:", "full" if args.full else "reduced",
      ", ".join(f"{k}={v}" for k, v in settings.items()),
      f"batch_size={args.batch_size} pruning_rate={args.pruning_rate} "
      f"conv_pruning_rate={args.conv_pruning_rate} "
      f"device={args.device} threads={torch.get_num_threads()}")
t_start = time.perf_counter()

# %%
# Data
# ----
# Pixels are scaled to [0, 1]. The estimator takes the flat ``(n, 784)`` rows
# (``(n, 1, 28, 28)`` arrays work too) and ``input_shape=(1, 28, 28)`` tells
# Conv-2 how to reshape them. The training subset is drawn at random (the
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
validation_fraction = settings["n_val"] / n_train
print(f"train {n_train - settings['n_val']} + validation {settings['n_val']} images, "
      f"test {len(X_test)} images")


# %%
# Capturing every round of one IMP fit
# ------------------------------------
# The estimator calls ``on_train_begin`` after it has applied the round's masks
# (its own ``'sklottery_masks'`` callback runs first) and ``on_train_end``
# after the round's last epoch. Passing the callback as a ``(name, callback)``
# tuple keeps the very object we hold, and reading it back from
# ``net_.callbacks_`` is safe either way. Predicting inside the callback
# consumes no random numbers, so the ticket is the same with or without it.
class RoundRecorder(Callback):
    """Per round: the masks the estimator trains with and the test predictions."""

    def __init__(self, X_test):
        self.X_test = X_test

    def initialize(self):
        self.masks, self.test_pred = [], []
        return self

    def on_train_begin(self, net, **kwargs):
        masks = dict(net.callbacks_)["sklottery_masks"].masks
        self.masks.append({n: m.detach().cpu().clone() for n, m in masks.items()})

    def on_train_end(self, net, **kwargs):
        X = torch.as_tensor(self.X_test, dtype=torch.float32, device=net.device)
        self.test_pred.append(np.asarray(net.predict_proba(X)).argmax(axis=1))


common = dict(
    module="conv2",
    input_shape=(1, 28, 28),
    max_epochs=settings["epochs"],
    batch_size=args.batch_size,
    learning_rate_init=settings["lr"],
    pruning_rate=args.pruning_rate,
    conv_pruning_rate=args.conv_pruning_rate,
    output_pruning_rate="half",
    validation_fraction=validation_fraction,
    device=args.device,
)

# %%
# Tickets and random reinitialisations
# ------------------------------------
n_rounds, n_trials = settings["rounds"], settings["trials"]
shape = (n_trials, n_rounds + 1)
ticket_acc, reinit_acc = np.full(shape, np.nan), np.full(shape, np.nan)
ticket_es, reinit_es = np.full(shape, np.nan), np.full(shape, np.nan)
remaining = np.full(shape, np.nan)
conv_remaining, fc_remaining = np.full(shape, np.nan), np.full(shape, np.nan)

for trial in range(n_trials):
    t0 = time.perf_counter()
    recorder = RoundRecorder(X_test)
    ticket = LotteryTicketClassifier(
        n_rounds=n_rounds, reinit="rewind", random_state=args.seed + trial,
        callbacks=[("round_recorder", recorder)], **common,
    ).fit(X, y)
    recorder = dict(ticket.net_.callbacks_)["round_recorder"]
    n_done = len(ticket.rounds_)  # a divergence would stop early
    kinds = layer_kinds(ticket.net_.module_)
    for r, rec in enumerate(ticket.rounds_):
        remaining[trial, r] = rec["weights_remaining"]
        masks = recorder.masks[r]
        for target, kind in ((conv_remaining, ("conv",)), (fc_remaining, ("fc", "output"))):
            kept = sum(int(masks[n].sum()) for n, k in kinds.items() if k in kind)
            total = sum(masks[n].numel() for n, k in kinds.items() if k in kind)
            target[trial, r] = 100.0 * kept / total
        ticket_es[trial, r] = rec["early_stop_iteration"]
        pred = ticket.classes_[recorder.test_pred[r]]
        ticket_acc[trial, r] = np.mean(pred == y_test)
    t1 = time.perf_counter()
    for r in range(1, n_done):
        control = LotteryTicketClassifier(
            n_rounds=0, random_state=10_000 * (trial + 1) + args.seed * 100 + r, **common,
        ).fit(X, y, initial_masks=recorder.masks[r])
        reinit_acc[trial, r] = control.score(X_test, y_test)
        reinit_es[trial, r] = control.rounds_[0]["early_stop_iteration"]
    print(f"trial {trial + 1}/{n_trials}: ticket ({n_done} trainings) "
          f"{t1 - t0:.1f} s, random reinit ({n_done - 1} trainings) "
          f"{time.perf_counter() - t1:.1f} s", flush=True)


# %%
# Results
# -------
# Mean ± standard deviation over the trials (``ddof=1``). Round 0 is the dense
# network; the random reinitialisation control starts at round 1.
def mean_std(a):
    """Column-wise mean and std (ddof=1) ignoring NaN; NaN where a column is empty."""
    mean, std = np.full(a.shape[1], np.nan), np.full(a.shape[1], np.nan)
    for j, col in enumerate(a.T):
        col = col[~np.isnan(col)]
        if len(col):
            mean[j] = col.mean()
            std[j] = col.std(ddof=1) if len(col) > 1 else 0.0
    return mean, std


def fmt(m, s, pct=True, width=15):
    if np.isnan(m):
        return f"{'-':>{width}}"
    text = f"{100 * m:.2f} ± {100 * s:.2f}" if pct else f"{m:.0f} ± {s:.0f}"
    return f"{text:>{width}}"


rem = mean_std(remaining)[0]
rem_conv, rem_fc = mean_std(conv_remaining)[0], mean_std(fc_remaining)[0]
ta, ta_s = mean_std(ticket_acc)
ra, ra_s = mean_std(reinit_acc)
te, te_s = mean_std(ticket_es)
re_, re_s = mean_std(reinit_es)
print()
print(f"Conv-2 on Fashion-MNIST, test accuracy (%) at the end of each round, "
      f"{n_trials} trial(s)")
print(f"{'round':>5} {'% remaining':>11} {'% conv':>7} {'% fc':>6} {'ticket acc':>15} "
      f"{'reinit acc':>15} {'ticket ES it':>15} {'reinit ES it':>15}")
for r in range(n_rounds + 1):
    if np.isnan(rem[r]):
        continue
    print(f"{r:>5d} {rem[r]:>11.2f} {rem_conv[r]:>7.2f} {rem_fc[r]:>6.2f} "
          f"{fmt(ta[r], ta_s[r])} {fmt(ra[r], ra_s[r])} "
          f"{fmt(te[r], te_s[r], pct=False)} {fmt(re_[r], re_s[r], pct=False)}")

# %%
# Accuracy vs. weights remaining
# ------------------------------
# As in the paper, the x axis is logarithmic and reversed: sparser networks
# are further right.
os.makedirs(args.out, exist_ok=True)
ok = ~np.isnan(rem)
fig, (ax_acc, ax_es) = plt.subplots(1, 2, figsize=(11, 4))
ax_acc.errorbar(rem[ok], 100 * ta[ok], yerr=100 * ta_s[ok], marker="o", capsize=3,
                label="winning ticket (rewind to θ0)")
ok_r = ok & ~np.isnan(ra)
ax_acc.errorbar(rem[ok_r], 100 * ra[ok_r], yerr=100 * ra_s[ok_r], marker="s", capsize=3,
                linestyle="--", label="random reinitialisation")
ax_acc.set_ylabel("Test accuracy (%)")
ax_es.errorbar(rem[ok], te[ok], yerr=te_s[ok], marker="o", capsize=3, label="winning ticket")
ax_es.errorbar(rem[ok_r], re_[ok_r], yerr=re_s[ok_r], marker="s", capsize=3, linestyle="--",
               label="random reinitialisation")
ax_es.set_ylabel("Early-stop iteration (min. validation loss)")
for ax in (ax_acc, ax_es):
    ax.set_xscale("log")
    ax.set_xticks(rem[ok])
    ax.set_xticklabels([f"{v:.3g}" for v in rem[ok]], rotation=45)
    ax.minorticks_off()
    ax.invert_xaxis()
    ax.set_xlabel("Weights remaining (%)")
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle(f"Conv-2, Fashion-MNIST ({'full' if args.full else 'reduced'} protocol, "
             f"{n_trials} trial(s), mean ± std)")
fig.tight_layout()
path = os.path.join(args.out, "fashion_mnist_conv2.png")
fig.savefig(path, dpi=100)
print(f"\nfigure saved to {path}")
print(f"total time {time.perf_counter() - t_start:.1f} s")
