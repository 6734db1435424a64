"""Agent assembly for evaluation: planners from their configs, the objective and its readouts, subgoal graphs,
and the world-model and oracle agents built from them. ``check_agent_config`` refuses bad settings early."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodel.config.agent import AgentConfig
from worldmodel.config.eval import OracleConfig
from worldmodel.config.evaluate import EvaluateConfig, typed
from worldmodel.eval.agents import LatentPlanningAgent, OracleAgent
from worldmodel.eval.readouts import fit_latent_readout, fit_proprio_readout
from worldmodel.eval.subgoals import SubgoalConfig, WaypointGraph, load_graph_frames
from worldmodel.eval.views import model_pixels
from worldmodel.planning import ObjectiveConfig, build_objective, refuse_moved_agent_keys
from worldmodel.planning.horizon import check_world_model_horizon

AGENT_KEYS = ("execute_steps", "context_frames", "subgoals", "allow_long_horizon", "dynamics")


def build_planner(
    planner_cfg: Mapping[str, Any], low: Tensor, high: Tensor, device: torch.device, seed: int, **overrides: Any
) -> Any:
    """Instantiate a planner config (``_target_``) with bounds, device and seed filled in."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    cfg = dict(planner_cfg)
    cfg.update(action_low=low.to(device), action_high=high.to(device), device=str(device), seed=seed, **overrides)
    try:
        return instantiate(cfg, _convert_="all")
    except InstantiationException as exc:  # a bad planner setting: report the planner's own message
        raise ValueError(f"planner config {cfg.get('_target_')}: {exc.__cause__ or exc}") from None


