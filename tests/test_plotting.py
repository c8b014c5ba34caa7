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


def _yspan(patch):
    """(low, high) in data units of a horizontal span (axhspan), whichever
    patch class the installed matplotlib returns."""
    y = patch.get_patch_transform().transform(patch.get_path().vertices)[:, 1]
    return [y.min(), y.max()]


def _band_y(fill):
    """Lower and upper edge of a fill_between band, per x, dense first."""
    verts = fill.get_paths()[0].vertices
    return verts[:, 1]


def _wide_results(levels=(100.0, 50.0, 25.0), n_trials=4, n_iter=300):
    """Accuracies near 1 and early-stop iterations near 0 with a large spread,
    so that +/- std bands cross 100 % and 0; n_iter per strategy and round."""
    rows = []
    skew = [0.01, 0.01, 0.01, -0.02]  # dense accuracies 1, 1, 1, 0.97
    stops = [0, 0, 0, 40]  # dense early stops: mean 10, std 20
    for s in ("rewind", "random", "scratch_b"):
        for t in range(n_trials):
            for r, lvl in enumerate(levels):
                rows.append(dict(
                    strategy=s, trial=t, round=r, weights_remaining=lvl,
                    test_acc=0.99 - 0.01 * r + skew[t],
                    test_acc_early_stop=0.99 - 0.01 * r + skew[t],
                    early_stop_iteration=stops[t] + 5 * r,
                    # the ticket's dense round trains 300 iterations (one
                    # trial stopped at 280: the median is still 300);
                    # pruned rounds and scratch_b train longer.
                    n_iter=(n_iter - 20 if (r == 0 and t == 0) else n_iter)
                    if (s != "scratch_b" and r == 0) else 2 * n_iter,
                ))
    return pd.DataFrame(rows)


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
    assert ax.get_ylabel() == "Test accuracy (%)"


def test_ticket_curve_data_and_dense_line():
    disp = TicketCurveDisplay.from_results(_results())
    x, y = disp.lines_["random"].get_data()
    np.testing.assert_allclose(x, LEVELS)
    # Means by construction: 0.97 - 0.02 * round, drawn in percent
    # (float sums, 1e-10 slack).
    assert disp.scale_ == 100
    np.testing.assert_allclose(y, [97, 95, 93, 91], atol=1e-10)
    np.testing.assert_allclose(disp.lines_["rewind"].get_ydata(), 97, atol=1e-10)
    # Band = mean +/- sample std of (-0.001, 0, 0.001) = 0.001 -> 0.1 point.
    verts = disp.fill_between_["random"].get_paths()[0].vertices
    assert verts[:, 1].max() == pytest.approx(97.1, abs=1e-7)
    assert verts[:, 1].min() == pytest.approx(90.9, abs=1e-7)
    # Dense baseline: dashed horizontal line at the rewind round-0 mean, in
    # percent, with its +/- std band in percent too.
    dense = disp.dense_line_
    assert isinstance(dense, Line2D) and dense.get_linestyle() == "--"
    np.testing.assert_allclose(dense.get_ydata(), [97, 97], atol=1e-10)
    assert disp.dense_fill_ is not None
    np.testing.assert_allclose(_yspan(disp.dense_fill_), [96.9, 97.1], atol=1e-7)
    assert disp.dense_mean == pytest.approx(0.97) and disp.dense_std == pytest.approx(0.001)
    legend = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert legend == ["winning ticket (rewind)", "random reinit", "random mask", "dense",
                      "shaded: \u00b11 std over 3 trials"]


def test_ticket_curve_kind_early_stop():
    disp = TicketCurveDisplay.from_results(_results(), kind="early_stop")
    assert disp.metric == "early_stop_iteration"
    assert disp.ax_.get_ylabel() == "Early-stop iteration"
    # Trial offsets 0, 10, 20 -> mean 1000 - 100 * round + 10.
    np.testing.assert_allclose(disp.lines_["rewind"].get_ydata(), [1010, 910, 810, 710])
    np.testing.assert_allclose(disp.dense_line_.get_ydata(), 1010)
    by_metric = TicketCurveDisplay.from_results(_results(), metric="test_acc_early_stop")
    assert by_metric.ax_.get_ylabel() == "Test accuracy at early stop (%)"
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
    np.testing.assert_allclose(verts[:, 1], 96.9, atol=1e-10)
    np.testing.assert_allclose(disp.lines_["rewind"].get_ydata(), 96.9, atol=1e-10)
    assert disp.dense_fill_ is None  # no dense std with one trial
    assert disp.band_label_ == "shaded: \u00b11 std over 1 trial"


