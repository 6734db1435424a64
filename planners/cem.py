"""Cross-entropy method planner, batched over environments, with momentum, min std and elite retention."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from planners.base import BoundLike, CostFn, Planner, PlanResult, track_best


class CEMPlanner(Planner):
    """Gaussian CEM over action sequences; bounds are enforced by clipping samples into the box.

    Args (beyond `Planner`'s horizon, num_samples, iterations, init_std, seed, bounds, device):
        num_elites: K lowest-cost samples that refit the Gaussian each iteration; a float in (0, 1) is a
            fraction of num_samples (at least 2), so one setting survives a change of sample budget.
        mean_momentum: weight of the old mean in the update, mean ← m·old + (1-m)·elite mean (0 = plain CEM).
        std_momentum: same for the std.
        min_std: floor on the std as a fraction of the half action range (keeps exploring).
        elite_retention: fraction of last iteration's elites carried into the next pool with their costs
            (not re-evaluated; assumes a deterministic cost).
        inject_mean: add the current (clipped) mean as one candidate every iteration.
    Warm start: pass `initial_mean` (e.g. a shifted previous plan, see planners.base.shift_plan).
    """

    def __init__(
        self,
        action_low: BoundLike,
        action_high: BoundLike,
        horizon: int,
        num_samples: int = 300,
        iterations: int = 10,
        num_elites: int | float = 30,
        init_std: float = 0.5,
        mean_momentum: float = 0.0,
        std_momentum: float = 0.0,
        min_std: float = 0.02,
        elite_retention: float = 0.0,
        inject_mean: bool = False,
        seed: int = 0,
        action_dim: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Validate and store CEM settings."""
        super().__init__(action_low, action_high, horizon, num_samples, iterations, init_std, seed,
                         action_dim, device)
        if isinstance(num_elites, float) and 0.0 < num_elites < 1.0:
            num_elites = max(2, round(num_elites * num_samples))
        if not 1 <= num_elites <= num_samples or int(num_elites) != num_elites:
            raise ValueError(f"num_elites must be an int in [1, num_samples] or a fraction in (0, 1), got {num_elites}")
        if not (0.0 <= mean_momentum < 1.0 and 0.0 <= std_momentum < 1.0):
            raise ValueError("momenta must be in [0, 1)")
        if not 0.0 <= elite_retention <= 1.0:
            raise ValueError("elite_retention must be in [0, 1]")
        self.num_elites = int(num_elites)
        self.mean_momentum = float(mean_momentum)
        self.std_momentum = float(std_momentum)
        self.min_std = float(min_std)
        self.elite_retention = float(elite_retention)
        self.inject_mean = bool(inject_mean)

    def population(self, iteration: int) -> int:
        """Number of fresh samples drawn at `iteration` (constant for CEM; decays for iCEM)."""
        return self.num_samples

    def noise(self, batch_size: int, num: int) -> Tensor:
        """Unit-variance sampling noise (B, S, H, A); white Gaussian for CEM."""
        return self.randn(batch_size, num, self.horizon, self.action_dim)

    def plan(self, cost_fn: CostFn, batch_size: int, initial_mean: Tensor | None = None) -> PlanResult:
        """Run `iterations` CEM refits for all B environments at once and return the best sequence seen."""
        b, h, a = batch_size, self.horizon, self.action_dim
        mean = self.initial_mean(b, initial_mean)  # (B, H, A)
        floor = self.min_std * self.half_range  # (A,)
        std = torch.maximum(self.init_std * self.half_range, floor).expand(b, h, a).clone()  # (B, H, A)
        best_cost = torch.full((b,), float("inf"), device=self.device)  # (B,)
        best_actions = mean.clone()  # (B, H, A)
        kept: Tensor | None = None  # (B, R, H, A) retained elites
        kept_costs: Tensor | None = None  # (B, R)
        n_keep = int(math.floor(self.elite_retention * self.num_elites))
        hist_best, hist_elite = [], []
        for i in range(self.iterations):
            s = self.population(i)
            samples = self.clip(mean[:, None] + std[:, None] * self.noise(b, s))  # (B, S, H, A)
            if self.inject_mean:
                samples = torch.cat([samples[:, : s - 1], self.clip(mean)[:, None]], dim=1)  # (B, S, H, A)
            costs = self.evaluate(cost_fn, samples)  # (B, S)
            if kept is not None and kept_costs is not None:
                samples = torch.cat([samples, kept], dim=1)  # (B, S+R, H, A)
                costs = torch.cat([costs, kept_costs], dim=1)  # (B, S+R)
            k = min(self.num_elites, samples.shape[1])
            elite_costs, idx = torch.topk(costs, k, dim=1, largest=False)  # (B, K)
            elites = samples.gather(1, idx[:, :, None, None].expand(-1, -1, h, a))  # (B, K, H, A)
            new_mean = elites.mean(dim=1)  # (B, H, A)
            new_std = elites.std(dim=1, unbiased=False)  # (B, H, A)
            mean = self.mean_momentum * mean + (1 - self.mean_momentum) * new_mean
            std = torch.maximum(self.std_momentum * std + (1 - self.std_momentum) * new_std, floor)
            best_cost, best_actions, it_best = track_best(best_cost, best_actions, costs, samples)
            hist_best.append(it_best)
            hist_elite.append(elite_costs.mean(dim=1))  # (B,), +inf if any elite is non-finite
            if n_keep > 0:
                kept, kept_costs = elites[:, :n_keep], elite_costs[:, :n_keep]
        return PlanResult(
            actions=best_actions,
            mean=self.clip(mean),
            best_cost=best_cost,
            cost_history=torch.stack(hist_best, dim=1),  # (B, I)
            elite_cost_history=torch.stack(hist_elite, dim=1),  # (B, I)
        )

