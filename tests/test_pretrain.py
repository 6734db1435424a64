"""Pretraining loop: loss falls, exact resume, checkpoint integrity errors, schedules and logger."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from worldmodel.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from worldmodel.models.vit import load_encoder
from worldmodel.training.logger import ScalarLogger, read_csv_log
from worldmodel.training.loop import StepBatchSampler
from worldmodel.training.pretrain import CKPT_KIND, pretrain
from worldmodel.training.schedules import CosineRamp, LinearRamp, WarmupCosine


class MovingSquares(Dataset):
    """Clips of a bright square moving at a per-item velocity over a dim background: learnable structure."""

    def __init__(self, n: int = 64, t: int = 4, size: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.clips = torch.full((n, t, 3, size, size), 30, dtype=torch.uint8)
        pos = torch.randint(0, size - 8, (n, 2), generator=g)
        vel = torch.randint(-3, 4, (n, 2), generator=g)
        for i in range(n):
            for f in range(t):
                r, c = ((pos[i] + f * vel[i]) % (size - 8)).tolist()
                self.clips[i, f, :, r : r + 8, c : c + 8] = torch.tensor([220, 120, 40], dtype=torch.uint8).view(
                    3, 1, 1
                )

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixels": self.clips[i]}


def tiny_cfg(steps: int, **train: Any) -> dict[str, Any]:
    """Very small config for CPU tests."""
    return {
        "encoder": {
            "img_size": 32,
            "num_frames": 4,
            "tubelet": 2,
            "patch": 8,
            "dim": 32,
            "depth": 2,
            "heads": 2,
            "predictor": {"pred_dim": 16, "pred_depth": 1, "pred_heads": 2},
        },
        "model": {"teacher": "ema"},
        "masks": {"preset": "vjepa", "min_context": 4},
        "data": {"path": None, "clip_len": 4},
        "train": {
            "steps": steps,
            "batch_size": 8,
            "seed": 0,
            "lr": 2e-3,
            "lr_start": 2e-3,
            "lr_final": 2e-3,
            "warmup": 0,
            "weight_decay": 0.0,
            "weight_decay_end": 0.0,
            "ema_start": 0.99,
            "ema_end": 0.999,
            "grad_clip": 1.0,
            "log_every": 1,
            "ckpt_every": 4,
            "eval_every": 0,
            "tensorboard": False,
            **train,
        },
    }


def test_loss_falls_on_tiny_run(tmp_path: Path) -> None:
    res = pretrain(tiny_cfg(40), tmp_path, "cpu", train_set=MovingSquares(), progress=False)
    rows = read_csv_log(tmp_path / "metrics.csv")
    losses = [r["loss"] for r in rows]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert {"lr", "ema_momentum", "std_clip", "rank_clip", "grad_norm"} <= set(rows[-1])
    enc = load_encoder(res["encoder_path"], "cpu")
    rnd = load_encoder(res["random_encoder_path"], "cpu")
    assert not torch.equal(enc.patch_embed.weight, rnd.patch_embed.weight)


@pytest.mark.parametrize("teacher", ["ema", "sigreg"])
def test_resume_reproduces_uninterrupted_run(tmp_path: Path, teacher: str) -> None:
    data = MovingSquares(32)
    cfg = tiny_cfg(8)
    cfg["model"] = {"teacher": teacher, "sigreg_slices": 16}
    full = pretrain(cfg, tmp_path / "full", "cpu", train_set=data, progress=False)["model"]
    # same command interrupted after 4 steps (checkpoint at step 4), then re-run in the same out_dir
    prefix = pretrain(_with_stop(cfg, 4), tmp_path / "split", "cpu", train_set=data, progress=False)
    assert prefix["steps"] == 4
    resumed = pretrain(cfg, tmp_path / "split", "cpu", train_set=data, progress=False)
    assert resumed["resumed_from"] == 4
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed["model"].state_dict().items()):
        assert torch.equal(a, b), k
    rows = read_csv_log(tmp_path / "split" / "metrics.csv")
    assert [int(r["step"]) for r in rows if "loss" in r] == list(range(1, 9))


def _with_stop(cfg: dict[str, Any], stop: int) -> dict[str, Any]:
    """Same run (same total steps/schedules) but stopping after `stop` steps, as if interrupted."""
    out = copy.deepcopy(cfg)
    out["train"]["stop_after"] = stop
    return out


def test_checkpoint_integrity_errors(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.arange(10.0), "step": 3}, kind="k")
    assert load_checkpoint(path, kind="k")["step"] == 3
    with pytest.raises(CheckpointError, match="kind"):
        load_checkpoint(path, kind="other")
    raw = bytearray(path.read_bytes())  # tamper: flip a byte inside the payload
    env = torch.load(io.BytesIO(bytes(raw)), weights_only=True)
    env["payload"][-20] ^= 0xFF
    torch.save(env, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match="hash"):
        load_checkpoint(tmp_path / "tampered.pt")
    (tmp_path / "trunc.pt").write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"obj": Path("x")}, tmp_path / "pickle.pt")  # arbitrary object: refused by weights_only
    with pytest.raises(CheckpointError, match="weights-only"):
        load_checkpoint(tmp_path / "pickle.pt")
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_with_mismatched_config_fails_clearly(tmp_path: Path) -> None:
    data = MovingSquares(16)
    pretrain(tiny_cfg(4), tmp_path, "cpu", train_set=data, progress=False)
    other = tiny_cfg(8)
    other["encoder"]["dim"] = 64
    with pytest.raises(CheckpointError, match="encoder"):
        pretrain(other, tmp_path, "cpu", train_set=data, progress=False)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt", kind=CKPT_KIND)
    assert state["step"] == 4


def test_random_init_export(tmp_path: Path) -> None:
    res = pretrain(tiny_cfg(0), tmp_path, "cpu", train_set=MovingSquares(8), progress=False)
    a, b = load_encoder(res["encoder_path"], "cpu"), load_encoder(res["random_encoder_path"], "cpu")
    assert res["steps"] == 0
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k


def test_step_batch_sampler_resumes_exactly() -> None:
    full = list(StepBatchSampler(10, 4, 0, 0, 7))
    assert list(StepBatchSampler(10, 4, 0, 3, 7)) == full[3:]
    flat = [i for b in full[:5] for i in b]  # 20 items = two epochs, each a permutation
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))


def test_schedules() -> None:
    lr = WarmupCosine(peak=1.0, total=110, warmup=10, start=0.0, final=0.1)
    assert lr(0) == 0.0 and lr(5) == pytest.approx(0.5) and lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.55) and lr(110) == pytest.approx(0.1) and lr(500) == pytest.approx(0.1)
    wd = CosineRamp(0.04, 0.4, 100)
    assert wd(0) == pytest.approx(0.04) and wd(50) == pytest.approx(0.22) and wd(100) == pytest.approx(0.4)
    ema = LinearRamp(0.998, 1.0, 100)
    assert ema(0) == 0.998 and ema(50) == pytest.approx(0.999) and ema(1000) == 1.0


def test_logger_csv_columns_and_rank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = ScalarLogger(tmp_path, tensorboard=True)
    log.log(1, {"a": 1.0})
    log.log(2, {"a": 2.0, "b": 3.0})
    log.close()
    rows = read_csv_log(tmp_path / "metrics.csv")
    assert rows == [{"step": 1.0, "a": 1.0}, {"step": 2.0, "a": 2.0, "b": 3.0}]
    assert list((tmp_path / "tb").iterdir())
    resumed = ScalarLogger(tmp_path, tensorboard=False, resume_step=1)
    resumed.log(2, {"a": 5.0})
    assert read_csv_log(tmp_path / "metrics.csv")[-1] == {"step": 2.0, "a": 5.0}
    monkeypatch.setenv("RANK", "1")
    quiet = ScalarLogger(tmp_path / "r1")
    quiet.log(1, {"a": 1.0})
    assert not (tmp_path / "r1").exists()
