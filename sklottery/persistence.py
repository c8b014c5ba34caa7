"""Pickling a fitted estimator: every weight once, checked on load.

**Saved size.** A fitted estimator holds its network, θ0 (``init_params_``),
the rewind point, a checkpoint of the last round and, in the skorch net, the
optimizer's state: five or so dense copies of the weights. When pickled
(``pickle``, ``joblib.dump``, ``copy.deepcopy``),
:func:`pack_estimator_state` stores instead

* the prunable weights as their surviving values plus bit-packed masks
  (:func:`numpy.packbits`), other tensors (biases, buffers) in full;
* θ0 as the seed it was drawn from (``torch.manual_seed(_seeds['init'])``
  before the module is built, as in the estimator's initialisation) and a
  SHA-256 checksum; on load it is regenerated and checked. When it cannot be
  regenerated (``fit(initial_params=...)``, a module whose initialisation
  does not follow the seed) the save-time check sees it and θ0 is stored in
  full;
* the checkpoint's trained state as a reference to the network when it is
  the same (bit for bit), its rewind and start states as references to θ0 /
  ``rewind_params_`` when they are those;
* no optimizer state: the trainer builds a fresh optimizer every round.

What is *not* regenerated and therefore stored in full: θk of late
rewinding (``rewind_iteration > 0``), θ0 that did not come from the seed,
``history_`` (``record_history``), the RNG states. What is stored lossily: the
checkpoint's *start* state when it is not θ0/θk (``reinit`` other than
``'rewind'``) is kept at the surviving positions only, the only ones the next
prune reads (``pruning_criterion='magnitude_increase'`` ranks kept weights).
If θ0 does not regenerate bit for bit on load (another torch version, a
changed module class), the load warns, drops ``init_params_`` (and
``rewind_params_`` when it was θ0) and the checkpoint: predictions are
unaffected, a ``warm_start`` fit starts over.

**Integrity.** The packed state carries a SHA-256 checksum of every entry it
stores (each layer's surviving weights and mask bits, the other tensors, θ0
or its seed, the rewind point, the checkpoint) and of every plain-data
attribute beside it (``rounds_``, ``history_``, ``classes_``, the
checkpoint's RNG state, the parameters). :func:`open_packed_state` checks
them on load before anything is used: a file altered or corrupted after it
was written raises :class:`~sklottery.exceptions.PickleIntegrityError`
naming the entries that differ and, when the callers' frames show it, the
file. Pickles of format 1 (before the checksum) load unverified, with a
warning.

The fast ``predict`` of a pruned network is :mod:`sklottery.inference`.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import pickle
import sys
import warnings
from dataclasses import fields, is_dataclass

import numpy as np
import torch
from torch import nn

from .training import MaskCallback
from ._utils import module_device, user_stacklevel
from .exceptions import PickleIntegrityError

__all__ = [
    "pack_estimator_state",
    "open_packed_state",
    "unpack_estimator_state",
    "PickleIntegrityError",
    "pack_mask",
    "unpack_mask",
    "state_checksum",
]


_PACKED = "_sklottery_packed"
#: 1: the packed weights; 2: the same with an integrity record (SHA-256 of every entry)
_FORMAT = 2
_FORMATS = (1, 2)


def pack_mask(mask):
    """A bool tensor as ``(shape, bits)``: :func:`numpy.packbits` of its flat values."""
    m = mask.detach().cpu().numpy().astype(bool, copy=False)
    return tuple(m.shape), np.packbits(m.ravel())


def unpack_mask(packed, device="cpu"):
    """Inverse of :func:`pack_mask`."""
    shape, bits = packed
    n = int(np.prod(shape, dtype=np.int64))
    flat = np.unpackbits(np.asarray(bits, dtype=np.uint8), count=n).astype(bool)
    return torch.from_numpy(flat.reshape(shape)).to(device)


def _to_array(t):
    """A CPU copy of ``t`` as a numpy array (a CPU tensor for dtypes numpy lacks)."""
    t = t.detach().cpu()
    try:
        return t.numpy().copy()
    except TypeError:  # e.g. bfloat16
        return t.clone()


def _from_array(a, dtype, device):
    t = a.clone() if torch.is_tensor(a) else torch.from_numpy(np.array(a))
    return t.to(device=device, dtype=dtype)


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def _as_dtype(name):
    return getattr(torch, name)


def _device_tag(t):
    return "cpu" if t.device.type == "cpu" else "device"


def _restore_device(tag, device):
    """Where a stored tensor goes back to: the CPU if it was there, else the network's device."""
    return torch.device("cpu") if tag == "cpu" else device


