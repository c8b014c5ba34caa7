"""What happens to the weights after a prune (the ``reinit`` strategies).

Each strategy is a pure function of state dictionaries: it receives the
trained state, the rewind state (θ0 or θk), a freshly initialised state and
the new masks, and returns the state the next round starts from. The
estimator then applies the masks and rebuilds the optimizer.

================== ========================================================
strategy           next round starts from
================== ========================================================
``'rewind'``       θ0 (or θk with ``rewind_iteration=k``): the winning ticket
``'fresh'``        a fresh random initialisation, same epochs
``'fresh_budget'`` a fresh random initialisation, the dense network's
                   compute budget in multiply-adds (Liu et al.'s scratch-B
                   rule)
``'continue'``     the trained weights (traditional prune + fine-tune)
``'same_sign'``    fresh random magnitudes with θ0's signs (Zhou et al. 2019)
================== ========================================================

These are *chains*: every round's mask is pruned from the weights trained in
the previous round. :func:`sklottery.analysis.ticket_curve` also runs *mask
controls*, which take the winning ticket's mask and train it once from a new
initialisation: ``'random'`` (Frankle & Carbin's random reinitialisation),
``'scratch_e'`` and ``'scratch_b'`` (Liu et al.). Those words mean the mask
controls everywhere; the chain strategies that used to share them
(``reinit='random'``, ``'scratch_e'``, ``'scratch_b'``) are deprecated
aliases of ``'fresh'`` and ``'fresh_budget'`` (:data:`DEPRECATED_REINIT`).

Budget rule (Liu et al. scale scratch-B's epochs by FLOPs: ``E x dense
FLOPs / pruned FLOPs``): a training step costs the network's
multiply-adds per sample, and a pruned weight costs none (a sparse
multiply), so a network that keeps a fraction ``c`` of the dense network's
multiply-adds, trained for ``E / c`` epochs, costs what the dense network
trained for ``E`` epochs costs. ``c`` is counted by
:func:`sklottery.modules.multiply_adds`: a weight of a ``Linear`` layer is
used once per sample, so for an MLP ``c`` is the fraction of weights left;
a convolution's weight is used at every output position, and convolutions
are pruned at their own (lower) rate, so for a conv net ``c`` is larger than
the fraction of weights (Conv-2 on 28 x 28 images with ``conv_pruning_rate=0.1``
after three rounds: 51.5 % of the weights, 70.7 % of the multiply-adds). For a structured
ticket trained as its smaller dense network, ``c`` is the multiply-adds of
that compact network. Like Liu et al., who cap the extra training of
unstructured-pruned models, the factor ``1/c`` is capped at
``scratch_b_max_factor`` (default 2).
"""

from __future__ import annotations

import math

import torch

__all__ = ["REINIT_STRATEGIES", "DEPRECATED_REINIT", "canonical_reinit", "next_round_state",
           "scratch_b_epochs"]

REINIT_STRATEGIES = ("rewind", "fresh", "fresh_budget", "continue", "same_sign")

#: Old ``reinit`` spellings (before 0.2) and the strategy each now means.
DEPRECATED_REINIT = {"random": "fresh", "scratch_e": "fresh", "scratch_b": "fresh_budget"}


def canonical_reinit(strategy):
    """The current name of a ``reinit`` strategy (maps :data:`DEPRECATED_REINIT`).

    See Also
    --------
    DEPRECATED_REINIT : The old spellings.
    """
    return DEPRECATED_REINIT.get(strategy, strategy)


def next_round_state(strategy, trained, rewind, fresh, prunable):
    """State dict a round starts from after pruning.

    Parameters
    ----------
    strategy : str
        One of :data:`REINIT_STRATEGIES` (or a deprecated spelling).
    trained : dict of str -> Tensor
        Module state at the end of the round that was just pruned.
    rewind : dict of str -> Tensor
        θ0 (or θk): the state rewinding returns to.
    fresh : dict of str -> Tensor or None
        A new random initialisation of the same module (needed by
        ``'fresh'``, ``'fresh_budget'`` and ``'same_sign'``).
    prunable : iterable of str
        Names of the prunable weights (only they change sign in
        ``'same_sign'``; other parameters come from ``fresh``).

    Returns
    -------
    state : dict of str -> Tensor
        New tensors (the inputs are not modified). Masks are not applied here.

    See Also
    --------
    sklottery.analysis.ticket_curve : Runs these strategies as chains with
        controls.
    scratch_b_epochs : The epochs of ``'fresh_budget'``.

    References
    ----------
    .. [1] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.
    .. [2] Liu, Z., Sun, M., Zhou, T., Huang, G. and Darrell, T. (2019).
       Rethinking the Value of Network Pruning. ICLR. arXiv:1810.05270.
    .. [3] Zhou, H., Lan, J., Liu, R. and Yosinski, J. (2019). Deconstructing
       Lottery Tickets: Zeros, Signs, and the Supermask. NeurIPS.
       arXiv:1905.01067.
    .. [4] Frankle, J., Dziugaite, G. K., Roy, D. M. and Carbin, M. (2020).
       Linear Mode Connectivity and the Lottery Ticket Hypothesis. ICML.
       arXiv:1912.05671.
    """
    strategy = canonical_reinit(strategy)
    if strategy == "rewind":
        return {k: v.detach().clone() for k, v in rewind.items()}
    if strategy == "continue":
        return {k: v.detach().clone() for k, v in trained.items()}
    if strategy in ("fresh", "fresh_budget"):
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
    """Epochs that give a pruned network the dense network's compute budget.

    ``ceil(max_epochs * min(1 / fraction_remaining, max_factor))``: whole
    epochs, rounded up, so the budget used is at least the dense one (by less
    than one epoch of the pruned network) unless the cap binds.

    Parameters
    ----------
    max_epochs : int
        Epochs of the dense training (``E``).
    fraction_remaining : float in (0, 1]
        Multiply-adds per sample of the pruned network as a fraction of the
        dense network's (:func:`sklottery.modules.multiply_adds`; for an MLP
        the fraction of weights left). Not the fraction of weights of a conv
        net: its convolution weights are used at every output position.
    max_factor : float, default=2.0
        Cap on ``1 / fraction_remaining`` (``scratch_b_max_factor``).

    Returns
    -------
    epochs : int

    See Also
    --------
    next_round_state : The reset strategies.
    sklottery.modules.multiply_adds : Counts the multiply-adds.

    References
    ----------
    .. [1] Liu, Z., Sun, M., Zhou, T., Huang, G. and Darrell, T. (2019).
       Rethinking the Value of Network Pruning. ICLR. arXiv:1810.05270.
    """
    if not 0 < fraction_remaining <= 1:
        raise ValueError(f"fraction_remaining must be in (0, 1], got {fraction_remaining!r}.")
    factor = min(1.0 / fraction_remaining, float(max_factor))
    return int(math.ceil(max_epochs * factor - 1e-9))
