"""LotteryTicketClassifier: IMP correctness and scikit-learn integration."""

import io
import pickle
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.utils.prune
from skorch.callbacks import Callback
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklottery import LotteryTicketClassifier
from sklottery.modules import MLP


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0)[:600], y[:600]


class FailOnTrain(Callback):
    """Fails the test if any training starts (checks that validation comes first)."""

    def on_train_begin(self, net, **kwargs):
        raise AssertionError("training started before the parameters were validated")


def small(**kw):
    params = dict(hidden_layer_sizes=(40, 20), max_epochs=3, batch_size=50, n_rounds=2,
                  learning_rate_init=5e-3, random_state=0)
    params.update(kw)
    return LotteryTicketClassifier(**params)


class StartStates(Callback):
    """Record the module state at the start of every round (after masking)."""

    def initialize(self):
        self.states = []
        return self

    def on_train_begin(self, net, **kwargs):
        self.states.append({k: v.detach().clone() for k, v in net.module_.state_dict().items()})


class StepChecker(Callback):
    """After every optimizer step, check pruned weights and the moment buffers that
    drive their update (Adam's first moment, SGD's momentum) are zero.

    Adam's *second* moment of a pruned entry does not drive its update
    (``m / (sqrt(v) + eps)`` is zero whatever it is). The trainer uses the
    fused Adam kernel, which has no slow path over zeros, so it is left at 0;
    with the unfused kernel it is started at 1 (``prime_adam_state``: square
    roots of zeros are slow on this CPU) and checked to be positive.
    """

    def initialize(self):
        self.n_checked = 0
        self.violations = 0
        return self

    def on_train_begin(self, net, **kwargs):
        masks = dict(net.callbacks_)["sklottery_masks"].masks
        params = dict(net.module_.named_parameters())
        pairs = [(params[n], ~m) for n, m in masks.items()]

        def hook(optimizer, args, kwargs):
            for p, pruned in pairs:
                state = optimizer.state[p]
                tensors = [p.data] + [v for k, v in state.items()
                                      if torch.is_tensor(v) and v.shape == p.shape
                                      and k != "exp_avg_sq"]
                for t in tensors:
                    self.violations += int((t[pruned] != 0).sum())
                if "exp_avg_sq" in state and not optimizer.defaults.get("fused"):
                    self.violations += int((state["exp_avg_sq"][pruned] <= 0).sum())
            self.n_checked += 1

        net.optimizer_.register_step_post_hook(hook)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_pruned_weights_zero_after_every_step(digits, optimizer):
    X, y = digits
    checker = StepChecker()
    clf = small(optimizer=optimizer, alpha=1e-3, callbacks=[checker]).fit(X, y)
    cb = dict(clf.net_.callbacks_)["user_0"]
    assert cb.n_checked > 0 and cb.violations == 0
    # the state holds momentum/moment buffers the check looked at
    p = clf.net_.module_.layers[0].weight
    assert any(torch.is_tensor(v) and v.shape == p.shape
               for v in clf.net_.optimizer_.state[p].values())
    for name, mask in clf.masks_.items():
        w = dict(clf.net_.module_.named_parameters())[name]
        assert torch.all(w[~mask] == 0)
        assert (~mask).any()


def test_rewind_resets_survivors_to_theta0(digits):
    X, y = digits
    rec = StartStates()
    clf = small(callbacks=[rec]).fit(X, y)
    states = dict(clf.net_.callbacks_)["user_0"].states
    assert len(states) == 3
    theta0 = clf.init_params_
    for k, v in states[0].items():
        assert torch.equal(v, theta0[k])
    for state in states[1:]:
        for k, v in state.items():
            if k in clf.masks_:
                continue
            assert torch.equal(v, theta0[k])  # biases rewound too
    # round 2 starts from theta0 masked by the final masks
    for name, mask in clf.masks_.items():
        assert torch.equal(states[2][name], theta0[name] * mask)
    assert not torch.equal(clf.net_.module_.state_dict()[name], theta0[name] * mask)


