"""Scripted data-collection policies: uniform random, and a privileged exploration policy per task.

The exploration policies read the simulator state through ``env.unwrapped`` and add temporally correlated
Ornstein-Uhlenbeck noise, which covers far more of the state space than i.i.d. noise:
TwoRoom crosses the door often, Reacher sweeps joint space, Push makes many block contacts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import gymnasium
import numpy as np

from envs.base import wrap_angle
from envs.push import PushEnv
from envs.reacher import ReacherEnv
from envs.tworoom import TwoRoomEnv

POLICY_NAMES: tuple[str, ...] = ("random", "explore")  # every built-in task has these
ENV_POLICY_NAMES: tuple[str, ...] = ("expert",)  # only envs with the expert capability (envs/contract.py)


class Policy(Protocol):
    """Maps an observation to an action (float32, inside the action bounds); reset() starts an episode."""

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def reset(self) -> None: ...


class OUNoise:
    """Ornstein-Uhlenbeck noise: mean-reverting random walk giving smooth, persistent perturbations."""

    def __init__(self, dim: int, rng: np.random.Generator, theta: float = 0.15, sigma: float = 0.25) -> None:
        self.dim, self.rng, self.theta, self.sigma = dim, rng, theta, sigma
        self.value = np.zeros(dim)

    def reset(self) -> None:
        """Restart the process at zero."""
        self.value = np.zeros(self.dim)

    def __call__(self) -> np.ndarray:
        """Advance one step and return the noise (dim,)."""
        self.value += -self.theta * self.value + self.sigma * self.rng.standard_normal(self.dim)
        return self.value.copy()


def _to_action(raw: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1] and cast to float32."""
    return np.clip(raw, -1.0, 1.0).astype(np.float32)


class RandomPolicy:
    """Uniform i.i.d. actions in [-1, 1]^action_dim."""

    def __init__(self, env: gymnasium.Env, rng: np.random.Generator) -> None:
        self.action_dim = int(np.prod(env.action_space.shape))
        self.rng = rng

    def reset(self) -> None:
        """Stateless: nothing to reset."""

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One uniform random action (action_dim,) float32."""
        return self.rng.uniform(-1.0, 1.0, size=self.action_dim).astype(np.float32)


class TwoRoomExplore:
    """Drive to random targets (through the door when in the other room) with OU noise on the command.

    Goals are images of the agent at rest; with ``rest_prob > 0`` the data shows stopping: on arriving at a
    target the policy rests there (brakes, tiny noise) for a few steps with that probability, and each
    target is approached at a random top speed in ``speed_range`` (slow approaches, not only full speed).
    Both are off by default (no extra random draws, so default data is unchanged): on TwoRoom they did not
    raise closed-loop success (docs/results.md, "Why the world model hovers").
    """

    def __init__(
        self,
        env: TwoRoomEnv,
        rng: np.random.Generator,
        cross_prob: float = 0.6,
        noise: float = 0.25,
        rest_prob: float = 0.0,
        rest_steps: tuple[int, int] = (3, 12),
        speed_range: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        _check_rest_args(rest_prob, rest_steps)
        if not 0.0 < speed_range[0] <= speed_range[1] <= 1.0:
            raise ValueError(f"speed_range={speed_range} must satisfy 0 < low <= high <= 1.")
        self.env, self.rng, self.cross_prob = env, rng, cross_prob
        self.noise = OUNoise(2, rng, sigma=noise)
        self.gain, self.damping, self.timeout = 4.0, 0.3, 40
        self.rest_prob, self.rest_steps, self.speed_range = float(rest_prob), tuple(rest_steps), tuple(speed_range)
        self.waypoints: list[np.ndarray] = []
        self.steps = 0
        self.rest_left = 0
        self.speed = 1.0

    def reset(self) -> None:
        """Forget the plan and the noise state."""
        self.noise.reset()
        self.waypoints = []
        self.steps = 0
        self.rest_left = 0
        self.speed = 1.0

    def _plan(self, pos: np.ndarray) -> None:
        """Choose a target; when it is in the other room route through both sides of the door."""
        env = self.env
        room = int(env.room_of(pos))
        cross = self.rng.random() < self.cross_prob
        target = env.sample_position(self.rng, -room if cross else room)
        self.waypoints = []
        if cross:
            slack = max(env.door_half_width - env.agent_radius - 0.03, 0.0)
            y = self.rng.uniform(-slack, slack)
            offset = env.wall_half_thickness + env.agent_radius + 0.1
            self.waypoints += [np.array([room * offset, y]), np.array([-room * offset, y])]
        self.waypoints.append(target)
        low, high = self.speed_range
        self.speed = float(self.rng.uniform(low, high)) if high > low else float(high)
        self.steps = 0

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Proportional command toward the next waypoint plus OU noise, or a brake while resting (2,) float32."""
        state = self.env.get_state()
        pos, vel = self.env.qpos(state)[:2], self.env.qvel(state)[:2]
        if self.rest_left > 0:
            self.rest_left -= 1
            return _to_action(-self.damping * vel + 0.05 * self.rng.standard_normal(2))
        if self.waypoints and (np.linalg.norm(self.waypoints[0] - pos) < 0.1 or self.steps > self.timeout):
            arrived_at_target = len(self.waypoints) == 1
            self.waypoints.pop(0)
            self.steps = 0
            if arrived_at_target and self.rest_prob > 0 and self.rng.random() < self.rest_prob:
                self.rest_left = int(self.rng.integers(self.rest_steps[0], self.rest_steps[1] + 1)) - 1
                self.noise.reset()
                return _to_action(-self.damping * vel)
        if not self.waypoints:
            self._plan(pos)
        self.steps += 1
        cmd = self.gain * (self.waypoints[0] - pos) - self.damping * vel + self.noise()
        return _to_action(np.clip(cmd, -self.speed, self.speed))


