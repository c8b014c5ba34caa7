"""Every module and tensor the package builds follows the device of its network.

On a GPU, the failure this guards against is "Expected all tensors to be on
the same device ... cuda:0 ... cpu": a tensor or layer made with torch's
default device (the CPU) meets the network's CUDA tensors. There is no GPU
here, so the tests look at the cause instead of waiting for the crash:

* :class:`DeviceAudit`, a :class:`~torch.overrides.TorchFunctionMode`, sees
  every torch call and records those made from sklottery's own code (the
  first caller outside torch is a file of the package) that do not follow the
  network's device: a tensor factory called without a ``device`` (exactly the
  functions ``torch.set_default_device`` redirects: ``torch.zeros``,
  ``torch.arange``, ``torch.as_tensor``, the ``torch.empty`` behind
  ``nn.Linear(...)`` ...), and a copy to the host (``Tensor.cpu``,
  ``Tensor.numpy``, ``torch.from_numpy``, a ``'cpu'`` device string). On the
  CPU these calls give the right result, which is why only an audit, not the
  outputs, can tell; on a GPU each is a tensor on the wrong device. Each
  test allows only the host copies listed in :data:`HOST_SIDE`, each with
  the reason it is deliberate.
* The steps that do not read weight values run on a network moved to the
  ``meta`` device (``module.to('meta')``): every parameter and buffer of what
  they build must be on ``meta``. (Compacting a network and building its
  inference module read the values, which ``meta`` tensors do not have;
  those are covered by the audit.)

What the audit cannot see: a CPU device object the package did not make
itself (``torch.device('cpu')`` made in the package is seen by its string)
looks like the network's own device here, both being the CPU; and calls in
other threads (a :class:`~sklottery.inference.TransposedRun` shares its
blocks among threads; they only run the ops of modules built under the
audit).
"""

import os
import pickle
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

import sklottery
from sklottery import LotteryTicketClassifier, LotteryTicketRegressor, stability
from sklottery.inference import (
    DenseLinearT,
    SparseLinearT,
    TransposedRun,
    build_inference_module,
)
from sklottery.modules import MLP, Conv2
from sklottery.pruning import compact_module

PACKAGE = os.path.dirname(os.path.abspath(sklottery.__file__)) + os.sep
TORCH = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
HERE = os.path.abspath(__file__)
#: The factories that follow torch's default device when called without ``device``.
FACTORIES = _device_constructors()
HOST_METHODS = {torch.Tensor.cpu: "Tensor.cpu", torch.Tensor.numpy: "Tensor.numpy"}

#: Host copies the package makes on purpose: (kind, function) -> why.
HOST_SIDE = {
    ("host", "base.py:_min_max"):
        "input validation reads X where it arrives, a numpy array in host memory",
    ("host", "base.py:_forward_checked"):
        "predict's X arrives as a numpy array in host memory: torch.from_numpy wraps it "
        "without a copy; predict_outputs moves it to the network's device",
    ("host", "inference.py:predict_outputs"):
        "predict returns numpy: the outputs are copied to the host once, at the end",
    ("host", "persistence.py:unpack_mask"):
        "a pickle stores mask bits as numpy arrays: torch.from_numpy, then .to(device)",
    ("host", "persistence.py:_from_array"):
        "a pickle stores weights as numpy arrays: torch.from_numpy, then .to(device)",
    ("host", "persistence.py:_restore_device"):
        "a tensor that was on the CPU when pickled goes back to the CPU (torch.device('cpu'))",
    ("host", "persistence.py:_feed"):
        "the integrity check on load hashes the bytes of the stored tensors on the host",
    ("host", "persistence.py:state_checksum"):
        "θ0's checksum hashes its bytes on the host",
    ("default", "persistence.py:_regenerate_init"):
        "θ0 is regenerated exactly as the estimator drew it: the module built on torch's "
        "default device right after manual_seed; the result is moved to the stored device",
}


def _callers():
    """The package's frames behind a torch call (innermost first), or () if not its call.

    The call is the package's when the first frame outside torch (and this
    file's audit) is in the package; a call that skorch or scikit-learn makes
    is theirs.
    """
    frame = sys._getframe(2)
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if not name.startswith(TORCH) and name != HERE:
            break
        frame = frame.f_back
    if frame is None or not os.path.abspath(frame.f_code.co_filename).startswith(PACKAGE):
        return ()
    out = []
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        # a comprehension belongs to the function it is written in (Python 3.12
        # inlines them: no frame of their own)
        code = frame.f_code.co_name
        if name.startswith(PACKAGE) and not (code.startswith("<") and code != "<module>"):
            out.append(f"{os.path.relpath(name, PACKAGE)}:{code}")
        frame = frame.f_back
    return tuple(out)


