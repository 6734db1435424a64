"""Gradient planner: Adam on action sequences through a differentiable cost, restarts batched as samples."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from planners.base import BoundLike, CostFn, Planner, PlanResult, check_choice, track_best
from planners.cem import CEMPlanner


class GradientPlanner(Planner):
    """Projected Adam over R restarts per environment; bounds by clamping (projection) after every step.

    The cost function must be differentiable w.r.t. the actions; gradients are taken under
    torch.enable_grad() so planning also works inside no_grad code. Non-finite costs contribute no gradient
    (their loss term and any non-finite gradient entries are zeroed with torch.where).

    Args (beyond `Planner`'s horizon, iterations, init_std, seed, bounds, device):
        num_samples: R restarts per environment, optimised jointly as one (B, R, H, A) batch.
        iterations: Adam steps.
        lr: Adam step size as a fraction of the half action range (per action dim); the peak of the schedule.
        betas: Adam moment decay rates.
        lr_schedule: "constant", or "cosine" (step size lr * (1 + cos(pi i / I)) / 2 at step i: large steps
            to travel, tiny ones to settle). On planners/problems.py constant Adam already settles within 0.1%
            of the optimum (Adam's steps shrink with the gradient's sign changes) and cosine cut the travel
            short (0.8% off), so constant is the default.
        init_from_cem: start restart 0 at a short CEM solution, restart 1 at the initial mean itself (the warm
            start or the box centre, so CEM's exploration can never make the start worse) and the others
            scattered around the CEM solution by init_std.
        cem_samples: CEM samples for the initialisation (only if init_from_cem).
        cem_iterations: CEM iterations for the initialisation (only if init_from_cem).
        cem_elites: CEM elites for the initialisation (only if init_from_cem).
    """

    needs_gradients = True

    def __init__(
        self,
        action_low: BoundLike,
        action_high: BoundLike,
        horizon: int,
        num_samples: int = 8,
        iterations: int = 50,
        lr: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.999),
        init_std: float = 0.5,
        init_from_cem: bool = False,
        cem_samples: int = 100,
        cem_iterations: int = 3,
        cem_elites: int = 10,
        lr_schedule: str = "constant",
        seed: int = 0,
        action_dim: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Validate and store gradient-planner settings (and build the optional CEM initialiser)."""
        super().__init__(action_low, action_high, horizon, num_samples, iterations, init_std, seed,
                         action_dim, device)
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.lr_schedule = check_choice("lr_schedule", lr_schedule, ("cosine", "constant"))
        self.init_from_cem = bool(init_from_cem)
        self.cem: CEMPlanner | None = None
        if self.init_from_cem:
            self.cem = CEMPlanner(self.low, self.high, horizon, num_samples=cem_samples,
                                  iterations=cem_iterations, num_elites=min(cem_elites, cem_samples),
                                  init_std=init_std, seed=seed, device=self.device)
            self.cem.generator = self.generator  # one stream: reseeding the planner reseeds its initialiser

    def _start(self, cost_fn: CostFn, batch_size: int, mean: Tensor) -> Tensor:
        """Initial restarts (B, R, H, A): the CEM answer and the initial mean (or the mean alone), then scatter."""
        starts = [mean[:, None]]  # (B, 1, H, A) each
        if self.cem is not None:
            with torch.no_grad():
                centre = self.cem.plan(cost_fn, batch_size, mean).actions  # (B, H, A)
            starts = [centre[:, None], mean[:, None]][: self.num_samples]
        else:
            centre = mean
        n = self.num_samples - len(starts)
        noise = self.randn(batch_size, n, self.horizon, self.action_dim)  # (B, R-len(starts), H, A)
        scatter = centre[:, None] + self.init_std * self.half_range * noise
        return self.clip(torch.cat([*starts, scatter], dim=1))  # (B, R, H, A)

    def step_size(self, iteration: int) -> float:
        """Adam step size (fraction of the half range) at `iteration` under the schedule."""
        if self.lr_schedule == "constant":
            return self.lr
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * iteration / self.iterations))

    def cost_and_grad(self, cost_fn: CostFn, x: Tensor) -> tuple[Tensor, Tensor]:
        """Sanitised costs (B, R) and gradient (B, R, H, A) at x; non-finite terms contribute no gradient."""
        with torch.enable_grad():
            xg = x.clone().requires_grad_(True)
            raw = cost_fn(xg)  # (B, R)
            finite = torch.isfinite(raw)
            loss = torch.where(finite, raw, torch.zeros_like(raw)).sum()
            (grad,) = torch.autograd.grad(loss, xg, allow_unused=True)
        grad = torch.zeros_like(x) if grad is None else torch.where(torch.isfinite(grad), grad, 0.0)
        costs = torch.where(finite, raw.detach(), torch.full_like(raw, float("inf"))).float()  # (B, R)
        return costs, grad

    def plan(self, cost_fn: CostFn, batch_size: int, initial_mean: Tensor | None = None) -> PlanResult:
        """Run `iterations` projected-Adam steps on all restarts of all environments; return the best."""
        b = batch_size
        mean = self.initial_mean(b, initial_mean)  # (B, H, A)
        x = self._start(cost_fn, b, mean).detach()  # (B, R, H, A)
        m1 = torch.zeros_like(x)
        m2 = torch.zeros_like(x)
        beta1, beta2 = self.betas
        best_cost = torch.full((b,), float("inf"), device=self.device)
        best_actions = mean.clone()
        hist_best, hist_mean = [], []
        for i in range(self.iterations):
            costs, grad = self.cost_and_grad(cost_fn, x)  # (B, R), (B, R, H, A)
            best_cost, best_actions, it_best = track_best(best_cost, best_actions, costs, x)
            hist_best.append(it_best)
            hist_mean.append(costs.mean(dim=1))
            m1 = beta1 * m1 + (1 - beta1) * grad
            m2 = beta2 * m2 + (1 - beta2) * grad.pow(2)
            m1_hat = m1 / (1 - beta1 ** (i + 1))
            m2_hat = m2 / (1 - beta2 ** (i + 1))
            x = self.clip(x - self.step_size(i) * self.half_range * m1_hat / (m2_hat.sqrt() + 1e-8))
        with torch.no_grad():
            final = self.evaluate(cost_fn, x)  # (B, R), the cost after the last step
        best_cost, best_actions, it_best = track_best(best_cost, best_actions, final, x)
        hist_best[-1] = torch.minimum(hist_best[-1], it_best)
        return PlanResult(
            actions=best_actions,
            mean=best_actions,
            best_cost=best_cost,
            cost_history=torch.stack(hist_best, dim=1),  # (B, I)
            elite_cost_history=torch.stack(hist_mean, dim=1),  # (B, I)
        )
