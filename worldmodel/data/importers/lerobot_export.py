"""Write episodes as a LeRobot dataset folder (v2.1 or v3.0 layout) with pyarrow and PyAV.

Used by the tests and the benchmark to build LeRobot datasets without the ``lerobot`` package, and to hand
our trajectories to LeRobot tooling. The layout is the one ``lerobot_source`` reads (see its docstring).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

V21_DATA = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V30_DATA = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V30_VIDEO = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V30_EPISODES = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"


def write_mp4(path: Path, frames: np.ndarray, fps: int, pts: list[int] | None = None, crf: int = 18) -> None:
    """Encode uint8 (n, H, W, 3) frames as H.264 mp4; frame i is shown at ``pts[i] / fps`` s (default i / fps)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    pts = list(range(len(frames))) if pts is None else list(pts)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.options = {"crf": str(crf), "g": "4", "bf": "0"}
        for img, p in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = int(p)
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _table(rows: dict[str, np.ndarray]) -> Any:
    """A pyarrow table: (n, D) arrays become fixed-size lists (as LeRobot stores vectors), (n,) scalars."""
    import pyarrow as pa

    cols = {}
    for k, v in rows.items():
        v = np.asarray(v)
        if v.ndim == 2:
            flat = pa.array(v.reshape(-1))
            cols[k] = pa.FixedSizeListArray.from_arrays(flat, v.shape[1])
        else:
            cols[k] = pa.array(v)
    return pa.table(cols)


def _features(ep: dict[str, np.ndarray], cameras: list[str], fps: int) -> dict[str, Any]:
    """meta/info.json features of an episode dict."""
    feats: dict[str, Any] = {}
    for k in cameras:
        h, w = ep[k].shape[1:3]
        feats[k] = {
            "dtype": "video",
            "shape": [int(h), int(w), 3],
            "names": ["height", "width", "channels"],
            "info": {"video.fps": fps, "video.codec": "h264", "video.pix_fmt": "yuv420p"},
        }
    for k, v in ep.items():
        if k not in cameras:
            feats[k] = {"dtype": str(np.asarray(v).dtype), "shape": [int(np.asarray(v).shape[1])], "names": None}
    for k, dt in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64")):
        feats[k] = {"dtype": dt, "shape": [1], "names": None}
    feats["index"] = {"dtype": "int64", "shape": [1], "names": None}
    feats["task_index"] = {"dtype": "int64", "shape": [1], "names": None}
    return feats


def _rows(ep: dict[str, np.ndarray], cameras: list[str], e: int, first_index: int, fps: int) -> dict[str, np.ndarray]:
    n = len(ep[cameras[0]])
    rows = {k: np.asarray(v) for k, v in ep.items() if k not in cameras}
    rows["timestamp"] = (np.arange(n) / fps).astype(np.float32)
    rows["frame_index"] = np.arange(n, dtype=np.int64)
    rows["episode_index"] = np.full(n, e, np.int64)
    rows["index"] = np.arange(first_index, first_index + n, dtype=np.int64)
    rows["task_index"] = np.zeros(n, np.int64)
    return rows


def write_lerobot(
    root: str | Path,
    episodes: list[dict[str, np.ndarray]],
    cameras: list[str],
    fps: int = 10,
    version: str = "v3.0",
    episodes_per_file: int = 2,
    task: str = "reach the goal",
) -> Path:
    """Write ``episodes`` (dicts: each camera key -> uint8 (T, H, W, 3), every other key -> (T, D) table column)
    as a LeRobot dataset in the v2.1 or v3.0 layout. v3.0 packs ``episodes_per_file`` episodes per parquet and
    per mp4 file. Returns the root folder."""
    import pyarrow.parquet as pq

    root = Path(root)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    lengths = [len(ep[cameras[0]]) for ep in episodes]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    info: dict[str, Any] = {
        "codebase_version": version,
        "robot_type": "sim",
        "total_episodes": len(episodes),
        "total_frames": int(sum(lengths)),
        "total_tasks": 1,
        "fps": fps,
        "chunks_size": 1000,
        "splits": {"train": f"0:{len(episodes)}"},
        "features": _features(episodes[0], cameras, fps),
    }
    if version.startswith("v2."):
        info.update(data_path=V21_DATA, video_path=V21_VIDEO, total_chunks=1, total_videos=len(episodes) * len(cameras))
        meta_eps = []
        for e, ep in enumerate(episodes):
            kw = {"episode_chunk": 0, "episode_index": e}
            path = root / V21_DATA.format(**kw)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(_table(_rows(ep, cameras, e, int(starts[e]), fps)), path)
            for k in cameras:
                write_mp4(root / V21_VIDEO.format(video_key=k, **kw), ep[k], fps)
            meta_eps.append({"episode_index": e, "tasks": [task], "length": lengths[e]})
        (root / "meta" / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in meta_eps))
        (root / "meta" / "tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": task}) + "\n")
    else:
        info.update(data_path=V30_DATA, video_path=V30_VIDEO, data_files_size_in_mb=100, video_files_size_in_mb=500)
        _write_v30(root, episodes, cameras, fps, episodes_per_file, task, lengths, starts)
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    return root


