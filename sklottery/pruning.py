"""Pure pruning functions: masks, scores, per-layer rates, sparsity accounting.

Nothing here knows about skorch or scikit-learn. Every function takes and
returns plain dictionaries ``{parameter_name: tensor}`` so that the functions
are easy to test and the masks are easy to pickle.

Conventions
-----------
* A mask is a ``torch.bool`` tensor with the shape of its weight; ``True``
  means *kept*. Masks are applied by index (``weight * mask``), never by a
  value threshold.
* ``rate`` is the fraction of the *remaining* (still unpruned) weights of a
  layer that a round removes.
* Rounding rule: a round removes ``floor(rate * n_remaining + 0.5)`` weights
  (round half up), and never the last weight of a layer. With 20 % for the
  hidden layers and 10 % for the output layer of LeNet-300-100 this gives
  Frankle & Carbin's schedule 100, 80.04, 64.06, 51.28, ..., 1.85 % after 18
  rounds.
* Ties in the scores are broken deterministically: among equal scores the
  weight with the lower flat index (layers in dictionary order for global
  pruning) is pruned first.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch

from .modules import excluded_weight_names

__all__ = [
    "PRUNING_CRITERIA",
    "n_to_prune",
    "compute_scores",
    "prune_masks",
    "count_remaining",
    "fraction_remaining",
    "remaining_schedule",
    "rounds_for_sparsity",
    "one_shot_rates",
    "apply_masks_",
    "unit_chain",
    "alive_units",
    "prune_units",
    "compact_module",
    "structured_hidden_sizes",
    "zero_dead_biases_",
]

PRUNING_CRITERIA = ("magnitude", "large_final", "magnitude_increase", "random")


def n_to_prune(n_remaining: int, rate: float) -> int:
    """Number of weights a round removes from ``n_remaining`` at ``rate``.

    Round half up, and keep at least one weight when any remain.
    """
    if n_remaining <= 0 or rate <= 0:
        return 0
    k = int(math.floor(rate * n_remaining + 0.5))
    return min(k, n_remaining - 1)


def compute_scores(criterion, final, init=None, generator=None):
    """Importance score per weight; the lowest scores are pruned first.

    Parameters
    ----------
    criterion : {'magnitude', 'large_final', 'magnitude_increase', 'random'}
        ``'magnitude'`` and ``'large_final'`` (Zhou et al.'s name for the same
        rule) score ``|w_final|``; ``'magnitude_increase'`` scores
        ``|w_final| - |w_init|``; ``'random'`` draws i.i.d. uniform scores from
        ``generator`` (random pruning control).
    final : dict of str -> Tensor
        Trained weights of the prunable layers.
    init : dict of str -> Tensor, optional
        Initial weights, required for ``'magnitude_increase'``.
    generator : torch.Generator, optional
        Source of randomness for ``'random'``.

    Returns
    -------
    scores : dict of str -> Tensor (float32, on the CPU)

    See Also
    --------
    prune_masks : Prunes the lowest scores.
    prune_units : Scores and prunes whole units instead.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    .. [2] Zhou, H., Lan, J., Liu, R. and Yosinski, J. (2019). Deconstructing
       Lottery Tickets: Zeros, Signs, and the Supermask. NeurIPS.
       arXiv:1905.01067.
    """
    scores = {}
    for name, w in final.items():
        w = w.detach().to("cpu", torch.float32)
        if criterion in ("magnitude", "large_final"):
            s = w.abs()
        elif criterion == "magnitude_increase":
            if init is None:
                raise ValueError("criterion 'magnitude_increase' needs the initial weights.")
            s = w.abs() - init[name].detach().to("cpu", torch.float32).abs()
        elif criterion == "random":
            s = torch.rand(w.shape, generator=generator)
        else:
            raise ValueError(
                f"Unknown pruning criterion {criterion!r}; expected one of {PRUNING_CRITERIA}."
            )
        scores[name] = s
    return scores


def _prune_lowest(scores: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Return a copy of flat ``mask`` with the ``k`` lowest-scored kept entries removed."""
    new = mask.clone()
    if k <= 0:
        return new
    kept = torch.nonzero(mask, as_tuple=False).flatten()
    # stable sort: equal scores keep index order, so the lower index goes first
    order = torch.sort(scores[kept], stable=True).indices
    new[kept[order[:k]]] = False
    return new


