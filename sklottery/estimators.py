"""The scikit-learn faces of sklottery: a classifier and a regressor.

Both are thin subclasses of :class:`sklottery.base.BaseLotteryTicket` (the IMP
engine); they say how targets are encoded, which loss and validation score
are used, how the validation split is drawn and what ``predict`` returns.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import check_classification_targets

from .training import LotteryNet, LotteryRegressorNet
from ._utils import split
from .base import (
    SHARED_ATTRIBUTES_DOC,
    SHARED_PARAMETERS_DOC,
    BaseLotteryTicket,
    DivergenceWarning,
    PruningInterruptedWarning,
    TrainingDivergedError,
)

__all__ = ["LotteryTicketClassifier", "LotteryTicketRegressor", "PruningInterruptedWarning",
           "DivergenceWarning", "TrainingDivergedError", "target_standardization"]


def target_standardization(y, scale_y=True):
    """Per-column mean and scale :class:`LotteryTicketRegressor` standardises ``y`` with.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
    scale_y : bool, default=True
        False gives mean 0 and scale 1 (no standardisation).

    Returns
    -------
    mean, scale : ndarray of shape (n_outputs,)
        A constant column gets scale 1.
    """
    y2 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if not scale_y:
        return np.zeros(y2.shape[1]), np.ones(y2.shape[1])
    scale = y2.std(axis=0)
    return y2.mean(axis=0), np.where(scale > 0, scale, 1.0)

class LotteryTicketClassifier(ClassifierMixin, BaseLotteryTicket):
    __doc__ = """Find winning lottery tickets by iterative magnitude pruning (IMP).

    ``fit`` trains a neural network (a skorch net held in ``net_``), prunes a
    fraction of its smallest surviving weights, resets the survivors
    according to ``reinit`` (rewinding them to their initial values θ0 gives a
    *winning ticket*, Frankle & Carbin 2019) and repeats for ``n_rounds``
    rounds. The fitted model is the network trained at the final sparsity.
    The loss is the cross-entropy; the validation score is the accuracy.

    Parameters
    ----------
{params}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
{attributes}

    See Also
    --------
    LotteryTicketRegressor : The same engine for regression.
    sklottery.analysis.ticket_curve : The ticket against its controls, with trials.
    sklottery.stats.matching_summary : Does the ticket match dense and beat the
        controls? A verdict.
    sklearn.neural_network.MLPClassifier : A dense classifier with the same
        parameter names.

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

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklottery import LotteryTicketClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = LotteryTicketClassifier(n_rounds=2, max_epochs=2, random_state=0)
    >>> clf = clf.fit(X / 16, y)
    >>> [round(r["weights_remaining"], 2) for r in clf.rounds_]
    [100.0, 80.2, 64.34]
    """.format(
        params=SHARED_PARAMETERS_DOC.format(target="one logit per class",
                                            split=" (stratified)"),
        attributes=SHARED_ATTRIBUTES_DOC.format(score="acc"),
    )

    _net_class = LotteryNet
    _criterion = torch.nn.CrossEntropyLoss
    _score_name = "acc"
    _target_dtype = torch.int64

    # ------------------------------------------------------------ task hooks
    def _prepare_targets(self, y, resume):
        check_classification_targets(y)
        if resume:
            if not np.all(np.isin(y, self.classes_)) or len(np.unique(y)) != len(self.classes_):
                raise ValueError(
                    "warm_start=True needs the same classes as the previous fit "
                    f"({self.classes_.tolist()})."
                )
            return np.searchsorted(self.classes_, y)
        classes, y_enc = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                "Classifier can't train when only one class is present; got class "
                f"{classes[0]!r}."
            )
        self.classes_ = classes
        return y_enc

    def _n_outputs(self):
        return len(self.classes_)

    def _net_kwargs(self):
        return {"classes": list(range(len(self.classes_)))}

    def _validation_split(self, idx, n_val, y_enc, seed):
        return split(idx, test_size=n_val, random_state=seed, stratify=y_enc)

    def _constant_output(self, y):
        # uniform logits: cross-entropy ln K, what a network that learned nothing scores
        return torch.zeros(len(y), len(self.classes_), device=y.device)

    # ------------------------------------------------------------- predict
    def predict_proba(self, X):
        """Class probabilities of the final (sparse) network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        return np.asarray(self._forward(X), dtype=np.float64)

    def predict(self, X):
        """Predict class labels (values from ``classes_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        proba = self._forward(X)
        return self.classes_[np.argmax(proba, axis=1)]


class LotteryTicketRegressor(RegressorMixin, BaseLotteryTicket):
    __doc__ = """Lottery tickets for regression: iterative magnitude pruning of a regressor.

    The engine of :class:`LotteryTicketClassifier` with a regression face:
    the loss is the squared error (or Huber's), ``score`` is R², ``y`` may
    have several columns, and with ``scale_y=True`` (default) the network
    learns standardised targets, which ``predict`` transforms back. The
    early-stop iteration is the grid point of minimum validation loss; the
    validation score in ``rounds_`` is R² (``valid_r2``).

    Parameters
    ----------
    loss : {{'squared_error', 'huber'}}, default='squared_error'
        Training loss (:class:`torch.nn.MSELoss` or :class:`torch.nn.HuberLoss`
        with ``delta=1``, in standardised units when ``scale_y=True``).
    scale_y : bool, default=True
        Standardise each target column to mean 0 and standard deviation 1
        for training (``y_mean_``, ``y_scale_``); ``predict`` undoes it.
{params}

    Attributes
    ----------
    n_outputs_ : int
        Number of target columns.
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
        The target standardisation (0 and 1 with ``scale_y=False``).
{attributes}

    See Also
    --------
    LotteryTicketClassifier : The same engine for classification.
    sklottery.analysis.ticket_curve : The ticket against its controls, with
        trials (``metric='test_r2'`` or ``'test_mse'`` for the verdict).
    sklearn.neural_network.MLPRegressor : A dense regressor with the same
        parameter names.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    .. [2] Liu, Z., Sun, M., Zhou, T., Huang, G. and Darrell, T. (2019).
       Rethinking the Value of Network Pruning. ICLR. arXiv:1810.05270.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklottery import LotteryTicketRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> reg = LotteryTicketRegressor(hidden_layer_sizes=(32,), n_rounds=2, max_epochs=5,
    ...                              random_state=0)
    >>> reg = reg.fit(X, y)
    >>> [round(r["weights_remaining"], 2) for r in reg.rounds_]
    [100.0, 80.97, 65.62]
    >>> reg.predict(X[:3]).shape
    (3,)
    """.format(
        params=SHARED_PARAMETERS_DOC.format(target="one unit per target column",
                                            split=""),
        attributes=SHARED_ATTRIBUTES_DOC.format(score="r2"),
    )

    _parameter_constraints: dict = {
        **BaseLotteryTicket._parameter_constraints,
        "loss": [StrOptions({"squared_error", "huber"})],
        "scale_y": ["boolean"],
    }

    _net_class = LotteryRegressorNet
    _score_name = "r2"
    _target_dtype = torch.float32
    _multi_output = True

    def __init__(
        self,
        loss="squared_error",
        scale_y=True,
        hidden_layer_sizes=(300, 100),
        activation="relu",
        module=None,
        module_params=None,
        input_shape=None,
        dropout=0.0,
        max_epochs=20,
        batch_size=60,
        learning_rate_init=1.2e-3,
        optimizer="adam",
        momentum=0.9,
        alpha=0.0,
        validation_fraction=0.1,
        eval_every="auto",
        lr_warmup=0,
        device="cpu",
        callbacks=None,
        pruning_rate=0.2,
        output_pruning_rate="half",
        conv_pruning_rate=None,
        n_rounds=5,
        target_sparsity=None,
        pruning_scope="layer",
        pruning_criterion="magnitude",
        pruning_granularity="weight",
        structured_norm="l1",
        one_shot=False,
        reinit="rewind",
        rewind_iteration=0,
        scratch_b_max_factor=2.0,
        record_history=False,
        error_on_divergence=False,
        random_state=None,
        n_threads=1,
        verbose=0,
        warm_start=False,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, module=module,
            module_params=module_params, input_shape=input_shape, dropout=dropout,
            max_epochs=max_epochs, batch_size=batch_size,
            learning_rate_init=learning_rate_init, optimizer=optimizer, momentum=momentum,
            alpha=alpha, validation_fraction=validation_fraction, eval_every=eval_every,
            lr_warmup=lr_warmup, device=device, callbacks=callbacks,
            pruning_rate=pruning_rate, output_pruning_rate=output_pruning_rate,
            conv_pruning_rate=conv_pruning_rate, n_rounds=n_rounds,
            target_sparsity=target_sparsity, pruning_scope=pruning_scope,
            pruning_criterion=pruning_criterion, pruning_granularity=pruning_granularity,
            structured_norm=structured_norm, one_shot=one_shot, reinit=reinit,
            rewind_iteration=rewind_iteration, scratch_b_max_factor=scratch_b_max_factor,
            record_history=record_history, error_on_divergence=error_on_divergence,
            random_state=random_state, n_threads=n_threads, verbose=verbose,
            warm_start=warm_start,
        )
        self.loss = loss
        self.scale_y = scale_y

    @property
    def _criterion(self):
        return torch.nn.HuberLoss if self.loss == "huber" else torch.nn.MSELoss

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    # ------------------------------------------------------------ task hooks
    def _prepare_targets(self, y, resume):
        y = np.asarray(y, dtype=np.float64)
        y2 = y.reshape(len(y), -1)
        if resume:
            if y2.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"warm_start=True needs y with the same {self.n_outputs_} column(s) as "
                    f"the previous fit, got {y2.shape[1]}."
                )
        else:
            self._y_ndim = y.ndim
            self.n_outputs_ = y2.shape[1]
            self.y_mean_, self.y_scale_ = target_standardization(y2, self.scale_y)
        return ((y2 - self.y_mean_) / self.y_scale_).astype(np.float32)

    def _n_outputs(self):
        return self.n_outputs_

    def _constant_output(self, y):
        # the targets' mean: squared error = their variance
        return y.mean(0, keepdim=True).expand_as(y)

    # ------------------------------------------------------------- predict
    def predict(self, X):
        """Predict with the final (sparse) network, in the units of ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The shape of the ``y`` the estimator was fitted on.
        """
        out = np.asarray(self._forward(X), dtype=np.float64).reshape(-1, self.n_outputs_)
        out = out * self.y_scale_ + self.y_mean_
        return out.ravel() if self._y_ndim == 1 else out
