"""The batched trainer: the rounds of many IMP fits trained as one vectorised model.

Lottery-ticket experiments train the same small architecture many times: the
trials x strategies of a :func:`~sklottery.analysis.ticket_curve`, then its
mask controls. One such network is far too small to keep two cores busy (on
digits, LeNet-300-100's batch of 60 is a few megaflops and most of an epoch
is per-batch overhead), so :func:`fit_many` drives many estimators' fits at
once (:func:`~sklottery.training.fit_many`): whenever several fits ask for
a round with the same architecture, data shape and training settings
(:meth:`BatchedTrainer.group_key`), :class:`BatchedTrainer` trains those
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

The rest of a module's state is carried per member too:

* frozen parameters (``requires_grad=False``) are stacked but get no
  gradient and are not given to the optimizer; skorch gives them to its
  optimizer, which skips a parameter without a gradient (weight decay
  included), so both leave them exactly as they started;
* buffers (batch norm's running mean, variance and batch count) are stacked
  per member and passed with the parameters to
  :func:`torch.func.functional_call` under :func:`torch.func.vmap`; batch
  norm updates each member's slice in place in train mode, as it updates a
  module's own buffers, and uses them in eval mode (validation). They are
  written back into each member's module with its weights, at the grid
  points of a new minimum validation loss (for the callbacks that keep the
  early-stop network) and at the end of the round, and are part of θk;
* dropout draws each member's noise from that fit's own global RNG stream
  (``TrainRequest.rng_state``), exactly the draws its skorch round would
  make: torch's CPU dropout is one ``bernoulli_`` on a tensor of the
  input's shape from the global generator, and the batched forward makes
  the same call on a generator in that member's state, in the order its
  forward calls its dropout modules (:func:`stacked_forward`). The state
  the draws leave goes back to the engine (``RoundResult.rng_state``), so
  the fit's later rounds, its checkpoint and a warm start continue the
  stream as after a skorch round. A batched dropout member therefore equals
  the same fit alone up to float rounding, like any other.

Which rounds can be batched is :meth:`BatchedTrainer.accepts`, the one
place that lists what trains alone and why. A round it declines trains with
the skorch trainer, on its fit's own global torch RNG stream, so the results
do not depend on which fits were run together.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from skorch.callbacks import Callback
from torch.func import functional_call, vmap

from .._interrupt import aborting, poll_stop
from ..modules import MLP
from .metrics import SCORES
from .optim import build_optimizer, flush_denormals
from .protocol import RoundResult, TrainerDeclined, torch_threads
from .rounds import divergence_detail, end_of_round_detail, round_result, warmup_factor
from .skorch import TRAINER_CALLBACKS

__all__ = ["BatchedTrainer", "stacked_forward", "stacked_loss"]

#: Callback hooks the batched trainer does not call (it has no skorch batch or
#: epoch loop): a callback that overrides one of them trains alone.
_LOOP_HOOKS = ("on_batch_begin", "on_batch_end", "on_grad_computed", "on_epoch_begin",
               "on_epoch_end")


#: Torch's dropout modules, by the kind of noise they draw (see :func:`_dropout_noise`).
_DROPOUT_KINDS = {
    torch.nn.Dropout: "dropout", torch.nn.AlphaDropout: "alpha",
    torch.nn.Dropout1d: "feature", torch.nn.Dropout2d: "feature",
    torch.nn.Dropout3d: "feature", torch.nn.FeatureAlphaDropout: "feature_alpha",
}
_DROPOUT = tuple(_DROPOUT_KINDS)
#: The input dimensions of a batched ``Dropout1d``/``2d``/``3d`` call.
_FEATURE_DIMS = {torch.nn.Dropout1d: 3, torch.nn.Dropout2d: 4, torch.nn.Dropout3d: 5}
#: SELU's alpha, as aten's alpha dropout uses it.
_SELU_ALPHA = 1.7580993408473766


def _overrides(callback, hook):
    """Whether ``callback``'s class overrides skorch's no-op ``hook``."""
    return getattr(type(callback), hook, None) is not getattr(Callback, hook, None)


def _active_dropout(module):
    """Whether ``module`` holds a dropout module that draws (``0 < p``)."""
    return any(isinstance(sub, _DROPOUT) and sub.p > 0 for sub in module.modules())


def _dropout_noise(kind, p, shape, dtype, device, generators):
    """``(scale, shift)``: the members' dropout noise for an input of ``shape``.

    Member ``m``'s noise is drawn from ``generators[m]`` exactly as torch's
    CPU dropout draws it from the global RNG (aten's ``_dropout_impl``): one
    ``bernoulli_(1 - p)`` on a fresh tensor of the input's shape (of
    ``[N, C, 1, ...]`` for feature dropout), divided by ``1 - p`` (alpha
    dropout: scaled and shifted). The output is ``x * scale`` (``+ shift``).
    Returns ``[members, *noise_shape]`` tensors; ``shift`` is None but for
    alpha dropout.
    """
    if kind.startswith("feature"):
        shape = (*shape[:2], *(1,) * (len(shape) - 2))
    keep = torch.stack([torch.empty(shape, dtype=dtype, device=device)
                        .bernoulli_(1 - p, generator=g) for g in generators])
    if kind.endswith("alpha"):
        a = 1.0 / math.sqrt((_SELU_ALPHA * _SELU_ALPHA * p + 1) * (1 - p))
        shift = keep.add(-1).mul_(_SELU_ALPHA * a).add_(_SELU_ALPHA * a * p)
        return keep.mul_(a), shift
    return keep.div_(1 - p), None


class _MemberDropout(torch.nn.Module):
    """A dropout module's stand-in in the stacked template.

    Inside :func:`torch.func.vmap` it multiplies by its member's noise, drawn
    before the forward from that member's generator (:class:`_DropoutDraws`);
    vmap itself draws nothing (its randomness stays ``'error'``, so any other
    random op in a forward declines the batch). Like torch's dropout it is
    the identity in eval mode, with ``p == 0`` and on an empty input, and
    multiplies by zero without a draw at ``p == 1``.
    """

    def __init__(self, original, draws):
        super().__init__()
        self.kind = _DROPOUT_KINDS[type(original)]
        self.dims = _FEATURE_DIMS.get(type(original))
        self.p = float(original.p)
        self.draws = draws

    def forward(self, x):
        if not self.training or self.p == 0 or x.numel() == 0:
            return x
        if self.p == 1:
            return x * torch.zeros((), dtype=x.dtype, device=x.device)
        if self.dims is not None and x.dim() != self.dims:
            raise ValueError(f"{self.kind} dropout of a {x.dim()}-d input is not drawn "
                             "member by member")
        return self.draws.apply(self, x)


class _DropoutDraws:
    """The dropout noise of one stacked forward, in the order the forward calls it.

    ``plan(template, X)`` runs the template once on the meta device (no
    data) to learn which stand-ins a forward of ``X``'s per-member shape
    calls, in which order and on which shapes (cached per shape); the
    members' noise is then drawn outside vmap and handed in (``queue``), so
    each member's draws come from its own generator in the order its own
    forward would make them.
    """

    def __init__(self):
        self.plans = {}
        self.recording = None
        self.owners = []  # the stand-ins the next forward calls, in order
        self.queue = None

    def plan(self, template, X):
        key = (tuple(X.shape[1:]), X.dtype)
        if key not in self.plans:
            self.recording = []
            try:
                with torch.no_grad():
                    template(torch.empty(key[0], dtype=X.dtype, device="meta"))
                self.plans[key] = self.recording
            finally:
                self.recording = None
        return self.plans[key]

    def apply(self, stub, x):
        if self.recording is not None:
            self.recording.append((stub, tuple(x.shape), x.dtype))
            return x
        owner, noise = next(self.queue, (None, ()))
        if owner is not stub:
            raise RuntimeError("the forward called its dropout modules in another order "
                               "than planned")
        return x * noise[0] if len(noise) == 1 else (x * noise[0]).add_(noise[1])


def stacked_forward(module):
    """``(f, transposed)``: ``module``'s forward for stacked weights and inputs.

    ``f(params, X, buffers=None, train=False, generators=None)`` takes
    ``params`` (and ``buffers``, required when the module has buffers)
    mapping names to ``[members, *shape]`` tensors and ``X`` of shape
    ``[members, batch, ...]`` and returns ``[members, batch, ...]``. ``train=True`` runs the module in train mode,
    as skorch trains it: batch norm normalises with the batch's statistics
    and updates each member's running statistics in ``buffers`` in place,
    and dropout draws member ``m``'s noise from ``generators[m]``, exactly
    the draws the module's own dropout makes from a global RNG in that
    generator's state (:func:`_dropout_noise`); ``train=False`` is eval
    mode (running statistics, no dropout), as in validation.

    The names in ``transposed`` are stacked as ``[members, in, out]`` (their
    weight transposed). The built-in MLP runs as one ``baddbmm`` per layer
    on transposed weights, so neither the forward nor the gradient copies a
    weight; any other module runs through :func:`torch.func.vmap` over
    :func:`torch.func.functional_call` (parameters and buffers), which turns
    ``linear`` into batched matmuls and ``conv2d`` into a grouped
    convolution, with torch's dropout modules replaced by
    :class:`_MemberDropout`. (A profile of the vmap path on LeNet-300-100
    showed a transposing copy of every weight gradient at every step: 11 %
    of the time.)
    """
    template = copy.deepcopy(module).to("meta")
    if type(module) is MLP:
        steps = []
        for name, layer in template.layers.named_children():
            if isinstance(layer, torch.nn.Linear):
                steps.append((f"layers.{name}.weight",
                              f"layers.{name}.bias" if layer.bias is not None else None))
            else:
                steps.append(layer)  # an elementwise activation, or dropout

        def mlp(params, X, buffers=None, train=False, generators=None):
            h = X.flatten(2)
            for step in steps:
                if isinstance(step, tuple):
                    Wt = params[step[0]]
                    h = (torch.bmm(h, Wt) if step[1] is None
                         else torch.baddbmm(params[step[1]].unsqueeze(1), h, Wt))
                elif isinstance(step, torch.nn.Dropout):
                    if train and step.p > 0:
                        scale, _ = _dropout_noise("dropout", step.p, h.shape[1:], h.dtype,
                                                  h.device, generators)
                        h = h * scale
                else:
                    h = step(h)
            return h

        return mlp, {w for w, _ in (st for st in steps if isinstance(st, tuple))}
    draws = _DropoutDraws()
    stubs = False
    for name, sub in list(template.named_modules()):
        for child_name, child in list(sub.named_children()):
            if type(child) in _DROPOUT_KINDS:
                setattr(sub, child_name, _MemberDropout(child, draws))
                stubs = True

    def call(params, buffers, noise, x):
        draws.queue = iter(zip(draws.owners, noise))
        try:
            out = functional_call(template, (params, buffers), (x,))
            if next(draws.queue, None) is not None:
                raise RuntimeError("the forward called fewer dropout modules than planned")
            return out
        finally:
            draws.queue = None

    run = vmap(call)

    def forward(params, X, buffers=None, train=False, generators=None):
        if template.training != train:
            template.train(train)
        plan = draws.plan(template, X) if stubs and train else []
        noise = [_dropout_noise(stub.kind, stub.p, shape, dtype, X.device, generators)
                 for stub, shape, dtype in plan]
        draws.owners = [stub for stub, _, _ in plan]
        return run(params, buffers or {}, [n[:1] if n[1] is None else n for n in noise], X)

    return forward, set()


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
            # the mean over the counted targets, without asking the host whether any
            # is ignored (a CUDA graph cannot); with none ignored it equals
            # per.mean(1) bit for bit (checked on 2000 random shapes on the CPU)
            return per.sum(1) / (y != ignore).sum(1)

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



def _epoch_orders(requests, n, device):
    """Every member's data order of an epoch, ``[members, n]`` on ``device``.

    Drawn on the host from each member's own generator, exactly as the
    skorch trainer draws it, so the order is the same on every device.
    """
    return torch.stack([torch.randperm(n, generator=r.generator) for r in requests]).to(device)


class _LossBook:
    """The members' training losses of a round, summed on their device.

    The host reads them once per epoch (the epoch means), once per round (the
    first batch's losses, the divergence rule's reference) and, with
    ``each_step=True``, whenever a step's loss is not finite (the message
    names it at once). With ``each_step=False`` the first loss that is not
    finite is kept on the device, with its iteration, and read with the
    epoch's means: no host synchronisation inside an epoch.
    """

    def __init__(self, members, device, each_step=True):
        self.first = [float("nan")] * members
        self.each_step = each_step
        self._sums = torch.zeros(members, dtype=torch.float64, device=device)
        self._bad_at = torch.zeros(members, dtype=torch.int64, device=device)
        self._bad_value = torch.zeros(members, dtype=torch.float64, device=device)

    def add(self, losses, rows, iteration):
        """Add one step's losses ``[members]``; ``{member: value}`` of those not finite
        (always empty with ``each_step=False``: see :meth:`failures`)."""
        lv = losses.detach().double()
        if iteration == 1:
            self.first = lv.tolist()
        self._sums += lv * rows
        bad = ~torch.isfinite(lv)
        if not self.each_step:
            new = bad & (self._bad_at == 0)
            self._bad_at = torch.where(new, iteration, self._bad_at)
            self._bad_value = torch.where(new, lv, self._bad_value)
            return {}
        if not bool(bad.any()):
            return {}
        return {m: float(lv[m]) for m in torch.nonzero(bad).flatten().tolist()}

    def failures(self):
        """``{member: (iteration, value)}``: the first loss that was not finite
        (``each_step=False``; read by the host once, with the epoch's means)."""
        at = self._bad_at.cpu().tolist()
        values = self._bad_value.cpu().tolist()
        return {m: (a, values[m]) for m, a in enumerate(at) if a}

    def epoch_means(self, n):
        """The epoch's mean loss per member (a host array); the sums start over."""
        means = (self._sums / n).cpu().numpy()
        self._sums.zero_()
        return means


class BatchedTrainer:
    """Train the same round of many fits as one vectorised model.

    ``train(requests)`` takes requests with equal :meth:`group_key` (each
    module holds its start weights) and returns one
    :class:`~sklottery.training.RoundResult` per request, as the skorch
    trainer would; the trained weights are written back into each module,
    each request's evaluation grid is recorded and the callbacks of its net
    are notified (``on_round_begin``, ``on_train_begin``, ``on_evaluation``,
    ``on_train_end``) as in a skorch round.

    Parameters
    ----------
    chunk : int, default=1024
        Validation samples per batched forward pass.
    """

    name = "batched"
    priority = 10
    #: Ask the host every step whether a loss is finite (a sync on a GPU); a
    #: subclass that must not synchronise reads it once per epoch instead.
    check_each_step = True
    #: A group of one gains nothing from stacking: the scheduler trains it
    #: with the reference (skorch) trainer.
    min_members = 2

    def __init__(self, chunk=1024, data_cache=None):
        self.chunk = chunk
        # the members' stacked data, by the identity of their tensors (shards share it)
        self._data = {} if data_cache is None else data_cache

    # ------------------------------------------------------------ selection
    def accepts(self, request):
        """Why ``request`` cannot be batched, or None when it can.

        Frozen parameters (``requires_grad=False``) are stacked but not
        optimised, as in skorch (whose optimizer skips a parameter without a
        gradient, weight decay included); buffers (batch norm's running
        statistics) are stacked per member, updated in train mode and used
        in eval mode as torch does; dropout draws each member's noise from
        that fit's own global RNG stream, the draws its skorch round would
        make (:func:`stacked_forward`). What trains alone, and why (the only
        list of it):

        * dropout on a device other than the CPU: torch's CUDA dropout is a
          fused kernel drawing from the device's generator, whose draws a
          batch cannot reproduce member by member;
        * dropout in a request without the fit's RNG state to draw from
          (``TrainRequest.rng_state``);
        * a module without a trainable parameter (skorch's own error is the
          reference);
        * callbacks that override a per-batch or per-epoch hook (skorch's
          ``EarlyStopping``, ``verbose >= 2``'s epoch lines, most user
          callbacks): the batched loop has no skorch epochs to run them in.
          Callbacks that only read at ``on_round_begin``, ``on_train_begin``,
          ``on_evaluation`` and ``on_train_end`` are batched;
        * criteria from outside :mod:`torch.nn`;
        * a module whose forward :func:`torch.func.vmap` cannot trace, found
          by a two-sample trial step (:class:`TrainerDeclined`): a forward
          that calls ``.item()`` or branches on data, random draws other
          than torch's dropout modules (``F.dropout`` in a forward, a
          dropout subclass), batch norm with ``momentum=None`` (its
          cumulative average reads the batch count as a number), feature
          dropout on inputs of other dimensions than its batched form.
        """
        module, net = request.module, request.net
        if _active_dropout(module):
            if request.device.type != "cpu":
                return f"the module uses dropout on {request.device.type}"
            if request.rng_state is None:
                return "the module uses dropout and the request has no RNG state"
        if not any(p.requires_grad for p in module.parameters()):
            return "the module has no trainable parameter"
        if net is not None:
            default = {n for n, _ in net.get_default_callbacks()}
            loop = [name for name, cb in net.callbacks_
                    if name not in TRAINER_CALLBACKS and name not in default
                    and any(_overrides(cb, hook) for hook in _LOOP_HOOKS)]
            if loop:
                return f"callbacks {loop} run inside skorch's batch or epoch loop"
        if type(request.criterion).__module__.split(".")[0] != "torch":
            return "a custom criterion"
        return None

    def group_key(self, request):
        """Requests with equal keys can be trained together."""
        module, data = request.module, request.data
        X = data.X
        return (
            type(module), repr(module),
            tuple((n, tuple(p.shape), p.requires_grad) for n, p in module.named_parameters()),
            tuple((n, tuple(b.shape), b.dtype) for n, b in module.named_buffers()),
            type(request.criterion), repr(request.criterion),
            request.settings, int(request.epochs), tuple(X.shape), str(X.device), X.dtype,
            None if data.valid is None else tuple(data.valid[0].shape),
        )

    # ------------------------------------------------------------- training
    def train(self, requests):
        """Train the requests' rounds together; a result per request, in order.

        With more than one torch thread allowed (``settings.n_threads``:
        None is torch's count) the members are split into that many shards,
        each trained in its own Python thread on one core: the small batched
        matmuls of a ticket's layers use a core each far better than they
        use several cores together (``benchmarks/bench_batched.py``). A
        member's numbers do not depend on its shard (members never mix).
        """
        n_threads = requests[0].settings.n_threads
        shards = min(len(requests), torch.get_num_threads() if n_threads is None
                     else int(n_threads))
        if shards <= 1:
            return self.train_batch(requests)
        self._trial_step_of(requests)  # TrainerDeclined before any member is touched
        size = -(-len(requests) // shards)
        parts = [requests[i:i + size] for i in range(0, len(requests), size)]
        with torch_threads(1), ThreadPoolExecutor(len(parts)) as pool:
            futures = [pool.submit(BatchedTrainer(self.chunk, self._data).train_batch,
                                   part, True) for part in parts]
            results = [f.result() for f in futures]  # an error (second Ctrl-C) propagates
        return [r for part in results for r in part]

    def _trial_step_of(self, requests):
        self._forward, self._transposed = stacked_forward(requests[0].module)
        self._loss = stacked_loss(requests[0].criterion)
        self._trial_step(requests)

    def train_batch(self, requests, shard=False):
        """Train ``requests`` as one stacked batch in this Python thread.

        :meth:`train` calls it once, or once per shard (``shard=True``), each
        in a thread of its own: then the trial step has run and the torch
        thread count is set by :meth:`train`.
        """
        modules = [r.module for r in requests]
        nets = [r.net for r in requests]
        grids = [r.grid for r in requests]
        M = len(requests)
        settings = requests[0].settings
        self._forward, self._transposed = stacked_forward(modules[0])
        self._loss = stacked_loss(requests[0].criterion)
        if not shard:
            self._trial_step(requests)
        for r in requests:
            r.grid.reset()
            if r.net is not None:
                r.net.initialize_history()
                r.net.notify("on_round_begin", masks=r.masks, epochs=r.epochs)
                r.net.notify("on_train_begin", X=r.data.X, y=r.data.y)
        params = {n: self._stack([dict(m.named_parameters())[n].detach() for m in modules], n)
                  .requires_grad_(p.requires_grad) for n, p in modules[0].named_parameters()}
        self._buffers = self._stacked_buffers(modules)
        self._state_keys = [k for k in modules[0].state_dict() if k in params or k in self._buffers]
        self._generators = self._member_generators(requests)
        trained = {n: p for n, p in params.items() if p.requires_grad}  # frozen: not optimised
        masks = {}
        for n in requests[0].masks:
            if n not in trained:
                continue  # a frozen weight keeps its masked start, as in skorch
            stacked = self._stack([r.masks[n].to(params[n].device) for r in requests], n)
            if not bool(stacked.all()):
                masks[n] = stacked.to(params[n].dtype)  # multiplying by a bool casts each time
        opt = self._optimizer(settings, trained, {n: m.bool() for n, m in masks.items()})
        n, X_all, y_all, x_off, y_off, Xv, yv = self._stacked_data(requests)
        step = self._step(params, masks, opt, X_all, y_all)
        has_valid = requests[0].data.valid is not None
        every = int(settings.eval_every)
        bs = int(settings.batch_size)
        epochs = int(requests[0].epochs)
        warmup = int(settings.warmup)
        base_lr = float(settings.learning_rate)
        captured = [None] * M
        capture = defaultdict(list)  # iteration -> members whose θk it is
        for m, r in enumerate(requests):
            if r.capture_at == 0:
                captured[m] = self._state(params, m)
            elif r.capture_at is not None:
                capture[int(r.capture_at)].append(m)
        best = [np.inf] * M
        failed = [None] * M
        references = [r.data.reference_losses for r in requests]  # (train, valid) per member
        book = _LossBook(M, requests[0].data.X.device, each_step=self.check_each_step)
        train_loss = np.full(M, np.nan)
        it = 0
        t0 = time.perf_counter()

        def deferred_failures():  # a book that does not read every step: read it now
            if not book.each_step:
                for m, (at, value) in book.failures().items():
                    if failed[m] is None:
                        failed[m] = f"training loss became {value} at iteration {at}"

        def evaluate():
            deferred_failures()  # the host reads the grid point anyway
            if not has_valid:
                losses, scores = [float("nan")] * M, [float("nan")] * M
            else:
                losses, scores = self._validate(params, Xv, yv, settings.score)
            for m in range(M):
                loss = losses[m]
                if has_valid:
                    if failed[m] is None:
                        failed[m] = divergence_detail("validation loss", loss,
                                                      references[m][1], book.first[m],
                                                      f"at iteration {it}")
                    if np.isfinite(loss) and loss < best[m]:
                        best[m] = loss
                        self._write(params, m, modules[m])  # the grid point's weights
                grids[m].record(it, loss, scores[m])
                if nets[m] is not None:
                    nets[m].notify("on_evaluation", iteration=it, valid_loss=loss)

        try:
            threads = (contextlib.nullcontext() if shard  # one core, set by train
                       else torch_threads(settings.n_threads))
            with threads, flush_denormals():
                for epoch in range(epochs):
                    perms = _epoch_orders(requests, n, X_all.device)
                    xidx, yidx = perms + x_off, perms + y_off
                    for start in range(0, n, bs):
                        if warmup:
                            for group in opt.param_groups:
                                group["lr"] = base_lr * warmup_factor(it, warmup)
                        rows = xidx[:, start:start + bs]
                        losses = step(rows, yidx[:, start:start + bs])
                        it += 1
                        for m, value in book.add(losses, rows.shape[1], it).items():
                            if failed[m] is None:
                                failed[m] = f"training loss became {value} at iteration {it}"
                        for m in capture.get(it, ()):
                            captured[m] = self._state(params, m)
                        if it % every == 0:
                            evaluate()
                        poll_stop()
                    train_loss = book.epoch_means(n)
                    deferred_failures()
                    for m in range(M):
                        if failed[m] is None:
                            failed[m] = divergence_detail(
                                "mean training loss of an epoch", train_loss[m],
                                references[m][0], book.first[m], f"at iteration {it}")
                        if nets[m] is not None:
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
        for m, r in enumerate(requests):
            self._write(params, m, modules[m])
            modules[m].train(not has_valid)  # as skorch leaves it: validation is last
            detail = failed[m] or end_of_round_detail(
                modules[m].state_dict(), grids[m], has_valid, references[m][1], book.first[m])
            if detail is not None:
                results.append(RoundResult("diverged", detail))
                continue
            if nets[m] is not None:
                nets[m].notify("on_train_end", X=r.data.X, y=r.data.y)
            results.append(round_result(
                seconds=seconds, epochs=epochs, n_iter=it, train_loss=train_loss[m],
                grid=grids[m], has_valid=has_valid, captured=captured[m]))
            if self._generators is not None:  # the fit's stream after its dropout draws
                results[-1].rng_state = self._generators[m].get_state()
        return results

    # ------------------------------------------------ the step (overridable)
    def _optimizer(self, settings, params, masks):
        """The round's optimizer over the stacked trained parameters."""
        return build_optimizer(settings, params, masks)

    def _step(self, params, masks, opt, X_all, y_all):
        """``step(x_rows, y_rows) -> losses``: one optimizer step of every member.

        ``x_rows``, ``y_rows`` (``[members, batch]``) index the stacked
        training data; ``losses`` is each member's mean loss on its batch.
        """
        def step(x_rows, y_rows):
            losses = self._loss(self._forward(params, X_all[x_rows], self._buffers, train=True,
                                              generators=self._generators), y_all[y_rows])
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            with torch.no_grad():
                for name, keep in masks.items():
                    params[name].grad.mul_(keep)
            # A pruned weight starts at exactly 0 (the engine masks the start)
            # and gets a zero gradient, so Adam's and SGD's moments and update
            # (weight decay included: it adds alpha * 0) stay exactly 0 there:
            # the step needs no second masking.
            opt.step()
            return losses

        return step

    # ---------------------------------------------------------------- helpers
    def _stacked_data(self, requests):
        """``(n, X_all, y_all, x_offsets, y_offsets, X_valid, y_valid)`` of the members.

        Each distinct trial's training data is stored once (members of one
        trial index into the same rows); validation sets are stacked per
        member. The data of a fit does not change between its rounds, so
        this is built once per set of members and reused every round.
        """
        tensors = [t for r in requests for t in (r.data.X, r.data.y, *(r.data.valid or ()))]
        key = tuple(id(t) for t in tensors)
        if key not in self._data:
            Xs, Xi = _unique_tensors([r.data.X for r in requests])
            ys, yi = _unique_tensors([r.data.y for r in requests])
            n = len(Xs[0])
            X_all, y_all = torch.cat(Xs), torch.cat(ys)
            x_off = torch.as_tensor(Xi, device=X_all.device).mul(n).unsqueeze(1)
            y_off = torch.as_tensor(yi, device=X_all.device).mul(n).unsqueeze(1)
            Xv = yv = None
            if requests[0].data.valid is not None:
                Xv = torch.stack([r.data.valid[0] for r in requests])
                yv = torch.stack([r.data.valid[1] for r in requests])
            # the tensors are kept with the entry, so their ids stay theirs
            self._data[key] = (tensors, (n, X_all, y_all, x_off, y_off, Xv, yv))
        return self._data[key][1]

    def _trial_step(self, requests):
        """Forward and backward two samples per member through the stacked model.

        Raises :class:`~sklottery.training.TrainerDeclined` (before any member
        is touched) when the module cannot run stacked, e.g. a forward that
        calls ``.item()`` or branches on data, which :func:`torch.func.vmap`
        cannot trace.
        """
        modules = [r.module for r in requests]
        try:
            params = {n: self._stack([dict(m.named_parameters())[n].detach() for m in modules],
                                     n).requires_grad_(p.requires_grad)
                      for n, p in modules[0].named_parameters()}
            # copies: the trial updates no member's running statistics, draws from no stream
            buffers = self._stacked_buffers(modules)
            generators = self._member_generators(requests)
            X = torch.stack([r.data.X[:2] for r in requests])
            y = torch.stack([r.data.y[:2] for r in requests])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. vmap's performance notes
                self._loss(self._forward(params, X, buffers, train=True, generators=generators),
                           y).sum().backward()
        except Exception as exc:  # noqa: BLE001 - any failure means: train alone
            raise TrainerDeclined(f"{type(exc).__name__}: {exc}") from exc

    @torch.no_grad()
    def _validate(self, params, Xv, yv, score):
        outs = torch.cat([self._forward(params, Xv[:, i:i + self.chunk], self._buffers)
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
        """Member ``m``'s ``state_dict`` (parameters and persistent buffers), copied."""
        return {k: (self._member(params, k, m).detach() if k in params
                    else self._buffers[k][m]).clone() for k in self._state_keys}

    @torch.no_grad()
    def _write(self, params, m, module):
        """Member ``m``'s parameters and buffers into its module."""
        for name, p in module.named_parameters():
            p.copy_(self._member(params, name, m))
        for name, b in module.named_buffers():
            b.copy_(self._buffers[name][m])

    @staticmethod
    def _stacked_buffers(modules):
        """The members' buffers (running statistics) as ``[members, *shape]`` copies."""
        return {n: torch.stack([dict(m.named_buffers())[n] for m in modules])
                for n, _ in modules[0].named_buffers()}

    @staticmethod
    def _member_generators(requests):
        """Each member's own copy of its fit's global RNG stream; None without dropout.

        Dropout only trains batched on the CPU (:meth:`accepts`), whose
        generator states these are.
        """
        if not _active_dropout(requests[0].module):
            return None
        generators = []
        for r in requests:
            g = torch.Generator()
            g.set_state(r.rng_state)
            generators.append(g)
        return generators
