"""Process-group plumbing for multi-process training under ``torchrun`` (DDP); every helper is a no-op alone.

One process per device. ``torchrun`` sets RANK, LOCAL_RANK and WORLD_SIZE (plus MASTER_ADDR/PORT); with
WORLD_SIZE > 1 ``init_distributed`` joins the group (NCCL on CUDA, gloo on CPU) and gives each rank its
device (``cuda:LOCAL_RANK``). Without ``torchrun`` nothing is initialised and a run is single-process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: rank, local rank (device index), world size, device and backend."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs, checkpoints and exports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1


def _active() -> bool:
    """A process group with more than one member is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _env_int(name: str, default: int) -> int:
    """Integer launcher variable (torchrun sets RANK, LOCAL_RANK, WORLD_SIZE)."""
    return int(os.environ.get(name, default))


def _pick_device(device: str | torch.device, local_rank: int, distributed: bool) -> torch.device:
    """'auto' -> cuda if available else cpu; under torchrun a CUDA run uses cuda:LOCAL_RANK."""
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if not distributed or dev.type != "cuda":
        return dev
    if dev.index is not None and dev.index != local_rank:
        raise ValueError(f"device={name} under torchrun: use device=cuda (each rank takes cuda:LOCAL_RANK)")
    return torch.device("cuda", local_rank)


def init_distributed(device: str | torch.device = "auto", timeout_s: float = 3600.0) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (idempotent) and return this rank's DistInfo.

    The timeout is long because rank 0 may build a cache (e.g. the predictor's embeddings) while the others wait.
    """
    if dist.is_available() and dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
        local = _env_int("LOCAL_RANK", rank)
        dev = _pick_device(device, local, world > 1)
        return DistInfo(rank, local, world, dev, str(dist.get_backend()))
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistInfo(device=_pick_device(device, 0, False))
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    dev = _pick_device(device, local, True)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank, local, world, dev, backend)


def wrap_ddp(module: nn.Module, info: DistInfo) -> nn.Module:
    """DDP around `module` when distributed (gradients averaged over ranks in backward), else `module` itself.

    Wrap after loading a checkpoint (DDP broadcasts rank 0's weights) and keep saving the un-wrapped module,
    so checkpoints do not depend on the world size.
    """
    if not info.distributed:
        return module
    return DistributedDataParallel(module, device_ids=[info.device.index] if info.device.type == "cuda" else None)


def cleanup() -> None:
    """Leave the process group (end of a script) so the process exits without a warning."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """True on rank 0 or when not distributed: gate logging, checkpointing and exports with it."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _comm_device() -> torch.device:
    """Device collectives need: the current CUDA device for NCCL, else CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    """Wait for all ranks (e.g. so none races ahead of rank 0's checkpoint or export)."""
    if not _active():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def local_batch_size(batch_size: int, world_size: int) -> int:
    """Per-rank share of the global batch; a clear error when it does not divide evenly."""
    if batch_size % world_size:
        raise ValueError(
            f"train.batch_size={batch_size} (the global batch) is not divisible by the {world_size} processes; "
            f"use a multiple of {world_size}"
        )
    return batch_size // world_size


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[lo, hi) of rank's contiguous 1/world share of n rows (n must divide evenly)."""
    per = local_batch_size(n, world_size)
    return rank * per, (rank + 1) * per


def shard_indices(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Rank's contiguous share of one global step's indices: concatenating the shards in rank order restores them."""
    lo, hi = shard_bounds(len(indices), rank, world_size)
    return list(indices[lo:hi])


def all_reduce_mean(x: Tensor) -> Tensor:
    """Mean of `x` over ranks (a new tensor; `x` itself when not distributed), e.g. for logged losses."""
    if not _active():
        return x
    y = x.detach().to(_comm_device(), copy=True)
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return (y / dist.get_world_size()).to(x.device)


def any_rank(flag: bool) -> bool:
    """True if `flag` is true on any rank, so that all ranks take the same branch (stop, break) together."""
    if not _active():
        return flag
    t = torch.tensor([int(flag)], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def same_on_all_ranks(value: int) -> bool:
    """Whether an integer (e.g. the resume step) agrees across ranks; a collective, so call it on every rank."""
    if not _active():
        return True
    t = torch.tensor([value, -value], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t[0]) == -int(t[1])


@torch.no_grad()
def all_gather_cat(x: Tensor) -> Tensor:
    """Concatenate equal-shape tensors from all ranks along dim 0 in rank order (no gradient), e.g. for stats."""
    if not _active():
        return x
    y = x.detach().contiguous().to(_comm_device())
    parts = [torch.empty_like(y) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, y)
    return torch.cat(parts, 0).to(x.device)


class _GatherRows(torch.autograd.Function):
    """all_gather along dim 0; backward sums every rank's gradient of this rank's rows (all_reduce, then slice)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        lo = dist.get_rank() * ctx.rows
        return grad[lo : lo + ctx.rows]


def all_gather_rows(x: Tensor) -> Tensor:
    """All ranks' rows concatenated in rank order, with gradient, for a statistic over the global batch.

    Every rank's loss then holds the global statistic; backward sums its gradient over the ranks and DDP's
    mean divides by the world size again, so the update equals the single-process one.
    """
    return _GatherRows.apply(x) if _active() else x


@contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the others (e.g. building a shared cache); rank 0 failing stops all."""
    if not _active():
        yield
        return
    if dist.get_rank() != 0:
        if any_rank(False):  # waits for rank 0's verdict
            raise RuntimeError("rank 0 failed in a step the other ranks wait for; see rank 0's error above")
        yield
        return
    try:
        yield
    except BaseException:
        any_rank(True)
        raise
    any_rank(False)


def hydra_worker_overrides() -> list[str]:
    """Hydra overrides for ranks > 0: no .hydra/ config copy and no log file in the shared output dir."""
    if _env_int("RANK", 0) == 0:
        return []
    return ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
