"""The batched trainer: many fits trained as one vectorised model.

A member trained in a batch must give what the same fit gives alone. The
batched path stacks the members' weights and runs batched matmuls (MLP) or
vmap'd convolutions; the per-member arithmetic is the same as the skorch
path's, but a batched kernel sums in another order, so the two agree up to
float rounding, and how far training carries a rounding difference depends
on the network and the CPU. ``_fit_differences`` compares on one of three
footings (``FOOTINGS``), with tolerances measured (torch 2.13.0+cpu, AMD EPYC
Zen 4) on every kernel dispatch this machine offers: native AVX-512,
``ATEN_CPU_CAPABILITY=avx2`` and ``=default``, ``ONEDNN_MAX_CPU_ISA=AVX2``
(with ``MKL_ENABLE_INSTRUCTIONS=AVX2``) and ``=AVX``, ``MKL_CBWR=COMPATIBLE``,
2 threads; and, to provoke what rounding can rarely do, with the training
data multiplied by ``1 + eps * N(0, 1)`` (eps = 1e-6, about these sums'
rounding, up to 1e-3):

* ``same``, an MLP whose masks agree in every round: rounding stays at
  rounding level. Weights within ``atol=1e-3, rtol=1e-4`` (measured at most
  1.3e-7 natively, 7.8e-7 with ``MKL_CBWR=COMPATIBLE`` and 8.0e-5 with
  ``ATEN_CPU_CAPABILITY=default``, where a few Adam entries with near-zero
  gradients move most; 1.3e-3 with eps = 1e-5), validation loss within 1e-4
  relative (measured 1.1e-6), equal early stops.
* ``tie``, an MLP whose masks differ: a weight at a pruning threshold, tied
  within rounding, went the other way, and the rounds after it trained other
  masks. Never seen on the dispatches above; eps = 1e-6 provoked it in 4 of
  36 fits, eps = 1e-5 in 17 of 36, cascading to at most 86 entries of a
  layer, 2.9e-2 relative L2 in a layer's weights and 6.2e-3 in the
  validation loss. Allowed: 0.5 % of a layer's mask entries (and 2), 5e-2,
  1e-2; equal early stops.
* ``conv``, always: Adam on this small conv net is chaotic, the grouped
  convolution that vmap runs sums in another order than a plain one, and
  with AVX-512 oneDNN kernels one member ends 1.3e-2 (largest entry) and
  1.1e-2 (a layer's relative L2) from its fit alone, 8 mask entries apart.
  Noise of any size (eps = 1e-6 to 1e-3) saturates at 1.2 % of a layer's
  mask entries, 5.7e-2 relative L2, 1.3e-2 in the validation loss, and can
  move the early stop by one evaluation. Allowed: 2.5 %, 8e-2, 2.5e-2, one
  evaluation step.

They still catch a real bug. The tests check that a member trained alone on
another data order (every epoch's permutation reversed) fails: a conv member
then differs in 6 % of a layer's mask entries (2,210 of 36,864) and 9.6e-2
in relative L2; an MLP member with Adam in 528 to 770 entries of its most
changed layer and 7e-2 to 1e-1 in relative L2; the random-pruning member,
whose masks cannot move, is compared on the ``same`` footing, where the
reversed order puts its weights 1.5e-2 to 2.3e-2 apart. (With the SGD settings here a
magnitude-pruned member's reversed order moves 42 to 86 entries a layer, as
much as a tie cascade, so there only the random-pruning member catches it.)
A member with another member's seed (masks, start and order) differs in
most entries.

A module's other state trains batched too, compared on the same footings
and measured on the same dispatches (native, ``ATEN_CPU_CAPABILITY=avx2``
and ``=default``, ``MKL_CBWR=COMPATIBLE``, ``ONEDNN_MAX_CPU_ISA=AVX2``;
3 rounds, Adam and SGD, a θk member):

* frozen parameters (``_FrozenProjection``, 'same'): weights at most
  3.0e-8 apart, validation loss 2.6e-7; the frozen ones exactly unchanged;
* batch norm (``_BatchNorm``, linear and conv, 'same'): every tensor of the
  state_dict, running statistics included, at most 2.4e-7 apart,
  validation loss 2.2e-7, masks and early stops equal. A bias *before* a
  batch norm under Adam follows rounding instead (its exact gradient is
  zero): up to 1.1e-2, see
  :func:`test_a_bias_before_batch_norm_follows_rounding_under_adam`;
* dropout (the MLP's, ``Conv2``'s, ``Dropout2d``): each member draws its
  own fit's noise, bit for bit, so it is on the footing of the same network
  without dropout: the MLP at most 2.0e-6 apart ('same'), validation loss
  3.5e-6 (``MKL_CBWR=COMPATIBLE``); ``Conv2`` 1.3e-4 relative L2, masks
  equal ('conv'). A member whose every dropout call is one draw off its
  stream differs in 692 to 1,446 mask entries of a layer, or (random
  pruning) 3e-2 in its weights: caught.
"""

