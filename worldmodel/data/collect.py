"""Parallel, resumable trajectory collection into one HDF5 file.

Each worker process owns one environment and writes every finished episode to its own shard file
(``.<out>.shards/ep_000042.npz``, renamed into place atomically). When all shards exist they are
assembled, in episode order, into the output file, which is itself written atomically. Killing a
collection at any moment and re-running the same command therefore loses no finished episode and
duplicates none, and no reader ever sees a half-written file. Episode i is always reset with a seed
derived from (seed, i), so the result does not depend on the number of workers or on interruptions.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.config.collect import CollectConfig as _SETTINGS  # the one default of each setting
from worldmodel.data.schema import SCHEMA_VERSION, DatasetError, DatasetMeta

log = logging.getLogger(__name__)

SHARD_KEYS = ("pixels", "actions", "proprio", "state", "success", "distance", "goal_state", "seed")
"""Keys of a single-camera shard; with the env option ``extra_cameras`` a shard holds ``pixels/<camera>`` per
camera (the main camera first) instead of ``pixels``, and the file is written as schema v2."""


@dataclass(frozen=True)
class CollectConfig:
    """What to collect; every field except out/workers/overwrite/keep_shards enters the fingerprint. Defaults are
    those of the typed settings (worldmodel.config.collect), the one place each is set."""

    env_id: str
    """Gymnasium id, e.g. ``wm/TwoRoom-v0``."""
    out: str
    """Output HDF5 path."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``gymnasium.make`` (image_size, action_repeat, ...)."""
    episodes: int = _SETTINGS.episodes
    """Number of episodes."""
    episode_length: int = _SETTINGS.episode_length
    """Environment steps per episode (frames = steps + 1)."""
    policy: str = _SETTINGS.policy
    """Scripted policy name from ``envs.policies`` ("explore", "random", or "expert" for envs with an expert)."""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Options for the policy's constructor (e.g. ``rest_prob`` of the TwoRoom/Reacher explorers)."""
    seed: int = _SETTINGS.seed
    """Base seed; episode i uses a seed derived from (seed, i)."""
    workers: int = _SETTINGS.workers
    """Worker processes; 0 = one per CPU core, 1 = collect in this process."""
    overwrite: bool = _SETTINGS.overwrite
    """Replace an existing output file that was collected with a different config."""
    compression: str | None = _SETTINGS.compression
    """HDF5 compression of the columns: "lzf" (fast), "gzip" (smaller) or None."""
    keep_shards: bool = _SETTINGS.keep_shards
    """Keep the per-episode shard folder after assembly (debugging)."""

    def fingerprint(self) -> str:
        """Hash of the fields that decide the data, so a resume never mixes two configs."""
        keys = ("env_id", "env_kwargs", "episode_length", "policy", "seed")
        fields = {k: getattr(self, k) for k in keys}
        if self.policy_kwargs:  # only when set, so data collected before the option keeps its fingerprint
            fields["policy_kwargs"] = self.policy_kwargs
        blob = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


def _make_env(cfg: CollectConfig) -> Any:
    """Build the environment without gymnasium's time limit (the collector counts steps itself)."""
    from envs.rendering import configure_headless

    configure_headless()
    import gymnasium

    import envs  # noqa: F401  (registers the wm/ environments)

    kwargs = dict(cfg.env_kwargs)
    kwargs.pop("max_episode_steps", None)
    return gymnasium.make(cfg.env_id, max_episode_steps=None, disable_env_checker=True, **kwargs)


def _episode_seeds(base_seed: int, index: int) -> tuple[int, np.random.Generator]:
    """(env reset seed, policy RNG) for episode ``index``: independent of worker and order."""
    ss = np.random.SeedSequence([int(base_seed), int(index)])
    env_seed = int(ss.generate_state(1, dtype=np.uint32)[0])
    return env_seed, np.random.default_rng(ss.spawn(1)[0])


def _worker_init(cfg: CollectConfig, shard_dir: str) -> None:
    from envs.policies import make_policy

    env = _make_env(cfg)
    _WORKER.update(cfg=cfg, env=env, shard_dir=Path(shard_dir), make_policy=make_policy)


