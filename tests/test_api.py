"""The Python API (worldmodel/api.py): observations as the envs return them, one-call planning, evaluation."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from test_evaluate import ENV, tiny_world_model

import envs  # noqa: F401
from worldmodel import WorldModel, evaluate_planning
from worldmodel.api import env_config
from worldmodel.config import CEMConfig, EvalConfig, GDConfig


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("api")
    tiny_world_model().save(d / "world_model.pt")
    env = gymnasium.make(ENV, image_size=32, disable_env_checker=True)
    obs, _ = env.reset(seed=0)
    goal = env.unwrapped.goal_pixels
    env.close()
    return {"path": d / "world_model.pt", "obs": obs, "goal": goal, "dir": d}


def test_encode_takes_every_observation_form_alike(setup: dict) -> None:
    wm, obs = WorldModel.load(setup["path"]), setup["obs"]
    one = wm.encode(obs)
    assert one["latents"].shape == (1, 4, 16) and one["proprio"].shape == (1, 4)
    frame = wm.encode(obs["pixels"])["latents"]  # a bare (H, W, 3) frame: no proprio
    batch = wm.encode([obs, obs])
    chw = wm.encode(torch.from_numpy(obs["pixels"]).permute(2, 0, 1)[None])["latents"]  # (1, 3, H, W)
    torch.testing.assert_close(frame, one["latents"])
    torch.testing.assert_close(chw, one["latents"])
    torch.testing.assert_close(batch["latents"], one["latents"].expand(2, -1, -1))
    torch.testing.assert_close(batch["proprio"], one["proprio"].expand(2, -1))
    with pytest.raises(ValueError, match="uint8"):
        wm.encode(obs["pixels"].astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        wm.encode(np.zeros((32, 32), np.uint8))


def test_plan_returns_the_next_env_actions_within_bounds(setup: dict) -> None:
    wm, obs, goal = WorldModel.load(setup["path"]), setup["obs"], setup["goal"]
    planner = CEMConfig(horizon=3, num_samples=16, iterations=2)
    one = wm.plan(obs, goal, planner=planner)
    assert one.shape == (1, 2) and one.dtype == np.float32 and np.all(np.abs(one) <= 1)
    assert np.array_equal(one, wm.plan(obs, goal, planner=planner))  # seeded
    batch = wm.plan([obs, obs], goal, planner=planner, steps=3)
    assert batch.shape == (2, 3, 2)
    assert wm.plan(obs, goal, planner=GDConfig(horizon=2, num_samples=2, iterations=3, cem_samples=8)).shape == (1, 2)
    with pytest.raises(ValueError, match="steps=4"):
        wm.plan(obs, goal, planner=planner, steps=4)


def test_evaluate_planning_random_only_and_with_a_world_model(setup: dict) -> None:
    settings = EvalConfig(max_steps=3, num_envs=2, video_episodes=0)
    floor = evaluate_planning(None, env=env_config("tworoom", image_size=32), episodes=2, eval=settings,
                              out_dir=setup["dir"] / "floor")
    assert set(floor["methods"]) == {"random"} and floor["methods"]["random"]["episodes"] == 2
    both = evaluate_planning(setup["path"], env=env_config("tworoom", image_size=32), episodes=2, eval=settings,
                             planner=CEMConfig(horizon=3, num_samples=8, iterations=1), out_dir=setup["dir"] / "wm")
    assert set(both["methods"]) == {"random", "world_model"}
    assert (Path(setup["dir"]) / "wm" / "summary.json").exists()
    with pytest.raises(ValueError, match="image_size"):  # the model's settings are checked against the env
        evaluate_planning(setup["path"], env="tworoom", episodes=1, eval=settings, out_dir=setup["dir"] / "bad")
    with pytest.raises(ValueError, match="choose one of"):
        env_config("tworom")
