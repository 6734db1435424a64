"""V-JEPA objective in latent space: context encoder, narrow mask-token predictor, EMA target or SIGReg."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodel.models.action_term import ActionTerm, embed_frames, sigreg_samples
from worldmodel.models.recon_term import ReconTerm
from worldmodel.models.vit import Block, VideoViT, init_transformer_weights, sincos_pos_embed_3d


@dataclass(frozen=True)
class JEPAConfig:
    """Predictor shape and objective options.

    teacher="ema": targets come from an EMA copy of the encoder (V-JEPA). teacher="sigreg": no EMA copy;
    targets are the online encoder's own full-clip tokens (stop-grad when sigreg_target="stopgrad", or with
    gradient through both branches when "online", as in LeJEPA) and SIGReg on the context embeddings
    prevents collapse.
    """

    pred_dim: int = 96
    pred_depth: int = 4
    pred_heads: int = 3
    pred_mlp_ratio: float = 4.0
    teacher: str = "ema"  # "ema" | "sigreg"
    target_layernorm: bool = True
    motion_weight: float = 0.0  # >0 up-weights target tokens whose pixels change over time
    sigreg_weight: float = 0.05
    sigreg_slices: int = 128
    sigreg_knots: int = 17
    sigreg_t_max: float = 3.0
    sigreg_max_samples: int = 2048
    sigreg_target: str = "stopgrad"  # "stopgrad" | "online"
    sigreg_pool: int = 0  # g > 0: SIGReg also on full-clip tokens pooled to g x g cells per tubelet step
    masked_weight: float = 1.0  # weight of the masked latent-prediction term; 0 drops that branch and its cost
    action_weight: float = 0.0  # > 0: add the action-conditioned next-embedding term (models/action_term.py)
    action_pool: str = "2x2cat"  # pooling of each frame's tokens for that term: the world model's pooling
    action_sigreg_weight: float = 0.1  # SIGReg on the pooled embeddings inside that term (LeWorldModel: 0.1)
    action_width: int = 128
    action_depth: int = 2
    action_heads: int = 4
    recon_weight: float = 0.0  # > 0: decode each frame from its pooled embedding (models/recon_term.py)
    recon_width: int = 64

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JEPAConfig:
        """Build from a mapping, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(d).items() if k in known})


