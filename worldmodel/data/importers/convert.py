"""Convert a foreign source into our trajectory schema: validate every episode, then write atomically.

Rules (also in docs/own_data.md):
  * pixels: HWC or CHW, 1/3/4 channels (gray is repeated to RGB, alpha dropped); uint8 kept; integer
    images must lie in 0-255; float images are 0-1 (scaled by 255 and rounded) with image_range=unit,
    0-255 (rounded) with byte, and with auto the first episode decides: max <= 1 means 0-1.
  * action: (T, A) or (T,) per episode, with T = frames (the last row's action is replaced by the
    zero padding our schema stores on an episode's last frame: its outcome is not observed) or
    T = frames - 1 (Minari; a zero row is appended).
  * proprio missing: a (T, 1) zero column (train with model.use_proprio=false).
  * state missing: proprio as float64 if mapped, else a (T, 1) zero column; goal_state = last state row.
  * success missing: false; distance missing: NaN; timestamps, when mapped, must increase strictly.
  * a mapped key the source lacks is an error, unless its column is in ``optional_keys``: then the column
    counts as missing (the rules above) and the summary says so; the summary lists unused source columns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.data.importers.sources import EpisodeRef, Source, open_source
from worldmodel.data.importers.spec import ImportSpec
from worldmodel.data.schema import SCHEMA_VERSION, DatasetError, DatasetMeta

DEFAULT_CONTROL_DT = 0.05


@dataclass
class ImportPlan:
    """What the scan pass found: episodes kept, image rule, action bounds and control_dt (with provenance)."""

    episodes: list[EpisodeRef]
    skipped: list[str]
    image_layout: str
    image_range: str
    action_low: np.ndarray  # (A,)
    action_high: np.ndarray  # (A,)
    control_dt: float
    control_dt_from: str
    frames: int
    notes: list[str] = field(default_factory=list)


def _fail(src: Source, ref: EpisodeRef, key: str, ours: str, problem: str, fix: str | None = None) -> DatasetError:
    """A DatasetError naming the file, the foreign key, our column and the episode's rows."""
    return DatasetError(src.path, f"key {key!r} (mapped to {ours}), {ref.label}: {problem}", fix)


def _bad_rows(mask: np.ndarray) -> str:
    """'rows a:b' of the first run of True in a per-row mask (episode-relative)."""
    bad = np.flatnonzero(mask)
    first = int(bad[0])
    last = first
    while last + 1 < len(mask) and mask[last + 1]:
        last += 1
    return f"rows {first}:{last + 1} of the episode ({len(bad)} bad rows in all)"


def image_layout_of(shape: tuple[int, ...], rule: str) -> str:
    """'hwc' or 'chw' for a (T, ...) image column under the configured rule; ValueError if impossible."""
    if len(shape) == 3:
        return "hw"  # (T, H, W) grayscale
    if len(shape) != 4:
        raise ValueError(f"images must be (T, H, W), (T, H, W, C) or (T, C, H, W), found {shape}")
    if rule != "auto":
        return rule
    if shape[-1] in (1, 3, 4):
        return "hwc"
    if shape[1] in (1, 3, 4):
        return "chw"
    raise ValueError(f"cannot tell channels in image shape {shape}; set image_layout to hwc or chw")


