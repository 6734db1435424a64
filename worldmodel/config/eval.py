"""Typed settings of ``eval`` (how episodes run), ``shard`` (splitting them across processes) and ``oracle``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalConfig:
    """How episodes are run; part of every results file's header."""

    max_steps: int | None = 60
    """env-step budget per episode (the benchmark sets it from its own max_steps)"""
    num_envs: int = 8
    """environments planned for together (one batched planner call)"""
    stop_on_success: bool = False
    """end an episode at first success (success then equals reached)"""
    video_episodes: int = 8
    """episodes of the first wave in the mp4 grid (0 = no video)"""

    def __post_init__(self) -> None:
        if self.num_envs < 1 or self.video_episodes < 0:
            raise ValueError(f"eval.num_envs={self.num_envs} must be >= 1 and eval.video_episodes >= 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"eval.max_steps={self.max_steps} must be >= 1")


@dataclass
class ShardConfig:
    """Split the episodes (whole waves of num_envs) across processes; merged into one summary."""

    index: int | None = None
    """this process's shard (0..count-1); null = RANK under torchrun"""
    count: int | None = None
    """number of shards; null = WORLD_SIZE under torchrun, else 1 (unsharded)"""
    barrier_timeout_min: float = 1440
    """torchrun: how long rank 0 waits for the other shards before merging (minutes)"""


@dataclass
class OracleConfig:
    """The simulator ceiling: the same planner through the true simulator."""

    cost_steps: str = "all"
    """true-distance cost over the horizon (all) or at its end (last)"""
    num_samples: int | None = None
    """override the planner's samples for the oracle (null = same planner budget)"""
    frameskip: int | None = None
    """env steps per oracle planner step (null: the world models' frameskip, 1 without any); the oracle plans
    planner.horizon x frameskip env steps, the world models' reach"""

    def __post_init__(self) -> None:
        if self.cost_steps not in ("all", "last"):
            raise ValueError(f"oracle.cost_steps must be one of ('all', 'last'), got {self.cost_steps!r}")
        if self.frameskip is not None and self.frameskip < 1:
            raise ValueError(f"oracle.frameskip={self.frameskip} must be >= 1")
