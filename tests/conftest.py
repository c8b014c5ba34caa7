"""Test-session settings.

The networks in the tests are tiny: one torch thread is as fast as two for
them, and it keeps the suite's speed stable when the CI machine is busy
(OpenMP threads spin badly when cores are oversubscribed). Subprocesses
started by the tests inherit the same setting through the environment.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
