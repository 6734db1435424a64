"""Any gymnasium env that renders pixels as a goal-reaching task with the library's contract (``wm/GymGeneric-v0``).

The adapter builds ``gymnasium.make(gym_id, render_mode="rgb_array", **gym_kwargs)`` and drives the env under
gymnasium's wrappers (``env.unwrapped``, the user's own class) through user-supplied hooks, each named by an
import path ``"module:function"`` in the config (as the MuJoCo adapter's ``goal.function``):

* ``state: {get, set}`` (required): ``get(env) -> (Ds,) floats`` and ``set(env, state) -> None``. Datasets store
  these states, the field protocol starts and ends episodes at them, goal images are rendered from them;
* ``proprio``: ``{indices: [...]}`` into the state (default: the whole state) or ``{function}``: ``f(env) -> (P,)``;
* ``goal``: ``{kind: function, function}``: ``f(env, rng) -> (Ds,)`` goal state, called at the episode's start
  state; or ``{kind: rollout, steps, hold, tries}``: held random actions from the start on a scratch copy;
* ``success``: Euclidean distance on ``indices`` of the state (default: all of it), or ``{function}``:
  ``f(states (M, Ds), goal (Ds,), env) -> (M,)`` distances; success when the distance < ``threshold``;
* ``expert`` (optional): ``f(env, goal_state) -> action`` in the wrapped env's action units: the ``expert``
  baseline (the ceiling where no simulator exists) and the ``expert`` collection policy;
* ``simulator: true`` (optional): ``batch_simulator()`` for the ``oracle`` baseline, a Python loop of
  ``set`` + ``step`` on a scratch copy (slow: N x H steps per call; exact when the hooks capture the state).

Pixels are the wrapped env's ``render()`` (an (H, W, 3) uint8 array) resized by area averaging to
``image_size``; the goal image is rendered on a scratch copy of the env put into the goal state, so it never
disturbs the episode. Actions are in ``[-1, 1]^A`` mapped affinely onto the wrapped env's Box bounds (identity
on unbounded dimensions). The wrapped env's reward, ``terminated`` and ``truncated`` are ignored (the task is
the goal); its ``step`` must keep working after it reports the end of its own episode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces

from envs.adapter import load_callable
from envs.contract import GoalSlot, check_action, reset_options

GENERIC_ID = "wm/GymGeneric-v0"
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024
GOAL_KINDS = ("function", "rollout")


def area_resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights averaging the source pixels each output pixel covers (area / box resampling)."""
    edges = np.arange(dst + 1) * (src / dst)  # (dst+1,) output pixel edges in source units
    lo, hi = edges[:-1, None], edges[1:, None]  # (dst, 1)
    pix = np.arange(src)[None, :]  # (1, src)
    overlap = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0.0, None)  # (dst, src)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_rgb(img: np.ndarray, size: int, cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 by area averaging (identity when already that size)."""
    h, w, _ = img.shape
    if h == size and w == size:
        return img
    if (h, w) not in cache:
        cache[(h, w)] = (area_resize_matrix(h, size), area_resize_matrix(w, size))
    rows, cols = cache[(h, w)]  # (S, H), (S, W)
    out = np.einsum("sh,hwc,tw->stc", rows, img.astype(np.float32), cols, optimize=True)  # (S, S, 3)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _spec(value: Mapping[str, Any] | None, what: str, keys: Sequence[str]) -> dict[str, Any]:
    """A config mapping as a dict, with unknown keys refused by name."""
    spec = dict(value or {})
    unknown = sorted(set(spec) - set(keys))
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; use {list(keys)}.")
    return spec


