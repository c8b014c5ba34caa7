"""Small helpers shared by the estimators and the analysis tools."""

from __future__ import annotations

from sklearn.model_selection import train_test_split

__all__ = ["split"]


def split(*arrays, test_size, random_state, stratify=None):
    """:func:`~sklearn.model_selection.train_test_split`, stratified when it can be.

    With ``stratify`` given, a class too small to stratify falls back to a
    plain random split with the same ``random_state``.
    """
    if stratify is not None:
        try:
            return train_test_split(*arrays, test_size=test_size, random_state=random_state,
                                    stratify=stratify)
        except ValueError:  # a class too small to stratify
            pass
    return train_test_split(*arrays, test_size=test_size, random_state=random_state)
