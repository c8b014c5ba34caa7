"""Pruning at initialization: SNIP, GraSP and SynFlow scores and masks.

Iterative magnitude pruning finds its mask by training; pruning at
initialization scores the weights of the untrained network θ0 and prunes
once (or, for SynFlow, over many cheap scoring rounds), before any training.
Three criteria, each as its paper (and the paper's code) defines it:

``'snip'`` (Lee et al. [Lee2019]_)
    Connection sensitivity ``|g ⊙ w|``, with ``g`` the gradient of the
    training loss on a mini-batch at θ0; normalised to sum one over all
    scored weights and the *highest* kept, globally, in one shot.
``'grasp'`` (Wang et al. [Wang2020]_)
    Gradient signal preservation ``S = -w ⊙ (H g)``, ``H g`` the
    Hessian-gradient product of the loss (double back-propagation, logits
    divided by a temperature ``T = 200``); normalised by ``|Σ S|`` and the
    weights with the *highest* ``S`` removed, i.e. the lowest kept, globally.
``'synflow'`` (Tanaka et al. [Tanaka2020]_)
    Data-free synaptic flow ``(dR/dw) ⊙ w`` of the linearised network
    (absolute values of all parameters and buffers, evaluation mode, an
    all-ones input; ``R`` the sum of the output), the highest kept globally;
    iterative: 100 rounds by default, round ``k`` of ``n`` keeping a
    fraction ``d ** (k / n)`` of the weights (``d`` the final density), each
    round re-scoring the masked network.

:func:`pai_scores` scores a module's weights, :func:`pai_module_masks`
turns the scores into masks on a module, and :func:`pai_masks` does it for an
estimator, on exactly the θ0 that its ``fit`` trains::

    masks = pai_masks(est, X, y, 'snip', sparsity=0.9)
    est.set_params(n_rounds=0).fit(X, y, initial_masks=masks)

Every method scores the estimator's prunable weights
(:func:`sklottery.modules.layer_kinds`), the output layer included: all three
papers' code prunes every ``Linear``/``Conv2d`` weight globally, the last
layer too. A module's ``prunable_exclude`` (e.g. VGG-16's output layer) is
respected. Biases and batch-norm parameters are never pruned.

Layer collapse: at high sparsity a global criterion can remove every weight
of a layer, which disconnects the network (Tanaka et al.'s observation, and
the point of SynFlow). These functions then raise a ``ValueError`` naming
the layers rather than return a mask that trains a constant network.

Conventions as in :mod:`sklottery.pruning`: a mask is a ``torch.bool``
tensor, ``True`` = kept; a sparsity ``s`` over ``N`` scored weights removes
``floor(s * N + 0.5)`` of them; among equal scores the weight with the lower
flat index (layers in dictionary order) is pruned first.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state

from .exceptions import LayerCollapseError
from .modules import layer_kinds
from .training import FitDriver, torch_threads

__all__ = ["PAI_METHODS", "PaiMethod", "pai_scores", "pai_module_masks", "pai_masks"]

#: Temperature dividing the logits in GraSP's loss (``T = 200`` in Wang et
#: al.'s code, ``pruner/GraSP.py``).
GRASP_TEMPERATURE = 200.0
_GRASP_EPS = 1e-10  # added to GraSP's normaliser, as in Wang et al.'s code


@dataclass(frozen=True)
class PaiMethod:
    """One pruning-at-initialization criterion of :data:`PAI_METHODS`.

    Attributes
    ----------
    score : callable
        ``score(module, names, batches, criterion, **options)`` -> dict name ->
        score tensor, computed on ``module`` (a private copy, pruned weights
        already zero).
    keep : {'highest', 'lowest'}
        Which scores are kept: SNIP and SynFlow keep the highest, GraSP keeps
        the lowest (it removes the highest ``-w ⊙ Hg``).
    rounds : int
        Scoring rounds by default (1: one shot; SynFlow 100).
    needs_data : bool
        Whether the scores read training data (SynFlow's do not).
    reference : str
        The paper.
    """

    score: Callable
    keep: str
    rounds: int
    needs_data: bool
    reference: str


# ---------------------------------------------------------------- the scores
def _params(module, names):
    params = dict(module.named_parameters())
    return [params[n] for n in names]


def _snip(module, names, batches, criterion, **options):
    """|g ⊙ w| with g the loss gradient summed over the batches, normalised to sum one."""
    weights = _params(module, names)
    grads = [torch.zeros_like(w) for w in weights]
    for X, y in batches:
        loss = criterion(module(X), y)
        for acc, g in zip(grads, torch.autograd.grad(loss, weights, allow_unused=True)):
            if g is not None:
                acc += g
    scores = [(g * w).abs().detach() for g, w in zip(grads, weights)]
    total = sum(float(s.sum()) for s in scores)
    if total > 0:  # Lee et al.: s_j = |g_j| / sum_k |g_k| (g_j = dL/dc_j = w_j dL/dw_j)
        scores = [s / total for s in scores]
    return dict(zip(names, scores))


def _grasp(module, names, batches, criterion, temperature=GRASP_TEMPERATURE, **options):
    """S = -w ⊙ (H g), g and H g summed over the batches, normalised by |sum S| + 1e-10."""
    weights = _params(module, names)
    batches = list(batches)
    t = float(temperature)
    g = [torch.zeros_like(w) for w in weights]
    for X, y in batches:  # first pass: the gradient, no graph (Wang et al.: grad_w)
        loss = criterion(module(X) / t, y)
        for acc, gb in zip(g, torch.autograd.grad(loss, weights, allow_unused=True)):
            if gb is not None:
                acc += gb
    hg = [torch.zeros_like(w) for w in weights]
    for X, y in batches:  # second pass: d(g . grad L)/dw = H g (double back-propagation)
        loss = criterion(module(X) / t, y)
        grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        z = sum((gi * gr).sum() for gi, gr in zip(g, grads) if gr is not None)
        if not torch.is_tensor(z) or not z.requires_grad:
            continue  # the loss is linear in the weights: H g = 0
        for acc, h in zip(hg, torch.autograd.grad(z, weights, allow_unused=True)):
            if h is not None:
                acc += h
    scores = [(-w * h).detach() for w, h in zip(weights, hg)]
    norm = abs(sum(float(s.sum()) for s in scores)) + _GRASP_EPS
    return {n: s / norm for n, s in zip(names, scores)}


def _synflow(module, names, batches, criterion, input_shape=None, **options):
    """(dR/dw) ⊙ w of the linearised network (|parameters|, eval mode, all-ones input)."""
    with torch.no_grad():
        for t in module.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    weights = _params(module, names)
    x = torch.ones((1, *input_shape), dtype=weights[0].dtype, device=weights[0].device)
    R = module(x).sum()
    grads = torch.autograd.grad(R, weights, allow_unused=True)
    return {n: (torch.zeros_like(w) if g is None else (g * w).abs()).detach()
            for n, w, g in zip(names, weights, grads)}


#: The pruning-at-initialization criteria by name, one line each.
PAI_METHODS = {
    "snip": PaiMethod(_snip, "highest", 1, True, "Lee et al. (2019), SNIP"),
    "grasp": PaiMethod(_grasp, "lowest", 1, True, "Wang et al. (2020), GraSP"),
    "synflow": PaiMethod(_synflow, "highest", 100, False, "Tanaka et al. (2020), SynFlow"),
}


# ---------------------------------------------------------------- helpers
def _method(method):
    try:
        return PAI_METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown pruning-at-initialization method {method!r}; choose one of "
            f"{sorted(PAI_METHODS)}.") from None


def _scored_names(module, masks):
    if masks is not None:
        params = dict(module.named_parameters())
        unknown = [n for n in masks if n not in params]
        if unknown:
            raise ValueError(f"masks name weights the module does not have: {unknown}.")
        return list(masks)
    names = list(layer_kinds(module))
    if not names:
        raise ValueError("The module has no prunable (Linear/Conv2d) weights.")
    return names


def _as_tensor(a, device, dtype=None):
    t = a.detach() if torch.is_tensor(a) else torch.as_tensor(np.asarray(a))
    return t.to(device=device, dtype=dtype) if dtype is not None else t.to(device)


def _batches(X, y, n_batches, batch_size, generator, device, dtype):
    """``n_batches`` disjoint mini-batches of a random permutation of the rows.

    Fewer (or a shorter last one) when the data hold fewer than
    ``n_batches * batch_size`` rows.
    """
    X = _as_tensor(X, device, dtype)
    y = _as_tensor(y, device)
    n = len(X)
    if n == 0 or len(y) != n:
        raise ValueError(f"X and y must hold the same (non-zero) number of rows, got {n} "
                         f"and {len(y)}.")
    perm = torch.randperm(n, generator=generator).to(device)
    size = min(int(batch_size), n)
    return [(X[idx], y[idx]) for idx in perm[: int(n_batches) * size].split(size)]


def _check_fraction(sparsity):
    s = float(sparsity)
    if not 0.0 <= s < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}.")
    return s


def _check_targets(sparsity):
    """``(targets, single)``: the checked sparsities of a number or a sequence of them."""
    if isinstance(sparsity, (str, bytes)):
        raise TypeError(f"sparsity must be a number or a sequence of numbers, got "
                        f"{sparsity!r}.")
    single = np.ndim(sparsity) == 0
    targets = [_check_fraction(t) for t in ([sparsity] if single else sparsity)]
    if not targets:
        raise ValueError("sparsity is an empty sequence; give at least one value.")
    return targets, single


# ---------------------------------------------------------------- public API
def pai_scores(module, masks=None, method="snip", X=None, y=None, criterion=None,
               n_batches=1, batch_size=128, generator=None, *, input_shape=None,
               train_mode=False, temperature=GRASP_TEMPERATURE):
    """Pruning-at-initialization scores of a module's prunable weights.

    Parameters
    ----------
    module : torch.nn.Module
        The network at initialization; it is not changed (the scores are
        computed on a copy).
    masks : dict of str -> bool Tensor, default=None
        Weights already pruned (``False``) are zero in the scored copy; the
        keys are the weights scored. None: every prunable weight
        (:func:`sklottery.modules.layer_kinds`), unpruned.
    method : {'snip', 'grasp', 'synflow'}, default='snip'
        The criterion (:data:`PAI_METHODS`):

        * ``'snip'`` [Lee2019]_: ``|g ⊙ w| / Σ |g ⊙ w|``, ``g`` the gradient of
          ``criterion`` summed over the mini-batches;
        * ``'grasp'`` [Wang2020]_: ``S = -w ⊙ (H g)`` over ``|Σ S| + 1e-10``, ``g``
          and ``H g`` summed over the mini-batches, the logits divided by
          ``temperature``; the *highest* ``S`` are the ones to remove;
        * ``'synflow'`` [Tanaka2020]_: ``|(dR/dw) ⊙ w|`` with ``R`` the sum of
          the output of the copy with every floating parameter and buffer
          replaced by its absolute value, in evaluation mode, in float64, on
          one all-ones input; ``X``, ``y`` and ``criterion`` are not read.
    X, y : array-like or Tensor, default=None
        Training inputs and targets (as ``criterion`` expects them), needed
        by SNIP and GraSP; SynFlow reads only the shape of ``X``.
    criterion : callable, default=None
        Loss ``criterion(output, y)`` with mean reduction; None:
        :class:`torch.nn.CrossEntropyLoss`.
    n_batches : int, default=1
        Mini-batches of ``batch_size`` rows, disjoint, from a random
        permutation of the rows (SNIP scores one batch, GraSP's code one
        batch split in two).
    batch_size : int, default=128
        Rows per mini-batch (SNIP's CIFAR-10 batch).
    generator : torch.Generator, default=None
        The permutation's random stream.
    input_shape : tuple of int, default=None
        SynFlow's input shape without the batch dimension, when ``X`` is
        not given.
    train_mode : bool, default=False
        Score SNIP and GraSP in training mode (dropout on, batch norm on batch
        statistics) instead of evaluation mode, the mode Tanaka et al.'s
        ``prune_loop`` scores every method in. SynFlow always scores in
        evaluation mode.
    temperature : float, default=200.0
        GraSP's logit temperature ``T`` (Wang et al.'s code).

    Returns
    -------
    scores : dict of str -> Tensor
        One score per weight, on the module's device; float64 for SynFlow
        (the all-ones input's flow overflows float32 in deep networks), the
        weight's dtype otherwise. Pruned weights score 0.
    """
    spec = _method(method)
    names = _scored_names(module, masks)
    work = copy.deepcopy(module)
    if not spec.needs_data:  # SynFlow
        work = work.double()
    work.train(bool(train_mode) and spec.needs_data)
    for p in work.parameters():
        p.requires_grad_(False)
    params = dict(work.named_parameters())
    with torch.no_grad():
        for n in names:
            params[n].requires_grad_(True)
            if masks is not None:
                keep = _as_tensor(masks[n], params[n].device)
                if keep.dtype != torch.bool or keep.shape != params[n].shape:
                    raise ValueError(f"masks[{n!r}] must be a bool tensor of shape "
                                     f"{tuple(params[n].shape)}.")
                params[n].masked_fill_(~keep, 0.0)
    device, dtype = params[names[0]].device, params[names[0]].dtype
    options = {"temperature": temperature}
    batches = []
    if spec.needs_data:
        if X is None or y is None:
            raise ValueError(f"method={method!r} scores with training data: pass X and y.")
        batches = _batches(X, y, n_batches, batch_size, generator, device, dtype)
        if criterion is None:
            criterion = torch.nn.CrossEntropyLoss()
    else:
        if X is not None:
            input_shape = tuple(X.shape[1:])
        if input_shape is None:
            raise ValueError("method='synflow' needs the input shape: pass X or input_shape.")
        options["input_shape"] = tuple(int(s) for s in input_shape)
    with torch.enable_grad():
        scores = spec.score(work, names, batches, criterion, **options)
    for n, s in scores.items():
        if torch.isnan(s).any():
            raise ValueError(f"method={method!r} scored NaN for {n!r} (a non-finite loss "
                             "or weights?).")
    return scores


def _select(scores, keep, masks, n_keep):
    """Masks keeping ``n_keep`` weights: the best scores among those still kept."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().flatten().double().cpu() for n in names])
    value = flat if keep == "highest" else -flat
    alive = torch.cat([masks[n].flatten().cpu() for n in names])
    value = torch.where(alive, value, torch.full_like(value, -math.inf))
    # remove the n_remove lowest values, ties at the threshold by lower index first (the
    # set a stable ascending sort would give) with a selection, not a sort: SynFlow
    # selects 100 times per mask, and sorting millions of scores dominated its time
    n_remove = len(flat) - n_keep
    kept = torch.ones_like(alive)
    if n_remove > 0:
        threshold = torch.kthvalue(value, n_remove).values
        below = value < threshold
        kept[below] = False
        at = torch.nonzero(value == threshold).flatten()  # ascending indices
        kept[at[: n_remove - int(below.sum())]] = False
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = kept[start:start + size].reshape(scores[n].shape)
        start += size
    return out


def _check_collapse(masks, method, sparsity):
    empty = [n for n, m in masks.items() if not bool(m.any())]
    if empty:
        raise LayerCollapseError(
            f"Layer collapse: method={method!r} at sparsity={sparsity} prunes every weight "
            f"of {empty}, which disconnects the network. Use a lower sparsity, or "
            "'synflow', whose iterative conservation avoids collapse (Tanaka et al. 2020).")


def pai_module_masks(module, method, sparsity, X=None, y=None, criterion=None, masks=None,
                     rounds=None, n_batches=1, batch_size=128, generator=None, *,
                     on_collapse="raise", **options):
    """Prune a module at initialization to ``sparsity``: the masks of a criterion.

    Parameters
    ----------
    module : torch.nn.Module
        The network at initialization (not changed).
    method : {'snip', 'grasp', 'synflow'}
        The criterion (:data:`PAI_METHODS`, :func:`pai_scores`).
    sparsity : float in [0, 1), or sequence of them
        Fraction of the scored weights removed: ``floor(sparsity * N + 0.5)``
        of their number ``N``, chosen globally across layers. A sequence gives
        one set of masks per sparsity, each the masks a lone call with the
        same ``generator`` state gives (with ``generator=None`` an iterative
        method's batches come from torch's global stream, different for each
        target); a one-shot method (``rounds=1``) scores the network once for
        all of them.
    X, y, criterion, n_batches, batch_size, generator
        As in :func:`pai_scores` (the batches are drawn afresh every round).
    masks : dict of str -> bool Tensor, default=None
        Start masks: their ``False`` weights stay pruned, their keys are the
        weights scored. None: every prunable weight, unpruned.
    rounds : int, default=None
        Scoring rounds: round ``k`` of ``n`` keeps a fraction
        ``(1 - sparsity) ** (k / n)`` of the ``N`` weights (Tanaka et al.'s
        exponential schedule), re-scoring the masked network every round.
        None: the method's default, 1 for SNIP and GraSP (one shot, as
        published) and 100 for SynFlow.
    on_collapse : {'raise', 'return'}, default='raise'
        At a sparsity whose masks would prune every weight of a layer:
        raise :class:`~sklottery.exceptions.LayerCollapseError`, or return
        that error in place of the masks (so the other sparsities of a
        sequence are kept).
    **options
        ``input_shape``, ``train_mode``, ``temperature`` of :func:`pai_scores`.

    Returns
    -------
    masks : dict of str -> bool Tensor, or list of them
        ``True`` = kept, on the CPU; a list for a sequence of sparsities.

    Raises
    ------
    LayerCollapseError
        Layer collapse (a ``ValueError``): if the masks would prune every
        weight of a layer (``on_collapse='raise'``).
    """
    spec = _method(method)
    if on_collapse not in ("raise", "return"):
        raise ValueError(f"on_collapse must be 'raise' or 'return', got {on_collapse!r}.")
    targets, single = _check_targets(sparsity)
    names = _scored_names(module, masks)
    params = dict(module.named_parameters())
    start = {n: (torch.ones(params[n].shape, dtype=torch.bool) if masks is None
                 else _as_tensor(masks[n], "cpu")) for n in names}
    n_total = sum(m.numel() for m in start.values())
    n_rounds = spec.rounds if rounds is None else int(rounds)
    if n_rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds!r}.")
    state = None if generator is None else generator.get_state()
    one_shot = None  # the scores of the start masks, shared by every target
    out = []
    for s in targets:
        if state is not None:
            generator.set_state(state)  # every target draws the batches a lone call would
        n_final = n_total - math.floor(s * n_total + 0.5)
        current, density = start, 1.0 - s
        for k in range(1, n_rounds + 1):
            if k == n_rounds:
                n_keep = n_final
            else:
                n_keep = n_total - math.floor((1.0 - density ** (k / n_rounds)) * n_total + 0.5)
            n_keep = min(n_keep, sum(int(m.sum()) for m in current.values()))
            if n_rounds == 1 and one_shot is not None:
                scores = one_shot
            else:
                scores = pai_scores(module, current, method, X, y, criterion, n_batches,
                                    batch_size, generator, **options)
                if n_rounds == 1:
                    one_shot = scores
            current = _select(scores, spec.keep, current, n_keep)
        try:
            _check_collapse(current, method, s)
        except LayerCollapseError as exc:
            if on_collapse == "raise":
                raise
            current = exc
        out.append(current)
    return out[0] if single else out


def pai_masks(estimator, X, y, method, sparsity, random_state=None, *, rounds=None,
              n_batches=1, batch_size=None, on_collapse="raise", **options):
    """Masks of a pruning-at-initialization criterion on an estimator's own θ0.

    The estimator (a clone of it: ``estimator`` is not changed) is driven
    through its ``fit`` up to the first training request: the network then
    holds exactly the initialization ``init_params_`` that ``fit`` with the
    same ``random_state`` starts from, and the data are its training split
    (the validation rows left out) with the encoded targets and the fit's
    loss. The masks score that network; the fit is then abandoned. Train the
    pruned network with::

        masks = pai_masks(est, X, y, 'snip', sparsity=0.9)
        est.set_params(n_rounds=0).fit(X, y, initial_masks=masks)

    Parameters
    ----------
    estimator : LotteryTicketClassifier or LotteryTicketRegressor
        Give it an integer ``random_state``: with None every fit draws a
        new θ0, and the masks fit a network the later ``fit`` does not train
        (a warning says so).
    X, y : array-like
        Training data, as for ``estimator.fit``.
    method : {'snip', 'grasp', 'synflow'}
        The criterion (:data:`PAI_METHODS`).
    sparsity : float in [0, 1), or sequence of them
        Fraction of the estimator's prunable weights removed, globally; a
        sequence gives a list of masks, one per sparsity, from one pass
        through ``fit``'s set-up (and one scoring for SNIP and GraSP).
    random_state : int, RandomState instance or None, default=None
        The mini-batches' random stream (SNIP and GraSP).
    rounds : int, default=None
        Scoring rounds (:func:`pai_module_masks`); None: the method's default.
    n_batches : int, default=1
        Mini-batches scored (:func:`pai_scores`).
    batch_size : int, default=None
        Rows per mini-batch; None: the estimator's ``batch_size``.
    on_collapse : {'raise', 'return'}, default='raise'
        As in :func:`pai_module_masks`.
    **options
        ``train_mode``, ``temperature`` of :func:`pai_scores`.

    Returns
    -------
    masks : dict of str -> bool Tensor, or list of them
        One per prunable weight of the estimator (the keys
        ``initial_masks`` takes), ``True`` = kept, on the CPU; a list for a
        sequence of sparsities.

    Raises
    ------
    LayerCollapseError
        Layer collapse (a ``ValueError``): if the masks would prune every
        weight of a layer (``on_collapse='raise'``).
    """
    from .base import BaseLotteryTicket  # the engine imports this module

    if not isinstance(estimator, BaseLotteryTicket):
        raise TypeError("pai_masks takes a LotteryTicketClassifier or LotteryTicketRegressor, "
                        f"got {type(estimator).__name__}.")
    _method(method)
    _check_targets(sparsity)  # before fit's set-up
    if estimator.random_state is None:
        warnings.warn("estimator.random_state is None: its next fit draws another θ0 than "
                      "the one these masks were computed on; set an integer random_state.",
                      UserWarning, stacklevel=2)
    est = clone(estimator).set_params(verbose=0)
    if est.pruning_criterion in PAI_METHODS:
        # its own fit would prune θ0 before the first request; θ0 itself is the same
        est.set_params(pruning_criterion="magnitude")
    seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    driver = FitDriver(est.fit_steps(X, y)).advance()
    try:
        if driver.error is not None:
            raise driver.error
        request = driver.request
        with torch_threads(est.n_threads):
            masks = pai_module_masks(
                request.module, method, sparsity, X=request.data.X, y=request.data.y,
                criterion=request.criterion, masks=request.masks, rounds=rounds,
                n_batches=n_batches,
                batch_size=est.batch_size if batch_size is None else batch_size,
                generator=generator, on_collapse=on_collapse, **options)
    finally:
        driver.steps.close()
    return masks