class GenericGoalEnv(GoalSlot, gymnasium.Env):
    """A gymnasium env (any engine) wrapped into the goal-reaching contract of envs/contract.py via hooks."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        gym_id: str,
        gym_kwargs: Mapping[str, Any] | None = None,
        state: Mapping[str, str] | None = None,
        image_size: int = 64,
        proprio: Mapping[str, Any] | None = None,
        goal: Mapping[str, Any] | None = None,
        success: Mapping[str, Any] | None = None,
        expert: str | None = None,
        simulator: bool = False,
        action_repeat: int = 1,
        control_dt: float | None = None,
        render_mode: str | None = None,
        terminate_on_success: bool = False,
    ) -> None:
        if not isinstance(image_size, (int, np.integer)) or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
            raise ValueError(
                f"image_size={image_size!r} is invalid; pass an int in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}]."
            )
        if not isinstance(action_repeat, (int, np.integer)) or action_repeat < 1:
            raise ValueError(f"action_repeat={action_repeat!r} is invalid; pass an int >= 1.")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is unsupported; use None or 'rgb_array'.")
        self.gym_id, self.gym_kwargs = str(gym_id), dict(gym_kwargs or {})
        self.image_size, self.action_repeat = int(image_size), int(action_repeat)
        self.render_mode, self.terminate_on_success = render_mode, bool(terminate_on_success)
        self._get_hook, self._set_hook = self._state_hooks(state)
        self.inner = self._make_inner()
        try:
            self._configure(proprio, goal, success, expert, bool(simulator), control_dt)
        except Exception:
            self.inner.close()  # a bad kwarg must not leak the wrapped env
            raise

    # ----------------------------------------------------------------- construction
    def _state_hooks(self, state: Mapping[str, str] | None) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """The user's get/set hooks; a clear error when they are missing (nothing works without states)."""
        spec = _spec(state, "state", ("get", "set"))
        if not spec.get("get") or not spec.get("set"):
            raise ValueError(
                f"gym_id={self.gym_id!r}: state hooks are missing (got state={dict(spec)}). The adapter stores "
                "states in datasets, starts and ends episodes at stored states and renders goal images through "
                "them: write get(env) -> 1-D float array and set(env, state) -> None and name them, e.g. "
                "env.kwargs.state={get: 'my_env:get_state', set: 'my_env:set_state'} (docs/own_env.md)."
            )
        return load_callable(spec["get"], "state.get"), load_callable(spec["set"], "state.set")

    def _make_inner(self) -> gymnasium.Env:
        """gymnasium.make(gym_id, render_mode='rgb_array', **gym_kwargs), with the user's errors made clear."""
        if "render_mode" in self.gym_kwargs:
            raise ValueError("gym_kwargs.render_mode is set by the adapter ('rgb_array'); remove it.")
        try:
            return gymnasium.make(self.gym_id, render_mode="rgb_array", disable_env_checker=True, **self.gym_kwargs)
        except (gymnasium.error.Error, ImportError, TypeError) as exc:
            raise ValueError(
                f"gym_id={self.gym_id!r} with gym_kwargs={self.gym_kwargs!r} cannot be made with "
                f"render_mode='rgb_array': {exc}. Register the env (gymnasium.register) in a module and name it "
                "'module:EnvId' so every process imports it."
            ) from exc

    def _configure(
        self,
        proprio: Mapping[str, Any] | None,
        goal: Mapping[str, Any] | None,
        success: Mapping[str, Any] | None,
        expert: str | None,
        simulator: bool,
        control_dt: float | None,
    ) -> None:
        """Action map, probe of state and pixels, metrics, goals, expert, simulator and spaces."""
        self.raw = self.inner.unwrapped  # the user's env: hooks receive it, the adapter steps it
        self._set_action_map(self.inner.action_space)
        self._resize_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.raw.reset(seed=0)
        probe = self._read_state(self.raw, "state.get(env)")
        self.state_dim = int(probe.shape[0])
        self._frame(self.raw)  # a non-RGB render fails here, at construction
        self._scratch_env: Any = None  # lazily made copy for goal images and goal rollouts
        self._clear_goal()
        self._set_proprio(_spec(proprio, "proprio", ("indices", "function")))
        self._set_success(_spec(success, "success", ("indices", "names", "function", "threshold")))
        self._set_goal_spec(_spec(goal, "goal", ("kind", "function", "steps", "hold", "tries")))
        self._expert_fn = None if not expert else load_callable(expert, "expert")
        if self._expert_fn is not None:
            self.expert_action = self._expert_action  # the ExpertEnv capability (envs/contract.py)
        if simulator:
            self.batch_simulator = self._batch_simulator  # the SimulatorEnv capability (the oracle's model)
        self.proprio_dim = int(self._proprio(self.raw, probe).shape[0])
        self.control_dt = self._control_dt(control_dt)
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": max(1, round(1.0 / self.control_dt))}
        self.action_space = spaces.Box(-1.0, 1.0, (self.action_dim,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (self.image_size, self.image_size, 3), dtype=np.uint8),
                "proprio": spaces.Box(-np.inf, np.inf, (self.proprio_dim,), dtype=np.float32),
            }
        )

    def _set_action_map(self, space: gymnasium.Space) -> None:
        """act = low + (a + 1) / 2 * (high - low) on bounded dimensions, act = a on unbounded ones."""
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(
                f"gym_id={self.gym_id!r}: action space {space} is not a 1-D Box; the planners need continuous "
                "actions (wrap a discrete env so that it takes a Box)."
            )
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        finite = np.isfinite(low) & np.isfinite(high)
        self.act_low, self.act_high = np.where(finite, low, -1.0), np.where(finite, high, 1.0)  # (A,)
        self.act_dtype = space.dtype
        self.action_dim = int(space.shape[0])

    def _control_dt(self, control_dt: float | None) -> float:
        """Seconds per env step: the kwarg, else the env's ``dt``, else 1 / render_fps, else 1; x action_repeat."""
        fps = (getattr(self.raw, "metadata", None) or {}).get("render_fps")
        base = control_dt if control_dt is not None else getattr(self.raw, "dt", None) or (1.0 / fps if fps else 1.0)
        if not float(base) > 0:
            raise ValueError(f"control_dt={base!r} must be > 0 (seconds per step of the wrapped env).")
        return float(base) * self.action_repeat

    def _indices(self, values: Sequence[int] | None, what: str) -> np.ndarray:
        """Validated indices into the state vector (all of it when None)."""
        if values is None:
            return np.arange(self.state_dim)
        idx = np.asarray(list(values), dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.state_dim):
            raise ValueError(f"{what}={list(values)} is out of range for a state of {self.state_dim} entries.")
        return idx

    def _set_proprio(self, spec: dict[str, Any]) -> None:
        """Proprio: state[indices] (default: the whole state) or a user function of the env."""
        if spec.get("function") and spec.get("indices") is not None:
            raise ValueError("proprio takes indices or function, not both.")
        self._proprio_fn = load_callable(spec["function"], "proprio.function") if spec.get("function") else None
        self._proprio_idx = self._indices(spec.get("indices"), "proprio.indices")

    def _set_success(self, spec: dict[str, Any]) -> None:
        """Success: Euclidean distance on state[indices] (or a user function) below threshold."""
        self.success_threshold = float(spec.get("threshold", 0.1))
        if not self.success_threshold > 0:
            raise ValueError(f"success.threshold={self.success_threshold} must be > 0.")
        self._succ_idx = self._indices(spec.get("indices"), "success.indices")
        names = spec.get("names")
        if names is not None and len(names) != len(self._succ_idx):
            raise ValueError(f"success.names has {len(names)} names for {len(self._succ_idx)} success.indices.")
        self.task_coord_names = tuple(names) if names is not None else tuple(f"state[{i}]" for i in self._succ_idx)
        self._distance_fn = load_callable(spec["function"], "success.function") if spec.get("function") else None

    def _set_goal_spec(self, spec: dict[str, Any]) -> None:
        """Goals: a user function of (env, rng), or held random actions from the start (on a scratch copy)."""
        self.goal_kind = str(spec.get("kind", "function" if spec.get("function") else "rollout"))
        if self.goal_kind not in GOAL_KINDS:
            raise ValueError(f"goal.kind={self.goal_kind!r} must be one of {GOAL_KINDS}.")
        self.goal_steps, self.goal_hold = int(spec.get("steps", 30)), int(spec.get("hold", 5))
        self.goal_tries = int(spec.get("tries", 10))
        if min(self.goal_steps, self.goal_hold, self.goal_tries) < 1:
            raise ValueError("goal.steps, goal.hold and goal.tries must be >= 1.")
        if self.goal_kind == "function" and not spec.get("function"):
            raise ValueError("goal.kind=function needs goal.function='module:function' (f(env, rng) -> goal state).")
        self._goal_fn = load_callable(spec["function"], "goal.function") if self.goal_kind == "function" else None

    # ----------------------------------------------------------------- state vectors
    def _read_state(self, env: Any, what: str = "state.get(env)") -> np.ndarray:
        """The hook's state of ``env`` as a float64 vector (state_dim,) (any non-empty length while probing)."""
        arr = np.array(self._get_hook(env), dtype=np.float64).reshape(-1)  # (Ds,)
        expected = getattr(self, "state_dim", None)
        if arr.size == 0 or (expected is not None and arr.shape != (expected,)):
            raise ValueError(f"{what} returned shape {arr.shape}; it must return a non-empty 1-D float vector of "
                             f"one fixed length{'' if expected is None else f' ({expected})'}.")
        return arr

    def _check_state(self, state: np.ndarray, what: str = "state") -> np.ndarray:
        """A state vector as contiguous float64 (state_dim,), or a ValueError naming the problem."""
        arr = np.ascontiguousarray(state, dtype=np.float64)
        if arr.shape != (self.state_dim,):
            raise ValueError(f"{what} has shape {arr.shape}, expected ({self.state_dim},) for {self.gym_id} "
                             "(rows of env.get_state(), or the dataset 'state' column).")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} contains NaN or inf; pass a finite state vector.")
        return arr

    def _states(self, states: np.ndarray) -> np.ndarray:
        """A state batch (..., state_dim) as float64, with a clear error for the wrong width."""
        arr = np.asarray(states, dtype=np.float64)
        if arr.ndim == 0 or arr.shape[-1] != self.state_dim:
            raise ValueError(f"states have shape {arr.shape}; the last axis must be state_dim={self.state_dim}.")
        return arr

    def get_state(self) -> np.ndarray:
        """The wrapped env's state (state_dim,) float64, through the ``state.get`` hook."""
        return self._read_state(self.raw)

    def set_state(self, state: np.ndarray) -> None:
        """Put the wrapped env into ``state`` through the ``state.set`` hook (the goal is untouched)."""
        self._set_hook(self.raw, self._check_state(state).copy())

    # ----------------------------------------------------------------- pixels
    def _frame(self, env: Any) -> np.ndarray:
        """``env.render()`` as an (image_size, image_size, 3) uint8 image, or a ValueError saying what came back."""
        img = env.render()
        arr = np.asarray(img) if isinstance(img, np.ndarray) else None
        if arr is None or arr.ndim != 3 or arr.shape[-1] not in (3, 4) or arr.dtype != np.uint8:
            got = f"{arr.dtype} array of shape {arr.shape}" if arr is not None else type(img).__name__
            raise ValueError(
                f"gym_id={self.gym_id!r}: render() returned {got}; with render_mode='rgb_array' it must return an "
                "(H, W, 3) uint8 RGB array (make the env draw its state into one)."
            )
        return resize_rgb(np.ascontiguousarray(arr[..., :3]), self.image_size, self._resize_cache)

    def _scratch(self) -> Any:
        """A second instance of the wrapped env, never the episode's (goal images, goal rollouts)."""
        if self._scratch_env is None:
            self._scratch_inner = self._make_inner()
            self._scratch_env = self._scratch_inner.unwrapped
            self._scratch_env.reset(seed=0)
        return self._scratch_env

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """Image (H, W, 3) uint8 of any state, rendered on the scratch copy: the episode is not touched."""
        scratch = self._scratch()
        self._set_hook(scratch, self._check_state(state).copy())
        return self._frame(scratch)

    def render(self) -> np.ndarray | None:
        """Current frame (H, W, 3) uint8 when render_mode='rgb_array', else None."""
        return self._frame(self.raw) if self.render_mode == "rgb_array" else None

    # ----------------------------------------------------------------- goals and metrics



    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        """A goal state from the current (start) state: the user function, or a held random-action rollout."""
        if self._goal_fn is not None:
            return self._check_state(self._goal_fn(self.raw, rng), "goal.function result")
        start, scratch = self.get_state(), self._scratch()
        goal = start
        for _ in range(self.goal_tries):
            self._set_hook(scratch, start.copy())
            for t in range(self.goal_steps):
                if t % self.goal_hold == 0:
                    act = rng.uniform(-1.0, 1.0, self.action_dim)  # (A,)
                self._advance(scratch, act)
            goal = self._read_state(scratch)
            if not bool(self.is_success(start, goal)):
                break
        return goal

    def state_to_task_coords(self, states: np.ndarray) -> np.ndarray:
        """state[..., success.indices]: the coordinates the default distance is measured on (..., K)."""
        return self._states(states)[..., self._succ_idx]

    def goal_distance(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Distance (...,) of states (..., Ds) to one goal: Euclidean on the task coords, or the user function."""
        arr = self._states(states)
        goal = self._check_state(goal_state, "goal_state")
        if self._distance_fn is None:
            return np.linalg.norm(self.state_to_task_coords(arr) - goal[self._succ_idx], axis=-1)
        flat = arr.reshape(-1, self.state_dim)  # (M, Ds)
        dist = np.asarray(self._distance_fn(flat, goal, self.raw), dtype=np.float64)
        if dist.shape not in ((flat.shape[0],), (flat.shape[0], 1)):
            raise ValueError(f"success.function returned shape {dist.shape} for states {flat.shape}; it must return "
                             f"({flat.shape[0]},) distances (one per state row).")
        return dist.reshape(arr.shape[:-1])

    def is_success(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """goal_distance < success.threshold, (...,)."""
        return self.goal_distance(states, goal_state) < self.success_threshold

    # ----------------------------------------------------------------- observations
    def _proprio(self, env: Any, state: np.ndarray) -> np.ndarray:
        """(P,) float32: the user function of the env, or state[proprio.indices]."""
        if self._proprio_fn is not None:
            return np.asarray(self._proprio_fn(env), dtype=np.float32).reshape(-1)
        return state[self._proprio_idx].astype(np.float32)

    def get_obs(self) -> dict[str, np.ndarray]:
        """pixels (image_size, image_size, 3) uint8 and proprio (proprio_dim,) float32 of the current state."""
        return {"pixels": self._frame(self.raw), "proprio": self._proprio(self.raw, self.get_state())}

    def get_info(self) -> dict[str, Any]:
        """success (bool) and distance (float) of the current state to the goal."""
        dist = float(self.goal_distance(self.get_state(), self.goal_state))
        return {"success": dist < self.success_threshold, "distance": dist}

    # ----------------------------------------------------------------- actions and dynamics
    def action_to_env(self, actions: np.ndarray) -> np.ndarray:
        """Normalised actions (..., A) in [-1, 1] (clipped first) -> the wrapped env's action units (..., A)."""
        a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        return self.act_low + (a + 1.0) * 0.5 * (self.act_high - self.act_low)

    def env_to_action(self, env_actions: np.ndarray) -> np.ndarray:
        """The inverse map: the wrapped env's action units (..., A) -> [-1, 1] (clipped)."""
        a = 2.0 * (np.asarray(env_actions, dtype=np.float64) - self.act_low) / (self.act_high - self.act_low) - 1.0
        return np.clip(a, -1.0, 1.0)

    def _advance(self, env: Any, action: np.ndarray) -> None:
        """action_repeat steps of ``env`` with one normalised action (A,)."""
        act = self.action_to_env(action).astype(self.act_dtype)
        for _ in range(self.action_repeat):
            env.step(act)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode: the wrapped env's own reset (seeded), then ``init_state``/``goal_state`` if given."""
        super().reset(seed=seed)
        options = reset_options(options)
        self.raw.reset(seed=int(self.np_random.integers(2**31)))
        if options.get("init_state") is not None:
            self.set_state(self._check_state(options["init_state"], "init_state"))
        goal = options.get("goal_state")
        self.set_goal(self.sample_goal(self.np_random) if goal is None else goal)
        return self.get_obs(), self.get_info()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """One normalised action (A,) for action_repeat wrapped-env steps; reward is minus the goal distance."""
        if self._goal_state is None:
            raise RuntimeError("Call reset() before step().")
        act = check_action(action, self.action_dim)
        self._advance(self.raw, act)
        info = self.get_info()
        terminated = self.terminate_on_success and info["success"]
        return self.get_obs(), -info["distance"], terminated, False, info

    # ----------------------------------------------------------------- optional capabilities
    def _expert_action(self) -> np.ndarray:
        """The user's expert action toward the goal, mapped to [-1, 1]: (A,) float32."""
        assert self._expert_fn is not None
        raw = np.asarray(self._expert_fn(self.raw, self.goal_state), dtype=np.float64).reshape(-1)
        if raw.shape != (self.action_dim,) or not np.all(np.isfinite(raw)):
            raise ValueError(f"expert returned {raw}; it must return a finite action ({self.action_dim},) in the "
                             "wrapped env's action units.")
        return self.env_to_action(raw).astype(np.float32)

    def _batch_simulator(self, threads: int | None = None) -> GenericBatchSimulator:
        """The oracle's model: set_state + step on a private copy of the wrapped env (``threads`` is unused)."""
        return GenericBatchSimulator(self)

    def close(self) -> None:
        """Close the wrapped env and its scratch copy (safe to call twice)."""
        self.inner.close()
        if self._scratch_env is not None:
            self._scratch_inner.close()
            self._scratch_env = None


class GenericBatchSimulator:
    """Roll (N, H, A) action sequences from (N, Ds) states by ``state.set`` + ``step`` on a copy of the env.

    Generic and exact when the state hooks capture everything ``step`` depends on, but a Python loop: N x H x
    action_repeat wrapped-env steps per call (no MuJoCo-style batching is possible for an arbitrary env).
    """

    def __init__(self, env: GenericGoalEnv) -> None:
        self.env = env
        self.inner = env._make_inner()
        self.copy = self.inner.unwrapped
        self.copy.reset(seed=0)

    def __call__(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Env states after each of the H actions: states (N, Ds), actions (N, H, A) -> (N, H, Ds)."""
        n, h, _ = actions.shape
        if states.shape != (n, self.env.state_dim):
            raise ValueError(f"states must be ({n}, {self.env.state_dim}), got {states.shape}")
        out = np.empty((n, h, self.env.state_dim))  # (N, H, Ds)
        for i in range(n):
            self.env._set_hook(self.copy, np.array(states[i], dtype=np.float64))
            for t in range(h):
                self.env._advance(self.copy, actions[i, t])
                out[i, t] = self.env._read_state(self.copy)
        return out


def _register() -> None:
    """Register the gymnasium id and the 'explore' policy for generic envs (idempotent)."""
    from envs import policies
    from envs.adapter import AdapterExplore

    policies.register_explore_policy(GenericGoalEnv, AdapterExplore)  # OU noise: no task knowledge needed
    if GENERIC_ID not in gymnasium.registry:
        gymnasium.register(id=GENERIC_ID, entry_point="envs.generic:GenericGoalEnv", max_episode_steps=None)


_register()
