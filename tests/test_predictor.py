"""Tests for the block-causal action-conditioned predictor and its KV-cached rollout."""

from __future__ import annotations

import pytest
import torch

from worldmodel.models.predictor import ActionConditionedPredictor, PredictorConfig

D, A, P, N = 8, 3, 4, 3  # latent dim, action dim, proprio dim, latent tokens per frame




def small(proprio_dim: int = P, num_tokens: int = N, residual: bool = False) -> ActionConditionedPredictor:
    """A tiny predictor in eval mode for fast tests (a residual one gets a non-zero latent head, as if trained)."""
    torch.manual_seed(0)
    model = ActionConditionedPredictor(D, A, num_tokens=num_tokens, proprio_dim=proprio_dim, width=32, depth=2,
                                       heads=4, mlp_ratio=2.0, max_frames=10, residual=residual).eval()
    if residual:
        for param in model.latent_out.parameters():
            torch.nn.init.normal_(param, std=0.1)
    return model


def inputs(b: int, t: int, proprio: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Random latents (B, T, N, D), actions (B, T, A) and proprio (B, T, P)."""
    return torch.randn(b, t, N, D), torch.randn(b, t, A), (torch.randn(b, t, P) if proprio else None)


@pytest.mark.parametrize("proprio_dim", [0, P])
def test_forward_shapes(proprio_dim: int) -> None:
    """Teacher forcing returns (B, T, N, D) latents and (B, T, P) proprio (None when P = 0)."""
    model = small(proprio_dim)
    z, a, p = inputs(2, 5, proprio=proprio_dim > 0)
    lat, prop = model(z, a, p)
    assert lat.shape == (2, 5, N, D)
    assert (prop is None) if proprio_dim == 0 else (prop is not None and prop.shape == (2, 5, P))


def test_block_causal() -> None:
    """Changing frame t's latents, action or proprio never changes outputs at frames < t, but does at t."""
    model = small()
    z, a, p = inputs(2, 6)
    assert p is not None
    base, base_p = model(z, a, p)
    assert base_p is not None
    for t in range(1, 6):
        z2, a2, p2 = z.clone(), a.clone(), p.clone()
        z2[:, t:] += torch.randn_like(z2[:, t:])
        a2[:, t:] += 1.0
        p2[:, t:] -= 1.0
        out, out_p = model(z2, a2, p2)
        assert out_p is not None
        torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
        torch.testing.assert_close(out_p[:, :t], base_p[:, :t], atol=1e-6, rtol=0)
        assert not torch.allclose(out[:, t], base[:, t], atol=1e-4)


def test_action_conditions_same_frame() -> None:
    """The action at frame t changes the prediction made at frame t (it takes frame t to t+1)."""
    model = small()
    z, a, p = inputs(1, 3)
    a2 = a.clone()
    a2[:, 1] += 1.0
    assert not torch.allclose(model(z, a, p)[0][:, 1], model(z, a2, p)[0][:, 1], atol=1e-4)


def test_batch_independence_and_flattened_samples() -> None:
    """Rows are independent; (B, S, H, A) candidates equal the same rows flattened to (B*S, H, A)."""
    model = small()
    z, _, p = inputs(3, 2)
    assert p is not None
    acts = torch.randn(3, 4, 5, A)  # (B, S, H, A)
    ah = torch.randn(3, 1, A)
    with torch.no_grad():
        lat, prop = model.rollout(z, acts, p, ah)
        flat_lat, flat_prop = model.rollout(z.repeat_interleave(4, 0), acts.reshape(12, 5, A),
                                            p.repeat_interleave(4, 0), ah.repeat_interleave(4, 0))
        one, _ = model.rollout(z[1:2], acts[1, 2:3], p[1:2], ah[1:2])
    assert lat.shape == (3, 4, 5, N, D) and prop is not None and prop.shape == (3, 4, 5, P)
    assert flat_prop is not None
    torch.testing.assert_close(lat.reshape(12, 5, N, D), flat_lat, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(prop.reshape(12, 5, P), flat_prop, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lat[1, 2], one[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("proprio_dim,num_tokens,t0", [(0, 1, 1), (P, N, 1), (P, N, 3), (0, N, 4)])
def test_cached_matches_uncached(proprio_dim: int, num_tokens: int, t0: int, residual: bool) -> None:
    """KV-cached rollout equals re-running the whole prefix every step, for single and sampled actions, absolute
    and residual predictors alike."""
    model = small(proprio_dim, num_tokens, residual)
    z = torch.randn(2, t0, num_tokens, D)
    p = torch.randn(2, t0, proprio_dim) if proprio_dim else None
    ah = torch.randn(2, t0 - 1, A)
    for acts in (torch.randn(2, 5, A), torch.randn(2, 3, 5, A)):
        with torch.no_grad():
            c_lat, c_prop = model.rollout(z, acts, p, ah, use_cache=True)
            u_lat, u_prop = model.rollout(z, acts, p, ah, use_cache=False)
        torch.testing.assert_close(c_lat, u_lat, atol=1e-5, rtol=1e-4)
        if proprio_dim:
            assert c_prop is not None and u_prop is not None
            torch.testing.assert_close(c_prop, u_prop, atol=1e-5, rtol=1e-4)
        else:
            assert c_prop is None and u_prop is None


def test_rollout_first_step_matches_teacher_forcing() -> None:
    """Step 0 of a rollout is the teacher-forced output at frame T0-1 with actions[:, 0] applied there."""
    model = small()
    z, a_hist, p = inputs(2, 3)
    acts = torch.randn(2, 4, A)
    with torch.no_grad():
        lat, prop = model.rollout(z, acts, p, a_hist[:, :2])
        tf_lat, tf_prop = model(z, torch.cat([a_hist[:, :2], acts[:, :1]], dim=1), p)
    assert prop is not None and tf_prop is not None
    torch.testing.assert_close(lat[:, 0], tf_lat[:, -1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(prop[:, 0], tf_prop[:, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_cache", [True, False])
def test_chunked_matches_unchunked(use_cache: bool) -> None:
    """Splitting rows into chunks (also across env boundaries) gives the same rollout."""
    model = small()
    z, a_hist, p = inputs(3, 2)
    acts = torch.randn(3, 5, 4, A)  # 15 rows
    with torch.no_grad():
        full, full_p = model.rollout(z, acts, p, a_hist[:, :1], use_cache=use_cache)
        for chunk in (1, 4, 7):
            part, part_p = model.rollout(z, acts, p, a_hist[:, :1], use_cache=use_cache, chunk_size=chunk)
            assert part_p is not None and full_p is not None
            torch.testing.assert_close(part, full, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(part_p, full_p, atol=1e-5, rtol=1e-5)


def test_history_window() -> None:
    """history_window keeps the last frames only; the history is also cut to fit max_frames."""
    model = small()
    z, a_hist, p = inputs(2, 6)
    acts = torch.randn(2, 3, A)
    with torch.no_grad():
        windowed, _ = model.rollout(z, acts, p, a_hist[:, :5], history_window=2)
        manual, _ = model.rollout(z[:, -2:], acts, p[:, -2:] if p is not None else None, a_hist[:, 4:5])
        torch.testing.assert_close(windowed, manual, atol=1e-6, rtol=0)
        long, _ = model.rollout(z, torch.randn(2, 8, A), p, a_hist[:, :5])  # 6 + 8 - 1 > 10 frames
        assert long.shape == (2, 8, N, D)
    with pytest.raises(ValueError):
        model.rollout(z, torch.randn(2, 11, A), p, a_hist[:, :5])


def test_gradients_flow() -> None:
    """A teacher-forced loss reaches every parameter; rollouts are differentiable w.r.t. actions."""
    model = small().train()
    z, a, p = inputs(2, 4)
    lat, prop = model(z, a, p)
    assert prop is not None
    loss = (lat[:, :-1] - z[:, 1:]).abs().mean() + (prop[:, :-1] - p[:, 1:]).pow(2).mean()  # type: ignore[index]
    loss.backward()
    missing = [n for n, q in model.named_parameters() if q.grad is None or not torch.isfinite(q.grad).all()]
    assert not missing, missing
    acts = torch.randn(2, 3, A, requires_grad=True)
    roll, _ = model.rollout(z[:, :2], acts, p[:, :2] if p is not None else None, a[:, :1])
    roll.sum().backward()
    assert acts.grad is not None and bool((acts.grad.abs() > 0).all())


def test_residual_predicts_a_change_of_the_current_latent() -> None:
    """A residual predictor adds its head's output to the input frame's latents: untrained it copies the last
    frame through a whole rollout (teacher forcing too); its first rollout step matches teacher forcing once
    trained; an absolute predictor with the same weights differs by exactly the input latents."""
    untrained = ActionConditionedPredictor(D, A, num_tokens=N, proprio_dim=P, width=32, depth=2, heads=4,
                                           residual=True).eval()
    z, a, p = inputs(2, 3)
    with torch.no_grad():
        lat, _ = untrained.rollout(z, torch.randn(2, 4, 5, A), p, a[:, :2])
        tf_lat, _ = untrained(z, a, p)
    assert torch.equal(lat, z[:, -1:, None].expand(2, 4, 5, N, D))
    assert torch.equal(tf_lat, z)
    model = small(residual=True)
    absolute = small()
    absolute.load_state_dict(model.state_dict())
    with torch.no_grad():
        roll, _ = model.rollout(z, a[:, 2:], p, a[:, :2])
        tf_res, _ = model(z, a, p)
        tf_abs, _ = absolute(z, a, p)
    torch.testing.assert_close(roll[:, 0], tf_res[:, -1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tf_res - tf_abs, z, atol=1e-5, rtol=1e-5)
    assert PredictorConfig(**{k: v for k, v in vars(model.config).items() if k != "residual"}).residual is False


def test_from_config() -> None:
    """The dataclass builds an equivalent model and is not mutated."""
    cfg = PredictorConfig(latent_dim=D, action_dim=A, num_tokens=1, width=32, depth=1, heads=2)
    model = ActionConditionedPredictor.from_config(cfg)
    assert model.config == cfg and model.tokens_per_frame == 2
    with pytest.raises(ValueError):
        ActionConditionedPredictor(D, A, width=30, heads=4)


def test_camera_groups() -> None:
    """num_cameras=C splits the N tokens into C camera-major groups with a learned (C, W) camera embedding: one camera
    has none (state dicts as before), a frame of two cameras is one block-causal block (changing the second camera's
    tokens of frame t changes every output of frame t, none earlier), cached and uncached rollouts agree, and N
    must split evenly."""
    assert "camera_embed" not in small().state_dict()
    torch.manual_seed(0)
    model = ActionConditionedPredictor(D, A, num_tokens=4, proprio_dim=P, width=32, depth=2, heads=4,
                                       max_frames=10, num_cameras=2).eval()
    assert model.config.num_cameras == 2 and model.state_dict()["camera_embed"].shape == (2, 32)
    assert ActionConditionedPredictor.from_config(model.config).config == model.config
    z, a, p = torch.randn(2, 5, 4, D), torch.randn(2, 5, A), torch.randn(2, 5, P)
    base, _ = model(z, a, p)
    z2 = z.clone()
    z2[:, 2, 2:] += 1.0  # the second camera's tokens of frame 2
    out, _ = model(z2, a, p)
    assert torch.equal(out[:, :2], base[:, :2])
    assert ((out[:, 2] - base[:, 2]).abs().amax(-1) > 1e-6).all()  # every token of frame 2, both cameras
    with torch.no_grad():
        model.camera_embed.zero_()
    assert not torch.allclose(model(z, a, p)[0], base)  # the camera embedding is used
    acts = torch.randn(2, 3, A)
    cached, _ = model.rollout(z[:, :2], acts, p[:, :2], a[:, :1], use_cache=True)
    uncached, _ = model.rollout(z[:, :2], acts, p[:, :2], a[:, :1], use_cache=False)
    torch.testing.assert_close(cached, uncached, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="num_tokens=3 must split into num_cameras=2"):
        ActionConditionedPredictor(D, A, num_tokens=3, num_cameras=2)