def _write_v30(
    root: Path,
    episodes: list[dict[str, np.ndarray]],
    cameras: list[str],
    fps: int,
    per_file: int,
    task: str,
    lengths: list[int],
    starts: np.ndarray,
) -> None:
    """Data and video files holding ``per_file`` episodes each, the episodes table and tasks.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta: dict[str, list[Any]] = {"episode_index": [], "tasks": [], "length": []}
    for extra in ("data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index"):
        meta[extra] = []
    for k in cameras:
        for p in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
            meta[f"videos/{k}/{p}"] = []
    for f0 in range(0, len(episodes), per_file):
        ids = list(range(f0, min(f0 + per_file, len(episodes))))
        file_index = f0 // per_file
        parts = [_rows(episodes[e], cameras, e, int(starts[e]), fps) for e in ids]
        table = pa.concat_tables([_table(p) for p in parts])
        path = root / V30_DATA.format(chunk_index=0, file_index=file_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        for k in cameras:
            frames = np.concatenate([episodes[e][k] for e in ids])
            write_mp4(root / V30_VIDEO.format(video_key=k, chunk_index=0, file_index=file_index), frames, fps)
        offset = 0
        for e in ids:
            meta["episode_index"].append(e)
            meta["tasks"].append([task])
            meta["length"].append(lengths[e])
            meta["data/chunk_index"].append(0)
            meta["data/file_index"].append(file_index)
            meta["dataset_from_index"].append(int(starts[e]))
            meta["dataset_to_index"].append(int(starts[e]) + lengths[e])
            for k in cameras:
                meta[f"videos/{k}/chunk_index"].append(0)
                meta[f"videos/{k}/file_index"].append(file_index)
                meta[f"videos/{k}/from_timestamp"].append(offset / fps)
                meta[f"videos/{k}/to_timestamp"].append((offset + lengths[e]) / fps)
            offset += lengths[e]
    path = root / V30_EPISODES.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(meta), path)
    pq.write_table(pa.table({"task_index": [0], "task": [task]}), root / "meta" / "tasks.parquet")


def export_trajectory_file(
    path: str | Path, root: str | Path, version: str = "v3.0", episodes_per_file: int = 10
) -> Path:
    """Our trajectory file as a LeRobot dataset: every camera as ``observation.images.<camera>`` (mp4),
    proprio as ``observation.state``, actions as ``action``, state as ``observation.environment_state``;
    fps from the file's control_dt. Returns the dataset's root folder."""
    from worldmodel.data.reader import TrajectoryFile

    tf = TrajectoryFile(path)
    keys = [f"observation.images.{c}" for c in tf.cameras]
    eps = []
    for i in range(tf.num_episodes):
        s, n = int(tf.episode_starts[i]), int(tf.episode_lengths[i])
        ep = {k: tf.read_pixels(s, s + n, c) for k, c in zip(keys, tf.cameras)}
        ep["observation.state"] = tf.read("proprio", s, s + n)
        ep["observation.environment_state"] = tf.read("state", s, s + n).astype(np.float32)
        ep["action"] = tf.read("actions", s, s + n)
        eps.append(ep)
    fps = max(1, round(1.0 / tf.meta.control_dt))
    return write_lerobot(root, eps, keys, fps=fps, version=version, episodes_per_file=episodes_per_file)
