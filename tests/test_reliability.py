"""Reliability of LotteryTicketClassifier: bad input, divergence, interruption,
resume, determinism and memory.

Everything runs on the CPU, where torch is bit-for-bit deterministic for a
fixed thread count, so "the same result" is checked with exact equality
(``torch.equal`` / ``np.array_equal``), never with a tolerance.
"""

import contextlib
import json
import math
import os
import pickle
import subprocess
import sys
import textwrap
import types
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback, EarlyStopping

import sklottery
from sklottery import DivergenceWarning, LotteryTicketClassifier, PruningInterruptedWarning
from sklottery import TrainingDivergedError
from sklottery.training import DIVERGENCE_FACTOR, divergence_detail

LR = 5e-3


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0)[:300], y[:300]


def small(**kw):
    # 300 samples, 10 % held out: 270 train / batch 50 = 6 iterations per epoch
    params = dict(hidden_layer_sizes=(32, 16), max_epochs=2, batch_size=50, n_rounds=3,
                  learning_rate_init=LR, random_state=0)
    params.update(kw)
    return LotteryTicketClassifier(**params)


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    return small(n_rounds=1, max_epochs=1).fit(X, y)


def _same(a, b):
    """Equality that treats NaN as equal to NaN (round records hold NaN losses)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def rounds_without_time(clf):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in clf.rounds_]


def assert_same_fit(a, b, X):
    """Two fitted estimators are bit-for-bit the same model."""
    assert list(a.masks_) == list(b.masks_)
    for n in a.masks_:
        assert torch.equal(a.masks_[n], b.masks_[n]), n
    sa, sb = a.net_.module_.state_dict(), b.net_.module_.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    for k in a.init_params_:
        assert torch.equal(a.init_params_[k], b.init_params_[k]), k
    ra, rb = rounds_without_time(a), rounds_without_time(b)
    assert [r["weights_remaining"] for r in ra] == [r["weights_remaining"] for r in rb]
    assert _same(ra, rb)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@contextlib.contextmanager
def no_escaping_interrupt():
    """Fail the test (instead of aborting the whole pytest session) when a
    KeyboardInterrupt that fit should have handled escapes."""
    try:
        yield
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped from fit")


def assert_unfitted(clf, X):
    assert not hasattr(clf, "net_") and not hasattr(clf, "rounds_")
    with pytest.raises(NotFittedError):
        clf.predict(X)


class InterruptWhenSparse(Callback):
    """Simulate Ctrl-C: raise KeyboardInterrupt at the 2nd training batch of any
    round whose Linear weights are more than ``zero_frac`` exact zeros (pruned).

    Stateless across rounds on purpose: if a resumed fit kept this callback,
    it would interrupt round 2 again.
    """

    def __init__(self, zero_frac=0.3):
        self.zero_frac = zero_frac

    def on_train_begin(self, net, **kwargs):
        ws = [m.weight for m in net.module_.modules() if isinstance(m, torch.nn.Linear)]
        zeros = sum(int((w == 0).sum()) for w in ws)
        self.armed_ = zeros / sum(w.numel() for w in ws) > self.zero_frac
        self.batches_ = 0

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.batches_ += 1
            if self.armed_ and self.batches_ == 2:
                raise KeyboardInterrupt


class PoisonInRound(Callback):
    """Set a (never masked) bias to NaN after training batch ``at_batch`` of round
    ``at_round`` (rounds counted by ``on_train_begin``); with ``scale``, multiply the
    first layer's weights by it instead (a finite blow-up)."""

    def __init__(self, at_round=2, at_batch=3, scale=None):
        self.at_round = at_round
        self.at_batch = at_batch
        self.scale = scale

    def initialize(self):
        self.round_ = -1
        return self

    def on_train_begin(self, net, **kwargs):
        self.round_ += 1
        self.batches_ = 0

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.batches_ += 1
            if self.round_ == self.at_round and self.batches_ == self.at_batch:
                with torch.no_grad():
                    if self.scale is None:
                        net.module_.layers[0].bias[0] = float("nan")
                    else:
                        net.module_.layers[0].weight.mul_(self.scale)


class CountRounds(Callback):
    def initialize(self):
        self.n_ = 0
        return self

    def on_train_begin(self, net, **kwargs):
        self.n_ += 1


# --------------------------------------------------------------- bad input
def _with(X, i, value, dtype=None):
    X = X.astype(dtype) if dtype is not None else X.copy()
    X[i] = value
    return X


