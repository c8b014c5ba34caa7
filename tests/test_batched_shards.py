"""The batched trainer's shards: with several torch threads allowed, the members
of a batch train in that many Python threads, one core each.

A member's arithmetic never mixes with another's (its own slice of every
stacked tensor, its own loss term, elementwise optimizers), so a member of a
shard must equal the same fit alone within the tolerances of
``tests/test_batched.py`` (the footings measured there), and every member must
come back in order with its own results.
"""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from sklottery import LotteryTicketClassifier
from sklottery.training import BatchedTrainer, fit_many
from test_batched import _assert_same_fit, _fit_differences


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:600], y[:600]


def _spy_shards(monkeypatch):
    """Record the member count of every shard (``train_batch`` called in a thread)."""
    shards = []
    original = BatchedTrainer.train_batch

    def spy(self, requests, shard=False):
        if shard:
            shards.append(len(requests))
        return original(self, requests, shard)

    monkeypatch.setattr(BatchedTrainer, "train_batch", spy)
    return shards


@pytest.mark.parametrize("n_threads", [2, 3])
def test_sharded_members_equal_fits_alone(digits, monkeypatch, n_threads):
    X, y = digits
    base = LotteryTicketClassifier(max_epochs=2, n_rounds=1, batch_size=50, lr_warmup=5,
                                   record_history="masks", n_threads=n_threads)
    ests = [clone(base).set_params(random_state=s) for s in range(5)]
    ests.append(clone(base).set_params(random_state=8, rewind_iteration=4))
    shards = _spy_shards(monkeypatch)
    outcomes = fit_many([(e, X, y, {}) for e in ests])
    assert all(err is None for err, _ in outcomes)
    # two rounds, each split into n_threads shards of ceil(6 / n_threads) members
    size = -(-6 // n_threads)
    assert sorted(shards) == sorted([size] * (6 // size) * 2 + ([6 % size] * 2 if 6 % size
                                                                  else []))
    for est in ests:
        _assert_same_fit(est, clone(est).set_params(record_history="masks").fit(X, y))
    alone = clone(ests[-1]).fit(X, y)  # θk captured in its shard
    for k, v in ests[-1].rewind_params_.items():
        torch.testing.assert_close(v, alone.rewind_params_[k], atol=1e-6, rtol=0)
    # every member came back as itself: swapping two members' fits is caught
    assert _fit_differences(ests[0], clone(ests[1]).set_params(record_history="masks")
                            .fit(X, y))


def test_one_thread_trains_one_batch(digits, monkeypatch):
    """The default ``n_threads=1`` keeps every member in one batch, in this thread."""
    X, y = digits
    ests = [LotteryTicketClassifier(max_epochs=1, n_rounds=0, random_state=s)
            for s in range(3)]
    shards = _spy_shards(monkeypatch)
    fit_many([(e, X, y, {}) for e in ests])
    assert shards == []
