"""Frozen foundation encoders (V-JEPA 2, DINOv2) from local Hugging Face weights: tiny random models saved with
save_pretrained run encode -> embedding cache -> predictor training (the shipped train_predictor config) ->
closed-loop planning; the encoder stays frozen; world models reference the weights by directory + hash and refuse
other ones; bad weights directories and patch grids that do not fit are one clear error with nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from planners.cem import CEMPlanner
from worldmodel.checkpoint import load_checkpoint
from worldmodel.data.collect import CollectConfig, collect
from worldmodel.data.embed_cache import EmbeddingCache, ensure_cache
from worldmodel.data.reader import TrajectoryFile
from worldmodel.eval.agents import LatentPlanningAgent
from worldmodel.eval.closed_loop import EvalSettings, run_closed_loop
from worldmodel.eval.episodes import env_episode_specs
from worldmodel.models.encoders import EncoderError, FrameEncoder, load_frame_encoder
from worldmodel.models.encoders.hf import dir_sha256
from worldmodel.models.pooling import encode_frames
from worldmodel.models.vit import EncoderConfig, VideoViT, save_encoder
from worldmodel.planning import LatentDistance, Objective
from worldmodel.training.loop import config_to_dict
from worldmodel.training.pretrain import check_pretrainable
from worldmodel.training.train_predictor import train_predictor
from worldmodel.world_model import WorldModel, WorldModelError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
ENV = "wm/TwoRoom-v0"


def save_tiny_vjepa2(path: Path, seed: int = 0) -> Path:
    """A random 1-layer V-JEPA 2 (32 px crop, 8 px patches, 2-frame tubelets) in the Hugging Face layout."""
    from transformers import VJEPA2Config, VJEPA2Model

    torch.manual_seed(seed)
    cfg = VJEPA2Config(
        patch_size=8,
        crop_size=32,
        frames_per_clip=2,
        tubelet_size=2,
        hidden_size=32,
        num_attention_heads=2,
        num_hidden_layers=1,
        pred_hidden_size=16,
        pred_num_attention_heads=2,
        pred_num_hidden_layers=1,
        pred_num_mask_tokens=2,
    )
    VJEPA2Model(cfg).save_pretrained(path)
    return path


def save_tiny_dinov2(path: Path, seed: int = 0) -> Path:
    """A random 1-layer DINOv2 (8 px patches) with a processor json that sets its input to 32 px."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    cfg = Dinov2Config(
        patch_size=8, image_size=32, hidden_size=32, num_attention_heads=2, num_hidden_layers=1, intermediate_size=64
    )
    Dinov2Model(cfg).save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps({"crop_size": {"height": 32, "width": 32}}))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("foundation")
    data = collect(
        CollectConfig(
            env_id=ENV, out=str(d / "tr.h5"), episodes=4, episode_length=16, workers=1, env_kwargs={"image_size": 32}
        ),
        progress=False,
    )
    return {
        "dir": d,
        "data": Path(data),
        "vjepa2": save_tiny_vjepa2(d / "vjepa2"),
        "dinov2": save_tiny_dinov2(d / "dinov2"),
    }


