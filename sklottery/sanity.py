"""Sanity checks of a pruning mask: layer-wise shuffling and inversion.

Frankle et al. (2021) test a pruning method by perturbing the mask it found:
if the sparse network trains as well after the mask is **shuffled within
each layer** (the same number of weights kept in every layer, at random
positions) or after the kept weights are **re-initialised**, the method has
found good per-layer densities, not a particular set of weights. The
**inversion** keeps, at the same per-layer density, the weights the method
would have pruned; a method whose scores carry information should do worse
with it.

These pure functions build the perturbed masks; :func:`sklottery.analysis.ticket_curve`
trains them as the mask controls ``'shuffle_layer'`` and ``'invert'`` (the
re-initialisation is its ``'random'`` control), and
:func:`sklottery.stats.mask_information` judges the ticket against them.

Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2021). Pruning
Neural Networks at Initialization: Why Are We Missing the Mark? ICLR.
arXiv:2009.08576.
"""

from __future__ import annotations

import math

import torch

from .pruning import compute_scores

__all__ = ["shuffle_within_layers", "invert_masks", "imp_scores"]


def _as_bool(mask):
    mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool:
        raise ValueError(f"masks must be boolean, got {mask.dtype}.")
    return mask.detach().cpu()


def shuffle_within_layers(masks, generator=None):
    """Permute every layer's mask uniformly at random.

    Each layer keeps exactly as many weights as before, at positions drawn
    uniformly at random among all of the layer's positions (a uniform random
    permutation of the flattened mask): only the per-layer densities of the
    mask survive.

    Parameters
    ----------
    masks : dict of str -> bool Tensor
        ``True`` = kept. Not modified.
    generator : torch.Generator, default=None
        Source of the permutations (one ``torch.randperm`` per layer, in the
        order of ``masks``); seed it for reproducible masks. None uses torch's
        global generator.

    Returns
    -------
    shuffled : dict of str -> bool Tensor
        On the CPU, the shapes of ``masks``, with ``shuffled[n].sum() ==
        masks[n].sum()`` for every layer.

    See Also
    --------
    invert_masks : The other mask perturbation of Frankle et al. (2021).

    References
    ----------
    .. [1] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2021).
       Pruning Neural Networks at Initialization: Why Are We Missing the
       Mark? ICLR. arXiv:2009.08576.

    Examples
    --------
    >>> import torch
    >>> from sklottery.sanity import shuffle_within_layers
    >>> masks = {"fc": torch.tensor([[True, True, False, False]])}
    >>> out = shuffle_within_layers(masks, torch.Generator().manual_seed(0))
    >>> int(out["fc"].sum())
    2
    """
    out = {}
    for name, mask in masks.items():
        flat = _as_bool(mask).flatten()
        perm = torch.randperm(flat.numel(), generator=generator)
        out[name] = flat[perm].view_as(_as_bool(mask)).clone()
    return out