def convert_pixels(arr: np.ndarray, layout: str, value_range: str) -> np.ndarray:
    """Foreign images (T, ...) -> uint8 (T, H, W, 3) by the module's rules; ValueError naming the problem."""
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"images must be uint8, integer or float, found dtype {arr.dtype}")
    if layout == "hw":
        arr = arr[..., None]  # (T, H, W, 1)
    elif layout == "chw":
        arr = np.moveaxis(arr, 1, -1)  # (T, H, W, C)
    c = arr.shape[-1]
    if c not in (1, 3, 4):
        raise ValueError(f"images have {c} channels after layout {layout!r}; expected 1, 3 or 4 (check image_layout)")
    if c == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif c == 4:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"integer images must lie in 0-255, found {lo}..{hi}")
        return np.ascontiguousarray(arr.astype(np.uint8))
    bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
    if bad.any():
        raise ValueError(f"images hold NaN or inf at {_bad_rows(bad)}")
    top = 1.0 if value_range == "unit" else 255.0
    out_of = (arr.reshape(len(arr), -1).min(axis=1) < -1e-6) | (arr.reshape(len(arr), -1).max(axis=1) > top + 1e-6)
    if out_of.any():
        raise ValueError(
            f"float images must lie in 0-{top:g} for image_range={value_range!r}; values outside at {_bad_rows(out_of)}"
        )
    scaled = arr.astype(np.float64) * (255.0 if value_range == "unit" else 1.0)
    return np.ascontiguousarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _matrix(src: Source, ref: EpisodeRef, key: str, ours: str, arr: np.ndarray) -> np.ndarray:
    """A numeric (T,) or (T, D) column as float64 (T, D), finite; errors name key and rows."""
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise _fail(src, ref, key, ours, f"must be numeric, found dtype {arr.dtype}", "map a numeric column")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise _fail(src, ref, key, ours, f"must be (T,) or (T, D), found shape {arr.shape}", "flatten it first")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise _fail(src, ref, key, ours, f"NaN or inf at {_bad_rows(bad)}", "clean or drop those episodes")
    return arr


def _read(src: Source, ref: EpisodeRef, spec: ImportSpec, ours: str) -> np.ndarray | None:
    """Foreign column mapped to ``ours`` for one episode, or None when unmapped."""
    key = spec.keys.get(ours)
    return None if not key else src.read(ref, key)


def _actions(src: Source, ref: EpisodeRef, spec: ImportSpec, frames: int) -> np.ndarray:
    """(frames, A) float64 actions with the zero padding row last."""
    key = str(spec.keys["action"])
    a = _matrix(src, ref, key, "action", np.asarray(src.read(ref, key)))
    if a.shape[0] == frames:
        a = a.copy()
        a[-1] = 0.0
    elif a.shape[0] == frames - 1:
        a = np.concatenate([a, np.zeros((1, a.shape[1]))], axis=0)
    else:
        raise _fail(
            src,
            ref,
            key,
            "action",
            f"has {a.shape[0]} rows but pixels has {frames} (expected {frames} or {frames - 1})",
            "actions must be one per frame (or one per step)",
        )
    return a


def _timestamps(src: Source, ref: EpisodeRef, spec: ImportSpec, frames: int) -> np.ndarray | None:
    """Timestamps (frames,) float64, strictly increasing, or None when unmapped."""
    key = spec.keys.get("timestamp")
    if not key:
        return None
    t = np.asarray(src.read(ref, key)).reshape(-1).astype(np.float64)
    if t.shape[0] != frames:
        raise _fail(src, ref, key, "timestamp", f"has {t.shape[0]} rows but pixels has {frames}")
    back = np.concatenate([[False], ~(np.diff(t) > 0)])
    if back.any():
        i = int(np.flatnonzero(back)[0])
        raise _fail(
            src,
            ref,
            key,
            "timestamp",
            f"not strictly increasing at rows {i - 1}:{i + 1} of the episode ({t[i - 1]} then {t[i]})",
            "episode boundaries are probably wrong, or the rows are not in time order",
        )
    return t


def camera_columns(src: Source, spec: ImportSpec) -> list[tuple[str, str]]:
    """(our pixel column, foreign key) per camera: ``[('pixels', keys.pixels)]``, or for a source with named
    cameras (a LeRobot dataset) ``[('pixels/<camera>', video key), ...]`` in camera order."""
    cams = getattr(src, "cameras", None)
    if cams:
        return [(f"pixels/{name}", key) for name, key in cams]
    return [("pixels", str(spec.keys["pixels"]))]