import os
import threading
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits, make_regression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklottery import LotteryTicketClassifier, LotteryTicketRegressor
from sklottery.training import BatchedTrainer, FitDriver, fit_many
from sklottery.analysis import ticket_curve
from sklottery.base import TrainingDivergedError
from sklottery.exceptions import UndertrainingWarning


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:600], y[:600]


def first_request_refusal(est, X, y):
    """Why the batched trainer declines ``est``'s first request (None: it accepts it)."""
    driver = FitDriver(clone(est).fit_steps(X, y)).advance()
    try:
        return BatchedTrainer().accepts(driver.request)
    finally:
        driver.steps.close()


def _count_batches(monkeypatch):
    sizes = []
    original = BatchedTrainer.train

    def train(self, requests):
        sizes.append(len(requests))
        return original(self, requests)

    monkeypatch.setattr(BatchedTrainer, "train", train)
    return sizes


def _layer_l2(module):
    """Per layer (module owning parameters): all its parameters as one vector."""
    layers = {}
    for name, p in module.named_parameters():
        layers.setdefault(name.rpartition(".")[0], []).append(p.detach().ravel())
    return {k: torch.cat(v) for k, v in layers.items()}


def _round_masks(est):
    """Every round's masks where ``history_`` keeps them, else the final ones."""
    if getattr(est, "history_", None):
        return [h["masks"] for h in est.history_]
    return [est.masks_]


#: How far a batched member may be from the same fit alone, by footing (the
#: module docstring has the measurements): the fraction of a layer's mask
#: entries that may differ (and 2), the weights (``assert_close`` tolerances,
#: or the relative L2 distance of each layer), the validation loss (relative)
#: and how far the early-stop iteration may move (in evaluation steps).
FOOTINGS = {
    "same": dict(mask_fraction=0.0, close=(1e-3, 1e-4), valid_rtol=1e-4, early_stop_steps=0),
    "tie": dict(mask_fraction=0.005, rel_l2=5e-2, valid_rtol=1e-2, early_stop_steps=0),
    "conv": dict(mask_fraction=0.025, rel_l2=8e-2, valid_rtol=2.5e-2, early_stop_steps=1),
}


