"""sklottery on a real Dask cluster: joblib's Dask backend, unchanged user code.

A :class:`distributed.LocalCluster` of 2 worker processes x 1 thread on the
loopback interface; results must equal the local run for the same
``random_state`` (members of a batched share are independent, so only float
rounding could differ: tolerance 1e-4 as in ``test_batched.py``).
"""

import os
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, cross_val_score

from sklottery import LotteryTicketClassifier
from sklottery.analysis import _n_workers, _threads_per_job, ticket_curve

distributed = pytest.importorskip("distributed", reason="the 'dask' extra is not installed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:400], y[:400]


class ScatterCounter:
    """Counts the objects the client scatters (a spy: the real scatter runs)."""

    def __init__(self, client, monkeypatch):
        self.sizes = []
        original = type(client).scatter

        def scatter(this, data, *args, **kwargs):
            items = data if isinstance(data, (list, tuple)) else [data]
            self.sizes.extend(getattr(d, "nbytes", 0) for d in items)
            return original(this, data, *args, **kwargs)

        monkeypatch.setattr(type(client), "scatter", scatter)


def test_grid_search_on_the_cluster_equals_the_local_run(client, digits):
    X, y = digits
    est = LotteryTicketClassifier(max_epochs=1, n_rounds=1, batch_size=50, random_state=0)
    grid = {"learning_rate_init": [1e-3, 3e-3], "pruning_rate": [0.2, 0.5]}
    local = GridSearchCV(est, grid, cv=2, n_jobs=1).fit(X, y)
    before = sum(client.run(lambda dask_worker: len(dask_worker.state.log)).values())
    with joblib.parallel_config(backend="dask"):
        remote = GridSearchCV(est, grid, cv=2, n_jobs=-1).fit(X, y)
        scores = cross_val_score(est, X, y, cv=2, n_jobs=-1)
    after = sum(client.run(lambda dask_worker: len(dask_worker.state.log)).values())
    assert after > before  # the fits ran on the workers
    np.testing.assert_allclose(remote.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"], atol=1e-12)
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(scores, cross_val_score(est, X, y, cv=2), atol=1e-12)


def test_ticket_curve_on_the_cluster_equals_the_local_run(client, digits, monkeypatch):
    X, y = digits
    est = LotteryTicketClassifier(max_epochs=1, n_rounds=2, batch_size=50)
    kw = dict(strategies=("rewind", "random_mask", "random"), n_trials=3, random_state=0)
    local = ticket_curve(est, X, y, **kw)
    spy = ScatterCounter(client, monkeypatch)
    with joblib.parallel_config(backend="dask"):
        assert _n_workers(-1) == 2  # the cluster's worker threads, not this machine's CPUs
        assert _threads_per_job(-1) is None  # the workers keep their own thread setting
        remote = ticket_curve(est, X, y, n_jobs=-1, **kw)
    pd.testing.assert_frame_equal(remote.drop(columns="seconds"),
                                  local.drop(columns="seconds"), atol=1e-4, check_exact=False)
    # X and y went to the cluster once each, for two phases of two batched shares
    assert sorted(spy.sizes) == sorted([X.nbytes, y.nbytes])


def test_workers_run_torch_with_their_own_single_thread(client):
    threads = client.run(lambda: __import__("torch").get_num_threads())
    info = client.scheduler_info()["workers"]
    assert all(t == 1 for t in threads.values())
    # workers x threads x torch threads <= cores of this machine
    assert sum(w["nthreads"] for w in info.values()) * max(threads.values()) <= os.cpu_count()


def test_compare_runs_on_a_scheduler_address(client, tmp_path, capsys):
    from sklottery.__main__ import main

    common = ["compare", "--datasets", "iris", "--trials", "2", "--rounds", "1",
              "--epochs", "2", "--quiet"]
    main(common + ["--out", str(tmp_path / "local"), "--n-jobs", "1"])
    main(common + ["--out", str(tmp_path / "dask"), "--backend", "dask",
                   "--scheduler", client.scheduler.address])
    a = pd.read_csv(tmp_path / "local" / "verdicts.csv")
    b = pd.read_csv(tmp_path / "dask" / "verdicts.csv")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def test_dask_backend_without_the_extra_names_it(monkeypatch, tmp_path):
    from sklottery.__main__ import main

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(SystemExit, match=r"sklottery\[dask\]"):
        main(["compare", "--datasets", "iris", "--backend", "dask", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--backend dask"):
        main(["compare", "--datasets", "iris", "--scheduler", "tcp://127.0.0.1:1",
              "--out", str(tmp_path)])


def test_ctrl_c_stops_the_workers_of_the_cluster_and_keeps_what_finished(client, digits):
    import signal

    from sklottery.analysis import run_status
    from sklottery.exceptions import ExperimentInterrupted

    X, y = digits
    est = LotteryTicketClassifier(hidden_layer_sizes=(32, 16), n_rounds=3, max_epochs=4,
                                  batch_size=40)
    sent = []

    def sigint_once():  # a real SIGINT to this process once the first run returned
        if not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)

    with joblib.parallel_config(backend="dask"), \
            pytest.raises(ExperimentInterrupted) as info:
        ticket_curve(est, X, y, strategies=["rewind", "random"], n_trials=4, n_jobs=2,
                     batched=False, random_state=0, progress=sigint_once)
    status = run_status(info.value.results)
    # the runs in progress on the workers saw the stop (a distributed.Event) and kept
    # their completed rounds; nothing started afterwards
    assert status["interrupted"] and status["complete"] >= 1 and status["not_run"] >= 1
    assert status["complete"] + status["cut_short"] + status["not_run"] == status["total"] == 16
    cut = info.value.results.query("stop_reason == 'interrupted'")
    assert cut["test_acc"].notna().all()
    # the cluster is fine afterwards
    assert client.submit(lambda: 1).result() == 1
