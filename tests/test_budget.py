"""Scratch-B's budget is the dense network's compute in multiply-adds, not in weights."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sklottery import LotteryTicketClassifier
from sklottery.analysis import mask_control, ticket_curve
from sklottery.modules import MLP, layer_kinds, multiply_adds
from sklottery.strategies import scratch_b_epochs

E = 3  # dense epochs


def conv2(**kw):
    params = dict(module="conv2", input_shape=(1, 8, 8), max_epochs=E, n_rounds=2,
                  conv_pruning_rate=0.1, random_state=0)
    return LotteryTicketClassifier(**{**params, **kw})


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((150, 64)).astype(np.float32), np.arange(150) % 3


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:300], y[:300]


def _totals(report):
    total = report.loc["total"]
    return int(total["macs_dense"]), int(total["macs_pruned"])


def test_multiply_adds_counts_output_positions():
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 36, 2))
    masks = {"0.weight": torch.ones(4, 1, 3, 3, dtype=torch.bool),
             "2.weight": torch.ones(2, 144, dtype=torch.bool)}
    masks["0.weight"][0] = False
    macs = multiply_adds(conv, masks, torch.zeros(1, 1, 6, 6))
    assert macs == {"0.weight": (36 * 36, 27 * 36), "2.weight": (288, 288)}
    # a layer the forward uses twice costs twice; batch size does not matter
    lin = torch.nn.Linear(3, 3)

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return self.lin(self.lin(x))

    mask = {"lin.weight": torch.tensor([[1, 0, 0]] * 3, dtype=torch.bool)}
    assert multiply_adds(Twice(), mask, torch.zeros(5, 3)) == {"lin.weight": (18, 6)}
    assert conv.training  # mode restored, hooks removed
    assert not any(m._forward_hooks for m in conv.modules())


def test_conv2_scratch_b_spends_the_dense_multiply_adds(images):
    """Scratch-B's MACs x epochs equals dense's within one epoch's rounding.

    Fails with the weights rule: on Conv-2 the convolutions keep more of their
    weights (rate 0.1) and are used at every output position, so the fraction
    of multiply-adds left is larger than the fraction of weights.
    """
    X, y = images
    ticket = conv2(record_history="masks").fit(X, y)
    probe = conv2(n_rounds=0, max_epochs=1).fit(X[:30], y[:30])  # size_report of a mask
    by_weights = []
    for h, rec in zip(ticket.history_[1:], ticket.rounds_[1:]):
        probe.masks_ = h["masks"]
        dense, kept = _totals(probe.size_report())
        assert rec["macs_fraction"] == pytest.approx(kept / dense)
        assert rec["macs_fraction"] > rec["weights_remaining"] / 100 + 0.05
        est, _ = mask_control(conv2(), "scratch_b", h["masks"], rec["weights_remaining"],
                              macs_fraction=rec["macs_fraction"])
        epochs = est.max_epochs
        assert kept * epochs >= dense * E > kept * (epochs - 1)  # whole epochs, rounded up
        by_weights.append((scratch_b_epochs(E, rec["weights_remaining"] / 100), epochs))
    # the weights rule spends more than the budget: round 2 trains 4 epochs, not 5
    assert by_weights == [(4, 4), (5, 4)]
    # the cap still binds
    est, _ = mask_control(conv2(scratch_b_max_factor=1.1), "scratch_b",
                          ticket.history_[2]["masks"], ticket.rounds_[2]["weights_remaining"],
                          macs_fraction=ticket.rounds_[2]["macs_fraction"])
    assert est.max_epochs == math.ceil(E * 1.1)
    # a conv ticket without its multiply-add fraction is an error, not the weights rule
    with pytest.raises(ValueError, match="macs_fraction"):
        mask_control(conv2(), "scratch_b", ticket.masks_, 50.0)


def test_conv2_fresh_budget_chain_and_ticket_curve_columns(images):
    X, y = images
    chain = conv2(reinit="fresh_budget").fit(X, y)
    for rec in chain.rounds_[1:]:
        c = rec["macs_fraction"]
        assert rec["epochs"] == scratch_b_epochs(E, c) == math.ceil(E / c)
    assert [r["epochs"] for r in chain.rounds_] == [3, 4, 4]
    df = ticket_curve(conv2(), X, y, strategies=["rewind", "scratch_b"], n_trials=1,
                      random_state=0)
    ticket = df[df.strategy == "rewind"].set_index("round")
    sb = df[df.strategy == "scratch_b"].set_index("round")
    assert (ticket["epochs"] == E).all()
    np.testing.assert_allclose(ticket["compute_fraction"], ticket["macs_fraction"])
    assert ticket.loc[0, "macs_fraction"] == 1.0
    np.testing.assert_array_equal(sb["macs_fraction"], ticket.loc[sb.index, "macs_fraction"])
    # scratch-B: one dense round of compute, up to less than one of its own epochs
    c = sb["macs_fraction"]
    assert ((sb["compute_fraction"] >= 1) & (sb["compute_fraction"] < 1 + c / E)).all()
    np.testing.assert_allclose(sb["compute_fraction"], c * sb["epochs"] / E)


def test_mlp_weights_fraction_is_the_macs_fraction(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(32, 16), max_epochs=2, n_rounds=3, random_state=0)
    chain = LotteryTicketClassifier(reinit="fresh_budget", **kw).fit(X, y)
    for rec in chain.rounds_:
        assert rec["macs_fraction"] == rec["weights_remaining"] / 100  # exactly
        assert rec["epochs"] == scratch_b_epochs(2, rec["weights_remaining"] / 100)
    # mask_control: with or without the fraction, the same epochs for an MLP
    level = chain.rounds_[-1]["weights_remaining"]
    a, _ = mask_control(LotteryTicketClassifier(**kw), "scratch_b", chain.masks_, level)
    b, _ = mask_control(LotteryTicketClassifier(**kw), "scratch_b", chain.masks_, level,
                        macs_fraction=chain.rounds_[-1]["macs_fraction"])
    assert a.max_epochs == b.max_epochs == scratch_b_epochs(2, level / 100)
    dense, kept = _totals(chain.size_report())
    assert kept / dense == level / 100


def test_structured_masks_cost_what_the_compact_network_costs(images):
    X, y = images
    ticket = conv2(pruning_granularity="filter", pruning_rate=0.5, conv_pruning_rate=0.5,
                   n_rounds=1, max_epochs=1).fit(X, y)
    dense, kept = _totals(ticket.size_report())
    compact = ticket.get_compact_module()
    ones = {n: torch.ones_like(p, dtype=torch.bool)
            for n, p in compact.named_parameters() if n in layer_kinds(compact)}
    compact_macs = multiply_adds(compact, ones, torch.zeros(1, 64))
    assert sum(k for _, k in compact_macs.values()) == kept < dense
    assert ticket.rounds_[-1]["macs_fraction"] == pytest.approx(kept / dense)
    # an MLP's size report: one multiply-add per kept weight
    mlp = MLP(5, 2, (4,))
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in mlp.named_parameters()
             if n.endswith("weight")}
    assert multiply_adds(mlp, masks, torch.zeros(1, 5)) == {
        "layers.0.weight": (20, 20), "layers.2.weight": (8, 8)}