def _names_cpu(value):
    return isinstance(value, str) and value.split(":")[0] == "cpu"


class DeviceAudit(TorchFunctionMode):
    """Records the package's torch calls that do not follow the network's device."""

    def __init__(self):
        super().__init__()
        self.calls = []  # (kind, callers, what)
        self.active = False

    def __enter__(self):
        self.active = True
        return super().__enter__()

    def __exit__(self, *exc):
        self.active = False
        return super().__exit__(*exc)

    def record(self, kind, what):
        callers = _callers()
        if callers:
            self.calls.append((kind, callers, what))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            self.record("default", f"torch.{func.__name__} without a device")
        elif func in HOST_METHODS:
            self.record("host", HOST_METHODS[func])
        elif any(_names_cpu(a) for a in (*args, *kwargs.values())):
            self.record("host", f"{getattr(func, '__name__', func)}(..., 'cpu')")
        return func(*args, **kwargs)

    def off_device(self, allowed=()):
        """The recorded calls that no entry of ``allowed`` (keys of HOST_SIDE) explains.

        An entry ``(kind, function)`` explains a call of that kind made in
        ``function`` itself or, for ``_regenerate_init``, in what it calls.
        """
        left = []
        for kind, callers, what in self.calls:
            ok = any(k == kind and (callers[0] == f or (f.endswith("_regenerate_init")
                                                        and f in callers))
                     for k, f in allowed)
            if not ok:
                left.append(f"{' <- '.join(callers)}: {what}")
        return sorted(set(left))


@pytest.fixture
def audit(monkeypatch):
    """A :class:`DeviceAudit` to enter with ``with audit:``; it also sees ``torch.from_numpy``.

    (``torch.from_numpy`` does not go through the torch-function machinery.)
    """
    recorder = DeviceAudit()
    from_numpy = torch.from_numpy

    def recorded_from_numpy(array):
        if recorder.active:
            recorder.record("host", "torch.from_numpy")
        return from_numpy(array)

    monkeypatch.setattr(torch, "from_numpy", recorded_from_numpy)
    return recorder


def tensors_of(module):
    return list(module.parameters()) + list(module.buffers())


def devices_of(module):
    return {t.device.type for t in tensors_of(module)}


# ------------------------------------------------------------ networks
def _mask_like(weight, gen, density):
    return torch.rand(weight.shape, generator=gen) < density


def _prune(module, masks):
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask)
    return module


def sparse_mlp():
    """An MLP whose masks leave every step of build_inference_module something to do.

    Unread inputs (dropped), hidden units that read nothing (folded into the
    next bias) and units nothing reads (removed by compaction).
    """
    gen = torch.Generator().manual_seed(0)
    module = MLP(20, 3, hidden_layer_sizes=(16, 12)).eval()
    layers = [m for m in module.layers if isinstance(m, nn.Linear)]
    names = [f"layers.{i}.weight" for i, m in enumerate(module.layers)
             if isinstance(m, nn.Linear)]
    masks = {n: _mask_like(m.weight, gen, 0.3) for n, m in zip(names, layers)}
    masks[names[0]][:, :8] = False   # 8 of 20 inputs unread
    masks[names[0]][:3] = False      # 3 first-layer units read nothing
    masks[names[2]][:, :2] = False   # 2 second-layer units nobody reads
    return _prune(module, masks), masks


def sparse_conv():
    gen = torch.Generator().manual_seed(1)
    module = Conv2(64, 4, input_shape=(1, 8, 8)).eval()
    masks = {n: _mask_like(p, gen, 0.2) for n, p in module.named_parameters()
             if n.endswith("weight")}
    first_fc = next(n for n in masks if n.startswith("classifier"))
    masks[first_fc][:, :64] = False  # the first 4 feature maps are read by nothing
    return _prune(module, masks), masks


NETWORKS = {"mlp": sparse_mlp, "conv": sparse_conv}


def _inputs(module, n=9):
    gen = torch.Generator().manual_seed(2)
    n_features = module.n_features if hasattr(module, "n_features") else 20
    return torch.rand(n, n_features, generator=gen)


