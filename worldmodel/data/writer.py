"""Write trajectory files atomically: episodes go to a temporary file that replaces the target at the end.

A reader therefore sees either the previous file or the complete new one, never a half-written
episode. Collection builds resumability on top of this with per-episode shards (see collect.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from worldmodel.data.schema import (
    EPISODE_COLUMNS,
    FRAME_COLUMNS,
    PIXEL_PREFIX,
    DatasetMeta,
    pixel_columns,
    validate_episode,
)

DEFAULT_CHUNK_FRAMES = 8
"""Frames per HDF5 chunk along time: one random clip of 4-16 frames touches 1-3 chunks."""


class TrajectoryWriter:
    """Append episodes to a new trajectory file; ``close()`` commits it with an atomic rename.

    Use as a context manager: on an exception the temporary file is removed and the target is left
    as it was. The first episode fixes the pixel layout: one ``pixels`` column writes schema version 1
    (unchanged from earlier releases), ``pixels/<camera>`` columns write version 2 with the camera order in
    the ``cameras`` attribute; later episodes must hold the same cameras.
    """

    def __init__(
        self,
        path: str | Path,
        meta: DatasetMeta,
        *,
        overwrite: bool = False,
        compression: str | None = "lzf",
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(
                f"{self.path} exists; pass overwrite=True (or overwrite=true) to replace it"
            )
        if compression not in (None, "lzf", "gzip"):
            raise ValueError(f"compression must be None, 'lzf' or 'gzip', got {compression!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.meta = meta
        self.compression = compression
        self.chunk_frames = int(chunk_frames)
        self._file: h5py.File | None = h5py.File(self.tmp_path, "w")
        for key, value in meta.to_attrs().items():
            self._file.attrs[key] = value
        self.num_frames = 0
        self.num_episodes = 0
        self.pixel_keys: list[str] = []

    def _create(self, ep: dict[str, np.ndarray]) -> None:
        """Create resizable columns shaped after the first episode, and fix the schema version."""
        assert self._file is not None
        self.pixel_keys = pixel_columns(ep)
        if self.pixel_keys == ["pixels"]:
            self._file.attrs["schema_version"] = 1
        else:
            self._file.attrs["schema_version"] = 2
            self._file.attrs["cameras"] = json.dumps([k[len(PIXEL_PREFIX) :] for k in self.pixel_keys])
        columns = {k: FRAME_COLUMNS["pixels"] for k in self.pixel_keys}  # pixels first, as in version 1
        columns.update({k: v for k, v in FRAME_COLUMNS.items() if k != "pixels"})
        for key, dtype in columns.items():
            tail = ep[key].shape[1:]
            chunk_rows = self.chunk_frames if key.startswith("pixels") else max(256, self.chunk_frames)
            self._file.create_dataset(
                key,
                shape=(0, *tail),
                maxshape=(None, *tail),
                dtype=dtype,
                chunks=(chunk_rows, *tail),
                compression=self.compression,
            )
        ds_dim = ep["state"].shape[1]
        for key, dtype in EPISODE_COLUMNS.items():
            tail = (ds_dim,) if key == "goal_state" else ()
            self._file.create_dataset(
                key, shape=(0, *tail), maxshape=(None, *tail), dtype=dtype, chunks=(256, *tail)
            )

    def append(self, ep: dict[str, np.ndarray], seed: int, goal_state: np.ndarray) -> None:
        """Append one episode (columns as in schema.FRAME_COLUMNS, all with the same length)."""
        if self._file is None:
            raise RuntimeError("writer is closed")
        n = validate_episode(ep, where=f"episode {self.num_episodes}")
        if self.num_episodes == 0:
            self._create(ep)
        elif pixel_columns(ep) != self.pixel_keys:
            raise ValueError(
                f"episode {self.num_episodes}: pixel columns {pixel_columns(ep)} differ from the first episode's "
                f"{self.pixel_keys}"
            )
        f = self._file
        for key in [*self.pixel_keys, *(k for k in FRAME_COLUMNS if k != "pixels")]:
            d = f[key]
            if d.shape[1:] != ep[key].shape[1:]:
                raise ValueError(
                    f"episode {self.num_episodes}: column {key!r} has shape {ep[key].shape[1:]} per frame, "
                    f"earlier episodes have {d.shape[1:]}"
                )
            d.resize(self.num_frames + n, axis=0)
            d[self.num_frames :] = ep[key]
        row = {
            "episode_starts": self.num_frames,
            "episode_lengths": n,
            "episode_seeds": int(seed),
            "goal_state": np.asarray(goal_state, dtype=np.float64),
        }
        for key, value in row.items():
            d = f[key]
            d.resize(self.num_episodes + 1, axis=0)
            d[self.num_episodes] = value
        self.num_frames += n
        self.num_episodes += 1

    def close(self) -> Path:
        """Flush and atomically move the file into place; returns the final path."""
        if self._file is None:
            return self.path
        if self.num_episodes == 0:
            self.abort()
            raise ValueError(f"{self.path}: no episodes were written; refusing to create an empty dataset")
        self._file.flush()
        self._file.close()
        self._file = None
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target path is untouched."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
