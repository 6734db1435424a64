"""Typed settings of the main job (``scripts/pipeline.py``, configs/pipeline.yaml).

The stage subtrees (``collect``, ``pretrain``, ``predictor``, ``evaluate``) are overrides handed to each stage's
script, so they are open mappings here and are checked against the stage's own schema by
``check_stage_overrides`` (a misspelt key there names the key, before any stage runs).

configs/pipeline.yaml lists ``pipeline_schema`` first; ``worldmodel.pipeline.run_pipeline`` checks each stage
subtree with ``check_stage_overrides`` before any stage runs, so ``evaluate.agent.execute_steps=4`` needs no
``++`` and ``evaluate.agent.exeute_steps=4`` fails at once, naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worldmodel.config.env import EnvConfig


def _collect() -> dict[str, Any]:
    return {"episodes": 150, "episode_length": 80, "policy": "explore", "workers": 0}


def _pretrain() -> dict[str, Any]:
    return {
        "encoder": "tiny",
        "model": {"teacher": "sigreg"},  # SIGReg kept feature spread where EMA collapsed it in pilots
        "masks": {"preset": "causal"},  # next tubelet step from the previous one (docs/results.md)
        "train": {"steps": 480, "time_budget_s": None, "batch_size": 32},  # fixed steps: the same encoder anywhere
    }


def _predictor() -> dict[str, Any]:
    return {
        "predictor": "cpu",  # width 128, depth 4
        # each next latent as the current one plus a learned change: open-loop L1 over copy-last at h=1 1.15 -> 0.67;
        # TwoRoom's protocol, latent only: 58 -> 94% (first hit 89 -> 99%); env goals 97% both; Reacher 64 -> 77%.
        # Push's preset keeps it off (16 -> 12%, paired p = 0.52)
        "predictor.residual": True,
        "pool": "2x2cat",  # 2x2 grid of encoder tokens concatenated into one token per frame
        "data": {"clip_len": 8, "frameskip": 1},  # trained up to 7 predictor steps ahead of one frame
        "train": {"steps": 1500, "batch_size": 64},
        # raw pooled latents: latent-only planning 41 -> 47% (first hit 55 -> 85%) on TwoRoom's protocol, Push 8 ->
        # 21%; the main job's agent unchanged (99%, env goals 97%); Reacher's preset keeps `channel` (42 vs 12%)
        "model": {"latent_norm": "none"},
        # a learned step metric on the predictor's latents (QRL on the data's time order; no labels), fitted after
        # each predictor (~110 s): the evaluate and benchmark stages plan with it beside the latent L1 (first hit on
        # the protocol: TwoRoom 79 -> 88%, Reacher 71 -> 83%; docs/results.md); Push's preset switches it off
        "metric": {"steps": 2000},
    }


def _evaluate() -> dict[str, Any]:
    return {
        "episodes": 32,  # 16 gave +-20 points of noise (docs/results.md)
        "methods": ["random", "oracle"],
        "eval": {"max_steps": 40, "num_envs": 8},
        # the latent cost over every imagined step, not the last alone: on TwoRoom's protocol latent-only 47 -> 64%,
        # the main job's agent 99 -> 98%, env goals 97 -> 100%; Reacher 42 -> 55%; Push's preset keeps `last` (12->2%).
        # The learned metric (the predictor stage's `metric`) beside it, weighed level with it on average
        "objective": {
            "latent": {"steps": "all"},
            "metric": {"weight": 1.0, "steps": "all"},
            "proprio": {"weight": 1.0},
        },
        "agent": {"execute_steps": 2, "subgoals": {"enabled": True}},
        "planner": {"horizon": 5, "num_samples": 64, "iterations": 5},  # CPU budget
    }


def _benchmark() -> dict[str, Any]:
    return {
        "seeds": [0, 1],  # the field's protocol: 2 seeds x 50 held-out episodes, goal 25 env steps ahead, 50 steps
        "episodes": 50,
        "eval": {"num_envs": 8},
        # the evaluate stage's cost (latent L1 + the learned metric, over the horizon), in every agent variant
        "objective": {"latent": {"steps": "all"}, "metric": {"weight": 1.0, "steps": "all"}},
        "agent": {"execute_steps": 2},
        "planner": {"horizon": 5, "num_samples": 64, "iterations": 5},  # the evaluate stage's CPU budget
    }


@dataclass
class PipelineConfig:
    """collect -> pretrain encoder -> train predictors -> diagnostics -> closed-loop evaluation -> report.md."""

    root: str = "runs/pipeline/${hydra:runtime.choices.env}"
    """all stage folders and report.md go here"""
    device: str = "auto"
    """auto | cpu | cuda, for every stage"""
    launcher: str | None = None
    """torchrun arguments for pretrain, predictor and evaluate stages, e.g. "--standalone --nproc_per_node=4"
    (DDP training, sharded evaluation); null = 1 process"""
    compare_random_init: bool = True
    """also train a predictor on a frozen random-init encoder and evaluate it"""
    diagnostics: bool = True
    """representation probes and rollout error in the report"""
    progress_every_s: float = 30.0
    """when the output is not a terminal (CI logs), one plain progress line per stage this often"""
    python: str | None = None
    """interpreter that runs the stages (null = the one running the pipeline)"""
    env: EnvConfig = field(default_factory=EnvConfig)
    """the task (the ``env`` group)"""
    planner: Any = None
    """the planner (the ``planner`` group)"""
    env_kwargs: dict[str, Any] = field(default_factory=lambda: {"action_repeat": 2})
    """overrides of env.kwargs for collection and evaluation"""
    collect: dict[str, Any] = field(default_factory=_collect)
    """overrides for scripts/collect.py (worldmodel.config.collect.CollectConfig)"""
    pretrain: dict[str, Any] = field(default_factory=_pretrain)
    """overrides for scripts/pretrain.py (worldmodel.config.pretrain.PretrainConfig; CPU-sized: ~6 min)"""
    predictor: dict[str, Any] = field(default_factory=_predictor)
    """overrides for scripts/train_predictor.py (worldmodel.config.train.TrainPredictorConfig)"""
    evaluate: dict[str, Any] = field(default_factory=_evaluate)
    """overrides for scripts/evaluate.py (worldmodel.config.EvaluateConfig; the planner group is chosen above)"""
    protocol: bool = False
    """also run the field's protocol (scripts/benchmark.py: held-out dataset starts, goal image ``offset`` env steps
    ahead, ``max_steps`` budget, agent variants as columns) on the trained world models, and put its table in the
    report beside the env-goal evaluation; off by default (on the 2-core CPU it takes longer than the main job)"""
    benchmark: dict[str, Any] = field(default_factory=_benchmark)
    """overrides for scripts/benchmark.py when ``protocol`` is on (worldmodel.config.BenchmarkConfig)"""


STAGE_GROUPS = {"pretrain": ("encoder",), "predictor": ("predictor", "encoder"), "evaluate": (), "collect": (),
                "benchmark": ()}
"""Keys of a stage subtree that choose a config group option (a name, not settings)."""


def _unknown_stage_key(stage: str, exc: Any) -> str:
    """One line naming a misspelt key of a stage subtree, with the closest keys of its schema node."""
    import difflib

    key = str(getattr(exc, "key", "?"))
    full = f"{stage}.{getattr(exc, 'full_key', None) or key}"
    node = getattr(exc, "parent_node", None)
    siblings = [str(k) for k in node.keys()] if node is not None else []
    close = difflib.get_close_matches(key, siblings, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"keys there: {', '.join(siblings)}"
    return f"unknown config key {full!r} in the pipeline's {stage} overrides ({hint}); fix the spelling"


def _check_group_choices(stage: str, overrides: Mapping[str, Any]) -> None:
    """A group key of a stage subtree names an option; ``predictor.predictor.residual=true`` on the command line
    turns ``predictor: cpu`` into ``{residual: true}``, which would drop the choice (the stage's own default size
    would train) and lose to a preset's ``predictor.residual``. Refuse it, naming the form that works."""
    for group in STAGE_GROUPS[stage]:
        value = overrides.get(group)
        if isinstance(value, Mapping):
            fields = ",".join(f"{group}.{k}:{str(v).lower() if isinstance(v, bool) else v}" for k, v in value.items())
            raise ValueError(
                f"the pipeline's {stage}.{group} names a config-group option (e.g. {stage}.{group}=<option>) but "
                f"holds settings {dict(value)}; set a field of the chosen option as '++{stage}={{{fields}}}'")