def scan(src: Source, spec: ImportSpec) -> ImportPlan:
    """First pass over the small columns (and one image batch): episodes kept, image rule, bounds, dt."""
    keep: list[EpisodeRef] = []
    skipped: list[str] = []
    lows, highs, dts = [], [], []
    layout, value_range = "", spec.image_range
    if value_range == "auto" and getattr(src, "image_range", None):
        value_range = str(src.image_range)  # decoded video is uint8: nothing to read to decide
    frames = 0
    pkey = camera_columns(src, spec)[0][1]
    for ref in src.episodes:
        shape = src.shape(ref, pkey)
        n = int(shape[0]) if shape else 0
        if n < 2:
            if spec.drop_short:
                skipped.append(f"{ref.label}: {n} frame(s)")
                continue
            raise _fail(
                src,
                ref,
                pkey,
                "pixels",
                f"has {n} frame(s); an episode needs at least 2",
                "set drop_short=true to skip such episodes, or fix the boundaries",
            )
        if not layout:
            try:
                layout = image_layout_of(shape, spec.image_layout)
            except ValueError as exc:
                raise _fail(src, ref, pkey, "pixels", str(exc)) from None
            if value_range == "auto":
                px = src.read(ref, pkey)  # the first episode decides the float range
                is_float = np.issubdtype(px.dtype, np.floating)
                value_range = "unit" if is_float and float(np.nanmax(px)) <= 1.0 else "byte"
        a = _actions(src, ref, spec, n)[:-1]
        lows.append(a.min(axis=0) if len(a) else np.zeros(a.shape[1]))
        highs.append(a.max(axis=0) if len(a) else np.zeros(a.shape[1]))
        t = _timestamps(src, ref, spec, n)
        if t is not None:
            dts.append(np.diff(t))
        keep.append(ref)
        frames += n
    if not keep:
        raise DatasetError(src.path, "no episode with at least 2 frames to import")
    dims = {len(x) for x in lows}
    if len(dims) != 1:
        raise DatasetError(src.path, f"episodes disagree on the action dimension: {sorted(dims)}")
    if spec.action_low is not None:
        low = np.asarray(spec.action_low, dtype=np.float32).reshape(-1)
        high = np.asarray(spec.action_high, dtype=np.float32).reshape(-1)
        if low.shape != (dims.pop(),) or high.shape != low.shape or np.any(low > high):
            raise DatasetError(
                src.path, f"action_low/action_high {low.tolist()}/{high.tolist()} do not fit {len(lows[0])}-dim actions"
            )
    else:
        low = np.min(lows, axis=0).astype(np.float32)
        high = np.max(highs, axis=0).astype(np.float32)
    if spec.control_dt is not None:
        dt, dt_from = float(spec.control_dt), "config"
    elif dts:
        dt, dt_from = float(np.median(np.concatenate(dts))), "median timestamp step"
    else:
        dt, dt_from = DEFAULT_CONTROL_DT, "default (no control_dt or timestamps given)"
    return ImportPlan(keep, skipped, layout, value_range, low, high, dt, dt_from, frames)


