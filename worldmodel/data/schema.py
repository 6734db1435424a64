"""The trajectory HDF5 schema: names, shapes, dtypes and the checks every reader runs.

One file holds many episodes laid end to end ("flat columns"), with the episode index as the
commit record. The full description lives in ``docs/data_schema.md``; this module is its executable
form, so the two must change together (and ``SCHEMA_VERSION`` with them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 2
"""The newest layout this library reads; bumped on any incompatible change to the layout below.

Version 2 stores one pixel column per named camera (``pixels/<camera>``, camera order in the ``cameras``
attribute); version 1 stores a single ``pixels`` column. The writer keeps writing version 1 for episodes with
one unnamed ``pixels`` column (the default of collection and the HDF5/npz importers, so their output is
unchanged) and version 2 for episodes with ``pixels/<camera>`` columns."""

SUPPORTED_VERSIONS = (1, 2)

DEFAULT_CAMERA = "main"
"""The camera name of a version-1 file's single ``pixels`` column."""

PIXEL_PREFIX = "pixels/"

# Per-frame columns: name -> (dtype, trailing shape description). N = total frames in the file.
FRAME_COLUMNS: dict[str, str] = {
    "pixels": "uint8",  # (N, H, W, 3) RGB observation (v2: one such column per camera, pixels/<camera>)
    "actions": "float32",  # (N, A) action applied after observing frame t; zeros on an episode's last frame
    "proprio": "float32",  # (N, P) proprioception
    "state": "float64",  # (N, Ds) full simulator state (env.get_state()), enough to reproduce dynamics
    "success": "bool",  # (N,) task success at frame t
    "distance": "float32",  # (N,) continuous distance to the episode's goal at frame t
}

# Per-episode columns: E = number of committed episodes.
EPISODE_COLUMNS: dict[str, str] = {
    "episode_starts": "int64",  # (E,) index of the episode's first frame in the frame columns
    "episode_lengths": "int64",  # (E,) number of frames (= steps + 1)
    "episode_seeds": "int64",  # (E,) seed the episode was reset with
    "goal_state": "float64",  # (E, Ds) the goal state sampled for the episode
}

REQUIRED_ATTRS = (
    "schema_version",
    "env_id",
    "env_kwargs",
    "action_low",
    "action_high",
    "control_dt",
    "policy",
    "seed",
)


