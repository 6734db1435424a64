"""Video ViT encoder: tubelet patch embedding, 3D positions, pre-norm SDPA blocks, frozen-use helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodel.checkpoint import (
    load_checkpoint,
    load_pretrained_dir,
    load_state_dict_checked,
    save_checkpoint,
    save_pretrained_dir,
)
from worldmodel.models.encoders.protocol import IN_HOUSE, EncoderError

ENCODER_FORMAT = "worldmodel.encoder/v1"
PRETRAINED_MODEL_TYPE = "worldmodel-videovit"
"""``model_type`` in the config.json of a VideoViT saved with ``save_pretrained``."""


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of a video ViT; a plain record so it can be stored next to the weights."""

    img_size: int = 64
    num_frames: int = 4
    tubelet: int = 2
    patch: int = 8
    in_chans: int = 3
    dim: int = 192
    depth: int = 6
    heads: int = 3
    mlp_ratio: float = 4.0
    pos_embed: str = "sincos"  # "sincos" (fixed) or "learned"
    qkv_bias: bool = True
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EncoderConfig:
        """Build from a mapping (e.g. a Hydra node), ignoring unknown keys such as `name`."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in dict(d).items() if k in known}
        for key in ("mean", "std"):
            if key in kw:
                kw[key] = tuple(float(x) for x in kw[key])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with only primitive values (safe for weights_only checkpoints)."""
        d = asdict(self)
        d["mean"] = list(d["mean"])
        d["std"] = list(d["std"])
        return d

    def grid(self, frames: int | None = None, size: int | None = None) -> tuple[int, int, int]:
        """Token grid (T', H', W') for a clip of `frames` frames at `size` x `size` pixels."""
        f = self.num_frames if frames is None else frames
        s = self.img_size if size is None else size
        return f // self.tubelet, s // self.patch, s // self.patch


