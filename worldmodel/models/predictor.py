"""Action-conditioned block-causal transformer over frames of frozen-encoder latents, with KV-cached rollout.

Shape letters: B batch, T frames, N latent tokens per frame, D latent dim, A action dim, P proprio dim,
W width, M tokens per frame (1 action + 1 proprio if P>0 + N latents), L tokens in the sequence (T*M),
H rollout horizon, K heads, C cameras.

Frame t holds [action_t, proprio_t, latent tokens_t]; action_t is the action applied at frame t (t → t+1).
Every token attends to all tokens of its own frame and of earlier frames (block-causal), so the latent
token outputs of frame t predict frame t+1.

Several cameras: the N latent tokens of a frame are C camera groups of N/C tokens each, camera-major (the
embedding cache's order). Each group gets a learned camera embedding on top of the per-token spatial embedding,
so the predictor tells views apart; all tokens of a frame stay one block of the block-causal mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KVCache = list[tuple[Tensor, Tensor]]  # per layer: keys, values (B, K, L, W/K)


@dataclass(frozen=True)
class PredictorConfig:
    """Sizes of the predictor (see configs/predictor/default.yaml).

    Fields:
        latent_dim: D, dim of each frozen-encoder latent token (input and predicted output).
        action_dim: A, action dim per frame (frameskip-grouped actions are concatenated).
        num_tokens: N, latent tokens per frame (1 pooled token, a pooled grid, or all patches).
        proprio_dim: P, proprioceptive state dim (0 = no proprio token).
        width: W, transformer width.
        depth: number of pre-norm transformer blocks.
        heads: attention heads (must divide width).
        mlp_ratio: MLP hidden size as a multiple of width.
        max_frames: longest frame sequence (context + imagined) the time embedding supports.
        num_cameras: C, camera groups the N tokens of a frame split into (N/C each, camera-major); C > 1 adds a
            learned per-camera embedding (C = 1 has none: single-camera predictors are unchanged).
        residual: predict each next latent as the current one plus a learned change (the latent head starts at
            zero, so an untrained predictor copies the last frame) instead of reconstructing it through the
            W-wide transformer; False (absolute, V-JEPA 2-AC's and DINO-WM's form) for checkpoints without it.
    """

    latent_dim: int = 64
    action_dim: int = 2
    num_tokens: int = 1
    proprio_dim: int = 0
    width: int = 192
    depth: int = 6
    heads: int = 6
    mlp_ratio: float = 4.0
    max_frames: int = 16
    num_cameras: int = 1
    residual: bool = False


class _Block(nn.Module):
    """Pre-norm transformer block whose attention can read and extend a KV cache."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        """Build attention and MLP sub-layers."""
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(
        self, x: Tensor, mask: Tensor | None, past: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Apply the block to new tokens x (B, L, W) after cached keys/values; return output and new KV."""
        b, l, w = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, l, 3, self.heads, w // self.heads)  # (B, L, 3, K, W/K)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, K, L, W/K)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, K, L_past+L, W/K)
            v = torch.cat([past[1], v], dim=2)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, K, L, W/K)
        x = x + self.proj(att.transpose(1, 2).reshape(b, l, w))
        x = x + self.mlp(self.norm2(x))
        return x, (k, v)