BAD_FIT_INPUTS = {
    "nan": (lambda X, y: (_with(X, (0, 0), np.nan), y), ValueError, "Input X contains NaN"),
    "inf": (lambda X, y: (_with(X, (3, 5), np.inf), y), ValueError, "Input X contains infinity"),
    "none": (lambda X, y: (_with(X, (0, 0), None, object), y), ValueError,
             "Input X contains NaN"),
    "string": (lambda X, y: (_with(X, (0, 1), "abc", object), y), ValueError,
               r"only numeric features.*'abc'.*OneHotEncoder"),
    "string_dtype": (lambda X, y: (_with(X.astype(str), (2, 2), "red"), y), ValueError,
                     r"only numeric features.*'red'"),
    "dataframe_text_column": (
        lambda X, y: (pd.DataFrame(X, columns=[f"px{i}" for i in range(64)])
                      .assign(color=["red"] * len(X)), y), ValueError,
        r"only numeric features.*'red'"),
    "dict_object": (lambda X, y: (_with(X, (0, 0), {"a": 1}, object), y), TypeError,
                    "must be a string or a.*number, not 'dict'"),
    "sparse": (lambda X, y: (sp.csr_matrix(X), y), TypeError,
               r"dense data is required.*\.toarray\(\)"),
    "one_sample": (lambda X, y: (X[:1], y[:1]), ValueError,
                   "at least 2 samples.*n_samples=1"),
    "one_class": (lambda X, y: (X[:50], np.full(50, 3)), ValueError,
                  r"only one class is present; got class .*3"),
    "y_nan": (lambda X, y: (X, _with(y.astype(float), 7, np.nan)), ValueError,
              "Input y contains NaN"),
    "length_mismatch": (lambda X, y: (X, y[:-1]), ValueError,
                        r"inconsistent numbers of samples: \[300, 299\]"),
    "3d_without_input_shape": (lambda X, y: (X.reshape(-1, 1, 8, 8), y), ValueError,
                               r"4 dimensions.*pass input_shape=\(1, 8, 8\)"),
    "3d_images_without_channel_axis": (
        lambda X, y: (X.reshape(-1, 8, 8), y), ValueError,
        r"3 dimensions \(300, 8, 8\).*X\[:, None\].*input_shape=\(1, 8, 8\)"),
    "5d": (lambda X, y: (X.reshape(-1, 1, 1, 8, 8), y), ValueError,
           r"5 dimensions.*must be \(n_samples, C, H, W\)"),
    "huge_1e30": (lambda X, y: (_with(X, (0, 0), 1e30), y), ValueError,
                  r"too large for float32 training \(max \|x\| = 1e\+30.*StandardScaler"),
    "huge_negative": (lambda X, y: (_with(X, (9, 9), -3e20), y), ValueError,
                      r"max \|x\| = 3e\+20"),
}


@pytest.mark.parametrize("case", list(BAD_FIT_INPUTS))
def test_bad_fit_input_raises_named_error_and_leaves_estimator_unfitted(digits, case):
    X, y = digits
    make, error, match = BAD_FIT_INPUTS[case]
    Xb, yb = make(X, y)
    clf = small()
    with pytest.raises(error, match=match):
        clf.fit(Xb, yb)
    assert_unfitted(clf, X)


@pytest.mark.parametrize("input_shape, X_shape, match", [
    ((1, 4, 16), (-1, 1, 8, 8), r"sample shape \(1, 8, 8\) but input_shape is \(1, 4, 16\)"),
    ((1, 4, 4), (-1, 64), r"X has 64 features but input_shape=\(1, 4, 4\) needs 16"),
])
def test_mismatched_input_shape(digits, input_shape, X_shape, match):
    X, y = digits
    clf = small(input_shape=input_shape)
    with pytest.raises(ValueError, match=match):
        clf.fit(X.reshape(X_shape), y)
    assert_unfitted(clf, X)


