"""Typed settings of trajectory collection (``scripts/collect.py``, configs/collect.yaml).

configs/collect.yaml lists ``collect_schema`` first. The library-level request
(``worldmodel.data.collect.CollectConfig``, what ``collect()`` takes) reads its defaults from this class, so each
setting has one default. A second camera is an env option: ``env.kwargs.extra_cameras=[side]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worldmodel.config.env import EnvConfig


@dataclass
class CollectConfig:
    """Scripted-policy trajectories into one HDF5 file, in parallel worker processes."""

    env: EnvConfig = field(default_factory=EnvConfig)
    """the task (the ``env`` group)"""

    episodes: int = 200
    """number of episodes to collect"""
    episode_length: int = 100
    """environment steps per episode (frames stored = steps + 1)"""
    policy: str = "explore"
    """scripted policy from envs.policies: explore | random"""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """explorer options (TwoRoom/Reacher: rest_prob, rest_steps); on the CLI: '++policy_kwargs={rest_prob:0.2}'"""
    seed: int = 0
    """base seed; episode i is reset with a seed derived from (seed, i)"""
    workers: int = 0
    """worker processes: 0 = one per CPU core, 1 = collect in this process"""
    out: str = "data/${hydra:runtime.choices.env}_${policy}.h5"
    """output HDF5 file"""
    overwrite: bool = False
    """replace an existing output collected with a different config"""
    compression: str = "lzf"
    """HDF5 compression: lzf (fast reads), gzip (smaller), none"""
    keep_shards: bool = False
    """keep the per-episode shard folder after assembly (debugging)"""
