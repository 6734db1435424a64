"""Open trajectory files with validation: every problem becomes one DatasetError naming file and fix."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from worldmodel.data.schema import (
    DEFAULT_CAMERA,
    EPISODE_COLUMNS,
    FRAME_COLUMNS,
    PIXEL_PREFIX,
    DatasetError,
    DatasetMeta,
)


class TrajectoryFile:
    """Read-only, validated view of one trajectory file.

    The HDF5 handle is opened lazily and re-opened after a fork, so one instance can be shared with
    DataLoader worker processes (each gets its own handle). Episode bounds are read once into memory.

    Cameras: ``cameras`` lists the file's camera names, the default camera first (a version-1 file has one,
    named ``DEFAULT_CAMERA``). ``read("pixels", ...)`` reads the default camera, ``read("pixels/<camera>", ...)``
    or ``read_pixels(start, stop, camera)`` any camera.
    """

    def __init__(self, path: str | Path, *, verify: bool = False) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetError(
                self.path, "file not found", "check the path, or collect data with scripts/collect.py"
            )
        self._handle: h5py.File | None = None
        self._pid: int | None = None
        f = self._file()
        self.meta = DatasetMeta.from_attrs(self.path, f.attrs)
        self.cameras: list[str] = self._find_cameras(f)
        self._columns = [self.pixel_key(c) for c in self.cameras] + [k for k in FRAME_COLUMNS if k != "pixels"]
        missing = [k for k in (*self._columns, *EPISODE_COLUMNS) if k not in f]
        if missing:
            raise DatasetError(
                self.path, f"missing dataset(s) {missing}", "the file is incomplete; re-collect it"
            )
        try:
            self.episode_starts = np.asarray(f["episode_starts"][:], dtype=np.int64)  # (E,)
            self.episode_lengths = np.asarray(f["episode_lengths"][:], dtype=np.int64)  # (E,)
            self.episode_seeds = np.asarray(f["episode_seeds"][:], dtype=np.int64)  # (E,)
        except (OSError, KeyError) as exc:
            raise DatasetError(
                self.path, f"cannot read the episode index: {exc}", "the file is corrupt"
            ) from exc
        self._check_index(f)
        self._check_readable(f, full=verify)

    # ------------------------------------------------------------------ handles
    def _file(self) -> h5py.File:
        """Return this process's handle, opening it on first use or after a fork."""
        if self._handle is None or self._pid != os.getpid():
            try:
                self._handle = h5py.File(self.path, "r")
            except OSError as exc:
                raise DatasetError(
                    self.path,
                    f"not a readable HDF5 file ({exc})",
                    "the file is truncated or corrupt; re-collect it",
                ) from exc
            self._pid = os.getpid()
        return self._handle

    def close(self) -> None:
        """Close this process's handle (it is reopened on next use)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_pid"] = None
        return state

    # ------------------------------------------------------------------ cameras
    def _find_cameras(self, f: h5py.File) -> list[str]:
        """Camera names in order: [DEFAULT_CAMERA] for version 1, the ``cameras`` attribute for version 2."""
        if self.meta.schema_version == 1:
            if "pixels" in f and not isinstance(f["pixels"], h5py.Dataset):
                raise DatasetError(self.path, "a version-1 file must hold one 'pixels' dataset, found a group")
            return [DEFAULT_CAMERA]
        try:
            cams = json.loads(f.attrs["cameras"]) if "cameras" in f.attrs else None
        except json.JSONDecodeError:
            cams = None
        if not isinstance(cams, list) or not cams or not all(isinstance(c, str) and c for c in cams):
            raise DatasetError(
                self.path, "a version-2 file needs a 'cameras' attribute (a JSON list of camera names)", "re-import it"
            )
        group = f.get("pixels")
        if not isinstance(group, h5py.Group):
            raise DatasetError(self.path, "a version-2 file must hold a 'pixels' group (pixels/<camera>)")
        if sorted(group.keys()) != sorted(cams):
            raise DatasetError(
                self.path,
                f"the pixels group holds cameras {sorted(group.keys())} but the cameras attribute lists {cams}",
                "the file is corrupt; re-import it",
            )
        return [str(c) for c in cams]

    def pixel_key(self, camera: str | None = None) -> str:
        """The HDF5 dataset path of a camera's pixels (default camera for None); DatasetError naming the
        cameras there are when ``camera`` is not one of them."""
        cam = self.cameras[0] if camera is None else camera
        if cam not in self.cameras:
            raise DatasetError(self.path, f"no camera {cam!r}; the file has cameras {self.cameras}", "pick one of them")
        return "pixels" if self.meta.schema_version == 1 else PIXEL_PREFIX + cam

    def _path_of(self, key: str) -> str:
        """Dataset path of a column name: 'pixels' is the default camera, 'pixels/<camera>' a named one."""
        if key == "pixels":
            return self.pixel_key()
        if key.startswith(PIXEL_PREFIX):
            return self.pixel_key(key[len(PIXEL_PREFIX) :])
        return key

    # ------------------------------------------------------------------ checks
    def _check_index(self, f: h5py.File) -> None:
        """Episode bounds must tile the frame columns exactly, in order, without overlap."""
        e = len(self.episode_starts)
        if e == 0:
            raise DatasetError(self.path, "the file holds no episodes")
        if len(self.episode_lengths) != e or len(self.episode_seeds) != e or f["goal_state"].shape[0] != e:
            raise DatasetError(
                self.path, "episode columns disagree in length", "the file is corrupt; re-collect it"
            )
        if np.any(self.episode_lengths < 2):
            bad = int(np.flatnonzero(self.episode_lengths < 2)[0])
            raise DatasetError(self.path, f"episode {bad} has fewer than 2 frames")
        expected = np.concatenate([[0], np.cumsum(self.episode_lengths)[:-1]])
        if not np.array_equal(expected, self.episode_starts):
            bad = int(np.flatnonzero(expected != self.episode_starts)[0])
            raise DatasetError(
                self.path,
                f"episode {bad} starts at frame {self.episode_starts[bad]}, expected {expected[bad]} "
                "(episodes overlap or leave gaps)",
            )
        total = int(self.episode_lengths.sum())
        for key in self._columns:
            if f[key].shape[0] != total:
                raise DatasetError(
                    self.path,
                    f"column {key!r} has {f[key].shape[0]} rows but the episodes cover {total} frames",
                )
        for cam in self.cameras:
            px = f[self.pixel_key(cam)]
            if px.ndim != 4 or px.shape[-1] != 3 or px.dtype != np.uint8:
                raise DatasetError(
                    self.path, f"{px.name[1:]} must be uint8 (N, H, W, 3), found {px.dtype} {px.shape}"
                )
        if f["actions"].shape[1] != self.meta.action_dim:
            raise DatasetError(
                self.path,
                f"actions have dim {f['actions'].shape[1]} but the action bounds have dim {self.meta.action_dim}",
            )

    def _check_readable(self, f: h5py.File, full: bool) -> None:
        """Read the last rows (or everything with full=True) so truncation surfaces at open time."""
        try:
            for key in self._columns:
                d = f[key]
                if full:
                    step = 4096 if not key.startswith("pixels") else 256
                    for s in range(0, d.shape[0], step):
                        d[s : s + step]
                else:
                    d[max(0, d.shape[0] - 1) :]
        except (OSError, RuntimeError) as exc:
            raise DatasetError(
                self.path,
                f"column data cannot be read ({exc})",
                "the file is truncated or corrupt; re-collect it",
            ) from exc

    # ------------------------------------------------------------------ access
    @property
    def num_episodes(self) -> int:
        """Committed episodes in the file."""
        return int(len(self.episode_starts))

    @property
    def num_frames(self) -> int:
        """Total frames over all episodes."""
        return int(self.episode_lengths.sum())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, 3) of one frame of the default camera."""
        return tuple(self._file()[self.pixel_key()].shape[1:])  # type: ignore[return-value]

    def column_shape(self, key: str) -> tuple[int, ...]:
        """Per-frame shape of a frame column ('pixels' or 'pixels/<camera>' for pixels)."""
        return tuple(self._file()[self._path_of(key)].shape[1:])

    def read_pixels(self, start: int, stop: int, camera: str | None = None) -> np.ndarray:
        """uint8 (stop - start, H, W, 3) frames [start, stop) of ``camera`` (the default camera for None)."""
        return self.read(self.pixel_key(camera), start, stop)

    def read(self, key: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of one column, in global frame indices ('pixels' = the default camera,
        'pixels/<camera>' a named one)."""
        path = self._path_of(key)
        try:
            return self._file()[path][start:stop]
        except (OSError, RuntimeError) as exc:
            raise DatasetError(
                self.path, f"cannot read {key!r} rows {start}:{stop} ({exc})", "the file is corrupt"
            ) from exc

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """All frame columns of episode i, plus its goal state and seed. 'pixels' is the default camera; a
        version-2 file adds 'pixels/<camera>' for every camera (drop 'pixels' to append it to a TrajectoryWriter)."""
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range [0, {self.num_episodes})")
        s, n = int(self.episode_starts[i]), int(self.episode_lengths[i])
        out = {key: self.read(key, s, s + n) for key in FRAME_COLUMNS}
        if self.meta.schema_version >= 2:
            out.update({PIXEL_PREFIX + c: self.read_pixels(s, s + n, c) for c in self.cameras})
        out["goal_state"] = self._file()["goal_state"][i]
        out["seed"] = np.int64(self.episode_seeds[i])
        return out

    def goal_states(self) -> np.ndarray:
        """(E, Ds) goal state of every episode."""
        return self._file()["goal_state"][:]

    def summary(self) -> dict[str, Any]:
        """Numbers a person checks first: sizes, ranges and provenance."""
        f = self._file()
        acts = f["actions"][:]
        # The last frame of each episode carries a zero padding action; exclude it from ranges.
        valid = np.ones(len(acts), dtype=bool)
        valid[self.episode_starts + self.episode_lengths - 1] = False
        succ = f["success"][:]
        ends = self.episode_starts + self.episode_lengths - 1
        return {
            "path": str(self.path),
            "schema_version": self.meta.schema_version,
            "env_id": self.meta.env_id,
            "env_kwargs": self.meta.env_kwargs,
            "policy": self.meta.policy,
            "seed": self.meta.seed,
            "episodes": self.num_episodes,
            "frames": self.num_frames,
            "steps": int(self.num_frames - self.num_episodes),
            "episode_length": {
                "min": int(self.episode_lengths.min()),
                "max": int(self.episode_lengths.max()),
            },
            "image_shape": list(self.image_shape),
            "cameras": {c: list(self.column_shape(PIXEL_PREFIX + c)) for c in self.cameras},
            "action_dim": self.meta.action_dim,
            "proprio_dim": int(f["proprio"].shape[1]),
            "state_dim": int(f["state"].shape[1]),
            "action_bounds": {"low": self.meta.action_low.tolist(), "high": self.meta.action_high.tolist()},
            "action_range": {"min": acts[valid].min(0).tolist(), "max": acts[valid].max(0).tolist()},
            "action_mean_abs": np.abs(acts[valid]).mean(0).tolist(),
            "control_dt": self.meta.control_dt,
            "success_at_end": float(succ[ends].mean()),
            "file_mb": round(self.path.stat().st_size / 2**20, 2),
            "compression": f[self.pixel_key()].compression,
            "chunks": list(f[self.pixel_key()].chunks or ()),
            "extra": self.meta.extra,
        }
