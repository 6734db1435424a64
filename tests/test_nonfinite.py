"""Non-finite loss, gradient norm or weights: training stops at once naming the step and fixes, the scripts
exit with status 2, last.pt stays byte-identical to the last good checkpoint, and under torchrun a NaN on one
rank stops every rank together."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from test_distributed import launch, overrides, pretrain_cfg, writes_by_rank
from test_pretrain import MovingSquares
from test_pretrain import tiny_cfg as pretrain_tiny_cfg
from test_train_predictor import inputs  # noqa: F401  (module fixture: tiny TwoRoom data + a tiny encoder)
from test_train_predictor import tiny_cfg as predictor_tiny_cfg

from worldmodel.checkpoint import load_checkpoint
from worldmodel.models.jepa import JEPA
from worldmodel.training import train_predictor as tp
from worldmodel.training.logger import read_csv_log
from worldmodel.training.loop import NonFiniteLossError
from worldmodel.training.pretrain import CKPT_KIND, pretrain


def poison_call(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, n: int, poison: Callable[..., Any]) -> None:
    """Replace the output of the n-th training call (grad enabled) of owner.name by poison(args, output)."""
    orig, calls = getattr(owner, name), [0]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        out = orig(*args, **kwargs)
        if torch.is_grad_enabled():
            calls[0] += 1
            if calls[0] == n:
                return poison(args, out)
        return out

    monkeypatch.setattr(owner, name, wrapped)


def pretrain_run(tmp_path: Path) -> tuple[dict[str, Any], MovingSquares, bytes]:
    """A 6-step tiny pretraining config, run for its first 2 steps (checkpoint at step 2): (cfg, data, last.pt)."""
    cfg = pretrain_tiny_cfg(6, ckpt_every=2)
    data = MovingSquares(16)
    pretrain({**cfg, "train": {**cfg["train"], "stop_after": 2}}, tmp_path, "cpu", train_set=data, progress=False)
    return cfg, data, (tmp_path / "checkpoints" / "last.pt").read_bytes()


def assert_kept(tmp_path: Path, good: bytes, kind: str, step: int = 2) -> None:
    """last.pt is byte-identical to the last good checkpoint and still loads."""
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == good
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt", kind=kind)["step"] == step


def test_pretrain_inf_loss_stops_and_keeps_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, data, good = pretrain_run(tmp_path)
    encoder = (tmp_path / "encoder.pt").read_bytes()
    # the resumed run's 2nd step (step 4, a checkpoint step) produces an infinite loss
    poison_call(monkeypatch, JEPA, "forward", 2, lambda a, out: dataclasses.replace(out, loss=out.loss * torch.inf))
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 4 \(loss=inf\)") as err:
        pretrain(cfg, tmp_path, "cpu", train_set=data, progress=False)
    msg = str(err.value)
    assert isinstance(err.value, FloatingPointError)
    assert f"{tmp_path / 'checkpoints' / 'last.pt'} (step 2) is untouched" in msg
    for fix in ("train.lr", "train.warmup", "train.grad_clip", "data", "train.precision=fp32"):
        assert fix in msg
    assert_kept(tmp_path, good, CKPT_KIND)
    assert (tmp_path / "encoder.pt").read_bytes() == encoder  # no export of the stopped run
    assert [int(r["step"]) for r in read_csv_log(tmp_path / "metrics.csv")] == [1, 2, 3]
    resumed = pretrain(cfg, tmp_path, "cpu", train_set=data, progress=False)  # the fault gone, a re-run resumes
    assert resumed["resumed_from"] == 2 and resumed["steps"] == 6


def test_pretrain_nonfinite_gradient_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, data, good = pretrain_run(tmp_path)

    def nan_grad(args: tuple[Any, ...], out: Any) -> Any:
        """Finite loss (+0) whose gradient is NaN: d/dx [0 * sqrt(x)] at x = 0."""
        p = args[0].predictor.mask_token
        return dataclasses.replace(out, loss=out.loss + 0.0 * (p - p.detach()).sum().sqrt())

    poison_call(monkeypatch, JEPA, "forward", 1, nan_grad)
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient norm at step 3 \(grad_norm=nan\)"):
        pretrain(cfg, tmp_path, "cpu", train_set=data, progress=False)
    assert_kept(tmp_path, good, CKPT_KIND)


def test_nonfinite_weights_are_never_checkpointed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, data, good = pretrain_run(tmp_path)

    def step_then_overflow(self: torch.optim.Optimizer, *a: Any, **k: Any) -> Any:
        """The optimizer step of the resumed run's 2nd step (step 4) leaves an infinite weight."""
        out = orig(self, *a, **k)
        calls.append(1)
        if len(calls) == 2:
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = torch.inf
        return out

    orig, calls = torch.optim.AdamW.step, []
    monkeypatch.setattr(torch.optim.AdamW, "step", step_then_overflow)
    with pytest.raises(NonFiniteLossError, match="non-finite parameters at step 4"):
        pretrain(cfg, tmp_path, "cpu", train_set=data, progress=False)
    assert_kept(tmp_path, good, CKPT_KIND)


