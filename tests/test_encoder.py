"""Video ViT shapes, position interpolation, masks, predictor/EMA arithmetic, SIGReg, encoder export."""

from __future__ import annotations

import pytest
import torch

from worldmodel.models.jepa import (
    JEPA,
    JEPAConfig,
    centre_cells,
    epps_pulley,
    motion_weights,
    pooled_cells,
    sigreg_loss,
)
from worldmodel.models.masks import (
    MaskSampler,
    MaskSpec,
    default_vjepa_specs,
    sample_block_masks,
    select_indices,
)
from worldmodel.models.pooling import pool_tokens
from worldmodel.models.vit import EncoderConfig, VideoViT, load_encoder, save_encoder

SMALL = EncoderConfig(img_size=32, num_frames=4, tubelet=2, patch=8, dim=32, depth=2, heads=2)


def clip(b: int = 2, t: int = 4, s: int = 32) -> torch.Tensor:
    """Random uint8 clip (B, T, 3, S, S)."""
    return torch.randint(0, 256, (b, t, 3, s, s), dtype=torch.uint8)


@pytest.mark.parametrize("pos", ["sincos", "learned"])
def test_shapes_and_interpolation(pos: str) -> None:
    enc = VideoViT(EncoderConfig(**{**SMALL.to_dict(), "pos_embed": pos}))
    x = clip()
    assert enc(x).shape == (2, 2 * 4 * 4, 32)
    assert enc.embed(x).shape == (2, 2, 16, 32)
    assert enc.embed_image(x[:, 0]).shape == (2, 16, 32)
    # another resolution and clip length: positions are interpolated
    assert enc.embed(clip(1, 8, 48)).shape == (1, 4, 36, 32)
    keep = torch.tensor([[0, 5, 9], [1, 2, 30]])
    assert enc(x, keep_idx=keep).shape == (2, 3, 32)


def test_single_image_path_equals_repeated_frame_clip() -> None:
    enc = VideoViT(SMALL).eval()
    img = clip(2, 1)[:, 0]
    rep = img.unsqueeze(1).repeat(1, 2, 1, 1, 1)
    torch.testing.assert_close(enc.embed_image(img), enc.embed(rep)[:, 0])


def test_float_and_uint8_inputs_agree() -> None:
    enc = VideoViT(SMALL).eval()
    x = clip()
    torch.testing.assert_close(enc.embed(x), enc.embed(x.float() / 255.0), atol=1e-4, rtol=1e-4)


def test_pool_tokens() -> None:
    tok = torch.arange(16, dtype=torch.float32).view(1, 16, 1).expand(3, 16, 2)  # (B, N=4x4, D)
    p = pool_tokens(tok, (2, 2))
    assert p.shape == (3, 4, 2)
    assert p[0, :, 0].tolist() == [2.5, 4.5, 10.5, 12.5]  # mean of each 2x2 quadrant, row-major
    assert pool_tokens(tok, None).shape == (3, 1, 2)
    assert pool_tokens(tok.unsqueeze(1), (1, 1)).shape == (3, 1, 1, 2)


@pytest.mark.parametrize(
    "specs",
    [
        default_vjepa_specs(),
        [MaskSpec(kind="causal", num_blocks=0, context_t=1)],
        [MaskSpec(kind="causal", num_blocks=3, spatial_scale=(0.2, 0.3), context_t=2)],
    ],
)
def test_mask_properties(specs: list[MaskSpec]) -> None:
    grid = (4, 8, 8)
    n = 4 * 8 * 8
    sampler = MaskSampler(specs, grid, min_context=8)
    out = sampler(16, torch.Generator().manual_seed(1))
    assert len(out) == len(specs)
    for spec, (ctx, tgt) in zip(specs, out):
        assert ctx.dtype == torch.long and tgt.dtype == torch.long
        assert ctx.shape[0] == tgt.shape[0] == 16  # equal counts across the batch (rectangular)
        assert ctx.min() >= 0 and tgt.min() >= 0 and ctx.max() < n and tgt.max() < n
        for c, t in zip(ctx, tgt):
            assert len(set(c.tolist())) == len(c) and len(set(t.tolist())) == len(t)
            assert not set(c.tolist()) & set(t.tolist())  # disjoint
        if spec.kind == "causal":
            t_of = lambda i: i // 64  # noqa: E731
            assert int(t_of(ctx).max()) < spec.context_t <= int(t_of(tgt).min())


def test_block_masks_span_time_and_vary_per_sample() -> None:
    spec = MaskSpec(num_blocks=1, spatial_scale=(0.2, 0.2), aspect_ratio=(0.5, 2.0))
    masks = sample_block_masks(spec, (3, 8, 8), 16, torch.Generator().manual_seed(0)).view(16, 3, 8, 8)
    assert (masks[:, 0] == masks[:, 1]).all() and (masks[:, 1] == masks[:, 2]).all()  # whole clip in time
    area = masks[:, 0].sum((1, 2)).float()
    assert (area >= 0.5 * 0.2 * 64).all() and (area <= 2.0 * 0.2 * 64).all()
    assert len({tuple(m.flatten().tolist()) for m in masks[:, 0]}) > 4  # sampled per sample


