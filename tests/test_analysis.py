"""ticket_curve, mask analysis, condition sweeps and the compare command."""

import os

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skorch.callbacks import Callback

from sklottery import DivergenceWarning, LotteryTicketClassifier, PruningInterruptedWarning
from sklottery.__main__ import main
from sklottery.stats import VERDICTS
from sklottery.analysis import (
    RESULT_COLUMNS,
    STRATEGIES,
    conditions_sweep,
    mask_analysis,
    n_runs,
    ticket_curve,
    tickets_exist,
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0)[:500], y[:500]


def tiny(**kw):
    p = dict(hidden_layer_sizes=(24,), max_epochs=2, batch_size=50, n_rounds=2,
             learning_rate_init=5e-3)
    p.update(kw)
    return LotteryTicketClassifier(**p)


@pytest.fixture(scope="module")
def all_strategies(digits):
    X, y = digits
    return ticket_curve(tiny(), X, y, strategies=STRATEGIES, n_trials=2, random_state=0,
                        return_runs=True)


def test_table_columns_and_rows(all_strategies):
    df, _ = all_strategies
    assert list(df.columns) == RESULT_COLUMNS
    assert set(df["strategy"]) == set(STRATEGIES)
    chain = df[df["strategy"].isin(["rewind", "rewind_k", "random_mask", "continue",
                                    "same_sign"])]
    # chains: rounds 0..2 for each of 2 trials; mask controls: rounds 1..2
    assert chain.groupby("strategy").size().eq(6).all()
    controls = df[df["strategy"].isin(["random", "scratch_e", "scratch_b", "one_shot"])]
    assert controls.groupby("strategy").size().eq(4).all()
    assert set(controls["round"]) == {1, 2}
    assert df["test_acc"].between(0, 1).all() and df["train_acc"].between(0, 1).all()
    assert (df["seconds"] > 0).all()


def test_controls_use_the_ticket_levels(all_strategies):
    df, _ = all_strategies
    ticket = df[df.strategy == "rewind"].set_index(["trial", "round"])["weights_remaining"]
    for s in ["random", "scratch_e", "scratch_b", "one_shot"]:
        sub = df[df.strategy == s].set_index(["trial", "round"])["weights_remaining"]
        pd.testing.assert_series_equal(sub.sort_index(), ticket.loc[sub.index].sort_index(),
                                       check_names=False)


def test_paired_trials_share_the_dense_round(all_strategies):
    df, _ = all_strategies
    dense = df[df["round"] == 0].pivot(index="trial", columns="strategy", values="test_acc")
    # same split, same theta0 for every chain strategy -> identical dense rounds
    for s in dense.columns:
        np.testing.assert_array_equal(dense[s].to_numpy(), dense["rewind"].to_numpy())


def test_scratch_b_budget(all_strategies):
    df, _ = all_strategies
    sb = df[df.strategy == "scratch_b"]
    expected = np.ceil(2 * np.minimum(100.0 / sb["weights_remaining"], 2.0) - 1e-9)
    np.testing.assert_array_equal(sb["epochs"].to_numpy(), expected.to_numpy())
    assert (df[df.strategy == "scratch_e"]["epochs"] == 2).all()


def test_early_stop_accuracy_is_one_of_the_epochs(all_strategies):
    df, _ = all_strategies
    assert (df["early_stop_iteration"] <= df["n_iter"]).all()
    last = df["early_stop_iteration"] == df["n_iter"]
    np.testing.assert_array_equal(df.loc[last, "test_acc_early_stop"],
                                  df.loc[last, "test_acc"])


def test_mask_analysis(all_strategies):
    _, runs = all_strategies
    rep = mask_analysis(runs)
    assert set(rep) == {"layer_sparsity", "overlap_trials", "overlap_rounds", "sign_kept",
                        "movement"}
    frac = rep["layer_sparsity"].loc["__total__", "fraction_remaining"]
    assert 0.6 < frac < 0.7  # two rounds of 20 % (output 10 %)
    ov = rep["overlap_trials"].to_numpy()
    assert np.allclose(np.diag(ov), 1.0) and (ov <= 1).all()
    assert rep["overlap_rounds"]["jaccard_with_previous"].between(0, 1).all()
    assert rep["sign_kept"]["__total__"].between(0, 1).all()
    mv = rep["movement"]
    assert {"mean_movement_kept", "mean_movement_pruned"} <= set(mv.columns)
    with pytest.raises(ValueError, match="No runs"):
        mask_analysis(runs, strategy="bogus")