def test_fresh_same_sign_and_continue(digits):
    X, y = digits
    outs = {}
    for reinit in ["fresh", "continue", "same_sign"]:
        rec = StartStates()
        clf = small(reinit=reinit, n_rounds=1, callbacks=[rec]).fit(X, y)
        outs[reinit] = (clf, dict(clf.net_.callbacks_)["user_0"].states)
    theta0 = outs["fresh"][0].init_params_
    clf, states = outs["fresh"]
    for name, mask in clf.masks_.items():
        assert not torch.equal(states[1][name][mask], theta0[name][mask])
        assert torch.all(states[1][name][~mask] == 0)
    clf, states = outs["same_sign"]
    for name, mask in clf.masks_.items():
        start, init = states[1][name][mask], theta0[name][mask]
        assert torch.equal(torch.sign(start), torch.sign(init))
        assert not torch.equal(start, init)
    # 'continue': round 1 starts from round 0's trained weights, masked
    rec = StartStates()

    class EndStates(StartStates):
        def on_train_end(self, net, **kwargs):
            self.states.append({k: v.detach().clone()
                                for k, v in net.module_.state_dict().items()})

    ends = EndStates()
    clf = small(reinit="continue", n_rounds=1, callbacks=[rec, ends]).fit(X, y)
    starts = dict(clf.net_.callbacks_)["user_0"].states
    trained0 = dict(clf.net_.callbacks_)["user_1"].states[1]  # [start0, end0, start1, end1]
    for name, mask in clf.masks_.items():
        assert torch.equal(starts[1][name], trained0[name] * mask)


def test_late_rewinding_to_iteration_k(digits):
    X, y = digits

    class Snap(Callback):
        def initialize(self):
            self.it, self.snap = 0, None
            return self

        def on_batch_end(self, net, training=False, **kw):
            if training:
                self.it += 1
                if self.it == 7 and self.snap is None:
                    self.snap = {k: v.detach().clone()
                                 for k, v in net.module_.state_dict().items()}

    rec = StartStates()
    clf = small(rewind_iteration=7, n_rounds=1, callbacks=[Snap(), rec]).fit(X, y)
    snap = dict(clf.net_.callbacks_)["user_0"].snap
    starts = dict(clf.net_.callbacks_)["user_1"].states
    for k, v in snap.items():
        assert torch.equal(clf.rewind_params_[k], v)
        assert not torch.equal(v, clf.init_params_[k]) or k not in clf.masks_
    for name, mask in clf.masks_.items():
        assert torch.equal(starts[1][name], snap[name] * mask)


def test_rewind_iteration_beyond_training_raises(digits):
    X, y = digits
    with pytest.raises(ValueError, match="rewind_iteration=100000 is beyond"):
        small(rewind_iteration=100000).fit(X, y)


def test_schedule_on_lenet_300_100_shapes():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 784).astype(np.float32)
    y = rng.randint(0, 10, 120)
    y[:10] = np.arange(10)
    clf = LotteryTicketClassifier(max_epochs=1, n_rounds=3, batch_size=60,
                                  validation_fraction=0, random_state=0).fit(X, y)
    assert [round(r["weights_remaining"], 2) for r in clf.rounds_] == [100.0, 80.04, 64.06, 51.28]
    assert clf.sparsity_ == pytest.approx(1 - 0.5128, abs=1e-4)
    by_layer = clf.rounds_[1]["remaining_by_layer"]
    assert by_layer["layers.0.weight"] == pytest.approx(80.0)
    assert by_layer["layers.4.weight"] == pytest.approx(90.0)


def test_target_sparsity_sets_rounds(digits):
    X, y = digits
    clf = small(target_sparsity=0.5, n_rounds=99, max_epochs=1).fit(X, y)
    remaining = [r["weights_remaining"] for r in clf.rounds_]
    assert remaining[-1] <= 50 < remaining[-2]


