"""Traditional pruning without retraining: ``test_<m>_no_retrain`` of ticket_curve.

For round r >= 1 of a fit: the weights trained in round r - 1, under round r's
mask, scored on the test set before any training of round r.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_regression
from sklearn.metrics import mean_squared_error, r2_score

from sklottery import LotteryTicketClassifier, LotteryTicketRegressor
from sklottery.training import BatchedTrainer, FitDriver, fit_many
from sklottery.analysis import (
    REGRESSION_COLUMNS,
    RESULT_COLUMNS,
    EvaluationCallback,
    ticket_curve,
)
from sklottery.estimators import target_standardization


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return X[100:500], y[100:500], X[:100], y[:100]


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=400, n_features=8, n_informative=5, noise=5.0,
                           random_state=0)
    X = X.astype(np.float32)
    return X[100:], y[100:], X[:100], y[:100]


def _classifier(seed):
    return LotteryTicketClassifier(hidden_layer_sizes=(24,), max_epochs=2, batch_size=50,
                                   n_rounds=2, pruning_rate=0.5, learning_rate_init=5e-3,
                                   record_history=True, random_state=seed)


def _regressor(seed):
    return LotteryTicketRegressor(hidden_layer_sizes=(16,), max_epochs=3, batch_size=50,
                                  n_rounds=2, pruning_rate=0.5, learning_rate_init=5e-3,
                                  record_history=True, random_state=seed)


def _with_callback(est, X_tr, y_tr, X_te, y_te):
    """``est`` scoring every round on the test set, as ticket_curve sets it up."""
    if isinstance(est, LotteryTicketRegressor):
        mean, scale = target_standardization(y_tr, est.scale_y)

        def targets(y):
            return torch.as_tensor((np.asarray(y, float).reshape(len(y), -1) - mean) / scale)

        cb = EvaluationCallback(torch.as_tensor(X_te), targets(y_te), torch.as_tensor(X_tr),
                                targets(y_tr), task="regression", y_scale=scale)
    else:
        cb = EvaluationCallback(torch.as_tensor(X_te), torch.as_tensor(y_te),
                                torch.as_tensor(X_tr), torch.as_tensor(y_tr))
    return est.set_params(callbacks=[("sklottery_evaluation", cb)])


def _refit(make, seeds, n_rounds, data, batched):
    """The fits again, stopped after ``n_rounds``: the same seeds (and, batched,
    the same batch) train the same rounds up to there."""
    X, y = data[:2]
    again = [_with_callback(make(s).set_params(n_rounds=n_rounds), *data) for s in seeds]
    assert all(err is None for err, _ in fit_many([(e, X, y, {}) for e in again],
                                                   batched=batched))
    return again


def _by_hand(est, before, r, X_tr, y_tr, X_te, y_te):
    """``before`` (the fit stopped after round ``r - 1``): its trained weights
    masked with round ``r``'s mask of ``est``, forward on the test set."""
    module = before.net_.module_
    state = {k: v.clone() for k, v in module.state_dict().items()}
    for name, mask in est.history_[r]["masks"].items():
        # it is the network the fit trained in round r - 1
        assert torch.equal(state[name], est.history_[r - 1]["final"][name])
        state[name] = state[name] * mask
    module.load_state_dict(state)
    module.eval()
    with torch.no_grad():
        out = module(torch.as_tensor(X_te)).double()
    if isinstance(est, LotteryTicketRegressor):
        mean, scale = target_standardization(y_tr, est.scale_y)
        pred = (out.numpy() * scale + mean).ravel()
        return {"r2": r2_score(y_te, pred), "mse": mean_squared_error(y_te, pred)}
    return {"acc": float((out.argmax(1).numpy() == y_te).mean())}


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_no_retrain_score_is_the_pruned_trained_network(task, batched, request):
    data = request.getfixturevalue("digits" if task == "classification" else "regression")
    X_tr, y_tr, X_te, y_te = data
    make = _classifier if task == "classification" else _regressor
    ests = [_with_callback(make(seed), *data) for seed in (0, 1)]
    outcomes = fit_many([(e, X_tr, y_tr, {}) for e in ests], batched=batched)
    assert all(err is None for err, _ in outcomes)
    # batched: the two members (same architecture and settings) train as one batch
    driver = FitDriver(_with_callback(make(0), *data).fit_steps(X_tr, y_tr)).advance()
    assert BatchedTrainer().accepts(driver.request) is None
    driver.steps.close()
    metrics = ("acc",) if task == "classification" else ("r2", "mse")
    for est in ests:
        rounds = dict(est.net_.callbacks_)["sklottery_evaluation"].rounds_
        assert len(rounds) == 3
        for m in metrics:
            assert np.isnan(rounds[0][f"test_{m}_no_retrain"])  # round 0: nothing pruned
    for r in (1, 2):
        for est, before in zip(ests, _refit(make, (0, 1), r - 1, data, batched)):
            rounds = dict(est.net_.callbacks_)["sklottery_evaluation"].rounds_
            want = _by_hand(est, before, r, X_tr, y_tr, X_te, y_te)
            for m in metrics:
                assert rounds[r][f"test_{m}_no_retrain"] == pytest.approx(want[m], rel=1e-5), m


