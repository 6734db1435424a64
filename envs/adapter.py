"""Any gymnasium MuJoCo environment as a goal-reaching task with this library's env API (``wm/GymAdapter-v0``).

The adapter builds the wrapped env with ``gymnasium.make(gym_id, **gym_kwargs)`` and drives its MuJoCo
model/data directly, so collection, evaluation and the planning oracle see the same API as the built-in
tasks (:class:`envs.base.MujocoGoalEnv`):

* pixels: offscreen rendering of the wrapped model at ``image_size`` from ``camera`` (a model camera name or
  id, or a free camera ``{lookat, distance, azimuth, elevation}``), shadows and reflections off;
* state: ``[qpos, qvel, qacc_warmstart]`` (plus actuator activations when the model has any), so anything
  that lives in qpos (Reacher's target) is part of the state;
* actions: in ``[-1, 1]^nu``, mapped affinely onto the wrapped env's action bounds (ctrl = action when they
  are ``[-1, 1]``); one env step is ``frame_skip * action_repeat`` physics steps. The wrapped env's own
  ``step`` (reward, termination) is not called: for gymnasium's MuJoCo envs it only sets ``ctrl`` and steps;
* starts: the wrapped env's own ``reset`` distribution; goals: a random-action rollout from the start (or a
  user function ``module:function``); success: a distance on qpos entries, body or site positions (or a user
  function) below ``threshold``.

Limits: mocap bodies, simulation time and plugin state are not part of the state; envs whose ``step`` does
more than ``do_simulation`` (changing the model or data outside ctrl) are not reproduced exactly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces

from envs.base import STATE_SIGNATURE, MujocoGoalEnv, wrap_angle
from envs.contract import check_action

ADAPTER_ID = "wm/GymAdapter-v0"
MAX_ADAPTER_IMAGE_SIZE = 1024
SUCCESS_KINDS = ("qpos", "body", "site", "function")
GOAL_KINDS = ("rollout", "function")
DEFAULT_CAMERA: dict[str, Any] = {"lookat": [0.0, 0.0, 0.0], "distance": 1.5, "azimuth": 90.0, "elevation": -90.0}


def load_callable(path: str, what: str) -> Callable[..., Any]:
    """Import ``module:function`` (the way configs name user code) with an error that says what to fix."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise ValueError(f"{what}={path!r} must be an import path 'module:function', e.g. 'mypkg.goals:sample'.")
    module_name, attr = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{what}={path!r}: cannot import module {module_name!r} ({exc}).") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{what}={path!r}: module {module_name!r} has no callable {attr!r}.")
    return fn


def _name_id(model: mujoco.MjModel, obj: mujoco.mjtObj, name: str, what: str) -> int:
    """Id of a named model element, or a ValueError listing the names that exist."""
    idx = mujoco.mj_name2id(model, obj, name)
    if idx < 0:
        count = {mujoco.mjtObj.mjOBJ_BODY: model.nbody, mujoco.mjtObj.mjOBJ_SITE: model.nsite}.get(obj, 0)
        count = model.ncam if obj == mujoco.mjtObj.mjOBJ_CAMERA else count
        names = [mujoco.mj_id2name(model, obj, i) for i in range(count)]
        raise ValueError(f"{what}: the model has no {obj.name[6:].lower()} named {name!r}; it has {names}.")
    return int(idx)


def make_camera(model: mujoco.MjModel, camera: str | int | Mapping[str, Any] | None) -> mujoco.MjvCamera:
    """An MjvCamera from a camera name, a camera id (-1 = free default) or a free-camera dict."""
    cam = mujoco.MjvCamera()
    spec: Any = DEFAULT_CAMERA if camera is None else camera
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"lookat", "distance", "azimuth", "elevation"}
        if unknown:
            raise ValueError(
                f"camera has unknown keys {sorted(unknown)}; a free camera takes lookat, distance, azimuth, elevation."
            )
        full = {**DEFAULT_CAMERA, **spec}
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = np.asarray(full["lookat"], dtype=np.float64).reshape(3)
        cam.distance = float(full["distance"])
        cam.azimuth = float(full["azimuth"])
        cam.elevation = float(full["elevation"])
        return cam
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if spec == -1:
            mujoco.mjv_defaultFreeCamera(model, cam)
            return cam
        if not 0 <= spec < model.ncam:
            raise ValueError(f"camera={spec} is out of range: the model has {model.ncam} cameras (use -1 for free).")
        cam.type, cam.fixedcamid = mujoco.mjtCamera.mjCAMERA_FIXED, int(spec)
        return cam
    if isinstance(spec, str):
        cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        cam.fixedcamid = _name_id(model, mujoco.mjtObj.mjOBJ_CAMERA, spec, "camera")
        return cam
    raise ValueError(f"camera={spec!r} must be a camera name, an id, or a dict with lookat/distance/azimuth/elevation.")