def _zeros_outside(t, mask):
    """Whether every entry of ``t`` outside ``mask`` is +0.0 (bit for bit)."""
    if not t.is_floating_point():
        return False
    out = t.detach().cpu()[~mask.cpu()]
    return bool((out == 0).all()) and not bool(torch.signbit(out).any())


def _encode_tensor(t, mask=None, mask_key=None, lossy=False):
    """One tensor: survivors under ``mask`` (when exact, or ``lossy``) or in full."""
    entry = {"dtype": _dtype_name(t.dtype), "shape": tuple(t.shape), "device": _device_tag(t)}
    if (mask is not None and tuple(mask.shape) == tuple(t.shape)
            and t.is_floating_point() and (lossy or _zeros_outside(t, mask))):
        entry["mask"] = mask_key
        entry["values"] = _to_array(t.detach().cpu()[mask.cpu()])
    else:
        entry["data"] = _to_array(t)
    return entry


def _decode_tensor(name, entry, masks, device):
    dtype = _as_dtype(entry["dtype"])
    dev = _restore_device(entry["device"], device)
    if "data" in entry:
        return _from_array(entry["data"], dtype, dev)
    mask = masks[entry["mask"]][name].to(dev)
    out = torch.zeros(entry["shape"], dtype=dtype, device=dev)
    out[mask] = _from_array(entry["values"], dtype, dev)
    return out


def _encode_state(state, masks=None, mask_key=None, lossy=False):
    masks = masks or {}
    return {k: _encode_tensor(v, masks.get(k), mask_key, lossy) for k, v in state.items()}


def _decode_state(encoded, masks, device):
    return {k: _decode_tensor(k, e, masks, device) for k, e in encoded.items()}


def state_checksum(state):
    """SHA-256 of a state dict: names, dtypes, shapes and bytes, in order."""
    h = hashlib.sha256()
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _same_bits(a, b):
    if a.keys() != b.keys():
        return False
    for k, x in a.items():
        y = b[k]
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        x, y = x.detach().cpu().contiguous(), y.detach().cpu().contiguous()
        if x.numel() and not torch.equal(x.reshape(-1).view(torch.uint8),
                                         y.reshape(-1).view(torch.uint8)):
            return False
    return True


def _regenerate_init(net, seed):
    """θ0 as the estimator drew it: the module built right after ``manual_seed(seed)``.

    Built where the estimator builds it, on torch's default device (the CPU
    random stream); callers move the result to the device it is stored for.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        module = net.module(**net.get_params_for("module"))
    return module.state_dict()


def _skeleton_module(module):
    """A deep copy of ``module`` whose parameters and buffers are empty tensors."""
    memo = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(torch.empty(0, dtype=p.dtype, device=p.device),
                                   requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = torch.empty(0, dtype=b.dtype, device=b.device)
    return copy.deepcopy(module, memo)


def _fill_module(module, state):
    """Put ``state``'s tensors into a skeleton module (tied parameters stay tied)."""
    new_params = {}
    for name, value in state.items():
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name)
        if attr in owner._parameters and owner._parameters[attr] is not None:
            old = owner._parameters[attr]
            if id(old) not in new_params:
                new_params[id(old)] = nn.Parameter(value, requires_grad=old.requires_grad)
            owner._parameters[attr] = new_params[id(old)]
        elif attr in owner._buffers:
            owner._buffers[attr] = value
        else:  # pragma: no cover - state_dict names are parameters or buffers
            raise KeyError(f"{name} is neither a parameter nor a buffer of the module.")


def _shallow(obj, subs):
    """A new ``type(obj)`` sharing ``obj``'s attributes, with ``subs`` (id -> object) swapped."""
    new = object.__new__(type(obj))
    new.__dict__.update({k: subs.get(id(v), v) for k, v in vars(obj).items()})
    return new


def _swap_callbacks(callbacks, subs):
    if not isinstance(callbacks, list):
        return callbacks
    out = []
    for item in callbacks:
        if isinstance(item, tuple) and len(item) == 2:
            out.append((item[0], subs.get(id(item[1]), item[1])))
        else:
            out.append(subs.get(id(item), item))
    return out


