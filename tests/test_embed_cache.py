"""Embedding cache: built once, reused while valid, rebuilt when encoder, data or pooling change; clips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodel.data import ClipDataset, TrajectoryFile
from worldmodel.data.collect import CollectConfig, collect
from worldmodel.data.embed_cache import EmbeddingCache, LatentClipDataset, ensure_cache
from worldmodel.models.pooling import encode_frames, num_pooled_tokens, parse_pool, pool_name
from worldmodel.models.vit import EncoderConfig, VideoViT, load_encoder, save_encoder

ENC = EncoderConfig(img_size=32, num_frames=2, tubelet=2, patch=8, dim=32, depth=1, heads=2)




@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cache")
    data = collect(
        CollectConfig(
            env_id="wm/TwoRoom-v0",
            out=str(d / "tr.h5"),
            episodes=5,
            episode_length=20,
            workers=1,
            env_kwargs={"image_size": 32},
        ),
        progress=False,
    )
    torch.manual_seed(1)
    save_encoder(VideoViT(ENC), d / "enc.pt")
    return {"dir": d, "data": Path(data), "enc": d / "enc.pt"}


def test_pool_specs() -> None:
    assert parse_pool("mean") is None and parse_pool("none") == "none" and parse_pool("2x2") == (2, 2)
    assert pool_name(2) == "2x2" and pool_name("4X4") == "4x4" and pool_name("mean") == "mean"
    assert num_pooled_tokens("none", (4, 4)) == 16 and num_pooled_tokens("mean", (4, 4)) == 1
    assert parse_pool("2x2cat") == (2, 2, "cat") and pool_name("2X2cat") == "2x2cat"
    assert num_pooled_tokens("2x2cat", (4, 4)) == 1
    with pytest.raises(ValueError, match="pooling setting"):
        parse_pool("avg")
    with pytest.raises(ValueError, match="larger than"):
        num_pooled_tokens("8x8", (4, 4))


def test_cache_reuse_and_invalidation(files: dict[str, Path]) -> None:
    cache = files["dir"] / "emb.h5"
    first = ensure_cache(files["data"], files["enc"], "2x2", "cpu", cache_path=cache, batch_frames=16, progress=False)
    assert first.rebuilt and cache.is_file()
    stamp = cache.stat().st_mtime_ns
    again = ensure_cache(files["data"], files["enc"], "2x2", "cpu", cache_path=cache, progress=False)
    assert not again.rebuilt and again.reason == "unchanged" and cache.stat().st_mtime_ns == stamp

    # Stored latents are exactly the frozen encoder's per-frame, pooled embeddings.
    tf = TrajectoryFile(files["data"])
    enc = load_encoder(files["enc"], "cpu")
    px = torch.from_numpy(tf.read("pixels", 0, 30)).permute(0, 3, 1, 2)
    ec = EmbeddingCache(cache)
    assert ec.latent_shape == (4, 32) and ec.pool == "2x2"
    np.testing.assert_allclose(ec.latents[:30], encode_frames(enc, px, "2x2").numpy(), atol=1e-5)

    # A different encoder at the same path rebuilds.
    torch.manual_seed(2)
    save_encoder(VideoViT(ENC), files["enc"])
    other = ensure_cache(files["data"], files["enc"], "2x2", "cpu", cache_path=cache, progress=False)
    assert other.rebuilt and "encoder_sha256" in other.reason
    assert not np.allclose(EmbeddingCache(cache).latents, ec.latents)

    # A touched (re-written) data file rebuilds; a different pooling rebuilds.
    st = files["data"].stat()
    os.utime(files["data"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = ensure_cache(files["data"], files["enc"], "2x2", "cpu", cache_path=cache, progress=False)
    assert touched.rebuilt and "data" in touched.reason
    pooled = ensure_cache(files["data"], files["enc"], "mean", "cpu", cache_path=cache, progress=False)
    assert pooled.rebuilt and "pool" in pooled.reason and EmbeddingCache(cache).latent_shape == (1, 32)
    assert not ensure_cache(files["data"], files["enc"], "mean", "cpu", cache_path=cache, progress=False).rebuilt
    assert not list(cache.parent.glob(f".{cache.name}.tmp-*"))  # atomic writes leave no temporaries


def test_missing_encoder_is_a_clear_error(files: dict[str, Path]) -> None:
    with pytest.raises(FileNotFoundError, match="encoder checkpoint not found"):
        ensure_cache(files["data"], files["dir"] / "nope.pt", "2x2", "cpu", progress=False)


def test_latent_clips_match_pixel_clips(files: dict[str, Path]) -> None:
    info = ensure_cache(files["data"], files["enc"], "2x2", "cpu", cache_path=files["dir"] / "c2.h5", progress=False)
    cache = EmbeddingCache(info.path)
    for split in ("train", "val"):
        lat = LatentClipDataset(cache, clip_len=3, frameskip=2, split=split, val_fraction=0.2, seed=0)
        pix = ClipDataset(files["data"], clip_len=3, frameskip=2, split=split, val_fraction=0.2, seed=0)
        assert len(lat) == len(pix)
        idx = [0, len(lat) // 2, len(lat) - 1]
        b = lat.batch(idx)
        assert b["latents"].shape == (3, 3, 4, 32) and b["actions"].shape == (3, 2, 4)
        for j, i in enumerate(idx):
            ref = pix[i]
            assert int(ref["episode"]) == int(b["episode"][j]) and int(ref["start"]) == int(b["start"][j])
            torch.testing.assert_close(b["actions"][j], ref["actions"])
            torch.testing.assert_close(b["proprio"][j], ref["proprio"])
            g = int(TrajectoryFile(files["data"]).episode_starts[int(ref["episode"])]) + int(ref["start"])
            np.testing.assert_array_equal(b["latents"][j].numpy(), cache.latents[[g, g + 2, g + 4]])


def test_concatenated_grid_is_the_pooled_grid_as_one_token() -> None:
    enc = VideoViT(EncoderConfig(img_size=32, num_frames=2, tubelet=2, patch=8, dim=16, depth=1, heads=2)).eval()
    frames = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    grid = encode_frames(enc, frames, "2x2")  # (3, 4, 16)
    cat = encode_frames(enc, frames, "2x2cat")  # (3, 1, 64)
    assert cat.shape == (3, 1, 64)
    assert torch.allclose(cat[:, 0], grid.flatten(1))
