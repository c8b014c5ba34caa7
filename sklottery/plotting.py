"""Displays for lottery-ticket experiments, in the style of scikit-learn.

Each display stores its data in ``__init__`` and draws in ``plot``, which sets
``ax_`` and ``figure_`` and returns the display; ``from_results`` (and, for
:class:`TicketCurveDisplay`, ``from_estimator``) build and plot in one call,
like :class:`sklearn.model_selection.LearningCurveDisplay`.

The ticket curves follow the figures of Frankle & Carbin (2019): percent of
weights remaining on a reversed log axis (dense on the left), accuracies in
percent, a shaded band whose meaning is stated in the legend, the dense
network as a dashed line, and the legend outside the data.

matplotlib is imported only when something is drawn.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .stats import (
    LEVEL_DECIMALS,
    dense_baseline,
    strategy_label,
    summarize_curve,
)

__all__ = ["TicketCurveDisplay", "ConditionsMapDisplay", "StabilityDisplay", "plot_ticket_figures"]

#: ``kind`` shortcuts of :class:`TicketCurveDisplay` and the metric each plots.
KINDS = {
    "accuracy": "test_acc",
    "early_stop": "early_stop_iteration",
    "early_stop_accuracy": "test_acc_early_stop",
    "init_accuracy": "test_acc_init",
}

#: Panels drawn by :func:`plot_ticket_figures` by default, left to right.
DEFAULT_PANELS = ("early_stop", "early_stop_accuracy", "accuracy")

#: Panel titles of :func:`plot_ticket_figures`, per kind.
_KIND_TITLES = {
    "early_stop": "Early-stop iteration",
    "early_stop_accuracy": "Test accuracy at early stop",
    "accuracy": "Test accuracy at end of training",
    "init_accuracy": "Test accuracy before training",
}

_METRIC_NAMES = {
    "test_acc": "Test accuracy",
    "test_acc_early_stop": "Test accuracy at early stop",
    "test_acc_init": "Test accuracy before training",
    "test_r2": "Test R²",
    "test_r2_early_stop": "Test R² at early stop",
    "test_r2_init": "Test R² before training",
    "test_mse": "Test MSE",
    "early_stop_iteration": "Early-stop iteration",
    "n_iter": "Iterations trained",
    "train_acc": "Train accuracy",
    "seconds": "Training time (s)",
    "weights_remaining": "Weights remaining (%)",
    "ticket_exists": "Winning ticket exists",
}

#: Fragments of metric names whose values cannot be negative.
_NONNEGATIVE_HINTS = ("acc", "iter", "epoch", "seconds", "time", "loss", "mse", "mae")

#: Bands of :meth:`TicketCurveDisplay.plot`.
_BANDS = ("std", "ci")


def _check_matplotlib(caller):
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{caller} requires matplotlib. You can install matplotlib with "
            "`pip install matplotlib`."
        ) from exc


def _readable(name):
    return _METRIC_NAMES.get(name, str(name).replace("_", " ").capitalize())


def _fmt_level(level):
    """Tick label of a level in percent: '100', '51.2', '3.6', '0.47'."""
    return f"{level:.3g}" if level < 1000 else f"{level:.0f}"


def _thin(levels, max_ticks):
    """At most ``max_ticks`` of ``levels``, evenly spaced, first and last kept."""
    levels = list(levels)
    if max_ticks is None or len(levels) <= max_ticks:
        return levels
    idx = np.unique(np.round(np.linspace(0, len(levels) - 1, max_ticks)).astype(int))
    return [levels[i] for i in idx]


def _resolve_metric(metric, kind, results=None):
    """The column to plot; a ``kind`` names the accuracy column, or R² for a regressor."""
    if kind is None:
        return metric
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}.")
    metric = KINDS[kind]
    if results is not None and metric not in results.columns:
        r2 = metric.replace("_acc", "_r2")  # ticket_curve's columns for a regressor
        if r2 in results.columns:
            return r2
    return metric


def _signed_name(metric):
    name = str(metric).lower()
    return "diff" in name or "delta" in name or "gap" in name


def _is_accuracy(metric):
    """Whether the column holds an accuracy (not a difference of accuracies)."""
    return "acc" in str(metric).lower() and not _signed_name(metric)


def _finite(*arrays):
    values = np.concatenate([np.ravel(np.asarray(a, dtype=float)) for a in arrays])
    return values[np.isfinite(values)]


def _dense_rows(df, ticket, pooled):
    """Rows of the dense network, selected like :func:`~sklottery.stats.dense_baseline`."""
    if "round" in df.columns:
        is_dense = pd.to_numeric(df["round"]) == 0
    else:
        levels = pd.to_numeric(df["weights_remaining"]).astype(float).round(LEVEL_DECIMALS)
        is_dense = levels == levels.max()
    dense = df[is_dense]
    if not pooled and "strategy" in dense.columns:
        own = dense[dense["strategy"] == ticket]
        if len(own):
            return own
    return dense


def _n_trials_text(counts):
    """'5 trials', '1 trial' or '3–5 trials' from the trial counts of the curves."""
    counts = sorted({int(c) for c in counts})
    if not counts:
        return None
    if len(counts) == 1:
        return f"{counts[0]} trial" + ("" if counts[0] == 1 else "s")
    return f"{counts[0]}\N{EN DASH}{counts[-1]} trials"


def _legend_ncol(labels, width_pt, fontsize_pt):
    """Columns of a legend of ``labels`` that fit in ``width_pt`` points,
    balanced so that every row but the last is full."""
    n = len(labels)
    if n == 0:
        return 1
    longest = max(len(str(label)) for label in labels)
    # text (about 0.55 em a character) + handle (2 em) + pads (~2.8 em)
    column = fontsize_pt * (0.55 * longest + 4.8)
    ncol = max(1, min(n, int(width_pt // column)))
    rows = math.ceil(n / ncol)
    return math.ceil(n / rows)


def _font_pt(size):
    from matplotlib.font_manager import FontProperties

    return FontProperties(size=size).get_size_in_points()


def _below_axes_offset_pt(ax):
    """Points from the bottom of ``ax`` to just below its x tick labels and
    x label (an estimate made before drawing, from the current font sizes)."""
    import matplotlib as mpl

    ticklabels = ax.xaxis.get_ticklabels()
    if ticklabels:
        tick_size = ticklabels[0].get_size()
    else:
        tick_size = _font_pt(mpl.rcParams["xtick.labelsize"])
    label_size = ax.xaxis.label.get_size()
    return (
        mpl.rcParams["xtick.major.size"] + mpl.rcParams["xtick.major.pad"]
        + 1.25 * tick_size + ax.xaxis.labelpad + 1.25 * label_size + 3.0
    )


def _legend_below(axes, handles, labels, **legend_kw):
    """Legend centred under ``axes`` (one Axes or several side by side),
    below their tick labels and x labels.

    The anchor follows the first axes (also when a layout engine moves it)
    and sits a fixed number of points under its bottom edge, so the legend
    never covers the data; constrained layout makes room for it.
    """
    from matplotlib.transforms import ScaledTranslation

    axes = list(axes) if isinstance(axes, (list, tuple)) else [axes]
    ax = axes[0]
    fig = ax.figure
    boxes = [a.get_position() for a in axes]
    ref = boxes[0]
    left, right = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
    # centre of the axes' span, in the first axes' coordinates
    x_anchor = ((left + right) / 2 - ref.x0) / ref.width if ref.width else 0.5
    fontsize = _font_pt(legend_kw.get("fontsize", "small"))
    width_pt = (right - left) * fig.get_figwidth() * 72
    offset = ScaledTranslation(0, -_below_axes_offset_pt(ax) / 72, fig.dpi_scale_trans)
    kw = {
        "loc": "upper center",
        "bbox_to_anchor": (x_anchor, 0.0),
        "bbox_transform": ax.transAxes + offset,
        "ncol": _legend_ncol(labels, width_pt, fontsize),
        "frameon": False,
        "fontsize": "small",
    }
    if "loc" in legend_kw or "bbox_to_anchor" in legend_kw:
        for key in ("loc", "bbox_to_anchor", "bbox_transform"):
            kw.pop(key)
    kw.update(legend_kw)
    return ax.legend(handles, labels, **kw)


class TicketCurveDisplay:
    """Metric vs. percent of weights remaining, one curve per strategy.

    The figures of Frankle & Carbin (2019): test accuracy (or the early-stop
    iteration) against the percent of weights remaining on a reversed log
    axis (dense on the left), with the mean of the trials as a line, a shaded
    band (+/- one standard deviation over trials, or the 95 % confidence
    interval of the mean) whose meaning the legend states, and the dense
    network as a dashed horizontal line with its own band. Accuracies given
    as fractions are drawn in percent.

    It is recommended to create it with :meth:`from_results` or
    :meth:`from_estimator`. All parameters are stored as attributes.

    Parameters
    ----------
    curve : pandas.DataFrame
        Output of :func:`sklottery.stats.summarize_curve` with
        ``by=('strategy', 'weights_remaining')``: at least the columns
        ``strategy``, ``weights_remaining``, ``mean`` and ``std``;
        ``ci_low`` and ``ci_high`` for ``band='ci'``; ``n`` (trials per
        point) to state the number of trials in the legend.
    dense_mean : float, default=None
        Mean of the dense network; None draws no dense line.
    dense_std : float, default=None
        Standard deviation of the dense network (band around the dense line
        with ``band='std'``); None or NaN draws no band.
    metric : str, default='test_acc'
        Name of the plotted column, used for the y label and to decide the
        units: an accuracy (name containing ``'acc'``) whose values lie in
        [0, 1] is drawn in percent.
    ticket : str, default='rewind'
        Strategy drawn first and on top of the others.
    results : pandas.DataFrame, default=None
        The raw result table, kept for reference (set by the constructors).
    dense_ci : tuple of (float, float), default=None
        Confidence interval of the dense mean (band around the dense line
        with ``band='ci'``); None draws no band then.
    training_length : float, default=None
        Iterations the ticket's dense round trained for; drawn as a dotted
        horizontal line when the metric is ``'early_stop_iteration'``, so
        that a reader sees how early the stop is. None draws no line.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the curves.
    figure_ : matplotlib Figure
        Figure containing the axes.
    lines_ : dict of {str: matplotlib.lines.Line2D}
        Mean curve of each strategy (in percent for accuracies in [0, 1]).
    fill_between_ : dict of {str: matplotlib.collections.PolyCollection}
        Shaded band of each strategy (empty when ``std_display_style=None``).
    dense_line_ : matplotlib.lines.Line2D or None
        Dashed horizontal line at the dense mean.
    dense_fill_ : matplotlib Artist or None
        Band around the dense mean (+/- one std, or its confidence interval).
    training_length_line_ : matplotlib.lines.Line2D or None
        Dotted horizontal line at ``training_length`` (early-stop metric only).
    scale_ : float
        Factor applied to the metric: 100 for an accuracy in [0, 1], else 1.
    band_label_ : str or None
        What the shaded bands are, as written in the legend (None without
        bands).
    legend_handles_, legend_labels_ : list
        Entries of the legend, also when ``legend=False`` (used by
        :func:`plot_ticket_figures` for a shared legend).
    legend_ : matplotlib.legend.Legend or None
        The legend, below the axes.

    See Also
    --------
    plot_ticket_figures : Three panels side by side with one legend.
    sklottery.analysis.ticket_curve : The table the display is built from.
    sklottery.stats.summarize_curve : The statistics it draws.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    .. [2] Zhou, H., Lan, J., Liu, R. and Yosinski, J. (2019). Deconstructing
       Lottery Tickets: Zeros, Signs, and the Supermask. NeurIPS.
       arXiv:1905.01067.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklottery.plotting import TicketCurveDisplay
    >>> results = pd.DataFrame({
    ...     "strategy": ["rewind"] * 4 + ["random"] * 4,
    ...     "trial": [0, 0, 1, 1] * 2, "round": [0, 1] * 4,
    ...     "weights_remaining": [100.0, 20.0] * 4,
    ...     "test_acc": [.97, .97, .96, .98, .97, .90, .96, .91]})
    >>> disp = TicketCurveDisplay.from_results(results)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        curve,
        dense_mean=None,
        dense_std=None,
        metric="test_acc",
        ticket="rewind",
        results=None,
        dense_ci=None,
        training_length=None,
    ):
        self.curve = curve
        self.dense_mean = dense_mean
        self.dense_std = dense_std
        self.metric = metric
        self.ticket = ticket
        self.results = results
        self.dense_ci = dense_ci
        self.training_length = training_length

    def _strategies(self, strategies):
        present = list(pd.unique(self.curve["strategy"]))
        if strategies is None:
            strategies = present
        else:
            strategies = [strategies] if isinstance(strategies, str) else list(strategies)
            unknown = [s for s in strategies if s not in present]
            if unknown:
                raise ValueError(f"Unknown strategies {unknown}; results have {present}.")
        if self.ticket in strategies:
            strategies = [self.ticket] + [s for s in strategies if s != self.ticket]
        return strategies

    def _units(self):
        """(scale, lower bound, upper bound) of the drawn values."""
        values = _finite(self.curve["mean"], [np.nan if self.dense_mean is None
                                              else self.dense_mean])
        percent = (_is_accuracy(self.metric) and values.size > 0
                   and values.min() >= 0 and values.max() <= 1)
        if percent:
            return 100.0, 0.0, 100.0
        name = str(self.metric).lower()
        nonnegative = (
            any(hint in name for hint in _NONNEGATIVE_HINTS)
            and not _signed_name(self.metric)
            and (values.size == 0 or values.min() >= 0)
        )
        # R² is at most 1 (and unbounded below)
        upper = 1.0 if "r2" in name and not _signed_name(self.metric) else np.inf
        return 1.0, (0.0 if nonnegative else -np.inf), upper

    def _band_label(self, band, strategies):
        n_text = None
        if "n" in self.curve.columns:
            part = self.curve[self.curve["strategy"].isin(strategies)]
            counts = part.groupby("strategy", sort=False)["n"].max().dropna()
            n_text = _n_trials_text(counts.to_numpy())
        if band == "std":
            return "shaded: \N{PLUS-MINUS SIGN}1 std" + (f" over {n_text}" if n_text else "")
        return "shaded: 95 % CI of the mean" + (f" ({n_text})" if n_text else "")

    def plot(
        self,
        ax=None,
        *,
        strategies=None,
        band="std",
        std_display_style="fill_between",
        show_dense=True,
        show_training_length=True,
        max_ticks=10,
        line_kw=None,
        fill_between_kw=None,
        dense_line_kw=None,
        legend=True,
        legend_kw=None,
    ):
        """Plot visualization.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on. If None, a new figure (constrained layout, which
            makes room for the legend below the axes) and axes are created.
        strategies : str or list of str, default=None
            Strategies to draw, default all in the data (ticket first).
        band : {'std', 'ci'}, default='std'
            What the shaded band around each mean curve (and the dense line)
            shows: ``'std'``, +/- one standard deviation over trials;
            ``'ci'``, the 95 % confidence interval of the mean (the
            ``ci_low``/``ci_high`` columns of
            :func:`~sklottery.stats.summarize_curve`). The legend states which,
            with the number of trials (the largest count of each curve).
            Bands are clipped to [0, 100] for percentages and at 0 for
            metrics that cannot be negative (accuracies, iterations, times).
            A missing spread (one trial) draws a zero-width band.
        std_display_style : {'fill_between'} or None, default='fill_between'
            Draw the band as a shaded area, or draw no band.
        show_dense : bool, default=True
            Draw the dense baseline (requires ``dense_mean``).
        show_training_length : bool, default=True
            For the ``'early_stop_iteration'`` metric, draw a dotted line at
            ``training_length`` (requires it). The y range then extends at
            least 8 % of itself above the line, so that the line stays in
            view when the curves reach it (bands stop there: no run stops
            after the longest ``n_iter`` of ``results``).
        max_ticks : int or None, default=10
            At most this many levels get an x tick label (evenly spread,
            densest and sparsest always kept); None labels every level.
        line_kw : dict, default=None
            Extra keyword arguments of ``ax.plot`` for every mean curve.
        fill_between_kw : dict, default=None
            Extra keyword arguments of ``ax.fill_between``
            (default ``alpha=0.2``).
        dense_line_kw : dict, default=None
            Extra keyword arguments of ``ax.axhline`` for the dense line.
        legend : bool, default=True
            Draw a legend, centred below the axes (outside the data).
        legend_kw : dict, default=None
            Extra keyword arguments of ``ax.legend``; a ``loc`` or
            ``bbox_to_anchor`` replaces the placement below the axes.

        Returns
        -------
        display : TicketCurveDisplay
            The display, with the artists stored as attributes.
        """
        _check_matplotlib(f"{self.__class__.__name__}.plot")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
        from matplotlib.ticker import FixedLocator, NullLocator

        if std_display_style not in ("fill_between", None):
            raise ValueError(
                "std_display_style must be 'fill_between' or None, got "
                f"{std_display_style!r}."
            )
        if band not in _BANDS:
            raise ValueError(f"band must be one of {list(_BANDS)}, got {band!r}.")
        if band == "ci" and std_display_style is not None:
            missing = [c for c in ("ci_low", "ci_high") if c not in self.curve.columns]
            if missing:
                raise ValueError(f"band='ci' needs the column(s) {missing} in curve.")
        if ax is None:
            _, ax = plt.subplots(layout="constrained")
        line_kw = {} if line_kw is None else dict(line_kw)
        fill_kw = {"alpha": 0.2, "linewidth": 0, **(fill_between_kw or {})}
        scale, lower, upper = self._units()
        # Sticky edges stop the autoscaling margin at a bound the data cannot
        # pass (0, 100 %), so that a band reaching it touches the frame.
        sticky = [v for v in (lower, upper) if np.isfinite(v)]
        if self.metric == "early_stop_iteration":
            # no run stops later than it trains: the longest round bounds the
            # bands; not sticky, so that the training-length line drawn there
            # keeps a margin below the frame instead of hiding on it
            longest = None
            if self.results is not None and "n_iter" in self.results.columns:
                longest = pd.to_numeric(self.results["n_iter"], errors="coerce").max()
            elif self.training_length is not None:
                longest = self.training_length
            if longest is not None and np.isfinite(longest):
                upper = min(upper, scale * float(longest))
        self.scale_ = scale

        def clip(values):
            return np.clip(values, lower, upper)

        self.lines_, self.fill_between_ = {}, {}
        strategies = self._strategies(strategies)
        levels = set()
        for strategy in strategies:
            part = self.curve[self.curve["strategy"] == strategy].sort_values(
                "weights_remaining", ascending=False
            )
            x = part["weights_remaining"].to_numpy(dtype=float)
            mean = scale * part["mean"].to_numpy(dtype=float)
            levels.update(x.tolist())
            kw = {"marker": "o", "markersize": 3, **line_kw}
            if strategy == self.ticket:
                kw.setdefault("zorder", 3)
            (line,) = ax.plot(x, mean, label=strategy_label(strategy), **kw)
            self.lines_[strategy] = line
            if std_display_style == "fill_between":
                if band == "std":
                    std = scale * np.nan_to_num(part["std"].to_numpy(dtype=float))
                    low, high = mean - std, mean + std
                else:
                    low = scale * part["ci_low"].to_numpy(dtype=float)
                    high = scale * part["ci_high"].to_numpy(dtype=float)
                    low, high = np.where(np.isnan(low), mean, low), np.where(
                        np.isnan(high), mean, high)
                fill = ax.fill_between(
                    x, clip(low), clip(high), color=line.get_color(), **fill_kw
                )
                fill.sticky_edges.y.extend(sticky)
                self.fill_between_[strategy] = fill

        self.dense_line_ = self.dense_fill_ = None
        if show_dense and self.dense_mean is not None and not np.isnan(self.dense_mean):
            dkw = {"color": "black", "linestyle": "--", "linewidth": 1, **(dense_line_kw or {})}
            dense_mean = scale * self.dense_mean
            self.dense_line_ = ax.axhline(dense_mean, label="dense", **dkw)
            span = None
            if std_display_style is not None:
                if band == "std" and self.dense_std is not None and not np.isnan(self.dense_std):
                    span = (dense_mean - scale * self.dense_std,
                            dense_mean + scale * self.dense_std)
                elif band == "ci" and self.dense_ci is not None and np.all(
                        np.isfinite(self.dense_ci)):
                    span = (scale * self.dense_ci[0], scale * self.dense_ci[1])
            if span is not None:
                lo, hi = clip(np.asarray(span, dtype=float))
                self.dense_fill_ = ax.axhspan(
                    lo, hi, color=dkw["color"], alpha=0.08, linewidth=0
                )
                self.dense_fill_.sticky_edges.y.extend(sticky)

        self.training_length_line_ = None
        if (show_training_length and self.metric == "early_stop_iteration"
                and self.training_length is not None
                and np.isfinite(self.training_length)):
            length = scale * float(self.training_length)
            self.training_length_line_ = ax.axhline(
                length, color="0.35", linestyle=":", linewidth=1.2,
                label=f"training length ({length:.0f} it.)",
            )
            # the line is what the panel is read against: keep it in view, with
            # a margin of 8 % of the range above it
            bottom, top = ax.get_ylim()
            bottom = min(bottom, length)
            if top < length + 0.08 * (length - bottom):
                ax.set_ylim(bottom, length + 0.08 * (length - bottom))

        ax.set_xscale("log")
        ticks = sorted((v for v in levels if v > 0), reverse=True)
        if ticks:
            ticks = _thin(ticks, max_ticks)
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([_fmt_level(v) for v in ticks])
            lo, hi = min(ticks), max(ticks)
            pad = (hi / lo) ** 0.04 if hi > lo else 1.2
            ax.set_xlim(hi * pad, lo / pad)  # reversed: dense on the left
        if not ax.xaxis_inverted():
            ax.invert_xaxis()
        ax.set_xlabel("Weights remaining (%)")
        ax.set_ylabel(_readable(self.metric) + (" (%)" if scale == 100 else ""))
        ax.grid(True, which="major", alpha=0.3)

        handles, labels = ax.get_legend_handles_labels()
        self.band_label_ = None
        if std_display_style is not None and (self.fill_between_ or self.dense_fill_):
            self.band_label_ = self._band_label(band, strategies)
            handles.append(Patch(facecolor="0.5", alpha=0.35, linewidth=0))
            labels.append(self.band_label_)
        self.legend_handles_, self.legend_labels_ = handles, labels
        self.legend_ = None
        if legend:
            self.legend_ = _legend_below(ax, handles, labels, **(legend_kw or {}))

        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_results(
        cls,
        results,
        metric="test_acc",
        *,
        kind=None,
        ticket="rewind",
        strategies=None,
        pooled_dense=False,
        ax=None,
        **plot_kwargs,
    ):
        """Create and plot the display from a :func:`~sklottery.analysis.ticket_curve` table.

        Parameters
        ----------
        results : pandas.DataFrame
            Tidy table from :func:`sklottery.analysis.ticket_curve` (single
            dataset): columns ``strategy``, ``weights_remaining``, ``round``
            and ``metric``; with the ``'early_stop_iteration'`` metric, an
            ``n_iter`` column adds the training-length line (median
            ``n_iter`` of the ticket's round-0 rows).
        metric : str, default='test_acc'
            Column to plot.
        kind : {'accuracy', 'early_stop', 'early_stop_accuracy', \
'init_accuracy'}, default=None
            Shortcut overriding ``metric`` with ``'test_acc'``,
            ``'early_stop_iteration'``, ``'test_acc_early_stop'`` or
            ``'test_acc_init'``.
        ticket : str, default='rewind'
            Winning-ticket strategy; its round-0 rows are the dense baseline.
        strategies : list of str, default=None
            Strategies to draw, default all.
        pooled_dense : bool, default=False
            Pool the round-0 rows of every strategy for the dense baseline.
        ax : matplotlib Axes, default=None
            Axes to plot on; None creates a figure.
        **plot_kwargs : dict
            Passed to :meth:`plot` (``band``, ``std_display_style``,
            ``legend``, ...).

        Returns
        -------
        display : TicketCurveDisplay
        """
        df = results if isinstance(results, pd.DataFrame) else pd.DataFrame(results)
        metric = _resolve_metric(metric, kind, df)
        if "dataset" in df.columns and df["dataset"].nunique() > 1:
            raise ValueError(
                "results holds several datasets; plot one at a time, e.g. "
                "results[results['dataset'] == name]."
            )
        curve = summarize_curve(df, metric=metric)
        dense_ci = None
        try:
            base = dense_baseline(df, ticket=ticket, metric=metric, pooled=pooled_dense)
            dense_mean, dense_std = base["mean"], base["std"]
        except ValueError:
            dense_mean = dense_std = None
        else:
            dense = _dense_rows(df, ticket, pooled_dense)
            if len(dense):
                row = summarize_curve(dense.assign(strategy="dense"), metric=metric,
                                      by="strategy").iloc[0]
                dense_ci = (float(row["ci_low"]), float(row["ci_high"]))
        training_length = None
        if metric == "early_stop_iteration" and "n_iter" in df.columns:
            n_iter = pd.to_numeric(_dense_rows(df, ticket, pooled_dense)["n_iter"],
                                   errors="coerce").dropna()
            if len(n_iter):
                training_length = float(n_iter.median())
        disp = cls(
            curve=curve,
            dense_mean=dense_mean,
            dense_std=dense_std,
            metric=metric,
            ticket=ticket,
            results=df,
            dense_ci=dense_ci,
            training_length=training_length,
        )
        return disp.plot(ax=ax, strategies=strategies, **plot_kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        strategies=None,
        n_trials=None,
        metric="test_acc",
        kind=None,
        ticket="rewind",
        ax=None,
        band="std",
        std_display_style="fill_between",
        line_kw=None,
        fill_between_kw=None,
        dense_line_kw=None,
        **ticket_curve_kwargs,
    ):
        """Run :func:`sklottery.analysis.ticket_curve` and plot its results.

        Parameters
        ----------
        estimator : estimator instance
            A sklottery estimator, passed to ``ticket_curve``.
        X : array-like of shape (n_samples, n_features)
            Input data.
        y : array-like of shape (n_samples,)
            Target.
        strategies : list of str, default=None
            Passed to ``ticket_curve``; None uses its default.
        n_trials : int, default=None
            Passed to ``ticket_curve``; None uses its default.
        metric : str, default='test_acc'
            Column to plot.
        kind : {'accuracy', 'early_stop', 'early_stop_accuracy', \
'init_accuracy'}, default=None
            Shortcut overriding ``metric``.
        ticket : str, default='rewind'
            Winning-ticket strategy.
        ax : matplotlib Axes, default=None
            Axes to plot on.
        band : {'std', 'ci'}, default='std'
            Shaded band: +/- one standard deviation over trials, or the 95 %
            confidence interval of the mean. See :meth:`plot`.
        std_display_style, line_kw, fill_between_kw, dense_line_kw
            See :meth:`plot`.
        **ticket_curve_kwargs : dict
            Other arguments of ``ticket_curve`` (``test_size``, ``cv``,
            ``n_jobs``, ``random_state``, ...).

        Returns
        -------
        display : TicketCurveDisplay
            ``display.results`` holds the table returned by ``ticket_curve``.
        """
        from .analysis import ticket_curve

        if strategies is not None:
            ticket_curve_kwargs["strategies"] = strategies
        if n_trials is not None:
            ticket_curve_kwargs["n_trials"] = n_trials
        results = ticket_curve(estimator, X, y, **ticket_curve_kwargs)
        return cls.from_results(
            results,
            metric=metric,
            kind=kind,
            ticket=ticket,
            ax=ax,
            band=band,
            std_display_style=std_display_style,
            line_kw=line_kw,
            fill_between_kw=fill_between_kw,
            dense_line_kw=dense_line_kw,
        )


