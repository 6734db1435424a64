"""Train the action-conditioned predictor on cached frozen-encoder latents; resumable; exports world_model.pt.

The frozen encoder is ``cfg["encoder"]``: the in-house export (``{path: encoder.pt}``) or a foundation encoder
from local weights (``{name: vjepa2 | dinov2, path: <dir>}``), see ``worldmodel.models.encoders``.

Cameras: ``data.cameras`` null trains on the file's default camera (as always); a list of the file's camera names
encodes each into the cache and gives the predictor N = K x N_cam tokens per frame (K camera groups, each with a
learned camera embedding); the exported world model records the list and encodes those cameras.

Shape letters: B batch, T clip frames, N latent tokens, D latent dim, A actions per predictor step, P proprio
dim, C context frames of the rollout loss, K rollout-loss steps.

Losses (V-JEPA 2-AC style, all L1 in the model's latent space, ``model.latent_norm``; weights from ``cfg.loss``):
  teacher forcing  predictor(z_0..z_{T-2}, a_0..a_{T-2}) vs z_1..z_{T-1} (block-causal, one pass)
  rollout          C true frames, then K autoregressive steps on its own predictions, vs z_C..z_{C+K-1}
  proprio          the proprio head's L1 on both paths, when the proprio token is used

Diagnostics: every validation also rolls the predictor out open-loop from one true frame over the whole clip,
h = 1..T-1 (how a planner uses it), beside copying that frame. A world model that beats copy-last at no h gets a
WARNING in the log and in ``train_summary.json``; the figures and the reach it was trained for (``trained_horizon``:
T-1 predictor steps) go into the world model's meta for the report and for planning, which warns when its goal
cost reads a step the model does not beat.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from worldmodel.checkpoint import load_state_dict_checked
from worldmodel.config.evaluate import typed
from worldmodel.config.train import LatentMetricConfig, WorldModelConfig
from worldmodel.data.embed_cache import CacheInfo, EmbeddingCache, LatentClipDataset, ensure_cache
from worldmodel.models.encoders.registry import encoder_spec, load_frame_encoder
from worldmodel.models.predictor import ActionConditionedPredictor, PredictorConfig
from worldmodel.training.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    init_distributed,
    local_batch_size,
    main_first,
    wrap_ddp,
)
from worldmodel.training.logger import ScalarLogger
from worldmodel.training.loop import (
    Cadence,
    RunCheckpoint,
    StepBatchSampler,
    guarded_update,
    make_optimizer,
    param_groups,
    run_steps,
    step_seed,
    stopped_early,
    stopped_early_warning,
    warn,
    write_summary,
)
from worldmodel.training.metric import fit_latent_metric
from worldmodel.training.schedules import WarmupCosine
from worldmodel.world_model import WorldModel

CKPT_KIND = "worldmodel.train_predictor/v1"
RESUME_KEYS = ["data", "encoder", "pool", "model", "predictor", "loss"]
PREDICTOR_SIZE_KEYS = ("width", "depth", "heads", "mlp_ratio", "max_frames", "residual")
PREDICTOR_HINTS = (
    "a lower train.lr or a longer train.warmup",
    "train.grad_clip > 0 (e.g. 1.0)",
    "checking the data and its embedding cache for NaN/inf (cache.rebuild=true rebuilds the cache)",
    "fp32 latents (cache.dtype=float32; the predictor itself trains in fp32)",
)


def build_predictor_config(
    pred_cfg: Mapping[str, Any],
    latent_dim: int,
    num_tokens: int,
    action_dim: int,
    proprio_dim: int,
    clip_len: int,
    num_cameras: int = 1,
) -> PredictorConfig:
    """Predictor sizes from config; data-dependent dims (D, N, A, P, cameras) from the cache, never from config."""
    sizes = {k: pred_cfg[k] for k in PREDICTOR_SIZE_KEYS if k in pred_cfg}
    cfg = PredictorConfig(
        latent_dim=latent_dim,
        action_dim=action_dim,
        num_tokens=num_tokens,
        proprio_dim=proprio_dim,
        num_cameras=num_cameras,
        **sizes,
    )
    if cfg.max_frames < clip_len:
        raise ValueError(f"predictor.max_frames={cfg.max_frames} < data.clip_len={clip_len}; raise max_frames")
    return cfg


def latent_stats(ds: LatentClipDataset, min_rel_std: float = 1e-2) -> dict[str, Tensor]:
    """Per-(token, channel) latent mean/std and proprio mean/std over the training episodes' frames."""
    frames = ds.frame_ids
    z = torch.from_numpy(ds.cache.latents[frames]).double()  # (F', N, D)
    mean, std = z.mean(0), z.std(0)  # (N, D)
    std = std.clamp_min(max(float(std.mean()) * min_rel_std, 1e-6))  # dead channels are not blown up
    p = torch.from_numpy(ds.cache.proprio[frames]).double()  # (F', P)
    pstd = p.std(0) if p.shape[0] > 1 else torch.ones(p.shape[1], dtype=torch.float64)
    return {
        "latent_mean": mean.float(),
        "latent_std": std.float(),
        "proprio_mean": p.mean(0).float(),
        "proprio_std": pstd.clamp_min(1e-6).float(),
    }