def test_one_shot_reaches_target_in_one_step(digits):
    X, y = digits
    it = small(n_rounds=3, max_epochs=1).fit(X, y)
    os_ = small(n_rounds=3, max_epochs=1, one_shot=True).fit(X, y)
    assert len(os_.rounds_) == 2
    assert os_.rounds_[-1]["weights_remaining"] == pytest.approx(
        it.rounds_[-1]["weights_remaining"])
    for name in it.masks_:
        assert int(os_.masks_[name].sum()) == int(it.masks_[name].sum())


def test_global_scope_single_threshold(digits):
    X, y = digits
    rec = StartStates()

    class EndStates(StartStates):
        def on_train_end(self, net, **kwargs):
            self.states.append({k: v.detach().clone()
                                for k, v in net.module_.state_dict().items()})

    clf = small(pruning_scope="global", n_rounds=1, callbacks=[EndStates()]).fit(X, y)
    trained0 = dict(clf.net_.callbacks_)["user_0"].states[1]  # [start0, end0, ...]
    hidden = [n for n in clf.masks_ if n != "layers.4.weight"]
    w = torch.cat([trained0[n].abs().flatten() for n in hidden])
    m = torch.cat([clf.masks_[n].flatten() for n in hidden])
    assert w[~m].max() <= w[m].min()
    assert int((~m).sum()) == round(0.2 * m.numel())
    del rec


@pytest.mark.parametrize("criterion", ["random", "magnitude_increase", "large_final"])
def test_criteria_run(digits, criterion):
    X, y = digits
    clf = small(pruning_criterion=criterion, n_rounds=1, max_epochs=1).fit(X, y)
    mag = small(n_rounds=1, max_epochs=1).fit(X, y)
    same = all(torch.equal(clf.masks_[n], mag.masks_[n]) for n in clf.masks_)
    assert same == (criterion == "large_final")


def test_fresh_budget_trains_longer(digits):
    X, y = digits
    clf = small(reinit="fresh_budget", n_rounds=2, max_epochs=2).fit(X, y)
    # 80.3 % left -> ceil(2 / 0.803) = 3 epochs; 64.6 % -> ceil(3.1) = 4
    assert [r["epochs"] for r in clf.rounds_] == [2, 3, 4]
    assert [r["reinit"] for r in clf.rounds_] == ["dense", "fresh_budget", "fresh_budget"]
    e = small(reinit="fresh", n_rounds=2, max_epochs=2).fit(X, y)
    assert [r["epochs"] for r in e.rounds_] == [2, 2, 2]


@pytest.mark.parametrize("old, new", [("random", "fresh"), ("scratch_e", "fresh"),
                                      ("scratch_b", "fresh_budget")])
def test_old_reinit_spellings_still_work_with_a_deprecation(digits, old, new):
    X, y = digits
    with pytest.warns(FutureWarning, match=f"reinit='{old}' is deprecated.*reinit='{new}'"):
        a = small(reinit=old, n_rounds=1, max_epochs=1, random_state=0).fit(X, y)
    b = small(reinit=new, n_rounds=1, max_epochs=1, random_state=0).fit(X, y)
    for name in a.masks_:
        assert torch.equal(a.masks_[name], b.masks_[name])
    assert a.rounds_[1]["reinit"] == new
    with pytest.raises(ValueError, match="reinit"):
        small(reinit="lucky").fit(X, y)


def test_reproducible_and_seed_dependent(digits):
    X, y = digits
    a = small().fit(X, y)
    b = small().fit(X, y)
    c = small(random_state=1).fit(X, y)
    for n in a.masks_:
        assert torch.equal(a.masks_[n], b.masks_[n])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert any(not torch.equal(a.masks_[n], c.masks_[n]) for n in a.masks_)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_global_rng_untouched(digits):
    X, y = digits
    torch.manual_seed(123)
    np.random.seed(123)
    before_t, before_n = torch.get_rng_state(), np.random.get_state()[1].copy()
    small(dropout=0.2).fit(X, y)
    assert torch.equal(torch.get_rng_state(), before_t)
    assert np.array_equal(np.random.get_state()[1], before_n)


