"""Stopping a long experiment cleanly: Ctrl-C once stops, twice aborts.

An experiment (:func:`~sklottery.analysis.ticket_curve`, ``compare``,
``reproduce``) is many training runs. Inside :func:`experiment_stop`, the
first Ctrl-C (SIGINT) does not raise where it lands; it *requests a stop*:

* every run in progress stops at its next training batch, as an interrupted
  fit does (it keeps its completed rounds, ``stop_reason_='interrupted'``);
* no new run starts;
* the caller returns or writes what finished and marks it as interrupted.

The request reaches parallel workers through a :class:`StopFlag` they poll:
a file for workers on this machine (joblib's loky or multiprocessing
backends), a :class:`distributed.Event` on a Dask cluster. Workers ignore
SIGINT themselves (a terminal sends it to the whole process group), so a
worker is never killed half-way through a task by Ctrl-C.

A second Ctrl-C *aborts at once*: it raises :class:`KeyboardInterrupt` where
it lands and nothing in sklottery swallows it (:func:`aborting`).

The trainers call :func:`poll_stop` once per batch: a check of a module
global, and, in a worker, a look at its flag at most every
:data:`POLL_SECONDS`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import uuid

__all__ = ["StopFlag", "FileStopFlag", "DaskStopFlag", "experiment_stop", "watching",
           "stop_requested", "poll_stop", "aborting", "POLL_SECONDS"]

#: How often a worker looks at its stop flag (seconds).
POLL_SECONDS = 0.25

_flag = None           # the StopFlag this process watches (None: no experiment here)
_requested = False     # a stop was requested (Ctrl-C here, or the flag was seen set)
_aborting = False      # a second Ctrl-C: nothing may swallow KeyboardInterrupt now
_next_poll = 0.0
_depth = 0             # nesting of experiment_stop in this process


class StopFlag:
    """A stop request that parallel workers can see (an abstract base).

    ``owner_pid`` is the process that runs the experiment (and handles Ctrl-C).
    """

    owner_pid = None

    def set(self):
        raise NotImplementedError

    def is_set(self):
        raise NotImplementedError

    def close(self):
        """Release what the flag holds (called by its creator at the end)."""


class FileStopFlag(StopFlag):
    """A stop flag for workers on this machine: a file that exists once set.

    Parameters
    ----------
    path : str, default=None
        Where the file appears; None picks a new name in the temporary folder.
    """

    def __init__(self, path=None):
        self.owner_pid = os.getpid()
        self.path = path or os.path.join(
            tempfile.gettempdir(), f"sklottery-stop-{os.getpid()}-{uuid.uuid4().hex}")

    def set(self):
        with open(self.path, "w", encoding="ascii") as f:
            f.write("stop\n")

    def is_set(self):
        return os.path.exists(self.path)

    def close(self):
        with contextlib.suppress(OSError):
            os.remove(self.path)


class DaskStopFlag(StopFlag):
    """A stop flag for workers of a Dask cluster: a named :class:`distributed.Event`.

    Parameters
    ----------
    name : str, default=None
        The event's name on the scheduler; None picks a new one.
    """

    def __init__(self, name=None):
        self.owner_pid = os.getpid()
        self.name = name or f"sklottery-stop-{uuid.uuid4().hex}"

    def _event(self):
        import distributed

        return distributed.Event(self.name)

    def set(self):
        self._event().set()

    def is_set(self):
        try:
            return bool(self._event().is_set())
        except Exception:  # noqa: BLE001 - no scheduler reachable: nobody asked to stop
            return False

    def close(self):
        with contextlib.suppress(Exception):
            self._event().clear()


def stop_requested():
    """Whether a stop of the running experiment was requested (cheap; see module doc)."""
    global _requested, _next_poll
    if _requested:
        return True
    flag = _flag
    if flag is None:
        return False
    now = time.monotonic()
    if now < _next_poll:
        return False
    _next_poll = now + POLL_SECONDS
    if flag.is_set():
        _requested = True
    return _requested


def poll_stop():
    """Raise :class:`KeyboardInterrupt` if a stop was requested (the trainers' batch hook)."""
    if _requested or _flag is not None:
        if stop_requested():
            raise KeyboardInterrupt("stop requested (Ctrl-C)")


def aborting():
    """Whether a second Ctrl-C asked to abort at once (never swallow KeyboardInterrupt)."""
    return _aborting


@contextlib.contextmanager
def watching(flag):
    """Inside a worker's task: poll ``flag``, and ignore SIGINT (the parent decides).

    Does nothing in the process that runs the experiment itself (the flag is
    its own), so sequential runs and joblib's threading backend see the
    parent's state directly.
    """
    global _flag, _requested, _next_poll
    if flag is None or _depth > 0:
        yield
        return
    previous = (_flag, _requested)
    _flag, _requested, _next_poll = flag, False, 0.0
    if os.getpid() != flag.owner_pid and threading.current_thread() is threading.main_thread():
        # Ctrl-C in a terminal reaches the whole process group; the parent
        # turns it into the flag, so the worker must not die of it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        _flag, _requested = previous


def _new_flag(dask_client=None):
    if dask_client is not None:
        return DaskStopFlag()
    return FileStopFlag()


@contextlib.contextmanager
def experiment_stop(dask_client=None, message=None):
    """Run an experiment: the first Ctrl-C requests a stop, the second aborts.

    Re-entrant: a nested experiment (``compare`` -> ``ticket_curve``) shares the
    outer one's flag and handler. The SIGINT handler is installed only when
    called from the main thread (Python delivers signals there); elsewhere the
    flag still works for stops requested by :func:`request_stop`.

    Parameters
    ----------
    dask_client : distributed.Client, default=None
        Workers run on this Dask cluster: the flag is a :class:`DaskStopFlag`.
    message : str, default=None
        Printed to stderr on the first Ctrl-C.

    Yields
    ------
    flag : StopFlag
        Hand it to every parallel task (:func:`watching`).
    """
    global _flag, _requested, _aborting, _depth, _next_poll
    if _depth > 0:
        _depth += 1
        try:
            yield _flag
        finally:
            _depth -= 1
        return
    flag = _new_flag(dask_client)
    _flag, _requested, _aborting, _next_poll = flag, False, False, 0.0
    _depth = 1
    previous = None
    installed = threading.current_thread() is threading.main_thread()

    def handler(signum, frame):
        global _requested, _aborting
        if _requested:
            _aborting = True
            signal.signal(signal.SIGINT, previous if previous is not None
                          else signal.default_int_handler)
            raise KeyboardInterrupt("aborted (second Ctrl-C)")
        request_stop()
        print(message or "\nsklottery: stopping; the runs in progress keep their completed "
              "rounds and what finished is kept. Press Ctrl-C again to abort at once.",
              file=sys.stderr, flush=True)

    if installed:
        previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        if installed and signal.getsignal(signal.SIGINT) is handler:
            signal.signal(signal.SIGINT, previous)
        _flag, _requested, _aborting, _depth = None, False, False, 0
        flag.close()


def request_stop():
    """Request a stop of the running experiment (what the first Ctrl-C does)."""
    global _requested
    _requested = True
    flag = _flag
    if flag is not None:
        try:
            flag.set()
        except Exception:  # noqa: BLE001 - the local request still stands
            pass
