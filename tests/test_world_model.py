"""WorldModel: shapes, (B, S, H, A) batching, goal costs, round trip, mismatch errors, rollout error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodel.checkpoint import CheckpointError
from worldmodel.data import DatasetMeta, TrajectoryFile, TrajectoryWriter
from worldmodel.data.clips import split_episodes
from worldmodel.data.collect import CollectConfig, collect
from worldmodel.data.schema import SCHEMA_VERSION
from worldmodel.eval.rollout_error import format_table, rollout_error, write_report
from worldmodel.models.pooling import encode_frames
from worldmodel.models.predictor import ActionConditionedPredictor, PredictorConfig
from worldmodel.models.vit import EncoderConfig, VideoViT
from worldmodel.world_model import WorldModel, WorldModelError

N, D, A, P, K = 4, 32, 2, 4, 2  # tokens (2x2 pool), latent dim, env action dim, proprio dim, frameskip


def make_wm(seed: int = 0, proprio: bool = True) -> WorldModel:
    torch.manual_seed(seed)
    enc = VideoViT(EncoderConfig(img_size=32, num_frames=2, tubelet=2, patch=8, dim=D, depth=1, heads=2))
    pred = ActionConditionedPredictor.from_config(
        PredictorConfig(
            latent_dim=D,
            action_dim=K * A,
            num_tokens=N,
            proprio_dim=P if proprio else 0,
            width=32,
            depth=2,
            heads=2,
            max_frames=12,
        )
    )
    g = torch.Generator().manual_seed(seed)
    return WorldModel(
        enc,
        pred,
        "2x2",
        K,
        A,
        -torch.ones(A),
        torch.ones(A),
        0.1 * torch.randn(N, D, generator=g),
        0.5 + torch.rand(N, D, generator=g),
        torch.zeros(P) if proprio else None,
        torch.ones(P) if proprio else None,
        train_config={"data": {"val_fraction": 0.25, "split_seed": 0}},
        meta={"env_id": "wm/TwoRoom-v0"},
        rollout_chunk=7,
    ).eval()




@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("wm")
    return Path(
        collect(
            CollectConfig(
                env_id="wm/TwoRoom-v0",
                out=str(d / "tr.h5"),
                episodes=4,
                episode_length=24,
                workers=1,
                env_kwargs={"image_size": 32},
            ),
            progress=False,
        )
    )


def test_encode_shapes(data: Path) -> None:
    wm = make_wm()
    ep = TrajectoryFile(data).episode(0)
    px = torch.from_numpy(ep["pixels"][:6]).permute(0, 3, 1, 2)  # (6, 3, 32, 32)
    pr = torch.from_numpy(ep["proprio"][:6])
    one = wm.encode(px, pr)
    assert one["latents"].shape == (6, N, D) and one["proprio"].shape == (6, P)
    clip = wm.encode(px.reshape(2, 3, 3, 32, 32), pr.reshape(2, 3, P), batch_frames=4)
    assert clip["latents"].shape == (2, 3, N, D) and wm.latent_shape == (N, D)
    torch.testing.assert_close(clip["latents"].reshape(6, N, D), one["latents"])
    with pytest.raises(WorldModelError, match="pixels must be"):
        wm.encode(px.permute(0, 2, 3, 1))


def test_rollout_batching_matches_per_sequence() -> None:
    wm = make_wm()
    b, s, h, t0 = 2, 5, 4, 2
    hist = torch.randn(b, t0, N, D)
    prop = torch.randn(b, t0, P)
    acts = torch.rand(b, s, h, K * A) * 2 - 1  # (B, S, H, A)
    ah = torch.rand(b, t0 - 1, K * A) * 2 - 1
    with torch.no_grad():
        out = wm.rollout(hist, acts, prop, action_history=ah)  # chunks of 7 over B*S = 10 sequences
        assert out["latents"].shape == (b, s, h, N, D) and out["proprio"].shape == (b, s, h, P)
        for i in range(b):
            for j in (0, s - 1):
                one = wm.rollout(hist[i : i + 1], acts[i : i + 1, j], prop[i : i + 1], action_history=ah[i : i + 1])
                assert one["latents"].shape == (1, h, N, D)
                torch.testing.assert_close(out["latents"][i, j], one["latents"][0], atol=1e-5, rtol=1e-4)
        big = wm.rollout(hist, acts, prop, action_history=ah, chunk_size=1000)
        torch.testing.assert_close(big["latents"], out["latents"], atol=1e-5, rtol=1e-4)
        # A single-frame history (B, N, D) as the encode() dict works directly.
        single = wm.rollout({"latents": hist[:, -1], "proprio": prop[:, -1]}, acts)
        assert single["latents"].shape == (b, s, h, N, D)
        # Different candidate sequences give different futures (actions are used).
        assert not torch.allclose(out["latents"][:, 0], out["latents"][:, 1])


def test_rollout_is_differentiable_in_actions() -> None:
    wm = make_wm()
    acts = torch.zeros(1, 3, 2, K * A, requires_grad=True)
    pred = wm.rollout(torch.randn(1, N, D), acts, torch.randn(1, P))
    cost = (pred["latents"] - torch.randn(1, 1, 1, N, D)).abs().mean((-1, -2)).mean(-1)  # (1, 3)
    cost.sum().backward()
    assert acts.grad is not None and acts.grad.abs().sum() > 0
    assert all(p.grad is None for p in wm.encoder.parameters())


def test_checkpoint_round_trip(tmp_path: Path, data: Path) -> None:
    wm = make_wm(seed=3)
    path = wm.save(tmp_path / "world_model.pt")
    back = WorldModel.load(path, "cpu")
    assert (back.action_dim, back.env_action_dim, back.frameskip, back.pool) == (K * A, A, K, "2x2")
    assert back.train_config == wm.train_config and back.meta == wm.meta and back.latent_shape == (N, D)
    assert not any(p.requires_grad for p in back.parameters())  # loaded for planning: frozen
    ep = TrajectoryFile(data).episode(1)
    px = torch.from_numpy(ep["pixels"][:3]).permute(0, 3, 1, 2)
    pr = torch.from_numpy(ep["proprio"][:3])
    acts = torch.rand(3, 4, 5, K * A)
    with torch.no_grad():
        e1, e2 = wm.encode(px, pr), back.encode(px, pr)
        torch.testing.assert_close(e1["latents"], e2["latents"], atol=0, rtol=0)
        # Same weights bit for bit; outputs agree to float round-off (frozen weights may take another kernel).
        ref, new = wm.state_dict(), back.state_dict()
        assert ref.keys() == new.keys() and all(torch.equal(ref[k], new[k]) for k in ref)
        torch.testing.assert_close(
            wm.rollout(e1, acts)["latents"], back.rollout(e2, acts)["latents"], atol=1e-6, rtol=1e-6
        )
    (tmp_path / "bad.pt").write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError):
        WorldModel.load(tmp_path / "bad.pt", "cpu")


def test_action_dim_mismatch_is_a_clear_error(tmp_path: Path, data: Path) -> None:
    wm = make_wm()
    wm.check_compatible(A, P, frameskip=K, env_id="wm/TwoRoom-v0")
    with pytest.raises(WorldModelError, match=r"action dim 3 != the model's 2 .*Train one"):
        wm.check_compatible(3)
    with pytest.raises(WorldModelError, match="frameskip 1"):
        wm.check_compatible(A, frameskip=1)
    with pytest.raises(WorldModelError, match="Reacher"):
        wm.check_compatible(A, env_id="wm/Reacher-v0")
    with pytest.raises(WorldModelError, match=r"actions must be .*frameskip 2"):
        wm.rollout(torch.randn(1, N, D), torch.zeros(1, 3, A), torch.zeros(1, P))
    # A dataset with 3-D actions is refused before any evaluation.
    meta = DatasetMeta(
        SCHEMA_VERSION,
        "wm/TwoRoom-v0",
        {},
        -np.ones(3, np.float32),
        np.ones(3, np.float32),
        0.05,
        "random",
        0,
        {},
    )
    bad = tmp_path / "a3.h5"
    with TrajectoryWriter(bad, meta) as w:
        for i in range(2):
            n = 12
            w.append(
                {
                    "pixels": np.zeros((n, 32, 32, 3), np.uint8),
                    "actions": np.zeros((n, 3), np.float32),
                    "proprio": np.zeros((n, P), np.float32),
                    "state": np.zeros((n, 6)),
                    "success": np.zeros(n, bool),
                    "distance": np.zeros(n, np.float32),
                },
                seed=i,
                goal_state=np.zeros(6),
            )
    with pytest.raises(WorldModelError, match="action dim 3"):
        rollout_error(wm, bad, horizon=2)


def test_rollout_error_report(tmp_path: Path, data: Path) -> None:
    wm = make_wm()
    res = rollout_error(wm, data, horizon=3, context=2, split="val", stride=4)
    assert res["horizon"] == [1, 2, 3] and res["windows"] > 0 and res["episodes"] == 1
    for key in ("model", "copy_last", "mean_embedding", "model_raw", "copy_last_raw", "mean_embedding_raw"):
        assert len(res[key]) == 3 and all(np.isfinite(res[key]))
    # The copy-last baseline at h=1 equals a direct computation from the encoded held-out episode.
    tf = TrajectoryFile(data)
    (val_ep,) = split_episodes(4, 0.25, 0)[1].tolist()
    ep = tf.episode(val_ep)
    z = wm.encode(torch.from_numpy(ep["pixels"]).permute(0, 3, 1, 2))["latents"]  # (L, N, D)
    starts = np.arange(0, len(z) - (2 + 3 - 1) * K, 4)
    c1 = np.mean([(z[s + 2 * K] - z[s + K]).abs().mean().item() for s in starts])
    assert res["copy_last"][0] == pytest.approx(c1, rel=1e-4)
    paths = write_report(res, tmp_path / "rep")
    assert json.loads(paths["json"].read_text())["horizon"] == [1, 2, 3]
    assert paths["plot"].stat().st_size > 1000 and "copy_last" in format_table(res)
    # Proprio rows: (H, P) per-dimension errors in raw units; copy-last at h=1 equals a direct computation.
    for key in ("proprio_head", "proprio_readout", "proprio_readout_true", "proprio_copy_last"):
        assert np.asarray(res[key]).shape == (3, P) and np.isfinite(res[key]).all()
    prop = ep["proprio"].astype(np.float64)  # (L, P) raw
    c1p = np.mean([np.abs(prop[s + 2 * K] - prop[s + K]) for s in starts], axis=0)  # (P,)
    np.testing.assert_allclose(res["proprio_copy_last"][0], c1p, rtol=1e-4, atol=1e-6)
    assert "readout of true latents" in format_table(res)


def test_files_written_before_encoders_were_recorded_still_load(tmp_path: Path, data: Path) -> None:
    """An older world_model.pt (no encoder_info, encoder config without a name) loads as an in-house encoder."""
    from worldmodel.checkpoint import load_checkpoint, save_checkpoint
    from worldmodel.world_model import WORLD_MODEL_KIND

    wm = make_wm(seed=5)
    payload = load_checkpoint(wm.save(tmp_path / "new.pt"))
    del payload["encoder_info"]
    payload["encoder_config"] = wm.encoder.cfg.to_dict()  # the old form: no "name"
    old = save_checkpoint(tmp_path / "old.pt", payload, kind=WORLD_MODEL_KIND)
    back = WorldModel.load(old, "cpu")
    assert back.encoder_info["name"] == "videovit" and back.encoder.name == "videovit"
    px = torch.from_numpy(TrajectoryFile(data).episode(0)["pixels"][:2]).permute(0, 3, 1, 2)
    torch.testing.assert_close(back.encode(px)["latents"], wm.encode(px)["latents"], atol=0, rtol=0)
    with pytest.raises(WorldModelError, match="stores its in-house encoder's weights"):
        WorldModel.load(old, "cpu", encoder_dir=tmp_path)


def test_cameras_are_recorded_and_round_trip(tmp_path: Path, data: Path) -> None:
    """A single-camera model's saved settings hold no ``cameras`` entry (files as before); a two-camera model records
    its cameras through save/load and save_pretrained/from_pretrained, encodes {camera: frames} to 2 x 4 tokens
    (each camera's pooled tokens in model order), and refuses a predictor whose camera groups do not match."""
    assert "cameras" not in make_wm()._settings()
    torch.manual_seed(0)
    enc = VideoViT(EncoderConfig(img_size=32, num_frames=2, tubelet=2, patch=8, dim=D, depth=1, heads=2))
    pcfg = PredictorConfig(latent_dim=D, action_dim=A, num_tokens=2 * N, width=32, depth=1, heads=2, num_cameras=2)
    stats = (-torch.ones(A), torch.ones(A), torch.zeros(2 * N, D), torch.ones(2 * N, D))
    pred = ActionConditionedPredictor.from_config(pcfg)
    wm = WorldModel(enc, pred, "2x2", 1, A, *stats, cameras=["top", "side"]).eval()
    for back in (WorldModel.load(wm.save(tmp_path / "wm.pt"), "cpu"),
                 WorldModel.from_pretrained(wm.save_pretrained(tmp_path / "wm_dir"), "cpu")):
        assert back.cameras == ["top", "side"] and back.predictor.num_cameras == 2
    px = torch.from_numpy(TrajectoryFile(data).episode(0)["pixels"][:2]).permute(0, 3, 1, 2)  # (2, 3, 32, 32)
    z = back.encode({"top": px, "side": px.flip(-1)})["latents"]  # (2, 8, D)
    assert z.shape == (2, 2 * N, D)
    torch.testing.assert_close(z[:, :N], encode_frames(back.encoder, px, "2x2"))  # stats 0/1: raw tokens
    torch.testing.assert_close(z[:, N:], encode_frames(back.encoder, px.flip(-1), "2x2"))
    assert not torch.allclose(z[:, N:], z[:, :N])
    with pytest.raises(WorldModelError, match=r"predictor has 2 camera group\(s\) but cameras=None"):
        WorldModel(enc, pred, "2x2", 1, A, *stats)
