"""Several cameras through the embedding cache, predictor training, the world model and closed-loop planning:
a two-camera collect -> cache -> a few predictor steps -> load -> encode both cameras -> a short closed-loop plan;
an unknown camera and a camera-set mismatch give one clear error each; single-camera cache keys are unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from worldmodel.config.eval import EvalConfig
from worldmodel.data import TrajectoryFile
from worldmodel.data.collect import CollectConfig, collect
from worldmodel.data.embed_cache import (
    CACHE_FORMAT,
    EmbeddingCache,
    cache_key,
    data_fingerprint,
    default_cache_path,
    ensure_cache,
)
from worldmodel.data.schema import DatasetError
from worldmodel.eval.assemble import world_model_agent
from worldmodel.eval.closed_loop import run_closed_loop
from worldmodel.eval.episodes import EnvBatch, EpisodeSpec, env_episode_specs
from worldmodel.eval.views import current_views, goal_views
from worldmodel.models.encoders.registry import load_frame_encoder
from worldmodel.models.pooling import encode_frames
from worldmodel.models.vit import EncoderConfig, VideoViT, save_encoder
from worldmodel.training.loop import config_to_dict
from worldmodel.training.train_predictor import train_predictor
from worldmodel.world_model import WorldModel, WorldModelError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ENV = "wm/TwoRoom-v0"
ENV_KWARGS = {"image_size": 32, "extra_cameras": ["side"]}


@pytest.fixture(scope="module")
def two_cams(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny two-camera collect (top + side), a tiny in-house encoder, and a few predictor steps on both cameras."""
    d = tmp_path_factory.mktemp("multicam")
    cfg = CollectConfig(
        env_id=ENV, out=str(d / "tr.h5"), episodes=4, episode_length=12, workers=1, env_kwargs=ENV_KWARGS
    )
    data = Path(collect(cfg, progress=False))
    torch.manual_seed(0)
    enc = VideoViT(EncoderConfig(img_size=32, num_frames=2, tubelet=2, patch=8, dim=32, depth=1, heads=2))
    save_encoder(enc, d / "enc.pt")
    overrides = [
        f"data.path={data}",
        f"encoder.path={d / 'enc.pt'}",
        "data.cameras=[top,side]",
        "data.clip_len=4",
        "data.val_fraction=0.25",
        "pool=2x2",
        "predictor.width=32",
        "predictor.depth=1",
        "predictor.heads=2",
        "predictor.max_frames=8",
        "train.steps=3",
        "train.batch_size=8",
        "train.eval_every=0",
        "train.tensorboard=false",
    ]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        train_cfg = config_to_dict(compose(config_name="train_predictor", overrides=overrides))
    summary = train_predictor(train_cfg, d / "run", device="cpu", progress=False)
    return {"dir": d, "data": data, "enc": d / "enc.pt", "summary": summary}


