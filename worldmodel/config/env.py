"""Typed settings of the ``env`` config group (configs/env/*.yaml): which task, and its constructor arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EnvConfig:
    """A registered gymnasium env id and the keyword arguments it is built with.

    ``kwargs`` is free-form by design: each env (and every gymnasium env behind ``wm/GymAdapter-v0``) has its own
    constructor arguments, documented in its configs/env/<name>.yaml; the env refuses an unknown one when built.
    """

    id: str = "wm/TwoRoom-v0"
    """gymnasium id (``import envs`` registers the wm/* ones)"""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """constructor arguments: envs.make(id, **kwargs) (image_size, action_repeat, max_episode_steps, ...)"""
