"""Many fits at once: the scheduler that hands their rounds to the trainers.

:func:`fit_many` runs many estimators' fits interleaved: each fit is the
engine's step generator (:meth:`~sklottery.base.BaseLotteryTicket.fit_steps`)
driven by a :class:`~sklottery.training.FitDriver`; whenever fits wait for a
round, each request goes to the trainer the registry chooses for it
(:func:`choose_trainer`), and requests with equal group keys of a trainer
that trains many members at once are trained together.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import defaultdict

import torch

from .._interrupt import aborting, stop_requested
from ..exceptions import TrainingDivergedError
from .protocol import FitDriver, TrainerDeclined

__all__ = ["fit_many", "choose_trainer"]


def choose_trainer(request, trainers, choice="auto"):
    """The trainer of ``request``: ``choice`` if it accepts it, else the fallback.

    Parameters
    ----------
    request : TrainRequest
    trainers : dict of str -> Trainer
        Instances of the registry's trainers.
    choice : 'auto' or str
        ``'auto'``: the accepting trainer of highest ``priority``; a name:
        that trainer where it accepts the request, the reference ``'skorch'``
        trainer where it does not.

    Returns
    -------
    trainer, reason : Trainer, str or None
        ``reason`` says why a preferred trainer declined (None if none did).
    """
    if choice != "auto":
        why = trainers[choice].accepts(request)
        return (trainers[choice], None) if why is None else (trainers["skorch"], why)
    reasons = []
    for trainer in sorted(trainers.values(), key=lambda t: -t.priority):
        why = trainer.accepts(request)
        if why is None:
            return trainer, "; ".join(reasons) or None
        reasons.append(f"{trainer.name}: {why}")
    raise ValueError(f"No trainer accepts this request ({'; '.join(reasons)}).")


class _Member:
    """One fit driven by :func:`fit_many`: its driver, RNG stream and warnings."""

    def __init__(self, estimator, steps, rng):
        self.estimator = estimator
        self.driver = FitDriver(steps)
        self.rng = rng  # this fit's own global torch RNG stream
        self.warnings = []

    @property
    def request(self):
        return self.driver.request

    @property
    def done(self):
        return self.driver.done

    @property
    def error(self):
        return self.driver.error

    @contextlib.contextmanager
    def turn(self, record=None):
        """Run code as this fit: its warnings recorded, its global RNG stream."""
        with warnings.catch_warnings(record=True) as caught:
            if record is not None:
                record()
            torch.set_rng_state(self.rng)
            try:
                yield
            finally:
                self.rng = torch.get_rng_state()
                self.warnings.extend(caught)

    def advance(self, result=None, error=None, record=None):
        """Run the fit's engine up to its next request (or its end)."""
        with self.turn(record):
            self.driver.advance(result, error)


