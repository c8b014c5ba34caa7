"""sklottery: the Lottery Ticket Hypothesis as scikit-learn estimators."""

from .estimators import (
    DivergenceWarning,
    LotteryTicketClassifier,
    PruningInterruptedWarning,
    TrainingDivergedError,
)

__version__ = "0.1.0"

__all__ = [
    "LotteryTicketClassifier",
    "DivergenceWarning",
    "PruningInterruptedWarning",
    "TrainingDivergedError",
    "__version__",
]
