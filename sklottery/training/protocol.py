"""The seam between the IMP engine and its trainers: requests, results, the driver.

The engine (:class:`~sklottery.base.BaseLotteryTicket`) runs a fit as a
generator, :meth:`~sklottery.base.BaseLotteryTicket.fit_steps`: everything
but training happens there (validation, initialisation, pruning, resetting,
records, checkpoints, the failure policy) and every round it yields a
:class:`TrainRequest` and receives a :class:`RoundResult`. A trainer is
anything with the :class:`Trainer` methods; the registry
:data:`sklottery.training.TRAINERS` names them. :class:`FitDriver` is the
one driver of that generator, used by a plain ``fit`` and by
:func:`~sklottery.training.fit_many` alike.

The engine never imports a trainer's module and no trainer imports the
engine: they share only this module's types.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

__all__ = ["TrainSettings", "TrainData", "TrainRequest", "RoundResult", "Trainer",
           "TrainerDeclined", "FitDriver", "drive", "resolve_device", "torch_threads"]


def resolve_device(device):
    """``device`` (a string or :class:`torch.device`) as a validated :class:`torch.device`.

    ``'auto'`` is ``'cuda'`` (the current CUDA device) when this torch build
    and machine have one, else the CPU. Raises ValueError for a string torch cannot parse, and
    for a CUDA device when this torch build or machine has no CUDA, before
    anything is trained.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device: {exc}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} but CUDA is not available in this torch build or on this "
                "machine; use device='cpu'.")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA "
                f"device(s) (0 to {torch.cuda.device_count() - 1}).")
    return resolved


@contextlib.contextmanager
def torch_threads(n_threads):
    """``n_threads`` torch threads inside the block (None: unchanged), then the old count."""
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class TrainSettings:
    """How to train: the same for every round of a fit (hashable, comparable).

    Attributes
    ----------
    optimizer : {'adam', 'sgd'}
    learning_rate : float
    alpha : float
        L2 penalty (the optimizer's ``weight_decay``).
    momentum : float or None
        SGD's momentum; None for Adam.
    batch_size : int
    warmup : int
        Linear learning-rate warmup over the first ``warmup`` iterations of
        every round: iteration ``i`` (from 0) runs at
        ``learning_rate * min(1, (i + 1) / warmup)``.
    eval_every : int
        Iterations between two evaluations on the validation set (resolved
        from ``'auto'`` by the engine).
    score : {'acc', 'r2'}
        The validation score recorded beside the loss.
    n_threads : int or None
        Torch threads while training (None: torch's setting).
    verbose : int
        The estimator's verbosity (``>= 2`` prints every epoch).
    """

    optimizer: str
    learning_rate: float
    alpha: float
    momentum: float | None
    batch_size: int
    warmup: int
    eval_every: int
    score: str
    n_threads: int | None
    verbose: int = 0


@dataclass
class TrainData:
    """The tensors of a fit, on its device: training rows and the validation split.

    Attributes
    ----------
    X, y : Tensor
        Training inputs (float32) and encoded targets.
    valid : tuple of (Tensor, Tensor) or None
        Validation inputs and targets, or None without a validation split.
    reference_losses : tuple of (float, float or None)
        Loss of a constant prediction on the training and on the validation
        targets: the references of the divergence rule
        (:func:`sklottery.training.divergence_detail`).
    """

    X: torch.Tensor
    y: torch.Tensor
    valid: tuple | None = None
    reference_losses: tuple = (None, None)

    def iters_per_epoch(self, batch_size):
        """Training iterations in one epoch at ``batch_size`` (the last batch may be short)."""
        return math.ceil(len(self.X) / min(int(batch_size), len(self.X)))


@dataclass
class TrainRequest:
    """One round of training the engine asks a trainer for.

    Everything a trainer needs travels here; a trainer reads nothing else of
    the estimator.

    Attributes
    ----------
    module : torch.nn.Module
        The network, on ``device``, holding the round's start weights (the
        pruned ones already exactly zero). The trainer leaves the trained
        weights in it.
    masks : dict of str -> bool Tensor
        The round's masks (True = kept), on ``device``. Pruned weights must
        be exactly zero after every optimizer step and get no update.
    epochs : int
        Round length in epochs.
    data : TrainData
    settings : TrainSettings
    criterion : torch.nn.Module
        The loss, with mean reduction over a batch.
    generator : torch.Generator
        The data-order stream: one ``torch.randperm(n, generator=...)`` per
        epoch, drawn on the CPU.
    grid : EvalRecord
        Where the trainer records the validation loss and score every
        ``settings.eval_every`` iterations and at the end of the round
        (:class:`sklottery.training.EvalRecord`); the round's early stop is
        read from it.
    device : torch.device
        The fit's device, resolved once by the engine.
    capture_at : int or None
        Return the full module state after this many iterations (θk of late
        rewinding) as ``RoundResult.captured``.
    net : skorch net
        The estimator's skorch net, which owns the callbacks. Trainers
        notify its callbacks (``net.notify``: ``on_train_begin`` with
        ``masks=``, ``on_evaluation``, ``on_train_end``) and record its
        ``history`` through skorch's public API; the skorch trainer trains
        with it.
    rng_state : ByteTensor or None
        The fit's global (CPU) torch RNG state as the round starts
        (``torch.get_rng_state()``), the stream the module's own random
        draws (dropout) come from. The skorch trainer draws from the global
        RNG, which holds this state while it trains; a trainer that trains
        several fits at once draws each module's random numbers from a
        generator in this state and returns the state it left in
        ``RoundResult.rng_state``. None: the trainer has no stream to draw
        from.
    """

    module: torch.nn.Module
    masks: dict
    epochs: int
    data: TrainData
    settings: TrainSettings
    criterion: torch.nn.Module
    generator: torch.Generator
    grid: object
    device: torch.device
    capture_at: int | None = None
    net: object = None
    rng_state: torch.Tensor | None = None