def test_reproducible(digits):
    X, y = digits
    a = ticket_curve(tiny(n_rounds=1), X, y, n_trials=1, random_state=3)
    b = ticket_curve(tiny(n_rounds=1), X, y, n_trials=1, random_state=3)
    c = ticket_curve(tiny(n_rounds=1), X, y, n_trials=1, random_state=4)
    cols = [col for col in RESULT_COLUMNS if col != "seconds"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert not a[cols].equals(c[cols])


def test_parallel_equals_sequential_and_pipeline(digits):
    X, y = digits
    est = make_pipeline(StandardScaler(), tiny(n_rounds=1))
    seq = ticket_curve(est, X, y, n_trials=2, random_state=0)
    par = ticket_curve(est, X, y, n_trials=2, random_state=0, n_jobs=2)
    cols = [col for col in RESULT_COLUMNS if col != "seconds"]
    pd.testing.assert_frame_equal(seq[cols], par[cols])
    assert n_runs(est[-1], ["rewind", "random"], 2) == 2 * (1 + 1)
    assert n_runs(est, ["random", "continue"], 3) == 3 * (2 + 1)  # rewind added
    assert n_runs(tiny(target_sparsity=0.5), ["rewind"], 2) is None


def test_bad_arguments(digits):
    X, y = digits
    with pytest.raises(ValueError, match="Unknown strategies"):
        ticket_curve(tiny(), X, y, strategies=["rewind", "lucky"])
    with pytest.raises(ValueError, match="n_trials"):
        ticket_curve(tiny(), X, y, n_trials=0)
    with pytest.raises(ValueError, match="samples"):
        ticket_curve(tiny(), X, y[:-1])
    with pytest.raises(ValueError, match="both X_test and y_test"):
        ticket_curve(tiny(), X, y, X_test=X)


def test_fixed_test_set_and_cv(digits):
    X, y = digits
    df = ticket_curve(tiny(n_rounds=1), X[:400], y[:400], X_test=X[400:], y_test=y[400:],
                      n_trials=1, random_state=0, strategies=["rewind"])
    assert len(df) == 2
    df = ticket_curve(tiny(n_rounds=1), X, y, cv=2, strategies=["rewind"], random_state=0)
    assert sorted(df["trial"].unique()) == [0, 1]


def test_conditions_sweep_and_tickets_exist(digits):
    X, y = digits
    res = conditions_sweep(tiny(n_rounds=1), X, y, {"learning_rate_init": [1e-3, 1e-2]},
                           n_trials=2, random_state=0)
    assert set(res["learning_rate_init"]) == {1e-3, 1e-2}
    table = tickets_exist(res, ["learning_rate_init"])
    assert {"weights_remaining", "diff", "p_value", "matches_dense", "ticket_exists"} <= set(
        table.columns)
    assert len(table) == 2  # one pruned level per learning rate
    for _, row in table.iterrows():
        # one pruned level per condition: a ticket exists there when it matches dense
        # and beats the control (lower bound of the 95 % interval above 0)
        assert row["ticket_exists"] == (row["matches_dense"] and row["decision"] == "beats")
        assert (row["decision"] == "beats") == (row["ci_low"] > 0)
        assert row["verdict"] in VERDICTS
    with pytest.raises(ValueError, match="Unknown estimator parameters"):
        conditions_sweep(tiny(), X, y, {"bogus": [1]})


def test_tickets_exist_on_constructed_table():
    rows = []
    rng = np.random.RandomState(0)
    for lr, gap in [(0.001, 0.10), (0.1, 0.0)]:
        for t in range(5):
            rows.append(dict(lr=lr, strategy="rewind", trial=t, round=0,
                             weights_remaining=100.0, test_acc=0.9 + 0.001 * rng.randn()))
            rows.append(dict(lr=lr, strategy="rewind", trial=t, round=1,
                             weights_remaining=50.0, test_acc=0.9 + 0.001 * rng.randn()))
            rows.append(dict(lr=lr, strategy="random", trial=t, round=1,
                             weights_remaining=50.0, test_acc=0.9 - gap + 0.001 * rng.randn()))
    table = tickets_exist(pd.DataFrame(rows), ["lr"]).set_index("lr")
    assert bool(table.loc[0.001, "ticket_exists"]) is True
    assert bool(table.loc[0.1, "ticket_exists"]) is False
    assert table.loc[0.001, "verdict"] == "winning_ticket"
    assert table.loc[0.1, "verdict"] == "no_ticket_effect"
    assert table.loc[0.001, "diff"] == pytest.approx(0.1, abs=0.005)


def test_demo_command(capsys):
    assert main(["demo", "--rounds", "1", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    # digits: 64*300 + 300*100 weights at 20 %, 100*10 at 10 % -> 80.20 % left
    assert "round" in out and "final network" in out and "80.20" in out


def test_evaluation_callback_does_not_change_training(digits):
    X, y = digits
    from sklottery.analysis import _fit_and_record

    est = tiny(n_rounds=1, random_state=0)
    _, fitted, _ = _fit_and_record(est, X, y, X[:50], y[:50])
    plain = tiny(n_rounds=1, random_state=0).fit(X, y)
    for k, v in plain.net_.module_.state_dict().items():
        assert torch.equal(v, fitted.net_.module_.state_dict()[k])
    assert os.environ.get("NEVER_SET_BY_SKLOTTERY") is None


class _InterruptSecondRound(Callback):
    """Raises KeyboardInterrupt when the second round (round 1) starts."""

    def initialize(self):
        self.rounds_seen_ = 0
        return self

    def on_train_begin(self, net, **kwargs):
        self.rounds_seen_ += 1
        if self.rounds_seen_ == 2:
            raise KeyboardInterrupt


def test_ticket_curve_surfaces_interrupted_runs_once(digits):
    X, y = digits
    est = tiny(n_rounds=2, callbacks=[_InterruptSecondRound()])
    with pytest.warns(PruningInterruptedWarning) as record:
        df = ticket_curve(est, X, y, strategies=["rewind", "random"], n_trials=2,
                          random_state=0)
    cut = [w for w in record if issubclass(w.category, PruningInterruptedWarning)]
    assert len(cut) == 1  # surfaced once, listing both trials
    message = str(cut[0].message)
    # 2 chains cut short in round 1; their 2 x 2 random-reinit controls of rounds
    # 1 and 2 count as planned runs (2 of them ran: the rounds the tickets reached)
    assert "2 of 6 runs were cut short" in message
    assert "rewind trial 0: interrupted" in message and "rewind trial 1" in message
    rewind = df[df.strategy == "rewind"]
    assert list(rewind["round"]) == [0, 0] and (rewind["stop_reason"] == "interrupted").all()
    assert (df.loc[df.strategy == "random", "stop_reason"] == "").all()


def test_ticket_curve_keeps_a_run_that_diverged_in_its_first_round(digits):
    X, y = digits
    with pytest.warns(DivergenceWarning, match="1 of 1 runs were cut short"):
        df = ticket_curve(tiny(n_rounds=1, learning_rate_init=1e30), X * 1e3, y,
                          strategies=["rewind"], n_trials=1, random_state=0)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["stop_reason"] == "diverged" and row["round"] == 0
    assert np.isnan(row["test_acc"]) and row["n_test"] == 125


def test_eval_grid_and_supermask_column(digits):
    X, y = digits
    # 500 * 0.75 train, 10 % validation -> 338 samples, batch 10 -> 34 iterations/epoch
    est = tiny(n_rounds=1, batch_size=10, eval_every=5)
    df = ticket_curve(est, X, y, strategies=["rewind"], n_trials=1, random_state=0)
    assert df["n_iter"].eq(68).all()
    es = df["early_stop_iteration"].to_numpy()
    assert np.all((es % 5 == 0) | (es == 68))
    assert df["test_acc_init"].between(0, 1).all() and (df["n_test"] == 125).all()
    # the column is the accuracy of the masked start weights: check it by hand
    cb_est = tiny(n_rounds=1, random_state=0)
    X_te, y_te = torch.as_tensor(X[:100], dtype=torch.float32), torch.as_tensor(y[:100])
    from sklottery.analysis import EvaluationCallback
    cb = EvaluationCallback(X_te, y_te, X_te, y_te)
    cb_est.set_params(callbacks=[("ev", cb)], record_history=True).fit(X[100:], y[100:])
    rec = dict(cb_est.net_.callbacks_)["ev"].rounds_
    module = cb_est.net_.module_
    state = {k: v.clone() for k, v in cb_est.init_params_.items()}
    # the history's masked start of round 1 is theta0 under the round-1 mask
    for name, mask in cb_est.history_[1]["masks"].items():
        assert torch.equal(cb_est.history_[1]["start"][name], state[name] * mask)
        state[name] = state[name] * mask
    module.load_state_dict(state)
    with torch.no_grad():
        by_hand = (module(X_te).argmax(1) == y_te).float().mean().item()
    assert rec[1]["test_acc_init"] == pytest.approx(by_hand)


def test_evaluation_grid_does_not_change_training(digits):
    X, y = digits
    a = tiny(n_rounds=1, batch_size=10, eval_every=3, random_state=0).fit(X, y)
    b = tiny(n_rounds=1, batch_size=10, eval_every=1000, random_state=0).fit(X, y)
    for name in a.masks_:
        assert torch.equal(a.masks_[name], b.masks_[name])
    for k, v in a.net_.module_.state_dict().items():
        assert torch.equal(v, b.net_.module_.state_dict()[k])
    # a finer grid resolves the early stop more finely (or equally)
    assert all(r["early_stop_iteration"] % 3 == 0 or r["early_stop_iteration"] == r["n_iter"]
               for r in a.rounds_)
    assert all(r["early_stop_iteration"] == r["n_iter"] for r in b.rounds_)


def test_test_accuracy_at_early_stop_is_that_of_the_early_stop_network(digits):
    # theta_k captured at k = the early-stop iteration (late-rewinding capture)
    # is the network the callback scored at early stop.
    from sklottery.analysis import EvaluationCallback

    X, y = digits
    X_te, y_te = torch.as_tensor(X[:100], dtype=torch.float32), torch.as_tensor(y[:100])
    # a large learning rate: the validation loss bottoms out early (at 56 of 360)
    kw = dict(hidden_layer_sizes=(64,), max_epochs=20, batch_size=20, eval_every=7,
              learning_rate_init=0.05, n_rounds=0, random_state=1)
    cb = EvaluationCallback(X_te, y_te, X_te, y_te)
    est = LotteryTicketClassifier(callbacks=[("ev", cb)], **kw).fit(X[100:], y[100:])
    rec = dict(est.net_.callbacks_)["ev"].rounds_[0]
    es = est.rounds_[0]["early_stop_iteration"]
    assert rec["early_stop_iteration"] == es and es % 7 == 0 and es < est.rounds_[0]["n_iter"]
    again = LotteryTicketClassifier(rewind_iteration=es, **kw).fit(X[100:], y[100:])
    module = again.net_.module_
    module.load_state_dict(again.rewind_params_)
    with torch.no_grad():
        by_hand = (module(X_te).argmax(1) == y_te).float().mean().item()
    assert rec["test_acc_early_stop"] == pytest.approx(by_hand)
    assert rec["test_acc"] == pytest.approx(est.score(X[:100], y[:100]))


def test_ticket_curve_warns_when_early_stop_is_always_the_end(digits):
    from sklottery.exceptions import UndertrainingWarning

    X, y = digits
    # one epoch of a few iterations: the validation loss is still falling at the end
    with pytest.warns(UndertrainingWarning, match=r"In \d+ of \d+ rounds the minimum "
                                                  r"validation loss fell on the last"):
        ticket_curve(tiny(n_rounds=1, max_epochs=1), X, y, n_trials=2, random_state=0)
