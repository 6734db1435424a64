"""Evaluate world models and baselines in one harness and write summary.json, plots and videos.

This module is the top of evaluation only: it reads the config, loads the world models, asks
``assemble.py`` for the agents and runs them through the closed-loop harness on the same episodes. Readouts
live in ``readouts.py``, summaries and tables in ``summary.py``, sharding and merging in ``shard.py``.

Sharded (``shard.index``/``shard.count``, or one shard per process under torchrun) each process runs its
waves of episodes into its own results files; the shards are merged into the same summary.json an
unsharded run writes (automatically by torchrun's rank 0, or by the last manual shard to finish, or with
``scripts/merge_eval.py``). The mp4 comes from the first wave, which shard 0 runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from worldmodel.eval.agents import EXPERT_FIX, ORACLE_FIX, ExpertAgent, RandomAgent
from worldmodel.eval.assemble import (
    check_agent_config,
    check_oracle_planner,
    env_kwargs_of,
    graph_data,
    oracle_agent,
    oracle_frameskip,
    subgoal_config,
    world_model_agent,
)
from worldmodel.eval.closed_loop import EvalSettings, run_closed_loop, summarize
from worldmodel.eval.episodes import EpisodeSpec, dataset_episode_specs, env_episode_specs
from worldmodel.eval.summary import METHOD_LABELS, format_table, write_json, write_summary

__all__ = ["evaluate", "format_table", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def episode_specs(cfg: dict[str, Any]) -> list[EpisodeSpec]:
    """The episodes every method runs: env-sampled goals, or dataset frames with the goal ``offset`` steps on."""
    goals, seed, n = cfg.get("goals", {}) or {}, int(cfg.get("seed", 0)), int(cfg["episodes"])
    source = goals.get("source", "env")
    if source == "dataset":
        if not goals.get("dataset"):
            raise ValueError("goals.source=dataset needs goals.dataset=<trajectory .h5>")
        return dataset_episode_specs(goals["dataset"], n, int(goals.get("offset", 25)), seed)
    if source == "env":
        return env_episode_specs(n, seed)
    raise ValueError(f"goals.source must be 'env' or 'dataset', got {source!r}")


BASELINES = ("random", "oracle", "expert")
"""Baseline methods: the random floor, the simulator oracle (ceiling), the env's expert policy (ceiling where the env
has no simulator; labelled ``expert (user policy)`` in tables)."""


def _env_facts(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Action bounds (A,), proprio dim, success threshold and optional capabilities of the task (envs/contract.py)."""
    import gymnasium

    import envs  # noqa: F401
    from envs.contract import CAPABILITIES, GOAL_ENV_MEMBERS, describe_missing, missing_members

    probe = gymnasium.make(env_id, disable_env_checker=True, **env_kwargs)
    try:
        task = probe.unwrapped
        missing = describe_missing(task, GOAL_ENV_MEMBERS)
        if missing:
            raise ValueError(f"env {env_id} cannot be evaluated (envs/contract.py): " + "; ".join(missing))
        return {
            "low": torch.as_tensor(probe.action_space.low, dtype=torch.float32),
            "high": torch.as_tensor(probe.action_space.high, dtype=torch.float32),
            "proprio_dim": int(task.proprio_dim),
            "threshold": float(task.success_threshold),
            "env_class": type(task).__name__,
            "missing": {cap: missing_members(task, members) for cap, members in CAPABILITIES.items()},
        }
    finally:
        probe.close()


def check_methods_fit_env(methods: list[str] | None, facts: dict[str, Any], env_id: str) -> None:
    """Refuse a baseline the env cannot run before any episode: the oracle needs a simulator and task coordinates,
    the expert an expert policy (ValueError naming ``methods`` and the fix)."""
    needs = {"oracle": (("simulator", "task_coords"), ORACLE_FIX), "expert": (("expert",), EXPERT_FIX)}
    for method in methods or []:
        caps, fix = needs.get(method, ((), ""))
        missing = [name for cap in caps for name in facts["missing"][cap]]
        if missing:
            raise ValueError(
                f"methods contains {method!r}, but env {env_id} ({facts['env_class']}) has no {', '.join(missing)} "
                f"({' and '.join(caps)} capability, envs/contract.py). {fix}"
            )


def load_world_models(
    cfg: dict[str, Any], facts: dict[str, Any], env_kwargs: dict[str, Any], device: torch.device
) -> dict[str, Any]:
    """name -> WorldModel for every ``world_models`` entry, each checked against the env it is evaluated on."""
    from worldmodel.planning.horizon import check_reach_of
    from worldmodel.world_model import WorldModel

    models = {}
    for name, path in (cfg.get("world_models") or {}).items():
        if not Path(path).exists():
            raise FileNotFoundError(
                f"world model {name!r}: {path} not found; train one with scripts/train_predictor.py"
            )
        wm = WorldModel.load(path, device)
        wm.check_compatible(int(facts["low"].numel()), facts["proprio_dim"], env_id=cfg["env"]["id"])
        trained = (wm.meta or {}).get("env_kwargs") or {}
        for key in ("image_size", "action_repeat"):
            if key in trained and key in env_kwargs and trained[key] != env_kwargs[key]:
                raise ValueError(
                    f"world model {name!r} was trained with {key}={trained[key]} but the env "
                    f"uses {key}={env_kwargs[key]}; set env.kwargs.{key}={trained[key]}"
                )
        check_reach_of(name, wm, cfg["planner"], cfg.get("agent"))  # every model, before any episode runs
        models[name] = wm
    return models


