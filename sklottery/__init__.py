"""sklottery: the Lottery Ticket Hypothesis as scikit-learn estimators.

The layers, from data to report:

* **estimators** (:mod:`sklottery.estimators`): :class:`LotteryTicketClassifier`
  and :class:`LotteryTicketRegressor`, the scikit-learn faces (targets, loss,
  validation split, ``predict``);
* **engine** (:mod:`sklottery.base`): :class:`~sklottery.base.BaseLotteryTicket`
  runs iterative magnitude pruning over an explicit round state, with warm
  start, checkpoints and the failure policy (interrupt, divergence);
* **trainers** (:mod:`sklottery.training`): train one masked round per
  request of the engine, chosen from a registry (the skorch trainer; the
  batched trainer for many fits at once); pruned weights exactly zero after
  every step, evaluation grid, learning-rate warmup;
* **pruning** (:mod:`sklottery.pruning`, :mod:`sklottery.strategies`): pure
  functions for scores, masks, schedules and the reset after a prune;
* **report** (:mod:`sklottery.analysis`, :mod:`sklottery.stats`,
  :mod:`sklottery.plotting`, ``python -m sklottery``): ticket curves with
  controls and trials, statistics and verdicts, figures and the HTML report.
"""

from .estimators import LotteryTicketClassifier, LotteryTicketRegressor
from .exceptions import (
    DivergenceWarning,
    ExperimentInterrupted,
    PickleIntegrityError,
    PruningInterruptedWarning,
    TrainingDivergedError,
)

__version__ = "0.2.0.dev0"

__all__ = [
    "LotteryTicketClassifier",
    "LotteryTicketRegressor",
    "DivergenceWarning",
    "PruningInterruptedWarning",
    "TrainingDivergedError",
    "PickleIntegrityError",
    "ExperimentInterrupted",
    "__version__",
]
