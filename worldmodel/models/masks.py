"""V-JEPA style 3D masks sampled per sample but returned as batched index tensors (B, Nc), (B, Nt)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class MaskSpec:
    """One mask set: `block` = union of spatial blocks over a time span; `causal` = past context -> future."""

    kind: str = "block"  # "block" | "causal"
    num_blocks: int = 8
    spatial_scale: tuple[float, float] = (0.15, 0.15)  # fraction of the H' x W' plane per block
    aspect_ratio: tuple[float, float] = (0.75, 1.5)  # block height / width, log-uniform
    temporal_scale: tuple[float, float] = (1.0, 1.0)  # fraction of T' each block spans (1.0 = whole clip)
    context_t: int = 1  # causal: number of leading tubelet steps given as context

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MaskSpec:
        """Build from a config mapping; lists become tuples."""
        kw = dict(d)
        for key in ("spatial_scale", "aspect_ratio", "temporal_scale"):
            if key in kw:
                v = kw[key]
                kw[key] = (float(v), float(v)) if isinstance(v, (int, float)) else (float(v[0]), float(v[1]))
        return cls(**kw)


def _uniform(lo: float, hi: float, shape: tuple[int, ...], g: torch.Generator) -> Tensor:
    """U(lo, hi) samples of `shape` from generator `g`."""
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def sample_block_masks(spec: MaskSpec, grid: tuple[int, int, int], batch_size: int, g: torch.Generator) -> Tensor:
    """Target masks, union of `num_blocks` random 3D blocks per sample, vectorised: -> (B, T'*H'*W') bool."""
    gt, gh, gw = grid
    b, k = batch_size, spec.num_blocks
    scale = _uniform(*spec.spatial_scale, (b, k), g)  # (B, K)
    log_ar = _uniform(math.log(spec.aspect_ratio[0]), math.log(spec.aspect_ratio[1]), (b, k), g)
    ar = log_ar.exp()
    area = scale * gh * gw
    h = (area * ar).sqrt().round().clamp(1, gh).long()  # (B, K)
    w = (area / ar).sqrt().round().clamp(1, gw).long()
    tt = (_uniform(*spec.temporal_scale, (b, k), g) * gt).round().clamp(1, gt).long()
    top = (torch.rand((b, k), generator=g) * (gh - h + 1)).floor().long()
    left = (torch.rand((b, k), generator=g) * (gw - w + 1)).floor().long()
    t0 = (torch.rand((b, k), generator=g) * (gt - tt + 1)).floor().long()
    ti = torch.arange(gt).view(1, 1, gt, 1, 1)
    ri = torch.arange(gh).view(1, 1, 1, gh, 1)
    ci = torch.arange(gw).view(1, 1, 1, 1, gw)

    def inside(i: Tensor, lo: Tensor, n: Tensor) -> Tensor:
        """Broadcast test lo <= i < lo + n with (B, K) bounds."""
        lo5, n5 = lo.view(b, k, 1, 1, 1), n.view(b, k, 1, 1, 1)
        return (i >= lo5) & (i < lo5 + n5)

    blocks = inside(ti, t0, tt) & inside(ri, top, h) & inside(ci, left, w)  # (B, K, T', H', W')
    return blocks.any(dim=1).reshape(b, gt * gh * gw)


def sample_causal_masks(
    spec: MaskSpec, grid: tuple[int, int, int], batch_size: int, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Context = the first `context_t` tubelet steps; target = later steps (optionally only inside blocks)."""
    gt, gh, gw = grid
    if not 0 < spec.context_t < gt:
        raise ValueError(f"causal context_t={spec.context_t} must be in [1, {gt - 1}] for T'={gt}")
    t_of = torch.arange(gt).repeat_interleave(gh * gw)  # (N,)
    past = (t_of < spec.context_t).unsqueeze(0).expand(batch_size, -1)  # (B, N)
    future = ~past
    if spec.num_blocks > 0:
        future = future & sample_block_masks(spec, grid, batch_size, g)
    return past.clone(), future


def select_indices(mask: Tensor, count: int, g: torch.Generator) -> Tensor:
    """Pick `count` random True positions per row, sorted: (B, N) bool -> (B, count) long."""
    keys = torch.rand(mask.shape, generator=g)
    keys = torch.where(mask, keys, torch.full_like(keys, 2.0))  # unmasked positions sort last
    idx = keys.argsort(dim=1)[:, :count]
    return idx.sort(dim=1).values


class MaskSampler:
    """Samples each mask set for a batch as disjoint (context idx (B, Nc), target idx (B, Nt))."""

    def __init__(
        self, specs: Sequence[MaskSpec], grid: tuple[int, int, int], min_context: int = 4, max_tries: int = 20
    ) -> None:
        self.specs = list(specs)
        self.grid = tuple(grid)
        self.num_tokens = grid[0] * grid[1] * grid[2]
        self.min_context = min_context
        self.max_tries = max_tries

    def _masks(self, spec: MaskSpec, batch_size: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """(context, target) bool masks (B, N); resamples rows whose context or target is too small."""
        if spec.kind == "causal":
            return sample_causal_masks(spec, self.grid, batch_size, g)
        if spec.kind != "block":
            raise ValueError(f"unknown mask kind {spec.kind!r}")
        tgt = sample_block_masks(spec, self.grid, batch_size, g)
        for _ in range(self.max_tries):
            ctx_n = (~tgt).sum(1)
            bad = (ctx_n < self.min_context) | (tgt.sum(1) == 0)
            if not bool(bad.any()):
                break
            tgt[bad] = sample_block_masks(spec, self.grid, int(bad.sum()), g)
        return ~tgt, tgt

    def __call__(self, batch_size: int, g: torch.Generator) -> list[tuple[Tensor, Tensor]]:
        """One (context idx, target idx) pair per mask set, trimmed to the batch-minimum counts."""
        out = []
        for spec in self.specs:
            ctx, tgt = self._masks(spec, batch_size, g)
            nc, nt = int(ctx.sum(1).min()), int(tgt.sum(1).min())
            if nc < 1 or nt < 1:
                raise RuntimeError(f"mask set {spec} produced an empty context or target")
            out.append((select_indices(ctx, nc, g), select_indices(tgt, nt, g)))
        return out


def default_vjepa_specs() -> list[MaskSpec]:
    """V-JEPA multi-block masks: 8 short-range blocks at scale 0.15 and 2 long-range blocks at scale 0.7."""
    return [
        MaskSpec(kind="block", num_blocks=8, spatial_scale=(0.15, 0.15), aspect_ratio=(0.75, 1.5)),
        MaskSpec(kind="block", num_blocks=2, spatial_scale=(0.7, 0.7), aspect_ratio=(0.75, 1.5)),
    ]
