"""Agents the closed-loop harness compares: planning in a world model's latent space, planning through the
true simulator (the ceiling), a user-supplied expert policy (the ceiling where the env has no simulator), and
uniform random actions (the floor). Envs are driven through the contract of ``envs/contract.py``.

Every agent plans in *chunks*: one call returns (B, k, A_env) env actions for B environments at once. The
planning agents only observe, ask their target provider what to aim at, hand the planner
``cost_function(dynamics, objective, target)`` (worldmodel/planning) and act; the cost lives in the objective.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from planners.base import Planner
from planners.mpc import RecedingHorizonController
from worldmodel.config.agent import AgentConfig
from worldmodel.config.eval import OracleConfig
from worldmodel.eval.episodes import EnvBatch
from worldmodel.eval.views import check_env_cameras, current_views, goal_views
from worldmodel.planning import (
    LatentDynamics,
    LatentTargets,
    Objective,
    ProprioDistance,
    RenderedDynamics,
    SimulatorDynamics,
    StateTargets,
    TaskDistance,
    cost_function,
)


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


class ExpertAgent:
    """The env's own expert policy (``expert_action()``, a user-supplied function): a ceiling labelled as such.

    Where the env has no simulator the oracle cannot plan; the expert then bounds what a planner should reach.
    It acts from the true state toward the true goal state, one env step per call.
    """

    name = "expert"

    def reset(self, batch: EnvBatch, seed: int) -> None:
        """Check that every env has the expert capability (the expert is deterministic: ``seed`` is unused)."""
        from envs.contract import require

        require(batch.base[0], "expert", "expert", EXPERT_FIX)

    def act(self, batch: EnvBatch) -> np.ndarray:
        """(B, 1, A) expert actions from each env's current state toward its goal."""
        experts: list[Any] = list(batch.base)
        acts = np.stack([np.asarray(env.expert_action(), dtype=np.float32) for env in experts])  # (B, A)
        return acts[:, None]  # (B, 1, A)


EXPERT_FIX = (
    "Give the env an expert (generic adapter: env.kwargs.expert='module:function', f(env, goal_state) -> action) "
    "or drop expert from methods (methods=[random])"
)
ORACLE_FIX = (
    "Drop oracle from methods (methods=[random] or methods=[random,expert] with an expert policy as the ceiling), or "
    "give the env a simulator (generic adapter: env.kwargs.simulator=true, exact when the state hooks capture the "
    "whole state)"
)


def _lookahead(graph: Any, lookahead: float | None, planner: Planner, frameskip: int) -> float:
    """Env steps from the current node to the subgoal: ``lookahead``, else the plan's reach (horizon x frameskip);
    unused (0) without a graph."""
    if lookahead is not None:
        return float(lookahead)
    return float(planner.horizon * frameskip) if graph is not None else 0.0