def run_episode(env: Any, policy: Any, env_seed: int, length: int) -> dict[str, np.ndarray]:
    """Roll one episode of ``length`` steps; returns frame columns with length+1 rows.

    An env observing through extra cameras (``pixels/<name>`` observation keys) gives one ``pixels/<camera>``
    column per camera, the main one (``env.unwrapped.camera_name``) first; otherwise one ``pixels`` column."""
    obs, info = env.reset(seed=env_seed)
    policy.reset()
    base = env.unwrapped
    h, w, _ = obs["pixels"].shape
    a_dim = env.action_space.shape[0]
    n = length + 1
    cols = {
        "pixels": np.empty((n, h, w, 3), dtype=np.uint8),
        "actions": np.zeros((n, a_dim), dtype=np.float32),
        "proprio": np.empty((n, obs["proprio"].shape[0]), dtype=np.float32),
        "state": np.empty((n, base.state_dim), dtype=np.float64),
        "success": np.empty((n,), dtype=bool),
        "distance": np.empty((n,), dtype=np.float32),
    }
    extra = [k for k in obs if k.startswith("pixels/")]
    for k in extra:
        cols[k] = np.empty((n, *obs[k].shape), dtype=np.uint8)
    for t in range(n):
        cols["pixels"][t] = obs["pixels"]
        for k in extra:
            cols[k][t] = obs[k]
        cols["proprio"][t] = obs["proprio"]
        cols["state"][t] = base.get_state()
        cols["success"][t] = bool(info["success"])
        cols["distance"][t] = float(info["distance"])
        if t == length:
            break  # the last frame keeps a zero (padding) action
        action = np.asarray(policy(obs), dtype=np.float32)
        cols["actions"][t] = action
        obs, _, _, _, info = env.step(action)
    cols["goal_state"] = np.asarray(base.goal_state, dtype=np.float64)
    if extra:  # several cameras: name the main one, keeping it first (it is the file's default camera)
        main = f"pixels/{getattr(base, 'camera_name', 'main')}"
        cols = {main: cols.pop("pixels"), **cols}
    return cols


def _write_shard(shard_dir: Path, index: int, cols: dict[str, np.ndarray]) -> None:
    """Write one episode shard atomically (tmp file + rename)."""
    final = shard_dir / f"ep_{index:06d}.npz"
    tmp = shard_dir / f".ep_{index:06d}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **cols)
    os.replace(tmp, final)


def _worker_episode(index: int) -> tuple[int, int, bool]:
    cfg: CollectConfig = _WORKER["cfg"]
    env = _WORKER["env"]
    env_seed, rng = _episode_seeds(cfg.seed, index)
    policy = _WORKER["make_policy"](cfg.policy, env, rng, cfg.policy_kwargs)
    cols = run_episode(env, policy, env_seed, cfg.episode_length)
    cols["seed"] = np.int64(env_seed)
    _write_shard(_WORKER["shard_dir"], index, cols)
    return index, cfg.episode_length + 1, bool(cols["success"][-1])


# --------------------------------------------------------------------------- main side
def shard_dir_for(out: Path) -> Path:
    """Folder holding the finished-episode shards of an in-progress collection."""
    return out.with_name(f".{out.name}.shards")


def _existing_shards(shard_dir: Path, episodes: int) -> set[int]:
    """Indices of complete shards (temporary files from a killed worker are deleted)."""
    done: set[int] = set()
    for p in shard_dir.iterdir():
        if p.name.endswith(".tmp.npz"):
            p.unlink(missing_ok=True)
        elif p.name.startswith("ep_") and p.suffix == ".npz":
            i = int(p.stem[3:])
            if i < episodes:
                done.add(i)
    return done


def _prepare_shard_dir(cfg: CollectConfig, out: Path) -> Path:
    """Create or validate the shard folder; a folder from a different config is an error."""
    shard_dir = shard_dir_for(out)
    manifest = shard_dir / "manifest.json"
    fp = cfg.fingerprint()
    if shard_dir.exists():
        try:
            old = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("fingerprint") != fp:
            if not cfg.overwrite:
                raise DatasetError(
                    out,
                    f"an unfinished collection with a different config is in {shard_dir}",
                    "re-run with that config to finish it, pass overwrite=true to discard it, or choose another out",
                )
            shutil.rmtree(shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    if not manifest.exists():
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps({"fingerprint": fp, "config": asdict(cfg)}, indent=2, default=str))
        os.replace(tmp, manifest)
    return shard_dir


def _check_existing_output(cfg: CollectConfig, out: Path) -> bool:
    """True when ``out`` already holds this exact collection (nothing to do)."""
    if not out.exists():
        return False
    from worldmodel.data.reader import TrajectoryFile

    try:
        tf = TrajectoryFile(out)
        same = tf.meta.extra.get("fingerprint") == cfg.fingerprint() and tf.num_episodes == cfg.episodes
        tf.close()
    except DatasetError:
        same = False
    if same:
        return True
    if not cfg.overwrite:
        raise DatasetError(
            out,
            "exists and was not collected with this config (or is unreadable)",
            "pass overwrite=true to replace it, or choose another out path",
        )
    return False


