"""V-JEPA pretraining loop as a function: deterministic per-step batches and masks, resumable, exports."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from worldmodel.eval.probes import collapse_stats
from worldmodel.models.jepa import JEPA, JEPAConfig, num_params
from worldmodel.models.masks import MaskSampler, MaskSpec, default_vjepa_specs
from worldmodel.models.vit import EncoderConfig, VideoViT, save_encoder
from worldmodel.training.checkpoint import (
    CheckpointError,
    check_config_match,
    latest_checkpoint,
    load_checkpoint,
    load_state_dict_checked,
    remove_stale_temp_files,
    save_checkpoint,
)
from worldmodel.training.distributed import (
    DistInfo,
    all_gather_cat,
    all_gather_rows,
    all_reduce_mean,
    any_rank,
    barrier,
    init_distributed,
    local_batch_size,
    same_on_all_ranks,
    shard_bounds,
    wrap_ddp,
)
from worldmodel.training.logger import ScalarLogger
from worldmodel.training.schedules import CosineRamp, LinearRamp, WarmupCosine

CKPT_KIND = "worldmodel.pretrain/v1"


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """Deterministic seed per (run seed, step, stream) so a resumed run redraws identical randomness."""
    return (seed * 1_000_003 + step * 7919 + stream * 104_729) % (2**62)


class StepBatchSampler(Sampler[list[int]]):
    """Batches for steps [start, total) from permutations seeded by (seed, epoch): resuming is exact.

    `batch_size` is the global batch; with `world_size` > 1 each rank gets its contiguous 1/world share of
    every step's indices, so the ranks together see exactly the single-process batches.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int,
        start_step: int,
        total_steps: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_items < 1:
            raise ValueError("empty dataset")
        self.n, self.b, self.seed = num_items, batch_size, seed
        self.start, self.total = start_step, total_steps
        self.lo, self.hi = shard_bounds(batch_size, rank, world_size)

    def _perm(self, epoch: int) -> torch.Tensor:
        """Permutation of item indices for one epoch."""
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(step_seed(self.seed, epoch, 1)))

    def __iter__(self) -> Iterator[list[int]]:
        cache: dict[int, torch.Tensor] = {}
        for step in range(self.start, self.total):
            pos = torch.arange(step * self.b, (step + 1) * self.b)
            epochs, offs = pos // self.n, pos % self.n
            idx = []
            for e, o in zip(epochs.tolist(), offs.tolist()):
                if e not in cache:
                    cache = {k: v for k, v in cache.items() if k >= e - 1}
                    cache[e] = self._perm(e)
                idx.append(int(cache[e][o]))
            yield idx[self.lo : self.hi]

    def __len__(self) -> int:
        return max(self.total - self.start, 0)