class GymAdapterEnv(MujocoGoalEnv):
    """A gymnasium MuJoCo env wrapped into a goal-reaching task with pixels, state get/set and goal metrics."""

    substeps = 1  # unused: the wrapped env's frame_skip sets the control rate
    xml_file = ""

    def __init__(
        self,
        gym_id: str,
        gym_kwargs: Mapping[str, Any] | None = None,
        image_size: int = 64,
        camera: str | int | Mapping[str, Any] | None = None,
        action_repeat: int = 1,
        success: Mapping[str, Any] | None = None,
        goal: Mapping[str, Any] | None = None,
        proprio: Mapping[str, Sequence[int]] | None = None,
        render_mode: str | None = None,
        terminate_on_success: bool = False,
    ) -> None:
        if not isinstance(image_size, (int, np.integer)) or not 8 <= image_size <= MAX_ADAPTER_IMAGE_SIZE:
            raise ValueError(f"image_size={image_size!r} is invalid; pass an int in [8, {MAX_ADAPTER_IMAGE_SIZE}].")
        if not isinstance(action_repeat, (int, np.integer)) or action_repeat < 1:
            raise ValueError(f"action_repeat={action_repeat!r} is invalid; pass an int >= 1.")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is unsupported; use None or 'rgb_array'.")
        self.gym_id = str(gym_id)
        try:
            self.inner = gymnasium.make(self.gym_id, disable_env_checker=True, **dict(gym_kwargs or {}))
        except gymnasium.error.Error as exc:
            raise ValueError(f"gym_id={gym_id!r} with gym_kwargs={gym_kwargs!r} cannot be made: {exc}") from exc
        try:
            self._configure(
                image_size, camera, action_repeat, success, goal, proprio, render_mode, terminate_on_success
            )
        except Exception:
            self.inner.close()  # a bad kwarg must not leak the wrapped env
            raise

    def _configure(
        self,
        image_size: int,
        camera: str | int | Mapping[str, Any] | None,
        action_repeat: int,
        success: Mapping[str, Any] | None,
        goal: Mapping[str, Any] | None,
        proprio: Mapping[str, Sequence[int]] | None,
        render_mode: str | None,
        terminate_on_success: bool,
    ) -> None:
        """Everything after making the wrapped env: model handles, rendering, metrics, spaces."""
        base = self.inner.unwrapped
        if not all(hasattr(base, a) for a in ("model", "data", "frame_skip")):
            raise ValueError(
                f"gym_id={self.gym_id!r} ({type(base).__name__}) is not a gymnasium MuJoCo env (no model, data)."
            )
        self.image_size = int(image_size)
        self.action_repeat = int(action_repeat)
        self.render_mode = render_mode
        self.terminate_on_success = bool(terminate_on_success)
        self.model: mujoco.MjModel = base.model
        self.data: mujoco.MjData = base.data
        self.frame_skip = int(base.frame_skip)
        # Our renderer only: an offscreen buffer of exactly the image size without multisampling (as in the
        # built-in tasks' MJCF) steps about 2x faster than with gymnasium's 640x480 4x-MSAA default.
        self.model.vis.global_.offwidth = self.model.vis.global_.offheight = self.image_size
        self.model.vis.quality.offsamples = 0
        self._scratch = mujoco.MjData(self.model)
        self._kin = mujoco.MjData(self.model)  # forward kinematics of state batches (success metric)
        self.state_dim = int(mujoco.mj_stateSize(self.model, STATE_SIGNATURE))
        self.action_dim = int(self.model.nu)
        self._nstep = self.frame_skip * self.action_repeat
        self.control_dt = float(self.model.opt.timestep) * self._nstep
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": max(1, round(1.0 / self.control_dt))}
        self._set_action_map(self.inner.action_space)
        self._renderer = None
        self._camera = make_camera(self.model, camera)
        self.extra_cameras: dict[str, mujoco.MjvCamera] = {}  # one view: the adapted env's camera
        self._scene_option = mujoco.MjvOption()
        self._goal_state = None
        self._goal_pixels = None
        self._set_proprio(proprio or {})
        self._set_success(dict(success or {}))
        self._set_goal_spec(dict(goal or {}))
        self.proprio_dim = int(self._proprio(self.data).shape[0])
        self.action_space = spaces.Box(-1.0, 1.0, (self.action_dim,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (self.image_size, self.image_size, 3), dtype=np.uint8),
                "proprio": spaces.Box(-np.inf, np.inf, (self.proprio_dim,), dtype=np.float32),
            }
        )

    # ----------------------------------------------------------------- configuration
    def _set_action_map(self, space: gymnasium.Space) -> None:
        """ctrl = low + (a + 1) / 2 * (high - low) for bounded action spaces, ctrl = a otherwise."""
        if not isinstance(space, spaces.Box) or space.shape != (self.model.nu,):
            raise ValueError(
                f"gym_id={self.gym_id!r}: action space {space} is not a Box of shape (nu={self.model.nu},)."
            )
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        finite = np.isfinite(low) & np.isfinite(high)
        self.ctrl_low = np.where(finite, low, -1.0)  # (nu,)
        self.ctrl_high = np.where(finite, high, 1.0)  # (nu,)

    def action_to_ctrl(self, actions: np.ndarray) -> np.ndarray:
        """Map normalised actions (..., nu) in [-1, 1] onto the wrapped env's control range."""
        a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        return self.ctrl_low + (a + 1.0) * 0.5 * (self.ctrl_high - self.ctrl_low)

    def _indices(self, values: Sequence[int] | None, size: int, what: str) -> np.ndarray:
        """Validated integer indices into a vector of ``size`` (all of it when None)."""
        if values is None:
            return np.arange(size)
        idx = np.asarray(list(values), dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise ValueError(f"{what}={list(values)} is out of range for a vector of {size} entries.")
        return idx

    def _set_proprio(self, spec: Mapping[str, Sequence[int]]) -> None:
        """Proprio = qpos[qpos_idx] ++ qvel[qvel_idx]; all of qpos and qvel by default."""
        unknown = set(spec) - {"qpos", "qvel"}
        if unknown:
            raise ValueError(f"proprio has unknown keys {sorted(unknown)}; use qpos and qvel (lists of indices).")
        self._proprio_qpos = self._indices(spec.get("qpos"), self.model.nq, "proprio.qpos")
        self._proprio_qvel = self._indices(spec.get("qvel"), self.model.nv, "proprio.qvel")

    def _set_success(self, spec: dict[str, Any]) -> None:
        """Parse the success spec: kind qpos (indices), body/site (names), or function; plus threshold."""
        unknown = set(spec) - {"kind", "indices", "names", "threshold", "function"}
        if unknown:
            raise ValueError(
                f"success has unknown keys {sorted(unknown)}; use kind, indices, names, threshold, function."
            )
        self.success_kind = str(spec.get("kind", "qpos"))
        if self.success_kind not in SUCCESS_KINDS:
            raise ValueError(f"success.kind={self.success_kind!r} must be one of {SUCCESS_KINDS}.")
        self.success_threshold = float(spec.get("threshold", 0.1))
        if not self.success_threshold > 0:
            raise ValueError(f"success.threshold={self.success_threshold} must be > 0.")
        self._distance_fn: Callable[..., Any] | None = None
        m = self.model
        if self.success_kind == "qpos":
            self._succ_idx = self._indices(spec.get("indices"), m.nq, "success.indices")
            # Unlimited hinge joints are angles: their error is wrapped to [-pi, pi).
            hinge = np.zeros(m.nq, dtype=bool)
            for j in range(m.njnt):
                if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE and not m.jnt_limited[j]:
                    hinge[m.jnt_qposadr[j]] = True
            self._succ_wrap = hinge[self._succ_idx]
            names = {int(m.jnt_qposadr[j]): mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(m.njnt)}
            self.task_coord_names = tuple(f"qpos[{i}]:{names.get(int(i), '')}" for i in self._succ_idx)
        elif self.success_kind in ("body", "site"):
            names_ = spec.get("names")
            if not names_:
                raise ValueError(
                    f"success.kind={self.success_kind!r} needs names: a list of {self.success_kind} names."
                )
            names_ = [names_] if isinstance(names_, str) else list(names_)
            obj = mujoco.mjtObj.mjOBJ_BODY if self.success_kind == "body" else mujoco.mjtObj.mjOBJ_SITE
            self._succ_ids = np.array([_name_id(m, obj, n, "success.names") for n in names_], dtype=np.int64)
            self.task_coord_names = tuple(f"{n}.{ax}" for n in names_ for ax in "xyz")
        else:
            self._distance_fn = load_callable(spec.get("function", ""), "success.function")
            self.task_coord_names = tuple(f"qpos[{i}]" for i in range(m.nq))

    def _set_goal_spec(self, spec: dict[str, Any]) -> None:
        """Parse the goal sampler: a held-random-action rollout from the start, or a user function."""
        unknown = set(spec) - {"kind", "steps", "hold", "tries", "function"}
        if unknown:
            raise ValueError(f"goal has unknown keys {sorted(unknown)}; use kind, steps, hold, tries, function.")
        self.goal_kind = str(spec.get("kind", "rollout"))
        if self.goal_kind not in GOAL_KINDS:
            raise ValueError(f"goal.kind={self.goal_kind!r} must be one of {GOAL_KINDS}.")
        self.goal_steps = int(spec.get("steps", 30))
        self.goal_hold = int(spec.get("hold", 5))
        self.goal_tries = int(spec.get("tries", 10))
        if self.goal_steps < 1 or self.goal_hold < 1 or self.goal_tries < 1:
            raise ValueError("goal.steps, goal.hold and goal.tries must be >= 1.")
        self._goal_fn = (
            load_callable(spec.get("function", ""), "goal.function") if self.goal_kind == "function" else None
        )

    # ----------------------------------------------------------------- task hooks
    def _proprio(self, data: mujoco.MjData) -> np.ndarray:
        """qpos[proprio.qpos] ++ qvel[proprio.qvel] as float32."""
        return np.concatenate([data.qpos[self._proprio_qpos], data.qvel[self._proprio_qvel]]).astype(np.float32)

    def _sample_init_state(self, rng: np.random.Generator) -> np.ndarray:
        """The wrapped env's own start distribution, seeded from ``rng``."""
        self.inner.reset(seed=int(rng.integers(2**31)))
        return self.get_state()

    def _rest(self, state: np.ndarray) -> np.ndarray:
        """The same configuration at rest: velocities, activations and warm start zeroed."""
        return self.make_state(self.qpos(state))

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        """Goal state at rest, reached by held random actions from the current state (or the user function)."""
        start = self.get_state()
        if self._goal_fn is not None:
            return self._check_state(self._goal_fn(self, rng), "goal.function result")
        goal = start
        for _ in range(self.goal_tries):
            mujoco.mj_setState(self.model, self._scratch, start, STATE_SIGNATURE)
            for t in range(self.goal_steps):
                if t % self.goal_hold == 0:
                    ctrl = self.action_to_ctrl(rng.uniform(-1.0, 1.0, self.action_dim))
                self._scratch.ctrl[:] = ctrl
                mujoco.mj_step(self.model, self._scratch, nstep=self._nstep)
            state = np.empty(self.state_dim)
            mujoco.mj_getState(self.model, self._scratch, state, STATE_SIGNATURE)
            goal = self._rest(state)
            if np.all(np.isfinite(goal)) and not bool(self.is_success(start, goal)):
                break
        return goal

    def _positions(self, states: np.ndarray) -> np.ndarray:
        """World positions (..., k*3) of the success bodies/sites for states (..., Ds), via forward kinematics."""
        flat = states.reshape(-1, self.state_dim)  # (M, Ds)
        out = np.empty((flat.shape[0], len(self._succ_ids) * 3))  # (M, k*3)
        d = self._kin
        for i, s in enumerate(flat):
            mujoco.mj_setState(self.model, d, s, STATE_SIGNATURE)
            mujoco.mj_kinematics(self.model, d)
            xyz = d.xpos[self._succ_ids] if self.success_kind == "body" else d.site_xpos[self._succ_ids]
            out[i] = xyz.reshape(-1)
        return out.reshape(*states.shape[:-1], -1)

    def state_to_task_coords(self, states: np.ndarray) -> np.ndarray:
        """The coordinates the success distance is measured on (..., len(task_coord_names))."""
        arr = np.asarray(self._states(states), dtype=np.float64)
        if self.success_kind in ("body", "site"):
            return self._positions(arr)
        if self.success_kind == "qpos":
            return self.qpos(arr)[..., self._succ_idx]
        return self.qpos(arr)

    def goal_distance(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Euclidean distance (...,) on the success coordinates (unlimited hinge errors wrapped)."""
        arr = np.asarray(self._states(states), dtype=np.float64)
        goal = self._check_state(goal_state, "goal_state")
        if self._distance_fn is not None:
            return np.asarray(self._distance_fn(arr, goal, self), dtype=np.float64).reshape(arr.shape[:-1])
        diff = self.state_to_task_coords(arr) - self.state_to_task_coords(goal)  # (..., C)
        if self.success_kind == "qpos":
            diff = np.where(self._succ_wrap, wrap_angle(diff), diff)
        return np.linalg.norm(diff, axis=-1)

    def is_success(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """goal_distance < success.threshold."""
        return self.goal_distance(states, goal_state) < self.success_threshold

    # ----------------------------------------------------------------- dynamics
    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply a clipped, rescaled action for frame_skip * action_repeat physics steps."""
        if self._goal_state is None:
            raise RuntimeError("Call reset() before step().")
        act = check_action(action, self.action_dim)
        self.data.ctrl[:] = self.action_to_ctrl(act)
        mujoco.mj_step(self.model, self.data, nstep=self._nstep)
        mujoco.mj_forward(self.model, self.data)  # positions-derived quantities match qpos for pixels
        info = self.get_info()
        terminated = self.terminate_on_success and info["success"]
        return self.get_obs(), -info["distance"], terminated, False, info

    def batch_simulator(self, threads: int | None = None) -> Any:
        """BatchSimulator on the wrapped model; actions are rescaled to ctrl exactly as in ``step``."""
        return _AdapterBatchSimulator(self, threads)

    def close(self) -> None:
        """Free the renderer and the wrapped env."""
        super().close()
        self.inner.close()


class _AdapterBatchSimulator:
    """BatchSimulator whose (N, H, A) normalised actions are mapped to ctrl like GymAdapterEnv.step."""

    def __init__(self, env: GymAdapterEnv, threads: int | None) -> None:
        from envs.simulate import BatchSimulator

        self.env = env
        self.sim = BatchSimulator(env.model, STATE_SIGNATURE, env._nstep, threads)
        self.identity = bool(np.all(env.ctrl_low == -1.0) and np.all(env.ctrl_high == 1.0))

    def __call__(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Env states after each of the H actions: states (N, Ds), actions (N, H, A) -> (N, H, Ds)."""
        if self.identity:
            return self.sim(states, actions)
        import mujoco.rollout

        n, h, _ = actions.shape
        if states.shape != (n, self.sim.env_dim):
            raise ValueError(f"states must be ({n}, {self.sim.env_dim}), got {states.shape}")
        ctrl = np.repeat(self.env.action_to_ctrl(actions), self.sim.nstep, axis=1)  # (N, H*nstep, A)
        warm = states[:, self.sim._warm_idx] if np.all(self.sim._warm_idx >= 0) else None  # (N, nv)
        full, _ = mujoco.rollout.rollout(
            self.sim.model,
            self.sim.datas,
            self.sim.to_full(states),
            np.ascontiguousarray(ctrl),
            initial_warmstart=warm,
        )  # (N, H*nstep, full_dim)
        return self.sim.to_env(full[:, self.sim.nstep - 1 :: self.sim.nstep])  # (N, H, Ds)


class AdapterExplore:
    """Exploration for adapted envs: smooth Ornstein-Uhlenbeck actions (no task knowledge needed)."""

    def __init__(self, env: GymAdapterEnv, rng: np.random.Generator, sigma: float = 0.3) -> None:
        from envs.policies import OUNoise

        self.noise = OUNoise(env.action_dim, rng, theta=0.15, sigma=sigma)

    def reset(self) -> None:
        """Restart the noise at zero."""
        self.noise.reset()

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One OU action (action_dim,) float32 in [-1, 1]."""
        return np.clip(self.noise(), -1.0, 1.0).astype(np.float32)


def _register() -> None:
    """Register the gymnasium id and the 'explore' policy for adapted envs (idempotent)."""
    from envs import policies

    policies.register_explore_policy(GymAdapterEnv, AdapterExplore)  # make_policy dispatches on env class
    if ADAPTER_ID not in gymnasium.registry:
        gymnasium.register(id=ADAPTER_ID, entry_point="envs.adapter:GymAdapterEnv", max_episode_steps=None)


_register()
