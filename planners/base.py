"""Shared planner base: bounds, seeding, device handling, cost sanitising and the PlanResult record.

Shape letters: B environments, S samples, H horizon, A action dims, I iterations.
A cost function maps actions (B, S, H, A) to costs (B, S); lower is better.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

CostFn = Callable[[Tensor], Tensor]
BoundLike = Tensor | Sequence[float] | float


@dataclass(frozen=True)
class PlanResult:
    """Outcome of one planning call; every tensor stays on the planner's device (no host copies).

    Fields:
        actions: (B, H, A) the sequence to execute: the lowest-cost sequence evaluated (a sample, an injected
            mean, or the final mean when `inject_mean` is on; the best restart for GD).
        mean: (B, H, A) final centre of the search distribution; the right thing to shift for a warm start.
        best_cost: (B,) lowest finite cost seen among evaluated samples (+inf when none was finite).
        cost_history: (B, I) best sample cost at each iteration.
        elite_cost_history: (B, I) mean elite cost (CEM/iCEM), weight-averaged cost (MPPI) or mean restart
            cost (GD) at each iteration.
    """

    actions: Tensor
    mean: Tensor
    best_cost: Tensor
    cost_history: Tensor
    elite_cost_history: Tensor


def as_bound(value: BoundLike, action_dim: int | None, device: torch.device | str | None) -> Tensor:
    """Turn a bound given as tensor, list or scalar into a fresh float32 (A,) tensor (never aliases input)."""
    t = torch.as_tensor(value, dtype=torch.float32)
    if t.ndim == 0:
        if action_dim is None:
            raise ValueError("scalar action bounds need action_dim")
        t = t.expand(action_dim)
    if t.ndim != 1:
        raise ValueError(f"action bounds must have shape (A,), got {tuple(t.shape)}")
    return t.to(device=device).clone()


def sanitize_costs(costs: Tensor) -> Tensor:
    """Map NaN/-inf/+inf costs to +inf so non-finite samples never become elites (no host sync)."""
    # costs: (B, S)
    return torch.where(torch.isfinite(costs), costs, torch.full_like(costs, float("inf")))


def shift_plan(actions: Tensor, steps: int, fill: Tensor | None = None) -> Tensor:
    """Shift a plan (B, H, A) left by `steps` for a warm start; the tail repeats the last action or `fill`."""
    if steps <= 0:
        return actions.clone()
    h = actions.shape[-2]
    steps = min(steps, h)
    tail_src = actions[..., -1:, :] if fill is None else fill.expand_as(actions[..., -1:, :])
    tail = tail_src.expand(*actions.shape[:-2], steps, actions.shape[-1])  # (B, steps, A)
    return torch.cat([actions[..., steps:, :], tail], dim=-2)  # (B, H, A)


class Planner(ABC):
    """Base for sampling/gradient planners over action sequences (B, S, H, A), batched over B envs.

    Args (shared by every planner and its config):
        action_low: lower action bound, shape (A,) (tensor, list or scalar with action_dim).
        action_high: upper action bound, shape (A,).
        horizon: planning horizon H (number of actions per sequence).
        num_samples: candidate sequences S evaluated per iteration and environment.
        iterations: optimisation iterations I per plan call.
        init_std: initial sampling std as a fraction of the half action range.
        seed: seed of the planner's own torch.Generator (re-seed with `reseed`).
        action_dim: A, only needed when bounds are scalars.
        device: device for all planner tensors; None follows the device of `action_low`.
    """

    needs_gradients: bool = False
    """True for planners that differentiate the cost w.r.t. the actions (they cannot plan through a simulator)."""

    def __init__(
        self,
        action_low: BoundLike,
        action_high: BoundLike,
        horizon: int,
        num_samples: int,
        iterations: int,
        init_std: float = 0.5,
        seed: int = 0,
        action_dim: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Store validated bounds and settings and create the seeded generator."""
        if device is None:
            device = action_low.device if isinstance(action_low, Tensor) else "cpu"
        self.device = torch.device(device)
        self.low = as_bound(action_low, action_dim, self.device)  # (A,)
        self.high = as_bound(action_high, action_dim, self.device)  # (A,)
        if self.low.shape != self.high.shape:
            raise ValueError("action_low and action_high must have the same shape")
        if bool((self.high < self.low).any()):  # construction-time check, not inside planning
            raise ValueError("action_high must be >= action_low")
        if horizon < 1 or num_samples < 1 or iterations < 1:
            raise ValueError("horizon, num_samples and iterations must be positive")
        self.horizon = int(horizon)
        self.num_samples = int(num_samples)
        self.iterations = int(iterations)
        self.init_std = float(init_std)
        self.action_dim = int(self.low.shape[0])
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)

    @property
    def half_range(self) -> Tensor:
        """Half the action range (A,), the unit in which stds are expressed."""
        return (self.high - self.low) / 2

    def reseed(self, seed: int | None = None) -> None:
        """Reset the generator so the next plan call is reproducible (same seed → same answer)."""
        if seed is not None:
            self.seed = int(seed)
        self.generator.manual_seed(self.seed)

    def default_mean(self, batch_size: int) -> Tensor:
        """Centre of the action box as a (B, H, A) starting mean."""
        mid = (self.low + self.high) / 2  # (A,)
        return mid.expand(batch_size, self.horizon, self.action_dim).clone()

    def initial_mean(self, batch_size: int, initial_mean: Tensor | None) -> Tensor:
        """Return a fresh, clipped (B, H, A) starting mean from an optional (H, A) or (B, H, A) warm start."""
        if initial_mean is None:
            return self.default_mean(batch_size)
        m = initial_mean.detach().to(device=self.device, dtype=torch.float32)
        if m.ndim == 2:
            m = m.unsqueeze(0)
        m = m.expand(batch_size, self.horizon, self.action_dim)  # (B, H, A)
        return self.clip(m).clone()

    def clip(self, actions: Tensor) -> Tensor:
        """Clip actions (..., A) into the box; out-of-place, so inputs are never mutated."""
        return torch.minimum(torch.maximum(actions, self.low), self.high)

    def randn(self, *shape: int) -> Tensor:
        """Standard normal noise from the planner's own generator on its device."""
        return torch.randn(*shape, generator=self.generator, device=self.device)

    def candidates_around(
        self, mean: Tensor, std: Tensor, noise: Tensor, iteration: int, scale_levels: int, inject_mean: bool
    ) -> Tensor:
        """Clipped candidates (B, S, H, A) = mean (B, H, A) + std (B, H, A) x noise (B, S, H, A); at iteration 0
        sample s's noise is scaled by 2^-(s mod scale_levels); with inject_mean the last candidate is the mean."""
        s = noise.shape[1]
        if iteration == 0 and scale_levels > 1:
            noise = noise * scale_ladder(s, scale_levels, self.device)[None, :, None, None]
        samples = self.clip(mean[:, None] + std[:, None] * noise)  # (B, S, H, A)
        if inject_mean:
            samples = torch.cat([samples[:, : s - 1], self.clip(mean)[:, None]], dim=1)  # (B, S, H, A)
        return samples

    def best_of_mean(self, cost_fn: CostFn, mean: Tensor, best_cost: Tensor, best_actions: Tensor
                     ) -> tuple[Tensor, Tensor]:
        """Evaluate the final mean (B, H, A) as one extra candidate; return the updated best cost and actions."""
        clipped = self.clip(mean)  # (B, H, A)
        cost = self.evaluate(cost_fn, clipped[:, None])  # (B, 1)
        best_cost, best_actions, _ = track_best(best_cost, best_actions, cost, clipped[:, None])
        return best_cost, best_actions

    def evaluate(self, cost_fn: CostFn, actions: Tensor) -> Tensor:
        """Call cost_fn on (B, S, H, A) and return sanitised (B, S) float costs."""
        costs = cost_fn(actions)
        if costs.shape != actions.shape[:2]:
            want = tuple(actions.shape[:2])
            raise ValueError(f"cost_fn must return (B, S)={want}, got {tuple(costs.shape)}")
        return sanitize_costs(costs.to(torch.float32))

    @abstractmethod
    def plan(self, cost_fn: CostFn, batch_size: int, initial_mean: Tensor | None = None) -> PlanResult:
        """Optimise (B, H, A) action sequences for B environments in one batched computation."""


