"""``device='cuda'`` end to end: masks, rewinding, the fused step, batching, export, stability.

These run only where CUDA is present (a GPU machine); elsewhere they are
skipped with that reason. CUDA kernels sum in other orders than the CPU's,
so GPU results are compared with CPU results through what must not depend
on rounding (pruned weights exactly zero, θ0 rewinding, masks mostly equal,
accuracies close), and GPU runs with themselves exactly.
"""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from sklottery import LotteryTicketClassifier
from sklottery.training import BatchedTrainer, fit_many
from sklottery.analysis import ticket_curve
from sklottery.inference import build_inference_module, inference_cache
from sklottery.pruning import compact_module
from sklottery.stability import linear_mode_connectivity

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (torch.cuda.is_available() is False)")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:800], y[:800]


def _small(**kw):
    params = dict(max_epochs=2, n_rounds=2, batch_size=50, random_state=0, device="cuda")
    params.update(kw)
    return LotteryTicketClassifier(**params)


def test_cuda_fit_keeps_masks_and_rewinds(digits):
    X, y = digits
    est = _small(record_history="masks").fit(X, y)
    assert est.net_.module_.layers[0].weight.is_cuda
    assert est.net_.optimizer_.defaults.get("fused")
    weights = dict(est.net_.module_.named_parameters())
    for n, m in est.masks_.items():
        assert m.is_cuda and torch.all(weights[n][~m] == 0)
    cpu = clone(est).set_params(device="cpu").fit(X, y)
    for k, v in est.init_params_.items():  # θ0 comes from the same seeded CPU init
        torch.testing.assert_close(v.cpu(), cpu.init_params_[k])
    agree = np.mean([float((est.masks_[n].cpu() == cpu.masks_[n]).float().mean())
                     for n in est.masks_])
    assert agree > 0.99
    assert abs(est.score(X, y) - cpu.score(X, y)) < 0.05
    again = clone(est).fit(X, y)  # the same device and seeds: the same run
    for n in est.masks_:
        assert torch.equal(est.masks_[n], again.masks_[n])


def test_cuda_batched_members_equal_fits_alone(digits, monkeypatch):
    X, y = digits
    sizes = []
    original = BatchedTrainer.train
    monkeypatch.setattr(BatchedTrainer, "train",
                        lambda self, reqs: sizes.append(len(reqs)) or original(self, reqs))
    ests = [_small(random_state=s) for s in range(3)]
    fit_many([(e, X, y, {}) for e in ests])
    assert sizes == [3, 3, 3]
    for est in ests:
        alone = clone(est).fit(X, y)
        for n in est.masks_:
            differ = int((est.masks_[n] != alone.masks_[n]).sum())
            assert differ <= max(2, est.masks_[n].numel() // 1000)
        assert abs(est.score(X, y) - alone.score(X, y)) < 0.02


def test_cuda_ticket_curve_export_and_stability(digits):
    X, y = digits
    df = ticket_curve(_small(n_rounds=1), X, y, strategies=("rewind", "random"), n_trials=2,
                      random_state=0)
    assert df["test_acc"].notna().all() and (df["test_acc"] > 0.5).all()
    est = _small().fit(X, y)
    for fmt in ("masked", "prune", "compact"):
        module = est.export(format=fmt)
        out = module(torch.as_tensor(X[:20], device="cuda"))
        torch.testing.assert_close(out.argmax(1).cpu(),
                                   torch.as_tensor(est.predict(X[:20])).long(), rtol=0,
                                   atol=0)
    res = linear_mode_connectivity(_small(n_rounds=0, max_epochs=1), X, y, n_points=3,
                                   random_state=0)
    assert np.isfinite(res.instability)


def test_cuda_inference_module_compact_copy_and_pickle_stay_on_the_gpu(digits):
    X, y = digits
    est = _small(n_rounds=3, pruning_rate=0.7).fit(X, y)
    module, masks = est.net_.module_, est.masks_

    def devices(m):
        return {t.device.type for t in [*m.parameters(), *m.buffers()]}

    infer = inference_cache(est).module
    assert infer is not module and devices(infer) == {"cuda"}
    for built in (build_inference_module(module, masks, sparse_max_density=1.0),
                  compact_module(module, masks), est.get_compact_module()):
        assert devices(built) == {"cuda"}
    proba = est.predict_proba(X)
    assert abs(est.score(X, y) - float(np.mean(est.predict(X) == y))) < 1e-12
    loaded = pickle.loads(pickle.dumps(est))
    assert devices(loaded.net_.module_) == {"cuda"}
    assert all(m.is_cuda for m in loaded.masks_.values())
    assert all(v.is_cuda for v in loaded.init_params_.values())
    np.testing.assert_allclose(loaded.predict_proba(X), proba, rtol=1e-6, atol=1e-7)


def test_cuda_graph_trainer_replays_the_batched_step(digits, monkeypatch):
    """On CUDA ``fit_many`` chooses the CUDA-graph trainer; its members equal the
    uncaptured batched trainer's to float tolerance (the capturable fused Adam
    computes its bias correction on the device), and the graph was replayed."""
    X, y = digits
    replays = []
    original = torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay",
                        lambda self: replays.append(1) or original(self))
    base = _small(n_rounds=2, max_epochs=2)
    graph = [clone(base).set_params(random_state=s) for s in range(3)]
    eager = [clone(e) for e in graph]
    assert all(err is None for err, _ in fit_many([(e, X, y, {}) for e in graph]))
    assert all(err is None for err, _ in fit_many([(e, X, y, {}) for e in eager],
                                                  trainer="batched"))
    assert len(replays) > 0
    for a, b in zip(graph, eager):
        agree = np.mean([float((a.masks_[n] == b.masks_[n]).float().mean()) for n in a.masks_])
        assert agree > 0.99
        assert abs(a.score(X, y) - b.score(X, y)) < 0.02
        for k, v in a.net_.module_.state_dict().items():
            torch.testing.assert_close(v, b.net_.module_.state_dict()[k], atol=5e-3, rtol=5e-2)


@pytest.mark.parametrize("method", ["snip", "grasp", "synflow"])
def test_cuda_pruning_at_initialization(digits, method):
    """A PaI criterion on cuda: masks on the device, pruned weights zero, the CPU's level;
    and the PaI strategies of a ticket curve on cuda."""
    X, y = digits
    est = _small(pruning_criterion=method, one_shot=True, n_rounds=3, pruning_rate=0.5)
    est.fit(X, y)
    cpu = clone(est).set_params(device="cpu").fit(X, y)
    assert len(est.rounds_) == 1
    assert est.rounds_[0]["weights_remaining"] == cpu.rounds_[0]["weights_remaining"]
    params = dict(est.net_.module_.named_parameters())
    for name, keep in est.masks_.items():
        assert keep.device.type == "cuda"
        assert (params[name].detach()[~keep] == 0).all()
        # the same scores up to the kernels' rounding: most of the mask agrees
        agree = (keep.cpu() == cpu.masks_[name].cpu()).float().mean()
        assert agree > 0.95, (name, float(agree))
    df = ticket_curve(_small(), X, y, strategies=("rewind", method, f"{method}_shuffle"),
                      n_trials=1, random_state=0, control_rounds="last")
    assert df["test_acc"].notna().all()
