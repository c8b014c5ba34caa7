"""Running an experiment's tasks with joblib: keep what finishes, survive dead workers.

:func:`run_tasks` is the one place where sklottery hands its runs to joblib
(under whatever backend is active: loky processes, a Dask cluster, or in
this process). It adds three things joblib does not do by itself:

* results are taken as each task finishes (``return_as='generator_unordered'``),
  so everything that finished is kept whatever happens to the rest;
* every task watches the experiment's stop flag (:mod:`sklottery._interrupt`):
  after a Ctrl-C, a task that has not started returns at once without
  running, and one that runs stops at its next training batch;
* a worker that dies (killed, out of memory: loky's
  ``TerminatedWorkerError``, a broken process pool, Dask's ``KilledWorker``)
  costs only the tasks that had not returned: they are retried once, and
  those that fail again are reported as lost.
"""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

from joblib import Parallel, delayed

from ._interrupt import stop_requested, watching

__all__ = ["run_tasks", "TaskReport", "is_worker_death"]

#: Exception class names that mean a worker process died (not that a task failed).
_WORKER_DEATHS = ("TerminatedWorkerError", "BrokenProcessPool", "KilledWorker")


def is_worker_death(exc):
    """Whether ``exc`` says a worker died rather than that its task raised."""
    return isinstance(exc, BrokenProcessPool) or any(
        cls.__name__ in _WORKER_DEATHS for cls in type(exc).__mro__)


class TaskReport:
    """What :func:`run_tasks` did: per task, its output or why there is none.

    Attributes
    ----------
    outputs : list
        The output of every task that ran (None where it did not).
    not_run : list of int
        Tasks that did not start because a stop was requested.
    lost : list of int
        Tasks whose worker died twice (or whose retry was cut by a stop).
    retried : list of int
        Tasks that were run a second time after a worker died.
    errors : list of str
        The worker deaths, in words.
    """

    def __init__(self, n):
        self.outputs = [None] * n
        self.not_run = []
        self.lost = []
        self.retried = []
        self.errors = []


def _guarded(flag, index, func, *args):
    """A task in a worker: watch the stop flag; do not start after a stop."""
    with watching(flag):
        if stop_requested():
            return index, False, None
        return index, True, func(*args)


def run_tasks(func, tasks, args=(), *, n_jobs=None, flag=None, on_output=None):
    """``func(task, *args)`` for every task, in parallel under joblib's backend.

    Parameters
    ----------
    func : callable
        Picklable (a module-level function).
    tasks : list
    args : tuple
        Extra arguments of every call (joblib's Dask backend scatters large
        arrays among them once).
    n_jobs : int, default=None
    flag : sklottery._interrupt.StopFlag, default=None
        The experiment's stop flag, watched by every task.
    on_output : callable, default=None
        Called as ``on_output(index, output)`` as soon as a task returns.

    Returns
    -------
    report : TaskReport
    """
    report = TaskReport(len(tasks))
    pending = list(range(len(tasks)))
    for attempt in (0, 1):
        if not pending:
            break
        if attempt:
            report.retried.extend(pending)
        done = set()
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        try:
            for index, ran, output in parallel(
                    delayed(_guarded)(flag, i, func, tasks[i], *args) for i in pending):
                done.add(index)
                if not ran:
                    report.not_run.append(index)
                    continue
                report.outputs[index] = output
                if on_output is not None:
                    on_output(index, output)
        except Exception as exc:  # noqa: BLE001 - only a dead worker is retried
            if not is_worker_death(exc):
                raise
            report.errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
        pending = [i for i in pending if i not in done]
        if pending and stop_requested():
            break
    report.lost.extend(pending)
    report.not_run.sort()
    return report
