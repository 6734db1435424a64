"""Videos and plots of evaluation results (matplotlib with the Agg backend; mp4 via imageio-ffmpeg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def write_video_grid(
    frames: list[np.ndarray], path: str | Path, max_tiles: int = 8, fps: int = 10, scale: int = 2
) -> Path:
    """frames: per step (B, H, W', 3) tiles (observation beside goal) -> one mp4 with a near-square grid."""
    import imageio.v2 as imageio

    arr = np.stack(frames)[:, :max_tiles]  # (T, B, H, W', 3)
    t, b, h, w, _ = arr.shape
    cols = int(np.ceil(np.sqrt(b / 2))) or 1  # tiles are twice as wide as tall
    rows = int(np.ceil(b / cols))
    pad = 2
    grid = np.full((t, rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(b):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[:, y : y + h, x : x + w] = arr[:, i]
    if scale > 1:
        grid = grid.repeat(scale, axis=1).repeat(scale, axis=2)
    # H.264 in yuv420p (what browsers decode) needs even sizes: pad an odd one with a white line.
    grid = np.pad(grid, ((0, 0), (0, grid.shape[1] % 2), (0, grid.shape[2] % 2), (0, 0)), constant_values=255)
    path = Path(path)
    # moov atom first, so that a browser starts playing before the whole file has arrived (report.html shows these
    # inline).
    imageio.mimwrite(
        path,
        list(grid),
        fps=fps,
        macro_block_size=1,
        codec="libx264",
        pixelformat="yuv420p",
        output_params=["-movflags", "+faststart"],
    )
    return path


def plot_success(summaries: dict[str, dict[str, Any]], path: str | Path, title: str) -> Path:
    """Bar chart of success rate with 95% CI per method (floor, model(s), ceiling)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summaries)
    rates = [summaries[n]["success_rate"] for n in names]
    lo = [r - summaries[n]["success_ci95"][0] for n, r in zip(names, rates)]
    hi = [summaries[n]["success_ci95"][1] - r for n, r in zip(names, rates)]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.2))
    ax.bar(
        names,
        rates,
        yerr=[lo, hi],
        capsize=4,
        color=["#999999" if n == "random" else "#2a9d8f" if n in ("oracle", "expert") else "#e76f51" for n in names],
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (95% CI)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_distance_curves(
    records: dict[str, list[dict[str, Any]]], path: str | Path, threshold: float | None, title: str
) -> Path:
    """Mean (and interquartile band of) goal distance against env step, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for name, recs in records.items():
        if not recs:
            continue
        length = max(len(r["distance_curve"]) for r in recs)
        curves = np.array(
            [
                r["distance_curve"] + [r["distance_curve"][-1]] * (length - len(r["distance_curve"]))
                for r in recs
            ]
        )  # (E, T)
        x = np.arange(length)
        ax.plot(x, curves.mean(0), label=name)
        ax.fill_between(x, np.percentile(curves, 25, 0), np.percentile(curves, 75, 0), alpha=0.15)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=0.8, label="success threshold")
    ax.set_xlabel("env step")
    ax.set_ylabel("distance to goal")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
