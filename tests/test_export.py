"""Saved size and predict path of pruned networks (sklottery.persistence, sklottery.inference)."""

import copy
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits
from sklearn.preprocessing import StandardScaler
from torch import nn

from sklottery import (
    LotteryTicketClassifier,
    LotteryTicketRegressor,
    export,
    inference,
    persistence,
)
from sklottery.inference import (
    DenseLinearT,
    SparseLinearT,
    TransposedRun,
    build_inference_module,
)
from sklottery.modules import MLP
from sklottery.persistence import pack_mask, unpack_mask


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:500], y[:500]


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def clf(**kw):
    params = dict(hidden_layer_sizes=(48, 24), max_epochs=2, batch_size=50, n_rounds=4,
                  pruning_rate=0.6, learning_rate_init=5e-3, random_state=0)
    params.update(kw)
    return LotteryTicketClassifier(**params)


def reg(**kw):
    params = dict(hidden_layer_sizes=(32, 16), max_epochs=3, batch_size=32, n_rounds=4,
                  pruning_rate=0.6, learning_rate_init=5e-3, random_state=0)
    params.update(kw)
    return LotteryTicketRegressor(**params)


def outputs(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


def masked_outputs(est, X):
    """What the masked dense network computes (export('masked'), plain torch)."""
    module = est.export("masked")
    with torch.no_grad():
        out = module(torch.as_tensor(X, dtype=torch.float32))
    if hasattr(est, "predict_proba"):
        return torch.softmax(out, 1).numpy()
    out = out.numpy().astype(np.float64) * est.y_scale_ + est.y_mean_
    return out.ravel() if out.shape[1] == 1 else out


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k].cpu(), b[k].cpu()), k


def round_trip(est):
    return pickle.loads(pickle.dumps(est))