def _fit_differences(a, b, conv=False):
    """How batched member ``a`` differs from the same fit alone ``b`` beyond rounding.

    The footing is 'conv' for conv nets, 'same' for an MLP whose masks agree
    in every round, 'tie' for one whose masks do not.
    """
    if [r["round"] for r in a.rounds_] != [r["round"] for r in b.rounds_]:
        return [f"rounds {[r['round'] for r in a.rounds_]} != {[r['round'] for r in b.rounds_]}"]
    same_masks = all(torch.equal(ma[n], mb[n]) for ma, mb in
                     zip(_round_masks(a), _round_masks(b)) for n in ma)
    footing = "conv" if conv else "same" if same_masks else "tie"
    tol = FOOTINGS[footing]
    problems = []
    weights = dict(a.net_.module_.named_parameters())
    for n, m in a.masks_.items():
        if not torch.all(weights[n][~m] == 0):
            problems.append(f"{n}: a pruned weight is not exactly zero")
        differ = int((m != b.masks_[n]).sum())
        allowed = max(2, int(tol["mask_fraction"] * m.numel()))
        if differ > allowed:
            problems.append(f"masks[{n}]: {differ} of {m.numel()} entries differ "
                            f"(> {allowed}, {footing})")
    if "close" in tol:
        sa, sb = a.net_.module_.state_dict(), b.net_.module_.state_dict()
        atol, rtol = tol["close"]
        for k in sa:
            try:
                torch.testing.assert_close(sa[k], sb[k], atol=atol, rtol=rtol)
            except AssertionError as exc:
                problems.append(f"{k} ({footing}): {exc}")
    else:
        la, lb = _layer_l2(a.net_.module_), _layer_l2(b.net_.module_)
        for k in la:
            rel = float((la[k] - lb[k]).norm() / lb[k].norm())
            if rel > tol["rel_l2"]:
                problems.append(f"{k}: weights {rel:.2e} apart in relative L2 "
                                f"(> {tol['rel_l2']}, {footing})")
    for ra, rb in zip(a.rounds_, b.rounds_):
        step = max(1, min(100, ra["n_iter"] // max(1, ra["epochs"])))  # eval_every='auto'
        if abs(ra["early_stop_iteration"] - rb["early_stop_iteration"]) \
                > tol["early_stop_steps"] * step:
            problems.append(f"round {ra['round']}: early stop {ra['early_stop_iteration']} "
                            f"!= {rb['early_stop_iteration']} ({footing})")
        if ra["valid_loss"] != pytest.approx(rb["valid_loss"], rel=tol["valid_rtol"], abs=1e-6):
            problems.append(f"round {ra['round']}: valid_loss {ra['valid_loss']} != "
                            f"{rb['valid_loss']} (rel {tol['valid_rtol']}, {footing})")
        if ra["epochs"] != rb["epochs"] or ra["n_iter"] != rb["n_iter"]:
            problems.append(f"round {ra['round']}: epochs/iterations differ")
    return problems


def _assert_same_fit(a, b, conv=False):
    problems = _fit_differences(a, b, conv=conv)
    assert not problems, "\n".join(problems)


def _fit_on_reversed_order(est, X, y, monkeypatch):
    """``est`` fitted alone, every epoch's data order reversed: a wrong-order bug."""
    randperm = torch.randperm
    with monkeypatch.context() as m:
        m.setattr(torch, "randperm", lambda *args, **kw: randperm(*args, **kw).flip(0))
        return clone(est).fit(X, y)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_batched_members_equal_fits_alone(digits, monkeypatch, optimizer):
    X, y = digits
    base = LotteryTicketClassifier(max_epochs=2, n_rounds=2, batch_size=50,
                                   optimizer=optimizer, learning_rate_init=1e-2
                                   if optimizer == "sgd" else 1e-3, lr_warmup=5,
                                   record_history="masks")
    ests = [clone(base).set_params(random_state=s) for s in range(3)]
    ests.append(clone(base).set_params(random_state=7, reinit="continue"))
    ests.append(clone(base).set_params(random_state=8, rewind_iteration=4))
    ests.append(clone(base).set_params(random_state=9, pruning_criterion="random"))
    sizes = _count_batches(monkeypatch)
    outcomes = fit_many([(e, X, y, {}) for e in ests])
    assert all(err is None for err, _ in outcomes)
    assert sizes == [6, 6, 6]  # every round of every fit went through one batch
    for est in ests:
        _assert_same_fit(est, clone(est).set_params(record_history="masks").fit(X, y))
    # ... and the tolerances catch a member trained on another data order: the
    # random-pruning member's masks cannot differ, so it is compared on the
    # 'same' footing; with Adam a magnitude-pruned member's masks move by far
    # more than a tie does (with this SGD, 42 to 86 entries a layer: as much
    # as a tie cascade, so the 'tie' footing lets it pass).
    for est in (ests[5], ests[0]) if optimizer == "adam" else (ests[5],):
        wrong = _fit_on_reversed_order(est, X, y, monkeypatch)
        assert _fit_differences(est, wrong), est.get_params()
    # θk of late rewinding is captured per member
    alone = clone(ests[4]).fit(X, y)
    for k, v in ests[4].rewind_params_.items():
        torch.testing.assert_close(v, alone.rewind_params_[k], atol=1e-6, rtol=0)


def test_ticket_curve_batched_equals_unbatched(digits, monkeypatch):
    X, y = digits
    est = LotteryTicketClassifier(max_epochs=2, n_rounds=2, batch_size=50)
    kw = dict(strategies=("rewind", "rewind_k", "continue", "random", "scratch_b"),
              n_trials=2, random_state=0)
    sizes = _count_batches(monkeypatch)
    a = ticket_curve(est, X, y, batched=True, **kw)
    assert max(sizes) == 6  # 3 chain strategies x 2 trials
    b = ticket_curve(est, X, y, batched=False, **kw)
    assert list(a.columns) == list(b.columns)
    assert a[["strategy", "trial", "round"]].equals(b[["strategy", "trial", "round"]])
    for col in ("test_acc", "test_acc_early_stop", "test_acc_init", "test_acc_no_retrain",
                "train_acc", "valid_acc", "valid_loss", "weights_remaining", "macs_fraction",
                "compute_fraction"):
        np.testing.assert_allclose(a[col], b[col], atol=1e-4, err_msg=col)
    np.testing.assert_array_equal(a["early_stop_iteration"], b["early_stop_iteration"])
    np.testing.assert_array_equal(a["epochs"], b["epochs"])
    # the no-retrain score exists where a fit pruned weights it trained itself
    pruned = (a["round"] > 0) & ~a["strategy"].isin(["random", "scratch_b"])
    assert a.loc[pruned, "test_acc_no_retrain"].notna().all()
    assert a.loc[~pruned, "test_acc_no_retrain"].isna().all()


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_batched_conv_members_equal_fits_alone(monkeypatch, dropout):
    rng = np.random.RandomState(0)
    X = rng.rand(96, 1, 8, 8).astype(np.float32)
    y = (X[:, 0, :4].mean((1, 2)) > X[:, 0, 4:].mean((1, 2))).astype(int)
    base = LotteryTicketClassifier(module="conv2", input_shape=(1, 8, 8), max_epochs=2,
                                   n_rounds=1, batch_size=32, conv_pruning_rate=0.1,
                                   module_params={"dropout": dropout})
    ests = [clone(base).set_params(random_state=s) for s in range(3)]
    sizes = _count_batches(monkeypatch)
    fit_many([(e, X, y, {}) for e in ests])
    assert sizes == [3, 3]
    for est in ests:
        _assert_same_fit(est, clone(est).fit(X, y), conv=True)
    # the conv tolerances still catch a member trained on another data order
    problems = _fit_differences(ests[0], _fit_on_reversed_order(ests[0], X, y, monkeypatch),
                                conv=True)
    assert any(p.startswith("masks") for p in problems), problems


@pytest.mark.parametrize("loss, n_targets", [("squared_error", 1), ("huber", 2)])
def test_batched_regressor_members_equal_fits_alone(monkeypatch, loss, n_targets):
    X, y = make_regression(n_samples=200, n_features=8, n_targets=n_targets, noise=1.0,
                           random_state=0)
    base = LotteryTicketRegressor(hidden_layer_sizes=(32,), max_epochs=3, n_rounds=1,
                                  batch_size=40, loss=loss)
    ests = [clone(base).set_params(random_state=s) for s in range(3)]
    sizes = _count_batches(monkeypatch)
    fit_many([(e, X, y, {}) for e in ests])
    assert sizes == [3, 3]
    for est in ests:
        alone = clone(est).fit(X, y)
        _assert_same_fit(est, alone)
        np.testing.assert_allclose(est.predict(X), alone.predict(X), rtol=1e-4, atol=1e-3)


class _EveryDropout(torch.nn.Module):
    """Each of torch's dropout modules once (``Dropout`` twice) on one layer's output."""

    def __init__(self, n_features=8):
        super().__init__()
        self.lin = torch.nn.Linear(n_features, 48)
        nn = torch.nn
        self.drops = nn.ModuleList([nn.Dropout(0.3), nn.AlphaDropout(0.2), nn.Dropout1d(0.4),
                                    nn.Dropout2d(0.5), nn.Dropout3d(0.3),
                                    nn.FeatureAlphaDropout(0.25)])

    def forward(self, X):
        h = self.lin(X)
        n = len(h)
        d = self.drops
        outs = [d[0](h), d[1](h), d[2](h.view(n, 6, 8)), d[3](h.view(n, 3, 4, 4)),
                d[4](h.view(n, 3, 2, 2, 4)), d[5](h.view(n, 6, 8)), d[0](h)]
        return torch.cat([o.reshape(n, -1) for o in outs], 1)


@pytest.mark.parametrize("kind", ["mlp", "every"])
def test_stacked_dropout_draws_each_members_own_stream(kind):
    from sklottery.modules import MLP
    from sklottery.training import stacked_forward

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        members = [MLP(8, 4, (32, 16), dropout=0.3) if kind == "mlp" else _EveryDropout()
                   for _ in range(3)]
        X = torch.randn(3, 5, 8)
    f, transposed = stacked_forward(members[0])
    params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in members])
              for n, _ in members[0].named_parameters()}
    params = {n: p.transpose(1, 2).contiguous() if n in transposed else p
              for n, p in params.items()}
    states = [torch.Generator().manual_seed(10 + m).get_state() for m in range(3)]
    generators = [torch.Generator() for _ in states]
    for g, state in zip(generators, states):
        g.set_state(state)
    out = f(params, X, train=True, generators=generators)
    with torch.random.fork_rng(devices=[]):
        for m, member in enumerate(members):
            torch.set_rng_state(states[m])  # the member's own fit draws from the global RNG
            expected = member.train()(X[m])
            # a wrong draw is off by O(1); rounding of the batched matmul is 1e-7
            torch.testing.assert_close(out[m], expected, atol=1e-6, rtol=1e-6)
            # ... and the generator has moved on exactly as the global stream did
            assert torch.equal(generators[m].get_state(), torch.get_rng_state())
    evaluated = f(params, X)  # eval mode: no draws
    for m, member in enumerate(members):
        torch.testing.assert_close(evaluated[m], member.eval()(X[m]), atol=1e-6, rtol=1e-6)