def prune_masks(
    scores: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    rates: Mapping[str, float],
    scope: str = "layer",
    global_layers=None,
) -> dict:
    """Prune the lowest-scored surviving weights; return new masks.

    Parameters
    ----------
    scores : dict of str -> Tensor
        Importance of every weight (see :func:`compute_scores`).
    masks : dict of str -> bool Tensor
        Current masks (``True`` = kept). Not modified.
    rates : dict of str -> float
        Fraction of each layer's remaining weights to remove.
    scope : {'layer', 'global'}, default='layer'
        ``'layer'`` prunes every layer by its own rate. ``'global'`` pools the
        layers in ``global_layers`` and removes ``rate`` of their remaining
        weights under one threshold (the rate of the first pooled layer is
        used; all pooled layers must share it); the other layers are pruned
        layer-wise at their own rate.
    global_layers : list of str, optional
        Layers pooled in global scope; default: all layers.

    Returns
    -------
    new_masks : dict of str -> bool Tensor
        Pruned weights never come back: ``new_masks[n] <= masks[n]``.

    See Also
    --------
    compute_scores : The scores it prunes by.
    remaining_schedule : The fraction of weights left after each round.
    prune_units : Structured pruning of whole units.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    """
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}.")
    names = list(masks)
    new = {}
    pooled = []
    if scope == "global":
        pooled = [n for n in (names if global_layers is None else global_layers) if n in masks]
        pooled_rates = {float(rates[n]) for n in pooled}
        if len(pooled_rates) > 1:
            raise ValueError(f"Globally pooled layers need one rate, got {sorted(pooled_rates)}.")
    for name in names:
        if name in pooled:
            continue
        m = masks[name].flatten()
        k = n_to_prune(int(m.sum()), float(rates[name]))
        new[name] = _prune_lowest(scores[name].flatten(), m, k).view_as(masks[name])
    if pooled:
        flat_scores = torch.cat([scores[n].flatten().to(torch.float32) for n in pooled])
        flat_masks = torch.cat([masks[n].flatten() for n in pooled])
        k = n_to_prune(int(flat_masks.sum()), float(rates[pooled[0]]))
        flat_new = _prune_lowest(flat_scores, flat_masks, k)
        start = 0
        for n in pooled:
            size = masks[n].numel()
            new[n] = flat_new[start:start + size].view_as(masks[n]).clone()
            start += size
    return {n: new[n] for n in names}


