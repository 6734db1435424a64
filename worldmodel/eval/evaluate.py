"""Evaluate world models and baselines in one harness and write summary.json, plots and videos.

This module is the top of evaluation only: it reads the config, loads the world models, asks
``assemble.py`` for the agents and runs them through the closed-loop harness on the same episodes. Readouts
live in ``readouts.py``, summaries and tables in ``summary.py``, sharding and merging in ``shard.py``.

Sharded (``shard.index``/``shard.count``, or one shard per process under torchrun) each process runs its
waves of episodes into its own results files; the shards are merged into the same summary.json an
unsharded run writes (automatically by torchrun's rank 0, or by the last manual shard to finish, or with
``scripts/merge_eval.py``). The mp4 comes from the first wave, which shard 0 runs.

Cameras: a world model trained on several cameras makes the env render them; ``env.kwargs.extra_cameras`` is
filled from the world models when unset, and refused (naming the fix) when set without one of their cameras
(``fill_extra_cameras``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from worldmodel.eval.views import env_cameras

if TYPE_CHECKING:
    from worldmodel.config import EvaluateConfig

__all__ = ["evaluate", "format_table", "plain_config", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def plain_config(cfg: EvaluateConfig) -> dict[str, Any]:
    """The typed settings as a plain dict with every key present (what results headers record)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def episode_specs(cfg: EvaluateConfig) -> list[EpisodeSpec]:
    """The episodes every method runs: env-sampled goals, or dataset frames with the goal ``offset`` steps on."""
    goals, seed, n = cfg.goals, _seed(cfg), cfg.episodes
    if goals.source == "dataset":
        if not goals.dataset or goals.offset is None:
            raise ValueError("goals.source=dataset needs goals.dataset=<trajectory .h5> and goals.offset=<steps>")
        return dataset_episode_specs(goals.dataset, n, goals.offset, seed)
    if goals.source == "env":
        return env_episode_specs(n, seed)
    raise ValueError(f"goals.source must be 'env' or 'dataset', got {goals.source!r}")


def _seed(cfg: EvaluateConfig) -> int:
    """The run's seed (only the benchmark leaves it unset, and it sets one for every run it starts)."""
    if cfg.seed is None:
        raise ValueError("seed is null; set seed=<int> (it seeds the episodes and the planners)")
    return cfg.seed


BASELINES = ("random", "oracle", "expert")
"""Baseline methods: the random floor, the simulator oracle (ceiling), the env's expert policy (ceiling where the env
has no simulator; labelled ``expert (user policy)`` in tables)."""


