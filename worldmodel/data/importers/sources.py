"""Foreign trajectory files read episode by episode: flat columns with boundaries, or one group per episode.

A source lists its episodes (``EpisodeRef``: where the rows are, with a label used in every error) and
reads one foreign key of one episode at a time, so a large flat HDF5 file is never loaded whole.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from worldmodel.data.importers.spec import Boundaries, ImportSpec
from worldmodel.data.schema import DatasetError


@dataclass(frozen=True)
class EpisodeRef:
    """One foreign episode: rows [start, stop) of flat columns, or a group / file / Minari episode."""

    index: int
    label: str  # e.g. "episode 3 (rows 120:240)" -- used in error messages
    start: int = 0
    stop: int = 0
    group: str = ""
    seed: int = 0


class Source(Protocol):
    """What the converter needs from a foreign file."""

    path: str
    episodes: list[EpisodeRef]
    columns: list[str]
    """Every key the source holds (for the summary's unused columns)."""
    absent: dict[str, str]
    """Optional columns (spec.optional_keys) whose mapped key the source lacks: our column -> that key."""

    def read(self, ref: EpisodeRef, key: str) -> np.ndarray:
        """The foreign column ``key`` of one episode."""

    def shape(self, ref: EpisodeRef, key: str) -> tuple[int, ...]:
        """Shape of ``read(ref, key)``, without reading the data where the format allows."""

    def close(self) -> None:
        """Release file handles."""


def _natural_key(name: str) -> list[Any]:
    """Sort 'ep_2' before 'ep_10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def split_optional(
    path: str, spec: ImportSpec, present: Any, where: str, fix: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(mapped keys the source has, optional ones it lacks): our column -> foreign key. ``present(key)`` says
    whether the source holds ``key``; a missing key not in spec.optional_keys is a DatasetError."""
    mapped: dict[str, str] = {}
    absent: dict[str, str] = {}
    for ours, key in spec.keys.items():
        if not key:
            continue
        if present(key):
            mapped[ours] = key
        elif ours in spec.optional_keys:
            absent[ours] = key
        else:
            raise DatasetError(path, f"key {key!r} (mapped to {ours}) is not in {where}", fix.format(ours=ours))
    return mapped, absent


def _check_ranges(path: str, ranges: np.ndarray, n: int, key: str) -> np.ndarray:
    """Validate (E, 2) [start, stop) row ranges: inside [0, n), non-empty, in order, non-overlapping."""
    for i, (s, e) in enumerate(ranges.tolist()):
        if s < 0 or e > n:
            raise DatasetError(
                path,
                f"boundary key {key!r}: episode {i} covers rows {s}:{e}, out of range for columns of {n} rows",
                "check that the boundary column belongs to this file and counts rows from 0",
            )
        if e <= s:
            raise DatasetError(path, f"boundary key {key!r}: episode {i} covers no rows ({s}:{e})")
        if i > 0 and s < ranges[i - 1, 1]:
            raise DatasetError(
                path,
                f"boundary key {key!r}: episode {i} (rows {s}:{e}) overlaps episode {i - 1} "
                f"(rows {ranges[i - 1, 0]}:{ranges[i - 1, 1]})",
                "episodes must be sorted by start row and must not share rows",
            )
    return ranges


def episode_ranges(path: str, b: Boundaries, read: Any, n: int) -> np.ndarray:
    """(E, 2) [start, stop) rows of every episode from the boundary spec; ``read(key)`` loads a column."""
    col = np.asarray(read(b.key))
    if b.kind == "ends" and col.dtype != np.bool_ and not np.issubdtype(col.dtype, np.integer):
        raise DatasetError(path, f"boundary key {b.key!r} must hold bool end flags, found {col.dtype}")
    if b.kind != "ends" and not np.issubdtype(col.dtype, np.integer):
        raise DatasetError(path, f"boundary key {b.key!r} must hold integers for kind={b.kind!r}, found {col.dtype}")
    if b.kind == "lengths":
        lengths = col.reshape(-1).astype(np.int64)
        stops = np.cumsum(lengths)
        if len(lengths) and stops[-1] != n:
            raise DatasetError(
                path,
                f"boundary key {b.key!r}: episode lengths sum to {int(stops[-1])} but the columns have {n} rows "
                f"(rows {min(int(stops[-1]), n)}:{max(int(stops[-1]), n)} are "
                f"{'missing' if stops[-1] > n else 'in no episode'})",
                "use the lengths that belong to this file, or kind=ranges to import a subset",
            )
        ranges = np.stack([stops - lengths, stops], axis=1)
    elif b.kind == "offsets":
        starts = col.reshape(-1).astype(np.int64)
        if b.lengths_key:
            lengths = np.asarray(read(b.lengths_key)).reshape(-1).astype(np.int64)
            if lengths.shape != starts.shape:
                raise DatasetError(
                    path, f"boundary keys {b.key!r} and {b.lengths_key!r} have {len(starts)} and {len(lengths)} rows"
                )
            stops = starts + lengths
        else:
            stops = np.append(starts[1:], n)
        ranges = np.stack([starts, stops], axis=1)
    elif b.kind == "ranges":
        if col.ndim != 2 or col.shape[1] != 2:
            raise DatasetError(path, f"boundary key {b.key!r} must be (E, 2) [start, stop) rows, found {col.shape}")
        ranges = col.astype(np.int64)
    elif b.kind == "ends":
        flags = col.reshape(-1).astype(bool)
        if len(flags) != n:
            raise DatasetError(path, f"boundary key {b.key!r} has {len(flags)} rows, the columns have {n}")
        stops = np.flatnonzero(flags) + 1
        if len(stops) == 0 or stops[-1] != n:
            stops = np.append(stops, n)  # rows after the last end flag form a final (truncated) episode
        ranges = np.stack([np.concatenate([[0], stops[:-1]]), stops], axis=1)
    else:  # index
        idx = col.reshape(-1)
        if len(idx) != n:
            raise DatasetError(path, f"boundary key {b.key!r} has {len(idx)} rows, the columns have {n}")
        change = np.flatnonzero(idx[1:] != idx[:-1]) + 1
        starts = np.concatenate([[0], change]).astype(np.int64)
        stops = np.append(starts[1:], n)
        values = idx[starts]
        uniq, first = np.unique(values, return_index=True)
        if len(uniq) != len(values):
            dup = [i for i in range(len(values)) if i not in set(first.tolist())][0]
            prev = int(np.flatnonzero(values[:dup] == values[dup])[0])
            raise DatasetError(
                path,
                f"boundary key {b.key!r}: episode {values[dup]} is not contiguous (rows {starts[prev]}:{stops[prev]} "
                f"and {starts[dup]}:{stops[dup]})",
                "sort the rows by episode (LeRobot/stable-worldmodel files store each episode as one run)",
            )
        ranges = np.stack([starts, stops], axis=1)
    return _check_ranges(path, ranges.astype(np.int64), n, b.key)


class FlatSource:
    """Flat columns (HDF5 datasets or npz arrays) split into episodes by a boundary spec."""

    def __init__(self, spec: ImportSpec, fmt: str) -> None:
        self.path = spec.source
        if not Path(self.path).is_file():
            raise DatasetError(self.path, "file not found", "check `source` in the import config")
        try:
            self._file: Any = h5py.File(self.path, "r") if fmt == "hdf5" else np.load(self.path)
        except (OSError, ValueError) as exc:
            raise DatasetError(self.path, f"cannot open as {fmt} ({exc})", "check `format`") from exc
        self._cache: dict[str, np.ndarray] = {}
        available = self._keys()
        self.columns = sorted(available)
        mapped, self.absent = split_optional(
            self.path,
            spec,
            available.__contains__,
            f"the file; it has {sorted(available)}",
            "fix keys.{ours} in the import config",
        )
        n = int(self._column(mapped["pixels"]).shape[0])
        for ours, key in mapped.items():
            rows = int(self._column(key).shape[0])
            if rows != n:
                raise DatasetError(
                    self.path,
                    f"key {key!r} (mapped to {ours}) has {rows} rows but pixels ({mapped['pixels']!r}) has {n} "
                    f"(rows {min(rows, n)}:{max(rows, n)} exist in only one of them)",
                    "flat columns must have one row per frame; map the right key or fix the file",
                )
        for k in (spec.boundaries.key, spec.boundaries.lengths_key):
            if k and k not in available:
                raise DatasetError(
                    self.path,
                    f"boundary key {k!r} is not in the file; it has {sorted(available)}",
                    "fix boundaries.key / boundaries.lengths_key in the import config",
                )
        self.num_rows = n
        ranges = episode_ranges(self.path, spec.boundaries, lambda k: self._column(k)[:], n)
        self.covered_rows = int((ranges[:, 1] - ranges[:, 0]).sum())
        self.episodes = [
            EpisodeRef(i, f"episode {i} (rows {s}:{e})", start=int(s), stop=int(e), seed=i)
            for i, (s, e) in enumerate(ranges.tolist())
        ]

    def _keys(self) -> set[str]:
        """Every dataset path (HDF5, nested with '/') or array name (npz) in the file."""
        if isinstance(self._file, h5py.File):
            names: set[str] = set()
            self._file.visititems(lambda name, obj: names.add(name) if isinstance(obj, h5py.Dataset) else None)
            return names
        return set(self._file.files)

    def _column(self, key: str) -> Any:
        """A lazily sliceable column: the HDF5 dataset, or the npz array (loaded once)."""
        if isinstance(self._file, h5py.File):
            return self._file[key]
        if key not in self._cache:
            self._cache[key] = self._file[key]
        return self._cache[key]

    def read(self, ref: EpisodeRef, key: str) -> np.ndarray:
        """Rows [start, stop) of the foreign column ``key``."""
        return np.asarray(self._column(key)[ref.start : ref.stop])

    def shape(self, ref: EpisodeRef, key: str) -> tuple[int, ...]:
        """(stop - start, *row shape) without reading."""
        return (ref.stop - ref.start, *self._column(key).shape[1:])

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class GroupSource:
    """One episode per HDF5 group, per npz key prefix ('ep_0/pixels'), or per file in a folder."""

    def __init__(self, spec: ImportSpec, fmt: str) -> None:
        self.path = spec.source
        p = Path(self.path)
        self._files: dict[str, Any] = {}
        self._mode = "dir" if p.is_dir() else fmt
        if self._mode == "dir":
            suffixes = (".npz",) if fmt == "npz" else (".h5", ".hdf5")
            names = [
                q.name for q in p.iterdir() if q.suffix in suffixes and fnmatch.fnmatch(q.name, spec.episode_pattern)
            ]
        elif not p.is_file():
            raise DatasetError(self.path, "file or folder not found", "check `source` in the import config")
        else:
            try:
                self._file: Any = h5py.File(self.path, "r") if fmt == "hdf5" else np.load(self.path)
            except (OSError, ValueError) as exc:
                raise DatasetError(self.path, f"cannot open as {fmt} ({exc})", "check `format`") from exc
            if fmt == "hdf5":
                names = [k for k, v in self._file.items() if isinstance(v, h5py.Group)]
            else:
                names = sorted({k.split("/", 1)[0] for k in self._file.files if "/" in k})
            names = [n for n in names if fnmatch.fnmatch(n, spec.episode_pattern)]
        names.sort(key=_natural_key)
        if not names:
            raise DatasetError(
                self.path,
                f"no episode groups match episode_pattern={spec.episode_pattern!r}",
                "set layout=flat for flat columns, or fix episode_pattern",
            )
        self.episodes = [EpisodeRef(i, f"episode group {n!r}", group=n, seed=i) for i, n in enumerate(names)]
        have = [self._group_keys(ref.group) for ref in self.episodes]
        self.columns = sorted(set().union(*have))
        # an optional key counts as absent only when no group holds it; every group must hold the others
        _, self.absent = split_optional(
            self.path,
            spec,
            lambda k: any(k in h for h in have),
            f"any episode group ({self.episodes[0].label} has {sorted(have[0])})",
            "fix keys.{ours}",
        )
        for ref, keys in zip(self.episodes, have):
            for ours, key in spec.keys.items():
                if key and ours not in self.absent and key not in keys:
                    raise DatasetError(
                        self.path,
                        f"key {key!r} (mapped to {ours}) is missing from {ref.label}; it has {sorted(keys)}",
                        f"fix keys.{ours}, or exclude the group with episode_pattern",
                    )
        self.covered_rows = -1

    def _open(self, name: str) -> Any:
        """Handle of one per-episode file (folder mode), opened once."""
        if name not in self._files:
            f = Path(self.path) / name
            try:
                self._files[name] = h5py.File(f, "r") if f.suffix != ".npz" else np.load(f)
            except (OSError, ValueError) as exc:
                raise DatasetError(str(f), f"cannot open ({exc})") from exc
        return self._files[name]

    def _group_keys(self, group: str) -> set[str]:
        """Keys available inside one episode group."""
        if self._mode == "dir":
            h = self._open(group)
            if isinstance(h, h5py.File):
                names: set[str] = set()
                h.visititems(lambda n, o: names.add(n) if isinstance(o, h5py.Dataset) else None)
                return names
            return set(h.files)
        if self._mode == "hdf5":
            names = set()
            self._file[group].visititems(lambda n, o: names.add(n) if isinstance(o, h5py.Dataset) else None)
            return names
        prefix = group + "/"
        return {k[len(prefix) :] for k in self._file.files if k.startswith(prefix)}

    def read(self, ref: EpisodeRef, key: str) -> np.ndarray:
        """The whole foreign column ``key`` of one episode group."""
        if self._mode == "dir":
            return np.asarray(self._open(ref.group)[key][()])
        if self._mode == "hdf5":
            return np.asarray(self._file[ref.group][key][()])
        return np.asarray(self._file[f"{ref.group}/{key}"])

    def shape(self, ref: EpisodeRef, key: str) -> tuple[int, ...]:
        """Shape of one episode's column (HDF5: without reading it)."""
        if self._mode == "hdf5":
            return tuple(self._file[ref.group][key].shape)
        if self._mode == "dir" and isinstance(self._open(ref.group), h5py.File):
            return tuple(self._open(ref.group)[key].shape)
        return tuple(self.read(ref, key).shape)

    def close(self) -> None:
        """Close every handle."""
        for h in self._files.values():
            h.close()
        if self._mode != "dir":
            self._file.close()


def open_source(spec: ImportSpec) -> Source:
    """The reader for ``spec.source``: flat or grouped HDF5/npz, a local Minari dataset, or a LeRobot folder."""
    fmt = spec.resolved_format()
    if fmt == "lerobot":
        from worldmodel.data.importers.lerobot_source import LeRobotSource

        return LeRobotSource(spec)
    if fmt == "minari":
        from worldmodel.data.importers.minari_source import MinariSource

        return MinariSource(spec)
    return FlatSource(spec, fmt) if spec.layout == "flat" else GroupSource(spec, fmt)
