"""Pure pruning functions: schedule, scopes, criteria, tie-breaking."""

import math

import pytest
import torch

from sklottery.modules import MLP, layer_kinds
from sklottery.pruning import (
    compute_scores,
    count_remaining,
    fraction_remaining,
    n_to_prune,
    prune_masks,
    remaining_schedule,
    rounds_for_sparsity,
)

# Frankle & Carbin 2019, LeNet-300-100 with 20 % / 20 % / 10 % per round.
PUBLISHED = {0: 100.0, 1: 80.04, 2: 64.06, 3: 51.28, 7: 21.07, 9: 13.52, 12: 6.95,
             15: 3.58, 16: 2.87, 18: 1.85}


def _lenet_masks_and_rates():
    module = MLP(784, 10)
    kinds = layer_kinds(module)
    params = dict(module.named_parameters())
    masks = {n: torch.ones_like(params[n], dtype=torch.bool) for n in kinds}
    rates = {n: 0.1 if k == "output" else 0.2 for n, k in kinds.items()}
    return module, params, masks, rates


def test_schedule_matches_frankle_carbin():
    _, _, masks, rates = _lenet_masks_and_rates()
    sizes = {n: m.numel() for n, m in masks.items()}
    assert sorted(sizes.values()) == [1000, 30000, 235200]
    schedule = remaining_schedule(sizes, rates, 18)
    for r, pct in PUBLISHED.items():
        assert round(100 * schedule[r], 2) == pct, r


def test_masks_follow_schedule_through_real_pruning():
    module, params, masks, rates = _lenet_masks_and_rates()
    sizes = {n: m.numel() for n, m in masks.items()}
    schedule = remaining_schedule(sizes, rates, 18)
    g = torch.Generator().manual_seed(0)
    for r in range(1, 19):
        scores = compute_scores("random", {n: params[n] for n in masks}, generator=g)
        new = prune_masks(scores, masks, rates)
        for n in masks:  # monotone: a pruned weight never comes back
            assert not (new[n] & ~masks[n]).any()
        masks = new
        kept, total = count_remaining(masks)
        assert kept / total == pytest.approx(schedule[r], abs=0)
        if r in PUBLISHED:
            assert round(100 * fraction_remaining(masks)["total"], 2) == PUBLISHED[r]


def test_layer_scope_removes_rate_of_remaining_per_layer():
    scores = {"a": torch.arange(100.0), "b": torch.arange(10.0).flip(0)}
    masks = {"a": torch.ones(100, dtype=torch.bool), "b": torch.ones(10, dtype=torch.bool)}
    new = prune_masks(scores, masks, {"a": 0.2, "b": 0.5})
    assert int(new["a"].sum()) == 80 and int(new["b"].sum()) == 5
    # the smallest scores went: a[0:20] and b's last five (scores 4..0)
    assert not new["a"][:20].any() and new["a"][20:].all()
    assert new["b"][:5].all() and not new["b"][5:].any()


