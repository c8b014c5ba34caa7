"""Convolutional lottery tickets on image data: shapes, pruning rates, model selection.

Small and fast: scikit-learn's 8x8 digits as ``(1, 8, 8)`` images (Conv-2 has
a single 2x2 pool, so 8x8 works), upsampled to ``(1, 16, 16)`` for LeNet-5
(which needs at least 12 pixels), and a smoke test on real Fashion-MNIST that
is skipped when its files are not installed.
"""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sklottery import LotteryTicketClassifier
from sklottery.analysis import EvaluationCallback, ticket_curve
from sklottery.modules import MLP, Conv2, LeNet5, layer_kinds
from sklottery.pruning import n_to_prune
from sklottery.stats import summarize_curve

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="module")
def digits8():
    """300 digits as (n, 1, 8, 8) float32 images in [0, 1]."""
    X, y = load_digits(return_X_y=True)
    X = (X[:300] / 16.0).astype(np.float32)
    return X.reshape(-1, 1, 8, 8), y[:300]


@pytest.fixture(scope="module")
def digits16(digits8):
    """The same digits upsampled to (n, 1, 16, 16) (each pixel -> 2x2)."""
    X, y = digits8
    return np.kron(X, np.ones((1, 1, 2, 2), dtype=np.float32)), y


def cnn(module="conv2", side=8, **kw):
    params = dict(module=module, input_shape=(1, side, side), max_epochs=2, batch_size=30,
                  n_rounds=1, learning_rate_init=2e-3, random_state=0)
    params.update(kw)
    return LotteryTicketClassifier(**params)


# --------------------------------------------------------------------------
# model selection and input formats
# --------------------------------------------------------------------------

def test_grid_search_pipeline_flat_images(digits8):
    """Flat (n, C*H*W) rows through a Pipeline and GridSearchCV, Conv-2 tickets."""
    X, y = digits8
    X_flat = X.reshape(len(X), -1)
    pipe = make_pipeline(MinMaxScaler(), cnn(n_rounds=1))
    grid = GridSearchCV(
        pipe, {"lotteryticketclassifier__conv_pruning_rate": [0.1, 0.3]}, cv=2,
    ).fit(X_flat, y)
    assert len(grid.cv_results_["params"]) == 2
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    clf = grid.best_estimator_[-1]
    assert isinstance(clf.net_.module_, Conv2)
    assert clf.net_.module_.input_shape == (1, 8, 8)
    assert len(clf.rounds_) == 2
    rate = grid.best_params_["lotteryticketclassifier__conv_pruning_rate"]
    kinds = layer_kinds(clf.net_.module_)
    for name, kind in kinds.items():
        if kind == "conv":
            n = clf.masks_[name].numel()
            expected = 100.0 * (n - n_to_prune(n, rate)) / n
            assert clf.rounds_[1]["remaining_by_layer"][name] == pytest.approx(expected)
    assert grid.score(X_flat, y) > 0.3  # 10 classes: chance is 0.1


def test_grid_search_over_cnn_modules(digits16):
    """GridSearchCV picks between Conv-2 and LeNet-5 on 16x16 images."""
    X, y = digits16
    X, y = X[:200].reshape(200, -1), y[:200]
    grid = GridSearchCV(cnn(side=16, n_rounds=1, max_epochs=1),
                        {"module": ["conv2", "lenet5"]}, cv=2).fit(X, y)
    assert [p["module"] for p in grid.cv_results_["params"]] == ["conv2", "lenet5"]
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    expected = {"conv2": Conv2, "lenet5": LeNet5}[grid.best_params_["module"]]
    assert isinstance(grid.best_estimator_.net_.module_, expected)


