"""LeRobot dataset folders as an import source, read with pyarrow and PyAV (the ``lerobot`` package is not needed).

Two layouts are in use (``meta/info.json`` ``codebase_version`` says which):

* v2.0 / v2.1: ``meta/episodes.jsonl`` (episode_index, length, tasks), ``meta/tasks.jsonl``; one parquet per
  episode (``data_path``, e.g. ``data/chunk-000/episode_000003.parquet``) and one mp4 per episode and camera
  (``video_path``, e.g. ``videos/chunk-000/observation.images.top/episode_000003.mp4``).
* v3.0: ``meta/episodes/chunk-XXX/file-XXX.parquet`` (per episode: ``data/chunk_index``, ``data/file_index``,
  ``dataset_from_index``, ``dataset_to_index``, ``videos/<camera>/{chunk_index,file_index,from_timestamp,
  to_timestamp}``), ``meta/tasks.parquet``; parquet files holding many episodes (``data/chunk-XXX/file-XXX.parquet``)
  and mp4 files holding many episodes back to back (``videos/<camera>/chunk-XXX/file-XXX.mp4``).

Cameras are the features of dtype ``video``. A camera's frames of one episode are decoded from the episode's
``from_timestamp`` on and checked one by one against the table's ``timestamp`` column: a dropped, duplicated or
extra frame is a DatasetError naming the episode, the camera and the time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.data.importers.sources import EpisodeRef, split_optional
from worldmodel.data.importers.spec import ImportSpec
from worldmodel.data.schema import DatasetError, check_camera_name

CAMERA_PREFIX = "observation.images."
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
"""Table columns every LeRobot dataset has; not listed as unused."""


def camera_name(key: str) -> str:
    """Our camera name of a LeRobot video feature: the key without ``observation.images.``."""
    return key[len(CAMERA_PREFIX) :] if key.startswith(CAMERA_PREFIX) and len(key) > len(CAMERA_PREFIX) else key


@dataclass
class _Video:
    """One camera's frames of one episode: the mp4 file and the episode's time window in it."""

    path: Path
    start: float  # seconds: from_timestamp (0 in v2.x)
    stop: float  # seconds: to_timestamp (inf in v2.x: the file is the episode)
    last_in_file: bool = True  # no later episode in this file: frames after ``stop`` are extra frames


@dataclass
class _Episode:
    """Where one episode's rows and frames are."""

    index: int
    length: int
    data_path: Path
    videos: dict[str, _Video] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)


def _fail_folder(root: Path, problem: str) -> DatasetError:
    return DatasetError(
        root,
        f"not a LeRobot dataset folder: {problem}",
        "give the dataset's root folder (the one holding meta/info.json, data/ and videos/)",
    )


def load_info(root: Path) -> dict[str, Any]:
    """meta/info.json, checked for the fields this reader uses; DatasetError when the folder is not a dataset."""
    if not root.is_dir():
        raise _fail_folder(root, "no such folder")
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise _fail_folder(root, "meta/info.json is missing")
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(path, f"not valid JSON ({exc})", "the dataset is damaged; download it again") from exc
    missing = [k for k in ("codebase_version", "fps", "features", "data_path") if k not in info]
    if missing:
        raise DatasetError(path, f"missing field(s) {missing}", "this is not a LeRobot v2.x/v3.0 info.json")
    version = str(info["codebase_version"])
    if not (version.startswith("v2.") or version.startswith("v3.")):
        raise DatasetError(
            path,
            f"codebase_version {version!r} is not supported (this reader knows v2.0, v2.1 and v3.0)",
            "convert the dataset with lerobot's conversion scripts",
        )
    return info


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; DatasetError naming the line when one is not JSON."""
    if not path.is_file():
        raise DatasetError(path, "file is missing", "the dataset is incomplete; download it again")
    rows = []
    for i, line in enumerate(path.read_text().splitlines()):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(path, f"line {i + 1} is not JSON ({exc})") from exc
    return rows


def _read_parquet(path: Path) -> Any:
    """A pyarrow Table; DatasetError when the file is missing or unreadable."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DatasetError(path, "parquet file is missing", "the dataset is incomplete; download it again")
    try:
        return pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for damaged files
        raise DatasetError(path, f"cannot read parquet ({exc})", "the file is damaged; download it again") from exc


def column_to_numpy(col: Any) -> np.ndarray:
    """A pyarrow column (scalars, or fixed/variable-size lists of numbers of one length) as a numpy array."""
    import pyarrow as pa

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_list(arr.type) or pa.types.is_fixed_size_list(arr.type) or pa.types.is_large_list(arr.type):
        n = len(arr)
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(n, -1) if n else flat.reshape(0, 0)
    return arr.to_numpy(zero_copy_only=False)


