"""Model-predictive path integral (MPPI) planner, batched over environments."""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import (
    BoundLike,
    CostFn,
    Planner,
    PlanResult,
    check_choice,
    sanitize_costs,
    track_best,
)

TEMPERATURE_SCALES = ("absolute", "std", "elite")


class MPPIPlanner(Planner):
    """Iterated MPPI: the mean becomes the exp-weighted average of Gaussian perturbations.

    Weight convention (max-subtraction for stability): w = softmax(-(c - min c) / λ) over the K lowest-cost
    samples of each environment (the others get weight 0, as in TD-MPC's MPPI; K = all samples when
    ``num_elites`` is None), i.e. w_s = exp(-(c_s - c_min)/λ) / Σ exp(-(c_j - c_min)/λ). Non-finite costs get
    weight 0; if every cost of an environment is non-finite its mean (and std) are left unchanged. λ is:
      - ``"elite"``: ``temperature`` times the cost gap between the K-th best and the best sample of that
        environment in that iteration. Scale-free, and it sharpens by itself as the samples concentrate: the
        K-th elite always gets weight exp(-1/temperature) relative to the best.
      - ``"std"``: ``temperature`` times the standard deviation of that environment's finite sample costs.
        Scale-free, but it never sharpens: with temperature 1 it averages samples a whole cost-std apart,
        which left the mean 1.5-16x above the optimum (scripts/bench_planner_quality.py).
      - ``"absolute"``: ``temperature`` in cost units.
    Bounds are enforced by clipping samples into the box (the control-cost term uses the clipped
    perturbation).

    Args (beyond `Planner`'s horizon, num_samples, iterations, seed, bounds, device):
        temperature: > 0; λ in cost units, cost standard deviations or elite cost gaps (temperature_scale).
        temperature_scale: "elite", "std" or "absolute" (see above).
        noise_scale: initial std of the perturbations as a fraction of the half action range.
        control_cost: γ ≥ 0; adds γ · Σ_{h,a} mean·ε/σ² per sample (Williams et al. 2017 control-cost term).
        adapt_std: refit the std to the weighted samples each iteration (otherwise it stays noise_scale).
        min_std: std floor (fraction of half range) when adapt_std is on.
        num_elites: K samples that get weight (int, or a fraction of num_samples); None = all samples.
        inject_mean: evaluate the current mean as one candidate every iteration and the final mean after the
            last one; the answer is then the lowest-cost sequence evaluated (best-sample tracking) instead of
            the unevaluated weighted mean.
        std_update: with adapt_std, "step" refits the std to the weighted steps from the old mean (stays large
            while the mean moves), "spread" to the weighted spread around the new mean.
        scale_levels: L; first-iteration samples use std multipliers 1, 1/2, ..., 2^-(L-1) in turn (1 = off),
            so a noise_scale far wider than the optimal actions costs one iteration, not all of them.
    """

    def __init__(
        self,
        action_low: BoundLike,
        action_high: BoundLike,
        horizon: int,
        num_samples: int = 300,
        iterations: int = 10,
        temperature: float = 0.3,
        temperature_scale: str = "elite",
        noise_scale: float = 0.5,
        control_cost: float = 0.0,
        adapt_std: bool = True,
        min_std: float = 0.001,
        num_elites: int | float | None = 0.1,
        inject_mean: bool = True,
        std_update: str = "step",
        scale_levels: int = 6,
        seed: int = 0,
        action_dim: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Validate and store MPPI settings."""
        super().__init__(action_low, action_high, horizon, num_samples, iterations, noise_scale, seed,
                         action_dim, device)
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        if temperature_scale not in TEMPERATURE_SCALES:
            raise ValueError(f"temperature_scale must be 'absolute' or 'std' or 'elite', got {temperature_scale!r}")
        if isinstance(num_elites, float) and 0.0 < num_elites < 1.0:
            num_elites = max(2, round(num_elites * num_samples))
        if num_elites is not None and (not 1 <= num_elites <= num_samples or int(num_elites) != num_elites):
            raise ValueError(f"num_elites must be None, an int in [1, num_samples] or a fraction in (0, 1), "
                             f"got {num_elites}")
        if scale_levels < 1:
            raise ValueError("scale_levels must be >= 1")
        self.temperature = float(temperature)
        self.temperature_scale = temperature_scale
        self.noise_scale = float(noise_scale)
        self.control_cost = float(control_cost)
        self.adapt_std = bool(adapt_std)
        self.min_std = float(min_std)
        self.num_elites = None if num_elites is None else int(num_elites)
        self.inject_mean = bool(inject_mean)
        self.std_update = check_choice("std_update", std_update, ("step", "spread"))
        self.scale_levels = int(scale_levels)

    def elite_count(self, num: int) -> int:
        """K for a pool of `num` samples."""
        return num if self.num_elites is None else min(self.num_elites, num)

    def lam(self, costs: Tensor) -> Tensor:
        """λ per environment (B, 1) for costs (B, S) (see the class docstring)."""
        if self.temperature_scale == "absolute":
            return torch.full_like(costs[:, :1], self.temperature)
        finite = torch.isfinite(costs)  # (B, S)
        c = torch.where(finite, costs, torch.zeros_like(costs))
        if self.temperature_scale == "elite":
            ranked = torch.sort(torch.where(finite, costs, torch.full_like(costs, float("inf"))), dim=1).values
            kth = ranked[:, self.elite_count(costs.shape[1]) - 1 :][:, :1]  # (B, 1)
            top = torch.where(finite, c, torch.full_like(c, -float("inf"))).amax(dim=1, keepdim=True)  # (B, 1)
            kth = torch.where(torch.isfinite(kth), kth, top)  # fewer than K finite: the worst finite cost
            gap = torch.where(torch.isfinite(kth), kth - ranked[:, :1], torch.zeros_like(kth))
            return self.temperature * gap.clamp_min(1e-12)  # equal costs: uniform weights
        n = finite.sum(dim=1, keepdim=True).clamp_min(1)  # (B, 1)
        mu = c.sum(dim=1, keepdim=True) / n
        var = (torch.where(finite, c - mu, torch.zeros_like(c)).pow(2)).sum(dim=1, keepdim=True) / n
        return self.temperature * var.sqrt().clamp_min(1e-12)  # equal costs: every weight 1 (uniform)

    def weights(self, costs: Tensor) -> Tensor:
        """Importance weights (B, S) = softmax(-(c - min c)/λ) over the K best; all-zero rows if none finite."""
        costs = sanitize_costs(costs)  # NaN/-inf -> +inf (weight 0)
        finite = torch.isfinite(costs)  # (B, S)
        c_min = costs.min(dim=1, keepdim=True).values  # (B, 1)
        c_min = torch.where(torch.isfinite(c_min), c_min, torch.zeros_like(c_min))
        w = torch.exp(-(costs - c_min) / self.lam(costs))  # (B, S); exp(-inf) = 0 for non-finite costs
        k = self.elite_count(costs.shape[1])
        if k < costs.shape[1]:
            kth = torch.topk(torch.where(finite, costs, torch.full_like(costs, float("inf"))), k, dim=1,
                             largest=False).values[:, -1:]  # (B, 1)
            w = torch.where(costs <= kth, w, torch.zeros_like(w))
        w = torch.where(finite, w, torch.zeros_like(w))
        total = w.sum(dim=1, keepdim=True)  # (B, 1)
        return w / total.clamp_min(torch.finfo(w.dtype).tiny)

    def candidates(self, iteration: int, mean: Tensor, std: Tensor) -> Tensor:
        """Clipped perturbed sequences (B, S, H, A): scale ladder at iteration 0, the mean injected last."""
        noise = self.randn(mean.shape[0], self.num_samples, self.horizon, self.action_dim)  # (B, S, H, A)
        return self.candidates_around(mean, std, noise, iteration, self.scale_levels, self.inject_mean)

    def update(self, mean: Tensor, std: Tensor, samples: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        """Weighted mean and (with adapt_std) std (B, H, A) from samples (B, S, H, A) and weights (B, S)."""
        has_any = (w.sum(dim=1) > 0)[:, None, None]  # (B, 1, 1)
        wx = w[:, :, None, None]  # (B, S, 1, 1)
        new_mean = (wx * samples).sum(dim=1)  # (B, H, A)
        if self.adapt_std:
            centre = mean if self.std_update == "step" else new_mean  # (B, H, A)
            var = (wx * (samples - centre[:, None]).pow(2)).sum(dim=1)  # (B, H, A)
            std = torch.where(has_any, torch.maximum(var.sqrt(), self.min_std * self.half_range), std)
        return torch.where(has_any, new_mean, mean), std

    def plan(self, cost_fn: CostFn, batch_size: int, initial_mean: Tensor | None = None) -> PlanResult:
        """Run `iterations` MPPI updates for all B environments at once (see the class docstring)."""
        b, h, a = batch_size, self.horizon, self.action_dim
        mean = self.initial_mean(b, initial_mean)  # (B, H, A)
        std = (self.noise_scale * self.half_range).expand(b, h, a).clone()  # (B, H, A)
        best_cost = torch.full((b,), float("inf"), device=self.device)
        best_actions = self.clip(mean)
        hist_best, hist_avg = [], []
        for i in range(self.iterations):
            samples = self.candidates(i, mean, std)  # (B, S, H, A)
            costs = self.evaluate(cost_fn, samples)  # (B, S)
            best_cost, best_actions, it_best = track_best(best_cost, best_actions, costs, samples)
            if self.control_cost > 0:
                eps = samples - mean[:, None]  # (B, S, H, A)
                inv_var = 1.0 / std[:, None].pow(2).clamp_min(1e-12)  # (B, 1, H, A)
                costs = costs + self.control_cost * (mean[:, None] * eps * inv_var).sum(dim=(2, 3))
            w = self.weights(costs)  # (B, S)
            mean, std = self.update(mean, std, samples, w)
            finite = torch.isfinite(costs)
            avg = (w * torch.where(finite, costs, torch.zeros_like(costs))).sum(dim=1)  # (B,)
            hist_best.append(it_best)
            hist_avg.append(torch.where(w.sum(dim=1) > 0, avg, torch.full_like(avg, float("inf"))))
        mean = self.clip(mean)
        if self.inject_mean:
            best_cost, best_actions = self.best_of_mean(cost_fn, mean, best_cost, best_actions)
            hist_best[-1] = torch.minimum(hist_best[-1], best_cost)
        return PlanResult(
            actions=best_actions if self.inject_mean else mean,
            mean=mean,
            best_cost=best_cost,
            cost_history=torch.stack(hist_best, dim=1),  # (B, I)
            elite_cost_history=torch.stack(hist_avg, dim=1),  # (B, I)
        )