class DatasetError(ValueError):
    """A trajectory file is missing, corrupt, or does not match what the caller asked for."""

    def __init__(self, path: str | Path, problem: str, fix: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        msg = f"{path}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


@dataclass(frozen=True)
class DatasetMeta:
    """File-level attributes of a trajectory file, decoded."""

    schema_version: int
    env_id: str
    env_kwargs: dict[str, Any]
    action_low: np.ndarray  # (A,)
    action_high: np.ndarray  # (A,)
    control_dt: float
    policy: str
    seed: int
    extra: dict[str, Any]

    @property
    def action_dim(self) -> int:
        """Dimension of one action vector."""
        return int(self.action_low.shape[0])

    def to_attrs(self) -> dict[str, Any]:
        """Encode as HDF5 attributes (JSON for nested values)."""
        attrs: dict[str, Any] = {
            "schema_version": int(self.schema_version),
            "env_id": self.env_id,
            "env_kwargs": json.dumps(self.env_kwargs, sort_keys=True),
            "action_low": np.asarray(self.action_low, dtype=np.float32),
            "action_high": np.asarray(self.action_high, dtype=np.float32),
            "control_dt": float(self.control_dt),
            "policy": self.policy,
            "seed": int(self.seed),
            "extra": json.dumps(self.extra, sort_keys=True),
        }
        return attrs

    @classmethod
    def from_attrs(cls, path: str | Path, attrs: Any) -> DatasetMeta:
        """Decode and validate file attributes; raises DatasetError naming what is wrong."""
        missing = [k for k in REQUIRED_ATTRS if k not in attrs]
        if missing:
            raise DatasetError(
                path,
                f"missing attribute(s) {missing}",
                "the file was not written by this library's collector or importer; re-collect or import it",
            )
        version = int(attrs["schema_version"])
        if version not in SUPPORTED_VERSIONS:
            raise DatasetError(
                path,
                f"unknown schema version {version} (this library reads {list(SUPPORTED_VERSIONS)})",
                "upgrade the library or re-collect the data with this version",
            )
        try:
            env_kwargs = json.loads(_as_str(attrs["env_kwargs"]))
            extra = json.loads(_as_str(attrs["extra"])) if "extra" in attrs else {}
        except json.JSONDecodeError as exc:
            raise DatasetError(path, f"attribute env_kwargs/extra is not valid JSON: {exc}") from exc
        low = np.asarray(attrs["action_low"], dtype=np.float32).reshape(-1)
        high = np.asarray(attrs["action_high"], dtype=np.float32).reshape(-1)
        if low.shape != high.shape or np.any(low > high):
            raise DatasetError(path, f"inconsistent action bounds low={low} high={high}")
        return cls(
            schema_version=version,
            env_id=_as_str(attrs["env_id"]),
            env_kwargs=env_kwargs,
            action_low=low,
            action_high=high,
            control_dt=float(attrs["control_dt"]),
            policy=_as_str(attrs["policy"]),
            seed=int(attrs["seed"]),
            extra=extra,
        )


def _as_str(value: Any) -> str:
    """h5py returns str or bytes for string attributes depending on how they were written."""
    return value.decode() if isinstance(value, bytes) else str(value)


def check_camera_name(name: str) -> str:
    """A camera name usable as an HDF5 dataset name (non-empty, no '/'); ValueError otherwise."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"camera name {name!r} must be a non-empty string without '/'")
    return name


def pixel_columns(ep: dict[str, np.ndarray]) -> list[str]:
    """The pixel column keys of an in-memory episode: ``['pixels']`` (one unnamed camera, schema v1) or
    ``['pixels/<camera>', ...]`` in camera order (schema v2); ValueError when it mixes both or has none."""
    named = [k for k in ep if k.startswith(PIXEL_PREFIX)]
    if "pixels" in ep and named:
        raise ValueError(f"an episode holds either 'pixels' or 'pixels/<camera>' columns, not both: {named}")
    if not named and "pixels" not in ep:
        raise ValueError("missing column(s) ['pixels'] (or 'pixels/<camera>' per camera)")
    for k in named:
        check_camera_name(k[len(PIXEL_PREFIX) :])
    return named or ["pixels"]


def validate_episode(ep: dict[str, np.ndarray], where: str = "episode") -> int:
    """Check one in-memory episode's columns agree in length and dtype; returns its frame count.

    Pixels are one ``pixels`` column or one ``pixels/<camera>`` column per camera (see ``pixel_columns``)."""
    try:
        pkeys = pixel_columns(ep)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    missing = [k for k in FRAME_COLUMNS if k != "pixels" and k not in ep]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}")
    n = int(ep[pkeys[0]].shape[0])
    if n < 2:
        raise ValueError(f"{where}: an episode needs at least 2 frames, got {n}")
    for key in [*pkeys, *(k for k in FRAME_COLUMNS if k != "pixels")]:
        if ep[key].shape[0] != n:
            raise ValueError(f"{where}: column {key!r} has {ep[key].shape[0]} rows, {pkeys[0]} has {n}")
    for key in pkeys:
        px = ep[key]
        if px.dtype != np.uint8 or px.ndim != 4 or px.shape[-1] != 3:
            raise ValueError(f"{where}: {key} must be uint8 (T, H, W, 3), got {px.dtype} {px.shape}")
    for key in ("actions", "proprio", "state"):
        if ep[key].ndim != 2:
            raise ValueError(f"{where}: {key!r} must be 2-D (T, dim), got shape {ep[key].shape}")
        if not np.all(np.isfinite(ep[key])):
            raise ValueError(f"{where}: {key!r} holds NaN or inf values")
    return n
