"""The ticket file: a found lottery ticket as a file to share.

:func:`save_ticket` (or ``est.save_ticket(path)``) writes what a fitted
estimator found: the masks, θ0, θk, optionally the trained weights, the
pruning schedule, the settings, the module and the provenance of the data;
:func:`load_ticket` reads it back as a :class:`Ticket`, after checking it.

**Never pickle.** The file is a zip archive written by
:func:`numpy.savez_compressed`, one ``.npy`` member per entry, and read with
``numpy.load(path, allow_pickle=False)``: loading a ticket runs no code
from the file. The entries:

``meta``
    The metadata: JSON text in a 0-d numpy unicode array (keys below).
``integrity``
    JSON text too: ``{"algorithm": "sha256", "meta": HEX, "entries":
    {NAME: HEX}}``, the SHA-256 of the metadata (its UTF-8 text) and of every
    other entry. An array's digest covers ``f"{a.dtype.str}|{shape}|"``
    (``shape`` as comma-separated ints) followed by its bytes in C order.
``mask/NAME``
    The mask of prunable weight ``NAME`` (e.g. ``mask/layers.0.weight``):
    :func:`numpy.packbits` of the flat boolean mask (C order, ``True`` =
    kept); the shape is in the metadata.
``init/NAME``
    θ0 (``init_params_``): for a prunable weight its surviving values, a 1-D
    array in C order of the positions where the mask is ``True`` (pruned
    positions read as zero); every other tensor of the module's state dict
    (biases, buffers) in full.
``rewind/NAME``
    θk (``rewind_params_``), stored like θ0, only when
    ``rewind_iteration > 0``; otherwise ``meta["rewind"]["same_as"]`` is
    ``"init"``: the rewind point is θ0.
``trained/NAME``
    The trained weights (``net_.module_``), stored like θ0; left out with
    ``include_trained=False``.

A tensor whose dtype numpy lacks (``bfloat16``) is stored as the same-width
integer holding its bits; ``meta["tensors"]`` has every tensor's torch dtype
and shape, in state-dict order.

The metadata keys: ``format`` (``"sklottery-ticket"``), ``format_version``
(:data:`FORMAT_VERSION`), ``created`` (UTC), ``versions`` (sklottery, torch,
numpy, python), ``estimator`` (``class``; ``params``, the ``get_params()``
values that are JSON data: tuples become lists; ``params_left_out``, the
names of the others with their type, e.g. ``callbacks`` objects, a
``module`` class, a ``RandomState``; ``pipeline``, the steps before it when
it was the last step of a pipeline: those steps are not stored), ``task``
(``kind``, ``n_features_in``, the classes or the target standardisation),
``module`` (``class`` as an import path, the ``kwargs`` it was built with,
``tuple_kwargs``, ``kwargs_left_out``, ``package_version``), ``layers``
(per prunable weight: ``name``, ``shape``, ``kind``, ``kept``, ``size``),
``tensors``, ``rewind`` (``iteration``, ``stored``, ``same_as``),
``trained`` (``stored``, ``round``), ``schedule`` (``rounds``: every
completed round's record, ``weights_remaining``, ``reinit``, losses and
scores; ``pruning``: the pruning parameters; ``n_rounds``, ``sparsity``,
``stop_reason``) and ``data`` (``sha256``: :func:`data_sha256` of the
training data, the estimator's ``data_sha256_``).

**Reading a ticket without sklottery**::

    import json
    import numpy as np
    import torch

    z = np.load("my.ticket", allow_pickle=False)
    meta = json.loads(str(z["meta"][()]))
    masks = {}
    for layer in meta["layers"]:
        n = int(np.prod(layer["shape"]))
        bits = np.unpackbits(z["mask/" + layer["name"]], count=n)
        masks[layer["name"]] = torch.from_numpy(bits.astype(bool).reshape(layer["shape"]))
    state = {}
    for t in meta["tensors"]:
        a = z["trained/" + t["name"]]               # or "init/" for θ0
        if t["name"] in masks:                      # surviving values only
            full = np.zeros(t["shape"], dtype=a.dtype)
            full[masks[t["name"]].numpy()] = a
            a = full
        state[t["name"]] = torch.from_numpy(a.reshape(t["shape"]))

``state`` then loads into the module ``meta["module"]`` names, built with
``meta["module"]["kwargs"]``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib
import json
import os
import platform
import tempfile
import warnings
import zipfile
import zlib

import numpy as np
import torch

from .exceptions import TicketFileError

__all__ = ["save_ticket", "load_ticket", "Ticket", "data_sha256", "FORMAT_VERSION",
           "TicketFileError"]

#: The ticket format this version of sklottery writes; it reads this one and
#: the older ones in ``_READABLE``.
FORMAT_VERSION = 1
_READABLE = (1,)
_FORMAT_NAME = "sklottery-ticket"
_ZIP_MAGIC = b"PK\x03\x04"
_PREFIXES = ("mask/", "init/", "rewind/", "trained/")
#: torch dtypes numpy lacks: stored as the same-width integer holding the bits.
_BIT_DTYPES = {torch.bfloat16: torch.int16}


# ------------------------------------------------------------------ hashing
def _array_sha256(a):
    """SHA-256 of an array: ``"{dtype.str}|{shape}|"`` then its bytes in C order."""
    a = np.asarray(a)
    h = hashlib.sha256(f"{a.dtype.str}|{','.join(map(str, a.shape))}|".encode())
    _feed_rows(h, a)
    return h.hexdigest()


def _feed_rows(h, a, block=1 << 22):
    """Feed ``a``'s bytes in C order into ``h``, a block of rows at a time (no full copy)."""
    if a.ndim == 0 or a.size == 0:
        h.update(np.ascontiguousarray(a).tobytes())
        return
    row = max(1, a.nbytes // max(1, a.shape[0]))
    step = max(1, block // row)
    for i in range(0, a.shape[0], step):
        h.update(np.ascontiguousarray(a[i:i + step]).reshape(-1).view(np.uint8))


def data_sha256(X, y=None):
    """SHA-256 of training data: the provenance hash a ticket records.

    The estimators compute it in ``fit`` from the data as validated
    (``data_sha256_``), so for numpy arrays ``data_sha256(X, y)`` equals the
    hash of a fit on ``(X, y)``: compare it with
    ``ticket.meta["data"]["sha256"]`` to check that a ticket was found on
    one's data.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        Arrays of more than 2 dimensions are flattened to ``(n_samples, -1)``;
        dtypes other than float32 and float64 are converted to float64 (as
        the estimators' validation does).
    y : array-like, default=None
        Targets, as given; object arrays (e.g. string labels) are hashed as
        their ``str`` values.

    Returns
    -------
    digest : str
        Hex SHA-256 of ``"sklottery-data-v1"``, then for ``X`` and ``y``
        their dtype (``dtype.str``, byte order included) and shape, then
        their bytes in C order. The same data give the same hash; a changed
        value, row order, dtype or shape gives another.
    """
    h = hashlib.sha256(b"sklottery-data-v1\n")
    X = np.asarray(X)
    if X.ndim > 2:
        X = X.reshape(X.shape[0], -1)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    parts = [("X", X)]
    if y is not None:
        y = np.asarray(y)
        parts.append(("y", y.astype(str) if y.dtype.hasobject else y))
    for name, a in parts:
        h.update(f"{name}|{a.dtype.str}|{','.join(map(str, a.shape))}|".encode())
        _feed_rows(h, a)
    return h.hexdigest()


# --------------------------------------------------------------- JSON data
def _plain(value):
    """``value`` as JSON data (tuples as lists, numpy scalars as numbers), or raise TypeError."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise TypeError("a non-finite float")
        return float(value)
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v) for k, v in value.items()}
    raise TypeError(type(value).__name__)


def _record(value):
    """A round record as JSON data: non-finite floats become None, the rest as :func:`_plain`."""
    if isinstance(value, dict):
        return {str(k): _record(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_record(v) for v in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    try:
        return _plain(value)
    except TypeError:
        return repr(value)


def _split_plain(mapping):
    """``(kept, left_out)``: the JSON-able items, and the type name of the others."""
    kept, left_out = {}, {}
    for key, value in mapping.items():
        try:
            kept[key] = _plain(value)
        except TypeError:
            left_out[key] = type(value).__name__
    return kept, left_out


def _class_path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _import_class(path):
    module, _, name = path.rpartition(".")
    while module:
        try:
            obj = importlib.import_module(module)
        except ImportError:
            module, _, head = module.rpartition(".")
            name = f"{head}.{name}"
            continue
        for part in name.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            break
        return obj
    raise ImportError(f"cannot import {path!r}")


def _package_version(cls):
    top = importlib.import_module(cls.__module__.split(".")[0])
    version = getattr(top, "__version__", None)
    return version if isinstance(version, str) else None


def _versions():
    import sklottery

    return {"sklottery": sklottery.__version__, "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


# ------------------------------------------------------------------ tensors
def _to_numpy(t):
    """A CPU copy of ``t`` as numpy (the bits as an integer for dtypes numpy lacks)."""
    t = t.detach().cpu().contiguous()
    if t.dtype in _BIT_DTYPES:
        t = t.view(_BIT_DTYPES[t.dtype])
    return t.numpy().copy()


def _to_tensor(a, dtype_name):
    dtype = getattr(torch, dtype_name)
    t = torch.from_numpy(np.array(a, copy=True))
    return t.view(dtype) if dtype in _BIT_DTYPES else t


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def _encode_state(prefix, state, masks, arrays):
    for name, t in state.items():
        t = t.detach().cpu()
        if name in masks:
            t = t[masks[name]]
        arrays[prefix + name] = _to_numpy(t)


# --------------------------------------------------------------------- save
def _lottery_estimator(obj):
    """``(estimator, pipeline steps before it)``: a pipeline's last step is accepted."""
    from .base import BaseLotteryTicket

    if isinstance(obj, BaseLotteryTicket):
        return obj, None
    steps = getattr(obj, "steps", None)
    if steps and isinstance(steps[-1][1], BaseLotteryTicket):
        return steps[-1][1], [[name, _class_path(type(step))] for name, step in steps[:-1]]
    raise TypeError(f"save_ticket needs a fitted LotteryTicketClassifier or "
                    f"LotteryTicketRegressor (or a pipeline ending in one), got "
                    f"{type(obj).__name__}.")


def _task(est):
    task = {"n_features_in": int(est.n_features_in_)}
    if hasattr(est, "classes_"):
        task["kind"] = "classification"
        task["classes"] = _record(np.asarray(est.classes_).tolist())
    else:
        task["kind"] = "regression"
        task["n_outputs"] = int(est.n_outputs_)
        task["y_mean"] = _plain(np.asarray(est.y_mean_, dtype=np.float64))
        task["y_scale"] = _plain(np.asarray(est.y_scale_, dtype=np.float64))
    if est.input_shape is not None:
        task["input_shape"] = [int(s) for s in est.input_shape]
    return task


_PRUNING_PARAMS = ("pruning_rate", "output_pruning_rate", "conv_pruning_rate", "n_rounds",
                   "target_sparsity", "pruning_scope", "pruning_criterion",
                   "pruning_granularity", "structured_norm", "one_shot", "reinit",
                   "rewind_iteration", "max_epochs")


def save_ticket(estimator, path, include_trained=True):
    """Write the ticket a fitted estimator found to ``path`` (never pickle).

    Parameters
    ----------
    estimator : LotteryTicketClassifier or LotteryTicketRegressor
        Fitted (or a fitted pipeline ending in one: only the estimator is
        stored, the steps before it are named in the metadata).
    path : str or path-like
        The file to write (any name; ``.ticket`` by convention). Written to a
        temporary file first, then renamed: an existing file is replaced
        whole or not at all.
    include_trained : bool, default=True
        Store the trained weights of the final round too (without them the
        ticket is the masks, θ0 and θk: what retraining needs).

    Returns
    -------
    path : str
        The file written.

    See Also
    --------
    load_ticket : Reads it back, checked.
    """
    from sklearn.utils.validation import check_is_fitted

    from .modules import layer_kinds

    est, pipeline = _lottery_estimator(estimator)
    check_is_fitted(est, "net_")
    if getattr(est, "init_params_", None) is None:
        raise ValueError("The estimator has no θ0 (init_params_): it was dropped when its "
                         "pickle was loaded (see sklottery.persistence), so it has no "
                         "ticket to save.")
    module = est.net_.module_
    masks = {n: m.detach().cpu().bool() for n, m in est.masks_.items()}
    kinds = layer_kinds(module)
    trained = module.state_dict()
    k = int(est.rewind_iteration)
    rewind_stored = k > 0 and est.rewind_params_ is not est.init_params_

    arrays = {f"mask/{n}": np.packbits(m.numpy().ravel()) for n, m in masks.items()}
    _encode_state("init/", est.init_params_, masks, arrays)
    if rewind_stored:
        _encode_state("rewind/", est.rewind_params_, masks, arrays)
    if include_trained:
        _encode_state("trained/", trained, masks, arrays)

    params, params_left_out = _split_plain(est.get_params(deep=False))
    cls = est.net_.module
    kwargs = dict(est.net_.get_params_for("module"))
    module_kwargs, kwargs_left_out = _split_plain(kwargs)
    meta = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "estimator": {"class": _class_path(type(est)), "params": params,
                      "params_left_out": params_left_out, "pipeline": pipeline},
        "task": _task(est),
        "module": {"class": _class_path(cls), "package_version": _package_version(cls),
                   "kwargs": module_kwargs,
                   "tuple_kwargs": [n for n in module_kwargs if isinstance(kwargs[n], tuple)],
                   "kwargs_left_out": kwargs_left_out},
        "layers": [{"name": n, "shape": list(m.shape), "kind": kinds.get(n),
                    "kept": int(m.sum()), "size": int(m.numel())} for n, m in masks.items()],
        "tensors": [{"name": n, "dtype": _dtype_name(t.dtype), "shape": list(t.shape)}
                    for n, t in trained.items()],
        "rewind": {"iteration": k, "stored": rewind_stored,
                   "same_as": None if rewind_stored else "init"},
        "trained": {"stored": bool(include_trained), "round": int(est.n_rounds_)},
        "schedule": {"rounds": _record(list(est.rounds_)),
                     "pruning": {p: _record(getattr(est, p)) for p in _PRUNING_PARAMS},
                     "n_rounds": int(est.n_rounds_), "sparsity": float(est.sparsity_),
                     "stop_reason": est.stop_reason_},
        "data": {"sha256": getattr(est, "data_sha256_", None),
                 "definition": "sklottery.tickets.data_sha256 of the data fit validated"},
    }
    text = json.dumps(meta, allow_nan=False, ensure_ascii=False)
    integrity = {"algorithm": "sha256",
                 "meta": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                 "entries": {name: _array_sha256(a) for name, a in arrays.items()}}
    entries = {"meta": np.array(text), "integrity": np.array(json.dumps(integrity))}
    entries.update(arrays)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ticket-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **entries)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