@dataclass
class RoundResult:
    """What a trainer returns for one request.

    ``outcome`` is ``'ok'``, ``'diverged'`` or ``'interrupted'`` (then only
    ``detail`` is set). ``early_stop`` is ``(iteration, valid_loss,
    valid_score)`` at the minimum validation loss of the evaluation grid, or
    None without validation data; ``captured`` is the full module state
    after ``capture_at`` iterations (θk), if asked for and reached.
    ``rng_state`` is the fit's global torch RNG state after the round when
    the trainer drew the module's random numbers from a generator of its own
    (started from ``TrainRequest.rng_state``): the engine continues its
    stream from there. None when the trainer drew from the global RNG itself
    (the skorch trainer) or drew nothing.
    """

    outcome: str
    detail: str = None
    seconds: float = float("nan")
    epochs: int = 0
    n_iter: int = 0
    train_loss: float = float("nan")
    valid_loss: float = float("nan")
    valid_score: float = float("nan")
    early_stop: tuple = None
    captured: dict = None
    rng_state: torch.Tensor = None


class TrainerDeclined(RuntimeError):
    """Raised by :meth:`Trainer.train` before it changed anything: these requests
    cannot be trained this way after all (e.g. :func:`torch.func.vmap` cannot
    trace the module). The scheduler trains them with the fallback trainer."""


@runtime_checkable
class Trainer(Protocol):
    """What a trainer is: one file, one line in :data:`sklottery.training.TRAINERS`.

    Attributes
    ----------
    name : str
        Its key in the registry.
    priority : int
        With ``trainer='auto'`` the accepting trainer of highest priority
        trains a request.
    """

    name: str
    priority: int

    def accepts(self, request: TrainRequest) -> str | None:
        """Why this trainer cannot train ``request``, or None when it can."""

    def group_key(self, request: TrainRequest):
        """Requests with equal keys may be trained together; None: alone."""

    def train(self, requests: list[TrainRequest]) -> list[RoundResult]:
        """Train every request (one round each); a result per request, in order.

        Raises :class:`TrainerDeclined` (before changing anything) when it
        cannot after all. A first Ctrl-C gives ``'interrupted'`` results; a
        second (:func:`sklottery._interrupt.aborting`) propagates.
        """


@dataclass
class FitDriver:
    """Drives one engine generator: send results or errors, hold the next request.

    The one driver of :meth:`~sklottery.base.BaseLotteryTicket.fit_steps`:
    ``advance()`` runs the engine up to its next request (``request``) or
    its end (``done``); an exception the engine raised is kept in
    ``error``. An exception of the trainer is thrown into the engine at the
    point that asked (``advance(error=exc)``), so the engine's failure
    policy sees it exactly as if the engine had trained the round itself.
    """

    steps: object
    request: TrainRequest = None
    error: BaseException = None
    done: bool = False

    def advance(self, result=None, error=None):
        """Send ``result`` (or throw ``error``) into the engine; run to its next request."""
        try:
            if error is not None:
                self.request = self.steps.throw(error)
            else:  # send(None) starts a fresh generator
                self.request = self.steps.send(result)
        except StopIteration:
            self.request, self.done = None, True
        except BaseException as exc:  # the fit failed; whoever drives decides
            self.request, self.done, self.error = None, True, exc
        return self


def drive(steps, trainer):
    """Run an engine generator to its end, ``trainer`` training every request.

    The plain ``fit``: one fit, one request at a time. An error of the
    engine propagates.
    """
    driver = FitDriver(steps).advance()
    while not driver.done:
        try:
            (result,) = trainer.train([driver.request])
        except BaseException as exc:  # handed to the engine's failure policy
            driver.advance(error=exc)
        else:
            driver.advance(result)
    if driver.error is not None:
        raise driver.error