def test_predictor_nan_loss_stops_and_keeps_checkpoint(
    inputs: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = predictor_tiny_cfg(inputs, 6, "train.ckpt_every=2", "train.eval_every=2")
    tp.train_predictor({**cfg, "train": {**cfg["train"], "stop_after": 2}}, tmp_path, "cpu", progress=False)
    good = (tmp_path / "checkpoints" / "last.pt").read_bytes()

    def nan_loss(args: tuple[Any, ...], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**out, "loss": out["loss"] * torch.nan}

    poison_call(monkeypatch, tp, "predictor_losses", 2, nan_loss)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 4 \(.*loss=nan") as err:
        tp.train_predictor(cfg, tmp_path, "cpu", progress=False)
    assert "(step 2) is untouched" in str(err.value) and "cache.rebuild=true" in str(err.value)
    assert_kept(tmp_path, good, tp.CKPT_KIND)


def test_script_exits_2_on_nonfinite_loss(inputs: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    run = tmp_path / "runs" / "pre"
    _, args = pretrain_cfg(inputs["data"], run)
    res = launch(tmp_path, "pretrain.py", args, nan="0:1", nproc=1)  # plain `python scripts/pretrain.py`
    assert res.returncode == 2, res.stderr[-3000:]
    assert "error: non-finite loss at step 1 (loss=nan" in res.stderr and "no checkpoint had been written" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (run / "checkpoints" / "last.pt").exists() and not (run / "encoder.pt").exists()


def test_nan_on_one_rank_stops_all_ranks(inputs: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    run = tmp_path / "runs" / "nan"
    cfg = predictor_tiny_cfg(inputs, 6, "train.ckpt_every=2", "train.eval_every=0")
    tp.train_predictor({**cfg, "train": {**cfg["train"], "stop_after": 2}}, run, "cpu", progress=False)
    good = (run / "checkpoints" / "last.pt").read_bytes()
    # resumed under torchrun, rank 1 alone sees a NaN loss on its 2nd step (step 4, a checkpoint step)
    res = launch(tmp_path, "train_predictor.py", [*overrides(cfg), f"out_dir={run}"], nan="1:2")
    assert res.returncode != 0
    assert re.search(r"error: non-finite loss at step 4 \(.*loss=nan", res.stderr), res.stderr[-4000:]
    writes = writes_by_rank(tmp_path)
    assert writes[0][-1] == writes[1][-1] == "exit 2"  # both ranks stopped on the error: none hung or was killed
    assert writes[1][:-1] == [] and not any("last.pt" in w or "world_model.pt" in w for w in writes[0])
    assert_kept(run, good, tp.CKPT_KIND)
