"""Statistics for lottery-ticket experiments.

Two families of tools live here, both free of torch (masks and weights given as
torch tensors are converted to numpy on the way in):

* **Curve statistics** on the tidy table returned by
  :func:`sklottery.analysis.ticket_curve` (one row per strategy x trial x
  round): :func:`summarize_curve`, :func:`dense_baseline`,
  :func:`compare_to_ticket`, :func:`matching_summary` and :func:`verdict`.
* **Mask analysis** on dictionaries ``{layer_name: array}``:
  :func:`layer_sparsity`, :func:`mask_jaccard`, :func:`pairwise_mask_overlap`,
  :func:`sign_preservation` and :func:`weight_movement`.

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
from scipy import stats as _sps

__all__ = [
    "LEVEL_DECIMALS",
    "STRATEGY_LABELS",
    "strategy_label",
    "summarize_curve",
    "dense_baseline",
    "compare_to_ticket",
    "matching_summary",
    "verdict",
    "summary_row",
    "holm",
    "format_level",
    "format_value",
    "VERDICTS",
    "VERDICT_CONTROLS",
    "REINIT_CONTROLS",
    "layer_sparsity",
    "mask_jaccard",
    "pairwise_mask_overlap",
    "sign_preservation",
    "weight_movement",
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
}

_TOTAL = "__total__"


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
    """
    return STRATEGY_LABELS.get(strategy, str(strategy).replace("_", " "))


def _as_frame(results, required):
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


def _levels(values):
    return pd.to_numeric(values, errors="raise").astype(float).round(LEVEL_DECIMALS)


def _numeric(values, name):
    try:
        return pd.to_numeric(values, errors="raise").astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Column {name!r} must be numeric.") from exc


def _check_confidence(confidence):
    if not isinstance(confidence, Real) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a float in (0, 1), got {confidence!r}.")


def _single_dataset(df, func):
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


def _is_proportion(metric, values):
    """Whether ``metric`` is an accuracy-like proportion: 'acc' in its name, values in [0, 1]."""
    values = pd.Series(values, dtype=float).dropna()
    return bool("acc" in metric.lower() and len(values)
                and values.min() >= 0 and values.max() <= 1)


def _infer_greater_is_better(metric):
    lowered = metric.lower()
    return not any(k in lowered for k in ("iteration", "loss", "seconds", "error"))


def _hedges_g(a, b):
    """Hedges' g of ``mean(a) - mean(b)``; NaN if undefined."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return np.nan
    dof = na + nb - 2
    sp = math.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / dof)
    if sp == 0:
        return np.nan
    j = 1.0 - 3.0 / (4.0 * dof - 1.0)
    return j * (np.mean(a) - np.mean(b)) / sp


def _welch(a, b, confidence):
    na, nb = len(a), len(b)
    diff = np.mean(a) - np.mean(b)
    out = dict(ci_low=np.nan, ci_high=np.nan, statistic=np.nan, p_value=np.nan)
    if na < 2 or nb < 2:
        return out
    va, vb = np.var(a, ddof=1) / na, np.var(b, ddof=1) / nb
    se = math.sqrt(va + vb)
    if se == 0:
        # Both groups are constant: the difference is exact, the test undefined.
        out.update(ci_low=diff, ci_high=diff)
        return out
    dof = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = _sps.t.ppf(0.5 + confidence / 2, dof) * se
    with warnings.catch_warnings():
        # scipy warns about "nearly identical" data when one group is constant;
        # the Welch test is still well defined as long as se > 0.
        warnings.simplefilter("ignore", RuntimeWarning)
        res = _sps.ttest_ind(a, b, equal_var=False)
    out.update(
        ci_low=diff - half,
        ci_high=diff + half,
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
    )
    return out


def _bootstrap(a, b, confidence, n_bootstrap, rng):
    na, nb = len(a), len(b)
    diff = np.mean(a) - np.mean(b)
    out = dict(ci_low=np.nan, ci_high=np.nan, statistic=np.nan, p_value=np.nan)
    if na < 2 or nb < 2:
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
def summarize_curve(
    results, metric="test_acc", by=("strategy", "weights_remaining"), confidence=0.95,
    ci_method="auto", n_bootstrap=10000, random_state=0,
):
    """Mean, spread and confidence interval of a metric per strategy and level.

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy table from :func:`sklottery.analysis.ticket_curve`; must contain
        the ``metric`` column and every column in ``by``.
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
        sem``. ``'bootstrap'``: percentile bootstrap of the mean over the
        trials (``n_bootstrap`` resamples), which always stays inside the
        range of the observed values. ``'auto'`` uses the bootstrap for
        proportions (a metric whose name contains ``acc`` with every value
        in [0, 1]), so that accuracy intervals stay inside [0, 100] %, and
        the t interval otherwise.
    n_bootstrap : int, default=10000
        Bootstrap resamples.
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
        ['ci_method']`` says which interval was used (``'t'`` or
        ``'bootstrap'``).

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
    _check_confidence(confidence)
    if ci_method not in ("auto", "t", "bootstrap"):
        raise ValueError(f"ci_method must be 'auto', 't' or 'bootstrap', got {ci_method!r}.")
    df = _as_frame(results, [metric, *by])
    if "dataset" in df.columns and "dataset" not in by and df["dataset"].nunique() > 1:
        warnings.warn(
            "results holds several datasets but 'dataset' is not in `by`; "
            "their values are pooled.",
            UserWarning,
            stacklevel=2,
        )
    if "weights_remaining" in by:
        df["weights_remaining"] = _levels(df["weights_remaining"])
    df[metric] = _numeric(df[metric], metric)
    grouped = df.groupby(by, sort=False, dropna=False)[metric]
    out = grouped.agg(["mean", "std", "count"]).reset_index()
    out = out.rename(columns={"count": "n"})
    n = out["n"].to_numpy(dtype=float)
    std = out["std"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        sem = np.where(n >= 2, std / np.sqrt(n), np.nan)
        tcrit = np.where(n >= 2, _sps.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)), np.nan)
    out["std"] = np.where(n >= 2, std, np.nan)
    out["n"] = out["n"].astype(int)
    out["sem"] = sem
    if ci_method == "auto":
        ci_method = "bootstrap" if _is_proportion(metric, df[metric]) else "t"
    if ci_method == "t":
        out["ci_low"] = out["mean"] - tcrit * sem
        out["ci_high"] = out["mean"] + tcrit * sem
    else:
        rng = _rng(random_state)
        alpha = 1 - confidence
        bounds = []
        for _, values in grouped:
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