def _env_facts(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Action bounds (A,), proprio dim, success threshold and optional capabilities of the task (envs/contract.py)."""
    import gymnasium

    import envs  # noqa: F401
    from envs.contract import CAPABILITIES, GOAL_ENV_MEMBERS, describe_missing, missing_members

    try:
        probe = gymnasium.make(env_id, disable_env_checker=True, **env_kwargs)
    except TypeError as exc:  # a misspelt or unknown env.kwargs key
        bad = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        what = f"has no setting env.kwargs.{bad.group(1)}" if bad else f"refused env.kwargs: {str(exc)[:200]}"
        raise ValueError(f"env {env_id} {what}; fix the key (its settings: {', '.join(sorted(env_kwargs))}; "
                         "each env's keys are in configs/env/<name>.yaml)") from None
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
            "cameras": env_cameras(task),  # main camera first
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
    """name -> WorldModel for every ``world_models`` entry (``cfg``: plain_config), checked against the env."""
    return {name: load_world_model(name, path, cfg, facts, env_kwargs, device)
            for name, path in cfg["world_models"].items()}


def load_world_model(
    name: str, path: str, cfg: dict[str, Any], facts: dict[str, Any], env_kwargs: dict[str, Any],
    device: torch.device,
) -> Any:
    """One world model loaded from ``path`` and checked against the env and the planner's reach."""
    from worldmodel.planning.horizon import check_reach_of
    from worldmodel.world_model import WorldModel

    if not Path(path).exists():
        raise FileNotFoundError(f"world model {name!r}: {path} not found; train one with scripts/train_predictor.py")
    wm = WorldModel.load(path, device)
    wm.check_compatible(int(facts["low"].numel()), facts["proprio_dim"], env_id=cfg["env"]["id"])
    trained = (wm.meta or {}).get("env_kwargs") or {}  # meta of older world models may lack it
    for key in ("image_size", "action_repeat"):
        if key in trained and key in env_kwargs and trained[key] != env_kwargs[key]:
            raise ValueError(
                f"world model {name!r} was trained with {key}={trained[key]} but the env "
                f"uses {key}={env_kwargs[key]}; set env.kwargs.{key}={trained[key]}"
            )
    check_reach_of(name, wm, cfg["planner"], cfg["agent"])  # every model, before any episode runs
    return wm


def fill_extra_cameras(cfg: dict[str, Any], models: Mapping[str, Any], main: str) -> bool:
    """Make the env render every camera the world models observe; True when ``env.kwargs`` was changed.

    A world model trained on several cameras (``WorldModel.cameras``, e.g. ``[top, side]`` from
    ``data.cameras``) needs the env to render its cameras beyond the env's main one (``main``). When the user left
    ``env.kwargs.extra_cameras`` unset, it is filled from the models (the union of their other cameras, in the
    models' order) and True is returned. A user-set ``extra_cameras`` is kept as given: listing more cameras than
    the models need is allowed (they are rendered, unused), but one that lacks a model's camera is refused with a
    ValueError naming the camera and the fix, before any episode runs.
    """
    kwargs = cfg["env"]["kwargs"]
    need: list[str] = []
    for wm in models.values():
        need += [c for c in (wm.cameras or []) if c != main and c not in need]
    if not need:
        return False
    if kwargs.get("extra_cameras") is None:
        cfg["env"]["kwargs"] = {**kwargs, "extra_cameras": need}
        return True
    have = [str(c) for c in kwargs["extra_cameras"]]
    for name, wm in models.items():
        missing = [c for c in (wm.cameras or []) if c != main and c not in have]
        if missing:
            raise ValueError(
                f"world model {name!r} observes cameras {wm.cameras} but env.kwargs.extra_cameras={have} lacks "
                f"{missing} (the env's main camera is {main!r}); set env.kwargs.extra_cameras="
                f"[{','.join(have + missing)}], or leave it unset to render the world models' cameras"
            )
    return False


def _baseline(method: str, cfg: dict[str, Any], facts: dict[str, Any], models: dict[str, Any]) -> Any:
    """The random floor, the simulator ceiling, or the env's expert policy."""
    if method == "random":
        return RandomAgent(facts["low"].numpy(), facts["high"].numpy(), seed=int(cfg["seed"]))
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
    from worldmodel.eval.loggers import check_logger

    check_agent_config(cfg["agent"], cfg["objective"])
    check_oracle_planner(cfg["planner"], cfg["methods"])
    check_logger(cfg["logger"])
    for method in cfg["methods"]:
        if method not in BASELINES:
            raise ValueError(_unknown_method(method))
    sub = subgoal_config(cfg["agent"]["subgoals"])
    if sub.enabled and not sub.data and not cfg["world_models"]:
        graph_data(sub)  # no world model to take the data from: fail before any method runs


def evaluate(cfg: EvaluateConfig | Mapping[str, Any], progress: bool = True) -> dict[str, Any]:
    """Run every configured method on the same episodes; returns the summary written to summary.json.

    ``cfg`` is an ``EvaluateConfig`` or a dict/DictConfig checked against it (worldmodel.config: an unknown key
    or a bad value is an error naming it, before anything runs). Sharded, returns this shard's summary (with a
    ``shard`` entry), or the merged summary (with ``shards``) where this process merged.
    """
    from worldmodel.config import evaluate_config
    from worldmodel.eval.shard import resolve_shard

    if isinstance(cfg, Mapping):  # a plain dict: name moved and unknown agent/objective keys the way they always were
        check_agent_config(dict(cfg.get("agent") or {}), cfg.get("objective"))
    typed = evaluate_config(cfg)
    plain = plain_config(typed)
    shard, under_torchrun = resolve_shard(plain["shard"])
    device = resolve_device(typed.device)
    if under_torchrun and device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        # GPU LOCAL_RANK for each process (processes share GPUs when there are more of them than GPUs); the
        # device stays "cuda" (the current device) so every shard's results header is the same.
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    _check_before_running(plain)
    env_id, env_kwargs = typed.env.id, env_kwargs_of(plain)
    facts = _env_facts(env_id, env_kwargs)
    check_methods_fit_env(typed.methods, facts, env_id)  # before anything is written
    specs = episode_specs(typed)
    if typed.eval.max_steps is None:
        raise ValueError("eval.max_steps is null; set eval.max_steps=<env steps per episode>")
    plain["seed"] = _seed(typed)
    models = load_world_models(plain, facts, env_kwargs, device)
    if fill_extra_cameras(plain, models, facts["cameras"][0]):
        env_kwargs = env_kwargs_of(plain)
        facts = _env_facts(env_id, env_kwargs)  # the env itself checks the cameras (and that it has the setting)
    out = Path(typed.out_dir)
    out.mkdir(parents=True, exist_ok=True)  # only once every input is known good: bad input leaves nothing behind
    run = dict(env_id=env_id, env_kwargs=env_kwargs, specs=specs, settings=EvalSettings(**plain["eval"]),
               out_dir=out, progress=progress, shard=shard)
    results = _run_methods(plain, models, facts, device, run)
    context = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        **{k: plain[k] for k in ("seed", "goals")},
        "world_models": {name: str(path) for name, path in plain["world_models"].items()},
        "episodes": len(specs),
        "settings": dict(plain["eval"]),
        **{k: plain[k] for k in ("planner", "agent", "objective")},
        "device": str(device),
        "threads": torch.get_num_threads(),
        "success_threshold": facts["threshold"],
    }
    if shard is None:
        return write_summary(out, context, results, logger=plain["logger"])
    return _finish_shard(out, context, results, shard, under_torchrun, plain)


def _run_methods(
    cfg: dict[str, Any], models: dict[str, Any], facts: dict[str, Any], device: torch.device, run: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """Every world model, then every baseline, through the closed-loop harness (``run``: its shared arguments)."""
    header = {**{k: cfg[k] for k in ("seed", "goals", "planner", "agent", "objective")}, "device": str(device)}
    results: dict[str, list[dict[str, Any]]] = {}
    for name, wm in models.items():
        agent = world_model_agent(wm, cfg, run["env_id"], run["env_kwargs"], device)
        extra = {**header, "world_model": str(cfg["world_models"][name])}
        results[name] = run_closed_loop(agent, method=name, header_extra=extra, **run)
    for method in cfg["methods"]:
        extra = {**header, "oracle": cfg["oracle"]} if method == "oracle" else header
        extra = {**extra, "label": METHOD_LABELS[method]} if method in METHOD_LABELS else extra
        agent = _baseline(method, cfg, facts, models)
        results[method] = run_closed_loop(agent, method=method, header_extra=extra, **run)
    return results


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
        barrier(float(cfg["shard"]["barrier_timeout_min"]))
        return merge_shards(out, shard.count, cfg["logger"]) if shard.index == 0 else summary
    if len(finished_shards(out, shard.count)) == shard.count:
        return merge_shards(out, shard.count, cfg["logger"])  # the last manual shard to finish merges
    return summary
