"""Plain-language verdicts: does the ticket match dense and beat the controls?

:func:`matching_summary` applies Frankle & Carbin's (2019) matching criterion
and Holm-corrected Welch tests of the ticket against the random
re-initialisation controls, and returns one of the three outcomes of
:data:`VERDICTS`; :func:`verdict` writes it as a sentence with its evidence,
:func:`summary_row` as one flat table row, and :func:`tickets_exist` gives the
verdict per condition of a :func:`~sklottery.analysis.conditions_sweep`.
:func:`format_level` and :func:`format_value` print levels and values the
same way everywhere (command line, reports, figures).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .curves import (
    _as_frame,
    _check_confidence,
    _dense_rows,
    _infer_greater_is_better,
    _is_proportion,
    _levels,
    _numeric,
    _single_dataset,
    compare_to_ticket,
    dense_baseline,
    holm,
    strategy_label,
    summarize_curve,
)

__all__ = [
    "VERDICTS",
    "VERDICT_CONTROLS",
    "REINIT_CONTROLS",
    "matching_summary",
    "verdict",
    "summary_row",
    "tickets_exist",
    "format_level",
    "format_value",
]


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
        contains ``iteration``, ``loss``, ``seconds``, ``error``, ``mse`` or
        ``mae`` (e.g. ``'test_mse'`` of a regressor), else True.
    pooled_dense : bool, default=False
        Use the round-0 rows of all strategies as the dense baseline instead
        of those of ``ticket`` (see :func:`~sklottery.stats.dense_baseline`).
    confidence : float, default=0.95
        Coverage of the confidence interval of each difference.

    Returns
    -------
    summary : dict
        ``verdict`` (see above; None also when no run of the ticket
        completed its dense round, ``reason='no_data'``), ``reason`` (why
        the verdict is None: ``'no_control'`` or ``'no_data'``), ``incomplete``
        (a warning when the table comes from an interrupted experiment, or
        one that lost runs with a dead worker, read from
        ``results.attrs['sklottery_runs']``; it starts the sentence of
        :func:`verdict`), ``runs_cut_short`` (``(strategy, trial, last
        completed round, reason)`` of every run that diverged, was
        interrupted or lost: their missing rounds are excluded and named in
        a note), ``verdict_level`` (the level the verdict
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

    See Also
    --------
    verdict : The summary as a sentence with its evidence.
    summary_row : The summary as one flat table row.
    compare_to_ticket : Every test of the ticket against the controls.
    tickets_exist : The verdict per condition of a sweep.
    sklottery.analysis.ticket_curve : The table this function reads.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    .. [2] Liu, Z., Sun, M., Zhou, T., Huang, G. and Darrell, T. (2019).
       Rethinking the Value of Network Pruning. ICLR. arXiv:1810.05270.
    .. [3] Welch, B. L. (1947). The Generalization of "Student's" Problem when
       Several Different Population Variances are Involved. Biometrika, 34(1/2),
       28-35.
    .. [4] Holm, S. (1979). A Simple Sequentially Rejective Multiple Test
       Procedure. Scandinavian Journal of Statistics, 6(2), 65-70.
    .. [5] Hedges, L. V. (1981). Distribution Theory for Glass's Estimator of
       Effect Size and Related Estimators. Journal of Educational Statistics,
       6(2), 107-128.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    _check_confidence(confidence)
    df = _as_frame(results, ["strategy", "weights_remaining", metric])
    _single_dataset(df, "matching_summary")
    if not (df["strategy"] == ticket).any():
        raise ValueError(f"ticket strategy {ticket!r} is not in results.")
    stopped = _stopped_runs(df, metric)
    incomplete = _incomplete_note(results)
    # runs cut short keep their completed rounds; a round that did not complete
    # (diverged, lost) has a NaN metric and is excluded, and named in a note
    df = df[pd.to_numeric(df[metric], errors="coerce").notna()]
    if not (df["strategy"] == ticket).any() or not len(_dense_rows(df, ticket,
                                                                     pooled_dense)[0]):
        return _no_data_summary(results, ticket, metric, alpha, confidence, stopped,
                                incomplete, greater_is_better)
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
    if stopped:
        notes.append(_stopped_note(stopped))
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
        reason=None if outcome is not None else "no_control",
        incomplete=incomplete,
        runs_cut_short=stopped,
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

#: ``stop_reason`` values of runs that did not run to their end.
_STOP_REASONS = ("diverged", "interrupted", "lost")


def _stopped_runs(df, metric):
    """``[(strategy, trial, last completed round or None, reason)]`` of runs cut short."""
    if "stop_reason" not in df.columns or "trial" not in df.columns:
        return []
    cut = df[df["stop_reason"].isin(_STOP_REASONS)]
    out = []
    for (strategy, trial), part in cut.groupby(["strategy", "trial"], sort=True):
        reason = str(part["stop_reason"].iloc[0])
        done = part[pd.to_numeric(part[metric], errors="coerce").notna()]
        last = int(done["round"].max()) if "round" in done and len(done) else None
        out.append((str(strategy), int(trial), last, reason))
    return out


def _stopped_note(stopped):
    """The sentence that names the runs cut short (their missing rounds are excluded)."""
    items = [f"{strategy_label(s)} trial {t} ({reason})" for s, t, _, reason in stopped]
    shown = items[:6] + ([f"{len(items) - 6} more"] if len(items) > 6 else [])
    return (f"{len(stopped)} run{'s' if len(stopped) != 1 else ''} stopped early and "
            f"{'are' if len(stopped) != 1 else 'is'} missing from the levels they did not "
            f"reach (a run that diverged or was lost has no result there): {_join(shown)}.")


def _incomplete_note(results):
    """A warning when the table comes from an interrupted or partly lost experiment."""
    status = (getattr(results, "attrs", None) or {}).get("sklottery_runs") or {}
    if not status:
        return None
    done, total = status.get("complete", 0), status.get("total", 0)
    if status.get("interrupted"):
        return (f"INTERRUPTED: the experiment was stopped (Ctrl-C) with {done} of {total} "
                f"runs completed ({status.get('cut_short', 0)} cut short, "
                f"{status.get('not_run', 0)} not run); this verdict is from incomplete data.")
    if status.get("lost"):
        return (f"INCOMPLETE: {status.get('lost', 0)} of {total} runs were lost with their "
                "worker; this verdict is from incomplete data.")
    return None


def _no_data_summary(results, ticket, metric, alpha, confidence, stopped, incomplete,
                     greater_is_better):
    """The summary when no dense run of the ticket completed: nothing can be judged."""
    notes = ["No run of the ticket completed its dense round (round 0), so there is "
             "nothing to judge."]
    if stopped:
        notes.append(_stopped_note(stopped))
    nan = float("nan")
    return dict(
        verdict=None, reason="no_data", incomplete=incomplete, runs_cut_short=stopped,
        verdict_level=nan, verdict_controls=[], n_tests=0, family="no tests",
        tests=pd.DataFrame(columns=["strategy", "weights_remaining", "p_holm"]),
        n_trials=0, n_test=None, notes=notes, metric=metric, ticket=ticket, alpha=alpha,
        confidence=confidence,
        greater_is_better=bool(_infer_greater_is_better(metric)
                               if greater_is_better is None else greater_is_better),
        percent="acc" in metric,
        dense_mean=nan, dense_std=nan, dense_n=0, dense_level=nan, threshold=nan, levels=[],
        ticket_matching_level=nan, ticket_matching_levels=[], ticket_winning_levels=[],
        ticket_falls_off_at=nan, ticket_mean=nan, ticket_std=nan, sparsest_level=nan,
        ticket_mean_sparsest=nan,
        controls=pd.DataFrame({c: pd.Series(dtype=float if c not in (
            "strategy", "label", "in_verdict", "matches_dense", "ticket_beats") else object)
            for c in _CONTROL_COLUMNS}),
    )


def format_level(level):
    """A level of weights remaining in percent, as printed everywhere: '6.9 %'.

    One decimal from 1 % up, two significant digits below (e.g. '0.47 %').

    See Also
    --------
    format_value : Means and spreads, printed the same way everywhere.
    """
    if level is None or not np.isfinite(level):
        return "n/a"
    return f"{level:.1f} %" if level >= 1 else f"{level:.2g} %"


def format_value(mean, std=np.nan, percent=True):
    """A mean (± std) as printed everywhere, mean and spread with the same digits.

    Percent: '97.1 ± 0.3 %'. Otherwise three decimals below 100 in absolute
    value ('0.812 ± 0.013', an R²) and none from 100 up ('800 ± 10',
    iterations).

    See Also
    --------
    format_level : Levels of weights remaining, printed the same way everywhere.
    """
    if mean is None or not np.isfinite(mean):
        return "n/a"
    if percent:
        spread = "" if std is None or not np.isfinite(std) else f" ± {100 * std:.1f}"
        return f"{100 * mean:.1f}{spread} %"
    digits = 3 if abs(mean) < 100 else 0
    spread = "" if std is None or not np.isfinite(std) else f" ± {std:.{digits}f}"
    return f"{mean:.{digits}f}{spread}"


def _fmt_diff(row, percent):
    """'+3.1 points (95 % CI +1.0 to +5.2)' or the same in metric units."""
    scale, unit = (100.0, " points") if percent else (1.0, "")
    d, lo, hi = row.diff * scale, row.ci_low * scale, row.ci_high * scale
    digits = 1 if percent else (3 if abs(d) < 100 else 0)
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

    See Also
    --------
    matching_summary : The summary this sentence is written from.
    summary_row : The same as one table row.
    """
    prefix = (summary["incomplete"] + " ") if summary.get("incomplete") else ""
    if summary["verdict"] is None and summary.get("reason") == "no_data":
        return prefix + "Cannot tell: " + " ".join(summary.get("notes", []))
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
        not_beaten = judged[~judged["ticket_beats"]]
        match = not_beaten[not_beaten["matches_dense"]]
        worse = not_beaten[~not_beaten["matches_dense"]]
        beaten = judged[judged["ticket_beats"]]
        parts = []
        if len(match):
            parts.append(f"{_join(list(match['label']))} match{'es' if len(match) == 1 else ''}"
                         " dense there too")
        if len(worse):
            parts.append(f"{_join(list(worse['label']))} {'is' if len(worse) == 1 else 'are'} "
                         "not significantly worse")
        how = " and ".join(parts)
        if len(beaten):
            how += f" (it does beat {_join(list(beaten['label']))})"
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
    return prefix + sentence


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
        ``n_tests``, ``n_trials``, ``n_test``, ``notes``, ``incomplete`` (the
        interruption warning, or '') and ``sentence``.

    See Also
    --------
    matching_summary : The summary this row is read from.
    verdict : The same as a sentence.
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
        incomplete=summary.get("incomplete") or "",
        sentence=verdict(summary),
    )


