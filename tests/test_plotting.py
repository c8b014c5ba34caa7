"""Tests of sklottery.plotting: the artists drawn on constructed result tables."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from sklottery.plotting import (  # noqa: E402
    ConditionsMapDisplay,
    TicketCurveDisplay,
    plot_ticket_figures,
)

LEVELS = [100.0, 80.0, 64.0, 51.2]
STRATS = ["random", "rewind", "random_mask"]


def _results(levels=LEVELS, strategies=STRATS, n_trials=3):
    """Known table: acc = base - 0.01 * round * k(strategy) + 0.001 * (trial - 1),
    so the trial mean is exactly base - 0.01 * round * k and the std is 0.001."""
    slope = {"rewind": 0.0, "random": 2.0, "random_mask": 1.0}
    rows = []
    for s in strategies:
        for t in range(n_trials):
            for r, lvl in enumerate(levels):
                acc = 0.97 - 0.01 * r * slope.get(s, 0.5) + 0.001 * (t - 1)
                rows.append(
                    dict(
                        strategy=s, trial=t, round=r, weights_remaining=lvl,
                        test_acc=acc, test_acc_early_stop=acc - 0.005,
                        early_stop_iteration=1000 - 100 * r + 10 * t,
                        train_acc=1.0, seconds=0.1,
                    )
                )
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_ticket_curve_artists():
    disp = TicketCurveDisplay.from_results(_results())
    ax = disp.ax_
    assert disp.figure_ is ax.figure
    # One mean line and one band per strategy, ticket first.
    assert list(disp.lines_) == ["rewind", "random", "random_mask"]
    assert all(isinstance(v, Line2D) for v in disp.lines_.values())
    assert len(disp.fill_between_) == 3
    assert all(isinstance(v, PolyCollection) for v in disp.fill_between_.values())
    # Log x axis, reversed (dense on the left).
    assert ax.get_xscale() == "log"
    assert ax.xaxis_inverted()
    left, right = ax.get_xlim()
    assert left > 100 and right < 51.2
    # Ticks at the actual levels, labelled as percentages.
    np.testing.assert_allclose(ax.get_xticks(), [100, 80, 64, 51.2])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "80", "64", "51.2"]
    assert ax.get_xlabel() == "Weights remaining (%)"
    assert ax.get_ylabel() == "Test accuracy"


def test_ticket_curve_data_and_dense_line():
    disp = TicketCurveDisplay.from_results(_results())
    x, y = disp.lines_["random"].get_data()
    np.testing.assert_allclose(x, LEVELS)
    # Means by construction: 0.97 - 0.02 * round (float sums, 1e-12 slack).
    np.testing.assert_allclose(y, [0.97, 0.95, 0.93, 0.91], atol=1e-12)
    np.testing.assert_allclose(disp.lines_["rewind"].get_ydata(), 0.97, atol=1e-12)
    # Band = mean +/- sample std of (-0.001, 0, 0.001) = 0.001.
    verts = disp.fill_between_["random"].get_paths()[0].vertices
    assert verts[:, 1].max() == pytest.approx(0.971, abs=1e-9)
    assert verts[:, 1].min() == pytest.approx(0.909, abs=1e-9)
    # Dense baseline: dashed horizontal line at the rewind round-0 mean.
    dense = disp.dense_line_
    assert isinstance(dense, Line2D) and dense.get_linestyle() == "--"
    np.testing.assert_allclose(dense.get_ydata(), [0.97, 0.97], atol=1e-12)
    assert disp.dense_fill_ is not None
    assert disp.dense_mean == pytest.approx(0.97) and disp.dense_std == pytest.approx(0.001)
    legend = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert legend == ["winning ticket (rewind)", "random reinit", "random mask", "dense"]


def test_ticket_curve_kind_early_stop():
    disp = TicketCurveDisplay.from_results(_results(), kind="early_stop")
    assert disp.metric == "early_stop_iteration"
    assert disp.ax_.get_ylabel() == "Early-stop iteration"
    # Trial offsets 0, 10, 20 -> mean 1000 - 100 * round + 10.
    np.testing.assert_allclose(disp.lines_["rewind"].get_ydata(), [1010, 910, 810, 710])
    np.testing.assert_allclose(disp.dense_line_.get_ydata(), 1010)
    by_metric = TicketCurveDisplay.from_results(_results(), metric="test_acc_early_stop")
    assert by_metric.ax_.get_ylabel() == "Test accuracy at early stop"
    with pytest.raises(ValueError, match="kind"):
        TicketCurveDisplay.from_results(_results(), kind="nope")


def test_ticket_curve_options():
    fig, ax = plt.subplots()
    disp = TicketCurveDisplay.from_results(
        _results(), strategies=["random"], ax=ax, std_display_style=None, show_dense=False
    )
    assert disp.ax_ is ax and disp.figure_ is fig
    assert list(disp.lines_) == ["random"] and disp.fill_between_ == {}
    assert disp.dense_line_ is None
    assert len(ax.lines) == 1 and len(ax.collections) == 0
    with pytest.raises(ValueError, match="Unknown strategies"):
        TicketCurveDisplay.from_results(_results(), strategies=["nope"])
    with pytest.raises(ValueError, match="std_display_style"):
        TicketCurveDisplay.from_results(_results(), std_display_style="errorbar")
    two = pd.concat([_results().assign(dataset="a"), _results().assign(dataset="b")])
    with pytest.raises(ValueError, match="several datasets"):
        TicketCurveDisplay.from_results(two)


def test_ticket_curve_replot_and_tick_thinning():
    levels = [100 * 0.8**r for r in range(20)]
    disp = TicketCurveDisplay.from_results(_results(levels=levels, n_trials=2), max_ticks=5)
    ticks = disp.ax_.get_xticks()
    assert len(ticks) == 5
    assert ticks[0] == pytest.approx(100) and ticks[-1] == pytest.approx(round(levels[-1], 2))
    # Re-plotting the same display on new axes redraws everything there.
    _, ax2 = plt.subplots()
    disp.plot(ax=ax2, strategies=["rewind"])
    assert disp.ax_ is ax2 and list(disp.lines_) == ["rewind"] and len(ax2.lines) == 2


def test_single_trial_has_zero_width_band():
    disp = TicketCurveDisplay.from_results(_results(n_trials=1))
    verts = disp.fill_between_["rewind"].get_paths()[0].vertices
    # The only trial has offset -0.001: every band vertex sits on the mean.
    np.testing.assert_allclose(verts[:, 1], 0.969, atol=1e-12)
    np.testing.assert_allclose(disp.lines_["rewind"].get_ydata(), 0.969, atol=1e-12)
    assert disp.dense_fill_ is None  # no dense std with one trial


def test_plot_ticket_figures():
    fig = plot_ticket_figures(_results())
    ax_es, ax_acc = fig.axes[:2]
    assert ax_es.get_ylabel() == "Early-stop iteration"
    assert ax_acc.get_ylabel() == "Test accuracy"
    for ax in (ax_es, ax_acc):
        # 3 strategy lines + the dense line.
        assert len(ax.lines) == 4
        assert ax.get_xscale() == "log" and ax.xaxis_inverted()
    assert ax_es.get_legend() is None and ax_acc.get_legend() is not None


def test_from_estimator_uses_ticket_curve(monkeypatch):
    analysis = pytest.importorskip("sklottery.analysis")
    calls = {}

    def fake_ticket_curve(estimator, X, y, **kwargs):
        calls.update(estimator=estimator, X=X, y=y, kwargs=kwargs)
        return _results()

    monkeypatch.setattr(analysis, "ticket_curve", fake_ticket_curve)
    est, X, y = object(), np.zeros((4, 2)), np.zeros(4)
    disp = TicketCurveDisplay.from_estimator(
        est, X, y, strategies=["rewind", "random"], n_trials=3, random_state=0,
        kind="early_stop",
    )
    assert calls["estimator"] is est and calls["X"] is X
    assert calls["kwargs"] == dict(strategies=["rewind", "random"], n_trials=3, random_state=0)
    assert disp.metric == "early_stop_iteration"
    assert len(disp.lines_) == 3
    pd.testing.assert_frame_equal(disp.results, _results())


# --------------------------------------------------------------------------
# ConditionsMapDisplay
# --------------------------------------------------------------------------
def _conditions():
    lrs = [0.001, 0.01, 0.1]
    rows = []
    for lr in lrs:
        for lvl in [100.0, 51.2, 26.21]:
            for trial in range(2):
                # Tickets exist at the two small learning rates down to 51.2%,
                # and at lr=0.01, 26.21% in one trial out of two (mean 0.5).
                exists = (lr < 0.1 and lvl > 30) or (lr == 0.01 and lvl < 30 and trial == 0)
                rows.append(dict(learning_rate=lr, weights_remaining=lvl, trial=trial,
                                 ticket_exists=exists, acc_diff=(0.02 if exists else -0.04)))
    return pd.DataFrame(rows)


def test_conditions_map_existence():
    disp = ConditionsMapDisplay.from_frame(_conditions(), y="learning_rate")
    assert isinstance(disp.im_, AxesImage)
    arr = disp.im_.get_array()
    assert arr.shape == (3, 3)
    # Columns dense -> sparse, rows lr ascending; cell = fraction of trials.
    expected = np.array([[1, 1, 0], [1, 1, 0.5], [0, 0, 0]], dtype=float)
    np.testing.assert_allclose(np.asarray(arr), expected)
    assert disp.x_levels == [100.0, 51.2, 26.21]
    assert disp.y_levels == [0.001, 0.01, 0.1]
    assert disp.im_.get_clim() == (0.0, 1.0)
    # Colorbar present (its own axes) and labelled.
    assert disp.colorbar_ is not None and len(disp.figure_.axes) == 2
    assert disp.colorbar_.ax.get_ylabel() == "Winning ticket exists"
    # Markers on cells with mean existence >= 0.5: 5 cells.
    assert isinstance(disp.markers_, PathCollection)
    offsets = {tuple(o) for o in disp.markers_.get_offsets()}
    assert offsets == {(0, 0), (1, 0), (0, 1), (1, 1), (2, 1)}
    ax = disp.ax_
    assert ax.get_xlabel() == "Weights remaining (%)" and ax.get_ylabel() == "Learning rate"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "51.2", "26.2"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.001", "0.01", "0.1"]


def test_conditions_map_difference_and_two_conditions():
    df = _conditions()
    disp = ConditionsMapDisplay.from_frame(df, y="learning_rate", value="acc_diff",
                                           annotate=True)
    # Diverging map centred on zero: limits +/- max |value| = 0.04.
    assert disp.im_.get_cmap().name == "RdBu"
    assert disp.im_.get_clim() == pytest.approx((-0.04, 0.04))
    assert disp.colorbar_.ax.get_ylabel() == "Acc diff"
    assert len(disp.texts_) == 9
    # Two conditions (no weights level): x sorted ascending, no markers.
    two = df[df.weights_remaining == 51.2].assign(width=np.tile([300, 100], 3))
    disp2 = ConditionsMapDisplay.from_frame(two, x="width", y="learning_rate",
                                            value="acc_diff", exists=None, colorbar=False)
    assert disp2.x_levels == [100, 300] and disp2.markers_ is None
    assert disp2.colorbar_ is None and len(disp2.figure_.axes) == 1
    assert disp2.ax_.get_xlabel() == "Width"
    with pytest.raises(ValueError, match="missing"):
        ConditionsMapDisplay.from_frame(df, y="momentum")


def test_conditions_map_signed_difference_uses_diverging_scale():
    import pandas as pd

    from sklottery.plotting import ConditionsMapDisplay

    # all differences happen to be positive: still a signed quantity
    df = pd.DataFrame({"lr": [0.01, 0.01, 0.1, 0.1], "weights_remaining": [50.0, 25.0] * 2,
                       "diff": [0.02, 0.05, 0.0, 0.01]})
    disp = ConditionsMapDisplay.from_frame(df, y="lr", value="diff", exists=None,
                                           annotate=True)
    assert disp.im_.get_cmap().name == "RdBu"
    lo, hi = disp.im_.get_clim()
    assert lo == pytest.approx(-hi)