class LatentPlanningAgent:
    """Receding-horizon planning through a world model toward the goal image (or a subgoal toward it).

    Args:
        world_model: ``WorldModel`` (encode, rollout, frameskip).
        planner: any planner; one planner step is ``frameskip`` env steps.
        objective: the cost of an imagined rollout against the target (worldmodel/planning).
        execute_steps: planner steps executed before replanning (default: ``AgentConfig``'s).
        context_frames: observed frames (with their proprio and actions) the predictor sees as history.
        proprio_readout: latents (..., N, D) -> normalised proprio (..., P); needed when the objective has a
            ProprioDistance term (the goal's proprio is read out of the goal image, never given).
        subgoal_graph: optional waypoint graph over dataset latents; each plan aims ``subgoal_lookahead`` env
            steps along its shortest path to the goal (None: the planner's reach, horizon x frameskip).
        dynamics: "predictor" (imagine candidates with the world model) or "simulator" (simulate them in the env's
            true physics and encode the rendered frames: the same latent cost with a perfect predictor).
    """

    name = "world_model"

    def __init__(
        self,
        world_model: Any,
        planner: Planner,
        objective: Objective,
        execute_steps: int = AgentConfig.execute_steps,
        context_frames: int = AgentConfig.context_frames,
        proprio_readout: Callable[[Tensor], Tensor] | None = None,
        subgoal_graph: Any = None,
        subgoal_lookahead: float | None = None,
        dynamics: str = AgentConfig.dynamics,
    ) -> None:
        if objective.needs(ProprioDistance) and proprio_readout is None:
            raise ValueError("an objective with a proprio term needs a proprio readout of the goal latents")
        if dynamics == "simulator":
            _check_rendered(world_model, objective)
        self.wm, self.planner, self.objective = world_model, planner, objective
        self.readout = proprio_readout if objective.needs(ProprioDistance) else None
        self.graph, self.lookahead = subgoal_graph, _lookahead(subgoal_graph, subgoal_lookahead, planner,
                                                               world_model.frameskip)
        self.execute_steps, self.context_frames = int(execute_steps), max(1, int(context_frames))
        self.dynamics, self.sim, self.render = dynamics, None, None
        self.controller: RecedingHorizonController | None = None
        self.targets: LatentTargets | None = None
        self.history: dict[str, list[Tensor]] = {"latents": [], "proprio": [], "actions": []}  # each (B, ...)

    def _encode(
        self, pixels: np.ndarray | dict[str, np.ndarray], proprio: np.ndarray | None
    ) -> dict[str, Tensor | None]:
        """Encode (B, H, W, 3) frames, or {camera: (B, H, W, 3)} for a multi-camera world model."""

        def chw(x: np.ndarray) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)  # (B, 3, H, W)

        px = {c: chw(v) for c, v in pixels.items()} if isinstance(pixels, dict) else chw(pixels)
        pr = None if proprio is None else torch.from_numpy(np.asarray(proprio, dtype=np.float32))
        return self.wm.encode(px, pr)

    def _observed(self, batch: EnvBatch, goal: bool) -> np.ndarray | dict[str, np.ndarray]:
        """The current (or goal) frames the world model reads: the main camera's, or each of its cameras'."""
        cams = getattr(self.wm, "cameras", None)
        if cams is None:
            return batch.goal_pixels() if goal else batch.pixels
        return goal_views(batch, cams) if goal else current_views(batch, cams)

    def reset(self, batch: EnvBatch, seed: int) -> None:
        """Encode the goal images (pixels only), re-seed the planner, forget the warm start and the context."""
        self.planner.reseed(seed)
        self.controller = RecedingHorizonController(self.planner, batch.num_envs, self.execute_steps)
        if getattr(self.wm, "cameras", None) is not None:
            check_env_cameras(batch.base[0], self.wm.cameras)
        goal = self._encode(self._observed(batch, goal=True), None)["latents"]  # (B, N, D)
        self.targets = LatentTargets(goal, self.readout, self.graph, self.lookahead)
        self.history = {"latents": [], "proprio": [], "actions": []}
        if self.dynamics == "simulator" and self.sim is None:
            from envs.contract import require

            base: Any = batch.base[0]
            require(base, "simulator", "agent.dynamics=simulator", SIMULATOR_DYNAMICS_FIX)
            self.sim, self.render = base.batch_simulator(), base.render_state

    def _remember(self, key: str, value: Tensor | None, keep: int) -> list[Tensor]:
        if value is not None:
            self.history[key] = (self.history[key] + [value])[-keep:] if keep > 0 else []
        return self.history[key]

    def _dynamics(self, obs: dict[str, Tensor | None]) -> LatentDynamics:
        """The world model from the last ``context_frames`` observed frames (B, T0, ...)."""
        lat = torch.stack(self._remember("latents", obs["latents"], self.context_frames), dim=1)  # (B, T0, N, D)
        props = self._remember("proprio", obs["proprio"], self.context_frames)
        prop = torch.stack(props, dim=1) if props else None  # (B, T0, P)
        t0 = lat.shape[1]
        acts = self.history["actions"][-(t0 - 1) :] if t0 > 1 else []
        return LatentDynamics(self.wm, lat, prop, torch.stack(acts, dim=1) if acts else None)  # (B, T0-1, A)

    def _rendered(self, batch: EnvBatch) -> RenderedDynamics:
        """The true simulator from the envs' exact states, its frames encoded by the world model's encoder."""
        reads_all = any(getattr(term, "steps", "last") == "all" for _, term in self.objective.terms)

        def encode(frames: Tensor) -> Tensor:  # (M, 3, H, W) uint8 -> (M, N, D), the goal's latent space
            return self.wm.encode(frames)["latents"]

        return RenderedDynamics(
            self.sim, batch.states(), self.render, encode, self.wm.frameskip, "all" if reads_all else "last"
        )

    def act(self, batch: EnvBatch) -> np.ndarray:
        """Plan for all envs in one batched call; (B, k * frameskip, A_env) env actions."""
        assert self.controller is not None and self.targets is not None, "call reset() first"
        obs = self._encode(self._observed(batch, goal=False), batch.proprio)
        dynamics = self._dynamics(obs) if self.dynamics == "predictor" else self._rendered(batch)
        target = self.targets(obs["latents"])  # type: ignore[arg-type]
        plan = self.controller.act(cost_function(dynamics, self.objective, target))  # (B, k, A)
        # The first executed planner action is the context action before the next observed frame.
        self._remember("actions", plan[:, 0].to(obs["latents"].device), self.context_frames - 1)  # type: ignore[union-attr]
        b, k, _ = plan.shape
        return plan.reshape(b, k * self.wm.frameskip, batch.action_low.shape[0]).cpu().numpy()