def _skeleton_net(net, rewind):
    """The skorch net without weights or optimizer state (and its mask callbacks' masks).

    Returns ``(net, subs, captured)``: ``subs`` maps the ids of the original
    net and mask callbacks to their stand-ins; ``captured`` names what each
    mask callback's θk snapshot was (``'rewind'`` or None).
    """
    subs, captured = {}, {}
    for name, cb in list(getattr(net, "callbacks_", None) or []):
        if isinstance(cb, MaskCallback) and id(cb) not in subs:
            stand_in = _shallow(cb, {})
            snap = getattr(cb, "captured_", None)
            if snap is not None and snap is rewind:  # θk: stored once, as rewind_params_
                captured[name] = "rewind"
                stand_in.captured_ = None
            stand_in.masks = None
            subs[id(cb)] = stand_in
    skel = _shallow(net, {})
    d = skel.__dict__
    d.pop("_hook_cache", None)
    d["module_"] = _skeleton_module(net.module_)
    if "optimizer_" in d:
        d["optimizer_"] = None
    for key in ("callbacks", "callbacks_"):
        if key in d:
            d[key] = _swap_callbacks(d[key], subs)
    subs[id(net)] = skel
    return skel, subs, captured


def _encode_checkpoint(ckpt, est, module_state):
    """The :class:`~sklottery.base.RoundState` without duplicated weights."""
    if not is_dataclass(ckpt):
        return ckpt, None
    names = {f.name for f in fields(ckpt)}
    refs = {"init_params_": getattr(est, "init_params_", None),
            "rewind_params_": getattr(est, "rewind_params_", None)}
    enc = {}
    stand_in = copy.copy(ckpt)
    masks = getattr(ckpt, "masks", None)
    if "masks" in names and isinstance(masks, dict):
        if masks is est.masks_:
            enc["masks"] = "masks_"
        else:
            enc["masks"] = {k: pack_mask(v) for k, v in masks.items()}
            enc["masks_device"] = {k: _device_tag(v) for k, v in masks.items()}
        stand_in.masks = None
    mask_key = "masks_" if enc.get("masks") == "masks_" else "checkpoint"
    use_masks = masks if isinstance(masks, dict) else None
    for field in ("rewind", "start", "trained"):
        value = getattr(ckpt, field, None) if field in names else None
        if not isinstance(value, dict):
            continue
        ref = next((k for k, v in refs.items() if v is not None and value is v), None)
        if ref is None and field == "start" and value is getattr(ckpt, "rewind", None):
            ref = "rewind"
        if ref is None and field == "trained" and _same_bits(value, module_state):
            ref = "module"
        if ref is not None:
            enc[field] = ("ref", ref)
        else:
            enc[field] = ("state", _encode_state(value, use_masks, mask_key,
                                                 lossy=(field == "start")))
        setattr(stand_in, field, None)
    return stand_in, enc


# ------------------------------------------------------------ integrity
class _Unhashable(TypeError):
    """A value :func:`_feed` has no canonical byte form for."""


_MAX_DEPTH = 64