def test_rounds_table_and_attributes(digits):
    X, y = digits
    clf = small().fit(X, y)
    df = pd.DataFrame(clf.rounds_)
    for col in ["round", "weights_remaining", "remaining_by_layer", "train_loss",
                "valid_loss", "valid_acc", "early_stop_iteration", "epochs", "seconds"]:
        assert col in df
    assert df["round"].tolist() == [0, 1, 2]
    assert df["weights_remaining"].is_monotonic_decreasing
    iters = clf.rounds_[0]["n_iter"]
    assert all(1 <= r["early_stop_iteration"] <= iters for r in clf.rounds_)
    assert clf.n_iter_ == 3 and clf.n_rounds_ == 2 and clf.stop_reason_ is None
    assert clf.net_.module_.__class__ is MLP
    assert clf.score(X, y) > 0.8


def test_string_labels_and_feature_names(digits):
    X, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])
    df = pd.DataFrame(X, columns=[f"px{i}" for i in range(64)])
    clf = small(n_rounds=1).fit(df, names[y])
    pred = clf.predict(df)
    assert set(pred) <= set(names)
    assert list(clf.feature_names_in_[:2]) == ["px0", "px1"]
    assert np.mean(pred == names[y]) > 0.7


def test_verbose_prints_one_line_per_round(digits):
    X, y = digits
    buf = io.StringIO()
    with redirect_stdout(buf):
        small(verbose=1).fit(X, y)
    lines = buf.getvalue().strip().splitlines()
    assert "round" in lines[0] and "% left" in lines[0]
    assert len(lines) == 4
    assert lines[2].split()[:2] == ["1", "80.56"]  # (2048 + 640 + 180) / 3560


def test_warm_start_adds_rounds(digits):
    X, y = digits
    clf = small(n_rounds=1, warm_start=True).fit(X, y)
    masks1 = {n: m.clone() for n, m in clf.masks_.items()}
    theta0 = clf.init_params_
    clf.set_params(n_rounds=2).fit(X, y)
    assert [r["round"] for r in clf.rounds_] == [0, 1, 2]
    assert clf.init_params_ is theta0
    for n, m in clf.masks_.items():
        assert not (m & ~masks1[n]).any() and int(m.sum()) < int(masks1[n].sum())
    with pytest.warns(UserWarning, match="nothing to do"):
        clf.fit(X, y)


def test_pipeline_cv_clone_and_grid_search(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), small(n_rounds=1, max_epochs=2))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.5  # chance is 0.1; two short epochs per round
    grid = GridSearchCV(
        small(max_epochs=1),
        {"pruning_rate": [0.2, 0.5], "n_rounds": [0, 1], "reinit": ["rewind", "fresh"]},
        cv=2, n_jobs=2,
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 8
    assert grid.best_estimator_.rounds_[-1]["round"] == grid.best_params_["n_rounds"]
    c = clone(grid.best_estimator_)
    assert not hasattr(c, "net_") and c.get_params() == grid.best_estimator_.get_params()


def test_pickle_and_joblib_round_trip(digits, tmp_path):
    X, y = digits
    clf = small(n_rounds=1).fit(X, y)
    proba = clf.predict_proba(X)
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)
    joblib.dump(clf, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    for n, m in clf.masks_.items():
        assert torch.equal(loaded.masks_[n], m)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"pruning_rate": 1.0}, "pruning_rate"),
        ({"pruning_rate": -0.1}, "pruning_rate"),
        ({"n_rounds": -1}, "n_rounds"),
        ({"reinit": "bogus"}, "reinit"),
        ({"pruning_criterion": "bogus"}, "pruning_criterion"),
        ({"target_sparsity": 1.0}, "target_sparsity"),
        ({"output_pruning_rate": "third"}, "output_pruning_rate"),
        ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes"),
        ({"module": "resnet1000"}, "resnet1000"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"learning_rate_init": 0}, "learning_rate_init"),
    ],
)
def test_invalid_params_name_the_parameter(digits, params, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        small(**params).fit(X[:100], y[:100])


def test_bad_input_errors(digits):
    X, y = digits
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        small().fit(Xn, y)
    with pytest.raises(ValueError, match="only one class"):
        small().fit(X[:20], np.zeros(20))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        small().predict(X)
    clf = small(n_rounds=0, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :10])