def _sincos_1d(pos: Tensor, dim: int) -> Tensor:
    """Sin/cos features of float positions: (L,) -> (L, dim), dim even."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / max(dim // 2, 1)
    omega = 1.0 / (10000.0**omega)  # (dim/2,)
    out = pos.double()[:, None] * omega[None, :]  # (L, dim/2)
    return torch.cat([out.sin(), out.cos()], dim=1).float()


def sincos_pos_embed_3d(grid: tuple[int, int, int], dim: int, ref_grid: tuple[int, int, int] | None = None) -> Tensor:
    """Fixed 3D sin/cos position table (T'*H'*W', D); `ref_grid` rescales positions to interpolate sizes."""
    gt, gh, gw = grid
    rt, rh, rw = ref_grid if ref_grid is not None else grid
    d_t = (dim // 4) // 2 * 2
    d_h = ((dim - d_t) // 2) // 2 * 2
    d_w = d_h
    pt = torch.arange(gt, dtype=torch.float64) * (rt / gt)
    ph = torch.arange(gh, dtype=torch.float64) * (rh / gh)
    pw = torch.arange(gw, dtype=torch.float64) * (rw / gw)
    et = _sincos_1d(pt, d_t)[:, None, None, :].expand(gt, gh, gw, d_t)
    eh = _sincos_1d(ph, d_h)[None, :, None, :].expand(gt, gh, gw, d_h)
    ew = _sincos_1d(pw, d_w)[None, None, :, :].expand(gt, gh, gw, d_w)
    pad = torch.zeros(gt, gh, gw, dim - d_t - d_h - d_w)
    return torch.cat([et, eh, ew, pad], dim=-1).reshape(gt * gh * gw, dim)


class Attention(nn.Module):
    """Multi-head self-attention through scaled_dot_product_attention."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Attend over all tokens: (B, N, D) -> (B, N, D)."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, N, D/heads)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, D/heads)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, D) -> (B, N, D)."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_transformer_weights(module: nn.Module) -> None:
    """Truncated-normal linear weights, zero biases, unit LayerNorm (ViT convention)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class VideoViT(nn.Module):
    """Video ViT over uint8 clips (B, T, 3, H, W); tokens are ordered t-major then row then column."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.img_size % cfg.patch or cfg.num_frames % cfg.tubelet:
            raise ValueError("img_size must divide by patch and num_frames by tubelet")
        self.patch_embed = nn.Conv3d(
            cfg.in_chans,
            cfg.dim,
            kernel_size=(cfg.tubelet, cfg.patch, cfg.patch),
            stride=(cfg.tubelet, cfg.patch, cfg.patch),
        )
        gt, gh, gw = cfg.grid()
        if cfg.pos_embed == "learned":
            self.pos_table = nn.Parameter(torch.zeros(1, cfg.dim, gt, gh, gw))
            nn.init.trunc_normal_(self.pos_table, std=0.02)
        elif cfg.pos_embed == "sincos":
            self.register_buffer("pos_table", sincos_pos_embed_3d((gt, gh, gw), cfg.dim), persistent=False)
        else:
            raise ValueError(f"unknown pos_embed {cfg.pos_embed!r}")
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.qkv_bias) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.register_buffer("pix_mean", torch.tensor(cfg.mean).view(1, 3, 1, 1, 1) * 255.0, persistent=False)
        self.register_buffer("pix_std", torch.tensor(cfg.std).view(1, 3, 1, 1, 1) * 255.0, persistent=False)
        init_transformer_weights(self)
        w = self.patch_embed.weight.data
        nn.init.trunc_normal_(w.view(w.shape[0], -1), std=0.02)
        nn.init.zeros_(self.patch_embed.bias)

    @property
    def dim(self) -> int:
        """Token width D."""
        return self.cfg.dim

    @property
    def name(self) -> str:
        """Encoder family name recorded in world models (FrameEncoder protocol)."""
        return IN_HOUSE

    def patch_grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (H', W') of frames of height x width pixels (the sin/cos or learned positions interpolate)."""
        p = self.cfg.patch
        if height % p or width % p:
            raise EncoderError(
                f"frames of {height}x{width} pixels do not divide into the encoder's {p}x{p} patches; use frames "
                f"whose sides are multiples of {p} (e.g. env.kwargs.image_size) or an encoder with another patch"
            )
        return height // p, width // p

    def config_dict(self) -> dict[str, Any]:
        """{"name": "videovit", **EncoderConfig} (FrameEncoder protocol)."""
        return {"name": IN_HOUSE, **self.cfg.to_dict()}

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json + model.safetensors (Hugging Face layout; loads without running code)."""
        config = {"model_type": PRETRAINED_MODEL_TYPE, "architectures": ["VideoViT"], **self.cfg.to_dict()}
        return save_pretrained_dir(directory, config, self.state_dict())

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> VideoViT:
        """Load a :meth:`save_pretrained` directory, frozen (eval mode, requires_grad False) on `device`."""
        config, state = load_pretrained_dir(directory, PRETRAINED_MODEL_TYPE)
        encoder = cls(EncoderConfig.from_dict(config))
        load_state_dict_checked(encoder, state, what=f"encoder {directory}")
        return encoder.to(device).eval().requires_grad_(False)

    def pos_embed(self, grid: tuple[int, int, int]) -> Tensor:
        """Position table for a token grid, interpolated if it differs from the trained one: (N, D)."""
        ref = self.cfg.grid()
        if self.cfg.pos_embed == "sincos":
            if tuple(grid) == ref:
                return self.pos_table
            return sincos_pos_embed_3d(grid, self.cfg.dim, ref).to(self.pos_table.device)
        table = self.pos_table  # (1, D, T0', H0', W0')
        if tuple(grid) != ref:
            table = F.interpolate(table, size=grid, mode="trilinear", align_corners=False)
        return table.flatten(2).transpose(1, 2)[0]  # (N, D)

    def tokenize(self, pixels: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
        """Normalise and patchify a clip: (B, T, 3, H, W) -> tokens with positions (B, N, D), grid."""
        if pixels.ndim != 5:
            raise ValueError(f"expected (B, T, C, H, W), got {tuple(pixels.shape)}")
        b, t, c, h, w = pixels.shape
        if t % self.cfg.tubelet or h % self.cfg.patch or w % self.cfg.patch:
            raise ValueError(f"clip {t}x{h}x{w} not divisible by tubelet/patch")
        x = pixels.permute(0, 2, 1, 3, 4).float()  # (B, C, T, H, W)
        if not pixels.dtype == torch.uint8:
            x = x * 255.0  # float input is taken to be in [0, 1]
        x = (x - self.pix_mean) / self.pix_std
        x = self.patch_embed(x.to(self.patch_embed.weight.dtype))  # (B, D, T', H', W')
        grid = (x.shape[2], x.shape[3], x.shape[4])
        x = x.flatten(2).transpose(1, 2)  # (B, N, D)
        return x + self.pos_embed(grid).to(x.dtype), grid

    def forward(self, pixels: Tensor, keep_idx: Tensor | None = None) -> Tensor:
        """Encode a clip, optionally only tokens `keep_idx` (B, Nc): (B, T, 3, H, W) -> (B, N or Nc, D)."""
        x, _ = self.tokenize(pixels)  # (B, N, D)
        if keep_idx is not None:
            x = torch.gather(x, 1, keep_idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, Nc, D)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def embed(self, pixels: Tensor) -> Tensor:
        """Frozen-use encoding of a clip: (B, T, 3, H, W) -> (B, T', N, D) with N = H' * W'."""
        x, (gt, gh, gw) = self.tokenize(pixels)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)  # (B, T'*N, D)
        return x.reshape(x.shape[0], gt, gh * gw, x.shape[-1])

    def embed_image(self, images: Tensor) -> Tensor:
        """Single frames, repeated to fill one tubelet: (B, 3, H, W) -> (B, N, D)."""
        if images.ndim != 4:
            raise ValueError(f"expected (B, C, H, W), got {tuple(images.shape)}")
        clip = images.unsqueeze(1).expand(-1, self.cfg.tubelet, -1, -1, -1)  # (B, tubelet, 3, H, W)
        return self.embed(clip)[:, 0]  # (B, N, D)


def save_encoder(encoder: VideoViT, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Export frozen-encoder weights + config dict atomically (loadable with weights_only=True)."""
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    payload = {"config": encoder.cfg.to_dict(), "state_dict": state, "extra": dict(extra or {})}
    return save_checkpoint(path, payload, kind=ENCODER_FORMAT)


def load_encoder(path: str | Path, device: str | torch.device) -> VideoViT:
    """Load an exported encoder in eval mode with requires_grad False (for frozen downstream use)."""
    payload = load_checkpoint(path, kind=ENCODER_FORMAT)
    encoder = VideoViT(EncoderConfig.from_dict(payload["config"]))
    load_state_dict_checked(encoder, payload["state_dict"], what=f"encoder {path}")
    encoder.to(device).eval()
    encoder.requires_grad_(False)
    return encoder