def mask_specs_from_config(masks_cfg: Mapping[str, Any], grid: tuple[int, int, int]) -> list[MaskSpec]:
    """Mask sets from config: explicit `specs` list, else a preset (vjepa | causal | mixed)."""
    specs = masks_cfg.get("specs")
    if specs:
        return [MaskSpec.from_dict(s) for s in specs]
    preset = masks_cfg.get("preset", "vjepa")
    causal = MaskSpec(kind="causal", num_blocks=0, context_t=int(masks_cfg.get("context_t") or max(grid[0] // 2, 1)))
    if preset == "vjepa":
        return default_vjepa_specs()
    if preset == "causal":
        return [causal]
    if preset == "mixed":
        return [default_vjepa_specs()[0], causal]
    raise ValueError(f"unknown mask preset {preset!r}")


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> cuda when available else cpu."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class NonFiniteLossError(FloatingPointError):
    """A NaN/inf loss, gradient norm or parameter stopped training; the last good checkpoint is left untouched."""


PRETRAIN_HINTS = (
    "a lower train.lr or a longer train.warmup",
    "train.grad_clip > 0 (e.g. 1.0)",
    "checking the data for NaN/inf or corrupt frames",
    "fp32 instead of bf16 autocast (train.precision=fp32)",
)


def check_finite(
    what: str,
    step: int,
    values: Mapping[str, float],
    ckpt: Path,
    saved_step: int | None,
    hints: Sequence[str],
) -> None:
    """Raise NonFiniteLossError naming the step, the values, the kept checkpoint and fixes, if a value is NaN/inf.

    Call it with values that are identical on every rank (all-reduced losses, synced gradient norms), so that
    under DDP all ranks stop at the same step instead of some waiting forever in the next collective.
    """
    if all(math.isfinite(v) for v in values.values()):
        return
    shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
    kept = (
        f"the last good checkpoint {ckpt} (step {saved_step}) is untouched and a re-run resumes from it"
        if saved_step is not None
        else "no checkpoint had been written yet"
    )
    raise NonFiniteLossError(
        f"non-finite {what} at step {step} ({shown}): training stopped; {kept}. Try {'; '.join(hints)}."
    )


def open_resumed_logger(out_dir: Path, ckpt: Path, start: int, dist: DistInfo, tensorboard: bool) -> ScalarLogger:
    """Check every rank resumes from the same step, then open rank 0's log from it (rows a killed attempt
    logged after ``start`` are dropped; ``start`` 0 drops all)."""
    if not same_on_all_ranks(start):
        raise CheckpointError(
            f"ranks disagree on the checkpoint to resume from ({ckpt} seen by some only): "
            "with several nodes, out_dir must be on a filesystem that all of them share"
        )
    return ScalarLogger(out_dir, enabled=dist.is_main, resume_step=start, tensorboard=tensorboard)


def save_finite_checkpoint(
    ckpt: Path,
    state: Callable[[], dict[str, Any]],
    kind: str,
    module: nn.Module,
    step: int,
    saved_step: int | None,
    hints: Sequence[str],
    dist: DistInfo,
) -> None:
    """Atomic resume checkpoint by rank 0, only of finite weights (else NonFiniteLossError on every rank,
    since weights are identical across ranks); the other ranks wait for it."""
    if not params_finite(module):
        check_finite("parameters", step, {"params": math.nan}, ckpt, saved_step, hints)
    if dist.is_main:
        save_checkpoint(ckpt, state(), kind)
    barrier()


def grad_norm(params: Sequence[nn.Parameter], clip: float) -> torch.Tensor:
    """Global L2 norm of the gradients (before clipping), clipping them to `clip` when clip > 0."""
    params = [p for p in params if p.grad is not None]
    if clip > 0:
        return nn.utils.clip_grad_norm_(params, clip)
    if not params:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.detach()) for p in params]))


