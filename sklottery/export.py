"""Former home of :mod:`sklottery.inference` and :mod:`sklottery.persistence`.

This module re-exports both, so that existing imports keep working:

* :mod:`sklottery.inference`: the fast ``predict`` of a pruned network
  (:func:`~sklottery.inference.build_inference_module`,
  :func:`~sklottery.inference.predict_outputs`, the sparse layers and the
  settings :data:`~sklottery.inference.SPARSE_MAX_DENSITY`,
  :data:`~sklottery.inference.SPARSE_CHUNK` and
  :data:`~sklottery.inference.MIN_DEAD_INPUT_FRACTION`);
* :mod:`sklottery.persistence`: what a pickled estimator stores and the
  checksums checked on load (:func:`~sklottery.persistence.pack_estimator_state`
  and its inverse, :func:`~sklottery.persistence.pack_mask`, ...).

The settings are read from and written to :mod:`sklottery.inference` through
this module too: ``sklottery.export.SPARSE_MAX_DENSITY = 0.2`` sets the
threshold ``predict`` uses. New code should import from the two modules.
"""

from __future__ import annotations

import sys
import types

from . import inference, persistence
from .inference import (  # noqa: F401 - re-exported
    DenseLinearT,
    SparseLinearT,
    TransposedRun,
    build_inference_module,
    inference_cache,
    predict_outputs,
)
from .persistence import (  # noqa: F401 - re-exported
    PickleIntegrityError,
    open_packed_state,
    pack_estimator_state,
    pack_mask,
    state_checksum,
    unpack_estimator_state,
    unpack_mask,
)

# SPARSE_MAX_DENSITY and SPARSE_CHUNK are properties of _ForwardSettings
__all__ = list(inference.__all__) + list(persistence.__all__)


def _setting(name):
    """A property of this module that reads and writes ``sklottery.inference.<name>``."""
    return property(lambda self: getattr(inference, name),
                    lambda self, value: setattr(inference, name, value),
                    doc=f"Alias of :data:`sklottery.inference.{name}`.")


class _ForwardSettings(types.ModuleType):
    """This module's type: its settings are :mod:`sklottery.inference`'s own."""

    SPARSE_MAX_DENSITY = _setting("SPARSE_MAX_DENSITY")
    SPARSE_CHUNK = _setting("SPARSE_CHUNK")
    MIN_DEAD_INPUT_FRACTION = _setting("MIN_DEAD_INPUT_FRACTION")


sys.modules[__name__].__class__ = _ForwardSettings
