"""The errors and warnings sklottery raises that callers may want to catch.

Like :mod:`sklearn.exceptions`: one place to import them from. The
estimators' own warnings (:class:`~sklottery.DivergenceWarning`,
:class:`~sklottery.PruningInterruptedWarning`) and
:class:`~sklottery.TrainingDivergedError` are re-exported here.
"""

from __future__ import annotations

from .base import DivergenceWarning, PruningInterruptedWarning, TrainingDivergedError

__all__ = ["ExperimentInterrupted", "DivergenceWarning", "PruningInterruptedWarning",
           "TrainingDivergedError"]


class ExperimentInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped an experiment; what finished travels with the exception.

    Raised by :func:`~sklottery.analysis.ticket_curve` and
    :func:`~sklottery.analysis.conditions_sweep` after the first Ctrl-C: the
    runs in progress stopped at their next training batch (each keeping its
    completed rounds, ``stop_reason='interrupted'``), no new run started, and
    the table of everything that finished is in :attr:`results`, marked as
    interrupted (``results.attrs['sklottery_runs']``, see
    :func:`~sklottery.analysis.run_status`). A subclass of
    :class:`KeyboardInterrupt`, so a script stops as it would on Ctrl-C; in
    IPython or Jupyter the last exception is ``sys.last_value``, so
    ``sys.last_value.results`` recovers the table after the fact.

    Attributes
    ----------
    results : pandas.DataFrame
        The completed rounds of every run that trained at least one round.
    runs : dict or None
        ``ticket_curve(return_runs=True)``'s second value for those runs.
    status : dict
        :func:`~sklottery.analysis.run_status` of ``results``.
    """

    def __init__(self, message, results=None, runs=None, status=None):
        super().__init__(message)
        self.results = results
        self.runs = runs
        self.status = status or {}
