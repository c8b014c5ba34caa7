"""Pruning at initialization (sklottery.pai) against small computations done by hand."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from torch import nn

from sklottery import LotteryTicketClassifier
from sklottery.exceptions import LayerCollapseError
from sklottery.pai import PAI_METHODS, pai_masks, pai_module_masks, pai_scores


class TwoLayer(nn.Module):
    """x -> W2 relu(W1 x + b1) + b2, the net every hand computation below writes out."""

    def __init__(self, n_in=4, n_hidden=5, n_out=3, bias=True, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc1 = nn.Linear(n_in, n_hidden, bias=bias)
        self.fc2 = nn.Linear(n_hidden, n_out, bias=bias)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def _data(n=12, n_in=4, n_out=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_in, generator=g, dtype=dtype), torch.randint(0, n_out, (n,), generator=g)


def _hand_loss(w1, w2, b1, b2, X, y, t=1.0):
    out = torch.relu(X @ w1.T + b1) @ w2.T + b2
    return nn.functional.cross_entropy(out / t, y)


def test_registry_names_the_three_methods():
    assert set(PAI_METHODS) == {"snip", "grasp", "synflow"}
    assert PAI_METHODS["grasp"].keep == "lowest"
    assert PAI_METHODS["snip"].keep == PAI_METHODS["synflow"].keep == "highest"
    assert PAI_METHODS["synflow"].rounds == 100 and not PAI_METHODS["synflow"].needs_data
    with pytest.raises(ValueError, match="Unknown"):
        pai_scores(TwoLayer(), method="magnitude", X=_data()[0], y=_data()[1])


def test_snip_scores_are_normalised_abs_grad_times_weight():
    net = TwoLayer()
    X, y = _data()
    scores = pai_scores(net, None, "snip", X, y, batch_size=len(X))  # one batch: all rows
    w1, w2 = (net.fc1.weight.detach().clone().requires_grad_(),
              net.fc2.weight.detach().clone().requires_grad_())
    g1, g2 = torch.autograd.grad(_hand_loss(w1, w2, net.fc1.bias, net.fc2.bias, X, y), [w1, w2])
    s1, s2 = (g1 * w1).abs(), (g2 * w2).abs()
    total = s1.sum() + s2.sum()
    torch.testing.assert_close(scores["fc1.weight"], (s1 / total).detach())
    torch.testing.assert_close(scores["fc2.weight"], (s2 / total).detach())
    assert math.isclose(sum(float(s.sum()) for s in scores.values()), 1.0, rel_tol=1e-5)
    assert set(scores) == {"fc1.weight", "fc2.weight"}  # the output layer is scored too


def test_snip_scores_a_masked_network_and_leaves_the_module_alone():
    net = TwoLayer()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    X, y = _data()
    masks = {"fc1.weight": torch.rand(5, 4) > 0.5, "fc2.weight": torch.ones(3, 5, dtype=bool)}
    scores = pai_scores(net, masks, "snip", X, y, batch_size=len(X))
    assert (scores["fc1.weight"][~masks["fc1.weight"]] == 0).all()
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])


def test_grasp_hg_equals_the_explicit_hessian_vector_product_and_the_sign_is_the_papers():
    torch.set_default_dtype(torch.float64)
    try:
        net = TwoLayer(seed=1)
    finally:
        torch.set_default_dtype(torch.float32)
    X, y = _data(dtype=torch.float64)
    T = 200.0
    scores = pai_scores(net, None, "grasp", X, y, batch_size=len(X), temperature=T)
    b1, b2 = net.fc1.bias.detach(), net.fc2.bias.detach()
    theta = torch.cat([net.fc1.weight.detach().flatten(), net.fc2.weight.detach().flatten()])

    def loss(flat):
        return _hand_loss(flat[:20].reshape(5, 4), flat[20:].reshape(3, 5), b1, b2, X, y, T)

    H = torch.autograd.functional.hessian(loss, theta)
    g = torch.autograd.functional.jacobian(loss, theta)
    Hg = H @ g
    # a finite difference of the gradient along g agrees with the explicit product
    eps = 1e-4
    fd = (torch.autograd.functional.jacobian(loss, theta + eps * g)
          - torch.autograd.functional.jacobian(loss, theta - eps * g)) / (2 * eps)
    torch.testing.assert_close(fd, Hg, rtol=1e-4, atol=1e-12)
    S = -theta * Hg  # Wang et al.: S(-θ) = -θ ⊙ Hg
    S = S / (S.sum().abs() + 1e-10)
    got = torch.cat([scores["fc1.weight"].flatten(), scores["fc2.weight"].flatten()])
    torch.testing.assert_close(got, S)
    # GraSP removes the weights with the highest S: the kept ones are the lowest
    masks = pai_module_masks(net, "grasp", 0.5, X, y, batch_size=len(X), temperature=T)
    kept = torch.cat([masks["fc1.weight"].flatten(), masks["fc2.weight"].flatten()])
    assert int(kept.sum()) == 35 - 18  # floor(0.5 * 35 + 0.5) removed
    assert S[kept].max() <= S[~kept].min()


class Chain(nn.Module):
    """A bias-free ReLU chain (5 -> 7 -> 6 -> 3): synaptic flow is conserved layer to layer."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.layers = nn.Sequential(nn.Linear(5, 7, bias=False), nn.ReLU(),
                                    nn.Linear(7, 6, bias=False), nn.ReLU(),
                                    nn.Linear(6, 3, bias=False))

    def forward(self, x):
        return self.layers(x)