def test_initial_masks_train_a_given_ticket_from_new_init(digits):
    X, y = digits
    ticket = small(n_rounds=2).fit(X, y)
    rec = StartStates()
    ctrl = small(n_rounds=0, random_state=5, callbacks=[rec]).fit(
        X, y, initial_masks=ticket.masks_)
    start = dict(ctrl.net_.callbacks_)["user_0"].states[0]
    assert ctrl.rounds_[0]["weights_remaining"] == pytest.approx(
        ticket.rounds_[-1]["weights_remaining"])
    assert ctrl.rounds_[0]["reinit"] == "masked"
    for n, m in ticket.masks_.items():
        assert torch.equal(ctrl.masks_[n], m)
        assert torch.all(start[n][~m] == 0)
        assert not torch.equal(start[n][m], ticket.init_params_[n][m])
    bad = {n: m[:1] for n, m in ticket.masks_.items()}
    with pytest.raises(ValueError, match="has shape"):
        small().fit(X, y, initial_masks=bad)
    with pytest.raises(ValueError, match="missing"):
        small().fit(X, y, initial_masks={})


def test_fitted_estimator_does_not_keep_the_training_data():
    rng = np.random.RandomState(0)
    X = rng.rand(4000, 64).astype(np.float32)  # 1 MB of data
    y = rng.randint(0, 3, 4000)
    clf = small(n_rounds=1, max_epochs=1, hidden_layer_sizes=(8,)).fit(X, y)
    size = len(pickle.dumps(clf))
    # the network, theta0 and one checkpoint are a few KB; the data would be 1 MB
    assert size < X.nbytes / 10, size
    assert clf.net_.train_split is None


def test_lr_warmup_is_linear_and_restarts_every_round(digits):
    X, y = digits

    class LrLog(Callback):
        def initialize(self):
            self.lrs = []
            return self

        def on_train_begin(self, net, **kw):
            self.lrs.append([])

        def on_batch_begin(self, net, training=False, **kw):
            if training:
                self.lrs[-1].append(net.optimizer_.param_groups[0]["lr"])

    clf = small(lr_warmup=10, n_rounds=1, learning_rate_init=1e-2,
                callbacks=[LrLog()]).fit(X, y)
    per_round = dict(clf.net_.callbacks_)["user_0"].lrs
    assert len(per_round) == 2
    expected = [1e-2 * (i + 1) / 10 for i in range(10)]
    for lrs in per_round:
        assert lrs[:10] == pytest.approx(expected)
        assert lrs[10:] == pytest.approx([1e-2] * (len(lrs) - 10))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_device_without_cuda_is_a_clear_error(digits):
    X, y = digits
    with pytest.raises(ValueError, match="CUDA is not available"):
        small(device="cuda").fit(X, y)
    with pytest.raises(ValueError, match="not a torch device"):
        small(device="gpu0").fit(X, y)


def test_auto_device_is_cuda_where_there_is_cuda(digits):
    X, y = digits
    est = small(device="auto", n_rounds=0).fit(X, y)
    assert est.device_ == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert est.net_.module_.layers[0].weight.device.type == est.device_.type
    assert est.get_params()["device"] == "auto"  # the parameter is left as given