def check_stage_overrides(stage: str, overrides: Mapping[str, Any]) -> None:
    """Merge a stage subtree onto its stage's schema: an unknown key or a wrong type raises OmegaConf's error
    naming ``<key>``. A group choice such as ``encoder: tiny`` and a field of the chosen option such as
    ``predictor.residual: true`` are left to the stage's own composition (the pipeline composes every stage, and
    refuses one that does not compose, before the first stage runs)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError

    from worldmodel.config.benchmark import BenchmarkConfig
    from worldmodel.config.collect import CollectConfig
    from worldmodel.config.evaluate import EvaluateConfig, typed_planner
    from worldmodel.config.pretrain import PretrainConfig
    from worldmodel.config.train import TrainPredictorConfig

    schemas = {"collect": CollectConfig, "pretrain": PretrainConfig, "predictor": TrainPredictorConfig,
               "evaluate": EvaluateConfig, "benchmark": BenchmarkConfig}
    _check_group_choices(stage, overrides)
    groups = (*STAGE_GROUPS[stage], "planner")
    raw = {k: v for k, v in dict(overrides).items() if str(k).split(".")[0] not in groups}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schemas[stage]), raw)
    except ConfigKeyError as exc:
        raise ValueError(_unknown_stage_key(stage, exc)) from None
    if stage == "predictor":
        OmegaConf.to_object(merged.model)  # the world model's own checks (model.latent_norm), before any stage runs
    if stage in ("evaluate", "benchmark") and overrides.get("planner"):
        typed_planner(dict(overrides["planner"]))
