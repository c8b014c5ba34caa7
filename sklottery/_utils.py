"""Small helpers shared by the estimators and the analysis tools."""

from __future__ import annotations

import os
import sys

import sklearn
import torch
from sklearn.model_selection import train_test_split

__all__ = ["module_device", "split", "user_stacklevel"]


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


def module_device(module):
    """The device of ``module``'s parameters (or buffers); the CPU when it has none.

    What the package builds from a network (its inference module, compact
    copy, exports, interpolations) goes there, whatever torch's default
    device is.
    """
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_SKLEARN_DIR = os.path.dirname(os.path.abspath(sklearn.__file__))


def _inside(path, directory):
    """Whether ``path`` lies in ``directory`` (not merely shares its prefix)."""
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def user_stacklevel():
    """``stacklevel`` for :func:`warnings.warn` that points at the user's code.

    Counts the frames, from the caller of this function up, that belong to
    sklottery or to scikit-learn's wrappers (``fit``'s validation context, a
    meta-estimator), so a warning raised deep inside the engine (whose fit is
    a generator driven by a trainer) is attributed to the line that called
    ``fit`` or ``ticket_curve``.
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (_inside(path, _PACKAGE_DIR) or _inside(path, _SKLEARN_DIR)):
            return level
        frame = frame.f_back
        level += 1
    return level
