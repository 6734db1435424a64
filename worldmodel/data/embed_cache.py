"""Frozen-encoder embedding cache: encode a trajectory file once; reuse it while encoder, data, pooling match.

Shape letters: F frames in the file, B batch, T time, N latent tokens per frame, D latent dim, A action dim, P
proprio dim, E episodes.

Per-frame embeddings: every frame is encoded alone by ``worldmodel.models.pooling.encode_frames`` with
``VideoViT.embed_image`` (the frame repeated to fill one tubelet, as V-JEPA 2-AC does), so each stored latent
depends on that frame only. This costs tubelet_t times the encoder compute of encoding whole clips, but any
single observation (a live camera frame, a goal image) maps to the same latent the predictor was trained on:
the world model encodes with the same function.

Any frozen encoder of the FrameEncoder protocol works (``worldmodel.models.encoders``): the in-house VideoViT
export, or V-JEPA 2 / DINOv2 from a local weights directory; the encoder is given as a path (in-house) or as an
``encoder`` config entry.

The cache is one HDF5 file written by atomic rename. Its ``key`` attribute records the encoder's weight
SHA-256 (the export file's bytes, or a weights directory's config + safetensors files; for a foundation encoder
also its name and options), the data file's identity (size, mtime and a hash of its episode index and
attributes), the pooling and the storage dtype; ``ensure_cache`` reuses a cache whose key matches and
rebuilds it otherwise.

Cameras: ``cameras=None`` encodes the file's default camera only (the key and file are exactly those of a
single-camera cache). A list of K camera names (``TrajectoryFile.cameras``) encodes each with the same frozen
encoder and pooling and stores the concatenation per frame: latents (F, K*N_cam, D), camera-major (all tokens of
the first listed camera, then the second's, ...). The key then records the list (only when it is not just the
default camera), and so does the default file name.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from worldmodel.data.clips import Split, split_episodes
from worldmodel.data.reader import TrajectoryFile
from worldmodel.data.schema import DatasetError
from worldmodel.models.encoders.protocol import FrameEncoder
from worldmodel.models.encoders.registry import (
    EncoderLike,
    encoder_spec,
    file_sha256,  # noqa: F401  (re-exported: its home before the encoder registry)
    load_frame_encoder,
    weights_sha256,
)
from worldmodel.models.pooling import encode_views, num_pooled_tokens, parse_pool, pool_name, pooled_dim

CACHE_FORMAT = 1
"""Bumped when the cache layout changes; an older cache is rebuilt."""


# --------------------------------------------------------------------------------------------- keys

def data_fingerprint(path: str | Path) -> dict[str, Any]:
    """Identity of a trajectory file: size, mtime_ns and a hash of its episode index and attributes."""
    path = Path(path)
    tf = TrajectoryFile(path)
    st = path.stat()
    h = hashlib.sha256()
    for arr in (tf.episode_starts, tf.episode_lengths, tf.episode_seeds):
        h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
    h.update(json.dumps(_meta_dict(tf), sort_keys=True).encode())
    tf.close()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns), "index_sha256": h.hexdigest()}


def _meta_dict(tf: TrajectoryFile) -> dict[str, Any]:
    """JSON-able file attributes that define the data."""
    m = tf.meta
    return {
        "env_id": m.env_id,
        "env_kwargs": m.env_kwargs,
        "action_low": m.action_low.tolist(),
        "action_high": m.action_high.tolist(),
        "control_dt": m.control_dt,
        "policy": m.policy,
        "seed": m.seed,
        "schema_version": m.schema_version,
    }


def resolve_cameras(tf: TrajectoryFile, cameras: list[str] | tuple[str, ...] | None) -> list[str]:
    """The cameras to encode, in order: the file's default camera for None, else the listed ones, each checked
    against the file (DatasetError naming the file's cameras for an unknown one)."""
    if cameras is None:
        return [tf.cameras[0]]
    if isinstance(cameras, str) or len(cameras) == 0:
        raise DatasetError(
            tf.path, f"cameras={cameras!r} must be a non-empty list of camera names", f"e.g. {tf.cameras}, or null"
        )
    names = [str(c) for c in cameras]
    if len(set(names)) != len(names):
        raise DatasetError(tf.path, f"cameras {names} lists a camera twice", "list each camera once")
    for name in names:
        tf.pixel_key(name)  # raises naming the file's cameras
    return names


def key_cameras(data_path: str | Path, cameras: list[str] | tuple[str, ...] | None) -> list[str] | None:
    """The camera list a cache key records: None when it is just the file's default camera (single-camera keys
    stay exactly as they were), else the checked list."""
    if cameras is None:
        return None
    tf = TrajectoryFile(data_path)
    try:
        names = resolve_cameras(tf, cameras)
        return None if names == [tf.cameras[0]] else names
    finally:
        tf.close()


def cache_key(
    encoder: EncoderLike,
    data_path: str | Path,
    pool: str | int | None,
    dtype: str,
    cameras: list[str] | tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Everything a cache depends on; two caches are interchangeable exactly when their keys are equal.

    `encoder` is an in-house export path or an ``encoder`` config entry. An in-house encoder's key is its file
    hash alone (as before foundation encoders existed, so older caches stay valid); a foundation encoder's also
    holds its name and the options that change its tokens (image size, dtype). ``cameras`` enters the key only
    when it is not the file's default camera alone (see the module docstring).
    """
    spec = encoder_spec(encoder)
    key = {
        "format": CACHE_FORMAT,
        "encoder_sha256": weights_sha256(spec),
        "data": data_fingerprint(data_path),
        "pool": pool_name(pool),
        "dtype": dtype,
    }
    if spec.foundation:
        key["encoder"] = {"name": spec.name, "options": spec.options}
    cams = key_cameras(data_path, cameras)
    if cams is not None:
        key["cameras"] = cams
    return key


def default_cache_path(
    data_path: str | Path,
    encoder: EncoderLike,
    pool: str | int | None,
    cameras: list[str] | tuple[str, ...] | None = None,
) -> Path:
    """<data dir>/.embed_cache/<data>.<encoder>-<hash>.<pool>[.<cam1>+<cam2>].h5 (cameras named only when not the
    default); the key, not the name, decides validity."""
    spec = encoder_spec(encoder)
    data_path = Path(data_path)
    ident = str(spec.path.resolve()) + (json.dumps(spec.options, sort_keys=True) if spec.foundation else "")
    tag = hashlib.sha256(ident.encode()).hexdigest()[:8]
    stem = f"{spec.name}-{spec.path.name}" if spec.foundation else spec.path.stem
    cams = key_cameras(data_path, cameras)
    views = "" if cams is None else "." + "+".join(cams)
    return data_path.parent / ".embed_cache" / f"{data_path.stem}.{stem}-{tag}.{pool_name(pool)}{views}.h5"


def read_cache_key(path: str | Path) -> dict[str, Any] | None:
    """The key stored in a cache file, or None if the file is missing or unreadable (then it gets rebuilt)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            return json.loads(f.attrs["key"])
    except (OSError, KeyError, ValueError):
        return None


def describe_key_change(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Human-readable reason a cache is rebuilt (which part of the key changed)."""
    if old is None:
        return "no valid cache"
    changed = [k for k in new if old.get(k) != new.get(k)]
    return "changed: " + ", ".join(changed) if changed else "unchanged"


# --------------------------------------------------------------------------------------------- building
@dataclass(frozen=True)
class CacheInfo:
    """Result of ensure_cache: where the cache is, whether it was (re)built now, and why."""

    path: Path
    rebuilt: bool
    reason: str
    key: dict[str, Any]


def ensure_cache(
    data_path: str | Path,
    encoder: EncoderLike,
    pool: str | int | None,
    device: str | torch.device,
    cache_path: str | Path | None = None,
    batch_frames: int = 256,
    dtype: str = "float32",
    rebuild: bool = False,
    progress: bool = True,
    cameras: list[str] | tuple[str, ...] | None = None,
) -> CacheInfo:
    """Return a valid embedding cache for (data, encoder, pool, cameras), building it (atomically) only when needed.

    `encoder`: an in-house export path (``encoder.pt`` or a save_pretrained dir) or an ``encoder`` config entry
    (``{name: vjepa2, path: <weights dir>}``); see ``worldmodel.models.encoders.registry``. `cameras`: None for
    the file's default camera, or a list of its camera names (latents concatenated per frame, in that order).
    """
    if dtype not in ("float32", "float16"):
        raise ValueError(f"cache dtype {dtype!r} unsupported; use float32 or float16")
    parse_pool(pool)
    path = Path(cache_path) if cache_path else default_cache_path(data_path, encoder, pool, cameras)
    key = cache_key(encoder, data_path, pool, dtype, cameras)
    old = read_cache_key(path)
    if old == key and not rebuild:
        return CacheInfo(path, False, "unchanged", key)
    reason = "rebuild requested" if old == key else describe_key_change(old, key)
    frozen = load_frame_encoder(encoder, device)
    build_cache(
        data_path, frozen, pool, path, key, batch_frames=batch_frames, dtype=dtype, progress=progress, cameras=cameras
    )
    return CacheInfo(path, True, reason, key)


def build_cache(
    data_path: str | Path,
    encoder: FrameEncoder,
    pool: str | int | None,
    out: str | Path,
    key: dict[str, Any],
    batch_frames: int = 256,
    dtype: str = "float32",
    progress: bool = True,
    cameras: list[str] | tuple[str, ...] | None = None,
) -> Path:
    """Encode every frame of a trajectory file in batches into a cache file, renamed into place at the end.

    Each listed camera (the default one for None) is encoded and pooled alone; a frame's latents are the
    concatenation over cameras, (K*N_cam, D)."""
    out = Path(out)
    tf = TrajectoryFile(data_path)
    n_frames = tf.num_frames
    try:  # an unknown camera, a patch grid that does not fit the frames, a pool grid too large: fail before writing
        cams = resolve_cameras(tf, cameras)
        n_tok = sum(num_pooled_tokens(pool, _camera_grid(tf, encoder, c)) for c in cams)
    except (ValueError, DatasetError):
        tf.close()
        raise
    out.parent.mkdir(parents=True, exist_ok=True)
    device = next(encoder.parameters()).device  # type: ignore[attr-defined]
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_frames, desc=f"encode {Path(data_path).name}", unit="frame", dynamic_ncols=True)
    try:
        with h5py.File(tmp, "w") as f:
            lat = f.create_dataset(
                "latents",
                shape=(n_frames, n_tok, pooled_dim(pool, encoder.dim)),
                dtype=dtype,
                chunks=(min(256, n_frames), n_tok, pooled_dim(pool, encoder.dim)),
            )
            for s in range(0, n_frames, batch_frames):
                e = min(s + batch_frames, n_frames)
                views = [
                    torch.from_numpy(tf.read_pixels(s, e, c)).to(device).permute(0, 3, 1, 2) for c in cams
                ]  # K x (b, 3, H, W)
                lat[s:e] = encode_views(encoder, views, pool).cpu().numpy().astype(dtype)  # (b, K*N_cam, D)
                if bar is not None:
                    bar.update(e - s)
            f.create_dataset("actions", data=tf.read("actions", 0, n_frames).astype(np.float32))  # (F, A)
            f.create_dataset("proprio", data=tf.read("proprio", 0, n_frames).astype(np.float32))  # (F, P)
            f.create_dataset("episode_starts", data=tf.episode_starts)
            f.create_dataset("episode_lengths", data=tf.episode_lengths)
            f.attrs["key"] = json.dumps(key, sort_keys=True)
            f.attrs["meta"] = json.dumps(_meta_dict(tf), sort_keys=True)
            f.attrs["data_path"] = str(Path(data_path).resolve())
            f.attrs["encoder_config"] = json.dumps(encoder.config_dict(), sort_keys=True)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
        tf.close()
    return out


def _camera_grid(tf: TrajectoryFile, encoder: FrameEncoder, camera: str) -> tuple[int, int]:
    """The encoder's patch grid (H', W') for one camera's frames of the file."""
    h, w, _ = tf.column_shape(tf.pixel_key(camera))
    return encoder.patch_grid(h, w)


# --------------------------------------------------------------------------------------------- reading
class EmbeddingCache:
    """A cache file loaded into memory: latents (F, N, D), actions (F, A), proprio (F, P), episode index."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(
                self.path,
                "embedding cache not found",
                "build it with worldmodel.data.embed_cache.ensure_cache",
            )
        try:
            with h5py.File(self.path, "r") as f:
                self.key = json.loads(f.attrs["key"])
                self.meta = json.loads(f.attrs["meta"])
                self.encoder_config = json.loads(f.attrs["encoder_config"])
                self.latents = np.asarray(f["latents"][:], dtype=np.float32)  # (F, N, D)
                self.actions = np.asarray(f["actions"][:], dtype=np.float32)  # (F, A)
                self.proprio = np.asarray(f["proprio"][:], dtype=np.float32)  # (F, P)
                self.episode_starts = np.asarray(f["episode_starts"][:], dtype=np.int64)  # (E,)
                self.episode_lengths = np.asarray(f["episode_lengths"][:], dtype=np.int64)  # (E,)
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(
                self.path, f"unreadable embedding cache ({exc})", "delete it; it is rebuilt on next use"
            ) from exc
        if self.key.get("format") != CACHE_FORMAT:
            raise DatasetError(
                self.path, f"cache format {self.key.get('format')} != {CACHE_FORMAT}", "delete it to rebuild"
            )

    @property
    def num_episodes(self) -> int:
        """Episodes E in the cached file."""
        return len(self.episode_starts)

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(N, D) of one frame's latents."""
        return self.latents.shape[1], self.latents.shape[2]

    @property
    def pool(self) -> str:
        """Pooling the cache was built with."""
        return str(self.key["pool"])

    @property
    def cameras(self) -> list[str] | None:
        """Cameras encoded, in token order; None for the file's default camera alone."""
        cams = self.key.get("cameras")
        return None if cams is None else [str(c) for c in cams]

    @property
    def num_cameras(self) -> int:
        """K, camera groups of tokens per frame (1 for the default camera)."""
        return 1 if self.cameras is None else len(self.cameras)


class LatentClipDataset(torch.utils.data.Dataset):
    """Clips over an EmbeddingCache, split by episode like ClipDataset (same seed -> same held-out episodes).

    Item: latents (T, N, D), actions (T-1, frameskip*A), proprio (T, P), episode (), start ().
    ``batch(indices)`` gathers many clips with one vectorised index (no per-clip Python loop).
    """

    def __init__(
        self,
        cache: EmbeddingCache,
        clip_len: int,
        frameskip: int = 1,
        split: Split = "train",
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        if clip_len < 2 or frameskip < 1:
            raise ValueError(f"clip_len must be >= 2 and frameskip >= 1, got {clip_len}, {frameskip}")
        self.cache, self.clip_len, self.frameskip = cache, int(clip_len), int(frameskip)
        train_ids, val_ids = split_episodes(cache.num_episodes, val_fraction, seed)
        ids = {"train": train_ids, "val": val_ids, "all": np.arange(cache.num_episodes)}.get(split)
        if ids is None:
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        self.span = (self.clip_len - 1) * self.frameskip + 1
        counts = np.maximum(cache.episode_lengths[ids] - self.span + 1, 0)  # valid starts per episode
        if len(ids) == 0 or counts.sum() == 0:
            raise DatasetError(
                cache.path,
                f"split {split!r} has no clip of {self.span} frames (clip_len={clip_len}, frameskip={frameskip})",
                "use a shorter clip_len/frameskip, a smaller val_fraction, or more/longer episodes",
            )
        self.episode_ids = ids[counts > 0]
        counts = counts[counts > 0]
        ep_rep = np.repeat(self.episode_ids, counts)  # (C,) episode of each clip
        first = np.repeat(np.cumsum(counts) - counts, counts)
        self.clip_episode = ep_rep
        self.clip_start = np.arange(int(counts.sum())) - first  # (C,) start within its episode
        self.clip_global = cache.episode_starts[ep_rep] + self.clip_start  # (C,) global first frame
        self.frame_ids = self.episode_frames()

    def episode_frames(self) -> np.ndarray:
        """Global frame indices of every frame of this split's episodes (for statistics)."""
        return np.concatenate(
            [
                np.arange(s, s + n)
                for s, n in zip(
                    self.cache.episode_starts[self.episode_ids], self.cache.episode_lengths[self.episode_ids]
                )
            ]
        )

    def __len__(self) -> int:
        return len(self.clip_global)

    def batch(self, indices: np.ndarray | list[int]) -> dict[str, Tensor]:
        """Gather clips: latents (B, T, N, D), actions (B, T-1, k*A), proprio (B, T, P), episode/start."""
        idx = np.asarray(indices, dtype=np.int64)
        g = self.clip_global[idx]  # (B,)
        k, t = self.frameskip, self.clip_len
        frames = g[:, None] + np.arange(t)[None, :] * k  # (B, T)
        act_rows = g[:, None] + np.arange((t - 1) * k)[None, :]  # (B, (T-1)*k)
        acts = self.cache.actions[act_rows].reshape(len(idx), t - 1, -1)  # (B, T-1, k*A)
        return {
            "latents": torch.from_numpy(self.cache.latents[frames]),  # (B, T, N, D)
            "actions": torch.from_numpy(acts),
            "proprio": torch.from_numpy(self.cache.proprio[frames]),  # (B, T, P)
            "episode": torch.from_numpy(self.clip_episode[idx]),
            "start": torch.from_numpy(self.clip_start[idx]),
        }

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range [0, {len(self)})")
        return {k: v[0] for k, v in self.batch([index]).items()}
