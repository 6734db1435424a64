"""Model-predictive path integral (MPPI) planner, batched over environments."""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import BoundLike, CostFn, Planner, PlanResult, track_best


class MPPIPlanner(Planner):
    """Iterated MPPI: the mean becomes the exp-weighted average of Gaussian perturbations.

    Weight convention (max-subtraction for stability): w = softmax(-(c - min c) / λ) over the S samples of
    each environment, i.e. w_s = exp(-(c_s - c_min)/λ) / Σ exp(-(c_j - c_min)/λ). Non-finite costs get
    weight 0; if every cost of an environment is non-finite its mean is left unchanged. λ is ``temperature``
    in cost units (``temperature_scale="absolute"``), or ``temperature`` times the standard deviation of
    that environment's finite sample costs in that iteration (``"std"``): scale-free, so one setting serves
    simulator costs and latent distances alike.
    Bounds are enforced by clipping samples into the box (the control-cost term uses the clipped
    perturbation).

    Args (beyond `Planner`'s horizon, num_samples, iterations, seed, bounds, device):
        temperature: > 0; λ in cost units, or in cost standard deviations (see temperature_scale).
        temperature_scale: "absolute" (λ = temperature) or "std" (λ = temperature · std of the costs).
        noise_scale: std of the perturbations as a fraction of the half action range (replaces init_std).
        control_cost: γ ≥ 0; adds γ · Σ_{h,a} mean·ε/σ² per sample (Williams et al. 2017 control-cost term).
        adapt_std: if True also refit the std to the weighted spread (TD-MPC style), floored by min_std.
        min_std: std floor as a fraction of the half range when adapt_std is on.
    """

    def __init__(
        self,
        action_low: BoundLike,
        action_high: BoundLike,
        horizon: int,
        num_samples: int = 300,
        iterations: int = 10,
        temperature: float = 1.0,
        temperature_scale: str = "absolute",
        noise_scale: float = 0.5,
        control_cost: float = 0.0,
        adapt_std: bool = False,
        min_std: float = 0.02,
        seed: int = 0,
        action_dim: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Validate and store MPPI settings."""
        super().__init__(action_low, action_high, horizon, num_samples, iterations, noise_scale, seed,
                         action_dim, device)
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        if temperature_scale not in ("absolute", "std"):
            raise ValueError(f"temperature_scale must be 'absolute' or 'std', got {temperature_scale!r}")
        self.temperature = float(temperature)
        self.temperature_scale = temperature_scale
        self.noise_scale = float(noise_scale)
        self.control_cost = float(control_cost)
        self.adapt_std = bool(adapt_std)
        self.min_std = float(min_std)

    def lam(self, costs: Tensor) -> Tensor:
        """λ per environment (B, 1): the temperature, or the temperature times the finite costs' std."""
        if self.temperature_scale == "absolute":
            return torch.full_like(costs[:, :1], self.temperature)
        finite = torch.isfinite(costs)  # (B, S)
        n = finite.sum(dim=1, keepdim=True).clamp_min(1)  # (B, 1)
        c = torch.where(finite, costs, torch.zeros_like(costs))
        mu = c.sum(dim=1, keepdim=True) / n
        var = (torch.where(finite, c - mu, torch.zeros_like(c)).pow(2)).sum(dim=1, keepdim=True) / n
        return self.temperature * var.sqrt().clamp_min(1e-12)  # equal costs: every weight 1 (uniform)

    def weights(self, costs: Tensor) -> Tensor:
        """Importance weights (B, S) = softmax(-(c - min c)/λ); all-zero rows when no cost is finite."""
        c_min = costs.min(dim=1, keepdim=True).values  # (B, 1)
        c_min = torch.where(torch.isfinite(c_min), c_min, torch.zeros_like(c_min))
        w = torch.exp(-(costs - c_min) / self.lam(costs))  # (B, S); exp(-inf) = 0 for non-finite costs
        total = w.sum(dim=1, keepdim=True)  # (B, 1)
        return w / total.clamp_min(torch.finfo(w.dtype).tiny)

    def plan(self, cost_fn: CostFn, batch_size: int, initial_mean: Tensor | None = None) -> PlanResult:
        """Run `iterations` MPPI updates for all B environments at once; the answer is the final mean."""
        b, h, a, s = batch_size, self.horizon, self.action_dim, self.num_samples
        mean = self.initial_mean(b, initial_mean)  # (B, H, A)
        floor = self.min_std * self.half_range  # (A,)
        std = (self.noise_scale * self.half_range).expand(b, h, a).clone()  # (B, H, A)
        best_cost = torch.full((b,), float("inf"), device=self.device)
        best_actions = mean.clone()
        hist_best, hist_avg = [], []
        for _ in range(self.iterations):
            samples = self.clip(mean[:, None] + std[:, None] * self.randn(b, s, h, a))  # (B, S, H, A)
            costs = self.evaluate(cost_fn, samples)  # (B, S)
            best_cost, best_actions, it_best = track_best(best_cost, best_actions, costs, samples)
            if self.control_cost > 0:
                eps = samples - mean[:, None]  # (B, S, H, A)
                inv_var = 1.0 / std[:, None].pow(2).clamp_min(1e-12)  # (B, 1, H, A)
                costs = costs + self.control_cost * (mean[:, None] * eps * inv_var).sum(dim=(2, 3))
            w = self.weights(costs)  # (B, S)
            has_any = w.sum(dim=1) > 0  # (B,)
            new_mean = (w[:, :, None, None] * samples).sum(dim=1)  # (B, H, A)
            if self.adapt_std:
                var = (w[:, :, None, None] * (samples - new_mean[:, None]).pow(2)).sum(dim=1)  # (B, H, A)
                std = torch.where(has_any[:, None, None], torch.maximum(var.sqrt(), floor), std)
            mean = torch.where(has_any[:, None, None], new_mean, mean)
            finite = torch.isfinite(costs)
            avg = (w * torch.where(finite, costs, torch.zeros_like(costs))).sum(dim=1)  # (B,)
            hist_best.append(it_best)
            hist_avg.append(torch.where(has_any, avg, torch.full_like(avg, float("inf"))))
        mean = self.clip(mean)
        return PlanResult(
            actions=mean,
            mean=mean,
            best_cost=best_cost,
            cost_history=torch.stack(hist_best, dim=1),  # (B, I)
            elite_cost_history=torch.stack(hist_avg, dim=1),  # (B, I)
        )