def _fit_with_shifted_dropout(est, X, y, monkeypatch):
    """``est`` fitted alone, every dropout call one draw further down its stream."""
    dropout = torch.nn.functional.dropout

    def shifted(input, p=0.5, training=True, inplace=False):
        if training and p > 0:
            torch.rand(1)
        return dropout(input, p, training, inplace)

    with monkeypatch.context() as m:
        m.setattr(torch.nn.functional, "dropout", shifted)
        return clone(est).fit(X, y)


def test_dropout_members_draw_their_own_streams(digits, monkeypatch):
    X, y = digits
    base = LotteryTicketClassifier(max_epochs=2, n_rounds=2, batch_size=50,
                                   module_params={"dropout": 0.3}, record_history="masks")
    ests = [clone(base).set_params(random_state=s) for s in range(3)]
    ests.append(clone(base).set_params(random_state=8, rewind_iteration=4))
    ests.append(clone(base).set_params(random_state=9, pruning_criterion="random"))
    sizes = _count_batches(monkeypatch)
    fit_many([(e, X, y, {}) for e in ests])
    assert sizes == [5, 5, 5]
    assert first_request_refusal(ests[0], X, y) is None
    for est in ests:  # each member's draws are its own fit's: the 'same' footing
        _assert_same_fit(est, clone(est).fit(X, y))
    # ... and a member whose draws are one off its stream is caught
    for est in (ests[4], ests[0]):
        assert _fit_differences(est, _fit_with_shifted_dropout(est, X, y, monkeypatch))
    # the stream goes on after a batched round as after a skorch round: a warm
    # start (which restores the checkpoint's RNG state) trains the same round
    alone = clone(ests[0]).fit(X, y)
    for est in (ests[0], alone):
        est.set_params(warm_start=True, n_rounds=3).fit(X, y)
    _assert_same_fit(ests[0], alone)


