"""Property-based tests (hypothesis) for the pure pruning functions.

Scores are drawn either from a handful of integers (many ties) or from
floats, so that both the threshold rule and the tie-breaking rule are
exercised. Every property is an invariant stated in the docstring of
:mod:`sklottery.pruning`; nothing is compared with values recorded from a run.
"""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklottery.pruning import (
    compute_scores,
    count_remaining,
    n_to_prune,
    prune_masks,
    remaining_schedule,
)

SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

rates_st = st.floats(min_value=0.0, max_value=0.95, allow_nan=False)
shape_st = st.one_of(
    st.tuples(st.integers(1, 40)),
    st.tuples(st.integers(1, 6), st.integers(1, 8)),
)


@st.composite
def layers(draw, min_layers=1, max_layers=4):
    """A dict of layers: name -> (scores, mask, rate); masks keep >= 1 weight."""
    n = draw(st.integers(min_layers, max_layers))
    tied = draw(st.booleans())
    out = {}
    for i in range(n):
        shape = draw(shape_st)
        size = math.prod(shape)
        if tied:  # few distinct values: lots of ties at the threshold
            vals = draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
        else:
            vals = draw(st.lists(st.floats(-10, 10, allow_nan=False, width=32),
                                 min_size=size, max_size=size))
        keep = draw(st.lists(st.booleans(), min_size=size, max_size=size))
        keep[draw(st.integers(0, size - 1))] = True
        out[f"l{i}"] = (
            torch.tensor(vals, dtype=torch.float32).view(shape),
            torch.tensor(keep, dtype=torch.bool).view(shape),
            draw(rates_st),
        )
    return out


def _split(layer_dict):
    scores = {n: v[0] for n, v in layer_dict.items()}
    masks = {n: v[1] for n, v in layer_dict.items()}
    rates = {n: v[2] for n, v in layer_dict.items()}
    return scores, masks, rates


def _newly_pruned_and_kept(scores, masks, new, names):
    """Flat (scores, flat index) of weights pruned by this round and of survivors,
    over ``names`` concatenated in dict order (the global tie-break order)."""
    flat_s = torch.cat([scores[n].flatten() for n in names])
    old = torch.cat([masks[n].flatten() for n in names])
    kept = torch.cat([new[n].flatten() for n in names])
    pruned_now = old & ~kept
    return flat_s, pruned_now, kept


def _assert_threshold_and_ties(flat_s, pruned_now, kept):
    if pruned_now.any() and kept.any():
        # one threshold: every newly pruned score <= every surviving score
        assert flat_s[pruned_now].max() <= flat_s[kept].min()
        # ties at the threshold: the lower flat index is pruned first
        tie = flat_s[pruned_now].max()
        tied_pruned = torch.nonzero(pruned_now & (flat_s == tie)).flatten()
        tied_kept = torch.nonzero(kept & (flat_s == tie)).flatten()
        if len(tied_pruned) and len(tied_kept):
            assert tied_pruned.max() < tied_kept.min()


@SETTINGS
@given(layers())
def test_layer_scope_threshold_counts_monotone_and_ties(layer_dict):
    scores, masks, rates = _split(layer_dict)
    before = {n: m.clone() for n, m in masks.items()}
    new = prune_masks(scores, masks, rates, scope="layer")
    assert list(new) == list(masks)
    for n in masks:
        assert torch.equal(masks[n], before[n])  # inputs not modified
        assert new[n].dtype == torch.bool and new[n].shape == masks[n].shape
        assert not (new[n] & ~masks[n]).any()  # monotone: nothing comes back
        k_old = int(masks[n].sum())
        assert k_old - int(new[n].sum()) == n_to_prune(k_old, rates[n])
        assert int(new[n].sum()) >= 1  # a layer never loses its last weight
        _assert_threshold_and_ties(*_newly_pruned_and_kept(scores, masks, new, [n]))