def test_failed_refit_does_not_leave_the_old_model_half_replaced(digits):
    X, y = digits
    clf = small(n_rounds=0, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.fit(_with(X, (0, 0), np.nan), y)
    assert_unfitted(clf, X)
    clf.fit(X, y)  # and it can be fitted again
    assert [r["round"] for r in clf.rounds_] == [0]


@pytest.mark.parametrize("make, error, match", [
    (lambda X: X[:, :10], ValueError, "X has 10 features, but LotteryTicketClassifier is "
                                      "expecting 64 features"),
    (lambda X: sp.csr_matrix(X), TypeError, r"\.toarray\(\)"),
    (lambda X: _with(X, (1, 1), np.nan), ValueError, "Input X contains NaN"),
    (lambda X: _with(X, (1, 1), 1e30), ValueError, "too large for float32"),
    (lambda X: X.reshape(-1, 1, 8, 8), ValueError, r"pass input_shape=\(1, 8, 8\)"),
    (lambda X: _with(X, (0, 1), "abc", object), ValueError, "only numeric features"),
])
def test_bad_predict_input(digits, fitted, make, error, match):
    X, _ = digits
    before = fitted.predict_proba(X)
    for method in (fitted.predict, fitted.predict_proba):
        with pytest.raises(error, match=match):
            method(make(X))
    np.testing.assert_array_equal(fitted.predict_proba(X), before)  # still usable


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_large_but_float32_features_never_give_a_nan_model(digits, optimizer):
    # |x| = 1e10 passes validation (< sqrt(float32 max) = 1.8e19). Plain SGD blows
    # up at once: that must be a divergence error naming the learning rate, not a
    # silent NaN model. Adam's steps are bounded by the learning rate: it trains
    # (badly) and its probabilities must be finite.
    X, y = digits
    Xh = X * 1e10
    clf = small(optimizer=optimizer, n_rounds=1, max_epochs=1)
    if optimizer == "sgd":
        with pytest.raises(RuntimeError,
                           match=rf"diverged in round 0 with learning_rate_init={LR}"):
            clf.fit(Xh, y)
        assert_unfitted(clf, X)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DivergenceWarning)
            clf.fit(Xh, y)
        proba = clf.predict_proba(Xh)
        assert np.isfinite(proba).all()
        # float32 softmax rows sum to 1 up to a few float32 ulps
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


INVALID_PARAMS = [
    ({"pruning_rate": -0.1}, "pruning_rate"),
    ({"pruning_rate": 1.0}, "pruning_rate"),
    ({"pruning_rate": 1.5}, "pruning_rate"),
    ({"output_pruning_rate": -0.2}, "output_pruning_rate"),
    ({"output_pruning_rate": 1.0}, "output_pruning_rate"),
    ({"output_pruning_rate": "third"}, "output_pruning_rate"),
    ({"conv_pruning_rate": -0.5}, "conv_pruning_rate"),
    ({"conv_pruning_rate": 1.0}, "conv_pruning_rate"),
    ({"n_rounds": -1}, "n_rounds"),
    ({"n_rounds": 1.5}, "n_rounds"),
    ({"target_sparsity": -0.1}, "target_sparsity"),
    ({"target_sparsity": 1.0}, "target_sparsity"),
    ({"reinit": "bogus"}, "reinit"),
    ({"pruning_criterion": "bogus"}, "pruning_criterion"),
    ({"pruning_scope": "both"}, "pruning_scope"),
    ({"rewind_iteration": -1}, "rewind_iteration"),
    ({"dropout": -0.1}, "dropout"),
    ({"dropout": 1.0}, "dropout"),
    ({"learning_rate_init": 0.0}, "learning_rate_init"),
    ({"learning_rate_init": -1e-3}, "learning_rate_init"),
    ({"alpha": -1.0}, "alpha"),
    ({"momentum": 1.5}, "momentum"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"validation_fraction": -0.1}, "validation_fraction"),
    ({"lr_warmup": -1}, "lr_warmup"),
    ({"max_epochs": 0}, "max_epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"scratch_b_max_factor": 0.5}, "scratch_b_max_factor"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"activation": "gelu"}, "activation"),
    ({"callbacks": "EarlyStopping"}, "callbacks"),
    ({"one_shot": "yes"}, "one_shot"),
]


@pytest.mark.parametrize("params, name", INVALID_PARAMS,
                         ids=[f"{n}={list(p.values())[0]!r}" for p, n in INVALID_PARAMS])
def test_invalid_parameter_value(digits, params, name):
    X, y = digits
    clf = small(**params)
    value = list(params.values())[0]
    with pytest.raises(InvalidParameterError,
                       match=rf"'{name}' parameter of LotteryTicketClassifier.*"
                             rf"Got {value!r} instead"):
        clf.fit(X, y)
    assert_unfitted(clf, X)


@pytest.mark.parametrize("params, match", [
    ({"hidden_layer_sizes": (10, 0)}, r"hidden_layer_sizes must be > 0, got \(10, 0\)"),
    ({"hidden_layer_sizes": (10, -3)}, "hidden_layer_sizes must be > 0"),
    ({"module": "resnet1000"}, "resnet1000"),
    ({"input_shape": (1, 8)}, r"input_shape must be \(C, H, W\).*\(1, 8\)"),
    ({"input_shape": (1, 0, 64)}, "input_shape must be .*positive"),
    ({"pruning_rate": 0.0, "output_pruning_rate": 0.0, "target_sparsity": 0.5},
     "target_sparsity=0.5 cannot be reached"),
])
def test_invalid_parameter_combination(digits, params, match):
    X, y = digits
    clf = small(**params)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert_unfitted(clf, X)


class TrainingStarted(Exception):
    pass


