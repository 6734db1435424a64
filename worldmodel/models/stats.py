"""Collapse statistics of embeddings: spread across samples and effective rank (RankMe).

Pretraining logs them every few steps and the probes report them, so they sit with the models, below both.
"""

from __future__ import annotations

import torch
from torch import Tensor


def batch_std(z: Tensor) -> float:
    """Mean over dimensions of the std across samples (collapse -> 0): z (M, D)."""
    return float(z.float().std(dim=0).mean())


def effective_rank(z: Tensor) -> float:
    """exp(entropy) of the normalised singular values of centred z (M, D) (RankMe); 1 = fully collapsed."""
    x = z.float() - z.float().mean(0, keepdim=True)
    s = torch.linalg.svdvals(x)
    p = s / s.sum().clamp_min(1e-12)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def collapse_stats(tokens: Tensor, max_tokens: int = 1024, g: torch.Generator | None = None) -> dict[str, float]:
    """Spread of clip-mean and token embeddings: tokens (B, N, D) -> std/effective-rank dict."""
    clip = tokens.float().mean(1)  # (B, D)
    tok = tokens.float().reshape(-1, tokens.shape[-1])  # (B*N, D)
    if tok.shape[0] > max_tokens:
        tok = tok[torch.randperm(tok.shape[0], generator=g)[:max_tokens].to(tok.device)]
    return {
        "std_clip": batch_std(clip),
        "rank_clip": effective_rank(clip),
        "std_token": batch_std(tok),
        "rank_token": effective_rank(tok),
    }