def rank_weights(k: int, kind: str, device: torch.device) -> Tensor:
    """Weights (K,) summing to 1 for the K best samples, best first: "equal" or "log" (CMA-ES log-rank)."""
    if kind == "equal":
        return torch.full((k,), 1.0 / k, device=device)
    w = math.log(k + 0.5) - torch.log(torch.arange(1, k + 1, device=device, dtype=torch.float32))  # (K,)
    return w / w.sum()


def scale_ladder(num: int, levels: int, device: torch.device) -> Tensor:
    """Std multipliers (num,) for a first-iteration scale search: sample s gets 2^-(s mod levels)."""
    k = torch.arange(num, device=device) % max(levels, 1)  # (S,)
    return torch.pow(2.0, -k.float())


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """Return `value` if it is one of `choices`, else raise a ValueError naming the option."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def track_best(
    best_cost: Tensor, best_actions: Tensor, costs: Tensor, samples: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Update running best (B,), (B, H, A) from this iteration's costs (B, S) and samples (B, S, H, A)."""
    it_best, idx = costs.min(dim=1)  # (B,), (B,)
    index = idx[:, None, None, None].expand(-1, 1, *samples.shape[2:])  # (B, 1, H, A)
    cand = samples.gather(1, index).squeeze(1)  # (B, H, A)
    better = it_best < best_cost  # (B,)
    new_cost = torch.where(better, it_best, best_cost)
    new_actions = torch.where(better[:, None, None], cand, best_actions)
    return new_cost, new_actions, it_best
