"""The batched trainer: many IMP fits trained as one vectorised model.

Lottery-ticket experiments train the same small architecture many times: the
trials x strategies of a :func:`~sklottery.analysis.ticket_curve`, then its
mask controls. One such network is far too small to keep two cores busy (on
digits, LeNet-300-100's batch of 60 is a few megaflops and most of an epoch
is per-batch overhead), so :func:`fit_many` drives many estimators' fits at
once: each fit is the engine's own generator
(:meth:`~sklottery.base.BaseLotteryTicket._fit_steps`), which does the
pruning, resetting, records and failure policy exactly as in a plain
``fit``; whenever several fits ask for a round with the same architecture,
data shape and training settings, :class:`BatchedTrainer` trains those
rounds together.

A batched round stacks the members' weights (``[members, *shape]``) and runs
the module once per batch through :func:`torch.func.vmap` over
:func:`torch.func.functional_call`: one batched matmul (or grouped
convolution) per layer instead of one small call per member. Every member
keeps its own masks, start weights, data (trial), data order (its own
generator, drawn exactly as the skorch trainer draws it), validation grid,
θk capture and divergence check; the loss is the sum of the members' own
mean losses, so each member's gradient is its own, and Adam and SGD are
elementwise, so the stacked optimizer is one optimizer per member. A member
trained in a batch therefore equals the same member trained alone by the
skorch trainer, up to float rounding (the tests compare them).

Which rounds can be batched: modules without buffers (batch norm), without
active dropout and without frozen parameters, whose forward
:func:`torch.func.vmap` can run (checked with a two-sample trial step before
a group trains), no user callbacks, the built-in optimizers. Any other fit
in :func:`fit_many` trains its rounds with its own skorch trainer, with its
own global torch RNG stream, so the results do not depend on which fits were
run together.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections import defaultdict

import numpy as np
import torch
from torch.func import functional_call, vmap

from .base import TrainingDivergedError, _own_trainer
from .modules import MLP
from ._interrupt import aborting, poll_stop, stop_requested
from ._training import (
    SCORES,
    RoundResult,
    divergence_detail,
    flush_denormals,
    fused_adam_supported,
    prime_adam_state,
)

__all__ = ["BatchedTrainer", "fit_many", "batchable"]

#: Callback names sklottery itself adds to every net (the rest are the user's).
_OWN_CALLBACKS = {"sklottery_masks", "sklottery_eval", "sklottery_warmup",
                  "sklottery_evaluation"}


def batchable(estimator):
    """Why ``estimator``'s rounds cannot be batched, or None when they can.

    Call after the engine built the net (its first request).
    """
    net = getattr(estimator, "net_", None)
    if net is None:
        return "not initialised"
    module = net.module_
    if any(True for _ in module.buffers()):
        return "the module has buffers (e.g. batch norm)"
    if not all(p.requires_grad for p in module.parameters()):
        return "the module has frozen parameters (requires_grad=False)"
    for sub in module.modules():
        if isinstance(sub, torch.nn.modules.dropout._DropoutNd) and sub.p > 0:
            return "the module uses dropout"
    user = [name for name, _ in net.callbacks_
            if name.startswith("user_") or (name not in _OWN_CALLBACKS
                                             and not _is_default_callback(net, name))]
    if user:
        return f"user callbacks {user}"
    if estimator.verbose and estimator.verbose >= 2:
        return "verbose >= 2 prints skorch's epochs"
    if type(net.criterion_).__module__.split(".")[0] != "torch":
        return "a custom criterion"
    return None


def _is_default_callback(net, name):
    return name in {n for n, _ in net.get_default_callbacks()}


def group_key(request):
    """Requests with equal keys can be trained together."""
    est = request.estimator
    net, trainer = est.net_, est._trainer
    X, _ = trainer._data
    valid = trainer.eval_grid.valid
    module = net.module_
    return (
        type(module), repr(module),
        tuple((n, tuple(p.shape)) for n, p in module.named_parameters()),
        type(net.criterion_), repr(net.criterion_),
        est.optimizer, float(est.learning_rate_init), float(est.alpha),
        float(est.momentum) if est.optimizer == "sgd" else None,
        int(est.batch_size), int(est.lr_warmup), int(trainer.eval_grid.every), est.n_threads,
        int(request.epochs), tuple(X.shape), str(X.device), X.dtype,
        None if valid is None else tuple(valid[0].shape),
    )


def stacked_forward(module):
    """``(f, transposed)``: ``module``'s forward for stacked weights and inputs.

    ``f(params, X)`` takes ``params`` mapping parameter names to
    ``[members, *shape]`` tensors and ``X`` of shape ``[members, batch, ...]``
    and returns ``[members, batch, ...]``. The names in ``transposed`` are
    stacked as ``[members, in, out]`` (their weight transposed). The built-in
    MLP runs as one ``baddbmm`` per layer on transposed weights, so neither
    the forward nor the gradient copies a weight; any other module runs
    through :func:`torch.func.vmap` over :func:`torch.func.functional_call`,
    which turns ``linear`` into batched matmuls and ``conv2d`` into a grouped
    convolution. (A profile of the vmap path on LeNet-300-100 showed a
    transposing copy of every weight gradient at every step: 11 % of the
    time.)
    """
    template = copy.deepcopy(module).to("meta")
    if type(module) is MLP:
        steps = []
        for name, layer in template.layers.named_children():
            if isinstance(layer, torch.nn.Linear):
                steps.append((f"layers.{name}.weight",
                              f"layers.{name}.bias" if layer.bias is not None else None))
            else:
                steps.append(layer)  # an elementwise activation

        def mlp(params, X):
            h = X.flatten(2)
            for step in steps:
                if isinstance(step, tuple):
                    Wt = params[step[0]]
                    h = (torch.bmm(h, Wt) if step[1] is None
                         else torch.baddbmm(params[step[1]].unsqueeze(1), h, Wt))
                else:
                    h = step(h)
            return h

        return mlp, {w for w, _ in (st for st in steps if isinstance(st, tuple))}
    return vmap(lambda p, x: functional_call(template, p, (x,))), set()


def stacked_loss(criterion):
    """``f(outputs, y)``: each member's own loss, shape ``[members]``.

    Cross-entropy, MSE and Huber with their default mean reduction are
    computed unreduced in one call and averaged per member (the profile of a
    vmap'd cross-entropy showed its backward at 0.5 ms per step for a
    ``[15, 60, 10]`` output); any other criterion through
    :func:`torch.func.vmap`.
    """
    F = torch.nn.functional
    kind = type(criterion)
    if kind is torch.nn.CrossEntropyLoss and criterion.weight is None \
            and criterion.label_smoothing == 0 and criterion.reduction == "mean":
        ignore = criterion.ignore_index

        def cross_entropy(out, y):
            per = F.cross_entropy(out.flatten(0, 1), y.flatten(0, 1), reduction="none",
                                  ignore_index=ignore).view(y.shape[:2])
            if bool((y == ignore).any()):  # mean over the counted targets only
                return per.sum(1) / (y != ignore).sum(1)
            return per.mean(1)

        return cross_entropy
    if kind in (torch.nn.MSELoss, torch.nn.HuberLoss) and criterion.reduction == "mean":
        def regression(out, y):
            if kind is torch.nn.MSELoss:
                per = F.mse_loss(out, y, reduction="none")
            else:
                per = F.huber_loss(out, y, reduction="none", delta=criterion.delta)
            return per.flatten(1).mean(1)

        return regression
    return vmap(lambda out, y: criterion(out, y))


def _unique_tensors(tensors):
    """``(unique, index)``: equal tensors (same data) are stacked once."""
    unique, index = [], []
    for t in tensors:
        for j, u in enumerate(unique):
            if u is t or (u.shape == t.shape and u.dtype == t.dtype and torch.equal(u, t)):
                index.append(j)
                break
        else:
            index.append(len(unique))
            unique.append(t)
    return unique, index


class NotBatchable(RuntimeError):
    """The stacked model cannot run this module (e.g. vmap cannot trace its forward)."""


class BatchedTrainer:
    """Train the same round of many estimators as one vectorised model.

    ``train(requests)`` takes :class:`~sklottery.base.TrainRequest` objects
    with equal :func:`group_key` (each estimator's module holds its start
    weights) and returns one :class:`~sklottery._training.RoundResult` per
    request, as each estimator's own :class:`~sklottery._training.SkorchTrainer`
    would; the trained weights are written back into each estimator's
    module and its callbacks (mask, evaluation grid, ticket_curve's test
    evaluation) are notified as in a skorch round.

    Parameters
    ----------
    chunk : int, default=1024
        Validation samples per batched forward pass.
    """

    def __init__(self, chunk=1024):
        self.chunk = chunk
        self._data = {}  # the members' stacked data, by the identity of their tensors

    # ------------------------------------------------------------------ setup
    def train(self, requests):
        ests = [r.estimator for r in requests]
        nets = [e.net_ for e in ests]
        modules = [n.module_ for n in nets]
        M = len(requests)
        self._forward, self._transposed = stacked_forward(modules[0])
        self._loss = stacked_loss(nets[0].criterion_)
        self._trial_step(ests, modules)
        for est, req in zip(ests, requests):
            X, y = est._trainer._data
            est._trainer.mask_callback.masks = req.masks
            est._trainer.mask_callback.capture_at = req.capture_at
            est.net_.initialize_history()
            # masks the start weights, resets the grid, scores the start (test_*_init)
            est.net_.notify("on_train_begin", X=X, y=y)
        names = [n for n, _ in modules[0].named_parameters()]
        params = {n: self._stack([dict(m.named_parameters())[n].detach() for m in modules], n)
                  .requires_grad_(True) for n in names}
        masks = {}
        for n in requests[0].masks:
            stacked = self._stack([r.masks[n].to(params[n].device) for r in requests], n)
            if not bool(stacked.all()):
                masks[n] = stacked.to(params[n].dtype)  # multiplying by a bool casts each time
        est0 = ests[0]
        opt = self._optimizer(est0, params, masks)
        n, X_all, y_all, x_off, y_off, Xv, yv = self._stacked_data(ests)
        valid = [e._trainer.eval_grid.valid for e in ests]
        grids = [e._trainer.eval_grid for e in ests]
        every = int(grids[0].every)
        bs = int(est0.batch_size)
        epochs = int(requests[0].epochs)
        warmup = int(est0.lr_warmup)
        base_lr = float(est0.learning_rate_init)
        captured = [None] * M
        capture = defaultdict(list)  # iteration -> members whose θk it is
        for m, r in enumerate(requests):
            if r.capture_at == 0:
                captured[m] = self._state(params, m)
            elif r.capture_at is not None:
                capture[int(r.capture_at)].append(m)
        best = [np.inf] * M
        failed = [None] * M
        references = [e._trainer.reference_losses for e in ests]  # (train, valid) per member
        first = [float("nan")] * M
        train_loss = np.full(M, np.nan)
        it = 0
        t0 = time.perf_counter()

        def evaluate():
            if valid[0] is None:
                for m in range(M):
                    grids[m].iteration_ = it
                    grids[m]._record(nets[m], float("nan"), float("nan"))
                return
            losses, scores = self._validate(params, Xv, yv, grids[0].score)
            for m in range(M):
                loss = losses[m]
                if failed[m] is None:
                    failed[m] = divergence_detail("validation loss", loss, references[m][1],
                                                  first[m], f"at iteration {it}")
                if np.isfinite(loss) and loss < best[m]:
                    best[m] = loss
                    self._write(params, m, modules[m])  # the grid point's weights
                grids[m].iteration_ = it
                grids[m]._record(nets[m], loss, scores[m])

        try:
            with est0._threads(), flush_denormals():  # the estimators' n_threads
                for epoch in range(epochs):
                    perms = torch.stack([torch.randperm(n, generator=e._generator)
                                         for e in ests]).to(X_all.device)
                    xidx, yidx = perms + x_off, perms + y_off
                    sums = torch.zeros(M, dtype=torch.float64)
                    for start in range(0, n, bs):
                        xb = X_all[xidx[:, start:start + bs]]
                        yb = y_all[yidx[:, start:start + bs]]
                        if warmup:
                            for group in opt.param_groups:
                                group["lr"] = base_lr * min(1.0, (it + 1) / warmup)
                        losses = self._loss(self._forward(params, xb), yb)
                        opt.zero_grad(set_to_none=True)
                        losses.sum().backward()
                        with torch.no_grad():
                            for name, keep in masks.items():
                                params[name].grad.mul_(keep)
                        # A pruned weight starts at exactly 0 (the mask callback) and
                        # gets a zero gradient, so Adam's and SGD's moments and
                        # update (weight decay included: it adds alpha * 0) stay
                        # exactly 0 there: the step needs no second masking.
                        opt.step()
                        it += 1
                        lv = losses.detach().double()
                        if it == 1:
                            first = lv.cpu().tolist()
                        sums += lv.cpu() * xb.shape[1]
                        bad = ~torch.isfinite(lv)
                        if bool(bad.any()):
                            for m in torch.nonzero(bad).flatten().tolist():
                                if failed[m] is None:
                                    failed[m] = (f"training loss became {float(lv[m])} at "
                                                 f"iteration {it}")
                        for m in capture.get(it, ()):
                            captured[m] = self._state(params, m)
                        if it % every == 0:
                            evaluate()
                        poll_stop()
                    train_loss = (sums / n).numpy()
                    for m in range(M):
                        if failed[m] is None:
                            failed[m] = divergence_detail(
                                "mean training loss of an epoch", train_loss[m],
                                references[m][0], first[m], f"at iteration {it}")
                        nets[m].history.new_epoch()
                        nets[m].history.record("epoch", epoch + 1)
                        nets[m].history.record("train_loss", float(train_loss[m]))
                if it % every != 0 or not grids[0].iterations_:
                    evaluate()
        except KeyboardInterrupt:
            if aborting():  # a second Ctrl-C: abort at once
                raise
            return [RoundResult("interrupted") for _ in range(M)]
        seconds = (time.perf_counter() - t0) / M
        results = []
        for m in range(M):
            self._write(params, m, modules[m])
            X, y = ests[m]._trainer._data
            detail = failed[m] or self._non_finite(params, m, grids[m])
            if detail is not None:
                results.append(RoundResult("diverged", detail))
                continue
            nets[m].notify("on_train_end", X=X, y=y)
            grid = grids[m]
            result = RoundResult("ok", seconds=seconds, epochs=epochs, n_iter=it,
                                 train_loss=float(train_loss[m]), captured=captured[m])
            if grid.valid is not None and grid.iterations_:
                result.valid_loss = float(grid.valid_loss_[-1])
                result.valid_score = float(grid.valid_score_[-1])
                result.early_stop = grid.early_stop()
            results.append(result)
        return results

    # ---------------------------------------------------------------- helpers
    def _stacked_data(self, ests):
        """``(n, X_all, y_all, x_offsets, y_offsets, X_valid, y_valid)`` of the members.

        Each distinct trial's training data is stored once (members of one
        trial index into the same rows); validation sets are stacked per
        member. The data of a fit does not change between its rounds, so
        this is built once per set of members and reused every round.
        """
        tensors = [t for e in ests for t in (*e._trainer._data,
                                             *(e._trainer.eval_grid.valid or ()))]
        key = tuple(id(t) for t in tensors)
        if key not in self._data:
            Xs, Xi = _unique_tensors([e._trainer._data[0] for e in ests])
            ys, yi = _unique_tensors([e._trainer._data[1] for e in ests])
            n = len(Xs[0])
            X_all, y_all = torch.cat(Xs), torch.cat(ys)
            x_off = torch.as_tensor(Xi, device=X_all.device).mul(n).unsqueeze(1)
            y_off = torch.as_tensor(yi, device=X_all.device).mul(n).unsqueeze(1)
            valid = [e._trainer.eval_grid.valid for e in ests]
            Xv = yv = None
            if valid[0] is not None:
                Xv = torch.stack([v[0] for v in valid])
                yv = torch.stack([v[1] for v in valid])
            # the tensors are kept with the entry, so their ids stay theirs
            self._data[key] = (tensors, (n, X_all, y_all, x_off, y_off, Xv, yv))
        return self._data[key][1]

    def _trial_step(self, ests, modules):
        """Forward and backward two samples per member through the stacked model.

        Raises :class:`NotBatchable` (before any member is touched) when the
        module cannot run stacked, e.g. a forward that calls ``.item()`` or
        branches on data, which :func:`torch.func.vmap` cannot trace.
        """
        try:
            params = {n: self._stack([dict(m.named_parameters())[n].detach() for m in modules],
                                     n).requires_grad_(True)
                      for n, _ in modules[0].named_parameters()}
            X = torch.stack([e._trainer._data[0][:2] for e in ests])
            y = torch.stack([e._trainer._data[1][:2] for e in ests])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. vmap's performance notes
                self._loss(self._forward(params, X), y).sum().backward()
        except Exception as exc:  # noqa: BLE001 - any failure means: train alone
            raise NotBatchable(f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _optimizer(est, params, masks):
        values = list(params.values())
        if est.optimizer == "sgd":
            return torch.optim.SGD(values, lr=float(est.learning_rate_init),
                                   momentum=float(est.momentum),
                                   weight_decay=float(est.alpha))
        kwargs = {"lr": float(est.learning_rate_init), "weight_decay": float(est.alpha)}
        if fused_adam_supported(values[0].device.type):
            # one pass over the stacked weights per step instead of ~10; it has
            # no slow path over Adam's zero second moments (pruned weights)
            return torch.optim.Adam(values, fused=True, **kwargs)
        opt = torch.optim.Adam(values, **kwargs)
        prime_adam_state(opt, params, {n: m.bool() for n, m in masks.items()})
        return opt

    @torch.no_grad()
    def _validate(self, params, Xv, yv, score):
        outs = torch.cat([self._forward(params, Xv[:, i:i + self.chunk])
                          for i in range(0, Xv.shape[1], self.chunk)], dim=1)
        losses = self._loss(outs, yv).double().cpu().numpy()
        metric = SCORES[score]
        scores = [metric(outs[m], yv[m]) for m in range(len(outs))]
        return [float(v) for v in losses], scores

    def _stack(self, tensors, name):
        """``[members, *shape]`` (``[members, in, out]`` for a transposed weight)."""
        stacked = torch.stack(tensors)
        if name in self._transposed:
            stacked = stacked.transpose(1, 2)
        return stacked.contiguous()

    def _member(self, params, name, m):
        """Member ``m``'s tensor of ``name`` in the module's own layout (a view)."""
        t = params[name][m]
        return t.t() if name in self._transposed else t

    def _state(self, params, m):
        return {n: self._member(params, n, m).detach().clone() for n in params}

    @torch.no_grad()
    def _write(self, params, m, module):
        for name, p in module.named_parameters():
            p.copy_(self._member(params, name, m))

    @staticmethod
    def _non_finite(params, m, grid):
        for name, p in params.items():
            if not bool(torch.isfinite(p[m]).all()):
                return f"{name} has non-finite values at the end of training"
        if grid.valid is not None and grid.valid_loss_ and not np.isfinite(grid.valid_loss_[-1]):
            return f"validation loss became {grid.valid_loss_[-1]}"
        return None


class _Member:
    """One fit driven by :func:`fit_many`: its step generator and what it left."""

    def __init__(self, estimator, steps, rng):
        self.estimator = estimator
        self.steps = steps
        self.rng = rng  # this fit's own global torch RNG stream
        self.request = None
        self.error = None
        self.warnings = []
        self.done = False

    @contextlib.contextmanager
    def turn(self, record=None):
        """Run code as this fit: its warnings recorded, its global RNG stream."""
        with warnings.catch_warnings(record=True) as caught:
            if record is not None:
                record()
            torch.set_rng_state(self.rng)
            try:
                yield
            finally:
                self.rng = torch.get_rng_state()
                self.warnings.extend(caught)

    def advance(self, result=None, error=None, record=None):
        """Run the fit's engine up to its next request (or its end)."""
        with self.turn(record):
            try:
                if error is not None:
                    self.request = self.steps.throw(error)
                else:
                    self.request = self.steps.send(result)
            except StopIteration:
                self.request, self.done = None, True
            except BaseException as exc:  # the fit failed; the caller decides
                self.request, self.done, self.error = None, True, exc