def test_two_cameras_cache_train_encode_and_plan(two_cams: dict[str, Any]) -> None:
    """The cache holds both cameras' pooled tokens (top then side, each as a single-camera encode makes them); the
    predictor has 2 camera groups of 4 tokens; the loaded model encodes a {camera: frames} dict to the same
    latents and plans a short closed loop on an env rendering both cameras."""
    cache = EmbeddingCache(two_cams["summary"]["cache_path"])
    assert cache.cameras == ["top", "side"] and cache.latent_shape == (8, 32)
    tf = TrajectoryFile(two_cams["data"])
    top, side = (torch.from_numpy(tf.read_pixels(0, 5, c)).permute(0, 3, 1, 2) for c in ("top", "side"))
    tf.close()
    enc = load_frame_encoder(str(two_cams["enc"]), "cpu")
    expect = torch.cat([encode_frames(enc, top, "2x2"), encode_frames(enc, side, "2x2")], dim=1)  # (5, 8, 32)
    torch.testing.assert_close(torch.from_numpy(cache.latents[:5]), expect, rtol=1e-5, atol=1e-5)

    wm = WorldModel.load(two_cams["summary"]["world_model_path"], "cpu")
    assert wm.cameras == ["top", "side"] and wm.predictor.num_cameras == 2 and wm.latent_shape == (8, 32)
    assert wm.predictor.camera_embed is not None and wm.predictor.camera_embed.shape == (2, 32)
    z = wm.encode({"side": side, "top": top})["latents"]  # any key order; model order inside
    torch.testing.assert_close(z, wm.normalize_latents(expect), rtol=1e-5, atol=1e-5)
    z_seq = wm.encode({"top": top[None], "side": side[None]})["latents"]  # (1, T=5, 8, 32)
    torch.testing.assert_close(z_seq[0], z, rtol=1e-5, atol=1e-5)

    plan_cfg = {"planner": {"_target_": "planners.cem.CEMPlanner", "horizon": 2, "num_samples": 8, "iterations": 1}}
    agent = world_model_agent(wm, plan_cfg, ENV, ENV_KWARGS, torch.device("cpu"))
    settings = EvalConfig(max_steps=3, num_envs=2, video_episodes=0)
    out = two_cams["dir"] / "eval"
    records = run_closed_loop(agent, ENV, ENV_KWARGS, env_episode_specs(2, 0), settings, out, "wm", progress=False)
    assert [r["episode"] for r in records] == [0, 1]
    assert all(len(r["distance_curve"]) == 4 and len(r["plan_times_s"]) == 3 for r in records)

    with pytest.raises(ValueError, match=r"env renders \['top'\] .*extra_cameras=\['side'\]"):
        run_closed_loop(agent, ENV, {"image_size": 32}, env_episode_specs(1, 0), settings, out / "x", "wm", False)


def test_unknown_camera_and_camera_set_mismatch_are_clear_errors(two_cams: dict[str, Any]) -> None:
    """An unknown camera names the file's cameras, before any cache is written; a world model refuses frames of
    another camera set (naming the missing and unexpected cameras) and a bare tensor for several cameras."""
    d = two_cams["dir"]
    with pytest.raises(DatasetError, match=r"no camera 'front'; the file has cameras \['top', 'side'\]"):
        ensure_cache(two_cams["data"], str(two_cams["enc"]), "2x2", "cpu", d / "bad.h5", cameras=["top", "front"],
                     progress=False)
    for bad, msg in ((["top", "top"], "lists a camera twice"), ([], "non-empty list"), ("side", "non-empty list")):
        with pytest.raises(DatasetError, match=msg):
            ensure_cache(two_cams["data"], str(two_cams["enc"]), "2x2", "cpu", d / "bad.h5", cameras=bad,
                         progress=False)
    assert not (d / "bad.h5").exists()
    wm = WorldModel.load(two_cams["summary"]["world_model_path"], "cpu")
    px = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(WorldModelError, match=r"camera set \['top', 'front'\] differs .*\['top', 'side'\] "
                                              r"\(missing \['side'\], unexpected \['front'\]\)"):
        wm.encode({"top": px, "front": px})
    with pytest.raises(WorldModelError, match=r"observes cameras \['top', 'side'\]: pass \{camera"):
        wm.encode(px)


def _key_as_before(enc: Path, data: Path, pool: str, dtype: str) -> dict[str, Any]:
    """The cache key exactly as it was computed before cameras existed (in-house encoder: its file hash)."""
    return {
        "format": CACHE_FORMAT,
        "encoder_sha256": hashlib.sha256(enc.read_bytes()).hexdigest(),
        "data": data_fingerprint(data),
        "pool": pool,
        "dtype": dtype,
    }


