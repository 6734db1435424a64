"""Batched open-loop simulation of many action sequences from many states (the planning oracle's model).

Runs MuJoCo's multithreaded ``mujoco.rollout`` in C, so thousands of candidate sequences cost one call
instead of a Python loop over env copies.
"""

from __future__ import annotations

import os

import mujoco
import mujoco.rollout
import numpy as np

FULL = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)


class BatchSimulator:
    """Simulate (N, H, A) action sequences from (N, Ds) env states with an env's model and action repeat.

    States use the env's layout (``MujocoGoalEnv.get_state``); returned states carry a zero solver warm
    start (it only affects the next step's solver start, not positions or velocities used by metrics).
    """

    def __init__(
        self, model: mujoco.MjModel, state_signature: int, nstep: int, threads: int | None = None
    ) -> None:
        self.model = model
        self.sig = int(state_signature)
        self.nstep = int(nstep)
        self.threads = max(1, threads or (os.cpu_count() or 1))
        self.datas = [mujoco.MjData(model) for _ in range(self.threads)]
        self._scratch = mujoco.MjData(model)
        self.env_dim = int(mujoco.mj_stateSize(model, self.sig))
        self.full_dim = int(mujoco.mj_stateSize(model, FULL))
        # Index maps between the two layouts, found by pushing distinct values through MuJoCo itself.
        probe = np.arange(1, self.env_dim + 1, dtype=np.float64)
        mujoco.mj_setState(model, self._scratch, probe, self.sig)
        full = np.empty(self.full_dim)
        mujoco.mj_getState(model, self._scratch, full, FULL)
        self._full_from_env = np.full(self.full_dim, -1, dtype=np.int64)
        self._env_from_full = np.full(self.env_dim, -1, dtype=np.int64)
        for j, v in enumerate(full):
            if v >= 1 and float(v).is_integer() and int(v) <= self.env_dim and probe[int(v) - 1] == v:
                self._full_from_env[j] = int(v) - 1
                self._env_from_full[int(v) - 1] = j
        ws = np.empty(model.nv)
        mujoco.mj_getState(model, self._scratch, ws, int(mujoco.mjtState.mjSTATE_WARMSTART))
        self._warm_idx = np.rint(ws).astype(np.int64) - 1  # positions of the warm start in the env layout

    def to_full(self, states: np.ndarray) -> np.ndarray:
        """(N, Ds) env-layout states -> (N, full_dim) FULLPHYSICS states (time and plugins zero)."""
        out = np.zeros((states.shape[0], self.full_dim))
        cols = self._full_from_env >= 0
        out[:, cols] = states[:, self._full_from_env[cols]]
        return out

    def to_env(self, full: np.ndarray) -> np.ndarray:
        """(..., full_dim) FULLPHYSICS states -> (..., Ds) env-layout states (warm start zero)."""
        out = np.zeros((*full.shape[:-1], self.env_dim))
        cols = self._env_from_full >= 0
        out[..., cols] = full[..., self._env_from_full[cols]]
        return out

    def __call__(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Env states after each of the H actions: states (N, Ds), actions (N, H, A) -> (N, H, Ds)."""
        n, h, a = actions.shape
        if states.shape != (n, self.env_dim):
            raise ValueError(f"states must be ({n}, {self.env_dim}), got {states.shape}")
        ctrl = np.repeat(np.clip(actions, -1.0, 1.0), self.nstep, axis=1)  # (N, H*nstep, A)
        warm = states[:, self._warm_idx] if np.all(self._warm_idx >= 0) else None  # (N, nv)
        full, _ = mujoco.rollout.rollout(
            self.model, self.datas, self.to_full(states), np.ascontiguousarray(ctrl), initial_warmstart=warm
        )  # (N, H*nstep, full_dim)
        return self.to_env(full[:, self.nstep - 1 :: self.nstep])  # (N, H, Ds)