def test_divergent_member_does_not_disturb_the_batch(digits, monkeypatch):
    X, y = digits
    sizes = _count_batches(monkeypatch)
    # SGD at 0.1 trains the good members stably; at 0.5 (to 48 % training
    # accuracy) batched and alone drifted 1.4e-2 apart with ATEN_CPU_CAPABILITY=
    # default, masks equal. The bad member's 1e15 inputs diverge at any rate.
    base = LotteryTicketClassifier(max_epochs=2, n_rounds=1, batch_size=50, optimizer="sgd",
                                   learning_rate_init=0.1)
    X_bad = X * 1e15
    ests = [clone(base).set_params(random_state=s) for s in range(3)]
    outcomes = fit_many([(ests[0], X, y, {}), (ests[1], X_bad, y, {}), (ests[2], X, y, {})])
    assert outcomes[0][0] is None and outcomes[2][0] is None
    assert isinstance(outcomes[1][0], TrainingDivergedError)
    assert sizes == [3, 2]  # it diverged inside the batch of round 0
    assert not hasattr(ests[1], "net_")  # left unfitted, as fit would
    _assert_same_fit(ests[0], clone(ests[0]).fit(X, y))
    _assert_same_fit(ests[2], clone(ests[2]).fit(X, y))


def test_bad_member_fails_before_any_training(digits, monkeypatch):
    X, y = digits
    sizes = _count_batches(monkeypatch)
    good = LotteryTicketClassifier(max_epochs=1, n_rounds=1)
    bad = LotteryTicketClassifier(max_epochs=1, n_rounds=1, pruning_rate=1.5)
    with pytest.raises(ValueError, match="pruning_rate"):
        fit_many([(good, X, y, {}), (bad, X, y, {})])
    assert sizes == []


def test_batched_fit_warm_starts_like_a_plain_fit(digits):
    X, y = digits
    base = LotteryTicketClassifier(max_epochs=1, n_rounds=1, batch_size=50)
    ests = [clone(base).set_params(random_state=s) for s in range(2)]
    fit_many([(e, X, y, {}) for e in ests])
    plain = clone(ests[0]).fit(X, y)
    for est in (ests[0], plain):
        est.set_params(warm_start=True, n_rounds=2).fit(X, y)
    _assert_same_fit(ests[0], plain)