def _remove_finished_shards(cfg: CollectConfig, out: Path) -> None:
    """Delete the shard folder of this collection (same fingerprint) once ``out`` holds it; others are kept."""
    shard_dir = shard_dir_for(out)
    try:
        fp = json.loads((shard_dir / "manifest.json").read_text()).get("fingerprint")
    except (OSError, json.JSONDecodeError, AttributeError):
        return
    if fp == cfg.fingerprint():
        shutil.rmtree(shard_dir, ignore_errors=True)


def _assemble(cfg: CollectConfig, out: Path, shard_dir: Path, meta: DatasetMeta) -> None:
    """Write all shards, in episode order, into the output file (atomic)."""
    from worldmodel.data.writer import TrajectoryWriter

    with TrajectoryWriter(out, meta, overwrite=True, compression=cfg.compression) as writer:
        for i in range(cfg.episodes):
            with np.load(shard_dir / f"ep_{i:06d}.npz") as z:
                pixels = [k for k in z.files if k.startswith("pixels/")] or ["pixels"]  # camera order as written
                cols = {k: z[k] for k in (*pixels, *SHARD_KEYS[1:])}
            seed, goal = int(cols.pop("seed")), cols.pop("goal_state")
            writer.append(cols, seed=seed, goal_state=goal)


def collect(cfg: CollectConfig, progress: bool = True) -> Path:
    """Collect ``cfg.episodes`` episodes into ``cfg.out``; resumes an interrupted run of the same config."""
    if cfg.episodes < 1 or cfg.episode_length < 1:
        raise ValueError(
            f"episodes and episode_length must be >= 1, got {cfg.episodes}, {cfg.episode_length}"
        )
    out = Path(cfg.out)
    if _check_existing_output(cfg, out):
        if progress:
            log.info("%s: already holds %d episodes of this config; nothing to do", out, cfg.episodes)
        if not cfg.keep_shards:  # a kill between the final rename and the shard folder's removal left it
            _remove_finished_shards(cfg, out)
        return out
    probe = _make_env(cfg)
    try:
        from envs.policies import make_policy

        make_policy(cfg.policy, probe, np.random.default_rng(0), cfg.policy_kwargs)  # bad options fail here, early
        base = probe.unwrapped
        meta = DatasetMeta(
            schema_version=SCHEMA_VERSION,
            env_id=cfg.env_id,
            env_kwargs=dict(cfg.env_kwargs),
            action_low=np.asarray(probe.action_space.low, dtype=np.float32),
            action_high=np.asarray(probe.action_space.high, dtype=np.float32),
            control_dt=float(base.control_dt),
            policy=cfg.policy,
            seed=cfg.seed,
            extra={
                "fingerprint": cfg.fingerprint(),
                "episode_length": cfg.episode_length,
                "policy_kwargs": dict(cfg.policy_kwargs),
                "collected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
    finally:
        probe.close()
    shard_dir = _prepare_shard_dir(cfg, out)
    todo = sorted(set(range(cfg.episodes)) - _existing_shards(shard_dir, cfg.episodes))
    workers = cfg.workers if cfg.workers > 0 else (os.cpu_count() or 1)
    workers = max(1, min(workers, len(todo))) if todo else 1
    if todo:
        _run_workers(cfg, shard_dir, todo, workers, progress, resumed=cfg.episodes - len(todo))
    for stale in out.parent.glob(f".{glob.escape(out.name)}.tmp-*"):  # a kill while assembling left it
        stale.unlink(missing_ok=True)
    _assemble(cfg, out, shard_dir, meta)
    if not cfg.keep_shards:
        shutil.rmtree(shard_dir, ignore_errors=True)
    return out


def _run_workers(
    cfg: CollectConfig, shard_dir: Path, todo: list[int], workers: int, progress: bool, resumed: int
) -> None:
    """Run the missing episodes on ``workers`` processes (or inline for one worker)."""
    from tqdm import tqdm

    bar = tqdm(
        total=cfg.episodes,
        initial=resumed,
        desc=f"collect {cfg.env_id}",
        unit="ep",
        disable=not progress,
        dynamic_ncols=True,
    )
    steps = 0
    t0 = time.perf_counter()
    try:
        if workers == 1:
            _worker_init(cfg, str(shard_dir))
            try:
                for i in todo:
                    _, n, _ = _worker_episode(i)
                    steps += n - 1
                    bar.update(1)
                    bar.set_postfix(steps_per_s=f"{steps / (time.perf_counter() - t0):.0f}")
            finally:
                _WORKER.pop("env").close()
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_worker_init, initargs=(cfg, str(shard_dir))) as pool:
                for _, n, _ in pool.imap_unordered(_worker_episode, todo, chunksize=1):
                    steps += n - 1
                    bar.update(1)
                    bar.set_postfix(steps_per_s=f"{steps / (time.perf_counter() - t0):.0f}")
    finally:
        bar.close()
