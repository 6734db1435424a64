"""Typed settings of a closed-loop evaluation (``scripts/evaluate.py``, configs/evaluate.yaml).

configs/evaluate.yaml starts its defaults list with this schema (``evaluate_schema``), so a misspelt key fails
when Hydra composes; ``evaluate_config`` applies the same schema to a plain dict (the Python API, the benchmark).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from worldmodel.config.agent import AgentConfig
from worldmodel.config.env import EnvConfig
from worldmodel.config.eval import EvalConfig, OracleConfig, ShardConfig
from worldmodel.config.goals import GoalsConfig
from worldmodel.config.objective import ObjectiveConfig
from worldmodel.config.planner import PLANNER_SCHEMAS, CEMConfig

DEVICES = "auto | cpu | cuda | cuda:<i>"


@dataclass
class EvaluateConfig:
    """World models beside the random floor and the oracle ceiling, on the same episodes."""

    world_models: dict[str, str] = field(default_factory=dict)
    """name -> world_model.pt; each is evaluated as a method (e.g. world_model, random_init)"""
    methods: list[str] = field(default_factory=lambda: ["random", "oracle"])
    """baselines run in the same harness: random (floor), oracle (same planner, true simulator), expert (the env's
    expert policy: the ceiling without a simulator)"""
    episodes: int = 16
    """evaluation episodes per method"""
    seed: int | None = 0
    """seeds the episodes (starts and goals) and the planners"""
    device: str = "auto"
    """auto | cpu | cuda"""
    logger: str | None = "auto"
    """where results are also logged (worldmodel.eval.loggers): auto (TensorBoard when installed) | tensorboard |
    wandb (pip install worldmodel[wandb]; nothing leaves the machine unless you ask for it) | none (null = none)"""
    out_root: str = "outputs/eval"
    """parent of out_dir, and of the Hydra logs of --multirun sweeps"""
    out_dir: str = MISSING
    """results folder (configs/evaluate.yaml: <out_root>/<env>_<planner>_seed<seed>); re-running resumes there"""
    env: EnvConfig = field(default_factory=EnvConfig)
    """the task (the ``env`` group)"""
    planner: Any = None
    """the planner (the ``planner`` group: a worldmodel.config.planner schema; None: CEMConfig())"""
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    """the planning cost (the ``objective`` group)"""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """how the world-model agent acts"""
    goals: GoalsConfig = field(default_factory=GoalsConfig)
    """episode starts and goals"""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """episode budget, batching and video"""
    shard: ShardConfig = field(default_factory=ShardConfig)
    """split the episodes across processes"""
    oracle: OracleConfig = field(default_factory=OracleConfig)
    """the simulator ceiling's own settings"""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes={self.episodes} must be >= 1")
        if self.planner is None:
            self.planner = CEMConfig()


def typed_planner(raw: Any) -> Any:
    """A planner dict checked against its schema (by ``_target_``); other planners pass through unchanged."""
    if raw is None or not isinstance(raw, Mapping | DictConfig):
        return raw
    schema = PLANNER_SCHEMAS.get(str(raw.get("_target_", "planners.cem.CEMPlanner")))
    if schema is None:  # a planner of your own: its constructor checks its arguments
        return OmegaConf.create(dict(raw))
    return OmegaConf.merge(OmegaConf.structured(schema), raw)


def typed(schema: type, raw: Any) -> Any:
    """``raw`` (a dict, DictConfig or ``schema`` instance) as a ``schema`` instance: unknown keys and wrong types
    raise OmegaConf's error naming the key, bad values the dataclass's ValueError."""
    if isinstance(raw, schema):
        return raw
    base = OmegaConf.structured(schema)
    raw = OmegaConf.create(raw if isinstance(raw, DictConfig) else dict(raw or {}))
    has_planner = "planner" in base
    planner = raw.pop("planner", None) if has_planner and "planner" in raw else None
    merged = OmegaConf.merge(base, raw)
    if has_planner:  # the planner's schema depends on its _target_
        merged.planner = typed_planner(planner)
    return OmegaConf.to_object(merged)


def evaluate_config(raw: Mapping[str, Any] | DictConfig | EvaluateConfig) -> EvaluateConfig:
    """The evaluate settings as an ``EvaluateConfig`` (every field present, each with its one default)."""
    return typed(EvaluateConfig, raw)