# --------------------------------------------------------------------------
# defects found by an outside test suite and a new-user trial
# --------------------------------------------------------------------------
def test_global_scope_with_a_different_conv_rate_fails_before_training():
    X = np.random.default_rng(0).random((40, 64)).astype(np.float32)
    y = np.arange(40) % 2
    clf = LotteryTicketClassifier(module="conv2", input_shape=(1, 8, 8), pruning_scope="global",
                                  conv_pruning_rate=0.1, pruning_rate=0.2, max_epochs=1,
                                  callbacks=[FailOnTrain()])
    with pytest.raises(ValueError, match="pruning_scope='global'.*one rate.*conv_pruning_rate"):
        clf.fit(X, y)  # FailOnTrain would raise first if any training started
    assert not hasattr(clf, "net_")  # nothing half-fitted
    same = clf.set_params(conv_pruning_rate=0.2, callbacks=None, n_rounds=1).fit(X, y)
    assert same.n_rounds_ == 1


@pytest.mark.parametrize("one_shot", [False, True])
def test_global_scope_reaches_the_target_sparsity(one_shot):
    # 3 features, hidden (3, 3), 2 classes at 30 %: counted layer by layer, one
    # round looked enough, but the pooled layers lose fewer weights (25 % pruned
    # for a target of 28 %); counted over the pooled group it takes two rounds
    X = np.random.default_rng(0).random((60, 3)).astype(np.float32)
    y = np.arange(60) % 2
    clf = small(hidden_layer_sizes=(3, 3), pruning_rate=0.3, target_sparsity=0.28,
                pruning_scope="global", one_shot=one_shot, max_epochs=1).fit(X, y)
    assert clf.sparsity_ >= 0.28


def test_a_module_pruned_with_torch_prune_is_rejected_with_a_clear_error(digits):
    X, y = digits

    class PrunedMLP(torch.nn.Module):
        def __init__(self, n_features, n_classes):
            super().__init__()
            self.fc = torch.nn.Linear(n_features, 16)
            self.out = torch.nn.Linear(16, n_classes)
            torch.nn.utils.prune.l1_unstructured(self.fc, "weight", amount=0.5)

        def forward(self, x):
            return self.out(torch.relu(self.fc(x)))

    clf = LotteryTicketClassifier(module=PrunedMLP, max_epochs=1, n_rounds=1,
                                  callbacks=[FailOnTrain()])
    with pytest.raises(ValueError, match=r"already pruned with torch.nn.utils.prune.*"
                                         r"\['fc.weight'\].*initial_masks"):
        clf.fit(X, y)


def test_hidden_layer_sizes_may_be_an_int(digits):
    X, y = digits
    clf = small(hidden_layer_sizes=30, n_rounds=1, max_epochs=1).fit(X, y)
    assert [m.out_features for m in clf.net_.module_.modules()
            if isinstance(m, torch.nn.Linear)] == [30, 10]