def subgoal_config(raw: Mapping[str, Any] | None) -> SubgoalConfig:
    """agent.subgoals as a SubgoalConfig; an unknown key is a ValueError that lists the known ones."""
    raw = dict(raw or {})
    known = set(SubgoalConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown agent.subgoals keys {unknown}; known keys: {sorted(known)}")
    return SubgoalConfig(**raw)


def check_oracle_planner(planner_cfg: Mapping[str, Any], methods: list[str] | None) -> None:
    """The oracle plans through the simulator, whose cost has no gradient: refuse a gradient planner for it."""
    from hydra.utils import get_class

    target = str(planner_cfg.get("_target_", ""))
    if "oracle" in (methods or []) and target and getattr(get_class(target), "needs_gradients", False):
        raise ValueError(
            f"{target.rsplit('.', 1)[-1]} plans with gradients of the cost, but the oracle plans through the "
            "simulator, whose cost has none; leave the oracle out (methods=[random]) and read the ceiling from a "
            "run with a sampling planner (planner=cem)"
        )


def check_agent_config(agent_cfg: Mapping[str, Any], objective_cfg: Mapping[str, Any] | None = None) -> None:
    """Refuse agent and objective settings evaluate() cannot use before any work starts.

    Public so that the pipeline can run it before its training stages: a typo then costs seconds, not the
    ~20 minutes of stages that run before evaluation.
    """
    refuse_moved_agent_keys(agent_cfg)
    unknown = sorted(set(agent_cfg) - set(AGENT_KEYS))
    if unknown:
        raise ValueError(f"unknown agent keys {unknown}; known keys: {list(AGENT_KEYS)}")
    subgoal_config(agent_cfg.get("subgoals"))
    typed(AgentConfig, dict(agent_cfg))  # bad values (agent.dynamics=...) raise the schema's own message
    ObjectiveConfig.from_dict(objective_cfg)


def graph_data(sub: SubgoalConfig, wm: Any = None) -> str:
    """The trajectories the subgoal graph is built from (configured, or the world model's training data)."""
    data = sub.data or ((wm.meta or {}).get("data_path") if wm is not None else None)
    if not data or not Path(data).exists():
        raise FileNotFoundError(
            f"agent.subgoals builds a waypoint graph from trajectories, but {data!r} does not exist; set "
            "agent.subgoals.data=<trajectories.h5> (the world model's training data)"
        )
    return str(data)


def latent_graph(wm: Any, sub: SubgoalConfig) -> WaypointGraph | None:
    """A WaypointGraph over the world model's latents of dataset frames (None when subgoals are off); a
    multi-camera model encodes each frame through all of its cameras."""
    if not sub.enabled:
        return None
    data = graph_data(sub, wm)
    frames = load_graph_frames(data, sub.frames)
    lat = wm.encode(model_pixels(wm, data, frames))["latents"].flatten(1)  # (M, N*D), every camera of the model
    return WaypointGraph(lat, frames["episodes"], frames["times"], "l1", sub.neighbors, sub.link_quantile)


def state_graph(
    sub: SubgoalConfig, env_id: str, env_kwargs: dict[str, Any], data: str | None
) -> tuple[WaypointGraph | None, np.ndarray | None]:
    """The oracle's WaypointGraph over the true task coords of dataset states, and those states (M, Ds)."""
    if not sub.enabled:
        return None, None
    if not data or not Path(data).exists():
        raise FileNotFoundError(
            f"the oracle's subgoal graph needs trajectories, but {data!r} does not exist; set "
            "agent.subgoals.data=<trajectories.h5>"
        )
    frames = load_graph_frames(str(data), sub.frames)
    states = frames["states"].double().numpy()  # (M, Ds)
    coords = _with_env(env_id, env_kwargs, lambda env: env.state_to_task_coords(states))  # (M, K)
    coords_t = torch.as_tensor(coords, dtype=torch.float32)
    graph = WaypointGraph(coords_t, frames["episodes"], frames["times"], "euclidean", sub.neighbors, sub.link_quantile)
    return graph, states


def _with_env(env_id: str, env_kwargs: dict[str, Any], fn: Callable[[Any], Any]) -> Any:
    """fn(unwrapped env) on a fresh env that is closed afterwards."""
    import gymnasium

    import envs  # noqa: F401

    env = gymnasium.make(env_id, disable_env_checker=True, **env_kwargs)
    try:
        return fn(env.unwrapped)
    finally:
        env.close()


def proprio_readout(wm: Any, cfg: ObjectiveConfig) -> Callable[[Tensor], Tensor] | None:
    """The goal-proprio readout the proprio term needs (None when the term is off)."""
    if cfg.proprio.weight == 0:
        return None
    data = cfg.proprio.data or (wm.meta or {}).get("data_path")
    if not data or not Path(data).exists():
        raise FileNotFoundError(
            f"objective.proprio fits a latent -> proprio readout on the world model's training data, "
            f"but {data!r} does not exist; set objective.proprio.data=<trajectories.h5>"
        )
    return fit_proprio_readout(wm, str(data), cfg.proprio.frames, kind=cfg.proprio.readout, k=cfg.proprio.knn)


def probe_readout(
    wm: Any, cfg: ObjectiveConfig, env_id: str, env_kwargs: dict[str, Any], goals: Mapping[str, Any]
) -> Callable[[Tensor], Tensor] | None:
    """The task-coordinate probe the probe term needs (None when the term is off)."""
    if cfg.probe.weight == 0:
        return None
    data = cfg.probe.data or goals.get("dataset")
    if not data or not Path(data).exists():
        raise FileNotFoundError(
            f"objective.probe needs labelled frames: set objective.probe.data=<trajectories.h5> (got {data!r})"
        )
    return _with_env(env_id, env_kwargs, lambda env: fit_latent_readout(wm, env, str(data), cfg.probe.frames))


def world_model_agent(
    wm: Any, cfg: Mapping[str, Any], env_id: str, env_kwargs: dict[str, Any], device: torch.device
) -> LatentPlanningAgent:
    """The world-model agent for the evaluate config ``cfg`` (planner, objective, agent, goals)."""
    agent, planner_cfg = typed(AgentConfig, cfg.get("agent")), cfg["planner"]
    check_world_model_horizon(  # refuses a plan past the predictor's trained reach unless allow_long_horizon
        wm, int(planner_cfg["horizon"]), agent.context_frames, agent.allow_long_horizon
    )
    obj_cfg = ObjectiveConfig.from_dict(cfg.get("objective"))
    sub = agent.subgoals  # SubgoalConfig is the schema's SubgoalsConfig
    probe = probe_readout(wm, obj_cfg, env_id, env_kwargs, cfg.get("goals") or {})
    return LatentPlanningAgent(
        wm,
        build_planner(planner_cfg, wm.action_low, wm.action_high, device, seed_of(cfg)),
        build_objective(obj_cfg, probe, wm.latent_std, wm.metric),
        execute_steps=agent.execute_steps,
        context_frames=agent.context_frames,
        proprio_readout=proprio_readout(wm, obj_cfg),
        subgoal_graph=latent_graph(wm, sub),
        subgoal_lookahead=sub.lookahead,  # None: the agent's plan reach (horizon x frameskip)
        dynamics=agent.dynamics,
    )


def oracle_frameskip(cfg: Mapping[str, Any], frameskips: Mapping[str, int]) -> int:
    """Env steps per planner step for the oracle: ``oracle.frameskip``, else the world models' common one.

    The oracle plans ``planner.horizon x frameskip`` env steps, the same reach as the world models. It is a
    function of the settings alone, never of which world model happened to be loaded last.
    """
    explicit = typed(OracleConfig, cfg.get("oracle")).frameskip  # >= 1, checked by the schema
    if explicit is not None:
        return int(explicit)
    distinct = sorted(set(frameskips.values()))
    if len(distinct) > 1:
        raise ValueError(
            f"the world models plan with different frameskips {dict(frameskips)}, so the oracle's reach is "
            "ambiguous; set oracle.frameskip=<env steps per planner step>"
        )
    return distinct[0] if distinct else 1


def oracle_agent(
    cfg: Mapping[str, Any], low: Tensor, high: Tensor, frameskip: int, graph_default: str | None
) -> OracleAgent:
    """The simulator-ceiling agent: the same planner, horizon and subgoals in env steps."""
    agent, ocfg = typed(AgentConfig, cfg.get("agent")), typed(OracleConfig, cfg.get("oracle"))
    planner_cfg = cfg["planner"]
    env_id, env_kwargs = cfg["env"]["id"], env_kwargs_of(cfg)
    over: dict[str, Any] = {"horizon": int(planner_cfg["horizon"]) * frameskip}
    if ocfg.num_samples:
        over["num_samples"] = int(ocfg.num_samples)
    planner = build_planner(planner_cfg, low, high, torch.device("cpu"), seed_of(cfg), **over)
    sub = agent.subgoals  # SubgoalConfig is the schema's SubgoalsConfig
    graph, graph_states = state_graph(sub, env_id, env_kwargs, sub.data or graph_default)
    return OracleAgent(
        planner,
        execute_steps=agent.execute_steps * frameskip,
        cost_steps=ocfg.cost_steps,
        subgoal_graph=graph,
        subgoal_states=graph_states,
        subgoal_lookahead=sub.lookahead,  # None: the oracle planner's horizon, already in env steps
    )


def seed_of(cfg: Mapping[str, Any]) -> int:
    """The planners' seed of an evaluate config (a partial one gets the schema's one default)."""
    seed = cfg["seed"] if "seed" in cfg else EvaluateConfig.seed
    return int(seed or 0)


def env_kwargs_of(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """env.kwargs without the episode-length limit (the harness counts steps itself)."""
    kwargs = dict(cfg["env"].get("kwargs") or {})
    kwargs.pop("max_episode_steps", None)
    return kwargs
