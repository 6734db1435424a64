"""Probes: ridge R^2 ~1 on linear embeddings and ~0 on noise; distance ranks; collapse statistics."""

from __future__ import annotations

import math

import pytest
import torch

from worldmodel.eval.probes import distance_rank_correlation, encode_frames, linear_probe, probe_encoder, spearman
from worldmodel.models.stats import collapse_stats, effective_rank
from worldmodel.models.vit import EncoderConfig, VideoViT


def _coords(n: int, g: torch.Generator) -> torch.Tensor:
    """Random 3-D task coordinates (N, 3)."""
    return torch.rand(n, 3, generator=g) * 2 - 1


def test_linear_probe_recovers_linear_embedding() -> None:
    g = torch.Generator().manual_seed(0)
    y_tr, y_te = _coords(600, g), _coords(200, g)
    proj = torch.randn(3, 48, generator=g)
    x_tr = y_tr @ proj + 0.01 * torch.randn(600, 48, generator=g)
    x_te = y_te @ proj + 0.01 * torch.randn(200, 48, generator=g)
    res = linear_probe(x_tr, y_tr, x_te, y_te, names=["x", "y", "yaw"], success_radius=0.1)
    assert res["r2_mean"] > 0.99
    assert all(v < 0.05 for v in res["rmse_over_radius"].values())
    assert set(res["r2"]) == {"x", "y", "yaw"}


def test_linear_probe_on_noise_is_near_zero() -> None:
    g = torch.Generator().manual_seed(1)
    y_tr, y_te = _coords(600, g), _coords(300, g)
    res = linear_probe(torch.randn(600, 48, generator=g), y_tr, torch.randn(300, 48, generator=g), y_te)
    assert abs(res["r2_mean"]) < 0.1
    assert all(r < 0.1 for r in res["r2"].values())


def test_linear_probe_group_split_and_dual_form() -> None:
    g = torch.Generator().manual_seed(2)
    y_tr, y_te = _coords(100, g), _coords(50, g)
    proj = torch.randn(3, 400, generator=g)  # more features than samples -> dual solve
    res = linear_probe(y_tr @ proj, y_tr, y_te @ proj, y_te, groups_train=torch.arange(100) // 10)
    assert res["r2_mean"] > 0.98


def test_spearman_and_distance_ranks() -> None:
    assert spearman(torch.arange(10.0), torch.arange(10.0) ** 3) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    g = torch.Generator().manual_seed(3)
    coords = torch.rand(500, 2, generator=g)
    # an embedding that is an isometry-ish (L1 over a rotated, scaled copy) tracks true distance
    emb = torch.cat([coords, coords @ torch.tensor([[0.7, -0.7], [0.7, 0.7]])], 1) * 5.0
    good = distance_rank_correlation(emb, coords, success_radius=0.05, num_pairs=3000)
    assert good["spearman_all"] > 0.9 and good["spearman_near"] > 0.7 and good["pairs_near"] > 100
    noise = distance_rank_correlation(torch.randn(500, 16, generator=g), coords, success_radius=0.05, num_pairs=3000)
    assert abs(noise["spearman_all"]) < 0.1


def test_distance_profile_shows_slope_and_plateau() -> None:
    """The profile rises with true distance for an isometry; a saturating embedding shows a plateau near 1."""
    g = torch.Generator().manual_seed(5)
    coords = torch.rand(800, 2, generator=g)
    linear = distance_rank_correlation(coords * 3.0, coords, success_radius=0.05, num_pairs=3000)
    prof = linear["profile"]
    assert len(prof) == len(linear["profile_edges"]) - 1 and all(a < b for a, b in zip(prof[:6], prof[1:7]))
    assert linear["plateau"] > 1.2  # bin [1.5r, 2r) sits ~1.4x above [1r, 1.5r) for an isometry
    # Gaussian bumps of std 0.01 (a fifth of the radius 0.05): latent distance saturates inside the radius
    centres = torch.rand(64, 2, generator=g)
    bumps = torch.exp(-((coords[:, None] - centres[None]) ** 2).sum(-1) / (2 * 0.01**2))  # (M, 64)
    sharp = distance_rank_correlation(bumps, coords, success_radius=0.05, num_pairs=3000)
    assert sharp["plateau"] < 1.2 < linear["plateau"]  # measured 1.13 vs 1.37


def test_effective_rank_and_collapse_stats() -> None:
    g = torch.Generator().manual_seed(4)
    iso = torch.randn(2000, 8, generator=g)
    assert effective_rank(iso) > 7.5
    rank1 = torch.randn(2000, 1, generator=g) * torch.ones(1, 8)
    assert effective_rank(rank1) < 1.1
    stats = collapse_stats(torch.zeros(4, 16, 8) + torch.randn(1, 1, 8, generator=g))
    assert stats["std_clip"] == 0.0 and stats["std_token"] == 0.0
    assert math.isfinite(stats["rank_token"])


def test_probe_encoder_end_to_end_shapes() -> None:
    enc = VideoViT(EncoderConfig(img_size=32, dim=32, depth=1, heads=2))
    g = torch.Generator().manual_seed(5)
    frames = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g)
    emb = encode_frames(enc, frames, grids=((2, 2), None), batch_size=16)
    assert emb["2x2"].shape == (40, 4 * 32) and emb["mean"].shape == (40, 32)
    coords = torch.rand(40, 2, generator=g)
    res = probe_encoder(enc, frames[:30], coords[:30], frames[30:], coords[30:], names=["x", "y"], success_radius=0.1)
    assert {"2x2", "4x4", "collapse"} <= set(res)
    assert set(res["2x2"]["linear"]["r2"]) == {"x", "y"}


def test_nearest_neighbour_retrieval_separates_informative_from_noise_features() -> None:
    """Features that encode the position retrieve a neighbour within the radius; pure noise features do not."""
    from worldmodel.eval.probes import nearest_neighbour_retrieval

    g = torch.Generator().manual_seed(0)
    train_xy, test_xy = torch.rand(800, 2, generator=g) * 2 - 1, torch.rand(200, 2, generator=g) * 2 - 1
    lift = torch.randn(2, 16, generator=g)
    good = nearest_neighbour_retrieval(train_xy @ lift, train_xy, test_xy @ lift, test_xy, success_radius=0.15)
    noise = nearest_neighbour_retrieval(
        torch.randn(800, 16, generator=g), train_xy, torch.randn(200, 16, generator=g), test_xy, success_radius=0.15
    )
    assert good["beyond_radius"] < 0.05 and good["median"] < 0.1
    assert noise["beyond_radius"] > 0.7  # a random neighbour in a 2 x 2 square is rarely within 0.15
    assert good["oracle_median"] == noise["oracle_median"] <= good["median"] + 1e-9
