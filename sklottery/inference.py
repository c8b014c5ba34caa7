"""The inference module: a pruned network that predicts faster.

:func:`predict_outputs` (what the estimators' ``predict`` and
``predict_proba`` call) runs an *inference module* in chunks of rows. For a
dense network that is the network itself. For a sparse one it is
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
the masks change: refit, warm start) and never pickled. (What a pickled
estimator stores is :mod:`sklottery.persistence`.)
"""

from __future__ import annotations

import copy
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import skip_init

from .training import forward_chunks
from ._utils import module_device
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
    b1 = None if first.bias is None else first.bias.detach()[keep]
    return _linear(w1[keep], b1), _linear(w2[:, keep], b2)


def _linear(weight, bias):
    """An ``nn.Linear`` holding copies of ``weight`` and ``bias``, on their device and dtype.

    (Built with :func:`torch.nn.utils.skip_init`: no throwaway initialisation.)
    """
    layer = skip_init(nn.Linear, weight.shape[1], weight.shape[0], bias=bias is not None,
                      device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


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
    narrow = _linear(first.weight.detach()[:, index],
                     None if first.bias is None else first.bias.detach())
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
        A new module in eval mode, without gradients, on the device of
        ``module``'s parameters; ``module`` and the global torch RNG are
        unchanged.
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
        device = module_device(small)
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

    def __init__(self, source, masks, key, module, chunk, nonlinearity, device):
        self.source = source      # the estimator's module (kept alive: ids stay unique)
        self.masks = masks        # the estimator's mask dict
        self.key = key
        self.module = module
        self.chunk = chunk
        self.nonlinearity = nonlinearity
        self.device = device      # of the network and of the inference module


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
    device = module_device(module)
    chunk = _chunk_rows(infer, estimator.n_features_in_, device)
    cache = _InferenceCache(module, masks, key, infer, chunk,
                            estimator.net_._get_predict_nonlinearity(), device)
    _CACHES[estimator] = cache
    return cache


@torch.no_grad()
def predict_outputs(estimator, X):
    """What ``net_.predict_proba`` returns, from the estimator's inference module.

    Parameters
    ----------
    estimator : fitted BaseLotteryTicket
    X : Tensor of shape (n_samples, n_features)
        On any device: each chunk of rows is moved to the network's device
        (the device of its parameters) before it goes through.

    Returns
    -------
    outputs : ndarray of shape (n_samples, n_outputs)
        The module's outputs through the net's predict nonlinearity (softmax
        probabilities for the classifier, raw outputs for the regressor).
    """
    cache = inference_cache(estimator)
    out = cache.nonlinearity(forward_chunks(cache.module, X, cache.chunk, device=cache.device))
    return out.cpu().numpy()