def _check_rest_args(rest_prob: float, rest_steps: tuple[int, int]) -> None:
    """Validate the resting options shared by the explorers."""
    if not 0.0 <= rest_prob <= 1.0:
        raise ValueError(f"rest_prob={rest_prob} must lie in [0, 1].")
    if len(rest_steps) != 2 or not 1 <= rest_steps[0] <= rest_steps[1]:
        raise ValueError(f"rest_steps={rest_steps} must be (low, high) with 1 <= low <= high.")


class ReacherExplore:
    """PD control toward random joint configurations with OU noise: sweeps the whole workspace.

    Whenever it picks a new target (target reached or timed out), with probability ``rest_prob`` (default 0:
    off) the arm first holds its current configuration (PD, no noise) for a few steps, so the data shows the
    arm settling, as it must at a goal.
    """

    def __init__(
        self,
        env: ReacherEnv,
        rng: np.random.Generator,
        noise: float = 0.3,
        rest_prob: float = 0.0,
        rest_steps: tuple[int, int] = (3, 12),
    ) -> None:
        _check_rest_args(rest_prob, rest_steps)
        self.env, self.rng = env, rng
        self.noise = OUNoise(2, rng, sigma=noise)
        self.kp, self.kd, self.timeout = 2.0, 0.3, 40
        self.rest_prob, self.rest_steps = float(rest_prob), tuple(rest_steps)
        self.target: np.ndarray | None = None
        self.hold: np.ndarray | None = None  # joint configuration held while resting
        self.steps = 0
        self.rest_left = 0

    def reset(self) -> None:
        """Forget the target and the noise state."""
        self.noise.reset()
        self.target = None
        self.hold = None
        self.steps = 0
        self.rest_left = 0

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """PD torque toward the current target configuration plus OU noise (2,) float32."""
        state = self.env.get_state()
        q, dq = self.env.qpos(state), self.env.qvel(state)
        if self.rest_left > 0 and self.hold is not None:
            self.rest_left -= 1
            return _to_action(self.kp * wrap_angle(self.hold - q) - 2 * self.kd * dq)
        reached = self.target is not None and np.linalg.norm(wrap_angle(self.target - q)) < 0.2
        if self.target is None or self.steps > self.timeout or reached:
            if self.target is not None and self.rest_prob > 0 and self.rng.random() < self.rest_prob:  # settle
                self.rest_left = int(self.rng.integers(self.rest_steps[0], self.rest_steps[1] + 1)) - 1
                self.hold = q.copy()
                self.noise.reset()
                self.target = self.env.qpos(self.env.sample_goal(self.rng))
                self.steps = 0
                return _to_action(self.kp * wrap_angle(self.hold - q) - 2 * self.kd * dq)
            self.target = self.env.qpos(self.env.sample_goal(self.rng))
            self.steps = 0
        self.steps += 1
        return _to_action(self.kp * wrap_angle(self.target - q) - self.kd * dq + self.noise())


