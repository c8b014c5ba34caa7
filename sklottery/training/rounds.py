"""What every trainer does in a round, written once.

* the evaluation grid (:class:`EvalRecord`): validation loss and score
  every ``eval_every`` iterations and at the end of the round, and the
  early-stop iteration read from them (Frankle & Carbin: the iteration of
  minimum validation loss);
* the divergence rule (:func:`divergence_detail`) and the end-of-round
  check (:func:`end_of_round_detail`);
* the learning-rate warmup (:func:`warmup_factor`);
* the round's result (:func:`round_result`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .protocol import RoundResult

__all__ = ["AUTO_EVAL_ITERATIONS", "resolve_eval_every", "Diverged", "DIVERGENCE_FACTOR",
           "divergence_detail", "EvalRecord", "warmup_factor", "end_of_round_detail",
           "round_result"]

#: ``eval_every='auto'`` evaluates about this often (Frankle & Carbin evaluate
#: every 100 iterations), and at least once per epoch.
AUTO_EVAL_ITERATIONS = 100


def resolve_eval_every(eval_every, iters_per_epoch):
    """Iterations between two evaluations for ``eval_every`` ('auto' or an int).

    ``'auto'`` is ``min(100, iters_per_epoch)``: every 100 iterations as
    Frankle & Carbin, but never less often than once per epoch.
    """
    if eval_every == "auto":
        return max(1, min(AUTO_EVAL_ITERATIONS, int(iters_per_epoch)))
    return int(eval_every)


class Diverged(RuntimeError):
    """Raised inside a round when training diverged (see :func:`divergence_detail`)."""


#: A round has diverged when a loss exceeds this multiple of its reference
#: (see :func:`divergence_detail`).
DIVERGENCE_FACTOR = 10.0


def divergence_detail(what, loss, reference, first_loss=float("nan"), where=""):
    """Why ``loss`` means the round diverged, or None when it does not.

    The rule, the same for every trainer: a loss diverged when it is NaN or
    infinite, or when it exceeds :data:`DIVERGENCE_FACTOR` (10) times the
    larger of

    * ``reference``: the loss of a constant prediction on the same targets
      (uniform logits for a classifier, ``ln K`` with K classes; the targets'
      mean for a regressor), what a network that learned nothing scores, and
    * ``first_loss``: the loss of the round's first training batch, before
      any step (so a network that starts far worse than constant, e.g. on
      unscaled features, is judged against its own start).

    A network ten times worse than a constant prediction has blown up: with
    ``learning_rate_init=100`` on digits the validation loss reaches
    hundreds while ``ln 10 = 2.3``. The losses checked are averages over many
    samples (the mean training loss of an epoch and the validation loss on
    the evaluation grid), never a single batch, so an outlying batch cannot
    trigger it.

    Parameters
    ----------
    what : str
        Name of the loss in the message (``'validation loss'``).
    loss : float
    reference : float or None
        Loss of a constant prediction; None or NaN checks finiteness only.
    first_loss : float, default=nan
    where : str, default=''
        Appended to the message (``'at iteration 300'``).
    """
    loss = float(loss)
    suffix = f" {where}" if where else ""
    if not math.isfinite(loss):
        return f"{what} became {loss}{suffix}"
    bases = [float(v) for v in (reference, first_loss) if v is not None and math.isfinite(v)]
    if not bases:
        return None
    limit = DIVERGENCE_FACTOR * max(bases)
    if loss > limit:
        return (f"{what} {loss:.4g} exceeded {limit:.4g}{suffix} ({DIVERGENCE_FACTOR:g} x "
                f"the larger of the loss of a constant prediction, {float(reference):.4g}, "
                f"and the round's first-batch loss, {float(first_loss):.4g})")
    return None


class EvalRecord:
    """The evaluation grid of one round: iterations, validation losses and scores.

    A trainer calls :meth:`reset` when a round begins and :meth:`record` at
    every ``every``-th iteration and once more at the end of the round
    (unless the last iteration was already a grid point), also without a
    validation set (the values are then NaN), so that the early-stop
    iteration is resolved to ``every`` iterations rather than to epochs.

    Parameters
    ----------
    every : int, default=1
        Iterations between evaluations.
    score : {'acc', 'r2'}, default='acc'
        Name of the validation score recorded beside the loss.

    Attributes
    ----------
    iterations_, valid_loss_, valid_score_ : list
        The grid points of the current round, in order.
    """

    def __init__(self, every=1, score="acc"):
        self.every = every
        self.score = score
        self.reset()

    def reset(self):
        """Forget the records (a new round)."""
        self.iterations_ = []
        self.valid_loss_ = []
        self.valid_score_ = []

    def record(self, iteration, loss, score):
        """Record one grid point."""
        self.iterations_.append(int(iteration))
        self.valid_loss_.append(float(loss))
        self.valid_score_.append(float(score))

    def early_stop(self):
        """``(iteration, valid_loss, valid_score)`` at the minimum validation loss.

        The first grid point wins ties. ``None`` without grid points or when
        every loss is NaN.
        """
        vl = np.asarray(self.valid_loss_, dtype=float)
        if not vl.size or not np.isfinite(vl).any():
            return None
        best = int(np.nanargmin(np.where(np.isfinite(vl), vl, np.nan)))
        return self.iterations_[best], float(vl[best]), float(self.valid_score_[best])

    def divergence(self, reference, first_loss):
        """Why a validation loss of the grid diverged (:func:`divergence_detail`), or None."""
        for it, loss in zip(self.iterations_, self.valid_loss_):
            detail = divergence_detail("validation loss", loss, reference, first_loss,
                                       f"at iteration {it}")
            if detail is not None:
                return detail
        return None


def warmup_factor(iteration, warmup):
    """The learning-rate factor of training batch ``iteration`` (from 0): ``min(1, (i+1)/warmup)``.

    Linear warmup over the first ``warmup`` iterations of a round (1 when
    ``warmup`` is 0); needed to find tickets in deep networks (Frankle et
    al. 2020).
    """
    warmup = int(warmup)
    return 1.0 if warmup <= 0 else min(1.0, (iteration + 1) / warmup)


def end_of_round_detail(tensors, grid, has_valid, valid_reference, first_loss):
    """Why a round that ran to its end diverged, or None.

    The per-batch and per-epoch checks cannot see the last optimizer step
    of a round nor the grid points inside an epoch: a floating tensor of the
    trained network (``tensors``, name -> Tensor) that is NaN/inf, or a
    diverged validation loss on the grid (:meth:`EvalRecord.divergence`).
    """
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return f"{name} has non-finite values at the end of training"
    if has_valid:
        return grid.divergence(valid_reference, first_loss)
    return None


def round_result(*, seconds, epochs, n_iter, train_loss, grid, has_valid, captured):
    """The :class:`~sklottery.training.RoundResult` of a round that ran to its end."""
    result = RoundResult("ok", seconds=seconds, epochs=int(epochs), n_iter=int(n_iter),
                         train_loss=float(train_loss), captured=captured)
    if has_valid and grid.iterations_:
        result.valid_loss = float(grid.valid_loss_[-1])
        result.valid_score = float(grid.valid_score_[-1])
        result.early_stop = grid.early_stop()
    return result
