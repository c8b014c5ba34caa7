"""The errors sklottery raises that callers may want to catch.

Like :mod:`sklearn.exceptions`: one place to import them from. This module
imports nothing from the rest of the package, so every module can raise its
classes. (The estimators' warnings and :class:`~sklottery.TrainingDivergedError`
are importable from :mod:`sklottery` itself.)
"""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning

__all__ = ["DivergenceWarning", "ExperimentInterrupted", "LayerCollapseError", "PickleIntegrityError",
           "PruningInterruptedWarning", "TicketFileError", "TrainingDivergedError",
           "UndertrainingWarning"]


class PruningInterruptedWarning(UserWarning):
    """Pruning stopped early (interrupt); the completed rounds were kept."""


class DivergenceWarning(ConvergenceWarning):
    """Training diverged; the last good round was restored.

    A round diverges when a loss or weight becomes NaN/inf, or when a loss
    blows up: the mean training loss of an epoch or a validation loss on the
    evaluation grid exceeds 10 times the larger of the loss of a constant
    prediction and the round's first-batch loss
    (:func:`sklottery.training.divergence_detail`).
    """


class TrainingDivergedError(RuntimeError):
    """Training diverged before any round completed: there is no network to keep."""


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


class PickleIntegrityError(ValueError):
    """A pickled estimator does not match the checksums saved with it.

    Raised while unpickling (``pickle.load``, ``joblib.load``,
    ``copy.deepcopy``) a fitted estimator when the SHA-256 checksum of an
    entry of its stored state (network weights, pruning masks, θ0 or its
    seed, the rewind point, the checkpoint, fitted attributes such as
    ``rounds_`` and ``history_``) differs from the one computed when it was
    pickled: the file was altered or corrupted after it was written. Nothing
    is loaded. A subclass of :class:`ValueError`.

    Attributes
    ----------
    entries : list of str
        The entries whose bytes do not match (or that are missing or
        unexpected), e.g. ``"module['layers.0.weight']"``.
    filename : str or None
        The file being loaded, when it could be found (see
        :func:`sklottery.persistence.open_packed_state`); None otherwise.
    """

    def __init__(self, message, entries=(), filename=None):
        super().__init__(message)
        self.entries = list(entries)
        self.filename = filename


class TicketFileError(ValueError):
    """A ticket file cannot be loaded: not a ticket, a format too new, or damaged.

    Raised by :func:`sklottery.tickets.load_ticket` before anything is
    returned: the file is not a zip archive or holds no ticket metadata; its
    format version is newer than (or unknown to) this sklottery; an entry
    cannot be read, is missing, or differs from the SHA-256 checksum stored
    with it (the file was altered or corrupted after it was written). The
    message names the file and the problem. A subclass of
    :class:`ValueError`.

    Attributes
    ----------
    entries : list of str
        The entries at fault, e.g. ``"trained/layers.0.weight"`` or
        ``"meta"`` (empty when the file as a whole is refused).
    filename : str or None
        The file being loaded.
    """

    def __init__(self, message, entries=(), filename=None):
        super().__init__(message)
        self.entries = list(entries)
        self.filename = filename


class LayerCollapseError(ValueError):
    """A pruning method would remove every weight of a layer (layer collapse).

    Raised by :mod:`sklottery.pai` instead of returning masks that
    disconnect the network (Tanaka et al. 2020). In
    :func:`~sklottery.analysis.ticket_curve` such a run gets a row with
    ``stop_reason='layer_collapse'`` instead of stopping the curve. A subclass
    of :class:`ValueError`.
    """


class UndertrainingWarning(UserWarning):
    """Training stopped before the validation loss turned: early stop means little.

    Raised by :func:`~sklottery.analysis.ticket_curve` when, in most rounds,
    the minimum validation loss falls on the last evaluation of the round:
    Frankle & Carbin's early-stop iteration then only says "the end", and
    accuracies at early stop are accuracies at the end. Train longer
    (``max_epochs``) when early stopping matters to the question.
    """
