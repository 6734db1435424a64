"""The environment contract: what collection, evaluation and the benchmark need from an environment.

Any object with the members of :class:`GoalEnv` (a gymnasium-style env, goal-conditioned, observed through
pixels and proprioception, whose state can be read and written as a float vector) can be collected from,
trained on and evaluated closed-loop. The built-in tasks (``envs.base.MujocoGoalEnv``), the MuJoCo adapter
(``wm/GymAdapter-v0``) and the generic adapter for any gymnasium env (``wm/GymGeneric-v0``, envs/generic.py)
implement it; :func:`check_env` tells what an env lacks and how to add it.

Optional capabilities are separate small protocols; an env offers one when it has the member:

* :class:`SimulatorEnv` (``batch_simulator()``): the ``oracle`` baseline plans through it (the ceiling);
* :class:`TaskCoordsEnv` (``state_to_task_coords``, ``task_coord_names``): probes, the oracle's subgoal graph;
* :class:`ExpertEnv` (``expert_action()``): a user-supplied expert policy, the ``expert`` baseline (a ceiling
  where no simulator exists) and the ``expert`` collection policy.

Python 3.11's ``isinstance`` on a runtime protocol evaluates properties (``goal_state`` raises before
``reset``), so :func:`implements` looks members up statically instead.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import numpy as np

# member -> (what it is, how to provide it); the messages of check_env come from here.
GOAL_ENV_MEMBERS: dict[str, tuple[str, str]] = {
    "action_space": ("a gymnasium Box (A,) with bounds [-1, 1]", "set self.action_space = spaces.Box(-1, 1, (A,))"),
    "state_dim": ("int, the length of get_state()", "set self.state_dim = len(self.get_state())"),
    "proprio_dim": ("int, the length of obs['proprio']", "set self.proprio_dim (0 when there is no proprio)"),
    "success_threshold": ("float, success when info['distance'] < it", "set self.success_threshold"),
    "control_dt": ("float, seconds per env step (dataset metadata)", "set self.control_dt"),
    "reset": (
        "reset(seed=None, options={'init_state', 'goal_state'}) -> (obs, info)",
        "accept options init_state / goal_state (state vectors) and start the episode there",
    ),
    "step": ("step(action (A,)) -> (obs, reward, terminated, truncated, info)", "return info['success'/'distance']"),
    "get_state": ("get_state() -> (state_dim,) float64", "return every quantity the dynamics depend on"),
    "set_state": ("set_state(state (state_dim,)) -> None", "restore the env so that step() continues from state"),
    "goal_state": ("property, the goal (state_dim,)", "store the goal chosen in reset and return a copy"),
    "goal_pixels": ("property, goal image (H, W, 3) uint8", "render the goal state without touching the episode"),
    "goal_distance": (
        "goal_distance(states (..., Ds), goal (Ds,)) -> (...,)",
        "vectorise the task distance over leading axes",
    ),
    "is_success": ("is_success(states (..., Ds), goal (Ds,)) -> (...,) bool", "goal_distance < success_threshold"),
    "close": ("close() -> None", "free renderers and wrapped envs"),
}
SIMULATOR_MEMBERS: dict[str, tuple[str, str]] = {
    "batch_simulator": (
        "batch_simulator(threads=None) -> f(states (N, Ds), actions (N, H, A)) -> (N, H, Ds)",
        "roll candidate action sequences from set states (generic adapter: env.kwargs.simulator=true)",
    ),
}
TASK_COORDS_MEMBERS: dict[str, tuple[str, str]] = {
    "state_to_task_coords": ("state_to_task_coords(states (..., Ds)) -> (..., K)", "interpretable coordinates"),
    "task_coord_names": ("tuple of K column names", "name the columns of state_to_task_coords"),
}
EXPERT_MEMBERS: dict[str, tuple[str, str]] = {
    "expert_action": (
        "expert_action() -> (A,) float32 in [-1, 1] toward the current goal",
        "generic adapter: env.kwargs.expert='module:function'",
    ),
}


class BatchRollout(Protocol):
    """The oracle's model: roll (N, H, A) action sequences from (N, Ds) states -> (N, H, Ds) states."""

    def __call__(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray: ...


class GoalEnv(Protocol):
    """A goal-conditioned pixel environment the library drives (collection, evaluation, benchmark).

    Observations are ``{"pixels": (H, W, 3) uint8, "proprio": (proprio_dim,) float32}``; ``info`` after reset and
    every step holds ``success`` (bool) and ``distance`` (float, task units, the quantity ``success_threshold``
    bounds). Actions are (A,) float32 in [-1, 1]. A state is a float vector (state_dim,): the dataset stores it,
    the field protocol starts and ends episodes at stored states through ``reset(options=...)``.
    """

    action_space: Any
    state_dim: int
    proprio_dim: int
    success_threshold: float
    control_dt: float

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode (seeded); options may fix ``init_state`` and/or ``goal_state`` (state vectors)."""
        ...

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """One env step with an action (A,) in [-1, 1]; info has success and distance."""
        ...

    def get_state(self) -> np.ndarray:
        """Current state (state_dim,) float64."""
        ...

    def set_state(self, state: np.ndarray) -> None:
        """Put the env into ``state`` (the goal is untouched)."""
        ...

    @property
    def goal_state(self) -> np.ndarray:
        """The episode's goal state (state_dim,)."""
        ...

    @property
    def goal_pixels(self) -> np.ndarray:
        """The goal image (H, W, 3) uint8, rendered without disturbing the episode."""
        ...

    def goal_distance(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Task distance (...,) of states (..., Ds) to one goal (Ds,)."""
        ...

    def is_success(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Success flags (...,) of states (..., Ds) for one goal (Ds,)."""
        ...

    def close(self) -> None:
        """Free resources."""
        ...


class SimulatorEnv(Protocol):
    """Capability: a batched simulator from set states (the ``oracle`` baseline's model)."""

    def batch_simulator(self, threads: int | None = None) -> BatchRollout:
        """A rollout function from (N, Ds) states and (N, H, A) actions to (N, H, Ds) states."""
        ...


class TaskCoordsEnv(Protocol):
    """Capability: interpretable task coordinates of states (probes, the oracle's subgoal graph)."""

    task_coord_names: tuple[str, ...]

    def state_to_task_coords(self, states: np.ndarray) -> np.ndarray:
        """Coordinates (..., K) of states (..., Ds)."""
        ...


class ExpertEnv(Protocol):
    """Capability: a (user-supplied) expert policy toward the current goal (the ``expert`` baseline)."""

    def expert_action(self) -> np.ndarray:
        """The expert's action (A,) float32 in [-1, 1] from the current state toward the current goal."""
        ...


CAPABILITIES: dict[str, dict[str, tuple[str, str]]] = {
    "simulator": SIMULATOR_MEMBERS,
    "task_coords": TASK_COORDS_MEMBERS,
    "expert": EXPERT_MEMBERS,
}


def unwrap(env: Any) -> Any:
    """The env under gymnasium's wrappers (``env.unwrapped``), or the object itself."""
    return getattr(env, "unwrapped", env)


def missing_members(env: Any, members: dict[str, tuple[str, str]]) -> list[str]:
    """Names in ``members`` that ``env`` (unwrapped) lacks, found without calling properties."""
    base = unwrap(env)
    sentinel = object()
    return [name for name in members if inspect.getattr_static(base, name, sentinel) is sentinel]


def implements(env: Any, capability: str = "env") -> bool:
    """Whether ``env`` has every member of the contract (``"env"``) or of a capability (see CAPABILITIES)."""
    members = GOAL_ENV_MEMBERS if capability == "env" else _capability_members(capability)
    return not missing_members(env, members)


def _capability_members(capability: str) -> dict[str, tuple[str, str]]:
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; use 'env' or one of {sorted(CAPABILITIES)}")
    return CAPABILITIES[capability]


def describe_missing(env: Any, members: dict[str, tuple[str, str]]) -> list[str]:
    """One line per missing member: its name, what it is, and how to add it."""
    name = type(unwrap(env)).__name__
    return [f"{name} has no {m!r} ({members[m][0]}): {members[m][1]}" for m in missing_members(env, members)]


def check_env(env: Any, capabilities: tuple[str, ...] = (), seed: int = 0) -> None:
    """Validate ``env`` (wrapped or not) against the contract; raises ValueError listing every problem.

    Checks the members statically, then runs it: ``reset(seed)``, observation and info keys, shapes and dtypes,
    a ``get_state``/``set_state`` round trip through one step, the goal image, the vectorised metrics and
    ``reset(options=...)`` at a stored state. The env is left reset at a fresh episode.
    """
    problems = describe_missing(env, GOAL_ENV_MEMBERS)
    for cap in capabilities:
        problems += describe_missing(env, _capability_members(cap))
    if problems:
        raise ValueError("the env does not implement the contract (envs/contract.py):\n  " + "\n  ".join(problems))
    base = unwrap(env)
    problems = _run_checks(base, seed)
    if problems:
        raise ValueError(f"{type(base).__name__} breaks the contract (envs/contract.py):\n  " + "\n  ".join(problems))


def _run_checks(env: Any, seed: int) -> list[str]:
    """Behavioural checks of an env that has every member; a list of problems (empty when it conforms)."""
    problems: list[str] = []
    space = env.action_space
    low, high = np.asarray(getattr(space, "low", np.nan)), np.asarray(getattr(space, "high", np.nan))
    if getattr(space, "shape", None) is None or len(space.shape) != 1 or not (
        np.all(low == -1.0) and np.all(high == 1.0)
    ):
        problems.append(f"action_space must be a Box (A,) with bounds [-1, 1], got {space}: map actions onto it")
        return problems
    obs, info = env.reset(seed=seed)
    problems += _check_obs(env, obs, "reset") + _check_info(info, "reset")
    state = np.asarray(env.get_state())
    if state.shape != (int(env.state_dim),):
        problems.append(f"get_state() has shape {state.shape}, expected (state_dim={env.state_dim},)")
        return problems
    act = np.linspace(-0.5, 0.5, space.shape[0]).astype(np.float32)  # (A,)
    obs, _, _, _, info = env.step(act)
    problems += _check_obs(env, obs, "step") + _check_info(info, "step")
    after = np.asarray(env.get_state())
    env.set_state(state)
    if not np.array_equal(np.asarray(env.get_state()), state):
        problems.append("set_state(s) then get_state() does not return s: set_state must restore every entry")
    env.step(act)
    if not np.allclose(np.asarray(env.get_state()), after, rtol=0, atol=1e-9):
        problems.append("set_state(s) + step(a) does not repeat the step from s: the state misses something")
    problems += _check_goal(env, state)
    return problems


def _check_obs(env: Any, obs: Any, where: str) -> list[str]:
    """Observation dict: pixels (H, W, 3) uint8 and proprio (proprio_dim,) float32."""
    if not isinstance(obs, dict) or not {"pixels", "proprio"} <= set(obs):
        return [f"{where}() must return an observation dict with 'pixels' and 'proprio', got {type(obs).__name__}"]
    px, pr = np.asarray(obs["pixels"]), np.asarray(obs["proprio"])
    out = []
    if px.ndim != 3 or px.shape[-1] != 3 or px.dtype != np.uint8:
        out.append(f"{where}() obs['pixels'] is {px.dtype} {px.shape}; it must be (H, W, 3) uint8 RGB")
    if pr.shape != (int(env.proprio_dim),) or pr.dtype != np.float32:
        out.append(f"{where}() obs['proprio'] is {pr.dtype} {pr.shape}; it must be (proprio_dim={env.proprio_dim},) "
                   "float32")
    return out


def _check_info(info: Any, where: str) -> list[str]:
    """info holds success and distance."""
    if not isinstance(info, dict) or not {"success", "distance"} <= set(info):
        return [f"{where}() info must hold 'success' (bool) and 'distance' (float); got {sorted(info or {})}"]
    return []


def _check_goal(env: Any, state: np.ndarray) -> list[str]:
    """Goal image, vectorised metrics, and reset at stored start and goal states."""
    out = []
    goal = np.asarray(env.goal_state)
    px = np.asarray(env.goal_pixels)
    if px.ndim != 3 or px.shape[-1] != 3 or px.dtype != np.uint8:
        out.append(f"goal_pixels is {px.dtype} {px.shape}; it must be (H, W, 3) uint8 RGB")
    batch = np.stack([state, goal])[None].repeat(3, 0)  # (3, 2, Ds)
    dist = np.asarray(env.goal_distance(batch, goal))
    if dist.shape != (3, 2):
        out.append(f"goal_distance(states (3, 2, Ds), goal) has shape {dist.shape}, expected (3, 2): vectorise it")
    elif not dist[0, 1] < float(env.success_threshold):
        out.append("goal_distance(goal, goal) is not below success_threshold: the goal must count as a success")
    if np.asarray(env.is_success(batch, goal)).shape != (3, 2):
        out.append("is_success(states (3, 2, Ds), goal) must have shape (3, 2): vectorise it")
    env.reset(seed=1, options={"init_state": goal, "goal_state": state})
    if not np.allclose(np.asarray(env.get_state()), goal) or not np.allclose(np.asarray(env.goal_state), state):
        out.append("reset(options={'init_state': s, 'goal_state': g}) must start at s with goal g")
    return out


def require(env: Any, capability: str, method: str, fix: str) -> None:
    """Raise a ValueError naming ``method``, the missing members and ``fix`` when ``env`` lacks ``capability``."""
    missing = missing_members(env, _capability_members(capability))
    if missing:
        raise ValueError(f"method {method!r} needs the env's {capability} capability, but "
                         f"{type(unwrap(env)).__name__} has no {', '.join(missing)}. {fix}")


__all__ = [
    "BatchRollout",
    "CAPABILITIES",
    "ExpertEnv",
    "GoalEnv",
    "SimulatorEnv",
    "TaskCoordsEnv",
    "check_env",
    "describe_missing",
    "implements",
    "missing_members",
    "require",
    "unwrap",
]


def reset_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of reset's ``options``; keys other than ``init_state`` and ``goal_state`` are a ValueError."""
    out = dict(options or {})
    unknown = set(out) - {"init_state", "goal_state"}
    if unknown:
        raise ValueError(f"Unknown reset options {sorted(unknown)}; valid keys are 'init_state', 'goal_state'.")
    return out


def check_action(action: Any, action_dim: int) -> np.ndarray:
    """One normalised action as a float64 (A,) vector; a wrong shape or a non-finite value is a ValueError."""
    act = np.asarray(action, dtype=np.float64).reshape(-1)
    if act.shape != (action_dim,):
        raise ValueError(f"action has shape {np.shape(action)}, expected ({action_dim},).")
    if not np.all(np.isfinite(act)):
        raise ValueError(f"action {act} contains NaN or inf; pass finite values in [-1, 1].")
    return act


class GoalSlot:
    """The episode's goal as the contract exposes it: ``goal_state``, ``set_goal`` and ``goal_pixels`` (rendered once
    per goal with the env's ``render_state``, which must not touch the episode). Envs mix it in and call
    ``_clear_goal()`` in ``__init__``; they provide ``_check_state`` and ``render_state``."""

    _goal_state: np.ndarray | None
    _goal_pixels: np.ndarray | None

    def _clear_goal(self) -> None:
        self._goal_state, self._goal_pixels = None, None

    def _check_state(self, state: np.ndarray, what: str = "state") -> np.ndarray:  # provided by the env
        raise NotImplementedError

    def render_state(self, state: np.ndarray) -> np.ndarray:  # provided by the env
        raise NotImplementedError

    @property
    def goal_state(self) -> np.ndarray:
        """Current goal state (state_dim,) (a copy)."""
        if self._goal_state is None:
            raise RuntimeError("No goal yet; call reset() or set_goal(goal_state) first.")
        return self._goal_state.copy()

    def set_goal(self, goal_state: np.ndarray) -> None:
        """Replace the goal (a state vector) for the running episode."""
        self._goal_state = self._check_state(goal_state, "goal_state").copy()
        self._goal_pixels = None

    @property
    def goal_pixels(self) -> np.ndarray:
        """Image (H, W, 3) uint8 of the goal state, rendered once per goal without disturbing the episode."""
        if self._goal_pixels is None:
            self._goal_pixels = self.render_state(self.goal_state)
        return self._goal_pixels.copy()

