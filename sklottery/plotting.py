"""Displays for lottery-ticket experiments, in the style of scikit-learn.

Each display stores its data in ``__init__`` and draws in ``plot``, which sets
``ax_`` and ``figure_`` and returns the display; ``from_results`` (and, for
:class:`TicketCurveDisplay`, ``from_estimator``) build and plot in one call,
like :class:`sklearn.model_selection.LearningCurveDisplay`.

matplotlib is imported only when something is drawn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import (
    LEVEL_DECIMALS,
    dense_baseline,
    strategy_label,
    summarize_curve,
)

__all__ = ["TicketCurveDisplay", "ConditionsMapDisplay", "plot_ticket_figures"]

#: ``kind`` shortcuts of :class:`TicketCurveDisplay` and the metric each plots.
KINDS = {
    "accuracy": "test_acc",
    "early_stop": "early_stop_iteration",
    "early_stop_accuracy": "test_acc_early_stop",
}

_METRIC_NAMES = {
    "test_acc": "Test accuracy",
    "test_acc_early_stop": "Test accuracy at early stop",
    "early_stop_iteration": "Early-stop iteration",
    "train_acc": "Train accuracy",
    "seconds": "Training time (s)",
    "weights_remaining": "Weights remaining (%)",
    "ticket_exists": "Winning ticket exists",
}


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


def _resolve_metric(metric, kind):
    if kind is None:
        return metric
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}.")
    return KINDS[kind]


class TicketCurveDisplay:
    """Metric vs. percent of weights remaining, one curve per strategy.

    The figures of Frankle & Carbin (2019): test accuracy (or the early-stop
    iteration) against the percent of weights remaining on a reversed log
    axis (dense on the left), with the mean of the trials as a line, a
    +/- one standard deviation band, and the dense network as a dashed
    horizontal line with its own band.

    It is recommended to create it with :meth:`from_results` or
    :meth:`from_estimator`. All parameters are stored as attributes.

    Parameters
    ----------
    curve : pandas.DataFrame
        Output of :func:`sklottery.stats.summarize_curve` with
        ``by=('strategy', 'weights_remaining')``: at least the columns
        ``strategy``, ``weights_remaining``, ``mean`` and ``std``.
    dense_mean : float, default=None
        Mean of the dense network; None draws no dense line.
    dense_std : float, default=None
        Standard deviation of the dense network (band around the dense line);
        None or NaN draws no band.
    metric : str, default='test_acc'
        Name of the plotted column, used for the y label.
    ticket : str, default='rewind'
        Strategy drawn first and on top of the others.
    results : pandas.DataFrame, default=None
        The raw result table, kept for reference (set by the constructors).

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the curves.
    figure_ : matplotlib Figure
        Figure containing the axes.
    lines_ : dict of {str: matplotlib.lines.Line2D}
        Mean curve of each strategy.
    fill_between_ : dict of {str: matplotlib.collections.PolyCollection}
        Standard-deviation band of each strategy (empty when
        ``std_display_style=None``).
    dense_line_ : matplotlib.lines.Line2D or None
        Dashed horizontal line at the dense mean.
    dense_fill_ : matplotlib Artist or None
        Band of +/- one standard deviation around the dense mean.

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
    ):
        self.curve = curve
        self.dense_mean = dense_mean
        self.dense_std = dense_std
        self.metric = metric
        self.ticket = ticket
        self.results = results

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

    def plot(
        self,
        ax=None,
        *,
        strategies=None,
        std_display_style="fill_between",
        show_dense=True,
        max_ticks=10,
        line_kw=None,
        fill_between_kw=None,
        dense_line_kw=None,
        legend=True,
    ):
        """Plot visualization.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on. If None, a new figure and axes are created.
        strategies : str or list of str, default=None
            Strategies to draw, default all in the data (ticket first).
        std_display_style : {'fill_between'} or None, default='fill_between'
            Draw a +/- one standard deviation band around each mean curve, or
            nothing. Missing std (one trial) draws a zero-width band.
        show_dense : bool, default=True
            Draw the dense baseline (requires ``dense_mean``).
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
            Draw a legend.

        Returns
        -------
        display : TicketCurveDisplay
            The display, with the artists stored as attributes.
        """
        _check_matplotlib(f"{self.__class__.__name__}.plot")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullLocator

        if std_display_style not in ("fill_between", None):
            raise ValueError(
                "std_display_style must be 'fill_between' or None, got "
                f"{std_display_style!r}."
            )
        if ax is None:
            _, ax = plt.subplots()
        line_kw = {} if line_kw is None else dict(line_kw)
        fill_kw = {"alpha": 0.2, "linewidth": 0, **(fill_between_kw or {})}

        self.lines_, self.fill_between_ = {}, {}
        levels = set()
        for strategy in self._strategies(strategies):
            part = self.curve[self.curve["strategy"] == strategy].sort_values(
                "weights_remaining", ascending=False
            )
            x = part["weights_remaining"].to_numpy(dtype=float)
            mean = part["mean"].to_numpy(dtype=float)
            std = np.nan_to_num(part["std"].to_numpy(dtype=float))
            levels.update(x.tolist())
            kw = {"marker": "o", "markersize": 3, **line_kw}
            if strategy == self.ticket:
                kw.setdefault("zorder", 3)
            (line,) = ax.plot(x, mean, label=strategy_label(strategy), **kw)
            self.lines_[strategy] = line
            if std_display_style == "fill_between":
                self.fill_between_[strategy] = ax.fill_between(
                    x, mean - std, mean + std, color=line.get_color(), **fill_kw
                )

        self.dense_line_ = self.dense_fill_ = None
        if show_dense and self.dense_mean is not None and not np.isnan(self.dense_mean):
            dkw = {"color": "black", "linestyle": "--", "linewidth": 1, **(dense_line_kw or {})}
            self.dense_line_ = ax.axhline(self.dense_mean, label="dense", **dkw)
            if self.dense_std is not None and not np.isnan(self.dense_std):
                self.dense_fill_ = ax.axhspan(
                    self.dense_mean - self.dense_std,
                    self.dense_mean + self.dense_std,
                    color=dkw["color"],
                    alpha=0.08,
                    linewidth=0,
                )

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
        ax.set_ylabel(_readable(self.metric))
        ax.grid(True, which="major", alpha=0.3)
        if legend:
            ax.legend()

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
        """Create and plot the display from a :func:`ticket_curve` table.

        Parameters
        ----------
        results : pandas.DataFrame
            Tidy table from :func:`sklottery.analysis.ticket_curve` (single
            dataset): columns ``strategy``, ``weights_remaining``, ``round``
            and ``metric``.
        metric : str, default='test_acc'
            Column to plot.
        kind : {'accuracy', 'early_stop', 'early_stop_accuracy'}, default=None
            Shortcut overriding ``metric`` with ``'test_acc'``,
            ``'early_stop_iteration'`` or ``'test_acc_early_stop'``.
        ticket : str, default='rewind'
            Winning-ticket strategy; its round-0 rows are the dense baseline.
        strategies : list of str, default=None
            Strategies to draw, default all.
        pooled_dense : bool, default=False
            Pool the round-0 rows of every strategy for the dense baseline.
        ax : matplotlib Axes, default=None
            Axes to plot on; None creates a figure.
        **plot_kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : TicketCurveDisplay
        """
        metric = _resolve_metric(metric, kind)
        df = results if isinstance(results, pd.DataFrame) else pd.DataFrame(results)
        if "dataset" in df.columns and df["dataset"].nunique() > 1:
            raise ValueError(
                "results holds several datasets; plot one at a time, e.g. "
                "results[results['dataset'] == name]."
            )
        curve = summarize_curve(df, metric=metric)
        try:
            base = dense_baseline(df, ticket=ticket, metric=metric, pooled=pooled_dense)
            dense_mean, dense_std = base["mean"], base["std"]
        except ValueError:
            dense_mean = dense_std = None
        disp = cls(
            curve=curve,
            dense_mean=dense_mean,
            dense_std=dense_std,
            metric=metric,
            ticket=ticket,
            results=df,
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
        kind : {'accuracy', 'early_stop', 'early_stop_accuracy'}, default=None
            Shortcut overriding ``metric``.
        ticket : str, default='rewind'
            Winning-ticket strategy.
        ax : matplotlib Axes, default=None
            Axes to plot on.
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
            std_display_style=std_display_style,
            line_kw=line_kw,
            fill_between_kw=fill_between_kw,
            dense_line_kw=dense_line_kw,
        )


