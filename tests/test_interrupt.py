"""Ctrl-C and dead workers: an experiment stops cleanly, keeps what finished and says so.

The signal tests run the experiment in a subprocess and send it a real
SIGINT at a deterministic point (from inside the run: the second batched
round, or the first finished run), so that a failure cannot take pytest's
own process down. A worker is killed by its own pid (SIGKILL) from a
callback, the way the operating system's out-of-memory killer would.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from sklearn.datasets import load_digits
from skorch.callbacks import Callback

from sklottery import LotteryTicketClassifier
from sklottery import _interrupt
from sklottery.analysis import run_status, ticket_curve

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import json, os, signal, sys, time, warnings
import numpy as np
from sklearn.datasets import load_digits
from sklottery import LotteryTicketClassifier
from sklottery.analysis import ticket_curve, run_status
from sklottery.exceptions import ExperimentInterrupted
X, y = load_digits(return_X_y=True)
X, y = (X / 16.0)[:400], y[:400]
est = LotteryTicketClassifier(hidden_layer_sizes=(32, 16), n_rounds=3, max_epochs=4,
                              batch_size=40)
_sent = []
def sigint_once():
    if not _sent:
        _sent.append(1)
        os.kill(os.getpid(), signal.SIGINT)
def report(df, status, kind):
    print("RESULT " + json.dumps(dict(
        kind=kind, status={k: v for k, v in status.items()},
        rows=[[r.strategy, int(r.trial), int(r.round), r.stop_reason,
               None if r.test_acc != r.test_acc else float(r.test_acc)]
              for r in df.itertuples()])), flush=True)
"""


def run_script(body, timeout=120):
    """Run PRELUDE + body (unindented) in a fresh interpreter.

    Returns ``(returncode, RESULT dict, output)``.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-c", PRELUDE + body], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    result = json.loads(lines[-1][len("RESULT "):]) if lines else None
    return proc.returncode, result, out


CURVE = """
t0 = time.perf_counter()
try:
    df = ticket_curve(est, X, y, strategies=["rewind", "random", "random_mask"],
                      n_trials=2, random_state=0, {kwargs})
    report(df, run_status(df), "returned")
except ExperimentInterrupted as exc:
    report(exc.results, exc.status, "interrupted")