# --------------------------------------------------------------------- load
@dataclasses.dataclass
class Ticket:
    """A ticket read back by :func:`load_ticket` (every entry checked).

    Attributes
    ----------
    masks : dict of str -> bool Tensor
        ``True`` where a weight is kept, per prunable weight.
    init_params : dict of str -> Tensor
        θ0 as a full state dict of the module; pruned positions are zero.
    rewind_params : dict of str -> Tensor
        θk, the rewind point (the same dict as ``init_params`` when
        ``rewind_iteration`` was 0).
    trained_params : dict of str -> Tensor or None
        The trained weights (pruned positions zero), or None when the
        ticket was saved with ``include_trained=False``.
    meta : dict
        The metadata (see :mod:`sklottery.tickets`).
    path : str
        The file it was read from.
    entries : tuple of str
        The arrays read, each checked against its SHA-256 checksum (the
        metadata is checked too).

    Examples
    --------
    Retrain the ticket with sklottery, once, from θ0 (``n_rounds=0``: the
    masks stay those of the ticket)::

        t = load_ticket("digits.ticket")
        est = t.estimator(n_rounds=0)
        est.fit(X, y, initial_masks=t.masks, initial_params=t.init_params)

    (``initial_params=t.rewind_params`` rewinds to θk instead.) The same by
    hand: ``LotteryTicketClassifier(hidden_layer_sizes=..., n_rounds=0).fit(
    X, y, initial_masks=t.masks, initial_params=t.init_params)``.
    """

    masks: dict
    init_params: dict
    rewind_params: dict
    trained_params: dict | None
    meta: dict
    path: str | None = None
    entries: tuple = ()

    @property
    def data_sha256(self):
        """The SHA-256 of the data the ticket was found on (None if not recorded)."""
        return self.meta["data"]["sha256"]

    def density(self):
        """Fraction of kept weights per prunable layer, and ``'total'``.

        Returns
        -------
        density : dict of str -> float
        """
        out = {n: float(m.sum()) / m.numel() for n, m in self.masks.items()}
        kept = sum(int(m.sum()) for m in self.masks.values())
        out["total"] = kept / max(1, sum(m.numel() for m in self.masks.values()))
        return out

    def _warn_version(self, what, names):
        now = _versions()
        differ = [f"{n} {self.meta['versions'].get(n)} (now {now[n]})" for n in names
                  if self.meta["versions"].get(n) != now[n]]
        if differ:
            warnings.warn(f"{os.path.basename(self.path or 'the ticket')} was written with "
                          f"{', '.join(differ)}: {what}", UserWarning, stacklevel=3)

    def module(self, weights=None, module_class=None):
        """The ticket as a plain torch module, pruned in ``torch.nn.utils.prune`` style.

        Parameters
        ----------
        weights : {'trained', 'init', 'rewind'}, default=None
            The weights loaded: the trained ones (None: when stored, else θ0),
            θ0 or θk; pruned positions are zero.
        module_class : nn.Module subclass, default=None
            The class to build instead of the recorded one (for a class that
            cannot be imported by its recorded path, e.g. one defined in a
            script).

        Returns
        -------
        module : torch.nn.Module
            Built from ``meta["module"]`` (class and kwargs), on the CPU, in
            eval mode; every prunable weight reparametrised by
            :func:`torch.nn.utils.prune.custom_from_mask` (``weight_orig``
            and a ``weight_mask`` buffer), so plain-torch training keeps the
            mask. Warns when the module class's package (sklottery for the
            built-in modules) has another version than when the ticket was
            written: the class's code may differ (names and shapes are still
            checked by ``load_state_dict``).
        """
        import torch.nn.utils.prune as torch_prune

        if weights is None:
            weights = "init" if self.trained_params is None else "trained"
        states = {"trained": self.trained_params, "init": self.init_params,
                  "rewind": self.rewind_params}
        if weights not in states:
            raise ValueError(f"weights must be 'trained', 'init' or 'rewind', got {weights!r}.")
        if states[weights] is None:
            raise ValueError("The ticket was saved without its trained weights "
                             "(include_trained=False): use weights='init' or 'rewind'.")
        spec = self.meta["module"]
        if spec["kwargs_left_out"]:
            raise ValueError(f"The module's arguments {sorted(spec['kwargs_left_out'])} were "
                             "not JSON data and are not in the ticket: build the module "
                             "yourself and load ticket.trained_params into it.")
        if module_class is None:
            try:
                module_class = _import_class(spec["class"])
            except ImportError:
                raise ImportError(f"The ticket's module class {spec['class']!r} cannot be "
                                  "imported here: pass module_class=...") from None
            version = spec.get("package_version")
            current = _package_version(module_class)
            if version != current:
                warnings.warn(f"The ticket's module {spec['class']} was saved with version "
                              f"{version} of its package, this is {current}: its code may "
                              "differ.", UserWarning, stacklevel=2)
        kwargs = dict(spec["kwargs"])
        for name in spec.get("tuple_kwargs", ()):
            kwargs[name] = tuple(kwargs[name])
        with torch.random.fork_rng(devices=[]):  # the global RNG stays untouched
            module = module_class(**kwargs)
        module.load_state_dict(states[weights])
        layers = dict(module.named_modules())
        for name, mask in self.masks.items():
            owner, _, attr = name.rpartition(".")
            torch_prune.custom_from_mask(layers[owner], attr, mask.clone())
        return module.eval()

    def estimator(self, **overrides):
        """An unfitted estimator with the recorded settings, to retrain the ticket.

        Parameters
        ----------
        **overrides
            Parameters to set instead of the recorded ones (e.g.
            ``n_rounds=0`` to train the ticket once, ``device='cpu'``).
            Parameters that were not JSON data (``meta["estimator"]
            ["params_left_out"]``) take their defaults, except a module class,
            which is restored from ``meta["module"]``.

        Returns
        -------
        estimator : LotteryTicketClassifier or LotteryTicketRegressor
            Fit it with ``initial_masks=self.masks`` and ``initial_params=
            self.init_params`` (or ``self.rewind_params``). Warns when the
            ticket was written by another sklottery or torch version: the
            retrained network need not equal the recorded run bit for bit
            (random streams, kernels, defaults may differ).
        """
        spec = self.meta["estimator"]
        cls = _import_class(spec["class"])
        params = dict(spec["params"])
        if "module" in spec["params_left_out"]:
            params["module"] = _import_class(self.meta["module"]["class"])
        params.update(overrides)
        self._warn_version("a retrained ticket need not match the recorded run bit for bit.",
                           ("sklottery", "torch"))
        return cls(**params)


