"""Fit the learned step metric (``worldmodel/models/metric.py``) on a world model's latents of whole trajectories.

Objective (one step): with d = |phi(x) - phi(y)|,

    loss = - mean(min(d(random pair), cap)) + penalty * mean(relu(d(z_t, z_t+1) - 1)^2)

Random pairs are any two training frames; (z_t, z_t+1) are consecutive frames of one trajectory. The check
on held-out trajectories needs no labels either: the mean distance at time offsets 1, 2, 4, ... within an
episode should grow with the offset, and consecutive frames should stay about one step apart.

Shape letters: F frames, N latent tokens, D latent dim, B batch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodel.config.train import LatentMetricConfig
from worldmodel.models.metric import LatentMetric

OFFSETS = (1, 2, 4, 8, 16, 32)
"""time offsets (data steps) at which the held-out check reports the mean distance"""


def episode_frames(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(all frame indices, frames that have a successor in their episode) of the given episodes."""
    frames = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)])
    heads = np.concatenate([np.arange(s, s + n - 1) for s, n in zip(starts, lengths)])
    return frames, heads


def metric_loss(metric: LatentMetric, z: Tensor, heads: Tensor, a: Tensor, b: Tensor, cfg: LatentMetricConfig) -> dict:
    """The objective on one batch of frame indices into z (F, N, D): heads (B,) with successors, pairs a, b (B,)."""
    d_step = (metric(z[heads]) - metric(z[heads + 1])).norm(dim=-1)  # (B,)
    d_pair = (metric(z[a]) - metric(z[b])).norm(dim=-1)  # (B,)
    violation = torch.relu(d_step - 1.0).pow(2).mean()
    loss = -d_pair.clamp(max=cfg.cap).mean() + cfg.penalty * violation
    return {"loss": loss, "step_distance": d_step.mean(), "pair_distance": d_pair.mean(), "violation": violation}


@torch.no_grad()
def latent_l1_per_step(metric: LatentMetric, z: Tensor, frames: np.ndarray, rng: np.random.Generator) -> float:
    """Mean latent L1 (over tokens and channels) per metric step, over 4096 random pairs of the given frames."""
    a, b = (torch.from_numpy(rng.choice(frames, 4096)).to(z.device) for _ in range(2))
    l1 = (z[a] - z[b]).abs().mean((-1, -2))  # (4096,)
    return float(l1.mean() / metric.distance(z[a], z[b]).mean().clamp_min(1e-6))


@torch.no_grad()
def offset_check(metric: LatentMetric, z: Tensor, starts: np.ndarray, lengths: np.ndarray) -> dict[str, float]:
    """Mean distance between frames t and t + k of the same (held-out) episode, for k in OFFSETS that fit."""
    out = {}
    for k in OFFSETS:
        rows = [np.arange(s, s + n - k) for s, n in zip(starts, lengths) if n > k]
        if not rows:
            break
        i = torch.from_numpy(np.concatenate(rows)).to(z.device)
        out[f"offset_{k}"] = float(metric.distance(z[i], z[i + k]).mean())
    return out


def fit_latent_metric(
    latents: Tensor,
    train_episodes: tuple[np.ndarray, np.ndarray],
    cfg: LatentMetricConfig,
    seed: int = 0,
    val_episodes: tuple[np.ndarray, np.ndarray] | None = None,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> tuple[LatentMetric, dict[str, Any]]:
    """Train a LatentMetric on latents (F, N, D) (the world model's space) of the given episodes, on ``device``.

    ``train_episodes`` / ``val_episodes`` are (starts, lengths) arrays into the frame axis of ``latents``.
    Returns the metric in eval mode (on ``device``) and a summary (final losses, the held-out offset check, seconds).
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    frames, heads = episode_frames(*train_episodes)
    if len(heads) == 0:
        raise ValueError("the latent metric needs episodes of at least two frames")
    z = latents.float().to(device)  # (F, N, D)
    ref = z[torch.from_numpy(frames).to(device)]
    torch.manual_seed(seed)
    shape = tuple(z.shape[1:])
    metric = LatentMetric(shape, cfg.width, cfg.dim, ref.mean(0), ref.std(0) + 1e-3).to(device)  # type: ignore[arg-type]
    opt = torch.optim.AdamW(metric.net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    row: dict[str, Tensor] = {}
    for _ in tqdm(range(cfg.steps), desc="train metric", disable=not progress, dynamic_ncols=True):
        draw = [torch.from_numpy(rng.choice(pool, cfg.batch_size)).to(device) for pool in (heads, frames, frames)]
        row = metric_loss(metric, z, *draw, cfg)
        opt.zero_grad(set_to_none=True)
        row["loss"].backward()
        opt.step()
    metric.eval().requires_grad_(False)
    metric.unit.fill_(latent_l1_per_step(metric, z, frames, rng))
    summary: dict[str, Any] = {k: float(v.detach()) for k, v in row.items()}
    summary["unit"] = float(metric.unit)
    summary["seconds"] = time.perf_counter() - t0
    if val_episodes is not None and len(val_episodes[0]):
        summary["val"] = offset_check(metric, z, *val_episodes)
    return metric, summary