def _dense_rows(df, ticket, pooled):
    if "round" in df.columns:
        is_dense = pd.to_numeric(df["round"]) == 0
    else:
        levels = _levels(df["weights_remaining"])
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
    """
    df = _as_frame(results, ["strategy", metric, "weights_remaining"])
    dense, source = _dense_rows(df, ticket, pooled)
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
        ``diff / sd(boot)``.
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
        For an accuracy-like proportion (``acc`` in the metric's name, values
        in [0, 1]) the interval is intersected with [-1, 1], the range of a
        difference of two proportions. Sorted by strategy, then level
        descending.

    Notes
    -----
    When either group has fewer than two values, the interval, statistic,
    p-value and effect size are NaN (the means and ``diff`` are still
    given). When both groups are constant, the Welch interval collapses to
    ``diff`` and the statistic, p-value and effect size are NaN.
    """
    if method not in ("welch", "bootstrap"):
        raise ValueError(f"method must be 'welch' or 'bootstrap', got {method!r}.")
    if not isinstance(n_bootstrap, Integral) or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive int, got {n_bootstrap!r}.")
    _check_confidence(confidence)
    df = _as_frame(results, ["strategy", "weights_remaining", metric])
    if not (df["strategy"] == ticket).any():
        raise ValueError(f"ticket strategy {ticket!r} is not in results.")
    df["weights_remaining"] = _levels(df["weights_remaining"])
    df[metric] = _numeric(df[metric], metric)
    df = df.dropna(subset=[metric])
    # The dense round is not a comparison: every chain strategy starts from
    # the same network there (same split, same θ0).
    if "round" in df.columns:
        df = df[pd.to_numeric(df["round"]) != 0]
    else:
        df = df[df["weights_remaining"] < df["weights_remaining"].max()]
    rng = _rng(random_state) if method == "bootstrap" else None
    # a difference of two proportions lies in [-1, 1]: so does its interval
    bound = 1.0 if _is_proportion(metric, df[metric]) else np.inf
    extra = ["dataset"] if "dataset" in df.columns else []
    rows = []
    for key, part in df.groupby(extra, sort=True) if extra else [((), df)]:
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
                res = _welch(a, b, confidence)
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
                diff=float(np.mean(a) - np.mean(b)),
                **res,
                hedges_g=_hedges_g(a, b),
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


def _matches(mean, threshold, greater_is_better):
    if np.isnan(mean):
        return False
    return mean >= threshold if greater_is_better else mean <= threshold


def _contiguous_match(curve, dense_level, threshold, greater_is_better):
    """Sparsest level of the run of matching levels just below dense, and the
    first level (from dense downward) that does not match."""
    matching, falls_off = np.nan, np.nan
    for lvl, mean in zip(curve["weights_remaining"], curve["mean"]):
        if lvl >= dense_level:
            continue
        if _matches(mean, threshold, greater_is_better):
            matching = lvl
        else:
            falls_off = lvl
            break
    return matching, falls_off


#: Strategies that test whether the ticket's *initialisation* (or its mask)
#: matters; a winning ticket must beat every one of them that was run.
VERDICT_CONTROLS = ("random", "scratch_e", "scratch_b", "random_mask")
#: Controls that re-initialise the ticket's mask (at least one is required
#: for a verdict).
REINIT_CONTROLS = ("random", "scratch_e", "scratch_b")
#: The three outcomes of :func:`matching_summary` (column ``verdict``).
VERDICTS = ("winning_ticket", "no_ticket_effect", "no_ticket")

