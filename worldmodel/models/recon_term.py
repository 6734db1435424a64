"""Pixel-reconstruction pretraining term: decode each frame from its pooled embedding.

The planner's goal distance is measured between pooled per-frame embeddings (2x2cat by default). A latent
objective may leave out what the task turns on when it barely changes the next embedding: on Push the block's
yaw was unreadable from the pooled latent of every encoder we pretrained (docs/results.md). Asking a small
convolutional decoder to redraw the frame from that same pooled embedding makes the embedding carry every
visible part of the scene, the block's orientation included. The decoder is thrown away with the pretraining
state; only the encoder is kept.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from worldmodel.models.pooling import num_pooled_tokens, pooled_dim
from worldmodel.models.vit import VideoViT

UPSAMPLINGS = 3  # the decoder starts at (img_size / 8)^2 and doubles the side three times


class FrameDecoder(nn.Module):
    """(M, N, D') pooled embeddings -> (M, 3, S, S) frames in [0, 1] (linear output)."""

    def __init__(self, num_tokens: int, latent_dim: int, img_size: int, width: int = 64) -> None:
        super().__init__()
        if img_size % 2**UPSAMPLINGS:
            raise ValueError(f"model.recon_weight > 0 needs an image side divisible by 8; got {img_size}")
        self.side, self.width = img_size // 2**UPSAMPLINGS, width
        self.inp = nn.Linear(num_tokens * latent_dim, width * self.side * self.side)
        chans = [width, width, width // 2]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans, chans[1:] + [width // 2]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.GELU()]
        self.up = nn.Sequential(*layers)
        self.out = nn.Conv2d(width // 2, 3, 3, padding=1)

    def forward(self, emb: Tensor) -> Tensor:
        """emb (M, N, D') -> (M, 3, S, S)."""
        x = self.inp(emb.flatten(1)).view(-1, self.width, self.side, self.side)  # (M, C, S/8, S/8)
        return self.out(self.up(x))  # (M, 3, S, S)


class ReconTerm(nn.Module):
    """Squared error of frames decoded from their pooled embeddings over the frames' own variance: the fraction of
    the batch's pixel variance left unexplained (1 - R^2; 1 = drawing the mean frame), so its weight means the same
    whatever the scene's contrast."""

    def __init__(self, encoder: VideoViT, pool: str = "2x2cat", width: int = 64) -> None:
        super().__init__()
        side = encoder.cfg.img_size // encoder.cfg.patch
        self.decoder = FrameDecoder(
            num_pooled_tokens(pool, (side, side)), pooled_dim(pool, encoder.dim), encoder.cfg.img_size, width
        )

    def forward(self, embeddings: Tensor, pixels: Tensor) -> Tensor:
        """embeddings (B, T, N, D') of pixels (B, T, 3, H, W) uint8 -> scalar 1 - R^2 (gradient into the encoder)."""
        recon = self.decoder(embeddings.flatten(0, 1)).float()  # (B*T, 3, H, W)
        target = pixels.flatten(0, 1).float() / 255.0  # (B*T, 3, H, W)
        var = target.var(dim=0, unbiased=False).mean().clamp_min(1e-6)  # mean per-pixel variance over frames
        return F.mse_loss(recon, target) / var


__all__ = ["FrameDecoder", "ReconTerm"]