class FailIfTrained(Callback):
    """Raise TrainingStarted when a round's training begins."""

    def on_train_begin(self, net, **kwargs):
        raise TrainingStarted


@pytest.mark.parametrize("n, fraction, match", [
    # round(0.1 * 4) = 0 samples held out: no validation set
    (4, 0.1, r"validation_fraction=0.1 with n_samples=4 leaves 0 validation and 4 training "
             r"samples \(round\(0.1 \* 4\) = 0 held out\): the validation set would be empty. "
             r"Set validation_fraction=0 to train without validation, or pass at least 6 "
             r"samples"),
    # round(0.99 * 10) = 10 samples held out: nothing left to train on
    (10, 0.99, r"validation_fraction=0.99 with n_samples=10 leaves 10 validation and 0 "
               r"training samples .*the training set would be empty.*at least 51 samples"),
])
def test_empty_validation_split_is_an_error_before_training(digits, n, fraction, match):
    X, y = digits
    clf = small(validation_fraction=fraction, callbacks=[FailIfTrained()])
    with pytest.raises(ValueError, match=match):
        clf.fit(X[:n], y[:n])
    assert_unfitted(clf, X)
    with pytest.raises(TrainingStarted):  # what a fit that starts training raises
        clf.set_params(validation_fraction=0).fit(X[:n], y[:n])
    # without validation, or with the samples the message asks for, it trains
    clf.set_params(callbacks=None).fit(X[:n], y[:n])
    assert np.isnan(clf.rounds_[0]["valid_loss"])
    need = int(match.rsplit("at least ", 1)[1].split(" ")[0])
    clf.set_params(validation_fraction=fraction).fit(X[:need], y[:need])
    assert np.isfinite(clf.rounds_[0]["valid_loss"])


def test_rewind_iteration_limit_is_the_dense_round_length(digits):
    X, y = digits
    # 270 training samples / batch 50 -> 6 iterations per epoch, 1 epoch
    clf = small(max_epochs=1, n_rounds=0, rewind_iteration=7)
    with pytest.raises(ValueError, match=r"rewind_iteration=7 is beyond the dense round's "
                                         r"training length \(6 iterations = 1 epochs x 6"):
        clf.fit(X, y)
    assert_unfitted(clf, X)
    # the last iteration itself is allowed: θk is then the trained dense network
    clf = small(max_epochs=1, n_rounds=0, rewind_iteration=6).fit(X, y)
    for k, v in clf.net_.module_.state_dict().items():
        assert torch.equal(clf.rewind_params_[k], v), k


# -------------------------------------------------------------- divergence
def test_divergence_rule_is_ten_times_a_constant_prediction_or_the_first_batch():
    # the reference is the larger of the constant-prediction loss and the first batch
    assert divergence_detail("loss", 2.3 * 9.9, 2.3, 1.0) is None
    assert "exceeded 23" in divergence_detail("loss", 2.3 * 10.1, 2.3, 1.0)
    assert divergence_detail("loss", 60.0, 2.3, 7.0) is None  # a start far worse than constant
    assert "exceeded 70" in divergence_detail("loss", 71.0, 2.3, 7.0, "at iteration 5")
    assert divergence_detail("loss", float("nan"), 2.3) == "loss became nan"
    assert divergence_detail("loss", 1e30, None) is None  # no reference: finiteness only
    assert DIVERGENCE_FACTOR == 10.0


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_blown_up_dense_round_is_an_error_not_a_result(digits, optimizer):
    # before: lr=100 with Adam gave accuracy 0.0985 (one class), validation losses up to
    # 1263, stop_reason_=None and no warning
    X, y = digits
    clf = small(learning_rate_init=100, optimizer=optimizer, n_rounds=1)
    with pytest.raises(TrainingDivergedError, match=r"diverged in round 0 with "
                                                    r"learning_rate_init=100 \(.*(exceeded|nan)"):
        clf.fit(X, y)
    assert_unfitted(clf, X)
    with pytest.raises(FloatingPointError, match="learning_rate_init=100"):
        clf.set_params(error_on_divergence=True).fit(X, y)


def test_heavy_tailed_targets_are_not_mistaken_for_divergence():
    # single batches with 40-sigma outliers have losses far above 10 x the targets'
    # variance; the rule only reads epoch means and validation losses
    rng = np.random.RandomState(0)
    X = rng.randn(600, 5).astype(np.float32)
    y = X @ rng.randn(5)
    y[[7, 300]] += 50 * y.std()  # two 50-sigma outliers
    from sklottery import LotteryTicketRegressor

    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        reg = LotteryTicketRegressor(hidden_layer_sizes=(32,), n_rounds=2, max_epochs=5,
                                     batch_size=20, random_state=0).fit(X, y)
    assert reg.stop_reason_ is None and len(reg.rounds_) == 3
    # a batch that holds an outlier: its constant-prediction loss alone is > 10 x the
    # whole set's (the reference), so a per-batch rule would have fired
    per_batch = ((y - y.mean()) ** 2 / y.var()).reshape(-1, 20).mean(1)
    assert per_batch.max() > 10