def test_ticket_curve_batched_in_workers_and_pipelines(digits):
    X, y = digits
    est = make_pipeline(StandardScaler(), LotteryTicketClassifier(max_epochs=1, n_rounds=1,
                                                                  batch_size=50))
    kw = dict(strategies=("rewind", "random"), n_trials=3, random_state=1)
    one = ticket_curve(est, X, y, batched=True, **kw)
    two = ticket_curve(est, X, y, batched=True, n_jobs=2, **kw)
    alone = ticket_curve(est, X, y, batched=False, **kw)
    for df in (two, alone):
        np.testing.assert_allclose(one["test_acc"], df["test_acc"], atol=1e-4)
        np.testing.assert_array_equal(one["early_stop_iteration"], df["early_stop_iteration"])


def test_progress_is_reported_per_run(digits):
    X, y = digits
    calls = []
    est = LotteryTicketClassifier(max_epochs=1, n_rounds=1, batch_size=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the batched path raises no warning of its own
        # (one epoch is undertraining, which ticket_curve rightly says)
        warnings.simplefilter("ignore", UndertrainingWarning)
        ticket_curve(est, X, y, strategies=("rewind", "random"), n_trials=2, random_state=0,
                     progress=lambda: calls.append(1))
    assert len(calls) == 2 + 2  # two chains, then one control per trial and round


def test_batched_rounds_honour_the_estimators_n_threads(digits, monkeypatch):
    X, y = digits
    during = []
    original = BatchedTrainer._validate

    def validate(self, *args, **kwargs):  # runs inside the training loop
        during.append((torch.get_num_threads(), threading.get_ident()))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BatchedTrainer, "_validate", validate)
    before = torch.get_num_threads()
    for n_threads in (1, 2):
        during.clear()
        ests = [LotteryTicketClassifier(max_epochs=1, n_rounds=0, n_threads=n_threads,
                                        random_state=s) for s in range(2)]
        fit_many([(e, X, y, {}) for e in ests])
        # n_threads cores: one torch thread in each of n_threads shards (Python threads)
        assert during and {t for t, _ in during} == {1}
        assert len({ident for _, ident in during}) == n_threads
        assert torch.get_num_threads() == before  # restored after the round


class _FrozenProjection(torch.nn.Module):
    """A fixed random projection (frozen) and a trained output layer."""

    def __init__(self, n_features, n_classes):
        super().__init__()
        self.proj = torch.nn.Linear(n_features, 32)
        self.proj.requires_grad_(False)
        self.out = torch.nn.Linear(32, n_classes)

    def forward(self, X):
        return self.out(torch.relu(self.proj(X)))


class _DataDependent(torch.nn.Module):
    """A forward that vmap cannot trace (a Python branch on a tensor's value)."""

    def __init__(self, n_features, n_classes):
        super().__init__()
        self.a = torch.nn.Linear(n_features, 16)
        self.b = torch.nn.Linear(16, n_classes)

    def forward(self, X):
        h = torch.relu(self.a(X))
        if h.mean().item() > 1e9:  # never true, but vmap cannot know
            h = h * 0
        return self.b(h)


class _FunctionalDropout(torch.nn.Module):
    """Dropout drawn by ``F.dropout`` in the forward: a random op vmap refuses."""

    def __init__(self, n_features, n_classes):
        super().__init__()
        self.a = torch.nn.Linear(n_features, 16)
        self.b = torch.nn.Linear(16, n_classes)

    def forward(self, X):
        return self.b(torch.nn.functional.dropout(torch.relu(self.a(X)), 0.2, self.training))


