"""The skorch trainer: one masked round at a time, in the estimator's skorch net.

:class:`SkorchTrainer` trains a :class:`~sklottery.training.TrainRequest`
with skorch's own ``fit_loop``, so every skorch callback a user adds runs as
in any skorch net. Its pieces live in the net (:func:`build_net`) and act
only while the trainer arms them for a round:

* :class:`TensorBatchIterator`: skorch's default path builds a
  ``torch.utils.data.DataLoader`` over a per-item ``Dataset`` and collates
  every batch item by item; on small tabular data that costs several times
  the actual training. This iterator slices batches straight out of tensors
  that already live on the training device.
* :class:`MaskCallback`: pruned weights exactly zero after every step, the
  θk snapshot of late rewinding and the divergence checks.
* :class:`EvalGrid`: validation loss and score every ``eval_every``
  iterations into the request's :class:`~sklottery.training.EvalRecord`,
  and the ``on_evaluation`` hook.
* :class:`WarmupScheduler`: the learning-rate warmup, a ``LambdaLR``.
* :class:`LotteryNet` / :class:`LotteryRegressorNet`: skorch nets with
  cheaper per-batch bookkeeping, for classification and regression.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import Dataset
from skorch.helper import predefined_split

from .._interrupt import aborting, poll_stop
from .metrics import SCORES, forward_chunks
from .optim import OPTIMIZERS, flush_denormals, optimizer_kwargs, prime_adam_state
from .protocol import RoundResult, torch_threads
from .rounds import (
    Diverged,
    divergence_detail,
    end_of_round_detail,
    round_result,
    warmup_factor,
)

__all__ = ["TensorBatchIterator", "MaskCallback", "EvalGrid", "WarmupScheduler",
           "ValidAccuracy", "ValidR2", "EpochProgress", "LotteryNet", "LotteryRegressorNet",
           "SkorchTrainer", "build_net", "TRAINER_CALLBACKS", "SKLOTTERY_HOOKS"]

#: sklottery's own callback hooks, sent only to the callbacks that define them:
#: ``on_round_begin(net, masks=..., epochs=...)`` before ``on_train_begin`` of
#: every round (the round's masks), and ``on_evaluation(net, iteration=...,
#: valid_loss=...)`` at every point of the evaluation grid.
SKLOTTERY_HOOKS = ("on_round_begin", "on_evaluation")

#: Names of the callbacks :func:`build_net` adds: the skorch trainer's machinery.
TRAINER_CALLBACKS = ("sklottery_masks", "sklottery_eval", "sklottery_warmup")


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
    """Keep pruned weights at exactly zero during a skorch round.

    Acts only while :class:`SkorchTrainer` has armed it for a round
    (:meth:`arm`), so another trainer can notify the net's callbacks without
    it:

    * ``on_train_begin`` zeroes the pruned start weights (exact zeros even
      over NaN/inf);
    * ``on_grad_computed`` zeroes the gradients of pruned weights (so Adam's
      moments and SGD's momentum buffers, which start at zero after every
      optimizer rebuild, stay zero at those indices);
    * ``on_batch_end`` zeroes the pruned weights again after the step (weight
      decay or a user optimizer cannot revive them) and checks the loss;
    * optional snapshot of the full module state at iteration ``capture_at``
      (late rewinding, θk);
    * the divergence check (:func:`~sklottery.training.divergence_detail`): a
      NaN/inf batch loss, or an epoch whose mean training or validation loss
      blew up, raises :class:`~sklottery.training.Diverged`;
    * a stop requested by :mod:`sklottery._interrupt` (Ctrl-C in a
      :func:`~sklottery.analysis.ticket_curve`) interrupts the round at the
      next batch.

    Masks are applied by index (multiplication by the 0/1 mask of each
    weight, which is several times cheaper than ``masked_fill_`` on the CPU),
    never by a value threshold.
    """

    def __init__(self):
        pass

    def initialize(self):
        self.masks = None
        self.capture_at = None
        self.reference_losses = (None, None)
        self.iteration_ = 0
        self.captured_ = None
        self.first_loss_ = float("nan")
        self._pairs = []
        return self

    def arm(self, masks, capture_at, reference_losses):
        """Act in the next round, with these masks, θk iteration and divergence references."""
        self.masks = masks
        self.capture_at = capture_at
        self.reference_losses = tuple(reference_losses)

    def disarm(self):
        """Stop acting (and drop the references to the round's tensors)."""
        self.masks = None
        self._pairs = []

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pairs"] = []  # references into the module; rebuilt on train begin
        return state

    def on_train_begin(self, net, **kwargs):
        self.iteration_ = 0
        self.captured_ = None
        self.first_loss_ = float("nan")
        self._pairs = []
        if self.masks is None:
            return
        params = dict(net.module_.named_parameters())
        for name, mask in self.masks.items():
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
        if not training or self.masks is None:
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
        if self.masks is None:
            return
        # the epoch's mean training and validation losses (skorch recorded them
        # before this hook): a blown-up round stops here, not at its end
        row = net.history[-1] if len(net.history) else {}
        for key, what, reference in (
                ("train_loss", "mean training loss of an epoch", self.reference_losses[0]),
                ("valid_loss", "validation loss", self.reference_losses[1])):
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
    ``i``-th training batch (from 0) runs at ``lr * warmup_factor(i, warmup)``
    (:func:`~sklottery.training.warmup_factor`). Acts only while armed by
    :class:`SkorchTrainer` (``active``).
    """

    def __init__(self, warmup=0):
        self.warmup = warmup

    def initialize(self):
        self.scheduler_ = None
        self.active = False
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        state["scheduler_"] = None  # holds the optimizer; rebuilt every round
        return state

    def on_train_begin(self, net, **kwargs):
        self.scheduler_ = None
        if self.active and self.warmup:
            warmup = int(self.warmup)
            self.scheduler_ = torch.optim.lr_scheduler.LambdaLR(
                net.optimizer_, lambda step: warmup_factor(step, warmup))

    def on_batch_end(self, net, training=False, **kwargs):
        if training and self.scheduler_ is not None:
            self.scheduler_.step()


class EvalGrid(Callback):
    """Validation loss and score on a grid of training iterations, in a skorch round.

    Records into the round's :class:`~sklottery.training.EvalRecord` (armed
    by :class:`SkorchTrainer`) every ``record.every`` training iterations and
    once more at the end of the round (unless the last iteration was already
    a grid point), and notifies the callbacks that define
    ``on_evaluation(net, iteration=..., valid_loss=...)`` at every grid point
    (e.g. to keep the network of the early-stop iteration), also when there
    is no validation set (``valid_loss`` is then NaN).

    A grid point at the end of an epoch reuses the validation loss and score
    that skorch has just computed for that epoch (same weights, same data),
    so a grid that falls on epoch ends costs no extra forward pass; a point
    inside an epoch is evaluated just before the next training batch, when
    the weights are still those of the grid point. The evaluation runs in
    eval mode without gradients and draws no random numbers, so it does not
    change training.

    Parameters
    ----------
    chunk : int, default=1024
        Samples per forward pass (bounds activation memory).
    """

    def __init__(self, chunk=1024):
        self.chunk = chunk

    def initialize(self):
        self.record = None
        self.valid = None
        self.iteration_ = 0
        self._pending = False
        return self

    def arm(self, record, valid):
        """Record the next round into ``record``, validating on ``valid`` (or None)."""
        self.record = record
        self.valid = valid

    def disarm(self):
        self.record = None
        self.valid = None  # the estimator never keeps data after fit

    def __getstate__(self):
        state = self.__dict__.copy()
        state["valid"] = None
        state["record"] = None
        return state

    def on_train_begin(self, net, **kwargs):
        self.iteration_ = 0
        self._pending = False
        if self.record is not None:
            self.record.reset()

    def on_batch_begin(self, net, training=False, **kwargs):
        if training and self._pending:  # a grid point inside the epoch
            self._record(net, *self._loss_score_or_nan(net))

    def on_batch_end(self, net, training=False, **kwargs):
        if not training or self.record is None:
            return
        self.iteration_ += 1
        self._pending = self.iteration_ % int(self.record.every) == 0

    def on_epoch_end(self, net, **kwargs):
        if self._pending:
            self._record(net, *self._from_history(net))

    def on_train_end(self, net, **kwargs):
        if self.record is None:
            return
        # training ends at the end of an epoch, which skorch has just validated
        its = self.record.iterations_
        if self._pending or not its or its[-1] != self.iteration_:
            self._record(net, *self._from_history(net))

    def _from_history(self, net):
        """The epoch's validation loss and score, as skorch just computed them."""
        if self.valid is None:
            return float("nan"), float("nan")
        last = net.history[-1] if len(net.history) else {}
        key = f"valid_{self.record.score}"
        if "valid_loss" in last and key in last:
            return float(last["valid_loss"]), float(last[key])
        return self._loss_score_or_nan(net)

    def _loss_score_or_nan(self, net):
        if self.valid is None:
            return float("nan"), float("nan")
        X, y = self.valid
        out = forward_chunks(net.module_, X, self.chunk)
        with torch.no_grad():
            loss = float(net.criterion_(out, y))
        return loss, SCORES[self.record.score](out, y)

    def _record(self, net, loss, score):
        self._pending = False
        it = self.iteration_
        self.record.record(it, loss, score)
        net.notify("on_evaluation", iteration=it, valid_loss=loss)


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