def test_blown_up_runs_are_excluded_and_named_by_ticket_curve_and_the_verdict(digits):
    from sklottery import stats
    from sklottery.training import fit_many
    from sklottery.analysis import run_status, ticket_curve

    X, y = digits
    # batched trainer: the same rule per member
    ests = [small(learning_rate_init=100, n_rounds=1, random_state=s) for s in range(2)]
    outcomes = fit_many([(e, X, y, {}) for e in ests])
    assert all(isinstance(err, TrainingDivergedError) and "exceeded" in str(err)
               for err, _ in outcomes)
    with pytest.warns(DivergenceWarning, match="rewind trial 0: diverged"):
        df = ticket_curve(small(learning_rate_init=100, n_rounds=1), X, y, n_trials=2,
                          random_state=0)
    assert set(df["stop_reason"]) == {"diverged"} and df["test_acc"].isna().all()
    assert run_status(df)["diverged"] == 2
    sentence = stats.verdict(stats.matching_summary(df))
    # before: "No ticket effect ... matches dense (9.9 % vs 9.9 %)"
    assert sentence.startswith("Inconclusive: No run of the ticket completed its dense round")
    assert "winning ticket (rewind) trial 0 (diverged)" in sentence


def test_divergence_in_dense_round_raises_naming_the_learning_rate(digits):
    X, y = digits
    clf = small(optimizer="sgd", learning_rate_init=1e6)
    with pytest.raises(RuntimeError, match=r"diverged in round 0 with learning_rate_init="
                                           r"1000000\.0.*no round completed"):
        clf.fit(X, y)
    assert_unfitted(clf, X)
    clf.set_params(error_on_divergence=True)
    with pytest.raises(FloatingPointError, match=r"round 0 with learning_rate_init=1000000"):
        clf.fit(X, y)
    assert_unfitted(clf, X)
    # a warm-start fit after the failure is a fresh fit (nothing to resume)
    clf.set_params(learning_rate_init=LR, warm_start=True, n_rounds=1).fit(X, y)
    assert_same_fit(clf, small(n_rounds=1, optimizer="sgd").fit(X, y), X)


@pytest.mark.parametrize("at_batch, detail", [
    (3, "training loss became nan"),
    # batch 12 = the last optimizer step of the round (6 batches x 2 epochs): no
    # later training loss sees it; the epoch's validation loss does
    (12, "validation loss became nan at iteration 12"),
    # a finite blow-up (the first layer's weights x 1e3 after batch 2): the epoch's
    # mean training loss exceeds 10 x ln 10
    (-2, r"mean training loss of an epoch \S+ exceeded 23\.\d+ at iteration 6 \(10 x the "
         r"larger of the loss of a constant prediction, 2\.3\d*, and the round's "
         r"first-batch loss"),
])
@pytest.mark.parametrize("error_on_divergence", [False, True])
def test_divergence_in_a_pruning_round_keeps_completed_rounds(digits, at_batch, detail,
                                                              error_on_divergence):
    X, y = digits
    reference = small(n_rounds=1).fit(X, y)  # what rounds 0..1 give
    poison = PoisonInRound(at_round=2, at_batch=abs(at_batch),
                           scale=1e3 if at_batch < 0 else None)
    clf = small(callbacks=[poison], error_on_divergence=error_on_divergence)
    match = rf"diverged in round 2 with learning_rate_init={LR} \({detail}.*kept rounds 0 " \
            r"to 1 \(the dense round and 1 pruning round; n_rounds_ = 1\) and restored " \
            r"the network of round 1"
    if error_on_divergence:
        with pytest.raises(FloatingPointError, match=match):
            clf.fit(X, y)
    else:
        with pytest.warns(DivergenceWarning, match=match):
            clf.fit(X, y)
    assert clf.stop_reason_ == "diverged"
    assert [r["round"] for r in clf.rounds_] == [0, 1]
    assert clf.n_rounds_ == 1
    assert np.isfinite(clf.predict_proba(X)).all()
    assert_same_fit(clf, reference, X)
    np.testing.assert_array_equal(clf.predict(X), reference.predict(X))


