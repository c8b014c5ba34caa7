"""The task-agnostic IMP engine behind sklottery's estimators.

:class:`BaseLotteryTicket` holds everything iterative magnitude pruning needs
that does not depend on the task: the parameters and their validation, warm
start, the failure policy (interrupt, divergence), checkpoints and the IMP
loop over an explicit :class:`RoundState`. A fit is a generator
(:meth:`BaseLotteryTicket.fit_steps`) that yields one
:class:`~sklottery.training.TrainRequest` per round: whoever drives it picks
a trainer from :data:`sklottery.training.TRAINERS` (a plain ``fit``: the
skorch trainer); pruning and resetting are pure functions of
:mod:`sklottery.pruning` and :mod:`sklottery.strategies`.
:class:`~sklottery.LotteryTicketClassifier` and
:class:`~sklottery.LotteryTicketRegressor` are thin subclasses that say how
targets are encoded, which loss and score are used, how the validation split
is drawn and what ``predict`` returns, like scikit-learn's
``BaseMultilayerPerceptron`` behind ``MLPClassifier`` and ``MLPRegressor``.

The layers, from data to report::

    data -> estimator (targets, loss, predict)        estimators.py
         -> engine (IMP loop over RoundState)          base.py
         -> trainer (one masked round)                 training/
         -> pruning (scores, masks, schedule, reset)   pruning.py, strategies.py
         -> report (ticket curves, statistics, plots)  analysis.py, stats/, plotting.py
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import assert_all_finite, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._interrupt import aborting
from ._utils import split, user_stacklevel
from .modules import (
    MODULES,
    ImageClassifierModule,
    get_module_class,
    layer_kinds,
    multiply_adds,
)
from .pruning import (
    PRUNING_CRITERIA,
    remaining_schedule,
    compact_module,
    compute_scores,
    fraction_remaining,
    one_shot_rates,
    prune_masks,
    prune_units,
    rounds_for_sparsity,
    unit_chain,
    zero_dead_biases_,
)
from .pai import PAI_METHODS, pai_module_masks
from .strategies import (
    DEPRECATED_REINIT,
    REINIT_STRATEGIES,
    canonical_reinit,
    next_round_state,
    scratch_b_epochs,
)
from .inference import predict_outputs  # the predict hook
from .persistence import (  # pickling hooks
    open_packed_state,
    pack_estimator_state,
    unpack_estimator_state,
)
from .exceptions import DivergenceWarning, PruningInterruptedWarning, TrainingDivergedError
from .tickets import data_sha256, save_ticket
from .training import (
    OPTIMIZERS,
    TRAINERS,
    EvalRecord,
    TrainData,
    TrainRequest,
    TrainSettings,
    build_net,
    drive,
    resolve_device,
    resolve_eval_every,
    torch_threads,
)

__all__ = [
    "BaseLotteryTicket",
    "RoundState",
    "PruningInterruptedWarning",
    "DivergenceWarning",
    "TrainingDivergedError",
]

# Features beyond sqrt(float32 max) make squared gradients (Adam's second
# moment, the gradient norm) overflow to inf: training silently stops or NaNs.
_MAX_ABS_FEATURE = float(np.sqrt(np.finfo(np.float32).max))


def _min_max(X):
    """``(min, max)`` of a float array in one pass (NaN if it holds a NaN)."""
    # torch.from_numpy takes neither read-only nor negatively strided arrays
    if X.flags.writeable and X.dtype in (np.float32, np.float64) and min(X.strides) >= 0:
        lo, hi = torch.aminmax(torch.from_numpy(X))
        return float(lo), float(hi)
    return float(X.min()), float(X.max())


def _min_samples_for_split(fraction):
    """Fewest samples for which ``round(fraction * n)`` is neither 0 nor ``n``.

    Both the held-out count and the rest grow with ``n`` (by at most one per
    sample), so every larger ``n`` works as well. The threshold lies just
    above ``0.5 / min(fraction, 1 - fraction)``; ``ceil(1 / min(...))``
    always works (a fallback where float rounding hides the threshold).
    """
    smaller = min(fraction, 1.0 - fraction)
    start = max(2, int(0.5 / smaller) - 2)
    for n in range(start, start + 8):
        if 1 <= int(round(fraction * n)) < n:
            return n
    return max(2, math.ceil(1.0 / smaller))


#: Rows gathered at a time by :func:`_take_rows` (about this many elements):
#: the temporary of a float64 -> float32 gather stays small.
_TAKE_BLOCK = 2 ** 21


def _take_rows(X, idx, dtype):
    """``X[idx]`` as a new C-contiguous array of ``dtype``, without a full-size temporary.

    Equal to ``X[idx].astype(dtype)`` bit for bit, but a float64 ``X`` is cast
    block by block into the result instead of gathered in float64 first, so
    the gather allocates little more than its result.
    """
    out = np.empty((len(idx),) + X.shape[1:], dtype=dtype)
    if X.dtype == out.dtype:
        return np.take(X, idx, axis=0, out=out, mode="clip")  # idx is in range
    row = max(1, int(np.prod(X.shape[1:], dtype=np.int64)))
    step = max(1, _TAKE_BLOCK // row)
    for a in range(0, len(idx), step):
        out[a:a + step] = X[idx[a:a + step]]
    return out


def _clone_state(state):
    return {k: v.detach().clone() for k, v in state.items()}


@dataclass
class RoundState:
    """Everything the IMP loop needs to continue after a completed round.

    Attributes
    ----------
    round : int
        The round (0 is dense).
    masks : dict of str -> bool Tensor
        The masks the round trained with (the same tensors as the estimator's
        ``masks_`` while it is the last round: masks are held once).
    trained : dict of str -> Tensor
        Full module state at the end of the round.
    start : dict of str -> Tensor
        State the round started from (θ0/θk when rewinding; the unmasked
        reset weights otherwise), read by ``pruning_criterion=
        'magnitude_increase'``.
    rewind : dict of str -> Tensor
        The rewind point every ``reinit='rewind'`` round resets to: θ0, or θk
        once the dense round has passed iteration ``rewind_iteration``
        (the estimator's ``rewind_params_``).
    rng : dict
        Global torch RNG and the data-order generator after the round, so a
        warm-started fit continues exactly where an uninterrupted one would.
    """

    round: int
    masks: dict
    trained: dict
    start: dict
    rewind: dict
    rng: dict


#: The numpydoc of the parameters every estimator shares, formatted into the
#: estimators' docstrings with ``{target}`` (what the module outputs).
SHARED_PARAMETERS_DOC = """\
    hidden_layer_sizes : int or tuple of int, default=(300, 100)
        Hidden layer widths of the built-in MLP (LeNet-300-100 by default);
        an int is one hidden layer. Ignored by other modules.
    activation : {{'relu', 'tanh', 'logistic', 'identity'}}, default='relu'
        Hidden-layer non-linearity of the built-in modules.
    module : str, nn.Module subclass or None, default=None
        Network to prune. ``None`` is the MLP; names are looked up in
        :data:`sklottery.modules.MODULES` (e.g. ``'conv2'``, ``'lenet5'``). A
        class is instantiated with ``n_features``, ``n_classes`` (the width
        of its output layer: {target}) and ``module_params``. A module
        already pruned with :mod:`torch.nn.utils.prune` is rejected: pass its
        mask as ``initial_masks`` instead.
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
    optimizer : {{'adam', 'sgd'}}, default='adam'
        ``'sgd'`` uses ``momentum``.
    momentum : float, default=0.9
        Momentum of ``'sgd'``.
    alpha : float, default=0.0
        L2 penalty (weight decay).
    validation_fraction : float, default=0.1
        Fraction of the training data held out{split} to measure the
        validation loss on the grid of ``eval_every``; its minimum gives the
        early-stop iteration (Frankle & Carbin). Training always runs
        ``max_epochs``. ``0`` disables validation. ``round(validation_fraction
        * n_samples)`` samples are held out; when that leaves no validation
        sample or no training sample (e.g. ``0.1`` of 4 samples, ``0.99`` of
        10), ``fit`` raises a ValueError before training: set ``0`` to train
        without validation, or pass more data.
    eval_every : 'auto' or int, default='auto'
        Training iterations between two evaluations of the validation loss
        and score (and of the ``on_evaluation`` hook of callbacks, which
        :func:`sklottery.analysis.ticket_curve` uses to keep the early-stop
        network). The early-stop iteration is the grid point of minimum
        validation loss. ``'auto'`` evaluates every ``min(100, iterations
        per epoch)`` iterations: every 100 iterations like Frankle & Carbin,
        at least once per epoch. The end of every round is always evaluated.
    lr_warmup : int, default=0
        Linear learning-rate warmup over this many iterations at the start of
        every round (a :class:`torch.optim.lr_scheduler.LambdaLR`; needed to
        find tickets in deep networks).
    device : str or torch.device, default='cpu'
        Torch device, e.g. ``'cuda'``; ``'auto'`` is ``'cuda'`` where this
        torch build and machine have CUDA, else ``'cpu'``. Resolved once when
        ``fit`` begins (``device_``); ``'cuda'`` without CUDA is a
        ``ValueError`` before anything is trained.
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
        fewest that reaches it with the pruning rates and scope.
    pruning_scope : {{'layer', 'global'}}, default='layer'
        ``'layer'`` prunes each layer by its own rate. ``'global'`` ranks all
        non-output prunable weights together under one threshold at
        ``pruning_rate``; the output layer keeps its own rate. Global scope
        pools layers of one rate only: with convolutions it needs
        ``conv_pruning_rate`` to be None or equal to ``pruning_rate``
        (checked before any training).
    pruning_criterion : {{'magnitude', 'large_final', 'magnitude_increase', \
'random', 'snip', 'grasp', 'synflow'}}, default='magnitude'
        Which surviving weights are pruned: the smallest ``|w_final|``
        (``'large_final'`` is Zhou et al.'s name for the same rule), the
        smallest ``|w_final| - |w_init|``, or random ones (random-pruning
        control). ``'snip'``, ``'grasp'`` and ``'synflow'`` prune at
        initialization (:data:`sklottery.pai.PAI_METHODS`; needs
        ``one_shot=True``): before any training, θ0 is pruned by the method to
        the fraction of weights the one-shot schedule removes, ranked
        globally across every prunable layer as the methods' papers do (the
        output layer too, whatever ``output_pruning_rate``)
        (SynFlow iterates its 100 data-free scoring rounds within that step;
        SNIP and GraSP score one mini-batch of the training split), and
        round 0 trains that sparse network once: there is no dense round.
    pruning_granularity : {{'weight', 'neuron', 'filter'}}, default='weight'
        ``'weight'`` prunes single weights (Frankle & Carbin). ``'neuron'``
        and ``'filter'`` prune whole units (Liu et al. 2019's structured
        pruning): every hidden ``Linear`` layer loses whole neurons (incoming
        row, bias and outgoing column) and every convolution whole filters
        (output channel, bias and the next layer's matching inputs, Li et al.
        2017), at the layer's rate, ranked by the ``structured_norm`` of
        their kept incoming weights (``pruning_criterion='random'``: at
        random). The two names are the same rule, for MLPs and conv nets. The
        output layer's units are never removed. Needs ``pruning_scope=
        'layer'``, ``n_rounds`` (not ``target_sparsity`` or ``one_shot``) and
        a module whose prunable layers form a chain (all built-in modules).
    structured_norm : {{'l1', 'l2'}}, default='l1'
        Norm that ranks units with a structured ``pruning_granularity``.
    one_shot : bool, default=False
        Prune to the final sparsity in one step after the dense round, then
        train once.
    reinit : {{'rewind', 'fresh', 'fresh_budget', 'continue', 'same_sign'}}, \
default='rewind'
        State every pruning round starts from: θ0/θk (``'rewind'``, the
        winning ticket), a fresh random initialisation trained for the same
        epochs (``'fresh'``) or for the dense network's compute budget
        (``'fresh_budget'``: the dense round's multiply-adds, see
        :func:`~sklottery.strategies.scratch_b_epochs`), the trained weights (``'continue'``: prune +
        fine-tune) or fresh magnitudes with θ0's signs (``'same_sign'``,
        Zhou et al.); see :mod:`sklottery.strategies`. The old spellings
        ``'random'``, ``'scratch_e'`` (both ``'fresh'``) and ``'scratch_b'``
        (``'fresh_budget'``) still work with a ``FutureWarning``: in
        :func:`~sklottery.analysis.ticket_curve` those words name *mask
        controls* (the ticket's mask trained once from a new
        initialisation), a different experiment.
    rewind_iteration : int, default=0
        ``k`` for late rewinding: survivors are reset to their values after
        ``k`` iterations of the dense round (θk).
    scratch_b_max_factor : float, default=2.0
        Cap on the extra epochs of ``reinit='fresh_budget'`` (and of
        ticket_curve's scratch-B control).
    record_history : bool or 'masks', default=False
        Keep every completed round's masks and its start and trained weights
        of the prunable layers, on the CPU, in ``history_`` (used by
        :func:`~sklottery.analysis.ticket_curve` and
        :func:`~sklottery.stats.mask_analysis`); ``'masks'`` keeps the masks
        only. Memory grows with the rounds.
    error_on_divergence : bool, default=False
        If training diverges in a pruning round, raise ``FloatingPointError``
        instead of warning (:class:`DivergenceWarning`). A round diverges when
        a loss or weight becomes NaN/inf, or when a loss blows up: the mean
        training loss of an epoch, or a validation loss on the evaluation
        grid, exceeds 10 times the larger of the loss of a constant
        prediction (``ln K`` for K classes; the targets' variance for squared
        error) and the round's first-batch loss. Either way the round is
        abandoned and the last completed round is restored. Divergence in
        the dense round 0 always raises (:class:`TrainingDivergedError`, a
        ``RuntimeError``, or ``FloatingPointError`` with this flag) and
        leaves the estimator unfitted.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, data split, shuffling, random pruning and
        dropout. ``fit`` and ``predict`` leave the global torch RNG untouched,
        and the global numpy RNG too unless ``random_state`` is ``None``
        (then, as in scikit-learn, the seeds are drawn from it).
    n_threads : int or None, default=1
        Torch threads (intra-op) while fitting and predicting; the previous
        setting is restored afterwards. ``None`` leaves torch's setting (as
        many threads as cores). The default, 1, is the setting that cannot
        collapse: with other jobs on the machine, OpenMP's threads spin on
        oversubscribed cores, and ``benchmarks/bench_threads.py`` measured a
        digits round 7.2 times slower with torch's 2 threads than with 1 on
        this project's 2-core machine (a 20000 x 784 round 2.7 times), while
        on the idle machine 1 thread costs 1.22 and 1.39 times torch's
        setting. OpenMP's passive wait policy is no way out (3.5 times slower
        when idle). On an idle machine with many cores, large networks train
        faster with ``None`` or more threads. The count is fixed, never taken
        from the load, so results do not depend on what else runs.
        :func:`~sklottery.analysis.ticket_curve` with ``n_jobs`` and
        ``n_threads=None`` sets ``cpu_count // workers`` per fit.
    verbose : int, default=0
        ``1`` prints one line per round (the header before round 0); ``2``
        also one line per epoch inside a round (train and validation loss,
        validation score, seconds).
    warm_start : bool, default=False
        Calling ``fit`` again with a larger ``n_rounds`` (or after an
        interruption or divergence) continues pruning from the stored masks,
        θ0, trained weights and random state: on the same data and device the
        result equals an uninterrupted fit. The skorch net is rebuilt from the
        current training parameters (``learning_rate_init``, ``optimizer``,
        ``momentum``, ``alpha``, ``batch_size``, ``lr_warmup``,
        ``callbacks``: user callbacks are fresh copies); the network
        (``module``, ``hidden_layer_sizes``, ``activation``, ``dropout``,
        ``module_params``, ``input_shape``, ``device``) cannot change."""

#: The numpydoc of the fitted attributes every estimator shares.
SHARED_ATTRIBUTES_DOC = """\
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string feature names.
    net_ : skorch.NeuralNet
        The trained net at the final sparsity.
    device_ : torch.device
        The device the fit trained on: ``device`` resolved once, when the fit
        began. Every request, and every module built from the network
        (inference module, exports), uses it.
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
        weights), ``remaining_by_layer`` (% per layer), ``macs_fraction``
        (multiply-adds per sample relative to the dense network,
        :func:`sklottery.modules.multiply_adds`: the fraction of weights for
        an MLP, more for a conv net), ``train_loss``,
        ``valid_loss``, ``valid_{score}`` (end of training),
        ``best_valid_loss``, ``valid_{score}_at_early_stop``,
        ``early_stop_iteration`` (iteration of minimum validation loss),
        ``epochs``, ``n_iter`` (iterations), ``seconds``, ``reinit``.
    history_ : list of dict
        Only with ``record_history``: per completed round, ``round``,
        ``masks`` and (unless ``record_history='masks'``) the prunable
        weights at the ``start`` (masked) and at the end (``final``) of the
        round, on the CPU.
    sparsity_ : float
        Fraction of prunable weights removed in the final network.
    n_iter_ : int
        Epochs trained in the final round.
    n_rounds_ : int
        Completed pruning rounds (the last record's ``round``).
    data_sha256_ : str or None
        SHA-256 of the training data as ``fit`` validated it
        (:func:`sklottery.tickets.data_sha256` of ``X`` and ``y``): the
        provenance a ticket file records. ``None`` when a warm-start fit
        continued on other data than the fit before it.
    stop_reason_ : str or None
        ``None`` when all rounds ran; ``'interrupted'`` (``KeyboardInterrupt``
        in a pruning round, :class:`PruningInterruptedWarning`) or
        ``'diverged'``. The completed rounds are kept either way."""


class BaseLotteryTicket(BaseEstimator):
    """Base class of the lottery-ticket estimators (the IMP engine).

    Not to be used directly: use :class:`~sklottery.LotteryTicketClassifier`
    or :class:`~sklottery.LotteryTicketRegressor`. A subclass implements the
    task hooks ``_prepare_targets``, ``_n_outputs``, ``_validation_split``
    and sets ``_net_class``, ``_criterion``, ``_score_name`` and
    ``_target_dtype``.
    """

    #: skorch net class of the task (LotteryNet, LotteryRegressorNet).
    _net_class = None
    #: torch loss class of the task (called with ``_criterion_kwargs()``).
    _criterion = None
    #: validation score recorded beside the loss: 'acc' or 'r2'.
    _score_name = None
    #: dtype of the encoded targets.
    _target_dtype = torch.float32
    #: whether ``y`` may be 2-D (several outputs).
    _multi_output = False

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
        "optimizer": [StrOptions(set(OPTIMIZERS))],
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
        "pruning_criterion": [StrOptions(set(PRUNING_CRITERIA) | set(PAI_METHODS))],
        "pruning_granularity": [StrOptions({"weight", "neuron", "filter"})],
        "structured_norm": [StrOptions({"l1", "l2"})],
        "one_shot": ["boolean"],
        "reinit": [StrOptions(set(REINIT_STRATEGIES) | set(DEPRECATED_REINIT),
                              deprecated=set(DEPRECATED_REINIT))],
        "rewind_iteration": [Interval(Integral, 0, None, closed="left")],
        "scratch_b_max_factor": [Interval(Real, 1, None, closed="left")],
        "record_history": ["boolean", StrOptions({"masks"})],
        "error_on_divergence": ["boolean"],
        "random_state": ["random_state"],
        "n_threads": [None, Interval(Integral, 1, None, closed="left")],
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
        self.pruning_granularity = pruning_granularity
        self.structured_norm = structured_norm
        self.one_shot = one_shot
        self.reinit = reinit
        self.rewind_iteration = rewind_iteration
        self.scratch_b_max_factor = scratch_b_max_factor
        self.record_history = record_history
        self.error_on_divergence = error_on_divergence
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------ task hooks
    def _prepare_targets(self, y, resume):
        """Validate ``y`` and return it encoded as a numpy array (sets task attributes)."""
        raise NotImplementedError

    def _n_outputs(self):
        """Width of the module's output layer."""
        raise NotImplementedError

    def _validation_split(self, idx, n_val, y_enc, seed):
        """``(train_idx, valid_idx)``: how the validation set is drawn."""
        return split(idx, test_size=n_val, random_state=seed)

    def _criterion_kwargs(self):
        return {}

    def _constant_output(self, y):
        """Module outputs of a constant prediction for encoded targets ``y`` (a tensor)."""
        raise NotImplementedError

    def _net_kwargs(self):
        """Extra keyword arguments of the skorch net."""
        return {}

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
        multi = {"multi_output": True, "y_numeric": True} if self._multi_output else {}
        try:
            # X's finiteness is checked below, in the same pass as its range
            out = validate_data(self, X, y, reset=reset, dtype=[np.float32, np.float64],
                                ensure_all_finite=False,
                                **(multi if not isinstance(y, str) else {}))
        except ValueError as exc:
            if "could not convert" not in str(exc):
                raise
            raise ValueError(
                f"X must contain only numeric features, got a non-numeric value ({exc}). "
                "Encode string/categorical columns first, e.g. with "
                "sklearn.preprocessing.OneHotEncoder or OrdinalEncoder."
            ) from exc
        X = out[0] if isinstance(out, tuple) else out
        lo = hi = 0.0
        if X.size:
            lo, hi = _min_max(X)
            if not (np.isfinite(lo) and np.isfinite(hi)):  # scikit-learn's own error
                assert_all_finite(X, allow_nan=False, estimator_name=type(self).__name__,
                                  input_name="X")
        if self.input_shape is not None:
            expected = int(np.prod(self.input_shape))
            if X.shape[1] != expected:
                raise ValueError(
                    f"X has {X.shape[1]} features but input_shape={tuple(self.input_shape)} "
                    f"needs {expected} (= C*H*W)."
                )
        if X.size:
            biggest = max(abs(lo), abs(hi))
            if biggest > _MAX_ABS_FEATURE:
                raise ValueError(
                    f"X contains values too large for float32 training (max |x| = "
                    f"{biggest:.3g} > {_MAX_ABS_FEATURE:.3g} = sqrt(float32 max), so squared "
                    "gradients overflow to inf). Scale the features first, e.g. with "
                    "sklearn.preprocessing.StandardScaler."
                )
        return out

    def _hidden_sizes(self):
        """``hidden_layer_sizes`` as a tuple of ints (an int is one layer)."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (Integral, np.integer)):
            return (int(sizes),)
        return tuple(int(h) for h in np.atleast_1d(sizes))

    def _check_params(self):
        sizes = np.atleast_1d(self.hidden_layer_sizes)
        if np.any(sizes <= 0):
            raise ValueError(
                f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes}."
            )
        cls = get_module_class(self.module)  # raises on unknown names
        if (isinstance(cls, type) and issubclass(cls, ImageClassifierModule)
                and self.input_shape is None
                and "input_shape" not in (self.module_params or {})):
            raise ValueError(
                f"module={self.module!r} is a convolutional network and needs input_shape="
                "(C, H, W), the shape of one image (e.g. (1, 28, 28) for MNIST, (3, 32, 32) "
                "for CIFAR-10); X may then be flat (n, C*H*W) or (n, C, H, W). It is not "
                "guessed from the number of features: 4 features would silently become a "
                "2 x 2 image.")
        if self.input_shape is not None and (
            len(self.input_shape) != 3 or any(int(s) <= 0 for s in self.input_shape)
        ):
            raise ValueError(
                f"input_shape must be (C, H, W) with positive ints, got {self.input_shape!r}."
            )
        resolve_device(self.device)  # a clear error before anything is trained
        if self.reinit in DEPRECATED_REINIT:
            new = canonical_reinit(self.reinit)
            warnings.warn(
                f"reinit={self.reinit!r} is deprecated and will be removed in sklottery 0.4; "
                f"use reinit={new!r} (the same chain: a fresh random initialisation every "
                "round). In ticket_curve, 'random', 'scratch_e' and 'scratch_b' name mask "
                "controls (the ticket's mask trained once from a new initialisation), a "
                "different experiment.",
                FutureWarning,
                stacklevel=user_stacklevel(),
            )

    def _check_scope(self, kinds):
        """Global scope pools one rate: reject mixed rates before any training."""
        if self.pruning_scope != "global" or self.conv_pruning_rate is None:
            return
        if "conv" in kinds.values() and float(self.conv_pruning_rate) != float(self.pruning_rate):
            raise ValueError(
                f"pruning_scope='global' ranks all non-output layers under one threshold, so "
                f"it takes one rate, but conv_pruning_rate={self.conv_pruning_rate} differs "
                f"from pruning_rate={self.pruning_rate}. Use pruning_scope='layer' for "
                "per-kind rates, or set conv_pruning_rate=None."
            )

    def _prunes_at_init(self):
        """Whether ``pruning_criterion`` is a pruning-at-initialization method."""
        return self.pruning_criterion in PAI_METHODS

    def _check_pruning_at_init(self, total, initial_masks=None):
        """A PaI criterion's requirements, checked before any training.

        Nothing is pruned without rounds (``total`` rounds of the schedule is
        0, ``n_rounds=0``: e.g. the copies :mod:`sklottery.stability`
        trains), so nothing is required then.
        """
        if not self._prunes_at_init() or total == 0:
            return
        problems = []
        if initial_masks is not None:
            problems.append("no initial_masks (it prunes θ0 itself, from the dense network)")
        if not self.one_shot:
            problems.append("one_shot=True (it prunes once, before any training; SynFlow's "
                            "100 scoring rounds happen within that step)")
        if int(self.rewind_iteration) > 0:
            problems.append("rewind_iteration=0 (there is no dense training to rewind into)")
        if self.reinit != "rewind":
            problems.append("reinit='rewind' (round 0 trains θ0 under the method's masks)")
        if problems:
            raise ValueError(f"pruning_criterion={self.pruning_criterion!r} prunes at "
                             "initialization and needs " + "; ".join(problems) + ".")

    def _check_same_pruning_at_init(self):
        """A warm start cannot switch between pruning at init and pruning after training."""
        fitted = getattr(self, "_pai_fit", None)
        now = self.pruning_criterion if self._prunes_at_init() else None
        if fitted != now:
            raise ValueError(
                f"warm_start=True cannot change pruning_criterion from "
                f"{fitted or 'pruning after training'!r} to {now or self.pruning_criterion!r}: "
                "the fitted network was " + ("pruned at initialization" if fitted else
                                             "not pruned at initialization")
                + ". Set warm_start=False to fit a new one.")

    def _prune_at_init(self, rates, pooled, total):
        """Masks of the PaI criterion on θ0, at the sparsity ``total`` one-shot rounds reach."""
        sizes = {n: m.numel() for n, m in self.masks_.items()}
        n_all = sum(sizes.values())
        # the weights the one-shot schedule keeps in all (magnitude one_shot's level)
        kept = round(n_all * remaining_schedule(
            sizes, rates, total, pooled if self.pruning_scope == "global" else None)[-1])
        generator = torch.Generator().manual_seed(self._seeds["generator"] + 1)
        masks = pai_module_masks(
            self.net_.module_, self.pruning_criterion, 1.0 - kept / n_all,
            X=self._data.X, y=self._data.y, criterion=self.net_.criterion_,
            masks=self.masks_, batch_size=self.batch_size, generator=generator)
        return {n: m.to(self.masks_[n].device) for n, m in masks.items()}

    def _check_granularity(self):
        """Structured pruning's requirements, checked before any training."""
        if self.pruning_granularity == "weight":
            return
        problems = []
        if self.pruning_scope != "layer":
            problems.append("pruning_scope='layer' (unit norms of different layers are not "
                            "comparable)")
        if self.target_sparsity is not None:
            problems.append("n_rounds instead of target_sparsity")
        if self.one_shot:
            problems.append("one_shot=False")
        if self.pruning_criterion not in ("magnitude", "large_final", "random"):
            problems.append("pruning_criterion 'magnitude', 'large_final' or 'random'")
        if problems:
            raise ValueError(
                f"pruning_granularity={self.pruning_granularity!r} needs "
                + "; ".join(problems) + ".")
        unit_chain(self.net_.module_)  # raises for modules that are not a chain

    def get_compact_module(self):
        """The fitted network without its dead units: a smaller module, same predictions.

        Units (and filters) whose outgoing weights are all pruned are removed
        with their incoming weights and bias (:func:`sklottery.pruning.
        compact_module`); with ``pruning_granularity='neuron'`` or
        ``'filter'`` this is the smaller dense architecture the ticket defines
        (Liu et al.'s "pruned architecture").

        Returns
        -------
        module : torch.nn.Module
            A deep copy, on the device of the fitted network; the estimator is
            unchanged.

        Raises
        ------
        ValueError
            For a network that is not a chain of layers (:func:`sklottery.
            pruning.unit_chain`: residual connections, batch norm, e.g.
            ``'resnet20'``, ``'vgg16'``); its masked network is the pruned
            one (:meth:`export`).
        """
        check_is_fitted(self, "net_")
        return compact_module(self.net_.module_, self.masks_)

    def export(self, format="masked"):
        """The fitted network as a plain torch module (a copy; the estimator is unchanged).

        Parameters
        ----------
        format : {'masked', 'prune', 'compact'}, default='masked'
            ``'masked'``: the network with its pruned weights at exactly zero
            (the masks made permanent). ``'prune'``: the same module
            reparametrised by :mod:`torch.nn.utils.prune` (each pruned layer
            has ``weight_orig`` and a ``weight_mask`` buffer), so further
            training in plain torch keeps the mask. ``'compact'``: units and
            filters nothing reads removed (:meth:`get_compact_module`; a
            ValueError for networks that are not a chain of layers).
            All three give the same outputs as the estimator's network.

        Returns
        -------
        module : torch.nn.Module
            In eval mode, on the device of the fitted network (of its
            parameters), masks included.
        """
        check_is_fitted(self, "net_")
        if format not in ("masked", "prune", "compact"):
            raise ValueError(
                f"format must be 'masked', 'prune' or 'compact', got {format!r}.")
        if format == "compact":
            return self.get_compact_module().eval()
        module = copy.deepcopy(self.net_.module_)
        params = dict(module.named_parameters())
        with torch.no_grad():
            for name, mask in self.masks_.items():
                params[name].mul_(mask.to(params[name].device, params[name].dtype))
        if format == "prune":
            import torch.nn.utils.prune as torch_prune

            layers = dict(module.named_modules())
            for name, mask in self.masks_.items():
                owner, _, attr = name.rpartition(".")
                torch_prune.custom_from_mask(layers[owner], attr,
                                             mask.to(params[name].device, copy=True))
        return module.eval()

    def size_report(self):
        """Weights, bytes and multiply-adds of the pruned network against the dense one.

        Returns
        -------
        report : pandas.DataFrame
            One row per prunable layer and a ``'total'`` row: ``n_weights``,
            ``n_nonzero`` (kept), ``fraction``, ``dense_bytes`` (float32),
            ``sparse_bytes`` (CSR: float32 values, int64 column indices and
            row pointers), ``macs_dense`` and ``macs_pruned`` (multiply-adds
            per sample: a weight of a convolution counts once per output
            position; :func:`sklottery.modules.multiply_adds`, the count that
            sets ``reinit='fresh_budget'``'s epochs) and ``compact_weights``
            (weights of the :meth:`get_compact_module`; every weight of the
            layer when the network cannot be compacted, e.g. residual or
            batch-normalised networks). Weights a module excludes from
            pruning have no mask and no row.
        """
        import pandas as pd

        check_is_fitted(self, "net_")
        macs = self._multiply_adds()
        try:
            compact = {n: p for n, p in self.get_compact_module().named_parameters()}
        except ValueError:  # not a chain of layers (unit_chain): nothing is removed
            compact = dict(self.net_.module_.named_parameters())
        rows = []
        for name, mask in self.masks_.items():
            n, k = mask.numel(), int(mask.sum())
            n_rows = mask.shape[0]
            rows.append({"layer": name, "n_weights": n, "n_nonzero": k,
                         "dense_bytes": 4 * n, "sparse_bytes": 12 * k + 8 * (n_rows + 1),
                         "macs_dense": macs[name][0], "macs_pruned": macs[name][1],
                         "compact_weights": int(compact[name].numel())})
        out = pd.DataFrame(rows)
        total = out.drop(columns="layer").sum()
        out = pd.concat([out, pd.DataFrame([{"layer": "total", **total.to_dict()}])],
                        ignore_index=True)
        out.insert(3, "fraction", out["n_nonzero"] / out["n_weights"])
        return out.set_index("layer")

    def save_ticket(self, path, include_trained=True):
        """Write the ticket this fit found to a file (never pickle).

        :func:`sklottery.tickets.save_ticket`: masks, θ0, θk, optionally the
        trained weights, schedule, settings, module and data hash, with a
        SHA-256 checksum of every entry; read it with
        :func:`sklottery.tickets.load_ticket` (or plain numpy).

        Parameters
        ----------
        path : str or path-like
            The file to write (``.ticket`` by convention).
        include_trained : bool, default=True
            Store the trained weights of the final round too.

        Returns
        -------
        path : str
            The file written.
        """
        return save_ticket(self, path, include_trained=include_trained)

    def _multiply_adds(self):
        """Per prunable weight, ``(dense, kept)`` multiply-adds per sample under ``masks_``.

        :func:`sklottery.modules.multiply_adds` on a zero input of one sample.
        """
        return multiply_adds(self.net_.module_, self.masks_,
                             torch.zeros(1, self.n_features_in_, device=self.net_.device))

    def _macs_fraction(self):
        """Multiply-adds per sample under ``masks_``, as a fraction of the dense network's."""
        macs = self._multiply_adds().values()
        dense = sum(d for d, _ in macs)
        return sum(k for _, k in macs) / dense if dense else 1.0

    @staticmethod
    def _check_not_torch_pruned(module):
        pruned = sorted({n.rsplit("_orig", 1)[0] for n, _ in module.named_parameters()
                         if n.endswith("_orig")})
        if pruned:
            raise ValueError(
                f"The module is already pruned with torch.nn.utils.prune ({pruned} have "
                "'_orig' parameters and a mask buffer). sklottery applies its own masks: "
                "build the module unpruned and pass the existing masks as "
                "fit(..., initial_masks={name: mask}) to start from them."
            )

    # ------------------------------------------------------------- building
    def _module_kwargs(self, n_features, n_outputs):
        cls = get_module_class(self.module)
        kwargs = {"n_features": n_features, "n_classes": n_outputs}
        if cls in MODULES.values():
            kwargs.update(activation=self.activation, dropout=self.dropout)
            if cls is MODULES["mlp"]:
                kwargs["hidden_layer_sizes"] = self._hidden_sizes()
            else:
                kwargs["input_shape"] = (
                    None if self.input_shape is None else tuple(self.input_shape)
                )
        kwargs.update(self.module_params or {})
        return cls, kwargs

    def _train_settings(self, iters_per_epoch):
        """How every round of this fit trains (:class:`~sklottery.training.TrainSettings`)."""
        return TrainSettings(
            optimizer=self.optimizer,
            learning_rate=float(self.learning_rate_init),
            alpha=float(self.alpha),
            momentum=float(self.momentum) if self.optimizer == "sgd" else None,
            batch_size=int(self.batch_size),
            warmup=int(self.lr_warmup),
            eval_every=resolve_eval_every(self.eval_every, iters_per_epoch),
            score=self._score_name,
            n_threads=None if self.n_threads is None else int(self.n_threads),
            verbose=int(self.verbose or 0),
        )

    def _build_net(self, n_features, generator, device):
        """The skorch net (``net_``): module, loss, callbacks, on ``device``."""
        cls, kwargs = self._module_kwargs(n_features, self._n_outputs())
        user = [cb if isinstance(cb, tuple) else (f"user_{i}", copy.deepcopy(cb))
                for i, cb in enumerate(self.callbacks or [])]
        return build_net(
            self._net_class, cls, kwargs, self._criterion, self._criterion_kwargs(),
            self._train_settings(1), generator, device, user_callbacks=user,
            net_kwargs=self._net_kwargs())

    def _fresh_state(self):
        """A new random initialisation of the module (seeded from the generator)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self._generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.net_.module(**self.net_.get_params_for("module"))
        return {k: v.to(self.device_) for k, v in module.state_dict().items()}

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

    def _total_rounds(self, rates, pooled):
        sizes = {n: m.numel() for n, m in self.masks_.items()}
        if self.target_sparsity is not None:
            return rounds_for_sparsity(
                sizes, rates, float(self.target_sparsity),
                pooled=pooled if self.pruning_scope == "global" else None)
        return int(self.n_rounds)

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, initial_masks=None, initial_params=None):
        """Run iterative magnitude pruning on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training data (n-d arrays need ``input_shape``).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels for the classifier (any type scikit-learn accepts,
            strings included); target values, one or several columns, for the
            regressor.
        initial_masks : dict of str -> bool array, default=None
            Masks (``True`` = kept) applied from the very first round, e.g. a
            ticket's masks found by another fit (``other.masks_``). Round 0 then
            trains this sparse network from this estimator's own
            initialisation: with ``n_rounds=0`` this is the random-reinit
            control of Frankle & Carbin and Liu et al.'s scratch training.
            Ignored when a warm-started fit continues.
        initial_params : dict of str -> Tensor, default=None
            Weights to start from instead of this estimator's own random
            initialisation (a module state dict, e.g. another fit's
            ``rewind_params_``: θk); they become ``init_params_`` (θ0 of this
            fit). Used by :mod:`sklottery.stability` to train copies of one
            network with different SGD noise. Ignored when a warm-started fit
            continues.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with torch_threads(self.n_threads):
            drive(self.fit_steps(X, y, initial_masks, initial_params), TRAINERS["skorch"]())
        return self

    def _threads(self):
        """``n_threads`` torch threads inside the block; the old setting after it."""
        return torch_threads(self.n_threads)

    def fit_steps(self, X, y, initial_masks=None, initial_params=None):
        """``fit`` as a generator of training requests, for drivers that train many fits.

        Everything but the training itself happens here: validation,
        initialisation, pruning, resetting, records, checkpoints and the
        failure policy. Every round it yields a
        :class:`~sklottery.training.TrainRequest` and expects the
        :class:`~sklottery.training.RoundResult` of training it sent back
        (or an exception thrown in, which the failure policy handles as if
        the round had raised it). ``fit`` is
        ``sklottery.training.drive(est.fit_steps(X, y), SkorchTrainer())``;
        :func:`sklottery.training.fit_many` drives many at once.

        Parameters
        ----------
        X, y, initial_masks, initial_params
            As in :meth:`fit`.

        Yields
        ------
        request : TrainRequest
        """
        self._validate_params()
        self._check_params()
        resume = self.warm_start and getattr(self, "_checkpoint", None) is not None
        if resume:
            # Failures leave the estimator as it was: validation happens before
            # any change, and a failing round restores the last checkpoint.
            yield from self._fit(X, y, initial_masks, initial_params, resume=True)
            return
        # A fresh fit replaces the previous model. If it fails before a round
        # completes, the estimator is left unfitted (never half-initialised).
        self._clear_fitted()
        try:
            yield from self._fit(X, y, initial_masks, initial_params, resume=False)
        except BaseException:
            if getattr(self, "_checkpoint", None) is None:
                self._clear_fitted()
            raise

    _PRIVATE_FIT_ATTRS = ("_checkpoint", "_data", "_settings", "_generator", "_seeds",
                          "_pai_fit")

    def _clear_fitted(self):
        for key in list(vars(self)):
            if (key.endswith("_") and not key.startswith("_")) or key in self._PRIVATE_FIT_ATTRS:
                delattr(self, key)

    def _fit(self, X, y, initial_masks, initial_params, resume):
        X, y = self._validate_X(X, y, reset=not resume)
        if X.shape[0] < 2:
            raise ValueError(f"Need at least 2 samples to train, got n_samples={X.shape[0]}.")
        self._n_validation(X.shape[0])  # an empty split is an error before anything else
        digest = data_sha256(X, y)  # the provenance of a ticket file
        if not resume:
            self.data_sha256_ = digest
        elif digest != getattr(self, "data_sha256_", digest):
            self.data_sha256_ = None  # trained on more than one data set
        y_enc = self._prepare_targets(y, resume)
        device = resolve_device(self.device)  # the one resolution of the device of a fit
        fork_devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            try:
                if resume:
                    self._check_same_pruning_at_init()
                    self._rebuild_net(device)
                    self._restore_checkpoint()  # weights, masks and RNG of the last round
                    self._set_data(X, y_enc, self._seeds["split"])
                else:
                    yield from self._initialize(X, y_enc, device, initial_masks,
                                                initial_params)
                yield from self._imp_loop(resume)
            finally:
                # a fitted estimator keeps no data
                for name in ("_data", "_settings"):
                    self.__dict__.pop(name, None)

    def _rebuild_net(self, device):
        """Fresh skorch net from the current parameters (warm-start resume).

        Training settings and user callbacks may change between fits; the
        network itself may not (the stored weights, masks and θ0 belong to it).
        """
        old = self.net_
        cls, kwargs = self._module_kwargs(self.n_features_in_, self._n_outputs())
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
        if device != self.device_:
            changed.append(f"device: {str(self.device_)!r} -> {self.device!r}")
        if changed:
            raise ValueError(
                "warm_start=True cannot change the network of a fitted estimator ("
                + "; ".join(changed) + "). Set warm_start=False to fit a new one."
            )
        self.net_ = self._build_net(self.n_features_in_, self._generator, device)
        self.net_.initialize()  # throwaway init: the caller restores RNG and weights

    def _n_validation(self, n):
        """Samples held out for validation out of ``n``: ``round(validation_fraction * n)``.

        0 when ``validation_fraction`` is 0 (or None). Raises ValueError when
        a positive fraction leaves no validation sample or no training sample,
        instead of silently training without validation.
        """
        vf = float(self.validation_fraction or 0.0)
        if vf <= 0:
            return 0
        n_val = int(round(vf * n))
        if 1 <= n_val < n:
            return n_val
        empty = "validation" if n_val < 1 else "training"
        raise ValueError(
            f"validation_fraction={self.validation_fraction} with n_samples={n} leaves "
            f"{n_val} validation and {n - n_val} training samples (round({vf} * {n}) = "
            f"{n_val} held out): the {empty} set would be empty. Set "
            f"validation_fraction=0 to train without validation, or pass at least "
            f"{_min_samples_for_split(vf)} samples."
        )

    def _set_data(self, X, y_enc, split_seed):
        """Split off the validation set: the :class:`~sklottery.training.TrainData` of the fit.

        Also fixes the fit's :class:`~sklottery.training.TrainSettings`
        (the evaluation grid depends on the iterations per epoch).
        """
        n = X.shape[0]
        n_val = self._n_validation(n)
        idx = np.arange(n)
        valid_idx = None
        if n_val:
            train_idx, valid_idx = self._validation_split(idx, n_val, y_enc, split_seed)
        else:
            train_idx = idx
        dev = self.device_

        def rows(idx):  # float32 rows of X: together one copy of X at most
            return torch.from_numpy(_take_rows(X, idx, np.float32)).to(dev)

        def targets(idx):
            return torch.as_tensor(np.ascontiguousarray(y_enc[idx]),
                                   dtype=self._target_dtype, device=dev)

        valid = None
        if valid_idx is not None:
            valid = (rows(valid_idx), targets(valid_idx))
        y_train = targets(train_idx)
        self._data = TrainData(
            rows(train_idx), y_train, valid,
            reference_losses=(self._constant_loss(y_train),
                              None if valid is None else self._constant_loss(valid[1])))
        self._settings = self._train_settings(self._data.iters_per_epoch(self.batch_size))

    def _constant_loss(self, y):
        """The loss of a constant prediction on encoded targets ``y`` (a tensor).

        What a network that learned nothing scores: the reference of the
        divergence rule (:func:`sklottery.training.divergence_detail`).
        """
        criterion = self._criterion(**self._criterion_kwargs())
        with torch.no_grad():
            return float(criterion(self._constant_output(y), y))

    def _initialize(self, X, y_enc, device, initial_masks=None, initial_params=None):
        rs = check_random_state(self.random_state)
        seeds = rs.randint(0, 2**31 - 1, size=4)
        self._seeds = {"init": int(seeds[0]), "split": int(seeds[1]),
                       "generator": int(seeds[2]), "torch": int(seeds[3])}
        torch.manual_seed(self._seeds["torch"])
        self._generator = torch.Generator().manual_seed(self._seeds["generator"])
        self.device_ = device
        self.net_ = self._build_net(X.shape[1], self._generator, device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seeds["init"])
            self.net_.initialize()
        self._check_not_torch_pruned(self.net_.module_)
        kinds = layer_kinds(self.net_.module_)
        if not kinds:
            raise ValueError("The module has no prunable (Linear/Conv2d) weights.")
        self._check_scope(kinds)
        self._check_granularity()
        self._set_data(X, y_enc, self._seeds["split"])
        if initial_params is not None:
            self._load_initial_params(initial_params)
        self.init_params_ = _clone_state(self.net_.module_.state_dict())
        self.masks_ = {
            n: torch.ones_like(self.init_params_[n], dtype=torch.bool) for n in kinds
        }
        if initial_masks is not None:
            self.masks_ = self._check_initial_masks(initial_masks)
        rates, pooled = self._layer_rates()
        total = self._total_rounds(rates, pooled)  # validates target_sparsity vs the rates
        self._check_pruning_at_init(total, initial_masks)
        self._pai_fit = self.pruning_criterion if self._prunes_at_init() else None
        if self._pai_fit and total:  # round 0 trains θ0 under the method's masks
            self.masks_ = self._prune_at_init(rates, pooled, total)
        k = int(self.rewind_iteration)
        iters_per_epoch = self._data.iters_per_epoch(self.batch_size)
        round0_iters = iters_per_epoch * int(self.max_epochs)
        if k > round0_iters:
            raise ValueError(
                f"rewind_iteration={k} is beyond the dense round's training length "
                f"({round0_iters} iterations = {self.max_epochs} epochs x "
                f"{iters_per_epoch} batches)."
            )
        self.rounds_ = []
        if self.record_history:
            self.history_ = []
        self.stop_reason_ = None
        self._checkpoint = None
        # dense round
        self.rewind_params_ = self.init_params_
        result = yield from self._train_round(0, int(self.max_epochs), start=self.init_params_,
                                              capture_at=k if k > 0 else None)
        if result.outcome == "interrupted":
            raise KeyboardInterrupt("Interrupted in the dense round 0; no round completed.")
        if result.outcome == "diverged":
            error = FloatingPointError if self.error_on_divergence else TrainingDivergedError
            raise error(self._stop_message(0, result.outcome, result.detail))
        if k > 0:
            self.rewind_params_ = self._checkpoint.rewind = result.captured

    def _load_initial_params(self, initial_params):
        """Start from given weights (e.g. another fit's ``rewind_params_``, θk)."""
        if not isinstance(initial_params, dict):
            raise TypeError(
                f"initial_params must be a dict name -> tensor (a module state dict), got "
                f"{type(initial_params).__name__}."
            )
        module = self.net_.module_
        own = module.state_dict()
        missing, extra = set(own) - set(initial_params), set(initial_params) - set(own)
        if missing or extra:
            raise ValueError(
                f"initial_params must have exactly the module's entries {list(own)}; "
                f"missing {sorted(missing)}, unknown {sorted(extra)}."
            )
        state = {}
        for name, ref in own.items():
            v = initial_params[name]
            v = v.detach() if torch.is_tensor(v) else torch.as_tensor(np.asarray(v))
            if tuple(v.shape) != tuple(ref.shape):
                raise ValueError(f"initial_params[{name!r}] has shape {tuple(v.shape)}, "
                                 f"expected {tuple(ref.shape)}.")
            state[name] = v.to(device=ref.device, dtype=ref.dtype)
        module.load_state_dict(state)

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
    def _imp_loop(self, resume=False):
        rates, pooled = self._layer_rates()
        total = self._total_rounds(rates, pooled)
        self.stop_reason_ = None
        start = self._checkpoint.round + 1
        if self._prunes_at_init():  # pruned before round 0: no round after it
            if resume:
                warnings.warn(f"pruning_criterion={self.pruning_criterion!r}: the network "
                              "was pruned at initialization; nothing to do.")
            return
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
            if not (yield from self._run_round(r, rates, pooled)):
                break

    def _run_round(self, r, rates, pooled):
        """Prune, reset and train round ``r``; on failure restore the last round.

        Returns True when the round completed. A ``KeyboardInterrupt`` (other
        than skorch's ``EarlyStopping``) or a divergence stops pruning with a
        warning (or ``FloatingPointError``); any other exception restores the
        last completed round and propagates.
        """
        try:
            result = yield from self._prune_and_train(r, rates, pooled)
            outcome, detail = result.outcome, result.detail
        except KeyboardInterrupt:
            if aborting():  # a second Ctrl-C in an experiment: abort at once
                self._restore_checkpoint()
                raise
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
            stacklevel=user_stacklevel(),
        )
        return False

    def _prune_and_train(self, r, rates, pooled):
        ckpt = self._checkpoint
        trained = ckpt.trained
        prunable = list(self.masks_)
        cpu_masks = {n: m.cpu() for n, m in ckpt.masks.items()}
        if self.pruning_granularity == "weight":
            scores = compute_scores(
                self.pruning_criterion,
                {n: trained[n] for n in prunable},
                init={n: ckpt.start[n] for n in prunable},
                generator=self._generator,
            )
            new_masks = prune_masks(scores, cpu_masks, rates, scope=self.pruning_scope,
                                    global_layers=pooled)
        else:
            norm = "random" if self.pruning_criterion == "random" else self.structured_norm
            new_masks = prune_units({n: trained[n] for n in prunable}, cpu_masks,
                                    unit_chain(self.net_.module_), rates, norm=norm,
                                    generator=self._generator)
        self.masks_ = {n: m.to(self.device_) for n, m in new_masks.items()}
        strategy = canonical_reinit(self.reinit)
        fresh = self._fresh_state() if strategy not in ("rewind", "continue") else None
        state = next_round_state(strategy, trained, ckpt.rewind, fresh, prunable)
        if self.pruning_granularity != "weight":
            # a removed unit's bias goes with it; no gradient reaches it afterwards
            # (its outgoing weights are pruned), so it stays zero
            zero_dead_biases_(state, self.masks_, unit_chain(self.net_.module_))
        start = (ckpt.rewind if strategy == "rewind" else
                 {n: state[n].clone() for n in prunable})
        self.net_.module_.load_state_dict(state)
        epochs = int(self.max_epochs)
        if strategy == "fresh_budget":
            # the dense round's compute: multiply-adds, not weights (a conv weight
            # is used at every output position)
            epochs = scratch_b_epochs(epochs, self._macs_fraction(), self.scratch_b_max_factor)
        return (yield from self._train_round(r, epochs, start=start))

    def _stop_message(self, r, outcome, detail=None):
        n = len(self.rounds_)
        if n:
            last = self.rounds_[-1]["round"]
            pruned = sum(1 for rec in self.rounds_ if rec["round"] > 0)
            if pruned:
                kept = (f"kept rounds {self.rounds_[0]['round']} to {last} (the dense round "
                        f"and {pruned} pruning round{'s' if pruned != 1 else ''}; n_rounds_ = "
                        f"{last}) and restored the network of round {last}")
            else:
                kept = ("kept the dense round 0 (n_rounds_ = 0) and restored its network")
        if outcome == "diverged":
            what = f"Training diverged in round {r} with learning_rate_init=" \
                   f"{self.learning_rate_init}" + (f" ({detail})" if detail else "")
            advice = "Lower learning_rate_init, add lr_warmup or scale the features"
            if r == 0 or n == 0:
                return (f"{what}; no round completed, so there is no network to keep. "
                        f"{advice} (e.g. with sklearn.preprocessing.StandardScaler).")
            return (f"{what}; {kept}. {advice}, then fit again with warm_start=True to "
                    "continue.")
        return (f"Pruning interrupted in round {r}; {kept}. Fit again with warm_start=True "
                "to continue.")

    def _train_round(self, r, epochs, start, capture_at=None):
        """Train the current module with the current masks; record and checkpoint.

        ``start`` is the state the round starts from (for the next prune's
        ``magnitude_increase`` scores). Returns the trainer's
        :class:`~sklottery.training.RoundResult`.
        """
        if r == 0 and self.verbose:
            self._print_header()
        keep_weights = self.record_history is True
        masked_start = None
        if keep_weights:
            module_state = self.net_.module_.state_dict()
            masked_start = {n: (module_state[n] * m).detach().cpu()
                            for n, m in self.masks_.items()}
        result = yield self._request(epochs, capture_at)
        if result.rng_state is not None:  # the module's draws came from a copy of the stream
            torch.set_rng_state(result.rng_state)
        if result.outcome != "ok":
            return result
        state = RoundState(round=r, masks=self.masks_,
                           trained=_clone_state(self.net_.module_.state_dict()),
                           start=start, rewind=self.rewind_params_, rng=self._rng_state())
        rec = self._make_record(r, result)
        self._checkpoint = state
        self._commit_record(rec)
        if self.record_history:
            entry = {"round": r,
                     "masks": {n: m.detach().cpu().clone() for n, m in state.masks.items()}}
            if keep_weights:
                entry["start"] = masked_start
                entry["final"] = {n: state.trained[n].detach().cpu().clone()
                                  for n in state.masks}
            self.history_.append(entry)
        return result

    def _request(self, epochs, capture_at=None):
        """The :class:`~sklottery.training.TrainRequest` of the round about to train.

        The module's pruned start weights are set to exactly zero first
        (exact zeros even over NaN/inf), so every trainer starts from the
        masked network.
        """
        module = self.net_.module_
        params = dict(module.named_parameters())
        with torch.no_grad():
            for name, keep in self.masks_.items():
                if not bool(keep.all()):
                    params[name].masked_fill_(~keep, 0.0)
        return TrainRequest(
            module=module, masks=self.masks_, epochs=int(epochs), data=self._data,
            settings=self._settings, criterion=self.net_.criterion_,
            generator=self._generator, grid=EvalRecord(self._settings.eval_every,
                                                       self._settings.score),
            device=self.device_, capture_at=capture_at, net=self.net_,
            rng_state=torch.get_rng_state())

    def _make_record(self, r, result):
        frac = fraction_remaining(self.masks_)
        total = frac.pop("total")
        score = f"valid_{self._score_name}"
        rec = {
            "round": r,
            "weights_remaining": 100.0 * total,
            "remaining_by_layer": {n: 100.0 * v for n, v in frac.items()},
            "macs_fraction": self._macs_fraction(),
            "train_loss": result.train_loss,
            "valid_loss": result.valid_loss,
            score: result.valid_score,
            "best_valid_loss": np.nan,
            f"{score}_at_early_stop": np.nan,
            "early_stop_iteration": None,
            "epochs": result.epochs,
            "n_iter": result.n_iter,
            "seconds": result.seconds,
            "reinit": canonical_reinit(self.reinit) if r else (
                "dense" if total == 1 else "masked"),
        }
        if result.early_stop is not None:
            it, loss, value = result.early_stop
            rec.update(early_stop_iteration=int(it), best_valid_loss=loss,
                       **{f"{score}_at_early_stop": value})
        return rec

    def _print_header(self):
        print(f"{'round':>5} {'% left':>8} {'val loss':>9} {'val ' + self._score_name:>8} "
              f"{'early-stop it':>13} {'seconds':>8}", flush=True)

    def _commit_record(self, rec):
        r, seconds, epochs = rec["round"], rec["seconds"], rec["epochs"]
        self.rounds_.append(rec)
        self.sparsity_ = 1.0 - rec["weights_remaining"] / 100.0
        self.n_iter_ = epochs
        self.n_rounds_ = r
        if self.verbose:
            es = rec["early_stop_iteration"]
            print(f"{r:>5d} {rec['weights_remaining']:>8.2f} {rec['valid_loss']:>9.4f} "
                  f"{rec['valid_' + self._score_name]:>8.4f} {'-' if es is None else es:>13} "
                  f"{seconds:>8.2f}", flush=True)

    # --------------------------------------------------------- checkpoints
    def _rng_state(self):
        state = {"torch": torch.get_rng_state(), "generator": self._generator.get_state()}
        if self.device_.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device_)
        return state

    def _restore_rng(self, state):
        torch.set_rng_state(state["torch"])
        self._generator.set_state(state["generator"])
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], self.device_)

    def _restore_checkpoint(self):
        ckpt = self._checkpoint
        self.net_.module_.load_state_dict(ckpt.trained)
        self.masks_ = ckpt.masks
        self._restore_rng(ckpt.rng)

    # ------------------------------------------------------------- predict
    def _forward(self, X):
        """Raw module outputs (logits, or standardised regression outputs) for ``X``."""
        check_is_fitted(self, "net_")
        with self._threads():
            return self._forward_checked(X)

    def _forward_checked(self, X):
        X = self._validate_X(X, reset=False)
        # read-only inputs (e.g. pandas 3 arrays) cannot back a tensor: copy those
        X = np.ascontiguousarray(X, dtype=np.float32)
        if not X.flags.writeable:
            X = X.copy()
        # the cached inference module: the network itself when dense, its compact
        # (and sparse) form when pruned; the outputs of net_.predict_proba. It moves
        # the rows to the network's device a chunk at a time.
        return predict_outputs(self, torch.from_numpy(X))

    # ------------------------------------------------------------ pickling
    def __getstate__(self):
        """State for pickle / joblib / deepcopy: the weights once, as survivors.

        A fitted estimator's prunable weights are stored as their surviving
        values and bit-packed masks, θ0 as its seed and checksum, and the
        checkpoint and rewind point without copies of the network; the
        optimizer state and the predict cache are not stored. A SHA-256
        checksum of every stored entry is checked on load. See
        :mod:`sklottery.persistence` for the details. Unfitted estimators pickle as
        usual.
        """
        return pack_estimator_state(self, super().__getstate__())

    def __setstate__(self, state):
        """Restore a pickled estimator, after checking the checksums stored with it.

        Raises :class:`~sklottery.exceptions.PickleIntegrityError` (before
        anything is set) when a stored entry does not match its checksum.
        """
        state, packed = open_packed_state(self, state)
        super().__setstate__(state)
        if packed is not None:
            unpack_estimator_state(self, packed)