class LeRobotSource:
    """Episodes of a LeRobot dataset folder (v2.x or v3.0): table columns by name, cameras decoded from mp4."""

    def __init__(self, spec: ImportSpec) -> None:
        self.root = Path(spec.source)
        self.path = str(self.root)
        self.info = load_info(self.root)
        self.version = str(self.info["codebase_version"])
        self.fps = float(self.info["fps"])
        if not self.fps > 0:
            raise DatasetError(self.root / "meta/info.json", f"fps must be positive, found {self.info['fps']}")
        self.tolerance = 0.25 / self.fps  # a dropped or duplicated frame shifts time by 1/fps
        feats: dict[str, Any] = self.info["features"]
        self.video_keys = [k for k, f in feats.items() if isinstance(f, dict) and f.get("dtype") == "video"]
        self.camera_keys = self._pick_cameras(spec, feats)
        self.cameras = [(camera_name(k), k) for k in self.camera_keys]
        for name, _ in self.cameras:
            try:
                check_camera_name(name)
            except ValueError as exc:
                raise DatasetError(self.root, str(exc)) from None
        if len({n for n, _ in self.cameras}) != len(self.cameras):
            raise DatasetError(
                self.root, f"cameras {self.camera_keys} give repeated names {[n for n, _ in self.cameras]}"
            )
        self.image_range = "byte"  # decoded video frames are uint8
        self._episodes = self._load_episodes()
        self.episodes = [
            EpisodeRef(j, f"episode {e.index}", group=str(e.index), seed=e.index) for j, e in enumerate(self._episodes)
        ]
        self.num_rows = int(sum(e.length for e in self._episodes))
        self.covered_rows = self.num_rows
        self._check_files()
        self._table: tuple[Path, Any] | None = None  # the last parquet file read
        self._rows: tuple[int, dict[str, np.ndarray]] | None = None  # the last episode's columns
        table_columns = self._table_columns()
        self.columns = sorted(set(table_columns) | set(self.video_keys))
        _, self.absent = split_optional(
            self.path,
            spec,
            lambda k: k in table_columns,
            f"the dataset's table columns {sorted(set(table_columns) - set(BOOKKEEPING))}",
            "fix keys.{ours} (LeRobot columns are named like observation.state and action)",
        )
        if "timestamp" not in table_columns:
            raise DatasetError(self.root, "the data tables have no 'timestamp' column", "this is not a LeRobot dataset")
        self.tasks = sorted({t for e in self._episodes for t in e.tasks})

    # ------------------------------------------------------------------ metadata
    def _pick_cameras(self, spec: ImportSpec, feats: dict[str, Any]) -> list[str]:
        """The video features to import: spec.cameras (checked) or all of them."""
        if not self.video_keys:
            images = [k for k, f in feats.items() if isinstance(f, dict) and f.get("dtype") == "image"]
            raise DatasetError(
                self.root / "meta/info.json",
                "the dataset has no video features"
                + (f" (image features {images} are not supported)" if images else ""),
                "this importer reads cameras stored as mp4 videos",
            )
        if spec.cameras is None:
            return list(self.video_keys)
        keys = []
        for cam in spec.cameras:
            key = cam if cam in self.video_keys else CAMERA_PREFIX + cam
            if key not in self.video_keys:
                raise DatasetError(
                    self.root,
                    f"camera {cam!r} is not a video feature of the dataset; it has {self.video_keys}",
                    "fix `cameras` in the import config",
                )
            keys.append(key)
        return keys

    def _template(self, name: str) -> str:
        value = self.info.get(name)
        if not isinstance(value, str):
            raise DatasetError(self.root / "meta/info.json", f"missing field {name!r} (a path template)")
        return value

    def _format(self, template: str, **kw: Any) -> Path:
        try:
            return self.root / template.format(**kw)
        except (KeyError, IndexError, ValueError) as exc:
            raise DatasetError(
                self.root / "meta/info.json", f"path template {template!r} cannot be filled ({exc!r})"
            ) from None

    def _load_episodes(self) -> list[_Episode]:
        """Every episode's length, parquet file and per-camera video window, from the layout's metadata."""
        eps = self._episodes_v3() if self.version.startswith("v3.") else self._episodes_v2()
        if not eps:
            raise DatasetError(self.root, "the dataset lists no episodes")
        ends: dict[Path, float] = {}
        for e in eps:
            for v in e.videos.values():
                ends[v.path] = max(ends.get(v.path, -1.0), v.start)
        for e in eps:
            for v in e.videos.values():
                v.last_in_file = v.start >= ends[v.path]
        return sorted(eps, key=lambda e: e.index)

    def _episodes_v2(self) -> list[_Episode]:
        rows = _read_jsonl(self.root / "meta" / "episodes.jsonl")
        chunks = int(self.info.get("chunks_size", 1000))
        data_t = self._template("data_path")
        video_t = self._template("video_path") if self.camera_keys else ""
        out = []
        for r in rows:
            if "episode_index" not in r or "length" not in r:
                raise DatasetError(self.root / "meta/episodes.jsonl", f"row {r} lacks episode_index or length")
            e = int(r["episode_index"])
            kw = {"episode_chunk": e // chunks, "episode_index": e}
            videos = {k: _Video(self._format(video_t, video_key=k, **kw), 0.0, float("inf")) for k in self.camera_keys}
            out.append(_Episode(e, int(r["length"]), self._format(data_t, **kw), videos, list(r.get("tasks", []))))
        return out

    def _episodes_v3(self) -> list[_Episode]:
        files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not files:
            raise _fail_folder(self.root, "meta/episodes/chunk-*/file-*.parquet is missing (a v3.0 dataset needs it)")
        data_t = self._template("data_path")
        video_t = self._template("video_path")
        out = []
        for f in files:
            t = _read_parquet(f)
            cols = {c: t.column(c).to_pylist() for c in t.column_names if not c.startswith("stats/")}
            need = ["episode_index", "length", "data/chunk_index", "data/file_index"]
            for k in self.camera_keys:
                need += [f"videos/{k}/{p}" for p in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
            missing = [c for c in need if c not in cols]
            if missing:
                raise DatasetError(f, f"episode metadata lacks column(s) {missing}", "the dataset is damaged")
            for i in range(t.num_rows):
                kw = {"chunk_index": cols["data/chunk_index"][i], "file_index": cols["data/file_index"][i]}
                videos = {}
                for k in self.camera_keys:
                    v = {p: cols[f"videos/{k}/{p}"][i] for p in ("chunk_index", "file_index")}
                    videos[k] = _Video(
                        self._format(video_t, video_key=k, **v),
                        float(cols[f"videos/{k}/from_timestamp"][i]),
                        float(cols[f"videos/{k}/to_timestamp"][i]),
                    )
                tasks = cols.get("tasks", [None] * t.num_rows)[i] or []
                out.append(
                    _Episode(
                        int(cols["episode_index"][i]),
                        int(cols["length"][i]),
                        self._format(data_t, **kw),
                        videos,
                        list(tasks),
                    )
                )
        return out

    def _check_files(self) -> None:
        """Every parquet and mp4 file the episodes name exists (before anything is decoded or written)."""
        for e in self._episodes:
            if not e.data_path.is_file():
                raise DatasetError(
                    e.data_path,
                    f"episode {e.index}: data file is missing",
                    "the dataset is incomplete; download it again",
                )
            for key, v in e.videos.items():
                if not v.path.is_file():
                    raise DatasetError(
                        v.path,
                        f"episode {e.index}, camera {key!r}: video file is missing",
                        "the dataset is incomplete; download it again, or leave the camera out with `cameras`",
                    )

    def _table_columns(self) -> list[str]:
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(self._episodes[0].data_path).names)
        except Exception as exc:
            raise DatasetError(self._episodes[0].data_path, f"cannot read parquet ({exc})") from exc

    # ------------------------------------------------------------------ rows
    def _episode_rows(self, ref: EpisodeRef) -> dict[str, np.ndarray]:
        """All table columns of one episode (cached for the last episode), in frame order."""
        import pyarrow.compute as pc

        ep = self._episodes[ref.index]
        if self._rows is not None and self._rows[0] == ref.index:
            return self._rows[1]
        if self._table is None or self._table[0] != ep.data_path:
            self._table = (ep.data_path, _read_parquet(ep.data_path))
        table = self._table[1]
        if "episode_index" in table.column_names:
            table = table.filter(pc.equal(table.column("episode_index"), ep.index))
        if table.num_rows != ep.length:
            raise DatasetError(
                ep.data_path,
                f"episode {ep.index}: the table holds {table.num_rows} rows but the episode metadata says {ep.length}",
                "the dataset is damaged; download it again",
            )
        if "frame_index" in table.column_names:
            order = np.argsort(column_to_numpy(table.column("frame_index")), kind="stable")
            table = table.take(order)
        rows = {c: column_to_numpy(table.column(c)) for c in table.column_names if c not in self.video_keys}
        self._rows = (ref.index, rows)
        return rows

    def timestamps(self, ref: EpisodeRef) -> np.ndarray:
        """(T,) float64 episode-relative seconds of every frame (the table's timestamp column)."""
        return self._episode_rows(ref)["timestamp"].astype(np.float64)

    # ------------------------------------------------------------------ frames
    def read_frames(self, ref: EpisodeRef, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """uint8 (stop - start, H, W, 3) frames [start, stop) of camera ``key``, each checked against its timestamp."""
        ep = self._episodes[ref.index]
        ts = self.timestamps(ref)
        stop = len(ts) if stop is None else stop
        video = ep.videos[key]
        last = stop == len(ts)
        until_end = last and video.last_in_file  # then frames after the episode are extra (duplicated) frames
        window_stop = float("inf") if until_end else video.stop
        if not last:
            window_stop = video.start + ts[stop - 1] + 0.5 / self.fps
        frames, times = decode_window(video.path, video.start + ts[start], window_stop, self.tolerance)
        self._check_times(ep, key, video, times - video.start, ts[start:stop], until_end=until_end)
        shape = self.info["features"][key].get("shape")
        if (
            frames.shape[0]
            and shape
            and len(shape) == 3
            and tuple(frames.shape[1:3])
            not in (
                tuple(shape[:2]),
                tuple(shape[1:]),
            )
        ):
            raise DatasetError(
                video.path,
                f"episode {ep.index}, camera {key!r}: frames are {frames.shape[1:3]} but meta/info.json says {shape}",
            )
        return frames

    def _check_times(
        self, ep: _Episode, key: str, video: _Video, got: np.ndarray, want: np.ndarray, until_end: bool
    ) -> None:
        """Decoded frame times (episode-relative) must match the table's timestamps one to one."""
        where = f"episode {ep.index}, camera {key!r}"
        m = min(len(got), len(want))
        bad = np.flatnonzero(np.abs(got[:m] - want[:m]) > self.tolerance)
        if bad.size:
            i = int(bad[0])
            if got[i] > want[i]:
                problem = (
                    f"no video frame at t={want[i]:.3f} s (row {i}): a dropped frame "
                    f"(the next one is at t={got[i]:.3f} s)"
                )
            else:
                problem = (
                    f"video frame at t={got[i]:.3f} s matches no row (row {i} is at t={want[i]:.3f} s): "
                    "a duplicated frame"
                )
        elif len(got) < len(want):
            problem = (
                f"no video frame at t={want[m]:.3f} s (row {m}) or after: {len(want) - m} dropped frame(s) at the end"
            )
        elif len(got) > len(want) and until_end:
            problem = f"{len(got) - m} video frame(s) from t={got[m]:.3f} s match no row: duplicated or extra frames"
        else:
            return
        raise DatasetError(
            video.path,
            f"{where}: {problem}",
            "frames must match the table's timestamp column one to one; re-encode the video or drop the episode",
        )

    # ------------------------------------------------------------------ Source protocol
    def read(self, ref: EpisodeRef, key: str) -> np.ndarray:
        """A table column of one episode, or (for a camera key) its decoded frames (T, H, W, 3)."""
        if key in self.camera_keys:
            return self.read_frames(ref, key)
        rows = self._episode_rows(ref)
        if key not in rows:
            raise DatasetError(self._episodes[ref.index].data_path, f"episode {ref.group}: no column {key!r}")
        return rows[key]

    def shape(self, ref: EpisodeRef, key: str) -> tuple[int, ...]:
        """Shape of ``read(ref, key)``; for a camera from the metadata, without decoding."""
        if key in self.camera_keys:
            shape = self.info["features"][key].get("shape") or []
            hw = tuple(shape[:2]) if len(shape) == 3 and shape[-1] == 3 else tuple(shape[1:3])
            return (self._episodes[ref.index].length, *hw, 3)
        return tuple(self.read(ref, key).shape)

    def close(self) -> None:
        """Drop the cached table and rows."""
        self._table = None
        self._rows = None


def decode_window(path: Path, start: float, stop: float, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, H, W, 3) frames of an mp4 with presentation time in [start - tol, stop - tol), and their (n,)
    times in seconds: seeks to the keyframe before ``start`` and decodes from there."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise DatasetError(path, f"cannot open the video ({exc})", "the file is damaged; download it again") from exc
    frames, times = [], []
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start > tol and stream.time_base:
            container.seek(int(max(start - tol, 0) / stream.time_base), stream=stream, backward=True)
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    raise DatasetError(path, "a video frame has no timestamp", "re-encode the video")
                t = float(frame.pts * stream.time_base)
                if t < start - tol:
                    continue
                if t >= stop - tol:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))  # (H, W, 3)
                times.append(t)
        except av.error.FFmpegError as exc:
            raise DatasetError(path, f"cannot decode the video ({exc})", "the file is damaged") from exc
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0)
    return np.stack(frames), np.asarray(times)