SIMULATOR_DYNAMICS_FIX = (
    "agent.dynamics=simulator simulates candidates in the env's physics; use an env with a simulator (the built-in "
    "tasks, or the generic adapter with env.kwargs.simulator=true) or leave agent.dynamics=predictor"
)


def _check_rendered(world_model: Any, objective: Objective) -> None:
    """Refuse what agent.dynamics=simulator cannot score: terms that need imagined proprio, other cameras."""
    if objective.needs(ProprioDistance):
        raise ValueError(
            "agent.dynamics=simulator scores encoded frames only; it has no imagined proprio for the proprio term: "
            "set objective.proprio.weight=0"
        )
    if getattr(world_model, "cameras", None) is not None:
        raise ValueError(
            "agent.dynamics=simulator renders the main camera only; this world model reads several cameras "
            f"({world_model.cameras}): leave agent.dynamics=predictor"
        )


class OracleAgent:
    """The same planner through the true simulator, cost = the env's task distance: the ceiling.

    Candidates are simulated from the exact current state with MuJoCo's batched rollout; the objective is one
    ``TaskDistance`` term over the horizon (``cost_steps="all"``, which a prototype found far better than the
    last step alone: 100% vs 12% on TwoRoom) or at its last step. With a subgoal graph over true task
    coordinates it aims at subgoals exactly as the world-model agent does.
    """

    name = "oracle"

    def __init__(
        self,
        planner: Planner,
        execute_steps: int = AgentConfig.execute_steps,
        cost_steps: str = OracleConfig.cost_steps,
        subgoal_graph: Any = None,
        subgoal_states: np.ndarray | None = None,
        subgoal_lookahead: float | None = None,
    ) -> None:
        if (subgoal_graph is None) != (subgoal_states is None):
            raise ValueError("OracleAgent needs both subgoal_graph and subgoal_states, or neither")
        self.planner, self.execute_steps, self.cost_steps = planner, int(execute_steps), cost_steps
        lookahead = _lookahead(subgoal_graph, subgoal_lookahead, planner, 1)  # the oracle plans in env steps
        self.graph, self.graph_states, self.lookahead = subgoal_graph, subgoal_states, lookahead
        self.controller: RecedingHorizonController | None = None
        self.objective: Objective | None = None
        self.targets: StateTargets | None = None
        self.sim: Any = None

    def reset(self, batch: EnvBatch, seed: int) -> None:
        """Build the batched simulator and the objective, re-seed the planner, start a fresh controller."""
        self.planner.reseed(seed)
        self.controller = RecedingHorizonController(self.planner, batch.num_envs, self.execute_steps)
        from envs.contract import require

        base: Any = batch.base[0]
        require(base, "simulator", "oracle", ORACLE_FIX)
        require(base, "task_coords", "oracle", ORACLE_FIX)
        if self.sim is None:
            self.sim = base.batch_simulator()
        self.objective = Objective([(1.0, TaskDistance(base.goal_distance, self.cost_steps))])
        self.targets = StateTargets(
            batch.goal_states(), base.state_to_task_coords, self.graph, self.graph_states, self.lookahead
        )

    def act(self, batch: EnvBatch) -> np.ndarray:
        """(B, k, A) from planning on the simulator (host round trips are inherent to a CPU simulator)."""
        assert self.controller is not None and self.objective is not None and self.targets is not None
        states = batch.states()  # (B, Ds)
        cost = cost_function(SimulatorDynamics(self.sim, states), self.objective, self.targets(states))
        return self.controller.act(cost).cpu().numpy()  # (B, k, A)
