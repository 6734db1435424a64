"""Both training stages under real torchrun (2 processes, gloo on CPU) against single-process runs.

At equal global batch the per-step losses match the single-process run (TOL), only rank 0 writes into the
run folder (an audit hook in the launcher logs each rank's writes), the exports load, and checkpoints resume
across world sizes (1 -> 2 processes for pretraining, 2 -> 1 for the predictor). A NaN on one rank is tested
in test_nonfinite.py.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from test_pretrain import tiny_cfg as pretrain_tiny_cfg
from test_train_predictor import inputs  # noqa: F401  (module fixture: tiny TwoRoom data + a tiny encoder)
from test_train_predictor import tiny_cfg as predictor_tiny_cfg

from worldmodel.checkpoint import load_checkpoint
from worldmodel.models.vit import load_encoder
from worldmodel.training.logger import read_csv_log
from worldmodel.training.loop import StepBatchSampler, config_to_dict
from worldmodel.training.pretrain import pretrain
from worldmodel.training.train_predictor import CKPT_KIND as PRED_KIND
from worldmodel.training.train_predictor import train_predictor
from worldmodel.world_model import WorldModel

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
STEPS, SPLIT = 6, 3  # total steps; the run is interrupted after SPLIT steps and resumed at the other world size
TOL = 1e-5
"""Relative tolerance on per-step losses. The math is the same (equal shards of per-sample-mean losses, masks
drawn for the global batch, DDP's gradient mean = the global batch's gradient, SIGReg on gathered rows); only
the float summation order differs (kernels on 4 vs 8 rows, the all-reduce): measured <= 3e-7 over 12 steps
for both stages, 1e-5 leaves room for other CPUs. SIGReg sees the global batch (all_gather_rows). Not
covered: model.motion_weight > 0 (a per-rank weighted mean), which differs by design."""

LAUNCHER = textwrap.dedent(
    '''
    """Test launcher: log this rank's writes under WM_TEST_ROOT, maybe poison one step's loss, run a script."""
    import os, runpy, sys

    rank = int(os.environ.get("RANK", "0"))
    root = os.path.realpath(os.environ["WM_TEST_ROOT"])
    log = open(os.path.join(os.environ["WM_TEST_LOGS"], f"writes.rank{rank}"), "w", buffering=1)

    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            writes = any(c in mode for c in "wax+") if mode else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            path = args[0] if writes else None
        elif event in ("os.rename", "os.remove", "os.truncate"):
            path = args[1] if event == "os.rename" else args[0]
        else:
            return
        if isinstance(path, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(path)).startswith(root):
            log.write(f"{event} {os.fsdecode(path)}\\n")

    sys.addaudithook(hook)
    if os.environ.get("WM_TEST_NAN"):  # "rank:n": NaN loss on the n-th training step of this process, on that rank
        bad_rank, bad_call = map(int, os.environ["WM_TEST_NAN"].split(":"))
        if rank == bad_rank:
            import torch
            from worldmodel.models.jepa import JEPA
            from worldmodel.training import train_predictor as tp

            calls = [0]

            def poison(fn, get, put):
                def wrapped(*a, **k):
                    out = fn(*a, **k)
                    if torch.is_grad_enabled():  # training steps only, not validation
                        calls[0] += 1
                        if calls[0] == bad_call:
                            put(out, get(out) * float("nan"))
                    return out
                return wrapped

            tp.predictor_losses = poison(tp.predictor_losses, lambda o: o["loss"], lambda o, v: o.update(loss=v))
            JEPA.forward = poison(JEPA.forward, lambda o: o.loss, lambda o, v: setattr(o, "loss", v))
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        log.write(f"exit {e.code}\\n")
        raise
    log.write("exit 0\\n")
    '''
)


def overrides(cfg: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Hydra `++key=value` overrides that reproduce every leaf of a (nested) plain config."""
    out: list[str] = []
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out += overrides(v, key + ".")
        elif v is None:
            out.append(f"++{key}=null")
        elif isinstance(v, bool):
            out.append(f"++{key}={str(v).lower()}")
        elif isinstance(v, (list, tuple)):
            out.append(f"++{key}=[{','.join(map(str, v))}]")
        elif isinstance(v, str):
            out.append(f"++{key}='{v}'")
        else:
            out.append(f"++{key}={v!r}")
    return out