_BATCH_HOOKS = ("on_batch_begin", "on_grad_computed", "on_batch_end")


def _overrides(callback, method_name):
    """Whether ``callback``'s class overrides the no-op skorch hook ``method_name``."""
    return getattr(type(callback), method_name, None) is not getattr(Callback, method_name)


class _FastNet:
    """skorch net with cheaper per-batch bookkeeping (a mixin for both tasks).

    * skorch switches every module to train/eval mode before *every* batch
      (``module.train()`` walks all submodules); here the switch only happens
      when the mode actually changes;
    * the three per-batch hooks are dispatched only to the callbacks that
      implement them (the list is rebuilt whenever ``callbacks_`` changes);
    * sklottery's own hooks (:data:`SKLOTTERY_HOOKS`: ``on_round_begin``,
      ``on_evaluation``) reach only the callbacks that define them.

    Everything else is plain skorch: same hooks, same order, same history.
    """

    def notify(self, method_name, **cb_kwargs):
        if method_name in SKLOTTERY_HOOKS:
            for _, cb in self.callbacks_:
                hook = getattr(cb, method_name, None)
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


def build_net(net_class, module, module_kwargs, criterion, criterion_kwargs, settings,
              generator, device, user_callbacks=(), net_kwargs=None):
    """The skorch net of an estimator, with the skorch trainer's callbacks.

    Parameters
    ----------
    net_class : LotteryNet or LotteryRegressorNet
    module : nn.Module subclass
    module_kwargs, criterion_kwargs : dict
    criterion : nn.Module subclass
    settings : TrainSettings
    generator : torch.Generator
        The data order of training (one permutation per epoch).
    device : torch.device
    user_callbacks : list of (name, Callback)
    net_kwargs : dict, default=None
        Further skorch net parameters.
    """
    callbacks = [("sklottery_masks", MaskCallback()), ("sklottery_eval", EvalGrid()),
                 ("sklottery_warmup", WarmupScheduler(int(settings.warmup)))]
    if settings.verbose and settings.verbose >= 2:
        callbacks.append(("sklottery_progress", EpochProgress(settings.score)))
    callbacks.extend(user_callbacks)
    return net_class(
        module,
        criterion=criterion,
        optimizer=OPTIMIZERS[settings.optimizer],
        lr=float(settings.learning_rate),
        max_epochs=1,
        batch_size=int(settings.batch_size),
        iterator_train=TensorBatchIterator,
        iterator_train__shuffle=True,
        iterator_train__generator=generator,
        iterator_valid=TensorBatchIterator,
        train_split=None,
        callbacks=callbacks,
        device=device,
        verbose=0,
        **(net_kwargs or {}),
        **{f"criterion__{k}": v for k, v in criterion_kwargs.items()},
        **{f"module__{k}": v for k, v in module_kwargs.items()},
        **{f"optimizer__{k}": v
           for k, v in optimizer_kwargs(settings, device.type).items()},
    )