def tiny_cfg(inputs: dict[str, Path], family: str, out: Path, *extra: str) -> dict[str, Any]:
    """The shipped train_predictor.yaml with encoder=<family>, shrunk to a seconds-long CPU run."""
    overrides = [
        f"encoder={family}",
        f"encoder.path={inputs[family]}",
        f"data.path={inputs['data']}",
        f"cache.path={out / 'cache.h5'}",
        f"out_dir={out}",
        "pool=2x2",
        "data.clip_len=4",
        "data.val_fraction=0.25",
        "predictor.width=32",
        "predictor.depth=1",
        "predictor.heads=2",
        "predictor.max_frames=8",
        "train.steps=6",
        "train.batch_size=8",
        "train.warmup=2",
        "train.log_every=3",
        "train.eval_every=3",
        "train.val_clips=8",
        "train.ckpt_every=6",
        "train.tensorboard=false",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return config_to_dict(compose(config_name="train_predictor", overrides=overrides))


@pytest.fixture(scope="module")
def trained(inputs: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """One world model per foundation encoder, trained through train_predictor; encoder weights hashed before."""
    out = {}
    for family in ("vjepa2", "dinov2"):
        run = inputs["dir"] / f"run_{family}"
        before = dir_sha256(inputs[family])
        summary = train_predictor(tiny_cfg(inputs, family, run), run, device="cpu", progress=False)
        out[family] = {"run": run, "summary": summary, "sha_before": before}
    return out


@pytest.mark.parametrize("family", ["vjepa2", "dinov2"])
def test_encode_cache_train_plan_end_to_end(
    inputs: dict[str, Path], trained: dict[str, dict[str, Any]], family: str, tmp_path: Path
) -> None:
    run, summary = trained[family]["run"], trained[family]["summary"]
    enc = load_frame_encoder({"name": family, "path": str(inputs[family])})
    assert isinstance(enc, FrameEncoder) and enc.name == family and enc.patch_grid(32, 32) == (4, 4)
    # The cache holds exactly encode_frames of the foundation encoder (one latent per frame), keyed by its hash.
    cache = EmbeddingCache(summary["cache_path"])
    assert cache.key["encoder"]["name"] == family and cache.key["encoder_sha256"] == dir_sha256(inputs[family])
    px = torch.from_numpy(TrajectoryFile(inputs["data"]).read("pixels", 0, 5)).permute(0, 3, 1, 2)  # (5, 3, 32, 32)
    torch.testing.assert_close(torch.from_numpy(cache.latents[:5]), encode_frames(enc, px, "2x2"))
    assert cache.latent_shape == (4, 32)
    # A frame alone, in a batch or repeated: same latent (per-frame encoding, as V-JEPA 2-AC).
    torch.testing.assert_close(encode_frames(enc, px[2:3], "none"), encode_frames(enc, px, "none")[2:3])
    # The world model records the encoder by name, config and hash, and stores none of its weights.
    wm_path = run / "world_model.pt"
    raw = load_checkpoint(wm_path)
    assert raw["encoder_info"]["name"] == family and raw["encoder_info"]["sha256"] == dir_sha256(inputs[family])
    assert raw["encoder_state"] == {} and raw["encoder_info"]["config"] == enc.config_dict()
    wm = WorldModel.load(wm_path, "cpu")
    assert wm.encoder.name == family and wm.latent_shape == (4, 32)
    torch.testing.assert_close(wm.denormalize_latents(wm.encode(px)["latents"]), encode_frames(enc, px, "2x2"))
    # save_pretrained / from_pretrained of the same world model: same latents, no encoder tensors in the file.
    back = WorldModel.from_pretrained(wm.save_pretrained(tmp_path / "wm_dir"), "cpu")
    from safetensors.torch import load_file

    assert not any(k.startswith("encoder.") for k in load_file(str(tmp_path / "wm_dir" / "model.safetensors")))
    torch.testing.assert_close(back.encode(px)["latents"], wm.encode(px)["latents"], atol=0, rtol=0)
    # A short closed-loop plan with it in the real environment.
    planner = CEMPlanner(wm.action_low, wm.action_high, horizon=2, num_samples=8, iterations=1, num_elites=2)
    agent = LatentPlanningAgent(wm, planner, Objective([(1.0, LatentDistance("l1", "last"))]), execute_steps=1)
    recs = run_closed_loop(
        agent,
        ENV,
        {"image_size": 32},
        env_episode_specs(1, seed=3),
        EvalSettings(max_steps=3, num_envs=1, video_episodes=0),
        tmp_path / "eval",
        "world_model",
        progress=False,
    )
    assert len(recs) == 1 and len(recs[0]["distance_curve"]) == 4 and np.isfinite(recs[0]["distance_curve"]).all()


@pytest.mark.parametrize("family", ["vjepa2", "dinov2"])
def test_frozen_encoder_weights_do_not_change_in_predictor_training(
    inputs: dict[str, Path], trained: dict[str, dict[str, Any]], family: str
) -> None:
    wm = trained[family]["summary"]["world_model"]  # the trained object itself, not a reload
    fresh = load_frame_encoder({"name": family, "path": str(inputs[family])})
    ref, now = fresh.state_dict(), wm.encoder.state_dict()
    assert ref.keys() == now.keys() and all(torch.equal(ref[k], now[k]) for k in ref)
    assert not any(p.requires_grad for p in wm.encoder.parameters()) and not wm.encoder.training
    assert dir_sha256(inputs[family]) == trained[family]["sha_before"]  # the weights directory is untouched
    assert trained[family]["summary"]["steps"] == 6


def test_world_model_refuses_another_encoder(inputs: dict[str, Path], trained: dict[str, dict[str, Any]]) -> None:
    wm_path = trained["vjepa2"]["run"] / "world_model.pt"
    with pytest.raises(WorldModelError, match=r"trained on encoder vjepa2 .*holds model_type 'dinov2'"):
        WorldModel.load(wm_path, "cpu", encoder_dir=inputs["dinov2"])
    other = save_tiny_vjepa2(inputs["dir"] / "vjepa2_other", seed=1)  # same architecture, other weights
    with pytest.raises(WorldModelError, match=r"holds other vjepa2 weights .*retrain the predictor"):
        WorldModel.load(wm_path, "cpu", encoder_dir=other)
    empty = inputs["dir"] / "empty"
    empty.mkdir(exist_ok=True)
    with pytest.raises(WorldModelError, match="has no config.json"):
        WorldModel.load(wm_path, "cpu", encoder_dir=empty)
    # The same weights copied elsewhere are accepted (machines differ in paths, not in bytes).
    import shutil

    copy = Path(shutil.copytree(inputs["vjepa2"], inputs["dir"] / "vjepa2_copy", dirs_exist_ok=True))
    assert WorldModel.load(wm_path, "cpu", encoder_dir=copy).encoder.name == "vjepa2"


def test_bad_weights_dirs_and_grids_are_one_clear_error(inputs: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (("encoder=dinov2", f"encoder.path={inputs['vjepa2']}"), r"holds model_type 'vjepa2'; use encoder=vjepa2"),
        (("encoder=vjepa2", f"encoder.path={inputs['dinov2']}"), r"holds model_type 'dinov2'; use encoder=dinov2"),
        (("encoder=dinov2", f"encoder.path={empty}"), r"has no config.json.*hf download facebook/dinov2-small"),
        (("encoder=vjepa2", f"encoder.path={tmp_path / 'nowhere'}"), r"not found; download it"),
        (("encoder=dinov2", f"encoder.path={inputs['dinov2']}", "encoder.img_size=30"), r"not a multiple of .* 8"),
        (("encoder=vjepa2", f"encoder.path={inputs['vjepa2']}", "encoder.img_size=64"), r"crop_size 32"),
        (("encoder=tiny",), r"encoder=tiny is a VideoViT architecture to pretrain"),
    ]
    for i, (over, match) in enumerate(cases):
        out = tmp_path / f"run{i}"
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = config_to_dict(
                compose(
                    config_name="train_predictor",
                    overrides=[
                        f"data.path={inputs['data']}",
                        f"out_dir={out}",
                        f"cache.path={out / 'cache.h5'}",
                        *over,
                    ],
                )
            )
        with pytest.raises(EncoderError, match=match):
            train_predictor(cfg, out, device="cpu", progress=False)
        assert not out.exists()  # nothing written: no cache, no checkpoint folder
    # An in-house encoder whose patches do not tile the frames (12 px patches, 32 px frames): refused before writing.
    enc = save_encoder(
        VideoViT(EncoderConfig(img_size=36, num_frames=2, patch=12, dim=16, depth=1, heads=2)), tmp_path / "p12.pt"
    )
    with pytest.raises(EncoderError, match=r"32x32 pixels do not divide into the encoder's 12x12 patches"):
        ensure_cache(inputs["data"], enc, "2x2", "cpu", cache_path=tmp_path / "c" / "cache.h5", progress=False)
    assert not (tmp_path / "c").exists()
    # pretrain refuses a foundation encoder (and the frozen-export entry) by name.
    with pytest.raises(ValueError, match=r"encoder=vjepa2 is a frozen encoder .*scripts/train_predictor.py"):
        check_pretrainable({"name": "vjepa2", "path": "weights/vjepa2-vitl"})


def test_script_reports_a_wrong_weights_dir_and_writes_nothing(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "tp"
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_predictor.py"),
            "encoder=dinov2",
            f"encoder.path={inputs['vjepa2']}",
            f"data.path={inputs['data']}",
            f"out_dir={out}",
            f"cache.path={tmp_path / 'cache.h5'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: encoder=dinov2 needs a 'dinov2' model"), res.stderr
    assert not (tmp_path / "cache.h5").exists()
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert set(left) <= {".hydra", "train_predictor.log"}  # at most Hydra's own files: no cache, no checkpoints


def test_cache_key_follows_the_weights_and_options(inputs: dict[str, Path], tmp_path: Path) -> None:
    entry = {"name": "dinov2", "path": str(inputs["dinov2"])}
    cache = tmp_path / "cache.h5"
    first = ensure_cache(inputs["data"], entry, "mean", "cpu", cache_path=cache, progress=False)
    assert (
        first.rebuilt
        and not ensure_cache(inputs["data"], entry, "mean", "cpu", cache_path=cache, progress=False).rebuilt
    )
    bigger = ensure_cache(inputs["data"], {**entry, "img_size": 48}, "mean", "cpu", cache_path=cache, progress=False)
    assert bigger.rebuilt and "encoder" in bigger.reason
    with h5py.File(cache, "r") as f:
        assert json.loads(f.attrs["encoder_config"])["img_size"] == 48