def fit_many(fits, batched=True, record_warnings=None, on_done=None):
    """Fit many estimators, training rounds that fit together as one batch.

    Parameters
    ----------
    fits : list of (estimator, X, y, fit_kwargs)
        Each is fitted as by ``estimator.fit(X, y, **fit_kwargs)``.
    batched : bool, default=True
        False trains every round with the estimator's own skorch trainer (the
        fits still run interleaved, each with its own RNG stream).
    record_warnings : callable, default=None
        Called inside each member's ``warnings.catch_warnings(record=True)``
        block to set the filters (e.g. which categories to record).
    on_done : callable, default=None
        Called with the index of every fit as soon as it finished.

    Returns
    -------
    outcomes : list of (exception or None, list of warnings.WarningMessage)
        Per fit, in order: the :class:`~sklottery.base.TrainingDivergedError`
        that ended it, if any (the estimator is then left as ``fit`` would
        leave it), or the ``KeyboardInterrupt`` of a fit stopped in its dense
        round by a stop request (:mod:`sklottery._interrupt`), and the
        warnings it raised. After a stop request no fit trains another
        round: each keeps its completed rounds, as an interrupted fit does.

    Raises
    ------
    Exception
        Any other error of a fit, as soon as it happens: invalid parameters
        or data fail while every fit is being set up, before any training.
    """
    with torch.random.fork_rng(devices=[]):
        state = torch.get_rng_state()
        members = []
        for est, X, y, kw in fits:
            est._validate_params()
            members.append(_Member(est, est._fit_steps(X, y, **(kw or {})), state.clone()))

        def finished(i):
            error = members[i].error
            stopped = isinstance(error, KeyboardInterrupt) and stop_requested() \
                and not aborting()
            if error is not None and not isinstance(error, TrainingDivergedError) \
                    and not stopped:
                raise error
            if on_done is not None:
                on_done(i)

        trainer = BatchedTrainer()
        unbatchable = set()  # group keys whose module cannot run stacked
        try:
            for i, mem in enumerate(members):
                mem.advance(record=record_warnings)
                if mem.done:
                    finished(i)
            while True:
                waiting = [i for i, mem in enumerate(members) if not mem.done]
                if not waiting:
                    break
                if stop_requested():
                    # Ctrl-C in an experiment: no fit trains another round; each
                    # keeps its completed rounds, as if interrupted in this one
                    for i in waiting:
                        members[i].advance(error=KeyboardInterrupt("stop requested"),
                                           record=record_warnings)
                        if members[i].done:
                            finished(i)
                    continue
                groups = defaultdict(list)
                for i in waiting:
                    req = members[i].request
                    why = batchable(req.estimator) if batched else "batched=False"
                    key = ("solo", i) if why else group_key(req)
                    groups[("solo", i) if key in unbatchable else key].append(i)
                for key, idx in groups.items():
                    if key[0] == "solo" or len(idx) == 1:
                        for i in idx:
                            _train_alone(members[i], record_warnings)
                    else:
                        _train_group(trainer, [members[i] for i in idx], record_warnings,
                                     lambda: unbatchable.add(key))
                    for i in idx:
                        if members[i].done:
                            finished(i)
        finally:
            # A fit left unfinished (another fit raised) is closed here, inside
            # this fork_rng, so its own cleanup cannot touch the global RNG later.
            for mem in members:
                if not mem.done:
                    torch.set_rng_state(mem.rng)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        mem.steps.close()
    return [(mem.error, mem.warnings) for mem in members]


def _train_group(trainer, members, record_warnings, mark_unbatchable):
    """Train one group's requests as a batch (alone, if the module cannot be stacked)."""
    try:
        results = trainer.train([mem.request for mem in members])
    except NotBatchable:
        mark_unbatchable()
        for mem in members:
            _train_alone(mem, record_warnings)
        return
    except BaseException as exc:  # every member of the batch sees it
        if aborting():
            raise
        for mem in members:
            mem.advance(error=exc, record=record_warnings)
        return
    for mem, res in zip(members, results):
        mem.advance(res, record=record_warnings)


def _train_alone(member, record_warnings):
    """Train one request with the fit's own skorch trainer, on its own RNG stream."""
    req = member.request
    try:
        with member.turn(record_warnings), req.estimator._threads():
            result = _own_trainer(req)
    except BaseException as exc:  # handed to the fit's failure policy
        member.advance(error=exc, record=record_warnings)
        return
    member.advance(result, record=record_warnings)
