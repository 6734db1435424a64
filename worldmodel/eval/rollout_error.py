"""Open-loop rollout error against horizon on held-out episodes, next to copy-last and mean baselines.

Shape letters: W evaluation windows, C context frames, H horizon, N latent tokens, D latent dim, A actions per
predictor step, P proprio dim, L frames of an episode.

For each window the model sees C true frames (and the actions between them), then imagines H frames open-loop
from the H logged actions. Errors are mean L1 per latent entry at each step h = 1..H, in the model's
latent space (primary; standardised or raw as its ``latent_norm`` says) and in raw encoder units. Baselines:
repeat the last context frame ("copy_last"), and the training-set mean latent ("mean_embedding", stored with the
world model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodel.data.clips import split_episodes
from worldmodel.data.reader import TrajectoryFile
from worldmodel.world_model import WorldModel


def episode_windows(
    wm: WorldModel,
    tf: TrajectoryFile,
    episodes: np.ndarray,
    context: int,
    horizon: int,
    stride: int,
    progress: bool = False,
) -> dict[str, Tensor]:
    """Encode each episode once and cut windows of C+H kept frames: latents (W, C+H, N, D) normalised,
    actions (W, C+H-1, A) env units, proprio (W, C+H, P) normalised (or empty), episode (W,).
    ``progress`` shows a tqdm bar over the episodes."""
    from tqdm import tqdm

    k = wm.frameskip
    span = (context + horizon - 1) * k + 1  # raw frames covered by one window
    lat, act, prop, eps = [], [], [], []
    for e in tqdm(episodes.tolist(), desc="encode episodes", unit="ep", disable=not progress, dynamic_ncols=True):
        ep = tf.episode(int(e))
        n = ep["pixels"].shape[0]
        if n < span:
            continue
        px = _episode_pixels(wm, tf, int(e), ep["pixels"])  # (L, 3, H, W), or {camera: (L, 3, H, W)}
        p_raw = torch.from_numpy(ep["proprio"].astype(np.float32))  # (L, P)
        enc = wm.encode(px, p_raw if wm.proprio_dim > 0 else None)
        z = enc["latents"].cpu()  # (L, N, D)
        starts = np.arange(0, n - span + 1, stride)  # (w,)
        frames = starts[:, None] + np.arange(context + horizon)[None, :] * k  # (w, C+H)
        rows = starts[:, None] + np.arange((context + horizon - 1) * k)[None, :]  # (w, (C+H-1)*k)
        lat.append(z[torch.from_numpy(frames)])
        a = ep["actions"].astype(np.float32)[rows].reshape(len(starts), context + horizon - 1, -1)
        act.append(torch.from_numpy(a))
        if enc["proprio"] is not None:
            prop.append(enc["proprio"].cpu()[torch.from_numpy(frames)])
        eps.append(torch.full((len(starts),), int(e), dtype=torch.int64))
    if not lat:
        raise ValueError(
            f"no held-out episode has {span} frames for context={context} + horizon={horizon} at "
            f"frameskip {k}; lower the horizon or evaluate on longer episodes"
        )
    return {
        "latents": torch.cat(lat),
        "actions": torch.cat(act),
        "proprio": torch.cat(prop) if prop else torch.empty(0),
        "episode": torch.cat(eps),
    }


def _episode_pixels(wm: WorldModel, tf: TrajectoryFile, e: int, pixels: np.ndarray) -> Tensor | dict[str, Tensor]:
    """Episode ``e``'s frames as ``wm.encode`` takes them: its default-camera ``pixels`` (L, H, W, 3) as (L, 3, H,
    W) for a model without named cameras, else {camera: (L, 3, H, W)} for each of ``wm.cameras``."""
    if wm.cameras is None:
        return torch.from_numpy(pixels).permute(0, 3, 1, 2)  # (L, 3, H, W)
    s, n = int(tf.episode_starts[e]), int(tf.episode_lengths[e])
    return {c: torch.from_numpy(tf.read_pixels(s, s + n, c)).permute(0, 3, 1, 2) for c in wm.cameras}


@torch.no_grad()
def rollout_error(
    wm: WorldModel,
    data_path: str | Path,
    horizon: int = 10,
    context: int = 1,
    split: str = "val",
    stride: int = 5,
    max_windows: int = 512,
    batch_size: int = 128,
    progress: bool = False,
) -> dict[str, Any]:
    """Per-step open-loop L1 of the model and both baselines on `split` episodes of `data_path` (``progress``:
    tqdm bars over the episodes encoded and the windows rolled out)."""
    from tqdm import tqdm

    if horizon < 1 or context < 1 or stride < 1:
        raise ValueError("horizon, context and stride must be >= 1")
    tf = TrajectoryFile(data_path)
    wm.check_compatible(tf.meta.action_dim, tf.column_shape("proprio")[0], env_id=tf.meta.env_id)
    for cam in wm.cameras or []:
        tf.pixel_key(cam)  # DatasetError naming the file's cameras before any episode is encoded
    dcfg = dict(wm.train_config.get("data") or {})
    train_ids, val_ids = split_episodes(
        tf.num_episodes, float(dcfg.get("val_fraction", 0.1)), int(dcfg.get("split_seed", 0))
    )
    episodes = {"val": val_ids, "train": train_ids, "all": np.arange(tf.num_episodes)}.get(split)
    if episodes is None or len(episodes) == 0:
        raise ValueError(f"split {split!r} holds no episodes of {data_path}; use split=all or another file")
    win = episode_windows(wm, tf, episodes, context, horizon, stride, progress)
    w = win["latents"].shape[0]
    keep = np.unique(np.linspace(0, w - 1, min(w, max_windows)).round().astype(np.int64))
    sums = {
        name: torch.zeros(horizon, dtype=torch.float64)
        for name in (
            "model",
            "copy_last",
            "mean_embedding",
            "model_raw",
            "copy_last_raw",
            "mean_embedding_raw",
        )
    }
    mean_norm = wm.normalize_latents(wm.latent_mean).cpu()  # (N, D) zeros when latents are standardised
    prop_errors = _ProprioErrors(wm, data_path, horizon) if wm.proprio_dim > 0 and win["proprio"].numel() else None
    bar = tqdm(total=len(keep), desc="rollouts", unit="window", disable=not progress, dynamic_ncols=True)
    for i in range(0, len(keep), batch_size):
        sel = torch.from_numpy(keep[i : i + batch_size])
        z = win["latents"][sel]  # (b, C+H, N, D)
        a = win["actions"][sel]  # (b, C+H-1, A)
        p = win["proprio"][sel] if win["proprio"].numel() else None  # (b, C+H, P)
        out = wm.rollout(
            z[:, :context],
            a[:, context - 1 :],
            None if p is None else p[:, :context],
            action_history=a[:, : context - 1],
        )
        pred = out["latents"].cpu()  # (b, H, N, D)
        true = z[:, context:]  # (b, H, N, D)
        last = z[:, context - 1 : context].expand_as(true)
        mean = mean_norm.expand_as(true)
        for name, guess in (("model", pred), ("copy_last", last), ("mean_embedding", mean)):
            sums[name] += (guess - true).abs().mean((-1, -2)).sum(0).double()
            raw = wm.denormalize_latents(guess.to(wm.device)).cpu() - wm.denormalize_latents(true.to(wm.device)).cpu()
            sums[f"{name}_raw"] += raw.abs().mean((-1, -2)).sum(0).double()
        if prop_errors is not None and p is not None:
            prop_errors.add(out, z[:, context:], p[:, context - 1 :])
        bar.update(len(sel))
    bar.close()
    per = {k: (v / len(keep)).tolist() for k, v in sums.items()}
    if prop_errors is not None:
        per.update(prop_errors.result(len(keep)))
    ratio = [m / c if c > 0 else float("nan") for m, c in zip(per["model"], per["copy_last"])]
    return {
        "data_path": str(data_path),
        "split": split,
        "episodes": len(episodes),
        "windows": int(len(keep)),
        "context": context,
        "horizon": list(range(1, horizon + 1)),
        "frameskip": wm.frameskip,
        "trained_horizon": (wm.meta or {}).get("trained_horizon"),  # None: saved before it was recorded
        "pool": wm.pool,
        "metric": "mean L1 per latent entry (the world model's own latent space; *_raw: raw encoder units)",
        **per,
        "model_over_copy_last": ratio,
    }


class _ProprioErrors:
    """Per-step, per-dimension mean |error| in raw proprio units (name -> [H][P]) of the predictor's proprio head,
    of a linear proprio readout of its imagined latents (ridge fitted on training frames), of the same readout of
    the true latents (its floor: one frame does not show velocity), and of copy-last.

    The two model rows answer what a planner can trust: the readout row is how far the imagined *images* are
    from the truth in the robot's own units, the head row how far the imagined proprio is. Accumulated from the
    rollouts rollout_error already runs."""

    NAMES = ("proprio_head", "proprio_readout", "proprio_readout_true", "proprio_copy_last")

    def __init__(self, wm: WorldModel, data_path: str | Path, horizon: int, readout_frames: int = 1500) -> None:
        from worldmodel.eval.readouts import fit_proprio_readout

        self.readout = fit_proprio_readout(wm, str(data_path), readout_frames)  # latents -> normalised proprio
        self.std = wm.proprio_std.cpu()  # (P,)
        self.sums = {k: torch.zeros(horizon, wm.proprio_dim, dtype=torch.float64) for k in self.NAMES}  # (H, P)

    @torch.no_grad()
    def add(self, out: dict[str, Tensor | None], true_latents: Tensor, prop: Tensor) -> None:
        """One batch: rollout output, true future latents (b, H, N, D), proprio from the last context frame on
        (b, 1+H, P) normalised."""
        assert out["proprio"] is not None
        true = prop[:, 1:]  # (b, H, P)
        guesses = {
            "proprio_head": out["proprio"].cpu(),
            "proprio_readout": self.readout(out["latents"]).cpu(),
            "proprio_readout_true": self.readout(true_latents).cpu(),
            "proprio_copy_last": prop[:, :1].expand_as(true),
        }
        for name, guess in guesses.items():
            self.sums[name] += ((guess - true) * self.std).abs().sum(0).double()  # (H, P) raw units

    def result(self, windows: int) -> dict[str, list[list[float]]]:
        """Mean over the windows seen."""
        return {k: (v / windows).tolist() for k, v in self.sums.items()}


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table: one row per horizon step with model, baselines and the model/copy-last ratio."""
    lines = [
        f"rollout error on {result['split']} episodes ({result['windows']} windows, "
        f"context {result['context']}, "
        f"pool {result['pool']}, frameskip {result['frameskip']}; {result['metric']})",
        f"{'h':>3} {'model':>9} {'copy_last':>10} {'mean_emb':>9} {'model/copy':>10}",
    ]
    trained = result.get("trained_horizon")
    for i, h in enumerate(result["horizon"]):
        lines.append(
            f"{h:>3} {result['model'][i]:>9.4f} {result['copy_last'][i]:>10.4f} "
            f"{result['mean_embedding'][i]:>9.4f} {result['model_over_copy_last'][i]:>10.3f}"
            + ("  beyond the trained horizon" if trained is not None and h > trained else "")
        )
    if "proprio_head" in result:
        lines.append("proprio error per dimension (mean |.|, raw units): head / readout of imagined latents / "
                     "readout of true latents / copy last")
        for i, h in enumerate(result["horizon"]):
            keys = ("proprio_head", "proprio_readout", "proprio_readout_true", "proprio_copy_last")
            cols = [result[k][i] for k in keys]
            lines.append(f"{h:>3} " + " / ".join("[" + " ".join(f"{v:.3f}" for v in c) + "]" for c in cols))
    return "\n".join(lines)


def write_report(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write rollout_error.json, rollout_error.txt and rollout_error.png (matplotlib Agg) into out_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "rollout_error.json",
        "table": out / "rollout_error.txt",
        "plot": out / "rollout_error.png",
    }
    paths["json"].write_text(json.dumps(result, indent=2))
    paths["table"].write_text(format_table(result) + "\n")
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for name, style in (("model", "o-"), ("copy_last", "s--"), ("mean_embedding", "^:")):
        ax.plot(result["horizon"], result[name], style, label=name.replace("_", " "))
    ax.set_xticks(result["horizon"])
    ax.set_xlabel("rollout step h")
    ax.set_ylabel("L1 (normalised latents)")
    ax.set_title(f"open-loop rollout error ({result['split']}, {result['windows']} windows)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths["plot"])
    plt.close(fig)
    return paths
