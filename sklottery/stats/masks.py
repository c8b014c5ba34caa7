"""Mask statistics: sparsity, overlap, sign preservation and weight movement.

The functions take dictionaries ``{layer_name: array}`` of masks or weights
(numpy arrays, or torch tensors converted to numpy on the way in: this module
does not import torch) and return one row per layer plus a ``'__total__'``
row pooled over all layers. :func:`mask_analysis` applies them to the runs
returned by ``ticket_curve(..., return_runs=True)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "layer_sparsity",
    "mask_jaccard",
    "pairwise_mask_overlap",
    "sign_preservation",
    "weight_movement",
    "mask_analysis",
]

_TOTAL = "__total__"


def _to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x)


def _as_dict(arrays, name):
    if not isinstance(arrays, dict):
        raise TypeError(f"{name} must be a dict {{layer_name: array}}, got {type(arrays)}.")
    return {k: _to_numpy(v) for k, v in arrays.items()}


def _kept(mask):
    return np.asarray(mask) != 0


def _paired(a, b, name_a, name_b, keys=None):
    keys = list(a) if keys is None else keys
    missing = [k for k in keys if k not in b]
    if missing:
        raise ValueError(f"{name_b} lacks layer(s) {missing} present in {name_a}.")
    for k in keys:
        if a[k].shape != b[k].shape:
            raise ValueError(
                f"Layer {k!r}: shape {a[k].shape} in {name_a} but {b[k].shape} in {name_b}."
            )
    return keys


def _weights_and_masks(init_weights, final_weights, masks):
    """``(masks, init, final, layers)`` as numpy dicts, checked to name the same layers."""
    m = _as_dict(masks, "masks")
    w0 = _as_dict(init_weights, "init_weights")
    w1 = _as_dict(final_weights, "final_weights")
    keys = _paired(m, w0, "masks", "init_weights")
    _paired(m, w1, "masks", "final_weights", keys)
    return m, w0, w1, keys


def _frame(rows, columns):
    out = pd.DataFrame(rows, columns=["layer", *columns]).set_index("layer")
    return out


def layer_sparsity(masks):
    """Fraction of weights remaining in each layer and overall.

    Parameters
    ----------
    masks : dict of {str: array-like or torch.Tensor}
        Pruning masks; an entry is kept where it is non-zero.

    Returns
    -------
    sparsity : pandas.DataFrame
        Indexed by ``layer`` (the mask names, then ``'__total__'``), columns
        ``'n_weights', 'n_remaining', 'fraction_remaining'``. The total is
        pooled over all weights.

    See Also
    --------
    sklottery.pruning.fraction_remaining : The same fractions from torch masks.
    mask_analysis : All mask statistics of a ticket curve.
    """
    masks = _as_dict(masks, "masks")
    rows, tot_n, tot_k = [], 0, 0
    for name, m in masks.items():
        n, k = int(m.size), int(np.count_nonzero(_kept(m)))
        rows.append((name, n, k, k / n if n else np.nan))
        tot_n, tot_k = tot_n + n, tot_k + k
    rows.append((_TOTAL, tot_n, tot_k, tot_k / tot_n if tot_n else np.nan))
    return _frame(rows, ["n_weights", "n_remaining", "fraction_remaining"])


def _jaccard(inter, union):
    return inter / union if union else 1.0


def mask_jaccard(masks_a, masks_b):
    """Jaccard similarity of the kept weights of two masks, per layer.

    Parameters
    ----------
    masks_a, masks_b : dict of {str: array-like or torch.Tensor}
        Masks with the same layer names and shapes.

    Returns
    -------
    jaccard : pandas.DataFrame
        Indexed by ``layer`` (names of ``masks_a``, then ``'__total__'``),
        columns ``'n_intersection', 'n_union', 'jaccard'`` with
        ``jaccard = |A and B| / |A or B|``, defined as 1.0 when both kept
        sets are empty. The total pools the counts of every layer.

    See Also
    --------
    pairwise_mask_overlap : Jaccard similarities of several masks.
    mask_analysis : All mask statistics of a ticket curve.

    References
    ----------
    .. [1] Jaccard, P. (1912). The Distribution of the Flora in the Alpine Zone.
       New Phytologist, 11(2), 37-50.
    """
    a, b = _as_dict(masks_a, "masks_a"), _as_dict(masks_b, "masks_b")
    keys = _paired(a, b, "masks_a", "masks_b")
    extra = [k for k in b if k not in a]
    if extra:
        raise ValueError(f"masks_b has layer(s) {extra} absent from masks_a.")
    rows, ti, tu = [], 0, 0
    for k in keys:
        ka, kb = _kept(a[k]), _kept(b[k])
        inter, union = int(np.count_nonzero(ka & kb)), int(np.count_nonzero(ka | kb))
        rows.append((k, inter, union, _jaccard(inter, union)))
        ti, tu = ti + inter, tu + union
    rows.append((_TOTAL, ti, tu, _jaccard(ti, tu)))
    return _frame(rows, ["n_intersection", "n_union", "jaccard"])


def pairwise_mask_overlap(masks, layer="__total__"):
    """Matrix of Jaccard similarities between several masks.

    Parameters
    ----------
    masks : list of dict or dict of {label: dict}
        Masks to compare, e.g. the final masks of several trials. A dict
        gives the row/column labels; a list is labelled ``0 .. n-1``.
    layer : str, default='__total__'
        Layer whose Jaccard similarity is reported (``'__total__'`` pools all
        layers).

    Returns
    -------
    overlap : pandas.DataFrame
        Symmetric ``n x n`` matrix with ones on the diagonal (see
        :func:`mask_jaccard`); ``overlap.to_numpy()`` gives the array.

    See Also
    --------
    mask_jaccard : Two masks, per layer.
    mask_analysis : All mask statistics of a ticket curve.

    References
    ----------
    .. [1] Jaccard, P. (1912). The Distribution of the Flora in the Alpine Zone.
       New Phytologist, 11(2), 37-50.
    """
    if isinstance(masks, dict):
        labels, items = list(masks), list(masks.values())
    else:
        items = list(masks)
        labels = list(range(len(items)))
    n = len(items)
    mat = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            jac = mask_jaccard(items[i], items[j])
            if layer not in jac.index:
                raise ValueError(f"Unknown layer {layer!r}; have {list(jac.index)}.")
            mat[i, j] = mat[j, i] = jac.loc[layer, "jaccard"]
    return pd.DataFrame(mat, index=labels, columns=labels)


def sign_preservation(init_weights, final_weights, masks):
    """Fraction of surviving weights whose sign did not change in training.

    Parameters
    ----------
    init_weights, final_weights : dict of {str: array-like or torch.Tensor}
        Weights before and after training; they must contain every layer of
        ``masks`` (extra entries such as biases are ignored).
    masks : dict of {str: array-like or torch.Tensor}
        Pruning masks; only kept (non-zero) positions are counted.

    Returns
    -------
    signs : pandas.DataFrame
        Indexed by ``layer`` (mask names, then ``'__total__'``), columns
        ``'n_kept', 'n_sign_preserved', 'fraction_preserved'``. Signs are
        compared with :func:`numpy.sign`, so an exact zero only matches a zero.
        The fraction is NaN for a layer with no kept weight.

    See Also
    --------
    weight_movement : How far kept and pruned weights moved.
    mask_analysis : All mask statistics of a ticket curve.

    References
    ----------
    .. [1] Zhou, H., Lan, J., Liu, R. and Yosinski, J. (2019). Deconstructing
       Lottery Tickets: Zeros, Signs, and the Supermask. NeurIPS.
       arXiv:1905.01067.
    """
    m, w0, w1, keys = _weights_and_masks(init_weights, final_weights, masks)
    rows, tk, ts = [], 0, 0
    for k in keys:
        kept = _kept(m[k])
        same = np.sign(w0[k][kept]) == np.sign(w1[k][kept])
        nk, ns = int(kept.sum()), int(same.sum())
        rows.append((k, nk, ns, ns / nk if nk else np.nan))
        tk, ts = tk + nk, ts + ns
    rows.append((_TOTAL, tk, ts, ts / tk if tk else np.nan))
    return _frame(rows, ["n_kept", "n_sign_preserved", "fraction_preserved"])


def weight_movement(init_weights, final_weights, masks):
    """Mean absolute change of kept and of pruned weights, per layer.

    Useful to check the observation (Zhou et al., 2019) that weights kept by
    magnitude pruning are those that moved most.

    Parameters
    ----------
    init_weights, final_weights : dict of {str: array-like or torch.Tensor}
        Weights before and after training; they must contain every layer of
        ``masks``. Note that if ``final_weights`` were read from a masked
        network, pruned entries are zero there and their movement is
        ``|w_init|``.
    masks : dict of {str: array-like or torch.Tensor}
        Masks splitting each layer into kept (non-zero) and pruned entries.

    Returns
    -------
    movement : pandas.DataFrame
        Indexed by ``layer`` (mask names, then ``'__total__'`` pooling all
        weights), columns ``'mean_movement_kept', 'mean_movement_pruned',
        'n_kept', 'n_pruned'``; a mean over an empty set is NaN.

    See Also
    --------
    sign_preservation : Whether the kept weights kept their sign.
    mask_analysis : All mask statistics of a ticket curve.

    References
    ----------
    .. [1] Zhou, H., Lan, J., Liu, R. and Yosinski, J. (2019). Deconstructing
       Lottery Tickets: Zeros, Signs, and the Supermask. NeurIPS.
       arXiv:1905.01067.
    """
    m, w0, w1, keys = _weights_and_masks(init_weights, final_weights, masks)
    rows = []
    sums = np.zeros(2)
    counts = np.zeros(2, dtype=int)
    for k in keys:
        kept = _kept(m[k])
        move = np.abs(w1[k].astype(float) - w0[k].astype(float))
        sk, sp = float(move[kept].sum()), float(move[~kept].sum())
        nk, npr = int(kept.sum()), int((~kept).sum())
        rows.append((k, sk / nk if nk else np.nan, sp / npr if npr else np.nan, nk, npr))
        sums += (sk, sp)
        counts += (nk, npr)
    rows.append(
        (
            _TOTAL,
            sums[0] / counts[0] if counts[0] else np.nan,
            sums[1] / counts[1] if counts[1] else np.nan,
            int(counts[0]),
            int(counts[1]),
        )
    )
    return _frame(rows, ["mean_movement_kept", "mean_movement_pruned", "n_kept", "n_pruned"])


def mask_analysis(runs, strategy="rewind"):
    """Mask and weight statistics of the chain runs from ``ticket_curve(return_runs=True)``.

    Parameters
    ----------
    runs : dict
        Second value returned by :func:`sklottery.analysis.ticket_curve` with
        ``return_runs=True``.
    strategy : str, default='rewind'

    Returns
    -------
    report : dict of DataFrames
        ``'layer_sparsity'`` (final masks, trial 0); ``'overlap_trials'``
        (Jaccard of the final masks between trials); ``'overlap_rounds'``
        (Jaccard of consecutive rounds' masks, per trial); ``'sign_kept'``
        (fraction of surviving weights whose sign at the end of the final
        round equals θ0's, per trial); ``'movement'`` (mean ``|w_final - w_init|``
        over the final round, for weights kept vs pruned at the next prune).

    See Also
    --------
    sklottery.analysis.ticket_curve : Produces the runs (``return_runs=True``).
    layer_sparsity : Fraction of weights remaining per layer.
    mask_jaccard : Overlap of two masks.
    sign_preservation : Signs kept in training.
    weight_movement : Movement of kept and pruned weights.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    .. [2] Zhou, H., Lan, J., Liu, R. and Yosinski, J. (2019). Deconstructing
       Lottery Tickets: Zeros, Signs, and the Supermask. NeurIPS.
       arXiv:1905.01067.
    """
    trials = sorted(t for (s, t) in runs if s == strategy and runs[(s, t)] is not None)
    if not trials:
        raise ValueError(f"No runs for strategy {strategy!r}; call ticket_curve(..., "
                         "return_runs=True) with that strategy.")
    final_masks = {t: runs[(strategy, t)]["masks"][-1] for t in trials}
    report = {"layer_sparsity": layer_sparsity(final_masks[trials[0]])}
    report["overlap_trials"] = pairwise_mask_overlap(
        {f"trial {t}": final_masks[t] for t in trials})
    rows = []
    for t in trials:
        masks = runs[(strategy, t)]["masks"]
        for r in range(1, len(masks)):
            j = mask_jaccard(masks[r - 1], masks[r]).loc["__total__", "jaccard"]
            rows.append({"trial": t, "round": r, "jaccard_with_previous": j})
    report["overlap_rounds"] = pd.DataFrame(rows)
    sign_rows, move_rows = [], []
    for t in trials:
        run = runs[(strategy, t)]
        init = {n: run["init"][n] for n in run["masks"][-1]}
        final = run["final"][-1]
        sp = sign_preservation(init, final, run["masks"][-1])
        sign_rows.append({"trial": t, **sp["fraction_preserved"].to_dict()})
        if len(run["masks"]) > 1:
            # weights of round 0 (dense) that the first prune kept vs removed
            mv = weight_movement(run["start"][0], run["final"][0], run["masks"][1])
            for layer, rec in mv.iterrows():
                move_rows.append({"trial": t, "layer": layer, **rec.to_dict()})
    report["sign_kept"] = pd.DataFrame(sign_rows)
    report["movement"] = pd.DataFrame(move_rows)
    return report