def test_global_scope_uses_one_threshold():
    g = torch.Generator().manual_seed(1)
    scores = {"a": torch.rand(500, generator=g) * 10, "b": torch.rand(300, generator=g),
              "out": torch.rand(50, generator=g)}
    masks = {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    rates = {"a": 0.3, "b": 0.3, "out": 0.1}
    new = prune_masks(scores, masks, rates, scope="global", global_layers=["a", "b"])
    pooled_scores = torch.cat([scores["a"], scores["b"]])
    pooled_new = torch.cat([new["a"], new["b"]])
    assert int((~pooled_new).sum()) == n_to_prune(800, 0.3)
    assert pooled_scores[~pooled_new].max() <= pooled_scores[pooled_new].min()
    # layer b has small scores: global pruning hits it much harder than 30 %
    assert (~new["b"]).float().mean() > 0.6
    # output layer pruned on its own at its own rate
    assert int((~new["out"]).sum()) == n_to_prune(50, 0.1)
    # layer scope would have removed exactly 30 % of b
    layer = prune_masks(scores, masks, rates, scope="layer")
    assert int((~layer["b"]).sum()) == 90


def test_global_scope_rejects_different_rates():
    s = {"a": torch.rand(10), "b": torch.rand(10)}
    m = {n: torch.ones(10, dtype=torch.bool) for n in s}
    with pytest.raises(ValueError, match="one rate"):
        prune_masks(s, m, {"a": 0.2, "b": 0.3}, scope="global")


def test_ties_broken_by_lowest_index():
    scores = {"a": torch.zeros(10)}
    masks = {"a": torch.ones(10, dtype=torch.bool)}
    new = prune_masks(scores, masks, {"a": 0.3})
    assert new["a"].tolist() == [False] * 3 + [True] * 7
    again = prune_masks(scores, new, {"a": 0.5})  # 7 left -> prune round(3.5)=4
    assert again["a"].tolist() == [False] * 7 + [True] * 3


def test_pruned_weights_with_large_scores_stay_pruned():
    scores = {"a": torch.tensor([100.0, 1.0, 2.0, 3.0])}
    masks = {"a": torch.tensor([False, True, True, True])}
    new = prune_masks(scores, masks, {"a": 0.34})
    assert new["a"].tolist() == [False, False, True, True]


def test_rounding_rule_and_last_weight_kept():
    assert n_to_prune(10, 0.25) == 3  # 2.5 rounds half up
    assert n_to_prune(10, 0.24) == 2
    assert n_to_prune(1, 0.9) == 0
    assert n_to_prune(2, 0.99) == 1
    assert n_to_prune(0, 0.5) == 0


def test_criteria():
    final = {"a": torch.tensor([-3.0, 0.5, 2.0, -0.1])}
    init = {"a": torch.tensor([-1.0, 1.0, 2.5, 0.0])}
    mag = compute_scores("magnitude", final)["a"]
    assert torch.equal(mag, final["a"].abs())
    assert torch.equal(compute_scores("large_final", final)["a"], mag)
    inc = compute_scores("magnitude_increase", final, init)["a"]
    assert torch.allclose(inc, torch.tensor([2.0, -0.5, -0.5, 0.1]))
    r1 = compute_scores("random", final, generator=torch.Generator().manual_seed(3))["a"]
    r2 = compute_scores("random", final, generator=torch.Generator().manual_seed(3))["a"]
    assert torch.equal(r1, r2)
    with pytest.raises(ValueError, match="initial weights"):
        compute_scores("magnitude_increase", final)
    with pytest.raises(ValueError, match="Unknown pruning criterion"):
        compute_scores("bogus", final)


def test_rounds_for_sparsity():
    _, _, masks, rates = _lenet_masks_and_rates()
    sizes = {n: m.numel() for n, m in masks.items()}
    # 1.85 % left after 18 rounds, 2.87 % after 16: 97.5 % sparsity needs 17
    assert rounds_for_sparsity(sizes, rates, 0.975) == 17
    assert rounds_for_sparsity(sizes, rates, 0.0) == 0
    assert rounds_for_sparsity(sizes, rates, 0.2) == 2  # 80.04 % is not <= 80 %
    with pytest.raises(ValueError, match="target_sparsity"):
        rounds_for_sparsity(sizes, rates, 1.0)
    with pytest.raises(ValueError, match="cannot be reached"):
        rounds_for_sparsity({"a": 3}, {"a": 0.1}, 0.5)
    assert math.isclose(remaining_schedule(sizes, rates, 0)[0], 1.0)


def test_one_shot_rates_reach_the_iterative_level():
    from sklottery.pruning import one_shot_rates

    sizes = {"a": 1000, "b": 300, "out": 50}
    rates = {"a": 0.2, "b": 0.2, "out": 0.1}
    layer = one_shot_rates(sizes, rates, 3)
    # one prune at these rates leaves each layer what 3 rounds would
    left = {n: s for n, s in sizes.items()}
    for _ in range(3):
        left = {n: v - n_to_prune(v, rates[n]) for n, v in left.items()}
    for n in sizes:
        assert sizes[n] - n_to_prune(sizes[n], layer[n]) == left[n]
    # global: the pooled layers share one rate from the pooled count
    glob = one_shot_rates(sizes, rates, 3, pooled=["a", "b"])
    pooled = 1300
    for _ in range(3):
        pooled -= n_to_prune(pooled, 0.2)
    assert glob["a"] == glob["b"] == pytest.approx(1 - pooled / 1300)
    assert glob["out"] == layer["out"]
    assert remaining_schedule(sizes, rates, 3, pooled=["a", "b"])[-1] == pytest.approx(
        (pooled + left["out"]) / 1350)
