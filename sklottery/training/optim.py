"""The optimizers of a round, written once for every trainer.

A pruned weight gets no update: its gradient is zeroed, so Adam's moments
and SGD's momentum (which start at zero with every round's fresh optimizer)
stay exactly zero there. :func:`optimizer_kwargs` is the one place that
says how a :class:`~sklottery.training.TrainSettings` becomes an optimizer;
:func:`prime_adam_state` and :func:`flush_denormals` keep the CPU off its
slow paths.
"""

from __future__ import annotations

import contextlib
import functools

import torch

__all__ = ["OPTIMIZERS", "optimizer_kwargs", "build_optimizer", "flush_denormals",
           "flushing_denormals", "fused_adam_supported", "prime_adam_state"]

#: The optimizers by name (``optimizer=`` of the estimators).
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def optimizer_kwargs(settings, device_type):
    """Keyword arguments of ``OPTIMIZERS[settings.optimizer]`` besides ``lr``.

    The L2 penalty as ``weight_decay``, SGD's momentum, and Adam's fused
    kernel where this torch has one for ``device_type`` (one pass per weight
    tensor, no slow path over pruned entries' zero second moments).
    """
    kwargs = {"weight_decay": float(settings.alpha)}
    if settings.optimizer == "sgd":
        kwargs["momentum"] = float(settings.momentum)
    elif fused_adam_supported(device_type):
        kwargs["fused"] = True
    return kwargs


def build_optimizer(settings, params, masks, capturable=False):
    """A fresh optimizer over ``params`` (name -> Parameter) for one round.

    ``masks`` (name -> bool Tensor of the same shape) prime Adam's state where
    the fused kernel is missing (:func:`prime_adam_state`). ``capturable``:
    Adam keeps its step counter on the device, so that a step captured in a
    CUDA graph advances it when replayed (SGD has no counter).
    """
    values = list(params.values())
    kwargs = optimizer_kwargs(settings, values[0].device.type)
    if capturable and settings.optimizer == "adam":
        kwargs["capturable"] = True
    opt = OPTIMIZERS[settings.optimizer](values, lr=float(settings.learning_rate), **kwargs)
    prime_adam_state(opt, params, masks)
    return opt


def flushing_denormals():
    """Whether the CPU currently flushes denormal floats to zero (there is no getter)."""
    return (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0


@contextlib.contextmanager
def flush_denormals():
    """Flush denormal floats to zero inside the block (x86 FTZ/DAZ), then restore.

    In long rounds Adam's moments of units that stopped receiving gradient
    (dead ReLUs) decay geometrically into the denormal range (below 1.2e-38),
    where CPU arithmetic is many times slower: a plain dense loop on
    LeNet-300-100 slowed from 1.8 to 4.2 ms per batch by its third epoch
    (``benchmarks/bench_masked_step.py --long``). Flushing them to zero
    changes no number above 1.2e-38. Where the CPU cannot flush, nothing
    changes.
    """
    before = flushing_denormals()
    changed = not before and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)


@functools.lru_cache(maxsize=None)
def fused_adam_supported(device_type):
    """Whether this torch has a fused Adam kernel for ``device_type`` ('cpu', 'cuda' ...).

    The CPU kernel arrived in torch 2.4; sklottery supports torch >= 2.2 and
    falls back to the default kernel (with :func:`prime_adam_state`) where
    there is none.
    """
    try:
        torch.optim.Adam([torch.zeros(1, device=device_type, requires_grad=True)], fused=True)
    except Exception:  # noqa: BLE001 - no kernel, or no such device here
        return False
    return True


@torch.no_grad()
def prime_adam_state(optimizer, params, masks):
    """Start Adam's state with second moments of 1 on pruned entries (not 0).

    A pruned weight's gradient is zero, so its first moment stays zero and
    its update ``m / (sqrt(v) + eps)`` is exactly zero whatever ``v`` is;
    with ``v = 0`` though, ``torch.sqrt`` takes a slow path on this class of
    CPU: a tensor holding exact zeros is square-rooted 7-35x slower than one
    without (``benchmarks/bench_masked_step.py``), a tax that grew with
    sparsity. Kept entries start at 0 exactly as :class:`torch.optim.Adam`
    initialises them, so training is unchanged. Only plain ``Adam`` (not
    ``amsgrad``) is primed; other optimizers are left alone.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Freshly built (no step taken yet).
    params : dict of str -> Parameter
    masks : dict of str -> bool Tensor
    """
    if type(optimizer) is not torch.optim.Adam:
        return
    for group in optimizer.param_groups:
        if group.get("amsgrad") or group.get("capturable") or group.get("fused"):
            return
    for name, mask in masks.items():
        p = params[name]
        if bool(mask.all()) or optimizer.state.get(p):
            continue
        optimizer.state[p] = {
            # torch's own choice for the step counter (float64 under a float64 default)
            "step": torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype()
                                 == torch.float64 else torch.float32),
            "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
            "exp_avg_sq": (~mask.to(p.device)).to(p.dtype),
        }