_VERDICT_TITLES = {
    "winning_ticket": "Winning ticket",
    "no_ticket_effect": "No ticket effect",
    "no_ticket": "No ticket",
}


def _evidence_warnings(n_trials, n_test, percent):
    notes = []
    if n_trials < 3:
        notes.append(
            f"Weak evidence: only {n_trials} trial{'s' if n_trials != 1 else ''} per "
            "strategy; with fewer than 3 the tests have almost no power (use 5 or more)."
        )
    if percent and n_test and 100.0 / n_test > 1.0:
        notes.append(
            f"Small test set: {n_test} test samples per trial, so one sample is "
            f"{100.0 / n_test:.1f} points of accuracy; differences of a few points are "
            "within test-set noise."
        )
    return notes


def matching_summary(
    results,
    ticket="rewind",
    metric="test_acc",
    alpha=0.05,
    *,
    controls=None,
    greater_is_better=None,
    pooled_dense=False,
    confidence=0.95,
):
    """Does the ticket match dense, and does it beat the controls? A verdict.

    **Matching** (Frankle & Carbin, 2019): a pruned network *matches* the
    dense one at a level when its mean metric is within one standard
    deviation of the dense mean: ``mean >= dense_mean - dense_std`` (or
    ``mean <= dense_mean + dense_std`` when lower is better, e.g. the
    early-stop iteration). A single dense trial has no spread; its std is then
    taken as 0. Levels are visited from dense downward; the ticket's
    *matching levels* are the unbroken run of matching levels below dense
    (an isolated match after a failure does not extend it; every matching
    level is listed in ``ticket_matching_levels``).

    **Beating a control**: Welch's t-test of ticket vs. control at a level
    (two-sided, so the one-sided level is ``alpha / 2``), the difference in
    the ticket's favour, and the p-value Holm-corrected over the *family* of
    every control in ``controls`` at every pruned level where both were run
    (``n_tests`` tests; the dense level is not tested: there the
    strategies share their initial network).

    **Verdict**, one of :data:`VERDICTS`:

    * ``'winning_ticket'``: at some matching level the ticket beats every
      control that was run there (at least one random re-initialisation);
      the verdict names the sparsest such level;
    * ``'no_ticket_effect'``: the ticket matches dense but at no matching
      level does it beat the controls (they match dense too, or are not
      significantly worse): the initialisation does not matter here;
    * ``'no_ticket'``: the ticket already falls short of dense at the first
      pruned level, before any control is beaten.

    Without any random re-initialisation control in ``results`` the verdict is
    ``None`` (matching alone does not make a winning ticket).

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy table from :func:`sklottery.analysis.ticket_curve`, for a single
        dataset. An ``n_test`` column (test samples per trial) enables the
        small-test-set warning.
    ticket : str, default='rewind'
        Strategy treated as the winning ticket.
    metric : str, default='test_acc'
        Numeric column.
    alpha : float, default=0.05
        Family-wise significance level (after Holm's correction).
    controls : sequence of str, default=None
        Strategies the ticket must beat. None: those of
        :data:`VERDICT_CONTROLS` present in ``results`` (random reinit,
        scratch-E, scratch-B, random mask). Other strategies (e.g.
        ``'continue'``, ``'same_sign'``) are still summarised in
        ``controls`` but do not enter the verdict.
    greater_is_better : bool, default=None
        Direction of the metric. None infers False for metrics whose name
        contains ``iteration``, ``loss``, ``seconds`` or ``error``, else True.
    pooled_dense : bool, default=False
        Use the round-0 rows of all strategies as the dense baseline instead
        of those of ``ticket`` (see :func:`dense_baseline`).
    confidence : float, default=0.95
        Coverage of the confidence interval of each difference.

    Returns
    -------
    summary : dict
        ``verdict`` (see above), ``verdict_level`` (the level the verdict
        speaks of: the sparsest winning level, the sparsest matching level,
        or the first level that falls short), ``verdict_controls`` (the
        strategies the verdict tests), ``n_tests`` and ``family`` (the Holm
        family, in words), ``tests`` (a DataFrame of every test of the
        family with ``p_holm``), ``n_trials`` (fewest trials of any strategy
        and level), ``n_test`` (test samples per trial, None if unknown),
        ``notes`` (warnings about weak evidence, also in the sentence of
        :func:`verdict`); and ``metric``, ``ticket``, ``alpha``,
        ``confidence``, ``greater_is_better``, ``percent`` (True for an
        accuracy in [0, 1], shown in percent), ``dense_mean``,
        ``dense_std``, ``dense_n``, ``dense_level``, ``threshold`` (the
        matching bound), ``levels`` (ticket levels, descending),
        ``ticket_matching_level`` (sparsest of the unbroken matching run, NaN
        if none), ``ticket_matching_levels``, ``ticket_winning_levels``,
        ``ticket_falls_off_at``, ``ticket_mean``/``ticket_std`` (at the
        verdict level), ``sparsest_level``, ``ticket_mean_sparsest``, and
        ``controls``: one row per other strategy with columns
        ``'strategy', 'label', 'in_verdict', 'falls_off_at',
        'matching_level', 'mean_control', 'matches_dense', 'diff', 'ci_low',
        'ci_high', 'hedges_g', 'p_value', 'p_holm', 'n_control',
        'ticket_beats'``, the test columns at ``verdict_level`` (NaN when
        the control lacks it; ``p_holm`` only for verdict controls;
        ``ticket_beats`` means corrected ``p_holm < alpha`` in the ticket's
        favour).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    _check_confidence(confidence)
    df = _as_frame(results, ["strategy", "weights_remaining", metric])
    _single_dataset(df, "matching_summary")
    if not (df["strategy"] == ticket).any():
        raise ValueError(f"ticket strategy {ticket!r} is not in results.")
    present = [s for s in pd.unique(df["strategy"]) if s != ticket]
    if controls is None:
        verdict_controls = [c for c in VERDICT_CONTROLS if c in present]
    else:
        verdict_controls = [controls] if isinstance(controls, str) else list(controls)
        missing = [c for c in verdict_controls if c not in present]
        if missing:
            raise ValueError(f"controls {missing} are not in results; it has {present}.")
    if greater_is_better is None:
        greater_is_better = _infer_greater_is_better(metric)
    base = dense_baseline(df, ticket=ticket, metric=metric, pooled=pooled_dense)
    dense_std = 0.0 if np.isnan(base["std"]) else base["std"]
    sign = -1.0 if greater_is_better else 1.0
    threshold = base["mean"] + sign * dense_std
    dense_rows, _ = _dense_rows(df, ticket, pooled_dense)
    dense_level = float(_levels(dense_rows["weights_remaining"]).max())

    curve = summarize_curve(df, metric=metric, by=("strategy", "weights_remaining"))
    tcurve = curve[curve["strategy"] == ticket]
    levels = [float(v) for v in tcurve["weights_remaining"]]
    match_level, tick_off = _contiguous_match(tcurve, dense_level, threshold, greater_is_better)
    # the unbroken run of matching levels below dense
    run = [] if np.isnan(match_level) else [
        lvl for lvl in levels if match_level <= lvl < dense_level]
    all_matching = [
        float(lvl)
        for lvl, m in zip(tcurve["weights_remaining"], tcurve["mean"])
        if lvl < dense_level and _matches(m, threshold, greater_is_better)
    ]

    # every test: ticket vs each other strategy at each pruned level
    comparison = compare_to_ticket(df, ticket=ticket, metric=metric, method="welch",
                                   confidence=confidence)
    comparison = comparison[comparison["weights_remaining"] < dense_level]
    family = comparison[comparison["strategy"].isin(verdict_controls)].copy()
    for col in ("diff", "ci_low", "ci_high", "p_value", "hedges_g"):
        family[col] = family[col].astype(float)
    family["p_holm"] = holm(family["p_value"].to_numpy())
    favourable = family["diff"] > 0 if greater_is_better else family["diff"] < 0
    family["ticket_beats"] = favourable & (family["p_holm"] < alpha)
    n_tests = int(np.isfinite(family["p_value"]).sum())
    n_levels = family["weights_remaining"].nunique()
    family_text = (
        f"{n_tests} Welch tests ({len(verdict_controls)} control"
        f"{'s' if len(verdict_controls) != 1 else ''} x {n_levels} pruned level"
        f"{'s' if n_levels != 1 else ''}), Holm-corrected, alpha = {alpha:g}"
    )

    winning = []
    for lvl in run:
        at = family[family["weights_remaining"] == lvl]
        reinit_run = at["strategy"].isin(REINIT_CONTROLS).any()
        if reinit_run and len(at) and bool(at["ticket_beats"].all()):
            winning.append(lvl)
    has_reinit = any(c in REINIT_CONTROLS for c in verdict_controls)
    if winning:
        outcome, verdict_level = "winning_ticket", min(winning)
    elif run:
        outcome, verdict_level = "no_ticket_effect", min(run)
    else:
        outcome = "no_ticket"
        pruned = [lvl for lvl in levels if lvl < dense_level]
        verdict_level = tick_off if not np.isnan(tick_off) else (
            pruned[0] if pruned else np.nan)
    if not has_reinit:
        outcome = None

    rows = []
    for strategy in sorted(present):
        ccurve = curve[curve["strategy"] == strategy]
        c_match, c_off = _contiguous_match(ccurve, dense_level, threshold, greater_is_better)
        row = dict(strategy=strategy, label=strategy_label(strategy),
                   in_verdict=strategy in verdict_controls, falls_off_at=c_off,
                   matching_level=c_match, mean_control=np.nan, matches_dense=False,
                   diff=np.nan, ci_low=np.nan, ci_high=np.nan, hedges_g=np.nan,
                   p_value=np.nan, p_holm=np.nan, n_control=0, ticket_beats=False)
        src = family if strategy in verdict_controls else comparison
        hit = src[(src["strategy"] == strategy) & (src["weights_remaining"] == verdict_level)]
        if len(hit):
            h = hit.iloc[0]
            fav = h["diff"] > 0 if greater_is_better else h["diff"] < 0
            row.update(
                mean_control=h["mean_control"],
                matches_dense=_matches(h["mean_control"], threshold, greater_is_better),
                diff=h["diff"], ci_low=h["ci_low"], ci_high=h["ci_high"],
                hedges_g=h["hedges_g"], p_value=h["p_value"],
                n_control=int(h["n_control"]),
            )
            if strategy in verdict_controls:
                row.update(p_holm=h["p_holm"], ticket_beats=bool(h["ticket_beats"]))
            else:
                row["ticket_beats"] = bool(fav and h["p_value"] < alpha)
        rows.append(row)
    control_table = pd.DataFrame(rows, columns=_CONTROL_COLUMNS).astype(
        {c: float for c in ("falls_off_at", "matching_level", "mean_control", "diff",
                            "ci_low", "ci_high", "hedges_g", "p_value", "p_holm")}
    ).astype({"in_verdict": bool, "matches_dense": bool, "ticket_beats": bool})
    at_level = tcurve[tcurve["weights_remaining"] == verdict_level]
    pruned = tcurve[tcurve["weights_remaining"] < dense_level]
    sparsest = pruned.iloc[-1] if len(pruned) else None
    percent = _is_proportion(metric, _numeric(df[metric], metric))
    counts = df.dropna(subset=[metric]).assign(
        weights_remaining=_levels(df["weights_remaining"])
    ).groupby(["strategy", "weights_remaining"]).size()
    n_trials = int(counts.min()) if len(counts) else 0
    n_test = None
    if "n_test" in df.columns:
        nt = pd.to_numeric(df["n_test"], errors="coerce").dropna()
        n_test = int(nt.min()) if len(nt) else None
    notes = _evidence_warnings(n_trials, n_test, percent)
    if not has_reinit:
        notes.append(
            "No random re-initialisation control ('random', 'scratch_e' or 'scratch_b') "
            "was run, so matching dense cannot be attributed to the initialisation."
        )
    elif outcome == "no_ticket_effect":
        weak = control_table[control_table["in_verdict"] & ~control_table["ticket_beats"]
                             & ~control_table["matches_dense"]]
        if len(weak):
            labels = _join(list(weak["label"]))
            notes.append(
                f"{labels[0].upper() + labels[1:]} fall{'s' if len(weak) == 1 else ''} short "
                "of dense but not significantly below the ticket: more trials may "
                "separate them."
            )
    return dict(
        verdict=outcome,
        verdict_level=float(verdict_level),
        verdict_controls=verdict_controls,
        n_tests=n_tests,
        family=family_text,
        tests=family.reset_index(drop=True),
        n_trials=n_trials,
        n_test=n_test,
        notes=notes,
        metric=metric,
        ticket=ticket,
        alpha=alpha,
        confidence=confidence,
        greater_is_better=bool(greater_is_better),
        percent=percent,
        dense_mean=base["mean"],
        dense_std=base["std"],
        dense_n=base["n"],
        dense_level=dense_level,
        threshold=threshold,
        levels=levels,
        ticket_matching_level=match_level,
        ticket_matching_levels=all_matching,
        ticket_winning_levels=sorted(winning, reverse=True),
        ticket_falls_off_at=tick_off,
        ticket_mean=float(at_level["mean"].iloc[0]) if len(at_level) else np.nan,
        ticket_std=float(at_level["std"].iloc[0]) if len(at_level) else np.nan,
        sparsest_level=float(sparsest["weights_remaining"]) if sparsest is not None else np.nan,
        ticket_mean_sparsest=float(sparsest["mean"]) if sparsest is not None else np.nan,
        controls=control_table,
    )


_CONTROL_COLUMNS = [
    "strategy", "label", "in_verdict", "falls_off_at", "matching_level", "mean_control",
    "matches_dense", "diff", "ci_low", "ci_high", "hedges_g", "p_value", "p_holm",
    "n_control", "ticket_beats",
]


def format_level(level):
    """A level of weights remaining in percent, as printed everywhere: '6.9 %'.

    One decimal from 1 % up, two significant digits below (e.g. '0.47 %').
    """
    if level is None or not np.isfinite(level):
        return "n/a"
    return f"{level:.1f} %" if level >= 1 else f"{level:.2g} %"


def format_value(mean, std=np.nan, percent=True):
    """A mean (± std) as printed everywhere: '97.1 ± 0.3 %' or '0.812 ± 0.01'."""
    if mean is None or not np.isfinite(mean):
        return "n/a"
    if percent:
        spread = "" if std is None or not np.isfinite(std) else f" ± {100 * std:.1f}"
        return f"{100 * mean:.1f}{spread} %"
    spread = "" if std is None or not np.isfinite(std) else f" ± {std:.3g}"
    return f"{mean:.4g}{spread}"


def _fmt_diff(row, percent):
    """'+3.1 points (95 % CI +1.0 to +5.2)' or the same in metric units."""
    scale, unit = (100.0, " points") if percent else (1.0, "")
    d, lo, hi = row.diff * scale, row.ci_low * scale, row.ci_high * scale
    digits = 1 if percent else 3
    ci = "" if not np.isfinite(lo) else f" (CI {lo:+.{digits}f} to {hi:+.{digits}f})"
    return f"{d:+.{digits}f}{unit}{ci}"


def _fmt_p(p):
    if p is None or not np.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _fmt_test(row, percent, corrected=True):
    g = "n/a" if not np.isfinite(row.hedges_g) else f"{row.hedges_g:.2f}"
    p = row.p_holm if corrected else row.p_value
    name = "Holm " if corrected else ""
    return (f"{row.label} by {_fmt_diff(row, percent)}, Hedges' g {g}, "
            f"{name}{_fmt_p(p)}")


def _join(items):
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def verdict(summary):
    """The verdict of :func:`matching_summary` as a sentence with its evidence.

    Parameters
    ----------
    summary : dict
        Output of :func:`matching_summary`.

    Returns
    -------
    sentence : str
        Starts with the outcome (``"Winning ticket: "``, ``"No ticket
        effect: "``, ``"No ticket: "``), names the level, the ticket's and
        dense's values, and for every control the difference (ticket -
        control) with its confidence interval, Hedges' g and the
        Holm-corrected p-value; then the test family, the number of trials and
        test samples, and any warning about weak evidence. The differences are
        in percentage points for accuracies.
    """
    percent = summary["percent"]
    name = strategy_label(summary["ticket"])
    dense = format_value(summary["dense_mean"], summary["dense_std"], percent)
    level = format_level(summary["verdict_level"])
    ticket_value = format_value(summary["ticket_mean"], summary["ticket_std"], percent)
    controls = summary["controls"]
    judged = controls[controls["in_verdict"] & np.isfinite(controls["diff"])]
    conf = f"{100 * summary['confidence']:g} %"
    outcome = summary["verdict"]
    if outcome is None:
        sentence = ("Cannot tell whether this is a winning ticket: no random "
                    "re-initialisation control was run. ")
        if np.isnan(summary["ticket_matching_level"]):
            sentence += f"The {name} falls short of dense ({dense}) at {level} weights."
        else:
            sentence += (f"The {name} matches dense ({dense}) down to "
                         f"{format_level(summary['ticket_matching_level'])} weights.")
    elif outcome == "no_ticket":
        sentence = (f"No ticket: the {name} already falls short of dense at {level} weights "
                    f"({ticket_value} vs dense {dense}), before any control is beaten.")
    elif outcome == "winning_ticket":
        tests = "; ".join(_fmt_test(r, percent) for r in judged.itertuples())
        sentence = (f"Winning ticket: at {level} weights the {name} matches dense "
                    f"({ticket_value} vs {dense}) and beats every control: {tests} "
                    f"({conf} CIs of the difference, ticket - control).")
    else:
        both = judged[judged["matches_dense"]]
        labels = _join(list(judged["label"]))
        if len(both) == len(judged):
            how = f"{labels} match dense there too"
        elif len(both):
            how = (f"{_join(list(both['label']))} match{'es' if len(both) == 1 else ''} "
                   "dense there too")
        else:
            how = f"the controls ({labels}) are not significantly worse"
        tests = "; ".join(_fmt_test(r, percent) for r in judged.itertuples())
        sentence = (f"No ticket effect: the {name} matches dense down to {level} weights "
                    f"({ticket_value} vs {dense}), but {how}: at no matching level does it "
                    f"beat every control. At {level}: {tests} "
                    f"({conf} CIs of the difference, ticket - control).")
    n_test = summary.get("n_test")
    sentence += (f" Family: {summary['family']}. {summary['n_trials']} trial"
                 f"{'s' if summary['n_trials'] != 1 else ''}"
                 + (f", {n_test} test samples per trial." if n_test else "."))
    for note in summary.get("notes", []):
        sentence += " " + note
    return sentence


def summary_row(summary, control="random"):
    """One flat row of a verdict for a table (``verdicts.csv`` of ``compare``).

    Parameters
    ----------
    summary : dict
        Output of :func:`matching_summary`.
    control : str, default='random'
        Control whose difference to the ticket is reported at the verdict
        level (random re-initialisation, Frankle & Carbin's control).

    Returns
    -------
    row : dict
        ``verdict``, ``level`` (the verdict level, % weights),
        ``winning_level`` (sparsest winning level, NaN unless
        ``'winning_ticket'``), ``ticket_mean``, ``dense_mean``,
        ``dense_std``, ``control``, ``diff``, ``ci_low``, ``ci_high``,
        ``hedges_g``, ``p_holm`` (ticket - control at the verdict level),
        ``n_tests``, ``n_trials``, ``n_test``, ``notes`` and ``sentence``.
    """
    c = summary["controls"].set_index("strategy")
    get = (lambda k: c.loc[control, k]) if control in c.index else (lambda k: np.nan)
    winning = summary["ticket_winning_levels"]
    return dict(
        verdict=summary["verdict"],
        level=summary["verdict_level"],
        winning_level=min(winning) if winning else np.nan,
        ticket_mean=summary["ticket_mean"],
        dense_mean=summary["dense_mean"],
        dense_std=summary["dense_std"],
        control=control,
        diff=get("diff"),
        ci_low=get("ci_low"),
        ci_high=get("ci_high"),
        hedges_g=get("hedges_g"),
        p_holm=get("p_holm"),
        n_tests=summary["n_tests"],
        n_trials=summary["n_trials"],
        n_test=summary["n_test"],
        notes=" ".join(summary["notes"]),
        sentence=verdict(summary),
    )


# --------------------------------------------------------------------------
# mask analysis
# --------------------------------------------------------------------------
def _to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x)


def _as_dict(arrays, name):
    if not isinstance(arrays, dict):
        raise TypeError(f"{name} must be a dict {{layer_name: array}}, got {type(arrays)}.")
    return {k: _to_numpy(v) for k, v in arrays.items()}


def _kept(mask):
    return np.asarray(mask) != 0


def _paired(a, b, name_a, name_b, keys=None):
    keys = list(a) if keys is None else keys
    missing = [k for k in keys if k not in b]
    if missing:
        raise ValueError(f"{name_b} lacks layer(s) {missing} present in {name_a}.")
    for k in keys:
        if a[k].shape != b[k].shape:
            raise ValueError(
                f"Layer {k!r}: shape {a[k].shape} in {name_a} but {b[k].shape} in {name_b}."
            )
    return keys


def _frame(rows, columns):
    out = pd.DataFrame(rows, columns=["layer", *columns]).set_index("layer")
    return out


def layer_sparsity(masks):
    """Fraction of weights remaining in each layer and overall.

    Parameters
    ----------
    masks : dict of {str: array-like or torch.Tensor}
        Pruning masks; an entry is kept where it is non-zero.

    Returns
    -------
    sparsity : pandas.DataFrame
        Indexed by ``layer`` (the mask names, then ``'__total__'``), columns
        ``'n_weights', 'n_remaining', 'fraction_remaining'``. The total is
        pooled over all weights.
    """
    masks = _as_dict(masks, "masks")
    rows, tot_n, tot_k = [], 0, 0
    for name, m in masks.items():
        n, k = int(m.size), int(np.count_nonzero(_kept(m)))
        rows.append((name, n, k, k / n if n else np.nan))
        tot_n, tot_k = tot_n + n, tot_k + k
    rows.append((_TOTAL, tot_n, tot_k, tot_k / tot_n if tot_n else np.nan))
    return _frame(rows, ["n_weights", "n_remaining", "fraction_remaining"])


def _jaccard(inter, union):
    return inter / union if union else 1.0


def mask_jaccard(masks_a, masks_b):
    """Jaccard similarity of the kept weights of two masks, per layer.

    Parameters
    ----------
    masks_a, masks_b : dict of {str: array-like or torch.Tensor}
        Masks with the same layer names and shapes.

    Returns
    -------
    jaccard : pandas.DataFrame
        Indexed by ``layer`` (names of ``masks_a``, then ``'__total__'``),
        columns ``'n_intersection', 'n_union', 'jaccard'`` with
        ``jaccard = |A and B| / |A or B|``, defined as 1.0 when both kept
        sets are empty. The total pools the counts of every layer.
    """
    a, b = _as_dict(masks_a, "masks_a"), _as_dict(masks_b, "masks_b")
    keys = _paired(a, b, "masks_a", "masks_b")
    extra = [k for k in b if k not in a]
    if extra:
        raise ValueError(f"masks_b has layer(s) {extra} absent from masks_a.")
    rows, ti, tu = [], 0, 0
    for k in keys:
        ka, kb = _kept(a[k]), _kept(b[k])
        inter, union = int(np.count_nonzero(ka & kb)), int(np.count_nonzero(ka | kb))
        rows.append((k, inter, union, _jaccard(inter, union)))
        ti, tu = ti + inter, tu + union
    rows.append((_TOTAL, ti, tu, _jaccard(ti, tu)))
    return _frame(rows, ["n_intersection", "n_union", "jaccard"])


def pairwise_mask_overlap(masks, layer="__total__"):
    """Matrix of Jaccard similarities between several masks.

    Parameters
    ----------
    masks : list of dict or dict of {label: dict}
        Masks to compare, e.g. the final masks of several trials. A dict
        gives the row/column labels; a list is labelled ``0 .. n-1``.
    layer : str, default='__total__'
        Layer whose Jaccard similarity is reported (``'__total__'`` pools all
        layers).

    Returns
    -------
    overlap : pandas.DataFrame
        Symmetric ``n x n`` matrix with ones on the diagonal (see
        :func:`mask_jaccard`); ``overlap.to_numpy()`` gives the array.
    """
    if isinstance(masks, dict):
        labels, items = list(masks), list(masks.values())
    else:
        items = list(masks)
        labels = list(range(len(items)))
    n = len(items)
    mat = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            jac = mask_jaccard(items[i], items[j])
            if layer not in jac.index:
                raise ValueError(f"Unknown layer {layer!r}; have {list(jac.index)}.")
            mat[i, j] = mat[j, i] = jac.loc[layer, "jaccard"]
    return pd.DataFrame(mat, index=labels, columns=labels)


def sign_preservation(init_weights, final_weights, masks):
    """Fraction of surviving weights whose sign did not change in training.

    Parameters
    ----------
    init_weights, final_weights : dict of {str: array-like or torch.Tensor}
        Weights before and after training; they must contain every layer of
        ``masks`` (extra entries such as biases are ignored).
    masks : dict of {str: array-like or torch.Tensor}
        Pruning masks; only kept (non-zero) positions are counted.

    Returns
    -------
    signs : pandas.DataFrame
        Indexed by ``layer`` (mask names, then ``'__total__'``), columns
        ``'n_kept', 'n_sign_preserved', 'fraction_preserved'``. Signs are
        compared with :func:`numpy.sign`, so an exact zero only matches a zero.
        The fraction is NaN for a layer with no kept weight.
    """
    m = _as_dict(masks, "masks")
    w0 = _as_dict(init_weights, "init_weights")
    w1 = _as_dict(final_weights, "final_weights")
    keys = _paired(m, w0, "masks", "init_weights")
    _paired(m, w1, "masks", "final_weights", keys)
    rows, tk, ts = [], 0, 0
    for k in keys:
        kept = _kept(m[k])
        same = np.sign(w0[k][kept]) == np.sign(w1[k][kept])
        nk, ns = int(kept.sum()), int(same.sum())
        rows.append((k, nk, ns, ns / nk if nk else np.nan))
        tk, ts = tk + nk, ts + ns
    rows.append((_TOTAL, tk, ts, ts / tk if tk else np.nan))
    return _frame(rows, ["n_kept", "n_sign_preserved", "fraction_preserved"])


def weight_movement(init_weights, final_weights, masks):
    """Mean absolute change of kept and of pruned weights, per layer.

    Useful to check the observation (Zhou et al., 2019) that weights kept by
    magnitude pruning are those that moved most.

    Parameters
    ----------
    init_weights, final_weights : dict of {str: array-like or torch.Tensor}
        Weights before and after training; they must contain every layer of
        ``masks``. Note that if ``final_weights`` were read from a masked
        network, pruned entries are zero there and their movement is
        ``|w_init|``.
    masks : dict of {str: array-like or torch.Tensor}
        Masks splitting each layer into kept (non-zero) and pruned entries.

    Returns
    -------
    movement : pandas.DataFrame
        Indexed by ``layer`` (mask names, then ``'__total__'`` pooling all
        weights), columns ``'mean_movement_kept', 'mean_movement_pruned',
        'n_kept', 'n_pruned'``; a mean over an empty set is NaN.
    """
    m = _as_dict(masks, "masks")
    w0 = _as_dict(init_weights, "init_weights")
    w1 = _as_dict(final_weights, "final_weights")
    keys = _paired(m, w0, "masks", "init_weights")
    _paired(m, w1, "masks", "final_weights", keys)
    rows = []
    sums = np.zeros(2)
    counts = np.zeros(2, dtype=int)
    for k in keys:
        kept = _kept(m[k])
        move = np.abs(w1[k].astype(float) - w0[k].astype(float))
        sk, sp = float(move[kept].sum()), float(move[~kept].sum())
        nk, npr = int(kept.sum()), int((~kept).sum())
        rows.append((k, sk / nk if nk else np.nan, sp / npr if npr else np.nan, nk, npr))
        sums += (sk, sp)
        counts += (nk, npr)
    rows.append(
        (
            _TOTAL,
            sums[0] / counts[0] if counts[0] else np.nan,
            sums[1] / counts[1] if counts[1] else np.nan,
            int(counts[0]),
            int(counts[1]),
        )
    )
    return _frame(rows, ["mean_movement_kept", "mean_movement_pruned", "n_kept", "n_pruned"])