class ActionConditionedPredictor(nn.Module):
    """Block-causal transformer predicting next-frame latents (and proprio) from latents, actions, proprio."""

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        num_tokens: int = 1,
        proprio_dim: int = 0,
        width: int = 192,
        depth: int = 6,
        heads: int = 6,
        mlp_ratio: float = 4.0,
        max_frames: int = 16,
        num_cameras: int = 1,
        residual: bool = False,
    ) -> None:
        """Build token projections, type/time/spatial (and camera) embeddings, blocks and output heads."""
        super().__init__()
        if width % heads != 0:
            raise ValueError("width must be divisible by heads")
        if num_cameras < 1 or num_tokens % num_cameras != 0:
            raise ValueError(f"num_tokens={num_tokens} must split into num_cameras={num_cameras} equal groups")
        self.config = PredictorConfig(latent_dim, action_dim, num_tokens, proprio_dim, width, depth, heads,
                                      mlp_ratio, max_frames, num_cameras, residual)
        self.residual = residual
        self.num_cameras = num_cameras
        self.latent_dim, self.action_dim, self.num_tokens = latent_dim, action_dim, num_tokens
        self.proprio_dim, self.max_frames = proprio_dim, max_frames
        self.tokens_per_frame = num_tokens + 1 + (1 if proprio_dim > 0 else 0)  # M
        self.latent_in = nn.Linear(latent_dim, width)
        self.action_in = nn.Linear(action_dim, width)
        self.proprio_in = nn.Linear(proprio_dim, width) if proprio_dim > 0 else None
        self.type_embed = nn.Parameter(torch.zeros(3, width))  # action, proprio, latent
        self.time_embed = nn.Parameter(torch.zeros(max_frames, width))
        self.spatial_embed = nn.Parameter(torch.zeros(num_tokens, width))
        for p in (self.type_embed, self.time_embed, self.spatial_embed):
            nn.init.trunc_normal_(p, std=0.02)
        self.camera_embed = None  # (C, W) when several cameras; absent for one so older state dicts still load
        if num_cameras > 1:
            self.camera_embed = nn.Parameter(nn.init.trunc_normal_(torch.zeros(num_cameras, width), std=0.02))
        self.blocks = nn.ModuleList(_Block(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.latent_out = nn.Linear(width, latent_dim)
        if residual:  # the change starts at zero: an untrained residual predictor copies the last frame
            nn.init.zeros_(self.latent_out.weight)
            nn.init.zeros_(self.latent_out.bias)
        self.proprio_out = nn.Linear(width, proprio_dim) if proprio_dim > 0 else None

    @classmethod
    def from_config(cls, cfg: PredictorConfig) -> ActionConditionedPredictor:
        """Build a predictor from a PredictorConfig (read, not mutated)."""
        return cls(**asdict(cfg))

    # ---- tokens -------------------------------------------------------------------------------------------
    def _embed(self, latents: Tensor, actions: Tensor, proprio: Tensor | None, t0: int) -> Tensor:
        """Tokens (B, T*M, W) for frames starting at absolute frame index t0."""
        b, t, n, _ = latents.shape
        if t0 + t > self.max_frames:
            raise ValueError(f"{t0 + t} frames exceed max_frames={self.max_frames}")
        time = self.time_embed[t0 : t0 + t][None, :, None]  # (1, T, 1, W)
        parts = [(self.action_in(actions) + self.type_embed[0])[:, :, None]]  # (B, T, 1, W)
        if self.proprio_in is not None:
            if proprio is None:
                raise ValueError("this predictor needs proprio inputs")
            parts.append((self.proprio_in(proprio) + self.type_embed[1])[:, :, None])  # (B, T, 1, W)
        parts.append(self.latent_in(latents) + self.type_embed[2] + self._token_embed())  # (B, T, N, W)
        x = torch.cat(parts, dim=2) + time  # (B, T, M, W)
        return x.reshape(b, t * self.tokens_per_frame, -1)

    def _token_embed(self) -> Tensor:
        """Per-latent-token embedding (N, W): spatial, plus each token's camera embedding with several cameras."""
        if self.camera_embed is None:
            return self.spatial_embed
        return self.spatial_embed + self.camera_embed.repeat_interleave(self.num_tokens // self.num_cameras, dim=0)

    def _block_causal_mask(self, frames: int, device: torch.device) -> Tensor:
        """Boolean (L, L) mask, True where query frame >= key frame."""
        fid = torch.arange(frames * self.tokens_per_frame, device=device) // self.tokens_per_frame  # (L,)
        return fid[:, None] >= fid[None, :]

    def _heads(self, x: Tensor, frames: int, current: Tensor) -> tuple[Tensor, Tensor | None]:
        """Map final hidden states (B, T*M, W) to next-frame latents (B, T, N, D) and proprio (B, T, P);
        ``current`` (B, T, N, D) are the input frames' latents (the base a residual predictor adds its change to)."""
        b = x.shape[0]
        x = self.norm(x).view(b, frames, self.tokens_per_frame, -1)  # (B, T, M, W)
        lat = self.latent_out(x[:, :, -self.num_tokens :])  # (B, T, N, D)
        if self.residual:
            lat = current + lat
        prop = self.proprio_out(x[:, :, 1]) if self.proprio_out is not None else None  # (B, T, P)
        return lat, prop

    def _run(self, x: Tensor, mask: Tensor | None, cache: KVCache | None) -> tuple[Tensor, KVCache]:
        """Run all blocks on new tokens x (B, L, W) under an optional mask, extending the KV cache."""
        new_cache: KVCache = []
        for i, blk in enumerate(self.blocks):
            x, kv = blk(x, mask, None if cache is None else cache[i])
            new_cache.append(kv)
        return x, new_cache

    # ---- teacher forcing ----------------------------------------------------------------------------------
    def forward(
        self, latents: Tensor, actions: Tensor, proprio: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced prediction: output at frame t (B, T, N, D) [and (B, T, P)] predicts frame t+1."""
        t = latents.shape[1]
        x = self._embed(latents, actions, proprio, 0)  # (B, T*M, W)
        x, _ = self._run(x, self._block_causal_mask(t, x.device), None)
        return self._heads(x, t, latents)

    # ---- autoregressive rollout ---------------------------------------------------------------------------
    def rollout(
        self,
        latent_history: Tensor,
        actions: Tensor,
        proprio_history: Tensor | None = None,
        action_history: Tensor | None = None,
        use_cache: bool = True,
        chunk_size: int | None = None,
        history_window: int | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Imagine H future frames (B, H, N, D) [and proprio (B, H, P)] from T0 known frames and H actions.

        Alignment: latent_history[:, -1] is frame T0-1; actions[:, h] is applied at frame T0-1+h and the
        output [:, h] is frame T0+h (so actions[:, 0] takes frame T0-1 to T0). action_history (B, T0-1, A)
        holds the actions executed between the history frames (zeros if None, exact for T0 = 1).
        actions may also be (B, S, H, A), S candidate sequences per history: outputs are then (B, S, H, N, D)
        and, with the cache, the history frames before T0-1 are encoded once per env and shared by its S rows.
        use_cache=True reuses keys/values of processed frames (O(H) frame passes); use_cache=False re-runs
        the whole prefix every step (O(H^2), the DINO-WM / V-JEPA 2-AC style reference); both agree to float
        tolerance. chunk_size splits the B (or B*S) rows into chunks run one after another. history_window
        keeps only the last that-many history frames; the history is also cut so T0 + H - 1 <= max_frames.
        """
        b, t0 = latent_history.shape[:2]
        lead = actions.shape[:-2]  # (B,) or (B, S)
        s = actions.shape[1] if actions.ndim == 4 else 1
        h = actions.shape[-2]
        if action_history is None:
            action_history = latent_history.new_zeros(b, t0 - 1, self.action_dim)
        keep = min(t0, history_window or t0, self.max_frames - h + 1)
        if keep < 1:
            raise ValueError(f"horizon {h} exceeds max_frames={self.max_frames}")
        lat_hist = latent_history[:, t0 - keep :]  # (B, T0', N, D)
        act_hist = action_history[:, action_history.shape[1] - (keep - 1) :]  # (B, T0'-1, A)
        prop_hist = None if proprio_history is None else proprio_history[:, t0 - keep :]  # (B, T0', P)
        flat = actions.reshape(b * s, h, self.action_dim)  # (R, H, A) with R = B*S rows
        env = torch.arange(b * s, device=actions.device) // s  # (R,) env of each row (no host sync)
        prefix: KVCache | None = None
        if use_cache and keep > 1:  # frames 0..T0'-2 do not depend on the candidate actions: once per env
            pre_p = None if prop_hist is None else prop_hist[:, :-1]
            x = self._embed(lat_hist[:, :-1], act_hist, pre_p, 0)  # (B, (T0'-1)*M, W)
            _, prefix = self._run(x, self._block_causal_mask(keep - 1, x.device), None)
        step = chunk_size if chunk_size else b * s
        lats, props = [], []
        for i in range(0, b * s, step):
            rows = env[i : i + step]  # (C,)
            p_rows = None if prop_hist is None else prop_hist[rows]  # (C, T0', P)
            if use_cache:
                cache = None if prefix is None else [(k[rows], v[rows]) for k, v in prefix]
                p_last = None if p_rows is None else p_rows[:, -1:]
                last = lat_hist[rows, -1:]  # (C, 1, N, D)
                lat, prop = self._rollout_cached(last, flat[i : i + step], p_last, cache, keep - 1)
            else:
                lat, prop = self._rollout_uncached(lat_hist[rows], flat[i : i + step], p_rows, act_hist[rows])
            lats.append(lat)
            props.append(prop)
        latents = torch.cat(lats, dim=0).reshape(*lead, h, self.num_tokens, self.latent_dim)  # (B[,S],H,N,D)
        kept = [p for p in props if p is not None]
        proprio = torch.cat(kept, dim=0).reshape(*lead, h, self.proprio_dim) if kept else None  # (B[,S],H,P)
        return latents, proprio

    def _rollout_cached(
        self, lat: Tensor, actions: Tensor, prop: Tensor | None, cache: KVCache | None, t_first: int
    ) -> tuple[Tensor, Tensor | None]:
        """KV-cached rollout from frame t_first (lat (C, 1, N, D)) after a cached prefix: a frame pass a step.

        Each new frame attends to every cached token and to its own frame, so no mask is needed.
        """
        out_lat, out_prop = [], []
        for step in range(actions.shape[1]):
            x = self._embed(lat, actions[:, step : step + 1], prop, t_first + step)  # (C, M, W)
            x, cache = self._run(x, None, cache)
            lat, prop = self._heads(x, 1, lat)  # (C, 1, N, D), (C, 1, P)
            out_lat.append(lat)
            out_prop.append(prop)
        return _stack_outputs(out_lat, out_prop)

    def _rollout_uncached(
        self, lat_hist: Tensor, actions: Tensor, prop_hist: Tensor | None, act_hist: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Reference rollout that re-runs the model over the whole growing prefix at every imagined step."""
        lats, props = lat_hist, prop_hist  # growing (C, T, N, D), (C, T, P)
        acts = torch.cat([act_hist, actions[:, :1]], dim=1)  # (C, T0, A)
        out_lat: list[Tensor] = []
        out_prop: list[Tensor | None] = []
        for step in range(actions.shape[1]):
            if step > 0:  # append the previous imagined frame with this step's action
                lats = torch.cat([lats, out_lat[-1]], dim=1)
                acts = torch.cat([acts, actions[:, step : step + 1]], dim=1)
                prev = out_prop[-1]
                props = None if props is None or prev is None else torch.cat([props, prev], dim=1)
            frames = lats.shape[1]
            x = self._embed(lats, acts, props, 0)  # (C, T*M, W)
            x, _ = self._run(x, self._block_causal_mask(frames, x.device), None)
            lat, prop = self._heads(x[:, -self.tokens_per_frame :], 1, lats[:, -1:])
            out_lat.append(lat)
            out_prop.append(prop)
        return _stack_outputs(out_lat, out_prop)


def _stack_outputs(lats: list[Tensor], props: list[Tensor | None]) -> tuple[Tensor, Tensor | None]:
    """Concatenate per-step (C, 1, N, D) / (C, 1, P) predictions into (C, H, N, D) / (C, H, P)."""
    latents = torch.cat(lats, dim=1)  # (C, H, N, D)
    kept = [p for p in props if p is not None]
    return latents, (torch.cat(kept, dim=1) if kept else None)