def _feed(h, v, depth=0):
    """Feed a canonical byte form of plain data ``v`` (tagged by type) into ``h``.

    Handles what a packed state and an estimator's fitted attributes are made
    of: None, numbers, strings, bytes, numpy arrays and scalars, tensors,
    ``torch.Generator`` (its state), lists, tuples, dicts (in their order,
    which pickling keeps), dataclasses, classes and functions (by qualified
    name), torch dtypes and devices. Anything else raises :class:`_Unhashable`.
    """
    if depth > _MAX_DEPTH:
        raise _Unhashable("nested too deeply")
    if v is None:
        h.update(b"N;")
    elif isinstance(v, np.generic):  # before float/int: np.float64 is a float
        h.update(f"G{v.dtype.str}:".encode())
        _feed(h, np.asarray(v), depth + 1)
    elif isinstance(v, bool):
        h.update(b"B1;" if v else b"B0;")
    elif isinstance(v, int):
        h.update(f"I{v};".encode())
    elif isinstance(v, float):
        h.update(f"F{v!r};".encode())
    elif isinstance(v, complex):
        h.update(f"C{v!r};".encode())
    elif isinstance(v, str):
        b = v.encode("utf-8", "surrogatepass")
        h.update(f"S{len(b)}:".encode())
        h.update(b)
    elif isinstance(v, (bytes, bytearray)):
        h.update(f"Y{len(v)}:".encode())
        h.update(bytes(v))
    elif isinstance(v, np.ndarray):
        if v.dtype.hasobject:
            h.update(f"O{v.shape}:".encode())
            for item in v.ravel(order="C").tolist():
                _feed(h, item, depth + 1)
        else:  # the array's memory itself, not a copy
            a = np.ascontiguousarray(v).reshape(-1).view(np.uint8)
            h.update(f"A{v.dtype.str}{v.shape}{a.size}:".encode())
            h.update(a)
    elif isinstance(v, torch.Tensor):
        if v.layout != torch.strided or v.is_quantized:
            raise _Unhashable(f"a {v.layout} tensor")
        t = v.detach().cpu().contiguous()
        a = t.reshape(-1).view(torch.uint8).numpy() if t.numel() else np.empty(0, np.uint8)
        h.update(f"T{t.dtype}{tuple(t.shape)}{a.size}:".encode())
        h.update(a)
    elif isinstance(v, torch.Generator):
        h.update(f"R{v.device.type}:".encode())
        _feed(h, v.get_state(), depth + 1)
    elif isinstance(v, (list, tuple)):
        h.update(f"{'L' if isinstance(v, list) else 'U'}{len(v)}:".encode())
        for item in v:
            _feed(h, item, depth + 1)
    elif isinstance(v, dict):
        h.update(f"D{len(v)}:".encode())
        for k, item in v.items():
            _feed(h, k, depth + 1)
            _feed(h, item, depth + 1)
    elif is_dataclass(v) and not isinstance(v, type):
        h.update(f"K{type(v).__module__}.{type(v).__qualname__}:".encode())
        for f in fields(v):
            _feed(h, f.name, depth + 1)
            _feed(h, getattr(v, f.name), depth + 1)
    elif isinstance(v, (torch.dtype, torch.device)):
        h.update(f"Q{v};".encode())
    elif isinstance(v, type) or callable(v) and hasattr(v, "__qualname__"):
        h.update(f"P{getattr(v, '__module__', '')}.{v.__qualname__};".encode())
    else:
        raise _Unhashable(type(v).__name__)


def _sha256(value):
    h = hashlib.sha256()
    _feed(h, value)
    return h.digest()


def _digest_or_none(value):
    try:
        return _sha256(value)
    except (_Unhashable, RecursionError):
        return None


def _payload_entries(packed):
    """The checked entries of a packed payload: one per layer of the per-layer dicts."""
    out = {}
    for key, value in packed.items():
        if key == "integrity":
            continue
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            for name, item in value.items():
                out[f"{key}[{name!r}]"] = item
        else:
            out[key] = value
    return out


def _payload_digests(packed):
    return {name: _digest_or_none(value) for name, value in _payload_entries(packed).items()}


def _attribute_digests(state):
    """Digests of the attributes beside the payload that are plain data.

    The constructor parameters (no leading or trailing underscore) form one
    entry, ``'parameters'``; fitted and private attributes one entry each
    (``'attribute rounds_'``). Attributes without a canonical byte form (the
    skorch net's skeleton, the trainer, a user callback object) are not
    covered; the weights they held are in the payload.
    """
    out, params = {}, {}
    for key, value in state.items():
        if not isinstance(key, str):
            continue
        if key.startswith("_") or key.endswith("_"):
            digest = _digest_or_none(value)
            if digest is not None:
                out[f"attribute {key}"] = digest
        elif _digest_or_none(value) is not None:  # parameters are small
            params[key] = value
    out["parameters"] = _sha256(params)
    return out


def _integrity_record(state, packed):
    """SHA-256 digests of every payload entry and of the plain-data attributes."""
    return {"algorithm": "sha256", "payload": _payload_digests(packed),
            "attributes": _attribute_digests(state)}


_ENTRY_MEANING = {
    "format": "the packing format",
    "masks": "the pruning masks (packed bits)",
    "masks_device": "the masks' devices",
    "module": "the network's weights",
    "init": "θ0 (init_params_: its seed and checksum, or its values)",
    "rewind": "the rewind point (rewind_params_)",
    "mask_callbacks": "the mask callbacks' θk references",
    "checkpoint": "the last round's checkpoint",
    "integrity": "the checksum record itself",
    "parameters": "the estimator's parameters",
}