def convert_episode(src: Source, ref: EpisodeRef, spec: ImportSpec, plan: ImportPlan) -> dict[str, np.ndarray]:
    """One foreign episode -> our frame columns plus its goal state (key 'goal_state')."""
    cols: dict[str, np.ndarray] = {}
    for ours, pkey in camera_columns(src, spec):
        try:
            cols[ours] = convert_pixels(src.read(ref, pkey), plan.image_layout, plan.image_range)  # (T, H, W, 3)
        except ValueError as exc:
            raise _fail(src, ref, pkey, ours, str(exc), "set image_layout / image_range, or fix the images") from None
    first = next(iter(cols))
    n = cols[first].shape[0]
    for ours, px in cols.items():
        if px.shape[0] != n:
            raise _fail(src, ref, ours, ours, f"has {px.shape[0]} frames but {first} has {n}")
    cols["actions"] = _actions(src, ref, spec, n).astype(np.float32)
    for ours in ("proprio", "state"):
        raw = _read(src, ref, spec, ours)
        if raw is not None:
            m = _matrix(src, ref, str(spec.keys[ours]), ours, raw)
            if m.shape[0] != n:
                raise _fail(src, ref, str(spec.keys[ours]), ours, f"has {m.shape[0]} rows but pixels has {n}")
            cols[ours] = m
    cols["proprio"] = cols.get("proprio", np.zeros((n, 1))).astype(np.float32)
    cols["state"] = cols.get("state", cols["proprio"]).astype(np.float64)
    succ = _read(src, ref, spec, "success")
    dist = _read(src, ref, spec, "distance")
    for ours, arr in (("success", succ), ("distance", dist)):
        if arr is not None and arr.reshape(-1).shape[0] != n:
            raise _fail(src, ref, str(spec.keys[ours]), ours, f"has {arr.reshape(-1).shape[0]} rows but pixels has {n}")
    cols["success"] = np.zeros(n, bool) if succ is None else succ.reshape(-1).astype(bool)
    cols["distance"] = np.full(n, np.nan, np.float32) if dist is None else dist.reshape(-1).astype(np.float32)
    if cols["actions"].shape[1] != plan.action_low.shape[0]:
        raise _fail(
            src,
            ref,
            str(spec.keys["action"]),
            "action",
            f"has dim {cols['actions'].shape[1]}, earlier episodes {plan.action_low.shape[0]}",
        )
    cols["goal_state"] = cols["state"][-1].copy()
    return cols


def _column_note(spec: ImportSpec, absent: dict[str, str], ours: str, default: str) -> str:
    """Summary entry of an optional column: its foreign key, or what stands in for it and why."""
    if spec.keys.get(ours):
        return str(spec.keys[ours])
    if ours in absent:
        return f"{default} (optional key {absent[ours]!r} is not in the source)"
    return default


def unused_columns(spec: ImportSpec, columns: list[str]) -> list[str]:
    """Keys the source holds that the import neither maps nor uses as episode boundaries (map them in
    ``keys`` when they are what you want, e.g. a state column)."""
    used = {k for k in spec.keys.values() if k}
    if spec.resolved_format_or_none() == "lerobot":
        from worldmodel.data.importers.lerobot_source import BOOKKEEPING

        return sorted(set(columns) - used - set(BOOKKEEPING) - set(spec.cameras or []))
    if spec.layout == "flat":
        used |= {k for k in (spec.boundaries.key, spec.boundaries.lengths_key) if k}
    return sorted(set(columns) - used)


def _import_layout(spec: ImportSpec, src: Source) -> str:
    """Provenance of the source layout: flat / episodes / minari / lerobot-<codebase_version>."""
    fmt = spec.resolved_format()
    if fmt == "lerobot":
        return f"lerobot-{getattr(src, 'version', '?')}"
    return "minari" if fmt == "minari" else spec.layout


def _lerobot_extra(src: Source, cameras: list[tuple[str, str]]) -> dict[str, Any]:
    """File provenance a LeRobot dataset adds: its fps, tasks and the video key of each camera."""
    if not hasattr(src, "fps"):
        return {}
    return {
        "fps": float(src.fps),
        "tasks": list(getattr(src, "tasks", [])),
        "camera_keys": {ours.split("/", 1)[-1]: key for ours, key in cameras},
    }


def _bar(episodes: list[Any], progress: bool) -> Any:
    """The episodes, with a tqdm bar on stderr when ``progress`` (decoding videos can take minutes)."""
    if not progress:
        return episodes
    from tqdm import tqdm

    return tqdm(episodes, desc="import episodes", unit="ep", dynamic_ncols=True)


