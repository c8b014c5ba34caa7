"""The scikit-learn face of sklottery: :class:`LotteryTicketClassifier`."""

from __future__ import annotations

import copy
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch.callbacks import EarlyStopping
from skorch.dataset import Dataset
from skorch.helper import predefined_split

from ._training import (
    Diverged,
    EvalGrid,
    LotteryNet,
    MaskCallback,
    TensorBatchIterator,
    resolve_eval_every,
)
from .modules import MODULES, get_module_class, layer_kinds
from .pruning import (
    PRUNING_CRITERIA,
    compute_scores,
    fraction_remaining,
    one_shot_rates,
    prune_masks,
    rounds_for_sparsity,
)
from .strategies import REINIT_STRATEGIES, next_round_state, scratch_b_epochs

__all__ = ["LotteryTicketClassifier", "PruningInterruptedWarning", "DivergenceWarning",
           "TrainingDivergedError"]

_OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


class PruningInterruptedWarning(UserWarning):
    """Pruning stopped early (interrupt); the completed rounds were kept."""


class DivergenceWarning(ConvergenceWarning):
    """The training loss became NaN/inf; the last good round was restored."""


class TrainingDivergedError(RuntimeError):
    """Training diverged before any round completed: there is no network to keep."""


# Features beyond sqrt(float32 max) make squared gradients (Adam's second
# moment, the gradient norm) overflow to inf: training silently stops or NaNs.
_MAX_ABS_FEATURE = float(np.sqrt(np.finfo(np.float32).max))


def _clone_state(state):
    return {k: v.detach().clone() for k, v in state.items()}


