"""The gymnasium adapter (wm/GymAdapter-v0): gymnasium's Reacher-v5 gets the full env API, is collected and
evaluated closed-loop through configs alone; the oracle's simulator matches env.step exactly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
import yaml

import envs  # noqa: F401  (registers the ids)
from envs.adapter import ADAPTER_ID, GymAdapterEnv
from envs.base import MujocoGoalEnv
from envs.policies import make_policy
from planners.cem import CEMPlanner
from worldmodel.data import ClipDataset, TrajectoryFile
from worldmodel.data.collect import CollectConfig, collect
from worldmodel.eval.agents import OracleAgent, RandomAgent
from worldmodel.eval.closed_loop import EvalSettings, run_closed_loop
from worldmodel.eval.episodes import env_episode_specs

ROOT = Path(__file__).resolve().parents[1]


def reacher_kwargs(**over: Any) -> dict[str, Any]:
    """The shipped configs/env/gym_reacher.yaml kwargs at a small image size (overridable)."""
    kw = yaml.safe_load((ROOT / "configs" / "env" / "gym_reacher.yaml").read_text())["kwargs"]
    kw.pop("max_episode_steps")
    kw["image_size"] = 32
    kw.update(over)
    return kw


def make(**over: Any) -> GymAdapterEnv:
    """An unwrapped adapter env around Reacher-v5."""
    env = gymnasium.make(ADAPTER_ID, disable_env_checker=True, **reacher_kwargs(**over)).unwrapped
    assert isinstance(env, GymAdapterEnv) and isinstance(env, MujocoGoalEnv)
    return env


def test_reacher_has_the_env_api() -> None:
    env = make()
    obs, info = env.reset(seed=1)
    assert obs["pixels"].shape == (32, 32, 3) and obs["pixels"].dtype == np.uint8 and obs["pixels"].std() > 0
    assert obs["proprio"].shape == (4,) and env.proprio_dim == 4  # qpos[0:2] ++ qvel[0:2]
    assert env.state_dim == 12 and env.action_dim == 2  # qpos 4 (two joints + target x/y), qvel 4, warm start 4
    assert env.control_dt == pytest.approx(0.02) and set(info) >= {"success", "distance"}
    assert env.task_coord_names == ("fingertip.x", "fingertip.y", "fingertip.z")
    # Seeded resets repeat; the wrapped env's own start distribution is used (arm near straight, target random).
    s1, g1 = env.get_state(), env.goal_state
    env.reset(seed=1)
    np.testing.assert_array_equal(env.get_state(), s1)
    np.testing.assert_array_equal(env.goal_state, g1)
    assert np.all(np.abs(env.qpos(s1)[:2]) <= 0.1) and np.linalg.norm(env.qpos(s1)[2:4]) < 0.2
    # The goal is reachable and not solved at the start; its target position equals the start's.
    assert info["distance"] > env.success_threshold and not info["success"]
    np.testing.assert_array_equal(env.qpos(g1)[2:4], env.qpos(s1)[2:4])
    assert env.is_success(g1, g1) and env.goal_distance(g1, g1) == 0.0
    # Vectorised metrics over any leading shape.
    batch = np.stack([s1, g1, s1])[None].repeat(2, 0)  # (2, 3, Ds)
    d = env.goal_distance(batch, g1)
    assert d.shape == (2, 3) and d[0, 1] == 0.0 and d[0, 0] == pytest.approx(info["distance"])
    assert env.state_to_task_coords(batch).shape == (2, 3, 3)
    # Goal pixels render without disturbing the episode, and differ from the current frame.
    before = env.get_state()
    goal_px = env.goal_pixels
    np.testing.assert_array_equal(env.get_state(), before)
    np.testing.assert_array_equal(env.get_obs()["pixels"], obs["pixels"])
    assert goal_px.shape == (32, 32, 3) and np.abs(goal_px.astype(int) - obs["pixels"]).sum() > 0
    # The target is part of the state: moving it in the state moves it in the image.
    moved = s1.copy()
    moved[2:4] = [0.15, -0.15]
    assert np.abs(env.render_state(moved).astype(int) - env.render_state(s1)).sum() > 0
    # reset options fix the start and the goal.
    env.reset(seed=5, options={"init_state": g1, "goal_state": s1})
    np.testing.assert_array_equal(env.get_state()[:8], g1[:8])
    np.testing.assert_array_equal(env.goal_state, s1)
    env.close()


def test_state_round_trip_and_oracle_simulator_match_step() -> None:
    env = make()
    env.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.step(rng.uniform(-1, 1, 2))
    start = env.get_state()
    acts = rng.uniform(-1.5, 1.5, (6, 2))  # out-of-range actions are clipped identically everywhere
    traj = []
    for a in acts:
        env.step(a)
        traj.append(env.get_state())
    env.set_state(start)  # set_state reproduces the dynamics bit for bit
    for a, s in zip(acts, traj):
        env.step(a)
        np.testing.assert_array_equal(env.get_state(), s)
    sim = env.batch_simulator(threads=1)
    pred = sim(np.stack([start, start]), np.stack([acts, acts]))  # (2, H, Ds)
    nq_nv = env.model.nq + env.model.nv
    np.testing.assert_allclose(pred[0, :, :nq_nv], np.stack(traj)[:, :nq_nv], rtol=0, atol=1e-12)
    env.close()


def test_rescaled_actions_and_qpos_success_with_user_goal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """InvertedPendulum-v5 (ctrl range [-3, 3]): actions in [-1, 1] are rescaled in step and in the simulator;
    success on qpos indices; goals from a user function given by import path."""
    (tmp_path / "my_goals.py").write_text(
        "import numpy as np\ndef upright_at(env, rng):\n    return env.make_state([rng.uniform(-0.5, 0.5), 0.0])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    env = gymnasium.make(
        ADAPTER_ID,
        gym_id="InvertedPendulum-v5",
        image_size=16,
        camera=-1,
        disable_env_checker=True,
        success={"kind": "qpos", "indices": [0], "threshold": 0.05},
        goal={"kind": "function", "function": "my_goals:upright_at"},
    ).unwrapped
    assert isinstance(env, GymAdapterEnv)
    np.testing.assert_array_equal(env.ctrl_high, [3.0])
    np.testing.assert_array_equal(env.action_to_ctrl(np.array([[-1.0], [0.5], [9.0]])), [[-3.0], [1.5], [3.0]])
    env.reset(seed=0)
    goal = env.goal_state
    assert -0.5 <= goal[0] <= 0.5 and goal[1] == 0.0 and env.task_coord_names == ("qpos[0]:slider",)
    start = env.get_state()
    acts = np.array([[1.0], [-0.4], [0.7]])
    for a in acts:
        env.step(a)
    pred = env.batch_simulator(threads=1)(start[None], acts[None])  # (1, 3, Ds)
    np.testing.assert_allclose(pred[0, -1, :4], env.get_state()[:4], rtol=0, atol=1e-12)
    d = env.goal_distance(env.get_state(), goal)
    assert d == pytest.approx(abs(env.get_state()[0] - goal[0]))
    env.close()


def test_clear_errors_for_bad_configs() -> None:
    with pytest.raises(ValueError, match=r"camera: the model has no camera named 'top'"):
        make(camera="top")
    with pytest.raises(ValueError, match=r"success.names: the model has no body named 'hand'; it has \[.*'fingertip'"):
        make(success={"kind": "body", "names": ["hand"]})
    with pytest.raises(ValueError, match=r"success.function='nope' must be an import path 'module:function'"):
        make(success={"kind": "function", "function": "nope"})
    with pytest.raises(ValueError, match=r"proprio.qpos=\[7\] is out of range for a vector of 4 entries"):
        make(proprio={"qpos": [7]})
    with pytest.raises(ValueError, match=r"gym_id='NoSuchEnv-v0'.*cannot be made"):
        make(gym_id="NoSuchEnv-v0")
    with pytest.raises(ValueError, match=r"not a gymnasium MuJoCo env"):
        gymnasium.make(ADAPTER_ID, gym_id="CartPole-v1", disable_env_checker=True)


def test_policies_and_collection_through_the_config(tmp_path: Path) -> None:
    env = gymnasium.make(ADAPTER_ID, disable_env_checker=True, **reacher_kwargs())
    for name in ("random", "explore"):
        pol = make_policy(name, env, np.random.default_rng(0))
        pol.reset()
        acts = np.stack([pol({}) for _ in range(20)])
        assert acts.shape == (20, 2) and acts.dtype == np.float32 and np.all(np.abs(acts) <= 1) and acts.std() > 0
    env.close()
    out = collect(
        CollectConfig(
            env_id=ADAPTER_ID,
            env_kwargs=reacher_kwargs(),
            out=str(tmp_path / "r.h5"),
            episodes=2,
            episode_length=12,
            workers=1,
            policy="explore",
        ),
        progress=False,
    )
    tf = TrajectoryFile(out, verify=True)
    assert tf.num_episodes == 2 and tf.image_shape == (32, 32, 3) and tf.meta.control_dt == pytest.approx(0.02)
    ep = tf.episode(0)
    assert ep["state"].shape == (13, 12) and ep["proprio"].shape == (13, 4) and np.all(ep["actions"][-1] == 0)
    assert np.ptp(ep["state"][:, 0]) > 0.01  # the arm moved
    # Stored states replay: set_state(frame t) + action t reproduces frame t+1.
    env2 = make()
    env2.reset(seed=0)
    env2.set_state(ep["state"][3])
    env2.step(ep["actions"][3])
    np.testing.assert_array_equal(env2.get_state(), ep["state"][4])
    env2.close()
    item = ClipDataset(out, clip_len=4, frameskip=2, split="all")[0]
    assert item["pixels"].shape == (4, 3, 32, 32) and item["actions"].shape == (3, 4)


def test_closed_loop_random_and_oracle(tmp_path: Path) -> None:
    kw = reacher_kwargs()
    specs = env_episode_specs(2, seed=0)
    settings = EvalSettings(max_steps=8, num_envs=2, video_episodes=0)
    rnd = RandomAgent(-np.ones(2, np.float32), np.ones(2, np.float32), seed=0)
    r = run_closed_loop(rnd, ADAPTER_ID, kw, specs, settings, tmp_path, "random", progress=False)
    planner = CEMPlanner(torch.full((2,), -1.0), torch.ones(2), horizon=4, num_samples=48, iterations=3, num_elites=6)
    o = run_closed_loop(OracleAgent(planner), ADAPTER_ID, kw, specs, settings, tmp_path, "oracle", progress=False)
    assert [x["episode"] for x in r] == [x["episode"] for x in o] == [0, 1]
    for x, y in zip(r, o):
        assert x["initial_distance"] == y["initial_distance"] > 0  # same starts and goals for both methods
        assert len(y["distance_curve"]) == 9
        assert y["final_distance"] < 0.5 * y["initial_distance"]  # planning through the true dynamics closes in
    assert np.mean([y["final_distance"] for y in o]) < np.mean([x["final_distance"] for x in r])


def test_docs_example_runs(tmp_path: Path) -> None:
    """docs/own_env.md: its python block and its shell commands run as written."""
    text = (ROOT / "docs" / "own_env.md").read_text()
    py = re.search(r"```python\n(.*?)```", text, re.S)
    sh = re.search(r"```bash\n(.*?)```", text, re.S)
    assert py and sh
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", py.group(1)], cwd=ROOT, check=True, timeout=60, env=env)
    for line in sh.group(1).replace("\\\n", " ").strip().splitlines():
        cmd = line.split()
        assert cmd[0] == "python"
        cmd[0:2] = [sys.executable, str(ROOT / cmd[1])]
        r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
    assert TrajectoryFile(tmp_path / "data" / "gym_reacher.h5").num_episodes == 2
    assert (tmp_path / "outputs" / "eval" / "gym_reacher" / "summary.json").exists()