def import_dataset(spec: ImportSpec, progress: bool = False) -> dict[str, Any]:
    """Validate ``spec.source`` and (unless dry_run) write it to ``spec.out``; returns a summary dict.
    ``progress``: a bar over the episodes as they are converted and written."""
    out = Path(spec.out)
    if out.exists() and not spec.overwrite and not spec.dry_run:
        raise FileExistsError(f"{out} exists; pass overwrite=true to replace it, or choose another out")
    t0 = time.perf_counter()
    src = open_source(spec)
    try:
        absent = dict(getattr(src, "absent", {}))
        spec = replace(spec, keys={k: (None if k in absent else v) for k, v in spec.keys.items()})
        plan = scan(src, spec)
        cameras = camera_columns(src, spec)
        env_id, env_kwargs = spec.env_id, dict(spec.env_kwargs)
        if env_id == "none" and getattr(src, "env_id", None):  # Minari records the env it was collected in
            env_id, env_kwargs = str(src.env_id), dict(getattr(src, "env_kwargs", {}))
        meta = DatasetMeta(
            schema_version=SCHEMA_VERSION,
            env_id=env_id,
            env_kwargs=env_kwargs,
            action_low=plan.action_low,
            action_high=plan.action_high,
            control_dt=plan.control_dt,
            policy=spec.policy,
            seed=int(spec.seed),
            extra={
                "imported_from": str(spec.source),
                "import_layout": _import_layout(spec, src),
                "keys": {k: v for k, v in spec.keys.items() if v},
                "image_layout": plan.image_layout,
                "image_range": plan.image_range,
                "control_dt_from": plan.control_dt_from,
                "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **_lerobot_extra(src, cameras),
            },
        )
        shapes: dict[str, Any] = {}
        if spec.dry_run:
            for ref in plan.episodes:
                cols = convert_episode(src, ref, spec, plan)
                shapes = {k: list(v.shape[1:]) for k, v in cols.items() if k != "goal_state"}
        else:
            from worldmodel.data.writer import TrajectoryWriter

            with TrajectoryWriter(out, meta, overwrite=spec.overwrite, compression=spec.compression) as w:
                for ref in _bar(plan.episodes, progress):
                    cols = convert_episode(src, ref, spec, plan)
                    goal = cols.pop("goal_state")
                    shapes = {k: list(v.shape[1:]) for k, v in cols.items()}
                    try:
                        w.append(cols, seed=ref.seed, goal_state=goal)
                    except ValueError as exc:
                        raise DatasetError(src.path, f"{ref.label}: {exc}") from None
    finally:
        src.close()
    summary = {
        "source": str(spec.source),
        "out": None if spec.dry_run else str(out),
        "dry_run": spec.dry_run,
        "episodes": len(plan.episodes),
        "skipped_episodes": plan.skipped,
        "frames": plan.frames,
        "rows_in_source": getattr(src, "num_rows", None),
        "image_shape": shapes.get(cameras[0][0]),
        "cameras": {ours.split("/", 1)[-1]: key for ours, key in cameras} if cameras[0][0] != "pixels" else None,
        "image_layout": plan.image_layout,
        "image_range": plan.image_range,
        "action_dim": int(plan.action_low.shape[0]),
        "action_low": plan.action_low.tolist(),
        "action_high": plan.action_high.tolist(),
        "proprio": _column_note(spec, absent, "proprio", "missing: (T, 1) zeros"),
        "state": _column_note(
            spec, absent, "state", "copy of proprio" if spec.keys.get("proprio") else "missing: (T, 1) zeros"
        ),
        "unused_columns": unused_columns(
            spec, [c for c in getattr(src, "columns", []) if c not in dict(cameras).values()]
        ),
        "control_dt": plan.control_dt,
        "control_dt_from": plan.control_dt_from,
        "env_id": meta.env_id,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if not spec.dry_run:
        summary["file_mb"] = round(out.stat().st_size / 2**20, 3)
    return summary
