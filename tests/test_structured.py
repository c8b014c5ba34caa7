"""Structured tickets: whole neurons and filters (Liu et al. 2019; Li et al. 2017)."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sklottery import LotteryTicketClassifier, LotteryTicketRegressor
from sklottery.analysis import mask_control, ticket_curve
from sklottery.modules import MLP, Conv2
from sklottery.pruning import (
    alive_units,
    compact_module,
    prune_units,
    structured_hidden_sizes,
    unit_chain,
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:500], y[:500]


def small(**kw):
    p = dict(hidden_layer_sizes=(40, 20), max_epochs=2, batch_size=50, n_rounds=2,
             pruning_rate=0.5, pruning_granularity="neuron", random_state=0)
    p.update(kw)
    return LotteryTicketClassifier(**p)


def _ones(chain):
    return {e["name"]: torch.ones_like(e["layer"].weight, dtype=torch.bool) for e in chain}


def test_units_go_with_their_outgoing_columns():
    torch.manual_seed(0)
    mlp = MLP(10, 3, (8, 6))
    chain = unit_chain(mlp)
    w = {e["name"]: e["layer"].weight.detach() for e in chain}
    with torch.no_grad():
        w["layers.0.weight"][[1, 5]] *= 1e-3  # the two weakest units by L1 norm
    masks = prune_units(w, _ones(chain), chain, {e["name"]: 0.25 for e in chain})
    first, second, out = masks["layers.0.weight"], masks["layers.2.weight"], \
        masks["layers.4.weight"]
    dead = (~first.any(dim=1)).nonzero().flatten().tolist()
    assert dead == [1, 5]  # round(0.25 * 8) = 2 units, the smallest L1 norms
    assert first[[0, 2, 3, 4, 6, 7]].all()  # whole rows: alive units keep every input
    assert not second[:, [1, 5]].any() and second[:, [0, 2, 3, 4, 6, 7]].any(dim=0).all()
    assert (~second.any(dim=1)).sum() == 2  # round(0.25 * 6) = 2 of the 2nd layer
    assert out.all(dim=0).sum() == 6 - 2 and out.shape == (3, 6)  # output rows never go
    # pruned units stay pruned; the next round removes from the alive ones
    again = prune_units(w, masks, chain, {e["name"]: 0.25 for e in chain})
    assert set(alive_units(again, chain)["layers.0.weight"].tolist()) < set(
        alive_units(masks, chain)["layers.0.weight"].tolist())


def test_filters_go_with_the_next_layers_inputs():
    torch.manual_seed(0)
    net = Conv2(64, 4, input_shape=(1, 8, 8))
    chain = unit_chain(net)
    assert [e["block"] for e in chain[:3]] == [1, 16, 1]  # 64 filters x 4 x 4 into fc
    w = {e["name"]: e["layer"].weight.detach() for e in chain}
    masks = prune_units(w, _ones(chain), chain, {e["name"]: 0.5 for e in chain},
                        norm="l2")
    conv2 = masks["features.2.weight"]
    dead = (~conv2.reshape(64, -1).any(dim=1)).nonzero().flatten()
    assert len(dead) == 32
    fc = masks["classifier.0.weight"]
    for c in dead.tolist():  # a removed filter's 4 x 4 block of fc inputs goes too
        assert not fc[:, c * 16:(c + 1) * 16].any()


@pytest.mark.parametrize("module, x", [
    (lambda: MLP(10, 3, (8, 6)), torch.randn(7, 10)),
    (lambda: Conv2(64, 4, input_shape=(1, 8, 8)), torch.randn(7, 64)),
])
def test_compact_module_gives_the_masked_predictions(module, x):
    torch.manual_seed(1)
    net = module()
    chain = unit_chain(net)
    w = {e["name"]: e["layer"].weight.detach() for e in chain}
    masks = prune_units(w, _ones(chain), chain, {e["name"]: 0.5 for e in chain})
    with torch.no_grad():
        for e in chain:
            e["layer"].weight.mul_(masks[e["name"]])
    small_net = compact_module(net, masks)
    n_big = sum(p.numel() for p in net.parameters())
    n_small = sum(p.numel() for p in small_net.parameters())
    assert n_small < 0.6 * n_big
    torch.testing.assert_close(small_net(x), net(x), rtol=1e-5, atol=1e-6)


def test_estimator_prunes_whole_neurons_and_compacts(digits):
    X, y = digits
    clf = small().fit(X, y)
    sizes = structured_hidden_sizes(clf.masks_)
    assert sizes == (10, 5)  # 40 -> 20 -> 10 units, 20 -> 10 -> 5
    compact = clf.get_compact_module()
    assert [m.out_features for m in compact.modules() if isinstance(m, torch.nn.Linear)] \
        == [10, 5, 10]
    with torch.no_grad():
        ours = clf.predict_proba(X)
        theirs = torch.softmax(compact(torch.as_tensor(X)), 1).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    # a removed unit's bias goes with it and training does not revive it; with
    # 'continue' the trained (non-zero) biases are carried into the next round
    fine = small(reinit="continue").fit(X, y)
    state = fine.net_.module_.state_dict()
    for name, bias in (("layers.0.weight", "layers.0.bias"), ("layers.2.weight", "layers.2.bias")):
        dead = ~fine.masks_[name].any(dim=1)
        assert dead.sum() > 0 and torch.all(state[bias][dead] == 0)
        assert torch.any(state[bias][~dead] != 0)
    # rounds_ counts weights: incoming rows and outgoing columns both go
    dense = 64 * 40 + 40 * 20 + 20 * 10
    assert clf.rounds_[-1]["weights_remaining"] == pytest.approx(
        100 * (64 * 10 + 10 * 5 + 5 * 10) / dense)


def test_structured_needs_layer_scope_and_rounds(digits):
    X, y = digits
    for bad, match in [(dict(pruning_scope="global"), "pruning_scope='layer'"),
                       (dict(target_sparsity=0.5), "target_sparsity"),
                       (dict(one_shot=True), "one_shot=False"),
                       (dict(pruning_criterion="magnitude_increase"), "pruning_criterion")]:
        with pytest.raises(ValueError, match=match):
            small(**bad).fit(X, y)
    with pytest.raises(ValueError, match="one_shot"):
        ticket_curve(small(), X, y, strategies=["rewind", "one_shot"], n_trials=1)


def test_random_structured_pruning_and_regressor(digits):
    X, y = digits
    clf = small(pruning_criterion="random").fit(X, y)
    assert structured_hidden_sizes(clf.masks_) == (10, 5)
    reg = LotteryTicketRegressor(hidden_layer_sizes=(16,), n_rounds=1, max_epochs=2,
                                 pruning_rate=0.5, pruning_granularity="filter",
                                 random_state=0).fit(X, y.astype(float))
    assert structured_hidden_sizes(reg.masks_) == (8,)


def test_scratch_controls_train_the_compact_architecture(digits):
    X, y = digits
    ticket = small(n_rounds=1).fit(X, y)
    level = ticket.rounds_[-1]["weights_remaining"]
    est, kwargs = mask_control(small(n_rounds=1), "scratch_b", ticket.masks_, level)
    # Liu et al.: the smaller dense network (20 and 10 units), no mask, fresh init,
    # scratch-B's budget from its weights (= FLOPs of a dense MLP)
    assert kwargs == {} and est.hidden_layer_sizes == (20, 10)
    assert est.pruning_granularity == "weight" and est.n_rounds == 0
    assert est.max_epochs == int(np.ceil(2 * min(100 / level, 2)))
    scratch = est.fit(X, y, **kwargs)
    n_weights = sum(m.numel() for m in scratch.masks_.values())
    dense = sum(m.numel() for m in ticket.init_params_.values() if m.dim() == 2)
    assert 100 * n_weights / dense == pytest.approx(level)
    # the F&C random-reinit control keeps the mask on the full architecture
    est_r, kwargs_r = mask_control(small(n_rounds=1), "random", ticket.masks_, level)
    assert est_r.hidden_layer_sizes == (40, 20) and "initial_masks" in kwargs_r
    # unstructured tickets keep the mask for scratch-E/B too
    est_u, kwargs_u = mask_control(small(pruning_granularity="weight"), "scratch_e",
                                   ticket.masks_, level)
    assert "initial_masks" in kwargs_u and est_u.max_epochs == 2
    # ticket_curve uses it: its scratch rows sit at the ticket's level
    df = ticket_curve(small(n_rounds=1), X, y, strategies=["rewind", "scratch_e"],
                      n_trials=1, random_state=0)
    t = df[(df.strategy == "rewind") & (df["round"] == 1)]["weights_remaining"].iloc[0]
    assert df[df.strategy == "scratch_e"]["weights_remaining"].iloc[0] == pytest.approx(t)


def test_conv_scratch_trains_the_compact_conv_architecture():
    rng = np.random.default_rng(0)
    X = rng.random((120, 64)).astype(np.float32)
    y = np.arange(120) % 3
    est = LotteryTicketClassifier(module="conv2", input_shape=(1, 8, 8), max_epochs=1,
                                  n_rounds=1, pruning_rate=0.5, conv_pruning_rate=0.5,
                                  pruning_granularity="filter", random_state=0)
    ticket = est.fit(X, y)
    widths = structured_hidden_sizes(ticket.masks_)
    assert widths == (32, 32, 128, 128)
    level = ticket.rounds_[-1]["weights_remaining"]
    scratch, kwargs = mask_control(est, "scratch_e", ticket.masks_, level)
    assert kwargs == {} and scratch.module_params == {"widths": widths}
    scratch.fit(X, y)
    convs = [m for m in scratch.net_.module_.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert [getattr(m, "out_channels", getattr(m, "out_features", None)) for m in convs] \
        == [32, 32, 128, 128, 3]
    n_weights = sum(m.numel() for m in scratch.masks_.values())
    dense = sum(m.numel() for m in ticket.masks_.values())
    assert 100 * n_weights / dense == pytest.approx(level)
    # the compact module of the ticket has the same shapes
    compact = ticket.get_compact_module()
    assert [tuple(p.shape) for p in compact.parameters()] == [
        tuple(p.shape) for p in scratch.net_.module_.parameters()]
    with pytest.raises(ValueError, match="widths must give 2 convolution widths"):
        Conv2(64, 3, input_shape=(1, 8, 8), widths=(4, 4))


def test_compact_module_is_exact_for_unstructured_masks():
    # Unit 0 loses every incoming weight but keeps its outgoing ones: it emits
    # relu(bias) and must stay. Unit 1 loses every outgoing weight: it goes.
    torch.manual_seed(0)
    net = MLP(6, 2, (4,))
    chain = unit_chain(net)
    masks = _ones(chain)
    masks["layers.0.weight"][0] = False
    masks["layers.2.weight"][:, 1] = False
    with torch.no_grad():
        net.layers[0].bias.fill_(0.5)
        for e in chain:
            e["layer"].weight.mul_(masks[e["name"]])
    small_net = compact_module(net, masks)
    assert small_net.layers[0].out_features == 3  # only unit 1 removed
    x = torch.randn(5, 6)
    torch.testing.assert_close(small_net(x), net(x))


@pytest.mark.parametrize("fmt", ["masked", "prune", "compact"])
def test_export_formats_give_the_estimators_outputs(digits, fmt):
    X, y = digits
    clf = small(pruning_granularity="weight", n_rounds=3, pruning_rate=0.6).fit(X, y)
    module = clf.export(fmt)
    with torch.no_grad():
        proba = torch.softmax(module(torch.as_tensor(X)), 1).numpy()
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=1e-5, atol=1e-6)
    if fmt == "prune":
        layer = module.layers[0]
        assert hasattr(layer, "weight_orig") and hasattr(layer, "weight_mask")
        assert torch.equal(layer.weight_mask.bool(), clf.masks_["layers.0.weight"])
    if fmt == "masked":
        w = module.layers[0].weight
        assert torch.all(w[~clf.masks_["layers.0.weight"]] == 0)
    # the estimator's own network is untouched (a copy was exported)
    assert not hasattr(clf.net_.module_.layers[0], "weight_orig")
    assert module is not clf.net_.module_
    with pytest.raises(ValueError, match="format"):
        clf.export("onnx")


def test_size_report_counts(digits):
    X, y = digits
    clf = small(n_rounds=2).fit(X, y)  # structured: 40 -> 10, 20 -> 5 units
    rep = clf.size_report()
    assert list(rep.index) == ["layers.0.weight", "layers.2.weight", "layers.4.weight",
                               "total"]
    kept = {n: int(m.sum()) for n, m in clf.masks_.items()}
    assert rep.loc["total", "n_nonzero"] == sum(kept.values())
    assert rep.loc["layers.0.weight", "macs_pruned"] == kept["layers.0.weight"]  # Linear
    assert rep.loc["total", "compact_weights"] == 64 * 10 + 10 * 5 + 5 * 10
    assert rep.loc["layers.0.weight", "dense_bytes"] == 4 * 64 * 40
    conv = LotteryTicketClassifier(module="conv2", input_shape=(1, 8, 8), n_rounds=1,
                                   max_epochs=1, random_state=0).fit(X, y)
    crep = conv.size_report()
    first = conv.masks_["features.0.weight"]
    assert crep.loc["features.0.weight", "macs_pruned"] == int(first.sum()) * 64  # 8x8 out


class _ConvBNChain(torch.nn.Module):
    """A chain of layers in shape, but with batch norm between them."""

    def __init__(self, n_features=16, n_classes=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 4 * 4, n_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x.reshape(-1, 1, 4, 4)))).flatten(1))


def test_normalisation_layers_are_not_a_chain():
    # compaction would have to shrink the batch norm with the filters
    with pytest.raises(ValueError, match=r"_ConvBNChain has normalisation layers \(bn\)"):
        unit_chain(_ConvBNChain())
    with pytest.raises(ValueError, match="normalisation layers"):
        compact_module(_ConvBNChain(), {})


def test_excluded_weights_are_not_a_chain():
    class Net(torch.nn.Module):
        prunable_exclude = ("out.weight",)

        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(3, 4)
            self.out = torch.nn.Linear(4, 2)

    with pytest.raises(ValueError, match=r"excludes \['out.weight'\]"):
        unit_chain(Net())


def test_non_chain_network_predicts_masked_and_refuses_compaction():
    X = np.random.RandomState(0).rand(60, 16).astype(np.float32)
    y = (X[:, :8].sum(1) > X[:, 8:].sum(1)).astype(int)
    with pytest.raises(ValueError, match="normalisation layers"):
        LotteryTicketClassifier(module=_ConvBNChain, pruning_granularity="filter",
                                pruning_scope="layer", max_epochs=1, n_rounds=1,
                                random_state=0).fit(X, y)
    clf = LotteryTicketClassifier(module=_ConvBNChain, max_epochs=1, n_rounds=2,
                                  pruning_rate=0.5, random_state=0).fit(X, y)
    masked = clf.export("masked")
    with torch.no_grad():
        proba = torch.softmax(masked(torch.as_tensor(X)), 1).numpy()
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="normalisation layers"):
        clf.export("compact")
    rep = clf.size_report()
    assert rep.loc["total", "compact_weights"] == rep.loc["total", "n_weights"] == 36 + 128
