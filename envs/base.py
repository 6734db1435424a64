"""Shared MuJoCo machinery for the goal-reaching tasks: MJCF loading, pixels, state get/set, action repeat.

Each task module subclasses :class:`MujocoGoalEnv` and adds only task logic (start distribution, goal
sampling, success metric, proprioception, interpretable task coordinates).

State vector layout (every task): ``[qpos (nq), qvel (nv), qacc_warmstart (nv)]`` as float64, i.e. MuJoCo's
``mjSTATE_PHYSICS | mjSTATE_WARMSTART`` signature. The warm-start accelerations are included so that
``set_state(s)`` followed by ``step`` reproduces the original trajectory bit for bit (the constraint solver
is warm-started from them). Goal states are ordinary state vectors with zero velocity and warm start.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces

from envs.contract import GoalSlot, check_action, reset_options

ASSET_DIR = Path(__file__).resolve().parent / "assets"

# Full simulator state used by get_state/set_state (see module docstring for the layout).
STATE_SIGNATURE = int(mujoco.mjtState.mjSTATE_PHYSICS) | int(mujoco.mjtState.mjSTATE_WARMSTART)

MAX_IMAGE_SIZE = 256  # matches <global offwidth/offheight> in the MJCF files
MIN_IMAGE_SIZE = 8


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap angles to [-pi, pi) so angular errors are measured the short way round."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


class MujocoGoalEnv(GoalSlot, gymnasium.Env, abc.ABC):
    """Goal-conditioned MuJoCo task observed through a fixed top-down camera (pixels + proprio)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}

    xml_file: ClassVar[str]  # file name inside envs/assets
    substeps: ClassVar[int]  # physics steps per control step (the task's native control rate)
    camera_name: ClassVar[str] = "top"
    task_coord_names: ClassVar[tuple[str, ...]]  # columns of state_to_task_coords
    success_threshold: float  # main success threshold, in the units of info["distance"]

    def __init__(
        self,
        image_size: int = 64,
        action_repeat: int = 1,
        render_mode: str | None = None,
        terminate_on_success: bool = False,
        extra_cameras: tuple[str, ...] | list[str] = (),
    ) -> None:
        """``extra_cameras``: further cameras of the task's MJCF (e.g. ``["side"]``, an oblique view) rendered
        into the observation as ``pixels/<name>`` beside ``pixels`` (the top-down camera); none by default."""
        if (
            not isinstance(image_size, (int, np.integer))
            or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE
        ):
            raise ValueError(
                f"image_size={image_size!r} is invalid; pass an int in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}] "
                "(64 is the default, 224 the largest size the encoders use)."
            )
        if not isinstance(action_repeat, (int, np.integer)) or action_repeat < 1:
            raise ValueError(f"action_repeat={action_repeat!r} is invalid; pass an int >= 1.")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is unsupported; use None or 'rgb_array'.")
        self.image_size = int(image_size)
        self.action_repeat = int(action_repeat)
        self.render_mode = render_mode
        self.terminate_on_success = bool(terminate_on_success)

        self.model = mujoco.MjModel.from_xml_path(str(ASSET_DIR / self.xml_file))
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)  # for render_state / collision checks; never the episode
        mujoco.mj_forward(self.model, self.data)
        self.state_dim = int(mujoco.mj_stateSize(self.model, STATE_SIGNATURE))
        self.action_dim = int(self.model.nu)
        self.control_dt = float(self.model.opt.timestep) * self.substeps * self.action_repeat
        self._nstep = self.substeps * self.action_repeat
        self.metadata = {**type(self).metadata, "render_fps": max(1, round(1.0 / self.control_dt))}

        self._renderer: mujoco.Renderer | None = None  # created lazily on the first frame
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, self.camera_name)
        if self._camera.fixedcamid < 0:
            raise ValueError(f"{self.xml_file} has no camera named {self.camera_name!r}.")
        self._scene_option = mujoco.MjvOption()
        self.extra_cameras = self._extra_cameras(extra_cameras)

        self._clear_goal()

        self.proprio_dim = int(self._proprio(self.data).shape[0])
        self.action_space = spaces.Box(-1.0, 1.0, (self.action_dim,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (self.image_size, self.image_size, 3), dtype=np.uint8),
                "proprio": spaces.Box(-np.inf, np.inf, (self.proprio_dim,), dtype=np.float32),
                **{
                    f"pixels/{name}": spaces.Box(0, 255, (self.image_size, self.image_size, 3), dtype=np.uint8)
                    for name in self.extra_cameras
                },
            }
        )

    def _extra_cameras(self, names: tuple[str, ...] | list[str]) -> dict[str, mujoco.MjvCamera]:
        """Fixed MjvCameras of the requested extra camera names; ValueError naming the MJCF's cameras."""
        if isinstance(names, str):
            raise ValueError(f"extra_cameras={names!r} must be a list of camera names, e.g. ['side']")
        known = [mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(self.model.ncam)]
        out: dict[str, mujoco.MjvCamera] = {}
        for name in names:
            cam_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, str(name))
            if cam_id < 0 or name == self.camera_name or name in out:
                raise ValueError(
                    f"extra_cameras: {name!r} is not another camera of {self.xml_file} (it has {known}; "
                    f"{self.camera_name!r} is already the main view) or is listed twice"
                )
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            cam.fixedcamid = cam_id
            out[str(name)] = cam
        return out

    # ----------------------------------------------------------------- task hooks (implemented per task)
    @abc.abstractmethod
    def _proprio(self, data: mujoco.MjData) -> np.ndarray:
        """Proprioceptive float32 vector of the agent in ``data`` (what a robot would sense about itself)."""

    @abc.abstractmethod
    def _sample_init_state(self, rng: np.random.Generator) -> np.ndarray:
        """Start state (state_dim,) of a new episode."""

    @abc.abstractmethod
    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        """Goal state (state_dim,) reachable from the current state, not already solved there."""

    @abc.abstractmethod
    def goal_distance(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Task distance (...,) between states (..., state_dim) and one goal state (state_dim,)."""

    @abc.abstractmethod
    def is_success(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Boolean success (...,) of states (..., state_dim) for one goal state (state_dim,)."""

    @abc.abstractmethod
    def state_to_task_coords(self, states: np.ndarray) -> np.ndarray:
        """Interpretable coordinates (..., len(task_coord_names)) of states (..., state_dim)."""

    # ----------------------------------------------------------------- state vectors
    def _states(self, states: np.ndarray) -> np.ndarray:
        """State batch (..., state_dim) as an array, with a clear error for the wrong width."""
        arr = np.asarray(states)
        if arr.ndim == 0 or arr.shape[-1] != self.state_dim:
            raise ValueError(
                f"states have shape {arr.shape}; the last axis must be state_dim={self.state_dim} "
                f"for {type(self).__name__} (rows of env.get_state(), or the dataset 'state' column)."
            )
        return arr

    def qpos(self, states: np.ndarray) -> np.ndarray:
        """Generalised positions (..., nq) sliced out of state vectors (..., state_dim)."""
        return self._states(states)[..., : self.model.nq]

    def qvel(self, states: np.ndarray) -> np.ndarray:
        """Generalised velocities (..., nv) sliced out of state vectors (..., state_dim)."""
        nq = self.model.nq
        return self._states(states)[..., nq : nq + self.model.nv]

    def make_state(self, qpos: np.ndarray, qvel: np.ndarray | None = None) -> np.ndarray:
        """State vector (state_dim,) at rest (or with qvel) at ``qpos``; used to build starts and goals."""
        qpos = np.asarray(qpos, dtype=np.float64).reshape(self.model.nq)
        state = np.zeros(self.state_dim, dtype=np.float64)
        state[: self.model.nq] = qpos
        if qvel is not None:
            state[self.model.nq : self.model.nq + self.model.nv] = np.asarray(qvel, dtype=np.float64)
        return state

    def _check_state(self, state: np.ndarray, what: str = "state") -> np.ndarray:
        """Validate a state vector and return it as contiguous float64 (state_dim,)."""
        arr = np.ascontiguousarray(state, dtype=np.float64)
        if arr.shape != (self.state_dim,):
            raise ValueError(
                f"{what} has shape {arr.shape}, expected ({self.state_dim},) for {type(self).__name__}; "
                "build it with env.get_state(), env.make_state(qpos) or env.sample_goal(rng)."
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} contains NaN or inf; pass a finite state vector.")
        return arr

    def get_state(self) -> np.ndarray:
        """Full simulator state (state_dim,) float64; set_state on it reproduces the dynamics exactly."""
        state = np.empty(self.state_dim, dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, state, STATE_SIGNATURE)
        return state

    def set_state(self, state: np.ndarray) -> None:
        """Overwrite the simulator state (the goal is untouched) and recompute derived quantities."""
        mujoco.mj_setState(self.model, self.data, self._check_state(state), STATE_SIGNATURE)
        mujoco.mj_forward(self.model, self.data)

    def batch_simulator(self, threads: int | None = None) -> Any:
        """A BatchSimulator rolling (N, H, A) action sequences from (N, Ds) states with this env's dynamics."""
        from envs.simulate import BatchSimulator

        return BatchSimulator(self.model, STATE_SIGNATURE, self._nstep, threads)

    def _in_collision(self, state: np.ndarray) -> bool:
        """Whether ``state`` has any active contact (used to reject overlapping starts and goals)."""
        mujoco.mj_setState(self.model, self._scratch, self._check_state(state), STATE_SIGNATURE)
        mujoco.mj_forward(self.model, self._scratch)
        return bool(self._scratch.ncon > 0)

    # ----------------------------------------------------------------- goals



    # ----------------------------------------------------------------- rendering
    def _get_renderer(self) -> mujoco.Renderer:
        """The single offscreen renderer, created on first use with shadows/reflections/skybox off."""
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self.model, self.image_size, self.image_size)
            except Exception as err:  # mujoco raises FatalError/RuntimeError/ImportError by backend
                raise RuntimeError(
                    "Could not create an offscreen OpenGL context "
                    f"(MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): "
                    f"{err}. Set MUJOCO_GL=egl (or osmesa) before mujoco is first imported, e.g. import envs "
                    "before mujoco or export it in the shell."
                ) from err
            flags = self._renderer.scene.flags
            for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX", "mjRND_FOG", "mjRND_HAZE"):
                flags[getattr(mujoco.mjtRndFlag, flag)] = 0
        return self._renderer

    def _render_data(self, data: mujoco.MjData, camera: mujoco.MjvCamera | None = None) -> np.ndarray:
        """Camera image (H, W, 3) uint8 of ``data`` (the top-down camera unless ``camera`` is given)."""
        renderer = self._get_renderer()
        renderer.update_scene(data, self._camera if camera is None else camera, self._scene_option)
        return renderer.render()

    def render_state(self, state: np.ndarray, camera: str | None = None) -> np.ndarray:
        """Image (H, W, 3) uint8 of an arbitrary state, without touching the running episode.

        ``camera``: None (or the main camera's name) for the top-down view ``pixels``, or the name of one of
        ``extra_cameras`` for that view (``pixels/<camera>``); another name is a ValueError listing the choices.
        """
        cam = self._camera_named(camera)
        mujoco.mj_setState(self.model, self._scratch, self._check_state(state), STATE_SIGNATURE)
        mujoco.mj_forward(self.model, self._scratch)
        return self._render_data(self._scratch, cam)

    def _camera_named(self, camera: str | None) -> mujoco.MjvCamera:
        """The MjvCamera of an observed view: the main camera for None or its name, else an extra camera."""
        if camera is None or camera == self.camera_name:
            return self._camera
        if camera not in self.extra_cameras:
            raise ValueError(
                f"camera {camera!r} is not observed by this env (it renders "
                f"{[self.camera_name, *self.extra_cameras]}); pass one of those, or build the env with "
                f"extra_cameras=[{camera!r}]"
            )
        return self.extra_cameras[camera]

    def render(self) -> np.ndarray | None:
        """Current frame (H, W, 3) uint8 when render_mode='rgb_array', else None."""
        if self.render_mode != "rgb_array":
            return None
        return self._render_data(self.data)

    def close(self) -> None:
        """Free the OpenGL context of the renderer (safe to call twice)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ----------------------------------------------------------------- observations
    def get_obs(self) -> dict[str, np.ndarray]:
        """Observation of the current state: pixels (H, W, 3) uint8 and proprio (proprio_dim,) float32."""
        obs = {"pixels": self._render_data(self.data), "proprio": self._proprio(self.data)}
        for name, cam in self.extra_cameras.items():
            obs[f"pixels/{name}"] = self._render_data(self.data, cam)  # (H, W, 3) uint8
        return obs

    def get_info(self) -> dict[str, Any]:
        """Goal progress of the current state: success (bool) and distance (float, task units)."""
        state = self.get_state()
        goal = self.goal_state
        return {
            "success": bool(self.is_success(state, goal)),
            "distance": float(self.goal_distance(state, goal)),
        }

    # ----------------------------------------------------------------- gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode; options may fix ``init_state`` and/or ``goal_state`` (state vectors)."""
        super().reset(seed=seed)
        options = reset_options(options)
        mujoco.mj_resetData(self.model, self.data)
        init = options.get("init_state")
        if init is None:
            init = self._sample_init_state(self.np_random)
        self.set_state(self._check_state(init, "init_state"))
        goal = options.get("goal_state")
        if goal is None:
            goal = self.sample_goal(self.np_random)
        self.set_goal(goal)
        return self.get_obs(), self.get_info()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply a clipped action for action_repeat control steps; reward is minus the goal distance."""
        if self._goal_state is None:
            raise RuntimeError("Call reset() before step().")
        act = check_action(action, self.action_dim)
        np.clip(act, -1.0, 1.0, out=self.data.ctrl)
        mujoco.mj_step(self.model, self.data, nstep=self._nstep)
        # mj_step leaves position-derived quantities (geom poses, contacts) one physics step behind qpos;
        # recompute them so pixels match the state. The warm start is untouched: dynamics are unchanged.
        mujoco.mj_forward(self.model, self.data)
        info = self.get_info()
        terminated = self.terminate_on_success and info["success"]
        return self.get_obs(), -info["distance"], terminated, False, info