class Predictor(nn.Module):
    """Narrow transformer: context tokens + mask tokens at target positions -> predicted target tokens."""

    def __init__(self, enc_dim: int, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.dim = dim
        self.embed = nn.Linear(enc_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.proj = nn.Linear(dim, enc_dim)
        init_transformer_weights(self)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self._pos_cache: dict[tuple[int, int, int], Tensor] = {}

    def pos_embed(self, grid: tuple[int, int, int], device: torch.device) -> Tensor:
        """Fixed sin/cos positions of the full token grid: (N, dim)."""
        key = tuple(grid)
        if key not in self._pos_cache:
            self._pos_cache[key] = sincos_pos_embed_3d(key, self.dim)
        return self._pos_cache[key].to(device)

    def forward(self, ctx: Tensor, ctx_idx: Tensor, tgt_idx: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """Predict targets: ctx (B, Nc, De), ctx_idx (B, Nc), tgt_idx (B, Nt) -> (B, Nt, De)."""
        pos = self.pos_embed(grid, ctx.device).to(ctx.dtype)  # (N, Dp)
        x = self.embed(ctx) + pos[ctx_idx]  # (B, Nc, Dp)
        m = self.mask_token.to(x.dtype) + pos[tgt_idx]  # (B, Nt, Dp)
        z = torch.cat([x, m], dim=1)  # (B, Nc+Nt, Dp)
        for blk in self.blocks:
            z = blk(z)
        z = self.norm(z[:, ctx.shape[1] :])  # (B, Nt, Dp)
        return self.proj(z)


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """Batched token gather: x (B, N, D), idx (B, K) -> (B, K, D)."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def epps_pulley(proj: Tensor, knots: int = 17, t_max: float = 3.0) -> Tensor:
    """Epps-Pulley statistic of each column vs N(0,1) via the characteristic function: (M, S) -> (S,).

    EP = M * integral |phi_emp(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt over [-t_max, t_max] (trapezoid rule; the
    integrand is even so we integrate [0, t_max] and double).
    """
    m = proj.shape[0]
    t = torch.linspace(0.0, t_max, knots, device=proj.device, dtype=torch.float32)  # (K,)
    xt = proj.float().unsqueeze(-1) * t  # (M, S, K)
    re = xt.cos().mean(0)  # (S, K)
    im = xt.sin().mean(0)  # (S, K)
    gauss = torch.exp(-0.5 * t**2)  # (K,)
    err = ((re - gauss) ** 2 + im**2) * gauss  # (S, K)
    return 2.0 * m * torch.trapezoid(err, t, dim=-1)


def sigreg_loss(
    z: Tensor, num_slices: int, g: torch.Generator | None = None, knots: int = 17, t_max: float = 3.0
) -> Tensor:
    """SIGReg (LeJEPA): mean Epps-Pulley statistic of z (M, D) along `num_slices` random unit directions."""
    dirs = torch.randn(z.shape[-1], num_slices, generator=g, device="cpu").to(z.device)  # (D, S)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    return epps_pulley(z.float() @ dirs, knots, t_max).mean()


def motion_weights(pixels: Tensor, grid: tuple[int, int, int], strength: float) -> Tensor:
    """Weights 1 + strength * motion / mean motion from frame differences: (B, T, 3, H, W) -> (B, N)."""
    x = pixels.float()
    d = (x[:, 1:] - x[:, :-1]).abs().mean(2)  # (B, T-1, H, W)
    d = torch.cat([d[:, :1], d], dim=1)  # (B, T, H, W)
    pooled = F.adaptive_avg_pool3d(d.unsqueeze(1), tuple(grid)).flatten(1)  # (B, N)
    return 1.0 + strength * pooled / (pooled.mean(1, keepdim=True) + 1e-6)


def pooled_cells(tokens: Tensor, grid: tuple[int, int, int], g: int) -> Tensor:
    """Average each tubelet step's tokens over a g x g grid: (B, N, D) with N = T'*H'*W' -> (B, T', g*g, D)."""
    t, hh, ww = grid
    b, _, d = tokens.shape
    x = tokens.reshape(b * t, hh, ww, d).permute(0, 3, 1, 2)  # (B*T', D, H', W')
    x = F.adaptive_avg_pool2d(x, (g, g))  # (B*T', D, g, g)
    return x.flatten(2).transpose(1, 2).reshape(b, t, g * g, d)


def centre_cells(cells: Tensor) -> Tensor:
    """Samples for SIGReg from pooled cells (B, T', C, D): each cell minus its batch mean -> (B*T'*C, D).

    Centring per cell removes what the cell's place alone explains (its positional embedding), so the
    statistic sees only how a region's pooled features vary with the scene, which is what a planner compares.
    """
    c = cells.float() - cells.float().mean(dim=(0, 1), keepdim=True)  # (B, T', C, D)
    return c.reshape(-1, c.shape[-1])


@dataclass
class JEPAOutput:
    """Loss terms and the detached full-clip tokens of the exported encoder (for collapse diagnostics)."""

    loss: Tensor
    pred_loss: Tensor
    sigreg: Tensor
    tokens: Tensor  # (B, N, D), detached
    action_loss: Tensor  # the action term (prediction + its SIGReg), detached; 0 when off
    recon_loss: Tensor | None = None  # the reconstruction term (1 - pixel R^2), detached; None when off


class JEPA(nn.Module):
    """Latent prediction pretraining of a video encoder.

    Two terms, each optional: masked prediction (online encoder on context tokens, a narrow predictor at
    target positions, L1 to the targets; EMA target or SIGReg against collapse) and, with action_dim > 0 and
    cfg.action_weight > 0, action-conditioned next-embedding prediction on pooled per-frame embeddings.
    """

    def __init__(self, encoder: VideoViT, cfg: JEPAConfig, action_dim: int = 0) -> None:
        super().__init__()
        _check_config(cfg, action_dim)
        self.cfg = cfg
        self.encoder = encoder
        self.predictor: Predictor | None = None
        if cfg.masked_weight > 0:
            self.predictor = Predictor(encoder.dim, cfg.pred_dim, cfg.pred_depth, cfg.pred_heads, cfg.pred_mlp_ratio)
        self.action_term: ActionTerm | None = None
        if cfg.action_weight > 0:
            self.action_term = ActionTerm(
                encoder, action_dim, cfg.action_pool, cfg.action_width, cfg.action_depth, cfg.action_heads
            )
        self.recon_term = ReconTerm(encoder, cfg.action_pool, cfg.recon_width) if cfg.recon_weight > 0 else None
        self.target_encoder: VideoViT | None = None
        if cfg.teacher == "ema" and cfg.masked_weight > 0:
            self.target_encoder = copy.deepcopy(encoder)
            self.target_encoder.requires_grad_(False)

    @property
    def uses_actions(self) -> bool:
        """Whether forward needs the clip's actions."""
        return self.action_term is not None

    def export_encoder(self) -> VideoViT:
        """The encoder used downstream: the EMA target when there is one (as V-JEPA), else the online one."""
        return self.target_encoder if self.target_encoder is not None else self.encoder

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """EMA step: target <- momentum * target + (1 - momentum) * online."""
        if self.target_encoder is None:
            return
        tp = list(self.target_encoder.parameters())
        op = [p.detach() for p in self.encoder.parameters()]
        torch._foreach_lerp_(tp, op, 1.0 - momentum)

    def _targets(self, pixels: Tensor) -> Tensor:
        """Full-clip target tokens (B, N, D); gradient for sigreg_target='online' or sigreg_pool > 0."""
        if self.target_encoder is not None:
            with torch.no_grad():
                return self.target_encoder(pixels)
        if self.cfg.sigreg_target == "online" or self.cfg.sigreg_pool > 0:
            return self.encoder(pixels)
        with torch.no_grad():
            return self.encoder(pixels)

    def _sigreg(self, z: Tensor, g: torch.Generator | None) -> Tensor:
        """SIGReg of samples z (M, D), subsampled to sigreg_max_samples rows."""
        if z.shape[0] > self.cfg.sigreg_max_samples:
            sel = torch.randperm(z.shape[0], generator=g)[: self.cfg.sigreg_max_samples].to(z.device)
            z = z[sel]
        return sigreg_loss(z, self.cfg.sigreg_slices, g, self.cfg.sigreg_knots, self.cfg.sigreg_t_max)

    def _masked(
        self,
        pixels: Tensor,
        masks: Sequence[tuple[Tensor, Tensor]],
        g: torch.Generator | None,
        gather: Callable[[Tensor], Tensor] | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Masked term: its prediction loss, its SIGReg statistic (0 for EMA) and the detached clip tokens."""
        assert self.predictor is not None
        grid = self.encoder.cfg.grid(pixels.shape[1], pixels.shape[-1])
        full = self._targets(pixels)  # (B, N, D); carries gradient only when a loss term needs it
        raw = full if self.cfg.sigreg_target == "online" else full.detach()  # prediction targets
        h = F.layer_norm(raw, (raw.shape[-1],)) if self.cfg.target_layernorm else raw
        weights = motion_weights(pixels, grid, self.cfg.motion_weight) if self.cfg.motion_weight > 0 else None
        pred_losses, ctx_embs = [], []
        for ctx_idx, tgt_idx in masks:
            z = self.encoder(pixels, keep_idx=ctx_idx)  # (B, Nc, D)
            zs = gather(z) if gather is not None and self.cfg.teacher == "sigreg" else z  # (B_global, Nc, D)
            ctx_embs.append(zs.reshape(-1, z.shape[-1]))
            pred = self.predictor(z, ctx_idx, tgt_idx, grid)  # (B, Nt, D)
            err = (pred.float() - gather_tokens(h, tgt_idx).float()).abs().mean(-1)  # (B, Nt)
            if weights is None:
                pred_losses.append(err.mean())
            else:
                w = torch.gather(weights, 1, tgt_idx)  # (B, Nt)
                pred_losses.append((err * w).sum() / w.sum())
        pred_loss = torch.stack(pred_losses).mean()
        sig = torch.zeros((), device=pixels.device)
        if self.cfg.teacher == "sigreg":
            sig = self._sigreg(torch.cat(ctx_embs, 0), g)  # context embeddings (M, D)
            if self.cfg.sigreg_pool > 0:
                cells = pooled_cells(full, grid, self.cfg.sigreg_pool)  # (B, T', g*g, D)
                cells = gather(cells) if gather is not None else cells  # (B_global, T', g*g, D)
                sig = sig + sigreg_loss(
                    centre_cells(cells), self.cfg.sigreg_slices, g, self.cfg.sigreg_knots, self.cfg.sigreg_t_max
                )
        return pred_loss, sig, raw.detach()

    def forward(
        self,
        pixels: Tensor,
        masks: Sequence[tuple[Tensor, Tensor]],
        g: torch.Generator | None = None,
        gather: Callable[[Tensor], Tensor] | None = None,
        actions: Tensor | None = None,
    ) -> JEPAOutput:
        """Loss over mask sets: pixels (B, T, 3, H, W); masks [(ctx_idx (B, Nc), tgt_idx (B, Nt)), ...];
        actions (B, T-1, A) when the action term is on.

        gather (DDP): joins this rank's rows with the other ranks' along dim 0 (with gradient), so that
        SIGReg's statistic sees the embeddings of the whole global batch.
        """
        zero = torch.zeros((), device=pixels.device)
        pred_loss, sig, act_loss, tokens, emb_local = zero, zero, zero, None, None
        loss = zero
        if self.predictor is not None:
            pred_loss, sig, tokens = self._masked(pixels, masks, g, gather)
            lam = self.cfg.sigreg_weight if self.cfg.teacher == "sigreg" else 0.0
            loss = self.cfg.masked_weight * ((1.0 - lam) * pred_loss + lam * sig)
        if self.action_term is not None:
            if actions is None:
                raise ValueError("model.action_weight > 0 needs the clips' actions; pass actions=(B, T-1, A)")
            out = self.action_term(self.encoder, pixels, actions)
            emb = gather(out.embeddings) if gather is not None else out.embeddings  # (B_global, T, N, D')
            act_sig = self._sigreg(sigreg_samples(emb), g)
            act_loss = out.pred_loss + self.cfg.action_sigreg_weight * act_sig
            loss = loss + self.cfg.action_weight * act_loss
            sig = sig + act_sig.detach()
            tokens = out.tokens if tokens is None else tokens
            emb_local = out.embeddings
        recon_loss = None
        if self.recon_term is not None:
            if emb_local is None:  # no action term: encode each frame alone and pool, as it does
                emb_local, frame_tokens = embed_frames(self.encoder, pixels, self.cfg.action_pool)
                tokens = frame_tokens.flatten(1, 2).detach() if tokens is None else tokens
            recon_loss = self.recon_term(emb_local, pixels)
            loss = loss + self.cfg.recon_weight * recon_loss
            recon_loss = recon_loss.detach()
        assert tokens is not None
        return JEPAOutput(
            loss=loss, pred_loss=pred_loss.detach(), sigreg=sig.detach(), tokens=tokens, action_loss=act_loss.detach(),
            recon_loss=recon_loss,
        )


def _check_config(cfg: JEPAConfig, action_dim: int) -> None:
    """Refuse objective settings that cannot train: unknown names, no term, a term without its inputs."""
    if cfg.teacher not in ("ema", "sigreg"):
        raise ValueError(f"unknown teacher {cfg.teacher!r}")
    if cfg.sigreg_target not in ("stopgrad", "online"):
        raise ValueError(f"unknown sigreg_target {cfg.sigreg_target!r}")
    if cfg.sigreg_pool < 0 or (cfg.sigreg_pool > 0 and cfg.teacher != "sigreg"):
        raise ValueError(
            f"model.sigreg_pool={cfg.sigreg_pool} needs teacher=sigreg and a grid side >= 0 (0 turns it off)"
        )
    weights = (cfg.masked_weight, cfg.action_weight, cfg.recon_weight)
    if min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(
            f"model.masked_weight={cfg.masked_weight}, model.action_weight={cfg.action_weight} and "
            f"model.recon_weight={cfg.recon_weight}: each must be >= 0 and at least one > 0 (masked prediction, "
            "action-conditioned prediction, pixel reconstruction, or a sum of them)"
        )
    if cfg.action_weight > 0 and action_dim <= 0:
        raise ValueError("model.action_weight > 0 needs data with actions (the dataset's action dim is 0)")


def num_params(module: nn.Module, trainable_only: bool = False) -> int:
    """Parameter count (optionally only those with requires_grad)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "JEPA",
    "JEPAConfig",
    "JEPAOutput",
    "Predictor",
    "epps_pulley",
    "gather_tokens",
    "motion_weights",
    "num_params",
    "sigreg_loss",
]