class _BatchNorm(torch.nn.Module):
    """Linear (or 3x3 conv on the 8x8 digits), batch norm, ReLU, dropout, linear.

    ``bias=False`` before the batch norm, as usual: a bias there has no
    effect in train mode and an exactly zero gradient (see
    :func:`test_a_bias_before_batch_norm_follows_rounding_under_adam`).
    """

    def __init__(self, n_features, n_classes, conv=False, bias=False):
        super().__init__()
        self.conv = conv
        if conv:
            self.a = torch.nn.Conv2d(1, 8, 3, padding=1, bias=bias)
            self.bn = torch.nn.BatchNorm2d(8)
            self.drop = torch.nn.Dropout2d(0.1)
            self.b = torch.nn.Linear(8 * 4 * 4, n_classes)
        else:
            self.a = torch.nn.Linear(n_features, 64, bias=bias)
            self.bn = torch.nn.BatchNorm1d(64)
            self.drop = torch.nn.Dropout(0.2)
            self.b = torch.nn.Linear(64, n_classes)

    def forward(self, X):
        if self.conv:
            h = torch.relu(self.bn(self.a(X.view(-1, 1, 8, 8))))
            return self.b(self.drop(torch.nn.functional.max_pool2d(h, 2)).flatten(1))
        return self.b(self.drop(torch.relu(self.bn(self.a(X)))))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_frozen_parameters_are_stacked_not_optimised(digits, monkeypatch, optimizer):
    X, y = digits
    sizes = _count_batches(monkeypatch)
    # weight decay (alpha) touches no frozen parameter, in either trainer
    base = LotteryTicketClassifier(module=_FrozenProjection, max_epochs=2, n_rounds=1,
                                   batch_size=50, optimizer=optimizer, alpha=1e-3,
                                   learning_rate_init=1e-2 if optimizer == "sgd" else 1e-3)
    ests = [clone(base).set_params(random_state=s) for s in range(3)]
    fit_many([(e, X, y, {}) for e in ests])
    assert sizes == [3, 3]
    for est in ests:
        _assert_same_fit(est, clone(est).fit(X, y))
        module = est.net_.module_
        assert torch.equal(module.proj.weight,
                           est.init_params_["proj.weight"] * est.masks_["proj.weight"])
        assert torch.equal(module.proj.bias, est.init_params_["proj.bias"])
        assert not module.proj.weight.requires_grad


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv"])
def test_batch_norm_members_equal_fits_alone(digits, monkeypatch, conv, optimizer):
    X, y = digits
    sizes = _count_batches(monkeypatch)
    base = LotteryTicketClassifier(module=_BatchNorm, module_params={"conv": conv},
                                   max_epochs=2, n_rounds=2, batch_size=50, optimizer=optimizer,
                                   learning_rate_init=1e-2 if optimizer == "sgd" else 1e-3,
                                   record_history="masks")
    ests = [clone(base).set_params(random_state=s) for s in range(3)]
    ests.append(clone(base).set_params(random_state=8, rewind_iteration=4))
    fit_many([(e, X, y, {}) for e in ests])
    assert sizes == [4, 4, 4]
    for est in ests:
        alone = clone(est).fit(X, y)
        # the 'same' footing compares the whole state_dict: the running
        # statistics and batch counts written back from the stack too
        _assert_same_fit(est, alone)
        # a rewound round restarts from θ0's (or θk's) batch count
        assert int(est.net_.module_.bn.num_batches_tracked) == \
            est.rounds_[-1]["n_iter"] + est.rewind_iteration
        assert est.net_.module_.training == alone.net_.module_.training
    # θk holds the running statistics after k iterations, as skorch's capture
    alone = clone(ests[3]).fit(X, y)
    assert set(ests[3].rewind_params_) == set(alone.rewind_params_)
    assert int(ests[3].rewind_params_["bn.num_batches_tracked"]) == 4
    for k, v in ests[3].rewind_params_.items():
        torch.testing.assert_close(v, alone.rewind_params_[k], atol=1e-6, rtol=0)


def test_a_bias_before_batch_norm_follows_rounding_under_adam(digits):
    """A bias right before a batch norm gets a gradient that is exactly zero
    in exact arithmetic (the norm subtracts the batch mean), so what it gets
    is rounding, about 1e-9, which Adam normalises into steps of about the
    learning rate: that bias, and the running mean that tracks it, follow
    the rounding of whichever trainer ran. Measured (3 seeds, 3 rounds of
    24 steps at lr 1e-3): up to 8.5e-3 (linear) and 1.1e-2 (conv) in the
    bias, 5.9e-3 and 9.3e-3 in the running mean, 4.3e-4 relative in the
    validation loss (eval mode sees the running mean lag the bias); every
    other tensor stays within rounding (4.2e-7), the masks and early stops
    equal. SGD's steps are as small as the gradient: the 'same' footing.
    """
    X, y = digits
    for conv in (False, True):
        base = LotteryTicketClassifier(module=_BatchNorm, max_epochs=2, n_rounds=2,
                                       batch_size=50, module_params={"conv": conv, "bias": True})
        ests = [clone(base).set_params(random_state=s) for s in range(2)]
        fit_many([(e, X, y, {}) for e in ests])
        for est in ests:
            alone = clone(est).fit(X, y)
            sa, sb = est.net_.module_.state_dict(), alone.net_.module_.state_dict()
            for k in sa:
                loose = k in ("a.bias", "bn.running_mean")  # 3x the measured distance
                torch.testing.assert_close(sa[k], sb[k], atol=3e-2 if loose else 1e-5, rtol=0)
            for ra, rb in zip(est.rounds_, alone.rounds_):
                assert ra["valid_loss"] == pytest.approx(rb["valid_loss"], rel=2e-3)
                assert ra["early_stop_iteration"] == rb["early_stop_iteration"]
            for n, m in est.masks_.items():
                assert torch.equal(m, alone.masks_[n])