def test_divergence_from_a_huge_learning_rate_then_resume(digits):
    X, y = digits
    kw = dict(optimizer="sgd", learning_rate_init=0.05)
    clf = small(n_rounds=1, warm_start=True, **kw).fit(X, y)
    after_round_1 = clf.predict_proba(X)
    clf.set_params(learning_rate_init=1e6, n_rounds=3)  # picked up by the resumed fit
    with pytest.warns(DivergenceWarning,
                      match=r"round 2 with learning_rate_init=1000000\.0 \(training loss"):
        clf.fit(X, y)
    assert clf.stop_reason_ == "diverged"
    assert [r["round"] for r in clf.rounds_] == [0, 1]
    np.testing.assert_array_equal(clf.predict_proba(X), after_round_1)
    # back to a sane rate: the resumed fit equals a run that never diverged
    clf.set_params(learning_rate_init=0.05).fit(X, y)
    assert clf.stop_reason_ is None
    assert_same_fit(clf, small(n_rounds=3, **kw).fit(X, y), X)


# ------------------------------------------------------------ interruption
RESUME_CONFIGS = {
    "rewind": dict(),
    "random_reinit_random_pruning_dropout": dict(reinit="fresh", pruning_criterion="random",
                                                 dropout=0.25),
}


@pytest.mark.parametrize("config", list(RESUME_CONFIGS))
def test_interrupt_keeps_completed_rounds_and_resume_equals_uninterrupted(digits, config):
    X, y = digits
    kw = RESUME_CONFIGS[config]
    interrupter = InterruptWhenSparse()
    clf = small(callbacks=[interrupter], **kw)
    with no_escaping_interrupt(), pytest.warns(
            PruningInterruptedWarning, match=r"interrupted in round 2; kept rounds 0 to 1 \(the "
                                             r"dense round and 1 pruning round; n_rounds_ = "
                                             r"1\) and restored the network of round 1"):
        clf.fit(X, y)
    assert clf.stop_reason_ == "interrupted"
    assert [r["round"] for r in clf.rounds_] == [0, 1]
    assert_same_fit(clf, small(n_rounds=1, **kw).fit(X, y), X)  # usable: round 1's model

    # resume without the interrupting callback (a new one is used instead)
    counter = CountRounds()
    with no_escaping_interrupt(), warnings.catch_warnings():
        warnings.simplefilter("error", PruningInterruptedWarning)
        clf.set_params(warm_start=True, callbacks=[counter]).fit(X, y)
    assert clf.stop_reason_ is None
    assert [r["round"] for r in clf.rounds_] == [0, 1, 2, 3]
    assert dict(clf.net_.callbacks_)["user_0"].n_ == 2  # rounds 2 and 3 only
    assert not hasattr(counter, "n_")  # the user's object is not the one trained with
    assert_same_fit(clf, small(**kw).fit(X, y), X)


def test_interrupt_in_dense_round_propagates_and_leaves_unfitted(digits):
    X, y = digits
    clf = small(callbacks=[InterruptWhenSparse(zero_frac=-1)])  # armed in every round
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert_unfitted(clf, X)


def test_early_stopping_is_not_an_interruption(digits):
    X, y = digits
    max_epochs = 10
    clf = small(max_epochs=max_epochs, n_rounds=2, learning_rate_init=2e-2,
                callbacks=[EarlyStopping(patience=1, threshold=0.2)])
    with no_escaping_interrupt(), warnings.catch_warnings():
        warnings.simplefilter("error", PruningInterruptedWarning)
        clf.fit(X, y)
    assert clf.stop_reason_ is None
    assert [r["round"] for r in clf.rounds_] == [0, 1, 2]
    # EarlyStopping really ended every round early (it raises KeyboardInterrupt)
    assert all(1 <= r["epochs"] < max_epochs for r in clf.rounds_)
    assert len(clf.net_.history) == clf.rounds_[-1]["epochs"]


def test_resume_cannot_change_the_network(digits):
    X, y = digits
    clf = small(n_rounds=1, max_epochs=1, warm_start=True).fit(X, y)
    before, original = clf.predict_proba(X), clf.get_params()
    for params in [{"hidden_layer_sizes": (8,)}, {"dropout": 0.5}, {"activation": "tanh"}]:
        clf.set_params(n_rounds=2, **params)
        with pytest.raises(ValueError, match=f"cannot change the network.*{list(params)[0]}"):
            clf.fit(X, y)
        clf.set_params(**original)
    assert [r["round"] for r in clf.rounds_] == [0, 1]
    np.testing.assert_array_equal(clf.predict_proba(X), before)


# ------------------------------------------------------------------ resume
@pytest.mark.parametrize("config", [
    dict(),
    dict(reinit="fresh", pruning_criterion="random"),
    dict(reinit="rewind", dropout=0.3),
], ids=["rewind", "random_reinit_random_pruning", "rewind_dropout"])
def test_warm_start_more_rounds_equals_uninterrupted(digits, config):
    X, y = digits
    clf = small(n_rounds=1, warm_start=True, **config).fit(X, y)
    theta0 = dict(clf.init_params_)
    clf.set_params(n_rounds=2).fit(X, y)
    clf.set_params(n_rounds=3).fit(X, y)
    assert [r["round"] for r in clf.rounds_] == [0, 1, 2, 3]
    assert all(clf.init_params_[k] is v for k, v in theta0.items())
    assert_same_fit(clf, small(**config).fit(X, y), X)


