"""Action-conditioned pretraining term: predict the next frame's pooled embedding from this one and the action.

LeWorldModel's recipe (an encoder trained through an action-conditioned predictor, collapse held off by
SIGReg on the embeddings) applied to the embedding the world model later plans with: each frame is encoded
alone (as the frozen encoder is used downstream) and pooled with the world model's pooling (2x2cat by
default), so the prediction loss shapes exactly the latents the planner's goal distance is measured in.
Only the encoder is kept afterwards; the small predictor here is thrown away with the pretraining state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodel.models.pooling import frame_grid, num_pooled_tokens, pool_frame_tokens, pooled_dim
from worldmodel.models.predictor import ActionConditionedPredictor
from worldmodel.models.vit import VideoViT


@dataclass
class ActionTermOutput:
    """The term's prediction loss, SIGReg statistic input and the frames' embeddings."""

    pred_loss: Tensor  # scalar MSE of predicted vs encoded next embeddings
    embeddings: Tensor  # (B, T, N, D') pooled per-frame embeddings, with gradient
    tokens: Tensor  # (B, T*H'*W', D) per-frame patch tokens, detached (collapse diagnostics)


class ActionTerm(nn.Module):
    """A block-causal action-conditioned predictor over pooled per-frame embeddings of a clip."""

    def __init__(
        self,
        encoder: VideoViT,
        action_dim: int,
        pool: str = "2x2cat",
        width: int = 128,
        depth: int = 2,
        heads: int = 4,
        max_frames: int = 16,
    ) -> None:
        """Size the predictor from the encoder's pooled latent (N tokens of D' channels) and the action dim."""
        super().__init__()
        if action_dim <= 0:
            raise ValueError(f"the action term needs actions in the data; got action_dim={action_dim}")
        side = encoder.cfg.img_size // encoder.cfg.patch
        self.pool = pool
        self.num_tokens = num_pooled_tokens(pool, (side, side))
        self.latent_dim = pooled_dim(pool, encoder.dim)
        self.predictor = ActionConditionedPredictor(
            self.latent_dim, action_dim, self.num_tokens, 0, width, depth, heads, 4.0, max_frames
        )
        # actions enter as the world model feeds them: scaled to [-1, 1] by the data's bounds (set_action_bounds)
        self.register_buffer("action_mid", torch.zeros(action_dim), persistent=False)  # (A,)
        self.register_buffer("action_half", torch.ones(action_dim), persistent=False)  # (A,)

    def set_action_bounds(self, low: Tensor, high: Tensor) -> None:
        """Scale actions to [-1, 1] by these bounds (A,) per clip step, as WorldModel.normalize_actions does."""
        low, high = low.reshape(-1).float(), high.reshape(-1).float()
        if low.numel() != self.action_mid.numel():
            raise ValueError(f"action bounds have {low.numel()} entries, the clips' actions {self.action_mid.numel()}")
        self.action_mid.copy_((high + low) / 2)
        self.action_half.copy_((high - low).clamp_min(1e-8) / 2)

    def embed(self, encoder: VideoViT, pixels: Tensor) -> tuple[Tensor, Tensor]:
        """Encode each frame alone and pool: (B, T, 3, H, W) -> embeddings (B, T, N, D'), tokens (B, T, H'W', D)."""
        return embed_frames(encoder, pixels, self.pool)

    def forward(self, encoder: VideoViT, pixels: Tensor, actions: Tensor) -> ActionTermOutput:
        """pixels (B, T, 3, H, W), actions (B, T-1, A) -> next-embedding MSE over the T-1 transitions.

        Gradient flows into both the prediction and its target (no stop-gradient, as LeWorldModel): the
        caller's SIGReg on ``embeddings`` is what keeps them from collapsing to a constant.
        """
        if actions.shape[:2] != (pixels.shape[0], pixels.shape[1] - 1):
            raise ValueError(
                f"actions {tuple(actions.shape)} do not match a clip of {pixels.shape[1]} frames: expected "
                f"({pixels.shape[0]}, {pixels.shape[1] - 1}, A)"
            )
        emb, tokens = self.embed(encoder, pixels)  # (B, T, N, D'), (B, T, H'W', D)
        scaled = (actions.to(self.action_mid.dtype) - self.action_mid) / self.action_half  # (B, T-1, A)
        pred, _ = self.predictor(emb[:, :-1], scaled.to(emb.dtype))  # (B, T-1, N, D')
        loss = F.mse_loss(pred.float(), emb[:, 1:].float())
        return ActionTermOutput(pred_loss=loss, embeddings=emb, tokens=tokens.flatten(1, 2).detach())


def embed_frames(encoder: VideoViT, pixels: Tensor, pool: str) -> tuple[Tensor, Tensor]:
    """Encode each frame alone and pool: (B, T, 3, H, W) -> embeddings (B, T, N, D'), tokens (B, T, H'W', D)."""
    b, t = pixels.shape[:2]
    frames = pixels.flatten(0, 1)  # (B*T, 3, H, W)
    tokens = encoder.embed_image(frames)  # (B*T, H'*W', D)
    pooled = pool_frame_tokens(tokens, pool, frame_grid(encoder, frames))  # (B*T, N, D')
    return pooled.reshape(b, t, *pooled.shape[1:]), tokens.reshape(b, t, *tokens.shape[1:])


def sigreg_samples(embeddings: Tensor) -> Tensor:
    """SIGReg samples from pooled embeddings (B, T, N, D'): one row per frame and token -> (B*T*N, D')."""
    return embeddings.reshape(-1, embeddings.shape[-1])


__all__ = ["ActionTerm", "ActionTermOutput", "embed_frames", "sigreg_samples"]