@SETTINGS
@given(layers(min_layers=2), st.data())
def test_global_scope_one_threshold_over_pooled_layers(layer_dict, data):
    scores, masks, rates = _split(layer_dict)
    names = list(masks)
    n_pooled = data.draw(st.integers(1, len(names)), label="n_pooled")
    pooled = names[:n_pooled]
    shared = data.draw(rates_st, label="pooled rate")
    for n in pooled:
        rates[n] = shared
    new = prune_masks(scores, masks, rates, scope="global", global_layers=pooled)
    for n in names:
        assert not (new[n] & ~masks[n]).any()
    kept_before = sum(int(masks[n].sum()) for n in pooled)
    kept_after = sum(int(new[n].sum()) for n in pooled)
    assert kept_before - kept_after == n_to_prune(kept_before, shared)
    _assert_threshold_and_ties(*_newly_pruned_and_kept(scores, masks, new, pooled))
    for n in names[n_pooled:]:  # the others are pruned layer-wise at their own rate
        k_old = int(masks[n].sum())
        assert k_old - int(new[n].sum()) == n_to_prune(k_old, rates[n])
        _assert_threshold_and_ties(*_newly_pruned_and_kept(scores, masks, new, [n]))


@SETTINGS
@given(layers(), st.sampled_from(["layer", "global"]))
def test_same_input_same_output(layer_dict, scope):
    scores, masks, rates = _split(layer_dict)
    if scope == "global":
        rates = {n: rates["l0"] for n in rates}
    a = prune_masks(scores, masks, rates, scope=scope)
    b = prune_masks({n: s.clone() for n, s in scores.items()},
                    {n: m.clone() for n, m in masks.items()}, dict(rates), scope=scope)
    for n in a:
        assert torch.equal(a[n], b[n])


@SETTINGS
@given(st.lists(st.integers(1, 30), min_size=1, max_size=4), rates_st,
       st.sampled_from(["layer", "global"]), st.floats(-3, 3, allow_nan=False))
def test_all_equal_scores_prune_lowest_indices(sizes, rate, scope, value):
    names = [f"l{i}" for i in range(len(sizes))]
    scores = {n: torch.full((s,), value) for n, s in zip(names, sizes)}
    masks = {n: torch.ones(s, dtype=torch.bool) for n, s in zip(names, sizes)}
    rates = {n: rate for n in names}
    new = prune_masks(scores, masks, rates, scope=scope)
    if scope == "layer":
        for n in names:
            k = n_to_prune(masks[n].numel(), rate)
            assert not new[n][:k].any() and new[n][k:].all()
    else:  # pooled in dict order: the first k flat positions go
        flat = torch.cat([new[n] for n in names])
        k = n_to_prune(flat.numel(), rate)
        assert not flat[:k].any() and flat[k:].all()


@SETTINGS
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "out"]), st.integers(1, 300),
                    min_size=1),
    st.lists(rates_st, min_size=4, max_size=4),
    st.integers(0, 10),
    st.integers(0, 2**31 - 1),
)
def test_schedule_equals_repeated_pruning_with_random_scores(sizes, rate_list, n_rounds, seed):
    names = list(sizes)
    rates = dict(zip(names, rate_list))
    schedule = remaining_schedule(sizes, rates, n_rounds)
    assert len(schedule) == n_rounds + 1 and schedule[0] == 1.0
    masks = {n: torch.ones(s, dtype=torch.bool) for n, s in sizes.items()}
    weights = {n: torch.zeros(s) for n, s in sizes.items()}
    g = torch.Generator().manual_seed(seed)
    for r in range(1, n_rounds + 1):
        scores = compute_scores("random", weights, generator=g)
        masks = prune_masks(scores, masks, rates)
        kept, total = count_remaining(masks)
        assert kept / total == schedule[r]
    # the schedule never increases
    assert all(b <= a for a, b in zip(schedule, schedule[1:]))


@pytest.mark.parametrize("criterion", ["magnitude", "large_final", "random"])
def test_scores_are_cpu_float32_with_weight_shapes(criterion):
    final = {"w": torch.randn(3, 4, dtype=torch.float64), "v": torch.randn(5)}
    s = compute_scores(criterion, final, generator=torch.Generator().manual_seed(0))
    for n, w in final.items():
        assert s[n].shape == w.shape and s[n].dtype == torch.float32
        assert s[n].device.type == "cpu"
