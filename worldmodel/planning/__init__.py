"""The planning cost as components: rollouts, targets, cost terms, their weighted sum, and the dynamics that
feed them (world model or simulator). ``cost_function(dynamics, objective, target)`` is what a planner gets.

    from worldmodel.planning import LatentDistance, LatentDynamics, Objective, Target, cost_function
    objective = Objective([(1.0, LatentDistance("l1", "last"))])
    cost = cost_function(LatentDynamics(wm, obs_latents[:, None]), objective, Target(latents=goal))
    plan = planner.plan(cost, batch_size=B).actions          # (B, H, A)
"""

from worldmodel.planning.config import ObjectiveConfig, build_objective, refuse_moved_agent_keys
from worldmodel.planning.dynamics import LatentDynamics, RenderedDynamics, SimulatorDynamics
from worldmodel.planning.objective import (
    ActionPenalty,
    CostTerm,
    Dynamics,
    LatentDistance,
    MetricDistance,
    Objective,
    ProprioDistance,
    ReadoutDistance,
    Rollout,
    Target,
    TaskDistance,
    cost_function,
    reduce_steps,
)
from worldmodel.planning.targets import LatentTargets, StateTargets

__all__ = [
    "ActionPenalty",
    "CostTerm",
    "Dynamics",
    "LatentDistance",
    "LatentDynamics",
    "LatentTargets",
    "MetricDistance",
    "Objective",
    "ObjectiveConfig",
    "ProprioDistance",
    "ReadoutDistance",
    "RenderedDynamics",
    "Rollout",
    "SimulatorDynamics",
    "StateTargets",
    "Target",
    "TaskDistance",
    "build_objective",
    "cost_function",
    "reduce_steps",
    "refuse_moved_agent_keys",
]
