"""Pruned networks that pay off: small pickles and a fast ``predict``.

Two things an unstructured ticket should buy at deployment, and what this
module does for them:

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

**Predict time.** :func:`predict_outputs` (what the estimators' ``predict``
and ``predict_proba`` call) runs an *inference module* in chunks of rows.
For a dense network that is the network itself. For a sparse one it is
:func:`build_inference_module`: the compact network (units nothing reads
removed, units that read nothing folded into the next layer's bias, unread
input features of the MLP dropped), and every fully connected layer whose
density is at most :data:`SPARSE_MAX_DENSITY` computed as a sparse
product. The sparse product is :func:`torch.nn.functional.embedding_bag`
over the weight's CSR arrays, on activations kept transposed (features x
samples) through runs of fully connected layers and element-wise
activations: measured on this project's CPU it beats dense
``torch.nn.functional.linear``, where ``torch.sparse`` CSR/COO products do
not at the densities of a ticket (``benchmarks/bench_export.py``). The
module is cached per estimator (rebuilt when the network, its weights or
the masks change: refit, warm start) and never pickled.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import pickle
import sys
import threading
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, is_dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .training import MaskCallback, forward_chunks
from ._utils import user_stacklevel
from .exceptions import PickleIntegrityError
from .modules import MLP
from .pruning import compact_module

__all__ = [
    "SPARSE_MAX_DENSITY",
    "SPARSE_CHUNK",
    "SparseLinearT",
    "DenseLinearT",
    "TransposedRun",
    "build_inference_module",
    "inference_cache",
    "predict_outputs",
    "pack_estimator_state",
    "open_packed_state",
    "unpack_estimator_state",
    "PickleIntegrityError",
    "pack_mask",
    "unpack_mask",
    "state_checksum",
]

#: Fully connected layers with at most this fraction of non-zero weights are
#: computed as sparse products in :func:`build_inference_module` (on the CPU).
#: ``benchmarks/bench_export.py`` measures where the sparse product
#: (embedding_bag over CSR arrays, transposes included) stops beating dense
#: ``linear`` for a 784 -> 300 layer on 50 000 rows; set it from that
#: measurement on another machine (0 disables sparse products).
SPARSE_MAX_DENSITY = 0.1

#: Rows per block of the transposed sparse runs: a block's activations
#: (features x rows) stay in the CPU cache while the layers read them.
SPARSE_CHUNK = 256

#: Inputs of the MLP's first layer are dropped (a column gather before a
#: dense first layer) only when at least this fraction of them is unread.
#: Measured (784 -> 300, 50 000 rows in chunks of 8192, one thread): 162.9 ms
#: with every input; gather plus the narrower product 156.6 / 140.1 / 98.4 ms
#: with 90 / 75 / 50 % of the inputs kept.
MIN_DEAD_INPUT_FRACTION = 0.25

#: The outer chunk of :func:`predict_outputs` keeps every intermediate
#: activation below about this many floats, and has at most
#: ``_MAX_CHUNK_ROWS`` rows (``_MAX_CHUNK_ROWS_RUN`` for a module with a
#: :class:`TransposedRun`, which blocks its rows itself and shares its blocks
#: among threads once per call). Measured on LeNet-300-100, 50 000 rows: the
#: dense module took 188 ms in chunks of 8192 rows vs 238 ms in one chunk; the
#: sparse one (2 threads) 52 ms in one chunk vs 72 ms in chunks of 8192.
_MAX_CHUNK_FLOATS = 2 ** 24
_MAX_CHUNK_ROWS = 8192
_MAX_CHUNK_ROWS_RUN = 65536

#: Element-wise modules: they commute with transposing the activations.
#: (Dropout is the identity at inference and is dropped.)
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh,
                nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Identity, nn.Dropout)


# =========================================================== inference
class SparseLinearT(nn.Module):
    """A fully connected layer as a sparse product, on transposed activations.

    ``forward`` takes ``x`` of shape ``(in_features, n)`` and returns
    ``W @ x + b`` of shape ``(out_features, n)``. The weight is held as CSR
    arrays (row pointers, column indices, values of the non-zero weights) and
    the product is one :func:`torch.nn.functional.embedding_bag` call (sum of
    the rows of ``x`` that each output reads, weighted by the weights), a
    vectorised sparse kernel on the CPU.

    Parameters
    ----------
    weight : Tensor of shape (out_features, in_features)
        Dense weight; its exact zeros are dropped.
    bias : Tensor of shape (out_features,) or None
    """

    def __init__(self, weight, bias=None):
        super().__init__()
        weight = weight.detach()
        kept = weight != 0
        self.in_features = int(weight.shape[1])
        self.out_features = int(weight.shape[0])
        crow = torch.zeros(self.out_features + 1, dtype=torch.int64, device=weight.device)
        crow[1:] = kept.sum(dim=1).cumsum(0)
        self.register_buffer("crow", crow)  # CSR: row pointers, column indices, values
        self.register_buffer("col", torch.nonzero(kept)[:, 1].contiguous())
        self.register_buffer("values", weight[kept].contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().clone()[:, None])

    @property
    def nnz(self):
        """Number of stored (non-zero) weights."""
        return int(self.values.numel())

    def forward(self, x):
        out = F.embedding_bag(self.col, x, self.crow, mode="sum",
                              per_sample_weights=self.values, include_last_offset=True)
        if self.bias is not None:
            out += self.bias
        return out

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"nnz={self.nnz}")


class DenseLinearT(nn.Module):
    """A dense fully connected layer on transposed activations: ``W @ x + b``.

    Parameters
    ----------
    weight : Tensor of shape (out_features, in_features)
    bias : Tensor of shape (out_features,) or None
    """

    def __init__(self, weight, bias=None):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone()[:, None])

    def forward(self, x):
        if self.bias is None:
            return self.weight @ x
        return torch.addmm(self.bias, self.weight, x)

    def extra_repr(self):
        return f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}"


def _transpose(x):
    """``x.t().contiguous()`` for a 2-D ``x``, through torch's channels-last copy.

    Viewed as a ``(1, rows, features, 1)`` image, the transpose of ``x`` is its
    channels-last layout, and torch's kernel for that conversion is faster
    than the generic transposed copy (30.7 vs 36.1 ms for 50 000 x 784 in
    blocks of 256 rows, one thread; it also runs on several threads).
    """
    rows, features = x.shape
    y = x.reshape(1, rows, features, 1).contiguous(memory_format=torch.channels_last)
    return y.permute(0, 2, 3, 1).reshape(features, rows)


_POOL = None
_POOL_LOCK = threading.Lock()


def _thread_pool(workers):
    """A process-wide pool of at least ``workers`` threads, kept between calls."""
    global _POOL
    if _POOL is None or _POOL._max_workers < workers:
        old, _POOL = _POOL, ThreadPoolExecutor(workers, thread_name_prefix="sklottery-blocks")
        if old is not None:
            old.shutdown(wait=False)
    return _POOL


class TransposedRun(nn.Module):
    """A run of fully connected layers and element-wise activations, transposed.

    Equivalent to the ``nn.Sequential`` it replaces, for input of shape
    ``(..., features)``. Blocks of ``chunk`` rows are transposed once to
    ``(features, rows)``, go through every op in that layout
    (:class:`SparseLinearT`, :class:`DenseLinearT`, element-wise modules:
    an element-wise function does not care about the layout) and are
    transposed back at the end. On the CPU with several torch threads the
    blocks are shared among that many Python threads, each running its ops
    single-threaded (the transposes and small products do not parallelise
    inside torch); torch's thread setting is restored afterwards.

    Parameters
    ----------
    ops : list of nn.Module
    chunk : int, default=None
        Rows per block; None reads :data:`SPARSE_CHUNK`.
    """

    def __init__(self, ops, chunk=None):
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.chunk = SPARSE_CHUNK if chunk is None else int(chunk)

    def _block(self, x):
        h = _transpose(x)
        for op in self.ops:
            h = op(h)
        return h

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        c = self.chunk
        starts = list(range(0, x.shape[0], c))
        workers = min(torch.get_num_threads(), len(starts)) if x.device.type == "cpu" else 1
        first = self._block(x[:c])
        out = x.new_empty((x.shape[0], first.shape[0]))
        out[:c].copy_(first.t())
        rest = starts[1:]
        if workers <= 1:
            for s in rest:
                out[s:s + c].copy_(self._block(x[s:s + c]).t())
        else:
            grad = torch.is_grad_enabled()

            def work(i):
                with torch.set_grad_enabled(grad):
                    for s in rest[i::workers]:
                        out[s:s + c].copy_(self._block(x[s:s + c]).t())

            with _POOL_LOCK:  # one run at a time sets and restores torch's threads
                previous = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    list(_thread_pool(workers).map(work, range(workers)))
                finally:
                    torch.set_num_threads(previous)
        return out.reshape(*shape[:-1], out.shape[-1])


class _SelectColumns(nn.Module):
    """Keep the input columns ``index`` (the features the first layer reads)."""

    def __init__(self, index, n_features):
        super().__init__()
        self.register_buffer("index", index.clone())
        self.n_features = int(n_features)

    def forward(self, x):
        return x.index_select(-1, self.index)

    def extra_repr(self):
        return f"{self.index.numel()} of {self.n_features} features"


def _fold_constant_units(first, acts, second):
    """Fold units of ``first`` that read nothing into ``second``'s bias.

    A unit whose incoming weights are all zero outputs ``act(bias)``, a
    constant; its contribution ``second.weight[:, j] * act(bias_j)`` moves to
    ``second``'s bias and the unit is removed from both layers. Returns the
    new pair of ``nn.Linear`` layers (or the old ones when nothing is folded).
    """
    w1 = first.weight.detach()
    dead = ~(w1 != 0).any(dim=1)
    if not bool(dead.any()) or bool(dead.all()):
        return first, second
    keep = torch.nonzero(~dead).flatten()
    const = (first.bias.detach()[dead] if first.bias is not None
             else torch.zeros(int(dead.sum()), dtype=w1.dtype, device=w1.device))
    for act in acts:
        const = act(const)
    w2 = second.weight.detach()
    extra = w2[:, dead] @ const
    b2 = extra if second.bias is None else second.bias.detach() + extra
    new_first = nn.Linear(first.in_features, len(keep), bias=first.bias is not None)
    new_second = nn.Linear(len(keep), second.out_features, bias=True)
    with torch.no_grad():
        new_first.weight.copy_(w1[keep])
        if first.bias is not None:
            new_first.bias.copy_(first.bias.detach()[keep])
        new_second.weight.copy_(w2[:, keep])
        new_second.bias.copy_(b2)
    return new_first.to(w1.device), new_second.to(w1.device)


def _density(weight):
    return float((weight != 0).sum()) / max(1, weight.numel())


def _sparse_run(children, sparse_max_density, chunk):
    """Fold constant units of a run, then make it transposed if a layer is sparse."""
    children = [c for c in children if not isinstance(c, nn.Dropout)]
    linear_at = [i for i, c in enumerate(children) if isinstance(c, nn.Linear)]
    for a, b in zip(linear_at[:-1], linear_at[1:]):
        children[a], children[b] = _fold_constant_units(children[a], children[a + 1:b],
                                                        children[b])
    sparse = [isinstance(c, nn.Linear) and _density(c.weight) <= sparse_max_density
              for c in children]
    if not any(sparse):
        return children
    ops = []
    for child, is_sparse in zip(children, sparse):
        if isinstance(child, nn.Linear):
            cls = SparseLinearT if is_sparse else DenseLinearT
            ops.append(cls(child.weight, child.bias))
        elif type(child) is nn.ReLU:
            ops.append(nn.ReLU(inplace=True))  # its input is a fresh block of the run
        else:
            ops.append(child)
    return [TransposedRun(ops, chunk)]


def _rewrite_sequentials(module, sparse_max_density, chunk):
    """Replace the fully connected runs of every ``nn.Sequential`` in ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Sequential):
            new, run = [], []
            for sub in child:
                if isinstance(sub, nn.Linear) or (run and isinstance(sub, _ELEMENTWISE)):
                    run.append(sub)
                    continue
                if run:
                    new.extend(_sparse_run(run, sparse_max_density, chunk))
                    run = []
                _rewrite_sequentials(sub, sparse_max_density, chunk)
                new.append(sub)
            if run:
                new.extend(_sparse_run(run, sparse_max_density, chunk))
            setattr(module, name, nn.Sequential(*new))
        else:
            _rewrite_sequentials(child, sparse_max_density, chunk)
    return module