def env_importing_this_sklottery():
    """The environment for a child Python that imports the sklottery under test.

    A script run from elsewhere would import whatever sklottery is installed
    (e.g. another checkout's editable install); the tested package's parent
    directory goes first on PYTHONPATH.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(sklottery.__file__)))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join([root] + paths))


_CHILD = textwrap.dedent("""
    import pickle, sys
    import numpy as np
    import torch
    workdir, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    from sklottery import LotteryTicketClassifier
    data = np.load(workdir + "/data.npz")
    X, y = data["X"], data["y"]
    with open(workdir + "/tasks.pkl", "rb") as f:
        tasks = pickle.load(f)
    outs = {}
    for job, task in tasks.items():
        rng_before = torch.get_rng_state()
        if "estimator" in task:  # continue a pickled, half-finished fit
            clf = task["estimator"].set_params(**task["set_params"]).fit(X, y)
        else:
            clf = LotteryTicketClassifier(**task["params"]).fit(X, y)
        outs[job] = {
            "masks": {n: m.numpy() for n, m in clf.masks_.items()},
            "state": {k: v.numpy() for k, v in clf.net_.module_.state_dict().items()},
            "rounds": [{k: v for k, v in r.items() if k != "seconds"} for r in clf.rounds_],
            "proba": clf.predict_proba(X),
            "global_rng_unchanged": bool(torch.equal(torch.get_rng_state(), rng_before)),
        }
    with open(workdir + "/outs.pkl", "wb") as f:
        pickle.dump(outs, f)
