"""The objective the ``objective`` settings build (the settings themselves: worldmodel/config/objective.py).

Each term has a weight (0 switches it off) and its own settings; unknown keys and bad values are refused with
a message that names the key and the choices, before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import Tensor

from worldmodel.config.objective import (  # re-exported: the settings live in worldmodel/config/objective.py
    READOUTS,
    ActionTermConfig,
    LatentTermConfig,
    MetricTermConfig,
    ObjectiveConfig,
    ProbeTermConfig,
    ProprioTermConfig,
)

__all__ = [
    "READOUTS",
    "ActionTermConfig",
    "LatentTermConfig",
    "MetricTermConfig",
    "ObjectiveConfig",
    "ProbeTermConfig",
    "ProprioTermConfig",
    "build_objective",
    "compose_objective",
    "refuse_moved_agent_keys",
]
from worldmodel.planning.objective import (
    ActionPenalty,
    LatentDistance,
    MetricDistance,
    Objective,
    ProprioDistance,
    ReadoutDistance,
)

# Settings that lived in `agent` before the objective had its own group: where each one went.
MOVED_AGENT_KEYS = {
    "cost_kind": "objective.latent.kind",
    "cost_steps": "objective.latent.steps",
    "latent_weight": "objective.latent.weight",
    "proprio_weight": "objective.proprio.weight (or objective=latent_proprio)",
    "proprio_readout": "objective.proprio.readout",
    "proprio_knn": "objective.proprio.knn",
    "proprio_data": "objective.proprio.data",
    "action_cost": "objective.action.weight",
    "cost_space": "objective.probe.weight (probe.weight=1 with latent.weight=0 plans in probe space)",
    "probe_data": "objective.probe.data",
    "probe_frames": "objective.proprio.frames / objective.probe.frames",
}


def refuse_moved_agent_keys(agent_cfg: Mapping[str, Any]) -> None:
    """A ValueError naming the new home of every cost setting still given under ``agent``."""
    moved = [f"agent.{k} -> {MOVED_AGENT_KEYS[k]}" for k in agent_cfg if k in MOVED_AGENT_KEYS]
    if moved:
        raise ValueError("the planning cost has its own config group `objective`: " + "; ".join(moved))


def build_objective(
    cfg: ObjectiveConfig,
    probe_readout: Callable[[Tensor], Tensor] | None = None,
    latent_std: Tensor | None = None,
    metric: Any = None,
) -> Objective:
    """The world-model agent's Objective from its settings (``probe_readout`` is needed when probe.weight > 0,
    the world model's ``latent_std`` (N, D) when objective.latent.space=encoder, its learned ``metric`` when
    objective.metric.weight > 0)."""
    if cfg.probe.weight > 0 and probe_readout is None:
        raise ValueError("objective.probe.weight > 0 needs a probe readout fitted on labelled frames")
    if cfg.metric.weight > 0 and metric is None:
        raise ValueError(
            "objective.metric.weight > 0 needs a world model with a learned step metric: train one with "
            "scripts/train_predictor.py ... metric.steps=2000, or set objective.metric.weight=0"
        )
    scale = None
    if cfg.latent.weight > 0 and cfg.latent.space == "encoder":
        if latent_std is None:
            raise ValueError("objective.latent.space=encoder needs the world model's latent_std (pass latent_std=)")
        scale = latent_std
    terms: list[tuple[float, Any]] = [
        (cfg.latent.weight, LatentDistance(cfg.latent.kind, cfg.latent.steps, scale)),
        (cfg.proprio.weight, ProprioDistance(cfg.proprio.kind, cfg.proprio.steps)),
        (cfg.action.weight, ActionPenalty()),
    ]
    if metric is not None:
        terms.append((cfg.metric.weight, MetricDistance(metric, cfg.metric.steps)))
    if probe_readout is not None:
        terms.append((cfg.probe.weight, ReadoutDistance(probe_readout, cfg.probe.steps)))
    return Objective(terms)


def compose_objective(choice: str | Mapping[str, Any] | None, config_dir: str | Path) -> dict[str, Any]:
    """The objective settings a group choice (``"latent_proprio"``) or a dict of overrides stands for.

    Used to check a pipeline's evaluate settings before its training stages run; a dict is taken as
    overrides of the default group ``latent`` (what ``evaluate.yaml`` composes).
    """
    import yaml

    group = Path(config_dir) / "objective"
    name, overrides = (choice, {}) if isinstance(choice, str) else ("latent", dict(choice or {}))
    path = group / f"{name}.yaml"
    if not path.exists():
        options = sorted(p.stem for p in group.glob("*.yaml"))
        raise ValueError(f"objective={name!r} is not a config in {group}; choose one of {options}")
    base = yaml.safe_load(path.read_text()) or {}  # the option's changes to the schema's defaults
    base.pop("defaults", None)
    for key, value in overrides.items():
        base[key] = {**(base.get(key) or {}), **dict(value or {})} if isinstance(value, Mapping) else value
    return asdict(ObjectiveConfig.from_dict(base))
