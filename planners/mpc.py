"""Receding-horizon (MPC) controller: plan, execute the first k actions, shift the plan as the warm start."""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import CostFn, Planner, PlanResult, shift_plan


class RecedingHorizonController:
    """Batched MPC loop state for B environments around any Planner.

    Args:
        planner: the planner used at every replanning step.
        num_envs: B, the number of environments planned for together.
        execute_steps: k, actions returned (and executed) per `act` call, 1 ≤ k ≤ horizon.
        warm_start: if True the next plan starts from the previous plan's mean shifted by k (tail repeats the
            last action); if False every plan starts from the centre of the action box.
    """

    def __init__(
        self, planner: Planner, num_envs: int, execute_steps: int = 1, warm_start: bool = True
    ) -> None:
        """Store the planner and allocate no warm start yet."""
        if not 1 <= execute_steps <= planner.horizon:
            raise ValueError("execute_steps must be in [1, planner.horizon]")
        self.planner = planner
        self.num_envs = int(num_envs)
        self.execute_steps = int(execute_steps)
        self.warm_start = bool(warm_start)
        self.mean: Tensor | None = None  # (B, H, A) shifted warm start for the next plan
        self.last_result: PlanResult | None = None

    def act(self, cost_fn: CostFn) -> Tensor:
        """Replan all envs, return the first k actions (B, k, A) and keep the shifted plan as warm start."""
        result = self.planner.plan(cost_fn, self.num_envs, self.mean if self.warm_start else None)
        self.last_result = result
        self.mean = shift_plan(result.mean, self.execute_steps)  # (B, H, A)
        return result.actions[:, : self.execute_steps]  # (B, k, A)

    def reset(self, env_mask: Tensor | None = None) -> None:
        """Forget the warm start for all envs, or only where env_mask (B,) is True (finished episodes)."""
        if env_mask is None or self.mean is None:
            self.mean = None
            return
        fresh = self.planner.default_mean(self.num_envs)  # (B, H, A)
        mask = env_mask.to(device=self.mean.device, dtype=torch.bool)[:, None, None]  # (B, 1, 1)
        self.mean = torch.where(mask, fresh, self.mean)
