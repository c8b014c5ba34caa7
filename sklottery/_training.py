"""Where the skorch trainer's classes lived before :mod:`sklottery.training`.

Estimators pickled by earlier versions name their skorch net and callbacks by
this module's path; these aliases let such pickles load. New code imports
from :mod:`sklottery.training`.
"""

from .training import (  # noqa: F401 - aliases for unpickling
    EpochProgress,
    EvalGrid,
    LotteryNet,
    LotteryRegressorNet,
    MaskCallback,
    TensorBatchIterator,
    ValidAccuracy,
    ValidR2,
    WarmupScheduler,
)