def plot_ticket_figures(
    results,
    *,
    kinds=DEFAULT_PANELS,
    ticket="rewind",
    strategies=None,
    band="std",
    axes=None,
    figsize=(10, 3.6),
    legend=True,
    **plot_kwargs,
):
    """Draw Frankle & Carbin's panels side by side, with one shared legend.

    By default, left to right: the early-stop iteration, the test accuracy
    at the early-stop iteration (F&C's headline figure) and the test
    accuracy at the end of training, each against the percent of weights
    remaining. The legend, below the panels, names the strategies, the dense
    line, the training length and what the shaded band is.

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy table from :func:`sklottery.analysis.ticket_curve`.
    kinds : sequence of str, default=('early_stop', 'early_stop_accuracy', \
'accuracy')
        Panels, left to right, among ``'early_stop'``,
        ``'early_stop_accuracy'``, ``'accuracy'`` and ``'init_accuracy'``
        (test accuracy of the masked initial weights, ``test_acc_init``;
        not drawn by default).
    ticket : str, default='rewind'
        Winning-ticket strategy.
    strategies : list of str, default=None
        Strategies to draw, default all.
    band : {'std', 'ci'}, default='std'
        Shaded band: +/- one standard deviation over trials, or the 95 %
        confidence interval of the mean. See :meth:`TicketCurveDisplay.plot`.
    axes : sequence of matplotlib Axes, default=None
        Axes to draw on, one per kind; None creates a 1 x ``len(kinds)``
        figure of size ``figsize`` with constrained layout.
    figsize : tuple of (float, float), default=(10, 3.6)
        Size in inches of the figure created when ``axes`` is None (about
        1100 x 400 pixels at 110 dpi, a page width).
    legend : bool, default=True
        Draw one legend for all panels, below them: a figure legend when the
        figure uses constrained layout (which makes room for it), else a
        legend of the first panel anchored under the span of ``axes`` (leave
        room for it, e.g. ``fig.subplots_adjust(bottom=...)``).
    **plot_kwargs : dict
        Passed to :meth:`TicketCurveDisplay.plot` (``max_ticks`` defaults
        to 7 here, for narrow panels).

    Returns
    -------
    figure : matplotlib Figure
        The figure; ``figure.axes[:len(kinds)]`` are the panels, in the
        order of ``kinds`` when the function created the figure.

    See Also
    --------
    TicketCurveDisplay : One panel.
    sklottery.analysis.ticket_curve : The table the figures are drawn from.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    """
    _check_matplotlib("plot_ticket_figures")
    import matplotlib.pyplot as plt
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    if not kinds:
        raise ValueError("kinds must name at least one panel.")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"kinds must be among {sorted(KINDS)}, got {unknown}.")
    if axes is None:
        fig, axes = plt.subplots(1, len(kinds), figsize=figsize, layout="constrained",
                                 squeeze=False)
    axes = list(np.ravel(np.asarray(axes, dtype=object)))
    if len(axes) != len(kinds):
        raise ValueError(
            f"axes must hold one Axes per kind: got {len(axes)} axes for "
            f"{len(kinds)} kinds {kinds}."
        )
    fig = axes[0].figure
    plot_kwargs.setdefault("max_ticks", 7)

    handles, labels = [], []
    for kind, ax in zip(kinds, axes):
        disp = TicketCurveDisplay.from_results(
            results, kind=kind, ticket=ticket, strategies=strategies, band=band, ax=ax,
            legend=False, **plot_kwargs,
        )
        regression = "_r2" in disp.metric
        title = _KIND_TITLES[kind]
        ax.set_title(title.replace("accuracy", "R²") if regression else title)
        if kind == "early_stop":
            ax.set_ylabel("Iteration")
        elif regression:
            ax.set_ylabel("Test R²")
        elif disp.scale_ == 100:
            ax.set_ylabel("Test accuracy (%)")
        else:
            ax.set_ylabel("Test accuracy")
        for handle, label in zip(disp.legend_handles_, disp.legend_labels_):
            if label not in labels:
                handles.append(handle)
                labels.append(label)

    if legend and handles:
        # In order of first appearance: strategies, dense, training length, band.
        if isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
            fontsize = _font_pt("small")
            fig.legend(
                handles, labels, loc="outside lower center", frameon=False,
                fontsize="small",
                ncol=_legend_ncol(labels, 0.95 * fig.get_figwidth() * 72, fontsize),
            )
        else:
            _legend_below(axes, handles, labels)
    return fig