def plot_ticket_figures(results, *, ticket="rewind", strategies=None, axes=None, **plot_kwargs):
    """Draw the two Frankle & Carbin panels side by side.

    Left: early-stop iteration vs. weights remaining; right: test accuracy
    vs. weights remaining.

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy table from :func:`sklottery.analysis.ticket_curve`.
    ticket : str, default='rewind'
        Winning-ticket strategy.
    strategies : list of str, default=None
        Strategies to draw, default all.
    axes : sequence of two matplotlib Axes, default=None
        Axes to draw on; None creates a 1 x 2 figure.
    **plot_kwargs : dict
        Passed to :meth:`TicketCurveDisplay.plot`.

    Returns
    -------
    figure : matplotlib Figure
        The figure; ``figure.axes[:2]`` are the early-stop and accuracy axes.
    """
    _check_matplotlib("plot_ticket_figures")
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    ax_es, ax_acc = axes
    TicketCurveDisplay.from_results(
        results, kind="early_stop", ticket=ticket, strategies=strategies, ax=ax_es,
        legend=False, **plot_kwargs,
    )
    TicketCurveDisplay.from_results(
        results, kind="accuracy", ticket=ticket, strategies=strategies, ax=ax_acc,
        **plot_kwargs,
    )
    ax_es.set_title("Early-stop iteration")
    ax_acc.set_title("Test accuracy at end of training")
    return ax_acc.figure


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
