"""LotteryTicketRegressor: the IMP engine with a regression face."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_diabetes, make_regression
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from test_reliability import PoisonInRound

from sklottery import DivergenceWarning, LotteryTicketRegressor
from sklottery.training import ValidR2, r2_t
from sklottery.analysis import REGRESSION_COLUMNS, ticket_curve
from sklottery.stats import VERDICTS, matching_summary, verdict


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def small(**kw):
    p = dict(hidden_layer_sizes=(32,), max_epochs=10, batch_size=32, n_rounds=2,
             learning_rate_init=5e-3, random_state=0)
    p.update(kw)
    return LotteryTicketRegressor(**p)


def test_fits_diabetes_and_prunes(diabetes):
    X, y = diabetes
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
    reg = small(max_epochs=20, learning_rate_init=1e-3).fit(X_tr, y_tr)
    # least squares reaches R2 0.36 on this split; the pruned MLP about as much
    assert reg.score(X_te, y_te) > 0.3
    # 10x32 at 20 %: 320 -> 256 -> 205; 32x1 output at 10 %: 32 -> 29 -> 26 (of 352)
    assert [round(r["weights_remaining"], 2) for r in reg.rounds_] == [100.0, 80.97, 65.62]
    for rec in reg.rounds_:
        assert {"valid_r2", "valid_r2_at_early_stop", "valid_loss"} <= set(rec)
        assert rec["valid_r2"] <= 1 and 1 <= rec["early_stop_iteration"] <= rec["n_iter"]
    pred = reg.predict(X_te)
    assert pred.shape == (len(X_te),) and pred.dtype == np.float64
    # predictions are in the units of y (diabetes: 25..346), not standardised
    assert 50 < pred.mean() < 250
    assert reg.y_mean_ == pytest.approx([y_tr.mean()]) and reg.y_scale_ == pytest.approx(
        [y_tr.std()])


def test_scale_y_false_trains_on_raw_targets(diabetes):
    X, y = diabetes
    reg = small(scale_y=False, n_rounds=0).fit(X, y / 100)
    assert reg.y_mean_ == [0.0] and reg.y_scale_ == [1.0]
    scaled = small(n_rounds=0).fit(X, y / 100)
    # same network and seeds, different targets: different predictions
    assert not np.allclose(reg.predict(X[:20]), scaled.predict(X[:20]))


def test_multi_output(diabetes):
    X, _ = diabetes
    X2, Y = make_regression(n_samples=300, n_features=8, n_targets=3, noise=5,
                            random_state=0)
    Y[:, 2] *= 100  # very different scales per column
    reg = small(max_epochs=30).fit(X2, Y)
    assert reg.n_outputs_ == 3 and reg.predict(X2).shape == (300, 3)
    assert reg.score(X2, Y) > 0.8
    assert reg.net_.module_.layers[-1].out_features == 3
    one = small(n_rounds=0).fit(X2, Y[:, :1])
    assert one.predict(X2).shape == (300, 1)  # a 2-D y gives 2-D predictions


def test_huber_loss_is_used(diabetes):
    X, y = diabetes
    mse = small(n_rounds=0).fit(X, y)
    huber = small(n_rounds=0, loss="huber").fit(X, y)
    assert isinstance(huber.net_.criterion_, torch.nn.HuberLoss)
    assert isinstance(mse.net_.criterion_, torch.nn.MSELoss)
    assert not np.allclose(mse.predict(X[:10]), huber.predict(X[:10]))


def test_sklearn_tools_and_pickle(diabetes):
    X, y = diabetes
    pipe = make_pipeline(StandardScaler(), small(n_rounds=1))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0)
    grid = GridSearchCV(small(n_rounds=1), {"pruning_rate": [0.2, 0.5]}, cv=2).fit(X, y)
    assert set(grid.cv_results_["param_pruning_rate"]) == {0.2, 0.5}
    reg = small().fit(X, y)
    back = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))
    np.testing.assert_array_equal(clone(reg).set_params(random_state=0).fit(X, y).predict(X),
                                  reg.predict(X))


def test_pandas_input_and_feature_names(diabetes):
    X, y = diabetes
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    reg = small(n_rounds=0).fit(frame, pd.Series(y))
    assert list(reg.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        plain = reg.predict(X)
    np.testing.assert_allclose(reg.predict(frame), plain, rtol=1e-6)


def test_warm_start_resume_equals_uninterrupted(diabetes):
    X, y = diabetes
    full = small(n_rounds=3).fit(X, y)
    part = small(n_rounds=1, warm_start=True).fit(X, y)
    part.set_params(n_rounds=3).fit(X, y)
    np.testing.assert_array_equal(part.predict(X), full.predict(X))
    with pytest.raises(ValueError, match="same 1 column"):
        part.set_params(n_rounds=4).fit(X, np.c_[y, y])


def test_r2_matches_sklearn_including_constant_columns():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 3))
    pred = y + rng.normal(scale=0.5, size=y.shape)
    y[:, 2] = 1.0  # constant column: sklearn scores 0 unless predicted exactly
    got = r2_t(torch.as_tensor(pred), torch.as_tensor(y))
    assert got == pytest.approx(r2_score(y, pred))
    pred[:, 2] = 1.0
    assert r2_t(torch.as_tensor(pred), torch.as_tensor(y)) == pytest.approx(r2_score(y, pred))


def test_valid_r2_callback_matches_sklearn():
    class Net:
        def __init__(self):
            self.recorded = {}
            self.history = self

        def record(self, key, value):
            self.recorded[key] = value

    rng = np.random.default_rng(1)
    y = rng.normal(size=(40, 2))
    pred = y + rng.normal(scale=0.3, size=y.shape)
    net, cb = Net(), ValidR2()
    cb.on_epoch_begin(net)
    for i in range(0, 40, 16):  # three validation batches
        yb, pb = torch.as_tensor(y[i:i + 16]), torch.as_tensor(pred[i:i + 16])
        cb.on_batch_end(net, batch=(None, yb), training=False, y_pred=pb)
    cb.on_batch_end(net, batch=(None, torch.zeros(4, 2)), training=True,
                    y_pred=torch.ones(4, 2))  # training batches are ignored
    cb.on_epoch_end(net)
    assert net.recorded["valid_r2"] == pytest.approx(r2_score(y, pred))


def test_ticket_curve_and_verdict_for_a_regressor(diabetes):
    X, y = diabetes
    df = ticket_curve(small(n_rounds=1, max_epochs=5), X, y,
                      strategies=["rewind", "random"], n_trials=2, random_state=0)
    assert list(df.columns) == REGRESSION_COLUMNS
    assert (df["test_mse"] > 0).all() and (df["test_r2"] <= 1).all()
    assert df["n_test"].eq(111).all()
    # MSE is in the units of y: compare with R2 on the same rows
    var = np.var(y)  # about 5900
    assert df["test_mse"].median() == pytest.approx(var * (1 - df["test_r2"].median()),
                                                    rel=0.3)
    r2 = matching_summary(df, metric="test_r2")
    mse = matching_summary(df, metric="test_mse")
    assert r2["greater_is_better"] and not mse["greater_is_better"]
    assert not r2["percent"]
    assert r2["verdict"] in VERDICTS
    assert "Weak evidence: only 2 trials" in verdict(r2)


def test_divergence_keeps_completed_rounds_and_resumes(diabetes):
    X, y = diabetes
    reference = small(n_rounds=1).fit(X, y)
    reg = small(n_rounds=3, callbacks=[PoisonInRound(at_round=2, at_batch=3)],
                warm_start=True)
    with pytest.warns(DivergenceWarning, match="diverged in round 2.*kept rounds 0 to 1 .the dense round and 1 pruning round; n_rounds_ = 1."):
        reg.fit(X, y)
    assert reg.stop_reason_ == "diverged" and [r["round"] for r in reg.rounds_] == [0, 1]
    np.testing.assert_array_equal(reg.predict(X), reference.predict(X))
    # continue without the poison: rounds 2 and 3 run as in an uninterrupted fit
    reg.set_params(callbacks=None).fit(X, y)
    full = small(n_rounds=3).fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), full.predict(X))


def test_bad_targets_fail_before_training(diabetes):
    X, y = diabetes
    with pytest.raises(ValueError, match="Input y contains NaN"):
        small().fit(X, np.where(np.arange(len(y)) == 3, np.nan, y))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        small().fit(X, y[:-1])