def test_plot_ticket_figures():
    fig = plot_ticket_figures(_results())
    # Three panels by default: early stop, accuracy at early stop, at the end.
    assert len(fig.axes) == 3
    ax_es, ax_es_acc, ax_acc = fig.axes
    assert [ax.get_title() for ax in fig.axes] == [
        "Early-stop iteration", "Test accuracy at early stop",
        "Test accuracy at end of training"]
    assert ax_es.get_ylabel() == "Iteration"
    assert ax_es_acc.get_ylabel() == ax_acc.get_ylabel() == "Test accuracy (%)"
    np.testing.assert_allclose(ax_es_acc.get_lines()[0].get_ydata(), 96.5, atol=1e-10)
    np.testing.assert_allclose(ax_acc.get_lines()[0].get_ydata(), 97, atol=1e-10)
    np.testing.assert_allclose(ax_es.get_lines()[0].get_ydata(), [1010, 910, 810, 710])
    for ax in fig.axes:
        # 3 strategy lines + the dense line (no n_iter: no training length).
        assert len(ax.lines) == 4
        assert ax.get_xscale() == "log" and ax.xaxis_inverted()
        assert ax.get_xlabel() == "Weights remaining (%)"
        # One shared legend for the figure, none inside the panels.
        assert ax.get_legend() is None
    assert len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["winning ticket (rewind)", "random reinit", "random mask", "dense",
                      "shaded: \u00b11 std over 3 trials"]


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
        kind="early_stop", band="ci",
    )
    assert calls["estimator"] is est and calls["X"] is X
    assert disp.band_label_.startswith("shaded: 95 % CI of the mean")
    assert calls["kwargs"] == dict(strategies=["rewind", "random"], n_trials=3, random_state=0)
    assert disp.metric == "early_stop_iteration"
    assert len(disp.lines_) == 3
    pd.testing.assert_frame_equal(disp.results, _results())


def test_accuracy_percent_only_for_fractions():
    # Accuracies already in percent (values > 1) are drawn as given.
    pct = _results().assign(test_acc=lambda d: 100 * d["test_acc"])
    disp = TicketCurveDisplay.from_results(pct)
    assert disp.scale_ == 1 and disp.ax_.get_ylabel() == "Test accuracy"
    np.testing.assert_allclose(disp.lines_["rewind"].get_ydata(), 97, atol=1e-10)
    # A metric that is not an accuracy is never rescaled, even in [0, 1].
    disp = TicketCurveDisplay.from_results(_results(), metric="seconds")
    assert disp.scale_ == 1 and disp.ax_.get_ylabel() == "Training time (s)"
    np.testing.assert_allclose(disp.lines_["rewind"].get_ydata(), 0.1)
    # train_acc is an accuracy: percent.
    disp = TicketCurveDisplay.from_results(_results(), metric="train_acc")
    assert disp.ax_.get_ylabel() == "Train accuracy (%)"
    np.testing.assert_allclose(disp.dense_line_.get_ydata(), 100)


