"""V-JEPA pretraining as a function: deterministic per-step batches and masks, resumable, exports encoders.

The step loop, resume checkpoint and non-finite stops are worldmodel.training.loop's, shared with the
predictor's trainer; this module adds the JEPA model, its masks, data, validation and the encoder exports.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from worldmodel.checkpoint import load_state_dict_checked
from worldmodel.models.encoders.registry import file_sha256
from worldmodel.models.jepa import JEPA, JEPAConfig, num_params
from worldmodel.models.masks import MaskSampler, MaskSpec, default_vjepa_specs
from worldmodel.models.stats import collapse_stats
from worldmodel.models.vit import EncoderConfig, VideoViT, save_encoder
from worldmodel.training.distributed import (
    DistInfo,
    all_gather_cat,
    all_gather_rows,
    all_reduce_mean,
    barrier,
    init_distributed,
    local_batch_size,
    shard_bounds,
    wrap_ddp,
)
from worldmodel.training.end_to_end import FILE_NAME as END_TO_END
from worldmodel.training.end_to_end import save_end_to_end
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
from worldmodel.training.schedules import CosineRamp, LinearRamp, WarmupCosine

CKPT_KIND = "worldmodel.pretrain/v1"
RESUME_KEYS = ["encoder", "model", "masks"]
PRETRAIN_HINTS = (
    "a lower train.lr or a longer train.warmup",
    "train.grad_clip > 0 (e.g. 1.0)",
    "checking the data for NaN/inf or corrupt frames",
    "fp32 instead of bf16 autocast (train.precision=fp32)",
)


def mask_specs_from_config(masks_cfg: Mapping[str, Any], grid: tuple[int, int, int]) -> list[MaskSpec]:
    """Mask sets from config: explicit `specs` list, else a preset (vjepa | causal | mixed)."""
    specs = masks_cfg["specs"]
    if specs:
        return [MaskSpec.from_dict(s) for s in specs]
    preset = masks_cfg["preset"]
    causal = MaskSpec(kind="causal", num_blocks=0, context_t=int(masks_cfg["context_t"] or max(grid[0] // 2, 1)))
    if preset == "vjepa":
        return default_vjepa_specs()
    if preset == "causal":
        return [causal]
    if preset == "mixed":
        return [default_vjepa_specs()[0], causal]
    raise ValueError(f"unknown mask preset {preset!r}")


def build_mask_sampler(cfg: Mapping[str, Any], enc_cfg: EncoderConfig) -> MaskSampler:
    """The mask sampler for clips of data.clip_len frames on this encoder's token grid."""
    masks_cfg = cfg["masks"]
    grid = enc_cfg.grid(int(cfg["data"]["clip_len"]))
    return MaskSampler(mask_specs_from_config(masks_cfg, grid), grid, int(masks_cfg["min_context"]))


def pretrain_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with every setting of ``worldmodel.config.pretrain.PretrainConfig`` (its one default where ``cfg``
    leaves one out); an unknown key or a wrong type raises OmegaConf's error naming it."""
    from omegaconf import OmegaConf

    from worldmodel.config.pretrain import PretrainConfig

    merged = OmegaConf.merge(OmegaConf.structured(PretrainConfig), dict(cfg))
    return OmegaConf.to_container(merged)  # type: ignore[return-value]


def check_pretrainable(enc_cfg: Mapping[str, Any]) -> None:
    """Raise one clear ValueError when the encoder entry is not a VideoViT architecture (a foundation encoder such
    as encoder=vjepa2, or the frozen export entry of train_predictor)."""
    if "dim" in enc_cfg:
        return
    name = enc_cfg.get("name") or "export"
    raise ValueError(
        f"encoder={name} is a frozen encoder loaded from weights, not an architecture to pretrain: "
        "scripts/pretrain.py trains the in-house VideoViT (encoder=tiny|small|base|large); use "
        f"encoder={name} with scripts/train_predictor.py (docs/encoders.md)"
    )


def build_model(cfg: Mapping[str, Any], device: torch.device, action_dim: int = 0) -> JEPA:
    """Encoder + JEPA objective from config, initialised from train.seed (action_dim: the clips' A)."""
    torch.manual_seed(int(cfg["train"]["seed"]))
    encoder = VideoViT(EncoderConfig.from_dict(cfg["encoder"]))
    jcfg = JEPAConfig.from_dict({**dict(cfg["encoder"].get("predictor") or {}), **dict(cfg["model"])})
    return JEPA(encoder, jcfg, action_dim).to(device)


