"""save_pretrained / from_pretrained: config.json + model.safetensors for in-house encoders and world models,
readable without running code, round-tripping exactly; damaged or foreign directories are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_world_model import A, D, K, N, P, data, make_wm  # noqa: F401  (data: the module's trajectory fixture)

from worldmodel.checkpoint import CheckpointError
from worldmodel.data.embed_cache import ensure_cache
from worldmodel.models.encoders import encoder_identity, load_frame_encoder
from worldmodel.models.vit import EncoderConfig, VideoViT
from worldmodel.world_model import WorldModel


def tiny_vit(seed: int = 0) -> VideoViT:
    torch.manual_seed(seed)
    return VideoViT(EncoderConfig(img_size=32, num_frames=2, tubelet=2, patch=8, dim=D, depth=1, heads=2)).eval()


def test_encoder_round_trip_and_plain_readability(tmp_path: Path) -> None:
    enc = tiny_vit()
    out = enc.save_pretrained(tmp_path / "enc")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())  # plain JSON + safetensors: no code runs to read them
    assert cfg["model_type"] == "worldmodel-videovit" and cfg["dim"] == D and cfg["patch"] == 8
    tensors = load_file(str(out / "model.safetensors"))
    assert tensors.keys() == enc.state_dict().keys()
    back = VideoViT.from_pretrained(out)
    assert not back.training and not any(p.requires_grad for p in back.parameters())
    px = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(back.embed_image(px), enc.embed_image(px), atol=0, rtol=0)
    # The registry takes the directory as encoder.path, hashing its files.
    assert isinstance(load_frame_encoder({"path": str(out)}), VideoViT)
    assert (
        encoder_identity(str(out))["sha256"]
        != encoder_identity(str(tiny_vit(1).save_pretrained(tmp_path / "e1")))["sha256"]
    )


def test_world_model_round_trip(tmp_path: Path, data: Path) -> None:  # noqa: F811
    wm = make_wm(seed=2)
    out = wm.save_pretrained(tmp_path / "wm")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "worldmodel-world-model" and cfg["encoder_info"]["name"] == "videovit"
    assert cfg["frameskip"] == K and cfg["env_action_dim"] == A and cfg["proprio_dim"] == P
    keys = load_file(str(out / "model.safetensors")).keys()
    assert {k.split(".")[0] for k in keys} == {"encoder", "predictor", "stats"}
    back = WorldModel.from_pretrained(out, "cpu")
    ref, new = wm.state_dict(), back.state_dict()
    assert ref.keys() == new.keys() and all(torch.equal(ref[k], new[k]) for k in ref)
    assert back.meta == wm.meta and back.train_config == wm.train_config and back.latent_shape == (N, D)
    acts = torch.rand(2, 3, 4, K * A)
    hist = torch.randn(2, N, D)
    with torch.no_grad():
        torch.testing.assert_close(
            back.rollout(hist, acts, torch.zeros(2, P))["latents"], wm.rollout(hist, acts, torch.zeros(2, P))["latents"]
        )


def test_damaged_or_foreign_directories_are_refused(tmp_path: Path) -> None:
    wm = make_wm()
    out = wm.save_pretrained(tmp_path / "wm")
    with pytest.raises(CheckpointError, match="model_type 'worldmodel-world-model', expected 'worldmodel-videovit'"):
        VideoViT.from_pretrained(out)
    with pytest.raises(CheckpointError, match="not a save_pretrained directory"):
        WorldModel.from_pretrained(tmp_path / "nowhere")
    weights = out / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0xFF  # one flipped bit in a tensor: still a valid safetensors file, caught by the recorded hash
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="SHA-256 differs from config.json's"):
        WorldModel.from_pretrained(out)
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["safetensors_sha256"]  # a directory written by other tools need not carry the hash
    cfg_path.write_text(json.dumps(cfg))
    weights.write_bytes(bytes(raw[:-64]))  # truncated
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        WorldModel.from_pretrained(out)
    # A failed save (a config value that is not JSON) leaves an existing directory as it was.
    good = tiny_vit().save_pretrained(tmp_path / "enc")
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    wm.meta["bad"] = object()
    with pytest.raises(TypeError):
        wm.save_pretrained(good)
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before


def test_a_save_pretrained_encoder_feeds_the_embedding_cache(tmp_path: Path, data: Path) -> None:  # noqa: F811
    enc_dir = tiny_vit().save_pretrained(tmp_path / "enc")
    info = ensure_cache(data, str(enc_dir), "2x2", "cpu", cache_path=tmp_path / "c.h5", progress=False)
    assert info.rebuilt and "encoder" not in info.key  # in-house: the key is the weight hash, as for encoder.pt
    assert info.key["encoder_sha256"] == encoder_identity(str(enc_dir))["sha256"]