def invert_masks(masks, scores, candidates=None):
    """Keep the lowest-scored weights, at the masks' per-layer counts.

    For every layer, the new mask keeps as many weights as ``masks`` does,
    namely those with the lowest ``scores`` among the ``candidates``: the
    weights a method that keeps the highest scores would prune first (the
    inversion of Frankle et al., 2021). Ties keep the lower flat index.

    Parameters
    ----------
    masks : dict of str -> bool Tensor
        The masks to invert; only their per-layer counts of kept weights are
        used.
    scores : dict of str -> Tensor
        The method's score of every weight (higher = kept first), shaped like
        the masks.
    candidates : dict of str -> bool Tensor, default=None
        The weights each layer may keep (e.g. the mask the method pruned
        from); None: all of the layer's weights.

    Returns
    -------
    inverted : dict of str -> bool Tensor
        On the CPU; ``inverted[n].sum() == masks[n].sum()`` and
        ``inverted[n] <= candidates[n]``.

    Raises
    ------
    ValueError
        When a layer has fewer candidates than weights to keep, or the shapes
        differ.

    See Also
    --------
    imp_scores : The scores of iterative magnitude pruning over its rounds.
    shuffle_within_layers : The other mask perturbation.

    References
    ----------
    .. [1] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2021).
       Pruning Neural Networks at Initialization: Why Are We Missing the
       Mark? ICLR. arXiv:2009.08576.

    Examples
    --------
    >>> import torch
    >>> from sklottery.sanity import invert_masks
    >>> masks = {"fc": torch.tensor([True, True, False, False])}
    >>> scores = {"fc": torch.tensor([4.0, 3.0, 2.0, 1.0])}
    >>> invert_masks(masks, scores)["fc"].tolist()
    [False, False, True, True]
    """
    out = {}
    for name, mask in masks.items():
        mask = _as_bool(mask)
        s = torch.as_tensor(scores[name]).detach().cpu().to(torch.float64)
        if tuple(s.shape) != tuple(mask.shape):
            raise ValueError(f"scores[{name!r}] has shape {tuple(s.shape)}, expected "
                             f"{tuple(mask.shape)}.")
        cand = torch.ones_like(mask) if candidates is None else _as_bool(candidates[name])
        if tuple(cand.shape) != tuple(mask.shape):
            raise ValueError(f"candidates[{name!r}] has shape {tuple(cand.shape)}, expected "
                             f"{tuple(mask.shape)}.")
        k = int(mask.sum())
        idx = torch.nonzero(cand.flatten(), as_tuple=False).flatten()
        if len(idx) < k:
            raise ValueError(f"Layer {name!r} keeps {k} weights but has only {len(idx)} "
                             "candidates.")
        order = torch.sort(s.flatten()[idx], stable=True).indices
        new = torch.zeros(mask.numel(), dtype=torch.bool)
        new[idx[order[:k]]] = True
        out[name] = new.view_as(mask)
    return out


def imp_scores(masks, trained, criterion="magnitude", starts=None):
    """Iterative magnitude pruning's ranking of every weight after its rounds.

    IMP ranks a layer's weights by the rounds they survived, then by the
    score of the last round they were trained in. For rounds ``0..R-1``
    (``R = len(masks)``) a weight's last trained round is ``q``, the last
    round whose mask keeps it, and its score is
    ``q + u(s_q)``: ``s_q`` is the criterion's score on round ``q``'s trained
    weights (``|w_q|`` for ``'magnitude'``) and ``u`` a strictly increasing
    map onto ``(0, 1)``. Weights pruned earlier rank lower; among the
    weights of one round, the order is that of the criterion. The next mask,
    pruned from round ``R-1``'s trained weights, keeps in every layer the
    highest of these scores (for layer-wise and global pruning alike); the
    inversion (:func:`invert_masks`) keeps the lowest.

    Parameters
    ----------
    masks : list of dict of str -> bool Tensor
        The masks of rounds ``0..R-1`` (``history_[j]['masks']``).
    trained : list of dict of str -> Tensor
        The weights trained in those rounds (``history_[j]['final']``).
    criterion : {'magnitude', 'large_final', 'magnitude_increase'}, default='magnitude'
        The pruning criterion (:func:`sklottery.pruning.compute_scores`).
    starts : list of dict of str -> Tensor, default=None
        The rounds' start weights (``history_[j]['start']``), needed for
        ``'magnitude_increase'``.

    Returns
    -------
    scores : dict of str -> Tensor (float64, on the CPU)
        A weight no mask kept scores -1.

    See Also
    --------
    invert_masks : Keeps the lowest of these scores.
    """
    if criterion == "random":
        raise ValueError("imp_scores needs a deterministic criterion; 'random' pruning has no "
                         "scores to invert.")
    if not masks or len(masks) != len(trained):
        raise ValueError("imp_scores needs one trained state per mask, and at least one.")
    if criterion == "magnitude_increase" and (starts is None or len(starts) != len(masks)):
        raise ValueError("criterion 'magnitude_increase' needs the rounds' start weights.")
    out = {n: torch.full(tuple(m.shape), -1.0, dtype=torch.float64)
           for n, m in masks[0].items()}
    for q, (mask, final) in enumerate(zip(masks, trained)):
        final = {n: final[n] for n in mask}
        s = compute_scores(criterion, final, None if starts is None else starts[q])
        for name, m in mask.items():
            m = _as_bool(m)
            u = torch.atan(s[name].to(torch.float64)) / math.pi + 0.5  # increasing onto (0, 1)
            out[name] = torch.where(m, q + u, out[name])
    return out