def clip_action_dim(dataset: Dataset) -> int:
    """Action channels per clip transition (frameskip x the env's A) of a clip dataset; 0 without actions."""
    if len(dataset) == 0:  # type: ignore[arg-type]
        return 0
    acts = dataset[0].get("actions")  # (T-1, A)
    return int(acts.shape[-1]) if acts is not None and acts.ndim == 2 else 0


def build_dataset(data_cfg: Mapping[str, Any], split: str) -> Dataset:
    """ClipDataset for the configured HDF5 file and split."""
    from worldmodel.data import ClipDataset

    return ClipDataset(
        data_cfg["path"],
        clip_len=int(data_cfg["clip_len"]),
        frameskip=int(data_cfg["frameskip"]),
        split=split,
        val_fraction=float(data_cfg["val_fraction"]),
        seed=int(data_cfg["split_seed"]),
        in_memory=bool(data_cfg["in_memory"]),
    )


def _autocast(device: torch.device, precision: str) -> Any:
    """bf16 autocast on GPU (precision auto|bf16), fp32 on CPU."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate(
    model: JEPA,
    batch: ValBatch,
    device: torch.device,
    precision: str,
) -> dict[str, float]:
    """Prediction losses and collapse stats on a fixed validation batch with fixed masks."""
    was = model.training
    model.eval()
    with _autocast(device, precision):
        out = model(batch.pixels, batch.masks, torch.Generator().manual_seed(0), actions=batch.actions)
    model.train(was)
    stats = collapse_stats(out.tokens.float(), g=torch.Generator().manual_seed(0))
    losses = {"val/pred_loss": float(out.pred_loss), "val/action_loss": float(out.action_loss)}
    if out.recon_loss is not None:
        losses["val/recon_loss"] = float(out.recon_loss)
    return {**losses, **{f"val/{k}": v for k, v in stats.items()}}


def train_loader(cfg: Mapping[str, Any], train_set: Dataset, start: int, stop: int, dist: DistInfo) -> DataLoader:
    """This rank's batches of steps [start, stop): its 1/world rows of each step's global batch."""
    batches = StepBatchSampler(
        len(train_set),
        int(cfg["train"]["batch_size"]),
        int(cfg["train"]["seed"]),
        start,
        stop,
        dist.rank,
        dist.world_size,
    )
    return DataLoader(
        train_set,
        batch_sampler=batches,
        num_workers=int(cfg["data"]["num_workers"]),
        pin_memory=dist.device.type == "cuda",
        persistent_workers=False,
    )


@dataclass
class ValBatch:
    """Fixed held-out clips (B, T, 3, H, W), their actions (B, T-1, A) or None, and fixed masks."""

    pixels: torch.Tensor
    actions: torch.Tensor | None
    masks: list[tuple[torch.Tensor, torch.Tensor]]


def validation_batch(
    cfg: Mapping[str, Any], val_set: Dataset | None, sampler: MaskSampler, device: torch.device, actions: bool
) -> ValBatch | None:
    """Up to 64 fixed held-out clips and fixed masks (None without held-out episodes): the validation batch."""
    if val_set is None and cfg["data"]["path"]:
        try:
            val_set = build_dataset(cfg["data"], "val")
        except Exception:  # no held-out episodes: skip validation rather than fail training
            val_set = None
    if val_set is None or len(val_set) == 0:
        return None
    g = torch.Generator().manual_seed(int(cfg["train"]["seed"]))
    idx = torch.randperm(len(val_set), generator=g)[: min(len(val_set), 64)].tolist()
    vp = torch.stack([val_set[i]["pixels"] for i in idx]).to(device)
    va = torch.stack([val_set[i]["actions"] for i in idx]).to(device) if actions else None
    return ValBatch(vp, va, [(c.to(device), t.to(device)) for c, t in sampler(vp.shape[0], g)])


class PretrainSteps:
    """Pretraining's part of the step loop (see loop.run_steps): the JEPA update, log row, validation, checkpoint."""

    def __init__(
        self,
        cfg: Mapping[str, Any],
        model: JEPA,
        fwd: torch.nn.Module,
        opt: torch.optim.Optimizer,
        lr_s: WarmupCosine,
        sampler: MaskSampler,
        ckpt: RunCheckpoint,
        logger: ScalarLogger,
        val_batch: ValBatch | None,
    ) -> None:
        tcfg, steps = cfg["train"], int(cfg["train"]["steps"])
        self.cfg, self.model, self.fwd, self.opt, self.sampler = cfg, model, fwd, opt, sampler
        self.ckpt, self.logger, self.val_batch, self.validating = ckpt, logger, val_batch, val_batch is not None
        self.device, self.precision = ckpt.dist.device, str(tcfg["precision"])
        self.bs, self.seed, self.clip = int(tcfg["batch_size"]), int(tcfg["seed"]), float(tcfg["grad_clip"])
        self.lo, self.hi = shard_bounds(self.bs, ckpt.dist.rank, ckpt.dist.world_size)  # this rank's mask rows
        self.lr_s = lr_s
        self.wd_s = CosineRamp(
            float(tcfg["weight_decay"]), float(tcfg["weight_decay_end"]), steps
        )
        self.ema_s = LinearRamp(float(tcfg["ema_start"]), float(tcfg["ema_end"]), steps)
        self.t0, self.seen, self.loss = time.perf_counter(), 0, float("nan")

    def step(self, step: int, batch: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """One update on this rank's rows of the step's global batch; returns the scalars and tokens to log."""
        lr, wd, mom = self.lr_s(step), self.wd_s(step), self.ema_s(step)
        for group in self.opt.param_groups:
            group["lr"] = lr
            if group.get("apply_wd"):
                group["weight_decay"] = wd
        g = torch.Generator().manual_seed(step_seed(self.seed, step))
        pixels = batch["pixels"].to(self.device, non_blocking=True)  # (B/world, T, 3, H, W) uint8
        # masks for the whole global batch (same draws on every rank), then this rank's rows
        masks = [
            (
                c[self.lo : self.hi].to(self.device, non_blocking=True),
                t[self.lo : self.hi].to(self.device, non_blocking=True),
            )
            for c, t in self.sampler(self.bs, g)
        ]
        actions = batch["actions"].to(self.device, non_blocking=True) if self.model.uses_actions else None
        with _autocast(self.device, self.precision):
            out = self.fwd(pixels, masks, g, gather=all_gather_rows, actions=actions)  # SIGReg: global batch
        recon = out.recon_loss if out.recon_loss is not None else torch.zeros_like(out.action_loss)
        terms = torch.stack([out.loss.detach(), out.pred_loss, out.sigreg, out.action_loss, recon]).float()
        loss_val, pred_val, sig_val, act_val, recon_val = all_reduce_mean(terms).tolist()
        gnorm = guarded_update(
            self.opt, out.loss, {"loss": loss_val}, self.model.parameters(), self.clip, step, self.ckpt
        )
        self.model.update_target(mom)
        self.seen += self.bs
        self.loss = loss_val
        scalars = {"loss": loss_val, "pred_loss": pred_val, "sigreg": sig_val, "action_loss": act_val}
        if out.recon_loss is not None:
            scalars["recon_loss"] = recon_val
        scalars = {**scalars, "lr": lr, "wd": wd, "ema_momentum": mom}
        return {**scalars, "grad_norm": gnorm, "tokens": out.tokens, "g": g}

    def log(self, done: int, out: dict[str, Any]) -> None:
        """Log the step's scalars, throughput and the global batch's collapse stats (rank 0)."""
        tokens = all_gather_cat(out["tokens"].float())  # the global batch's tokens, for collapse stats
        if self.ckpt.dist.is_main:
            elapsed = time.perf_counter() - self.t0
            row = {k: v for k, v in out.items() if k not in ("tokens", "g")}
            row["clips_per_s"] = self.seen / max(elapsed, 1e-9)
            self.logger.log(done, {**row, **collapse_stats(tokens, g=out["g"])})

    def validate(self, done: int) -> None:
        """Log the validation batch's loss and collapse stats."""
        assert self.val_batch is not None
        self.logger.log(done, evaluate(self.model, self.val_batch, self.device, self.precision))

    def save(self, done: int) -> None:
        """Resume checkpoint after ``done`` steps (see RunCheckpoint.save)."""

        def state() -> dict[str, Any]:
            return {
                "step": done,
                "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(),
                "config": dict(self.cfg),
            }

        self.ckpt.save(done, state, self.model)

    def postfix(self, out: dict[str, Any]) -> dict[str, Any]:
        """The progress bar's figures."""
        return {"loss": f"{out['loss']:.4f}", "lr": f"{out['lr']:.2e}"}


def pretrain(
    cfg: Mapping[str, Any],
    out_dir: str | Path,
    device: str | torch.device = "cpu",
    train_set: Dataset | None = None,
    val_set: Dataset | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the JEPA encoder into `out_dir` (resumes from out_dir/checkpoints/last.pt); export encoder.pt.

    Under torchrun (WORLD_SIZE > 1) every rank runs this: train.batch_size is the global batch, each rank
    takes its 1/world rows of every step's batch and masks, DDP averages the gradients, and only rank 0
    logs, checkpoints and exports (see worldmodel.training.distributed).
    """
    check_pretrainable(cfg["encoder"])
    cfg = pretrain_settings(cfg)
    out_dir = Path(out_dir)
    dist = init_distributed(device)
    tcfg = cfg["train"]
    steps, bs, seed = int(tcfg["steps"]), int(tcfg["batch_size"]), int(tcfg["seed"])
    local_batch_size(bs, dist.world_size)  # fail early when the global batch does not split evenly
    train_set = build_dataset(cfg["data"], "train") if train_set is None else train_set
    model = build_model(cfg, dist.device, clip_action_dim(train_set))  # JEPA checks it against model.action_weight
    data_meta = getattr(train_set, "meta", None)  # a ClipDataset's: env, action bounds (None for a bare dataset)
    e2e = model.action_term is not None and data_meta is not None  # the end-to-end world model is exported too
    if e2e:
        k = int(data_meta.get("frameskip", 1))  # bounds per env step -> per clip step
        low, high = (torch.as_tensor(data_meta[b], dtype=torch.float32).repeat(k) for b in ("action_low",
                                                                                            "action_high"))
        model.action_term.set_action_bounds(low.to(dist.device), high.to(dist.device))
    if dist.distributed:  # per-rank stream for anything drawn from the global RNG (dataloader worker seeds)
        torch.manual_seed(step_seed(seed, dist.rank, 2))
    sampler = build_mask_sampler(cfg, model.encoder.cfg)
    ckpt = RunCheckpoint(out_dir, CKPT_KIND, PRETRAIN_HINTS, dist)
    ckpt.remove_stale_temp_files(out_dir / "encoder.pt", out_dir / "encoder_random.pt")
    if dist.is_main and tcfg["export_random"] and not (out_dir / "encoder_random.pt").exists():
        save_encoder(model.encoder, out_dir / "encoder_random.pt", {"step": 0, "random_init": True, "seed": seed})
    opt, lr_s = make_optimizer(param_groups(model), tcfg, steps)
    state = ckpt.resume(cfg, RESUME_KEYS)
    start = 0
    if state is not None:
        load_state_dict_checked(model, state["model"], what="JEPA model")
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
    logger = ckpt.open_logger(start, bool(tcfg["tensorboard"]))
    fwd = wrap_ddp(model, dist)  # checkpoints hold the un-wrapped model: they move between world sizes
    cadence = Cadence.from_config(tcfg, time_budget=True)
    loader = train_loader(cfg, train_set, start, cadence.stop, dist)
    val_batch = None
    if cadence.eval_every > 0 and dist.is_main:
        val_batch = validation_batch(cfg, val_set, sampler, dist.device, model.uses_actions)
    model.train()
    run = PretrainSteps(cfg, model, fwd, opt, lr_s, sampler, ckpt, logger, val_batch)
    done = run_steps(run, loader, start, cadence, logger, "pretrain" if progress and dist.is_main else None)
    if steps == 0:
        run.save(0)
    exported = model.export_encoder() if str(tcfg["export"]) == "target" else model.encoder
    path = out_dir / "encoder.pt"
    if dist.is_main:
        save_encoder(exported, path, {"step": done, "random_init": done == 0, "seed": seed})
        if e2e:  # the end-to-end baseline beside it (training/end_to_end.py)
            save_end_to_end(model, data_meta, str(cfg["data"]["path"]), int(cfg["data"]["clip_len"]), out_dir,
                                  file_sha256(path) if exported is model.encoder else None)
    early = stopped_early(cadence, done)
    warnings = [] if early is None else [stopped_early_warning("pretraining", early)]
    for line in warnings:
        warn(line, dist.is_main)
    summary = {
        "encoder_path": str(path),
        "random_encoder_path": str(out_dir / "encoder_random.pt"),
        "end_to_end_path": str(out_dir / END_TO_END) if e2e else None,
        "steps": done,
        "steps_planned": cadence.stop,
        "stopped_early": early,
        "warnings": warnings,
        "resumed_from": start,
        "final_loss": run.loss,
        "encoder_params": num_params(model.encoder),
        "predictor_params": sum(num_params(m) for m in (model.predictor, model.action_term) if m is not None),
        "seconds": time.perf_counter() - run.t0,
        "world_size": dist.world_size,
        "model": model,
    }
    if dist.is_main:
        write_summary(out_dir, summary, drop=("model",))
    barrier()
    return summary
