"""Sanity-check mask controls (Frankle et al. 2021): shuffle within layers, inversion."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from skorch.callbacks import Callback

from sklottery import LotteryTicketClassifier
from sklottery.analysis import RESULT_COLUMNS, ticket_curve
from sklottery.pruning import compute_scores, prune_masks
from sklottery.sanity import imp_scores, invert_masks, shuffle_within_layers
from sklottery.stats import mask_information

CONTROLS = ("shuffle_layer", "invert", "random")


# ---------------------------------------------------------------- pure functions
def _masks(seed=0, shapes=(("a", (20, 30)), ("b", (10, 20)), ("c", (7,)))):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(s, generator=g) < 0.3 for n, s in shapes}


def test_shuffle_keeps_counts_and_moves_positions():
    masks = _masks()
    out = shuffle_within_layers(masks, torch.Generator().manual_seed(1))
    assert list(out) == list(masks)
    for n, m in masks.items():
        assert out[n].dtype == torch.bool and out[n].shape == m.shape
        assert int(out[n].sum()) == int(m.sum())
    assert any(not torch.equal(out[n], masks[n]) for n in ("a", "b"))
    # reproducible from the generator's seed, different for another seed
    again = shuffle_within_layers(masks, torch.Generator().manual_seed(1))
    other = shuffle_within_layers(masks, torch.Generator().manual_seed(2))
    assert all(torch.equal(out[n], again[n]) for n in masks)
    assert not all(torch.equal(out[n], other[n]) for n in masks)
    # the input is not modified, and a full or empty layer stays as it is
    full = {"x": torch.ones(3, 4, dtype=torch.bool)}
    assert torch.equal(shuffle_within_layers(full)["x"], full["x"])


def test_shuffle_positions_are_uniform():
    mask = {"a": torch.tensor([True, False, False, False])}
    g = torch.Generator().manual_seed(0)
    hits = sum(shuffle_within_layers(mask, g)["a"].long() for _ in range(4000))
    assert hits.sum() == 4000
    assert (hits.float() / 4000 - 0.25).abs().max() < 0.03


def test_invert_keeps_the_lowest_scores_among_candidates():
    g = torch.Generator().manual_seed(3)
    masks = _masks(3)
    scores = {n: torch.randn(m.shape, generator=g) for n, m in masks.items()}
    cand = {n: torch.rand(m.shape, generator=g) < 0.8 for n, m in masks.items()}
    out = invert_masks(masks, scores, cand)
    for n, m in masks.items():
        k = int(m.sum())
        assert int(out[n].sum()) == k
        assert not (out[n] & ~cand[n]).any()
        s, c = scores[n].flatten(), cand[n].flatten()
        expected = torch.sort(s[c]).values[:k]
        np.testing.assert_array_equal(torch.sort(s[out[n].flatten()]).values, expected)
    # without candidates: the lowest of all weights
    out = invert_masks({"a": torch.tensor([True, True, False, False, False])},
                       {"a": torch.tensor([5.0, 1.0, 3.0, 0.5, 2.0])})
    assert out["a"].tolist() == [False, True, False, True, False]
    # ties keep the lower index
    out = invert_masks({"a": torch.tensor([True, False, False])}, {"a": torch.zeros(3)})
    assert out["a"].tolist() == [True, False, False]
    with pytest.raises(ValueError, match="candidates"):
        invert_masks({"a": torch.tensor([True, True])}, {"a": torch.zeros(2)},
                     {"a": torch.tensor([True, False])})
    with pytest.raises(ValueError, match="shape"):
        invert_masks({"a": torch.tensor([True, True])}, {"a": torch.zeros(3)})


def _imp_history(n_rounds, rate, scope="layer", seed=0):
    """Masks and 'trained' weights of a simulated IMP run."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"w1": (30, 20), "w2": (10, 30)}
    masks = [{n: torch.ones(s, dtype=torch.bool) for n, s in shapes.items()}]
    trained = []
    for _ in range(n_rounds):
        final = {n: torch.randn(s, generator=g) * masks[-1][n] for n, s in shapes.items()}
        trained.append(final)
        masks.append(prune_masks(compute_scores("magnitude", final), masks[-1],
                                 {n: rate for n in shapes}, scope=scope))
    return masks, trained


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_imp_scores_rank_the_ticket_highest(scope):
    masks, trained = _imp_history(4, 0.3, scope)
    for r in range(1, 5):
        scores = imp_scores(masks[:r], trained[:r])
        ticket = masks[r]
        # the ticket keeps the highest scores of every layer ...
        top = invert_masks(ticket, {n: -s for n, s in scores.items()})
        assert all(torch.equal(top[n], ticket[n]) for n in ticket)
        # ... the inversion the lowest: disjoint where the layer keeps <= 50 %
        inv = invert_masks(ticket, scores)
        for n, m in ticket.items():
            k, size = int(m.sum()), m.numel()
            assert int(inv[n].sum()) == k
            assert int((inv[n] & m).sum()) == max(0, 2 * k - size)
        if r == 1:
            # after one prune the inversion is the lowest |w| of the dense network
            direct = invert_masks(ticket, compute_scores("magnitude", trained[0]))
            assert all(torch.equal(direct[n], inv[n]) for n in ticket)
    with pytest.raises(ValueError, match="random"):
        imp_scores(masks[:1], trained[:1], criterion="random")