def test_predict_on_read_only_input_gives_no_torch_warning(digits):
    X, y = digits
    clf = small(n_rounds=0, max_epochs=1).fit(X, y)
    frozen = np.array(X, dtype=np.float32)
    frozen.flags.writeable = False  # what pandas 3 hands out (copy-on-write)
    frame = pd.DataFrame(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = clf.predict(frozen)
        b = clf.predict_proba(frame.to_numpy())
    np.testing.assert_array_equal(a, clf.predict(X))
    assert b.shape == (len(X), 10)


def test_license_file_matches_the_metadata():
    root = Path(__file__).resolve().parents[1]
    text = (root / "LICENSE").read_text()
    assert "BSD 3-Clause" in text and "Redistribution and use" in text
    assert "license = BSD-3-Clause" in (root / "setup.cfg").read_text()


def _unfused_adam(monkeypatch):
    """Make the estimators train with torch's default (unfused) Adam kernel."""
    import sklottery.base as base

    original = base.BaseLotteryTicket._build_net

    def build(self, *args, **kwargs):
        net = original(self, *args, **kwargs)
        net.set_params(optimizer__fused=None)
        return net

    monkeypatch.setattr(base.BaseLotteryTicket, "_build_net", build)


def test_primed_adam_trains_exactly_like_plain_adam(digits, monkeypatch):
    """Priming (unfused kernel) changes only the pruned entries' second moments."""
    import sklottery.training.skorch as training

    X, y = digits
    _unfused_adam(monkeypatch)
    masks = small(n_rounds=1, max_epochs=1, random_state=0).fit(X, y).masks_
    primed = small(n_rounds=0, max_epochs=2, random_state=1).fit(X, y, initial_masks=masks)
    assert not primed.net_.optimizer_.defaults.get("fused")
    original = training.prime_adam_state
    try:
        training.prime_adam_state = lambda *args, **kwargs: None
        plain = small(n_rounds=0, max_epochs=2, random_state=1).fit(X, y,
                                                                    initial_masks=masks)
    finally:
        training.prime_adam_state = original
    for k, v in primed.net_.module_.state_dict().items():
        assert torch.equal(v, plain.net_.module_.state_dict()[k]), k
    p = primed.net_.module_.layers[0].weight
    v = primed.net_.optimizer_.state[p]["exp_avg_sq"]
    assert torch.all(v[~masks["layers.0.weight"]] > 0)  # no exact zeros: no slow sqrt


def test_fused_adam_trains_like_the_default_kernel(digits, monkeypatch):
    """The shipped fused Adam is the same algorithm: same masks, weights to float rounding."""
    X, y = digits
    fused = small(n_rounds=2, max_epochs=2, random_state=4).fit(X, y)
    assert fused.net_.optimizer_.defaults.get("fused")
    _unfused_adam(monkeypatch)
    plain = small(n_rounds=2, max_epochs=2, random_state=4).fit(X, y)
    for n, m in fused.masks_.items():
        assert torch.equal(m, plain.masks_[n]), n
    for k, v in fused.net_.module_.state_dict().items():
        torch.testing.assert_close(v, plain.net_.module_.state_dict()[k], atol=1e-5, rtol=1e-4)


def test_initial_params_start_from_given_weights(digits):
    X, y = digits
    donor = small(n_rounds=0, max_epochs=1, random_state=3).fit(X, y)
    theta = {k: v.clone() for k, v in donor.net_.module_.state_dict().items()}
    clf = small(n_rounds=0, max_epochs=1, random_state=9).fit(X, y, initial_params=theta)
    for k, v in theta.items():
        assert torch.equal(clf.init_params_[k], v)  # theta0 of this fit is the given state
    with pytest.raises(ValueError, match="missing"):
        small(n_rounds=0).fit(X, y, initial_params={"layers.0.weight": theta["layers.0.weight"]})
    with pytest.raises(ValueError, match="shape"):
        small(n_rounds=0).fit(X, y, initial_params={**theta, "layers.0.bias": torch.zeros(3)})
    with pytest.raises(TypeError, match="state dict"):
        small(n_rounds=0).fit(X, y, initial_params=[1, 2])


class ThreadProbe(Callback):
    """Records torch's thread count during training."""

    def on_epoch_end(self, net, **kwargs):
        self.seen_ = torch.get_num_threads()


def test_n_threads_applies_during_fit_and_predict_and_is_restored(digits):
    X, y = digits

    before = torch.get_num_threads()
    target = 2 if before != 2 else 1
    clf = small(n_rounds=0, max_epochs=1, n_threads=target,
                callbacks=[("probe", ThreadProbe())]).fit(X, y)
    assert dict(clf.net_.callbacks_)["probe"].seen_ == target
    assert torch.get_num_threads() == before
    clf.predict(X)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n_threads"):
        small(n_threads=0).fit(X, y)


def test_default_is_one_thread_and_none_leaves_torchs_setting(digits):
    # one thread cannot collapse on a busy machine (benchmarks/bench_threads.py)
    X, y = digits

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        clf = small(n_rounds=0, max_epochs=1, callbacks=[("probe", ThreadProbe())])
        assert clf.n_threads == 1
        assert dict(clf.fit(X, y).net_.callbacks_)["probe"].seen_ == 1
        clf.set_params(n_threads=None).fit(X, y)
        assert dict(clf.net_.callbacks_)["probe"].seen_ == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_verbose_2_prints_epochs_inside_rounds_after_the_header(digits):
    X, y = digits
    out = io.StringIO()
    with redirect_stdout(out):
        small(n_rounds=1, max_epochs=2, verbose=2).fit(X, y)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:2] == ["round", "%"]  # the header comes before round 0
    epochs = [line for line in lines if line.strip().startswith("epoch")]
    assert len(epochs) == 4 and "val loss" in epochs[0] and "val acc" in epochs[0]
    # the round lines follow their epochs: epoch 1, epoch 2, round 0, ...
    assert lines[1].strip().startswith("epoch   1") and lines[3].split()[0] == "0"
    quiet = io.StringIO()
    with redirect_stdout(quiet):
        small(n_rounds=1, max_epochs=2, verbose=1).fit(X, y)
    assert "epoch" not in quiet.getvalue()


