"""Linear mode connectivity (Frankle et al. 2020): instability to SGD noise."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklottery import LotteryTicketClassifier, LotteryTicketRegressor
from sklottery.stability import (
    _measure,
    instability,
    linear_mode_connectivity,
    stability_sweep,
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return X[:400], y[:400], X[400:600], y[400:600]


def small(**kw):
    p = dict(hidden_layer_sizes=(32,), max_epochs=3, batch_size=20, learning_rate_init=3e-3,
             n_rounds=2, pruning_rate=0.5)
    p.update(kw)
    return LotteryTicketClassifier(**p)


def test_instability_by_hand():
    assert instability([10.0, 14.0, 12.0, 8.0]) == pytest.approx(14.0 - 9.0)
    assert instability([5.0, 4.0, 5.0]) == 0.0  # a dip is not instability
    with pytest.raises(ValueError, match="endpoints"):
        instability([1.0])


def test_endpoints_are_the_two_copies(digits):
    X, y, X_te, y_te = digits
    res = linear_mode_connectivity(small(), X, y, X_test=X_te, y_test=y_te, n_points=7,
                                   rewind_iteration=10, random_state=0)
    a, b = res.copies
    assert res.error[0] == pytest.approx(100 * (1 - a.score(X_te, y_te)))
    assert res.error[-1] == pytest.approx(100 * (1 - b.score(X_te, y_te)))
    assert len(res.error) == len(res.loss) == 7 and res.alphas[3] == 0.5
    assert res.instability == pytest.approx(res.error.max() - (res.error[0] + res.error[-1]) / 2)
    # the copies start from the same state and differ only by SGD noise
    assert torch.equal(a.init_params_["layers.0.weight"], b.init_params_["layers.0.weight"])
    assert not torch.equal(a.net_.module_.layers[0].weight, b.net_.module_.layers[0].weight)
    frame = res.to_frame()
    assert list(frame.columns) == ["alpha", "error", "loss"]


def test_identical_copies_have_zero_instability(digits):
    X, y, X_te, y_te = digits
    est = small()
    start = LotteryTicketClassifier(**{**est.get_params(), "n_rounds": 0,
                                       "random_state": 3}).fit(X, y).init_params_
    res = _measure(est, X, y, X_te, y_te, start, None, [5, 5], 0, 5)  # same data order
    assert np.all(res.error == res.error[0]) and res.instability == 0.0


def test_masks_hold_along_the_path(digits):
    X, y, X_te, y_te = digits
    ticket = small(random_state=0).fit(X, y)
    res = linear_mode_connectivity(small(), X, y, X_test=X_te, y_test=y_te, n_points=3,
                                   masks=ticket.masks_, random_state=1)
    a, b = res.copies
    assert res.weights_remaining == pytest.approx(ticket.rounds_[-1]["weights_remaining"])
    for name, mask in ticket.masks_.items():
        wa = a.net_.module_.state_dict()[name]
        wb = b.net_.module_.state_dict()[name]
        assert torch.all(wa[~mask] == 0) and torch.all(wb[~mask] == 0)
        # every interpolated network keeps the zeros too
        assert torch.all((0.5 * wa + 0.5 * wb)[~mask] == 0)


def test_pipeline_regressor_and_errors(digits):
    X, y, _, _ = digits
    res = linear_mode_connectivity(make_pipeline(StandardScaler(), small()), X, y, n_points=3,
                                   random_state=0)
    assert res.error.shape == (3,)
    Xr = X[:, :10]
    yr = Xr @ np.arange(10) + 0.1
    reg = linear_mode_connectivity(LotteryTicketRegressor(hidden_layer_sizes=(16,),
                                                          max_epochs=3), Xr, yr, n_points=3,
                                   random_state=0)
    assert np.all(reg.error >= 0) and reg.error[0] < 100  # 100 * (1 - R2), R2 > 0
    with pytest.raises(TypeError, match="LotteryTicketClassifier or LotteryTicketRegressor"):
        linear_mode_connectivity(LogisticRegression(), X, y)
    with pytest.raises(ValueError, match="n_points"):
        linear_mode_connectivity(small(), X, y, n_points=1)


def test_stability_sweep_table(digits):
    X, y, _, _ = digits
    calls = []
    summary, paths = stability_sweep(small(), X, y, rewind_iterations=(0, 15), n_points=3,
                                     random_state=0, progress=lambda: calls.append(1))
    assert len(calls) == 2
    assert list(summary["rewind_iteration"]) == [0, 0, 15, 15]
    assert list(summary["network"]) == ["dense", "ticket"] * 2
    assert (summary.loc[summary.network == "dense", "weights_remaining"] == 100).all()
    assert (summary.loc[summary.network == "ticket", "weights_remaining"] < 30).all()
    assert summary["test_score"].between(0, 1).all()
    assert summary.loc[summary.network == "ticket", "imp_test_score"].notna().all()
    assert len(paths) == 4 * 3 and set(paths["alpha"]) == {0.0, 0.5, 1.0}
    with pytest.raises(ValueError, match="rewind_iterations"):
        stability_sweep(small(), X, y, rewind_iterations=(-1,))
    assert isinstance(summary, pd.DataFrame)


def test_stability_display(digits):
    import matplotlib.pyplot as plt

    from sklottery.plotting import StabilityDisplay

    X, y, _, _ = digits
    summary, paths = stability_sweep(small(), X, y, rewind_iterations=(0, 15), n_points=3,
                                     random_state=0)
    disp = StabilityDisplay.from_results(summary, paths)
    ax_path, ax_inst, ax_score = disp.axes_
    assert len(ax_path.get_lines()) == 2  # one path per k
    # instability panel: dense, ticket and the 2-point threshold
    assert [line.get_label() for line in ax_inst.get_lines()][:2] == ["dense", "ticket"]
    assert any(line.get_ydata()[0] == 2.0 for line in ax_inst.get_lines())
    ticket = [line for line in ax_score.get_lines() if line.get_label() == "ticket"][0]
    expected = summary[summary.network == "ticket"]["test_score"].to_numpy() * 100
    np.testing.assert_allclose(ticket.get_ydata(), expected)
    assert ax_inst.get_xlim()[0] > -1 and ax_score.get_ylabel() == "Test accuracy (%)"
    with pytest.raises(ValueError, match="network"):
        StabilityDisplay(summary=summary, paths=paths, network="other").plot()
    plt.close("all")