def tickets_exist(results, conditions, *, ticket="rewind", control="random",
                  metric="test_acc", alpha=0.05):
    """Where do winning tickets exist? One row per condition x pruning level.

    A ticket *exists* at a level when its mean ``metric`` matches dense
    (mean >= dense mean - dense std, Frankle & Carbin's definition) **and** it
    beats ``control`` significantly: Welch's t-test in the ticket's favour,
    Holm-corrected over the pruned levels of that condition (the family of
    one condition: ``control`` at every pruned level). Each condition also
    gets the three-way verdict of :func:`matching_summary` with ``control``
    as the only control.

    Parameters
    ----------
    results : pandas.DataFrame
        From :func:`sklottery.analysis.conditions_sweep`.
    conditions : list of str
        Condition columns.
    ticket, control : str, default='rewind', 'random'
        Ticket strategy and the control it must beat.
    metric : str, default='test_acc'
    alpha : float, default=0.05
        Family-wise significance level per condition.

    Returns
    -------
    table : pandas.DataFrame
        Columns: conditions, ``weights_remaining``, ``ticket_mean``,
        ``control_mean``, ``diff`` (ticket - control), ``ci_low``,
        ``ci_high`` (95 % Welch interval of the difference), ``hedges_g``,
        ``p_value``, ``p_holm``, ``matches_dense``, ``ticket_exists`` and
        ``verdict`` (the condition's verdict, repeated on its rows).

    See Also
    --------
    sklottery.analysis.conditions_sweep : The table this function reads.
    matching_summary : The verdict for a single condition.
    sklottery.plotting.ConditionsMapDisplay : The result as a heatmap.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    .. [2] Liu, Z., Sun, M., Zhou, T., Huang, G. and Darrell, T. (2019).
       Rethinking the Value of Network Pruning. ICLR. arXiv:1810.05270.
    .. [3] Holm, S. (1979). A Simple Sequentially Rejective Multiple Test
       Procedure. Scandinavian Journal of Statistics, 6(2), 65-70.
    """
    conditions = list(conditions)
    rows = []
    for key, sub in results.groupby(conditions, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        sub = sub[sub["strategy"].isin([ticket, control])].drop(columns=conditions)
        summary = matching_summary(sub, ticket=ticket, metric=metric, alpha=alpha,
                                   controls=[control])
        ticket_curve_ = summarize_curve(sub[sub["strategy"] == ticket], metric=metric)
        ticket_means = dict(zip(ticket_curve_["weights_remaining"], ticket_curve_["mean"]))
        for c in summary["tests"].itertuples():
            matches = _matches(ticket_means[c.weights_remaining], summary["threshold"],
                               summary["greater_is_better"])
            rows.append({**dict(zip(conditions, key)),
                         "weights_remaining": c.weights_remaining,
                         "ticket_mean": c.mean_ticket, "control_mean": c.mean_control,
                         "diff": c.diff, "ci_low": c.ci_low, "ci_high": c.ci_high,
                         "hedges_g": c.hedges_g, "p_value": c.p_value, "p_holm": c.p_holm,
                         "matches_dense": bool(matches),
                         "ticket_exists": bool(matches and c.ticket_beats),
                         "verdict": summary["verdict"]})
    return pd.DataFrame(rows)
