"""What the two training loops share: per-step seeds and batches, the optimiser, the guarded update, the resume
checkpoint, and the step loop with its cadence (log, validate, checkpoint, stop).

A run checkpoints to ``<out_dir>/checkpoints/last.pt`` (rank 0 writes it, and only of finite weights) and
resumes from it after checking that the settings that shape the run are unchanged. A non-finite loss, gradient
norm or weight stops every rank at the same step and leaves the last good checkpoint in place. Batches, masks
and schedules are functions of the step, so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Sampler

from worldmodel.checkpoint import (
    CheckpointError,
    check_config_match,
    latest_checkpoint,
    load_checkpoint,
    remove_stale_temp_files,
    save_checkpoint,
)
from worldmodel.training.distributed import DistInfo, any_rank, barrier, same_on_all_ranks, shard_bounds
from worldmodel.training.logger import ScalarLogger
from worldmodel.training.schedules import WarmupCosine


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


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> cuda when available else cpu."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, resolved dict from an OmegaConf/Hydra config or a mapping (configs are read, never mutated)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:
        pass
    return dict(cfg)


# ------------------------------------------------------------------------------------------------ optimiser
def param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices, none on biases, norms, positions and mask tokens."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "pos_table" in name or "mask_token" in name else decay).append(p)
    return [{"params": decay, "apply_wd": True}, {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}]


def make_optimizer(
    groups: list[dict[str, Any]], tcfg: Mapping[str, Any], steps: int
) -> tuple[torch.optim.AdamW, WarmupCosine]:
    """AdamW over ``groups`` and its warmup-cosine learning-rate schedule over ``steps``, from the train config."""
    opt = torch.optim.AdamW(
        groups,
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
    return opt, lr_s


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


# ------------------------------------------------------------------------------------------------ non-finite stops
class NonFiniteLossError(FloatingPointError):
    """A NaN/inf loss, gradient norm or parameter stopped training; the last good checkpoint is left untouched."""


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


class RunCheckpoint:
    """The resume checkpoint ``<out_dir>/checkpoints/last.pt`` of one training run, and the step it holds."""

    def __init__(self, out_dir: str | Path, kind: str, hints: Sequence[str], dist: DistInfo) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / "checkpoints" / "last.pt"
        self.kind, self.hints, self.dist = kind, tuple(hints), dist
        self.saved_step: int | None = None
        """Step of the checkpoint on disk, None before the first: what a non-finite stop says is kept."""

    def remove_stale_temp_files(self, *exports: Path) -> None:
        """On rank 0 (their only writer), delete the temporary files that saves a kill interrupted left beside
        last.pt and the ``exports``."""
        if self.dist.is_main:
            for target in (self.path, *exports):
                remove_stale_temp_files(target)

    def resume(self, cfg: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any] | None:
        """The checkpoint's state, or None when starting fresh; every rank reads rank 0's (out_dir is shared).

        Raises CheckpointError when the config under ``keys``, train.batch_size or train.seed changed since.
        """
        last = latest_checkpoint(self.path.parent)
        if last is None:
            return None
        state = load_checkpoint(last, kind=self.kind, map_location="cpu")
        check_config_match(state["config"], dict(cfg), list(keys), str(last))
        check_config_match(state["config"]["train"], dict(cfg["train"]), ["batch_size", "seed"], str(last))
        self.saved_step = int(state["step"])
        return state

    def open_logger(self, start: int, tensorboard: bool) -> ScalarLogger:
        """Check every rank resumes from the same step, then open rank 0's log from it (rows a killed attempt
        logged after ``start`` are dropped; ``start`` 0 drops all)."""
        if not same_on_all_ranks(start):
            raise CheckpointError(
                f"ranks disagree on the checkpoint to resume from ({self.path} seen by some only): "
                "with several nodes, out_dir must be on a filesystem that all of them share"
            )
        return ScalarLogger(self.out_dir, enabled=self.dist.is_main, resume_step=start, tensorboard=tensorboard)

    def check(self, what: str, step: int, values: Mapping[str, float]) -> None:
        """Stop (NonFiniteLossError) if a value is NaN/inf; see check_finite."""
        check_finite(what, step, values, self.path, self.saved_step, self.hints)

    def save(self, step: int, state: Callable[[], dict[str, Any]], module: nn.Module) -> None:
        """Atomic checkpoint of ``state()`` at ``step`` by rank 0, only of finite weights (else NonFiniteLossError
        on every rank, since weights are identical across ranks); the other ranks wait for it."""
        if not params_finite(module):
            self.check("parameters", step, {"params": math.nan})
        if self.dist.is_main:
            save_checkpoint(self.path, state(), self.kind)
        barrier()
        self.saved_step = step


def guarded_update(
    opt: torch.optim.Optimizer,
    loss: torch.Tensor,
    values: Mapping[str, float],
    params: Iterable[nn.Parameter],
    clip: float,
    step: int,
    ckpt: RunCheckpoint,
) -> float:
    """One update at 0-based ``step``: stop on a non-finite loss (``values``, all-reduced so equal on every rank),
    backward, clip, stop on a non-finite gradient norm (DDP-synced), step; returns the norm before clipping."""
    ckpt.check("loss", step + 1, values)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gnorm = float(grad_norm(list(params), clip))
    ckpt.check("gradient norm", step + 1, {"grad_norm": gnorm})
    opt.step()
    return gnorm


# ------------------------------------------------------------------------------------------------ the step loop
@dataclass(frozen=True)
class Cadence:
    """How far a run goes and how often it logs, validates and checkpoints (also always at its last step)."""

    steps: int  # length of the schedules
    stop: int  # steps done by this call: min(steps, stop_after), so stop_after ends early as if interrupted
    log_every: int
    eval_every: int
    ckpt_every: int
    budget_s: float = 0.0  # > 0: also stop (checkpoint + export) after this many seconds (a cap the user sets)

    @classmethod
    def from_config(cls, tcfg: Mapping[str, Any], time_budget: bool = False) -> Cadence:
        """From the train config; train.time_budget_s only where ``time_budget``."""
        steps = int(tcfg["steps"])
        return cls(
            steps=steps,
            stop=min(steps, int(tcfg.get("stop_after") or steps)),
            log_every=int(tcfg.get("log_every", 10)),
            eval_every=int(tcfg.get("eval_every", 0)),
            ckpt_every=int(tcfg.get("ckpt_every", 200)),
            budget_s=float(tcfg.get("time_budget_s") or 0.0) if time_budget else 0.0,
        )


class Steps(Protocol):
    """What a trainer gives run_steps: its update, log row, validation and checkpoint."""

    validating: bool

    def step(self, step: int, batch: Any) -> dict[str, Any]: ...

    def log(self, done: int, out: dict[str, Any]) -> None: ...

    def validate(self, done: int) -> None: ...

    def save(self, done: int) -> None: ...

    def postfix(self, out: dict[str, Any]) -> dict[str, Any]: ...


def run_steps(
    run: Steps, batches: Iterable[Any], start: int, cadence: Cadence, logger: ScalarLogger, bar_desc: str | None
) -> int:
    """Run steps [start, cadence.stop) over ``batches``, logging, validating and checkpointing at their cadence;
    returns the steps done. ``bar_desc``: a progress bar's title, None for none. Closes the logger."""
    bar = None
    if bar_desc is not None:
        from tqdm import tqdm

        bar = tqdm(total=cadence.steps, initial=start, desc=bar_desc, dynamic_ncols=True)
    t0, done = time.perf_counter(), start
    try:
        for step, batch in zip(range(start, cadence.stop), batches):
            out = run.step(step, batch)
            done = step + 1
            out_of_time = cadence.budget_s > 0 and any_rank(time.perf_counter() - t0 > cadence.budget_s)
            last = done == cadence.stop or out_of_time
            if done % cadence.log_every == 0 or last:
                run.log(done, out)
            if run.validating and (done % cadence.eval_every == 0 or last):
                run.validate(done)
            if done % cadence.ckpt_every == 0 or last:
                run.save(done)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(**run.postfix(out))
            if out_of_time:
                break
    finally:
        if bar is not None:
            bar.close()
        logger.close()
    return done