class LotteryTicketClassifier(ClassifierMixin, BaseEstimator):
    """Find winning lottery tickets by iterative magnitude pruning (IMP).

    ``fit`` trains a neural network (a skorch net held in ``net_``), prunes a
    fraction of its smallest surviving weights, resets the survivors
    according to ``reinit`` (rewinding them to their initial values θ0 gives a
    *winning ticket*, Frankle & Carbin 2019) and repeats for ``n_rounds``
    rounds. The fitted model is the network trained at the final sparsity.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(300, 100)
        Hidden layer widths of the built-in MLP (LeNet-300-100 by default).
        Ignored by other modules.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Hidden-layer non-linearity of the built-in modules.
    module : str, nn.Module subclass or None, default=None
        Network to prune. ``None`` is the MLP; names are looked up in
        :data:`sklottery.modules.MODULES` (e.g. ``'conv2'``, ``'lenet5'``). A
        class is instantiated with ``n_features``, ``n_classes`` and
        ``module_params``, and must return logits.
    module_params : dict, default=None
        Extra keyword arguments for the module's constructor.
    input_shape : tuple of int (C, H, W), default=None
        Image shape for convolutional modules. ``X`` may then be flat,
        shape ``(n, C*H*W)``, or ``(n, C, H, W)``.
    dropout : float, default=0.0
        Dropout probability of the built-in modules' hidden layers.
    max_epochs : int, default=20
        Training epochs per round.
    batch_size : int, default=60
        Minibatch size (clipped to the number of training samples).
    learning_rate_init : float, default=1.2e-3
        Learning rate (Frankle & Carbin's value for LeNet-300-100 with Adam).
    optimizer : {'adam', 'sgd'}, default='adam'
        ``'sgd'`` uses ``momentum``.
    momentum : float, default=0.9
        Momentum of ``'sgd'``.
    alpha : float, default=0.0
        L2 penalty (weight decay).
    validation_fraction : float, default=0.1
        Fraction of the training data held out (stratified) to measure the
        validation loss on the grid of ``eval_every``; its minimum gives the
        early-stop iteration (Frankle & Carbin). Training always runs ``max_epochs``.
        ``0`` disables validation.
    eval_every : 'auto' or int, default='auto'
        Training iterations between two evaluations of the validation loss
        and accuracy (and of the ``on_evaluation`` hook of callbacks, which
        :func:`sklottery.analysis.ticket_curve` uses for test accuracy). The
        early-stop iteration is the grid point of minimum validation loss.
        ``'auto'`` evaluates every ``min(100, iterations per epoch)``
        iterations: every 100 iterations like Frankle & Carbin, at least once
        per epoch. The end of every round is always evaluated.
    lr_warmup : int, default=0
        Linear learning-rate warmup over this many iterations at the start of
        every round (needed to find tickets in deep networks).
    device : str, default='cpu'
        Torch device, e.g. ``'cuda'``.
    callbacks : list of skorch callbacks, default=None
        Extra callbacks passed to the skorch net: ``(name, callback)`` tuples
        as given, others as deep copies named ``'user_0'``, ``'user_1'``, ...
        (see ``net_.callbacks_``); a warm-start resume re-creates them from
        the current parameter and skorch re-initializes them. They see
        every round as one skorch training (``on_train_begin`` ...
        ``on_train_end``). A ``KeyboardInterrupt`` raised by one (or Ctrl-C)
        in a pruning round stops pruning like an interruption; skorch's
        ``EarlyStopping`` only ends the round early.
    pruning_rate : float, default=0.2
        Fraction of the *remaining* prunable weights removed per round.
    output_pruning_rate : 'half' or float, default='half'
        Rate for the output layer; ``'half'`` is ``pruning_rate / 2``
        (Frankle & Carbin prune the output layer at half rate).
    conv_pruning_rate : float, default=None
        Rate for convolutional layers; ``None`` uses ``pruning_rate``.
    n_rounds : int, default=5
        Pruning rounds. ``n_rounds + 1`` trainings: round 0 is dense.
        Ignored when ``target_sparsity`` is set.
    target_sparsity : float in [0, 1), default=None
        Fraction of prunable weights to remove; the number of rounds is the
        fewest that reaches it with the pruning rates.
    pruning_scope : {'layer', 'global'}, default='layer'
        ``'layer'`` prunes each layer by its own rate. ``'global'`` ranks all
        non-output prunable weights together under one threshold at
        ``pruning_rate``; the output layer keeps its own rate.
    pruning_criterion : {'magnitude', 'large_final', 'magnitude_increase', \
            'random'}, default='magnitude'
        Which surviving weights are pruned: the smallest ``|w_final|``
        (``'large_final'`` is Zhou et al.'s name for the same rule), the
        smallest ``|w_final| - |w_init|``, or random ones (random-pruning
        control).
    one_shot : bool, default=False
        Prune to the final sparsity in one step after the dense round, then
        train once.
    reinit : {'rewind', 'random', 'continue', 'same_sign', 'scratch_e', \
            'scratch_b'}, default='rewind'
        State the next round starts from: θ0/θk (winning ticket), a fresh
        random init, the trained weights (prune + fine-tune), fresh
        magnitudes with θ0's signs, or Liu et al.'s scratch training with
        the same epochs / the same compute budget (see
        :mod:`sklottery.strategies`).
    rewind_iteration : int, default=0
        ``k`` for late rewinding: survivors are reset to their values after
        ``k`` iterations of the dense round (θk).
    scratch_b_max_factor : float, default=2.0
        Cap on the extra epochs of ``reinit='scratch_b'``.
    error_on_divergence : bool, default=False
        If the loss (or a weight, or the validation loss at the end of a
        round) becomes NaN/inf in a pruning round, raise ``FloatingPointError``
        instead of warning (:class:`DivergenceWarning`). Either way the round
        is abandoned and the last completed round is restored. Divergence in
        the dense round 0 always raises (:class:`TrainingDivergedError`, a
        ``RuntimeError``, or
        ``FloatingPointError`` with this flag) and leaves the estimator
        unfitted.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, data split, shuffling, random pruning and
        dropout. ``fit`` and ``predict`` leave the global torch RNG untouched,
        and the global numpy RNG too unless ``random_state`` is ``None``
        (then, as in scikit-learn, the seeds are drawn from it).
    verbose : int, default=0
        ``1`` prints one line per round.
    warm_start : bool, default=False
        Calling ``fit`` again with a larger ``n_rounds`` (or after an
        interruption or divergence) continues pruning from the stored masks,
        θ0, trained weights and random state: on the same data and device the
        result equals an uninterrupted fit. The skorch net is rebuilt from the
        current training parameters (``learning_rate_init``, ``optimizer``,
        ``momentum``, ``alpha``, ``batch_size``, ``lr_warmup``,
        ``callbacks``: user callbacks are fresh copies); the network
        (``module``, ``hidden_layer_sizes``, ``activation``, ``dropout``,
        ``module_params``, ``input_shape``, ``device``) cannot change.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string feature names.
    net_ : skorch.NeuralNetClassifier
        The trained net at the final sparsity.
    masks_ : dict of str -> bool Tensor
        ``True`` where a weight is kept, per prunable parameter name.
    init_params_ : dict of str -> Tensor
        θ0, the initial state every rewind returns to (θk is
        ``rewind_params_`` when ``rewind_iteration > 0``).
    rewind_params_ : dict of str -> Tensor
        The state rewinding resets to (θ0 or θk).
    rounds_ : list of dict
        One record per completed training round; ``pandas.DataFrame(rounds_)``
        gives a table. Keys: ``round``, ``weights_remaining`` (% of prunable
        weights), ``remaining_by_layer`` (% per layer), ``train_loss``,
        ``valid_loss``, ``valid_acc`` (end of training), ``best_valid_loss``,
        ``valid_acc_at_early_stop``, ``early_stop_iteration`` (iteration of
        minimum validation loss), ``epochs``, ``n_iter`` (iterations),
        ``seconds``, ``reinit``.
    sparsity_ : float
        Fraction of prunable weights removed in the final network.
    n_iter_ : int
        Epochs trained in the final round.
    n_rounds_ : int
        Completed pruning rounds (the last record's ``round``).
    stop_reason_ : str or None
        ``None`` when all rounds ran; ``'interrupted'`` (``KeyboardInterrupt``
        in a pruning round, :class:`PruningInterruptedWarning`) or
        ``'diverged'``. The completed rounds are kept either way.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklottery import LotteryTicketClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = LotteryTicketClassifier(n_rounds=2, max_epochs=2, random_state=0)
    >>> clf = clf.fit(X / 16, y)
    >>> [round(r["weights_remaining"], 2) for r in clf.rounds_]
    [100.0, 80.04, 64.06]
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"relu", "tanh", "logistic", "identity"})],
        "module": [None, str, type],
        "module_params": [None, dict],
        "input_shape": [None, tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [StrOptions(set(_OPTIMIZERS))],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "validation_fraction": [None, Interval(Real, 0, 1, closed="left")],
        "eval_every": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "lr_warmup": [Interval(Integral, 0, None, closed="left")],
        "device": [str, torch.device],
        "callbacks": [None, list],
        "pruning_rate": [Interval(Real, 0, 1, closed="left")],
        "output_pruning_rate": [StrOptions({"half"}), Interval(Real, 0, 1, closed="left")],
        "conv_pruning_rate": [None, Interval(Real, 0, 1, closed="left")],
        "n_rounds": [Interval(Integral, 0, None, closed="left")],
        "target_sparsity": [None, Interval(Real, 0, 1, closed="left")],
        "pruning_scope": [StrOptions({"layer", "global"})],
        "pruning_criterion": [StrOptions(set(PRUNING_CRITERIA))],
        "one_shot": ["boolean"],
        "reinit": [StrOptions(set(REINIT_STRATEGIES))],
        "rewind_iteration": [Interval(Integral, 0, None, closed="left")],
        "scratch_b_max_factor": [Interval(Real, 1, None, closed="left")],
        "error_on_divergence": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
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
        one_shot=False,
        reinit="rewind",
        rewind_iteration=0,
        scratch_b_max_factor=2.0,
        error_on_divergence=False,
        random_state=None,
        verbose=0,
        warm_start=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.module = module
        self.module_params = module_params
        self.input_shape = input_shape
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.optimizer = optimizer
        self.momentum = momentum
        self.alpha = alpha
        self.validation_fraction = validation_fraction
        self.eval_every = eval_every
        self.lr_warmup = lr_warmup
        self.device = device
        self.callbacks = callbacks
        self.pruning_rate = pruning_rate
        self.output_pruning_rate = output_pruning_rate
        self.conv_pruning_rate = conv_pruning_rate
        self.n_rounds = n_rounds
        self.target_sparsity = target_sparsity
        self.pruning_scope = pruning_scope
        self.pruning_criterion = pruning_criterion
        self.one_shot = one_shot
        self.reinit = reinit
        self.rewind_iteration = rewind_iteration
        self.scratch_b_max_factor = scratch_b_max_factor
        self.error_on_divergence = error_on_divergence
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags

    # -------------------------------------------------------------- validation
    def _validate_X(self, X, y="no_validation", reset=True):
        """Validate X (and y); n-d image arrays are flattened against ``input_shape``."""
        shape = getattr(X, "shape", None)
        if shape is not None and len(shape) > 2:
            if len(shape) != 4:
                hint = ""
                if len(shape) == 3:
                    hint = (f"Add a channel axis (X[:, None] has shape "
                            f"{(shape[0], 1) + tuple(shape[1:])}) and pass input_shape="
                            f"{(1,) + tuple(shape[1:])}, or flatten X to 2 dimensions.")
                raise ValueError(
                    f"X has {len(shape)} dimensions {tuple(shape)}; image arrays must be "
                    "(n_samples, C, H, W) with input_shape=(C, H, W). "
                    + (hint or "Flatten X to 2 dimensions.")
                )
            if self.input_shape is None:
                raise ValueError(
                    f"X has {len(shape)} dimensions {tuple(shape)}; pass input_shape="
                    f"{tuple(shape[1:])} (C, H, W) to use image arrays, or flatten X to "
                    "2 dimensions."
                )
            if tuple(shape[1:]) != tuple(self.input_shape):
                raise ValueError(
                    f"X has sample shape {tuple(shape[1:])} but input_shape is "
                    f"{tuple(self.input_shape)}."
                )
            X = np.asarray(X).reshape(shape[0], -1)
        try:
            out = validate_data(self, X, y, reset=reset, dtype=[np.float32, np.float64])
        except ValueError as exc:
            if "could not convert" not in str(exc):
                raise
            raise ValueError(
                f"X must contain only numeric features, got a non-numeric value ({exc}). "
                "Encode string/categorical columns first, e.g. with "
                "sklearn.preprocessing.OneHotEncoder or OrdinalEncoder."
            ) from exc
        X = out[0] if isinstance(out, tuple) else out
        if self.input_shape is not None:
            expected = int(np.prod(self.input_shape))
            if X.shape[1] != expected:
                raise ValueError(
                    f"X has {X.shape[1]} features but input_shape={tuple(self.input_shape)} "
                    f"needs {expected} (= C*H*W)."
                )
        if X.size:
            biggest = max(abs(float(X.max())), abs(float(X.min())))
            if biggest > _MAX_ABS_FEATURE:
                raise ValueError(
                    f"X contains values too large for float32 training (max |x| = "
                    f"{biggest:.3g} > {_MAX_ABS_FEATURE:.3g} = sqrt(float32 max), so squared "
                    "gradients overflow to inf). Scale the features first, e.g. with "
                    "sklearn.preprocessing.StandardScaler."
                )
        return out

    def _check_params(self):
        sizes = np.atleast_1d(self.hidden_layer_sizes)
        if np.any(sizes <= 0):
            raise ValueError(
                f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes}."
            )
        get_module_class(self.module)  # raises on unknown names
        if self.input_shape is not None and (
            len(self.input_shape) != 3 or any(int(s) <= 0 for s in self.input_shape)
        ):
            raise ValueError(
                f"input_shape must be (C, H, W) with positive ints, got {self.input_shape!r}."
            )
        try:
            device = torch.device(self.device)
        except RuntimeError as exc:
            raise ValueError(f"device={self.device!r} is not a torch device: {exc}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} but CUDA is not available in this torch build or "
                "on this machine; use device='cpu'."
            )

    # ------------------------------------------------------------- building
    def _module_kwargs(self, n_features, n_classes):
        cls = get_module_class(self.module)
        kwargs = {"n_features": n_features, "n_classes": n_classes}
        if cls in MODULES.values():
            kwargs.update(activation=self.activation, dropout=self.dropout)
            if cls is MODULES["mlp"]:
                kwargs["hidden_layer_sizes"] = tuple(int(h) for h in self.hidden_layer_sizes)
            else:
                kwargs["input_shape"] = (
                    None if self.input_shape is None else tuple(self.input_shape)
                )
        kwargs.update(self.module_params or {})
        return cls, kwargs

    def _build_net(self, n_features, n_classes, valid_ds, generator, mask_cb, eval_cb):
        cls, kwargs = self._module_kwargs(n_features, n_classes)
        optimizer_kwargs = {"optimizer__weight_decay": float(self.alpha)}
        if self.optimizer == "sgd":
            optimizer_kwargs["optimizer__momentum"] = float(self.momentum)
        callbacks = [("sklottery_masks", mask_cb), ("sklottery_eval", eval_cb)]
        for i, cb in enumerate(self.callbacks or []):
            callbacks.append(cb if isinstance(cb, tuple) else (f"user_{i}", copy.deepcopy(cb)))
        net = LotteryNet(
            cls,
            criterion=torch.nn.CrossEntropyLoss,
            optimizer=_OPTIMIZERS[self.optimizer],
            lr=float(self.learning_rate_init),
            max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size),
            iterator_train=TensorBatchIterator,
            iterator_train__shuffle=True,
            iterator_train__generator=generator,
            iterator_valid=TensorBatchIterator,
            train_split=None if valid_ds is None else predefined_split(valid_ds),
            callbacks=callbacks,
            classes=list(range(n_classes)),
            device=self.device,
            verbose=0,
            **{f"module__{k}": v for k, v in kwargs.items()},
            **optimizer_kwargs,
        )
        return net

    def _fresh_state(self):
        """A new random initialisation of the module (seeded from the generator)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self._generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.net_.module(**self.net_.get_params_for("module"))
        return {k: v.to(self.net_.device) for k, v in module.state_dict().items()}

    def _layer_rates(self):
        kinds = layer_kinds(self.net_.module_)
        rate = float(self.pruning_rate)
        out_rate = rate / 2 if self.output_pruning_rate == "half" else float(self.output_pruning_rate)
        conv_rate = rate if self.conv_pruning_rate is None else float(self.conv_pruning_rate)
        rates = {}
        for name, kind in kinds.items():
            rates[name] = {"output": out_rate, "conv": conv_rate}.get(kind, rate)
        pooled = [n for n, kind in kinds.items() if kind != "output"]
        return rates, pooled

    def _total_rounds(self, rates):
        sizes = {n: m.numel() for n, m in self.masks_.items()}
        if self.target_sparsity is not None:
            return rounds_for_sparsity(sizes, rates, float(self.target_sparsity))
        return int(self.n_rounds)

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, initial_masks=None):
        """Run iterative magnitude pruning on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training data (n-d arrays need ``input_shape``).
        y : array-like of shape (n_samples,)
            Class labels (any type sklearn accepts, strings included).
        initial_masks : dict of str -> bool array, default=None
            Masks (``True`` = kept) applied from the very first round, e.g. a
            ticket's masks found by another fit (``other.masks_``). Round 0 then
            trains this sparse network from this estimator's own
            initialisation: with ``n_rounds=0`` this is the random-reinit
            control of Frankle & Carbin and Liu et al.'s scratch training.
            Ignored when a warm-started fit continues.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._check_params()
        resume = self.warm_start and getattr(self, "_checkpoint", None) is not None
        if resume:
            # Failures leave the estimator as it was: validation happens before
            # any change, and a failing round restores the last checkpoint.
            self._fit(X, y, initial_masks, resume=True)
            return self
        # A fresh fit replaces the previous model. If it fails before a round
        # completes, the estimator is left unfitted (never half-initialised).
        self._clear_fitted()
        try:
            self._fit(X, y, initial_masks, resume=False)
        except BaseException:
            if getattr(self, "_checkpoint", None) is None:
                self._clear_fitted()
            raise
        return self

    _PRIVATE_FIT_ATTRS = ("_checkpoint", "_train_data", "_mask_cb", "_eval_cb", "_generator",
                          "_seeds", "_round_start", "_iters_per_epoch")

    def _clear_fitted(self):
        for key in list(vars(self)):
            if (key.endswith("_") and not key.startswith("_")) or key in self._PRIVATE_FIT_ATTRS:
                delattr(self, key)

    def _fit(self, X, y, initial_masks, resume):
        X, y = self._validate_X(X, y, reset=not resume)
        check_classification_targets(y)
        if X.shape[0] < 2:
            raise ValueError(f"Need at least 2 samples to train, got n_samples={X.shape[0]}.")
        if resume:
            if not np.all(np.isin(y, self.classes_)) or len(np.unique(y)) != len(self.classes_):
                raise ValueError(
                    "warm_start=True needs the same classes as the previous fit "
                    f"({self.classes_.tolist()})."
                )
            y_enc = np.searchsorted(self.classes_, y)
        else:
            classes, y_enc = np.unique(y, return_inverse=True)
            if len(classes) < 2:
                raise ValueError(
                    "Classifier can't train when only one class is present; got class "
                    f"{classes[0]!r}."
                )
            self.classes_ = classes

        device = torch.device(self.device)
        fork_devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            if resume:
                self._rebuild_net()
                self._restore_checkpoint()  # weights, masks and RNG of the last round
                data = self._prepare_data(X, y_enc, self._seeds["split"])
                self._set_data(data)
            else:
                self._initialize(X, y_enc, initial_masks)
            try:
                self._imp_loop()
            finally:
                self._release_data()

    def _release_data(self):
        """Drop the training tensors so the fitted estimator (and its pickle) holds no data."""
        self.__dict__.pop("_train_data", None)
        if getattr(self, "_eval_cb", None) is not None:
            self._eval_cb.valid = None
        if hasattr(self, "net_"):
            self.net_.set_params(train_split=None)

    def _rebuild_net(self):
        """Fresh skorch net from the current parameters (warm-start resume).

        Training settings and user callbacks may change between fits; the
        network itself may not (the stored weights, masks and θ0 belong to it).
        """
        old = self.net_
        n_classes = len(self.classes_)
        cls, kwargs = self._module_kwargs(self.n_features_in_, n_classes)
        old_kwargs = old.get_params_for("module")
        changed = []
        for key in sorted(set(kwargs) | set(old_kwargs)):
            a, b = kwargs.get(key, "<unset>"), old_kwargs.get(key, "<unset>")
            try:
                same = bool(a == b)
            except Exception:  # e.g. arrays in module_params
                same = a is b
            if not same:
                changed.append(f"{key}: {b!r} -> {a!r}")
        if cls is not old.module:
            changed.append(f"module: {old.module.__name__} -> {cls.__name__}")
        if torch.device(self.device) != torch.device(old.device):
            changed.append(f"device: {old.device!r} -> {self.device!r}")
        if changed:
            raise ValueError(
                "warm_start=True cannot change the network of a fitted estimator ("
                + "; ".join(changed) + "). Set warm_start=False to fit a new one."
            )
        self._mask_cb = MaskCallback(lr_warmup=int(self.lr_warmup),
                                     base_lr=float(self.learning_rate_init))
        self._eval_cb = EvalGrid()
        net = self._build_net(self.n_features_in_, n_classes, None, self._generator,
                              self._mask_cb, self._eval_cb)
        net.initialize()  # throwaway init: the caller restores the RNG and the weights
        self.net_ = net

    def _prepare_data(self, X, y_enc, split_seed):
        vf = self.validation_fraction or 0.0
        n = X.shape[0]
        n_val = int(round(vf * n))
        idx = np.arange(n)
        valid_idx = None
        if vf > 0 and 1 <= n_val < n:
            try:
                train_idx, valid_idx = train_test_split(
                    idx, test_size=n_val, random_state=split_seed, stratify=y_enc
                )
            except ValueError:  # a class too small to stratify
                train_idx, valid_idx = train_test_split(
                    idx, test_size=n_val, random_state=split_seed
                )
        else:
            train_idx = idx
        dev = torch.device(self.device)

        def to_t(a, dtype):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype).to(dev)

        Xt = to_t(X[train_idx], torch.float32)
        yt = to_t(y_enc[train_idx], torch.int64)
        valid = None
        if valid_idx is not None:
            valid = Dataset(to_t(X[valid_idx], torch.float32), to_t(y_enc[valid_idx], torch.int64))
        return Xt, yt, valid

    def _set_data(self, data):
        Xt, yt, valid = data
        self._train_data = (Xt, yt)
        self.net_.set_params(train_split=None if valid is None else predefined_split(valid))
        self._iters_per_epoch = -(-len(Xt) // min(int(self.batch_size), len(Xt)))
        self._eval_cb.every = resolve_eval_every(self.eval_every, self._iters_per_epoch)
        self._eval_cb.valid = None if valid is None else (valid.X, valid.y)

    def _initialize(self, X, y_enc, initial_masks=None):
        rs = check_random_state(self.random_state)
        seeds = rs.randint(0, 2**31 - 1, size=4)
        self._seeds = {"init": int(seeds[0]), "split": int(seeds[1]),
                       "generator": int(seeds[2]), "torch": int(seeds[3])}
        torch.manual_seed(self._seeds["torch"])
        self._generator = torch.Generator().manual_seed(self._seeds["generator"])
        Xt, yt, valid = self._prepare_data(X, y_enc, self._seeds["split"])
        self._mask_cb = MaskCallback(lr_warmup=int(self.lr_warmup),
                                     base_lr=float(self.learning_rate_init))
        self._eval_cb = EvalGrid()
        self.net_ = self._build_net(X.shape[1], len(self.classes_), valid, self._generator,
                                    self._mask_cb, self._eval_cb)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seeds["init"])
            self.net_.initialize()
        self._set_data((Xt, yt, valid))
        kinds = layer_kinds(self.net_.module_)
        if not kinds:
            raise ValueError("The module has no prunable (Linear/Conv2d) weights.")
        self.init_params_ = _clone_state(self.net_.module_.state_dict())
        self.masks_ = {
            n: torch.ones_like(self.init_params_[n], dtype=torch.bool) for n in kinds
        }
        if initial_masks is not None:
            self.masks_ = self._check_initial_masks(initial_masks)
        rates, _ = self._layer_rates()
        self._total_rounds(rates)  # validates target_sparsity against the rates
        k = int(self.rewind_iteration)
        round0_iters = self._iters_per_epoch * int(self.max_epochs)
        if k > round0_iters:
            raise ValueError(
                f"rewind_iteration={k} is beyond the dense round's training length "
                f"({round0_iters} iterations = {self.max_epochs} epochs x "
                f"{self._iters_per_epoch} batches)."
            )
        self.rounds_ = []
        self.stop_reason_ = None
        self._checkpoint = None
        # dense round
        self.rewind_params_ = self.init_params_
        self._round_start = self.init_params_
        outcome, detail = self._train_round(0, int(self.max_epochs),
                                            capture_at=k if k > 0 else None)
        if outcome == "interrupted":
            raise KeyboardInterrupt("Interrupted in the dense round 0; no round completed.")
        if outcome == "diverged":
            error = FloatingPointError if self.error_on_divergence else TrainingDivergedError
            raise error(self._stop_message(0, outcome, detail))
        if k > 0:
            self.rewind_params_ = self._mask_cb.captured_

    def _check_initial_masks(self, initial_masks):
        if not isinstance(initial_masks, dict):
            raise TypeError(
                f"initial_masks must be a dict name -> bool array, got "
                f"{type(initial_masks).__name__}."
            )
        missing = set(self.masks_) - set(initial_masks)
        extra = set(initial_masks) - set(self.masks_)
        if missing or extra:
            raise ValueError(
                f"initial_masks must have exactly the prunable weights {list(self.masks_)}; "
                f"missing {sorted(missing)}, unknown {sorted(extra)}."
            )
        out = {}
        for name, ref in self.masks_.items():
            m = initial_masks[name]
            m = m.detach().cpu() if torch.is_tensor(m) else torch.as_tensor(np.asarray(m))
            if tuple(m.shape) != tuple(ref.shape):
                raise ValueError(
                    f"initial_masks[{name!r}] has shape {tuple(m.shape)}, expected "
                    f"{tuple(ref.shape)}."
                )
            if m.dtype != torch.bool:
                raise ValueError(f"initial_masks[{name!r}] must be boolean, got {m.dtype}.")
            if not m.any():
                raise ValueError(f"initial_masks[{name!r}] prunes every weight of the layer.")
            out[name] = m.to(ref.device)
        return out

    # -------------------------------------------------------------- IMP loop
    def _imp_loop(self):
        rates, pooled = self._layer_rates()
        total = self._total_rounds(rates)
        self.stop_reason_ = None
        start = self._checkpoint["round"] + 1
        if self.one_shot:
            if start > 1:
                if self.warm_start:
                    warnings.warn("one_shot=True: the network was already pruned; nothing to do.")
                return
            if total == 0:
                return
            sizes = {n: m.numel() for n, m in self.masks_.items()}
            rates = one_shot_rates(sizes, rates, total,
                                   pooled if self.pruning_scope == "global" else None)
            plan = [1]
        else:
            if start > total and self.warm_start and start > 1:
                warnings.warn(
                    f"Warm-start fit with n_rounds={total} but {start - 1} rounds are "
                    "already done; nothing to do."
                )
            plan = range(start, total + 1)
        for r in plan:
            if not self._run_round(r, rates, pooled):
                break

    def _run_round(self, r, rates, pooled):
        """Prune, reset and train round ``r``; on failure restore the last round.

        Returns True when the round completed. A ``KeyboardInterrupt`` (other
        than skorch's ``EarlyStopping``) or a divergence stops pruning with a
        warning (or ``FloatingPointError``); any other exception restores the
        last completed round and propagates.
        """
        try:
            outcome, detail = self._prune_and_train(r, rates, pooled)
        except KeyboardInterrupt:
            outcome, detail = "interrupted", None
        except BaseException:
            self._restore_checkpoint()
            raise
        if outcome == "ok":
            return True
        self._restore_checkpoint()
        self.stop_reason_ = outcome
        message = self._stop_message(r, outcome, detail)
        if outcome == "diverged" and self.error_on_divergence:
            raise FloatingPointError(message)
        warnings.warn(
            message,
            DivergenceWarning if outcome == "diverged" else PruningInterruptedWarning,
            stacklevel=6,  # _run_round < _imp_loop < _fit < fit < _fit_context < caller
        )
        return False

    def _prune_and_train(self, r, rates, pooled):
        ckpt = self._checkpoint
        trained = ckpt["state"]
        prunable = list(self.masks_)
        scores = compute_scores(
            self.pruning_criterion,
            {n: trained[n] for n in prunable},
            init={n: ckpt["start"][n] for n in prunable},
            generator=self._generator,
        )
        cpu_masks = {n: m.cpu() for n, m in ckpt["masks"].items()}
        new_masks = prune_masks(scores, cpu_masks, rates, scope=self.pruning_scope,
                                global_layers=pooled)
        dev = torch.device(self.device)
        self.masks_ = {n: m.to(dev) for n, m in new_masks.items()}
        strategy = self.reinit
        fresh = self._fresh_state() if strategy not in ("rewind", "continue") else None
        state = next_round_state(strategy, trained, self.rewind_params_, fresh, prunable)
        self._round_start = (
            self.rewind_params_ if strategy == "rewind" else
            {n: state[n].clone() for n in prunable}
        )
        self.net_.module_.load_state_dict(state)
        epochs = int(self.max_epochs)
        if strategy == "scratch_b":
            frac = fraction_remaining(self.masks_)["total"]
            epochs = scratch_b_epochs(epochs, frac, self.scratch_b_max_factor)
        return self._train_round(r, epochs)

    def _stop_message(self, r, outcome, detail=None):
        n = len(self.rounds_)
        if outcome == "diverged":
            what = f"Training diverged in round {r} with learning_rate_init=" \
                   f"{self.learning_rate_init}" + (f" ({detail})" if detail else "")
            advice = "Lower learning_rate_init, add lr_warmup or scale the features"
            if r == 0 or n == 0:
                return (f"{what}; no round completed, so there is no network to keep. "
                        f"{advice} (e.g. with sklearn.preprocessing.StandardScaler).")
            return (f"{what}; kept the {n} completed rounds and restored the network of "
                    f"round {self.rounds_[-1]['round']}. {advice}, then fit again with "
                    "warm_start=True to continue.")
        return (
            f"Pruning interrupted in round {r}; kept the {n} completed rounds and restored "
            f"the network of round {self.rounds_[-1]['round']}. Fit again with "
            "warm_start=True to continue."
        )

    def _early_stopped(self):
        """Whether skorch's EarlyStopping raised the KeyboardInterrupt that ended training."""
        return any(
            isinstance(cb, EarlyStopping) and getattr(cb, "misses_", 0) >= cb.patience
            for _, cb in self.net_.callbacks_
        )

    def _check_finite(self):
        """Raise Diverged when a weight or the last validation loss is NaN/inf.

        The per-batch loss check cannot see the last optimizer step of a round.
        """
        for name, t in self.net_.module_.state_dict().items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise Diverged(f"{name} has non-finite values at the end of training")
        hist = self.net_.history
        if len(hist) and "valid_loss" in hist[-1]:
            vl = float(hist[-1, "valid_loss"])
            if not np.isfinite(vl):
                raise Diverged(f"validation loss became {vl}")

    def _train_round(self, r, epochs, capture_at=None):
        """Train the current module with the current masks; record and checkpoint.

        Returns ``(outcome, detail)`` with outcome ``'ok'``, ``'diverged'`` or
        ``'interrupted'``.
        """
        net = self.net_
        Xt, yt = self._train_data
        self._mask_cb.masks = self.masks_
        self._mask_cb.capture_at = capture_at
        net.initialize_history()
        net.initialize_optimizer()
        t0 = time.perf_counter()
        try:
            net.notify("on_train_begin", X=Xt, y=yt)
            try:
                net.fit_loop(Xt, yt, epochs=epochs)
            except KeyboardInterrupt:
                if not self._early_stopped():
                    raise
            net.notify("on_train_end", X=Xt, y=yt)
            self._check_finite()
        except Diverged as exc:
            return "diverged", str(exc)
        except KeyboardInterrupt:
            return "interrupted", None
        seconds = time.perf_counter() - t0
        checkpoint = {
            "round": r,
            "state": _clone_state(net.module_.state_dict()),
            "masks": {n: m.clone() for n, m in self.masks_.items()},
            "start": self._round_start,
            "rng": self._rng_state(),
        }
        rec = self._make_record(r, seconds)
        self._checkpoint = checkpoint
        self._commit_record(rec)
        return "ok", None

    def _make_record(self, r, seconds):
        hist = self.net_.history
        epochs = len(hist)
        frac = fraction_remaining(self.masks_)
        total = frac.pop("total")
        rec = {
            "round": r,
            "weights_remaining": 100.0 * total,
            "remaining_by_layer": {n: 100.0 * v for n, v in frac.items()},
            "train_loss": float(hist[-1, "train_loss"]),
            "valid_loss": np.nan,
            "valid_acc": np.nan,
            "best_valid_loss": np.nan,
            "valid_acc_at_early_stop": np.nan,
            "early_stop_iteration": None,
            "epochs": epochs,
            "n_iter": self._eval_cb.iteration_,
            "seconds": seconds,
            "reinit": self.reinit if r else ("dense" if total == 1 else "masked"),
        }
        grid = self._eval_cb
        if grid.valid is not None and grid.iterations_:
            rec.update(valid_loss=float(grid.valid_loss_[-1]),
                       valid_acc=float(grid.valid_acc_[-1]))
            best = grid.early_stop()
            if best is not None:
                rec.update(early_stop_iteration=int(best[0]), best_valid_loss=best[1],
                           valid_acc_at_early_stop=best[2])
        return rec

    def _commit_record(self, rec):
        r, seconds, epochs = rec["round"], rec["seconds"], rec["epochs"]
        self.rounds_.append(rec)
        self.sparsity_ = 1.0 - rec["weights_remaining"] / 100.0
        self.n_iter_ = epochs
        self.n_rounds_ = r
        if self.verbose:
            if r == 0 or len(self.rounds_) == 1:
                print(f"{'round':>5} {'% left':>8} {'val loss':>9} {'val acc':>8} "
                      f"{'early-stop it':>13} {'seconds':>8}")
            es = rec["early_stop_iteration"]
            print(f"{r:>5d} {rec['weights_remaining']:>8.2f} {rec['valid_loss']:>9.4f} "
                  f"{rec['valid_acc']:>8.4f} {'-' if es is None else es:>13} "
                  f"{seconds:>8.2f}", flush=True)

    # --------------------------------------------------------- checkpoints
    def _rng_state(self):
        state = {"torch": torch.get_rng_state(), "generator": self._generator.get_state()}
        dev = torch.device(self.device)
        if dev.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(dev)
        return state

    def _restore_rng(self, state):
        torch.set_rng_state(state["torch"])
        self._generator.set_state(state["generator"])
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], torch.device(self.device))

    def _restore_checkpoint(self):
        ckpt = self._checkpoint
        self.net_.module_.load_state_dict(ckpt["state"])
        self.masks_ = {n: m.clone() for n, m in ckpt["masks"].items()}
        self._restore_rng(ckpt["rng"])
        self._mask_cb.masks = self.masks_

    # ------------------------------------------------------------- predict
    def _forward_proba(self, X):
        check_is_fitted(self, "net_")
        X = self._validate_X(X, reset=False)
        Xt = torch.as_tensor(np.ascontiguousarray(X), dtype=torch.float32).to(self.net_.device)
        return self.net_.predict_proba(Xt)

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
        return np.asarray(self._forward_proba(X), dtype=np.float64)

    def predict(self, X):
        """Predict class labels (values from ``classes_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        proba = self._forward_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