def test_4d_input_equals_flat_input(digits8):
    """(n, C, H, W) arrays are accepted with input_shape and give the flat fit."""
    X, y = digits8
    X_flat = X.reshape(len(X), -1)
    a = cnn(n_rounds=1, max_epochs=1).fit(X, y)
    b = cnn(n_rounds=1, max_epochs=1).fit(X_flat, y)
    assert a.n_features_in_ == b.n_features_in_ == 64
    for ra, rb in zip(a.rounds_, b.rounds_):
        assert ra["train_loss"] == rb["train_loss"]
        assert ra["valid_loss"] == rb["valid_loss"]
    for name in a.masks_:
        assert torch.equal(a.masks_[name], b.masks_[name])
    # predict accepts both layouts, and dropout-free eval is deterministic
    np.testing.assert_array_equal(a.predict(X), a.predict(X_flat))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    proba = a.predict_proba(X[:5])
    assert proba.shape == (5, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_4d_input_needs_matching_input_shape(digits8):
    X, y = digits8
    with pytest.raises(ValueError, match="input_shape"):
        cnn(input_shape=None).fit(X, y)
    with pytest.raises(ValueError, match="input_shape"):
        LotteryTicketClassifier(module="conv2", input_shape=(1, 4, 16), n_rounds=0,
                                max_epochs=1).fit(X, y)
    clf = cnn(n_rounds=0, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError):
        clf.predict(X[:, :, :4, :4])


def test_conv_module_without_input_shape_is_a_clear_error_before_training(digits8):
    X, y = digits8
    # 4 features used to become a silent (1, 2, 2) image; 64 a guessed (1, 8, 8)
    for n_features in (4, 64):
        clf = cnn(input_shape=None, n_rounds=0, max_epochs=1)
        with pytest.raises(ValueError, match=r"module='conv2' is a convolutional network "
                                             r"and needs input_shape=\(C, H, W\)"):
            clf.fit(X.reshape(len(X), -1)[:, :n_features], y)
        assert not hasattr(clf, "net_")  # nothing was built or trained
    # the shape given through module_params works like input_shape
    clf = cnn(input_shape=None, module_params={"input_shape": (1, 8, 8)}, n_rounds=0,
              max_epochs=1).fit(X.reshape(len(X), -1), y)
    assert clf.net_.module_.input_shape == (1, 8, 8)


# --------------------------------------------------------------------------
# per-kind pruning rates
# --------------------------------------------------------------------------

def _expected_remaining(n, rate, rounds):
    left = n
    for _ in range(rounds):
        left -= n_to_prune(left, rate)
    return 100.0 * left / n


@pytest.mark.parametrize("module, side", [("conv2", 8), ("lenet5", 16)])
def test_conv_pruning_rate_honoured(module, side, digits8, digits16):
    X, y = digits8 if side == 8 else digits16
    rates = {"conv": 0.05, "fc": 0.2, "output": 0.1}  # output: 'half' of 0.2
    clf = cnn(module, side, conv_pruning_rate=rates["conv"], pruning_rate=rates["fc"],
              output_pruning_rate="half", n_rounds=2, max_epochs=1).fit(X, y)
    kinds = layer_kinds(clf.net_.module_)
    assert set(kinds.values()) == {"conv", "fc", "output"}
    assert sum(k == "conv" for k in kinds.values()) == 2
    params = dict(clf.net_.module_.named_parameters())
    for r in (1, 2):
        by_layer = clf.rounds_[r]["remaining_by_layer"]
        assert set(by_layer) == set(kinds)
        for name, kind in kinds.items():
            n = params[name].numel()
            got = by_layer[name]
            assert got == pytest.approx(_expected_remaining(n, rates[kind], r))
            # up to the round-half-up rule: within one weight per round of the rate
            assert abs(got - 100.0 * (1 - rates[kind]) ** r) <= 100.0 * r / n + 1e-9
    # pruned weights (conv kernels included) are exactly zero after training
    for name, mask in clf.masks_.items():
        assert mask.shape == params[name].shape
        assert torch.all(params[name].detach()[~mask] == 0)
    conv_name = next(n for n, k in kinds.items() if k == "conv")
    assert params[conv_name].dim() == 4


def test_conv_pruning_rate_none_uses_pruning_rate(digits8):
    X, y = digits8
    clf = cnn(conv_pruning_rate=None, pruning_rate=0.3, n_rounds=1, max_epochs=1).fit(X, y)
    kinds = layer_kinds(clf.net_.module_)
    by_layer = clf.rounds_[1]["remaining_by_layer"]
    for name, kind in kinds.items():
        n = clf.masks_[name].numel()
        rate = 0.15 if kind == "output" else 0.3
        assert by_layer[name] == pytest.approx(_expected_remaining(n, rate, 1))


# --------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------

@pytest.mark.parametrize("module, side, module_cls", [
    ("conv2", 8, Conv2), ("lenet5", 16, LeNet5), (None, 8, MLP),
])
def test_dropout_reaches_module(module, side, module_cls, digits8, digits16):
    X, y = digits8 if side == 8 else digits16
    clf = cnn(module, side, dropout=0.3, n_rounds=0, max_epochs=1).fit(X, y)
    net_module = clf.net_.module_
    assert isinstance(net_module, module_cls)
    drops = [m for m in net_module.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 2  # after each of the two hidden fc layers
    assert all(d.p == pytest.approx(0.3) for d in drops)
    # prediction runs in eval mode: dropout off, deterministic
    np.testing.assert_array_equal(clf.predict_proba(X[:20]), clf.predict_proba(X[:20]))
    plain = clone(clf).set_params(dropout=0.0).fit(X, y)
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.net_.module_.modules())


# --------------------------------------------------------------------------
# the per-round capture and the control used by the Fashion-MNIST examples
# --------------------------------------------------------------------------

def test_evaluation_callback_captures_rounds_without_changing_the_ticket(digits8):
    """ticket_curve's EvaluationCallback records every round of one IMP fit."""
    X, y = digits8
    X_fit, y_fit, X_test, y_test = X[:200], y[:200], X[200:], y[200:]
    flat = [torch.as_tensor(a.reshape(len(a), -1)) for a in (X_test, X_fit)]
    callback = EvaluationCallback(flat[0], torch.as_tensor(y_test), flat[1],
                                  torch.as_tensor(y_fit))
    plain = cnn(n_rounds=2, max_epochs=2).fit(X_fit, y_fit)
    rec_ticket = cnn(n_rounds=2, max_epochs=2, record_history="masks",
                     callbacks=[("evaluation", callback)]).fit(X_fit, y_fit)
    history = rec_ticket.history_
    rec = dict(rec_ticket.net_.callbacks_)["evaluation"].rounds_
    assert len(rec) == 3
    # the callback's early stop is the estimator's (same grid, same tie rule)
    assert [r["early_stop_iteration"] for r in rec] == [
        r["early_stop_iteration"] for r in rec_ticket.rounds_]
    assert all(0 <= r["test_acc_init"] <= 1 for r in rec)
    for ra, rb in zip(plain.rounds_, rec_ticket.rounds_):
        assert ra["train_loss"] == rb["train_loss"]
        assert ra["valid_loss"] == rb["valid_loss"]
    # the engine's history holds every round's masks; the last is the final network
    assert [h["round"] for h in history] == [0, 1, 2]
    assert set(history[0]) == {"round", "masks"}  # record_history='masks': no weights
    for name, mask in plain.masks_.items():
        assert torch.equal(history[-1]["masks"][name], mask)
    one = 1.0 / len(X_test)  # at most one prediction may flip (other batch sizes)
    assert rec[-1]["test_acc"] == pytest.approx(plain.score(X_test, y_test),
                                                             abs=one)
    assert rec[-1]["train_acc"] == pytest.approx(plain.score(X_fit, y_fit), abs=1 / 200)
    assert all(m.all() for m in history[0]["masks"].values())  # round 0 is dense
    # random-reinit control: the round-1 mask from another initialisation
    control = cnn(n_rounds=0, max_epochs=1, random_state=123).fit(
        X_fit, y_fit, initial_masks=history[1]["masks"])
    assert control.rounds_[0]["remaining_by_layer"] == pytest.approx(
        rec_ticket.rounds_[1]["remaining_by_layer"])
    w0 = control.init_params_["features.0.weight"]
    assert not torch.equal(w0, rec_ticket.init_params_["features.0.weight"])


def test_ticket_curve_random_reinit_control_on_images(digits8):
    """The examples' table: ticket and random reinit per round on a fixed test set."""
    X, y = digits8
    X_flat = X.reshape(len(X), -1)
    df = ticket_curve(cnn(n_rounds=2, max_epochs=1), X_flat[:200], y[:200],
                      strategies=["rewind", "random"], n_trials=2, X_test=X_flat[200:],
                      y_test=y[200:], random_state=0)
    ticket, control = df[df["strategy"] == "rewind"], df[df["strategy"] == "random"]
    assert sorted(ticket["round"]) == [0, 0, 1, 1, 2, 2]
    assert sorted(control["round"]) == [1, 1, 2, 2]  # the control starts at round 1
    # the control trains the ticket's mask: same level at every round
    levels = ticket.set_index(["trial", "round"])["weights_remaining"]
    for _, row in control.iterrows():
        assert row["weights_remaining"] == pytest.approx(levels[(row["trial"], row["round"])])
    assert df["test_acc"].between(0, 1).all() and df["test_acc"].notna().all()
    assert (df["early_stop_iteration"] >= 1).all()
    summary = summarize_curve(df, metric="test_acc", by=["strategy", "round"])
    assert summary["n"].tolist() == [2, 2, 2, 2, 2]


# --------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------

def test_fashion_mnist_lenet300_100_smoke():
    from sklottery.datasets import fetch_fashion_mnist

    try:
        X, y = fetch_fashion_mnist(subset="train", return_X_y=True, download_if_missing=False)
        X_test, y_test = fetch_fashion_mnist(subset="test", return_X_y=True,
                                             download_if_missing=False)
    except OSError as exc:
        pytest.skip(f"Fashion-MNIST files not installed (looked in {FASHION_MNIST_DIR} and "
                    f"the sklottery data home; `apt-get install dataset-fashion-mnist`): {exc}")
    clf = LotteryTicketClassifier(n_rounds=1, max_epochs=3, random_state=0)
    clf.fit(X[:2000], y[:2000])
    assert [round(r["weights_remaining"], 2) for r in clf.rounds_] == [100.0, 80.04]
    acc = clf.score(X_test[:1000], y_test[:1000])
    assert acc > 0.7, acc