def test_ticket_curve_no_retrain_column(digits, regression):
    X_tr, y_tr, X_te, y_te = digits
    kw = dict(n_trials=1, random_state=0, X_test=X_te, y_test=y_te)
    strategies = ["rewind", "continue", "random", "scratch_e", "one_shot"]
    df = ticket_curve(_classifier(None).set_params(record_history=False), X_tr, y_tr,
                      strategies=strategies, **kw)
    assert "test_acc_no_retrain" in RESULT_COLUMNS and list(df.columns) == RESULT_COLUMNS
    col = df["test_acc_no_retrain"]
    # round 0 and the controls trained from a new initialisation: NaN
    assert col[df["round"] == 0].isna().all()
    assert col[df.strategy.isin(["random", "scratch_e"])].isna().all()
    chains = df[(df["round"] > 0) & df.strategy.isin(["rewind", "continue", "one_shot"])]
    assert len(chains) == 6 and chains["test_acc_no_retrain"].between(0, 1).all()
    # prune + fine-tune starts each round from exactly those weights
    cont = df[(df.strategy == "continue") & (df["round"] > 0)]
    np.testing.assert_array_equal(cont["test_acc_no_retrain"], cont["test_acc_init"])
    # a rewound ticket starts elsewhere (θ0): its no-retrain score is another number
    tick = df[(df.strategy == "rewind") & (df["round"] > 0)]
    assert (tick["test_acc_no_retrain"] != tick["test_acc_init"]).any()
    # the regressor: R² and MSE
    X_tr, y_tr, X_te, y_te = regression
    reg = ticket_curve(_regressor(None).set_params(record_history=False), X_tr, y_tr,
                       strategies=["rewind", "continue"], n_trials=1, random_state=0,
                       X_test=X_te, y_test=y_te)
    assert list(reg.columns) == REGRESSION_COLUMNS
    cont = reg[(reg.strategy == "continue") & (reg["round"] > 0)]
    for m in ("r2", "mse"):
        np.testing.assert_array_equal(cont[f"test_{m}_no_retrain"], cont[f"test_{m}_init"])
        assert reg.loc[reg["round"] == 0, f"test_{m}_no_retrain"].isna().all()
        assert reg.loc[reg["round"] > 0, f"test_{m}_no_retrain"].notna().all()


def test_no_retrain_score_does_not_change_training(digits):
    X_tr, y_tr, X_te, y_te = digits
    plain = _classifier(3).fit(X_tr, y_tr)
    scored = _with_callback(_classifier(3), X_tr, y_tr, X_te, y_te).fit(X_tr, y_tr)
    for h_a, h_b in zip(plain.history_, scored.history_):
        for name in h_a["masks"]:
            assert torch.equal(h_a["masks"][name], h_b["masks"][name])
            assert torch.equal(h_a["final"][name], h_b["final"][name])
    for k, v in plain.net_.module_.state_dict().items():
        assert torch.equal(v, scored.net_.module_.state_dict()[k])