def test_synflow_is_data_free_and_matches_the_linearised_network_by_hand():
    net = Chain()
    a = pai_scores(net, None, "synflow", X=torch.randn(4, 5))
    b = pai_scores(net, None, "synflow", X=100 * torch.rand(9, 5), y=torch.zeros(9))
    c = pai_scores(net, None, "synflow", input_shape=(5,))
    for n in a:
        assert torch.equal(a[n], b[n]) and torch.equal(a[n], c[n])
    w = [net.layers[i].weight.detach().double().abs().requires_grad_() for i in (0, 2, 4)]
    R = (torch.ones(1, 5, dtype=torch.float64) @ w[0].T @ w[1].T @ w[2].T).sum()
    grads = torch.autograd.grad(R, w)
    for name, wi, gi in zip(a, w, grads):
        torch.testing.assert_close(a[name], (gi * wi).detach())
    # Tanaka et al., layer-wise conservation: the synaptic flow through every layer of a
    # bias-free homogeneous chain is the same, <dR/dy, y> = R for R = sum of the output y
    sums = [float(s.sum()) for s in a.values()]
    for s in sums:
        assert math.isclose(s, float(R), rel_tol=1e-9)
    # neuron-wise conservation: a hidden unit's incoming flow equals its outgoing flow
    s1, s2, s3 = a.values()
    torch.testing.assert_close(s1.sum(1), s2.sum(0))
    torch.testing.assert_close(s2.sum(1), s3.sum(0))


def test_synflow_neuron_conservation_counts_the_bias_with_the_incoming_weights():
    net = TwoLayer(bias=True, seed=3)
    s = pai_scores(net, None, "synflow", input_shape=(4,))
    w1, b1, w2 = (net.fc1.weight.detach().double().abs().requires_grad_(),
                  net.fc1.bias.detach().double().abs().requires_grad_(),
                  net.fc2.weight.detach().double().abs())
    R = (torch.relu(torch.ones(4, dtype=torch.float64) @ w1.T + b1) @ w2.T
         + net.fc2.bias.detach().double().abs()).sum()
    (gb,) = torch.autograd.grad(R, [b1])
    torch.testing.assert_close(s["fc1.weight"].sum(1) + gb * b1.detach(), s["fc2.weight"].sum(0))


@pytest.mark.parametrize("method", ["snip", "grasp", "synflow"])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.75, 0.9])
def test_the_exact_sparsity_is_reached(method, sparsity):
    net = TwoLayer(n_in=6, n_hidden=32)
    X, y = _data(n_in=6)
    masks = pai_module_masks(net, method, sparsity, X, y, rounds=5 if method == "synflow" else None)
    n = 6 * 32 + 32 * 3
    assert sum(int(m.sum()) for m in masks.values()) == n - math.floor(sparsity * n + 0.5)
    assert all(m.dtype == torch.bool for m in masks.values())