class PushExplore:
    """Circle round to a random side of the block, then push through it for a short stroke; repeat.

    Pushes are chosen so the pre-push point lies inside the arena and the stroke keeps the block away from
    the walls (preferring strokes back toward the centre), which keeps the block pushable all episode.
    """

    def __init__(self, env: PushEnv, rng: np.random.Generator, noise: float = 0.2) -> None:
        self.env, self.rng = env, rng
        self.noise = OUNoise(2, rng, sigma=noise)
        self.gain, self.damping, self.timeout = 4.0, 0.3, 40
        self.clearance = env.block_radius + env.pusher_radius + 0.05  # pusher-to-block distance when circling
        self.standoff = 0.7 * env.block_radius + env.pusher_radius  # pre-push distance: contact comes quickly
        self.phase = "approach"
        self.direction = np.array([1.0, 0.0])
        self.lateral = 0.0
        self.steps = 0
        self.push_steps = 0

    def reset(self) -> None:
        """Start a new approach and reset the noise."""
        self.noise.reset()
        self._new_push(self.env.qpos(self.env.get_state())[0:2])

    def _prepush_point(self, block_xy: np.ndarray, direction: np.ndarray, lateral: float) -> np.ndarray:
        """Pusher position (2,) behind the block for a push along ``direction`` with a lateral offset."""
        perp = np.array([-direction[1], direction[0]])
        return block_xy - self.standoff * direction + lateral * perp

    def _new_push(self, block_xy: np.ndarray) -> None:
        """Pick a feasible push direction, lateral offset (sets the torque) and stroke length."""
        env, n = self.env, 24
        lim = env.arena_half - env.pusher_radius
        angles = self.rng.uniform(-np.pi, np.pi, size=n)  # (n,) candidates
        dirs = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (n, 2)
        laterals = self.rng.uniform(-0.35, 0.35, size=n)  # (n,)
        points = block_xy - self.standoff * dirs + laterals[:, None] * dirs[:, ::-1] * [-1, 1]  # (n, 2)
        reachable = np.all(np.abs(points) < lim, axis=-1)  # (n,)
        self.push_steps = int(self.rng.integers(5, 16))
        stroke = self.push_steps * env.control_dt  # rough block travel (arena units) at ~1 unit/s
        stays_clear = np.all(np.abs(block_xy + stroke * dirs) < env.block_limit, axis=-1)  # (n,)
        inward = dirs @ -block_xy  # (n,) positive when pushing toward the centre
        score = 2.0 * inward + self.rng.uniform(0.0, 1.0, size=n) + 4.0 * stays_clear
        score = np.where(reachable, score, -np.inf)
        best = int(np.argmax(score))
        self.direction, self.lateral = dirs[best], float(laterals[best])
        self.phase = "approach"
        self.steps = 0

    def _approach_target(self, block_xy: np.ndarray, pusher: np.ndarray) -> tuple[np.ndarray, bool]:
        """Next point (2,) on the way to the pre-push point, circling the block; flag: final point."""
        goal = self._prepush_point(block_xy, self.direction, self.lateral)
        rel_p, rel_g = pusher - block_xy, goal - block_xy
        a_p, a_g = np.arctan2(rel_p[1], rel_p[0]), np.arctan2(rel_g[1], rel_g[0])
        gap = float(wrap_angle(a_g - a_p))
        if abs(gap) < np.pi / 4:  # already on the right side: go straight in
            return goal, True
        via_angle = a_p + np.sign(gap) * np.pi / 4  # step a quarter turn round the block
        radius = max(self.clearance, float(np.linalg.norm(rel_p)))
        return block_xy + radius * np.array([np.cos(via_angle), np.sin(via_angle)]), False

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Approach the pre-push point round the block, then push along the chosen direction (2,) float32."""
        env = self.env
        state = env.get_state()
        q, vel = env.qpos(state), env.qvel(state)[3:5]
        block_xy, pusher = q[0:2], q[3:5]
        self.steps += 1
        if self.phase == "approach":
            lim = env.arena_half - env.pusher_radius
            target, final = self._approach_target(block_xy, pusher)
            target = np.clip(target, -lim, lim)
            if (final and np.linalg.norm(target - pusher) < 0.1) or self.steps > self.timeout:
                self.phase, self.steps = "push", 0
            return _to_action(self.gain * (target - pusher) - self.damping * vel + self.noise())
        heading_out = np.any(np.abs(block_xy) > env.block_limit) and float(self.direction @ block_xy) > 0
        if self.steps > self.push_steps or heading_out:  # stroke done, or it would pin the block to a wall
            self._new_push(block_xy)
        return _to_action(self.direction + self.noise())


_EXPLORERS: dict[type, Callable[..., Policy]] = {
    TwoRoomEnv: TwoRoomExplore,
    ReacherEnv: ReacherExplore,
    PushEnv: PushExplore,
}


def register_explore_policy(env_class: type, factory: Callable[..., Policy]) -> None:
    """Make ``make_policy("explore", env, rng)`` build ``factory(env.unwrapped, rng)`` for ``env_class`` envs."""
    _EXPLORERS[env_class] = factory


def make_policy(
    name: str, env: gymnasium.Env, rng: np.random.Generator, kwargs: Mapping[str, Any] | None = None
) -> Policy:
    """Build policy ``name`` ('random', 'explore' or 'expert') for ``env`` (wrapped or not), drawing from ``rng``;
    ``kwargs`` go to the explorer's constructor (e.g. ``rest_prob`` for TwoRoom and Reacher) or the expert's
    (``noise``, ``random_prob``)."""
    kwargs = dict(kwargs or {})
    if name == "random":
        if kwargs:
            raise ValueError(f"policy 'random' takes no options, got policy_kwargs={kwargs}")
        return RandomPolicy(env, rng)
    if name == "explore":
        task = env.unwrapped
        for cls, factory in _EXPLORERS.items():
            if isinstance(task, cls):
                try:
                    return factory(task, rng, **kwargs)
                except TypeError as exc:
                    raise ValueError(
                        f"policy_kwargs={kwargs} do not fit the {type(task).__name__} explorer "
                        f"{getattr(factory, '__name__', factory)}: {exc}"
                    ) from None
        raise ValueError(
            f"No exploration policy for {type(task).__name__}; known tasks: "
            f"{[c.__name__ for c in _EXPLORERS]}."
        )
    if name == "expert":
        return _expert_policy(env, rng, kwargs)
    raise ValueError(f"Unknown policy {name!r}; choose one of {POLICY_NAMES + ENV_POLICY_NAMES}.")


class ExpertPolicy:
    """The env's own expert (``expert_action()``, envs/contract.py's ExpertEnv: a user-supplied policy toward the
    episode's goal) with optional exploration: Gaussian noise of std ``noise`` on every action, and a uniform
    random action instead with probability ``random_prob``."""

    def __init__(self, env: Any, rng: np.random.Generator, noise: float = 0.0, random_prob: float = 0.0) -> None:
        if not float(noise) >= 0.0:
            raise ValueError(f"noise={noise} must be >= 0 (std of the Gaussian added to the expert's actions).")
        if not 0.0 <= float(random_prob) <= 1.0:
            raise ValueError(f"random_prob={random_prob} must lie in [0, 1].")
        self.env, self.rng, self.noise, self.random_prob = env, rng, float(noise), float(random_prob)

    def reset(self) -> None:
        """Stateless (the env knows the goal): nothing to reset."""

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The expert's action (A,) float32, perturbed as configured, clipped to [-1, 1]."""
        act = np.asarray(self.env.expert_action(), dtype=np.float64)  # (A,)
        if self.random_prob > 0 and self.rng.random() < self.random_prob:
            act = self.rng.uniform(-1.0, 1.0, act.shape)
        elif self.noise > 0:
            act = act + self.noise * self.rng.standard_normal(act.shape)
        return _to_action(act)


def _expert_policy(env: gymnasium.Env, rng: np.random.Generator, kwargs: dict[str, Any]) -> Policy:
    """ExpertPolicy for an env with the expert capability; a clear error naming the fix otherwise."""
    from envs.contract import EXPERT_MEMBERS, describe_missing

    task = env.unwrapped
    missing = describe_missing(task, EXPERT_MEMBERS)
    if missing:
        raise ValueError(f"policy 'expert' needs an env with an expert policy: {'; '.join(missing)}")
    unknown = sorted(set(kwargs) - {"noise", "random_prob"})
    if unknown:
        raise ValueError(f"policy_kwargs {unknown} do not fit the expert policy; it takes noise and random_prob")
    return ExpertPolicy(task, rng, **kwargs)
