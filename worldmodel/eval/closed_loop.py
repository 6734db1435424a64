"""The closed-loop harness: run an agent on batched evaluation episodes, one JSONL line per episode.

Episodes run in waves of B environments (one planner call plans for all of them). Finished episodes
are appended to ``episodes_<method>.jsonl`` (flushed and fsynced) as each wave ends, so an interrupted
evaluation resumes at the first unfinished wave; a results file made with other settings is refused.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.eval.agents import Agent
from worldmodel.eval.episodes import EnvBatch, EpisodeSpec


@dataclass(frozen=True)
class EvalSettings:
    """How episodes are run; part of every results file's header."""

    max_steps: int = 50
    """Env-step budget per episode."""
    num_envs: int = 8
    """Environments run (and planned for) together."""
    stop_on_success: bool = False
    """End an episode at its first success (then `success` equals `reached`)."""
    video_episodes: int = 8
    """Episodes of the first wave recorded into the mp4 grid."""


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (well-behaved at 0% and 100%, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate with its 95% CI, reach rate, steps to success, distances and planning latency."""
    n = len(records)
    succ = sum(bool(r["success"]) for r in records)
    reached = sum(bool(r["reached"]) for r in records)
    steps = [r["steps_to_success"] for r in records if r["steps_to_success"] is not None]
    lat = np.array([x for r in records for x in r["plan_times_s"]], dtype=np.float64)
    lo, hi = wilson_interval(succ, n)
    return {
        "episodes": n,
        "success_rate": succ / n if n else float("nan"),
        "success_ci95": [lo, hi],
        "reached_rate": reached / n if n else float("nan"),
        "mean_steps_to_success": float(np.mean(steps)) if steps else None,
        "final_distance_mean": float(np.mean([r["final_distance"] for r in records])) if n else None,
        "min_distance_mean": float(np.mean([r["min_distance"] for r in records])) if n else None,
        "initial_distance_mean": float(np.mean([r["initial_distance"] for r in records])) if n else None,
        "plan_latency_s": {
            "mean": float(lat.mean()) if lat.size else None,
            "p50": float(np.percentile(lat, 50)) if lat.size else None,
            "p95": float(np.percentile(lat, 95)) if lat.size else None,
            "calls": int(lat.size),
        },
    }


def _read_results(path: Path, header: dict[str, Any]) -> list[dict[str, Any]]:
    """Episodes already finished in ``path``; raises if the file was written with other settings."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    if not lines:
        return []
    try:
        old = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: first line is not a JSON header ({exc}); move the file away and re-run"
        ) from exc
    if old.get("header") != header:
        raise ValueError(
            f"{path} was written by an evaluation with other settings; use another out_dir or delete the file"
        )
    records = []
    for i, line in enumerate(lines[1:], start=2):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            # A line cut by a kill is the only way to get here; everything before it is intact.
            if i != len(lines):
                raise ValueError(f"{path}: line {i} is corrupt; move the file away and re-run") from None
    return records


def _append(path: Path, lines: list[dict[str, Any]]) -> None:
    """Append JSON lines durably (flush + fsync) so a kill never loses a finished wave."""
    with path.open("a") as f:
        for rec in lines:
            f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run_closed_loop(
    agent: Agent,
    env_id: str,
    env_kwargs: dict[str, Any],
    specs: list[EpisodeSpec],
    settings: EvalSettings,
    out_dir: str | Path,
    method: str,
    header_extra: dict[str, Any] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run (or resume) ``specs`` with ``agent``; returns all episode records for ``method``."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"episodes_{method}.jsonl"
    header = {
        "method": method,
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "settings": asdict(settings),
        "episodes": len(specs),
        **(header_extra or {}),
    }
    header = json.loads(json.dumps(header, default=str))
    records = _read_results(path, header)
    if not path.exists() or path.stat().st_size == 0:
        _append(path, [{"header": header}])
    done = {r["episode"] for r in records}
    todo = [s for s in specs if s.index not in done]
    if not todo:
        return sorted(records, key=lambda r: r["episode"])
    batch = EnvBatch(env_id, env_kwargs, min(settings.num_envs, len(todo)))
    bar = tqdm(
        total=len(specs),
        initial=len(done),
        desc=f"eval {method}",
        unit="ep",
        disable=not progress,
        dynamic_ncols=True,
    )
    video: list[np.ndarray] = []
    try:
        for w in range(0, len(todo), batch.num_envs):
            wave = todo[w : w + batch.num_envs]
            record_video = w == 0 and not done and settings.video_episodes > 0
            new = _run_wave(agent, batch, wave, settings, video if record_video else None)
            _append(path, new)
            records.extend(new)
            bar.update(len(wave))
            rate = np.mean([r["success"] for r in records])
            bar.set_postfix(success=f"{rate:.0%}")
    finally:
        bar.close()
        batch.close()
    if video:
        from worldmodel.eval.media import write_video_grid

        write_video_grid(video, out / f"video_{method}.mp4", max_tiles=settings.video_episodes)
    return sorted(records, key=lambda r: r["episode"])


def _run_wave(
    agent: Agent,
    batch: EnvBatch,
    wave: list[EpisodeSpec],
    settings: EvalSettings,
    video: list[np.ndarray] | None,
) -> list[dict[str, Any]]:
    """Run one wave of up to B episodes to the step budget; returns their records."""
    n = len(wave)
    batch.reset(wave)
    agent.reset(batch, seed=wave[0].seed)
    goal_px = batch.goal_pixels() if video is not None else None
    init_dist = batch.distance()[:n].copy()
    reached_at: list[int | None] = [None] * n
    for i in range(n):
        if batch.success()[i]:
            reached_at[i] = 0
    min_dist = init_dist.copy()
    plan_times: list[list[float]] = [[] for _ in range(n)]
    dist_curve: list[list[float]] = [[float(d)] for d in init_dist]
    t = 0
    while t < settings.max_steps and batch.active[:n].any():
        t0 = time.perf_counter()
        chunk = agent.act(batch)  # (B, k, A)
        dt = time.perf_counter() - t0
        for i in range(n):
            if batch.active[i]:
                plan_times[i].append(dt)
        for j in range(chunk.shape[1]):
            if t >= settings.max_steps:
                break
            batch.step(chunk[:, j])
            t += 1
            succ, dist = batch.success()[:n], batch.distance()[:n]
            for i in range(n):
                if not batch.active[i]:
                    continue
                dist_curve[i].append(float(dist[i]))
                min_dist[i] = min(min_dist[i], dist[i])
                if succ[i] and reached_at[i] is None:
                    reached_at[i] = t
                if settings.stop_on_success and succ[i]:
                    batch.active[i] = False
            if video is not None and goal_px is not None:
                video.append(np.concatenate([batch.pixels, goal_px], axis=2))  # (B, H, 2W, 3)
    final_succ, final_dist = batch.success()[:n], batch.distance()[:n]
    return [
        {
            "episode": spec.index,
            "seed": spec.seed,
            "source": spec.source,
            "success": bool(final_succ[i]) or (settings.stop_on_success and reached_at[i] is not None),
            "reached": reached_at[i] is not None,
            "steps_to_success": reached_at[i],
            "initial_distance": float(init_dist[i]),
            "final_distance": float(final_dist[i]),
            "min_distance": float(min_dist[i]),
            "distance_curve": dist_curve[i],
            "plan_times_s": plan_times[i],
        }
        for i, spec in enumerate(wave)
    ]