def params_finite(module: nn.Module) -> bool:
    """Every parameter is finite (checked before a checkpoint is written, so last.pt is never poisoned)."""
    flags = [torch.isfinite(p.detach()).all() for p in module.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def build_model(cfg: Mapping[str, Any], device: torch.device) -> JEPA:
    """Encoder + JEPA objective from config, initialised from train.seed."""
    torch.manual_seed(int(cfg["train"]["seed"]))
    encoder = VideoViT(EncoderConfig.from_dict(cfg["encoder"]))
    jcfg = JEPAConfig.from_dict({**dict(cfg["encoder"].get("predictor") or {}), **dict(cfg.get("model") or {})})
    return JEPA(encoder, jcfg).to(device)


def param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices, none on biases, norms, positions and mask tokens."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "pos_table" in name or "mask_token" in name else decay).append(p)
    return [{"params": decay, "apply_wd": True}, {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}]


def build_dataset(data_cfg: Mapping[str, Any], split: str) -> Dataset:
    """ClipDataset for the configured HDF5 file and split."""
    from worldmodel.data import ClipDataset

    return ClipDataset(
        data_cfg["path"],
        clip_len=int(data_cfg["clip_len"]),
        frameskip=int(data_cfg.get("frameskip", 1)),
        split=split,
        val_fraction=float(data_cfg.get("val_fraction", 0.1)),
        seed=int(data_cfg.get("split_seed", 0)),
        in_memory=bool(data_cfg.get("in_memory", False)),
    )


RESUME_KEYS = ["encoder", "model", "masks"]


def _autocast(device: torch.device, precision: str) -> Any:
    """bf16 autocast on GPU (precision auto|bf16), fp32 on CPU."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate(
    model: JEPA,
    pixels: torch.Tensor,
    masks: Sequence[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    precision: str,
) -> dict[str, float]:
    """Prediction loss and collapse stats on a fixed validation batch with fixed masks."""
    was = model.training
    model.eval()
    with _autocast(device, precision):
        out = model(pixels, masks, torch.Generator().manual_seed(0))
    model.train(was)
    stats = collapse_stats(out.tokens.float(), g=torch.Generator().manual_seed(0))
    return {"val/pred_loss": float(out.pred_loss), **{f"val/{k}": v for k, v in stats.items()}}


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
    out_dir = Path(out_dir)
    dist = init_distributed(device)
    device = dist.device
    tcfg = cfg["train"]
    steps, bs, seed = int(tcfg["steps"]), int(tcfg["batch_size"]), int(tcfg["seed"])
    local_batch_size(bs, dist.world_size)  # fail early when the global batch does not split evenly
    precision = str(tcfg.get("precision", "auto"))
    model = build_model(cfg, device)
    if dist.distributed:  # per-rank stream for anything drawn from the global RNG (dataloader worker seeds)
        torch.manual_seed(step_seed(seed, dist.rank, 2))
    enc_cfg = model.encoder.cfg
    grid = enc_cfg.grid(int(cfg["data"]["clip_len"]))
    sampler = MaskSampler(
        mask_specs_from_config(cfg.get("masks") or {}, grid),
        grid,
        int((cfg.get("masks") or {}).get("min_context", 4)),
    )
    if dist.is_main:  # temporary files of saves a kill interrupted (this rank is their only writer)
        for target in (out_dir / "checkpoints" / "last.pt", out_dir / "encoder.pt", out_dir / "encoder_random.pt"):
            remove_stale_temp_files(target)
    if dist.is_main and tcfg.get("export_random", True) and not (out_dir / "encoder_random.pt").exists():
        save_encoder(model.encoder, out_dir / "encoder_random.pt", {"step": 0, "random_init": True, "seed": seed})

    opt = torch.optim.AdamW(
        param_groups(model),
        lr=float(tcfg["lr"]),
        betas=tuple(tcfg.get("betas", (0.9, 0.999))),
        weight_decay=float(tcfg["weight_decay"]),
    )
    lr_s = WarmupCosine(
        float(tcfg["lr"]),
        steps,
        int(tcfg.get("warmup", 0)),
        float(tcfg.get("lr_start", 0.0)),
        float(tcfg.get("lr_final", 0.0)),
    )
    wd_s = CosineRamp(float(tcfg["weight_decay"]), float(tcfg.get("weight_decay_end", tcfg["weight_decay"])), steps)
    ema_s = LinearRamp(float(tcfg.get("ema_start", 0.998)), float(tcfg.get("ema_end", 1.0)), steps)

    ckpt_dir = out_dir / "checkpoints"
    start = 0
    last = latest_checkpoint(ckpt_dir)  # every rank resumes from rank 0's checkpoint (shared out_dir)
    if last is not None:
        state = load_checkpoint(last, kind=CKPT_KIND, map_location="cpu")
        check_config_match(state["config"], dict(cfg), RESUME_KEYS, str(last))
        check_config_match(state["config"]["train"], dict(tcfg), ["batch_size", "seed"], str(last))
        load_state_dict_checked(model, state["model"], what="JEPA model")
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
    saved_step = start if last is not None else None
    logger = open_resumed_logger(out_dir, ckpt_dir / "last.pt", start, dist, bool(tcfg.get("tensorboard", True)))
    fwd = wrap_ddp(model, dist)  # checkpoints hold the un-wrapped model: they move between world sizes

    if train_set is None:
        train_set = build_dataset(cfg["data"], "train")
    stop = min(steps, int(tcfg.get("stop_after") or steps))  # stop_after: end early (as if interrupted)
    batches = StepBatchSampler(len(train_set), bs, seed, start, stop, dist.rank, dist.world_size)
    lo, hi = shard_bounds(bs, dist.rank, dist.world_size)  # this rank's rows of the global batch's masks
    workers = int(cfg["data"].get("num_workers", 0))
    loader = DataLoader(
        train_set,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )

    val_batch = None
    eval_every = int(tcfg.get("eval_every", 0))
    if eval_every > 0 and dist.is_main:
        if val_set is None and cfg["data"].get("path"):
            try:
                val_set = build_dataset(cfg["data"], "val")
            except Exception:  # no held-out episodes: skip validation rather than fail training
                val_set = None
        if val_set is not None and len(val_set) > 0:
            g = torch.Generator().manual_seed(seed)
            idx = torch.randperm(len(val_set), generator=g)[: min(len(val_set), 64)].tolist()
            vp = torch.stack([val_set[i]["pixels"] for i in idx]).to(device)
            val_batch = (vp, [(c.to(device), t.to(device)) for c, t in sampler(vp.shape[0], g)])

    model.train()
    log_every, ckpt_every = int(tcfg.get("log_every", 10)), int(tcfg.get("ckpt_every", 200))
    clip = float(tcfg.get("grad_clip", 0.0))
    bar = None
    if progress and dist.is_main:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=start, desc="pretrain", dynamic_ncols=True)
    t0, seen, loss_val = time.perf_counter(), 0, float("nan")
    hints = PRETRAIN_HINTS

    def save(step_done: int) -> None:
        """Atomic resume checkpoint of finite weights by rank 0 (see save_finite_checkpoint)."""
        state = lambda: {  # noqa: E731
            "step": step_done,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "config": dict(cfg),
        }
        save_finite_checkpoint(ckpt_dir / "last.pt", state, CKPT_KIND, model, step_done, saved_step, hints, dist)

    budget = float(tcfg.get("time_budget_s") or 0.0)  # >0: stop (checkpoint + export) after this many seconds
    done = start
    try:
        for step, batch in zip(range(start, stop), loader):
            lr, wd, mom = lr_s(step), wd_s(step), ema_s(step)
            for group in opt.param_groups:
                group["lr"] = lr
                if group.get("apply_wd"):
                    group["weight_decay"] = wd
            g = torch.Generator().manual_seed(step_seed(seed, step))
            pixels = batch["pixels"].to(device, non_blocking=True)  # (B/world, T, 3, H, W) uint8
            # masks for the whole global batch (same draws on every rank), then this rank's rows
            masks = [
                (c[lo:hi].to(device, non_blocking=True), t[lo:hi].to(device, non_blocking=True))
                for c, t in sampler(bs, g)
            ]
            with _autocast(device, precision):
                out = fwd(pixels, masks, g, gather=all_gather_rows)  # SIGReg over the global batch
            terms = all_reduce_mean(torch.stack([out.loss.detach(), out.pred_loss, out.sigreg]).float())
            loss_val, pred_val, sig_val = terms.tolist()
            check_finite("loss", step + 1, {"loss": loss_val}, ckpt_dir / "last.pt", saved_step, hints)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            gnorm = float(grad_norm(list(model.parameters()), clip))  # DDP-synced grads: same on every rank
            check_finite("gradient norm", step + 1, {"grad_norm": gnorm}, ckpt_dir / "last.pt", saved_step, hints)
            opt.step()
            model.update_target(mom)
            seen += bs
            done = step + 1
            out_of_time = budget > 0 and any_rank(time.perf_counter() - t0 > budget)
            last = done == stop or out_of_time
            if done % log_every == 0 or last:
                tokens = all_gather_cat(out.tokens.float())  # the global batch's tokens, for collapse stats
                if dist.is_main:
                    elapsed = time.perf_counter() - t0
                    row = {
                        "loss": loss_val,
                        "pred_loss": pred_val,
                        "sigreg": sig_val,
                        "lr": lr,
                        "wd": wd,
                        "ema_momentum": mom,
                        "grad_norm": gnorm,
                        "clips_per_s": seen / max(elapsed, 1e-9),
                        **collapse_stats(tokens, g=g),
                    }
                    logger.log(done, row)
            if val_batch is not None and (done % eval_every == 0 or last):
                logger.log(done, evaluate(model, val_batch[0], val_batch[1], device, precision))
            if done % ckpt_every == 0 or last:
                save(done)
                saved_step = done
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_val:.4f}", lr=f"{lr:.2e}")
            if out_of_time:
                break
    finally:
        if bar is not None:
            bar.close()
        logger.close()
    final_step = done
    if steps == 0:
        save(0)
    exported = model.export_encoder() if str(tcfg.get("export", "target")) == "target" else model.encoder
    path = out_dir / "encoder.pt"
    if dist.is_main:
        save_encoder(exported, path, {"step": final_step, "random_init": final_step == 0, "seed": seed})
    barrier()
    return {
        "encoder_path": str(path),
        "random_encoder_path": str(out_dir / "encoder_random.pt"),
        "steps": final_step,
        "resumed_from": start,
        "final_loss": loss_val,
        "encoder_params": num_params(model.encoder),
        "predictor_params": num_params(model.predictor),
        "seconds": time.perf_counter() - t0,
        "world_size": dist.world_size,
        "model": model,
    }


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, resolved dict from an OmegaConf/Hydra config or a mapping (configs are read, never mutated)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:
        pass
    return dict(cfg)
