"""The trainer: one masked round of training, with skorch.

:class:`SkorchTrainer` is the seam between the IMP engine
(:mod:`sklottery.base`) and the training loop: ``train(masks, epochs,
capture_at)`` returns a :class:`RoundResult`. Its pieces:

* :class:`TensorBatchIterator`: skorch's default path builds a
  ``torch.utils.data.DataLoader`` over a per-item ``Dataset`` and collates
  every batch item by item; on small tabular data that costs several times
  the actual training. This iterator slices batches straight out of tensors
  that already live on the training device.
* :class:`MaskCallback`: pruned weights exactly zero after every step, and the
  θk snapshot of late rewinding.
* :class:`EvalGrid`: validation loss and score every ``eval_every``
  iterations (the early-stop iteration), and the ``on_evaluation`` hook.
* :class:`WarmupScheduler`: the learning-rate warmup, a ``LambdaLR``.
* :class:`LotteryNet` / :class:`LotteryRegressorNet`: skorch nets with
  cheaper per-batch bookkeeping, for classification and regression.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import Dataset
from skorch.helper import predefined_split

from ._interrupt import aborting, poll_stop

__all__ = ["TensorBatchIterator", "MaskCallback", "EvalGrid", "WarmupScheduler", "Diverged",
           "LotteryNet", "LotteryRegressorNet", "SkorchTrainer", "RoundResult",
           "resolve_eval_every", "DIVERGENCE_FACTOR", "divergence_detail"]

#: ``eval_every='auto'`` evaluates about this often (Frankle & Carbin evaluate
#: every 100 iterations), and at least once per epoch.
AUTO_EVAL_ITERATIONS = 100


class Diverged(RuntimeError):
    """Raised inside a round when training diverged (see :func:`divergence_detail`)."""


#: A round has diverged when a loss exceeds this multiple of its reference
#: (see :func:`divergence_detail`).
DIVERGENCE_FACTOR = 10.0


def divergence_detail(what, loss, reference, first_loss=float("nan"), where=""):
    """Why ``loss`` means the round diverged, or None when it does not.

    The rule, the same for every trainer: a loss diverged when it is NaN or
    infinite, or when it exceeds :data:`DIVERGENCE_FACTOR` (10) times the
    larger of

    * ``reference``: the loss of a constant prediction on the same targets
      (uniform logits for a classifier, ``ln K`` with K classes; the targets'
      mean for a regressor), what a network that learned nothing scores, and
    * ``first_loss``: the loss of the round's first training batch, before
      any step (so a network that starts far worse than constant, e.g. on
      unscaled features, is judged against its own start).

    A network ten times worse than a constant prediction has blown up: with
    ``learning_rate_init=100`` on digits the validation loss reaches
    hundreds while ``ln 10 = 2.3``. The losses checked are averages over many
    samples (the mean training loss of an epoch and the validation loss on
    the evaluation grid), never a single batch, so an outlying batch cannot
    trigger it.

    Parameters
    ----------
    what : str
        Name of the loss in the message (``'validation loss'``).
    loss : float
    reference : float or None
        Loss of a constant prediction; None or NaN checks finiteness only.
    first_loss : float, default=nan
    where : str, default=''
        Appended to the message (``'at iteration 300'``).
    """
    loss = float(loss)
    suffix = f" {where}" if where else ""
    if not math.isfinite(loss):
        return f"{what} became {loss}{suffix}"
    bases = [float(v) for v in (reference, first_loss) if v is not None and math.isfinite(v)]
    if not bases:
        return None
    limit = DIVERGENCE_FACTOR * max(bases)
    if loss > limit:
        return (f"{what} {loss:.4g} exceeded {limit:.4g}{suffix} ({DIVERGENCE_FACTOR:g} x "
                f"the larger of the loss of a constant prediction, {float(reference):.4g}, "
                f"and the round's first-batch loss, {float(first_loss):.4g})")
    return None


def _as_tensor(a):
    if a is None or isinstance(a, torch.Tensor):
        return a
    return torch.as_tensor(np.asarray(a))


class TensorBatchIterator:
    """Iterate over ``(X_batch, y_batch)`` slices of a skorch ``Dataset``.

    Used as skorch's ``iterator_train`` / ``iterator_valid``. With
    ``shuffle=True`` one permutation per epoch is drawn from ``generator``
    (so data order is reproducible and independent of the global torch RNG)
    and each batch gathers its rows, ``X[perm[start:stop]]``: the same
    batches as slicing the permuted array ``X[perm]``, without holding a
    shuffled copy of the whole training set.

    Parameters
    ----------
    dataset : skorch.dataset.Dataset or torch.utils.data.TensorDataset
        Must expose the full ``X`` (and optionally ``y``) as tensors/arrays.
    batch_size : int
    shuffle : bool, default=False
    generator : torch.Generator, optional
        CPU generator for the permutation.
    """

    def __init__(self, dataset, batch_size, shuffle=False, generator=None, **kwargs):
        if hasattr(dataset, "X"):
            X, y = dataset.X, getattr(dataset, "y", None)
        elif hasattr(dataset, "tensors"):
            X, *rest = dataset.tensors
            y = rest[0] if rest else None
        else:
            raise TypeError(
                "TensorBatchIterator needs a dataset exposing X/y tensors, got "
                f"{type(dataset).__name__}."
            )
        self.X = _as_tensor(X)
        self.y = _as_tensor(y)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self):
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        X, y, bs = self.X, self.y, self.batch_size
        n = len(X)
        if not self.shuffle:
            for start in range(0, n, bs):
                stop = start + bs
                yield X[start:stop], (None if y is None else y[start:stop])
            return
        perm = torch.randperm(n, generator=self.generator).to(X.device)
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            yield X.index_select(0, idx), (None if y is None else y.index_select(0, idx))


class MaskCallback(Callback):
    """Keep pruned weights at exactly zero during skorch training.

    * ``on_grad_computed`` zeroes the gradients of pruned weights (so Adam's
      moments and SGD's momentum buffers, which start at zero after every
      optimizer rebuild, stay zero at those indices);
    * ``on_batch_end`` zeroes the pruned weights again after the step (weight
      decay or a user optimizer cannot revive them) and checks the loss;
    * optional snapshot of the full module state at iteration ``capture_at``
      (late rewinding, θk);
    * the divergence check (:func:`divergence_detail`): a NaN/inf batch loss,
      or an epoch whose mean training or validation loss blew up, raises
      :class:`Diverged`;
    * a stop requested by :mod:`sklottery._interrupt` (Ctrl-C in a
      :func:`~sklottery.analysis.ticket_curve`) interrupts the round at the
      next batch.

    Masks are applied by index (multiplication by the 0/1 mask of each
    weight, which is several times cheaper than ``masked_fill_`` on the CPU),
    never by a value threshold. A NaN/inf loss is caught by the divergence
    check before it can spread.
    """

    def __init__(self, masks=None, capture_at=None, reference_loss=None,
                 valid_reference_loss=None):
        self.masks = masks
        self.capture_at = capture_at
        self.reference_loss = reference_loss
        self.valid_reference_loss = valid_reference_loss

    def initialize(self):
        self.iteration_ = 0
        self.captured_ = None
        self.first_loss_ = float("nan")
        self._pairs = []
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pairs"] = []  # references into the module; rebuilt on train begin
        return state

    def on_train_begin(self, net, **kwargs):
        self.iteration_ = 0
        self.captured_ = None
        self.first_loss_ = float("nan")
        params = dict(net.module_.named_parameters())
        self._pairs = []
        for name, mask in (self.masks or {}).items():
            p = params[name]
            if not bool(mask.all()):
                self._pairs.append((p, mask.to(device=p.device, dtype=p.dtype)))
        with torch.no_grad():
            for p, keep in self._pairs:
                p.masked_fill_(keep == 0, 0.0)  # exact zeros even over NaN/inf
        if self.capture_at == 0:
            self._capture(net)

    def _capture(self, net):
        self.captured_ = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}

    def on_grad_computed(self, net, named_parameters, **kwargs):
        for p, keep in self._pairs:
            if p.grad is not None:
                p.grad.mul_(keep)

    def on_batch_end(self, net, training=False, loss=None, **kwargs):
        if not training:
            return
        with torch.no_grad():
            for p, keep in self._pairs:
                p.mul_(keep)
        self.iteration_ += 1
        if loss is not None:
            value = loss.item()
            if not math.isfinite(value):
                raise Diverged(f"training loss became {value} at iteration {self.iteration_}")
            if self.iteration_ == 1:
                self.first_loss_ = value
        if self.capture_at is not None and self.iteration_ == self.capture_at:
            self._capture(net)
        poll_stop()

    def on_epoch_end(self, net, **kwargs):
        # the epoch's mean training and validation losses (skorch recorded them
        # before this hook): a blown-up round stops here, not at its end
        row = net.history[-1] if len(net.history) else {}
        for key, what, reference in (
                ("train_loss", "mean training loss of an epoch", self.reference_loss),
                ("valid_loss", "validation loss", self.valid_reference_loss)):
            if key in row:
                detail = divergence_detail(what, row[key], reference, self.first_loss_,
                                           f"at iteration {self.iteration_}")
                if detail is not None:
                    raise Diverged(detail)


class ValidAccuracy(Callback):
    """Validation accuracy from the predictions skorch already computed.

    Replaces skorch's default ``valid_acc`` scoring, which predicts the
    validation set a second way and calls scikit-learn's validated
    ``accuracy_score`` every epoch (most of an epoch's cost on small data).
    Records the same history key, ``'valid_acc'``.
    """

    def on_epoch_begin(self, net, **kwargs):
        self.correct_, self.total_ = 0, 0

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training or y_pred is None or batch is None or batch[1] is None:
            return
        y = batch[1]
        self.correct_ += int((y_pred.argmax(1) == y.to(y_pred.device)).sum())
        self.total_ += len(y)

    def on_epoch_end(self, net, **kwargs):
        if self.total_:
            net.history.record("valid_acc", self.correct_ / self.total_)


class EpochProgress(Callback):
    """One line per epoch inside a round (``verbose >= 2``): losses, score, seconds."""

    def __init__(self, score="acc"):
        self.score = score

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        parts = [f"    epoch {row['epoch']:>3}", f"train loss {row['train_loss']:.4f}"]
        if "valid_loss" in row:
            parts.append(f"val loss {row['valid_loss']:.4f}")
        if f"valid_{self.score}" in row:
            parts.append(f"val {self.score} {row['valid_' + self.score]:.4f}")
        parts.append(f"{row['dur']:.2f} s")
        print("  ".join(parts), flush=True)


class WarmupScheduler(Callback):
    """Linear learning-rate warmup over the first ``warmup`` iterations of a round.

    A :class:`torch.optim.lr_scheduler.LambdaLR` on the round's optimizer
    (skorch rebuilds the optimizer every round, and so the scheduler): the
    ``i``-th training batch (from 0) runs at ``lr * min(1, (i + 1) / warmup)``.
    Needed to find tickets in deep networks (Frankle et al. 2020).
    """

    def __init__(self, warmup=0):
        self.warmup = warmup

    def initialize(self):
        self.scheduler_ = None
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        state["scheduler_"] = None  # holds the optimizer; rebuilt every round
        return state

    def on_train_begin(self, net, **kwargs):
        self.scheduler_ = None
        if self.warmup:
            warmup = int(self.warmup)
            self.scheduler_ = torch.optim.lr_scheduler.LambdaLR(
                net.optimizer_, lambda step: min(1.0, (step + 1) / warmup))

    def on_batch_end(self, net, training=False, **kwargs):
        if training and self.scheduler_ is not None:
            self.scheduler_.step()


def resolve_eval_every(eval_every, iters_per_epoch):
    """Iterations between two evaluations for ``eval_every`` ('auto' or an int).

    ``'auto'`` is ``min(100, iters_per_epoch)``: every 100 iterations as
    Frankle & Carbin, but never less often than once per epoch.
    """
    if eval_every == "auto":
        return max(1, min(AUTO_EVAL_ITERATIONS, int(iters_per_epoch)))
    return int(eval_every)


@torch.no_grad()
def forward_chunks(module, X, chunk=1024, device=None):
    """Outputs of ``module`` on ``X`` in eval mode, ``chunk`` rows at a time.

    Chunks bound the activation memory of conv networks; the module's
    train/eval mode is restored afterwards. With ``device``, each chunk is
    moved there first.
    """
    was_training = module.training
    module.eval()
    try:
        outs = [module(X[i:i + chunk] if device is None else X[i:i + chunk].to(device))
                for i in range(0, len(X), chunk)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)  # one chunk: no copy
    finally:
        module.train(was_training)


def accuracy_t(outputs, y):
    """Accuracy of logits ``outputs`` against class indices ``y`` (tensors)."""
    return float((outputs.argmax(1) == y).double().mean())


def r2_t(outputs, y):
    """R² of ``outputs`` against ``y`` (tensors), averaged over outputs like sklearn.

    An output whose targets are constant scores 1.0 when predicted exactly
    and 0.0 otherwise (scikit-learn's convention).
    """
    out = outputs.double().reshape(len(outputs), -1)
    target = y.double().reshape(len(y), -1)
    ss_res = ((target - out) ** 2).sum(0)
    ss_tot = ((target - target.mean(0)) ** 2).sum(0)
    r2 = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp_min(1e-300),
                     (ss_res == 0).double())
    return float(r2.mean())


#: Validation scores of :class:`EvalGrid` by name.
SCORES = {"acc": accuracy_t, "r2": r2_t}


class EvalGrid(Callback):
    """Validation loss and accuracy on a grid of training iterations.

    Evaluates the network every ``every`` training iterations of a round and
    once more at the end of the round (unless the last iteration was already a
    grid point), so that the early-stop iteration (minimum validation loss,
    Frankle & Carbin) is resolved to ``every`` iterations rather than to
    epochs. At every grid point other callbacks that define
    ``on_evaluation(net, iteration=..., valid_loss=...)`` are notified (e.g.
    to keep the network of the early-stop iteration), also when there is no
    validation set (``valid_loss`` is then NaN).

    A grid point at the end of an epoch reuses the validation loss and
    accuracy that skorch has just computed for that epoch (same weights, same
    data), so a grid that falls on epoch ends costs no extra forward pass; a
    point inside an epoch is evaluated just before the next training batch,
    when the weights are still those of the grid point. The evaluation runs in
    eval mode without gradients and draws no random numbers, so it does not
    change training.

    Parameters
    ----------
    every : int, default=1
        Iterations between evaluations.
    valid : tuple of (X, y) tensors or None
        Validation data; None evaluates nothing but still notifies.
    score : {'acc', 'r2'}, default='acc'
        Validation score recorded beside the loss: accuracy (classifier) or
        the coefficient of determination R² averaged over outputs
        (regressor); read from skorch's history as ``'valid_<score>'`` when
        it is there.
    chunk : int, default=1024
        Samples per forward pass (bounds activation memory).
    """

    def __init__(self, every=1, valid=None, score="acc", chunk=1024):
        self.every = every
        self.valid = valid
        self.score = score
        self.chunk = chunk

    def initialize(self):
        self._reset()
        return self

    def _reset(self):
        self.iteration_ = 0
        self.iterations_ = []
        self.valid_loss_ = []
        self.valid_score_ = []
        self._pending = False

    def __getstate__(self):
        state = self.__dict__.copy()
        state["valid"] = None  # the estimator never keeps data after fit
        return state

    def on_train_begin(self, net, **kwargs):
        self._reset()

    def on_batch_begin(self, net, training=False, **kwargs):
        if training and self._pending:  # a grid point inside the epoch
            self._record(net, *self._loss_acc_or_nan(net))

    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        self.iteration_ += 1
        self._pending = self.iteration_ % int(self.every) == 0

    def on_epoch_end(self, net, **kwargs):
        if self._pending:
            self._record(net, *self._from_history(net))

    def on_train_end(self, net, **kwargs):
        # training ends at the end of an epoch, which skorch has just validated
        if self._pending or not self.iterations_ or self.iterations_[-1] != self.iteration_:
            self._record(net, *self._from_history(net))

    def _from_history(self, net):
        """The epoch's validation loss and accuracy, as skorch just computed them."""
        if self.valid is None:
            return float("nan"), float("nan")
        last = net.history[-1] if len(net.history) else {}
        key = f"valid_{self.score}"
        if "valid_loss" in last and key in last:
            return float(last["valid_loss"]), float(last[key])
        return self._loss_acc_or_nan(net)

    def _loss_acc_or_nan(self, net):
        if self.valid is None:
            return float("nan"), float("nan")
        return self._loss_acc(net, *self.valid)

    def _record(self, net, loss, acc):
        self._pending = False
        it = self.iteration_
        self.iterations_.append(it)
        self.valid_loss_.append(loss)
        self.valid_score_.append(acc)
        net.notify("on_evaluation", iteration=it, valid_loss=loss)

    def _loss_acc(self, net, X, y):
        out = forward_chunks(net.module_, X, self.chunk)
        with torch.no_grad():
            loss = float(net.criterion_(out, y))
        return loss, SCORES[self.score](out, y)

    def early_stop(self):
        """``(iteration, valid_loss, valid_score)`` at the minimum validation loss.

        The first grid point wins ties. ``None`` without validation data or
        when every loss is NaN.
        """
        vl = np.asarray(self.valid_loss_, dtype=float)
        if not vl.size or not np.isfinite(vl).any():
            return None
        best = int(np.nanargmin(np.where(np.isfinite(vl), vl, np.nan)))
        return self.iterations_[best], float(vl[best]), float(self.valid_score_[best])


def grid_divergence(grid, reference, first_loss):
    """Why the validation losses of ``grid`` (an :class:`EvalGrid`) diverged, or None."""
    if grid.valid is None:
        return None
    for it, loss in zip(grid.iterations_, grid.valid_loss_):
        detail = divergence_detail("validation loss", loss, reference, first_loss,
                                   f"at iteration {it}")
        if detail is not None:
            return detail
    return None


_BATCH_HOOKS = ("on_batch_begin", "on_grad_computed", "on_batch_end")


def _overrides(callback, method_name):
    """Whether ``callback``'s class overrides the no-op skorch hook ``method_name``."""
    return getattr(type(callback), method_name, None) is not getattr(Callback, method_name)


class ValidR2(Callback):
    """Validation R² from the predictions skorch already computed (regressor).

    Accumulates, per output, the sums needed for R² over the validation
    batches of an epoch and records ``'valid_r2'`` (averaged over outputs,
    like :func:`sklearn.metrics.r2_score`) in the history.
    """

    def on_epoch_begin(self, net, **kwargs):
        self.n_, self.sum_y_, self.sum_y2_, self.sse_ = 0, 0.0, 0.0, 0.0

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training or y_pred is None or batch is None or batch[1] is None:
            return
        y = batch[1].to(y_pred.device).double().reshape(len(y_pred), -1)
        pred = y_pred.detach().double().reshape(len(y_pred), -1)
        self.n_ += len(y)
        self.sum_y_ = self.sum_y_ + y.sum(0)
        self.sum_y2_ = self.sum_y2_ + (y ** 2).sum(0)
        self.sse_ = self.sse_ + ((y - pred) ** 2).sum(0)

    def on_epoch_end(self, net, **kwargs):
        if self.n_:
            ss_tot = self.sum_y2_ - self.sum_y_ ** 2 / self.n_
            r2 = torch.where(ss_tot > 1e-12 * self.sum_y2_.clamp_min(1e-300),
                             1 - self.sse_ / ss_tot.clamp_min(1e-300),
                             (self.sse_ == 0).double())
            net.history.record("valid_r2", float(r2.mean()))


class _FastNet:
    """skorch net with cheaper per-batch bookkeeping (a mixin for both tasks).

    * skorch switches every module to train/eval mode before *every* batch
      (``module.train()`` walks all submodules); here the switch only happens
      when the mode actually changes;
    * the three per-batch hooks are dispatched only to the callbacks that
      implement them (the list is rebuilt whenever ``callbacks_`` changes);
    * sklottery's own hook ``on_evaluation`` (sent by :class:`EvalGrid`)
      reaches only the callbacks that define it.

    Everything else is plain skorch: same hooks, same order, same history.
    """

    def notify(self, method_name, **cb_kwargs):
        if method_name == "on_evaluation":
            for _, cb in self.callbacks_:
                hook = getattr(cb, "on_evaluation", None)
                if hook is not None:
                    hook(self, **cb_kwargs)
            return None
        if method_name not in _BATCH_HOOKS:
            return super().notify(method_name, **cb_kwargs)
        callbacks = self.callbacks_
        cache = self.__dict__.get("_hook_cache")
        if cache is None or cache[0] is not callbacks or cache[1] != len(callbacks):
            targets = {
                # the net's own hooks (history bookkeeping) always run first
                hook: [getattr(self, hook)] + [getattr(cb, hook) for _, cb in callbacks
                                               if _overrides(cb, hook)]
                for hook in _BATCH_HOOKS
            }
            cache = (callbacks, len(callbacks), targets)
            self.__dict__["_hook_cache"] = cache
        for method in cache[2][method_name]:
            method(self, **cb_kwargs)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_hook_cache", None)
        return state

    def _set_training(self, training=True):
        for name in self._modules + self._criteria:
            module = getattr(self, name + "_")
            if isinstance(module, torch.nn.Module) and module.training != training:
                module.train(training)


class LotteryNet(_FastNet, NeuralNetClassifier):
    """skorch ``NeuralNetClassifier`` with :class:`_FastNet`'s cheaper bookkeeping.

    Validation accuracy is counted from the validation predictions skorch
    already makes (:class:`ValidAccuracy`) instead of a second scoring pass.
    """

    @property
    def _default_callbacks(self):
        return [(name, ValidAccuracy() if name == "valid_acc" else cb)
                for name, cb in super()._default_callbacks]


class LotteryRegressorNet(_FastNet, NeuralNetRegressor):
    """skorch ``NeuralNetRegressor`` with :class:`_FastNet`'s cheaper bookkeeping.

    Records the validation R² (:class:`ValidR2`) beside the validation loss.
    """

    @property
    def _default_callbacks(self):
        return list(super()._default_callbacks) + [("valid_r2", ValidR2())]


def _flushing_denormals():
    """Whether the CPU currently flushes denormal floats to zero (there is no getter)."""
    return (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0


@contextlib.contextmanager
def flush_denormals():
    """Flush denormal floats to zero inside the block (x86 FTZ/DAZ), then restore.

    In long rounds Adam's moments of units that stopped receiving gradient
    (dead ReLUs) decay geometrically into the denormal range (below 1.2e-38),
    where CPU arithmetic is many times slower: a plain dense loop on
    LeNet-300-100 slowed from 1.8 to 4.2 ms per batch by its third epoch
    (``benchmarks/bench_masked_step.py --long``). Flushing them to zero
    changes no number above 1.2e-38. Where the CPU cannot flush, nothing
    changes.
    """
    before = _flushing_denormals()
    changed = not before and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)


@functools.lru_cache(maxsize=None)
def fused_adam_supported(device_type):
    """Whether this torch has a fused Adam kernel for ``device_type`` ('cpu', 'cuda' ...).

    The CPU kernel arrived in torch 2.4; sklottery supports torch >= 2.2 and
    falls back to the default kernel (with :func:`prime_adam_state`) where
    there is none.
    """
    try:
        torch.optim.Adam([torch.zeros(1, device=device_type, requires_grad=True)], fused=True)
    except Exception:  # noqa: BLE001 - no kernel, or no such device here
        return False
    return True


@torch.no_grad()
def prime_adam_state(optimizer, params, masks):
    """Start Adam's state with second moments of 1 on pruned entries (not 0).

    A pruned weight's gradient is zero, so its first moment stays zero and
    its update ``m / (sqrt(v) + eps)`` is exactly zero whatever ``v`` is;
    with ``v = 0`` though, ``torch.sqrt`` takes a slow path on this class of
    CPU: a tensor holding exact zeros is square-rooted 7-35x slower than one
    without (``benchmarks/bench_masked_step.py``), a tax that grew with
    sparsity. Kept entries start at 0 exactly as :class:`torch.optim.Adam`
    initialises them, so training is unchanged. Only plain ``Adam`` (not
    ``amsgrad``) is primed; other optimizers are left alone.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Freshly built (no step taken yet).
    params : dict of str -> Parameter
    masks : dict of str -> bool Tensor
    """
    if type(optimizer) is not torch.optim.Adam:
        return
    for group in optimizer.param_groups:
        if group.get("amsgrad") or group.get("capturable") or group.get("fused"):
            return
    for name, mask in masks.items():
        p = params[name]
        if bool(mask.all()) or optimizer.state.get(p):
            continue
        optimizer.state[p] = {
            # torch's own choice for the step counter (float64 under a float64 default)
            "step": torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype()
                                 == torch.float64 else torch.float32),
            "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
            "exp_avg_sq": (~mask.to(p.device)).to(p.dtype),
        }


@dataclass
class RoundResult:
    """What :meth:`SkorchTrainer.train` returns for one round.

    ``outcome`` is ``'ok'``, ``'diverged'`` or ``'interrupted'`` (then only
    ``detail`` is set). ``early_stop`` is ``(iteration, valid_loss,
    valid_score)`` at the minimum validation loss of the evaluation grid, or
    None without validation data; ``captured`` is the full module state
    after ``capture_at`` iterations (θk), if asked for and reached.
    """

    outcome: str
    detail: str = None
    seconds: float = float("nan")
    epochs: int = 0
    n_iter: int = 0
    train_loss: float = float("nan")
    valid_loss: float = float("nan")
    valid_score: float = float("nan")
    early_stop: tuple = None
    captured: dict = None


class SkorchTrainer:
    """The trainer seam: train a masked network for one round, with skorch.

    ``train(masks, epochs, capture_at)`` trains the module's current weights
    (the round's start, set by the engine) with ``masks`` for ``epochs``
    epochs and returns a :class:`RoundResult`; pruned weights are exactly
    zero after every step (:class:`MaskCallback`), the validation loss is
    evaluated on the grid of :class:`EvalGrid` and the learning-rate warmup is
    a scheduler (:class:`WarmupScheduler`). The engine never touches skorch
    directly; another trainer (e.g. one that trains many members at once)
    implements the same three methods.

    Parameters
    ----------
    net : LotteryNet or LotteryRegressorNet
        An initialized skorch net whose callbacks include ``mask_callback``,
        ``eval_grid`` and ``warmup``.
    mask_callback : MaskCallback
    eval_grid : EvalGrid
    eval_every : 'auto' or int
        Grid step, resolved against the iterations per epoch of the data.
    """

    def __init__(self, net, mask_callback, eval_grid, eval_every="auto"):
        self.net = net
        self.mask_callback = mask_callback
        self.eval_grid = eval_grid
        self.eval_every = eval_every
        self.iters_per_epoch = None
        self._data = None
        self.reference_losses = (None, None)

    @property
    def module(self):
        """The torch module being trained."""
        return self.net.module_

    def set_data(self, X, y, valid=None):
        """Training tensors, and validation tensors ``(X, y)`` or None."""
        self._data = (X, y)
        self.net.set_params(
            train_split=None if valid is None else predefined_split(Dataset(*valid)))
        batch_size = min(int(self.net.batch_size), len(X))
        self.iters_per_epoch = -(-len(X) // batch_size)
        self.eval_grid.every = resolve_eval_every(self.eval_every, self.iters_per_epoch)
        self.eval_grid.valid = valid

    def set_reference_losses(self, train, valid=None):
        """Losses of a constant prediction on the training and validation targets.

        The references of the divergence rule (:func:`divergence_detail`).
        """
        self.reference_losses = (train, valid)
        self.mask_callback.reference_loss = train
        self.mask_callback.valid_reference_loss = valid

    def release_data(self):
        """Drop every reference to the data (a fitted estimator keeps none)."""
        self._data = None
        self.eval_grid.valid = None
        self.net.set_params(train_split=None)

    def _early_stopped(self):
        """Whether skorch's EarlyStopping raised the KeyboardInterrupt that ended training."""
        return any(
            isinstance(cb, EarlyStopping) and getattr(cb, "misses_", 0) >= cb.patience
            for _, cb in self.net.callbacks_
        )

    def _check_finite(self):
        """Raise Diverged when a weight is NaN/inf or a grid point's validation loss diverged.

        The per-batch loss check cannot see the last optimizer step of a round,
        and the per-epoch check not the grid points inside an epoch.
        """
        for name, t in self.net.module_.state_dict().items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise Diverged(f"{name} has non-finite values at the end of training")
        detail = grid_divergence(self.eval_grid, self.reference_losses[1],
                                 self.mask_callback.first_loss_)
        if detail is not None:
            raise Diverged(detail)

    def train(self, masks, epochs, capture_at=None):
        """Train one round; see the class docstring."""
        net = self.net
        Xt, yt = self._data
        self.mask_callback.masks = masks
        self.mask_callback.capture_at = capture_at
        net.initialize_history()
        net.initialize_optimizer()
        prime_adam_state(net.optimizer_, dict(net.module_.named_parameters()), masks)
        t0 = time.perf_counter()
        try:
            net.notify("on_train_begin", X=Xt, y=yt)
            try:
                with flush_denormals():
                    net.fit_loop(Xt, yt, epochs=epochs)
            except KeyboardInterrupt:
                if not self._early_stopped():
                    raise
            net.notify("on_train_end", X=Xt, y=yt)
            self._check_finite()
        except Diverged as exc:
            return RoundResult("diverged", str(exc))
        except KeyboardInterrupt:
            if aborting():  # a second Ctrl-C: abort, do not keep anything
                raise
            return RoundResult("interrupted")
        seconds = time.perf_counter() - t0
        hist, grid = net.history, self.eval_grid
        result = RoundResult("ok", seconds=seconds, epochs=len(hist), n_iter=grid.iteration_,
                             train_loss=float(hist[-1, "train_loss"]),
                             captured=self.mask_callback.captured_)
        if grid.valid is not None and grid.iterations_:
            result.valid_loss = float(grid.valid_loss_[-1])
            result.valid_score = float(grid.valid_score_[-1])
            result.early_stop = grid.early_stop()
        return result