def test_ticket_curve_with_batch_norm_and_dropout_batched_equals_unbatched(digits, monkeypatch):
    # the test-set scores (at the end, at the early stop, before training and
    # without retraining) run each member's own module in eval mode: its
    # running statistics must be the member's at every point (with a grid
    # point's weights but the start's statistics, test_acc_early_stop is up
    # to 0.25 off)
    X, y = digits
    est = LotteryTicketClassifier(module=_BatchNorm, max_epochs=3, n_rounds=2, batch_size=50,
                                  learning_rate_init=3e-2)
    kw = {"strategies": ("rewind", "continue", "random"), "n_trials": 2, "random_state": 0}
    sizes = _count_batches(monkeypatch)
    a = ticket_curve(est, X, y, batched=True, **kw)
    assert max(sizes) == 4  # 2 chain strategies x 2 trials
    b = ticket_curve(est, X, y, batched=False, **kw)
    assert a[["strategy", "trial", "round"]].equals(b[["strategy", "trial", "round"]])
    for col in ("test_acc", "test_acc_early_stop", "test_acc_init", "test_acc_no_retrain",
                "train_acc", "valid_acc", "valid_loss"):
        np.testing.assert_allclose(a[col], b[col], atol=1e-4, err_msg=col)
    np.testing.assert_array_equal(a["early_stop_iteration"], b["early_stop_iteration"])
    assert (a["early_stop_iteration"] < a["n_iter"]).any()  # copies inside a round too


@pytest.mark.parametrize("module", [_DataDependent, _FunctionalDropout])
def test_modules_the_stack_cannot_run_train_alone(digits, monkeypatch, module):
    X, y = digits
    sizes = _count_batches(monkeypatch)
    base = LotteryTicketClassifier(module=module, max_epochs=2, n_rounds=1, batch_size=50)
    ests = [clone(base).set_params(random_state=s) for s in range(2)]
    fit_many([(e, X, y, {}) for e in ests])
    for est in ests:  # the skorch trainer, on the fit's own RNG stream: exact
        alone = clone(est).fit(X, y)
        for k, v in est.net_.module_.state_dict().items():
            torch.testing.assert_close(v, alone.net_.module_.state_dict()[k], atol=0, rtol=0)
    assert sizes == [2]  # tried once, then every round of the group trained alone
    curve = ticket_curve(base, X, y, strategies=("rewind", "random"), n_trials=2,
                         random_state=0)
    assert curve["test_acc"].notna().all()


def test_a_failing_fit_leaves_the_global_rng_alone(digits):
    import gc

    X, y = digits
    good = [LotteryTicketClassifier(max_epochs=1, n_rounds=1, random_state=s)
            for s in range(2)]
    bad = LotteryTicketClassifier(max_epochs=1, n_rounds=1, random_state=3)
    torch.manual_seed(123)
    expected = [float(torch.rand(1)), float(torch.rand(1))]
    torch.manual_seed(123)
    with pytest.raises(ValueError, match="initial_masks") as excinfo:
        fit_many([(good[0], X, y, {}), (good[1], X, y, {}),
                  (bad, X, y, {"initial_masks": {"layers.0.weight": np.ones((2, 2), bool)}})])
    first = float(torch.rand(1))
    del excinfo  # a notebook keeps the exception; dropping it frees the fits
    gc.collect()
    assert [first, float(torch.rand(1))] == expected


def test_n_jobs_follows_joblib(digits):
    from joblib import effective_n_jobs

    from sklottery.analysis import _n_workers

    X, y = digits
    for n_jobs in (-1, -2, 2):
        assert _n_workers(n_jobs) == min(effective_n_jobs(n_jobs), os.cpu_count())
    with pytest.raises(ValueError, match="n_jobs == 0"):
        ticket_curve(LotteryTicketClassifier(max_epochs=1, n_rounds=1), X, y, n_jobs=0)
