"""Readouts fitted on a world model's latents of training frames: what a goal image shows, in other units.

``fit_proprio_readout`` maps latents to the robot's normalised proprio (the target of the objective's proprio
term: the goal's proprio is read out of the goal image, never given); ``fit_latent_readout`` maps latents to the
env's task coordinates (the objective's diagnostic probe term). Both return latents (..., N, D) -> (..., K).
A multi-camera world model (``wm.cameras``) encodes each training frame through every one of its cameras.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from worldmodel.planning.config import READOUTS


def ridge_readout(lat: Tensor, target: Tensor, lam: float, device: torch.device) -> Callable[[Tensor], Tensor]:
    """Fit ridge from flattened latents (M, N*D) to targets (M, K); returns latents (..., N, D) -> (..., K)."""
    from worldmodel.eval.probes import ridge_fit, ridge_predict

    w, bias, mu, sd = (t.to(device) for t in ridge_fit(lat, target, lam))  # float64, as ridge_predict computes

    def readout(z: Tensor) -> Tensor:
        return ridge_predict(z.flatten(-2), w, bias, mu, sd).float()  # (..., K)

    return readout


def knn_readout(lat: Tensor, target: Tensor, k: int) -> Callable[[Tensor], Tensor]:
    """Mean target of the k nearest bank rows in latent L1: bank (M, N*D), targets (M, K) -> (..., N, D) -> (..., K)."""
    kk = min(k, lat.shape[0])

    def readout(z: Tensor) -> Tensor:
        flat = z.flatten(-2).reshape(-1, lat.shape[1]).float()  # (Q, F)
        idx = torch.cdist(flat, lat, p=1).topk(kk, dim=1, largest=False).indices  # (Q, k)
        return target[idx].mean(1).reshape(*z.shape[:-2], -1)  # (..., K)

    return readout


def readout_frames(wm: Any, data_path: str, max_frames: int, seed: int = 0) -> dict[str, Any]:
    """Training-split frames of ``data_path`` to fit a readout on: ``pixels`` as ``wm.encode`` takes them ((M, 3,
    H, W) uint8 of the default camera, or {camera: (M, 3, H, W)} for each of ``wm.cameras``), ``states`` (M, Ds)
    and ``proprio`` (M, P). The frames are those ``load_probe_frames`` picks (frame 0 of 2-frame clips, the same
    seeded subset), read through the model's cameras."""
    from worldmodel.eval.probes import load_probe_frames

    return load_probe_frames(data_path, "train", max_frames, seed, cameras=getattr(wm, "cameras", None))


def fit_latent_readout(
    wm: Any, env: Any, data_path: str, max_frames: int = 3000, lam: float = 1.0
) -> Callable[[Tensor], Tensor]:
    """Ridge readout from the world model's normalised latents to the env's task coords, fitted on frames of
    the training split of ``data_path``: returns latents (..., N, D) -> coords (..., K)."""
    frames = readout_frames(wm, data_path, max_frames)
    lat = wm.encode(frames["pixels"])["latents"].flatten(1).cpu()  # (M, N*D)
    coords = torch.as_tensor(env.state_to_task_coords(frames["states"].double().numpy()))  # (M, K)
    return ridge_readout(lat, coords, lam, wm.device)


def fit_proprio_readout(
    wm: Any, data_path: str, max_frames: int = 3000, lam: float = 1.0, kind: str = "ridge", k: int = 5
) -> Callable[[Tensor], Tensor]:
    """Readout from the world model's normalised latents to its *normalised* proprio, fitted on frames of the
    training split of ``data_path`` (the robot's own recorded proprio, no task labels): returns latents
    (..., N, D) -> proprio (..., P) in the space of the predictor's proprio head. ``kind``: "ridge" (linear) or
    "knn" (mean proprio of the k nearest frames in latent L1; sharper where the latents are not linear in
    proprio, e.g. Reacher's joint angles)."""
    if kind not in READOUTS:
        raise ValueError(f"objective.proprio.readout must be one of {list(READOUTS)}, got {kind!r}")
    if k < 1:
        raise ValueError(f"objective.proprio.knn={k} must be >= 1")
    if wm.proprio_dim == 0:
        raise ValueError(
            "the objective's proprio term needs a world model trained with proprio (model.use_proprio=true)"
        )
    frames = readout_frames(wm, data_path, max_frames)
    if frames["proprio"].shape[-1] != wm.proprio_dim:
        raise ValueError(f"{data_path} has no proprio of dim {wm.proprio_dim}; use the world model's training data")
    lat = wm.encode(frames["pixels"])["latents"].flatten(1).cpu()  # (M, N*D)
    target = wm.normalize_proprio(frames["proprio"].to(wm.device)).cpu()  # (M, P)
    if kind == "knn":
        return knn_readout(lat.to(wm.device), target.to(wm.device), k)
    return ridge_readout(lat, target, lam, wm.device)
