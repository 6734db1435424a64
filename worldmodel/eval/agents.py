"""Agents the closed-loop harness compares: planning in a world model's latent space, planning through the
true simulator (the ceiling), and uniform random actions (the floor).

Every agent plans in *chunks*: one call returns (B, k, A_env) env actions for B environments at once.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from planners.base import Planner
from planners.mpc import RecedingHorizonController
from worldmodel.eval.episodes import EnvBatch


class Agent(Protocol):
    """What the harness needs from an agent."""

    name: str

    def reset(self, batch: EnvBatch, seed: int) -> None:
        """Start new episodes (goals are known from ``batch``); ``seed`` makes the wave reproducible."""

    def act(self, batch: EnvBatch) -> np.ndarray:
        """(B, k, A_env) env actions to execute before the next call."""


class RandomAgent:
    """Uniform random actions within the bounds: the floor every report shows."""

    name = "random"

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int = 0, chunk: int = 1) -> None:
        self.low, self.high, self.chunk = low, high, int(chunk)
        self.rng = np.random.default_rng(seed)

    def reset(self, batch: EnvBatch, seed: int) -> None:
        """Re-seed, so a resumed evaluation repeats exactly what an uninterrupted one does."""
        self.rng = np.random.default_rng(seed)

    def act(self, batch: EnvBatch) -> np.ndarray:
        """(B, chunk, A) uniform samples."""
        return self.rng.uniform(self.low, self.high, size=(batch.num_envs, self.chunk, len(self.low))).astype(
            np.float32
        )


class LatentPlanningAgent:
    """Receding-horizon planning toward the goal image's embedding through a world model.

    The cost of a candidate (B, S, H, A) is ``latent_weight`` x the distance between imagined and goal latents
    (``WorldModel.goal_cost``) + ``proprio_weight`` x the distance between imagined proprio and the proprio read
    out of the goal image; with a subgoal graph the "goal" is the graph's subgoal toward it. One planner step is
    ``frameskip`` env steps; ``execute_steps`` planner steps are executed before replanning.
    """

    name = "world_model"

    def __init__(
        self,
        world_model: Any,
        planner: Planner,
        execute_steps: int = 1,
        cost_kind: str = "l1",
        cost_steps: str = "last",
        context_frames: int = 1,
        action_cost: float = 0.0,
        readout: Any = None,
        latent_weight: float = 1.0,
        proprio_weight: float = 0.0,
        proprio_readout: Any = None,
        subgoal_graph: Any = None,
        subgoal_lookahead: float = 5.0,
    ) -> None:
        self.wm = world_model
        # Optional WaypointGraph over dataset latents: aim each plan at the node `subgoal_lookahead` env steps
        # along the graph's shortest path to the goal instead of at the goal itself (worldmodel/eval/subgoals.py).
        self.graph = subgoal_graph
        self.lookahead = float(subgoal_lookahead)
        if latent_weight < 0 or proprio_weight < 0 or latent_weight + proprio_weight == 0:
            raise ValueError(
                f"agent.latent_weight={latent_weight} and agent.proprio_weight={proprio_weight} must be >= 0 "
                "and not both 0"
            )
        if proprio_weight > 0 and proprio_readout is None:
            raise ValueError("agent.proprio_weight > 0 needs a proprio readout of the goal latents")
        # cost = latent_weight * latent distance + proprio_weight * distance between the predictor's imagined
        # proprio and the proprio read out (linearly) from the goal image: the DINO-WM visual + proprio objective,
        # with the goal's proprio inferred from its image instead of taken from the simulator.
        self.latent_weight, self.proprio_weight = float(latent_weight), float(proprio_weight)
        self.proprio_readout = proprio_readout
        if action_cost < 0:
            raise ValueError(f"agent.action_cost={action_cost} must be >= 0 (a penalty on action size)")
        self.action_cost = float(action_cost)  # weight of mean squared action (planner units) added to the cost
        # Optional map latents (..., N, D) -> task coords (..., K) (e.g. evaluate's linear "probe" readout): the
        # cost becomes the Euclidean distance of read-out coords instead of the latent distance (a diagnostic).
        self.readout = readout
        self.planner = planner
        self.execute_steps = int(execute_steps)
        self.cost_kind = cost_kind
        self.cost_steps = cost_steps
        self.context_frames = max(1, int(context_frames))
        self.controller: RecedingHorizonController | None = None
        self.goal: Tensor | None = None  # (B, N, D)
        self.goal_proprio: Tensor | None = None  # (B, P), read out from the goal latents
        self.history: list[Tensor] = []  # context latents, each (B, N, D)
        self.proprio_history: list[Tensor] = []  # each (B, P)
        self.action_history: list[Tensor] = []  # each (B, A)

    def _encode(self, pixels: np.ndarray, proprio: np.ndarray | None) -> dict[str, Tensor | None]:
        px = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)  # (B, 3, H, W)
        pr = None if proprio is None else torch.from_numpy(np.asarray(proprio, dtype=np.float32))
        return self.wm.encode(px, pr)

    def reset(self, batch: EnvBatch, seed: int) -> None:
        """Encode the goal images, re-seed the planner, forget the warm start and the context."""
        self.planner.reseed(seed)
        self.controller = RecedingHorizonController(self.planner, batch.num_envs, self.execute_steps)
        goal_proprio = None  # goals are images; their proprio is not observed
        self.goal = self._encode(batch.goal_pixels(), goal_proprio)["latents"]
        self.goal_proprio = (
            self.proprio_readout(self.goal) if self.proprio_weight > 0 else None
        )  # (B, P) normalised proprio the goal image shows
        self.history, self.proprio_history, self.action_history = [], [], []

    def act(self, batch: EnvBatch) -> np.ndarray:
        """Plan for all envs in one batched call; (B, k * frameskip, A_env) env actions."""
        assert self.controller is not None and self.goal is not None, "call reset() first"
        obs = self._encode(batch.pixels, batch.proprio)
        self.history = (self.history + [obs["latents"]])[-self.context_frames :]
        if obs["proprio"] is not None:
            self.proprio_history = (self.proprio_history + [obs["proprio"]])[-self.context_frames :]
        hist = torch.stack(self.history, dim=1)  # (B, T0, N, D)
        prop = torch.stack(self.proprio_history, dim=1) if self.proprio_history else None  # (B, T0, P)
        t0 = hist.shape[1]
        act_hist = torch.stack(self.action_history[-(t0 - 1) :], dim=1) if t0 > 1 else None  # (B, T0-1, A)
        goal, goal_prop = self._target(obs["latents"])  # (B, N, D), (B, P) or None

        def cost_fn(actions: Tensor) -> Tensor:  # (B, S, H, A) -> (B, S)
            with torch.no_grad():
                pred = self.wm.rollout(hist, actions, proprio_history=prop, action_history=act_hist)
            if self.readout is not None:
                cost = self._readout_cost(pred["latents"], goal)  # (B, S)
            else:
                cost = self.latent_weight * self.wm.goal_cost(pred, goal, kind=self.cost_kind, steps=self.cost_steps)
            if goal_prop is not None:
                cost = cost + self.proprio_weight * self._proprio_cost(pred["proprio"], goal_prop)  # (B, S)
            if self.action_cost > 0:
                cost = cost + self.action_cost * actions.pow(2).mean((-1, -2))
            return cost

        plan = self.controller.act(cost_fn)  # (B, k, A) on the planner's device
        # Record the first executed planner action as context for the next frame (one frame per planner step).
        self.action_history = (self.action_history + [plan[:, 0].to(hist.device)])[-self.context_frames :]
        env_a = batch.action_low.shape[0]
        b, k, _ = plan.shape
        return plan.reshape(b, k * self.wm.frameskip, env_a).cpu().numpy()  # (B, k*frameskip, A_env)

    def _target(self, now: Tensor) -> tuple[Tensor, Tensor | None]:
        """What this plan aims at: the goal, or the graph's subgoal toward it; (B, N, D) latents, (B, P) proprio."""
        assert self.goal is not None
        if self.graph is None:
            return self.goal, self.goal_proprio
        node, direct = self.graph.subgoal(now.flatten(1), self.goal.flatten(1), self.lookahead)  # (B,), (B,)
        sub = self.graph.features[node].to(self.goal.device).view_as(self.goal)  # (B, N, D)
        target = torch.where(direct.to(self.goal.device)[:, None, None], self.goal, sub)  # (B, N, D)
        prop = self.proprio_readout(target) if self.proprio_weight > 0 else None  # (B, P)
        return target, prop

    def _proprio_cost(self, pred: Tensor | None, goal: Tensor) -> Tensor:
        """Distance of imagined proprio (B, S, H, P) to the goal's (B, P), normalised units -> (B, S)."""
        if pred is None:
            raise ValueError("agent.proprio_weight > 0 needs a world model that predicts proprio")
        diff = pred - goal[:, None, None]  # (B, S, H, P)
        per_step = diff.abs().mean(-1) if self.cost_kind == "l1" else diff.pow(2).mean(-1)  # (B, S, H)
        return per_step[..., -1] if self.cost_steps == "last" else per_step.mean(-1)

    def _readout_cost(self, pred: Tensor, goal: Tensor) -> Tensor:
        """Euclidean distance of read-out coords: pred (B, S, H, N, D), goal (B, N, D) -> (B, S)."""
        y = self.readout(pred)  # (B, S, H, K)
        g = self.readout(goal)[:, None, None]  # (B, 1, 1, K)
        dist = (y - g).norm(dim=-1)  # (B, S, H)
        return dist[..., -1] if self.cost_steps == "last" else dist.mean(-1)


