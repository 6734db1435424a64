"""Encoder probes with any frozen encoder from the encoder loader (here a tiny local DINOv2), beside a random-init
baseline of the same architecture; scripts/bench_pretrain.py offers only architecture yamls for --encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from worldmodel.data.collect import CollectConfig, collect
from worldmodel.eval.probes import encode_frames, random_init_like
from worldmodel.models.encoders.registry import load_frame_encoder
from worldmodel.models.vit import EncoderConfig, VideoViT

ROOT = Path(__file__).resolve().parents[1]


def save_tiny_dinov2(path: Path) -> Path:
    """A random 1-layer DINOv2 (8 px patches, 32 px input) in the Hugging Face layout."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(
        patch_size=8, image_size=32, hidden_size=32, num_attention_heads=2, num_hidden_layers=1, intermediate_size=64
    )
    Dinov2Model(cfg).save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps({"crop_size": {"height": 32, "width": 32}}))
    return path


def test_random_init_like_keeps_the_architecture() -> None:
    """A fresh VideoViT of the same config, or a copy of any other encoder with every weight redrawn: same shapes,
    other values, frozen; the original is untouched."""
    vit = VideoViT(EncoderConfig(img_size=32, dim=32, depth=1, heads=2))
    rnd = random_init_like(vit, 0)
    assert isinstance(rnd, VideoViT) and rnd.cfg == vit.cfg and not any(p.requires_grad for p in rnd.parameters())


def test_probe_script_takes_a_foundation_encoder(tmp_path: Path) -> None:
    """scripts/probe_encoder.py --encoder dinov2:DIR probes it and a random-init DINOv2 of the same shape."""
    from scripts.probe_encoder import main

    dino = save_tiny_dinov2(tmp_path / "dinov2")
    enc = load_frame_encoder({"name": "dinov2", "path": str(dino)}, "cpu")
    rnd = random_init_like(enc, 0)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    after = rnd.state_dict()
    assert before.keys() == after.keys() and all(before[k].shape == after[k].shape for k in before)
    assert all(torch.equal(before[k], enc.state_dict()[k]) for k in before)  # the original is untouched
    drawn = [k for k in before if before[k].float().std() > 0]  # not a constant init (LayerNorm ones/zeros)
    assert len(drawn) >= 8 and all(not torch.equal(before[k], after[k]) for k in drawn)
    frames = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert encode_frames(enc, frames, grids=((2, 2), None))["2x2"].shape == (6, 4 * 32)

    data = collect(
        CollectConfig(env_id="wm/TwoRoom-v0", out=str(tmp_path / "tr.h5"), episodes=4, episode_length=10, workers=1,
                      env_kwargs={"image_size": 32}),
        progress=False,
    )
    out = tmp_path / "probe.json"
    main(["--data", str(data), "--encoder", f"dinov2:{dino}", "--grids", "2", "--max-train", "30",
          "--max-test", "20", "--anchors", "10", "--val-fraction", "0.25", "--no-progress", "--json", str(out)])
    res = json.loads(out.read_text())
    assert set(res) == {"pretrained", "random-init"}
    assert res["pretrained"]["2x2"]["feature_dim"] == res["random-init"]["2x2"]["feature_dim"] == 4 * 32
    assert res["pretrained"]["2x2"]["linear"]["r2_mean"] != res["random-init"]["2x2"]["linear"]["r2_mean"]
    with pytest.raises(SystemExit) as exc:
        main(["--data", str(data), "--encoder", f"dinov2:{tmp_path / 'nowhere'}", "--no-progress"])
    assert exc.value.code == 2


def test_bench_pretrain_offers_only_architectures() -> None:
    """--encoder choices are the yamls of configs/encoder/ with a ``dim`` key: not export / vjepa2 / dinov2."""
    from scripts.bench_pretrain import encoder_choices

    names = encoder_choices()
    assert {"tiny", "small", "base", "large"} <= set(names)
    assert not {"export", "vjepa2", "dinov2"} & set(names)