def _drop_unread_inputs(module):
    """MLP only: drop the input features its (dense) first layer never reads."""
    if not isinstance(module, MLP) or not isinstance(module.layers[0], nn.Linear):
        return module
    first = module.layers[0]
    read = (first.weight.detach() != 0).any(dim=0)
    n = read.numel()
    if float((~read).sum()) / n < MIN_DEAD_INPUT_FRACTION or not bool(read.any()):
        return module
    index = torch.nonzero(read).flatten()
    narrow = nn.Linear(len(index), first.out_features, bias=first.bias is not None)
    with torch.no_grad():
        narrow.weight.copy_(first.weight.detach()[:, index])
        if first.bias is not None:
            narrow.bias.copy_(first.bias.detach())
    narrow = narrow.to(first.weight.device)
    module.layers = nn.Sequential(_SelectColumns(index, n), narrow, *list(module.layers)[1:])
    return module


def build_inference_module(module, masks, sparse_max_density=None, chunk=None):
    """A copy of a pruned network that computes the same outputs faster.

    Steps, each exact up to float rounding (the order of the sums changes):

    1. :func:`sklottery.pruning.compact_module`: hidden units and filters
       whose outgoing weights are all pruned are removed (skipped for modules
       whose layers are not a chain);
    2. in every ``nn.Sequential``, runs of ``nn.Linear`` layers and
       element-wise activations are rewritten: a unit whose incoming weights
       are all pruned outputs a constant, which is folded into the next
       layer's bias; if a layer of the run has at most ``sparse_max_density``
       non-zero weights, the run becomes a :class:`TransposedRun` in which
       those layers are :class:`SparseLinearT` products;
    3. for the built-in MLP with a dense first layer, input features that no
       weight reads are dropped when they are at least
       :data:`MIN_DEAD_INPUT_FRACTION` of the inputs.

    Parameters
    ----------
    module : torch.nn.Module
        The trained network; its pruned weights are exactly zero.
    masks : dict of str -> bool Tensor
        Its masks (``True`` = kept).
    sparse_max_density : float, default=None
        Density up to which a fully connected layer is computed sparse;
        None reads :data:`SPARSE_MAX_DENSITY` (0 disables sparse products).
        Only on the CPU (the threshold is a CPU measurement); on other devices
        only steps 1 and 3 apply.
    chunk : int, default=None
        Rows per block of a :class:`TransposedRun`; None reads
        :data:`SPARSE_CHUNK`.

    Returns
    -------
    module : torch.nn.Module
        A new module in eval mode, without gradients; ``module`` and the
        global torch RNG are unchanged.
    """
    if sparse_max_density is None:
        sparse_max_density = SPARSE_MAX_DENSITY
    chunk = SPARSE_CHUNK if chunk is None else int(chunk)
    # new layers draw a throwaway initialisation: keep the global RNG untouched
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        try:
            small = compact_module(module, masks)
        except ValueError:  # not a chain of layers: keep every unit
            small = copy.deepcopy(module)
        small.eval()
        device = next((p.device for p in small.parameters()), torch.device("cpu"))
        density = float(sparse_max_density) if device.type == "cpu" else -1.0
        _rewrite_sequentials(small, density, chunk)
        _drop_unread_inputs(small)
    small.eval()
    for p in small.parameters():
        p.requires_grad_(False)
    return small


