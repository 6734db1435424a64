"""Dataset previews a person can look at: a frame grid (PNG) and a side-by-side episode video (mp4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldmodel.data.reader import TrajectoryFile


def frame_grid(
    tf: TrajectoryFile, episodes: int = 6, frames: int = 8, pad: int = 2, camera: str | None = None
) -> np.ndarray:
    """(rows*H, cols*W, 3) uint8 grid: one row per episode, ``frames`` evenly spaced frames per row, of
    ``camera`` (the file's default camera for None)."""
    ids = np.linspace(0, tf.num_episodes - 1, num=min(episodes, tf.num_episodes)).round().astype(int)
    h, w, _ = tf.column_shape(tf.pixel_key(camera))
    grid = np.full((len(ids) * (h + pad) + pad, frames * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for r, ep in enumerate(ids):
        s, n = int(tf.episode_starts[ep]), int(tf.episode_lengths[ep])
        ts = np.linspace(0, n - 1, num=frames).round().astype(int)
        px = tf.read_pixels(s, s + n, camera)[ts]  # (frames, H, W, 3)
        for c in range(frames):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            grid[y : y + h, x : x + w] = px[c]
    return grid


def episode_video(
    tf: TrajectoryFile,
    path: str | Path,
    episodes: int = 4,
    fps: int = 10,
    scale: int = 2,
    camera: str | None = None,
) -> Path:
    """Write an mp4 with ``episodes`` episodes of ``camera`` side by side (shorter ones hold their last frame)."""
    import imageio.v2 as imageio

    ids = list(range(min(episodes, tf.num_episodes)))
    clips = []
    for ep in ids:
        s, n = int(tf.episode_starts[ep]), int(tf.episode_lengths[ep])
        clips.append(tf.read_pixels(s, s + n, camera))  # (n, H, W, 3)
    length = max(len(c) for c in clips)
    clips = [np.concatenate([c, np.repeat(c[-1:], length - len(c), axis=0)]) for c in clips]
    video = np.concatenate(clips, axis=2)  # (length, H, W*E, 3)
    if scale > 1:
        video = video.repeat(scale, axis=1).repeat(scale, axis=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # macro_block_size=1 keeps odd sizes valid; libx264 via imageio-ffmpeg's bundled binary.
    imageio.mimwrite(path, list(video), fps=fps, macro_block_size=1)
    return path
