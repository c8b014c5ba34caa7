"""The training wing: trainers behind one seam, chosen from a registry.

The IMP engine (:mod:`sklottery.base`) yields a :class:`TrainRequest` per
round and receives a :class:`RoundResult`; a trainer turns requests into
results. The pieces:

========================  ====================================================
:mod:`.protocol`          ``TrainRequest`` (module, masks, epochs, data,
                          settings, criterion, generator, grid, device,
                          capture_at, net, rng_state), ``TrainSettings``,
                          ``TrainData``, ``RoundResult``, the ``Trainer``
                          protocol, the one driver of the engine
                          (``FitDriver``, ``drive``) and the device resolved
                          once (``resolve_device``)
:mod:`.rounds`            written once for every trainer: the evaluation grid
                          (``EvalRecord``), the divergence rule, warmup, the
                          round's result
:mod:`.optim`             optimizers from settings, Adam's priming, denormals
:mod:`.metrics`           chunked forward passes, accuracy and R²
:mod:`.skorch`            ``SkorchTrainer`` (the reference: any request, with
                          skorch's loop and callbacks) and ``build_net``
:mod:`.batched`           ``BatchedTrainer`` (many fits' rounds as one
                          vectorised model)
:mod:`.cuda_graph`        ``CudaGraphTrainer`` (the batched step captured in
                          one CUDA graph, on CUDA devices)
:mod:`.schedule`          ``fit_many``: many fits at once, each request to the
                          trainer the registry chooses
========================  ====================================================

A new trainer is one new file with a class that has the
:class:`Trainer` methods (``name``, ``priority``, ``accepts``,
``group_key``, ``train``) plus one line in :data:`TRAINERS`. No trainer
imports the engine, and the engine imports only this package's public
names.
"""

from .batched import BatchedTrainer, stacked_forward, stacked_loss
from .cuda_graph import CudaGraphTrainer
from .metrics import SCORES, accuracy_t, forward_chunks, r2_t
from .optim import (
    OPTIMIZERS,
    build_optimizer,
    flush_denormals,
    flushing_denormals,
    fused_adam_supported,
    optimizer_kwargs,
    prime_adam_state,
)
from .protocol import (
    FitDriver,
    RoundResult,
    TrainData,
    Trainer,
    TrainerDeclined,
    TrainRequest,
    TrainSettings,
    drive,
    resolve_device,
    torch_threads,
)
from .rounds import (
    AUTO_EVAL_ITERATIONS,
    DIVERGENCE_FACTOR,
    Diverged,
    EvalRecord,
    divergence_detail,
    end_of_round_detail,
    resolve_eval_every,
    round_result,
    warmup_factor,
)
from .schedule import choose_trainer, fit_many
from .skorch import (
    SKLOTTERY_HOOKS,
    TRAINER_CALLBACKS,
    EpochProgress,
    EvalGrid,
    LotteryNet,
    LotteryRegressorNet,
    MaskCallback,
    SkorchTrainer,
    TensorBatchIterator,
    ValidAccuracy,
    ValidR2,
    WarmupScheduler,
    build_net,
)

#: The trainers by name. ``fit`` trains with ``'skorch'``; ``fit_many`` (and
#: so ``ticket_curve``) gives each request to the accepting trainer of highest
#: ``priority`` unless told otherwise. A new trainer: one file, one line here.
TRAINERS = {
    "skorch": SkorchTrainer,
    "batched": BatchedTrainer,
    "cuda_graph": CudaGraphTrainer,
}

__all__ = [
    "TRAINERS", "TrainRequest", "TrainSettings", "TrainData", "RoundResult", "Trainer",
    "TrainerDeclined", "FitDriver", "drive", "resolve_device", "torch_threads",
    "EvalRecord", "Diverged", "DIVERGENCE_FACTOR", "divergence_detail",
    "end_of_round_detail", "resolve_eval_every", "round_result", "warmup_factor",
    "AUTO_EVAL_ITERATIONS", "OPTIMIZERS", "build_optimizer", "optimizer_kwargs",
    "flush_denormals", "flushing_denormals", "fused_adam_supported", "prime_adam_state",
    "SCORES", "accuracy_t", "forward_chunks", "r2_t", "SkorchTrainer", "BatchedTrainer",
    "CudaGraphTrainer",
    "build_net", "MaskCallback", "EvalGrid", "WarmupScheduler", "TensorBatchIterator",
    "ValidAccuracy", "ValidR2", "EpochProgress", "LotteryNet", "LotteryRegressorNet",
    "SKLOTTERY_HOOKS", "TRAINER_CALLBACKS", "stacked_forward", "stacked_loss",
    "fit_many", "choose_trainer",
]
