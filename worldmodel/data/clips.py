"""Random-access clips of T frames from a trajectory file, split into train/validation by episode."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from worldmodel.data.reader import TrajectoryFile
from worldmodel.data.schema import DatasetError

Split = Literal["train", "val", "all"]


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic episode-level split: (train_ids, val_ids), both sorted.

    Splitting by episode (never by clip) keeps validation frames out of training entirely.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(num_episodes)
    n_val = int(np.ceil(val_fraction * num_episodes)) if val_fraction > 0 else 0
    if num_episodes >= 2:
        n_val = min(max(n_val, 1 if val_fraction > 0 else 0), num_episodes - 1)
    else:
        n_val = 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class ClipDataset(Dataset):
    """Clips of ``clip_len`` frames, ``frameskip`` simulator steps apart, from one trajectory file.

    Item (torch tensors):
      pixels  uint8   (T, 3, H, W)  of the first camera in ``cameras`` (the file's default camera when None)
      views   uint8   (K, T, 3, H, W)  only when ``cameras`` is given: the K listed cameras, in that order
      actions float32 (T-1, frameskip*A)  the skipped actions between two kept frames, concatenated
      proprio float32 (T, P)
      state   float32 (T, Ds)
      episode int64 (), start int64 () (frame index of the clip's first frame within its episode)

    Safe with DataLoader workers: each process opens its own HDF5 handle. ``in_memory=True`` loads
    every column once (fastest for datasets that fit in RAM); otherwise the small columns (actions,
    proprio, state: a few hundred bytes per frame) are still held in memory and only pixels are read
    from disk, one HDF5 read per clip (one per camera).

    ``cameras``: None (default) serves the file's default camera as ``pixels`` exactly as before; a list of
    camera names (``TrajectoryFile.cameras``; a version-1 file has one, ``"main"``) adds ``views`` and makes
    ``pixels`` the first listed camera. ``meta["cameras"]`` is the list served.
    """

    def __init__(
        self,
        path: str | Path,
        clip_len: int,
        frameskip: int = 1,
        split: Split = "train",
        val_fraction: float = 0.1,
        seed: int = 0,
        in_memory: bool = False,
        episodes: np.ndarray | None = None,
        cameras: list[str] | None = None,
    ) -> None:
        if clip_len < 1:
            raise ValueError(f"clip_len must be >= 1, got {clip_len}")
        if frameskip < 1:
            raise ValueError(f"frameskip must be >= 1, got {frameskip}")
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        self.file = TrajectoryFile(path)
        self.path = self.file.path
        if cameras is not None and (isinstance(cameras, str) or len(cameras) == 0):
            raise ValueError(f"cameras must be a non-empty list of camera names, got {cameras!r}")
        self.views = cameras is not None
        self.cameras = [str(c) for c in cameras] if cameras is not None else self.file.cameras[:1]
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras lists a camera twice: {self.cameras}")
        self._pixel_keys = [self.file.pixel_key(c) for c in self.cameras]  # DatasetError for an unknown camera
        shapes = {c: self.file.column_shape(k) for c, k in zip(self.cameras, self._pixel_keys)}
        if len(set(shapes.values())) != 1:
            raise DatasetError(
                self.path, f"cameras {self.cameras} have different image shapes {shapes}", "serve them separately"
            )
        self.clip_len = int(clip_len)
        self.frameskip = int(frameskip)
        self.span = (self.clip_len - 1) * self.frameskip + 1  # frames covered by one clip
        if episodes is None:
            train_ids, val_ids = split_episodes(self.file.num_episodes, val_fraction, seed)
            episodes = {"train": train_ids, "val": val_ids, "all": np.arange(self.file.num_episodes)}[split]
        self.episode_ids = np.asarray(episodes, dtype=np.int64)
        if len(self.episode_ids) == 0:
            raise DatasetError(
                self.path,
                f"split {split!r} holds no episodes "
                f"({self.file.num_episodes} in the file, val_fraction={val_fraction})",
                "collect more episodes or change val_fraction",
            )
        lengths = self.file.episode_lengths[self.episode_ids]
        counts = np.maximum(lengths - self.span + 1, 0)  # valid clip starts per episode
        if counts.sum() == 0:
            raise DatasetError(
                self.path,
                f"clip_len={clip_len} with frameskip={frameskip} spans {self.span} frames, but the longest "
                f"episode in split {split!r} has {int(lengths.max())}",
                "use a shorter clip_len or frameskip, or collect longer episodes",
            )
        keep = counts > 0
        self.episode_ids = self.episode_ids[keep]
        self.num_skipped_episodes = int((~keep).sum())
        self._counts = counts[keep]
        self._offsets = np.concatenate([[0], np.cumsum(self._counts)])  # (E'+1,)
        self.meta = {
            "env_id": self.file.meta.env_id,
            "env_kwargs": self.file.meta.env_kwargs,
            "action_low": self.file.meta.action_low,
            "action_high": self.file.meta.action_high,
            "control_dt": self.file.meta.control_dt * self.frameskip,
            "action_dim": self.file.meta.action_dim * self.frameskip,
            "proprio_dim": self.file.column_shape("proprio")[0],
            "state_dim": self.file.column_shape("state")[0],
            "image_shape": shapes[self.cameras[0]],
            "frameskip": self.frameskip,
            "cameras": list(self.cameras),
        }
        n = self.file.num_frames
        keys = ("actions", "proprio", "state")
        keys = (*self._pixel_keys, *keys) if in_memory else keys
        self._cache: dict[str, np.ndarray] = {k: self.file.read(k, 0, n) for k in keys}

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """Map a flat clip index to (episode id, start frame within the episode)."""
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range [0, {len(self)})")
        j = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return int(self.episode_ids[j]), int(index - self._offsets[j])

    def _read(self, key: str, start: int, stop: int) -> np.ndarray:
        if key in self._cache:
            return self._cache[key][start:stop]
        return self.file.read(key, start, stop)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ep, start = self.locate(int(index))
        g = int(self.file.episode_starts[ep]) + start  # global index of the first frame
        k, t = self.frameskip, self.clip_len
        views = [self._read(key, g, g + self.span)[::k] for key in self._pixel_keys]  # K x (T, H, W, 3)
        acts = self._read("actions", g, g + (t - 1) * k)  # ((T-1)*k, A)
        acts = acts.reshape(t - 1, k * acts.shape[-1])  # (T-1, k*A); (0, k*A) for single-frame clips
        proprio = self._read("proprio", g, g + self.span)[::k]  # (T, P)
        state = self._read("state", g, g + self.span)[::k]  # (T, Ds)
        item: dict[str, Any] = {
            "pixels": torch.from_numpy(np.ascontiguousarray(views[0])).permute(0, 3, 1, 2),  # (T, 3, H, W)
            "actions": torch.from_numpy(np.ascontiguousarray(acts, dtype=np.float32)),
            "proprio": torch.from_numpy(np.ascontiguousarray(proprio, dtype=np.float32)),
            "state": torch.from_numpy(np.ascontiguousarray(state, dtype=np.float32)),
            "episode": torch.tensor(ep, dtype=torch.int64),
            "start": torch.tensor(start, dtype=torch.int64),
        }
        if self.views:
            item["views"] = torch.from_numpy(np.stack(views)).permute(0, 1, 4, 2, 3)  # (K, T, 3, H, W)
        return item
