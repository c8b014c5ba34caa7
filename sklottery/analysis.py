"""Does the lottery ticket hypothesis hold? Ticket curves, controls and sweeps.

:func:`ticket_curve` runs iterative magnitude pruning (IMP) for the winning
ticket and for the controls of Frankle & Carbin (2019), Liu et al. (2019),
Zhou et al. (2019) and Frankle et al. (2020), over several trials, and returns
one tidy table. :mod:`sklottery.stats` turns the table into statistics and
:mod:`sklottery.plotting` into figures.

Strategies
----------
Two kinds of run are used. *Chains* are one IMP fit each (the mask of round
``r + 1`` is pruned from the weights trained in round ``r``):

================= ============================================================
``'rewind'``      winning ticket: survivors reset to θ0 after every prune
``'rewind_k'``    late rewinding to θk (``rewind_iteration``; Frankle et al.)
``'random_mask'`` random pruning (``pruning_criterion='random'``), θ0 kept
``'continue'``    traditional pruning: keep the trained weights, fine-tune
``'same_sign'``   fresh magnitudes with θ0's signs after every prune (Zhou)
================= ============================================================

*Mask controls* take the winning ticket's mask at every round ``r >= 1``
and train it once, for the same epochs, from a new random initialisation
(another seed), or, for the sanity checks of Frankle et al. (2021), a
perturbation of the mask from the ticket's own start weights. These words
mean the mask controls everywhere in sklottery (the estimators' chain
strategies are ``reinit='fresh'`` and ``'fresh_budget'``):

=================== ==========================================================
``'random'``        Frankle & Carbin's random reinitialisation, same epochs
                    (Frankle et al. 2021's "reinit" sanity check)
``'scratch_e'``     Liu et al.'s Scratch-E: same procedure as ``'random'`` (for
                    unstructured masks the two coincide) with its own seeds
``'scratch_b'``     Liu et al.'s Scratch-B: same compute budget; epochs
                    ``ceil(E * min(1/c, scratch_b_max_factor))`` for a fraction
                    ``c`` of the dense multiply-adds left (``macs_fraction``;
                    see :mod:`sklottery.strategies`)
``'one_shot'``      prune the dense network to the ticket's level in one step,
                    rewind to θ0, train once (one fit per level)
``'shuffle_layer'`` the ticket's mask permuted uniformly at random within each
                    layer (the same number of weights per layer; a seeded
                    generator per trial and round), trained from the ticket's
                    own start weights: the same ``random_state`` as the trial's
                    chains, so θ0 (θk when the template sets
                    ``rewind_iteration=k``), validation split and batch order
                    are the ticket's; only the mask's positions change
``'invert'``        per layer, as many weights as the ticket keeps, those IMP
                    ranked lowest: weights pruned in earlier rounds first, then
                    by the pruning criterion on the weights trained in the last
                    round they survived (:func:`sklottery.sanity.imp_scores`);
                    disjoint from the ticket in every layer that keeps at most
                    half its weights; trained like ``'shuffle_layer'``
``'snip'``,         pruning at initialization (:mod:`sklottery.pai`): the
``'grasp'``,        method's mask at the ticket's level, computed on the
``'synflow'``       trial's θ0 and training data, trained once from that θ0
                    (the ticket's ``random_state``), the same epochs
``'<m>_shuffle'``   ``'snip_shuffle'``, ``'grasp_shuffle'``,
                    ``'synflow_shuffle'``: the method's mask shuffled within
                    each layer, trained from the same θ0: does the method's
                    mask carry more than its per-layer densities?
=================== ==========================================================

Every run is reproducible from ``random_state``: trial ``t`` uses the same
data split and the same θ0 for all chain strategies, so the strategies are
compared on paired data.

Frankle et al. (2021): "Pruning Neural Networks at Initialization: Why Are We
Missing the Mark?", ICLR, arXiv:2009.08576.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import os
import warnings

import numpy as np
import pandas as pd
import torch
from joblib import effective_n_jobs, parallel_config
from joblib._parallel_backends import LokyBackend, MultiprocessingBackend, SequentialBackend
from joblib.parallel import get_active_backend
from sklearn.base import clone, is_regressor
from sklearn.model_selection import check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from skorch.callbacks import Callback

from ._utils import split
from ._interrupt import aborting, experiment_stop, stop_requested
from ._parallel import run_tasks
from .base import DivergenceWarning, PruningInterruptedWarning, TrainingDivergedError
from .exceptions import ExperimentInterrupted, LayerCollapseError, UndertrainingWarning
from .estimators import target_standardization
from .stats import mask_analysis, tickets_exist  # noqa: F401  (moved; still importable here)
from .modules import MODULES, ImageClassifierModule, get_module_class
from .pruning import structured_hidden_sizes
from .sanity import imp_scores, invert_masks, shuffle_within_layers
from .strategies import scratch_b_epochs
from .pai import PAI_METHODS, pai_masks
from .training import accuracy_t, fit_many, forward_chunks, r2_t

__all__ = [
    "STRATEGIES",
    "CHAIN_STRATEGIES",
    "MASK_STRATEGIES",
    "SANITY_STRATEGIES",
    "RESULT_COLUMNS",
    "ticket_curve",
    "mask_analysis",
    "conditions_sweep",
    "tickets_exist",
    "mask_control",
    "run_status",
    "PAI_STRATEGIES",
    "PAI_SHUFFLE_STRATEGIES",
]

CHAIN_STRATEGIES = ("rewind", "rewind_k", "random_mask", "continue", "same_sign")
#: Pruning at initialization (:data:`sklottery.pai.PAI_METHODS`): masks at the
#: ticket's levels, computed on the trial's θ0, trained from that θ0.
PAI_STRATEGIES = tuple(PAI_METHODS)
#: The same masks shuffled within each layer (Frankle et al. 2021's check of a
#: PaI method: does its mask carry more than per-layer densities?).
PAI_SHUFFLE_STRATEGIES = tuple(f"{m}_shuffle" for m in PAI_METHODS)
MASK_STRATEGIES = ("random", "scratch_e", "scratch_b", "one_shot", "shuffle_layer",
                   "invert") + PAI_STRATEGIES + PAI_SHUFFLE_STRATEGIES
#: Mask controls that train a perturbation of the ticket's mask from the
#: ticket's own start weights (Frankle et al., 2021).
SANITY_STRATEGIES = ("shuffle_layer", "invert")
STRATEGIES = CHAIN_STRATEGIES + MASK_STRATEGIES

#: Columns of the table returned by :func:`ticket_curve`, in order.
RESULT_COLUMNS = [
    "strategy", "trial", "round", "weights_remaining", "test_acc", "test_acc_early_stop",
    "test_acc_init", "test_acc_no_retrain", "early_stop_iteration", "train_acc", "valid_acc", "valid_loss", "epochs",
    "n_iter", "macs_fraction", "compute_fraction", "n_test", "stop_reason", "seconds",
]

#: Columns of :func:`ticket_curve` for a regressor: R² (higher is better) and
#: the mean squared error in the units of ``y`` (lower is better).
REGRESSION_COLUMNS = [
    "strategy", "trial", "round", "weights_remaining", "test_r2", "test_r2_early_stop",
    "test_r2_init", "test_r2_no_retrain", "test_mse", "test_mse_early_stop", "test_mse_init",
    "test_mse_no_retrain",
    "early_stop_iteration", "train_r2", "valid_r2", "valid_loss", "epochs", "n_iter",
    "macs_fraction", "compute_fraction", "n_test", "stop_reason", "seconds",
]


def result_columns(estimator):
    """The columns :func:`ticket_curve` returns for ``estimator`` (or a Pipeline)."""
    final, _ = _final_step(estimator)
    return REGRESSION_COLUMNS if is_regressor(final) else RESULT_COLUMNS

#: Warnings that mean a run was cut short (its completed rounds are kept).
_CUT_SHORT = (DivergenceWarning, PruningInterruptedWarning)


class EvaluationCallback(Callback):
    """Record test scores of every round of an IMP fit.

    Per round: the test score of the masked start weights before any training
    (``test_<m>_init``, Zhou et al.'s supermask effect), of the weights the
    previous round trained under this round's masks, before any retraining
    (``test_<m>_no_retrain``: traditional pruning without retraining; NaN in
    the first round a fit trains, round 0 or the one round of a mask control,
    and after a warm-start resume, which re-creates the callback), at the end
    of training (``test_<m>``) and at the early-stop iteration
    (``test_<m>_early_stop``: the network of minimum validation loss on the
    estimator's evaluation grid, ``eval_every``; a copy of the weights is kept
    whenever the validation loss improves, through the ``on_evaluation``
    hook, so the test set is scored only twice per round), and the train
    score at the end. The metrics ``<m>`` are ``acc`` for a classifier, and
    ``r2`` and ``mse`` (in the units of ``y``) for a regressor. Used by
    :func:`ticket_curve` under the name ``'sklottery_evaluation'``; read the
    results from ``dict(est.net_.callbacks_)['sklottery_evaluation'].rounds_``.

    Parameters
    ----------
    X_test, y_test, X_train, y_train : Tensor
        Data as the network sees it: classes encoded as indices, regression
        targets standardised like the estimator's (``y_scale``).
    task : {'classification', 'regression'}, default='classification'
    y_scale : array-like of shape (n_outputs,), default=None
        Regression only: the target scale, to report the MSE in ``y``'s units.
    """

    def __init__(self, X_test, y_test, X_train, y_train, task="classification",
                 y_scale=None):
        self.X_test = X_test
        self.y_test = y_test
        self.X_train = X_train
        self.y_train = y_train
        self.task = task
        self.y_scale = y_scale

    def initialize(self):
        self.rounds_ = []
        self._best = None
        self._trained = None  # the last round's trained state, for the next no-retrain score
        self._masks = None  # the round's masks (sklottery's on_round_begin hook)
        return self

    def _scores(self, net, X, y):
        """``{metric: value}`` of the current network on ``(X, y)``."""
        if self.task == "classification":
            if X is None or len(X) == 0:
                return {"acc": np.nan}
        elif X is None or len(X) == 0:
            return {"r2": np.nan, "mse": np.nan}
        out = forward_chunks(net.module_, X, device=net.device).cpu()
        if self.task == "classification":
            return {"acc": accuracy_t(out, y)}
        out = out.double().reshape(len(y), -1)
        target = y.double().reshape(len(y), -1)
        scale = torch.as_tensor(np.asarray(self.y_scale, dtype=float)).reshape(1, -1)
        mse = float((((out - target) * scale) ** 2).mean())
        return {"r2": r2_t(out, target), "mse": mse}

    def on_round_begin(self, net, masks=None, **kwargs):
        self._masks = masks

    def on_train_begin(self, net, **kwargs):
        self._best = None  # (valid_loss, iteration, weights) of the best grid point
        # the engine masked the start weights before the round
        self._init = self._scores(net, self.X_test, self.y_test)
        self._no_retrain = self._no_retrain_scores(net)

    def _no_retrain_scores(self, net):
        """Scores of the previous round's trained weights under this round's masks.

        One forward pass over the test set; the module's start weights are
        put back exactly (in place, so the optimizer's references hold). NaN
        without a previous round in this fit, or without the round's masks.
        """
        masks = self._masks
        if self._trained is None or masks is None:
            return {m: np.nan for m in self._init}
        start = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}
        pruned = dict(self._trained)
        for name, keep in masks.items():
            pruned[name] = pruned[name] * keep.to(device=pruned[name].device,
                                                  dtype=pruned[name].dtype)
        net.module_.load_state_dict(pruned)
        try:
            return self._scores(net, self.X_test, self.y_test)
        finally:
            net.module_.load_state_dict(start)

    def on_evaluation(self, net, iteration=None, valid_loss=float("nan"), **kwargs):
        # strictly better only: ties keep the first grid point, like EvalGrid.early_stop
        if np.isfinite(valid_loss) and (self._best is None or valid_loss < self._best[0]):
            state = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}
            self._best = (valid_loss, int(iteration), state)

    def on_train_end(self, net, **kwargs):
        final = self._scores(net, self.X_test, self.y_test)
        best, best_iteration = final, None
        if self._best is not None:
            _, best_iteration, state = self._best
            current = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}
            net.module_.load_state_dict(state)
            best = self._scores(net, self.X_test, self.y_test)
            net.module_.load_state_dict(current)
            self._best = None
        rec = {"early_stop_iteration": best_iteration}
        train = self._scores(net, self.X_train, self.y_train)
        for m in final:
            rec.update({f"test_{m}": final[m], f"test_{m}_early_stop": best[m],
                        f"test_{m}_init": self._init[m],
                        f"test_{m}_no_retrain": self._no_retrain[m], f"train_{m}": train[m]})
        self.rounds_.append(rec)
        self._trained = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}


def _encode(y, classes):
    """Encode labels by ``classes``; unseen labels become -1 (always wrong)."""
    y = np.asarray(y)
    idx = np.searchsorted(classes, y)
    idx = np.clip(idx, 0, len(classes) - 1)
    return np.where(classes[idx] == y, idx, -1)


def _to_tensor(X):
    X = np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), -1)
    # joblib hands large arrays to workers as read-only memmaps: copy those
    return torch.from_numpy(X if X.flags.writeable else X.copy())


def _final_step(estimator):
    """The LotteryTicketClassifier inside ``estimator`` (itself, or a Pipeline's last step)."""
    if isinstance(estimator, Pipeline):
        return estimator.steps[-1][1], estimator.steps[-1][0] + "__"
    return estimator, ""


def _set(estimator, **params):
    """``set_params`` on the LotteryTicketClassifier, also inside a Pipeline."""
    _, prefix = _final_step(estimator)
    return estimator.set_params(**{prefix + k: v for k, v in params.items()})


class _PreparedFit:
    """A configured clone of a ticket_curve run, ready to fit, and how to read it."""

    def __init__(self, estimator, X_train, y_train, X_test, y_test, keep_states=False):
        est = clone(estimator)
        final, prefix = _final_step(est)
        # the callback sees the data as the network does: after any preprocessing
        transform = est[:-1].fit(X_train, y_train) if isinstance(est, Pipeline) else None
        X_test_t = X_test if transform is None else transform.transform(X_test)
        X_train_t = X_train if transform is None else transform.transform(X_train)
        if is_regressor(final):
            mean, scale = target_standardization(y_train, final.scale_y)

            def targets(y):
                y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
                return torch.as_tensor((y - mean) / scale)

            cb = EvaluationCallback(_to_tensor(X_test_t), targets(y_test), _to_tensor(X_train_t),
                                    targets(y_train), task="regression", y_scale=scale)
        else:
            classes = np.unique(y_train)
            cb = EvaluationCallback(
                _to_tensor(X_test_t), torch.as_tensor(_encode(y_test, classes)),
                _to_tensor(X_train_t), torch.as_tensor(_encode(y_train, classes)))
        user_callbacks = list(final.callbacks or [])
        _set(est, callbacks=user_callbacks + [("sklottery_evaluation", cb)], verbose=0,
             record_history=keep_states or "masks")
        self.estimator, self.final, self.prefix = est, final, prefix
        self.X_train, self.y_train = X_train, y_train
        self.X_final = X_train_t  # what the final step is fitted on
        self.n_test = len(X_test)

    @staticmethod
    def record_filters():
        """Routine UserWarnings of the many fits are silenced; the warnings of a
        run cut short are recorded and surfaced once by ticket_curve."""
        warnings.simplefilter("ignore", UserWarning)
        for category in _CUT_SHORT:
            warnings.simplefilter("always", category)

    def fit(self, fit_kwargs=None):
        """Fit (the whole Pipeline); ``(rows, fitted final step, cut_short)``."""
        fit_kwargs = {self.prefix + k: v for k, v in (fit_kwargs or {}).items()}
        error = None
        with warnings.catch_warnings(record=True) as caught:
            self.record_filters()
            try:
                self.estimator.fit(self.X_train, self.y_train, **fit_kwargs)
            except TrainingDivergedError as exc:
                error = exc
            except KeyboardInterrupt as exc:  # a stop before the first round completed
                if aborting() or not stop_requested():
                    raise
                error = exc
        return self.collect(error, caught)

    def collect(self, error, caught):
        """Rows of the fitted run: ``(rows, fitted final step, cut_short)``.

        ``cut_short`` is None or ``(reason, message)`` when the fit stopped
        early (divergence or interruption; the completed rounds are kept). A
        fit that diverged before any round completed (``error``) gives no rows
        and no estimator; so does one that a stop request (Ctrl-C) ended
        before its first round completed (reason ``'not_run'``).
        """
        if isinstance(error, KeyboardInterrupt):
            return [], None, ("not_run", "stopped (Ctrl-C) before its first round completed")
        if error is not None:
            return [], None, ("diverged", str(error))
        cut_short = None
        for w in caught:
            if issubclass(w.category, _CUT_SHORT):
                reason = "diverged" if issubclass(w.category, DivergenceWarning) else "interrupted"
                cut_short = (reason, str(w.message))
        final, _ = _final_step(self.estimator)
        evals = dict(final.net_.callbacks_)["sklottery_evaluation"].rounds_
        score = "valid_r2" if is_regressor(final) else "valid_acc"
        rows = []
        for rec, ev in zip(final.rounds_, evals):
            es = rec["early_stop_iteration"]
            rows.append({
                "round": rec["round"],
                "weights_remaining": rec["weights_remaining"],
                **{k: v for k, v in ev.items() if k != "early_stop_iteration"},
                "early_stop_iteration": np.nan if es is None else es,
                score: rec[score],
                "valid_loss": rec["valid_loss"],
                "epochs": rec["epochs"],
                "n_iter": rec["n_iter"],
                "macs_fraction": rec["macs_fraction"],
                "n_test": self.n_test,
                "stop_reason": "" if cut_short is None else cut_short[0],
                "seconds": rec["seconds"],
            })
        return rows, final, cut_short


def _fit_and_record(estimator, X_train, y_train, X_test, y_test, fit_kwargs=None,
                    n_threads=None, keep_states=False):
    """Fit ``estimator`` with an evaluation callback (see :meth:`_PreparedFit.collect`)."""
    if n_threads:
        torch.set_num_threads(n_threads)
    prepared = _PreparedFit(estimator, X_train, y_train, X_test, y_test, keep_states)
    return prepared.fit(fit_kwargs)


def _chain_params(strategy, estimator, rewind_iteration):
    if strategy == "rewind":
        return {"reinit": "rewind", "pruning_criterion": estimator.pruning_criterion}
    if strategy == "rewind_k":
        return {"reinit": "rewind", "rewind_iteration": rewind_iteration}
    if strategy == "random_mask":
        return {"reinit": "rewind", "pruning_criterion": "random"}
    if strategy == "continue":
        return {"reinit": "continue"}
    if strategy == "same_sign":
        return {"reinit": "same_sign"}
    raise ValueError(strategy)


def _failed_row(r, level, n_test, reason, columns):
    """Row of a run that diverged before completing its first round."""
    row = {c: np.nan for c in columns}
    row.update(round=r, weights_remaining=level, n_test=n_test, stop_reason=reason)
    return row


def _materialize(split, X, y, X_test, y_test):
    """A trial's ``(X_train, y_train, X_test, y_test)`` from its split indices.

    ``split`` is ``(train_idx, test_idx)``; ``(None, None)`` trains on all of
    ``X`` and tests on the fixed ``X_test``. The workers receive the full
    arrays as arguments of their own (joblib's Dask backend scatters each
    array to the cluster once, not once per run) and the indices in the task.
    """
    train, test = split
    if train is None:
        return X, y, X_test, y_test
    return X[train], y[train], X[test], y[test]


def _chain_spec(task, data):
    """``(estimator, fit_kwargs, keep_states)`` of a chain run."""
    (strategy, trial, estimator, params, split, n_threads, keep_states) = task
    return _set(clone(estimator), **params), {}, keep_states


def _chain_output(task, data, rows, fitted, cut_short):
    (strategy, trial, estimator, params, split, n_threads, keep_states) = task
    if fitted is None and cut_short[0] != "not_run":
        rows = [_failed_row(0, 100.0, len(data[2]), cut_short[0], result_columns(estimator))]
    for row in rows:
        row.update(strategy=strategy, trial=trial)
        _add_compute_fraction(row, estimator)
    history = [] if fitted is None else fitted.history_
    masks = [h["masks"] for h in history]
    extras = None
    if keep_states and fitted is not None:
        extras = {"masks": masks, "start": [h["start"] for h in history],
                  "final": [h["final"] for h in history],
                  "init": {n: v.cpu() for n, v in fitted.init_params_.items()},
                  "rewind": {n: v.cpu() for n, v in fitted.rewind_params_.items()}}
    return strategy, trial, rows, masks, extras, cut_short


def _add_compute_fraction(row, estimator):
    """``compute_fraction`` of a row: its training compute relative to one dense round.

    Multiply-adds per sample (``macs_fraction``) times the epochs trained,
    over the template's ``max_epochs`` (the dense round's epochs).
    """
    dense_epochs = int(_final_step(estimator)[0].max_epochs)
    row["compute_fraction"] = row.get("macs_fraction", np.nan) * row.get("epochs", np.nan) \
        / dense_epochs


def _run_chain(task, *arrays):
    data = _materialize(task[4], *arrays)
    est, fit_kwargs, keep_states = _chain_spec(task, data)
    out = _fit_and_record(est, *data, fit_kwargs=fit_kwargs, n_threads=task[5],
                          keep_states=keep_states)
    return _chain_output(task, data, *out)


def _control_spec(task, data):
    """``(estimator, fit_kwargs, keep_states)`` of a mask-control run."""
    (strategy, trial, r, estimator, seed, masks, level, split, n_threads, macs) = task
    est = _set(clone(estimator), random_state=seed, reinit="rewind")
    if strategy == "one_shot":
        return _set(est, one_shot=True, n_rounds=r, target_sparsity=None), {}, False
    if strategy in SANITY_STRATEGIES + PAI_STRATEGIES + PAI_SHUFFLE_STRATEGIES:
        # masks: (the perturbed or PaI masks, the ticket's start weights or None for θ0)
        masks, start = masks
        est, fit_kwargs = mask_control(est, "random", masks, level, macs_fraction=macs)
        if start is not None:
            fit_kwargs["initial_params"] = start
        return est, fit_kwargs, False
    est, fit_kwargs = mask_control(est, strategy, masks, level, macs_fraction=macs)
    return est, fit_kwargs, False


def _control_output(task, data, rows, fitted, cut_short):
    (strategy, trial, r, estimator, seed, masks, level, split, n_threads, macs) = task
    if strategy == "one_shot":
        if fitted is not None and len(rows) < 2:
            rows = []  # the one-shot round itself did not complete
        rows = rows[-1:]
    else:
        for row in rows:
            # a compact network keeps exactly the ticket's weights and multiply-adds
            # (its own record counts them against the compact network itself)
            row.update(weights_remaining=level, macs_fraction=macs)
    if not rows and not (cut_short and cut_short[0] == "not_run"):
        rows = [_failed_row(r, level, len(data[2]), cut_short[0] if cut_short else "diverged",
                            result_columns(estimator))]
    for row in rows:
        row.update(strategy=strategy, trial=trial, round=r)
        _add_compute_fraction(row, estimator)
    return rows, cut_short


def _run_mask_control(task, *arrays):
    data = _materialize(task[7], *arrays)
    est, fit_kwargs, keep_states = _control_spec(task, data)
    out = _fit_and_record(est, *data, fit_kwargs=fit_kwargs, n_threads=task[8])
    return _control_output(task, data, *out)


def _run_batched(kind, tasks, n_threads, *arrays, on_done=None):
    """Run chain or mask-control tasks in one process with the batched trainer.

    Returns the outputs of ``_chain_output`` / ``_control_output``, in order.
    """
    if n_threads:
        torch.set_num_threads(n_threads)
    spec, output, where = (_chain_spec, _chain_output, 4) if kind == "chain" else \
        (_control_spec, _control_output, 7)
    prepared, kwargs, datas, trials = [], [], [], {}
    for task in tasks:
        if task[1] not in trials:  # one copy of a trial's data for all its runs
            trials[task[1]] = _materialize(task[where], *arrays)
        data = trials[task[1]]
        est, fit_kwargs, keep_states = spec(task, data)
        prepared.append(_PreparedFit(est, *data, keep_states=keep_states))
        kwargs.append(fit_kwargs)
        datas.append(data)
    fits = [(p.final, p.X_final, p.y_train, kw) for p, kw in zip(prepared, kwargs)]
    outcomes = fit_many(fits, batched=True, record_warnings=_PreparedFit.record_filters,
                        on_done=on_done)
    results = []
    for task, data, p, (error, caught) in zip(tasks, datas, prepared, outcomes):
        if error is not None and not isinstance(error, (TrainingDivergedError,
                                                        KeyboardInterrupt)):
            raise error
        results.append(output(task, data, *p.collect(error, caught)))
    return results


def mask_control(estimator, strategy, masks, level, macs_fraction=None):
    """The fit that trains a ticket's mask as a control: ``(estimator, fit_kwargs)``.

    ``'random'`` and ``'scratch_e'`` train the mask for ``max_epochs`` from the
    estimator's own (new) initialisation, ``'scratch_b'`` for the dense
    network's compute budget in multiply-adds
    (:func:`sklottery.strategies.scratch_b_epochs` of ``macs_fraction``). With a structured ticket
    (``pruning_granularity='neuron'``/``'filter'``) of a built-in module (the
    MLP, or a conv net through its ``widths``), scratch-E/B follow Liu et al.'s
    protocol exactly: they train the smaller *dense* architecture the mask
    defines (its alive units and filters per layer) from a fresh
    initialisation, so it also trains faster; its weights are exactly the
    ticket's kept weights. A user module trains the masked network (the same
    function class).

    Parameters
    ----------
    estimator : estimator or Pipeline
        The template (its random state is that of the control).
    strategy : {'random', 'scratch_e', 'scratch_b'}
    masks : dict of str -> bool Tensor
        The ticket's masks at this level.
    level : float
        Percent of weights the ticket keeps.
    macs_fraction : float, default=None
        Multiply-adds per sample of the ticket's network as a fraction of the
        dense network's (the ticket's ``rounds_[r]['macs_fraction']``), which
        sets scratch-B's epochs. None: ``level / 100``, which is that fraction
        only when every prunable layer is fully connected (an MLP); a ticket
        with convolutions needs it (ValueError otherwise).

    Returns
    -------
    estimator : estimator or Pipeline
        A configured clone, one training round (``n_rounds=0``).
    fit_kwargs : dict
        ``{'initial_masks': masks}``, or empty for a compact architecture.

    See Also
    --------
    ticket_curve : Runs these controls for every trial and level.
    sklottery.strategies.scratch_b_epochs : The epochs of the scratch-B budget
        rule.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    .. [2] Liu, Z., Sun, M., Zhou, T., Huang, G. and Darrell, T. (2019).
       Rethinking the Value of Network Pruning. ICLR. arXiv:1810.05270.
    """
    est = clone(estimator)
    ltc, _ = _final_step(est)
    epochs = int(ltc.max_epochs)
    if strategy == "scratch_b":
        if macs_fraction is None:
            if any(m.dim() != 2 for m in masks.values()):
                raise ValueError(
                    "mask_control('scratch_b') of a ticket with convolutions needs "
                    "macs_fraction (the ticket's rounds_[r]['macs_fraction']): its compute "
                    "is not its fraction of weights, a convolution's weight is used at every "
                    "output position.")
            macs_fraction = level / 100.0  # fully connected: one multiply-add per weight
        epochs = scratch_b_epochs(epochs, macs_fraction, ltc.scratch_b_max_factor)
    _set(est, n_rounds=0, target_sparsity=None, max_epochs=epochs)
    if strategy in ("scratch_e", "scratch_b") and ltc.pruning_granularity != "weight":
        cls = get_module_class(ltc.module)
        widths = structured_hidden_sizes(masks)
        if cls is MODULES["mlp"]:
            _set(est, hidden_layer_sizes=widths, pruning_granularity="weight")
            return est, {}
        if issubclass(cls, ImageClassifierModule):
            _set(est, module_params={**(ltc.module_params or {}), "widths": widths},
                 pruning_granularity="weight")
            return est, {}
    return est, {"initial_masks": masks}


def _trial_splits(X, y, n_trials, test_size, cv, X_test, rs, classifier=True):
    """Yield ``(train_idx, test_idx)`` per trial (stratified for classifiers).

    ``(None, None)`` with a fixed test set: train on all of ``X``.
    """
    if X_test is not None:
        for _ in range(n_trials):
            yield None, None
        return
    if cv is not None:
        cv = check_cv(cv, y, classifier=classifier)
        yield from cv.split(X, y)
        return
    for _ in range(n_trials):
        seed = int(rs.randint(0, 2**31 - 1))
        train, test = split(np.arange(len(X)), test_size=test_size, random_state=seed,
                            stratify=y if classifier else None)
        yield train, test


def _local_backend():
    """Whether joblib's active backend runs its workers on this machine's CPUs."""
    backend, _ = get_active_backend()
    return isinstance(backend, (LokyBackend, MultiprocessingBackend, SequentialBackend))


def _n_workers(n_jobs):
    """How many workers joblib runs for ``n_jobs`` under the active backend.

    joblib's own count (``n_jobs=-2`` is all CPUs but one), at most the CPUs
    on this machine; on a cluster (joblib's Dask or Ray backend) what the
    backend reports, e.g. the workers' threads in all.
    """
    if n_jobs in (None, 1) and _local_backend():
        return 1
    n = effective_n_jobs(n_jobs)  # joblib's count (a clear error for n_jobs=0)
    return max(1, min(n, os.cpu_count() or 1) if _local_backend() else n)


def _threads_per_job(n_jobs):
    """Torch threads of each parallel run: local workers share the CPUs.

    None leaves a worker's own setting: a Dask worker starts with
    ``OMP_NUM_THREADS=1`` (its nanny's default), so its runs never
    oversubscribe the worker's machine.
    """
    if n_jobs in (None, 1) or not _local_backend():
        return None
    return max(1, (os.cpu_count() or 1) // _n_workers(n_jobs))


def ticket_curve(
    estimator,
    X,
    y,
    *,
    strategies=("rewind", "random"),
    n_trials=3,
    test_size=0.25,
    cv=None,
    X_test=None,
    y_test=None,
    rewind_iteration=None,
    n_jobs=None,
    random_state=None,
    progress=None,
    return_runs=False,
    batched=True,
    control_rounds="all",
):
    """Accuracy of winning tickets and controls at every pruning level.

    Parameters
    ----------
    estimator : LotteryTicketClassifier or Pipeline ending in one
        Template; its pruning settings (``pruning_rate``, ``n_rounds`` or
        ``target_sparsity``, ...) and training settings are used for every
        strategy. Its ``reinit`` is overridden per strategy.
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    strategies : sequence of str, default=('rewind', 'random')
        Any of :data:`STRATEGIES` (see the module docstring). Mask controls
        ('random', 'scratch_e', 'scratch_b', 'one_shot', 'shuffle_layer',
        'invert') need the ticket's masks, so 'rewind' is run whenever one of
        them is asked for. The sanity checks of Frankle et al. (2021):
        'shuffle_layer' trains the ticket's mask of every round permuted at
        random within each layer, 'invert' the weights IMP ranked lowest at
        the ticket's per-layer counts, both from the ticket's own θ0 (θk
        with the template's ``rewind_iteration=k``); 'random' is their
        re-initialisation check. They need ``pruning_granularity='weight'``;
        'invert' needs a deterministic ``pruning_criterion`` (and makes the
        ticket keep its rounds' weights, ``record_history=True``).
        :func:`sklottery.stats.mask_information` judges the ticket against
        them.
    n_trials : int, default=3
        Replicates; each has its own data split, initialisation and seeds.
    test_size : float, default=0.25
        Held-out fraction per trial (stratified) for the test accuracy.
    cv : int or cross-validation generator, default=None
        Use its folds as trials instead of random splits.
    X_test, y_test : array-like, default=None
        A fixed test set; then every trial trains on all of ``X``.
    rewind_iteration : int, default=None
        ``k`` for 'rewind_k'; default: one epoch of iterations.
    n_jobs : int, default=None
        Runs in parallel with joblib (under its active backend, e.g. a Dask
        cluster). Each fit uses the estimator's ``n_threads`` (default 1);
        with ``n_threads=None``, torch threads per worker on this machine
        are capped at ``cpu_count // workers`` (joblib's count of workers for
        ``n_jobs``) so workers do not oversubscribe the CPU; a cluster's
        workers keep their own setting.
    random_state : int, RandomState instance or None, default=None
    progress : callable, default=None
        Called with no argument after every finished run (e.g.
        ``tqdm(total=...).update``).
    return_runs : bool, default=False
        Also return a dict ``(strategy, trial) -> {'masks', 'start', 'final',
        'init', 'rewind'}`` with per-round masks and weights of the chain runs
        (for :func:`mask_analysis`), θ0 (``init``) and the rewind point
        (``rewind``: θ0, or θk).
    batched : bool, default=True
        Train the runs' rounds that share an architecture and training
        settings as one vectorised model (:class:`sklottery.training.BatchedTrainer`): the
        trials x chain strategies go round by round together, then the mask
        controls. Each run gives the same numbers as when trained alone, up to
        float rounding. Runs it cannot batch train alone (the list and the
        reasons: :meth:`sklottery.training.BatchedTrainer.accepts`). With ``n_jobs``, every worker batches its
        share of the runs. ``False`` fits every run on its own (as
        ``estimator.fit`` would), in parallel with ``n_jobs``.
    control_rounds : {'all', 'last'} or sequence of int, default='all'
        The ticket's pruning rounds at which the mask controls (every
        strategy of :data:`MASK_STRATEGIES`) are trained: every round, the
        last (sparsest) one (round ``n_rounds``: a trial whose ticket was cut
        short before it gets no control there; with ``target_sparsity``, the
        ticket's last round), or the rounds listed (``1`` is the first pruned
        round; needs ``n_rounds``, not ``target_sparsity``). The controls
        are most of the cost of a curve with many of them; train them only at
        the levels you will judge. A control at a round gets the same seed
        and masks whatever the other rounds are, so its row equals the row
        of the ``'all'`` curve. The chain strategies still run every round.
        A verdict (:func:`sklottery.stats.verdict`) cannot claim a winning
        ticket at a level without controls.

    Returns
    -------
    results : pandas.DataFrame
        One row per strategy x trial x round with :data:`RESULT_COLUMNS`
        (``REGRESSION_COLUMNS`` for a regressor: ``test_r2*`` and
        ``test_mse*`` in place of ``test_acc*``, ``train_r2``, ``valid_r2``):
        ``weights_remaining`` in %, ``test_acc`` at the end of training,
        ``test_acc_early_stop`` at the early-stop iteration (the point of
        the estimator's evaluation grid, ``eval_every``, with the minimum
        validation loss: Frankle & Carbin's headline number),
        ``test_acc_init`` of the masked start weights before any training
        (Zhou et al.'s supermask effect), ``test_acc_no_retrain`` of the
        weights trained in round ``r - 1`` under round ``r``'s mask, right
        after pruning and before any retraining (traditional pruning without
        retraining; one forward pass per round; NaN in round 0, where nothing
        was pruned: the dense score is ``test_acc``; NaN for the mask controls
        ``'random'``, ``'scratch_e'``, ``'scratch_b'``, ``'shuffle_layer'``
        and ``'invert'``, which train one round and have no trained weights
        of their own to prune;
        ``'one_shot'`` has its own: its trained dense network pruned to the
        level in one step), ``early_stop_iteration``,
        ``train_acc`` (end of training), ``epochs`` trained,
        ``macs_fraction`` (multiply-adds per sample of the network the row
        trained, relative to the dense network:
        :func:`sklottery.modules.multiply_adds`; the fraction of weights for
        an MLP, more for a conv net; a mask control has its ticket's, also
        when it trains the compact network), ``compute_fraction`` (the
        training compute of the row, relative to one dense round:
        ``macs_fraction * epochs / max_epochs``; scratch-B's is 1 up to the
        rounding of whole epochs, or less where ``scratch_b_max_factor``
        caps it), ``n_test`` (test samples of the
        trial), ``stop_reason`` (``''``, or ``'diverged'`` /
        ``'interrupted'`` for every row of a run that was cut short, and
        ``'lost'`` for the one row of NaN metrics of a run whose worker died
        twice) and ``seconds`` of training (for a batched round, its wall
        time divided by the runs trained together).
        ``results.attrs['sklottery_runs']`` counts the runs: see
        :func:`run_status`.
    runs : dict
        Only with ``return_runs=True``.

    Raises
    ------
    sklottery.exceptions.ExperimentInterrupted
        After Ctrl-C (SIGINT), with the table of what finished in its
        ``results`` (marked as interrupted). The first Ctrl-C does not stop
        where it lands: every run in progress stops at its next training
        batch, in this process or in a parallel worker (loky, or a Dask
        cluster), and keeps its completed rounds (``stop_reason
        'interrupted'``); no run starts afterwards. A second Ctrl-C aborts at
        once with a plain ``KeyboardInterrupt``.

    Warns
    -----
    DivergenceWarning or PruningInterruptedWarning
        Once, listing every run that was cut short or lost (the completed
        rounds of a cut-short run are kept in the table). A run diverged when
        a loss became NaN/inf or blew up (see the estimator's
        ``error_on_divergence``).
    RuntimeWarning
        When a parallel worker died (killed, out of memory): the runs it had
        not returned were retried once; those that failed again are reported
        as lost. The runs that finished are kept.

    See Also
    --------
    sklottery.stats.matching_summary : The verdict: does the ticket match dense
        and beat the controls?
    sklottery.stats.summarize_curve : Mean, spread and confidence interval per
        strategy and level.
    sklottery.plotting.TicketCurveDisplay : Frankle & Carbin's figures from this
        table.
    conditions_sweep : The same experiment for every combination of a parameter
        grid.
    sklottery.stats.mask_analysis : Mask statistics of the runs
        (``return_runs=True``).

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    .. [2] Liu, Z., Sun, M., Zhou, T., Huang, G. and Darrell, T. (2019).
       Rethinking the Value of Network Pruning. ICLR. arXiv:1810.05270.
    .. [3] Zhou, H., Lan, J., Liu, R. and Yosinski, J. (2019). Deconstructing
       Lottery Tickets: Zeros, Signs, and the Supermask. NeurIPS.
       arXiv:1905.01067.
    .. [4] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2020).
       Linear Mode Connectivity and the Lottery Ticket Hypothesis. ICML.
       arXiv:1912.05671.
    .. [5] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2021).
       Pruning Neural Networks at Initialization: Why Are We Missing the
       Mark? ICLR. arXiv:2009.08576.
    """
    strategies = list(dict.fromkeys(strategies))
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"Unknown strategies {unknown}; choose from {list(STRATEGIES)}.")
    if not strategies:
        raise ValueError("strategies must name at least one strategy.")
    if int(n_trials) < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}.")
    criterion = _final_step(estimator)[0].pruning_criterion
    if criterion in PAI_METHODS:
        raise ValueError(
            f"The template prunes at initialization (pruning_criterion={criterion!r}), so it "
            "has no ticket for the curve to follow. Keep a magnitude template and ask for "
            f"the method as a strategy: strategies=('rewind', {criterion!r}, ...) trains its "
            "mask at every level of the ticket, from the trial's θ0.")
    granularity = _final_step(estimator)[0].pruning_granularity
    if granularity != "weight" and "one_shot" in strategies:
        raise ValueError(f"Strategy 'one_shot' is not available with pruning_granularity="
                         f"{granularity!r} (structured pruning runs rounds); drop it.")
    sanity = [s for s in SANITY_STRATEGIES + PAI_STRATEGIES + PAI_SHUFFLE_STRATEGIES
              if s in strategies]
    if granularity != "weight" and sanity:
        raise ValueError(f"Strategies {sanity} perturb single weights of the mask and are not "
                         f"available with pruning_granularity={granularity!r}; drop them.")
    if "invert" in strategies and _final_step(estimator)[0].pruning_criterion == "random":
        raise ValueError("Strategy 'invert' needs the ticket's pruning scores; the template's "
                         "pruning_criterion='random' has none to invert.")
    control_rounds = _check_control_rounds(control_rounds, estimator)
    X = np.asarray(X)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples but y has {len(y)}.")
    if (X_test is None) != (y_test is None):
        raise ValueError("Pass both X_test and y_test, or neither.")
    rs = check_random_state(random_state)
    if X_test is not None:
        X_test, y_test = np.asarray(X_test), np.asarray(y_test)
    arrays = (X, y, X_test, y_test)
    splits = list(_trial_splits(X, y, int(n_trials), test_size, cv, X_test, rs,
                                classifier=not is_regressor(_final_step(estimator)[0])))
    n_threads = _threads_per_job(n_jobs)
    chain = [s for s in strategies if s in CHAIN_STRATEGIES]
    controls = [s for s in strategies if s in MASK_STRATEGIES]
    if controls and "rewind" not in chain:
        chain.insert(0, "rewind")
    trial_seeds = [int(s) for s in rs.randint(0, 2**31 - 1, size=len(splits))]
    control_seeds = {
        (s, t): int(rs.randint(0, 2**31 - 1)) for s in controls for t in range(len(splits))
    }
    ltc, _ = _final_step(estimator)
    # the ticket keeps its rounds' weights for 'invert' (its scores) and, when it
    # rewinds to θk, its θk for both sanity controls
    ticket_history = "invert" in controls or (bool(sanity) and int(ltc.rewind_iteration) > 0)
    tasks = []
    for t, data in enumerate(splits):
        for s in chain:
            k = rewind_iteration
            if s == "rewind_k" and k is None:
                n_tr = (len(X) if data[0] is None else len(data[0])) \
                    * (1 - (ltc.validation_fraction or 0))
                k = max(1, int(np.ceil(n_tr / max(1, min(ltc.batch_size, n_tr)))))
            params = _chain_params(s, ltc, k)
            params["random_state"] = trial_seeds[t]
            keep = return_runs or (s == "rewind" and ticket_history)
            tasks.append((s, t, estimator, params, data, n_threads, keep))
    with _scatter_once(arrays) as client, experiment_stop(client) as flag:
        # on a Dask cluster the data goes there once; Ctrl-C stops cleanly
        return _curve(estimator, strategies, controls, tasks, splits, arrays,
                      control_seeds, n_jobs, n_threads, batched, progress, return_runs, flag,
                      control_rounds)


def _check_control_rounds(control_rounds, estimator):
    """``control_rounds`` of :func:`ticket_curve` as 'all', 'last' or a sorted tuple."""
    ltc, _ = _final_step(estimator)
    if isinstance(control_rounds, str):
        if control_rounds not in ("all", "last"):
            raise ValueError(f"control_rounds must be 'all', 'last' or a sequence of round "
                             f"numbers, got {control_rounds!r}.")
        if control_rounds == "last" and ltc.target_sparsity is None:
            # the planned last round: a ticket cut short before it gets no control there
            return (int(ltc.n_rounds),) if int(ltc.n_rounds) > 0 else ()
        return control_rounds
    try:
        if isinstance(control_rounds, (bytes, bytearray)) or any(
                isinstance(r, (bool, np.bool_)) for r in control_rounds):
            raise TypeError
        rounds = [operator.index(r) for r in control_rounds]
    except TypeError:
        raise ValueError(f"control_rounds must be 'all', 'last' or a sequence of round "
                         f"numbers (int), got {control_rounds!r}.") from None
    if not rounds:
        raise ValueError("control_rounds is empty; give at least one round, or drop the "
                         "mask-control strategies.")
    if ltc.target_sparsity is not None:
        raise ValueError("control_rounds as round numbers needs the template's n_rounds; with "
                         "target_sparsity the number of rounds is known only after pruning: "
                         "use 'all' or 'last'.")
    bad = [r for r in rounds if not 1 <= r <= int(ltc.n_rounds)]
    if bad:
        raise ValueError(f"control_rounds {bad} are not pruned rounds of the ticket: "
                         + (f"rounds run from 1 to n_rounds={int(ltc.n_rounds)} (round 0 is "
                            "dense)." if int(ltc.n_rounds) else "the template has n_rounds=0 "
                            "(only the dense round 0)."))
    return tuple(sorted(set(rounds)))


def _control_round_numbers(control_rounds, n_masks):
    """The ticket's rounds (of ``1 .. n_masks - 1``) that get mask controls."""
    if control_rounds == "all":
        return range(1, n_masks)
    if control_rounds == "last":  # with target_sparsity: the ticket's last round
        return range(n_masks - 1, n_masks) if n_masks > 1 else range(0)
    return [r for r in control_rounds if r < n_masks]


def _scatter_once(arrays):
    """On joblib's Dask backend: scatter the data arrays once for every phase.

    (The backend would otherwise scatter them once per ``Parallel`` call.)
    """
    backend, _ = get_active_backend()
    if type(backend).__name__ != "DaskDistributedBackend":
        return contextlib.nullcontext()
    return _scattered(backend.client, arrays)


@contextlib.contextmanager
def _scattered(client, arrays):
    with parallel_config(backend="dask", client=client,
                         scatter=[a for a in arrays if a is not None]):
        yield client


def _curve(estimator, strategies, controls, tasks, splits, arrays, control_seeds,
           n_jobs, n_threads, batched, progress, return_runs, flag, control_rounds="all"):
    """The runs of :func:`ticket_curve`: chains, then the ticket's mask controls."""
    def run(kind, run_tasks_):
        """Outputs of ``run_tasks_`` (None for a run that did not run) and the lost ones."""
        out = [None] * len(run_tasks_)
        if not run_tasks_:
            return out, []
        n_workers = max(1, min(len(run_tasks_), _n_workers(n_jobs)))
        if batched and n_workers == 1:
            # in this process: the batched trainer drives every run at once
            results = _run_batched(kind, run_tasks_, None, *arrays,
                                   on_done=None if progress is None else lambda i: progress())
            return results, []
        if batched:
            # the batched trainer in every worker, each with an even share of the runs
            shares = [list(range(w, len(run_tasks_), n_workers)) for w in range(n_workers)]
            jobs = [(kind, [run_tasks_[i] for i in share], n_threads) for share in shares]
            func = _run_share
        else:
            shares = [[i] for i in range(len(run_tasks_))]
            jobs = [(kind, [task], None) for task in run_tasks_]
            func = _run_single

        def collected(j, results):
            for i, result in zip(shares[j], results):
                out[i] = result
                if progress is not None:
                    progress()

        report = run_tasks(func, jobs, arrays, n_jobs=n_jobs, flag=flag,
                           on_output=collected)
        lost = [i for j in report.lost for i in shares[j]]
        if report.errors:
            retried = sum(len(shares[j]) for j in report.retried)
            warnings.warn(
                f"A worker died while running ticket_curve ({'; '.join(report.errors)}): "
                f"the {retried} run(s) that had not returned were retried once; "
                f"{len(lost)} could not be recovered and are reported as lost "
                "(stop_reason 'lost'). The runs that finished are kept.",
                RuntimeWarning, stacklevel=4)
        return out, lost

    n_chain = len(tasks)
    chain_out, chain_lost = run("chain", tasks)
    rows, runs, ticket_masks, ticket_runs, cut_short = [], {}, {}, {}, []
    status = dict(total=n_chain, complete=0, cut_short=0, not_run=0, lost=0)
    for i, output in enumerate(chain_out):
        task = tasks[i]
        if output is None:
            if i in chain_lost:
                status["lost"] += 1
                rows.append(_lost_row(task[0], task[1], 0, 100.0, task, arrays, estimator))
                cut_short.append((task[0], task[1], None, "lost",
                                  "its worker died twice; no result"))
            else:
                status["not_run"] += 1
            continue
        strategy, trial, r_rows, masks, extras, stopped = output
        _count(status, stopped)
        rows.extend(r_rows)
        if stopped is not None and stopped[0] != "not_run":
            cut_short.append((strategy, trial, None, *stopped))
        if strategy == "rewind" and masks:
            ticket_masks[trial] = (masks, [row["weights_remaining"] for row in r_rows],
                                   [row["macs_fraction"] for row in r_rows])
            ticket_runs[trial] = (task[3]["random_state"], extras)
        if return_runs and extras is not None:
            runs[(strategy, trial)] = extras
    control_tasks = []
    collapsed = []  # pruning-at-initialization runs whose masks would disconnect a layer
    pai_cache = {}
    for s in controls:
        for t, data in enumerate(splits):
            if t not in ticket_masks:
                continue  # the ticket of this trial did not run (stopped, lost or diverged)
            masks, levels, macs = ticket_masks[t]
            control_rounds_t = list(_control_round_numbers(control_rounds, len(masks)))
            for r in control_rounds_t:
                seed, mask = control_seeds[(s, t)] + r, masks[r]
                if s in SANITY_STRATEGIES:
                    seed, mask = _sanity_masks(s, estimator, r, mask, seed, *ticket_runs[t])
                elif s in PAI_STRATEGIES + PAI_SHUFFLE_STRATEGIES:
                    method = s[:-len("_shuffle")] if s in PAI_SHUFFLE_STRATEGIES else s
                    shuffle_seed, seed = seed, ticket_runs[t][0]
                    key = (method, t)  # a method and its shuffle share the scoring
                    if key not in pai_cache:  # every level of the trial at once
                        pai_cache[key] = dict(zip(control_rounds_t, _pai_control_masks(
                            method, estimator, seed, [levels[q] for q in control_rounds_t],
                            data, arrays)))
                    pai = pai_cache[key][r]
                    if isinstance(pai, LayerCollapseError):  # a result, not an error
                        row = _failed_row(r, levels[r], _n_test(data, arrays),
                                          "layer_collapse", result_columns(estimator))
                        row.update(strategy=s, trial=t)
                        rows.append(row)
                        collapsed.append(f"{s} at {levels[r]:.1f} % (trial {t}): {pai}")
                        continue
                    if s in PAI_SHUFFLE_STRATEGIES:
                        pai = shuffle_within_layers(
                            pai, torch.Generator().manual_seed(int(shuffle_seed)))
                    mask = (pai, None)
                control_tasks.append((s, t, r, estimator, seed, mask, levels[r], data,
                                      n_threads, macs[r]))
    if stop_requested():
        control_tasks = []
    # controls whose ticket round does not exist (the chain was stopped, lost or
    # diverged) or that a stop prevented count as planned but not run
    planned = max(_planned_controls(estimator, controls, len(splits), control_rounds),
                  len(control_tasks))
    status["total"] += planned
    # a collapsed method's run is a result (its row says layer_collapse), not a gap
    status["complete"] += len(collapsed)
    status["not_run"] += planned - len(control_tasks) - len(collapsed)
    if collapsed:
        warnings.warn("Layer collapse: " + str(len(collapsed)) + " pruning-at-initialization "
                      "run(s) would remove every weight of a layer and were not trained "
                      "(stop_reason 'layer_collapse', no scores): " + "; ".join(collapsed[:3])
                      + ("; ..." if len(collapsed) > 3 else ""), UserWarning, stacklevel=3)
    outputs, control_lost = run("control", control_tasks)
    for i, (task, output) in enumerate(zip(control_tasks, outputs)):
        if output is None:
            if i in control_lost:
                status["lost"] += 1
                rows.append(_lost_row(task[0], task[1], task[2], task[6], task, arrays,
                                      estimator))
                cut_short.append((task[0], task[1], task[2], "lost",
                                  "its worker died twice; no result"))
            else:
                status["not_run"] += 1
            continue
        r_rows, stopped = output
        _count(status, stopped)
        rows.extend(r_rows)
        if stopped is not None and stopped[0] != "not_run":
            cut_short.append((task[0], task[1], task[2], *stopped))
    interrupted = stop_requested()
    status["interrupted"] = bool(interrupted)
    columns = result_columns(estimator)
    df = pd.DataFrame(rows, columns=None if rows else columns)
    if "rewind" not in strategies and len(df):
        df = df[df["strategy"] != "rewind"]
    df = df.reindex(columns=columns)
    order = {s: i for i, s in enumerate(strategies)}
    df = (df.assign(_o=df["strategy"].map(order))
            .sort_values(["_o", "trial", "round"]).drop(columns="_o").reset_index(drop=True))
    df.attrs["sklottery_runs"] = status
    if interrupted:
        text = run_status(df)["text"]
        raise ExperimentInterrupted(
            f"ticket_curve {text}. The completed rounds are in this exception's .results "
            "(in IPython/Jupyter: sys.last_value.results).", results=df,
            runs=runs if return_runs else None, status=run_status(df))
    _warn_cut_short(cut_short, status["total"])
    _warn_undertrained(df)
    return (df, runs) if return_runs else df


def _n_test(split, arrays):
    return len(arrays[2]) if split[1] is None else len(split[1])


def _pai_control_masks(method, estimator, seed, levels, split, arrays):
    """The masks of pruning-at-initialization ``method`` at each of ``levels`` % kept.

    Computed on θ0 of ``estimator`` with ``random_state=seed`` (the trial's
    ticket's) and the trial's training data as the network sees it (after a
    Pipeline's preprocessing, fitted on that data); a level whose masks
    would disconnect a layer gets its ``LayerCollapseError``.
    """
    X_tr, y_tr, _, _ = _materialize(split, *arrays)
    est = _set(clone(estimator), random_state=seed)
    final, _ = _final_step(est)
    if isinstance(est, Pipeline):
        X_tr = est[:-1].fit_transform(X_tr, y_tr)
    # the batches the method scores on are drawn from the same seed: reproducible
    return pai_masks(final, X_tr, y_tr, method,
                     sparsity=[1.0 - float(level) / 100.0 for level in levels],
                     random_state=seed, on_collapse="return")


def _sanity_masks(strategy, estimator, r, masks, seed, ticket_seed, extras):
    """``(random_state, (masks, start))`` of a sanity control of the ticket's round ``r``.

    The control trains with the ticket's own ``random_state`` (so from its
    θ0, with its validation split and batch order); ``start`` is the
    ticket's θk when it rewinds to iteration ``k > 0``, else None (θ0 by
    the seed). ``'shuffle_layer'`` permutes the masks within every layer
    with a generator seeded by the control's own ``seed``; ``'invert'``
    keeps, per layer, the ticket's count of the weights IMP ranked lowest
    over rounds ``0..r-1`` (:func:`sklottery.sanity.imp_scores`).
    """
    ltc, _ = _final_step(estimator)
    start = None
    if int(ltc.rewind_iteration) > 0:
        start = extras["rewind"]
    if strategy == "shuffle_layer":
        masks = shuffle_within_layers(masks, torch.Generator().manual_seed(int(seed)))
    else:
        scores = imp_scores(extras["masks"][:r], extras["final"][:r],
                            criterion=ltc.pruning_criterion, starts=extras["start"][:r])
        masks = invert_masks(masks, scores)
    return ticket_seed, (masks, start)


def _warn_undertrained(df):
    """Warn when the early stop fell on the last evaluation in most rounds."""
    if not {"early_stop_iteration", "n_iter"} <= set(df.columns) or not len(df):
        return
    es = pd.to_numeric(df["early_stop_iteration"], errors="coerce")
    n_iter = pd.to_numeric(df["n_iter"], errors="coerce")
    ok = es.notna() & n_iter.notna()
    at_end = int((es[ok] >= n_iter[ok]).sum())
    if ok.any() and at_end * 2 > int(ok.sum()):
        warnings.warn(
            f"In {at_end} of {int(ok.sum())} rounds the minimum validation loss fell on the "
            "last evaluation: training stopped before the validation loss turned, so the "
            "early-stop iteration only says 'the end' and accuracies at early stop are "
            "accuracies at the end. Train longer (max_epochs) when early stopping matters.",
            UndertrainingWarning, stacklevel=3)


def _count(status, stopped):
    """Count one run that returned: complete, cut short (rounds kept) or not run."""
    if stopped is None:
        status["complete"] += 1
    elif stopped[0] == "not_run":
        status["not_run"] += 1
    else:
        status["cut_short"] += 1


def _planned_controls(estimator, controls, n_trials, control_rounds="all"):
    """How many mask-control runs a complete curve would have made (0: unknown)."""
    ltc, _ = _final_step(estimator)
    if ltc.target_sparsity is not None:
        return 0
    n_rounds = len(_control_round_numbers(control_rounds, int(ltc.n_rounds) + 1))
    return len(controls) * n_trials * n_rounds


def _lost_row(strategy, trial, r, level, task, arrays, estimator):
    """The row of a run whose worker died twice (no result)."""
    split = task[4] if strategy in CHAIN_STRATEGIES else task[7]
    row = _failed_row(r, level, _n_test(split, arrays), "lost", result_columns(estimator))
    row.update(strategy=strategy, trial=trial)
    return row


def _run_share(job, *arrays):
    """A worker's share of batched runs: ``_run_batched`` on them, threads capped."""
    kind, share, n_threads = job
    return _run_batched(kind, share, n_threads, *arrays)


def _run_single(job, *arrays):
    """One run on its own (``batched=False``)."""
    kind, (task,), _ = job
    worker = _run_chain if kind == "chain" else _run_mask_control
    return [worker(task, *arrays)]


def run_status(results):
    """How complete a :func:`ticket_curve` table is: runs done, cut short, not run, lost.

    Reads ``results.attrs['sklottery_runs']`` (set by :func:`ticket_curve`,
    kept by most pandas operations); a table without it (e.g. read back from
    a CSV file) is judged from its ``stop_reason`` column alone.

    Parameters
    ----------
    results : pandas.DataFrame
        From :func:`ticket_curve` (one data set).

    Returns
    -------
    status : dict
        ``interrupted`` (bool: Ctrl-C stopped the experiment), ``total``,
        ``complete``, ``cut_short`` (stopped early, completed rounds kept:
        diverged or interrupted), ``not_run`` (never trained a round),
        ``lost`` (their worker died twice), ``diverged`` (runs with a
        ``'diverged'`` stop reason), ``complete_experiment`` (bool: every
        planned run ran all its rounds) and ``text``, a
        phrase for banners, e.g. ``'interrupted after 7 of 20 runs completed
        (3 cut short, 10 not run)'``.

    See Also
    --------
    ticket_curve : Sets the counts.
    """
    status = dict((results.attrs or {}).get("sklottery_runs") or {})
    per_run = pd.Series(dtype=object)
    if len(results) and "stop_reason" in results:
        # one stop reason per run (a mask control is one run per round)
        keys = ["strategy", "trial"] + (["round"] if "round" in results else [])
        reasons = results.assign(stop_reason=results["stop_reason"].fillna(""))
        chain = ~reasons["strategy"].isin(MASK_STRATEGIES)
        per_run = pd.concat([
            reasons[chain].groupby(["strategy", "trial"])["stop_reason"].agg(
                lambda v: next((x for x in v if x), "")),
            reasons[~chain].groupby(keys)["stop_reason"].first()])
    diverged = int((per_run == "diverged").sum())
    if not status:
        interrupted = bool((per_run == "interrupted").any())
        lost = int((per_run == "lost").sum())
        status = dict(total=len(per_run), complete=int((per_run == "").sum()),
                      cut_short=int(per_run.isin(["diverged", "interrupted"]).sum()),
                      not_run=0, lost=lost, interrupted=interrupted)
    status["diverged"] = diverged
    status.setdefault("interrupted", False)
    parts = []
    if status["cut_short"]:
        parts.append(f"{status['cut_short']} cut short")
    if status["not_run"]:
        parts.append(f"{status['not_run']} not run")
    if status["lost"]:
        parts.append(f"{status['lost']} lost")
    detail = f" ({', '.join(parts)})" if parts else ""
    text = f"{status['complete']} of {status['total']} runs completed{detail}"
    if status["interrupted"]:
        text = "interrupted after " + text
    status["complete_experiment"] = status["complete"] == status["total"]
    status["text"] = text
    return status


def _warn_cut_short(cut_short, n_total):
    """One warning listing every run that diverged, was interrupted or was lost."""
    if not cut_short:
        return
    lines = []
    for strategy, trial, r, reason, message in cut_short:
        where = f"{strategy} trial {trial}" + ("" if r is None else f" (round {r})")
        lines.append(f"  {where}: {reason}: {message}")
    diverged = any(c[3] == "diverged" for c in cut_short)
    warnings.warn(
        f"{len(cut_short)} of {n_total} runs were cut short or lost; the completed rounds of "
        "a cut-short run are in the results (column 'stop_reason'), a run that diverged "
        "before completing a round, or was lost with its worker, has one row of NaN "
        "metrics:\n" + "\n".join(lines),
        DivergenceWarning if diverged else PruningInterruptedWarning,
        stacklevel=3,
    )


def n_runs(estimator, strategies, n_trials):
    """How many fits :func:`ticket_curve` makes (for progress bars).

    ``None`` when the estimator sets ``target_sparsity`` (the number of rounds
    is only known once the network is built).
    """
    strategies = list(dict.fromkeys(strategies))
    chain = [s for s in strategies if s in CHAIN_STRATEGIES]
    controls = [s for s in strategies if s in MASK_STRATEGIES]
    if controls and "rewind" not in chain:
        chain.append("rewind")
    ltc, _ = _final_step(estimator)
    if ltc.target_sparsity is not None:
        return None
    return n_trials * (len(chain) + len(controls) * int(ltc.n_rounds))


def conditions_sweep(estimator, X, y, param_grid, *, strategies=("rewind", "random"),
                     n_trials=3, random_state=None, **ticket_curve_kwargs):
    """Run :func:`ticket_curve` for every combination in ``param_grid``.

    Parameters
    ----------
    estimator : LotteryTicketClassifier
    X, y : array-like
    param_grid : dict of str -> list
        Estimator parameters to sweep (e.g. ``{'learning_rate_init': [1e-3,
        1e-1]}``), at most two for :class:`~sklottery.plotting.ConditionsMapDisplay`.
    strategies, n_trials, random_state, **ticket_curve_kwargs
        Passed to :func:`ticket_curve` (the same ``random_state`` for every
        condition, so conditions are compared on the same splits).

    Returns
    -------
    results : pandas.DataFrame
        ``ticket_curve``'s table with one extra column per swept parameter.

    See Also
    --------
    ticket_curve : One condition.
    sklottery.stats.tickets_exist : Where tickets exist, per condition and
        level.
    sklottery.plotting.ConditionsMapDisplay : The conditions as a heatmap.

    References
    ----------
    .. [1] Liu, Z., Sun, M., Zhou, T., Huang, G. and Darrell, T. (2019).
       Rethinking the Value of Network Pruning. ICLR. arXiv:1810.05270.
    .. [2] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2019).
       Stabilizing the Lottery Ticket Hypothesis. arXiv:1903.01611.
    """
    if not param_grid:
        raise ValueError("param_grid must name at least one parameter to sweep.")
    names = list(param_grid)
    bad = [n for n in names if n not in estimator.get_params()]
    if bad:
        raise ValueError(f"Unknown estimator parameters in param_grid: {bad}.")
    seed = check_random_state(random_state).randint(0, 2**31 - 1)
    frames = []
    combos = list(itertools.product(*(param_grid[n] for n in names)))
    with experiment_stop():  # one Ctrl-C stops the whole sweep
        for values in combos:
            setting = dict(zip(names, values))
            est = clone(estimator).set_params(**setting)
            try:
                df = ticket_curve(est, X, y, strategies=strategies, n_trials=n_trials,
                                  random_state=seed, **ticket_curve_kwargs)
            except ExperimentInterrupted as exc:
                frames.append(_with_setting(exc.results, setting))
                out = pd.concat(frames, ignore_index=True)
                out.attrs["sklottery_runs"] = dict(
                    exc.status, conditions_done=len(frames) - 1, conditions=len(combos))
                raise ExperimentInterrupted(
                    f"conditions_sweep interrupted in condition {len(frames)} of "
                    f"{len(combos)} ({setting}); {len(frames) - 1} complete. The results so "
                    "far are in this exception's .results.", results=out,
                    status=exc.status) from None
            frames.append(_with_setting(df, setting))
    return pd.concat(frames, ignore_index=True)


def _with_setting(df, setting):
    for n, v in setting.items():
        df.insert(0, n, v)
    return df