# ---------------------------------------------------------------- ticket_curve
class _Recorder(Callback):
    """Records every fitted round's masks and masked start weights (class-level,
    as the estimators clone their callbacks)."""

    seen = []

    def on_round_begin(self, net, masks=None, **kwargs):
        self._masks = {n: m.detach().cpu().clone() for n, m in masks.items()}

    def on_train_begin(self, net, **kwargs):
        state = {k: v.detach().cpu().clone() for k, v in net.module_.state_dict().items()}
        type(self).seen.append((self._masks, state))


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0)[:400], y[:400]


def tiny(**kw):
    p = dict(hidden_layer_sizes=(24,), max_epochs=2, batch_size=50, n_rounds=2,
             learning_rate_init=5e-3, pruning_rate=0.5)
    p.update(kw)
    return LotteryTicketClassifier(**p)


@pytest.fixture(scope="module", params=[True, False], ids=["batched", "alone"])
def curve(digits, request):
    X, y = digits
    _Recorder.seen = []
    est = tiny(callbacks=[("recorder", _Recorder())])
    df, runs = ticket_curve(est, X, y, strategies=("rewind",) + CONTROLS, n_trials=2,
                            random_state=0, return_runs=True, batched=request.param)
    return df, runs, list(_Recorder.seen)


def test_rows_for_every_control_and_round(curve):
    df, runs, _ = curve
    assert list(df.columns) == RESULT_COLUMNS
    assert set(df["strategy"]) == {"rewind", *CONTROLS}
    ticket = df[df.strategy == "rewind"].set_index(["trial", "round"])
    for s in CONTROLS:
        sub = df[df.strategy == s].set_index(["trial", "round"]).sort_index()
        assert list(sub.index) == [(t, r) for t in (0, 1) for r in (1, 2)]
        np.testing.assert_array_equal(sub["weights_remaining"],
                                      ticket.loc[sub.index, "weights_remaining"])
        assert sub["test_acc"].between(0, 1).all()
        assert (sub["epochs"] == 2).all()
        assert sub["test_acc_no_retrain"].isna().all()


def _find(seen, trial_init):
    """The masks of the recorded fits that start from ``trial_init`` (under their masks)."""
    found = []
    for m, state in seen:
        if all(torch.equal(state[n], trial_init[n] * m[n]) for n in m) and \
                all(torch.equal(state[k], v) for k, v in trial_init.items() if k not in m):
            found.append(m)
    return found


def test_controls_start_from_the_tickets_theta0(curve):
    _, runs, seen = curve
    for t in (0, 1):
        ticket = runs[("rewind", t)]
        init = ticket["init"]
        starts = _find(seen, init)
        # ticket rounds 0..2, shuffle and invert rounds 1..2 start from this θ0
        assert len(starts) == 3 + 2 + 2
        for r in (1, 2):
            mask = ticket["masks"][r]
            counts = {n: int(m.sum()) for n, m in mask.items()}
            same_counts = [m for m in starts
                           if {n: int(v.sum()) for n, v in m.items()} == counts]
            shuffled = [m for m in same_counts if not all(torch.equal(m[n], mask[n])
                                                          for n in mask)]
            # the shuffle and the inversion of round r (the ticket's own round is the equal one)
            assert len(same_counts) == 3 and len(shuffled) == 2
            # the inversion: per layer, overlaps the ticket only beyond 50 % density
            inverted = [m for m in shuffled if all(
                int((m[n] & mask[n]).sum()) == max(0, 2 * counts[n] - mask[n].numel())
                for n in mask)]
            assert len(inverted) >= 1
    # the random reinit does not start from the ticket's θ0
    random_starts = len(seen) - sum(len(_find(seen, runs[("rewind", t)]["init"]))
                                    for t in (0, 1))
    assert random_starts == 4