def test_synflow_is_iterative_on_the_exponential_schedule(monkeypatch):
    spec = PAI_METHODS["synflow"]
    seen = []

    def counting(module, names, *args, **kwargs):
        params = dict(module.named_parameters())
        seen.append(sum(int((params[n] != 0).sum()) for n in names))
        return spec.score(module, names, *args, **kwargs)

    monkeypatch.setitem(PAI_METHODS, "synflow", dataclasses.replace(spec, score=counting))
    net = Chain()
    n, d, rounds = 35 + 42 + 18, 0.1, 10
    masks = pai_module_masks(net, "synflow", 1 - d, input_shape=(5,), rounds=rounds)
    # round k re-scores the network pruned to density d ** ((k - 1) / rounds)
    expected = [n] + [n - math.floor((1 - d ** (k / rounds)) * n + 0.5) for k in range(1, rounds)]
    assert seen == expected
    assert sum(int(m.sum()) for m in masks.values()) == n - math.floor((1 - d) * n + 0.5)
    seen.clear()
    pai_module_masks(net, "synflow", 1 - d, input_shape=(5,))
    assert len(seen) == 100  # the paper's default


def test_start_masks_stay_pruned():
    net = TwoLayer()
    X, y = _data()
    start = {"fc1.weight": torch.rand(5, 4, generator=torch.Generator().manual_seed(0)) > 0.3,
             "fc2.weight": torch.ones(3, 5, dtype=bool)}
    for method in PAI_METHODS:
        masks = pai_module_masks(net, method, 0.5, X, y, masks=start, rounds=3)
        assert not (masks["fc1.weight"] & ~start["fc1.weight"]).any()


def test_layer_collapse_is_refused():
    net = TwoLayer(n_in=4, n_hidden=20, n_out=3)
    X, y = torch.zeros(16, 4), torch.arange(16) % 3  # no input: SNIP scores fc1 zero
    with pytest.raises(ValueError, match=r"Layer collapse.*fc1\.weight"):
        pai_module_masks(net, "snip", 0.6, X, y)
    masks = pai_module_masks(net, "synflow", 0.6, X, y, rounds=20)  # conserves: no collapse
    assert all(bool(m.any()) for m in masks.values())


def test_bad_arguments():
    net = TwoLayer()
    with pytest.raises(ValueError, match="sparsity"):
        pai_module_masks(net, "snip", 1.0, *_data())
    with pytest.raises(ValueError, match="X and y"):
        pai_scores(net, None, "grasp")
    with pytest.raises(ValueError, match="input shape"):
        pai_scores(net, None, "synflow")
    with pytest.raises(TypeError):
        pai_masks(net, *_data(), "snip", 0.5)


def _blobs(n=120, d=64, seed=0):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 3, n)
    X = (rng.randn(n, d) + y[:, None]).astype(np.float32)
    return X, y


@pytest.mark.parametrize("module,kw", [(None, {"hidden_layer_sizes": (16, 8)}),
                                       ("conv2", {"input_shape": (1, 8, 8)})])
@pytest.mark.parametrize("method", ["snip", "grasp", "synflow"])
def test_pai_masks_train_from_the_estimators_theta0(module, kw, method):
    X, y = _blobs()
    est = LotteryTicketClassifier(module=module, max_epochs=1, n_rounds=0, random_state=0,
                                  batch_size=32, **kw)
    masks = pai_masks(est, X, y, method, sparsity=0.8, random_state=0,
                      rounds=4 if method == "synflow" else None)
    assert not hasattr(est, "init_params_")  # the estimator itself is not fitted
    plain = LotteryTicketClassifier(module=module, max_epochs=1, n_rounds=0, random_state=0,
                                    batch_size=32, **kw).fit(X, y)
    assert list(masks) == list(plain.masks_)
    n = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == n - math.floor(0.8 * n + 0.5)
    est.fit(X, y, initial_masks=masks)
    for k, v in plain.init_params_.items():  # the same θ0 as a plain fit
        assert torch.equal(est.init_params_[k], v)
    params = dict(est.net_.module_.named_parameters())
    for name, keep in masks.items():
        assert torch.equal(est.masks_[name].cpu(), keep)
        assert (params[name].detach()[~keep.to(params[name].device)] == 0).all()
    if method == "synflow":  # data-free: the same masks from plain's θ0 directly
        theta0 = plain.net_.module_
        theta0.load_state_dict(plain.init_params_)
        again = pai_module_masks(theta0, "synflow", 0.8, input_shape=X.shape[1:], rounds=4)
        for name in masks:
            assert torch.equal(again[name], masks[name])