# --------------------------------------------- build steps, value-dependent
@pytest.mark.parametrize("density", [0.0, 1.0])  # dense products only; sparse everywhere
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_build_inference_module_makes_nothing_off_the_device(network, density, audit):
    module, masks = NETWORKS[network]()
    with audit:
        infer = build_inference_module(module, masks, sparse_max_density=density)
    assert audit.off_device() == []
    assert devices_of(infer) == {"cpu"}
    if network == "mlp":  # units folded; inputs dropped (dense) or sparse products
        kinds = [type(m).__name__ for m in infer.modules()]
        assert ("_SelectColumns" in kinds) == (density == 0.0)
        assert ("SparseLinearT" in kinds) == (density == 1.0)
        first = next(m for m in infer.modules()
                     if isinstance(m, (nn.Linear, SparseLinearT, DenseLinearT)))
        width = first.out_features if isinstance(first, SparseLinearT) else first.weight.shape[0]
        assert width <= 13
    x = _inputs(module)
    with torch.no_grad(), audit:
        out = infer(x)
    assert audit.off_device() == []
    with torch.no_grad():
        torch.testing.assert_close(out, module(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_compact_module_makes_nothing_off_the_device(network, audit):
    module, masks = NETWORKS[network]()
    with audit:
        small = compact_module(module, masks)
    assert audit.off_device() == []
    assert sum(p.numel() for p in small.parameters()) < sum(
        p.numel() for p in module.parameters())
    assert {p.dtype for p in small.parameters()} == {torch.float32}
    x = _inputs(module)
    with torch.no_grad():
        torch.testing.assert_close(small(x), module(x), rtol=1e-5, atol=1e-6)


def test_compact_module_keeps_the_dtype():
    module, masks = sparse_mlp()
    small = compact_module(module.double(), masks)
    assert {p.dtype for p in small.parameters()} == {torch.float64}


# ----------------------------------------------------- fitted estimators
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:300], y[:300]


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    return LotteryTicketClassifier(hidden_layer_sizes=(32, 16), max_epochs=2, batch_size=50,
                                   n_rounds=3, pruning_rate=0.7, random_state=0).fit(X, y)


@pytest.mark.parametrize("fmt", ["masked", "prune", "compact"])
def test_exports_make_nothing_off_the_device(fitted, fmt, audit):
    with audit:
        module = fitted.export(format=fmt)
    assert audit.off_device() == []
    assert devices_of(module) == {"cpu"}


@pytest.mark.parametrize("regressor", [False, True])
def test_predict_and_score_make_nothing_off_the_device(digits, regressor, audit):
    X, y = digits
    make = LotteryTicketRegressor if regressor else LotteryTicketClassifier
    est = make(hidden_layer_sizes=(32, 16), max_epochs=2, batch_size=50, n_rounds=3,
               pruning_rate=0.7, random_state=0)
    est.fit(X, y.astype(np.float32) if regressor else y)
    with audit:
        est.predict(X)
        est.score(X, y)
        if not regressor:
            est.predict_proba(X)
    assert audit.off_device([key for key in HOST_SIDE if key[1].startswith("base.py")]
                            + [("host", "inference.py:predict_outputs")]) == []


def test_unpickling_makes_nothing_off_the_device(fitted, digits, audit):
    X, _ = digits
    data = pickle.dumps(fitted)
    with audit:
        loaded = pickle.loads(data)
    assert audit.off_device([key for key in HOST_SIDE if key[1].startswith("persistence")]) == []
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))


def test_stability_path_makes_nothing_off_the_device(digits, audit):
    X, y = digits
    template = LotteryTicketClassifier(hidden_layer_sizes=(16,), max_epochs=1, batch_size=50,
                                       n_rounds=0, random_state=0)
    start = stability._parent_state(template, X, y, 0, seed=1)
    copies = [stability._copy(template, X, y, seed, start, None) for seed in (2, 3)]
    with audit:
        error, loss = stability._path(*copies, X, y, np.linspace(0, 1, 3))
    assert audit.off_device() == []
    assert np.isfinite(error).all() and np.isfinite(loss).all()


# ----------------------------------- build steps on a meta network
def _to_meta(est):
    """A deep copy of the fitted estimator with its network and masks on ``meta``."""
    meta = pickle.loads(pickle.dumps(est))
    meta.net_.module_.to("meta")
    meta.masks_ = {k: v.to("meta") for k, v in meta.masks_.items()}
    return meta


@pytest.mark.parametrize("fmt", ["masked", "prune"])
def test_exports_of_a_meta_network_are_on_meta(fitted, fmt):
    module = _to_meta(fitted).export(format=fmt)
    assert devices_of(module) == {"meta"}


def test_stability_interpolation_of_meta_networks_is_on_meta(fitted):
    module = _to_meta(fitted).net_.module_
    state_a = {k: v.detach().clone() for k, v in module.state_dict().items()}
    state_b = {k: v * 2 for k, v in state_a.items()}
    mixed = stability._interpolate(state_a, state_b, 0.25)
    assert {v.device.type for v in mixed.values()} == {"meta"}
    module.load_state_dict(mixed)
    assert devices_of(module) == {"meta"}


