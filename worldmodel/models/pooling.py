"""Token pooling: pooling specs ("none", "mean", "GxG", "GxGcat"), grid pooling of patch tokens, and per-frame
encoding with a frozen encoder into pooled latents.

The embedding cache stores latents made by :func:`encode_frames` and the world model encodes live frames
with it, so any observation maps to the latent the predictor was trained on.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodel.models.encoders.protocol import FrameEncoder


def pool_tokens(tokens: Tensor, grid: tuple[int, int] | None = (2, 2), hw: tuple[int, int] | None = None) -> Tensor:
    """Average spatial tokens (..., N, D) to a g x g grid (..., g*g, D), or (..., 1, D) when grid is None."""
    if grid is None:
        return tokens.mean(dim=-2, keepdim=True)
    *lead, n, d = tokens.shape
    if hw is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} tokens are not a square grid; pass hw")
        hw = (side, side)
    x = tokens.reshape(-1, hw[0], hw[1], d).permute(0, 3, 1, 2)  # (B*, D, H', W')
    x = F.adaptive_avg_pool2d(x, grid)  # (B*, D, g, g)
    return x.flatten(2).transpose(1, 2).reshape(*lead, grid[0] * grid[1], d)


def parse_pool(pool: str | int | None) -> tuple[int, int] | tuple[int, int, str] | None | str:
    """Validate a pooling spec: "none" -> "none" (patches), "mean" -> None (1 token), "GxG"/G -> (G, G),
    "GxGcat" -> (G, G, "cat"): the G x G grid concatenated into ONE token of G*G*D channels, which keeps
    position (unlike the mean) at the predictor cost of one token per frame."""
    if pool is None or (isinstance(pool, str) and pool.lower() == "mean"):
        return None
    if isinstance(pool, str) and pool.lower() in ("none", "patch", "patches"):
        return "none"
    if isinstance(pool, int) and not isinstance(pool, bool):
        return (pool, pool) if pool > 0 else _bad_pool(pool)
    if isinstance(pool, str) and pool.lower().endswith("cat"):
        grid = parse_pool(pool[:-3]) if pool[:-3] else None
        if isinstance(grid, tuple):
            return grid[0], grid[1], "cat"
        return _bad_pool(pool)
    if isinstance(pool, str):
        parts = pool.lower().split("x")
        if len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts):
            return int(parts[0]), int(parts[1])
        if pool.isdigit() and int(pool) > 0:
            return int(pool), int(pool)
    return _bad_pool(pool)


def _bad_pool(pool: Any) -> Any:
    """Raise the one error message for an invalid pooling spec."""
    raise ValueError(
        f"pool={pool!r} is not a pooling setting; use 'none' (all patch tokens), 'mean' (one token), "
        "'GxG' such as '2x2' (average to a G x G grid) or 'GxGcat' such as '2x2cat' (that grid as one token)"
    )


def pool_name(pool: str | int | None) -> str:
    """Canonical spelling of a pooling spec ("none", "mean" or "GxG"), used in cache keys and checkpoints."""
    p = parse_pool(pool)
    if p is None:
        return "mean"
    if p == "none":
        return "none"
    return f"{p[0]}x{p[1]}" + ("cat" if len(p) == 3 else "")


def num_pooled_tokens(pool: str | int | None, patch_grid: tuple[int, int]) -> int:
    """Latent tokens per frame N after pooling a (H', W') patch grid."""
    p = parse_pool(pool)
    if p is None:
        return 1
    if p == "none":
        return patch_grid[0] * patch_grid[1]
    if p[0] > patch_grid[0] or p[1] > patch_grid[1]:
        raise ValueError(f"pool grid {p[:2]} is larger than the encoder's patch grid {patch_grid}; pick a smaller grid")
    return 1 if len(p) == 3 else p[0] * p[1]


def pooled_dim(pool: str | int | None, dim: int) -> int:
    """Channels D of each pooled token: the encoder's dim, or G*G times it for a concatenated grid."""
    p = parse_pool(pool)
    return dim * p[0] * p[1] if isinstance(p, tuple) and len(p) == 3 else dim


def pool_frame_tokens(tokens: Tensor, pool: str | int | None, hw: tuple[int, int]) -> Tensor:
    """Pool one frame's patch tokens (F, H'*W', D) on an (H', W') grid -> (F, N, D'), differentiably."""
    p = parse_pool(pool)
    if p == "none":
        return tokens
    if isinstance(p, tuple) and len(p) == 3:  # concatenated grid: (F, 1, G*G*D)
        return pool_tokens(tokens, grid=p[:2], hw=hw).flatten(1)[:, None]
    return pool_tokens(tokens, grid=p, hw=hw)  # (F, N, D)


def frame_grid(encoder: FrameEncoder, frames: Tensor) -> tuple[int, int]:
    """Patch grid (H', W') of the tokens the encoder makes from frames (..., 3, H, W)."""
    return encoder.patch_grid(int(frames.shape[-2]), int(frames.shape[-1]))


@torch.no_grad()
def encode_frames(encoder: FrameEncoder, frames: Tensor, pool: str | int | None) -> Tensor:
    """Encode single frames with any frozen FrameEncoder (in-house VideoViT, V-JEPA 2, DINOv2) and pool:
    (F, 3, H, W) uint8 -> (F, N, D) float32."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected frames (F, 3, H, W), got {tuple(frames.shape)}")
    tokens = encoder.embed_image(frames)  # (F, H'*W', D)
    return pool_frame_tokens(tokens, pool, frame_grid(encoder, frames)).float()


@torch.no_grad()
def encode_views(encoder: FrameEncoder, views: list[Tensor], pool: str | int | None) -> Tensor:
    """Encode several cameras' frames with the same frozen encoder and pool each as :func:`encode_frames`:
    K tensors (F, 3, H_k, W_k) uint8 -> (F, N_1 + ... + N_K, D) float32, camera-major token order
    (all of camera 1's tokens, then camera 2's, ...). One camera gives exactly ``encode_frames``' output."""
    if len(views) == 0:
        raise ValueError("encode_views needs at least one camera's frames")
    counts = {int(v.shape[0]) for v in views}
    if len(counts) != 1:
        raise ValueError(f"every camera needs the same number of frames, got {[int(v.shape[0]) for v in views]}")
    return torch.cat([encode_frames(encoder, v, pool) for v in views], dim=1)  # (F, sum N_k, D)