def test_pai_masks_warns_without_a_seed():
    X, y = _blobs(n=40)
    est = LotteryTicketClassifier(hidden_layer_sizes=(8,), max_epochs=1, n_rounds=0)
    with pytest.warns(UserWarning, match="random_state is None"):
        pai_masks(est, X, y, "snip", 0.5)


def test_selection_keeps_the_set_a_stable_sort_keeps():
    """The selection (kthvalue) keeps what a stable ascending sort keeps, ties included:
    the lowest values go first, equal values by lower index first, pruned (-inf) ones
    before all."""
    from sklottery.pai import _select

    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        shapes = {"a": (int(torch.randint(1, 6, (1,), generator=g)), 4),
                  "b": (int(torch.randint(1, 30, (1,), generator=g)),)}
        scores = {n: torch.randint(0, 4, s, generator=g).double() for n, s in shapes.items()}
        masks = {n: torch.rand(s, generator=g) > 0.3 for n, s in shapes.items()}
        flat = torch.cat([scores[n].flatten() for n in shapes])
        alive = torch.cat([masks[n].flatten() for n in shapes])
        for keep in ("highest", "lowest"):
            value = torch.where(alive, flat if keep == "highest" else -flat,
                                torch.tensor(-float("inf"), dtype=torch.float64))
            order = torch.sort(value, stable=True).indices
            for n_keep in range(0, int(alive.sum()) + 1):
                expected = torch.ones_like(alive)
                expected[order[: len(flat) - n_keep]] = False
                got = _select(scores, keep, masks, n_keep)
                assert torch.equal(torch.cat([got[n].flatten() for n in shapes]), expected)


@pytest.mark.parametrize("method, rounds", [("snip", None), ("grasp", None), ("synflow", 4),
                                            ("snip", 3)])
def test_a_sequence_of_sparsities_gives_what_lone_calls_give(method, rounds, monkeypatch):
    """One call for several levels: the masks of separate calls with the same generator
    state, and one scoring for a one-shot method."""
    net = TwoLayer(n_in=6, n_hidden=32)
    X, y = _data(n_in=6)
    targets = [0.3, 0.75, 0.9]
    spec = PAI_METHODS[method]
    scored = []

    def counting(*args, **kwargs):
        scored.append(1)
        return spec.score(*args, **kwargs)

    kw = dict(rounds=rounds, n_batches=2, batch_size=4,
              input_shape=(6,) if method == "synflow" else None)
    alone = [pai_module_masks(net, method, t, X, y,
                              generator=torch.Generator().manual_seed(5), **kw) for t in targets]
    monkeypatch.setitem(PAI_METHODS, method, dataclasses.replace(spec, score=counting))
    together = pai_module_masks(net, method, targets, X, y,
                                generator=torch.Generator().manual_seed(5), **kw)
    assert len(together) == len(targets)
    for a, b in zip(alone, together):
        assert all(torch.equal(a[n], b[n]) for n in a)
    assert len(scored) == (1 if rounds is None and method != "synflow" else
                           len(targets) * (rounds or 1))


def test_on_collapse_return_keeps_the_other_levels():
    net = TwoLayer(n_in=4, n_hidden=20, n_out=3)
    X, y = torch.zeros(16, 4), torch.arange(16) % 3  # no input: SNIP scores fc1 zero
    low, high = pai_module_masks(net, "snip", [0.1, 0.6], X, y, on_collapse="return")
    assert isinstance(high, LayerCollapseError) and "fc1.weight" in str(high)
    assert all(bool(m.any()) for m in low.values())
    with pytest.raises(LayerCollapseError):
        pai_module_masks(net, "snip", [0.1, 0.6], X, y)
    with pytest.raises(ValueError, match="on_collapse"):
        pai_module_masks(net, "snip", 0.1, X, y, on_collapse="warn")