# ------------------------------------------------------------------------------------------------ run summaries
SUMMARY_FILE = "train_summary.json"


def stopped_early(cadence: Cadence, done: int) -> dict[str, Any] | None:
    """The record of a wall-clock cap (``train.time_budget_s``) that cut the run short of its planned steps, or
    None when the run did every step it set out to do (``stop_after`` is a step count the user chose: not early)."""
    if cadence.budget_s <= 0 or done >= cadence.stop:
        return None
    return {
        "reason": "time_budget",
        "time_budget_s": cadence.budget_s,
        "steps_done": done,
        "steps_planned": cadence.stop,
    }


def stopped_early_warning(what: str, record: Mapping[str, Any]) -> str:
    """The loud line for a run a wall-clock cap cut short (see stopped_early)."""
    return (
        f"{what} stopped early at step {record['steps_done']} of {record['steps_planned']}: the wall-clock cap "
        f"train.time_budget_s={record['time_budget_s']:g} was reached, so the same command trains a different "
        f"(longer) model on a faster or less busy machine; set train.time_budget_s=null to train every step"
    )


def warn(message: str, enabled: bool = True) -> None:
    """Print ``WARNING: message`` on stderr (the training log) when ``enabled`` (rank 0)."""
    if enabled:
        print(f"WARNING: {message}", file=sys.stderr, flush=True)


def write_summary(out_dir: str | Path, summary: Mapping[str, Any], drop: Sequence[str] = ()) -> Path:
    """Atomically write a run's JSON summary (without the ``drop`` entries, e.g. the model object) to
    ``out_dir/train_summary.json``, where the pipeline and its report read stopped_early and warnings."""
    path = Path(out_dir) / SUMMARY_FILE
    tmp = path.with_name(f".{SUMMARY_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps({k: v for k, v in summary.items() if k not in drop}, indent=2, default=str))
    os.replace(tmp, path)
    return path