class SkorchTrainer:
    """Train requests one at a time with skorch, in each estimator's own net.

    The reference trainer: it accepts every request whose net
    :func:`build_net` built, trains it with skorch's ``fit_loop`` (user
    callbacks, skorch's ``EarlyStopping``, history, all as in skorch) and
    its armed callbacks keep pruned weights at zero, record the evaluation
    grid and warm the learning rate up. Stateless: the state of a round is
    in the request and the net.
    """

    name = "skorch"
    priority = 0

    def accepts(self, request):
        net = request.net
        if net is None or not all(n in dict(net.callbacks_) for n in TRAINER_CALLBACKS):
            return "the request has no skorch net built by sklottery.training.build_net"
        return None

    def group_key(self, request):
        return None

    def train(self, requests):
        return [self._train(request) for request in requests]

    @staticmethod
    def _early_stopped(net):
        """Whether skorch's EarlyStopping raised the KeyboardInterrupt that ended training."""
        return any(
            isinstance(cb, EarlyStopping) and getattr(cb, "misses_", 0) >= cb.patience
            for _, cb in net.callbacks_
        )

    def _train(self, request):
        net, data, settings = request.net, request.data, request.settings
        callbacks = dict(net.callbacks_)
        masks_cb, grid_cb = callbacks["sklottery_masks"], callbacks["sklottery_eval"]
        warmup_cb = callbacks["sklottery_warmup"]
        masks_cb.arm(request.masks, request.capture_at, data.reference_losses)
        grid_cb.arm(request.grid, data.valid)
        warmup_cb.warmup, warmup_cb.active = int(settings.warmup), True
        net.train_split = None if data.valid is None else predefined_split(Dataset(*data.valid))
        Xt, yt = data.X, data.y
        try:
            with torch_threads(settings.n_threads):
                net.initialize_history()
                net.initialize_optimizer()
                prime_adam_state(net.optimizer_, dict(net.module_.named_parameters()),
                                 request.masks)
                t0 = time.perf_counter()
                try:
                    net.notify("on_round_begin", masks=request.masks, epochs=request.epochs)
                    net.notify("on_train_begin", X=Xt, y=yt)
                    try:
                        with flush_denormals():
                            net.fit_loop(Xt, yt, epochs=request.epochs)
                    except KeyboardInterrupt:
                        if not self._early_stopped(net):
                            raise
                    net.notify("on_train_end", X=Xt, y=yt)
                    detail = end_of_round_detail(
                        net.module_.state_dict(), request.grid, data.valid is not None,
                        data.reference_losses[1], masks_cb.first_loss_)
                    if detail is not None:
                        raise Diverged(detail)
                except Diverged as exc:
                    return RoundResult("diverged", str(exc))
                except KeyboardInterrupt:
                    if aborting():  # a second Ctrl-C: abort, do not keep anything
                        raise
                    return RoundResult("interrupted")
                hist = net.history
                return round_result(
                    seconds=time.perf_counter() - t0, epochs=len(hist),
                    n_iter=grid_cb.iteration_, train_loss=hist[-1, "train_loss"],
                    grid=request.grid, has_valid=data.valid is not None,
                    captured=masks_cb.captured_)
        finally:
            masks_cb.disarm()
            grid_cb.disarm()
            warmup_cb.active = False
            net.train_split = None
