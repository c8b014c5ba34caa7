"""Stability to SGD noise: linear mode connectivity (Frankle et al. 2020).

Frankle et al. (2020) explain *when* iterative magnitude pruning finds
winning tickets: from a state θk (the network after ``k`` training
iterations), train two copies with different SGD noise (data order, dropout)
and evaluate the error on the straight line between the two trained networks,
``(1 - a) * θA + a * θB`` for ``a`` in [0, 1]. The *instability* is the
largest error on that path minus the mean of the two endpoint errors; a
network is *stable* (linearly mode connected) when it is below 2 percentage
points. Their finding: IMP subnetworks match the dense accuracy exactly when
they are stable; LeNet-300-100 on MNIST is stable already at ``k = 0`` (so
tickets rewound to θ0 exist), deeper networks on CIFAR-10 only after a few
hundred to a couple of thousand iterations.

:func:`linear_mode_connectivity` measures one state (dense or under a mask);
:func:`stability_sweep` runs IMP with late rewinding for several ``k`` and
measures the dense network and the ticket at each ``k``, so the ticket's
accuracy and its stability can be read side by side
(:class:`sklottery.plotting.StabilityDisplay`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone, is_regressor
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state

from ._utils import module_device, split
from .training import accuracy_t, forward_chunks, r2_t
from .base import BaseLotteryTicket

__all__ = ["StabilityResult", "linear_mode_connectivity", "stability_sweep", "instability",
           "STABLE_THRESHOLD"]

#: Instability (percentage points of error) below which Frankle et al. (2020)
#: call a network stable.
STABLE_THRESHOLD = 2.0


def instability(errors):
    """Largest error on the path minus the mean of the two endpoint errors.

    Parameters
    ----------
    errors : array-like of shape (n_points,)
        Error along the interpolation path, endpoints first and last.

    Returns
    -------
    float

    See Also
    --------
    linear_mode_connectivity : Measures the error path this is computed from.
    STABLE_THRESHOLD : The 2-point threshold of stability.

    References
    ----------
    .. [1] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2020).
       Linear Mode Connectivity and the Lottery Ticket Hypothesis. ICML.
       arXiv:1912.05671.
    """
    errors = np.asarray(errors, dtype=float)
    if errors.size < 2:
        raise ValueError("errors needs at least the two endpoints.")
    return float(errors.max() - (errors[0] + errors[-1]) / 2)


@dataclass
class StabilityResult:
    """What :func:`linear_mode_connectivity` measured.

    Attributes
    ----------
    alphas : ndarray of shape (n_points,)
        Interpolation weights; ``0`` is copy A, ``1`` copy B.
    error : ndarray of shape (n_points,)
        Test error along the path, in percent (classifiers: 100 - accuracy;
        regressors: 100 * (1 - R²)).
    loss : ndarray of shape (n_points,)
        Test loss along the path (the estimator's training loss; for a
        regressor on standardised targets).
    instability : float
        ``max(error) - mean(error[0], error[-1])``, percentage points.
    rewind_iteration : int
        ``k``: the copies start from θk.
    weights_remaining : float
        Percent of the prunable weights the copies (and every point of the
        path) keep.
    copies : tuple of two fitted estimators
        The two trained copies.

    See Also
    --------
    linear_mode_connectivity : Returns it.
    sklottery.plotting.StabilityDisplay : Draws error paths and instability.
    """

    alphas: np.ndarray
    error: np.ndarray
    loss: np.ndarray
    instability: float
    rewind_iteration: int
    weights_remaining: float
    copies: tuple = field(repr=False)

    @property
    def stable(self):
        """Whether the instability is below :data:`STABLE_THRESHOLD` points."""
        return self.instability < STABLE_THRESHOLD

    def to_frame(self):
        """The path as a table: ``alpha``, ``error``, ``loss``."""
        return pd.DataFrame({"alpha": self.alphas, "error": self.error, "loss": self.loss})


def _final(estimator):
    if isinstance(estimator, Pipeline):
        return estimator.steps[-1][1]
    return estimator


def _check_estimator(estimator):
    final = _final(estimator)
    if not isinstance(final, BaseLotteryTicket):
        raise TypeError(
            "estimator must be a LotteryTicketClassifier or LotteryTicketRegressor (or a "
            f"Pipeline ending in one), got {type(final).__name__}."
        )


def _prepare(estimator, X_train, y_train, X_test):
    """Fit the Pipeline's preprocessing on the training data; return the final step."""
    if isinstance(estimator, Pipeline):
        pre = clone(estimator[:-1]).fit(X_train, y_train)
        return clone(estimator[-1]), pre.transform(X_train), pre.transform(X_test)
    return clone(estimator), X_train, X_test


