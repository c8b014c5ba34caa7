"""skorch glue: a fast tensor-batch iterator and the mask callback.

skorch's default path builds a ``torch.utils.data.DataLoader`` over a
per-item ``Dataset`` and collates every batch item by item; on small tabular
data that costs several times the actual training. :class:`TensorBatchIterator`
slices batches straight out of tensors that already live on the training
device, so skorch's per-batch work is reduced to its own bookkeeping.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback

__all__ = ["TensorBatchIterator", "MaskCallback", "EvalGrid", "Diverged", "LotteryNet",
           "resolve_eval_every"]

#: ``eval_every='auto'`` evaluates about this often (Frankle & Carbin evaluate
#: every 100 iterations), and at least once per epoch.
AUTO_EVAL_ITERATIONS = 100


class Diverged(RuntimeError):
    """Raised inside a round when the training loss becomes NaN or infinite."""


def _as_tensor(a):
    if a is None or isinstance(a, torch.Tensor):
        return a
    return torch.as_tensor(np.asarray(a))


class TensorBatchIterator:
    """Iterate over ``(X_batch, y_batch)`` slices of a skorch ``Dataset``.

    Used as skorch's ``iterator_train`` / ``iterator_valid``. With
    ``shuffle=True`` the whole epoch is permuted once (one gather per epoch)
    using ``generator``, so data order is reproducible and independent of the
    global torch RNG.

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
        if self.shuffle:
            perm = torch.randperm(len(X), generator=self.generator).to(X.device)
            X = X[perm]
            y = None if y is None else y[perm]
        n = len(X)
        for start in range(0, n, bs):
            stop = start + bs
            yield X[start:stop], (None if y is None else y[start:stop])


class MaskCallback(Callback):
    """Keep pruned weights at exactly zero during skorch training.

    * ``on_grad_computed`` zeroes the gradients of pruned weights (so Adam's
      moments and SGD's momentum buffers, which start at zero after every
      optimizer rebuild, stay zero at those indices);
    * ``on_batch_end`` zeroes the pruned weights again after the step (weight
      decay or a user optimizer cannot revive them) and checks the loss;
    * optional linear learning-rate warmup over the first ``lr_warmup``
      iterations of every round;
    * optional snapshot of the full module state at iteration ``capture_at``
      (late rewinding, θk).

    Masks are applied by index (multiplication by the 0/1 mask of each
    weight, which is several times cheaper than ``masked_fill_`` on the CPU),
    never by a value threshold. A NaN/inf loss is caught by the divergence
    check before it can spread.
    """

    def __init__(self, masks=None, lr_warmup=0, base_lr=None, capture_at=None):
        self.masks = masks
        self.lr_warmup = lr_warmup
        self.base_lr = base_lr
        self.capture_at = capture_at

    def initialize(self):
        self.iteration_ = 0
        self.captured_ = None
        self._pairs = []
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pairs"] = []  # references into the module; rebuilt on train begin
        return state

    def on_train_begin(self, net, **kwargs):
        self.iteration_ = 0
        self.captured_ = None
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

    def on_batch_begin(self, net, training=False, **kwargs):
        if training and self.lr_warmup and self.iteration_ < self.lr_warmup:
            lr = self.base_lr * (self.iteration_ + 1) / self.lr_warmup
            for group in net.optimizer_.param_groups:
                group["lr"] = lr

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
        if loss is not None and not math.isfinite(loss.item()):
            raise Diverged(f"training loss became {loss.item()} at iteration {self.iteration_}")
        if self.capture_at is not None and self.iteration_ == self.capture_at:
            self._capture(net)


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


def resolve_eval_every(eval_every, iters_per_epoch):
    """Iterations between two evaluations for ``eval_every`` ('auto' or an int).

    ``'auto'`` is ``min(100, iters_per_epoch)``: every 100 iterations as
    Frankle & Carbin, but never less often than once per epoch.
    """
    if eval_every == "auto":
        return max(1, min(AUTO_EVAL_ITERATIONS, int(iters_per_epoch)))
    return int(eval_every)


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
    chunk : int, default=1024
        Samples per forward pass (bounds activation memory).
    """

    def __init__(self, every=1, valid=None, chunk=1024):
        self.every = every
        self.valid = valid
        self.chunk = chunk

    def initialize(self):
        self._reset()
        return self

    def _reset(self):
        self.iteration_ = 0
        self.iterations_ = []
        self.valid_loss_ = []
        self.valid_acc_ = []
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
        if "valid_loss" in last and "valid_acc" in last:
            return float(last["valid_loss"]), float(last["valid_acc"])
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
        self.valid_acc_.append(acc)
        net.notify("on_evaluation", iteration=it, valid_loss=loss)

    def _loss_acc(self, net, X, y):
        module = net.module_
        was_training = module.training
        module.eval()
        total_loss, correct = 0.0, 0
        try:
            with torch.no_grad():
                for start in range(0, len(X), self.chunk):
                    xb, yb = X[start:start + self.chunk], y[start:start + self.chunk]
                    out = module(xb)
                    total_loss += float(torch.nn.functional.cross_entropy(
                        out, yb, reduction="sum"))
                    correct += int((out.argmax(1) == yb).sum())
        finally:
            module.train(was_training)
        return total_loss / len(X), correct / len(X)

    def early_stop(self):
        """``(iteration, valid_loss, valid_acc)`` at the minimum validation loss.

        The first grid point wins ties. ``None`` without validation data or
        when every loss is NaN.
        """
        vl = np.asarray(self.valid_loss_, dtype=float)
        if not vl.size or not np.isfinite(vl).any():
            return None
        best = int(np.nanargmin(np.where(np.isfinite(vl), vl, np.nan)))
        return self.iterations_[best], float(vl[best]), float(self.valid_acc_[best])


_BATCH_HOOKS = ("on_batch_begin", "on_grad_computed", "on_batch_end")


def _overrides(callback, method_name):
    """Whether ``callback``'s class overrides the no-op skorch hook ``method_name``."""
    return getattr(type(callback), method_name, None) is not getattr(Callback, method_name)


class LotteryNet(NeuralNetClassifier):
    """skorch ``NeuralNetClassifier`` with cheaper per-batch bookkeeping.

    * skorch switches every module to train/eval mode before *every* batch
      (``module.train()`` walks all submodules); here the switch only happens
      when the mode actually changes;
    * the three per-batch hooks are dispatched only to the callbacks that
      implement them (the list is rebuilt whenever ``callbacks_`` changes);
    * validation accuracy is counted from the validation predictions skorch
      already makes (:class:`ValidAccuracy`) instead of a second scoring pass.

    Everything else is plain skorch: same hooks, same order, same history.
    """

    @property
    def _default_callbacks(self):
        return [(name, ValidAccuracy() if name == "valid_acc" else cb)
                for name, cb in super()._default_callbacks]

    def notify(self, method_name, **cb_kwargs):
        if method_name == "on_evaluation":
            # sklottery's own hook (EvalGrid): only callbacks that define it
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
