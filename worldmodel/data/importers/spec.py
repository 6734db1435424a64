"""What an import does, as a typed config: source file and layout, key mapping, image rules, file metadata.

The YAML files in ``configs/import/`` are this dataclass written out; ``ImportSpec.from_dict`` validates
them so a misspelt field fails before any data is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

FORMATS = ("auto", "hdf5", "npz", "minari", "lerobot")
LAYOUTS = ("flat", "episodes")
BOUNDARY_KINDS = ("lengths", "offsets", "ranges", "ends", "index")
IMAGE_LAYOUTS = ("auto", "hwc", "chw")
IMAGE_RANGES = ("auto", "unit", "byte")
OUR_KEYS = ("pixels", "action", "proprio", "state", "success", "distance", "timestamp")
REQUIRED_KEYS = ("pixels", "action")


@dataclass(frozen=True)
class Boundaries:
    """How flat rows split into episodes (layout=flat).

    kind: lengths (key: (E,) frames per episode, tiling the rows from 0) | offsets (key: (E,) first row of
    each episode, each running to the next one; add lengths_key for stable-worldmodel's ep_offset + ep_len)
    | ranges (key: (E, 2) [start, stop) rows, LeRobot's from/to index) | ends (key: (N,) flag true on each
    episode's last row) | index (key: (N,) episode index column, each episode a contiguous run).
    """

    kind: str = "index"
    key: str = "episode_index"
    lengths_key: str | None = None


@dataclass(frozen=True)
class ImportSpec:
    """One import: read ``source`` laid out as ``layout``, map ``keys`` onto our columns, write ``out``."""

    source: str
    """Foreign file (.h5/.hdf5/.npz), a folder of per-episode .npz/.h5 files, a Minari dataset id, or a LeRobot
    dataset folder (format=lerobot)."""
    out: str
    """Output trajectory file (our HDF5 schema); nothing is written with dry_run."""
    keys: dict[str, str | None]
    """Our column -> the foreign key/path ('obs/pixels'); pixels and action are required."""
    optional_keys: list[str] = field(default_factory=list)
    """Our columns whose mapped key a file may lack: then the column is treated as unmapped (its documented
    default, e.g. state = a copy of proprio) and the summary says so. Any other mapped key that is missing is
    an error."""
    format: str = "auto"
    """auto (from the extension; a folder with meta/info.json is a LeRobot dataset) | hdf5 | npz | minari |
    lerobot (a LeRobot dataset folder, v2.1 or v3.0: parquet tables and one mp4 per camera)."""
    cameras: list[str] | None = None
    """format=lerobot: the video features to import, in order (the first is the default camera), e.g.
    [observation.images.top, observation.images.wrist]; null = every video feature in meta/info.json order.
    Each is written as pixels/<name> with the ``observation.images.`` prefix dropped (schema v2)."""
    layout: str = "flat"
    """flat: columns over all rows with episode boundaries | episodes: one group (or file) per episode."""
    boundaries: Boundaries = field(default_factory=Boundaries)
    """layout=flat: how rows split into episodes."""
    episode_pattern: str = "*"
    """layout=episodes: glob on group names / npz key prefixes / file names that are episodes."""
    image_layout: str = "auto"
    """auto (last axis 1/3/4 channels -> HWC, else axis 1 -> CHW) | hwc | chw."""
    image_range: str = "auto"
    """Float images only: unit (0-1, scaled by 255) | byte (0-255) | auto (unit iff the first episode's max <= 1)."""
    drop_short: bool = False
    """Skip episodes with fewer than 2 frames instead of failing."""
    env_id: str = "none"
    """Gymnasium id the data came from (needed only for closed-loop evaluation)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of that env."""
    control_dt: float | None = None
    """Seconds per step; default: median timestamp step, else 0.05."""
    action_low: list[float] | None = None
    """Action bounds; default: per-dimension min over the data."""
    action_high: list[float] | None = None
    """Action bounds; default: per-dimension max over the data."""
    policy: str = "imported"
    """Provenance written to the file's policy attribute."""
    seed: int = 0
    """Written to the file's seed attribute."""
    overwrite: bool = False
    """Replace an existing output file."""
    dry_run: bool = False
    """Validate and summarise only."""
    compression: str | None = "lzf"
    """HDF5 compression of the output: lzf | gzip | None."""

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> ImportSpec:
        """Build and validate a spec from a plain dict (a Hydra config converted to a container)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ValueError(f"import config has unknown field(s) {unknown}; valid fields: {sorted(names)}")
        for req in ("source", "out", "keys"):
            if cfg.get(req) in (None, "", {}):
                raise ValueError(f"import config needs {req!r} (see configs/import/*.yaml and docs/own_data.md)")
        kw = dict(cfg)
        b = dict(kw.pop("boundaries", None) or {})
        bad_b = sorted(set(b) - {"kind", "key", "lengths_key"})
        if bad_b:
            raise ValueError(f"boundaries has unknown field(s) {bad_b}; use kind, key, lengths_key")
        kw["boundaries"] = Boundaries(**b)
        kw["keys"] = dict(kw["keys"])
        kw["optional_keys"] = list(kw.get("optional_keys") or [])
        if kw.get("cameras") is not None:
            cams = kw["cameras"]
            kw["cameras"] = [str(c) for c in cams] if isinstance(cams, (list, tuple)) else cams
        if kw.get("compression") in ("none", "None"):
            kw["compression"] = None
        spec = cls(**kw)
        spec.check()
        return spec

    def check(self) -> None:
        """Raise ValueError for a field value outside its allowed set."""
        choices = {
            "format": (self.format, FORMATS),
            "layout": (self.layout, LAYOUTS),
            "boundaries.kind": (self.boundaries.kind, BOUNDARY_KINDS),
            "image_layout": (self.image_layout, IMAGE_LAYOUTS),
            "image_range": (self.image_range, IMAGE_RANGES),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"import config: {name}={value!r} must be one of {allowed}")
        bad = sorted(set(self.keys) - set(OUR_KEYS))
        if bad:
            raise ValueError(f"import config: keys has unknown column(s) {bad}; map any of {OUR_KEYS}")
        bad_opt = sorted(set(self.optional_keys) - set(OUR_KEYS))
        if bad_opt:
            raise ValueError(f"import config: optional_keys has unknown column(s) {bad_opt}; use any of {OUR_KEYS}")
        required_opt = [k for k in REQUIRED_KEYS if k in self.optional_keys]
        if required_opt:
            raise ValueError(f"import config: {required_opt} cannot be optional (every import needs pixels and action)")
        lerobot = self.resolved_format_or_none() == "lerobot"
        if lerobot and self.keys.get("pixels"):
            raise ValueError(
                f"import config: {self.source} is a LeRobot dataset folder, whose cameras are chosen with `cameras` "
                f"(video features), not keys.pixels={self.keys['pixels']!r}; use --config-name lerobot_dataset, "
                "or set keys.pixels=null"
            )
        if self.cameras is not None:
            if not lerobot:
                raise ValueError("import config: cameras is for format=lerobot; map the pixels with keys.pixels")
            if isinstance(self.cameras, str) or not self.cameras or len(set(self.cameras)) != len(self.cameras):
                raise ValueError(f"import config: cameras={self.cameras!r} must be a non-empty list without repeats")
        missing = [k for k in REQUIRED_KEYS if not self.keys.get(k) and not (lerobot and k == "pixels")]
        if missing:
            raise ValueError(f"import config: keys must map {missing} to a key of the source file")
        if (self.action_low is None) != (self.action_high is None):
            raise ValueError("import config: give both action_low and action_high, or neither")
        if self.compression not in (None, "lzf", "gzip"):
            raise ValueError(f"import config: compression={self.compression!r} must be lzf, gzip or none")

    def resolved_format_or_none(self) -> str | None:
        """``resolved_format()``, or None when it cannot tell."""
        try:
            return self.resolved_format()
        except ValueError:
            return None

    def resolved_format(self) -> str:
        """The source format, guessed from the extension for format=auto."""
        if self.format != "auto":
            return self.format
        p = Path(self.source)
        if p.is_dir() and (p / "meta" / "info.json").is_file():
            return "lerobot"
        if p.suffix in (".h5", ".hdf5"):
            return "hdf5"
        if p.suffix == ".npz":
            return "npz"
        if p.is_dir():
            kinds = {q.suffix for q in p.iterdir() if q.is_file()}
            if kinds & {".npz"}:
                return "npz"
            if kinds & {".h5", ".hdf5"}:
                return "hdf5"
        if not p.exists() and re.fullmatch(r"[\w.-]+(/[\w.-]+)*-v\d+", self.source):
            return "minari"  # a Minari id: [namespace/]name-v<version>
        raise ValueError(
            f"{self.source}: cannot tell the format from the name; set format to hdf5, npz, minari or lerobot"
        )