def test_select_indices_respects_mask() -> None:
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[0, [1, 4, 7]] = True
    mask[1, [0, 2, 3, 9]] = True
    mask[2, [5, 6, 8]] = True
    idx = select_indices(mask, 3, torch.Generator().manual_seed(0))
    assert torch.gather(mask, 1, idx).all()
    assert (idx.diff(dim=1) > 0).all()


def test_ema_update_arithmetic_and_no_target_grad() -> None:
    model = JEPA(VideoViT(SMALL), JEPAConfig(pred_dim=16, pred_depth=1, pred_heads=2))
    assert model.target_encoder is not None
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p))
    before_t = [p.clone() for p in model.target_encoder.parameters()]
    online = [p.clone() for p in model.encoder.parameters()]
    model.update_target(0.9)
    for t0, o, t1 in zip(before_t, online, model.target_encoder.parameters()):
        torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * o)
    masks = MaskSampler(default_vjepa_specs(), (2, 4, 4), min_context=2)(2, torch.Generator().manual_seed(0))
    out = model(clip(), masks)
    out.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.target_encoder.parameters())
    assert all(p.grad is not None for p in model.predictor.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_sigreg_mode_has_no_teacher_and_grads() -> None:
    model = JEPA(
        VideoViT(SMALL),
        JEPAConfig(pred_dim=16, pred_depth=1, pred_heads=2, teacher="sigreg", sigreg_slices=16),
    )
    assert model.target_encoder is None
    masks = MaskSampler(default_vjepa_specs(), (2, 4, 4), min_context=2)(2, torch.Generator().manual_seed(0))
    out = model(clip(), masks, torch.Generator().manual_seed(0))
    assert out.sigreg > 0
    out.loss.backward()
    assert model.encoder.patch_embed.weight.grad is not None


def test_pooled_cells_match_pool_tokens_and_centring_removes_place() -> None:
    tok = torch.randn(3, 2 * 4 * 4, 8)  # (B, T'*H'*W', D)
    cells = pooled_cells(tok, (2, 4, 4), 2)  # (B, T', 4, D)
    assert cells.shape == (3, 2, 4, 8)
    torch.testing.assert_close(cells[:, 1], pool_tokens(tok.view(3, 2, 16, 8)[:, 1], (2, 2)))
    # a per-cell offset (what position embeddings alone add) disappears after centring
    shifted = cells + torch.randn(1, 1, 4, 8) * 10
    torch.testing.assert_close(centre_cells(shifted), centre_cells(cells), atol=1e-4, rtol=1e-4)
    assert centre_cells(cells).shape == (3 * 2 * 4, 8)


def test_sigreg_pool_term_adds_a_full_clip_gradient_without_moving_targets() -> None:
    cfg = dict(pred_dim=16, pred_depth=1, pred_heads=2, teacher="sigreg", sigreg_slices=16)
    masks = MaskSampler(default_vjepa_specs(), (2, 4, 4), min_context=2)(4, torch.Generator().manual_seed(0))
    x = clip(4)
    outs = {}
    for pool in (0, 2):
        torch.manual_seed(0)
        model = JEPA(VideoViT(SMALL), JEPAConfig(**cfg, sigreg_pool=pool))
        outs[pool] = model(x, masks, torch.Generator().manual_seed(0))
        outs[pool].loss.backward()
        assert model.encoder.patch_embed.weight.grad is not None
    # same prediction loss (targets are still stop-grad full-clip tokens); the pooled term only adds to SIGReg
    torch.testing.assert_close(outs[0].pred_loss, outs[2].pred_loss)
    assert outs[2].sigreg > outs[0].sigreg
    with pytest.raises(ValueError, match="sigreg_pool"):
        JEPA(VideoViT(SMALL), JEPAConfig(**{**cfg, "teacher": "ema"}, sigreg_pool=2))


def test_epps_pulley_separates_gaussian_from_collapse() -> None:
    g = torch.Generator().manual_seed(0)
    gauss = torch.randn(4096, 64, generator=g)
    assert float(sigreg_loss(gauss, 64, g)) < 2.0
    collapsed = torch.randn(4096, 1, generator=g).expand(4096, 64) * 0.05 + 1.0
    assert float(sigreg_loss(collapsed, 64, g)) > 100.0
    # the statistic of N(0,1) columns stays O(1) as M grows; a shifted distribution grows with M
    small, big = (
        epps_pulley(torch.randn(512, 8, generator=g) + 0.5),
        epps_pulley(torch.randn(8192, 8, generator=g) + 0.5),
    )
    assert big.mean() > 8 * small.mean()


def test_motion_weights_emphasise_moving_tokens() -> None:
    x = torch.zeros(1, 4, 3, 32, 32, dtype=torch.uint8)
    x[:, 1::2, :, :8, :8] = 255  # top-left patch flickers
    w = motion_weights(x, (2, 4, 4), strength=1.0)  # (1, 32)
    assert w.shape == (1, 32)
    assert w[0, 0] > 2.0 and torch.allclose(w[0, 1:16], torch.ones(15))


def test_encoder_export_roundtrip(tmp_path) -> None:  # noqa: ANN001
    enc = VideoViT(SMALL)
    path = save_encoder(enc, tmp_path / "encoder.pt", {"step": 3})
    loaded = load_encoder(path, "cpu")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.cfg == SMALL
    x = clip()
    torch.testing.assert_close(loaded.embed(x), enc.eval().embed(x))