def test_band_ci_uses_summarize_curve_interval():
    from sklottery.stats import summarize_curve

    results = _results()
    disp = TicketCurveDisplay.from_results(results, band="ci")
    curve = summarize_curve(results, metric="test_acc")
    part = curve[curve["strategy"] == "random"]
    band = _band_y(disp.fill_between_["random"])
    # Every interval bound (in percent) is a vertex of the band; the vertex
    # order of fill_between's path depends on the matplotlib version.
    low, high = 100 * part["ci_low"].to_numpy(), 100 * part["ci_high"].to_numpy()
    low, high = np.clip(low, 0, 100), np.clip(high, 0, 100)
    assert len(part) == 4
    assert band.min() == pytest.approx(low.min()) and band.max() == pytest.approx(high.max())
    for value in np.concatenate([low, high]):
        assert np.isclose(band, value, atol=1e-9).any()
    # The ci band is wider than the std band here (t_{0.975, 2} * sem > std).
    std_disp = TicketCurveDisplay.from_results(results)
    assert np.ptp(_band_y(disp.fill_between_["rewind"])) > np.ptp(
        _band_y(std_disp.fill_between_["rewind"]))
    # Dense band: the confidence interval of the ticket's round-0 mean.
    dense = summarize_curve(results[(results["round"] == 0) & (results["strategy"] == "rewind")],
                            metric="test_acc", by="strategy").iloc[0]
    np.testing.assert_allclose(_yspan(disp.dense_fill_),
                               np.clip([100 * dense["ci_low"], 100 * dense["ci_high"]], 0, 100))
    assert disp.band_label_ == "shaded: 95 % CI of the mean (3 trials)"
    labels = [t.get_text() for t in disp.legend_.get_texts()]
    assert labels[-1] == "shaded: 95 % CI of the mean (3 trials)"
    with pytest.raises(ValueError, match="band"):
        TicketCurveDisplay.from_results(results, band="sem")


def test_band_label_counts_trials_and_none_without_band():
    # rewind has 5 trials, random 3: the label gives the range of the
    # largest count of each curve.
    results = pd.concat([_results(strategies=["rewind"], n_trials=5),
                         _results(strategies=["random"], n_trials=3)])
    disp = TicketCurveDisplay.from_results(results)
    assert disp.band_label_ == "shaded: \u00b11 std over 3\u20135 trials"
    only = TicketCurveDisplay.from_results(results, strategies=["rewind"])
    assert only.band_label_ == "shaded: \u00b11 std over 5 trials"
    # No band drawn: nothing shaded and no band entry in the legend.
    none = TicketCurveDisplay.from_results(results, std_display_style=None, band="ci")
    assert none.band_label_ is None and none.fill_between_ == {} and none.dense_fill_ is None
    labels = [t.get_text() for t in none.legend_.get_texts()]
    assert labels == ["winning ticket (rewind)", "random reinit", "dense"]


def test_bands_clipped_to_valid_range():
    results = _wide_results()
    disp = TicketCurveDisplay.from_results(results)
    # Dense rewind accuracies (1, 1, 1, 0.97): 99.25 +/- 1.5 crosses 100 %.
    mean = disp.lines_["rewind"].get_ydata()
    assert mean[0] == pytest.approx(99.25)
    band = _band_y(disp.fill_between_["rewind"])
    assert band.max() == pytest.approx(100.0) and band.min() >= 0
    lo, hi = _yspan(disp.dense_fill_)
    assert hi == pytest.approx(100.0) and lo == pytest.approx(97.75)
    # The axis does not run past 100 % (the clipped band is sticky there).
    assert disp.ax_.get_ylim()[1] <= 100.0
    # Early-stop iterations: 10 +/- 20 at the dense level, clipped at 0.
    es = TicketCurveDisplay.from_results(results, kind="early_stop")
    assert (results["early_stop_iteration"] >= 0).all()
    band = _band_y(es.fill_between_["rewind"])
    # (upper edge: mean + 20, largest at the sparsest level, 20 + 20)
    assert band.min() == 0.0 and band.max() == pytest.approx(40.0)
    assert _yspan(es.dense_fill_)[0] == 0.0
    assert es.ax_.get_ylim()[0] >= 0.0
    # A signed metric (a difference) is not clipped.
    diff = results.assign(acc_diff=lambda d: d["test_acc"] - 0.995)
    disp = TicketCurveDisplay.from_results(diff, metric="acc_diff")
    assert disp.scale_ == 1 and _band_y(disp.fill_between_["rewind"]).min() < 0


def test_early_stop_training_length_line():
    disp = TicketCurveDisplay.from_results(_wide_results(), kind="early_stop")
    line = disp.training_length_line_
    # Median n_iter of the ticket's round-0 rows (280, 300, 300, 300) = 300,
    # not the longer pruned rounds or scratch_b.
    assert disp.training_length == 300
    assert isinstance(line, Line2D) and line.get_linestyle() == ":"
    np.testing.assert_allclose(line.get_ydata(), [300, 300])
    labels = [t.get_text() for t in disp.legend_.get_texts()]
    assert "training length (300 it.)" in labels
    # Not on accuracy panels, not without n_iter, and can be switched off.
    acc = TicketCurveDisplay.from_results(_wide_results())
    assert acc.training_length_line_ is None and acc.training_length is None
    assert TicketCurveDisplay.from_results(
        _results(), kind="early_stop").training_length_line_ is None
    off = TicketCurveDisplay.from_results(_wide_results(), kind="early_stop",
                                          show_training_length=False)
    assert off.training_length_line_ is None and len(off.ax_.lines) == 4


