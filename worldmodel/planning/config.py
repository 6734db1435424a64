"""Typed settings of the ``objective`` config group (configs/objective/*.yaml) and the objective they build.

Each term has a weight (0 switches it off) and its own settings; unknown keys and bad values are refused with
a message that names the key and the choices, before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from torch import Tensor

from planners.base import check_choice
from worldmodel.planning.objective import (
    KINDS,
    STEPS,
    ActionPenalty,
    LatentDistance,
    Objective,
    ProprioDistance,
    ReadoutDistance,
)

READOUTS = ("ridge", "knn")

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


@dataclass(frozen=True)
class LatentTermConfig:
    """Distance of imagined latents to the target image's embedding."""

    weight: float = 1.0  # weight in the sum (0 = off)
    kind: str = "l1"  # l1 (mean |.|, V-JEPA 2-AC) | l2 (mean square)
    steps: str = "last"  # last imagined step | all (mean over the horizon)

    def __post_init__(self) -> None:
        check_choice("objective.latent.kind", self.kind, KINDS)
        check_choice("objective.latent.steps", self.steps, STEPS)


@dataclass(frozen=True)
class ProprioTermConfig:
    """Distance of imagined proprio to the proprio a readout sees in the target image."""

    weight: float = 0.0  # weight in the sum (0 = off); needs a world model trained with proprio
    kind: str = "l1"  # l1 | l2, over normalised proprio dims
    steps: str = "last"  # last | all
    readout: str = "ridge"  # ridge (linear) | knn (mean proprio of the nearest training frames in latent L1)
    knn: int = 5  # k of the knn readout
    data: str | None = None  # HDF5 the readout is fitted on (default: the world model's training data)
    frames: int = 3000  # training-split frames the readout is fitted on

    def __post_init__(self) -> None:
        check_choice("objective.proprio.kind", self.kind, KINDS)
        check_choice("objective.proprio.steps", self.steps, STEPS)
        check_choice("objective.proprio.readout", self.readout, READOUTS)
        if self.knn < 1 or self.frames < 1:
            raise ValueError(f"objective.proprio.knn={self.knn} and .frames={self.frames} must be >= 1")


@dataclass(frozen=True)
class ActionTermConfig:
    """Control effort: mean squared action (planner units)."""

    weight: float = 0.0  # weight in the sum (0 = off)


@dataclass(frozen=True)
class ProbeTermConfig:
    """Euclidean distance of task coordinates read out linearly from imagined and target latents (diagnostic)."""

    weight: float = 0.0  # weight in the sum (0 = off)
    steps: str = "last"  # last | all
    data: str | None = None  # HDF5 with states the ridge probe is fitted on (default: goals.dataset)
    frames: int = 3000  # training-split frames the probe is fitted on

    def __post_init__(self) -> None:
        check_choice("objective.probe.steps", self.steps, STEPS)


@dataclass(frozen=True)
class ObjectiveConfig:
    """The whole ``objective`` group: one entry per term."""

    latent: LatentTermConfig = field(default_factory=LatentTermConfig)
    proprio: ProprioTermConfig = field(default_factory=ProprioTermConfig)
    action: ActionTermConfig = field(default_factory=ActionTermConfig)
    probe: ProbeTermConfig = field(default_factory=ProbeTermConfig)

    def __post_init__(self) -> None:
        weights = {f.name: float(getattr(self, f.name).weight) for f in fields(self)}
        bad = {k: w for k, w in weights.items() if w < 0}
        if bad:
            raise ValueError(f"objective weights must be >= 0, got {bad}")
        if not any(w > 0 for w in weights.values()):
            raise ValueError(f"every objective weight is 0 ({weights}); give at least one term a positive weight")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> ObjectiveConfig:
        """Build from a plain dict (the composed Hydra group); unknown keys are a ValueError naming them."""
        raw = dict(raw or {})
        parts = {f.name: f for f in fields(cls)}
        _refuse_unknown("objective", raw, set(parts))
        built = {}
        for name, value in raw.items():
            sub = parts[name].default_factory()  # type: ignore[misc]
            _refuse_unknown(f"objective.{name}", dict(value or {}), {f.name for f in fields(sub)})
            built[name] = type(sub)(**dict(value or {}))
        return cls(**built)


def _refuse_unknown(where: str, raw: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown {where} keys {unknown}; known keys: {sorted(known)}")


def refuse_moved_agent_keys(agent_cfg: Mapping[str, Any]) -> None:
    """A ValueError naming the new home of every cost setting still given under ``agent``."""
    moved = [f"agent.{k} -> {MOVED_AGENT_KEYS[k]}" for k in agent_cfg if k in MOVED_AGENT_KEYS]
    if moved:
        raise ValueError("the planning cost has its own config group `objective`: " + "; ".join(moved))


def build_objective(
    cfg: ObjectiveConfig, probe_readout: Callable[[Tensor], Tensor] | None = None
) -> Objective:
    """The world-model agent's Objective from its settings (``probe_readout`` is needed when probe.weight > 0)."""
    if cfg.probe.weight > 0 and probe_readout is None:
        raise ValueError("objective.probe.weight > 0 needs a probe readout fitted on labelled frames")
    terms: list[tuple[float, Any]] = [
        (cfg.latent.weight, LatentDistance(cfg.latent.kind, cfg.latent.steps)),
        (cfg.proprio.weight, ProprioDistance(cfg.proprio.kind, cfg.proprio.steps)),
        (cfg.action.weight, ActionPenalty()),
    ]
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
    base = yaml.safe_load(path.read_text()) or {}
    for key, value in overrides.items():
        base[key] = {**(base.get(key) or {}), **dict(value or {})} if isinstance(value, Mapping) else value
    ObjectiveConfig.from_dict(base)
    return base