class ConditionsMapDisplay:
    """Heatmap of where winning tickets exist across experimental conditions.

    Rows are the values of one condition (e.g. learning rate), columns those
    of another condition or the percent of weights remaining; the colour is
    a ticket indicator (``ticket_exists``, fraction of trials) or the
    ticket-minus-control accuracy difference; cells where tickets exist are
    marked.

    It is recommended to create it with :meth:`from_frame`.

    Parameters
    ----------
    values : ndarray of shape (n_y, n_x)
        Colour of each cell (NaN: no data).
    x_levels : array-like of shape (n_x,)
        Values of the column condition, in display order.
    y_levels : array-like of shape (n_y,)
        Values of the row condition, in display order (bottom to top).
    x_name : str
        Name of the column condition.
    y_name : str
        Name of the row condition.
    value_name : str
        Name of the coloured quantity (colorbar label).
    exists : ndarray of bool of shape (n_y, n_x), default=None
        Cells where a winning ticket exists; None draws no markers.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    im_ : matplotlib.image.AxesImage
        The heatmap.
    colorbar_ : matplotlib.colorbar.Colorbar or None
    markers_ : matplotlib.collections.PathCollection or None
        Markers on the cells where tickets exist.
    texts_ : list of matplotlib.text.Text
        Cell annotations (empty unless ``annotate=True``).

    See Also
    --------
    sklottery.analysis.conditions_sweep : The sweep the map is built from.
    sklottery.stats.tickets_exist : The per-condition verdicts it marks.

    References
    ----------
    .. [1] Liu, Z., Sun, M., Zhou, T., Huang, G. and Darrell, T. (2019).
       Rethinking the Value of Network Pruning. ICLR. arXiv:1810.05270.
    """

    def __init__(self, *, values, x_levels, y_levels, x_name, y_name, value_name, exists=None):
        self.values = values
        self.x_levels = x_levels
        self.y_levels = y_levels
        self.x_name = x_name
        self.y_name = y_name
        self.value_name = value_name
        self.exists = exists

    def plot(
        self,
        ax=None,
        *,
        cmap=None,
        vmin=None,
        vmax=None,
        colorbar=True,
        annotate=False,
        imshow_kw=None,
        marker_kw=None,
    ):
        """Plot visualization.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on; None creates a figure.
        cmap : str or Colormap, default=None
            Colour map; default ``'Greens'`` for values in [0, 1] and a
            diverging ``'RdBu'`` centred on 0 otherwise (e.g. accuracy
            differences, blue where the ticket wins).
        vmin, vmax : float, default=None
            Colour limits; defaults as described for ``cmap``.
        colorbar : bool, default=True
            Add a colorbar.
        annotate : bool, default=False
            Write each cell's value in it.
        imshow_kw : dict, default=None
            Extra keyword arguments of ``ax.imshow``.
        marker_kw : dict, default=None
            Extra keyword arguments of the ``ax.scatter`` marking ticket cells.

        Returns
        -------
        display : ConditionsMapDisplay
        """
        _check_matplotlib(f"{self.__class__.__name__}.plot")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        values = np.asarray(self.values, dtype=float)
        finite = values[np.isfinite(values)]
        # A signed quantity (e.g. a ticket-minus-control difference) gets a
        # diverging scale centred on 0 even when all its values happen to lie
        # in [0, 1], which is the usual case when the ticket wins.
        signed = "diff" in str(self.value_name).lower()
        unit = (not signed and finite.size > 0 and finite.min() >= 0
                and finite.max() <= 1)
        if cmap is None:
            cmap = "Greens" if unit else "RdBu"
        if vmin is None and vmax is None:
            if unit:
                vmin, vmax = 0.0, 1.0
            else:
                m = float(np.abs(finite).max()) if finite.size else 1.0
                m = m or 1.0
                vmin, vmax = -m, m
        kw = {"aspect": "auto", "origin": "lower", "interpolation": "nearest", **(imshow_kw or {})}
        self.im_ = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, **kw)

        ax.set_xticks(range(len(self.x_levels)))
        ax.set_xticklabels([self._fmt(v, self.x_name) for v in self.x_levels])
        ax.set_yticks(range(len(self.y_levels)))
        ax.set_yticklabels([self._fmt(v, self.y_name) for v in self.y_levels])
        ax.set_xlabel(_readable(self.x_name))
        ax.set_ylabel(_readable(self.y_name))

        self.markers_ = None
        if self.exists is not None:
            rows, cols = np.nonzero(np.asarray(self.exists, dtype=bool))
            mkw = {"marker": "*", "s": 60, "c": "gold", "edgecolors": "black",
                   "linewidths": 0.5, "label": "ticket exists", **(marker_kw or {})}
            self.markers_ = ax.scatter(cols, rows, **mkw)

        self.texts_ = []
        if annotate:
            for i in range(values.shape[0]):
                for j in range(values.shape[1]):
                    if np.isfinite(values[i, j]):
                        rgba = self.im_.cmap(self.im_.norm(values[i, j]))
                        luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
                        self.texts_.append(
                            ax.text(j, i, f"{values[i, j]:.2g}", ha="center",
                                    va="center", fontsize=7,
                                    color="white" if luminance < 0.5 else "black")
                        )

        self.colorbar_ = None
        if colorbar:
            self.colorbar_ = ax.figure.colorbar(self.im_, ax=ax)
            self.colorbar_.set_label(_readable(self.value_name))

        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @staticmethod
    def _fmt(value, name):
        if name == "weights_remaining":
            return _fmt_level(float(value))
        if isinstance(value, (float, np.floating)):
            return f"{value:.3g}"
        return str(value)

    @classmethod
    def from_frame(
        cls,
        data,
        *,
        y,
        x="weights_remaining",
        value="ticket_exists",
        exists="auto",
        ax=None,
        **plot_kwargs,
    ):
        """Create and plot the heatmap from a table of conditions.

        Parameters
        ----------
        data : pandas.DataFrame
            One row per (x, y) cell or several (e.g. one per trial); the
            ``value`` column is averaged within a cell.
        y : str
            Condition column for the rows (e.g. ``'learning_rate'``), sorted
            ascending from bottom to top.
        x : str, default='weights_remaining'
            Column for the columns. ``weights_remaining`` is rounded to
            :data:`sklottery.stats.LEVEL_DECIMALS` decimals and ordered from
            dense (left) to sparse; another condition is sorted ascending.
        value : str, default='ticket_exists'
            Column coloured, e.g. a boolean ``ticket_exists`` (shown as the
            fraction of trials) or a ticket-minus-control difference.
        exists : 'auto', str or None, default='auto'
            Boolean column whose cell mean ``>= 0.5`` marks a cell where a
            ticket exists. ``'auto'`` uses ``'ticket_exists'`` if present,
            None draws no markers.
        ax : matplotlib Axes, default=None
            Axes to plot on.
        **plot_kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : ConditionsMapDisplay
        """
        df = data.copy() if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        if exists == "auto":
            exists = "ticket_exists" if "ticket_exists" in df.columns else None
        needed = [x, y, value] + ([exists] if exists is not None else [])
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise ValueError(f"data is missing column(s) {missing}; it has {list(df.columns)}.")
        if x == y:
            raise ValueError("x and y must be different columns.")
        if x == "weights_remaining":
            df[x] = df[x].astype(float).round(LEVEL_DECIMALS)
        for col in {value, exists} - {None}:
            df[col] = pd.to_numeric(df[col].astype(float) if df[col].dtype == bool else df[col])
        table = df.pivot_table(index=y, columns=x, values=value, aggfunc="mean", dropna=False)
        table = table.sort_index(axis=0)
        table = table.sort_index(axis=1, ascending=(x != "weights_remaining"))
        mask = None
        if exists is not None:
            ex = df.pivot_table(index=y, columns=x, values=exists, aggfunc="mean", dropna=False)
            ex = ex.reindex(index=table.index, columns=table.columns)
            mask = (ex.to_numpy(dtype=float) >= 0.5)
        disp = cls(
            values=table.to_numpy(dtype=float),
            x_levels=list(table.columns),
            y_levels=list(table.index),
            x_name=x,
            y_name=y,
            value_name=value,
            exists=mask,
        )
        return disp.plot(ax=ax, **plot_kwargs)