def test_training_flushes_denormals_and_restores_the_mode(digits):
    from sklottery.training import flush_denormals
    from sklottery.training import flushing_denormals as _flushing_denormals

    class Probe(Callback):
        def on_epoch_end(self, net, **kwargs):
            self.flushing_ = _flushing_denormals()

    X, y = digits
    assert not _flushing_denormals()
    clf = small(n_rounds=0, max_epochs=1, callbacks=[("probe", Probe())]).fit(X, y)
    if torch.set_flush_denormal(False):  # this CPU can flush (x86 with SSE3)
        assert dict(clf.net_.callbacks_)["probe"].flushing_ is True
    assert not _flushing_denormals()  # restored after fit
    # a caller who already flushes keeps flushing afterwards
    if torch.set_flush_denormal(True):
        try:
            with flush_denormals():
                assert _flushing_denormals()
            assert _flushing_denormals()
        finally:
            torch.set_flush_denormal(False)


def test_negatively_strided_input_fits_and_predicts(digits):
    X, y = digits
    flipped = np.asarray(X, dtype=np.float64)[:, ::-1]
    assert min(flipped.strides) < 0
    clf = small(n_rounds=0, max_epochs=1, random_state=0).fit(flipped, y)
    ref = small(n_rounds=0, max_epochs=1, random_state=0).fit(flipped.copy(), y)
    np.testing.assert_array_equal(clf.predict(flipped[::-1]), ref.predict(flipped[::-1].copy()))


def test_fits_without_a_fused_adam_kernel(digits, monkeypatch):
    """Where torch has no fused Adam for the device (CPU before torch 2.4), the
    default kernel trains instead, with the pruned entries' moments primed."""
    import sklottery.training.optim as optim

    X, y = digits
    monkeypatch.setattr(optim, "fused_adam_supported", lambda device_type: False)
    clf = small(n_rounds=1, max_epochs=1, random_state=0).fit(X, y)
    assert not clf.net_.optimizer_.defaults.get("fused")
    p = clf.net_.module_.layers[0].weight
    assert torch.all(clf.net_.optimizer_.state[p]["exp_avg_sq"][~clf.masks_["layers.0.weight"]] > 0)


def test_warnings_point_at_the_users_line_not_a_sibling_folder():
    from sklottery import _utils

    pkg = _utils._PACKAGE_DIR
    assert _utils._inside(pkg + "/base.py", pkg)
    assert not _utils._inside(pkg + "_scripts/run.py", pkg)  # a sibling, not the package
