"""Running sklottery's parallel work on a Dask cluster (the ``dask`` extra).

Everything parallel in sklottery goes through joblib (``ticket_curve``'s and
``compare``'s ``n_jobs``, and scikit-learn's own ``GridSearchCV``,
``cross_val_score``), so a Dask cluster needs no code of its own: inside
``with joblib.parallel_config(backend="dask"):`` and a
``distributed.Client``, the same calls run on the cluster's workers.
``ticket_curve`` then sends each worker a share of the runs that its batched
trainer trains together, and passes the data arrays as arguments of their
own, which joblib's Dask backend scatters once. A Dask worker starts with
``OMP_NUM_THREADS=1``, so torch uses one thread per task there and a worker
never runs more threads than it was given.

This module holds the little the command line needs: a clear error when the
extra is missing, and a client for ``compare --backend dask``.
"""

from __future__ import annotations

import contextlib

__all__ = ["require_distributed", "dask_backend"]

INSTALL_HINT = "pip install 'sklottery[dask]'"


def require_distributed():
    """Import and return :mod:`distributed`, or fail naming the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "The Dask backend needs the 'distributed' package, which is not installed: "
            f"{INSTALL_HINT} (or pip install distributed)."
        ) from exc
    return distributed


@contextlib.contextmanager
def dask_backend(scheduler=None, n_workers=None, threads_per_worker=1):
    """Run joblib's parallel work inside the block on a Dask cluster.

    Parameters
    ----------
    scheduler : str, default=None
        Address of a running scheduler (``'tcp://host:8786'``). None starts a
        :class:`distributed.LocalCluster` of worker processes on this machine
        (closed after the block).
    n_workers : int, default=None
        Workers of that local cluster (default: Dask's, one per core with
        ``threads_per_worker=1``).
    threads_per_worker : int, default=1

    Yields
    ------
    client : distributed.Client
    """
    distributed = require_distributed()
    import joblib

    cluster = None
    if scheduler is None:
        cluster = distributed.LocalCluster(n_workers=n_workers,
                                           threads_per_worker=threads_per_worker,
                                           processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    else:
        client = distributed.Client(scheduler)
    try:
        with joblib.parallel_config(backend="dask"):
            yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