def test_single_camera_cache_key_and_path_unchanged(two_cams: dict[str, Any]) -> None:
    """cameras=None, or the file's default camera alone, keeps the key and file name of before; a camera list
    enters both; the default-camera cache holds exactly the first camera's latents of the two-camera cache."""
    enc, data = two_cams["enc"], two_cams["data"]
    before = _key_as_before(enc, data, "2x2", "float32")
    assert json.dumps(cache_key(str(enc), data, "2x2", "float32"), sort_keys=True) == json.dumps(before, sort_keys=True)
    assert cache_key(str(enc), data, "2x2", "float32", cameras=["top"]) == before
    two = cache_key(str(enc), data, "2x2", "float32", cameras=["top", "side"])
    assert two == {**before, "cameras": ["top", "side"]}
    plain = default_cache_path(data, str(enc), "2x2")
    assert plain.name == f"tr.enc-{hashlib.sha256(str(enc.resolve()).encode()).hexdigest()[:8]}.2x2.h5"
    assert default_cache_path(data, str(enc), "2x2", ["top", "side"]).name == plain.name[:-3] + ".top+side.h5"
    info = ensure_cache(data, str(enc), "2x2", "cpu", two_cams["dir"] / "one.h5", progress=False)
    one = EmbeddingCache(info.path)
    assert one.cameras is None and one.num_cameras == 1 and "cameras" not in one.key
    both = EmbeddingCache(two_cams["summary"]["cache_path"])
    np.testing.assert_array_equal(one.latents, both.latents[:, :4])


def test_goal_views_render_the_goal_state_through_every_camera() -> None:
    """An episode started at its goal state observes exactly its goal images, through both cameras."""
    batch = EnvBatch(ENV, ENV_KWARGS, 2)
    try:
        batch.reset(env_episode_specs(2, 3))
        goals = batch.goal_states()
        batch.reset([EpisodeSpec(i, i, init_state=g, goal_state=g, source="test") for i, g in enumerate(goals)])
        now, goal = current_views(batch, ["side", "top"]), goal_views(batch, ["side", "top"])
        assert list(goal) == ["side", "top"] and goal["side"].shape == (2, 32, 32, 3)
        for cam in ("top", "side"):
            np.testing.assert_array_equal(now[cam], goal[cam])
        assert not np.array_equal(goal["side"], goal["top"])
    finally:
        batch.close()


def test_render_state_through_a_named_camera_and_batch_views_without_extra_renders() -> None:
    """render_state(state, camera) renders any observed view of a state without touching the episode; EnvBatch
    keeps every camera the envs observe, so current_views renders nothing more (get_obs is never called)."""
    batch = EnvBatch(ENV, ENV_KWARGS, 2)
    try:
        batch.reset(env_episode_specs(2, 5))
        batch.step(np.full((2, 2), 0.5, dtype=np.float32))
        env = batch.base[0]
        state = env.get_state()
        np.testing.assert_array_equal(env.render_state(state, camera="side"), batch.views["side"][0])
        np.testing.assert_array_equal(env.render_state(state, camera="top"), env.render_state(state))
        np.testing.assert_array_equal(env.render_state(state), batch.pixels[0])
        with pytest.raises(ValueError, match=r"camera 'front' is not observed .*\['top', 'side'\]"):
            env.render_state(state, camera="front")
        np.testing.assert_array_equal(env.get_state(), state)  # rendering never moved the episode
        renders: list[int] = []
        for e in batch.base:
            real = e._render_data
            e._render_data = lambda *a, _real=real: renders.append(1) or _real(*a)  # type: ignore[method-assign]
        views = current_views(batch, ["top", "side"])
        assert renders == []  # the batch already holds both cameras' frames
        np.testing.assert_array_equal(views["side"], batch.views["side"])
        batch.active[1] = False  # a finished episode repeats its last frame, every camera
        batch.step(np.zeros((2, 2), dtype=np.float32))
        assert len(renders) == 2  # one step of the active env: top and side, once each
        np.testing.assert_array_equal(batch.views["side"][1], views["side"][1])
    finally:
        batch.close()