# ------------------------------------------------- the estimator's PaI criteria
def _pai_estimator(method, **kw):
    params = dict(hidden_layer_sizes=(16, 8), max_epochs=2, n_rounds=3, pruning_rate=0.5,
                  one_shot=True, pruning_criterion=method, batch_size=32, random_state=0)
    params.update(kw)
    return LotteryTicketClassifier(**params)


class _RoundStarts(Callback):
    """Records the masks every round starts with (the engine's hook; the estimator fits
    a copy of its callbacks, so the record is the class's)."""

    masks = []

    def on_round_begin(self, net, masks=None, **kwargs):
        type(self).masks.append({k: v.detach().cpu().clone() for k, v in masks.items()})


@pytest.mark.parametrize("method", ["snip", "grasp", "synflow"])
def test_a_pai_criterion_prunes_theta0_before_any_training(method):
    X, y = _blobs()
    starts = _RoundStarts()
    _RoundStarts.masks = []
    est = _pai_estimator(method, callbacks=[starts]).fit(X, y)
    # one round, trained once, already sparse when it began: no dense round
    assert len(est.rounds_) == 1 and est.n_rounds_ == 0
    assert len(starts.masks) == 1
    magnitude = LotteryTicketClassifier(**{**est.get_params(), "callbacks": None,
                                           "pruning_criterion": "magnitude"}).fit(X, y)
    # the one-shot schedule's level: what magnitude pruning with one_shot reaches
    assert est.rounds_[0]["weights_remaining"] == pytest.approx(
        magnitude.rounds_[-1]["weights_remaining"], abs=0.01)
    n_kept = sum(int(m.sum()) for m in starts.masks[0].values())
    assert n_kept == sum(int(m.sum()) for m in magnitude.masks_.values())
    for k, v in magnitude.init_params_.items():  # the same θ0
        assert torch.equal(est.init_params_[k], v)
    params = dict(est.net_.module_.named_parameters())
    for name, keep in est.masks_.items():
        assert torch.equal(keep.cpu(), starts.masks[0][name])
        assert (params[name].detach()[~keep] == 0).all()


def test_the_synflow_criterion_is_pai_masks_then_one_training():
    """SynFlow is data-free: the estimator's masks are pai_masks' on the same θ0, and its
    fit is the fit of those masks with n_rounds=0."""
    X, y = _blobs()
    est = _pai_estimator("synflow").fit(X, y)
    level = est.rounds_[0]["weights_remaining"] / 100
    template = _pai_estimator("synflow", pruning_criterion="magnitude", one_shot=False)
    masks = pai_masks(template, X, y, "synflow", sparsity=1 - level, random_state=0)
    for name in masks:
        assert torch.equal(est.masks_[name].cpu(), masks[name])
    alone = template.set_params(n_rounds=0).fit(X, y, initial_masks=masks)
    np.testing.assert_array_equal(est.predict_proba(X), alone.predict_proba(X))


def test_a_pai_criterion_is_reproducible_and_follows_random_state():
    X, y = _blobs()
    a = _pai_estimator("snip").fit(X, y).masks_
    b = _pai_estimator("snip").fit(X, y).masks_
    c = _pai_estimator("snip", random_state=1).fit(X, y).masks_
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)


@pytest.mark.parametrize("kw, match", [
    (dict(one_shot=False), "needs one_shot=True"),
    (dict(rewind_iteration=2), "rewind_iteration=0"),
    (dict(reinit="continue"), "reinit='rewind'"),
    (dict(pruning_granularity="neuron"), "pruning_criterion 'magnitude'"),
])
def test_a_pai_criterions_requirements_are_checked_before_training(kw, match):
    X, y = _blobs()
    est = _pai_estimator("snip", max_epochs=10**6, **kw)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "rounds_") or not est.rounds_