def _describe(entry):
    key = entry.split("[", 1)[0]
    meaning = _ENTRY_MEANING.get(key)
    return f"{entry} ({meaning})" if meaning else entry


def _corrupted(est, problems, detail=""):
    """The :class:`PickleIntegrityError` for ``problems`` (entry names)."""
    filename = _loading_file()
    where = f" in {filename!r}" if filename else ""
    raise PickleIntegrityError(
        f"The pickled {type(est).__name__}{where} was altered or corrupted after it was "
        f"saved: {', '.join(_describe(p) for p in problems)} "
        f"{'does' if len(problems) == 1 else 'do'} not match the SHA-256 checksum stored "
        f"with {'it' if len(problems) == 1 else 'them'}{detail}. Nothing was loaded; "
        "restore the file from a good copy or fit the estimator again.",
        entries=problems, filename=filename)


def _verify(est, state, packed):
    """Raise :class:`PickleIntegrityError` unless ``packed`` matches its integrity record."""
    record = packed.get("integrity")
    if (not isinstance(record, dict) or record.get("algorithm") != "sha256"
            or not isinstance(record.get("payload"), dict)
            or not isinstance(record.get("attributes"), dict)):
        _corrupted(est, ["integrity"], " (it is missing or unreadable)")
    problems = []
    for expected, found in ((record["payload"], _payload_digests(packed)),
                            (record["attributes"], _attribute_digests(state))):
        for name, digest in found.items():
            if name not in expected:
                problems.append(f"{name} [unexpected]")
            elif digest != expected[name]:
                problems.append(name)
        problems += [f"{name} [missing]" for name in expected if name not in found]
    if problems:
        _corrupted(est, problems)


def _file_name(obj):
    """The path of ``obj`` when it is a binary file open for reading; else None."""
    try:
        return _file_name_or_raise(obj)
    except Exception:  # noqa: BLE001 - an object that fails to answer is not our file
        return None


def _file_name_or_raise(obj):
    if isinstance(obj, (pickle.Unpickler, pickle._Unpickler)):
        name = getattr(obj, "filename", None)  # joblib's NumpyUnpickler
        if isinstance(name, (str, os.PathLike)):
            return os.path.abspath(os.fspath(name))
        obj = getattr(getattr(obj, "_file_read", None), "__self__", None)  # pickle._Unpickler
    if not isinstance(obj, io.IOBase) or not hasattr(obj, "name"):
        return None
    if obj.closed or not obj.readable() or isinstance(obj, io.TextIOBase):
        return None
    name = obj.name
    if not isinstance(name, (str, bytes, os.PathLike)):
        return None  # a file descriptor or an in-memory stream
    name = os.fsdecode(name)
    return os.path.abspath(name) if name else None


def _loading_file():
    """Best effort: the file whose unpickling called ``__setstate__``, or None.

    ``pickle`` hands ``__setstate__`` no file name, so the callers' frames are
    searched, past this module and ``__setstate__``: frames of the unpickling
    machinery (``pickle``, joblib) and the first frame outside it (the code
    that called ``pickle.load(f)`` or ``joblib.load(path)``), for exactly one
    binary file open for reading, or an unpickler that knows its file
    (joblib's). ``copy.deepcopy`` and ``pickle.loads`` have no file: None.
    This function never raises.
    """
    try:
        here = os.path.abspath(__file__)
        frame = sys._getframe(1)
        for _ in range(100):
            if frame is None:
                return None
            module = frame.f_globals.get("__name__", "") or ""
            if module == "copy":
                return None  # deepcopy: no file
            ours = (frame.f_code.co_name == "__setstate__"
                    or os.path.abspath(frame.f_code.co_filename) == here)
            if not ours:
                found = {n for v in list(frame.f_locals.values())
                         if (n := _file_name(v)) is not None}
                if len(found) == 1:
                    return found.pop()
                machinery = module in ("pickle", "copyreg") or module.split(".")[0] == "joblib"
                if not machinery:
                    return None  # the caller of the unpickler: no (single) file there
            frame = frame.f_back
    except Exception:  # noqa: BLE001 - naming the file must never fail the load
        return None
    finally:
        frame = None
    return None


