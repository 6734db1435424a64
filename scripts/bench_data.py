"""Benchmark data throughput: rendered env steps/s (one worker and the parallel collector), random
clip reads/s from the chunked HDF5 file against a naive per-frame reader of an unchunked file, and random
clip reads/s decoded straight from a LeRobot mp4 dataset (v3.0 layout, the collected episodes exported to it)
against the HDF5 file the importer converts it to.

    python scripts/bench_data.py [--env wm/TwoRoom-v0] [--episodes 40] [--length 100] [--workers 2] [--quick]
    python scripts/bench_data.py --lerobot-only [--quick]     # only the LeRobot mp4 vs converted HDF5 reads

Every ratio is against a reference measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from scripts.common import ArgumentParser, positive_int, setup_headless, user_errors_exit

setup_headless()

import h5py  # noqa: E402
import numpy as np  # noqa: E402


def bench_env_steps(env_id: str, steps: int, image_size: int) -> float:
    """Rendered steps per second of one environment in this process (scripted explore policy)."""
    import gymnasium

    import envs  # noqa: F401
    from envs.policies import make_policy

    env = gymnasium.make(env_id, image_size=image_size, max_episode_steps=None, disable_env_checker=True)
    policy = make_policy("explore", env, np.random.default_rng(0))
    obs, _ = env.reset(seed=0)
    policy.reset()
    for _ in range(20):  # warm up the renderer
        obs, *_ = env.step(policy(obs))
    t0 = time.perf_counter()
    for _ in range(steps):
        obs, *_ = env.step(policy(obs))
    dt = time.perf_counter() - t0
    env.close()
    return steps / dt


def bench_collector(env_id: str, episodes: int, length: int, workers: int, out: Path) -> tuple[float, float]:
    """(collection steps/s, end-to-end steps/s incl. assembling the HDF5 file) of the parallel collector."""
    from worldmodel.data.collect import CollectConfig, _prepare_shard_dir, _run_workers, collect

    cfg = CollectConfig(
        env_id=env_id, out=str(out), episodes=episodes, episode_length=length, workers=workers
    )
    t0 = time.perf_counter()
    collect(cfg, progress=False)
    total = time.perf_counter() - t0
    # Time the worker phase alone on a fresh shard folder (no assembly), same config.
    cfg2 = CollectConfig(
        env_id=env_id,
        out=str(out.with_name("c2.h5")),
        episodes=episodes,
        episode_length=length,
        workers=workers,
    )
    shard_dir = _prepare_shard_dir(cfg2, Path(cfg2.out))
    t0 = time.perf_counter()
    _run_workers(cfg2, shard_dir, list(range(episodes)), workers, progress=False, resumed=0)
    workers_only = time.perf_counter() - t0
    steps = episodes * length
    return steps / workers_only, steps / total


def write_unchunked_copy(src: Path, dst: Path) -> None:
    """Same data, contiguous and uncompressed: the layout a naive script writes."""
    with h5py.File(src, "r") as fs, h5py.File(dst, "w") as fd:
        for k in fs:
            fd.create_dataset(k, data=fs[k][:])
        for k, v in fs.attrs.items():
            fd.attrs[k] = v


def naive_clip(f: h5py.File, g: int, t: int) -> dict[str, np.ndarray]:
    """Per-frame reads (one HDF5 read per frame and column), as a simple loader does."""
    px = np.stack([f["pixels"][g + i] for i in range(t)])
    acts = np.stack([f["actions"][g + i] for i in range(t - 1)])
    pro = np.stack([f["proprio"][g + i] for i in range(t)])
    st = np.stack([f["state"][g + i] for i in range(t)])
    return {"pixels": px, "actions": acts, "proprio": pro, "state": st}


def bench_clip_reads(path: Path, naive_path: Path, clip_len: int, n: int) -> dict[str, float]:
    """Random clip reads per second: ClipDataset (chunked, on disk and in memory) vs the naive reader."""
    from worldmodel.data.clips import ClipDataset

    ds = ClipDataset(path, clip_len=clip_len, split="all")
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(ds), size=n)
    ds[0]
    t0 = time.perf_counter()
    for i in idx:
        ds[int(i)]
    ours = n / (time.perf_counter() - t0)

    mem = ClipDataset(path, clip_len=clip_len, split="all", in_memory=True)
    t0 = time.perf_counter()
    for i in idx:
        mem[int(i)]
    in_mem = n / (time.perf_counter() - t0)

    starts = [int(ds.file.episode_starts[ds.locate(int(i))[0]]) + ds.locate(int(i))[1] for i in idx]
    with h5py.File(naive_path, "r") as f:
        naive_clip(f, starts[0], clip_len)
        t0 = time.perf_counter()
        for g in starts:
            naive_clip(f, g, clip_len)
        naive = n / (time.perf_counter() - t0)
    return {"chunked": ours, "in_memory": in_mem, "naive": naive}


def bench_lerobot_reads(path: Path, tmp: Path, clip_len: int, n: int) -> dict[str, float]:
    """Random clip reads/s decoded from the LeRobot mp4 dataset (seek + decode T frames + table rows, checked
    against the timestamps) vs ClipDataset on the converted HDF5 file, over the same clips."""
    from worldmodel.data.clips import ClipDataset
    from worldmodel.data.importers import ImportSpec, import_dataset
    from worldmodel.data.importers.lerobot_export import export_trajectory_file
    from worldmodel.data.importers.lerobot_source import LeRobotSource

    root = export_trajectory_file(path, tmp / "lerobot", version="v3.0", episodes_per_file=10)
    keys = {"pixels": None, "action": "action", "proprio": "observation.state", "timestamp": "timestamp"}
    spec = ImportSpec.from_dict(
        {"source": str(root), "out": str(tmp / "converted.h5"), "format": "lerobot", "keys": keys}
    )
    t0 = time.perf_counter()
    import_dataset(spec)
    convert_s = time.perf_counter() - t0
    ds = ClipDataset(spec.out, clip_len=clip_len, split="all")
    idx = np.random.default_rng(1).integers(0, len(ds), size=n)
    src = LeRobotSource(spec)
    cam = src.camera_keys[0]  # observation.images.main

    def mp4_clip(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ep, start = ds.locate(i)
        ref = src.episodes[ep]
        px = src.read_frames(ref, cam, start, start + clip_len)  # (T, H, W, 3)
        acts = src.read(ref, "action")[start : start + clip_len - 1]  # table rows; the last parquet file is cached
        return px, acts, src.read(ref, "observation.state")[start : start + clip_len]

    mp4_clip(int(idx[0]))
    ds[int(idx[0])]
    t0 = time.perf_counter()
    for i in idx:
        mp4_clip(int(i))
    mp4 = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in idx:
        ds[int(i)]
    h5 = n / (time.perf_counter() - t0)
    mp4_mb = sum(f.stat().st_size for f in (root / "videos").rglob("*.mp4")) / 2**20
    h5_mb = Path(spec.out).stat().st_size / 2**20
    return {"mp4": mp4, "hdf5": h5, "convert_s": convert_s, "mp4_mb": mp4_mb, "h5_mb": h5_mb}


def print_lerobot(r: dict[str, float], clip_len: int, reads: int) -> None:
    """One line per figure of the LeRobot comparison."""
    print(
        f"LeRobot clip reads/s (T={clip_len}, {reads} random clips): mp4 decode {r['mp4']:8.1f} | "
        f"converted HDF5 {r['hdf5']:8.1f}"
    )
    print(
        f"ratio converted-HDF5/mp4: {r['hdf5'] / r['mp4']:.1f}x; conversion took {r['convert_s']:.1f} s; "
        f"size mp4 {r['mp4_mb']:.2f} MB vs HDF5 {r['h5_mb']:.2f} MB"
    )


def check_env_id(env_id: str) -> None:
    """ValueError naming the registered wm/* environments when ``env_id`` is not a registered one."""
    import gymnasium

    import envs  # noqa: F401  (registers wm/* environments)

    if env_id not in gymnasium.registry:
        ours = sorted(k for k in gymnasium.registry if k.startswith("wm/"))
        raise ValueError(f"--env {env_id!r} is not a registered environment; use one of {', '.join(ours)}")


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Parse and check the arguments, then run the three measurements and print them."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="wm/TwoRoom-v0")
    parser.add_argument("--episodes", type=positive_int, default=40)
    parser.add_argument("--length", type=positive_int, default=100)
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1)
    parser.add_argument("--image-size", type=positive_int, default=64)
    parser.add_argument("--clip-len", type=positive_int, default=8)
    parser.add_argument("--reads", type=positive_int, default=2000)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--lerobot-only", action="store_true", help="only the LeRobot mp4 vs converted HDF5 reads")
    parser.add_argument("--lerobot-reads", type=positive_int, default=300, help="random clips read from mp4")
    args = parser.parse_args(argv)
    if args.quick:
        args.episodes, args.length, args.reads, args.lerobot_reads = 8, 50, 300, 100
    if args.clip_len > args.length + 1:
        parser.error(f"--clip-len {args.clip_len} is longer than an episode ({args.length} steps + 1 frames)")
    check_env_id(args.env)

    print(
        f"bench_data: env={args.env} image={args.image_size}px workers={args.workers} cpus={os.cpu_count()}"
    )
    if args.lerobot_only:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "bench.h5"
            from worldmodel.data.collect import CollectConfig, collect

            env_kwargs = {"image_size": args.image_size}
            cfg = CollectConfig(args.env, str(out), env_kwargs, args.episodes, args.length, workers=args.workers)
            collect(cfg, progress=False)
            r = bench_lerobot_reads(out, Path(tmp), args.clip_len, args.lerobot_reads)
            print_lerobot(r, args.clip_len, args.lerobot_reads)
        return
    per_worker = bench_env_steps(args.env, 2000 if not args.quick else 300, args.image_size)
    print(f"env steps/s, one process (rendered {args.image_size}x{args.image_size}): {per_worker:8.0f}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.h5"
        coll, e2e = bench_collector(args.env, args.episodes, args.length, args.workers, out)
        print(
            f"collector steps/s, {args.workers} workers (episodes only):   {coll:8.0f}  "
            f"({coll / per_worker:.2f}x one process)"
        )
        print(f"collector steps/s, end to end incl. HDF5 assembly:     {e2e:8.0f}")
        naive_path = Path(tmp) / "naive.h5"
        write_unchunked_copy(out, naive_path)
        r = bench_clip_reads(out, naive_path, args.clip_len, args.reads)
        print(
            f"clip reads/s (T={args.clip_len}): chunked HDF5 {r['chunked']:8.0f} | in-memory {r['in_memory']:8.0f}"
            f" | naive per-frame unchunked {r['naive']:8.0f}"
        )
        print(
            f"ratio chunked/naive: {r['chunked'] / r['naive']:.1f}x  (target >= 5x); "
            f"in-memory/naive: {r['in_memory'] / r['naive']:.1f}x"
        )
        print(f"collector target >= 1000 steps/s: {'met' if coll >= 1000 else 'NOT met'} ({coll:.0f})")
        r = bench_lerobot_reads(out, Path(tmp), args.clip_len, args.lerobot_reads)
        print_lerobot(r, args.clip_len, args.lerobot_reads)


if __name__ == "__main__":
    main()