def fit_many(fits, batched=True, record_warnings=None, on_done=None, trainer=None):
    """Fit many estimators, training rounds that fit together as one batch.

    Parameters
    ----------
    fits : list of (estimator, X, y, fit_kwargs)
        Each is fitted as by ``estimator.fit(X, y, **fit_kwargs)``.
    batched : bool, default=True
        False trains every round with the skorch trainer (the fits still run
        interleaved, each with its own RNG stream); True is ``trainer='auto'``.
    record_warnings : callable, default=None
        Called inside each member's ``warnings.catch_warnings(record=True)``
        block to set the filters (e.g. which categories to record).
    on_done : callable, default=None
        Called with the index of every fit as soon as it finished.
    trainer : 'auto' or str, default=None
        A name in :data:`sklottery.training.TRAINERS` (overrides
        ``batched``): every request that trainer accepts goes to it, the rest
        to ``'skorch'``. ``'auto'``: the accepting trainer of highest
        priority (see :func:`choose_trainer`).

    Returns
    -------
    outcomes : list of (exception or None, list of warnings.WarningMessage)
        Per fit, in order: the :class:`~sklottery.TrainingDivergedError` that
        ended it, if any (the estimator is then left as ``fit`` would leave
        it), or the ``KeyboardInterrupt`` of a fit stopped in its dense round
        by a stop request (:mod:`sklottery._interrupt`), and the warnings it
        raised. After a stop request no fit trains another round: each keeps
        its completed rounds, as an interrupted fit does.

    Raises
    ------
    Exception
        Any other error of a fit, as soon as it happens: invalid parameters
        or data fail while every fit is being set up, before any training.
    """
    from . import TRAINERS  # the registry imports this module

    choice = trainer if trainer is not None else ("auto" if batched else "skorch")
    if choice != "auto" and choice not in TRAINERS:
        raise ValueError(f"trainer must be 'auto' or one of {sorted(TRAINERS)}, got {choice!r}.")
    trainers = {name: cls() for name, cls in TRAINERS.items()}
    with torch.random.fork_rng(devices=[]):
        state = torch.get_rng_state()
        members = [_Member(est, est.fit_steps(X, y, **(kw or {})), state.clone())
                   for est, X, y, kw in fits]

        def finished(i):
            error = members[i].error
            stopped = isinstance(error, KeyboardInterrupt) and stop_requested() \
                and not aborting()
            if error is not None and not isinstance(error, TrainingDivergedError) \
                    and not stopped:
                raise error
            if on_done is not None:
                on_done(i)

        declined = set()  # group keys whose requests a trainer declined
        try:
            for i, mem in enumerate(members):
                mem.advance(record=record_warnings)
                if mem.done:
                    finished(i)
            while True:
                waiting = [i for i, mem in enumerate(members) if not mem.done]
                if not waiting:
                    break
                if stop_requested():
                    # Ctrl-C in an experiment: no fit trains another round; each
                    # keeps its completed rounds, as if interrupted in this one
                    for i in waiting:
                        members[i].advance(error=KeyboardInterrupt("stop requested"),
                                           record=record_warnings)
                        if members[i].done:
                            finished(i)
                    continue
                groups = defaultdict(list)
                chosen, grouping = {}, {}  # each request's trainer, and whether it groups
                for i in waiting:
                    req = members[i].request
                    chosen[i], _ = choose_trainer(req, trainers, choice)
                    key = chosen[i].group_key(req)
                    grouping[i] = key is not None
                    key = (chosen[i].name, key) if grouping[i] else None
                    groups[key if grouping[i] and key not in declined
                           else ("alone", i)].append(i)
                for key, idx in groups.items():
                    group_trainer = None if key[0] == "alone" else trainers[key[0]]
                    if group_trainer is None or len(idx) < getattr(group_trainer,
                                                                    "min_members", 1):
                        for i in idx:
                            # a group of one, or declined: the reference trainer
                            alone = trainers["skorch"] if grouping[i] else chosen[i]
                            _train_with(members[i], alone, record_warnings)
                    else:
                        _train_group(group_trainer, [members[i] for i in idx],
                                     trainers["skorch"], record_warnings,
                                     lambda key=key: declined.add(key))
                    for i in idx:
                        if members[i].done:
                            finished(i)
        finally:
            # A fit left unfinished (another fit raised) is closed here, inside
            # this fork_rng, so its own cleanup cannot touch the global RNG later.
            for mem in members:
                if not mem.done:
                    torch.set_rng_state(mem.rng)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        mem.driver.steps.close()
    return [(mem.error, mem.warnings) for mem in members]


def _train_group(trainer, members, fallback, record_warnings, mark_declined):
    """Train one group's requests together (each alone with ``fallback`` if declined)."""
    try:
        results = trainer.train([mem.request for mem in members])
    except TrainerDeclined:
        mark_declined()
        for mem in members:
            _train_with(mem, fallback, record_warnings)
        return
    except BaseException as exc:  # every member of the group sees it
        if aborting():
            raise
        for mem in members:
            mem.advance(error=exc, record=record_warnings)
        return
    for mem, res in zip(members, results):
        mem.advance(res, record=record_warnings)


def _train_with(member, trainer, record_warnings):
    """Train one request by itself, on its fit's own global RNG stream."""
    try:
        with member.turn(record_warnings):
            (result,) = trainer.train([member.request])
    except BaseException as exc:  # handed to the fit's failure policy
        member.advance(error=exc, record=record_warnings)
        return
    member.advance(result, record=record_warnings)