def _baseline(method: str, cfg: dict[str, Any], facts: dict[str, Any], models: dict[str, Any]) -> Any:
    """The random floor, the simulator ceiling, or the env's expert policy."""
    if method == "random":
        return RandomAgent(facts["low"].numpy(), facts["high"].numpy(), seed=int(cfg.get("seed", 0)))
    if method == "expert":
        return ExpertAgent()
    if method == "oracle":
        frameskip = oracle_frameskip(cfg, {name: wm.frameskip for name, wm in models.items()})
        default_data = next(((wm.meta or {}).get("data_path") for wm in models.values()), None)
        return oracle_agent(cfg, facts["low"], facts["high"], frameskip, default_data)
    raise ValueError(_unknown_method(method))


def _unknown_method(method: str) -> str:
    return (f"unknown method {method!r}; methods are {', '.join(BASELINES)} "
            "(world models go in world_models.<name>=<path>)")


def _check_before_running(cfg: dict[str, Any]) -> None:
    """Every setting that can be checked without loading a model, so a typo fails before any episode."""
    check_agent_config(cfg.get("agent") or {}, cfg.get("objective"))
    check_oracle_planner(cfg["planner"], cfg.get("methods"))
    for method in cfg.get("methods", []) or []:
        if method not in BASELINES:
            raise ValueError(_unknown_method(method))
    sub = subgoal_config((cfg.get("agent") or {}).get("subgoals"))
    if sub.enabled and not sub.data and not cfg.get("world_models"):
        graph_data(sub)  # no world model to take the data from: fail before any method runs


def evaluate(cfg: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Run every configured method on the same episodes; returns the summary written to summary.json.

    Sharded, returns this shard's summary (with a ``shard`` entry), or the merged summary (with ``shards``)
    where this process merged.
    """
    from worldmodel.eval.shard import resolve_shard

    shard, under_torchrun = resolve_shard(cfg.get("shard"))
    device = resolve_device(cfg.get("device", "auto"))
    if under_torchrun and device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        # GPU LOCAL_RANK for each process (processes share GPUs when there are more of them than GPUs); the
        # device stays "cuda" (the current device) so every shard's results header is the same.
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    _check_before_running(cfg)
    env_id, env_kwargs = cfg["env"]["id"], env_kwargs_of(cfg)
    facts = _env_facts(env_id, env_kwargs)
    check_methods_fit_env(cfg.get("methods"), facts, env_id)  # before anything is written
    specs = episode_specs(cfg)
    settings = EvalSettings(**cfg.get("eval", {}))
    models = load_world_models(cfg, facts, env_kwargs, device)
    out = Path(cfg["out_dir"])
    out.mkdir(parents=True, exist_ok=True)  # only once every input is known good: bad input leaves nothing behind
    header = {
        "seed": int(cfg.get("seed", 0)),
        "goals": cfg.get("goals", {}) or {},
        "planner": dict(cfg["planner"]),
        "agent": cfg.get("agent", {}) or {},
        "objective": cfg.get("objective") or {},
        "device": str(device),
    }
    run = dict(env_id=env_id, env_kwargs=env_kwargs, specs=specs, settings=settings, out_dir=out,
               progress=progress, shard=shard)
    results: dict[str, list[dict[str, Any]]] = {}
    for name, wm in models.items():
        agent = world_model_agent(wm, cfg, env_id, env_kwargs, device)
        extra = {**header, "world_model": str(cfg["world_models"][name])}
        results[name] = run_closed_loop(agent, method=name, header_extra=extra, **run)
    for method in cfg.get("methods", []) or []:
        extra = {**header, "oracle": cfg.get("oracle") or {}} if method == "oracle" else header
        extra = {**extra, "label": METHOD_LABELS[method]} if method in METHOD_LABELS else extra
        results[method] = run_closed_loop(_baseline(method, cfg, facts, models), method=method, header_extra=extra,
                                          **run)
    context = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        **{k: header[k] for k in ("seed", "goals")},
        "world_models": {name: str(path) for name, path in (cfg.get("world_models") or {}).items()},
        "episodes": len(specs),
        "settings": settings.__dict__,
        **{k: header[k] for k in ("planner", "agent", "objective", "device")},
        "threads": torch.get_num_threads(),
        "success_threshold": facts["threshold"],
    }
    if shard is None:
        return write_summary(out, context, results)
    return _finish_shard(out, context, results, shard, under_torchrun, cfg)


def _finish_shard(
    out: Path, context: dict[str, Any], results: dict[str, Any], shard: Any, under_torchrun: bool, cfg: dict[str, Any]
) -> dict[str, Any]:
    """Write this shard's summary; merge when this process is the one that should."""
    from worldmodel.eval.shard import barrier, finished_shards, merge_shards

    summary = {
        **context,
        "shard": shard.as_dict(),
        "methods": {name: summarize(recs) for name, recs in results.items()},
        "videos": sorted(p.name for p in out.glob("video_*.mp4")),
    }
    write_json(out / f"summary{shard.suffix}.json", summary)
    if under_torchrun:
        barrier(float((cfg.get("shard") or {}).get("barrier_timeout_min") or 1440))
        return merge_shards(out, shard.count) if shard.index == 0 else summary
    if len(finished_shards(out, shard.count)) == shard.count:
        return merge_shards(out, shard.count)  # the last manual shard to finish merges
    return summary
