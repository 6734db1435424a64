"""Batched action-sequence planners (CEM, MPPI, iCEM, gradient) and an MPC controller; imports torch only."""

from planners.base import CostFn, Planner, PlanResult, sanitize_costs, shift_plan
from planners.cem import CEMPlanner
from planners.gradient import GradientPlanner
from planners.icem import ICEMPlanner, colored_noise
from planners.mpc import RecedingHorizonController
from planners.mppi import MPPIPlanner

__all__ = [
    "CEMPlanner",
    "CostFn",
    "GradientPlanner",
    "ICEMPlanner",
    "MPPIPlanner",
    "PlanResult",
    "Planner",
    "RecedingHorizonController",
    "colored_noise",
    "sanitize_costs",
    "shift_plan",
]
