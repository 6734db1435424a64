"""The closed-loop harness: run an agent on batched evaluation episodes, one JSONL line per episode.

Episodes run in waves of B environments (one planner call plans for all of them). Waves are fixed by
episode position: wave w holds episodes ``[w*B, (w+1)*B)`` and is always run on a batch of
``B = min(num_envs, episodes)`` environments, seeded by its first episode. An episode's record is
therefore a function of (episode, num_envs) alone, whichever process, shard or resumed run computes it.

Finished episodes are appended to ``episodes_<method>.jsonl`` (flushed and fsynced) as each wave ends, so
an interrupted evaluation resumes at the first unfinished wave; a results file made with other settings
is refused. With a :class:`Shard` the process runs only waves ``shard.index, shard.index + count, ...``
into ``episodes_<method>.shard<i>of<n>.jsonl``; ``worldmodel.eval.shard`` merges the shards.
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

from worldmodel.config.eval import EvalConfig
from worldmodel.eval.agents import Agent
from worldmodel.eval.episodes import EnvBatch, EpisodeSpec


@dataclass(frozen=True)
class Shard:
    """This process's part of a sharded evaluation: waves ``index, index + count, index + 2*count, ...``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (isinstance(self.index, int) and isinstance(self.count, int) and 0 <= self.index < self.count):
            raise ValueError(f"shard index must be in [0, count), got index={self.index} count={self.count}")

    @property
    def suffix(self) -> str:
        """File-name infix of this shard's outputs, e.g. ``.shard0of2``."""
        return f".shard{self.index}of{self.count}"

    def as_dict(self) -> dict[str, int]:
        """``{"index": i, "count": n}`` (the results-file header's ``shard`` entry)."""
        return {"index": self.index, "count": self.count}


def waves(num_episodes: int, num_envs: int) -> list[list[int]]:
    """Episode positions of every wave: ``[[0..B-1], [B..2B-1], ...]`` with ``B = min(num_envs, episodes)``."""
    b = max(1, min(int(num_envs), int(num_episodes)))
    return [list(range(w, min(w + b, num_episodes))) for w in range(0, num_episodes, b)]


def shard_waves(num_episodes: int, num_envs: int, shard: Shard | None) -> list[tuple[int, list[int]]]:
    """(wave index, episode positions) of the waves ``shard`` runs (all of them for ``None``)."""
    all_waves = list(enumerate(waves(num_episodes, num_envs)))
    if shard is None:
        return all_waves
    return [(w, pos) for w, pos in all_waves if w % shard.count == shard.index]


def shard_episodes(num_episodes: int, num_envs: int, shard: Shard | None) -> list[int]:
    """Episode positions ``shard`` runs, in order."""
    return [p for _, pos in shard_waves(num_episodes, num_envs, shard) for p in pos]


EvalSettings = EvalConfig
"""How episodes are run (``eval.*``; worldmodel/config/eval.py); part of every results file's header."""


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


def read_results(path: Path, header: dict[str, Any] | None = None) -> tuple[dict[str, Any] | None, list[dict]]:
    """(header, records) of a results file; ``(None, [])`` when it is missing or empty.

    Raises if ``header`` is given and differs, or if a line other than the last is corrupt (a cut last line,
    the trace of a kill mid-write, is dropped).
    """
    if not path.exists():
        return None, []
    lines = path.read_text().splitlines()
    if not lines:
        return None, []
    try:
        old = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: first line is not a JSON header ({exc}); move the file away and re-run") from exc
    if not isinstance(old, dict) or "header" not in old:
        raise ValueError(f"{path}: first line is not a results header; move the file away and re-run")
    if header is not None and old["header"] != header:
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
    return old["header"], records


def write_results(path: Path, header: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """Write a whole results file atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with tmp.open("w") as f:
        for rec in [{"header": header}, *records]:
            f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
    shard: Shard | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) ``specs`` with ``agent``; returns the episode records for ``method`` (this shard's only,
    when ``shard`` is given: pass every spec, the shard picks its waves)."""
    from tqdm import tqdm

    if shard is not None and shard.count == 1:
        shard = None
    if shard is not None and [s.index for s in specs] != list(range(len(specs))):
        raise ValueError("sharded evaluation needs episode specs indexed 0..N-1 in order")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"episodes_{method}{shard.suffix if shard else ''}.jsonl"
    header = {
        "method": method,
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "settings": asdict(settings),
        "episodes": len(specs),
        **(header_extra or {}),
        **({"shard": shard.as_dict()} if shard else {}),
    }
    header = json.loads(json.dumps(header, default=str))
    plan = shard_waves(len(specs), settings.num_envs, shard)
    mine = {specs[p].index for _, pos in plan for p in pos}
    for stale in out.glob(f".{path.name}.*"):  # a kill mid-write_results; this process is the file's only writer
        stale.unlink(missing_ok=True)
    video_path = out / f"video_{method}.mp4"
    if any(w == 0 for w, _ in plan):  # wave 0's owner is the video's only writer: drop its cut temporary file
        for stale in out.glob(f".{video_path.name}.*.tmp.mp4"):
            stale.unlink(missing_ok=True)
    old_header, found = read_results(path, header)
    # Keep whole waves only: a wave cut by a kill is re-run from its start (its seed is its first episode's).
    by_ep: dict[int, dict[str, Any]] = {}
    for r in found:
        if r["episode"] not in mine or r["episode"] in by_ep:
            raise ValueError(f"{path}: unexpected or repeated episode {r['episode']}; move the file away and re-run")
        by_ep[r["episode"]] = r
    done_waves = {w for w, pos in plan if all(specs[p].index in by_ep for p in pos)}
    records = [by_ep[specs[p].index] for w, pos in plan if w in done_waves for p in pos]
    if old_header is None or len(records) != len(found) or not _ends_clean(path):
        write_results(path, header, records)  # new file, or drop a cut wave / a half-written last line
    todo = [(w, pos) for w, pos in plan if w not in done_waves]
    if not todo:
        return sorted(records, key=lambda r: r["episode"])
    batch = EnvBatch(env_id, env_kwargs, len(waves(len(specs), settings.num_envs)[0]))
    label = f"eval {method}" + (f" [shard {shard.index} of {shard.count}]" if shard else "")
    bar = tqdm(total=len(mine), initial=len(records), desc=label, unit="ep", disable=not progress, dynamic_ncols=True)
    video: list[np.ndarray] = []
    try:
        for w, pos in todo:
            wave = [specs[p] for p in pos]
            record_video = w == 0 and settings.video_episodes > 0
            new = _run_wave(agent, batch, wave, settings, video if record_video else None)
            if video:  # before the wave's records: committed records of wave 0 imply its video exists
                _write_video(video, video_path, settings.video_episodes)
                video = []
            _append(path, new)
            records.extend(new)
            rate = np.mean([r["success"] for r in records])  # set before the update, so the line that first
            bar.set_postfix(success=f"{rate:.0%}", refresh=False)  # shows 100% (what a log mirror keeps) is final
            bar.update(len(wave))
    finally:
        bar.close()
        batch.close()
    return sorted(records, key=lambda r: r["episode"])


def _write_video(frames: list[np.ndarray], path: Path, max_tiles: int) -> None:
    """Write the video grid atomically (temporary file beside it, then rename)."""
    from worldmodel.eval.media import write_video_grid

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")  # ends in .mp4: the writer picks ffmpeg by it
    try:
        write_video_grid(frames, tmp, max_tiles=max_tiles)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _ends_clean(path: Path) -> bool:
    """Whether the file ends with a newline (no half-written line to append after)."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


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