def _copy(template, X, y, seed, start, masks):
    """One copy: trained from ``start`` under ``masks`` with its own data order."""
    est = clone(template).set_params(n_rounds=0, target_sparsity=None, one_shot=False,
                                     validation_fraction=0.0, rewind_iteration=0,
                                     random_state=seed, verbose=0, warm_start=False,
                                     record_history=False)
    return est.fit(X, y, initial_masks=masks, initial_params=start)


def _interpolate(state_a, state_b, alpha):
    """``(1 - alpha) * a + alpha * b`` for the floating-point entries, ``a``'s for the others.

    On the devices of ``state_a``'s tensors.
    """
    alpha = float(alpha)
    return {k: (1 - alpha) * v + alpha * state_b[k].to(v.device) if v.is_floating_point()
            else v for k, v in state_a.items()}


def _path(copy_a, copy_b, X_test, y_test, alphas):
    """Error (%) and loss along the straight line between two trained copies."""
    module = copy_a.net_.module_
    net = copy_a.net_
    device = module_device(module)
    state_a = {k: v.detach().clone() for k, v in module.state_dict().items()}
    state_b = {k: v.detach() for k, v in copy_b.net_.module_.state_dict().items()}
    Xt = torch.as_tensor(np.ascontiguousarray(X_test, dtype=np.float32), device=device)
    regression = is_regressor(copy_a)
    if regression:
        y2 = np.asarray(y_test, dtype=np.float64).reshape(len(y_test), -1)
        yt = ((y2 - copy_a.y_mean_) / copy_a.y_scale_).astype(np.float32)
    else:
        yt = np.searchsorted(copy_a.classes_, np.asarray(y_test))
    yt = torch.as_tensor(yt, device=device)
    score = r2_t if regression else accuracy_t
    errors, losses = [], []
    try:
        with torch.no_grad():
            for a in alphas:
                module.load_state_dict(_interpolate(state_a, state_b, a))
                out = forward_chunks(module, Xt)
                losses.append(float(net.criterion_(out, yt)))
                errors.append(100.0 * (1.0 - score(out, yt)))
    finally:
        module.load_state_dict(state_a)
    return np.asarray(errors), np.asarray(losses)


def _split(estimator, X, y, test_size, rs):
    return split(X, y, test_size=test_size, random_state=rs.randint(2**31 - 1),
                 stratify=None if is_regressor(_final(estimator)) else y)


