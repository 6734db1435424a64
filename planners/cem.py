"""Cross-entropy method planner, batched over environments, with a first-iteration scale search, rank-weighted
elites, step-based std refits, elite retention and mean injection."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from planners.base import (
    BoundLike,
    CostFn,
    Planner,
    PlanResult,
    check_choice,
    rank_weights,
    track_best,
)


class CEMPlanner(Planner):
    """Gaussian CEM over action sequences; bounds are enforced by clipping samples into the box.

    Why the defaults look the way they do (see scripts/bench_planner_quality.py): a std set from the bounds
    (init_std x half range) can be 10-20x the scale of the optimal actions, and plain CEM then spends its
    iterations shrinking the std by only ~0.8 per iteration in 10-30 dimensions (selection shrinks each
    coordinate's spread by roughly sqrt(q_K/D)), ending 2-50x above the optimum. Three changes fix it:
    a scale search in the first iteration (sample s is drawn with std x 2^-(s mod scale_levels), so the
    refit picks the scale that produced the elites), refitting the std to the elites' steps from the *old*
    mean (`std_update="step"`, CMA-ES's rank-mu estimate: the std stays large while the mean is still moving
    and collapses only when it stops, instead of CEM's premature collapse), and evaluating the mean itself
    (`inject_mean`: in high dimensions the elite average is far better than any single sample).

    Args (beyond `Planner`'s horizon, num_samples, iterations, init_std, seed, bounds, device):
        num_elites: K lowest-cost samples that refit the Gaussian each iteration; a float in (0, 1) is a
            fraction of num_samples (at least 2), so one setting survives a change of sample budget.
        mean_momentum: weight of the old mean in the update, mean ← m·old + (1-m)·elite mean (0 = plain CEM).
        std_momentum: same for the std.
        min_std: floor on the std as a fraction of the half action range (keeps exploring).
        elite_retention: fraction of last iteration's elites carried into the next pool with their costs
            (not re-evaluated; assumes a deterministic cost).
        inject_mean: evaluate the current (clipped) mean as one of the candidates every iteration, and the
            final mean once after the last iteration (one extra cost call of a single sequence per env).
        elite_weights: "log" (CMA-ES log-rank weights, best elite heaviest) or "equal" (classic CEM).
        std_update: "step": std = weighted RMS of the elites' steps from the old mean (grows with progress);
            "spread": classic CEM, the elites' spread around the new mean.
        scale_levels: L; first-iteration samples use std multipliers 1, 1/2, ..., 2^-(L-1) in turn
            (1 = off).
    Non-finite costs get zero elite weight; an environment with no finite elite keeps its mean and std.
    Warm start: pass `initial_mean` (e.g. a shifted previous plan, see planners.base.shift_plan).
    """

    def __init__(
        self,
        action_low: BoundLike,
        action_high: BoundLike,
        horizon: int,
        num_samples: int = 300,
        iterations: int = 10,
        num_elites: int | float = 0.1,
        init_std: float = 0.5,
        mean_momentum: float = 0.0,
        std_momentum: float = 0.0,
        min_std: float = 0.001,
        elite_retention: float = 0.0,
        inject_mean: bool = True,
        elite_weights: str = "log",
        std_update: str = "step",
        scale_levels: int = 6,
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
        if scale_levels < 1:
            raise ValueError("scale_levels must be >= 1")
        self.num_elites = int(num_elites)
        self.mean_momentum = float(mean_momentum)
        self.std_momentum = float(std_momentum)
        self.min_std = float(min_std)
        self.elite_retention = float(elite_retention)
        self.inject_mean = bool(inject_mean)
        self.elite_weights = check_choice("elite_weights", elite_weights, ("log", "equal"))
        self.std_update = check_choice("std_update", std_update, ("step", "spread"))
        self.scale_levels = int(scale_levels)

    def population(self, iteration: int) -> int:
        """Number of fresh samples drawn at `iteration` (constant for CEM; decays for iCEM)."""
        return self.num_samples

    def noise(self, batch_size: int, num: int) -> Tensor:
        """Unit-variance sampling noise (B, S, H, A); white Gaussian for CEM."""
        return self.randn(batch_size, num, self.horizon, self.action_dim)

    def candidates(self, iteration: int, mean: Tensor, std: Tensor) -> Tensor:
        """Clipped candidates (B, S, H, A) around mean (B, H, A): scale ladder at iteration 0, mean injected."""
        noise = self.noise(mean.shape[0], self.population(iteration))  # (B, S, H, A)
        return self.candidates_around(mean, std, noise, iteration, self.scale_levels, self.inject_mean)

    def refit(self, mean: Tensor, std: Tensor, elites: Tensor, elite_costs: Tensor) -> tuple[Tensor, Tensor]:
        """New mean and std (B, H, A) from elites (B, K, H, A) ranked by elite_costs (B, K)."""
        w = rank_weights(elites.shape[1], self.elite_weights, self.device)[None]  # (1, K)
        w = torch.where(torch.isfinite(elite_costs), w, torch.zeros_like(w))  # (B, K)
        total = w.sum(dim=1, keepdim=True)  # (B, 1)
        has_any = (total > 0)[:, :, None]  # (B, 1, 1)
        w = (w / total.clamp_min(torch.finfo(w.dtype).tiny))[:, :, None, None]  # (B, K, 1, 1)
        new_mean = (w * elites).sum(dim=1)  # (B, H, A)
        centre = mean if self.std_update == "step" else new_mean  # (B, H, A)
        new_std = (w * (elites - centre[:, None]).pow(2)).sum(dim=1).sqrt()  # (B, H, A)
        mean_out = self.mean_momentum * mean + (1 - self.mean_momentum) * new_mean
        std_out = self.std_momentum * std + (1 - self.std_momentum) * new_std
        floor = self.min_std * self.half_range  # (A,)
        return torch.where(has_any, mean_out, mean), torch.maximum(torch.where(has_any, std_out, std), floor)

    def plan(self, cost_fn: CostFn, batch_size: int, initial_mean: Tensor | None = None) -> PlanResult:
        """Run `iterations` CEM refits for all B environments at once and return the best sequence seen."""
        b, h, a = batch_size, self.horizon, self.action_dim
        mean = self.initial_mean(b, initial_mean)  # (B, H, A)
        floor = self.min_std * self.half_range  # (A,)
        std = torch.maximum(self.init_std * self.half_range, floor).expand(b, h, a).clone()  # (B, H, A)
        best_cost = torch.full((b,), float("inf"), device=self.device)  # (B,)
        best_actions = self.clip(mean)  # (B, H, A)
        kept: Tensor | None = None  # (B, R, H, A) retained elites
        kept_costs: Tensor | None = None  # (B, R)
        n_keep = int(math.floor(self.elite_retention * self.num_elites))
        hist_best, hist_elite = [], []
        for i in range(self.iterations):
            samples = self.candidates(i, mean, std)  # (B, S, H, A)
            costs = self.evaluate(cost_fn, samples)  # (B, S)
            if kept is not None and kept_costs is not None:
                samples = torch.cat([samples, kept], dim=1)  # (B, S+R, H, A)
                costs = torch.cat([costs, kept_costs], dim=1)  # (B, S+R)
            k = min(self.num_elites, samples.shape[1])
            elite_costs, idx = torch.topk(costs, k, dim=1, largest=False)  # (B, K)
            elites = samples.gather(1, idx[:, :, None, None].expand(-1, -1, h, a))  # (B, K, H, A)
            mean, std = self.refit(mean, std, elites, elite_costs)
            best_cost, best_actions, it_best = track_best(best_cost, best_actions, costs, samples)
            hist_best.append(it_best)
            hist_elite.append(elite_costs.mean(dim=1))  # (B,), +inf if any elite is non-finite
            if n_keep > 0:
                kept, kept_costs = elites[:, :n_keep], elite_costs[:, :n_keep]
        if self.inject_mean:
            best_cost, best_actions = self.best_of_mean(cost_fn, mean, best_cost, best_actions)
            hist_best[-1] = torch.minimum(hist_best[-1], best_cost)
        return PlanResult(
            actions=best_actions,
            mean=self.clip(mean),
            best_cost=best_cost,
            cost_history=torch.stack(hist_best, dim=1),  # (B, I)
            elite_cost_history=torch.stack(hist_elite, dim=1),  # (B, I)
        )