def model_batch(wm: WorldModel, batch: Mapping[str, Tensor], device: torch.device, use_proprio: bool) -> dict[str, Any]:
    """Cached raw batch -> normalised model-space tensors on `device`."""
    z = wm.normalize_latents(batch["latents"].to(device))  # (B, T, N, D)
    a = wm.normalize_actions(batch["actions"].to(device))  # (B, T-1, A)
    p = wm.normalize_proprio(batch["proprio"].to(device)) if use_proprio else None  # (B, T, P)
    return {"z": z, "a": a, "p": p}


def predictor_losses(
    predictor: ActionConditionedPredictor, z: Tensor, a: Tensor, p: Tensor | None, loss_cfg: Mapping[str, Any]
) -> dict[str, Tensor]:
    """Weighted teacher-forcing + rollout (+ proprio) L1 losses on a model-space batch ("loss": total)."""
    pred, ppred = predictor(z[:, :-1], a, None if p is None else p[:, :-1])  # (B, T-1, N, D), (B, T-1, P)
    out = {"tf_loss": (pred - z[:, 1:]).abs().mean()}
    prop_terms = [] if ppred is None or p is None else [(ppred - p[:, 1:]).abs().mean()]
    c, k = int(loss_cfg.get("rollout_context", 1)), int(loss_cfg.get("rollout_steps", 2))
    w_roll = float(loss_cfg.get("rollout", 1.0))
    total = float(loss_cfg.get("teacher_forcing", 1.0)) * out["tf_loss"]
    if w_roll > 0 and k > 0:
        if c < 1 or c + k > z.shape[1]:
            raise ValueError(
                f"loss.rollout_context={c} + loss.rollout_steps={k} needs clip_len >= {c + k}, "
                f"got {z.shape[1]}; raise data.clip_len or lower rollout_steps"
            )
        roll, proll = predictor.rollout(
            z[:, :c], a[:, c - 1 : c - 1 + k], None if p is None else p[:, :c], a[:, : c - 1], use_cache=True
        )  # (B, K, N, D), (B, K, P)
        out["rollout_loss"] = (roll - z[:, c : c + k]).abs().mean()
        total = total + w_roll * out["rollout_loss"]
        if proll is not None and p is not None:
            prop_terms.append((proll - p[:, c : c + k]).abs().mean())
    if prop_terms:
        out["proprio_loss"] = torch.stack(prop_terms).mean()
        total = total + float(loss_cfg.get("proprio", 0.1)) * out["proprio_loss"]
    out["loss"] = total
    return out