def test_a_pai_criterions_layer_collapse_is_an_error_before_training():
    X, y = _blobs()
    est = _pai_estimator("snip", max_epochs=10**6, pruning_rate=0.9, n_rounds=4,
                         hidden_layer_sizes=(4,))
    with pytest.raises(LayerCollapseError, match="Layer collapse"):
        est.fit(np.zeros_like(X), y)  # no input signal: SNIP scores the first layer zero


def test_a_warm_start_refit_of_a_pai_fit_has_nothing_to_do():
    X, y = _blobs()
    est = _pai_estimator("synflow", warm_start=True).fit(X, y)
    masks = {k: v.clone() for k, v in est.masks_.items()}
    with pytest.warns(UserWarning, match="pruned at initialization; nothing to do"):
        est.fit(X, y)
    assert len(est.rounds_) == 1
    assert all(torch.equal(masks[n], est.masks_[n]) for n in masks)


@pytest.mark.parametrize("scope, kw", [("layer", {}), ("global", {"output_pruning_rate": 0.0}),
                                       ("global", {})])
def test_a_pai_criterions_level_is_magnitude_one_shots_in_every_scope(scope, kw):
    """The pooled group's rounding (global scope) included: the same number of weights
    kept as magnitude pruning with one_shot reaches."""
    X, y = _blobs()
    for n_rounds in (1, 3):  # 5-5-5 hidden units: where a per-layer rounding is one off
        est = _pai_estimator("synflow", pruning_scope=scope, n_rounds=n_rounds,
                             hidden_layer_sizes=(5, 5, 5), pruning_rate=0.3, max_epochs=1,
                             **kw).fit(X, y)
        magnitude = LotteryTicketClassifier(**{**est.get_params(),
                                               "pruning_criterion": "magnitude"}).fit(X, y)
        assert (sum(int(m.sum()) for m in est.masks_.values())
                == sum(int(m.sum()) for m in magnitude.masks_.values())), (scope, n_rounds)


def test_pai_masks_of_an_estimator_that_prunes_at_init_start_from_the_dense_theta0():
    X, y = _blobs()
    pai = _pai_estimator("snip")
    magnitude = _pai_estimator("snip", pruning_criterion="magnitude", one_shot=False)
    a = pai_masks(pai, X, y, "snip", 0.5, random_state=0)
    b = pai_masks(magnitude, X, y, "snip", 0.5, random_state=0)
    n = sum(m.numel() for m in a.values())
    assert sum(int(m.sum()) for m in a.values()) == n - math.floor(0.5 * n + 0.5)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_without_rounds_a_pai_criterion_prunes_nothing_and_needs_nothing():
    """n_rounds=0 (the copies the stability tools train) is a plain dense fit."""
    X, y = _blobs()
    est = _pai_estimator("snip", n_rounds=0, one_shot=False).fit(X, y)
    assert est.rounds_[0]["weights_remaining"] == 100.0


def test_a_pai_criterion_refuses_initial_masks():
    X, y = _blobs()
    est = _pai_estimator("snip", max_epochs=10**6)
    masks = {"layers.0.weight": np.ones((16, 64), bool), "layers.2.weight": np.ones((8, 16), bool),
             "layers.4.weight": np.ones((3, 8), bool)}
    with pytest.raises(ValueError, match="no initial_masks"):
        est.fit(X, y, initial_masks=masks)


@pytest.mark.parametrize("first, second", [("snip", "magnitude"), ("magnitude", "snip")])
def test_a_warm_start_cannot_switch_pruning_at_init(first, second):
    X, y = _blobs()
    est = _pai_estimator(first, warm_start=True).fit(X, y)
    est.set_params(pruning_criterion=second, max_epochs=10**6)
    with pytest.raises(ValueError, match="warm_start=True cannot change pruning_criterion"):
        est.fit(X, y)


def test_bad_sparsity_sequences():
    net = TwoLayer()
    X, y = _data()
    with pytest.raises(ValueError, match="empty"):
        pai_module_masks(net, "snip", [], X, y)
    with pytest.raises(TypeError, match="number"):
        pai_module_masks(net, "snip", "0.5", X, y)
