"""CUDA-graph wrapper for pure costs: capture once per actions shape, then replay (cuts launch overhead)."""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import CostFn

_Captured = tuple[Tensor, Tensor, "torch.cuda.CUDAGraph"]  # static input, static output, graph


class GraphedCost:
    """Callable cost that replays a CUDA graph of `cost_fn` for each (shape, dtype) of actions it has seen.

    Only for pure, non-differentiable costs (inference): tensors the cost closes over (goal, history) are
    baked in by address, so update them in place, never rebind them. CPU inputs call `cost_fn` directly.
    The first call for a new shape warms up on a side stream and captures (that call synchronises);
    later calls only copy the actions in, replay and clone the (B, S) costs out, with no host sync.

    Args:
        cost_fn: the cost (B, S, H, A) -> (B, S) to capture.
        warmup: eager runs on a side stream before capture (lets lazy initialisation happen outside it).
    """

    def __init__(self, cost_fn: CostFn, warmup: int = 2) -> None:
        """Store the cost and an empty graph table."""
        self.cost_fn = cost_fn
        self.warmup = int(warmup)
        self.graphs: dict[tuple[tuple[int, ...], torch.dtype], _Captured] = {}

    def __call__(self, actions: Tensor) -> Tensor:
        """Evaluate costs (B, S) for actions (B, S, H, A), replaying the captured graph on CUDA."""
        if actions.device.type != "cuda":
            return self.cost_fn(actions)
        key = (tuple(actions.shape), actions.dtype)
        if key not in self.graphs:
            self.graphs[key] = self._capture(actions)
        static_in, static_out, graph = self.graphs[key]
        static_in.copy_(actions)
        graph.replay()
        return static_out.clone()

    def _capture(self, actions: Tensor) -> _Captured:
        """Warm up on a side stream, then capture cost_fn on a static copy of `actions`."""
        static_in = actions.clone()
        side = torch.cuda.Stream(device=actions.device)
        side.wait_stream(torch.cuda.current_stream(actions.device))
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.cost_fn(static_in)
        torch.cuda.current_stream(actions.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            static_out = self.cost_fn(static_in)
        return static_in, static_out, graph