def _fail(path, message, entries=()):
    raise TicketFileError(f"{path}: {message}", entries=entries, filename=path)


def _read_text(path, z, name):
    try:
        a = z[name]
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError) as exc:
        _fail(path, f"the entry {name!r} cannot be read ({exc}): the file is corrupt.", [name])
    if a.dtype.kind != "U" or a.ndim != 0:
        _fail(path, f"the entry {name!r} is not text: not a ticket file.", [name])
    return str(a[()])


def load_ticket(path):
    """Read a ticket file written by :func:`save_ticket`, after checking every entry.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ticket : Ticket

    Raises
    ------
    FileNotFoundError
        No such file.
    TicketFileError
        A ``ValueError`` naming the file and the problem: not a zip archive or
        not a ticket (no ticket metadata); a format version this sklottery
        does not read (newer: upgrade sklottery); an entry that cannot be read
        (a damaged zip member); an entry (or the metadata) whose SHA-256
        differs from the checksum stored with it, an entry missing or one not
        covered by the checksums (``entries`` names them); entries
        inconsistent with the metadata (shapes, counts).

    Notes
    -----
    Nothing in the file is executed: it is read with
    ``numpy.load(allow_pickle=False)`` and ``json``. A ticket written by
    another sklottery, torch or numpy version loads the same: the arrays and
    metadata are exact. What can differ is what is rebuilt from them:
    :meth:`Ticket.module` builds the recorded class from the code installed
    now (it warns when the class's package version differs), and
    retraining (:meth:`Ticket.estimator`) with another sklottery or torch
    need not repeat the recorded run bit for bit (it warns).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head != _ZIP_MAGIC:
        _fail(path, "not a ticket file (not a zip archive as numpy.savez writes"
                    + ("; it looks like a pickle: save a ticket with "
                       "sklottery.tickets.save_ticket" if head[:1] == b"\x80" else "") + ").")
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        _fail(path, f"not a readable ticket file ({exc}).")
    with z:
        return _read(path, z)


def _read(path, z):
    names = list(z.files)
    if "meta" not in names or "integrity" not in names:
        _fail(path, "not a ticket file (no 'meta' and 'integrity' entries).")
    text = _read_text(path, z, "meta")
    try:
        integrity = json.loads(_read_text(path, z, "integrity"))
        digests = dict(integrity["entries"])
        meta_digest = integrity["meta"]
    except (ValueError, KeyError, TypeError):
        _fail(path, "the 'integrity' entry is damaged: its checksums cannot be read.",
              ["integrity"])
    meta_ok = hashlib.sha256(text.encode("utf-8")).hexdigest() == meta_digest
    try:
        meta = json.loads(text)
        if not isinstance(meta, dict):
            raise ValueError("not an object")
    except ValueError:
        if not meta_ok:
            _fail(path, "the metadata does not match its SHA-256 checksum: the file was "
                        "altered or corrupted after it was written.", ["meta"])
        _fail(path, "the 'meta' entry is not JSON: not a ticket file.")
    if meta.get("format") != _FORMAT_NAME:
        _fail(path, f"not a ticket file (format {meta.get('format')!r}, expected "
                    f"{_FORMAT_NAME!r}).")
    version = meta.get("format_version")
    if version not in _READABLE:
        if isinstance(version, int) and not isinstance(version, bool) \
                and version > FORMAT_VERSION:
            _fail(path, f"ticket format version {version} is newer than the versions this "
                        f"sklottery ({_versions()['sklottery']}) reads "
                        f"({', '.join(map(str, _READABLE))}): upgrade sklottery to load it.")
        _fail(path, f"unknown ticket format version {version!r} (this sklottery reads "
                    f"{', '.join(map(str, _READABLE))}).")
    bad = [] if meta_ok else ["meta"]
    arrays = {}
    for name in names:
        if name in ("meta", "integrity"):
            continue
        if name not in digests:
            bad.append(f"{name} (not covered by the checksums)")
            continue
        try:
            a = z[name]
        except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError) as exc:
            bad.append(f"{name} (cannot be read: {exc})")
            continue
        if _array_sha256(a) != digests[name]:
            bad.append(name)
        else:
            arrays[name] = a
    bad += [f"{name} (missing)" for name in digests if name not in names]
    if bad:
        _fail(path, f"the SHA-256 check failed for {len(bad)} "
                    f"entr{'y' if len(bad) == 1 else 'ies'}: {', '.join(bad)}. The file was "
                    "altered or corrupted after it was written; nothing was loaded.",
              [b.split(" (")[0] for b in bad])
    return _build(path, meta, arrays)


def _state(path, meta, arrays, prefix, masks):
    state = {}
    for spec in meta["tensors"]:
        name, shape = spec["name"], tuple(spec["shape"])
        key = prefix + name
        if key not in arrays:
            _fail(path, f"the entry {key!r} is missing.", [key])
        a = arrays[key]
        if name in masks:
            mask = masks[name].numpy()
            if a.ndim != 1 or a.size != int(mask.sum()):
                _fail(path, f"{key!r} holds {a.size} values for {int(mask.sum())} kept "
                            "weights.", [key])
            full = np.zeros(shape, dtype=a.dtype)
            full[mask] = a
            a = full
        elif tuple(a.shape) != shape:
            _fail(path, f"{key!r} has shape {tuple(a.shape)}, the metadata says {shape}.",
                  [key])
        state[name] = _to_tensor(a, spec["dtype"])
    return state


def _build(path, meta, arrays):
    masks = {}
    try:
        for layer in meta["layers"]:
            name, shape = layer["name"], tuple(layer["shape"])
            key = f"mask/{name}"
            bits = arrays.get(key)
            n = int(np.prod(shape, dtype=np.int64))
            if bits is None or bits.dtype != np.uint8 or bits.size != (n + 7) // 8:
                _fail(path, f"the mask entry {key!r} is missing or has the wrong size.", [key])
            masks[name] = torch.from_numpy(
                np.unpackbits(bits, count=n).astype(bool).reshape(shape))
        init = _state(path, meta, arrays, "init/", masks)
        rewind = (_state(path, meta, arrays, "rewind/", masks) if meta["rewind"]["stored"]
                  else init)
        trained = (_state(path, meta, arrays, "trained/", masks)
                   if meta["trained"]["stored"] else None)
    except (KeyError, TypeError) as exc:
        _fail(path, f"the metadata lacks {exc}: not a complete ticket.")
    return Ticket(masks=masks, init_params=init, rewind_params=rewind,
                  trained_params=trained, meta=meta, path=path, entries=tuple(arrays))
