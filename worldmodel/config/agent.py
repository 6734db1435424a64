"""Typed settings of ``agent``: how the world-model agent acts (its cost is the ``objective`` group)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SubgoalsConfig:
    """Waypoint graph over dataset frames ("search on the replay buffer"): each plan aims at the node ``lookahead``
    steps along the shortest path to the goal, which leads a short horizon round walls (worldmodel/eval/subgoals.py);
    the oracle gets the same graph on true states."""

    enabled: bool = False
    """build the graph and plan toward its subgoals"""
    data: str | None = None
    """trajectories the graph is built from (null: the world model's training data)"""
    frames: int = 3000
    """graph nodes: training-split frames at a fixed stride"""
    neighbors: int = 8
    """nearest-neighbour edge candidates per node (feature distance: latent L1 / true Euclidean)"""
    link_quantile: float = 0.5
    """keep neighbour edges closer than this quantile of one-stride transition distances"""
    lookahead: float | None = None
    """env steps along the path to the subgoal (null: planner horizon x frameskip)"""

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"agent.subgoals.frames={self.frames} must be >= 2")
        if self.neighbors < 0:
            raise ValueError(f"agent.subgoals.neighbors={self.neighbors} must be >= 0")
        if not 0.0 < self.link_quantile <= 1.0:
            raise ValueError(f"agent.subgoals.link_quantile={self.link_quantile} must lie in (0, 1]")
        if self.lookahead is not None and self.lookahead <= 0:
            raise ValueError(f"agent.subgoals.lookahead={self.lookahead} must be > 0 (or null)")


DYNAMICS = ("predictor", "simulator")


@dataclass
class AgentConfig:
    """How the world-model agent acts."""

    execute_steps: int = 1
    """planner steps executed before replanning (each is frameskip env steps)"""
    context_frames: int = 1
    """observed frames (latents) fed to the predictor as history"""
    allow_long_horizon: bool = False
    """plan past what the predictor was trained on (context_frames + planner.horizon frames > its data.clip_len)
    anyway; refused otherwise (world models from before that was recorded in their meta are never refused)"""
    subgoals: SubgoalsConfig = field(default_factory=SubgoalsConfig)
    """waypoint graph over dataset frames (off by default)"""
    dynamics: str = "predictor"
    """how candidates become latents: "predictor" imagines them (the world model); "simulator" simulates them in
    the env's true physics and encodes the rendered frames (the encoder's latent cost with a perfect predictor: a
    diagnostic that separates the representation from the predictor; needs an env with a simulator)"""

    def __post_init__(self) -> None:
        if self.execute_steps < 1 or self.context_frames < 1:
            raise ValueError(
                f"agent.execute_steps={self.execute_steps} and agent.context_frames={self.context_frames} must be >= 1"
            )
        if self.dynamics not in DYNAMICS:
            raise ValueError(f"agent.dynamics={self.dynamics!r} must be one of {list(DYNAMICS)}")