def open_packed_state(est, state):
    """Take the packed entry out of an unpickled state and check it; before anything is set.

    Called by ``BaseLotteryTicket.__setstate__`` with the state it received.
    Format 2 payloads carry a SHA-256 checksum of every entry (each layer's
    weights and mask bits, θ0 or its seed, the rewind point, the checkpoint)
    and of the estimator's plain-data attributes (``rounds_``, ``history_``,
    ``classes_``, the parameters ...); a mismatch raises
    :class:`~sklottery.exceptions.PickleIntegrityError` naming the entries and,
    when it can be found (see :func:`_loading_file`), the file. Format 1
    payloads (saved before the checksum existed) load unverified, with a
    warning. The checksum detects corruption and accidental edits, not a
    deliberate forgery: unpickling an untrusted file runs arbitrary code
    anyway.

    Parameters
    ----------
    est : BaseLotteryTicket
        The estimator being unpickled (its state is not set yet).
    state : dict
        The state it received; it is not modified.

    Returns
    -------
    state : dict
        ``state`` without the packed entry (a new dict when there was one).
    packed : dict or None
        The packed entry for :func:`unpack_estimator_state`; None for an
        unfitted estimator.
    """
    if not isinstance(state, dict) or _PACKED not in state:
        return state, None
    state = dict(state)
    packed = state.pop(_PACKED)
    fmt = packed.get("format") if isinstance(packed, dict) else None
    if fmt not in _FORMATS:
        raise ValueError(
            f"This estimator was pickled with an unknown sklottery packing format {fmt!r} "
            "(or the file is corrupted); load it with the sklottery version that saved it.")
    if fmt == 1:
        if "integrity" in packed:  # format 1 never had one: the format byte changed
            _corrupted(est, ["format"])
        warnings.warn(
            f"This {type(est).__name__} was pickled by an earlier sklottery, without "
            "integrity checksums: it is loaded unverified. Pickle it again to add them.",
            UserWarning, stacklevel=user_stacklevel())
        return state, packed
    _verify(est, state, packed)
    return state, packed


def pack_estimator_state(est, state):
    """The pickled state of a fitted estimator, without redundant copies of the weights.

    Called by ``BaseLotteryTicket.__getstate__`` with the state it is about to
    return (``__dict__`` itself or a copy: it is not modified); see the module
    docstring for what is stored how. Unfitted estimators' states are returned
    as they are.

    Parameters
    ----------
    est : BaseLotteryTicket
        The estimator being pickled.
    state : dict
        Its attributes.

    Returns
    -------
    state : dict
        A new dict: the fitted weights replaced by a ``'_sklottery_packed'``
        entry, the skorch net and trainer by stand-ins without weights.
    """
    state = dict(state)  # object.__getstate__ returns __dict__ itself: never modify that
    net = state.get("net_")
    masks = state.get("masks_")
    if net is None or not isinstance(masks, dict) or getattr(net, "module_", None) is None:
        return state
    module = net.module_
    module_state = module.state_dict()
    packed = {"format": _FORMAT,
              "masks": {k: pack_mask(v) for k, v in masks.items()},
              "masks_device": {k: _device_tag(v) for k, v in masks.items()},
              "module": _encode_state(module_state, masks, "masks_")}
    state["masks_"] = None

    init = state.get("init_params_")
    if isinstance(init, dict):
        seeds = state.get("_seeds") or {}
        regenerated = None
        if "init" in seeds:
            try:
                regenerated = _regenerate_init(net, seeds["init"])
            except Exception:  # noqa: BLE001 - a module that cannot be rebuilt: store θ0
                regenerated = None
        if regenerated is not None and _same_bits(regenerated, init):
            packed["init"] = ("seed", int(seeds["init"]), state_checksum(init),
                              {k: _device_tag(v) for k, v in init.items()})
        else:
            packed["init"] = ("state", _encode_state(init))
        state["init_params_"] = None
    rewind = state.get("rewind_params_")
    if isinstance(rewind, dict):
        packed["rewind"] = (("ref", "init_params_") if rewind is init
                            else ("state", _encode_state(rewind)))
        state["rewind_params_"] = None

    skel, subs, captured = _skeleton_net(net, rewind)
    state["net_"] = skel
    packed["mask_callbacks"] = captured

    ckpt = state.get("_checkpoint")
    if ckpt is not None:
        state["_checkpoint"], packed["checkpoint"] = _encode_checkpoint(ckpt, est, module_state)
    packed["integrity"] = _integrity_record(state, packed)
    state[_PACKED] = packed
    return state


