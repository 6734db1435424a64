"""Typed settings of the field's closed-loop protocol (``scripts/benchmark.py``, configs/benchmark.yaml).

Every setting of an evaluation (env, planner and objective groups; agent, oracle, eval, device) is a setting here
too, shared by every run; a variant overrides objective/agent/planner on top of it (the baselines keep the shared
settings). ``seed``, ``goals.*`` and ``eval.max_steps`` are set by the benchmark itself: leave them unset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worldmodel.config.eval import EvalConfig
from worldmodel.config.evaluate import EvaluateConfig
from worldmodel.config.goals import GoalsConfig


def _default_variants() -> dict[str, Any]:
    return {
        # V-JEPA 2-AC: the latent goal cost alone
        "latent": {"objective": {"proprio": {"weight": 0.0}}, "agent": {"subgoals": {"enabled": False}}},
        # + the imagined proprio against the proprio read out of the goal image (DINO-WM's term)
        "latent_proprio": {"objective": {"proprio": {"weight": 1.0}}, "agent": {"subgoals": {"enabled": False}}},
        # + subgoals from the waypoint graph over the training frames (the main job's agent)
        "latent_proprio_subgoals": {
            "objective": {"proprio": {"weight": 1.0}},
            "agent": {"subgoals": {"enabled": True}},
        },
    }


@dataclass
class BenchmarkConfig(EvaluateConfig):
    """Start at a held-out dataset frame, goal image = the frame ``offset`` env steps later, ``max_steps`` env steps
    of budget, success = the env's own rule at the end of the budget; every world model x every variant."""

    episodes: int = 50
    """episodes per seed"""
    seed: int | None = None
    """set by the benchmark (from ``seeds``); leave unset"""
    out_root: str = "outputs/benchmark"
    """parent of out_dir"""
    goals: GoalsConfig = field(default_factory=lambda: GoalsConfig(source=None, dataset=None, offset=None))
    """set by the benchmark (source=dataset, from ``data`` and ``offset``); leave unset"""
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(max_steps=None))
    """eval.max_steps is set by the benchmark (from ``max_steps``); eval.num_envs / video_episodes apply as usual"""
    data: str | None = None
    """trajectories whose held-out episodes give starts and goals (null: the first world model's training data,
    from its meta data_path)"""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """episode seeds (starts, goals, planner seeds): one evaluate run per seed and variant"""
    offset: int = 25
    """env steps from the start frame to the goal frame"""
    max_steps: int = 50
    """env-step budget per episode"""
    variants: dict[str, Any] = field(default_factory=_default_variants)
    """columns: name -> evaluate overrides under objective / agent / planner (objective may also be a config name,
    e.g. latent_proprio). Add one: ++variants.mine={objective:{latent:{kind:l2}}}; drop one: ~variants.latent"""
    logger: str | None = "auto"
    """where the table's results are also logged (worldmodel.eval.loggers): auto (TensorBoard when installed) |
    tensorboard | wandb | none (null = none)"""
