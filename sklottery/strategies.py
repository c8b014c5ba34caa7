"""What happens to the weights after a prune (the ``reinit`` strategies).

Each strategy is a pure function of state dictionaries: it receives the
trained state, the rewind state (θ0 or θk), a freshly initialised state and
the new masks, and returns the state the next round starts from. The
estimator then applies the masks and rebuilds the optimizer.

=============== ===========================================================
strategy        next round starts from
=============== ===========================================================
``'rewind'``    θ0 (or θk with ``rewind_iteration=k``): the winning ticket
``'random'``    a fresh random initialisation (Frankle & Carbin's control)
``'continue'``  the trained weights (traditional prune + fine-tune)
``'same_sign'`` fresh random magnitudes with θ0's signs (Zhou et al. 2019)
``'scratch_e'`` fresh random init, trained for the same epochs (Liu et al.)
``'scratch_b'`` fresh random init, trained for the same compute budget
=============== ===========================================================

Scratch-B budget rule: training FLOPs scale with the fraction of remaining
weights (a sparse multiply costs as many multiply-adds as it has non-zero
weights), so a network with fraction ``f`` of its weights trained for
``E / f`` epochs costs the same as the dense network trained for ``E``
epochs. Like Liu et al., who cap the extra training of unstructured-pruned
models, the factor ``1/f`` is capped at ``scratch_b_max_factor`` (default
2).
"""

from __future__ import annotations

import math

import torch

__all__ = ["REINIT_STRATEGIES", "next_round_state", "scratch_b_epochs"]

REINIT_STRATEGIES = ("rewind", "random", "continue", "same_sign", "scratch_e", "scratch_b")


def next_round_state(strategy, trained, rewind, fresh, prunable):
    """State dict a round starts from after pruning.

    Parameters
    ----------
    strategy : str
        One of :data:`REINIT_STRATEGIES`.
    trained : dict of str -> Tensor
        Module state at the end of the round that was just pruned.
    rewind : dict of str -> Tensor
        θ0 (or θk): the state rewinding returns to.
    fresh : dict of str -> Tensor or None
        A new random initialisation of the same module (needed by
        ``'random'``, ``'same_sign'``, ``'scratch_e'``, ``'scratch_b'``).
    prunable : iterable of str
        Names of the prunable weights (only they change sign in
        ``'same_sign'``; other parameters come from ``fresh``).

    Returns
    -------
    state : dict of str -> Tensor
        New tensors (the inputs are not modified). Masks are not applied here.
    """
    if strategy == "rewind":
        return {k: v.detach().clone() for k, v in rewind.items()}
    if strategy == "continue":
        return {k: v.detach().clone() for k, v in trained.items()}
    if strategy in ("random", "scratch_e", "scratch_b"):
        return {k: v.detach().clone() for k, v in fresh.items()}
    if strategy == "same_sign":
        prunable = set(prunable)
        out = {}
        for k, v in fresh.items():
            v = v.detach().clone()
            if k in prunable:
                sign = torch.sign(rewind[k]).to(v.dtype)
                # a zero initial weight keeps a positive sign
                sign[sign == 0] = 1
                v = v.abs() * sign
            out[k] = v
        return out
    raise ValueError(f"Unknown reinit strategy {strategy!r}; expected one of {REINIT_STRATEGIES}.")


def scratch_b_epochs(max_epochs, fraction_remaining, max_factor=2.0):
    """Epochs that give a sparse network the dense network's compute budget.

    ``ceil(max_epochs * min(1 / fraction_remaining, max_factor))``.
    """
    if not 0 < fraction_remaining <= 1:
        raise ValueError(f"fraction_remaining must be in (0, 1], got {fraction_remaining!r}.")
    factor = min(1.0 / fraction_remaining, float(max_factor))
    return int(math.ceil(max_epochs * factor - 1e-9))
