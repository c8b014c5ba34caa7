"""The errors and warnings sklottery raises that callers may want to catch.

Like :mod:`sklearn.exceptions`: one place to import them from. This module
imports nothing from the rest of the package, so every module can raise its
classes.
"""

from __future__ import annotations

__all__ = ["PickleIntegrityError"]


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
        :func:`sklottery.export.open_packed_state`); None otherwise.
    """

    def __init__(self, message, entries=(), filename=None):
        super().__init__(message)
        self.entries = list(entries)
        self.filename = filename