def test_two_camera_model_through_evaluate_with_proprio_objective_subgoals_and_rollout_error(
    two_cams: dict[str, Any],
) -> None:
    """evaluate() fills env.kwargs.extra_cameras from a two-camera model (the user left it unset), fits the proprio
    readout and builds the subgoal graph through both cameras, and runs a short closed loop; an extra_cameras that
    lacks the model's camera is refused naming the fix; rollout_error encodes both cameras."""
    from worldmodel.eval.evaluate import evaluate
    from worldmodel.eval.rollout_error import rollout_error

    d = two_cams["dir"]
    cfg = {
        "world_models": {"wm": two_cams["summary"]["world_model_path"]},
        "env": {"id": ENV, "kwargs": {"image_size": 32}},
        "planner": {"_target_": "planners.cem.CEMPlanner", "horizon": 2, "num_samples": 8, "iterations": 1},
        "objective": {"proprio": {"weight": 1.0, "frames": 40}},
        "agent": {"context_frames": 1, "subgoals": {"enabled": True, "frames": 30}},
        "methods": ["random"],
        "episodes": 2,
        "eval": {"max_steps": 3, "num_envs": 2, "video_episodes": 0},
        "out_dir": str(d / "eval_cfg"),
    }
    summary = evaluate(cfg, progress=False)
    assert summary["env_kwargs"]["extra_cameras"] == ["side"] and set(summary["methods"]) == {"wm", "random"}
    bad = {**cfg, "env": {"id": ENV, "kwargs": {"image_size": 32, "extra_cameras": []}}, "out_dir": str(d / "bad")}
    with pytest.raises(ValueError, match=r"extra_cameras=\[\] lacks \['side'\].*env.kwargs.extra_cameras=\[side\]"):
        evaluate(bad, progress=False)
    assert not (d / "bad").exists()

    wm = WorldModel.load(two_cams["summary"]["world_model_path"], "cpu")
    res = rollout_error(wm, two_cams["data"], horizon=2, split="all", stride=4)
    assert res["windows"] > 0 and len(res["model"]) == 2 and all(np.isfinite(res["model"]))
    assert len(res["proprio_head"]) == 2  # the proprio readout rows were fitted through both cameras


def test_api_world_model_encodes_and_plans_from_env_observations_of_every_camera(two_cams: dict[str, Any]) -> None:
    """The Python API takes env observations as an env with extra_cameras returns them ({pixels, pixels/side,
    proprio}, one or a list) for a two-camera model; one without the side view names the fix."""
    import gymnasium

    from worldmodel.api import WorldModel as ApiWorldModel
    from worldmodel.config import CEMConfig

    wm = ApiWorldModel.load(two_cams["summary"]["world_model_path"])
    env = gymnasium.make(ENV, disable_env_checker=True, **ENV_KWARGS)
    try:
        obs, _ = env.reset(seed=0)
        base: Any = env.unwrapped
        goal = {"pixels": base.goal_pixels, "pixels/side": base.render_state(base.goal_state, camera="side")}
    finally:
        env.close()
    chw = {c: torch.from_numpy(obs[k]).permute(2, 0, 1)[None] for c, k in (("top", "pixels"), ("side", "pixels/side"))}
    expect = wm.model.encode(chw, torch.from_numpy(obs["proprio"])[None])
    got = wm.encode(obs)
    torch.testing.assert_close(got["latents"], expect["latents"])
    torch.testing.assert_close(wm.encode([obs, obs])["latents"][1], expect["latents"][0])
    acts = wm.plan(obs, goal, planner=CEMConfig(horizon=2, num_samples=8, iterations=1), steps=1)
    assert acts.shape == (wm.frameskip, 2)
    with pytest.raises(ValueError, match=r"observes cameras \['top', 'side'\].*no view of \['top', 'side'\]"):
        wm.encode({"pixels": obs["pixels"]})