def _is_dense(masks):
    return all(bool(m.all()) for m in masks.values())


def _chunk_rows(module, n_features, device):
    """Rows per forward pass so that no activation exceeds ``_MAX_CHUNK_FLOATS``.

    The input does not count: its chunks are views of ``X``.
    """
    widest = [1]

    def record(mod, inputs, output):
        if torch.is_tensor(output) and output.dim() >= 1 and output.shape[0] == 1:
            widest.append(int(output[0].numel()))

    hooks = [m.register_forward_hook(record) for m in module.modules()]
    try:
        forward_chunks(module, torch.zeros(1, int(n_features), device=device))
    finally:
        for h in hooks:
            h.remove()
    runs = any(isinstance(m, TransposedRun) for m in module.modules())
    cap = _MAX_CHUNK_ROWS_RUN if runs else _MAX_CHUNK_ROWS
    return int(max(1, min(cap, _MAX_CHUNK_FLOATS // max(widest))))


class _InferenceCache:
    """The inference module of one fitted network and what it was built from."""

    def __init__(self, source, masks, key, module, chunk, nonlinearity):
        self.source = source      # the estimator's module (kept alive: ids stay unique)
        self.masks = masks        # the estimator's mask dict
        self.key = key
        self.module = module
        self.chunk = chunk
        self.nonlinearity = nonlinearity


#: estimator -> _InferenceCache; outside the estimators' ``__dict__``, so it is
#: never pickled or deep-copied and ``predict`` leaves the estimator unchanged.
_CACHES = weakref.WeakKeyDictionary()


def _state_key(module, masks, density):
    tensors = list(module.state_dict(keep_vars=True).values()) + list(masks.values())
    return (float(density), tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in tensors))


def inference_cache(estimator):
    """The estimator's cached :class:`_InferenceCache`, rebuilt when stale.

    It is stale when ``net_.module_`` or ``masks_`` is another object, or a
    weight, buffer or mask was replaced or changed in place (tensor version
    counters): refit and warm start rebuild it. (Writes through ``.data``
    bypass the version counters and are not seen.)
    """
    module, masks = estimator.net_.module_, estimator.masks_
    density = SPARSE_MAX_DENSITY
    key = _state_key(module, masks, density)
    cache = _CACHES.get(estimator)
    if (cache is not None and cache.source is module and cache.masks is masks
            and cache.key == key):
        return cache
    infer = module if _is_dense(masks) else build_inference_module(module, masks, density)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    chunk = _chunk_rows(infer, estimator.n_features_in_, device)
    cache = _InferenceCache(module, masks, key, infer, chunk,
                            estimator.net_._get_predict_nonlinearity())
    _CACHES[estimator] = cache
    return cache


@torch.no_grad()
def predict_outputs(estimator, X):
    """What ``net_.predict_proba`` returns, from the estimator's inference module.

    Parameters
    ----------
    estimator : fitted BaseLotteryTicket
    X : Tensor of shape (n_samples, n_features), on the network's device

    Returns
    -------
    outputs : ndarray of shape (n_samples, n_outputs)
        The module's outputs through the net's predict nonlinearity (softmax
        probabilities for the classifier, raw outputs for the regressor).
    """
    cache = inference_cache(estimator)
    out = cache.nonlinearity(forward_chunks(cache.module, X, cache.chunk))
    return out.cpu().numpy()


# ============================================================= pickling
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
    mask = masks[entry["mask"]][name].cpu()
    out = torch.zeros(entry["shape"], dtype=dtype)
    out[mask] = _from_array(entry["values"], dtype, "cpu")
    return out.to(dev)


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
    """θ0 as the estimator drew it: the module built right after ``manual_seed(seed)``."""
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
    trainer = state.get("_trainer")
    if trainer is not None and hasattr(trainer, "__dict__"):
        state["_trainer"] = _shallow(trainer, subs)

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
    device = torch.device(net.device) if getattr(net, "device", None) else torch.device("cpu")
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
        if isinstance(cb, MaskCallback):
            cb.masks = masks
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
