"""The end-to-end baseline: the encoder and the action term's predictor, trained together, as one world model.

LeWorldModel trains its encoder and its action-conditioned predictor jointly (next-embedding prediction, SIGReg
against collapse) and plans with both. Pretraining with ``model.action_weight > 0`` does the same on the pooled
latent the planner uses (models/action_term.py); the library's own recipe then freezes the encoder and trains a
fresh predictor on it (scripts/train_predictor.py). Saving the jointly trained pair as a world model lets the same
harness (evaluate, benchmark) show what freezing costs or earns. Its latents are the raw pooled embeddings
(identity normalisation: SIGReg already keeps them near a standard Gaussian) and it has no proprio head, so only
the latent goal cost applies to it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from worldmodel.models.jepa import JEPA
from worldmodel.world_model import WorldModel

FILE_NAME = "world_model_end_to_end.pt"


def end_to_end_world_model(
    model: JEPA, data_meta: Mapping[str, Any], data_path: str, clip_frames: int, encoder_sha256: str | None
) -> WorldModel:
    """The pretraining model's encoder and action-term predictor as a WorldModel (on CPU).

    ``data_meta`` is the clip dataset's meta (env id and kwargs, per-env-step action bounds, control_dt of one
    clip step, frameskip); ``clip_frames`` the pretraining clip length T (the predictor saw T-1 steps ahead).
    """
    term = model.action_term
    if term is None:
        raise ValueError("the end-to-end world model needs pretraining with model.action_weight > 0")
    frameskip = int(data_meta.get("frameskip", 1))
    low = torch.as_tensor(data_meta["action_low"], dtype=torch.float32)  # (A,) per env step
    high = torch.as_tensor(data_meta["action_high"], dtype=torch.float32)  # (A,)
    n_tok, dim = term.num_tokens, term.latent_dim
    meta = {
        "env_id": data_meta["env_id"],
        "env_kwargs": dict(data_meta.get("env_kwargs") or {}),
        "data_path": str(data_path),
        "control_dt": float(data_meta["control_dt"]),
        "trained_clip_frames": int(clip_frames),
        "trained_horizon": int(clip_frames) - 1,
        "rollout_loss_steps": 0,
        "end_to_end": True,
    }
    encoder = copy.deepcopy(model.encoder)  # the online encoder: the one the predictor was trained with
    predictor = copy.deepcopy(term.predictor)
    return WorldModel(
        encoder.cpu(), predictor.cpu().eval(), term.pool, frameskip, int(low.numel()), low, high,
        torch.zeros(n_tok, dim), torch.ones(n_tok, dim), meta=meta, encoder_info={"sha256": encoder_sha256},
        train_config={"end_to_end": True, "pool": term.pool},
    )


def save_end_to_end(
    model: JEPA, data_meta: Mapping[str, Any], data_path: str, clip_frames: int, out_dir: Path,
    encoder_sha256: str | None,
) -> Path:
    """Write out_dir/world_model_end_to_end.pt (atomically, loadable with weights_only=True); returns its path."""
    wm = end_to_end_world_model(model, data_meta, data_path, clip_frames, encoder_sha256)
    return wm.save(out_dir / FILE_NAME)


__all__ = ["FILE_NAME", "end_to_end_world_model", "save_end_to_end"]