def launch(
    tmp: Path, script: str, args: list[str], nan: str | None = None, nproc: int = 2
) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc_per_node=2 scripts/<script> args` (nproc=1: plain python), via LAUNCHER."""
    launcher = tmp / "launch.py"
    launcher.write_text(LAUNCHER)
    (tmp / "logs").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "WM_TEST_ROOT": str(tmp / "runs"),
        "WM_TEST_LOGS": str(tmp / "logs"),
        "WM_TEST_NAN": nan or "",
    }
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd += [str(launcher), str(ROOT / "scripts" / script), *args, "device=cpu", "threads=1"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def writes_by_rank(tmp: Path, nproc: int = 2) -> dict[int, list[str]]:
    """Files each rank created, replaced or removed under tmp/runs (then its exit line), as logged by the launcher."""
    return {r: (tmp / "logs" / f"writes.rank{r}").read_text().splitlines() for r in range(nproc)}


def losses(run: Path) -> dict[int, float]:
    """Per-step training loss from a run's metrics.csv."""
    return {int(r["step"]): r["loss"] for r in read_csv_log(run / "metrics.csv") if "loss" in r}


def assert_curves_match(got: dict[int, float], ref: dict[int, float]) -> None:
    """Same steps, each loss within TOL (relative) of the single-process reference."""
    assert sorted(got) == sorted(ref) == list(range(1, STEPS + 1))
    for s in ref:
        assert math.isclose(got[s], ref[s], rel_tol=TOL), (s, got[s], ref[s])


def test_step_batches_shard_the_global_batch() -> None:
    full = list(StepBatchSampler(10, 4, 0, 0, 7))
    shards = [list(StepBatchSampler(10, 4, 0, 2, 7, rank=r, world_size=2)) for r in (0, 1)]
    assert [a + b for a, b in zip(*shards)] == full[2:]  # rank 0's rows, then rank 1's: the single-process batch
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        StepBatchSampler(10, 4, 0, 0, 7, rank=0, world_size=3)


def pretrain_cfg(data: Path, out: Path, *extra: str) -> tuple[dict[str, Any], list[str]]:
    """Shipped pretrain.yaml with test_pretrain's tiny settings on the TwoRoom file: (plain config, overrides)."""
    tiny = pretrain_tiny_cfg(STEPS)
    tiny["data"]["path"] = str(data)
    tiny["model"] = {"teacher": "sigreg", "sigreg_slices": 16}  # the default objective; EMA is the simpler case
    args = [*overrides(tiny), f"out_dir={out}", "train.eval_every=3", *extra]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return config_to_dict(compose(config_name="pretrain", overrides=args)), args


def test_pretrain_under_torchrun(inputs: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    ref_cfg, _ = pretrain_cfg(inputs["data"], tmp_path / "runs" / "ref")
    ref = pretrain(ref_cfg, tmp_path / "runs" / "ref", "cpu", progress=False)
    # single process for SPLIT steps, then the same command under torchrun resumes it (1 -> 2 processes)
    run = tmp_path / "runs" / "mixed"
    cfg, args = pretrain_cfg(inputs["data"], run)
    pretrain({**cfg, "train": {**cfg["train"], "stop_after": SPLIT}}, run, "cpu", progress=False)
    res = launch(tmp_path, "pretrain.py", args)
    assert res.returncode == 0, res.stderr[:6000]
    assert res.stdout.count('"encoder_path"') == 1  # one JSON summary: rank 0's

    assert_curves_match(losses(run), losses(tmp_path / "runs" / "ref"))
    writes = writes_by_rank(tmp_path)
    assert writes[1] == ["exit 0"], writes[1]
    for name in ("checkpoints/last.pt", "metrics.csv", "encoder.pt", ".hydra/config.yaml"):
        assert any(w.endswith(name) for w in writes[0]), name
    assert [int(r["step"]) for r in read_csv_log(run / "metrics.csv") if "val/pred_loss" in r] == [3, 6]

    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == STEPS and not any(k.startswith("module.") for k in state["model"])
    enc, ref_enc = load_encoder(run / "encoder.pt", "cpu"), ref["model"].export_encoder()
    for (k, a), (_, b) in zip(enc.state_dict().items(), ref_enc.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=k)  # see the predictor test


def test_train_predictor_under_torchrun(inputs: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    cache = f"cache.path={tmp_path / 'runs' / 'cache.h5'}"  # fresh cache: rank 0 builds it under torchrun
    run = tmp_path / "runs" / "mixed"
    cfg = predictor_tiny_cfg(inputs, STEPS, cache, "train.eval_every=3", "train.ckpt_every=3")
    args = [*overrides(cfg), f"out_dir={run}"]
    res = launch(tmp_path, "train_predictor.py", [*args, f"train.stop_after={SPLIT}"])
    assert res.returncode == 0, res.stderr[:6000]
    writes = writes_by_rank(tmp_path)
    assert writes[1] == ["exit 0"], writes[1]
    assert any(w.endswith("cache.h5") for w in writes[0]) and any(w.endswith("world_model.pt") for w in writes[0])
    assert WorldModel.load(run / "world_model.pt", "cpu").train_config["train"]["stop_after"] == SPLIT
    assert load_checkpoint(run / "checkpoints" / "last.pt", kind=PRED_KIND)["step"] == SPLIT

    # the 2-process checkpoint resumes in one process; both parts together match one uninterrupted run
    resumed = train_predictor(cfg, run, "cpu", progress=False)
    assert resumed["resumed_from"] == SPLIT and not resumed["cache_rebuilt"]
    ref = train_predictor(cfg, tmp_path / "runs" / "ref", "cpu", progress=False)
    assert_curves_match(losses(run), losses(tmp_path / "runs" / "ref"))
    val = [r for r in read_csv_log(run / "metrics.csv") if "val/loss" in r]
    assert [int(r["step"]) for r in val] == [3, 6]
    torch.testing.assert_close(
        WorldModel.load(run / "world_model.pt", "cpu").predictor.state_dict(),
        ref["world_model"].predictor.state_dict(),
        rtol=1e-3,
        atol=1e-4,  # Adam turns float-order noise on near-zero gradients into up to ~lr (3e-3) per step
    )
