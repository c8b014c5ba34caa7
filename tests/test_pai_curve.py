"""Pruning at initialization inside ticket_curve and ``compare --methods``.

A PaI strategy trains, at every level of the ticket, the method's mask
computed on the trial's θ0 (the ticket's ``random_state``), from that θ0:
the mask must have the ticket's number of kept weights (to the rounding of
one level) and be the mask ``pai_masks`` gives for that θ0; a method whose
mask would disconnect a layer gets a ``layer_collapse`` row, not a crash.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sklottery import LotteryTicketClassifier
from sklottery.__main__ import main
from sklottery.analysis import PAI_STRATEGIES, ticket_curve
from sklottery.pai import pai_masks


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:400], y[:400]


def _small(**kw):
    params = dict(hidden_layer_sizes=(32, 16), max_epochs=2, batch_size=50, n_rounds=2,
                  pruning_rate=0.5, random_state=0)
    params.update(kw)
    return LotteryTicketClassifier(**params)


@pytest.mark.parametrize("batched", [True, False])
def test_pai_strategies_train_the_methods_masks_from_the_tickets_theta0(digits, batched):
    X, y = digits
    df, runs = ticket_curve(_small(), X, y, strategies=("rewind", "snip", "synflow"),
                            n_trials=2, random_state=0, batched=batched, return_runs=True)
    for s in ("snip", "synflow"):
        part = df[df.strategy == s]
        assert sorted(part["round"].unique()) == [1, 2]
        assert part["test_acc"].notna().all()
        ticket = df[(df.strategy == "rewind") & df["round"].isin([1, 2])]
        np.testing.assert_allclose(part.sort_values(["trial", "round"])["weights_remaining"],
                                   ticket.sort_values(["trial", "round"])["weights_remaining"])
    assert set(PAI_STRATEGIES) == {"snip", "grasp", "synflow"}


def test_the_pai_mask_is_the_methods_mask_on_the_tickets_theta0(digits, monkeypatch):
    """The run's start weights are the ticket's θ0 and its masks are pai_masks' for them."""
    import sklottery.analysis as analysis

    X, y = digits
    calls = []
    original = analysis._pai_control_masks

    def spy(method, estimator, seed, levels, split, arrays):
        masks = original(method, estimator, seed, levels, split, arrays)
        calls.append((method, seed, levels, split, masks))
        return masks

    monkeypatch.setattr(analysis, "_pai_control_masks", spy)
    df, runs = ticket_curve(_small(), X, y, strategies=("rewind", "snip", "snip_shuffle"),
                            n_trials=1, random_state=0, return_runs=True)
    # one scoring per trial for both levels, shared by the method and its shuffle
    assert [(c[0], len(c[2])) for c in calls] == [("snip", 2)]
    method, seed, levels, split, all_masks = calls[0]
    X_tr, y_tr = X[split[0]], y[split[0]]
    for level, masks in zip(levels, all_masks):  # each level: a lone call's masks
        again = pai_masks(_small(random_state=seed), X_tr, y_tr, "snip",
                          sparsity=1 - level / 100, random_state=seed)
        for n in masks:
            assert torch.equal(masks[n], again[n])
    masks = all_masks[0]
    # θ0 of the PaI run is the ticket's (the same random_state, the same init)
    theta0 = runs[("rewind", 0)]["init"]
    est = _small(random_state=seed, n_rounds=0)
    est.fit(X_tr, y_tr, initial_masks=masks)
    for k, v in theta0.items():
        assert torch.equal(v, est.init_params_[k])


def test_layer_collapse_is_a_row_and_a_warning_not_a_crash(digits, monkeypatch):
    import sklottery.analysis as analysis
    from sklottery.exceptions import LayerCollapseError

    X, y = digits

    def collapse(method, estimator, seed, levels, *args):
        return [LayerCollapseError("Layer collapse: method='grasp' prunes every weight")
                for _ in levels]

    monkeypatch.setattr(analysis, "_pai_control_masks", collapse)
    with pytest.warns(UserWarning, match="Layer collapse: 4 pruning-at-initialization"):
        df = ticket_curve(_small(), X, y, strategies=("rewind", "grasp"), n_trials=2,
                          random_state=0)
    part = df[df.strategy == "grasp"]
    assert len(part) == 4 and (part["stop_reason"] == "layer_collapse").all()
    assert part["test_acc"].isna().all()
    assert df.attrs["sklottery_runs"]["complete"] == df.attrs["sklottery_runs"]["total"]


def test_compare_methods(tmp_path, capsys):
    assert main(["compare", "--datasets", "iris", "--methods", "imp,snip,random",
                 "--trials", "2", "--rounds", "1", "--n-jobs", "1", "--quiet",
                 "--out", str(tmp_path)]) == 0
    import pandas as pd

    results = pd.read_csv(tmp_path / "results.csv")
    assert set(results["strategy"]) == {"rewind", "snip", "snip_shuffle", "random_mask",
                                        "random", "shuffle_layer"}
    with pytest.raises(SystemExit, match="unknown method"):
        main(["compare", "--methods", "imp,obd", "--out", str(tmp_path / "x")])


