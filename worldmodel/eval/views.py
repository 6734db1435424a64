"""Camera views of a batch of evaluation envs, for a world model trained on several cameras.

An env built with ``extra_cameras`` (envs/base.py) observes ``pixels`` (its main camera, ``camera_name``) and
``pixels/<camera>`` for each extra camera; a trajectory file collected from it names the main camera too (its
default camera, first). A multi-camera world model records the camera names it was trained on
(``WorldModel.cameras``); these helpers hand it ``{camera: (B, H, W, 3)}`` for the current frames and the goals
(``current_views``, ``goal_views``), and ``{camera: (M, 3, H, W)}`` for frames of a trajectory file
(``file_views``, ``model_pixels``: the subgoal graph, readouts, rollout error).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodel.eval.episodes import EnvBatch


def env_cameras(env: Any) -> list[str]:
    """Camera names an (unwrapped) env renders: its main camera first, then its extra cameras."""
    main = str(getattr(env, "camera_name", "main"))
    return [main, *[str(c) for c in (getattr(env, "extra_cameras", None) or {})]]


def check_env_cameras(env: Any, cameras: list[str]) -> None:
    """ValueError naming the missing cameras and the fix unless the env renders every camera in ``cameras``."""
    have = env_cameras(env)
    missing = [c for c in cameras if c not in have]
    if missing:
        extra = [c for c in cameras if c != have[0]]
        raise ValueError(
            f"the world model observes cameras {cameras} but the env renders {have} (missing {missing}); build the "
            f"env with the same extra cameras as the training data: env.kwargs.extra_cameras={extra}"
        )


def current_views(batch: EnvBatch, cameras: list[str]) -> dict[str, np.ndarray]:
    """The batch's current frames per camera, {camera: (B, H, W, 3) uint8}, as the envs last observed them: the
    main camera is ``batch.pixels``, the extra cameras ``batch.views`` (no env renders anything here)."""
    assert batch.pixels is not None, "reset the batch first"
    have = {env_cameras(batch.base[0])[0]: batch.pixels, **batch.views}
    missing = [c for c in cameras if c not in have]
    if missing:
        check_env_cameras(batch.base[0], cameras)  # names the fix (env.kwargs.extra_cameras)
        raise ValueError(f"the env observations hold no pixels/<camera> for cameras {missing}; have {list(have)}")
    return {c: have[c] for c in cameras}


def goal_views(batch: EnvBatch, cameras: list[str]) -> dict[str, np.ndarray]:
    """The current episodes' goal images per camera, {camera: (B, H, W, 3) uint8}."""
    main = env_cameras(batch.base[0])[0]
    out = {main: batch.goal_pixels()} if main in cameras else {}
    for cam in cameras:
        if cam != main:
            out[cam] = np.stack([_render_goal(env, cam) for env in batch.base])
    return {c: out[c] for c in cameras}


def _render_goal(env: Any, camera: str) -> np.ndarray:
    """(H, W, 3) image of an env's goal state through one of its extra cameras, without touching the episode
    (the env's public ``render_state(state, camera=...)``; envs/base.py)."""
    if "camera" not in inspect.signature(env.render_state).parameters:
        raise ValueError(
            f"{type(env).__name__} renders extra cameras but its render_state(state) takes no camera; give it "
            "render_state(state, camera=None) rendering the named camera (as envs/base.py's MujocoGoalEnv does)"
        )
    return np.asarray(env.render_state(env.goal_state, camera=camera))


def file_views(path: str, cameras: list[str], episodes: np.ndarray, times: np.ndarray) -> dict[str, Tensor]:
    """Frames of a trajectory file for each camera, {camera: (M, 3, H, W) uint8}: frame ``times[m]`` of episode
    ``episodes[m]`` (M,). Read one episode span at a time (the rows of one episode are contiguous)."""
    from worldmodel.data.reader import TrajectoryFile

    tf = TrajectoryFile(path)
    try:
        rows = tf.episode_starts[np.asarray(episodes)] + np.asarray(times)  # (M,) global frame indices
        out: dict[str, Tensor] = {}
        for cam in cameras:
            parts = np.empty((len(rows), *tf.column_shape(tf.pixel_key(cam))), dtype=np.uint8)  # (M, H, W, 3)
            for ep in np.unique(episodes):
                sel = np.flatnonzero(episodes == ep)
                lo, hi = int(rows[sel].min()), int(rows[sel].max()) + 1
                parts[sel] = tf.read_pixels(lo, hi, cam)[rows[sel] - lo]
            out[cam] = torch.from_numpy(parts).permute(0, 3, 1, 2).contiguous()  # (M, 3, H, W)
        return out
    finally:
        tf.close()


def model_pixels(wm: Any, path: str, frames: dict[str, Any]) -> Tensor | dict[str, Tensor]:
    """What ``wm.encode`` takes for ``frames`` of the trajectory file ``path`` (``pixels`` (M, 3, H, W) of its
    default camera, ``episodes`` and ``times`` (M,), as load_graph_frames returns them): those pixels for a model
    without named cameras, else the same frames through each of its cameras, {camera: (M, 3, H, W)}."""
    cams = getattr(wm, "cameras", None)
    if cams is None:
        return frames["pixels"]
    return file_views(path, cams, frames["episodes"], frames["times"])