def count_remaining(masks: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    """Return ``(n_kept, n_total)`` over all masks."""
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return kept, total


def fraction_remaining(masks: Mapping[str, torch.Tensor]) -> dict:
    """Fraction of weights kept per layer, plus ``'total'``."""
    out = {n: float(m.sum()) / m.numel() for n, m in masks.items()}
    kept, total = count_remaining(masks)
    out["total"] = kept / total if total else 1.0
    return out


def _pruning_units(layer_sizes, rates, pooled=None):
    """Weight counts and rates per pruning unit: each layer, or the pooled layers as one.

    Returns ``(sizes, unit_rates, pooled)``; the pooled layers (global scope)
    are one unit under the key ``_POOLED``.
    """
    pooled = [n for n in (pooled or ()) if n in layer_sizes]
    sizes = {n: int(s) for n, s in layer_sizes.items() if n not in pooled}
    unit_rates = {n: float(rates[n]) for n in sizes}
    if pooled:
        sizes[_POOLED] = sum(int(layer_sizes[n]) for n in pooled)
        unit_rates[_POOLED] = float(rates[pooled[0]])
    return sizes, unit_rates, pooled


def _prune_step(remaining, unit_rates):
    """Counts left after one round (the rounding rule of :func:`n_to_prune`)."""
    return {n: r - n_to_prune(r, unit_rates[n]) for n, r in remaining.items()}


_POOLED = "__pooled__"


def remaining_schedule(layer_sizes: Mapping[str, int], rates: Mapping[str, float],
                       n_rounds: int, pooled=None) -> list:
    """Total fraction of weights remaining after each of ``n_rounds`` rounds.

    Uses the same rounding rule as :func:`prune_masks`; ``pooled`` names the
    layers ranked together in global scope. Element 0 is 1.0 (dense).

    See Also
    --------
    rounds_for_sparsity : The rounds needed for a target sparsity.
    one_shot_rates : The same level in one prune.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    """
    remaining, unit_rates, _ = _pruning_units(layer_sizes, rates, pooled)
    total = sum(remaining.values())
    out = [1.0]
    for _ in range(int(n_rounds)):
        remaining = _prune_step(remaining, unit_rates)
        out.append(sum(remaining.values()) / total)
    return out


def rounds_for_sparsity(layer_sizes, rates, target_sparsity, max_rounds=1000,
                        pooled=None) -> int:
    """Fewest rounds after which at most ``1 - target_sparsity`` of the weights remain.

    See Also
    --------
    remaining_schedule : The schedule itself.
    """
    if not 0 <= target_sparsity < 1:
        raise ValueError(f"target_sparsity must be in [0, 1), got {target_sparsity!r}.")
    remaining, unit_rates, _ = _pruning_units(layer_sizes, rates, pooled)
    goal = (1.0 - target_sparsity) * sum(remaining.values())
    for r in range(max_rounds + 1):
        if sum(remaining.values()) <= goal + 1e-9:
            return r
        new = _prune_step(remaining, unit_rates)
        if new == remaining:
            break
        remaining = new
    raise ValueError(
        f"target_sparsity={target_sparsity} cannot be reached with these pruning rates "
        "(every layer keeps at least one weight)."
    )


def one_shot_rates(layer_sizes, rates, n_rounds, pooled=None) -> dict:
    """Per-layer rates that reach the level of ``n_rounds`` iterative rounds in one prune.

    Each layer (or the pooled group, in global scope) keeps exactly as many
    weights as ``n_rounds`` rounds at ``rates`` would leave it.

    See Also
    --------
    remaining_schedule : The iterative schedule.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    """
    sizes, unit_rates, pooled = _pruning_units(layer_sizes, rates, pooled)
    remaining = dict(sizes)
    for _ in range(int(n_rounds)):
        remaining = _prune_step(remaining, unit_rates)
    out = {n: 1 - remaining[n] / sizes[n] for n in sizes if n != _POOLED}
    for n in pooled:
        out[n] = 1 - remaining[_POOLED] / sizes[_POOLED]
    return {n: out[n] for n in layer_sizes}


@torch.no_grad()
def apply_masks_(params: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the pruned entries of ``params`` in place (by index)."""
    for name, mask in masks.items():
        params[name].mul_(mask)


# --------------------------------------------------------------------------
# structured pruning: whole units (Linear) and filters (Conv2d)
# --------------------------------------------------------------------------
#: Layers with per-channel parameters or statistics: a module holding one is
#: not a chain :func:`unit_chain` and :func:`compact_module` can shrink.
_NORM_LAYERS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d,
                torch.nn.SyncBatchNorm, torch.nn.InstanceNorm1d, torch.nn.InstanceNorm2d,
                torch.nn.InstanceNorm3d, torch.nn.GroupNorm, torch.nn.LayerNorm)


def unit_chain(module):
    """The prunable layers of ``module`` as a chain of units, for structured pruning.

    Each entry describes one prunable layer (``nn.Linear`` or ``nn.Conv2d``,
    in ``named_parameters`` order): ``name`` (its weight), ``layer`` (the
    module), ``n_units`` (output units or filters), ``next`` (the next
    layer's weight name, None for the output layer) and ``block`` (how many
    input columns of the next layer one unit feeds: 1, or ``H * W`` when a
    convolution's feature map is flattened into a Linear layer). Structured
    pruning removes a unit's incoming row (or filter), its bias, and its
    outgoing column(s) in the next layer.

    Raises
    ------
    ValueError
        When consecutive prunable layers do not form a chain (the next layer's
        inputs are not the previous layer's outputs), e.g. branching modules;
        when the module has normalisation layers (their per-channel
        parameters and statistics would have to lose the removed units too,
        e.g. the batch norm of ``ResNet20`` and ``VGG16``); or when it
        excludes a Linear/Conv2d weight from pruning (``prunable_exclude``).
    """
    from torch import nn

    norms = [n for n, m in module.named_modules() if isinstance(m, _NORM_LAYERS)]
    if norms:
        raise ValueError(
            f"Structured pruning and compaction need a plain chain of Linear/Conv2d layers; "
            f"{type(module).__name__} has normalisation layers ({', '.join(norms[:3])}"
            f"{', ...' if len(norms) > 3 else ''}), which they do not shrink. Use "
            "pruning_granularity='weight'; the masked network (export(format='masked')) "
            "is the pruned one.")
    excluded = sorted(excluded_weight_names(module))
    if excluded:
        raise ValueError(
            f"Structured pruning and compaction need every Linear/Conv2d layer prunable; "
            f"{type(module).__name__} excludes {excluded} (prunable_exclude).")
    pairs = [(n, m) for n, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    chain = []
    for i, (prefix, layer) in enumerate(pairs):
        n_units = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
        entry = {"name": f"{prefix}.weight" if prefix else "weight", "layer": layer,
                 "n_units": int(n_units), "next": None, "block": 1}
        if i + 1 < len(pairs):
            nxt_prefix, nxt = pairs[i + 1]
            n_in = nxt.in_features if isinstance(nxt, nn.Linear) else nxt.in_channels
            if isinstance(nxt, nn.Linear) and isinstance(layer, nn.Conv2d):
                if n_in % n_units:
                    raise ValueError(
                        f"Structured pruning needs a chain of layers: {nxt_prefix} has "
                        f"{n_in} inputs, not a multiple of the {n_units} filters of {prefix}.")
                entry["block"] = n_in // n_units
            elif n_in != n_units:
                raise ValueError(
                    f"Structured pruning needs a chain of layers: {nxt_prefix} has {n_in} "
                    f"inputs but {prefix} has {n_units} outputs.")
            entry["next"] = f"{nxt_prefix}.weight"
        chain.append(entry)
    return chain


def _unit_view(mask, entry):
    """The mask of the units' incoming weights: one row per unit."""
    return mask.reshape(entry["n_units"], -1)


def _read_units(next_mask, entry):
    """Units of ``entry``'s layer that the next layer still reads (a kept weight)."""
    cols = next_mask.transpose(0, 1).reshape(next_mask.shape[1], -1)  # input-major
    if entry["block"] > 1:
        cols = cols.reshape(entry["n_units"], -1)
    return torch.nonzero(cols.any(dim=1)).flatten()


def _outgoing(mask, entry, unit):
    """Index of the next layer's inputs fed by ``unit``."""
    block = entry["block"]
    cols = slice(unit * block, (unit + 1) * block)
    return (slice(None), cols) if mask.dim() == 2 else (slice(None), cols, ...)


def alive_units(masks, chain):
    """Indices of the units of every hidden layer that still have an incoming weight."""
    out = {}
    for entry in chain[:-1]:
        rows = _unit_view(masks[entry["name"]], entry)
        out[entry["name"]] = torch.nonzero(rows.any(dim=1)).flatten()
    return out


def structured_hidden_sizes(masks):
    """Hidden widths of the MLP a structured mask defines (its alive units per layer).

    ``masks`` are an MLP's weight masks in layer order (the estimator's
    ``masks_``); every layer but the last is hidden.
    """
    names = list(masks)
    return tuple(int(masks[n].reshape(masks[n].shape[0], -1).any(dim=1).sum())
                 for n in names[:-1])


def prune_units(weights, masks, chain, rates, norm="l1", generator=None):
    """Structured masks after one round: remove whole units of every hidden layer.

    Each hidden layer (every layer of the chain but the output layer) loses
    ``n_to_prune(alive, rate)`` of its alive units (round half up, never its
    last unit): those with the smallest norm of their kept incoming weights
    (Li et al. 2017's L1 rule, or L2), or random ones with ``norm='random'``.
    A removed unit loses its incoming row (a filter, for a convolution) and
    its outgoing column(s) in the next layer; the output layer's own units
    (the classes or targets) are never removed. Ties go to the lower index.

    Parameters
    ----------
    weights : dict of str -> Tensor
        Trained weights of the prunable layers.
    masks : dict of str -> bool Tensor
        Current masks (pruned units stay pruned).
    chain : list of dict
        From :func:`unit_chain`.
    rates : dict of str -> float
        Fraction of the alive units each hidden layer loses.
    norm : {'l1', 'l2', 'random'}, default='l1'
    generator : torch.Generator, optional
        For ``norm='random'``.

    Returns
    -------
    new_masks : dict of str -> bool Tensor

    See Also
    --------
    unit_chain : The layers whose units are pruned together.
    compact_module : The smaller network without the removed units.
    prune_masks : Unstructured pruning of single weights.

    References
    ----------
    .. [1] Li, H., Kadav, A., Durdanovic, I., Samet, H. and Graf, H. P. (2017).
       Pruning Filters for Efficient ConvNets. ICLR. arXiv:1608.08710.
    .. [2] Liu, Z., Sun, M., Zhou, T., Huang, G. and Darrell, T. (2019).
       Rethinking the Value of Network Pruning. ICLR. arXiv:1810.05270.
    """
    if norm not in ("l1", "l2", "random"):
        raise ValueError(f"norm must be 'l1', 'l2' or 'random', got {norm!r}.")
    new = {n: m.clone() for n, m in masks.items()}
    for entry in chain[:-1]:
        name = entry["name"]
        rows = _unit_view(new[name], entry)
        alive = torch.nonzero(rows.any(dim=1)).flatten()
        k = n_to_prune(len(alive), float(rates[name]))
        if k == 0:
            continue
        if norm == "random":
            scores = torch.rand(len(alive), generator=generator)
        else:
            w = (weights[name].detach().float().cpu() * new[name].float()).reshape(
                entry["n_units"], -1)[alive]
            scores = w.abs().sum(1) if norm == "l1" else w.pow(2).sum(1).sqrt()
        order = torch.sort(scores, stable=True).indices[:k]
        for unit in alive[order].tolist():
            rows[unit] = False
            new[entry["next"]][_outgoing(new[entry["next"]], entry, unit)] = False
    return new


@torch.no_grad()
def zero_dead_biases_(state, masks, chain):
    """Zero, in place in ``state``, the bias of every unit structured pruning removed.

    A unit is removed when its incoming weights are all pruned (see
    :func:`prune_units`); ``state`` is a module state dict.
    """
    for entry in chain[:-1]:
        bias = entry["name"][:-len("weight")] + "bias"
        if bias not in state:
            continue
        dead = ~_unit_view(masks[entry["name"]], entry).any(dim=1)
        state[bias][dead.to(state[bias].device)] = 0.0


def compact_module(module, masks, chain=None):
    """A smaller copy of ``module`` without its dead units: same predictions.

    Every hidden unit (or filter) whose *outgoing* weights are all pruned is
    removed, with its incoming row and bias: nothing downstream reads it, so
    the function is unchanged whatever its activation. (With structured
    pruning a removed unit loses both; a unit that only lost its incoming
    weights still emits the constant ``act(bias)`` and is kept.) The remaining
    weights keep their values (pruned entries inside kept units stay zero).
    The module's class and forward are kept (the layers are replaced in a deep
    copy), so a chain-shaped module (see :func:`unit_chain`) computes the same
    function as the masked one with fewer weights.

    Parameters
    ----------
    module : torch.nn.Module
        The trained network (its pruned weights are zero).
    masks : dict of str -> bool Tensor
    chain : list of dict, optional
        :func:`unit_chain` of ``module``.

    Returns
    -------
    compact : torch.nn.Module
        On the device of ``module``'s weights and in their dtype. The new
        layers are not randomly initialised: the global RNG is untouched.

    See Also
    --------
    prune_units : Structured pruning, whose removed units this drops.
    sklottery.LotteryTicketClassifier.get_compact_module : The same for a fitted
        estimator.

    References
    ----------
    .. [1] Liu, Z., Sun, M., Zhou, T., Huang, G. and Darrell, T. (2019).
       Rethinking the Value of Network Pruning. ICLR. arXiv:1810.05270.
    """
    import copy

    from torch import nn
    from torch.nn.utils import skip_init

    chain = unit_chain(module) if chain is None else chain
    small = copy.deepcopy(module)
    layers = dict(small.named_modules())
    keep_in = None  # input indices of the current layer that survive
    for i, entry in enumerate(chain):
        prefix = entry["name"][:-len(".weight")]
        old = layers[prefix]
        device = old.weight.device  # every new tensor and layer goes there
        weight = old.weight.detach() * masks[entry["name"]].to(device, old.weight.dtype)
        bias = None if old.bias is None else old.bias.detach()
        if i < len(chain) - 1:
            keep_out = _read_units(masks[entry["next"]], entry).to(device)
        else:
            keep_out = torch.arange(entry["n_units"], device=device)
        weight = weight[keep_out]
        bias = None if bias is None else bias[keep_out]
        if keep_in is not None:
            weight = weight[:, keep_in]
        # skip_init: no throwaway random initialisation (nor a draw from the RNG)
        factory = {"bias": bias is not None, "device": device, "dtype": weight.dtype}
        if isinstance(old, nn.Linear):
            new = skip_init(nn.Linear, weight.shape[1], weight.shape[0], **factory)
        else:
            new = skip_init(nn.Conv2d, weight.shape[1], weight.shape[0], old.kernel_size,
                            stride=old.stride, padding=old.padding, dilation=old.dilation,
                            **factory)
        with torch.no_grad():
            new.weight.copy_(weight)
            if bias is not None:
                new.bias.copy_(bias)
        parent_name, _, attr = prefix.rpartition(".")
        setattr(layers[parent_name] if parent_name else small, attr, new)
        block = entry["block"]
        keep_in = (keep_out if block == 1 else
                   (keep_out[:, None] * block
                    + torch.arange(block, device=device)[None, :]).flatten())
    return small