def unpack_estimator_state(est, packed):
    """Inverse of :func:`pack_estimator_state`, on an estimator whose state is set.

    Puts the weights back into the network, rebuilds a fresh optimizer,
    regenerates θ0 from its seed and checks it (warning and dropping θ0, the
    rewind point when it is θ0 and the checkpoint when it does not match),
    and restores the checkpoint and the mask callbacks' masks.

    Parameters
    ----------
    est : BaseLotteryTicket
        The estimator being unpickled, its other attributes already set.
    packed : dict
        The ``'_sklottery_packed'`` entry of its pickled state, as
        :func:`open_packed_state` returned it (checked).
    """
    if packed.get("format") not in _FORMATS:
        raise ValueError(
            f"This estimator was pickled with an unknown sklottery packing format "
            f"{packed.get('format')!r}; load it with the sklottery version that saved it.")
    net = est.net_
    # the skeleton network's (empty) parameters are on the device the network was on, or
    # on the one skorch mapped it to when loading (the CPU where CUDA is not available)
    device = module_device(net.module_)
    if device.type == "cuda" and not torch.cuda.is_available():  # pragma: no cover
        device = torch.device("cpu")
    masks = {k: unpack_mask(v, _restore_device(packed["masks_device"][k], device))
             for k, v in packed["masks"].items()}
    est.masks_ = masks
    module_state = _decode_state(packed["module"], {"masks_": masks}, device)
    _fill_module(net.module_, module_state)
    if getattr(net, "optimizer_", True) is None and hasattr(net, "initialize_optimizer"):
        net.initialize_optimizer()  # fresh, like every round's

    init_ok = True
    if "init" in packed:
        kind = packed["init"][0]
        if kind == "seed":
            _, seed, checksum, tags = packed["init"]
            try:
                regenerated = _regenerate_init(net, seed)
            except Exception:  # noqa: BLE001 - the module class cannot be built any more
                regenerated = None
            if regenerated is not None and state_checksum(regenerated) == checksum:
                est.init_params_ = {k: v.to(_restore_device(tags.get(k, "cpu"), device))
                                    for k, v in regenerated.items()}
            else:
                init_ok = False
                warnings.warn(
                    "θ0 (init_params_) did not regenerate bit for bit from its seed when "
                    "this estimator was loaded (another torch version, or a changed module "
                    "class?). Predictions are unaffected, but init_params_, the rewind "
                    "point and the checkpoint are dropped: a warm_start fit starts over.",
                    UserWarning, stacklevel=3)
                est.__dict__.pop("init_params_", None)
        else:
            est.init_params_ = _decode_state(packed["init"][1], {}, device)
    if "rewind" in packed:
        kind, value = packed["rewind"]
        if kind == "ref":
            if init_ok:
                est.rewind_params_ = est.init_params_
            else:
                est.__dict__.pop("rewind_params_", None)
        else:
            est.rewind_params_ = _decode_state(value, {}, device)

    for name, cb in list(getattr(net, "callbacks_", None) or []):
        if isinstance(cb, MaskCallback):  # disarmed between rounds: no masks to restore
            what = packed.get("mask_callbacks", {}).get(name)
            if what == "rewind":
                cb.captured_ = getattr(est, "rewind_params_", None)

    enc = packed.get("checkpoint")
    ckpt = getattr(est, "_checkpoint", None)
    if enc is not None and ckpt is not None:
        if not init_ok:
            est._checkpoint = None
            return
        if "masks" in enc:
            if enc["masks"] == "masks_":
                ckpt.masks = masks
            else:
                ckpt.masks = {k: unpack_mask(v, _restore_device(enc["masks_device"][k], device))
                              for k, v in enc["masks"].items()}
        refs = {"init_params_": getattr(est, "init_params_", None),
                "rewind_params_": getattr(est, "rewind_params_", None)}
        all_masks = {"masks_": masks, "checkpoint": ckpt.masks}
        for field in ("rewind", "start", "trained"):
            if field not in enc:
                continue
            kind, value = enc[field]
            if kind == "state":
                setattr(ckpt, field, _decode_state(value, all_masks, device))
            elif value == "module":
                setattr(ckpt, field, {k: v.detach().clone() for k, v in module_state.items()})
            elif value == "rewind":
                setattr(ckpt, field, ckpt.rewind)
            else:
                setattr(ckpt, field, refs[value])
