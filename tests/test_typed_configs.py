"""Typed configs (worldmodel/config): a misspelt key or a wrong type fails when Hydra composes, naming the key;
each field has one default, documented where it is defined; plain dicts are checked against the same schemas."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

import worldmodel.config as wc
from worldmodel.config import (
    PLANNER_OPTIONS,
    AgentConfig,
    BenchmarkConfig,
    CEMConfig,
    EvaluateConfig,
    MPPIConfig,
    ObjectiveConfig,
    evaluate_config,
)

ROOT = Path(__file__).resolve().parents[1]


def compose(name: str, *overrides: str) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hydra_compose(config_name=name, overrides=list(overrides))


@pytest.mark.parametrize("name", ["evaluate", "benchmark"])
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("agent.proprio_wieght=1", "proprio_wieght"),
        ("agent.subgoals.enabeld=true", "enabeld"),
        ("eval.max_stpes=3", "max_stpes"),
        ("objective.proprio.wieght=1", "wieght"),
        ("planner.num_sampels=3", "num_sampels"),
        ("episdoes=3", "episdoes"),
    ],
)
def test_a_misspelt_key_fails_at_composition_naming_it(name: str, override: str, key: str) -> None:
    with pytest.raises(ConfigCompositionException, match=key):
        compose(name, override)


def test_a_wrong_type_fails_at_composition() -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose("evaluate", "agent.execute_steps=two")
    assert "execute_steps" in str(info.value.__cause__)


def test_documented_overrides_need_no_plus() -> None:
    """Open-by-design mappings take new keys; every other key exists with its schema default."""
    cfg = compose(
        "evaluate", "world_models.world_model=a.pt", "world_models.random_init=b.pt", "env.kwargs.action_repeat=2",
        "objective=latent_proprio", "objective.proprio.readout=knn", "agent.subgoals.enabled=true", "planner=mppi",
        "planner.num_samples=64",
    )
    assert dict(cfg.world_models) == {"world_model": "a.pt", "random_init": "b.pt"}
    assert cfg.objective.proprio.weight == 1.0 and cfg.objective.proprio.readout == "knn"
    assert cfg.planner._target_ == "planners.mppi.MPPIPlanner" and cfg.planner.num_samples == 64
    bench = compose("benchmark", "world_models.world_model=a.pt", "variants.mine={objective:{latent:{kind:l2}}}")
    assert set(bench.variants) == {"latent", "latent_proprio", "latent_proprio_subgoals", "mine"}
    assert bench.seed is None and bench.eval.max_steps is None and bench.episodes == 50


def test_the_script_exits_2_naming_the_misspelt_key(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "agent.proprio_wieght=1", f"out_dir={tmp_path}/x"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "proprio_wieght" in lines[0], res.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("option", sorted(PLANNER_OPTIONS))
def test_planner_yaml_selects_its_schema_and_sets_no_second_default(option: str) -> None:
    """configs/planner/<option>.yaml names its schema and repeats none of its defaults (one default per setting);
    composed through evaluate it is exactly the schema."""
    raw = yaml.safe_load((ROOT / "configs" / "planner" / f"{option}.yaml").read_text())
    assert raw == {"defaults": [f"{option}_schema", "_self_"]}
    schema = OmegaConf.to_container(OmegaConf.structured(PLANNER_OPTIONS[option]))
    assert OmegaConf.to_container(compose("evaluate", f"planner={option}").planner) == schema


def test_objective_options_are_changes_to_the_schema_defaults() -> None:
    from worldmodel.planning.config import compose_objective

    defaults = OmegaConf.to_container(OmegaConf.structured(ObjectiveConfig))
    assert compose_objective("latent", ROOT / "configs") == defaults
    assert compose_objective("latent_proprio", ROOT / "configs")["proprio"]["weight"] == 1.0
    composed = compose("evaluate", "objective=latent_proprio")
    assert ObjectiveConfig.from_dict(OmegaConf.to_container(composed.objective)).proprio.weight == 1.0


@pytest.mark.parametrize("env", sorted(p.stem for p in (ROOT / "configs" / "env").glob("*.yaml")))
def test_every_env_option_composes_into_the_schema(env: str) -> None:
    cfg = compose("evaluate", f"env={env}", "out_dir=x")
    typed = evaluate_config(OmegaConf.to_container(cfg))
    raw = yaml.safe_load((ROOT / "configs" / "env" / f"{env}.yaml").read_text())
    assert typed.env.id == raw["id"] and typed.env.kwargs == raw["kwargs"]


def test_plain_dicts_are_checked_against_the_same_schema() -> None:
    cfg = evaluate_config({"out_dir": "x", "planner": {"_target_": "planners.mppi.MPPIPlanner", "num_samples": 8}})
    assert isinstance(cfg.planner, MPPIConfig) and cfg.planner.num_samples == 8 and cfg.planner.temperature == 0.3
    assert isinstance(evaluate_config({"out_dir": "x"}).planner, CEMConfig)
    assert cfg.agent == AgentConfig() and cfg.episodes == EvaluateConfig.episodes
    with pytest.raises(ConfigKeyError, match="proprio_wieght"):
        evaluate_config({"out_dir": "x", "agent": {"proprio_wieght": 1}})
    with pytest.raises(ConfigKeyError, match="num_sampels"):
        evaluate_config({"out_dir": "x", "planner": {"num_sampels": 8}})
    with pytest.raises(ValidationError, match="episodes"):
        evaluate_config({"out_dir": "x", "episodes": "many"})
    with pytest.raises(ValueError, match="execute_steps=0"):
        evaluate_config({"out_dir": "x", "agent": {"execute_steps": 0}})
    with pytest.raises(ValueError, match="objective.latent.kind"):
        evaluate_config({"out_dir": "x", "objective": {"latent": {"kind": "l3"}}})


def _schemas() -> list[type]:
    found = {obj for name in wc.__all__ if is_dataclass(obj := getattr(wc, name)) and isinstance(obj, type)}
    from worldmodel.config.collect import CollectConfig
    from worldmodel.config.pipeline import PipelineConfig
    from worldmodel.config.pretrain import PretrainConfig
    from worldmodel.config.train import TrainPredictorConfig

    found |= {CollectConfig, PipelineConfig, PretrainConfig, TrainPredictorConfig}
    stack = list(found)
    while stack:  # nested schemas
        for f in fields(stack.pop()):
            sub = f.default_factory() if callable(f.default_factory) else None  # type: ignore[misc]
            if is_dataclass(sub) and type(sub) not in found:
                found.add(type(sub))
                stack.append(type(sub))
    return sorted(found, key=lambda c: c.__name__)


@pytest.mark.parametrize("schema", _schemas(), ids=lambda c: c.__name__)
def test_every_field_is_documented_where_it_is_defined(schema: type) -> None:
    """Each field assignment in the class body is followed by its docstring."""
    tree = ast.parse(inspect.getsource(schema))
    body = tree.body[0].body  # type: ignore[attr-defined]
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and node.target.id != "_target_":  # type: ignore[union-attr]
            nxt = body[i + 1] if i + 1 < len(body) else None
            doc = isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)
            assert doc, f"{schema.__name__}.{node.target.id} has no docstring"  # type: ignore[union-attr]


def test_collect_schema_covers_collect_yaml() -> None:
    """worldmodel/config/collect.py knows every key of configs/collect.yaml (ready for its defaults list)."""
    from worldmodel.config.collect import CollectConfig

    raw = yaml.safe_load((ROOT / "configs" / "collect.yaml").read_text())
    keys = set(raw) - {"defaults", "hydra"}
    assert keys <= {f.name for f in fields(CollectConfig)}


def test_benchmark_schema_extends_evaluate() -> None:
    assert issubclass(BenchmarkConfig, EvaluateConfig)
    assert {f.name for f in fields(EvaluateConfig)} < {f.name for f in fields(BenchmarkConfig)}


@pytest.mark.parametrize(("name", "module", "schema"), [
    ("train_predictor", "worldmodel.config.train", "TrainPredictorConfig"),
    ("pipeline", "worldmodel.config.pipeline", "PipelineConfig"),
])
def test_stage_schemas_cover_their_composed_configs(name: str, module: str, schema: str) -> None:
    """The schemas of configs/train_predictor.yaml and configs/pipeline.yaml accept what those compose to, and the
    pipeline's stage overrides pass their stages' schemas (a misspelt one is refused, naming it)."""
    import importlib

    cls = getattr(importlib.import_module(module), schema)
    composed = OmegaConf.to_container(compose(name))
    merged = OmegaConf.merge(OmegaConf.structured(cls), composed)
    assert set(merged) == {f.name for f in fields(cls)}
    if name == "pipeline":
        from worldmodel.config.pipeline import check_stage_overrides

        for stage in ("collect", "pretrain", "predictor", "evaluate"):
            check_stage_overrides(stage, composed[stage])
        with pytest.raises(ValueError, match=r"'evaluate\.agent\.proprio_wieght' in the pipeline's evaluate overrides"):
            check_stage_overrides("evaluate", {"agent": {"proprio_wieght": 1}})


def test_the_predictor_groups_schema_lists_every_field_training_reads() -> None:
    """predictor_schema types exactly the dims and the size keys train_predictor reads: a size field added to one
    and not the other would be refused at composition or silently untyped."""
    from dataclasses import fields

    from worldmodel.config.train import PredictorSizesConfig
    from worldmodel.training.train_predictor import PREDICTOR_SIZE_KEYS

    dims = {"latent_dim", "action_dim", "num_tokens", "proprio_dim"}
    assert {f.name for f in fields(PredictorSizesConfig)} == {"_target_", *dims, *PREDICTOR_SIZE_KEYS}