def test_transposed_run_of_meta_layers_runs_on_meta():
    gen = torch.Generator().manual_seed(0)
    w1, b1, w2 = (torch.randn(s, generator=gen) for s in ((30, 17), (30,), (4, 30)))
    run = TransposedRun([DenseLinearT(w1.to("meta"), b1.to("meta")), nn.ReLU(),
                         DenseLinearT(w2.to("meta"), None)], chunk=7)
    assert devices_of(run) == {"meta"}
    with torch.no_grad():
        out = run(torch.empty(50, 17, device="meta"))
    assert out.device.type == "meta" and out.shape == (50, 4)


# ---------------------------------------------------------------- training
#: Host-side steps of a fit, each deliberate: (kind, function) -> why. On a GPU
#: the rest of a round (the network, masks, data, optimizer state and losses)
#: stays on the device the request carries.
TRAINING_HOST_SIDE = {
    ("host", "base.py:_min_max"): HOST_SIDE[("host", "base.py:_min_max")],
    ("host", "base.py:rows"):
        "the training rows arrive as a numpy array in host memory: torch.from_numpy wraps "
        "their float32 copy, moved to device_ once per fit",
    ("default", "modules.py:__init__"):
        "θ0 is drawn on the host under the initialisation seed, so it is the same on every "
        "device; skorch then moves the module to the fit's device",
    ("host", "base.py:_prune_and_train"):
        "pruning ranks the trained weights on the host: the same masks on every device "
        "(they are moved back to device_ at once)",
    ("host", "pruning.py:compute_scores"): "the same: scores are computed on the host",
    ("default", "training/skorch.py:__iter__"):
        "the data order is drawn from the fit's CPU generator (the same order on every "
        "device) and moved to the data's device",
    ("default", "training/batched.py:_epoch_orders"): "the same, for every member",
    ("host", "training/batched.py:_validate"):
        "the validation losses are recorded as numbers: one read per grid point",
    ("host", "training/batched.py:epoch_means"):
        "the epoch's mean training losses are recorded: one read per epoch",
    ("default", "training/optim.py:flushing_denormals"):
        "probes the CPU's flush-to-zero mode, a property of the host",
    ("host", "training/optim.py:fused_adam_supported"):
        "probes the fused kernel on the device type it is asked about (here the CPU)",
    ("host", "training/protocol.py:resolve_device"):
        "resolves the device string itself (here 'cpu')",
}


def _small_fit(seed):
    return LotteryTicketClassifier(hidden_layer_sizes=(16,), max_epochs=1, batch_size=50,
                                   n_rounds=1, random_state=seed, rewind_iteration=2)


@pytest.mark.parametrize("trainer", ["skorch", "batched"])
def test_training_makes_nothing_off_the_device(digits, trainer, audit, monkeypatch):
    """A fit (skorch trainer) and a batch of fits (batched trainer): every tensor
    the engine and the trainers create follows the request's device, but for the
    host-side steps listed, each with its reason."""
    from sklottery.training import BatchedTrainer, fit_many

    X, y = digits
    batches = []
    original = BatchedTrainer.train
    monkeypatch.setattr(BatchedTrainer, "train",
                        lambda self, requests: batches.append(len(requests))
                        or original(self, requests))
    with audit:
        if trainer == "skorch":
            _small_fit(0).fit(X, y)
        else:
            fit_many([(_small_fit(s), X, y, {}) for s in range(3)])
    assert batches == ([] if trainer == "skorch" else [3, 3])
    assert audit.off_device(list(TRAINING_HOST_SIDE)) == []


def test_the_training_audit_sees_a_tensor_made_on_the_host(digits, audit, monkeypatch):
    """It can fail: a trainer step that makes a tensor without the request's device is
    reported (here the batched trainer's loss sums, made as they were before they
    moved to the device)."""
    import sklottery.training.batched as batched

    X, y = digits
    original = batched._LossBook.__init__

    def on_the_host(self, members, device, **kwargs):
        original(self, members, device, **kwargs)
        self._sums = torch.zeros(members, dtype=torch.float64)

    monkeypatch.setattr(batched._LossBook, "__init__", on_the_host)
    with audit:
        batched_fits = [(_small_fit(s), X, y, {}) for s in range(2)]
        from sklottery.training import fit_many

        fit_many(batched_fits)
    left = audit.off_device(list(TRAINING_HOST_SIDE))
    assert left and all("torch.zeros without a device" in line for line in left), left
