"""The CUDA-graph trainer: the batched step replayed from one captured graph.

On a GPU a batched step of small networks is bound by kernel launches and
Python, not arithmetic: measured on an H200, a hand-written stacked step of
10 LeNet-300-100 costs 1.73 ms eager and 0.29 ms replayed from one CUDA
graph (``../shared/GPU.md``; ``benchmarks/bench_gpu.py`` measures it).
:class:`CudaGraphTrainer` is the batched trainer with its step captured: the
forward, the loss, the backward, the masked gradients and the optimizer step
of every member are recorded once per round in a :class:`torch.cuda.CUDAGraph`
and replayed at every full batch. Everything else is the batched trainer's
(:class:`~sklottery.training.BatchedTrainer`): members, data order,
evaluation grid, θk capture, divergence checks and results.

What happens around the graph, per step: the batch's row indices are copied
into the graph's static index buffers (two device copies) and the losses are
added to the device-side sums; a loss that is not finite is kept on the
device with its iteration and read with the epoch's means, so the host
synchronises inside an epoch only at the grid points it evaluates. The first
steps of a round run eagerly on a side stream (they initialise the
optimizer's state, as capture requires), and so does an epoch's last, short
batch, whose shape the graph was not captured for.

With ``capture=False`` the same static-buffer step runs eagerly on any
device: the tests check on the CPU that it equals the batched trainer bit for
bit, so only the capture itself needs a GPU (``tests/test_cuda.py``).
"""

from __future__ import annotations

import torch

from .batched import BatchedTrainer
from .optim import build_optimizer

__all__ = ["CudaGraphTrainer"]

#: Eager steps before the capture (torch's advice: warm up on a side stream).
WARMUP_STEPS = 3


class CudaGraphTrainer(BatchedTrainer):
    """The batched trainer with its step captured in one CUDA graph per round.

    Parameters
    ----------
    chunk : int, default=1024
        Validation samples per batched forward pass.
    capture : bool or None, default=None
        None: capture on CUDA (the trainer accepts only CUDA requests).
        False: run the same static-buffer step eagerly, on any device (a
        reference for tests).
    """

    name = "cuda_graph"
    priority = 20
    min_members = 1
    #: no host synchronisation inside an epoch: a loss that is not finite is
    #: found with the epoch's means
    check_each_step = False

    def __init__(self, chunk=1024, capture=None, data_cache=None):
        super().__init__(chunk=chunk, data_cache=data_cache)
        self.capture = capture

    def accepts(self, request):
        """Why ``request`` cannot be captured, or None when it can.

        Beyond :meth:`BatchedTrainer.accepts`: a CUDA device (unless
        ``capture=False``), no learning-rate warmup (the captured step has a
        fixed learning rate), and a torch whose Adam has a capturable fused
        kernel for the device.
        """
        if self.capture is not False and request.device.type != "cuda":
            return "the CUDA-graph trainer needs a CUDA device"
        why = super().accepts(request)
        if why is not None:
            return why
        if request.settings.warmup:
            return "learning-rate warmup changes the rate every step (not captured)"
        return None

    def train(self, requests):
        # a GPU runs the whole batch at once: no CPU shards
        return self.train_batch(requests)

    def _optimizer(self, settings, params, masks):
        if self.capture is False:
            return super()._optimizer(settings, params, masks)
        # Adam keeps its step counter on the device, so the replayed step advances it
        return build_optimizer(settings, params, masks, capturable=True)

    def _step(self, params, masks, opt, X_all, y_all):
        eager = super()._step(params, masks, opt, X_all, y_all)
        state = {"calls": 0, "graph": None, "static": None}

        def step(x_rows, y_rows):
            static = state["static"]
            if static is None or x_rows.shape != static[0].shape:
                if static is not None:  # the epoch's last, short batch
                    return eager(x_rows, y_rows)
                state["static"] = static = (x_rows.clone(), y_rows.clone(), None)
            x_static, y_static, _ = static
            x_static.copy_(x_rows)
            y_static.copy_(y_rows)
            state["calls"] += 1
            if self.capture is False:
                return eager(x_static, y_static)
            if state["graph"] is None:
                if state["calls"] <= WARMUP_STEPS:
                    side = torch.cuda.Stream()
                    side.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(side):
                        losses = eager(x_static, y_static)
                    torch.cuda.current_stream().wait_stream(side)
                    return losses
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    losses = eager(x_static, y_static)
                state["graph"] = graph
                state["static"] = (x_static, y_static, losses)
            state["graph"].replay()
            return state["static"][2]

        return step