def test_a_shuffled_pai_mask_keeps_the_methods_layer_counts(digits, monkeypatch):
    import sklottery.analysis as analysis

    X, y = digits
    seen = []
    original = analysis._control_spec

    def spy(task, data):
        if task[0] in ("synflow", "synflow_shuffle"):
            seen.append((task[0], task[2], task[4], task[5][0]))
        return original(task, data)

    monkeypatch.setattr(analysis, "_control_spec", spy)
    ticket_curve(_small(), X, y, strategies=("rewind", "synflow", "synflow_shuffle"),
                 n_trials=1, random_state=0, batched=False)
    by = {(s, r): (seed, m) for s, r, seed, m in seen}
    for r in (1, 2):
        (seed_a, a), (seed_b, b) = by[("synflow", r)], by[("synflow_shuffle", r)]
        assert seed_a == seed_b  # both from the trial's θ0
        for n in a:
            assert int(a[n].sum()) == int(b[n].sum())  # the same count per layer
        assert any(not torch.equal(a[n], b[n]) for n in a)  # other positions


def test_compare_states_each_masks_shuffle_check(tmp_path, capsys):
    """The report's sentence names, per method run with its shuffle, whether its mask
    carries more than its layer densities (the ticket's and SNIP's here)."""
    assert main(["compare", "--datasets", "iris", "--methods", "imp,snip", "--trials", "2",
                 "--rounds", "1", "--n-jobs", "1", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Sanity checks of the masks" in out
    assert "whether the ticket beats its layer-wise shuffled mask" in out
    assert "SNIP's mask" in out


# ------------------------------------------------------------------ control_rounds
@pytest.mark.parametrize("control_rounds, expected", [("last", [2]), ([1], [1]),
                                                      ((2, 1, 2), [1, 2])])
def test_control_rounds_trains_the_controls_only_at_those_rounds(digits, control_rounds,
                                                                 expected):
    X, y = digits
    df = ticket_curve(_small(), X, y, strategies=("rewind", "random", "snip"), n_trials=2,
                      random_state=0, batched=False, control_rounds=control_rounds)
    for s in ("random", "snip"):
        assert sorted(df.loc[df.strategy == s, "round"].unique()) == expected
    # the chain still runs every round
    assert sorted(df.loc[df.strategy == "rewind", "round"].unique()) == [0, 1, 2]
    status = df.attrs["sklottery_runs"]
    assert status["total"] == status["complete"] == 2 * (1 + 2 * len(expected))


def test_a_control_at_a_round_is_the_same_run_whatever_the_other_rounds(digits):
    """Same seed and mask as in the 'all' curve: the same row (one process, unbatched)."""
    X, y = digits
    kw = dict(strategies=("rewind", "random", "shuffle_layer", "snip"), n_trials=2,
              random_state=3, batched=False)
    full = ticket_curve(_small(), X, y, **kw)
    last = ticket_curve(_small(), X, y, control_rounds="last", **kw)
    cols = ["strategy", "trial", "round", "weights_remaining", "test_acc", "train_acc"]
    expected = full[(full["round"] == 2) | (full.strategy == "rewind")][cols]
    np.testing.assert_array_equal(
        last[cols].sort_values(cols[:3]).to_numpy(),
        expected.sort_values(cols[:3]).to_numpy())


@pytest.mark.parametrize("bad, match", [
    ("first", "must be 'all', 'last'"), (0, "sequence of round"), ([], "is empty"),
    ([0], r"\[0\] are not pruned rounds"), ([3], r"n_rounds=2"), ([1.5], "round numbers"),
    ([True], "round numbers"), (b"\x01", "round numbers")])
def test_control_rounds_is_checked_before_any_training(digits, bad, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        ticket_curve(_small(max_epochs=10**6), X, y, strategies=("rewind", "random"),
                     n_trials=1, control_rounds=bad)


def test_control_rounds_by_number_needs_n_rounds(digits):
    X, y = digits
    est = _small(target_sparsity=0.7)
    with pytest.raises(ValueError, match="target_sparsity"):
        ticket_curve(est, X, y, strategies=("rewind", "random"), n_trials=1,
                     control_rounds=[1])


def test_control_rounds_last_with_target_sparsity_is_the_tickets_last_round(digits):
    X, y = digits
    est = _small(target_sparsity=0.7)
    df = ticket_curve(est, X, y, strategies=("rewind", "random"), n_trials=1,
                      random_state=0, batched=False, control_rounds="last")
    last = df.loc[df.strategy == "rewind", "round"].max()
    assert last >= 2
    assert df.loc[df.strategy == "random", "round"].tolist() == [last]


def test_a_template_that_prunes_at_initialization_is_refused(digits):
    X, y = digits
    with pytest.raises(ValueError, match="strategies=\\('rewind', 'snip'"):
        ticket_curve(_small(pruning_criterion="snip", one_shot=True, max_epochs=10**6), X, y,
                     strategies=("rewind", "random"), n_trials=1)