""")

CHILD_CONFIG = dict(reinit="fresh", pruning_criterion="random", dropout=0.25)


@pytest.fixture(scope="module")
def child_outputs(digits, tmp_path_factory):
    """Run jobs in one fresh Python process (importing torch & co. takes seconds).

    ``resume``: a pickled estimator after 1 of 3 rounds continues there.
    ``fresh``: a fit from scratch with the same parameters.
    """
    X, y = digits
    workdir = tmp_path_factory.mktemp("child")
    half = small(n_rounds=1, warm_start=True, **CHILD_CONFIG).fit(X, y)
    tasks = {
        "resume": {"estimator": half, "set_params": {"n_rounds": 3}},
        "fresh": {"params": small(**CHILD_CONFIG).get_params()},
    }
    (workdir / "child.py").write_text(_CHILD)
    np.savez(workdir / "data.npz", X=X, y=y)
    with open(workdir / "tasks.pkl", "wb") as f:
        pickle.dump(tasks, f)
    # same thread count as here: CPU results are bit-for-bit only for equal counts
    proc = subprocess.run(
        [sys.executable, str(workdir / "child.py"), str(workdir), str(torch.get_num_threads())],
        env=env_importing_this_sklottery(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=300)
    assert proc.returncode == 0, proc.stdout.decode()
    with open(workdir / "outs.pkl", "rb") as f:
        return pickle.load(f)


def _assert_child_equals(out, clf, X):
    assert out["global_rng_unchanged"]
    for n, m in clf.masks_.items():
        np.testing.assert_array_equal(out["masks"][n], m.numpy())
    for k, v in clf.net_.module_.state_dict().items():
        np.testing.assert_array_equal(out["state"][k], v.numpy())
    assert _same(out["rounds"], rounds_without_time(clf))
    np.testing.assert_array_equal(out["proba"], clf.predict_proba(X))


def test_pickled_half_finished_fit_continues_in_a_new_process(digits, child_outputs):
    X, y = digits
    _assert_child_equals(child_outputs["resume"], small(**CHILD_CONFIG).fit(X, y), X)


def test_same_random_state_same_result_in_separate_processes(digits, child_outputs):
    X, y = digits
    here = small(**CHILD_CONFIG).fit(X, y)
    _assert_child_equals(child_outputs["fresh"], here, X)
    other = small(**CHILD_CONFIG, random_state=1).fit(X, y)
    assert not np.array_equal(other.predict_proba(X), child_outputs["fresh"]["proba"])


# ----------------------------------------------------------- determinism
def test_fit_predict_resume_and_failures_leave_global_rngs_untouched(digits):
    X, y = digits
    torch.manual_seed(123)
    np.random.seed(123)
    t0, n0 = torch.get_rng_state(), np.random.get_state()[1].copy()

    def unchanged():
        return (torch.equal(torch.get_rng_state(), t0)
                and np.array_equal(np.random.get_state()[1], n0))

    kw = dict(dropout=0.2, reinit="fresh", pruning_criterion="random")
    clf = small(n_rounds=1, warm_start=True, **kw).fit(X, y)
    assert unchanged()
    clf.predict(X), clf.predict_proba(X), clf.score(X, y)
    assert unchanged()
    clf.set_params(n_rounds=2).fit(X, y)  # resume
    assert unchanged()
    with no_escaping_interrupt(), pytest.warns(PruningInterruptedWarning):
        small(callbacks=[InterruptWhenSparse()], **kw).fit(X, y)
    assert unchanged()
    with pytest.raises(RuntimeError):
        small(optimizer="sgd", learning_rate_init=1e6).fit(X, y)
    assert unchanged()


# ------------------------------------------------------------------ memory
def tensor_bytes(root):
    """Bytes of the distinct tensor storages reachable from ``root`` through
    dicts (keys and values), lists, tuples, sets and object ``__dict__``s."""
    seen, storages, stack = set(), {}, [root]
    skip = (type, types.ModuleType, types.FunctionType, types.MethodType,
            types.BuiltinFunctionType, str, bytes, int, float, bool, np.ndarray)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip) or obj is None:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            st = obj.untyped_storage()
            storages[st.data_ptr()] = st.nbytes()
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.append(vars(obj))
    return sum(storages.values())


# A leak of one mask set per round would add 9 x 1232 bytes (bool masks of the
# 64-16-8-10 net) between round 3 and round 12, a leaked state dict per round
# 9 x 5064 bytes. 1 KiB leaves room for a few scalar bookkeeping tensors (e.g.
# Adam's per-parameter step counters, 4 bytes each) and nothing per round.
SLACK_BYTES = 1024


@pytest.mark.parametrize("config", [dict(), dict(reinit="fresh",
                                                 pruning_criterion="magnitude_increase")],
                         ids=["rewind", "random_magnitude_increase"])
def test_memory_does_not_grow_with_rounds(digits, config):
    X, y = digits
    kw = dict(hidden_layer_sizes=(16, 8), max_epochs=1, **config)
    clf = small(n_rounds=3, warm_start=True, **kw).fit(X, y)
    bytes_3 = tensor_bytes(clf.__dict__)
    theta0 = dict(clf.init_params_)
    clf.set_params(n_rounds=12).fit(X, y)
    assert [r["round"] for r in clf.rounds_] == list(range(13))
    assert tensor_bytes(clf.__dict__) <= bytes_3 + SLACK_BYTES
    # θ0 is kept once: the very same tensors, and rewinding uses them directly
    assert all(clf.init_params_[k] is v for k, v in theta0.items())
    assert clf.rewind_params_ is clf.init_params_
    assert len(clf.net_.history) == clf.rounds_[-1]["epochs"] == 1  # last round only
    # the same without warm start: a 12-round fit holds what a 3-round fit holds
    b3 = tensor_bytes(small(n_rounds=3, **kw).fit(X, y).__dict__)
    b12 = tensor_bytes(small(n_rounds=12, **kw).fit(X, y).__dict__)
    assert b12 <= b3 + SLACK_BYTES


def test_fit_holds_at_most_one_extra_copy_of_X():
    """fit's peak memory beyond X: the float32 training/validation split (one copy
    of X for float32 input, half of X for float64) and nothing per epoch.

    ``benchmarks/bench_memory.py`` measures it in a fresh process: peak RSS
    during fit minus RSS before (the float64 fit after the float32 one, from
    the memory left then, with the peak counter reset). Before batches
    gathered their own rows and the split was cast block by block, the extra
    peak was 1.9 copies of a float32 X (the split plus a shuffled copy of the
    training set every epoch) and 2.8 float32 copies for float64 input. The
    margin of 0.4 copies (36 MiB here) covers what is not X: LeNet-300-100
    with Adam, θ0 and the checkpoint (about 8 MiB), torch's allocator and
    interpreter noise (about 12 MiB measured at this size).
    """
    bench = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "benchmarks", "bench_memory.py")
    if not os.path.exists(bench) or not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs benchmarks/bench_memory.py and Linux's resettable peak RSS")
    out = subprocess.run(
        [sys.executable, bench, "--rows", "30000", "--features", "784", "--epochs", "1",
         "--dtype", "float32", "float64", "--one-process", "--json"],
        env=env_importing_this_sklottery(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for line in out.stdout.strip().splitlines():
        r = json.loads(line)
        float32_copy = r["rows"] * r["features"] * 4
        assert r["extra_peak_bytes"] < 1.4 * float32_copy, r