class StabilityDisplay:
    """Frankle et al. (2020) in one figure: error paths, instability and accuracy vs k.

    Left: the test error along the linear path between two copies trained
    from θk, one curve per rewind iteration ``k`` (for ``network``). Middle:
    instability (percentage points) against ``k`` for the dense network and
    the ticket, with the 2-point stability threshold. Right: the test score of
    the networks trained from θk (accuracy in percent, or R²) against ``k``:
    does the ticket match dense once it is stable?

    It is recommended to create it with :meth:`from_results` or
    :meth:`from_estimator`.

    Parameters
    ----------
    summary, paths : pandas.DataFrame
        The two tables of :func:`sklottery.stability.stability_sweep`.
    network : {'ticket', 'dense'}, default='ticket'
        Whose paths the left panel draws.

    Attributes
    ----------
    axes_ : ndarray of three matplotlib Axes
    figure_ : matplotlib Figure

    See Also
    --------
    sklottery.stability.stability_sweep : The tables the display is built from.
    sklottery.stability.linear_mode_connectivity : One error path.

    References
    ----------
    .. [1] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2020).
       Linear Mode Connectivity and the Lottery Ticket Hypothesis. ICML.
       arXiv:1912.05671.
    """

    def __init__(self, *, summary, paths, network="ticket"):
        self.summary = summary
        self.paths = paths
        self.network = network

    def plot(self, axes=None, *, figsize=(10, 3.4)):
        """Draw the three panels (creates a 1 x 3 figure when ``axes`` is None).

        Returns
        -------
        display : StabilityDisplay
        """
        _check_matplotlib(f"{self.__class__.__name__}.plot")
        import matplotlib.pyplot as plt

        from .stability import STABLE_THRESHOLD

        if self.network not in ("ticket", "dense"):
            raise ValueError(f"network must be 'ticket' or 'dense', got {self.network!r}.")
        if axes is None:
            _, axes = plt.subplots(1, 3, figsize=figsize, layout="constrained")
        if len(axes) != 3:
            raise ValueError(f"axes must be three Axes, got {len(axes)}.")
        ax_path, ax_inst, ax_score = axes
        paths = self.paths[self.paths["network"] == self.network]
        ks = sorted(paths["rewind_iteration"].unique())
        cmap = plt.get_cmap("viridis")
        for i, k in enumerate(ks):
            part = paths[paths["rewind_iteration"] == k].groupby("alpha")["error"].mean()
            ax_path.plot(part.index, part.to_numpy(), marker="o", markersize=3,
                         color=cmap(i / max(1, len(ks) - 1)), label=f"k = {k}")
        ax_path.set_xlabel("Interpolation α (copy A → copy B)")
        ax_path.set_ylabel("Test error (%)")
        ax_path.set_title(f"Error along the path ({self.network})")
        ax_path.legend(fontsize="small", title="rewind iteration", title_fontsize="small")
        grouped = self.summary.groupby(["network", "rewind_iteration"])
        stats_ = grouped[["instability", "test_score"]].agg(["mean", "std"]).reset_index()
        regression = self.summary.attrs.get("task") == "regression"
        scale = 1.0 if regression else 100.0
        styles = {"dense": dict(color="black", linestyle="--"),
                  "ticket": dict(color="C0", linestyle="-")}
        for network, style in styles.items():
            part = stats_[stats_["network"] == network]
            if not len(part):
                continue
            k = part["rewind_iteration"].to_numpy()
            label = "dense" if network == "dense" else "ticket"
            for ax, col, s in ((ax_inst, "instability", 1.0), (ax_score, "test_score", scale)):
                mean = part[(col, "mean")].to_numpy() * s
                std = np.nan_to_num(part[(col, "std")].to_numpy()) * s
                ax.plot(k, mean, marker="o", markersize=3, label=label, **style)
                ax.fill_between(k, mean - std, mean + std, color=style["color"], alpha=0.12,
                                linewidth=0)
        ax_inst.axhline(STABLE_THRESHOLD, color="grey", linestyle=":", linewidth=1,
                        label=f"stable below {STABLE_THRESHOLD:g} points")
        ax_inst.set_ylabel("Instability (points)")
        ax_inst.set_title("Instability vs rewind iteration")
        ax_score.set_ylabel("Test R²" if regression else "Test accuracy (%)")
        ax_score.set_title("Trained from θk")
        k_max = max(1, int(self.summary["rewind_iteration"].max()))
        for ax in (ax_inst, ax_score):
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(-0.2, k_max * 1.5)  # k >= 0: no negative decades
            ax.set_xlabel("Rewind iteration k")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")
        ax_path.grid(True, alpha=0.3)
        self.axes_ = np.asarray(axes)
        self.figure_ = ax_path.figure
        return self

    @classmethod
    def from_results(cls, summary, paths, *, network="ticket", axes=None, **plot_kwargs):
        """Create and plot from :func:`~sklottery.stability.stability_sweep`'s tables."""
        return cls(summary=summary, paths=paths, network=network).plot(axes=axes, **plot_kwargs)

    @classmethod
    def from_estimator(cls, estimator, X, y, rewind_iterations=(0,), *, network="ticket",
                       axes=None, **sweep_kwargs):
        """Run :func:`~sklottery.stability.stability_sweep` and plot it."""
        from .stability import stability_sweep

        summary, paths = stability_sweep(estimator, X, y, rewind_iterations, **sweep_kwargs)
        return cls.from_results(summary, paths, network=network, axes=axes)
