"""Typed settings of the ``objective`` config group (configs/objective/*.yaml): the planning cost.

A weighted sum of terms, each scoring an imagined rollout against the target (the goal image, or the subgoal
graph's node toward it). A weight of 0 switches a term off. The defaults are V-JEPA 2-AC's objective (the latent
distance alone, ``objective=latent``); ``objective=latent_proprio`` adds DINO-WM's proprio term. Bad values are
refused when the settings are built (``OmegaConf.to_object`` or the constructor), naming the key and the choices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

KINDS = ("l1", "l2")
"""distance kinds: l1 (mean |z - g|, V-JEPA 2-AC) | l2 (mean (z - g)^2)"""
STEPS = ("last", "all")
"""which imagined steps a term scores: the last | the mean over the horizon"""
SPACES = ("model", "encoder")
"""where the latent distance is measured: model (the world model's own latents, what the predictor predicts, scaled
as its model.latent_norm says) | encoder (the frozen encoder's pooled latents: any scaling undone, V-JEPA 2-AC's)"""
READOUTS = ("ridge", "knn")
"""goal-proprio readouts: ridge (linear) | knn (mean proprio of the nearest training frames in latent L1)"""


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a ValueError naming the setting and the choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


@dataclass
class LatentTermConfig:
    """Distance of imagined latents to the target image's embedding."""

    weight: float = 1.0
    """weight in the sum (0 = off)"""
    kind: str = "l1"
    """l1: mean |z - g| over tokens and channels (V-JEPA 2-AC) | l2: mean (z - g)^2"""
    steps: str = "last"
    """last: the final imagined step | all: the mean over the horizon"""
    space: str = "model"
    """model: distance between the world model's own latents (standardised per channel, one spread or raw, as its
    model.latent_norm says) | encoder: between the frozen encoder's pooled latents (each channel weighted by its
    spread in the training data, so the directions the encoder varies most in dominate; the same as model for a
    world model on raw latents; docs/results.md, "The predictor's latent space")"""

    def __post_init__(self) -> None:
        check_choice("objective.latent.kind", self.kind, KINDS)
        check_choice("objective.latent.steps", self.steps, STEPS)
        check_choice("objective.latent.space", self.space, SPACES)


@dataclass
class ProprioTermConfig:
    """Distance of imagined proprio to the proprio a readout sees in the target image (the goal's proprio is read
    out of the goal image, never given)."""

    weight: float = 0.0
    """weight in the sum (0 = off); needs a world model trained with proprio (model.use_proprio=true)"""
    kind: str = "l1"
    """l1 | l2, over normalised proprio dims"""
    steps: str = "last"
    """last | all"""
    readout: str = "ridge"
    """ridge: linear readout | knn: mean proprio of the nearest training frames in latent L1"""
    knn: int = 5
    """k of the knn readout"""
    data: str | None = None
    """HDF5 the readout is fitted on (null: the world model's training data)"""
    frames: int = 3000
    """training-split frames the readout is fitted on"""

    def __post_init__(self) -> None:
        check_choice("objective.proprio.kind", self.kind, KINDS)
        check_choice("objective.proprio.steps", self.steps, STEPS)
        check_choice("objective.proprio.readout", self.readout, READOUTS)
        if self.knn < 1 or self.frames < 1:
            raise ValueError(f"objective.proprio.knn={self.knn} and .frames={self.frames} must be >= 1")


@dataclass
class MetricTermConfig:
    """The world model's learned step metric between imagined latents and the target image's latents
    (worldmodel/models/metric.py): a latent goal cost that keeps growing with how many steps away the goal is,
    where the plain latent distance goes flat. Needs a world model trained with metric.steps > 0."""

    weight: float = 0.0
    """weight in the sum (0 = off); the term is in the latent term's units (mean latent L1 in the model's space
    per metric step, measured on random training pairs), so weight 1 puts the two on an equal footing on average:
    the latent distance is the steeper near the goal, the metric far from it"""
    steps: str = "last"
    """last | all"""

    def __post_init__(self) -> None:
        check_choice("objective.metric.steps", self.steps, STEPS)


@dataclass
class ActionTermConfig:
    """Control effort: mean squared action over the horizon (env action units)."""

    weight: float = 0.0
    """weight in the sum (0 = off)"""


@dataclass
class ProbeTermConfig:
    """Diagnostic: Euclidean distance of task coordinates read out linearly (ridge fitted on labelled frames) from
    imagined and target latents; with latent.weight=0 it tells how much the latent metric, rather than the
    predictor, limits planning."""

    weight: float = 0.0
    """weight in the sum (0 = off)"""
    steps: str = "last"
    """last | all"""
    data: str | None = None
    """HDF5 with states the probe is fitted on (null: goals.dataset)"""
    frames: int = 3000
    """training-split frames the probe is fitted on"""

    def __post_init__(self) -> None:
        check_choice("objective.probe.steps", self.steps, STEPS)


@dataclass
class ObjectiveConfig:
    """The whole ``objective`` group: one entry per term."""

    latent: LatentTermConfig = field(default_factory=LatentTermConfig)
    """distance of imagined latents to the target image's embedding"""
    proprio: ProprioTermConfig = field(default_factory=ProprioTermConfig)
    """distance of imagined proprio to the proprio read out of the target image"""
    metric: MetricTermConfig = field(default_factory=MetricTermConfig)
    """the world model's learned step metric to the target image's latents"""
    action: ActionTermConfig = field(default_factory=ActionTermConfig)
    """control effort"""
    probe: ProbeTermConfig = field(default_factory=ProbeTermConfig)
    """task-coordinate probe distance (diagnostic)"""

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
            if isinstance(value, type(sub)):
                built[name] = value
                continue
            _refuse_unknown(f"objective.{name}", dict(value or {}), {f.name for f in fields(sub)})
            built[name] = type(sub)(**dict(value or {}))
        return cls(**built)


def _refuse_unknown(where: str, raw: Mapping[str, Any], known: set[str]) -> None:
    """A ValueError naming every key of ``raw`` that is not in ``known``."""
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown {where} keys {unknown}; known keys: {sorted(known)}")
