"""Plain-language verdicts: does the ticket match dense and beat the controls?

:func:`matching_summary` tests whether the ticket *matches* dense (a
non-inferiority test within a stated margin), whether it *beats* the random
re-initialisation controls and whether it is *equivalent* to them (TOST),
with two fixed-sequence procedures over the pruning levels, and returns one
of the four outcomes of :data:`VERDICTS` (``'inconclusive'`` with its reason
when the evidence decides nothing); :func:`verdict` writes it as a sentence
with its evidence, :func:`summary_row` as one flat table row, and
:func:`tickets_exist` gives the verdict per condition of a
:func:`~sklottery.analysis.conditions_sweep`. :func:`format_level` and
:func:`format_value` print levels and values the same way everywhere
(command line, reports, figures).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy import stats as _sps

from .curves import (
    as_frame,
    check_confidence,
    select_dense_rows,
    hedges_g,
    infer_greater_is_better,
    is_proportion,
    round_levels,
    single_dataset,
    welch,
    strategy_label,
)

__all__ = [
    "claim_test",
    "mask_information",
    "SANITY_CONTROLS",
    "VERDICTS",
    "VERDICT_CONTROLS",
    "REINIT_CONTROLS",
    "INCONCLUSIVE_REASONS",
    "DEFAULT_MARGIN",
    "default_margin",
    "matching_summary",
    "verdict",
    "summary_row",
    "tickets_exist",
    "format_level",
    "format_value",
]


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


#: Strategies that test whether the ticket's *initialisation* (or its mask)
#: matters; a winning ticket must beat every one of them that was run.
VERDICT_CONTROLS = ("random", "scratch_e", "scratch_b", "random_mask")
#: Controls that re-initialise the ticket's mask (at least one is required
#: for a verdict).
REINIT_CONTROLS = ("random", "scratch_e", "scratch_b")
#: Mask perturbations of Frankle et al. (2021) (:func:`mask_information`):
#: they ask whether the ticket's mask carries information beyond its
#: per-layer densities, a question apart from the verdict's (they are not
#: among :data:`VERDICT_CONTROLS`).
SANITY_CONTROLS = ("shuffle_layer", "invert")
#: The four outcomes of :func:`matching_summary` (column ``verdict``).
VERDICTS = ("winning_ticket", "no_ticket_effect", "no_ticket", "inconclusive")
#: Why a verdict is ``'inconclusive'`` (``summary['reason']``).
INCONCLUSIVE_REASONS = {
    "no_data": "no run of the ticket completed its dense round",
    "no_control": "no random re-initialisation control was run",
    "too_few_trials": "too few trials: a test needs at least 2 trials of each strategy",
    "no_test": "no test could run (a control has fewer than 2 trials at every level)",
    "matching_undecided": "whether the ticket matches dense could not be decided at the "
                          "first pruned level",
    "too_little_power": "the controls were neither beaten nor shown equivalent to the "
                        "ticket at any matching level",
}
#: Default equivalence margin for accuracies and R² (absolute: 1 point).
DEFAULT_MARGIN = 0.01
#: A level where a strategy of the verdict lost more than this fraction of its
#: trials (runs cut short before the level, diverged or lost) cannot carry a
#: ``'winning_ticket'``.
MAX_LOST_FRACTION = 0.2
#: Power of the power statement of an inconclusive verdict.
POWER = 0.8


def default_margin(metric, percent, dense_mean, n_test=None):
    """The equivalence margin :func:`matching_summary` uses when none is given.

    For an accuracy (``percent``): 1 percentage point, or one test sample when
    the test set is coarser than that (``1 / n_test``, e.g. 2.6 points on
    iris' 38 test samples): a difference below one sample cannot be measured.
    One point is Frankle & Carbin's practice made explicit: they read
    differences of a few tenths of a point as real gains (+0.3 points at 13.5
    % on MNIST) and Frankle et al. (2020) call a subnetwork *matching* when
    it is within one standard deviation of the dense accuracy, a few tenths of
    a point there; 1 point is a tolerance such sizes of effect fit in, and one
    that 5 trials can resolve on MNIST-sized test sets. For R²: 0.01. For
    any other metric (iterations, losses): 1 % of the dense mean.
    """
    lowered = metric.lower()
    if percent:
        return max(DEFAULT_MARGIN, 1.0 / n_test) if n_test else DEFAULT_MARGIN
    if "r2" in lowered:
        return DEFAULT_MARGIN
    return 0.01 * abs(dense_mean) if np.isfinite(dense_mean) and dense_mean else DEFAULT_MARGIN


def _contrast(a, b, sign, confidence):
    """Welch contrast of ``a - b`` in the direction of improvement (``sign`` = +-1).

    Returns ``dict(diff, ci_low, ci_high, se, dof, p_better, p_worse, n_a,
    n_b)`` with the difference and its interval in the metric's own
    direction and one-sided p-values for "a better than b" and "a worse".
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    res = welch(a, b, confidence) if len(a) and len(b) else dict(
        ci_low=np.nan, ci_high=np.nan, statistic=np.nan, p_value=np.nan)
    diff = float(np.mean(a) - np.mean(b)) if len(a) and len(b) else np.nan
    t, p = res.get("statistic", np.nan), res.get("p_value", np.nan)
    if np.isfinite(p) and np.isfinite(t):
        better = p / 2 if sign * t > 0 else 1 - p / 2
        worse = 1 - better
    elif np.isfinite(res["ci_low"]) and res["ci_low"] == res["ci_high"]:
        # both groups constant: the difference is exact
        better = 0.0 if sign * diff > 0 else 1.0
        worse = 0.0 if sign * diff < 0 else 1.0
    else:
        better = worse = np.nan
    return dict(diff=diff, ci_low=res["ci_low"], ci_high=res["ci_high"],
                se=res.get("se", np.nan), dof=res.get("dof", np.nan),
                p_better=better, p_worse=worse, n_a=len(a), n_b=len(b))


def _better_bounds(c, sign):
    """``(low, high)`` of the interval of an improvement (the CI flipped when lower is better)."""
    lo, hi = c["ci_low"], c["ci_high"]
    return (lo, hi) if sign > 0 else (-hi, -lo)


def _match_status(c, sign, margin):
    """'matches', 'falls_short' or 'undecided': ticket vs dense within ``margin``."""
    lo, hi = _better_bounds(c, sign)
    if not np.isfinite(lo):
        return "undecided"
    if lo > -margin:
        return "matches"
    if hi < -margin:
        return "falls_short"
    return "undecided"


def _control_status(c, sign, margin):
    """'beats', 'equivalent', 'worse' or 'undecided': ticket vs a control."""
    lo, hi = _better_bounds(c, sign)
    if not np.isfinite(lo):
        return "undecided"
    if lo > 0:
        return "beats"
    if hi < 0:
        return "worse"
    if lo > -margin and hi < margin:
        return "equivalent"
    return "undecided"


def _power_statement(tests, margin, alpha, percent):
    """The smallest detectable difference at the trials used, and the trials needed.

    ``tests`` are the contrasts of the ticket with the controls at the verdict
    level. Uses the largest standard error among them (the hardest control to
    decide) and the normal approximation for the trials needed.
    """
    usable = [t for t in tests if np.isfinite(t["se"]) and t["se"] > 0]
    if not usable:
        return None
    worst = max(usable, key=lambda t: t["se"])
    dof = worst["dof"] if np.isfinite(worst["dof"]) else max(1, worst["n_a"] + worst["n_b"] - 2)
    t_a = _sps.t.ppf(1 - alpha / 2, dof)
    t_b = _sps.t.ppf(POWER, dof)
    mdd = (t_a + t_b) * worst["se"]
    # per-trial spread behind that standard error, for the trials needed: the
    # fewest n with (t_{1-alpha/2} + t_{(1+power)/2}) * sd_pair / sqrt(n) <= margin
    # (equivalence within the margin when there is no effect, which also
    # detects an effect of the margin), t with the 2n - 2 degrees of freedom of
    # two groups of n
    n = max(1, min(worst["n_a"], worst["n_b"]))
    sd_pair = worst["se"] * math.sqrt(n)  # sqrt(var_a + var_b) of one trial each
    needed = 2
    while needed < 10_000:
        q = _sps.t.ppf(1 - alpha / 2, 2 * needed - 2) + _sps.t.ppf((1 + POWER) / 2,
                                                                  2 * needed - 2)
        if q * sd_pair / math.sqrt(needed) <= margin:
            break
        needed = needed + 1 if needed < 100 else int(needed * 1.1)
    scale, unit = (100.0, " points") if percent else (1.0, "")
    digits = 1 if percent else 3
    return dict(mdd=mdd, trials_needed=needed, trials_used=n,
                text=(f"with {n} trial{'s' if n != 1 else ''} per strategy the smallest "
                      f"difference these tests detect with {100 * POWER:.0f} % power is "
                      f"{scale * mdd:.{digits}f}{unit}; about {needed} trials per "
                      f"strategy would detect a difference of the margin "
                      f"({_fmt_amount(margin, percent)}) or show equivalence within it"))


def matching_summary(
    results,
    ticket="rewind",
    metric="test_acc",
    alpha=0.05,
    *,
    controls=None,
    greater_is_better=None,
    pooled_dense=False,
    confidence=None,
    margin=None,
    max_lost=MAX_LOST_FRACTION,
):
    """Does the ticket match dense, and does it beat the controls? A verdict.

    Every decision is read off a two-sided ``1 - alpha`` Welch t interval of a
    difference (95 % by default), the interval printed beside it: a
    one-sided test at ``alpha / 2`` in each direction.

    **Matching is a test, not a point rule.** At a pruned level the ticket
    *matches* dense when non-inferiority within ``margin`` is shown: the
    lower bound of the interval of ticket - dense lies above ``-margin``. It
    *falls short* when inferiority beyond the margin is shown (the upper
    bound below ``-margin``); otherwise that level is undecided. One
    outlying dense run widens the interval instead of moving a point
    threshold; with zero spread the interval is the exact difference.

    **Beating a control**: the lower bound of ticket - control lies above 0.
    **No effect needs evidence of no effect**: the ticket and a control are
    *equivalent* when the whole interval lies inside ``(-margin, margin)``
    (two one-sided tests, TOST, at ``alpha / 2`` each), never because a
    difference was not significant.

    **Multiple testing fitted to "how sparse can a winning ticket be".**
    Two fixed-sequence (hierarchical) procedures, each ordered before seeing
    the data (Maurer et al. 1995; Westfall and Krishen 2001): matching is
    tested level by level from the least pruned downward and stops at the
    first level where it is not shown (the *matching levels*: an unbroken run
    from dense); the ticket's advantage over every control (an
    intersection-union test: all controls beaten at that level, each at
    ``alpha / 2``, Berger 1982) is tested from the most pruned level upward
    and stops at the first level where it is not shown (the *winning
    side*). A winning ticket is claimed at the levels in both. Each sequence
    holds its error rate at ``alpha / 2`` without any correction for the
    number of levels, so twenty levels cost no power; a false winning claim
    needs a false matching or a false beating claim, so the chance of any
    false winning claim is at most ``alpha``. The order suits the question:
    sparse networks are where controls fall behind, dense-like ones where the
    ticket matches.

    **Verdict**, one of :data:`VERDICTS`:

    * ``'winning_ticket'``: at some level the ticket matches dense and beats
      every control (at least one random re-initialisation); the verdict
      names the sparsest such level;
    * ``'no_ticket_effect'``: the ticket matches dense and, at a matching
      level, every control is shown equivalent to it within the margin
      (tested from the least pruned level downward, stopping at the first
      level where it is not shown): the initialisation does not matter
      there;
    * ``'no_ticket'``: a winning ticket is ruled out: the ticket falls short
      of dense beyond the margin at the first pruned level (shown, not merely
      not matching), or a control is shown better than the ticket at every
      level where the ticket matches;
    * ``'inconclusive'``: cannot tell, with its reason
      (:data:`INCONCLUSIVE_REASONS`: too few trials, no test could run, no
      reinit control, matching undecided, or too little power; then the
      summary's ``power`` says the smallest difference detectable at the
      trials used and how many trials would detect the margin).

    A level where the ticket or a control lost more than ``max_lost`` of its
    trials (runs cut short before it, diverged or lost with a worker: their
    rows are NaN or missing) cannot carry a winning ticket: survivors of a
    run that failed are not a random sample.

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy table from :func:`sklottery.analysis.ticket_curve`, for a single
        dataset. An ``n_test`` column (test samples per trial) enables the
        small-test-set warning and the default margin of coarse test sets.
    ticket : str, default='rewind'
        Strategy treated as the winning ticket.
    metric : str, default='test_acc'
        Numeric column.
    alpha : float, default=0.05
        Error rate of the verdict; every interval has coverage ``1 - alpha``
        and every one-sided test level ``alpha / 2``.
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
    confidence : float, default=None
        Coverage of the intervals; None is ``1 - alpha``. Given, it sets
        ``alpha = 1 - confidence``.
    margin : float, default=None
        Equivalence margin in the metric's units (0.01 = 1 point of
        accuracy). None: :func:`default_margin` (1 point, or one test sample
        when coarser; 0.01 R²; 1 % of the dense mean otherwise).
    max_lost : float, default=0.2
        See above.

    Returns
    -------
    summary : dict
        ``verdict`` (one of :data:`VERDICTS`), ``reason`` (why it is
        inconclusive, a key of :data:`INCONCLUSIVE_REASONS`, else None),
        ``verdict_level`` (the level the verdict speaks of: the sparsest
        winning level, the sparsest level where equivalence was shown, the
        first pruned level for ``'no_ticket'``, the sparsest matching level
        or first pruned level when inconclusive), ``margin``, ``power``
        (None, or ``mdd``, ``trials_needed``, ``trials_used``, ``text``),
        ``family`` (the testing procedure in words), ``n_tests``,
        ``levels_table`` (one row per pruned level: ticket vs dense and vs
        every verdict control with decisions, lost fractions and whether the
        level is matching, winning or equivalent), ``tests`` (every ticket -
        control contrast at every pruned level, with ``decision`` and
        ``p_one_sided``), ``verdict_controls``, ``incomplete``,
        ``runs_cut_short``, ``n_trials``, ``n_test``, ``notes``, ``metric``,
        ``ticket``, ``alpha``, ``confidence``, ``greater_is_better``,
        ``percent``, ``dense_mean``, ``dense_std``, ``dense_n``,
        ``dense_level``, ``threshold`` (``dense_mean - margin``, the point
        the matching test is about), ``levels``, ``ticket_matching_level``
        (sparsest matching level, NaN if none), ``ticket_matching_levels``,
        ``ticket_winning_levels``, ``ticket_equivalent_levels``,
        ``ticket_falls_off_at`` (first level where matching is not shown),
        ``ticket_mean``/``ticket_std`` (at the verdict level),
        ``sparsest_level``, ``ticket_mean_sparsest``, ``retraining`` (None,
        or the ticket's score without retraining at the verdict level,
        ``'no_retrain'``, beside the ticket's and fine-tuning's own),
        ``undertrained`` (bool: the early stop fell on the last evaluation in
        most rounds, see the note) and ``controls``: one
        row per other strategy at the verdict level (``'strategy', 'label',
        'in_verdict', 'mean_control', 'diff', 'ci_low', 'ci_high',
        'hedges_g', 'p_value', 'p_one_sided', 'decision', 'n_control',
        'ticket_beats', 'equivalent', 'matches_dense', 'matching_level',
        'falls_off_at'``).

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
    .. [2] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2020).
       Linear Mode Connectivity and the Lottery Ticket Hypothesis. ICML.
    .. [3] Welch, B. L. (1947). The Generalization of "Student's" Problem when
       Several Different Population Variances are Involved. Biometrika, 34(1/2),
       28-35.
    .. [4] Schuirmann, D. J. (1987). A comparison of the two one-sided tests
       procedure and the power approach for assessing the equivalence of
       average bioavailability. J. Pharmacokinetics and Biopharmaceutics,
       15(6), 657-680.
    .. [5] Maurer, W., Hothorn, L. A. and Lehmacher, W. (1995). Multiple
       comparisons in drug clinical trials and preclinical assays: a-priori
       ordered hypotheses. Biometrie in der chemisch-pharmazeutischen
       Industrie, 6, 3-18.
    .. [6] Westfall, P. H. and Krishen, A. (2001). Optimally weighted,
       fixed sequence and gatekeeper multiple testing procedures. J.
       Statistical Planning and Inference, 99(1), 25-40.
    .. [7] Berger, R. L. (1982). Multiparameter hypothesis testing and
       acceptance sampling. Technometrics, 24(4), 295-300.
    .. [8] Hedges, L. V. (1981). Distribution Theory for Glass's Estimator of
       Effect Size and Related Estimators. Journal of Educational Statistics,
       6(2), 107-128.
    """
    if confidence is not None:
        check_confidence(confidence)
        alpha = 1.0 - float(confidence)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    confidence = 1.0 - alpha
    if not 0 <= max_lost < 1:
        raise ValueError(f"max_lost must be in [0, 1), got {max_lost!r}.")
    raw = as_frame(results, ["strategy", "weights_remaining", metric])
    single_dataset(raw, "matching_summary")
    if not (raw["strategy"] == ticket).any():
        raise ValueError(f"ticket strategy {ticket!r} is not in results.")
    stopped = _stopped_runs(raw, metric)
    incomplete = _incomplete_note(results)
    present = [s for s in pd.unique(raw["strategy"]) if s != ticket]
    if controls is None:
        verdict_controls = [c for c in VERDICT_CONTROLS if c in present]
    else:
        verdict_controls = [controls] if isinstance(controls, str) else list(controls)
        missing = [c for c in verdict_controls if c not in present]
        if missing:
            raise ValueError(f"controls {missing} are not in results; it has {present}.")
    if greater_is_better is None:
        greater_is_better = infer_greater_is_better(metric)
    sign = 1.0 if greater_is_better else -1.0
    raw = raw.assign(weights_remaining=round_levels(raw["weights_remaining"]),
                     **{metric: pd.to_numeric(raw[metric], errors="coerce")})
    # runs cut short keep their completed rounds; a round that did not complete
    # (diverged, lost) has a NaN metric and is excluded, and named in a note
    df = raw[raw[metric].notna()]
    percent = is_proportion(metric, df[metric]) if len(df) else "acc" in metric
    n_test = None
    if "n_test" in raw.columns:
        nt = pd.to_numeric(raw["n_test"], errors="coerce").dropna()
        n_test = int(nt.min()) if len(nt) else None
    common = dict(ticket=ticket, metric=metric, alpha=alpha, confidence=confidence,
                  greater_is_better=bool(greater_is_better), percent=bool(percent),
                  incomplete=incomplete, runs_cut_short=stopped,
                  verdict_controls=verdict_controls, n_test=n_test)
    dense_rows, _ = select_dense_rows(df, ticket, pooled_dense) if len(df) else (df, None)
    if not (df["strategy"] == ticket).any() or not len(dense_rows):
        return _empty_summary(common, "no_data", stopped)
    dense = dense_rows[metric].to_numpy(dtype=float)
    dense_level = float(dense_rows["weights_remaining"].max())
    dense_mean = float(dense.mean())
    dense_std = float(dense.std(ddof=1)) if len(dense) > 1 else np.nan
    if margin is None:
        margin = default_margin(metric, percent, dense_mean, n_test)
    margin = float(margin)
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin!r}.")

    # planned trials: the number of trials of the dense ticket (every run starts there)
    trials = (raw[(raw["strategy"] == ticket)]["trial"].nunique()
              if "trial" in raw.columns else len(dense))
    tick = df[df["strategy"] == ticket]
    levels = sorted((float(v) for v in tick["weights_remaining"].unique()), reverse=True)
    pruned = [lvl for lvl in levels if lvl < dense_level]
    values = {key: g[metric].to_numpy(dtype=float)
              for key, g in df.groupby(["strategy", "weights_remaining"])}

    def lost(strategy, lvl):
        n = len(values.get((strategy, lvl), ()))
        return max(0.0, 1.0 - n / trials) if trials else 0.0

    rows, contrasts = [], {}
    for lvl in pruned:
        t = values.get((ticket, lvl), np.array([]))
        m = _contrast(t, dense, sign, confidence)
        row = dict(weights_remaining=lvl, ticket_mean=float(np.mean(t)) if len(t) else np.nan,
                   ticket_std=float(np.std(t, ddof=1)) if len(t) > 1 else np.nan,
                   n_ticket=len(t), vs_dense=m["diff"], vs_dense_ci_low=m["ci_low"],
                   vs_dense_ci_high=m["ci_high"], match=_match_status(m, sign, margin),
                   lost=lost(ticket, lvl))
        statuses = []
        for c in verdict_controls:
            cv = values.get((c, lvl))
            if cv is None:
                continue
            k = _contrast(t, cv, sign, confidence)
            k["status"] = _control_status(k, sign, margin)
            contrasts[(c, lvl)] = k
            statuses.append(k["status"])
            row[f"{c}_decision"] = k["status"]
            row["lost"] = max(row["lost"], lost(c, lvl))
        row["controls_run"] = len(statuses)
        row["reinit_run"] = any((c, lvl) in contrasts for c in REINIT_CONTROLS
                                if c in verdict_controls)
        row["beats_all"] = bool(statuses) and row["reinit_run"] and all(
            st == "beats" for st in statuses)
        row["equivalent_all"] = bool(statuses) and row["reinit_run"] and all(
            st == "equivalent" for st in statuses)
        rows.append(row)
    table = pd.DataFrame(rows)

    # the two fixed sequences
    matching = []
    for row in rows:
        if row["match"] != "matches":
            break
        matching.append(row["weights_remaining"])
    winning_side = []
    for row in reversed(rows):
        if not row["beats_all"]:
            break
        winning_side.append(row["weights_remaining"])
    carried = {row["weights_remaining"] for row in rows if row["lost"] <= max_lost}
    winning = sorted((set(matching) & set(winning_side)) & carried, reverse=True)
    equivalent = []
    for lvl in matching:
        row = next(r for r in rows if r["weights_remaining"] == lvl)
        if not row["equivalent_all"]:
            break
        equivalent.append(lvl)
    if len(table):
        table["matching"] = table["weights_remaining"].isin(matching)
        table["winning_side"] = table["weights_remaining"].isin(winning_side)
        table["winning"] = table["weights_remaining"].isin(winning)
        table["equivalent"] = table["weights_remaining"].isin(equivalent)

    has_reinit = any(c in REINIT_CONTROLS for c in verdict_controls)
    first = rows[0] if rows else None
    enough = len(dense) >= 2 and any(r["n_ticket"] >= 2 for r in rows)
    any_test = any(np.isfinite(k["ci_low"]) for k in contrasts.values())
    reason = None
    if not has_reinit:
        outcome, reason = "inconclusive", "no_control"
    elif winning:
        outcome = "winning_ticket"
    elif not enough:
        outcome, reason = "inconclusive", "too_few_trials"
    elif first is not None and first["match"] == "falls_short":
        outcome = "no_ticket"
    elif matching and all(any(contrasts.get((c, lvl), {}).get("status") == "worse"
                              for c in verdict_controls) for lvl in matching):
        outcome = "no_ticket"  # a control is shown better than the ticket wherever it matches
    elif not matching:
        outcome, reason = "inconclusive", "matching_undecided"
    elif equivalent:
        outcome = "no_ticket_effect"
    elif not any_test:
        outcome, reason = "inconclusive", "no_test"
    else:
        outcome, reason = "inconclusive", "too_little_power"

    if outcome == "winning_ticket":
        verdict_level = min(winning)
    elif outcome == "no_ticket_effect":
        verdict_level = min(equivalent)
    elif (outcome == "no_ticket" and not matching) or not matching:
        verdict_level = pruned[0] if pruned else np.nan
    else:
        verdict_level = min(matching)

    # every ticket - control contrast of the verdict, for tests.csv and the report
    bound = 1.0 if percent else np.inf
    test_rows = []
    for (c, lvl), k in sorted(contrasts.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        t_vals, c_vals = values.get((ticket, lvl), np.array([])), values[(c, lvl)]
        test_rows.append(dict(
            strategy=c, weights_remaining=lvl, mean_ticket=float(np.mean(t_vals)),
            mean_control=float(np.mean(c_vals)), diff=k["diff"],
            ci_low=max(k["ci_low"], -bound), ci_high=min(k["ci_high"], bound),
            p_value=_two_sided(k), p_one_sided=k["p_better"], decision=k["status"],
            hedges_g=hedges_g(t_vals, c_vals), n_ticket=k["n_a"], n_control=k["n_b"],
            tested_in="winning side" if lvl in winning_side else (
                "after the winning side stopped")))
    tests = pd.DataFrame(test_rows, columns=_TEST_COLUMNS)

    control_rows = []
    for strategy in sorted(present):
        k = contrasts.get((strategy, verdict_level)) if strategy in verdict_controls else None
        if k is None and (strategy, verdict_level) in values:
            k = _contrast(values.get((ticket, verdict_level), []),
                          values[(strategy, verdict_level)], sign, confidence)
            k["status"] = _control_status(k, sign, margin)
        cvals = values.get((strategy, verdict_level))
        own_match, own_off = _own_matching(values, strategy, pruned, dense, sign, margin,
                                           confidence)
        control_rows.append(dict(
            strategy=strategy, label=strategy_label(strategy),
            in_verdict=strategy in verdict_controls,
            mean_control=float(np.mean(cvals)) if cvals is not None else np.nan,
            diff=k["diff"] if k else np.nan, ci_low=k["ci_low"] if k else np.nan,
            ci_high=k["ci_high"] if k else np.nan,
            hedges_g=hedges_g(values.get((ticket, verdict_level), np.array([])), cvals)
            if cvals is not None else np.nan,
            p_value=_two_sided(k), p_one_sided=k["p_better"] if k else np.nan,
            decision=k["status"] if k else "not run",
            n_control=0 if cvals is None else len(cvals),
            ticket_beats=bool(k and k["status"] == "beats"),
            equivalent=bool(k and k["status"] == "equivalent"),
            matches_dense=verdict_level in own_match, matching_level=min(own_match)
            if own_match else np.nan, falls_off_at=own_off))
    control_table = pd.DataFrame(control_rows, columns=_CONTROL_COLUMNS)

    power = None
    if outcome == "inconclusive" and reason in ("too_little_power", "matching_undecided"):
        at = [contrasts[(c, verdict_level)] for c in verdict_controls
              if (c, verdict_level) in contrasts]
        if reason == "matching_undecided" and first is not None:
            at = [_contrast(values.get((ticket, first["weights_remaining"]), []), dense,
                            sign, confidence)]
        power = _power_statement(at, margin, alpha, percent)

    counts = df.groupby(["strategy", "weights_remaining"]).size()
    n_trials = int(counts.min()) if len(counts) else 0
    notes = _evidence_warnings(n_trials, n_test, percent)
    if stopped:
        notes.append(_stopped_note(stopped))
    heavy = [r["weights_remaining"] for r in rows
             if r["lost"] > max_lost and r["weights_remaining"] in set(matching) & set(
                 winning_side)]
    if heavy:
        notes.append(f"Levels {_join([format_level(v) for v in heavy])} cannot carry a winning "
                     f"ticket: more than {100 * max_lost:.0f} % of a strategy's trials were lost "
                     "there (cut short, diverged or lost).")
    und = _undertrained(raw)
    if und:
        notes.append(und)
    undertrained = und is not None
    at_level = table[table["weights_remaining"] == verdict_level] if len(table) else table
    sparsest = rows[-1] if rows else None
    retraining = _retraining(raw, ticket, metric, verdict_level)
    family = (f"matching dense within ±{_fmt_amount(margin, percent)} tested level by level "
              "from the least pruned downward, the advantage over every control "
              f"({_join([strategy_label(c) for c in verdict_controls]) or 'none'}) from the "
              "most pruned upward, each sequence stopping at the first level where it is "
              f"not shown (fixed-sequence tests, one-sided at {100 * alpha / 2:g} %, "
              f"{100 * confidence:g} % intervals; at most {100 * alpha:g} % chance of any "
              "false winning claim)")
    return dict(
        verdict=outcome,
        reason=reason,
        verdict_level=float(verdict_level),
        margin=margin,
        power=power,
        family=family,
        n_tests=int(sum(np.isfinite(k["ci_low"]) for k in contrasts.values())
                    + sum(np.isfinite(r["vs_dense_ci_low"]) for r in rows)),
        levels_table=table,
        tests=tests,
        controls=control_table,
        n_trials=n_trials,
        notes=notes,
        dense_mean=dense_mean,
        dense_std=dense_std,
        dense_n=int(len(dense)),
        dense_level=dense_level,
        threshold=dense_mean - sign * margin,
        levels=levels,
        ticket_matching_level=min(matching) if matching else np.nan,
        ticket_matching_levels=matching,
        ticket_winning_levels=winning,
        ticket_equivalent_levels=equivalent,
        ticket_falls_off_at=next((r["weights_remaining"] for r in rows
                                  if r["match"] != "matches"), np.nan),
        ticket_mean=float(at_level["ticket_mean"].iloc[0]) if len(at_level) else np.nan,
        ticket_std=float(at_level["ticket_std"].iloc[0]) if len(at_level) else np.nan,
        sparsest_level=sparsest["weights_remaining"] if sparsest else np.nan,
        ticket_mean_sparsest=sparsest["ticket_mean"] if sparsest else np.nan,
        retraining=retraining,
        undertrained=undertrained,
        **common,
    )


def claim_test(a, b, claim="greater", *, margin=None, alpha=0.05, greater_is_better=True):
    """Test one directional claim about two groups of trials, as the verdicts do.

    Parameters
    ----------
    a, b : array-like of float
        The trials of the two groups (e.g. the ticket's and a control's test
        accuracies at one level).
    claim : {'greater', 'not_worse', 'equivalent'}, default='greater'
        ``'greater'``: ``a`` is better than ``b`` (the lower bound of the
        ``1 - alpha`` Welch interval of ``a - b`` above 0, in the metric's
        direction); ``'not_worse'``: ``a`` is not worse than ``b`` by more
        than ``margin`` (non-inferiority: the lower bound above ``-margin``);
        ``'equivalent'``: ``a`` and ``b`` differ by less than ``margin``
        (TOST: the interval inside ``(-margin, margin)``).
    margin : float, default=None
        Needed for ``'not_worse'`` and ``'equivalent'``.
    alpha : float, default=0.05
        The interval's coverage is ``1 - alpha`` (each one-sided test at
        ``alpha / 2``).
    greater_is_better : bool, default=True
        False for metrics where lower is better (e.g. early-stop iterations):
        "better" then means lower.

    Returns
    -------
    result : dict
        ``diff`` (``a - b``), ``ci_low``, ``ci_high``, ``p_one_sided`` (for
        "a better than b"), ``shown`` (the claim is significant), ``direction``
        (the point estimate agrees with the claim) and ``outcome``: ``'yes'``
        when shown, ``'partly'`` when only the direction holds, ``'no'``
        otherwise (``'n/a'`` when a group has fewer than 2 trials).

    See Also
    --------
    matching_summary : The verdict, built on the same tests.
    """
    if claim not in ("greater", "not_worse", "equivalent"):
        raise ValueError(f"claim must be 'greater', 'not_worse' or 'equivalent', got {claim!r}.")
    if claim != "greater" and margin is None:
        raise ValueError(f"claim={claim!r} needs a margin.")
    sign = 1.0 if greater_is_better else -1.0
    k = _contrast(a, b, sign, 1.0 - alpha)
    lo, hi = _better_bounds(k, sign)
    d = sign * k["diff"]
    if claim == "greater":
        shown, direction = bool(lo > 0), bool(d > 0)
    elif claim == "not_worse":
        shown, direction = bool(lo > -margin), bool(d > -margin)
    else:
        shown, direction = bool(lo > -margin and hi < margin), bool(abs(d) < margin)
    usable = k["n_a"] >= 2 and k["n_b"] >= 2 and np.isfinite(lo)
    outcome = "n/a" if not usable else ("yes" if shown else "partly" if direction else "no")
    return dict(diff=k["diff"], ci_low=k["ci_low"], ci_high=k["ci_high"],
                p_one_sided=k["p_better"], shown=shown, direction=direction,
                outcome=outcome, n_a=k["n_a"], n_b=k["n_b"])


def mask_information(results, ticket="rewind", control="shuffle_layer", *,
                     metric="test_acc", level=None, alpha=0.05, greater_is_better=None):
    """Does the ticket's mask carry information beyond its per-layer densities?

    Frankle et al. (2021)'s sanity check: the ticket is trained against the
    same initial weights under its mask shuffled within every layer
    (``'shuffle_layer'`` of :func:`sklottery.analysis.ticket_curve`: the
    same number of weights per layer, at random positions) or under its
    inversion (``'invert'``). The claim "the ticket beats the perturbed
    mask" is one :func:`claim_test` (``'greater'``: the lower bound of the
    two-sided ``1 - alpha`` Welch interval of ticket - control above 0, a
    one-sided test at ``alpha / 2``) at one level, fixed before looking at
    the outcome: ``level``, or by default the sparsest level where both have
    at least 2 trials (where pruning has removed the most and the mask
    matters most).

    Parameters
    ----------
    results : pandas.DataFrame
        From :func:`sklottery.analysis.ticket_curve`, for a single data set.
    ticket : str, default='rewind'
    control : str, default='shuffle_layer'
        ``'shuffle_layer'``, ``'invert'`` or any other strategy of the table.
    metric : str, default='test_acc'
    level : float, default=None
        ``weights_remaining`` (%) to test at; rounded like every level.
    alpha : float, default=0.05
    greater_is_better : bool, default=None
        Inferred from the metric's name (lower is better for ``mse``/``loss``).

    Returns
    -------
    result : dict
        ``answer``: ``'yes'`` (the ticket beats the control: its mask carries
        information beyond its layer-wise densities), ``'no'`` (the control
        is shown better than the ticket), or ``'cannot tell'`` (neither shown,
        or fewer than 2 trials of either); ``level``, ``ticket_mean``,
        ``control_mean``, ``diff`` (ticket - control), ``ci_low``, ``ci_high``,
        ``p_one_sided`` (ticket better), ``n_ticket``, ``n_control``,
        ``outcome`` (:func:`claim_test`'s) and ``statement``, e.g. ``'the
        ticket beats its layer-wise shuffled mask at 16.5 % weights remaining
        by +3.0 points (CI +1.2 to +4.8), one-sided p = 0.002'``.

    See Also
    --------
    claim_test : The test.
    matching_summary : The verdict on the ticket's initialisation.

    References
    ----------
    .. [1] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2021).
       Pruning Neural Networks at Initialization: Why Are We Missing the
       Mark? ICLR. arXiv:2009.08576.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    raw = as_frame(results, ["strategy", "weights_remaining", metric])
    single_dataset(raw, "mask_information")
    for name in (ticket, control):
        if not (raw["strategy"] == name).any():
            raise ValueError(f"strategy {name!r} is not in results.")
    if greater_is_better is None:
        greater_is_better = infer_greater_is_better(metric)
    raw = raw.assign(weights_remaining=round_levels(raw["weights_remaining"]),
                     **{metric: pd.to_numeric(raw[metric], errors="coerce")})
    raw = raw[raw[metric].notna()]
    values = {name: {lvl: g[metric].to_numpy() for lvl, g in
                     raw[raw["strategy"] == name].groupby("weights_remaining")}
              for name in (ticket, control)}
    if level is None:
        both = [lvl for lvl in values[control] if len(values[control][lvl]) >= 2
                and len(values[ticket].get(lvl, ())) >= 2]
        level = min(both) if both else (min(values[control]) if values[control] else np.nan)
    else:
        level = float(round_levels(pd.Series([float(level)])).iloc[0])
    a = values[ticket].get(level, np.array([]))
    b = values[control].get(level, np.array([]))
    res = claim_test(a, b, "greater", alpha=alpha, greater_is_better=greater_is_better)
    sign = 1.0 if greater_is_better else -1.0
    lo, hi = _better_bounds(dict(ci_low=res["ci_low"], ci_high=res["ci_high"]), sign)
    if res["outcome"] == "yes":
        answer = "yes"
    elif res["outcome"] != "n/a" and hi < 0:
        answer = "no"
    else:
        answer = "cannot tell"
    percent = is_proportion(metric, raw[metric]) if len(raw) else "acc" in metric
    row = SimpleNamespace(diff=res["diff"], ci_low=res["ci_low"], ci_high=res["ci_high"])
    what = ("its layer-wise shuffled mask"
            if control == "shuffle_layer" or control.endswith("_shuffle")
            else {"invert": "its inverted mask"}.get(control, strategy_label(control)))
    # the subject: the ticket, or another method's mask (e.g. SNIP's, against its shuffle)
    subject = "the ticket" if ticket == "rewind" else f"{strategy_label(ticket)}'s mask"
    at = f"at {format_level(level)} weights remaining"
    evidence = f"{_fmt_diff(row, percent)}, one-sided {_fmt_p(res['p_one_sided'])}"
    if answer == "yes":
        statement = f"{subject} beats {what} {at} by {evidence}"
    elif answer == "no":
        statement = f"{what} beats {subject} {at}: difference {evidence}"
    elif res["outcome"] == "n/a":
        statement = (f"cannot tell whether {subject} beats {what} {at}: a test needs at "
                     f"least 2 trials of each ({len(a)} and {len(b)})")
    else:
        statement = f"cannot tell whether {subject} beats {what} {at}: {evidence}"
    return dict(answer=answer, level=level,
                ticket_mean=float(np.mean(a)) if len(a) else np.nan,
                control_mean=float(np.mean(b)) if len(b) else np.nan,
                diff=res["diff"], ci_low=res["ci_low"], ci_high=res["ci_high"],
                p_one_sided=res["p_one_sided"], n_ticket=len(a), n_control=len(b),
                outcome=res["outcome"], statement=statement)


def _retraining(raw, ticket, metric, level):
    """What retraining adds over pruning without it, at ``level``: a dict or None.

    Reads the ``<metric>_no_retrain`` column of ticket_curve (the trained
    network of the previous round under this level's mask, before any
    retraining: traditional pruning) for the ticket, and the ticket's and the
    fine-tuned network's (``'continue'``) own ``metric`` there.
    """
    col = metric.replace("_early_stop", "") + "_no_retrain"
    if col not in raw.columns or not np.isfinite(level):
        return None
    at = raw[raw["weights_remaining"] == level]
    base = pd.to_numeric(at.loc[at["strategy"] == ticket, col], errors="coerce").dropna()
    if not len(base):
        return None
    out = {"no_retrain": float(base.mean())}
    for name in (ticket, "continue"):
        v = pd.to_numeric(at.loc[at["strategy"] == name, metric], errors="coerce").dropna()
        if len(v):
            out[name] = float(v.mean())
    return out


def _two_sided(k):
    if not k:
        return np.nan
    p = 2 * min(k["p_better"], k["p_worse"])
    return float(min(1.0, p)) if np.isfinite(p) else np.nan


def _own_matching(values, strategy, pruned, dense, sign, margin, confidence):
    """A strategy's own matching levels (unbroken from dense) and where that stops."""
    run = []
    for lvl in pruned:
        v = values.get((strategy, lvl))
        if v is None:
            continue
        if _match_status(_contrast(v, dense, sign, confidence), sign, margin) != "matches":
            return run, lvl
        run.append(lvl)
    return run, np.nan


def _fmt_amount(x, percent):
    if not percent:
        return f"{x:.3g}"
    return f"{100 * x:.3g} point{'' if round(100 * x, 3) == 1 else 's'}"


def _undertrained(raw):
    """A note when early stop falls on the last evaluation in most runs (undertraining)."""
    if not {"early_stop_iteration", "n_iter"} <= set(raw.columns):
        return None
    es = pd.to_numeric(raw["early_stop_iteration"], errors="coerce")
    n_iter = pd.to_numeric(raw["n_iter"], errors="coerce")
    ok = es.notna() & n_iter.notna()
    if not ok.any():
        return None
    at_end = int((es[ok] >= n_iter[ok]).sum())
    if at_end * 2 <= int(ok.sum()):
        return None
    return (f"Undertrained: in {at_end} of {int(ok.sum())} rounds the minimum validation loss "
            "fell on the last evaluation, so training stopped before the validation loss "
            "turned; early-stop iterations and accuracies at early stop mean little here "
            "(train longer).")


def _empty_summary(common, reason, stopped):
    """The summary when nothing can be judged (no dense run of the ticket)."""
    notes = ["No run of the ticket completed its dense round (round 0), so there is "
             "nothing to judge."]
    if stopped:
        notes.append(_stopped_note(stopped))
    nan = float("nan")
    return dict(
        verdict="inconclusive", reason=reason, verdict_level=nan, margin=nan, power=None,
        family="no tests", n_tests=0, levels_table=pd.DataFrame(),
        tests=pd.DataFrame(columns=_TEST_COLUMNS),
        n_trials=0, notes=notes, undertrained=False, dense_mean=nan, dense_std=nan, dense_n=0, dense_level=nan,
        threshold=nan, levels=[], ticket_matching_level=nan, ticket_matching_levels=[],
        ticket_winning_levels=[], ticket_equivalent_levels=[], ticket_falls_off_at=nan,
        ticket_mean=nan, ticket_std=nan, sparsest_level=nan, ticket_mean_sparsest=nan,
        controls=pd.DataFrame(columns=_CONTROL_COLUMNS), **common,
    )


_TEST_COLUMNS = [
    "strategy", "weights_remaining", "mean_ticket", "mean_control", "diff", "ci_low",
    "ci_high", "p_value", "p_one_sided", "decision", "hedges_g", "n_ticket", "n_control",
    "tested_in",
]

_CONTROL_COLUMNS = [
    "strategy", "label", "in_verdict", "mean_control", "diff", "ci_low", "ci_high",
    "hedges_g", "p_value", "p_one_sided", "decision", "n_control", "ticket_beats",
    "equivalent", "matches_dense", "matching_level", "falls_off_at",
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


def _fmt_test(row, percent):
    """'random reinit by +3.1 points (CI +1.0 to +5.2), Hedges' g 1.20, one-sided p = 0.004'."""
    g = "n/a" if not np.isfinite(row.hedges_g) else f"{row.hedges_g:.2f}"
    return (f"{row.label} by {_fmt_diff(row, percent)}, Hedges' g {g}, "
            f"one-sided {_fmt_p(row.p_one_sided)}")


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
        effect: "``, ``"No ticket: "``, ``"Inconclusive: "``; an
        interruption warning comes first), names the level, the ticket's and
        dense's values with the difference and its interval, and for every
        control the difference (ticket - control) with its interval, Hedges'
        g and the one-sided p-value; then the testing procedure (the family),
        the margin, the number of trials and test samples, for an
        inconclusive verdict why and how many trials would decide, and any
        warning about weak evidence. The differences are in percentage
        points for accuracies.

    See Also
    --------
    matching_summary : The summary this sentence is written from.
    summary_row : The same as one table row.
    """
    prefix = (summary["incomplete"] + " ") if summary.get("incomplete") else ""
    outcome = summary["verdict"]
    if outcome == "inconclusive" and summary.get("reason") == "no_data":
        return prefix + "Inconclusive: " + " ".join(summary.get("notes", []))
    percent = summary["percent"]
    name = strategy_label(summary["ticket"])
    dense = format_value(summary["dense_mean"], summary["dense_std"], percent)
    level = format_level(summary["verdict_level"])
    ticket_value = format_value(summary["ticket_mean"], summary["ticket_std"], percent)
    controls = summary["controls"]
    judged = controls[controls["in_verdict"] & controls["diff"].notna()]
    conf = f"{100 * summary['confidence']:g} %"
    margin = _fmt_amount(summary["margin"], percent)
    table = summary["levels_table"]
    vs_dense = ""
    if len(table) and (table["weights_remaining"] == summary["verdict_level"]).any():
        r = table[table["weights_remaining"] == summary["verdict_level"]].iloc[0]
        d = SimpleNamespace(diff=r["vs_dense"], ci_low=r["vs_dense_ci_low"],
                            ci_high=r["vs_dense_ci_high"])
        vs_dense = f", ticket - dense {_fmt_diff(d, percent)}"
    tests = "; ".join(_fmt_test(r, percent) for r in judged.itertuples())
    at = f"At {level}: {tests} ({conf} CIs of the difference, ticket - control)." \
        if tests else ""
    if outcome == "winning_ticket":
        sentence = (f"Winning ticket: at {level} weights the {name} matches dense "
                    f"({ticket_value} vs {dense}{vs_dense}, within the margin of {margin}) "
                    f"and beats every control. {at}")
    elif outcome == "no_ticket_effect":
        sentence = (f"No ticket effect: down to {level} weights the {name} matches dense "
                    f"({ticket_value} vs {dense}{vs_dense}) and every control is shown "
                    f"equivalent to it within ±{margin}: the initialisation does not matter "
                    f"there. {at}")
    elif outcome == "no_ticket" and summary["ticket_matching_levels"]:
        better = judged[judged["decision"] == "worse"]
        sentence = (f"No ticket: the {name} matches dense down to {level} weights "
                    f"({ticket_value} vs {dense}{vs_dense}), but "
                    f"{_join(list(better['label']))} {'is' if len(better) == 1 else 'are'} "
                    f"shown better than it at every matching level. {at}")
    elif outcome == "no_ticket":
        sentence = (f"No ticket: the {name} already falls short of dense by more than "
                    f"{margin} at {level} weights ({ticket_value} vs {dense}{vs_dense}).")
    else:
        why = INCONCLUSIVE_REASONS.get(summary.get("reason"), "the evidence decides nothing")
        if summary.get("reason") == "too_little_power":
            where = (f"The {name} matches dense down to {level} weights ({ticket_value} vs "
                     f"{dense}{vs_dense}), but the controls were neither beaten nor shown "
                     f"equivalent within ±{margin} at any matching level. {at}")
        elif summary.get("reason") == "matching_undecided":
            where = (f"At {level} weights ({ticket_value} vs {dense}{vs_dense}) the {name} "
                     f"is neither shown to match dense within {margin} nor to fall short.")
        elif summary.get("reason") == "no_control":
            where = ("Matching dense says nothing about winning tickets without a random "
                     "re-initialisation control ('random', 'scratch_e' or 'scratch_b').")
        else:
            where = ""
        sentence = f"Inconclusive: cannot tell ({why}). {where}".rstrip() + " "
        power = summary.get("power")
        if power:
            sentence += power["text"][0].upper() + power["text"][1:] + "."
        sentence = sentence.rstrip()
    n_test = summary.get("n_test")
    sentence = sentence.rstrip()
    re_ = summary.get("retraining")
    if re_ and outcome != "inconclusive" or (re_ and summary.get("reason") in (
            "too_little_power", "matching_undecided")):
        scale, digits = (100.0, 1) if percent else (1.0, 3)
        unit = " points" if percent else ""
        parts = [f"the {name} {scale * (re_[summary['ticket']] - re_['no_retrain']):+.{digits}f}"
                 f"{unit}"] if summary["ticket"] in re_ else []
        if "continue" in re_:
            parts.append(f"fine-tuning {scale * (re_['continue'] - re_['no_retrain']):+.{digits}f}"
                         f"{unit}")
        sentence += (f" Pruned to {level} without any retraining (traditional pruning), the "
                     f"trained network scores {format_value(re_['no_retrain'], np.nan, percent)}"
                     + (f"; retraining adds: {_join(parts)}." if parts else "."))
    sentence += (f" Tests: {summary['family']}. {summary['n_trials']} trial"
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
        ``verdict``, ``reason`` (why inconclusive, or ''), ``level`` (the
        verdict level, % weights), ``winning_level`` (sparsest winning
        level, NaN unless ``'winning_ticket'``), ``margin``,
        ``ticket_mean``, ``dense_mean``, ``dense_std``, ``control``,
        ``diff``, ``ci_low``, ``ci_high``, ``hedges_g``, ``p_one_sided`` and
        ``decision`` (ticket - control at the verdict level), ``mdd`` and
        ``trials_needed`` (the power statement of an inconclusive verdict, or
        NaN), ``n_tests``, ``n_trials``, ``n_test``, ``notes``,
        ``incomplete`` (the interruption warning, or '') and ``sentence``.

    See Also
    --------
    matching_summary : The summary this row is read from.
    verdict : The same as a sentence.
    """
    c = summary["controls"].set_index("strategy")
    get = (lambda k: c.loc[control, k]) if control in c.index else (lambda k: np.nan)
    winning = summary["ticket_winning_levels"]
    power = summary.get("power") or {}
    return dict(
        verdict=summary["verdict"],
        reason=summary.get("reason") or "",
        level=summary["verdict_level"],
        winning_level=min(winning) if winning else np.nan,
        margin=summary.get("margin", np.nan),
        ticket_mean=summary["ticket_mean"],
        dense_mean=summary["dense_mean"],
        dense_std=summary["dense_std"],
        control=control,
        diff=get("diff"),
        ci_low=get("ci_low"),
        ci_high=get("ci_high"),
        hedges_g=get("hedges_g"),
        p_one_sided=get("p_one_sided"),
        decision=get("decision") if control in c.index else "not run",
        mdd=power.get("mdd", np.nan),
        trials_needed=power.get("trials_needed", np.nan),
        n_tests=summary["n_tests"],
        n_trials=summary["n_trials"],
        n_test=summary["n_test"],
        notes=" ".join(summary["notes"]),
        incomplete=summary.get("incomplete") or "",
        undertrained=bool(summary.get("undertrained", False)),
        sentence=verdict(summary),
    )


def tickets_exist(results, conditions, *, ticket="rewind", control="random",
                  metric="test_acc", alpha=0.05, margin=None):
    """Where do winning tickets exist? One row per condition x pruning level.

    Each condition gets the verdict of :func:`matching_summary` with
    ``control`` as the only control; a ticket *exists* at a level when that
    verdict's procedure claims a winning ticket there (it matches dense within
    the margin and beats the control, both shown within their fixed
    sequences; see :func:`matching_summary`).

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
        Error rate of each condition's verdict.
    margin : float, default=None
        Equivalence margin (see :func:`matching_summary`).

    Returns
    -------
    table : pandas.DataFrame
        Columns: conditions, ``weights_remaining``, ``ticket_mean``,
        ``control_mean``, ``diff`` (ticket - control), ``ci_low``,
        ``ci_high`` (the ``1 - alpha`` Welch interval of the difference),
        ``hedges_g``, ``p_value``, ``p_one_sided``, ``decision`` (ticket vs
        control: beats, equivalent, worse or undecided), ``matches_dense``,
        ``ticket_exists``, ``verdict`` and ``reason`` (the condition's
        verdict, repeated on its rows).

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
    """
    conditions = list(conditions)
    rows = []
    for key, sub in results.groupby(conditions, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        sub = sub[sub["strategy"].isin([ticket, control])].drop(columns=conditions)
        summary = matching_summary(sub, ticket=ticket, metric=metric, alpha=alpha,
                                   controls=[control], margin=margin)
        matching = set(summary["ticket_matching_levels"])
        winning = set(summary["ticket_winning_levels"])
        for c in summary["tests"].itertuples():
            lvl = float(c.weights_remaining)
            rows.append({**dict(zip(conditions, key)),
                         "weights_remaining": c.weights_remaining,
                         "ticket_mean": c.mean_ticket, "control_mean": c.mean_control,
                         "diff": c.diff, "ci_low": c.ci_low, "ci_high": c.ci_high,
                         "hedges_g": c.hedges_g, "p_value": c.p_value,
                         "p_one_sided": c.p_one_sided, "decision": c.decision,
                         "matches_dense": lvl in matching,
                         "ticket_exists": lvl in winning,
                         "verdict": summary["verdict"], "reason": summary["reason"] or ""})
    return pd.DataFrame(rows)