class PredictorLoss(nn.Module):
    """The predictor plus its training losses as one module, so DDP's forward covers rollout calls too."""

    def __init__(self, predictor: ActionConditionedPredictor, loss_cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.predictor = predictor
        self.loss_cfg = dict(loss_cfg)

    def forward(self, z: Tensor, a: Tensor, p: Tensor | None) -> dict[str, Tensor]:
        """Losses of a model-space batch (see predictor_losses)."""
        return predictor_losses(self.predictor, z, a, p, self.loss_cfg)


@torch.no_grad()
def copy_last_by_horizon(
    wm: WorldModel,
    ds: LatentClipDataset,
    idx: np.ndarray,
    device: torch.device,
    use_proprio: bool,
    batch_size: int,
) -> dict[str, Any]:
    """Open-loop L1 per rollout step h = 1..T-1 from one true frame (as a planner imagines) on fixed clips, beside
    repeating that frame ("copy_last"); ``not_beaten_at`` lists the h where the model is no better."""
    was = wm.predictor.training
    wm.predictor.eval()
    model_sum = copy_sum = None
    for i in range(0, len(idx), batch_size):
        mb = model_batch(wm, ds.batch(idx[i : i + batch_size]), device, use_proprio)
        z, a, p = mb["z"], mb["a"], mb["p"]  # (B, T, N, D), (B, T-1, A), (B, T, P) or None
        roll, _ = wm.predictor.rollout(
            z[:, :1], a, None if p is None else p[:, :1], a[:, :0], use_cache=True
        )  # (B, T-1, N, D)
        true = z[:, 1:]  # (B, T-1, N, D)
        m = (roll - true).abs().mean((-1, -2)).sum(0)  # (T-1,)
        c = (z[:, :1] - true).abs().mean((-1, -2)).sum(0)  # (T-1,)
        model_sum = m if model_sum is None else model_sum + m
        copy_sum = c if copy_sum is None else copy_sum + c
    wm.predictor.train(was)
    assert model_sum is not None and copy_sum is not None, "no validation clips"
    model, copy = (model_sum / len(idx)).tolist(), (copy_sum / len(idx)).tolist()  # one host sync, at the end
    ratio = [mv / cv if cv > 0 else float("inf") for mv, cv in zip(model, copy)]
    return {
        "horizon": list(range(1, len(model) + 1)),
        "model": model,
        "copy_last": copy,
        "model_over_copy_last": ratio,
        "not_beaten_at": [h for h, r in enumerate(ratio, 1) if not r < 1.0],
        "clips": int(len(idx)),
    }


def copy_last_warning(record: Mapping[str, Any] | None) -> str | None:
    """The warning for a world model that beats copy-last at none of its trained horizons (None otherwise). One
    that loses at some steps only (predictors trained on raw latents lose at step 1) keeps them in its record and
    report; planning warns when its goal cost reads such a step (planning.horizon.check_world_model_horizon)."""
    if not record or len(record["not_beaten_at"]) < len(record["horizon"]):
        return None
    bad = record["not_beaten_at"]
    ratios = ", ".join(f"h={h}: {record['model_over_copy_last'][h - 1]:.2f}" for h in bad)
    return (
        f"the world model does not beat copy-last on {record['clips']} validation clips at any rollout step "
        f"1..{len(record['horizon'])} trained (model / copy-last L1 {ratios}): repeating the last frame predicts "
        "better, so planning with it will likely sit at the random floor. Train longer (train.steps), check that "
        "frames change between steps (data.frameskip) and that the encoder is not collapsed"
    )


def trained_reach(cfg: Mapping[str, Any]) -> dict[str, int]:
    """How far ahead the predictor is trained to imagine, for the world model's meta: clips of T frames teach it
    to predict T-1 predictor steps ahead of one true frame (time positions 0..T-1; later ones it never saw),
    K of them on its own predictions (the rollout loss)."""
    clip = int(cfg["data"]["clip_len"])
    loss = cfg["loss"]
    k = int(loss.get("rollout_steps", 2)) if float(loss.get("rollout", 1.0)) > 0 else 0
    return {"trained_clip_frames": clip, "trained_horizon": clip - 1, "rollout_loss_steps": k}


@torch.no_grad()
def evaluate(
    wm: WorldModel,
    ds: LatentClipDataset,
    idx: np.ndarray,
    loss_cfg: Mapping[str, Any],
    device: torch.device,
    use_proprio: bool,
    batch_size: int,
) -> dict[str, float]:
    """Mean validation losses over fixed clips, plus the copy-last-frame L1 for scale."""
    was = wm.predictor.training
    wm.predictor.eval()
    sums: dict[str, float] = {}
    for i in range(0, len(idx), batch_size):
        mb = model_batch(wm, ds.batch(idx[i : i + batch_size]), device, use_proprio)
        losses = predictor_losses(wm.predictor, mb["z"], mb["a"], mb["p"], loss_cfg)
        losses["copy_last_l1"] = (mb["z"][:, :-1] - mb["z"][:, 1:]).abs().mean()
        n = mb["z"].shape[0]
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
    wm.predictor.train(was)
    return {f"val/{k}": v / len(idx) for k, v in sums.items()}


def build_datasets(
    cfg: Mapping[str, Any], device: torch.device, progress: bool, allow_rebuild: bool = True
) -> tuple[LatentClipDataset, LatentClipDataset | None, Any]:
    """Ensure the embedding cache and open train/val clip datasets over it (allow_rebuild=False: never force)."""
    d, c = cfg["data"], cfg.get("cache") or {}
    encoder_spec(cfg["encoder"])  # one clear error for an entry that names no usable encoder (e.g. encoder=tiny)
    info = ensure_cache(
        d["path"],
        cfg["encoder"],
        cfg["pool"],
        device,
        cache_path=c.get("path"),
        batch_frames=int(c.get("batch_frames", 256)),
        dtype=str(c.get("dtype", "float32")),
        rebuild=allow_rebuild and bool(c.get("rebuild", False)),
        progress=progress,
        cameras=config_cameras(d),
    )
    cache = EmbeddingCache(info.path)
    kw = dict(
        clip_len=int(d["clip_len"]),
        frameskip=int(d.get("frameskip", 1)),
        val_fraction=float(d.get("val_fraction", 0.1)),
        seed=int(d.get("split_seed", 0)),
    )
    train = LatentClipDataset(cache, split="train", **kw)
    val = LatentClipDataset(cache, split="val", **kw) if float(d.get("val_fraction", 0.1)) > 0 else None
    return train, val, info


def config_cameras(data_cfg: Mapping[str, Any]) -> list[str] | None:
    """``data.cameras`` as a plain list of names (None: the file's default camera)."""
    cams = data_cfg.get("cameras")
    if cams is None:
        return None
    if isinstance(cams, str):
        raise ValueError(f"data.cameras={cams!r} must be a list of camera names, e.g. [{cams}], or null")
    return [str(c) for c in cams]


def latent_norm_of(model_cfg: Mapping[str, Any]) -> str:
    """``model.latent_norm`` of a plain-dict config, checked by the schema (which refuses the old boolean
    ``model.normalize_latents`` with its new spelling)."""
    return typed(WorldModelConfig, model_cfg).latent_norm


def run_stats(
    state: Mapping[str, Any] | None, train_set: LatentClipDataset, cfg: Mapping[str, Any]
) -> dict[str, Tensor]:
    """Normalisation statistics: the checkpoint's on resume, else the training set's, scaled as model.latent_norm
    says (channel: per (token, channel) | global: per-channel mean, one spread | none: identity)."""
    stats = state["stats"] if state is not None else latent_stats(train_set)
    norm = latent_norm_of(cfg["model"])
    mean, std = stats["latent_mean"], stats["latent_std"]  # (N, D) each
    if norm == "global":
        spread = std.float().pow(2).mean().sqrt()  # RMS of the per-channel spreads: one scalar
        return {**stats, "latent_std": torch.full_like(std, float(spread))}
    if norm == "none":
        return {**stats, "latent_mean": torch.zeros_like(mean), "latent_std": torch.ones_like(std)}
    return stats


def predictor_config_for(cfg: Mapping[str, Any], train_set: LatentClipDataset) -> PredictorConfig:
    """The predictor's config for this cache (see build_predictor_config)."""
    cache = train_set.cache
    n_tok, dim = cache.latent_shape
    action_dim = train_set.frameskip * len(cache.meta["action_low"])
    proprio_dim = cache.proprio.shape[1] if bool(cfg["model"].get("use_proprio", True)) else 0
    clip = int(cfg["data"]["clip_len"])
    return build_predictor_config(cfg["predictor"], dim, n_tok, action_dim, proprio_dim, clip, cache.num_cameras)


def build_world_model(
    cfg: Mapping[str, Any],
    pcfg: PredictorConfig,
    train_set: LatentClipDataset,
    cache_info: CacheInfo,
    stats: Mapping[str, Tensor],
    dist: DistInfo,
) -> WorldModel:
    """The frozen encoder and a fresh predictor (initialised from train.seed) as a WorldModel on this rank's device."""
    use_proprio = bool(cfg["model"].get("use_proprio", True))
    cache, frameskip = train_set.cache, train_set.frameskip
    env_a = len(cache.meta["action_low"])
    seed = int(cfg["train"]["seed"])
    torch.manual_seed(seed)
    predictor = ActionConditionedPredictor.from_config(pcfg)
    if dist.distributed:  # per-rank stream for anything drawn from the global RNG from here on
        torch.manual_seed(step_seed(seed, dist.rank, 2))
    spec = encoder_spec(cfg["encoder"])
    encoder = load_frame_encoder(cfg["encoder"], "cpu")  # frozen: eval mode, requires_grad False
    encoder_info = {"sha256": cache_info.key["encoder_sha256"], "path": str(spec.path), "options": spec.options}
    meta = {
        "env_id": cache.meta["env_id"],
        "env_kwargs": cache.meta["env_kwargs"],
        "data_path": str(cfg["data"]["path"]),
        "encoder_sha256": cache_info.key["encoder_sha256"],
        "control_dt": cache.meta["control_dt"] * frameskip,
        **trained_reach(cfg),
    }
    wm = WorldModel(
        encoder,
        predictor,
        cfg["pool"],
        frameskip,
        env_a,
        torch.tensor(cache.meta["action_low"]),
        torch.tensor(cache.meta["action_high"]),
        stats["latent_mean"],
        stats["latent_std"],
        stats["proprio_mean"] if use_proprio else None,
        stats["proprio_std"] if use_proprio else None,
        train_config=dict(cfg),
        meta=meta,
        rollout_chunk=int(cfg["model"].get("rollout_chunk", 1024)),
        encoder_info=encoder_info,
        cameras=cache.cameras,
    )
    return wm.to(dist.device)


class PredictorSteps:
    """The predictor's part of the step loop (see loop.run_steps): update, log row, validation, checkpoint."""

    def __init__(
        self,
        cfg: Mapping[str, Any],
        wm: WorldModel,
        opt: torch.optim.Optimizer,
        lr_s: WarmupCosine,
        train_set: LatentClipDataset,
        val_set: LatentClipDataset | None,
        stats: Mapping[str, Tensor],
        ckpt: RunCheckpoint,
        logger: ScalarLogger,
    ) -> None:
        tcfg = cfg["train"]
        self.cfg, self.wm, self.opt, self.lr_s, self.stats = cfg, wm, opt, lr_s, stats
        self.train_set, self.val_set, self.ckpt, self.logger = train_set, val_set, ckpt, logger
        self.loss_cfg, self.device = cfg["loss"], ckpt.dist.device
        self.use_proprio = bool(cfg["model"].get("use_proprio", True))
        self.bs, self.clip = int(tcfg["batch_size"]), float(tcfg.get("grad_clip", 0.0))
        # the predictor and its losses as one DDP module; checkpoints hold the un-wrapped predictor
        self.losses_of = wrap_ddp(PredictorLoss(wm.predictor, self.loss_cfg), ckpt.dist)
        self.val_idx = None
        if val_set is not None and len(val_set) > 0 and ckpt.dist.is_main:
            n_val = min(len(val_set), int(tcfg.get("val_clips", 256)))
            self.val_idx = np.linspace(0, len(val_set) - 1, n_val).round().astype(np.int64)  # fixed, spread out
        self.validating = self.val_idx is not None and int(tcfg.get("eval_every", 0)) > 0
        self.t0, self.seen = time.perf_counter(), 0
        self.last_row, self.val_row = {}, {}  # the last logged training and validation rows
        self.by_horizon: dict[str, Any] | None = None  # copy_last_by_horizon of the last validation
        self.by_horizon_step = -1  # ... and the step it was taken at

    def step(self, step: int, idx: list[int]) -> dict[str, float]:
        """One update on this rank's clips of the step's global batch; returns the all-reduced losses and lr."""
        lr = self.lr_s(step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        mb = model_batch(self.wm, self.train_set.batch(np.asarray(idx)), self.device, self.use_proprio)
        losses = self.losses_of(mb["z"], mb["a"], mb["p"])
        names = list(losses)
        means = dict(zip(names, all_reduce_mean(torch.stack([losses[k].detach() for k in names])).tolist()))
        params = self.wm.predictor.parameters()
        gnorm = guarded_update(self.opt, losses["loss"], means, params, self.clip, step, self.ckpt)
        self.seen += self.bs
        return {**means, "lr": lr, "grad_norm": gnorm}

    def log(self, done: int, out: dict[str, float]) -> None:
        """Log the step's losses, lr, gradient norm and throughput."""
        self.last_row = {**out, "samples_per_s": self.seen / max(time.perf_counter() - self.t0, 1e-9)}
        self.logger.log(done, self.last_row)

    def validate(self, done: int) -> None:
        """Log the validation losses over the fixed validation clips."""
        assert self.val_set is not None and self.val_idx is not None
        self.val_row = evaluate(
            self.wm, self.val_set, self.val_idx, self.loss_cfg, self.device, self.use_proprio, self.bs
        )
        rec = self.horizon_check(done)
        self.val_row.update(
            {
                "val/open_loop_l1": float(np.mean(rec["model"])),
                "val/open_loop_copy_last_l1": float(np.mean(rec["copy_last"])),
                "val/open_loop_over_copy_last_worst": max(rec["model_over_copy_last"]),
            }
        )
        self.logger.log(done, self.val_row)

    def horizon_check(self, done: int) -> dict[str, Any]:
        """copy_last_by_horizon on the fixed validation clips after ``done`` steps (computed once per step)."""
        assert self.val_set is not None and self.val_idx is not None
        if self.by_horizon is None or self.by_horizon_step != done:
            self.by_horizon = copy_last_by_horizon(
                self.wm, self.val_set, self.val_idx, self.device, self.use_proprio, self.bs
            )
            self.by_horizon_step = done
        return self.by_horizon

    def save(self, done: int) -> None:
        """Resume checkpoint after ``done`` steps (see RunCheckpoint.save)."""

        def state() -> dict[str, Any]:
            return {
                "step": done,
                "predictor": self.wm.predictor.state_dict(),
                "optimizer": self.opt.state_dict(),
                "config": dict(self.cfg),
                "stats": self.stats,
            }

        self.ckpt.save(done, state, self.wm.predictor)

    def postfix(self, out: dict[str, float]) -> dict[str, Any]:
        """The progress bar's figures: the last logged loss and the lr."""
        return {"loss": f"{self.last_row.get('loss', float('nan')):.4f}", "lr": f"{out['lr']:.1e}", "refresh": False}


def fit_metric(
    mcfg: LatentMetricConfig,
    seed: int,
    wm: WorldModel,
    train_set: LatentClipDataset,
    val_set: LatentClipDataset | None,
    stats: Mapping[str, Tensor],
    progress: bool = False,
) -> dict[str, Any] | None:
    """Train the learned step metric (``metric.steps`` > 0) on the training episodes' latents in the world model's
    space, attach it to ``wm`` and return its summary; None when metric.steps=0."""
    if mcfg.steps == 0:
        return None
    cache = train_set.cache
    z = (torch.from_numpy(cache.latents) - stats["latent_mean"].cpu()) / stats["latent_std"].cpu()  # (F, N, D)

    def episodes(ds: LatentClipDataset) -> tuple[np.ndarray, np.ndarray]:
        return cache.episode_starts[ds.episode_ids], cache.episode_lengths[ds.episode_ids]

    val = None if val_set is None else episodes(val_set)
    metric, summary = fit_latent_metric(z, episodes(train_set), mcfg, seed, val, progress, wm.device)
    wm.metric = metric
    return summary


def train_predictor(
    cfg: Mapping[str, Any], out_dir: str | Path, device: str | torch.device = "cpu", progress: bool = True
) -> dict[str, Any]:
    """Train per `cfg` into out_dir (resuming out_dir/checkpoints/last.pt); export out_dir/world_model.pt.

    Under torchrun (WORLD_SIZE > 1) every rank runs this: rank 0 builds the embedding cache first, each rank
    takes its 1/world rows of every step's global batch (train.batch_size), DDP averages the gradients, and
    only rank 0 logs, checkpoints and exports.
    """
    out_dir = Path(out_dir)
    dist = init_distributed(device)
    tcfg = cfg["train"]
    steps, bs, seed = int(tcfg["steps"]), int(tcfg["batch_size"]), int(tcfg["seed"])
    local_batch_size(bs, dist.world_size)  # fail early when the global batch does not split evenly
    latent_norm_of(cfg["model"])  # and on a bad model.latent_norm, before the cache is built
    metric_cfg = typed(LatentMetricConfig, cfg.get("metric") or {})  # and on a bad metric.* setting
    with main_first():  # rank 0 builds the shared cache; the others then open it (never rebuild it again)
        train_set, val_set, cache_info = build_datasets(
            cfg, dist.device, progress and dist.is_main, allow_rebuild=dist.is_main
        )
    pcfg = predictor_config_for(cfg, train_set)
    ckpt = RunCheckpoint(out_dir, CKPT_KIND, PREDICTOR_HINTS, dist)
    ckpt.remove_stale_temp_files(out_dir / "world_model.pt")
    state = ckpt.resume(cfg, RESUME_KEYS)
    stats = run_stats(state, train_set, cfg)
    wm = build_world_model(cfg, pcfg, train_set, cache_info, stats, dist)
    opt, lr_s = make_optimizer(param_groups(wm.predictor), tcfg, steps)
    start = 0
    if state is not None:
        load_state_dict_checked(wm.predictor, state["predictor"], what="predictor")
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
    logger = ckpt.open_logger(start, bool(tcfg.get("tensorboard", True)))
    run = PredictorSteps(cfg, wm, opt, lr_s, train_set, val_set, stats, ckpt, logger)
    cadence = Cadence.from_config(tcfg)
    wm.predictor.train()
    batches = StepBatchSampler(len(train_set), bs, seed, start, cadence.stop, dist.rank, dist.world_size)
    done = run_steps(run, batches, start, cadence, logger, "train predictor" if progress and dist.is_main else None)
    if cadence.stop <= start and state is None:
        run.save(start)
    wm.eval()
    by_horizon = run.horizon_check(max(done, start)) if run.val_idx is not None else None
    wm.meta["copy_last_by_horizon"] = by_horizon  # None without validation clips (rank 0 only: it exports)
    early = stopped_early(cadence, done)
    warnings = [w for w in (copy_last_warning(by_horizon),) if w]
    warnings += [] if early is None else [stopped_early_warning("predictor training", early)]
    for line in warnings:
        warn(line, dist.is_main)
    metric_summary = fit_metric(metric_cfg, seed, wm, train_set, val_set, stats, progress) if dist.is_main else None
    path = out_dir / "world_model.pt"
    if dist.is_main:
        wm.save(path)
    summary = {
        "world_model_path": str(path),
        "steps": max(done, start),
        "steps_planned": cadence.stop,
        "stopped_early": early,
        "warnings": warnings,
        "copy_last_by_horizon": by_horizon,
        "trained_horizon": wm.meta["trained_horizon"],
        "resumed_from": start,
        "cache_path": str(cache_info.path),
        "cache_rebuilt": cache_info.rebuilt,
        "train": run.last_row,
        "val": run.val_row,
        "train_clips": len(train_set),
        "val_clips": 0 if val_set is None else len(val_set),
        "predictor_params": sum(p.numel() for p in wm.predictor.parameters()),
        "seconds": time.perf_counter() - run.t0,
        "world_size": dist.world_size,
        "metric": metric_summary,
        "world_model": wm,
    }
    if dist.is_main:
        write_summary(out_dir, summary, drop=("world_model",))
    barrier()
    return summary