# ------------------------------------------------------------------ masks
@pytest.mark.parametrize("shape", [(7,), (3, 5), (4, 3, 2, 2), (1,)])
def test_pack_mask_round_trip(shape):
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(shape, generator=gen) < 0.3
    shape_out, bits = pack_mask(mask)
    assert bits.dtype == np.uint8 and bits.size == -(-mask.numel() // 8)
    assert torch.equal(unpack_mask((shape_out, bits)), mask)


# --------------------------------------------------------------- pickling
@pytest.mark.parametrize("make, data", [(clf, "digits"), (reg, "diabetes")])
def test_pickle_round_trip_is_exact_and_keeps_fitted_attributes(make, data, request, tmp_path):
    X, y = request.getfixturevalue(data)
    est = make(record_history=True).fit(X, y)
    assert est.sparsity_ > 0.9
    before = outputs(est, X)
    for loaded in (round_trip(est), joblib.load(_joblib_dump(est, tmp_path))):
        np.testing.assert_array_equal(outputs(loaded, X), before)
        assert_same_state(loaded.net_.module_.state_dict(), est.net_.module_.state_dict())
        assert_same_state(loaded.masks_, est.masks_)
        assert_same_state(loaded.init_params_, est.init_params_)
        assert loaded.rewind_params_ is loaded.init_params_
        assert _same_records(loaded.rounds_, est.rounds_)
        assert [h["round"] for h in loaded.history_] == [h["round"] for h in est.history_]
        for h_new, h_old in zip(loaded.history_, est.history_):
            assert_same_state(h_new["masks"], h_old["masks"])
            assert_same_state(h_new["final"], h_old["final"])
        for attr in ("sparsity_", "n_iter_", "n_rounds_", "n_features_in_", "stop_reason_"):
            assert getattr(loaded, attr) == getattr(est, attr)
        ckpt, old = loaded._checkpoint, est._checkpoint
        assert ckpt.round == old.round and ckpt.masks is loaded.masks_
        assert_same_state(ckpt.trained, old.trained)
        assert ckpt.rewind is loaded.rewind_params_ and ckpt.start is ckpt.rewind
        # the checkpoint is a copy, not the network itself (training changes the network)
        assert all(ckpt.trained[k].data_ptr() != v.data_ptr()
                   for k, v in loaded.net_.module_.state_dict().items())
        assert len(loaded.net_.history) == len(est.net_.history)
    if make is reg:
        np.testing.assert_array_equal(loaded.y_mean_, est.y_mean_)
    else:
        np.testing.assert_array_equal(loaded.classes_, est.classes_)


def _joblib_dump(est, tmp_path):
    path = tmp_path / "est.joblib"
    joblib.dump(est, path)
    return path


def _same_records(a, b):
    return all(set(x) == set(y) and all(
        (x[k] == y[k]) or (isinstance(x[k], float) and np.isnan(x[k]) and np.isnan(y[k]))
        for k in x) for x, y in zip(a, b))


def test_pickle_stores_each_weight_once_and_pruned_weights_as_bits(digits):
    X, y = digits

    def size(est):
        return len(pickle.dumps(est))

    def n_weights(est):
        return sum(v.numel() for v in est.net_.module_.state_dict().values())

    narrow = clf(hidden_layer_sizes=(48, 24), n_rounds=0).fit(X, y)
    wide = clf(hidden_layer_sizes=(144, 72), n_rounds=0).fit(X, y)
    # dense: every extra float32 weight costs 4 bytes and a mask bit, not the five
    # copies (network, θ0, checkpoint, Adam's two moments) a plain pickle holds
    extra_bytes = 4 * (n_weights(wide) - n_weights(narrow))
    assert size(wide) - size(narrow) < 1.1 * extra_bytes
    # sparse: a pruned weight costs its mask bit only
    sparse = clf(hidden_layer_sizes=(144, 72), n_rounds=6).fit(X, y)
    n_pruned = sum(int((~m).sum()) for m in sparse.masks_.values())
    assert size(wide) - size(sparse) > 0.95 * 4 * n_pruned
    # measured 0.3008 of it (34082 of 113301 bytes): the weights kept, the mask bits
    # and what does not shrink with pruning (per-round records, parameters, callbacks)
    assert size(sparse) < 0.31 * size(wide)
    # theta0 was regenerated from its seed, not stored
    assert sparse.__getstate__()[persistence._PACKED]["init"][0] == "seed"


def test_pickle_leaves_the_estimator_unchanged_and_drops_the_optimizer_state(digits):
    X, y = digits
    est = clf().fit(X, y)
    state_before = dict(vars(est))
    assert len(est.net_.optimizer_.state)  # Adam's moments of the last round
    loaded = round_trip(est)
    assert vars(est).keys() == state_before.keys()
    assert all(vars(est)[k] is v for k, v in state_before.items())
    assert est.net_.module_.layers[0].weight.numel() > 0
    assert len(loaded.net_.optimizer_.state) == 0
    assert loaded.net_.optimizer_.param_groups[0]["params"][0] is \
        next(loaded.net_.module_.parameters())


def test_unfitted_estimator_pickles_as_usual():
    est = clf(n_rounds=3)
    state = est.__getstate__()
    assert persistence._PACKED not in state
    loaded = round_trip(est)
    assert loaded.get_params() == est.get_params() and not hasattr(loaded, "net_")


def test_clone_and_deepcopy(digits):
    X, y = digits
    est = clf().fit(X, y)
    unfitted = clone(est)
    assert not hasattr(unfitted, "net_") and unfitted.get_params() == est.get_params()
    twin = copy.deepcopy(est)
    np.testing.assert_array_equal(twin.predict_proba(X), est.predict_proba(X))
    assert_same_state(twin.init_params_, est.init_params_)
    # independent copies
    with torch.no_grad():
        twin.net_.module_.layers[0].bias.add_(1.0)
    assert not np.array_equal(twin.predict_proba(X), est.predict_proba(X))
    assert not torch.equal(twin.net_.module_.layers[0].bias, est.net_.module_.layers[0].bias)


WARM_CONFIGS = {
    "rewind": {},
    "late_rewind": {"rewind_iteration": 3},
    "continue_magnitude_increase": {"reinit": "continue",
                                    "pruning_criterion": "magnitude_increase"},
    "fresh_random_dropout": {"reinit": "fresh", "pruning_criterion": "random", "dropout": 0.2},
    "neuron": {"pruning_granularity": "neuron", "pruning_rate": 0.3},
}


@pytest.mark.parametrize("config", list(WARM_CONFIGS))
def test_warm_start_after_a_pickle_round_trip_continues_as_without(digits, config):
    X, y = digits
    first = clf(n_rounds=1, warm_start=True, **WARM_CONFIGS[config]).fit(X, y)
    second = round_trip(first)
    for est in (first, second):
        est.set_params(n_rounds=3).fit(X, y)
    assert [r["round"] for r in second.rounds_] == [0, 1, 2, 3]
    assert_same_state(second.masks_, first.masks_)
    assert_same_state(second.net_.module_.state_dict(), first.net_.module_.state_dict())
    np.testing.assert_array_equal(second.predict_proba(X), first.predict_proba(X))
    assert_same_state(second.rewind_params_, first.rewind_params_)


def test_theta0_given_by_initial_params_is_stored_and_continues(digits):
    X, y = digits
    donor = clf(n_rounds=0, rewind_iteration=2, random_state=1).fit(X, y)
    first = clf(n_rounds=1, warm_start=True).fit(X, y, initial_params=donor.rewind_params_)
    packed = first.__getstate__()[persistence._PACKED]
    assert packed["init"][0] == "state"  # not the estimator's own seed: stored
    second = round_trip(first)
    assert_same_state(second.init_params_, donor.rewind_params_)
    for est in (first, second):
        est.set_params(n_rounds=2).fit(X, y)
    assert_same_state(second.masks_, first.masks_)
    np.testing.assert_array_equal(second.predict_proba(X), first.predict_proba(X))


def test_theta0_that_does_not_regenerate_warns_and_is_dropped(digits, monkeypatch):
    X, y = digits
    est = clf(warm_start=True).fit(X, y)
    data = pickle.dumps(est)
    assert est.__getstate__()[persistence._PACKED]["init"][0] == "seed"
    regenerate = persistence._regenerate_init

    def another_torch(net, seed):  # θ0 drawn differently, as by another torch version
        return {k: v + 1 if v.is_floating_point() else v
                for k, v in regenerate(net, seed).items()}

    monkeypatch.setattr(persistence, "_regenerate_init", another_torch)
    with pytest.warns(UserWarning, match="did not regenerate"):
        loaded = pickle.loads(data)
    monkeypatch.undo()
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    assert not hasattr(loaded, "init_params_") and not hasattr(loaded, "rewind_params_")
    assert loaded._checkpoint is None
    # a warm-start fit has nothing to continue from: it starts over
    loaded.set_params(n_rounds=1).fit(X, y)
    assert [r["round"] for r in loaded.rounds_] == [0, 1]


def test_pruned_weight_that_is_not_zero_is_stored_in_full(digits):
    X, y = digits
    est = clf().fit(X, y)
    mask = est.masks_["layers.0.weight"]
    pruned = torch.nonzero(~mask)[0]
    with torch.no_grad():
        est.net_.module_.layers[0].weight[tuple(pruned)] = 0.5
    packed = est.__getstate__()[persistence._PACKED]
    assert "data" in packed["module"]["layers.0.weight"]
    assert "values" in packed["module"]["layers.2.weight"]
    loaded = round_trip(est)
    assert float(loaded.net_.module_.layers[0].weight[tuple(pruned)]) == 0.5


# ----------------------------------------------------------- predict path
def _inference(est):
    return inference.inference_cache(est).module


@pytest.mark.parametrize("density", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("make, data", [(clf, "digits"), (reg, "diabetes")])
def test_predict_matches_the_masked_network(make, data, density, request, monkeypatch):
    X, y = request.getfixturevalue(data)
    monkeypatch.setattr(inference, "SPARSE_MAX_DENSITY", density)
    est = make().fit(X, y)
    sparse_layers = [m for m in _inference(est).modules() if isinstance(m, SparseLinearT)]
    n_linear = len(est.masks_)
    assert len(sparse_layers) == {0.0: 0, 1.0: n_linear}.get(density, len(sparse_layers))
    np.testing.assert_allclose(outputs(est, X), masked_outputs(est, X), rtol=1e-5, atol=1e-6)
    if make is clf:
        agree = np.mean(est.predict(X) == est.classes_[masked_outputs(est, X).argmax(1)])
        assert agree == 1.0


@pytest.mark.parametrize("density", [0.0, 1.0])
def test_conv_predict_matches_the_masked_network(digits, density, monkeypatch):
    X, y = digits
    monkeypatch.setattr(inference, "SPARSE_MAX_DENSITY", density)
    est = LotteryTicketClassifier(module="conv2", input_shape=(1, 8, 8), n_rounds=3,
                                  pruning_rate=0.6, max_epochs=1, batch_size=50,
                                  random_state=0).fit(X, y)
    infer = _inference(est)
    compact_widths = [m.out_channels for m in infer.modules() if isinstance(m, nn.Conv2d)]
    assert len(compact_widths) == 2
    assert any(isinstance(m, TransposedRun) for m in infer.modules()) == (density > 0)
    np.testing.assert_allclose(est.predict_proba(X), masked_outputs(est, X),
                               rtol=1e-5, atol=1e-6)
    images = X.reshape(-1, 1, 8, 8)
    np.testing.assert_allclose(est.predict_proba(images), masked_outputs(est, X),
                               rtol=1e-5, atol=1e-6)


def test_dense_network_predicts_with_itself(digits):
    X, y = digits
    est = clf(n_rounds=0).fit(X, y)
    assert _inference(est) is est.net_.module_
    proba = est.net_.predict_proba(torch.as_tensor(X))  # skorch's own path
    np.testing.assert_allclose(est.predict_proba(X), proba, rtol=1e-5, atol=1e-6)


def _sparse_mlp(n_in=20, hidden=(12, 8), n_out=3, seed=0):
    torch.manual_seed(seed)
    module = MLP(n_in, n_out, hidden_layer_sizes=hidden).eval()
    masks = {}
    for name, p in module.named_parameters():
        if name.endswith("weight"):
            masks[name] = torch.rand(p.shape) < 0.6
    w0, w1, w2 = (masks[f"layers.{i}.weight"] for i in (0, 2, 4))
    w0[:, :8] = False          # inputs 0-7 are read by no weight
    w0[3] = False              # hidden unit 3 reads nothing: a constant act(bias)
    w1[:, 5] = False           # hidden unit 5 feeds nothing: removed by compaction
    w2[:, 2] = False           # second-layer unit 2 feeds nothing
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name in masks:
                p.mul_(masks[name])
            else:
                p.uniform_(-0.5, 0.5)  # non-zero biases: the folded constants matter
        module.layers[0].bias[3] = 0.4  # relu(0.4): the constant unit 3 contributes
    return module, masks


@pytest.mark.parametrize("density", [0.0, 1.0])
def test_inference_module_removes_dead_units_and_inputs(density):
    module, masks = _sparse_mlp()
    x = torch.randn(37, 20)
    with torch.no_grad():
        want = module(x)
    rng_before = torch.get_rng_state()
    small = build_inference_module(module, masks, sparse_max_density=density, chunk=8)
    assert torch.equal(torch.get_rng_state(), rng_before)
    with torch.no_grad():
        got = small(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    if density == 0.0:
        select, first, second = small.layers[0], small.layers[1], small.layers[3]
        assert select.index.tolist() == list(range(8, 20))
        # 12 units - unit 5 (no outgoing weights) - unit 3 (constant, folded)
        assert first.weight.shape == (10, 12) and second.weight.shape[1] == 10
    else:
        (run,) = small.layers
        assert isinstance(run, TransposedRun)
        first = run.ops[0]
        assert isinstance(first, SparseLinearT) and first.out_features == 10
        assert first.nnz == int((module.layers[0].weight[[i for i in range(12)
                                                          if i not in (3, 5)]] != 0).sum())
    # the source module is untouched
    assert module.layers[0].weight.shape == (12, 20)


def test_sparse_linear_is_the_linear_map():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(9, 13, generator=gen) * (torch.rand(9, 13, generator=gen) < 0.3)
    w[4] = 0.0  # an output that reads nothing is its bias
    b = torch.randn(9, generator=gen)
    x = torch.randn(13, 5, generator=gen)
    layer = SparseLinearT(w, b)
    assert layer.nnz == int((w != 0).sum())
    torch.testing.assert_close(layer(x), w @ x + b[:, None])
    torch.testing.assert_close(layer(x)[4], b[4].expand(5))


def test_cache_follows_refit_warm_start_and_in_place_changes(digits):
    X, y = digits
    est = clf(n_rounds=2, warm_start=True).fit(X, y)
    first = _inference(est)
    assert _inference(est) is first  # cached
    est.predict(X)
    assert "_inference_cache" not in vars(est) and not any(
        isinstance(v, inference._InferenceCache) for v in vars(est).values())
    est.set_params(n_rounds=3).fit(X, y)  # warm start: new masks and weights
    second = _inference(est)
    assert second is not first
    np.testing.assert_allclose(est.predict_proba(X), masked_outputs(est, X),
                               rtol=1e-5, atol=1e-6)
    est.set_params(warm_start=False, random_state=3).fit(X, y)  # refit
    assert _inference(est) is not second
    np.testing.assert_allclose(est.predict_proba(X), masked_outputs(est, X),
                               rtol=1e-5, atol=1e-6)
    before = est.predict_proba(X)
    with torch.no_grad():
        est.net_.module_.layers[4].bias[0] += 3.0  # an in-place change of a weight
    after = est.predict_proba(X)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, masked_outputs(est, X), rtol=1e-5, atol=1e-6)


def test_cache_is_never_pickled(digits):
    X, y = digits
    est = clf().fit(X, y)
    est.predict(X)
    assert inference._CACHES.get(est) is not None
    loaded = round_trip(est)
    assert inference._CACHES.get(loaded) is None
    twin = copy.deepcopy(est)
    assert inference._CACHES.get(twin) is None
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_predict_leaves_the_global_rng_alone(digits):
    X, y = digits
    est = clf().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        before = torch.get_rng_state()
        est.predict(X)
        assert torch.equal(torch.get_rng_state(), before)


def test_transposed_run_shares_blocks_among_threads_exactly():
    gen = torch.Generator().manual_seed(0)
    w1 = torch.randn(30, 17, generator=gen) * (torch.rand(30, 17, generator=gen) < 0.2)
    w2 = torch.randn(4, 30, generator=gen)
    run = TransposedRun([SparseLinearT(w1, torch.randn(30, generator=gen)), nn.ReLU(),
                         DenseLinearT(w2, None)], chunk=7)
    x = torch.randn(2, 50, 17, generator=gen)  # 100 rows in 15 blocks, 3-d input
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            one = run(x)
        torch.set_num_threads(3)
        with torch.no_grad():
            three = run(x)
        assert torch.get_num_threads() == 3  # restored after the worker threads
    finally:
        torch.set_num_threads(previous)
    assert one.shape == (2, 50, 4)
    assert torch.equal(one, three)
    torch.testing.assert_close(one, torch.relu(x @ w1.t() + run.ops[0].bias[:, 0]) @ w2.t())


def test_export_module_re_exports_inference_and_persistence(monkeypatch):
    for name in export.__all__:
        home = inference if name in inference.__all__ else persistence
        assert getattr(export, name) is getattr(home, name)
    monkeypatch.setattr(export, "SPARSE_MAX_DENSITY", 0.5)  # a setting is inference's own
    assert inference.SPARSE_MAX_DENSITY == 0.5 and export.SPARSE_MAX_DENSITY == 0.5
    monkeypatch.undo()
    assert inference.SPARSE_MAX_DENSITY == 0.1