def linear_mode_connectivity(estimator, X, y, *, rewind_iteration=0, masks=None, n_points=11,
                             test_size=0.25, X_test=None, y_test=None, random_state=None):
    """Instability of a network to SGD noise (Frankle et al. 2020).

    The dense network is trained for ``rewind_iteration`` (``k``) iterations
    to get θk (for ``k = 0``, θ0 is a fresh initialisation); two copies start
    from θk, keep ``masks`` (if given) and train for ``max_epochs`` epochs on
    the same training data with different data orders (and dropout); the
    error is evaluated at ``n_points`` evenly spaced points on the straight
    line between them. Every point of the path keeps the mask (the pruned
    weights are zero in both copies).

    Parameters
    ----------
    estimator : LotteryTicketClassifier, LotteryTicketRegressor or Pipeline
        Template of the network and its training settings (pruning settings
        are ignored: the copies are trained once, ``n_rounds=0``, on all the
        training data, ``validation_fraction=0``).
    X, y : array-like
        Data; a test split (``test_size``) is held out unless ``X_test`` and
        ``y_test`` are given.
    rewind_iteration : int, default=0
        ``k``: iterations of dense training before the copies part.
    masks : dict of str -> bool array, default=None
        A ticket's masks (e.g. ``ticket.masks_`` of an IMP fit with the same
        ``random_state`` and ``rewind_iteration``); None is dense.
    n_points : int, default=11
        Points on the path, endpoints included (Frankle et al. use 30).
    test_size : float, default=0.25
    X_test, y_test : array-like, default=None
    random_state : int, RandomState instance or None, default=None
        Seeds the split, θ0 and the two copies' data orders.

    Returns
    -------
    result : StabilityResult
        The path, the instability (percentage points) and the two copies.

    See Also
    --------
    stability_sweep : Dense network and ticket for several rewind iterations.
    instability : The instability of an error path.
    sklottery.plotting.StabilityDisplay : Draws the paths.

    References
    ----------
    .. [1] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2020).
       Linear Mode Connectivity and the Lottery Ticket Hypothesis. ICML.
       arXiv:1912.05671.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklottery import LotteryTicketClassifier
    >>> from sklottery.stability import linear_mode_connectivity
    >>> X, y = load_digits(return_X_y=True)
    >>> res = linear_mode_connectivity(
    ...     LotteryTicketClassifier(hidden_layer_sizes=(64,), max_epochs=3), X / 16, y,
    ...     n_points=5, random_state=0)
    >>> res.alphas.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    _check_estimator(estimator)
    if int(n_points) < 2:
        raise ValueError(f"n_points must be at least 2 (the endpoints), got {n_points}.")
    if int(rewind_iteration) < 0:
        raise ValueError(f"rewind_iteration must be >= 0, got {rewind_iteration}.")
    if (X_test is None) != (y_test is None):
        raise ValueError("Pass both X_test and y_test, or neither.")
    rs = check_random_state(random_state)
    X, y = np.asarray(X), np.asarray(y)
    if X_test is None:
        X_tr, X_te, y_tr, y_te = _split(estimator, X, y, test_size, rs)
    else:
        X_tr, y_tr, X_te, y_te = X, y, np.asarray(X_test), np.asarray(y_test)
    template, X_tr, X_te = _prepare(estimator, X_tr, y_tr, X_te)
    seeds = [int(s) for s in rs.randint(0, 2**31 - 1, size=3)]
    start = _parent_state(template, X_tr, y_tr, int(rewind_iteration), seeds[0])
    return _measure(template, X_tr, y_tr, X_te, y_te, start, masks, seeds[1:],
                    int(rewind_iteration), n_points)


def _parent_state(template, X, y, k, seed):
    """θk of the dense network (θ0 for k = 0): a fresh state dict."""
    parent = clone(template).set_params(
        n_rounds=0, target_sparsity=None, one_shot=False, random_state=seed,
        rewind_iteration=k, verbose=0, warm_start=False, record_history=False)
    if k == 0:
        parent.set_params(max_epochs=1)  # only θ0 is needed: one short epoch builds it
    parent.fit(X, y)
    return {k_: v.detach().clone() for k_, v in parent.rewind_params_.items()}


def _measure(template, X_tr, y_tr, X_te, y_te, start, masks, seeds, k, n_points):
    copy_a = _copy(template, X_tr, y_tr, seeds[0], start, masks)
    copy_b = _copy(template, X_tr, y_tr, seeds[1], start, masks)
    alphas = np.linspace(0.0, 1.0, int(n_points))
    error, loss = _path(copy_a, copy_b, X_te, y_te, alphas)
    return StabilityResult(alphas=alphas, error=error, loss=loss,
                           instability=instability(error), rewind_iteration=k,
                           weights_remaining=copy_a.rounds_[0]["weights_remaining"],
                           copies=(copy_a, copy_b))


def stability_sweep(estimator, X, y, rewind_iterations=(0,), *, n_trials=1, n_points=11,
                    test_size=0.25, random_state=None, progress=None):
    """Ticket accuracy and stability against the rewind iteration ``k``.

    For every trial and every ``k``: an IMP fit of ``estimator`` with
    ``rewind_iteration=k`` (its dense round gives θk, its final masks the
    ticket, its test accuracy the ticket's accuracy), then
    :func:`linear_mode_connectivity` from θk for the dense network and for
    the ticket. Frankle & Carbin's question (does the ticket match dense?)
    and Frankle et al.'s (is the network stable?) in one table.

    Parameters
    ----------
    estimator : LotteryTicketClassifier, LotteryTicketRegressor or Pipeline
        IMP settings of the ticket (``n_rounds`` or ``target_sparsity``,
        ``pruning_rate``, ...). Its ``reinit`` is set to ``'rewind'``.
    X, y : array-like
    rewind_iterations : sequence of int, default=(0,)
        The ``k`` to sweep (0 and a few early iterations, e.g. ``(0, 20, 100)``).
    n_trials : int, default=1
        Replicates, each with its own split and seeds.
    n_points : int, default=11
    test_size : float, default=0.25
    random_state : int, RandomState instance or None, default=None
    progress : callable, default=None
        Called with no argument after every finished (trial, k).

    Returns
    -------
    summary : pandas.DataFrame
        ``summary.attrs['task']`` is ``'classification'`` or ``'regression'``.
        One row per trial x k x network (``'dense'``, ``'ticket'``):
        ``trial``, ``rewind_iteration``, ``network``, ``weights_remaining``,
        ``instability`` (points), ``stable``, ``test_score`` (mean test
        accuracy, or R², of the two copies: the network trained from θk, dense
        or under the ticket's mask), ``endpoint_error`` (the same as an error,
        %), and ``imp_test_score`` (the IMP fit's own final network, for the
        ticket rows).
    paths : pandas.DataFrame
        ``trial``, ``rewind_iteration``, ``network``, ``alpha``, ``error``,
        ``loss``: the interpolation paths.

    See Also
    --------
    linear_mode_connectivity : One state, dense or under a mask.
    sklottery.plotting.StabilityDisplay : The sweep in one figure.
    sklottery.analysis.ticket_curve : Strategy ``'rewind_k'``: late rewinding
        with controls.

    References
    ----------
    .. [1] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2020).
       Linear Mode Connectivity and the Lottery Ticket Hypothesis. ICML.
       arXiv:1912.05671.
    .. [2] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    """
    _check_estimator(estimator)
    ks = [int(k) for k in rewind_iterations]
    if not ks or min(ks) < 0:
        raise ValueError(f"rewind_iterations must be non-negative ints, got {rewind_iterations!r}.")
    if int(n_trials) < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}.")
    rs = check_random_state(random_state)
    X, y = np.asarray(X), np.asarray(y)
    rows, paths = [], []
    for trial in range(int(n_trials)):
        X_tr, X_te, y_tr, y_te = _split(estimator, X, y, test_size, rs)
        template, X_tr, X_te = _prepare(estimator, X_tr, y_tr, X_te)
        seeds = [int(s) for s in rs.randint(0, 2**31 - 1, size=3)]
        for k in ks:
            imp = clone(template).set_params(reinit="rewind", rewind_iteration=k,
                                             random_state=seeds[0], verbose=0,
                                             record_history="masks", warm_start=False)
            imp.fit(X_tr, y_tr)
            theta_k = {n: v.detach().clone() for n, v in imp.rewind_params_.items()}
            imp_score = float(imp.score(X_te, y_te))
            for network, masks in (("dense", None), ("ticket", imp.masks_)):
                res = _measure(template, X_tr, y_tr, X_te, y_te, theta_k, masks, seeds[1:], k,
                               n_points)
                endpoint = float((res.error[0] + res.error[-1]) / 2)
                rows.append({"trial": trial, "rewind_iteration": k, "network": network,
                             "weights_remaining": res.weights_remaining,
                             "instability": res.instability, "stable": res.stable,
                             "test_score": 1.0 - endpoint / 100.0, "endpoint_error": endpoint,
                             "imp_test_score": imp_score if network == "ticket" else np.nan})
                paths.append(res.to_frame().assign(trial=trial, rewind_iteration=k,
                                                   network=network))
            if progress is not None:
                progress()
    summary = pd.DataFrame(rows)
    summary.attrs["task"] = "regression" if is_regressor(_final(estimator)) else "classification"
    paths = pd.concat(paths, ignore_index=True)[
        ["trial", "rewind_iteration", "network", "alpha", "error", "loss"]]
    return summary, paths