class OracleAgent:
    """The same planner through the true simulator, cost = true goal distance: the ceiling.

    Candidates are simulated from the exact current state with MuJoCo's batched rollout; the cost sums the
    task distance over the horizon (``cost_steps="all"``, which a prototype found far better than the last
    step alone: 100% vs 12% on TwoRoom) or takes the last step.
    """

    name = "oracle"

    def __init__(
        self,
        planner: Planner,
        execute_steps: int = 1,
        cost_steps: str = "all",
        subgoal_graph: Any = None,
        subgoal_states: np.ndarray | None = None,
        subgoal_lookahead: float = 5.0,
    ) -> None:
        self.planner = planner
        # Optional WaypointGraph over the task coords of dataset states (subgoal_states (M, Ds)): the same subgoal
        # machinery as the world model's agent, with true distances, so the ceiling stays a ceiling.
        if (subgoal_graph is None) != (subgoal_states is None):
            raise ValueError("OracleAgent needs both subgoal_graph and subgoal_states, or neither")
        self.graph, self.graph_states, self.lookahead = subgoal_graph, subgoal_states, float(subgoal_lookahead)
        self.execute_steps = int(execute_steps)
        self.cost_steps = cost_steps
        self.controller: RecedingHorizonController | None = None
        self.sim: Any = None

    def reset(self, batch: EnvBatch, seed: int) -> None:
        """Build the batched simulator, re-seed the planner, start a fresh controller."""
        self.planner.reseed(seed)
        self.controller = RecedingHorizonController(self.planner, batch.num_envs, self.execute_steps)
        if self.sim is None:
            self.sim = batch.base[0].batch_simulator()

    def act(self, batch: EnvBatch) -> np.ndarray:
        """(B, k, A) from planning on the simulator (host round trips are inherent to a CPU simulator)."""
        assert self.controller is not None
        states = batch.states()  # (B, Ds)
        goals = batch.goal_states()  # (B, Ds)
        base = batch.base[0]
        if self.graph is not None:
            now = torch.as_tensor(base.state_to_task_coords(states), dtype=torch.float32)  # (B, K)
            end = torch.as_tensor(base.state_to_task_coords(goals), dtype=torch.float32)  # (B, K)
            node, direct = self.graph.subgoal(now, end, self.lookahead)  # (B,), (B,)
            goals = np.where(direct.numpy()[:, None], goals, self.graph_states[node.numpy()])  # (B, Ds)

        def cost_fn(actions: Tensor) -> Tensor:  # (B, S, H, A) -> (B, S)
            b, s, h, a = actions.shape
            acts = actions.detach().cpu().numpy().astype(np.float64).reshape(b * s, h, a)
            start = np.repeat(states, s, axis=0)  # (B*S, Ds)
            traj = self.sim(start, acts).reshape(b, s, h, -1)  # (B, S, H, Ds)
            dist = np.stack([base.goal_distance(traj[i], goals[i]) for i in range(b)])  # (B, S, H)
            cost = dist.mean(-1) if self.cost_steps == "all" else dist[..., -1]
            return torch.from_numpy(cost.astype(np.float32)).to(actions.device)

        plan = self.controller.act(cost_fn)  # (B, k, A)
        return plan.cpu().numpy()