def test_invert_is_the_inversion_of_imp(curve):
    _, runs, seen = curve
    for t in (0, 1):
        ticket = runs[("rewind", t)]
        starts = _find(seen, ticket["init"])
        for r in (1, 2):
            scores = imp_scores(ticket["masks"][:r], ticket["final"][:r])
            expected = invert_masks(ticket["masks"][r], scores)
            assert any(all(torch.equal(m[n], expected[n]) for n in expected) for m in starts)


def test_reproducible_and_batched_equals_alone(digits):
    X, y = digits
    kw = dict(strategies=("rewind", "shuffle_layer", "invert"), n_trials=1, random_state=5)
    a = ticket_curve(tiny(n_rounds=1), X, y, **kw)
    b = ticket_curve(tiny(n_rounds=1), X, y, **kw)
    c = ticket_curve(tiny(n_rounds=1), X, y, **kw, batched=False)
    cols = [col for col in RESULT_COLUMNS if col != "seconds"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    pd.testing.assert_frame_equal(a[cols], c[cols], atol=1e-6, rtol=0)


def test_rewind_to_k_starts_the_controls_at_theta_k(digits):
    X, y = digits
    _Recorder.seen = []
    est = tiny(n_rounds=1, rewind_iteration=3, callbacks=[("recorder", _Recorder())])
    df, runs = ticket_curve(est, X, y, strategies=("rewind", "shuffle_layer"), n_trials=1,
                            random_state=1, return_runs=True)
    assert set(df.strategy) == {"rewind", "shuffle_layer"}
    theta_k = runs[("rewind", 0)]["rewind"]
    assert not all(torch.equal(theta_k[k], v) for k, v in runs[("rewind", 0)]["init"].items())
    mask = runs[("rewind", 0)]["masks"][1]
    starts = _find(_Recorder.seen, theta_k)
    same = [m for m in starts if all(torch.equal(m[n], mask[n]) for n in mask)]
    assert len(starts) == 2 and len(same) == 1  # the ticket's round 1 and its shuffle


def test_bad_arguments(digits):
    X, y = digits
    with pytest.raises(ValueError, match="pruning_granularity"):
        ticket_curve(tiny(pruning_granularity="neuron"), X, y,
                     strategies=("rewind", "shuffle_layer"), n_trials=1)
    with pytest.raises(ValueError, match="random"):
        ticket_curve(tiny(pruning_criterion="random"), X, y, strategies=("invert",),
                     n_trials=1)


# ---------------------------------------------------------------- verdict piece
def _table(ticket_acc, control_acc, level=10.0, control="shuffle_layer"):
    rows = [dict(strategy="rewind", trial=t, weights_remaining=level, test_acc=a)
            for t, a in enumerate(ticket_acc)]
    rows += [dict(strategy=control, trial=t, weights_remaining=level, test_acc=a)
             for t, a in enumerate(control_acc)]
    rows += [dict(strategy="rewind", trial=t, weights_remaining=100.0, test_acc=0.9)
             for t in range(len(ticket_acc))]
    return pd.DataFrame(rows)


def test_mask_information_known_truth():
    rs = np.random.RandomState(0)
    ticket = 0.90 + 0.005 * rs.randn(5)
    shuffled = 0.87 + 0.005 * rs.randn(5)
    res = mask_information(_table(ticket, shuffled))
    assert res["answer"] == "yes" and res["level"] == 10.0
    assert res["diff"] == pytest.approx(ticket.mean() - shuffled.mean())
    assert res["ci_low"] > 0 and res["p_one_sided"] < 0.025
    assert res["statement"].startswith("the ticket beats its layer-wise shuffled mask at 10.0 %")
    # the control better: 'no'; too few trials: 'cannot tell'
    assert mask_information(_table(shuffled, ticket))["answer"] == "no"
    few = mask_information(_table(ticket[:1], shuffled[:1]))
    assert few["answer"] == "cannot tell" and few["outcome"] == "n/a"
    inv = mask_information(_table(ticket, shuffled, control="invert"), control="invert")
    assert "inverted mask" in inv["statement"]


def test_mask_information_false_claims_under_the_null():
    rs = np.random.RandomState(20)
    yes = sum(mask_information(_table(0.9 + 0.01 * rs.randn(5),
                                      0.9 + 0.01 * rs.randn(5)))["answer"] == "yes"
              for _ in range(400))
    assert yes / 400 <= 0.05


def test_mask_information_power_at_three_points():
    rs = np.random.RandomState(21)
    yes = sum(mask_information(_table(0.93 + 0.01 * rs.randn(5),
                                      0.90 + 0.01 * rs.randn(5)))["answer"] == "yes"
              for _ in range(200))
    assert yes / 200 >= 0.8
