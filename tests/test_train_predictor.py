"""Predictor training from the shipped Hydra config: the loss falls, re-running resumes, the export loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir

from worldmodel.checkpoint import CheckpointError
from worldmodel.data.collect import CollectConfig, collect
from worldmodel.models.vit import EncoderConfig, VideoViT, save_encoder
from worldmodel.training.logger import read_csv_log
from worldmodel.training.loop import config_to_dict
from worldmodel.training.train_predictor import train_predictor
from worldmodel.world_model import WorldModel

CONFIGS = Path(__file__).resolve().parents[1] / "configs"




@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("trainpred")
    data = collect(
        CollectConfig(
            env_id="wm/TwoRoom-v0",
            out=str(d / "tr.h5"),
            episodes=6,
            episode_length=24,
            workers=1,
            env_kwargs={"image_size": 32},
        ),
        progress=False,
    )
    torch.manual_seed(0)
    save_encoder(
        VideoViT(EncoderConfig(img_size=32, num_frames=2, tubelet=2, patch=8, dim=32, depth=1, heads=2)),
        d / "enc.pt",
    )
    return {"dir": d, "data": Path(data), "enc": d / "enc.pt"}


def tiny_cfg(inputs: dict[str, Path], steps: int, *extra: str) -> dict[str, Any]:
    """The shipped train_predictor.yaml, shrunk for a seconds-long CPU run."""
    overrides = [
        f"data.path={inputs['data']}",
        f"encoder.path={inputs['enc']}",
        f"cache.path={inputs['dir'] / 'cache.h5'}",
        "data.clip_len=4",
        "data.val_fraction=0.2",
        "predictor.width=32",
        "predictor.depth=2",
        "predictor.heads=2",
        "predictor.max_frames=8",
        f"train.steps={steps}",
        "train.batch_size=16",
        "train.lr=3e-3",
        "train.warmup=5",
        "train.log_every=1",
        "train.eval_every=20",
        "train.ckpt_every=20",
        "train.tensorboard=false",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return config_to_dict(compose(config_name="train_predictor", overrides=overrides))


def test_loss_falls_and_training_resumes(inputs: dict[str, Path]) -> None:
    out = inputs["dir"] / "run"
    first = train_predictor(tiny_cfg(inputs, 40), out, device="cpu", progress=False)
    assert first["resumed_from"] == 0 and first["cache_rebuilt"]
    rows = [r for r in read_csv_log(out / "metrics.csv") if "loss" in r]
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    early = sum(r["loss"] for r in rows[:5]) / 5
    late = sum(r["loss"] for r in rows[-5:]) / 5
    assert late < 0.8 * early, (early, late)
    assert {"tf_loss", "rollout_loss", "proprio_loss"} <= set(rows[0])
    assert any("val/loss" in r for r in read_csv_log(out / "metrics.csv"))

    # Re-running with a longer budget continues from the checkpoint (cache reused, no step repeated).
    second = train_predictor(tiny_cfg(inputs, 60), out, device="cpu", progress=False)
    assert second["resumed_from"] == 40 and second["steps"] == 60 and not second["cache_rebuilt"]
    steps = [int(r["step"]) for r in read_csv_log(out / "metrics.csv") if "loss" in r]
    assert steps == list(range(1, 61))

    wm = WorldModel.load(out / "world_model.pt", "cpu")
    # default pool 2x2cat: one token per frame
    assert wm.train_config["train"]["steps"] == 60 and wm.latent_shape == (1, 4 * 32) and wm.action_dim == 2
    assert wm.proprio_dim == 4 and wm.meta["env_id"] == "wm/TwoRoom-v0"
    torch.testing.assert_close(
        wm.predictor.state_dict()["latent_out.weight"],
        second["world_model"].predictor.state_dict()["latent_out.weight"].cpu(),
    )

    # Resuming with a different model/loss setting is refused instead of silently mixing runs.
    with pytest.raises(CheckpointError, match="loss"):
        train_predictor(tiny_cfg(inputs, 60, "loss.rollout_steps=3"), out, device="cpu", progress=False)


def test_bad_settings_are_clear_errors(inputs: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="needs clip_len >= 5"):
        train_predictor(
            tiny_cfg(inputs, 2, "loss.rollout_steps=4"), inputs["dir"] / "bad1", device="cpu", progress=False
        )
    with pytest.raises(ValueError, match="max_frames"):
        train_predictor(
            tiny_cfg(inputs, 2, "predictor.max_frames=3"),
            inputs["dir"] / "bad2",
            device="cpu",
            progress=False,
        )
    with pytest.raises(ValueError, match="pooling setting"):
        train_predictor(tiny_cfg(inputs, 2, "pool=avg"), inputs["dir"] / "bad3", device="cpu", progress=False)
