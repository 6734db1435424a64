"""Goal-reaching MuJoCo tasks with pixel observations, registered with gymnasium on import.

``import envs`` registers ``wm/TwoRoom-v0``, ``wm/Reacher-v0`` and ``wm/Push-v0``. Build one with
``gymnasium.make(id, **kwargs)`` or :func:`envs.make` (which also accepts the short aliases). The task
API beyond gymnasium (get_state, set_state, goals, metrics) lives on ``env.unwrapped``.

Rendering is headless: importing this package picks MuJoCo's offscreen backend (the user's MUJOCO_GL,
else the one setup.sh verified, else EGL) via envs.rendering, so import it before mujoco.
"""

from __future__ import annotations

from envs.rendering import configure_headless

configure_headless()

from typing import Any  # noqa: E402

import gymnasium  # noqa: E402

from envs.base import MujocoGoalEnv  # noqa: E402
from envs.push import PushEnv  # noqa: E402
from envs.reacher import ReacherEnv  # noqa: E402
from envs.tworoom import TwoRoomEnv  # noqa: E402

ENV_IDS: tuple[str, ...] = ("wm/TwoRoom-v0", "wm/Reacher-v0", "wm/Push-v0")
ALIASES: dict[str, str] = {"tworoom": "wm/TwoRoom-v0", "reacher": "wm/Reacher-v0", "push": "wm/Push-v0"}
DEFAULT_MAX_EPISODE_STEPS: dict[str, int] = {"wm/TwoRoom-v0": 200, "wm/Reacher-v0": 200, "wm/Push-v0": 300}

_ENTRY_POINTS = {
    "wm/TwoRoom-v0": "envs.tworoom:TwoRoomEnv",
    "wm/Reacher-v0": "envs.reacher:ReacherEnv",
    "wm/Push-v0": "envs.push:PushEnv",
}

for _env_id in ENV_IDS:
    if _env_id not in gymnasium.registry:
        gymnasium.register(
            id=_env_id,
            entry_point=_ENTRY_POINTS[_env_id],
            max_episode_steps=DEFAULT_MAX_EPISODE_STEPS[_env_id],
        )


def resolve_id(name: str) -> str:
    """Full gymnasium id for an alias ('tworoom') or an id ('wm/TwoRoom-v0')."""
    if name in ENV_IDS:
        return name
    if name.lower() in ALIASES:
        return ALIASES[name.lower()]
    raise ValueError(f"Unknown environment {name!r}; use one of {list(ALIASES)} or {list(ENV_IDS)}.")


def make(name: str, **kwargs: Any) -> gymnasium.Env:
    """gymnasium.make for an alias or id; kwargs go to the env (max_episode_steps to the TimeLimit)."""
    return gymnasium.make(resolve_id(name), **kwargs)


__all__ = [
    "ALIASES",
    "ENV_IDS",
    "MujocoGoalEnv",
    "PushEnv",
    "ReacherEnv",
    "TwoRoomEnv",
    "make",
    "resolve_id",
]
import envs.adapter  # noqa: E402,F401  (registers wm/GymAdapter-v0: any gymnasium MuJoCo env)
import envs.generic  # noqa: E402,F401  (registers wm/GymGeneric-v0: any gymnasium env with state hooks)