print("SECONDS", time.perf_counter() - t0)
"""


def test_ctrl_c_in_a_batched_round_stops_the_curve_and_keeps_completed_rounds():
    # SIGINT arrives while the second batched round (round 1 of every chain) trains
    body = textwrap.dedent("""
    import sklottery.training as B
    original, calls = B.BatchedTrainer.train, [0]
    def train(self, requests):
        calls[0] += 1
        if calls[0] == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, requests)
    B.BatchedTrainer.train = train
    """) + CURVE.format(kwargs="n_jobs=1")
    code, result, out = run_script(body)
    assert code == 0, out
    # before: the interrupt was swallowed, the curve went on and returned as if complete
    assert result["kind"] == "interrupted", out
    rows = result["rows"]
    # both chains of both trials kept round 0 and stopped in round 1, marked as such
    assert sorted({(s, t, r) for s, t, r, _, _ in rows}) == [
        ("random_mask", 0, 0), ("random_mask", 1, 0), ("rewind", 0, 0), ("rewind", 1, 0)]
    assert {reason for *_, reason, _ in rows} == {"interrupted"}
    assert all(acc is not None for *_, acc in rows)
    status = result["status"]
    # 4 chains cut short; the 2 x 3 random-reinit controls never ran
    assert (status["total"], status["complete"], status["cut_short"], status["not_run"]) == \
        (10, 0, 4, 6)
    assert status["interrupted"] and status["text"] == \
        "interrupted after 0 of 10 runs completed (4 cut short, 6 not run)"


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_ctrl_c_between_unbatched_runs_keeps_the_finished_runs(n_jobs):
    # SIGINT to the experiment's own process as soon as the first run finished
    body = CURVE.format(kwargs=f"n_jobs={n_jobs}, batched=False, "
                               "progress=sigint_once")
    code, result, out = run_script(body)
    assert code == 0, out
    # before: KeyboardInterrupt escaped ticket_curve (n_jobs=1) or joblib aborted the
    # pool (n_jobs=2), and every finished run was lost
    assert result["kind"] == "interrupted", out
    status = result["status"]
    assert status["interrupted"] and status["complete"] >= 1
    assert status["not_run"] >= 1 and status["lost"] == 0
    assert status["complete"] + status["cut_short"] + status["not_run"] == status["total"]
    complete = {(s, t) for s, t, _, reason, _ in result["rows"] if reason == ""}
    # a finished run has all its rounds
    for s, t in complete:
        assert sorted(r for s2, t2, r, *_ in result["rows"] if (s2, t2) == (s, t)) == \
            [0, 1, 2, 3]


def test_first_ctrl_c_requests_a_stop_the_second_aborts():
    with _interrupt.experiment_stop():
        handler = signal.getsignal(signal.SIGINT)
        assert not _interrupt.stop_requested()
        handler(signal.SIGINT, None)  # the first Ctrl-C raises nothing where it lands
        assert _interrupt.stop_requested() and not _interrupt.aborting()
        with pytest.raises(KeyboardInterrupt, match="aborted"):
            handler(signal.SIGINT, None)
        assert _interrupt.aborting()
        # the default handler is back: a third Ctrl-C is Python's own
        assert signal.getsignal(signal.SIGINT) is not handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not _interrupt.stop_requested() and not _interrupt.aborting()


def test_an_abort_is_not_swallowed_by_a_fit():
    X, y = load_digits(return_X_y=True)
    X, y = (X / 16.0)[:300], y[:300]

    class AbortInRoundOne(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            handler = signal.getsignal(signal.SIGINT)
            if training and dict(net.callbacks_)["sklottery_masks"].masks is not None \
                    and not all(bool(m.all()) for m in
                                dict(net.callbacks_)["sklottery_masks"].masks.values()):
                handler(signal.SIGINT, None)   # first: a stop request
                handler(signal.SIGINT, None)   # second: abort, raises here

    clf = LotteryTicketClassifier(hidden_layer_sizes=(16,), n_rounds=2, max_epochs=1,
                                  callbacks=[AbortInRoundOne()], random_state=0)
    with _interrupt.experiment_stop(), pytest.raises(KeyboardInterrupt, match="aborted"):
        clf.fit(X, y)   # a plain interrupt would have kept round 0 and returned


# ------------------------------------------------------------- dead workers
class KillOwnWorker(Callback):
    """SIGKILL the worker process this fit runs in, at its first batch.

    Only in a worker (never in the test's own process), and only while
    ``marker`` does not exist (``always=False``: once, so the retry succeeds).
    """

    def __init__(self, marker, parent_pid, always=False):
        self.marker = marker
        self.parent_pid = parent_pid
        self.always = always

    def on_batch_end(self, net, training=False, **kwargs):
        if not training or os.getpid() == self.parent_pid:
            return
        if self.always or not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(scope="module")
def small_digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0)[:300], y[:300]


@pytest.mark.parametrize("batched", [False, True])
def test_a_killed_worker_costs_only_its_runs_which_are_retried_once(small_digits, tmp_path,
                                                                    batched):
    X, y = small_digits
    marker = str(tmp_path / "killed")
    est = LotteryTicketClassifier(hidden_layer_sizes=(16,), n_rounds=1, max_epochs=1,
                                  callbacks=[KillOwnWorker(marker, os.getpid())])
    with pytest.warns(RuntimeWarning, match=r"A worker died .*retried once; 0 could not"):
        df = ticket_curve(est, X, y, strategies=["rewind", "random"], n_trials=2, n_jobs=2,
                          random_state=0, batched=batched)
    assert os.path.exists(marker)  # a worker really died
    # before: TerminatedWorkerError, and every completed run was lost
    status = run_status(df)
    assert (status["total"], status["complete"], status["lost"]) == (4, 4, 0)
    assert (df["stop_reason"] == "").all() and df["test_acc"].notna().all()


def test_runs_whose_worker_dies_twice_are_reported_lost(small_digits, tmp_path):
    X, y = small_digits
    est = LotteryTicketClassifier(hidden_layer_sizes=(16,), n_rounds=1, max_epochs=1,
                                  callbacks=[KillOwnWorker(str(tmp_path / "k"), os.getpid(),
                                                           always=True)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = ticket_curve(est, X, y, strategies=["rewind", "random"], n_trials=2, n_jobs=2,
                          random_state=0, batched=False)
    messages = " ".join(str(w.message) for w in caught)
    assert "2 could not be recovered and are reported as lost" in messages
    assert "rewind trial 0: lost" in messages and "rewind trial 1: lost" in messages
    status = run_status(df)
    # the two tickets are lost; their controls could not run
    assert (status["total"], status["lost"], status["not_run"], status["complete"]) == \
        (4, 2, 2, 0)
    assert list(df["stop_reason"]) == ["lost", "lost"]
    assert df["test_acc"].isna().all()
