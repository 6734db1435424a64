"""Target providers: what each plan aims at, given where the agent is now.

A provider is built once per episode batch from the goals and called before every plan with the current
observation. Without a subgoal graph the target is the goal; with one it is the graph's node ``lookahead`` env
steps along the shortest path to the goal (``worldmodel/eval/subgoals.py``), or the goal once that is close.
The world model's provider works on latents, the oracle's on true states, through the same graph machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from worldmodel.planning.objective import Target


class Graph(Protocol):
    """The part of ``worldmodel.eval.subgoals.WaypointGraph`` a provider uses."""

    features: Tensor  # (M, F) node features

    def subgoal(self, now: Tensor, goal: Tensor, lookahead: float) -> tuple[Tensor, Tensor]:
        """(B, F) current and goal features -> node index (B,) and whether to aim at the goal directly (B,)."""


class LatentTargets:
    """Targets in latent space for the world-model agent.

    Args:
        goal: (B, N, D) normalised latents of the goal images.
        proprio_readout: latents (..., N, D) -> normalised proprio (..., P); when given, every target carries
            the proprio the readout sees in the target image (for ``ProprioDistance``).
        graph: optional waypoint graph over dataset latents (features (M, N*D)).
        lookahead: env steps along the graph's path to the subgoal.
    """

    def __init__(
        self,
        goal: Tensor,
        proprio_readout: Callable[[Tensor], Tensor] | None = None,
        graph: Graph | None = None,
        lookahead: float = 5.0,
    ) -> None:
        self.goal, self.readout, self.graph, self.lookahead = goal, proprio_readout, graph, float(lookahead)
        self.goal_target = Target(latents=goal, proprio=None if self.readout is None else self.readout(goal))

    def __call__(self, now: Tensor) -> Target:
        """Target for current latents (B, N, D)."""
        if self.graph is None:
            return self.goal_target
        node, direct = self.graph.subgoal(now.flatten(1), self.goal.flatten(1), self.lookahead)  # (B,), (B,)
        sub = self.graph.features[node].to(self.goal.device).view_as(self.goal)  # (B, N, D)
        latents = torch.where(direct.to(self.goal.device)[:, None, None], self.goal, sub)  # (B, N, D)
        return Target(latents=latents, proprio=None if self.readout is None else self.readout(latents))


class StateTargets:
    """Targets in true state space for the oracle.

    Args:
        goal: (B, Ds) goal states.
        task_coords: states (..., Ds) -> task coordinates (..., K) (the env's ``state_to_task_coords``).
        graph: optional waypoint graph over the task coordinates of dataset states.
        graph_states: (M, Ds) the states of the graph's nodes (with a graph).
        lookahead: env steps along the graph's path to the subgoal.
    """

    def __init__(
        self,
        goal: np.ndarray,
        task_coords: Callable[[np.ndarray], np.ndarray],
        graph: Graph | None = None,
        graph_states: np.ndarray | None = None,
        lookahead: float = 5.0,
    ) -> None:
        if (graph is None) != (graph_states is None):
            raise ValueError("StateTargets needs both graph and graph_states, or neither")
        self.goal, self.coords, self.graph, self.graph_states = np.asarray(goal), task_coords, graph, graph_states
        self.lookahead = float(lookahead)

    def __call__(self, states: np.ndarray) -> Target:
        """Target for current states (B, Ds)."""
        if self.graph is None or self.graph_states is None:
            return Target(states=self.goal)
        now = torch.as_tensor(self.coords(states), dtype=torch.float32)  # (B, K)
        end = torch.as_tensor(self.coords(self.goal), dtype=torch.float32)  # (B, K)
        node, direct = self.graph.subgoal(now, end, self.lookahead)  # (B,), (B,)
        return Target(states=np.where(direct.numpy()[:, None], self.goal, self.graph_states[node.numpy()]))
