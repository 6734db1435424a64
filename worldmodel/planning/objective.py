"""The planning objective: small typed cost terms composed by weights into one ``Objective``.

A planner minimises a cost function over candidate action sequences (B, S, H, A) -> (B, S). That function
is always the same three steps: a *dynamics* imagines (or simulates) each candidate into a ``Rollout``, a
*target* says what the plan aims at (the goal, or a subgoal toward it), and the ``Objective`` scores the
rollout against the target as a weighted sum of terms. This module holds the records and the terms;
``worldmodel/planning/dynamics.py`` the dynamics; ``targets.py`` the target providers.

Shape letters: B environments, S candidate sequences, H horizon, A actions per step, N latent tokens, D latent
dim, P proprio dim, K task coordinates, Ds simulator state dim.

Every term built on torch is differentiable end to end, so a gradient planner plans through the world model;
``cost_function`` turns autograd off unless the planner hands it actions that require gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from planners.base import check_choice
from worldmodel.config.objective import KINDS, STEPS  # noqa: E402  (one definition, with the settings)


@dataclass(frozen=True)
class Rollout:
    """What a dynamics made of S candidate sequences for B environments.

    Fields (any may be None when the dynamics does not produce it):
        actions: (B, S, H, A) the candidates, in the units the planner samples.
        latents: (B, S, H, N, D) imagined normalised latents (world model).
        proprio: (B, S, H, P) imagined normalised proprio (world model with a proprio head).
        states: (B, S, H, Ds) simulated states (simulator), a numpy array.
    """

    actions: Tensor
    latents: Tensor | None = None
    proprio: Tensor | None = None
    states: np.ndarray | None = None


@dataclass(frozen=True)
class Target:
    """What one plan aims at, per environment: (B, N, D) latents, (B, P) proprio, (B, Ds) states."""

    latents: Tensor | None = None
    proprio: Tensor | None = None
    states: np.ndarray | None = None


@runtime_checkable
class CostTerm(Protocol):
    """One term of an objective: (rollout, target) -> (B, S) costs, lower is better."""

    def __call__(self, rollout: Rollout, target: Target) -> Tensor:
        """Score every candidate of every environment."""


@runtime_checkable
class Dynamics(Protocol):
    """Anything that turns candidate actions (B, S, H, A) into a Rollout (world model, simulator, your own)."""

    def __call__(self, actions: Tensor) -> Rollout:
        """Imagine or simulate every candidate."""


def reduce_steps(per_step: Tensor, steps: str) -> Tensor:
    """(B, S, H) per-step costs -> (B, S): the last imagined step ("last") or the horizon mean ("all")."""
    return per_step[..., -1] if steps == "last" else per_step.mean(-1)


def distance(diff: Tensor, kind: str, dims: int) -> Tensor:
    """Mean |diff| ("l1") or mean diff^2 ("l2") over the last ``dims`` axes of ``diff``."""
    axes = tuple(range(-dims, 0))
    return diff.abs().mean(axes) if kind == "l1" else diff.pow(2).mean(axes)


def _require(value: Any, what: str, term: str) -> Any:
    if value is None:
        raise ValueError(f"the {term} term needs {what}")
    return value


class LatentDistance:
    """Distance of imagined latents to the target latents (V-JEPA 2-AC's planning cost with kind="l1").

    Args:
        kind: "l1" (mean absolute difference over tokens and channels) or "l2" (mean squared difference).
        steps: "last" (final imagined step) or "all" (mean over the horizon).
        scale: optional (N, D) per-channel factor applied to the difference before the distance; the world
            model's ``latent_std`` measures it between the encoder's own latents instead of standardised ones.
    """

    def __init__(self, kind: str = "l1", steps: str = "last", scale: Tensor | None = None) -> None:
        self.kind = check_choice("latent kind", kind, KINDS)
        self.steps = check_choice("latent steps", steps, STEPS)
        self.scale = scale  # (N, D) or None
        self.space = "model" if scale is None else "encoder"

    def __call__(self, rollout: Rollout, target: Target) -> Tensor:
        """(B, S) from latents (B, S, H, N, D) and target latents (B, N, D)."""
        pred = _require(rollout.latents, "imagined latents (a world model's rollout)", "latent")
        goal = _require(target.latents, "target latents (an encoded goal image)", "latent").to(pred.device)
        diff = pred - goal[:, None, None]  # (B, S, H, N, D)
        if self.scale is not None:
            if self.scale.shape != diff.shape[-2:]:
                raise ValueError(
                    f"latent scale {tuple(self.scale.shape)} does not match the latents' (N, D) = "
                    f"{tuple(diff.shape[-2:])}; pass the world model's latent_std"
                )
            diff = diff * self.scale.to(diff.device, diff.dtype)
        per_step = distance(diff, self.kind, 2)  # (B, S, H)
        return reduce_steps(per_step, self.steps)


class MetricDistance:
    """A learned step metric between imagined latents and the target latents (``objective.metric``).

    ``metric`` is the world model's ``LatentMetric`` (or any module with its ``distance`` and ``unit``): ``distance``
    maps (..., N, D) x (..., N, D) -> (...,) in data steps, ``unit`` converts a step to the latent term's units
    (mean latent L1 per step). Still a latent goal cost: both arguments are encoder latents (imagined, and of the
    goal image), and the metric was fitted on the data's time order alone.
    """

    def __init__(self, metric: Any, steps: str = "last") -> None:
        self.metric = metric
        self.steps = check_choice("metric steps", steps, STEPS)

    def __call__(self, rollout: Rollout, target: Target) -> Tensor:
        """(B, S) from latents (B, S, H, N, D) and target latents (B, N, D)."""
        pred = _require(rollout.latents, "imagined latents (a world model's rollout)", "metric")
        goal = _require(target.latents, "target latents (an encoded goal image)", "metric").to(pred.device)
        per_step = self.metric.distance(pred, goal[:, None, None]) * self.metric.unit  # (B, S, H)
        return reduce_steps(per_step, self.steps)


class ProprioDistance:
    """Distance of imagined proprio to the target proprio (DINO-WM's proprio term), normalised units.

    The target proprio is what a readout sees in the goal image (targets.py), never the simulator's.
    """

    def __init__(self, kind: str = "l1", steps: str = "last") -> None:
        self.kind = check_choice("proprio kind", kind, KINDS)
        self.steps = check_choice("proprio steps", steps, STEPS)

    def __call__(self, rollout: Rollout, target: Target) -> Tensor:
        """(B, S) from proprio (B, S, H, P) and target proprio (B, P)."""
        pred = _require(rollout.proprio, "a world model that predicts proprio (model.use_proprio=true)", "proprio")
        goal = _require(target.proprio, "target proprio (a proprio readout of the goal image)", "proprio")
        per_step = distance(pred - goal.to(pred.device)[:, None, None], self.kind, 1)  # (B, S, H)
        return reduce_steps(per_step, self.steps)


class ReadoutDistance:
    """Euclidean distance of coordinates read out of imagined and target latents (a diagnostic cost).

    ``readout`` maps latents (..., N, D) -> coordinates (..., K), e.g. a ridge probe to task coordinates:
    planning in that space tells how much the latent metric, rather than the predictor, limits planning.
    """

    def __init__(self, readout: Callable[[Tensor], Tensor], steps: str = "last") -> None:
        self.readout = readout
        self.steps = check_choice("readout steps", steps, STEPS)

    def __call__(self, rollout: Rollout, target: Target) -> Tensor:
        """(B, S) from latents (B, S, H, N, D) and target latents (B, N, D)."""
        pred = _require(rollout.latents, "imagined latents", "readout")
        goal = _require(target.latents, "target latents", "readout")
        y = self.readout(pred)  # (B, S, H, K)
        g = self.readout(goal.to(pred.device))[:, None, None]  # (B, 1, 1, K)
        return reduce_steps((y - g).norm(dim=-1), self.steps)  # (B, S)


class ActionPenalty:
    """Control effort: mean squared action over the horizon and action dims, in the planner's units."""

    def __call__(self, rollout: Rollout, target: Target) -> Tensor:
        """(B, S) from actions (B, S, H, A)."""
        return rollout.actions.pow(2).mean((-1, -2))


class TaskDistance:
    """The environment's own task distance between simulated states and the target state (the oracle's cost).

    ``goal_distance(states (..., Ds), goal (Ds,)) -> (...,)`` is the env's metric (``envs.base``). Computed on
    the host: a CPU simulator's states are numpy arrays, so this term has no gradient.
    """

    def __init__(self, goal_distance: Callable[[np.ndarray, np.ndarray], np.ndarray], steps: str = "all") -> None:
        self.goal_distance = goal_distance
        self.steps = check_choice("task steps", steps, STEPS)

    def __call__(self, rollout: Rollout, target: Target) -> Tensor:
        """(B, S) from states (B, S, H, Ds) and target states (B, Ds)."""
        states = _require(rollout.states, "simulated states", "task")
        goals = _require(target.states, "target states", "task")
        dist = np.stack([self.goal_distance(states[i], goals[i]) for i in range(states.shape[0])])  # (B, S, H)
        per_step = torch.from_numpy(dist.astype(np.float32)).to(rollout.actions.device)
        return reduce_steps(per_step, self.steps)


class Objective:
    """A weighted sum of cost terms: cost = sum_i w_i * term_i(rollout, target), (B, S).

    Terms with weight 0 are dropped (so a switched-off term never asks for inputs it does not need).
    """

    def __init__(self, terms: Sequence[tuple[float, CostTerm]]) -> None:
        for weight, term in terms:
            if weight < 0:
                raise ValueError(f"objective weight of {type(term).__name__} is {weight}; weights must be >= 0")
        self.terms = [(float(w), t) for w, t in terms if w > 0]
        if not self.terms:
            raise ValueError("the objective has no term with a positive weight; give at least one term a weight")

    def needs(self, kind: type) -> bool:
        """Whether a term of this class is switched on (e.g. ProprioDistance needs a target proprio)."""
        return any(isinstance(t, kind) for _, t in self.terms)

    def __call__(self, rollout: Rollout, target: Target) -> Tensor:
        """(B, S) total cost."""
        total: Tensor | None = None
        for weight, term in self.terms:
            value = weight * term(rollout, target)  # (B, S)
            total = value if total is None else total + value
        assert total is not None
        return total

    def describe(self) -> str:
        """One line naming the terms and weights, for reports and logs."""
        return " + ".join(f"{w:g} x {_term_name(t)}" for w, t in self.terms)


def _term_name(term: CostTerm) -> str:
    name = type(term).__name__
    space = getattr(term, "space", None)
    parts = [getattr(term, "kind", None), getattr(term, "steps", None), None if space in (None, "model") else space]
    detail = ", ".join(p for p in parts if p)
    return f"{name}({detail})" if detail else name


def cost_function(dynamics: Dynamics, objective: Objective, target: Target) -> Callable[[Tensor], Tensor]:
    """The planner's cost: actions (B, S, H, A) -> (B, S) = objective(dynamics(actions), target).

    Autograd runs only when the planner asks for it by passing actions that require gradients (the gradient
    planner); sampling planners get the rollout without a graph.
    """

    def cost(actions: Tensor) -> Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and actions.requires_grad):
            return objective(dynamics(actions), target)

    return cost
