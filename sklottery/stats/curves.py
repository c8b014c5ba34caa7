"""Curve statistics and tests on the tidy table of ``ticket_curve``.

The table returned by :func:`sklottery.analysis.ticket_curve` has one row per
strategy x trial x round. :func:`summarize_curve` gives the mean and
confidence interval of a metric per strategy and level, :func:`dense_baseline`
the mean of the dense (unpruned) network, :func:`compare_to_ticket` Welch (or
bootstrap) tests of the winning ticket against every control, and
:func:`holm` the Holm-Bonferroni correction of a family of p-values.

Pruning levels (``weights_remaining``, in percent) are grouped after rounding
to :data:`LEVEL_DECIMALS` decimals, so that levels computed in different trials
that differ only by floating-point noise fall in the same group.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy import special as _spec
from scipy import stats as _sps

__all__ = [
    "LEVEL_DECIMALS",
    "STRATEGY_LABELS",
    "strategy_label",
    "summarize_curve",
    "dense_baseline",
    "compare_to_ticket",
    "holm",
]

#: Number of decimals ``weights_remaining`` is rounded to before grouping.
LEVEL_DECIMALS = 2

#: Readable names for the strategies of :func:`sklottery.analysis.ticket_curve`.
STRATEGY_LABELS = {
    "rewind": "winning ticket (rewind)",
    "random": "random reinit",
    "random_mask": "random mask",
    "continue": "continued training (no rewind)",
    "scratch_e": "scratch-E (reinit, same epochs)",
    "scratch_b": "scratch-B (reinit, same budget)",
    "one_shot": "one-shot pruning",
    "same_sign": "random reinit, same signs",
    "rewind_k": "late rewinding",
    "shuffle_layer": "mask shuffled within layers",
    "invert": "inverted mask",
    "snip": "SNIP",
    "grasp": "GraSP",
    "synflow": "SynFlow",
    "snip_shuffle": "SNIP mask shuffled within layers",
    "grasp_shuffle": "GraSP mask shuffled within layers",
    "synflow_shuffle": "SynFlow mask shuffled within layers",
}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def strategy_label(strategy):
    """Readable name of a strategy, for legends and sentences.

    Parameters
    ----------
    strategy : str
        Strategy name as found in the ``strategy`` column.

    Returns
    -------
    label : str
        The entry of :data:`STRATEGY_LABELS`, or the name with underscores
        replaced by spaces when it is not a known strategy.

    See Also
    --------
    STRATEGY_LABELS : The labels of the known strategies.
    """
    return STRATEGY_LABELS.get(strategy, str(strategy).replace("_", " "))


def as_frame(results, required):
    if isinstance(results, pd.DataFrame):
        df = results.copy()
    else:
        df = pd.DataFrame(results)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"results is missing required column(s) {missing}; "
            f"it has {list(df.columns)}."
        )
    return df


def round_levels(values):
    return pd.to_numeric(values, errors="raise").astype(float).round(LEVEL_DECIMALS)


def _numeric(values, name):
    try:
        return pd.to_numeric(values, errors="raise").astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Column {name!r} must be numeric.") from exc


def check_confidence(confidence):
    if not isinstance(confidence, Real) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a float in (0, 1), got {confidence!r}.")


def single_dataset(df, func):
    if "dataset" in df.columns and df["dataset"].nunique(dropna=False) > 1:
        raise ValueError(
            f"{func} needs results from a single dataset, got "
            f"{sorted(map(str, df['dataset'].unique()))}; filter first, e.g. "
            "results[results['dataset'] == name]."
        )


def _rng(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    if random_state is None or isinstance(random_state, Integral):
        return np.random.default_rng(random_state)
    raise ValueError(
        "random_state must be None, an int, a numpy Generator or RandomState, "
        f"got {random_state!r}."
    )


def is_proportion(metric, values):
    """Whether ``metric`` is an accuracy-like proportion: 'acc' in its name, values in [0, 1]."""
    values = pd.Series(values, dtype=float).dropna()
    return bool("acc" in metric.lower() and len(values)
                and values.min() >= 0 and values.max() <= 1)


#: Name fragments of metrics that count iterations, epochs or seconds (never negative).
_COUNT_HINTS = ("iteration", "n_iter", "epoch", "seconds")


def _metric_range(metric, values, n_iter=None):
    """``(low, high)``: the range the mean of ``metric`` can take.

    ``(0, 1)`` for an accuracy-like proportion; for an iteration count that
    is not itself ``n_iter`` (``early_stop_iteration``), ``(0, max(n_iter))``
    when ``n_iter`` (the iterations each run trained) is given and bounds
    every value (a run does not stop after it has finished training), else
    ``(0, inf)``; ``(0, inf)`` for other counts and times; ``(-inf, inf)``
    otherwise, or whenever an observed value lies outside the range the name
    suggests.
    """
    values = pd.Series(values, dtype=float).dropna()
    if is_proportion(metric, values):
        return 0.0, 1.0
    name = metric.lower()
    if not any(h in name for h in _COUNT_HINTS) or (len(values) and values.min() < 0):
        return -np.inf, np.inf
    high = np.inf
    if n_iter is not None and "iteration" in name and name != "n_iter":
        longest = pd.to_numeric(pd.Series(n_iter), errors="coerce").max()
        if np.isfinite(longest) and (not len(values) or values.max() <= longest):
            high = float(longest)
    return 0.0, high


def infer_greater_is_better(metric):
    """False for a metric where lower is better (iterations, losses, times, errors)."""
    lowered = metric.lower()
    lower_is_better = ("iteration", "loss", "seconds", "error", "mse", "mae")
    return not any(k in lowered for k in lower_is_better)


#: A standard deviation at most this fraction of the largest magnitude among
#: the values is taken as floating-point rounding, not as spread (see
#: :func:`_is_rounding`).
_SPREAD_RTOL = 1e-10


def _is_rounding(spread, *groups):
    """Whether ``spread`` (a std or standard error) is float rounding of the values.

    A metric that went through a few float operations (``k / n_test``, a
    mean, a conversion to percent) carries a relative error of a few hundred
    ulps, about 1e-13; real spreads of measured metrics are far larger (an
    accuracy moves by ``1 / n_test``, at least 1e-9 for a billion test
    samples). 1e-10 lies between the two, three orders of magnitude above
    the rounding and one below the finest real spread.
    """
    scale = max((float(np.max(np.abs(g))) for g in groups if len(g)), default=0.0)
    return not spread > _SPREAD_RTOL * scale


def hedges_g(a, b):
    """Hedges' g of ``mean(a) - mean(b)``; NaN if undefined.

    Undefined with fewer than two values in a group, and when the pooled
    standard deviation is zero or float rounding (:func:`_is_rounding`):
    dividing by rounding would give an effect size of 1e14 or more.
    """
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return np.nan
    dof = na + nb - 2
    sp = math.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / dof)
    if _is_rounding(sp, a, b):
        return np.nan
    j = 1.0 - 3.0 / (4.0 * dof - 1.0)
    return j * (np.mean(a) - np.mean(b)) / sp


def _difference(a, b):
    """``mean(a) - mean(b)``, exactly 0 when it is float rounding (:func:`_is_rounding`)."""
    diff = float(np.mean(a) - np.mean(b))
    return 0.0 if _is_rounding(abs(diff), a, b) else diff


def _constant(a, b, diff, out):
    """The test of two groups that are constant up to float rounding (None otherwise).

    The difference is then exact (a zero-width interval) and the test
    undefined: a statistic or p-value computed from rounding would be noise.
    """
    sp = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    if not _is_rounding(sp, a, b):
        return None
    out.update(ci_low=diff, ci_high=diff, se=0.0, dof=np.nan)
    return out


def welch(a, b, confidence):
    na, nb = len(a), len(b)
    diff = _difference(a, b)
    out = dict(diff=diff, ci_low=np.nan, ci_high=np.nan, statistic=np.nan, p_value=np.nan)
    if na < 2 or nb < 2:
        return out
    if _constant(a, b, diff, out) is not None:
        return out
    va, vb = np.var(a, ddof=1) / na, np.var(b, ddof=1) / nb
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    out.update(se=se, dof=dof)
    # scipy.stats.ttest_ind(equal_var=False) computes the same statistic and
    # p-value; the special functions are ~30x faster, which the simulations
    # of the verdict's error rates need
    half = float(_spec.stdtrit(dof, 0.5 + confidence / 2)) * se
    t = diff / se
    out.update(
        ci_low=diff - half,
        ci_high=diff + half,
        statistic=float(t),
        p_value=float(2.0 * _spec.stdtr(dof, -abs(t))),
    )
    return out


def _bootstrap(a, b, confidence, n_bootstrap, rng):
    na, nb = len(a), len(b)
    diff = _difference(a, b)
    out = dict(diff=diff, ci_low=np.nan, ci_high=np.nan, statistic=np.nan, p_value=np.nan)
    if na < 2 or nb < 2:
        return out
    if _constant(a, b, diff, out) is not None:
        return out
    boot = a[rng.integers(0, na, size=(n_bootstrap, na))].mean(axis=1) - b[
        rng.integers(0, nb, size=(n_bootstrap, nb))
    ].mean(axis=1)
    alpha = 1 - confidence
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    # Shift method: the null distribution is that of the resampled differences
    # after moving both groups onto their pooled mean, i.e. ``boot - diff``.
    null = boot - diff
    p = (1 + np.count_nonzero(np.abs(null) >= abs(diff))) / (n_bootstrap + 1)
    se = np.std(boot, ddof=1)
    out.update(
        ci_low=float(lo),
        ci_high=float(hi),
        statistic=float(diff / se) if se > 0 else np.nan,
        p_value=float(p),
    )
    return out


# --------------------------------------------------------------------------
# curve statistics
# --------------------------------------------------------------------------
def _wilson(p, n_eff, confidence):
    """Wilson score interval of a proportion ``p`` estimated from ``n_eff`` samples."""
    z = _sps.norm.ppf(0.5 + confidence / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z2n = z * z / n_eff
        centre = (p + z2n / 2) / (1 + z2n)
        half = z / (1 + z2n) * np.sqrt(p * (1 - p) / n_eff + z2n / (4 * n_eff))
    return centre - half, centre + half


def summarize_curve(
    results, metric="test_acc", by=("strategy", "weights_remaining"), confidence=0.95,
    ci_method="auto", n_bootstrap=10000, random_state=0,
):
    """Mean, spread and confidence interval of a metric per strategy and level.

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy table from :func:`sklottery.analysis.ticket_curve`; must contain
        the ``metric`` column and every column in ``by``. Its ``n_test``
        column (test samples per trial) widens the intervals of accuracies,
        and its ``n_iter`` column (iterations trained) bounds those of the
        early-stop iteration; see ``ci_method``.
    metric : str, default='test_acc'
        Numeric column to summarise (e.g. ``'test_acc'``,
        ``'test_acc_early_stop'``, ``'early_stop_iteration'``).
    by : str or sequence of str, default=('strategy', 'weights_remaining')
        Grouping columns. ``weights_remaining`` is rounded to
        :data:`LEVEL_DECIMALS` decimals before grouping. Add ``'dataset'``
        when the table holds several datasets (a warning is raised otherwise).
    confidence : float, default=0.95
        Coverage of the confidence interval of the mean.
    ci_method : {'auto', 't', 'bootstrap'}, default='auto'
        ``'t'``: Student t interval ``mean +/- t_{(1+confidence)/2, n-1} *
        sem``, intersected with the range the metric's mean can take (see
        Notes). ``'auto'``: the same t interval, and for an accuracy-like
        proportion (a metric whose name contains ``acc`` with every value in
        [0, 1]) with an ``n_test`` column, the smallest interval containing
        both the t interval and the Wilson score interval of the mean
        accuracy over the ``n / sum(1 / n_test)`` pooled test samples of the
        group (see Notes). ``'bootstrap'``: percentile bootstrap of the mean
        over the trials (``n_bootstrap`` resamples); not recommended with
        fewer than about 20 trials, where it covers far less than
        ``confidence`` (Notes).
    n_bootstrap : int, default=10000
        Bootstrap resamples (``ci_method='bootstrap'`` only).
    random_state : int, numpy Generator or RandomState, default=0
        Seed of the bootstrap (fixed by default: the same table always gives
        the same intervals).

    Returns
    -------
    summary : pandas.DataFrame
        Columns ``*by, 'mean', 'std', 'n', 'sem', 'ci_low', 'ci_high'``, one
        row per group, sorted by the ``by`` columns in order, ascending except
        ``weights_remaining`` which is descending (dense first). ``std`` uses
        ``ddof=1``; ``n`` counts non-missing values; ``sem = std / sqrt(n)``.
        With ``n == 1`` the std, sem and interval are NaN. ``summary.attrs
        ['ci_method']`` says which interval was used (``'t'``,
        ``'t+wilson'`` or ``'bootstrap'``).

    See Also
    --------
    dense_baseline : Mean and standard deviation of the dense network.
    compare_to_ticket : Tests of the ticket against every control.
    sklottery.plotting.TicketCurveDisplay : The summary as a figure.

    Notes
    -----
    **Why the t interval.** A lottery-ticket experiment has few trials
    (2 to 5), and the interval must cover the mean with the stated
    probability at that size. The percentile bootstrap, this function's
    default before version 0.2, cannot: its resampled means spread by
    ``sqrt((n - 1) / n)`` times the standard error and it uses normal rather
    than t quantiles, so at two trials its 95 % interval is the range of the
    two values. Measured coverage of the nominal 95 % interval of a mean
    accuracy at 2 / 3 / 5 trials (``python benchmarks/bench_intervals.py``;
    20000 simulated groups per cell for the t intervals, Monte-Carlo
    standard error at most 0.002, and 4000 with 10000 resamples each for the
    bootstrap, at most 0.008; the normal rows have no ``n_test`` column, so
    ``'auto'`` is the t interval there):

    ==========================  ===================  ===================  ===================
    trial accuracies            bootstrap (former)   ``'t'``              ``'auto'``
    ==========================  ===================  ===================  ===================
    0.9 + normal, sd 0.3 pp     0.51 / 0.75 / 0.84   0.95 / 0.95 / 0.95   0.95 / 0.95 / 0.95
    0.9 + normal, sd 2 pp       0.51 / 0.75 / 0.84   0.95 / 0.95 / 0.95   0.95 / 0.95 / 0.95
    Binomial(100, 0.90) / 100   0.62 / 0.83 / 0.86   0.93 / 0.95 / 0.95   1.00 / 0.99 / 0.98
    Binomial(38, 0.95) / 38     0.50 / 0.74 / 0.82   0.78 / 0.93 / 0.92   0.97 / 0.97 / 0.98
    Binomial(38, 0.99) / 38     0.44 / 0.66 / 0.82   0.46 / 0.66 / 0.85   1.00 / 1.00 / 1.00
    ==========================  ===================  ===================  ===================

    The t interval is exact for normal trial-to-trial noise at any ``n`` and
    robust to the mild skew of binomial test-set noise; BCa and studentised
    bootstrap intervals were not chosen because with 3 trials there are only
    10 distinct resampled means, too few for either correction, and both
    keep the bootstrap's ``sqrt((n - 1) / n)`` narrowing at this size.

    **The Wilson widening** (``'auto'``, accuracies with ``n_test``). Each
    trial tests on its own split of ``n_test`` samples, so a trial's
    accuracy carries binomial test-set noise and is discrete in steps of
    ``1 / n_test``. On a small test set near 100 % accuracy, trials often
    score the same, and the t interval then has zero width (iris: 38 test
    samples at 99 % accuracy, 3 trials: the t interval covers in 66 % of
    groups). The Wilson interval of the pooled test samples is the interval
    the mean would have if trials differed by test-set noise alone; taking
    the smallest interval containing both never covers less than the t
    interval; in the binomial rows above it is on average 3-5 % (100 test
    samples), 7 % (38 at 0.95) and 29-35 % (38 at 0.99) wider than the t
    interval. When every trial tests on the same samples (``X_test`` given
    to ``ticket_curve``) the test-set noise is shared, not averaged, and the
    widening is conservative: still valid, wider than needed.

    **Bounds.** Each interval is intersected with the range the mean can
    take, which cannot lower its coverage (the true mean lies inside):
    [0, 1] for accuracies; for the early-stop iteration ([0, L] with ``L``
    the largest ``n_iter`` of the table (a run stops no later than it
    trains; ``L`` is the training length when every round trains a fixed
    number of epochs), or [0, inf) without an ``n_iter`` column; [0, inf)
    for other iteration, epoch and time columns. A range is used only when
    every observed value lies inside it. The percentile bootstrap stays
    within the observed values anyway.

    References
    ----------
    .. [1] Efron, B. and Tibshirani, R. J. (1993). An Introduction to the
       Bootstrap. Chapman & Hall.
    .. [2] Wilson, E. B. (1927). Probable Inference, the Law of Succession,
       and Statistical Inference. Journal of the American Statistical
       Association, 22(158), 209-212.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"strategy": ["rewind"] * 2, "weights_remaining":
    ...                    [100.0, 100.0], "test_acc": [0.9, 0.92]})
    >>> summarize_curve(df)[["mean", "n"]].round(3).values.tolist()
    [[0.91, 2.0]]
    """
    by = [by] if isinstance(by, str) else list(by)
    if not by:
        raise ValueError("by must name at least one column.")
    check_confidence(confidence)
    if ci_method not in ("auto", "t", "bootstrap"):
        raise ValueError(f"ci_method must be 'auto', 't' or 'bootstrap', got {ci_method!r}.")
    df = as_frame(results, [metric, *by])
    if "dataset" in df.columns and "dataset" not in by and df["dataset"].nunique() > 1:
        warnings.warn(
            "results holds several datasets but 'dataset' is not in `by`; "
            "their values are pooled.",
            UserWarning,
            stacklevel=2,
        )
    if "weights_remaining" in by:
        df["weights_remaining"] = round_levels(df["weights_remaining"])
    df[metric] = _numeric(df[metric], metric)
    proportion = is_proportion(metric, df[metric])
    wilson = ci_method == "auto" and proportion and "n_test" in df.columns
    if wilson:
        n_test = pd.to_numeric(df["n_test"], errors="coerce")
        # 1 / n_test of the rows that count (missing where the metric or n_test is)
        df["_inv_n_test"] = (1.0 / n_test.where(n_test > 0)).where(df[metric].notna())
    grouped = df.groupby(by, sort=False, dropna=False)
    out = grouped[metric].agg(["mean", "std", "count"]).reset_index()
    out = out.rename(columns={"count": "n"})
    n = out["n"].to_numpy(dtype=float)
    std = out["std"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        sem = np.where(n >= 2, std / np.sqrt(n), np.nan)
        tcrit = np.where(n >= 2, _sps.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)), np.nan)
    out["std"] = np.where(n >= 2, std, np.nan)
    out["n"] = out["n"].astype(int)
    out["sem"] = sem
    if ci_method in ("auto", "t"):
        low, high = _metric_range(metric, df[metric], df.get("n_iter"))
        mean = out["mean"].to_numpy(dtype=float)
        ci_low, ci_high = mean - tcrit * sem, mean + tcrit * sem
        if wilson:
            inv = grouped["_inv_n_test"].agg(["sum", "count"])
            # every counted row must have its n_test, else the group keeps its t interval
            known = (inv["count"].to_numpy() == n) & (n >= 2)
            with np.errstate(divide="ignore", invalid="ignore"):
                n_eff = np.where(known, n**2 / inv["sum"].to_numpy(dtype=float), np.nan)
            w_low, w_high = _wilson(mean, n_eff, confidence)
            ci_low = np.where(known, np.fmin(ci_low, w_low), ci_low)
            ci_high = np.where(known, np.fmax(ci_high, w_high), ci_high)
        out["ci_low"] = np.clip(ci_low, low, high)
        out["ci_high"] = np.clip(ci_high, low, high)
        ci_method = "t+wilson" if wilson else "t"
    else:
        rng = _rng(random_state)
        alpha = 1 - confidence
        bounds = []
        for _, values in grouped[metric]:
            v = values.dropna().to_numpy()
            if len(v) < 2:
                bounds.append((np.nan, np.nan))
                continue
            means = v[rng.integers(0, len(v), size=(n_bootstrap, len(v)))].mean(axis=1)
            bounds.append(tuple(np.quantile(means, [alpha / 2, 1 - alpha / 2])))
        out["ci_low"] = [b[0] for b in bounds]
        out["ci_high"] = [b[1] for b in bounds]
    ascending = [c != "weights_remaining" for c in by]
    out = out.sort_values(by, ascending=ascending, kind="mergesort").reset_index(drop=True)
    out = out[[*by, "mean", "std", "n", "sem", "ci_low", "ci_high"]]
    out.attrs["ci_method"] = ci_method
    return out


def select_dense_rows(df, ticket, pooled):
    if "round" in df.columns:
        is_dense = pd.to_numeric(df["round"]) == 0
    else:
        levels = round_levels(df["weights_remaining"])
        is_dense = levels == levels.max()
    dense = df[is_dense]
    if not pooled:
        own = dense[dense["strategy"] == ticket]
        if len(own):
            return own, "ticket"
    return dense, "pooled"


def dense_baseline(results, ticket="rewind", metric="test_acc", pooled=False):
    """Mean and standard deviation of the dense (unpruned) network.

    Dense rows are those with ``round == 0`` (or, without a ``round`` column,
    those at the highest ``weights_remaining`` level).

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy table from :func:`sklottery.analysis.ticket_curve`.
    ticket : str, default='rewind'
        Strategy whose round-0 rows are the baseline.
    metric : str, default='test_acc'
        Numeric column to summarise.
    pooled : bool, default=False
        If True, pool the dense rows of every strategy. When the ticket
        strategy has no dense rows the pooled rows are used anyway.

    Returns
    -------
    baseline : dict
        Keys ``'mean'``, ``'std'`` (``ddof=1``, NaN for a single row), ``'n'``
        and ``'source'`` (``'ticket'`` or ``'pooled'``).

    See Also
    --------
    summarize_curve : Every strategy and level.
    matching_summary : Uses the baseline for Frankle & Carbin's matching
        criterion.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    """
    df = as_frame(results, ["strategy", metric, "weights_remaining"])
    dense, source = select_dense_rows(df, ticket, pooled)
    values = _numeric(dense[metric], metric).dropna().to_numpy()
    if values.size == 0:
        raise ValueError("results holds no dense (round 0) rows.")
    return dict(
        mean=float(values.mean()),
        std=float(values.std(ddof=1)) if values.size > 1 else np.nan,
        n=int(values.size),
        source=source,
    )


_COMPARE_COLUMNS = [
    "strategy",
    "weights_remaining",
    "mean_ticket",
    "mean_control",
    "diff",
    "ci_low",
    "ci_high",
    "statistic",
    "p_value",
    "hedges_g",
    "n_ticket",
    "n_control",
    "method",
]


def compare_to_ticket(
    results,
    ticket="rewind",
    metric="test_acc",
    method="welch",
    n_bootstrap=10000,
    confidence=0.95,
    random_state=None,
):
    """Compare the winning ticket with every control at every pruning level.

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy table from :func:`sklottery.analysis.ticket_curve`. If it has a
        ``dataset`` column, comparisons are made within each dataset.
    ticket : str, default='rewind'
        Strategy treated as the winning ticket; every other strategy is a
        control.
    metric : str, default='test_acc'
        Numeric column compared.
    method : {'welch', 'bootstrap'}, default='welch'
        ``'welch'``: Welch's unequal-variance t-test
        (:func:`scipy.stats.ttest_ind` with ``equal_var=False``); the interval
        is ``diff +/- t_{df} * se`` with Welch-Satterthwaite ``df``.
        ``'bootstrap'``: both groups are resampled independently with
        replacement ``n_bootstrap`` times; the interval is the percentile
        interval of the resampled mean differences; the two-sided p-value uses
        the shift method (both groups moved onto their pooled mean, which
        makes the null distribution ``boot - diff``) and is
        ``(1 + #{|boot - diff| >= |diff|}) / (n_bootstrap + 1)``, so it is
        never below ``1 / (n_bootstrap + 1)``; ``statistic`` is
        ``diff / sd(boot)``. Not for a handful of trials: with 2 to 5 per
        group its interval covers too rarely and its p-value is below 0.05
        far more often than 5 % under the null (Notes).
    n_bootstrap : int, default=10000
        Number of bootstrap resamples (``method='bootstrap'`` only).
    confidence : float, default=0.95
        Coverage of the interval of the difference.
    random_state : int, numpy Generator or RandomState, default=None
        Seed of the bootstrap.

    Returns
    -------
    comparison : pandas.DataFrame
        One row per (control strategy, pruned level present for both; the
        dense round, ``round == 0``, is not compared), columns
        ``['dataset',] 'strategy', 'weights_remaining', 'mean_ticket',
        'mean_control', 'diff', 'ci_low', 'ci_high', 'statistic', 'p_value',
        'hedges_g', 'n_ticket', 'n_control', 'method'``. ``strategy`` is the
        control, ``diff = mean_ticket - mean_control``; ``hedges_g`` is
        Cohen's d with the pooled (``ddof=1``) standard deviation times the
        small-sample correction ``1 - 3 / (4 (n_ticket + n_control) - 9)``.
        The interval is intersected with the range a difference of two
        means can take, ``+/-(high - low)`` for a metric whose mean lies in
        [low, high] (the ranges of :func:`summarize_curve`): [-1, 1] for an
        accuracy-like proportion (``acc`` in the metric's name, values in
        [0, 1]), [-L, L] for the early-stop iteration with ``L`` the largest
        ``n_iter`` of the data set. Sorted by strategy, then level
        descending.

    See Also
    --------
    holm : Holm's correction of the p-values.
    matching_summary : The verdict built on these tests.

    Notes
    -----
    When either group has fewer than two values, the interval, statistic,
    p-value and effect size are NaN (the means and ``diff`` are still
    given). When both groups are constant, the interval collapses to
    ``diff`` and the statistic, p-value and effect size are NaN. "Constant"
    and "zero" allow for float rounding: a standard deviation (or standard
    error, or difference of means) at most 1e-10 times the largest
    magnitude among the values is rounding, not data (values of 0.9 that
    differ in the last bit would otherwise give a Hedges' g of 1e15), and
    such a difference is reported as exactly 0.
    The tolerance sits three orders of magnitude above the rounding a
    metric accumulates in a few float operations (about 1e-13) and one below
    the finest real spread of an accuracy (1e-9 for a billion test
    samples).

    Which method: the tests are made on 2 to 5 trials per group, where the
    bootstrap fails. With no true difference, measured coverage of the 95 %
    interval of the difference and rate of p < 0.05 at 2 / 3 / 5 trials
    per group (``python benchmarks/bench_intervals.py``, 2000 simulated
    pairs per cell, Monte-Carlo standard error at most 0.011):

    =========================  ==============  ==============  ==============  ==============
    trial accuracies           Welch coverage  Welch p < 0.05  bootstrap cov.  bootstrap p
    =========================  ==============  ==============  ==============  ==============
    0.9 + normal, sd 0.3 pp    0.98/0.97/0.95  0.03/0.03/0.05  0.63/0.82/0.88  0.37/0.20/0.12
    0.9 + normal, sd 2 pp      0.98/0.97/0.96  0.02/0.03/0.04  0.66/0.82/0.87  0.34/0.20/0.13
    Binomial(100, 0.9) / 100   0.98/0.97/0.96  0.01/0.03/0.04  0.73/0.84/0.90  0.27/0.18/0.11
    Binomial(38, 0.95) / 38    0.97/0.97/0.96  0.00/0.03/0.04  0.79/0.85/0.91  0.19/0.17/0.10
    =========================  ==============  ==============  ==============  ==============

    ("bootstrap p": rate of p < 0.05.)

    Welch's test keeps its level (slightly conservative at 2 and 3 trials);
    the bootstrap test rejects a true null 2 to 7 times too often.

    References
    ----------
    .. [1] Welch, B. L. (1947). The Generalization of "Student's" Problem when
       Several Different Population Variances are Involved. Biometrika, 34(1/2),
       28-35.
    .. [2] Hedges, L. V. (1981). Distribution Theory for Glass's Estimator of
       Effect Size and Related Estimators. Journal of Educational Statistics,
       6(2), 107-128.
    .. [3] Efron, B. and Tibshirani, R. J. (1993). An Introduction to the
       Bootstrap. Chapman & Hall.
    """
    if method not in ("welch", "bootstrap"):
        raise ValueError(f"method must be 'welch' or 'bootstrap', got {method!r}.")
    if not isinstance(n_bootstrap, Integral) or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive int, got {n_bootstrap!r}.")
    check_confidence(confidence)
    df = as_frame(results, ["strategy", "weights_remaining", metric])
    if not (df["strategy"] == ticket).any():
        raise ValueError(f"ticket strategy {ticket!r} is not in results.")
    df["weights_remaining"] = round_levels(df["weights_remaining"])
    df[metric] = _numeric(df[metric], metric)
    df = df.dropna(subset=[metric])
    # The dense round is not a comparison: every chain strategy starts from
    # the same network there (same split, same θ0).
    if "round" in df.columns:
        df = df[pd.to_numeric(df["round"]) != 0]
    else:
        df = df[df["weights_remaining"] < df["weights_remaining"].max()]
    rng = _rng(random_state) if method == "bootstrap" else None
    extra = ["dataset"] if "dataset" in df.columns else []
    rows = []
    for key, part in df.groupby(extra, sort=True) if extra else [((), df)]:
        # a difference of two means in [low, high] lies in +/-(high - low)
        # (+/-1 for accuracies): so does its interval
        low, high = _metric_range(metric, part[metric], part.get("n_iter"))
        bound = high - low
        tick = {
            lvl: g[metric].to_numpy()
            for lvl, g in part[part["strategy"] == ticket].groupby("weights_remaining")
        }
        controls = part[part["strategy"] != ticket]
        for (strategy, lvl), g in controls.groupby(["strategy", "weights_remaining"]):
            if lvl not in tick:
                continue
            a, b = tick[lvl], g[metric].to_numpy()
            if method == "welch":
                res = welch(a, b, confidence)
            else:
                res = _bootstrap(a, b, confidence, n_bootstrap, rng)
            res["ci_low"] = max(res["ci_low"], -bound)
            res["ci_high"] = min(res["ci_high"], bound)
            row = dict(zip(extra, key if isinstance(key, tuple) else (key,)))
            row.update(
                strategy=strategy,
                weights_remaining=lvl,
                mean_ticket=float(np.mean(a)),
                mean_control=float(np.mean(b)),
                **res,
                hedges_g=hedges_g(a, b),
                n_ticket=len(a),
                n_control=len(b),
                method=method,
            )
            rows.append(row)
    columns = extra + _COMPARE_COLUMNS
    out = pd.DataFrame(rows, columns=columns)
    if out.empty:
        return out
    sort_cols = extra + ["strategy", "weights_remaining"]
    out = out.sort_values(
        sort_cols, ascending=[True] * (len(sort_cols) - 1) + [False], kind="mergesort"
    )
    return out.reset_index(drop=True)


def holm(p_values):
    """Holm–Bonferroni adjusted p-values (step-down, family-wise error rate).

    Parameters
    ----------
    p_values : array-like of float
        Raw p-values of one family of tests. NaN entries (tests that could
        not be computed) are left NaN and do not count towards the family
        size.

    Returns
    -------
    adjusted : ndarray of float
        ``p_(i) * (m - i + 1)`` for the i-th smallest of the ``m`` finite
        p-values, made monotone (cumulative maximum) and capped at 1, in the
        input order.

    See Also
    --------
    matching_summary : Corrects its family of tests with this function.
    scipy.stats.false_discovery_control : Benjamini-Hochberg, a less strict
        correction.

    References
    ----------
    .. [1] Holm, S. (1979). A Simple Sequentially Rejective Multiple Test
       Procedure. Scandinavian Journal of Statistics, 6(2), 65-70.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="mergesort")]
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out

