"""Typed configs: one dataclass per stage and subtree, registered as Hydra structured configs.

Each stage's yaml (configs/<stage>.yaml) starts its defaults list with its schema (``<stage>_schema``) and each
planner option with its own (``planner/<name>_schema``), so a misspelt key or a wrong type fails when Hydra
composes, naming the key. Every field has exactly one default, set and documented in these modules; code reads
the validated fields without defaults of its own. The same dataclasses are the Python API's settings::

    from worldmodel.config import AgentConfig, EvalConfig, MPPIConfig
    evaluate_planning("world_model.pt", env="tworoom", planner=MPPIConfig(num_samples=64), eval=EvalConfig(...))

Importing this package registers the schemas in Hydra's ConfigStore (``register_configs``, idempotent).
"""

from __future__ import annotations

from typing import Any

from worldmodel.config.agent import AgentConfig, SubgoalsConfig
from worldmodel.config.benchmark import BenchmarkConfig
from worldmodel.config.env import EnvConfig
from worldmodel.config.eval import EvalConfig, OracleConfig, ShardConfig
from worldmodel.config.evaluate import EvaluateConfig, evaluate_config, typed
from worldmodel.config.goals import GoalsConfig
from worldmodel.config.objective import (
    ActionTermConfig,
    LatentTermConfig,
    ObjectiveConfig,
    ProbeTermConfig,
    ProprioTermConfig,
)
from worldmodel.config.planner import (
    PLANNER_OPTIONS,
    PLANNER_SCHEMAS,
    CEMConfig,
    GDConfig,
    ICEMConfig,
    MPPIConfig,
    PlannerConfig,
)

__all__ = [
    "ActionTermConfig",
    "AgentConfig",
    "BenchmarkConfig",
    "CEMConfig",
    "EnvConfig",
    "EvalConfig",
    "EvaluateConfig",
    "GDConfig",
    "GoalsConfig",
    "ICEMConfig",
    "LatentTermConfig",
    "MPPIConfig",
    "ObjectiveConfig",
    "OracleConfig",
    "PLANNER_OPTIONS",
    "PLANNER_SCHEMAS",
    "PlannerConfig",
    "ProbeTermConfig",
    "ProprioTermConfig",
    "ShardConfig",
    "SubgoalsConfig",
    "evaluate_config",
    "register_configs",
    "typed",
]

STAGE_SCHEMAS: dict[str, type] = {"evaluate_schema": EvaluateConfig, "benchmark_schema": BenchmarkConfig}
"""ConfigStore name -> schema of a stage (the first entry of configs/<stage>.yaml's defaults list)."""


def _stage_schemas() -> dict[str, type]:
    """Every stage schema, including those of stages whose modules import heavier code lazily."""
    from worldmodel.config.collect import CollectConfig
    from worldmodel.config.pipeline import PipelineConfig
    from worldmodel.config.pretrain import PretrainConfig
    from worldmodel.config.train import TrainPredictorConfig

    return {
        **STAGE_SCHEMAS,
        "collect_schema": CollectConfig,
        "pretrain_schema": PretrainConfig,
        "train_predictor_schema": TrainPredictorConfig,
        "pipeline_schema": PipelineConfig,
    }


OPEN_KEYS = ("world_models", "variants", "env.kwargs", "policy_kwargs", "env_kwargs", "collect", "pretrain",
             "predictor", "evaluate", "benchmark")
"""Mappings whose key set is open by design (names of world models and variants, env constructor arguments,
policy options, the pipeline's per-stage overrides): a new key there needs no ``+`` on the command line; the env
refuses an unknown kwarg itself, a stage its own unknown keys (worldmodel.config.pipeline.check_stage_overrides)."""


def schema_node(schema: type) -> Any:
    """``schema`` as a structured config whose open-by-design mappings (``OPEN_KEYS``) accept new keys."""
    from omegaconf import OmegaConf

    node = OmegaConf.structured(schema)
    for key in OPEN_KEYS:
        sub = OmegaConf.select(node, key)
        if sub is not None:
            OmegaConf.set_struct(sub, False)
    return node


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (stages at the top level, group options' schemas in their group)."""
    from hydra.core.config_store import ConfigStore

    from worldmodel.config.train import PredictorSizesConfig

    store = ConfigStore.instance()
    for name, schema in _stage_schemas().items():
        store.store(name=name, node=schema_node(schema))
    for option, schema in PLANNER_OPTIONS.items():
        store.store(group="planner", name=f"{option}_schema", node=schema)
    store.store(group="predictor", name="predictor_schema", node=PredictorSizesConfig)


register_configs()
