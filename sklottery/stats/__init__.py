"""Statistics for lottery-ticket experiments.

Everything here is free of torch (masks and weights given as torch tensors are
converted to numpy on the way in), and is split by concern:

* :mod:`sklottery.stats.curves`: **curve statistics and tests** on the tidy
  table returned by :func:`sklottery.analysis.ticket_curve` (one row per
  strategy x trial x round): :func:`summarize_curve`, :func:`dense_baseline`,
  :func:`compare_to_ticket` and :func:`holm`, with :data:`LEVEL_DECIMALS`,
  :data:`STRATEGY_LABELS` and :func:`strategy_label`.
* :mod:`sklottery.stats.verdicts`: **plain-language verdicts** built on those
  tests: :func:`matching_summary` (does the ticket match dense within a
  margin, beat the controls, or is it equivalent to them? four outcomes,
  ``'inconclusive'`` with its reason), :func:`verdict` (the same as a
  sentence), :func:`summary_row`, :func:`tickets_exist` (the verdict per
  condition of a sweep), :func:`default_margin`, :func:`format_level` and
  :func:`format_value`, with :data:`VERDICTS`, :data:`INCONCLUSIVE_REASONS`,
  :data:`DEFAULT_MARGIN`, :data:`VERDICT_CONTROLS` and :data:`REINIT_CONTROLS`;
  :func:`mask_information` (does the ticket's mask beat its layer-wise
  shuffle or inversion? :data:`SANITY_CONTROLS`).
* :mod:`sklottery.stats.masks`: **mask statistics** on dictionaries
  ``{layer_name: array}``: :func:`layer_sparsity`, :func:`mask_jaccard`,
  :func:`pairwise_mask_overlap`, :func:`sign_preservation` and
  :func:`weight_movement`, and :func:`mask_analysis`, which applies them to
  the runs of ``ticket_curve(..., return_runs=True)``.

Every public name is importable from :mod:`sklottery.stats` itself.

Pruning levels (``weights_remaining``, in percent) are grouped after rounding
to :data:`LEVEL_DECIMALS` decimals, so that levels computed in different trials
that differ only by floating-point noise fall in the same group.
"""

from .curves import (
    LEVEL_DECIMALS,
    STRATEGY_LABELS,
    compare_to_ticket,
    dense_baseline,
    holm,
    strategy_label,
    summarize_curve,
)
from .masks import (
    layer_sparsity,
    mask_analysis,
    mask_jaccard,
    pairwise_mask_overlap,
    sign_preservation,
    weight_movement,
)
from .verdicts import (
    DEFAULT_MARGIN,
    INCONCLUSIVE_REASONS,
    REINIT_CONTROLS,
    SANITY_CONTROLS,
    VERDICT_CONTROLS,
    VERDICTS,
    claim_test,
    default_margin,
    mask_information,
    format_level,
    format_value,
    matching_summary,
    summary_row,
    tickets_exist,
    verdict,
)

__all__ = [
    "LEVEL_DECIMALS",
    "STRATEGY_LABELS",
    "strategy_label",
    "summarize_curve",
    "dense_baseline",
    "compare_to_ticket",
    "matching_summary",
    "claim_test",
    "mask_information",
    "verdict",
    "summary_row",
    "tickets_exist",
    "holm",
    "format_level",
    "format_value",
    "VERDICTS",
    "INCONCLUSIVE_REASONS",
    "DEFAULT_MARGIN",
    "default_margin",
    "VERDICT_CONTROLS",
    "REINIT_CONTROLS",
    "SANITY_CONTROLS",
    "layer_sparsity",
    "mask_jaccard",
    "pairwise_mask_overlap",
    "sign_preservation",
    "weight_movement",
    "mask_analysis",
]
