"""Evaluate world models and baselines in one harness and write summary.json, plots and videos.

Sharded (``shard.index``/``shard.count``, or one shard per process under torchrun) each process runs its
waves of episodes into its own results files; the shards are merged into the same summary.json an
unsharded run writes (automatically by torchrun's rank 0, or by the last manual shard to finish, or with
``scripts/merge_eval.py``). The mp4 comes from the first wave, which shard 0 runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodel.eval.agents import LatentPlanningAgent, OracleAgent, RandomAgent
from worldmodel.eval.closed_loop import EvalSettings, run_closed_loop, summarize, write_results
from worldmodel.eval.episodes import dataset_episode_specs, env_episode_specs
from worldmodel.eval.subgoals import SubgoalConfig, WaypointGraph, load_graph_frames


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_planner(
    planner_cfg: dict[str, Any],
    low: torch.Tensor,
    high: torch.Tensor,
    device: torch.device,
    seed: int,
    **overrides: Any,
) -> Any:
    """Instantiate a planner config (``_target_``) with bounds, device and seed filled in."""
    from hydra.utils import instantiate

    cfg = {k: v for k, v in planner_cfg.items()}
    cfg.update(action_low=low.to(device), action_high=high.to(device), device=str(device), seed=seed, **overrides)
    from hydra.errors import InstantiationException

    try:
        return instantiate(cfg, _convert_="all")
    except InstantiationException as exc:  # a bad planner setting: report the planner's own message
        raise ValueError(f"planner config {cfg.get('_target_')}: {exc.__cause__ or exc}") from None


def _ridge_readout(lat: Tensor, target: Tensor, lam: float, device: torch.device) -> Callable[[Tensor], Tensor]:
    """Fit ridge from flattened latents (M, N*D) to targets (M, K); returns latents (..., N, D) -> (..., K)."""
    from worldmodel.eval.probes import ridge_fit, ridge_predict

    w, bias, mu, sd = (t.to(device) for t in ridge_fit(lat, target, lam))  # float64, as ridge_predict computes

    def readout(z: Tensor) -> Tensor:
        return ridge_predict(z.flatten(-2), w, bias, mu, sd).float()  # (..., K)

    return readout


def fit_latent_readout(
    wm: Any, env: Any, data_path: str, max_frames: int = 3000, lam: float = 1.0
) -> Callable[[Tensor], Tensor]:
    """Ridge readout from the world model's normalised latents to the env's task coords, fitted on frames of
    the training split of ``data_path``: returns latents (..., N, D) -> coords (..., K)."""
    from worldmodel.eval.probes import load_probe_frames

    frames = load_probe_frames(data_path, "train", max_frames)
    lat = wm.encode(frames["pixels"])["latents"].flatten(1).cpu()  # (M, N*D)
    coords = torch.as_tensor(env.state_to_task_coords(frames["states"].double().numpy()))  # (M, K)
    return _ridge_readout(lat, coords, lam, wm.device)


def _check_readout_kind(kind: str) -> None:
    """agent.proprio_readout must name a readout fit_proprio_readout knows."""
    if kind not in ("ridge", "knn"):
        raise ValueError(f"agent.proprio_readout must be 'ridge' or 'knn', got {kind!r}")


def check_agent_config(agent_cfg: dict[str, Any]) -> None:
    """Refuse agent settings evaluate() cannot use (readout kind, subgoal keys) before any work starts.

    Public so that the pipeline can run it before its training stages: a typo then costs seconds, not the
    ~20 minutes of stages that run before evaluation.
    """
    _subgoal_config(agent_cfg.get("subgoals") or {})
    _check_readout_kind(str(agent_cfg.get("proprio_readout", "ridge")))


def fit_proprio_readout(
    wm: Any, data_path: str, max_frames: int = 3000, lam: float = 1.0, kind: str = "ridge", k: int = 5
) -> Callable[[Tensor], Tensor]:
    """Readout from the world model's normalised latents to its *normalised* proprio, fitted on frames of the
    training split of ``data_path`` (the robot's own recorded proprio, no task labels): returns latents
    (..., N, D) -> proprio (..., P) in the space of the predictor's proprio head. It tells the planner what
    proprio a goal image shows, so predicted proprio can be compared with it. ``kind``: "ridge" (linear) or
    "knn" (mean proprio of the k nearest frames in latent L1; sharper where the latents are not linear in
    proprio, e.g. Reacher's joint angles)."""
    from worldmodel.eval.probes import load_probe_frames

    _check_readout_kind(kind)
    if k < 1:
        raise ValueError(f"agent.proprio_knn={k} must be >= 1")

    if wm.proprio_dim == 0:
        raise ValueError(
            "agent.proprio_weight > 0 needs a world model trained with proprio (model.use_proprio=true)"
        )
    frames = load_probe_frames(data_path, "train", max_frames)
    if frames["proprio"].shape[-1] != wm.proprio_dim:
        raise ValueError(f"{data_path} has no proprio of dim {wm.proprio_dim}; use the world model's training data")
    lat = wm.encode(frames["pixels"])["latents"].flatten(1).cpu()  # (M, N*D)
    target = wm.normalize_proprio(frames["proprio"].to(wm.device)).cpu()  # (M, P)
    if kind == "knn":
        bank, values = lat.to(wm.device), target.to(wm.device)  # (M, F), (M, P)
        kk = min(k, bank.shape[0])

        def knn_readout(z: Tensor) -> Tensor:
            flat = z.flatten(-2).reshape(-1, bank.shape[1]).float()  # (Q, F)
            idx = torch.cdist(flat, bank, p=1).topk(kk, dim=1, largest=False).indices  # (Q, k)
            return values[idx].mean(1).reshape(*z.shape[:-2], -1)  # (..., P)

        return knn_readout
    return _ridge_readout(lat, target, lam, wm.device)


def _proprio_readout_for(wm: Any, agent_cfg: dict[str, Any]) -> Callable[[Tensor], Tensor] | None:
    """The goal-proprio readout for ``agent.proprio_weight > 0`` (None otherwise)."""
    weight = float(agent_cfg.get("proprio_weight", 0.0) or 0.0)
    if weight < 0:
        raise ValueError(f"agent.proprio_weight={weight} must be >= 0")
    if weight == 0:
        return None
    data = agent_cfg.get("proprio_data") or (wm.meta or {}).get("data_path")
    if not data or not Path(data).exists():
        raise FileNotFoundError(
            f"agent.proprio_weight > 0 fits a latent -> proprio readout on the world model's training data, "
            f"but {data!r} does not exist; set agent.proprio_data=<trajectories.h5>"
        )
    return fit_proprio_readout(
        wm,
        str(data),
        int(agent_cfg.get("probe_frames", 3000)),
        kind=str(agent_cfg.get("proprio_readout", "ridge")),
        k=int(agent_cfg.get("proprio_knn", 5)),
    )


def _subgoal_config(raw: dict[str, Any]) -> SubgoalConfig:
    """agent.subgoals as a SubgoalConfig; an unknown key is a ValueError that lists the known ones."""
    known = set(SubgoalConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown agent.subgoals keys {unknown}; known keys: {sorted(known)}")
    return SubgoalConfig(**raw)


def _lookahead(sub: SubgoalConfig, planner_cfg: dict[str, Any], frameskip: int) -> float:
    """Env steps from the current node to the subgoal: the configured value, or the planner's reach."""
    return float(sub.lookahead) if sub.lookahead is not None else float(int(planner_cfg["horizon"]) * frameskip)


def _graph_data(sub: SubgoalConfig, wm: Any = None) -> str:
    """The trajectories the subgoal graph is built from (configured, or the world model's training data)."""
    data = sub.data or ((wm.meta or {}).get("data_path") if wm is not None else None)
    if not data or not Path(data).exists():
        raise FileNotFoundError(
            f"agent.subgoals builds a waypoint graph from trajectories, but {data!r} does not exist; set "
            "agent.subgoals.data=<trajectories.h5> (the world model's training data)"
        )
    return str(data)


def _latent_graph_for(wm: Any, sub: SubgoalConfig) -> Any:
    """A WaypointGraph over the world model's latents of dataset frames (None when subgoals are off)."""
    if not sub.enabled:
        return None
    frames = load_graph_frames(_graph_data(sub, wm), sub.frames)
    lat = wm.encode(frames["pixels"])["latents"].flatten(1)  # (M, N*D)
    return WaypointGraph(lat, frames["episodes"], frames["times"], "l1", sub.neighbors, sub.link_quantile)


def _state_graph_for(
    sub: SubgoalConfig, env_id: str, env_kwargs: dict[str, Any], data: str | None
) -> tuple[Any, np.ndarray | None]:
    """The oracle's WaypointGraph over the true task coords of dataset states, and those states (M, Ds)."""
    if not sub.enabled:
        return None, None
    if not data or not Path(data).exists():
        raise FileNotFoundError(
            f"the oracle's subgoal graph needs trajectories, but {data!r} does not exist; set "
            "agent.subgoals.data=<trajectories.h5>"
        )
    import gymnasium

    env = gymnasium.make(env_id, disable_env_checker=True, **env_kwargs)
    try:
        frames = load_graph_frames(str(data), sub.frames)
        states = frames["states"].double().numpy()  # (M, Ds)
        coords = torch.as_tensor(env.unwrapped.state_to_task_coords(states), dtype=torch.float32)  # (M, K)
    finally:
        env.close()
    graph = WaypointGraph(coords, frames["episodes"], frames["times"], "euclidean", sub.neighbors, sub.link_quantile)
    return graph, states


def _readout_for(
    wm: Any, env_id: str, env_kwargs: dict[str, Any], agent_cfg: dict[str, Any], goals: dict[str, Any], device: Any
) -> Callable[[Tensor], Tensor] | None:
    """The readout for ``agent.cost_space=probe`` (None for the default latent cost)."""
    space = agent_cfg.get("cost_space", "latent")
    if space == "latent":
        return None
    if space != "probe":
        raise ValueError(f"agent.cost_space must be 'latent' or 'probe', got {space!r}")
    data = agent_cfg.get("probe_data") or goals.get("dataset")
    if not data or not Path(data).exists():
        raise FileNotFoundError(
            f"agent.cost_space=probe needs labelled frames: set agent.probe_data=<trajectories.h5> (got {data!r})"
        )
    import gymnasium

    env = gymnasium.make(env_id, disable_env_checker=True, **env_kwargs)
    try:
        return fit_latent_readout(wm, env.unwrapped, str(data), int(agent_cfg.get("probe_frames", 3000)))
    finally:
        env.close()


def evaluate(cfg: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Run every configured method on the same episodes; returns the summary written to summary.json.

    Sharded, returns this shard's summary (with a ``shard`` entry), or the merged summary (with ``shards``)
    where this process merged.
    """
    from worldmodel.eval.shard import barrier, finished_shards, resolve_shard
    from worldmodel.world_model import WorldModel

    shard, under_torchrun = resolve_shard(cfg.get("shard"))
    device = resolve_device(cfg.get("device", "auto"))
    if under_torchrun and device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        # GPU LOCAL_RANK for each process (processes share GPUs when there are more of them than GPUs); the
        # device stays "cuda" (the current device) so every shard's results header is the same.
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    env_id, env_kwargs = cfg["env"]["id"], dict(cfg["env"].get("kwargs") or {})
    env_kwargs.pop("max_episode_steps", None)
    out = Path(cfg["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.get("seed", 0))
    goals = cfg.get("goals", {}) or {}
    if goals.get("source", "env") == "dataset":
        if not goals.get("dataset"):
            raise ValueError("goals.source=dataset needs goals.dataset=<trajectory .h5>")
        specs = dataset_episode_specs(goals["dataset"], int(cfg["episodes"]), int(goals.get("offset", 25)), seed)
    elif goals.get("source", "env") == "env":
        specs = env_episode_specs(int(cfg["episodes"]), seed)
    else:
        raise ValueError(f"goals.source must be 'env' or 'dataset', got {goals.get('source')!r}")
    settings = EvalSettings(**cfg.get("eval", {}))
    agent_cfg = cfg.get("agent", {}) or {}
    check_agent_config(agent_cfg)  # before anything runs
    subgoal_cfg = _subgoal_config(agent_cfg.get("subgoals") or {})
    planner_cfg = dict(cfg["planner"])

    import gymnasium

    import envs  # noqa: F401

    probe = gymnasium.make(env_id, disable_env_checker=True, **env_kwargs)
    low = torch.as_tensor(probe.action_space.low, dtype=torch.float32)
    high = torch.as_tensor(probe.action_space.high, dtype=torch.float32)
    proprio_dim = int(probe.unwrapped.proprio_dim)
    threshold = float(probe.unwrapped.success_threshold)
    probe.close()

    header = {"seed": seed, "goals": goals, "planner": planner_cfg, "agent": agent_cfg, "device": str(device)}
    results: dict[str, list[dict[str, Any]]] = {}
    frameskip = 1
    graph_data: str | None = subgoal_cfg.data  # the oracle's subgoal graph uses the world models' data by default
    if subgoal_cfg.enabled and not graph_data and not cfg.get("world_models"):
        _graph_data(subgoal_cfg)  # no world model to take the data from: fail before any method runs
    for name, path in (cfg.get("world_models") or {}).items():
        if not Path(path).exists():
            raise FileNotFoundError(
                f"world model {name!r}: {path} not found; train one with scripts/train_predictor.py"
            )
        wm = WorldModel.load(path, device)
        wm.check_compatible(int(low.numel()), proprio_dim, env_id=env_id)
        trained_kwargs = (wm.meta or {}).get("env_kwargs") or {}
        for key in ("image_size", "action_repeat"):
            if key in trained_kwargs and key in env_kwargs and trained_kwargs[key] != env_kwargs[key]:
                raise ValueError(
                    f"world model {name!r} was trained with {key}={trained_kwargs[key]} but the env "
                    f"uses {key}={env_kwargs[key]}; set env.kwargs.{key}={trained_kwargs[key]}"
                )
        frameskip = wm.frameskip
        graph_data = graph_data or (wm.meta or {}).get("data_path")
        planner = build_planner(planner_cfg, wm.action_low, wm.action_high, device, seed)
        agent = LatentPlanningAgent(
            wm,
            planner,
            execute_steps=int(agent_cfg.get("execute_steps", 1)),
            cost_kind=agent_cfg.get("cost_kind", "l1"),
            cost_steps=agent_cfg.get("cost_steps", "last"),
            context_frames=int(agent_cfg.get("context_frames", 1)),
            action_cost=float(agent_cfg.get("action_cost", 0.0)),
            readout=_readout_for(wm, env_id, env_kwargs, agent_cfg, goals, device),
            latent_weight=float(agent_cfg.get("latent_weight", 1.0)),
            proprio_weight=float(agent_cfg.get("proprio_weight", 0.0) or 0.0),
            proprio_readout=_proprio_readout_for(wm, agent_cfg),
            subgoal_graph=_latent_graph_for(wm, subgoal_cfg),
            subgoal_lookahead=_lookahead(subgoal_cfg, planner_cfg, wm.frameskip),
        )
        results[name] = run_closed_loop(
            agent,
            env_id,
            env_kwargs,
            specs,
            settings,
            out,
            name,
            header_extra={**header, "world_model": str(path)},
            progress=progress,
            shard=shard,
        )
    for method in cfg.get("methods", []) or []:
        if method == "random":
            agent = RandomAgent(low.numpy(), high.numpy(), seed=seed)
        elif method == "oracle":
            ocfg = cfg.get("oracle", {}) or {}
            over: dict[str, Any] = {"horizon": int(planner_cfg["horizon"]) * frameskip}
            if ocfg.get("num_samples"):
                over["num_samples"] = int(ocfg["num_samples"])
            planner = build_planner(planner_cfg, low, high, torch.device("cpu"), seed, **over)
            graph, graph_states = _state_graph_for(subgoal_cfg, env_id, env_kwargs, graph_data)
            agent = OracleAgent(
                planner,
                execute_steps=int(agent_cfg.get("execute_steps", 1)) * frameskip,
                cost_steps=ocfg.get("cost_steps", "all"),
                subgoal_graph=graph,
                subgoal_states=graph_states,
                subgoal_lookahead=_lookahead(subgoal_cfg, planner_cfg, frameskip),
            )
        else:
            raise ValueError(
                f"unknown method {method!r}; methods are random and oracle (world models go in "
                "world_models.<name>=<path>)"
            )
        results[method] = run_closed_loop(
            agent, env_id, env_kwargs, specs, settings, out, method, header_extra=header, progress=progress, shard=shard
        )
    context = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "seed": seed,
        "goals": goals,
        "world_models": {name: str(path) for name, path in (cfg.get("world_models") or {}).items()},
        "episodes": len(specs),
        "settings": settings.__dict__,
        "planner": planner_cfg,
        "agent": agent_cfg,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "success_threshold": threshold,
    }
    if shard is None:
        return write_summary(out, context, results)
    summary = {
        **context,
        "shard": shard.as_dict(),
        "methods": {name: summarize(recs) for name, recs in results.items()},
        "videos": sorted(p.name for p in out.glob("video_*.mp4")),
    }
    _write_json(out / f"summary{shard.suffix}.json", summary)
    if under_torchrun:
        barrier(float((cfg.get("shard") or {}).get("barrier_timeout_min") or 1440))
        return merge_shards(out, shard.count) if shard.index == 0 else summary
    if len(finished_shards(out, shard.count)) == shard.count:
        return merge_shards(out, shard.count)  # the last manual shard to finish merges
    return summary


def write_summary(
    out: Path,
    context: dict[str, Any],
    results: dict[str, list[dict[str, Any]]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Summaries per method (normalised between random and oracle), plots and summary.json (atomically)."""
    from worldmodel.eval.media import plot_distance_curves, plot_success

    summaries = {name: summarize(recs) for name, recs in results.items()}
    if "random" in summaries and "oracle" in summaries:
        floor, ceil = summaries["random"]["success_rate"], summaries["oracle"]["success_rate"]
        for s in summaries.values():
            s["normalized_success"] = (s["success_rate"] - floor) / (ceil - floor) if ceil > floor else None
    title = (
        f"{context['env_id']} · {context['planner']['_target_'].rsplit('.', 1)[-1]} · {context['episodes']} episodes"
    )
    if summaries:  # written under temporary names and renamed: two shards finishing together may both merge
        tmp = out / f".{os.getpid()}.success.png"
        os.replace(plot_success(summaries, tmp, title), out / "success.png")
        tmp = out / f".{os.getpid()}.distance.png"
        os.replace(plot_distance_curves(results, tmp, context["success_threshold"], title), out / "distance.png")
    summary = {
        **context,
        **(extra or {}),
        "methods": summaries,
        "videos": sorted(p.name for p in out.glob("video_*.mp4")),
    }
    _write_json(out / "summary.json", summary)
    return summary


def merge_shards(out_dir: str | Path, count: int | None = None) -> dict[str, Any]:
    """Validate the shards in ``out_dir`` and write what the unsharded run writes; returns the summary.

    Raises ValueError (naming missing shards and episodes) and writes nothing when the shards are
    incomplete or disagree. The merged ``episodes_<method>.jsonl`` carry the unsharded header, so
    re-running unsharded in ``out_dir`` finds every episode done.
    """
    from worldmodel.eval.closed_loop import read_results
    from worldmodel.eval.shard import collect_shards, shard_count

    out = Path(out_dir)
    n = shard_count(out) if count is None else int(count)
    context, headers, records = collect_shards(out, n)
    for method, header in headers.items():
        path = out / f"episodes_{method}.jsonl"
        old, _ = read_results(path) if path.exists() else (None, [])
        if old is not None and old != header:
            raise ValueError(
                f"cannot merge the {n} shards in {out}: {path.name} exists with other settings; move it away"
            )
    for method, header in headers.items():
        write_results(out / f"episodes_{method}.jsonl", header, records[method])
    return write_summary(out, context, records, extra={"shards": n})


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, torch.Tensor):
        return x.tolist()
    return str(x)


def format_table(summary: dict[str, Any]) -> str:
    """Markdown table of the methods' success (with CI), reach rate, distances and latency."""
    rows = [
        "| method | success | 95% CI | reached | final dist | steps to success | plan latency (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary["methods"].items():
        lat = s["plan_latency_s"]["mean"]
        steps = s["mean_steps_to_success"]
        rows.append(
            f"| {name} | {s['success_rate']:.0%} | {s['success_ci95'][0]:.0%}-{s['success_ci95'][1]:.0%} | "
            f"{s['reached_rate']:.0%} | {s['final_distance_mean']:.3f} | "
            f"{'-' if steps is None else f'{steps:.1f}'} | {'-' if lat is None else f'{lat:.3f}'} |"
        )
    return "\n".join(rows)
