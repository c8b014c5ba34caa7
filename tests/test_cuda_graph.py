"""The CUDA-graph trainer on the CPU: everything but the capture itself.

With ``capture=False`` the trainer runs its static-buffer step (the batch's
row indices copied into fixed buffers that the step reads) eagerly; the
same operations in the same order as the batched trainer's step, so the
members must equal the batched trainer's bit for bit, including the epoch's
last, short batch, which the captured graph does not cover. The capture
itself runs in ``tests/test_cuda.py`` on a GPU.
"""

import functools

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from sklottery import LotteryTicketClassifier, TrainingDivergedError
from sklottery import training
from sklottery.training import CudaGraphTrainer, FitDriver, fit_many


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:430], y[:430]  # 344 training rows: a short last batch


def _used(monkeypatch, cls):
    calls = []
    original = cls.train_batch

    def spy(self, requests, shard=False):
        calls.append((type(self).__name__, len(requests)))
        return original(self, requests, shard)

    monkeypatch.setattr(cls, "train_batch", spy)
    return calls


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_static_buffer_step_equals_the_batched_trainer_bit_for_bit(digits, monkeypatch,
                                                                   optimizer):
    X, y = digits
    base = LotteryTicketClassifier(max_epochs=2, n_rounds=2, batch_size=50, optimizer=optimizer,
                                   learning_rate_init=1e-2 if optimizer == "sgd" else 1e-3,
                                   record_history="masks")
    ests = [clone(base).set_params(random_state=s) for s in range(3)]
    ests.append(clone(base).set_params(random_state=8, rewind_iteration=4))
    reference = [clone(e) for e in ests]
    assert all(err is None for err, _ in fit_many([(e, X, y, {}) for e in reference]))
    calls = _used(monkeypatch, CudaGraphTrainer)
    monkeypatch.setitem(training.TRAINERS, "cuda_graph",
                        functools.partial(CudaGraphTrainer, capture=False))
    assert all(err is None for err, _ in fit_many([(e, X, y, {}) for e in ests]))
    assert calls == [("CudaGraphTrainer", 4)] * 3  # every round of every fit, one batch
    for a, b in zip(ests, reference):
        for k, v in a.net_.module_.state_dict().items():
            assert torch.equal(v, b.net_.module_.state_dict()[k]), k
        for ra, rb in zip(a.history_, b.history_):
            for n in ra["masks"]:
                assert torch.equal(ra["masks"][n], rb["masks"][n])
        assert [r["valid_loss"] for r in a.rounds_] == [r["valid_loss"] for r in b.rounds_]
        assert [r["early_stop_iteration"] for r in a.rounds_] == \
            [r["early_stop_iteration"] for r in b.rounds_]
    for k, v in ests[-1].rewind_params_.items():
        assert torch.equal(v, reference[-1].rewind_params_[k])


def test_the_cuda_graph_trainer_declines_what_it_cannot_capture(digits):
    X, y = digits
    driver = FitDriver(LotteryTicketClassifier(max_epochs=1, n_rounds=0)
                       .fit_steps(X, y)).advance()
    try:
        request = driver.request
        assert CudaGraphTrainer().accepts(request) == \
            "the CUDA-graph trainer needs a CUDA device"
        assert CudaGraphTrainer(capture=False).accepts(request) is None
    finally:
        driver.steps.close()
    driver = FitDriver(LotteryTicketClassifier(max_epochs=1, n_rounds=0, lr_warmup=5)
                       .fit_steps(X, y)).advance()
    try:
        assert "warmup" in CudaGraphTrainer(capture=False).accepts(driver.request)
    finally:
        driver.steps.close()


def test_auto_on_the_cpu_never_chooses_the_graph_trainer(digits, monkeypatch):
    X, y = digits
    calls = _used(monkeypatch, training.BatchedTrainer)
    ests = [LotteryTicketClassifier(max_epochs=1, n_rounds=0, random_state=s) for s in range(2)]
    fit_many([(e, X, y, {}) for e in ests])
    assert calls == [("BatchedTrainer", 2)]


def test_a_loss_that_is_not_finite_is_found_with_the_epochs_means(digits, monkeypatch):
    """Without a host read per step (the graph trainer's book), a member whose loss
    becomes NaN is still reported as diverged, naming the first such iteration,
    and the other members of the batch are not disturbed."""
    X, y = digits
    monkeypatch.setitem(training.TRAINERS, "cuda_graph",
                        functools.partial(CudaGraphTrainer, capture=False))
    base = LotteryTicketClassifier(max_epochs=2, n_rounds=1, batch_size=50, optimizer="sgd",
                                   learning_rate_init=0.1)
    ests = [clone(base).set_params(random_state=s) for s in range(3)]
    X_bad = X * 1e15  # blows up at once (tests/test_batched.py: at any rate)
    outcomes = fit_many([(ests[0], X, y, {}), (ests[1], X_bad, y, {}), (ests[2], X, y, {})])
    assert outcomes[0][0] is None and outcomes[2][0] is None
    assert isinstance(outcomes[1][0], TrainingDivergedError)
    # the same first failure as the batched trainer, which asks every step
    monkeypatch.setitem(training.TRAINERS, "cuda_graph", training.BatchedTrainer)
    again = fit_many([(clone(ests[0]), X, y, {}), (clone(base), X_bad, y, {})])
    assert "training loss became nan at iteration" in str(outcomes[1][0])
    assert str(outcomes[1][0]) == str(again[1][0])
    alone = clone(ests[0]).fit(X, y)
    for k, v in ests[0].net_.module_.state_dict().items():
        torch.testing.assert_close(v, alone.net_.module_.state_dict()[k], atol=1e-4, rtol=1e-3)