def _overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_legend_outside_the_axes():
    disp = TicketCurveDisplay.from_results(_wide_results(), kind="early_stop")
    fig, ax = disp.figure_, disp.ax_
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = disp.legend_
    assert legend is ax.get_legend()
    box = legend.get_window_extent(renderer)
    # Below the axes, not over the data, the tick labels or the x label,
    # and inside the figure.
    assert not _overlaps(box, ax.get_window_extent(renderer))
    assert not _overlaps(box, ax.xaxis.label.get_window_extent(renderer))
    for label in ax.get_xticklabels():
        assert not _overlaps(box, label.get_window_extent(renderer))
    assert box.y1 < ax.get_window_extent(renderer).y0
    fig_box = fig.bbox
    assert fig_box.x0 <= box.x0 and box.x1 <= fig_box.x1 and fig_box.y0 <= box.y0
    # legend_kw can put it elsewhere.
    inside = TicketCurveDisplay.from_results(_results(), legend_kw={"loc": "lower left"})
    assert inside.legend_._loc == 3
    assert TicketCurveDisplay.from_results(_results(), legend=False).ax_.get_legend() is None


def test_plot_ticket_figures_layout_and_shared_legend():
    results = _wide_results().assign(test_acc_init=0.1)
    fig = plot_ticket_figures(results)
    # test_acc_init is present but not a panel by default.
    assert len(fig.axes) == 3
    assert "Test accuracy before training" not in [ax.get_title() for ax in fig.axes]
    # Page width at 110 dpi, constrained layout.
    width, height = fig.get_size_inches() * 110
    assert 1000 <= width <= 1100 and height < 450
    assert fig.get_layout_engine() is not None
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0]
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert not _overlaps(box, ax.get_window_extent(renderer))
        assert not _overlaps(box, ax.xaxis.label.get_window_extent(renderer))
        assert box.y1 < ax.get_window_extent(renderer).y0
    assert fig.bbox.y0 <= box.y0 and fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1
    # Panels side by side, not overlapping each other.
    boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
    assert boxes[0].x1 < boxes[1].x0 and boxes[1].x1 < boxes[2].x0
    # Several columns: a short band under the panels, not a tall column.
    assert legend._ncols >= 3 and box.height < 0.25 * fig.bbox.height
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["winning ticket (rewind)", "random reinit",
                      "scratch-B (reinit, same budget)", "dense",
                      "training length (300 it.)", "shaded: \u00b11 std over 4 trials"]


def test_plot_ticket_figures_kinds_axes_and_band():
    results = _wide_results().assign(test_acc_init=lambda d: 0.1 + 0 * d["round"])
    fig = plot_ticket_figures(results, kinds=("accuracy", "init_accuracy"), band="ci")
    assert [ax.get_title() for ax in fig.axes] == [
        "Test accuracy at end of training", "Test accuracy before training"]
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), 10)
    assert fig.legends[0].get_texts()[-1].get_text() == "shaded: 95 % CI of the mean (4 trials)"
    fig = plot_ticket_figures(results, kinds="early_stop", figsize=(4, 3))
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "Early-stop iteration"
    # Given axes, one per kind, in a figure without a layout engine: the
    # legend is anchored below the panels.
    fig2, axes = plt.subplots(1, 2, figsize=(10, 4))
    fig2.subplots_adjust(bottom=0.35)
    out = plot_ticket_figures(results, kinds=("early_stop", "accuracy"), axes=axes)
    assert out is fig2 and axes[0].get_title() == "Early-stop iteration"
    assert len(axes[1].lines) == 4  # 3 strategies + dense
    fig2.canvas.draw()
    renderer = fig2.canvas.get_renderer()
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    assert len(legends) == 1 and not fig2.legends
    box = legends[0].get_window_extent(renderer)
    for ax in axes:
        assert not _overlaps(box, ax.get_window_extent(renderer))
        assert not _overlaps(box, ax.xaxis.label.get_window_extent(renderer))
    plt.close(fig2)
    with pytest.raises(ValueError, match="one Axes per kind"):
        plot_ticket_figures(results, axes=plt.subplots(1, 2)[1])
    with pytest.raises(ValueError, match="kinds"):
        plot_ticket_figures(results, kinds=("accuracy", "nope"))
    with pytest.raises(ValueError, match="kinds"):
        plot_ticket_figures(results, kinds=())
    fig3 = plot_ticket_figures(results, legend=False)
    assert not fig3.legends and all(ax.get_legend() is None for ax in fig3.axes)


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


