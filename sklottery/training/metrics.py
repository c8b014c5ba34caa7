"""Forward passes and validation scores on tensors, shared by the trainers and the analyses."""

from __future__ import annotations

import torch

__all__ = ["forward_chunks", "accuracy_t", "r2_t", "SCORES"]


@torch.no_grad()
def forward_chunks(module, X, chunk=1024, device=None):
    """Outputs of ``module`` on ``X`` in eval mode, ``chunk`` rows at a time.

    Chunks bound the activation memory of conv networks; the module's
    train/eval mode is restored afterwards. With ``device``, each chunk is
    moved there first.
    """
    was_training = module.training
    module.eval()
    try:
        outs = [module(X[i:i + chunk] if device is None else X[i:i + chunk].to(device))
                for i in range(0, len(X), chunk)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)  # one chunk: no copy
    finally:
        module.train(was_training)


def accuracy_t(outputs, y):
    """Accuracy of logits ``outputs`` against class indices ``y`` (tensors)."""
    return float((outputs.argmax(1) == y).double().mean())


def r2_t(outputs, y):
    """R² of ``outputs`` against ``y`` (tensors), averaged over outputs like sklearn.

    An output whose targets are constant scores 1.0 when predicted exactly
    and 0.0 otherwise (scikit-learn's convention).
    """
    out = outputs.double().reshape(len(outputs), -1)
    target = y.double().reshape(len(y), -1)
    ss_res = ((target - out) ** 2).sum(0)
    ss_tot = ((target - target.mean(0)) ** 2).sum(0)
    r2 = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp_min(1e-300),
                     (ss_res == 0).double())
    return float(r2.mean())


#: Validation scores by name (:class:`~sklottery.training.TrainSettings` ``score``).
SCORES = {"acc": accuracy_t, "r2": r2_t}