def test_early_stop_bands_stop_at_the_training_length():
    # Dense early stops 200 and 300 of a 300-iteration round: mean 250, std 70.7;
    # the band may not claim a stop after the end of training.
    rows = []
    for t, es in enumerate([200, 300]):
        rows.append(dict(strategy="rewind", trial=t, round=0, weights_remaining=100.0,
                         early_stop_iteration=es, n_iter=300, test_acc=0.9))
        rows.append(dict(strategy="rewind", trial=t, round=1, weights_remaining=50.0,
                         early_stop_iteration=es, n_iter=300, test_acc=0.9))
    disp = TicketCurveDisplay.from_results(pd.DataFrame(rows), kind="early_stop")
    band = disp.fill_between_["rewind"].get_paths()[0].vertices
    assert band[:, 1].max() == pytest.approx(300)
    # axhspan draws a Rectangle in data units along y
    lo, hi = disp.dense_fill_.get_y(), disp.dense_fill_.get_y() + disp.dense_fill_.get_height()
    assert hi == pytest.approx(300) and lo == pytest.approx(250 - 70.71, abs=0.01)
    plt.close("all")


def test_training_length_line_is_in_view_below_the_frame():
    # Early stops at the end of training (bands up to 300 of 300 iterations):
    # the dotted line must not hide on the top frame, it keeps a margin of at
    # least 5 % of the y range; the bands (std and CI) still stop at 300.
    rows = []
    for t, es in enumerate([200, 300, 300]):
        for r, lvl in enumerate([100.0, 50.0, 25.0]):
            rows.append(dict(strategy="rewind", trial=t, round=r, weights_remaining=lvl,
                             early_stop_iteration=min(300, es + 50 * r), n_iter=300,
                             test_acc=0.9))
    for band in ("std", "ci"):
        disp = TicketCurveDisplay.from_results(pd.DataFrame(rows), kind="early_stop",
                                               band=band)
        bottom, top = disp.ax_.get_ylim()
        assert top - 300 >= 0.05 * (top - bottom)
        assert bottom <= 300
        assert _band_y(disp.fill_between_["rewind"]).max() == pytest.approx(300)
        assert _band_y(disp.fill_between_["rewind"]).min() >= 0
    # early stops far below the training length: the line is still in view
    low = pd.DataFrame(rows).assign(early_stop_iteration=lambda d: d["early_stop_iteration"] / 10)
    disp = TicketCurveDisplay.from_results(low, kind="early_stop")
    bottom, top = disp.ax_.get_ylim()
    assert top - 300 >= 0.05 * (top - bottom)
    plt.close("all")


def test_r2_bands_stop_at_one_and_are_not_clipped_at_zero():
    rows = []
    for t, (dense, sparse) in enumerate([(0.99, -0.4), (0.7, 0.2)]):
        rows.append(dict(strategy="rewind", trial=t, round=0, weights_remaining=100.0,
                         test_r2=dense))
        rows.append(dict(strategy="rewind", trial=t, round=1, weights_remaining=50.0,
                         test_r2=sparse))
    disp = TicketCurveDisplay.from_results(pd.DataFrame(rows), metric="test_r2")
    band = disp.fill_between_["rewind"].get_paths()[0].vertices[:, 1]
    assert band.max() == pytest.approx(1.0)  # 0.845 + 0.205 clipped at R2 = 1
    assert band.min() < -0.4  # negative R2 is drawn, not clipped at 0
    assert disp.scale_ == 1 and disp.ax_.get_ylabel() == "Test R²"
    plt.close("all")
