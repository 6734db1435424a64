"""Tests of the goal-reaching MuJoCo tasks (envs/): API, determinism, state round trips, goals, policies."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.base import MujocoGoalEnv
from envs.policies import POLICY_NAMES, make_policy

MakeEnv = Callable[..., gymnasium.Env]


@pytest.fixture
def make_env() -> Iterator[MakeEnv]:
    """Factory for gymnasium.make(...) envs that are all closed at teardown."""
    made: list[gymnasium.Env] = []

    def _make(env_id: str, **kwargs: object) -> gymnasium.Env:
        env = gymnasium.make(env_id, **kwargs)
        made.append(env)
        return env

    yield _make
    for env in made:
        env.close()


def _task(env: gymnasium.Env) -> MujocoGoalEnv:
    """The unwrapped task (typed)."""
    task = env.unwrapped
    assert isinstance(task, MujocoGoalEnv)
    return task


def _actions(n: int, seed: int = 0) -> np.ndarray:
    """Smooth-ish random actions (n, 2) in [-1, 1] so the agent actually travels and makes contacts."""
    rng = np.random.default_rng(seed)
    return np.clip(np.cumsum(rng.normal(0, 0.5, size=(n, 2)), axis=0), -1, 1).astype(np.float32)


def test_registry_and_aliases() -> None:
    assert envs.ENV_IDS == ("wm/TwoRoom-v0", "wm/Reacher-v0", "wm/Push-v0")
    assert set(envs.ALIASES.values()) == set(envs.ENV_IDS)
    for env_id in envs.ENV_IDS:
        assert env_id in gymnasium.registry
    assert envs.resolve_id("tworoom") == "wm/TwoRoom-v0"
    with pytest.raises(ValueError, match="Unknown environment"):
        envs.resolve_id("cartpole")


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
@pytest.mark.parametrize("image_size", [64, 96])
def test_shapes_dtypes_and_render(env_id: str, image_size: int, make_env: MakeEnv) -> None:
    env = make_env(env_id, image_size=image_size, render_mode="rgb_array")
    task = _task(env)
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert task.action_dim == 2 and task.state_dim == task.get_state().shape[0]
    obs, info = env.reset(seed=0)
    for o in [obs, env.step(env.action_space.sample())[0]]:
        assert o["pixels"].shape == (image_size, image_size, 3) and o["pixels"].dtype == np.uint8
        assert o["proprio"].shape == (task.proprio_dim,) and o["proprio"].dtype == np.float32
        assert env.observation_space.contains(o)
    assert set(info) == {"success", "distance"}
    assert isinstance(info["success"], bool) and isinstance(info["distance"], float)
    frame = env.render()
    np.testing.assert_array_equal(frame, task.get_obs()["pixels"])
    assert frame.std() > 10, "frame looks blank"
    assert task.get_state().dtype == np.float64
    assert task.control_dt == pytest.approx(0.05)


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_gymnasium_env_checker(env_id: str, make_env: MakeEnv) -> None:
    env = make_env(env_id, render_mode="rgb_array")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    # proprio is deliberately unbounded (velocities); anything else the checker says is a defect.
    unexpected = [str(w.message) for w in caught if "infinity" not in str(w.message)]
    assert not unexpected, unexpected


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_same_seed_same_episode(env_id: str, make_env: MakeEnv) -> None:
    a, b = make_env(env_id), make_env(env_id)
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    np.testing.assert_array_equal(obs_a["pixels"], obs_b["pixels"])
    np.testing.assert_array_equal(_task(a).goal_state, _task(b).goal_state)
    for act in _actions(20):
        obs_a, *_ = a.step(act)
        obs_b, *_ = b.step(act)
        np.testing.assert_array_equal(obs_a["pixels"], obs_b["pixels"])
        np.testing.assert_array_equal(obs_a["proprio"], obs_b["proprio"])
    other, _ = b.reset(seed=8)
    assert not np.array_equal(_task(a).get_state(), _task(b).get_state())


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_set_state_reproduces_trajectory(env_id: str, make_env: MakeEnv) -> None:
    env, twin = make_env(env_id), make_env(env_id)
    task, twin_task = _task(env), _task(twin)
    obs, _ = env.reset(seed=1)
    policy = make_policy("explore", env, np.random.default_rng(1))  # contacts exercise the warm start
    policy.reset()
    acts, states, pixels = [], [task.get_state()], [obs["pixels"]]
    for _ in range(150):
        acts.append(policy(obs))
        obs, *_ = env.step(acts[-1])
        states.append(task.get_state())
        pixels.append(obs["pixels"])
    # Restore every 10th state (latest first, so nothing carries over) and replay the next 10 actions.
    for k in range(140, -1, -10):
        task.set_state(states[k])
        np.testing.assert_array_equal(task.get_state(), states[k])
        for j in range(k, k + 10):
            obs, *_ = env.step(acts[j])
            np.testing.assert_array_equal(task.get_state(), states[j + 1], err_msg=f"from {k}, step {j}")
        np.testing.assert_array_equal(obs["pixels"], pixels[k + 10])
    # Another instance started from a saved state through reset options.
    twin.reset(seed=99, options={"init_state": states[50], "goal_state": task.goal_state})
    for j in range(50, 80):
        twin.step(acts[j])
        np.testing.assert_array_equal(twin_task.get_state(), states[j + 1])


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_goal_rendering_leaves_episode_untouched(env_id: str, make_env: MakeEnv) -> None:
    env, twin = make_env(env_id), make_env(env_id)
    task = _task(env)
    env.reset(seed=2)
    twin.reset(seed=2)
    acts = _actions(30, seed=2)
    for act in acts[:15]:
        env.step(act)
        twin.step(act)
    before = task.get_state()
    current = task.get_obs()["pixels"]
    other = task.sample_goal(np.random.default_rng(0))
    img = task.render_state(other)
    goal_img = task.goal_pixels
    np.testing.assert_array_equal(task.get_state(), before)
    assert not np.array_equal(img, current)
    np.testing.assert_array_equal(goal_img, task.render_state(task.goal_state))
    np.testing.assert_array_equal(task.render_state(before), current)
    for act in acts[15:]:
        obs, *_ = env.step(act)
        obs_twin, *_ = twin.step(act)
        np.testing.assert_array_equal(obs["pixels"], obs_twin["pixels"])
        np.testing.assert_array_equal(task.get_state(), _task(twin).get_state())


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_success_at_goal_not_at_start(env_id: str, make_env: MakeEnv) -> None:
    env = make_env(env_id)
    task = _task(env)
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert not info["success"] and info["distance"] > 0.0
        task.set_state(task.goal_state)
        info = task.get_info()
        assert info["success"] and info["distance"] == pytest.approx(0.0, abs=1e-12)
        _, reward, _, _, info = env.step(np.zeros(2, np.float32))  # at rest with no force: stays solved
        assert info["success"] and reward == pytest.approx(-info["distance"])


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_starts_and_goals_are_free_and_at_rest(env_id: str, make_env: MakeEnv) -> None:
    env = make_env(env_id)
    task = _task(env)
    for seed in range(5):
        env.reset(seed=seed)
        for state in (task.get_state(), task.goal_state):
            assert not task._in_collision(state)
            np.testing.assert_array_equal(task.qvel(state), 0.0)


def test_tworoom_goal_room_is_configurable(make_env: MakeEnv) -> None:
    other, anywhere = make_env("wm/TwoRoom-v0"), make_env("wm/TwoRoom-v0", goal_other_room_prob=0.0)
    rooms_other, rooms_any = [], []
    for seed in range(12):
        for env, out in ((other, rooms_other), (anywhere, rooms_any)):
            env.reset(seed=seed)
            task = _task(env)
            start = task.state_to_task_coords(task.get_state())  # (2,) agent xy
            goal = task.state_to_task_coords(task.goal_state)
            out.append(bool(task.room_of(start) != task.room_of(goal)))
    assert all(rooms_other)
    assert not all(rooms_any)


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_vectorised_metrics_match_info(env_id: str, make_env: MakeEnv) -> None:
    env = make_env(env_id)
    task = _task(env)
    env.reset(seed=3)
    policy = make_policy("explore", env, np.random.default_rng(3))
    policy.reset()
    obs, info = task.get_obs(), task.get_info()
    states, dists, wins = [], [], []
    for _ in range(40):
        obs, _, _, _, info = env.step(policy(obs))
        states.append(task.get_state())
        dists.append(info["distance"])
        wins.append(info["success"])
    goal = task.goal_state
    batch = np.stack(states)  # (N, state_dim)
    d = task.goal_distance(batch, goal)
    assert d.shape == (40,)
    np.testing.assert_allclose(d, dists, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(task.is_success(batch, goal), wins)
    coords = task.state_to_task_coords(batch)
    assert coords.shape == (40, len(task.task_coord_names))
    assert task.success_threshold > 0
    # Success is monotone in distance for a goal state copied from the batch itself.
    assert task.is_success(batch[5:6], batch[5]).all()


@pytest.mark.parametrize(
    ("env_id", "body", "columns"),
    [("wm/TwoRoom-v0", "agent", (0, 1)), ("wm/Push-v0", "block", (0, 1)), ("wm/Push-v0", "pusher", (5, 6))],
)
def test_task_coords_match_simulator(
    env_id: str, body: str, columns: tuple[int, int], make_env: MakeEnv
) -> None:
    env = make_env(env_id)
    task = _task(env)
    env.reset(seed=4)
    for act in _actions(10, seed=4):
        env.step(act)
    coords = task.state_to_task_coords(task.get_state())
    np.testing.assert_allclose(coords[list(columns)], task.data.body(body).xpos[:2], atol=1e-9)


def test_reacher_fingertip_matches_simulator(make_env: MakeEnv) -> None:
    env = make_env("wm/Reacher-v0")
    task = _task(env)
    env.reset(seed=5)
    for act in _actions(10, seed=5):
        env.step(act)
        coords = task.state_to_task_coords(task.get_state())
        np.testing.assert_allclose(coords[4:6], task.data.site("fingertip").xpos[:2], atol=1e-9)
        q = task.data.qpos
        np.testing.assert_allclose(coords[:4], [np.cos(q[0]), np.sin(q[0]), np.cos(q[1]), np.sin(q[1])])


def test_push_success_needs_position_and_angle(make_env: MakeEnv) -> None:
    env = make_env("wm/Push-v0")
    task = _task(env)
    env.reset(seed=6)
    goal = task.goal_state
    shifted, turned = goal.copy(), goal.copy()
    shifted[0] += 2 * task.success_threshold
    turned[2] += 2 * task.success_angle_threshold
    assert not task.is_success(np.stack([shifted, turned]), goal).any()
    near = goal.copy()
    near[0] += 0.5 * task.success_threshold
    near[2] += 0.5 * task.success_angle_threshold + 2 * np.pi  # yaw error is wrapped
    assert task.is_success(near, goal)


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_reset_options_and_errors(env_id: str, make_env: MakeEnv) -> None:
    env = make_env(env_id)
    task = _task(env)
    env.reset(seed=0)
    init, goal = task.get_state(), task.goal_state
    env.reset(seed=123, options={"init_state": goal, "goal_state": init})
    np.testing.assert_array_equal(task.get_state(), goal)
    np.testing.assert_array_equal(task.goal_state, init)
    with pytest.raises(ValueError, match="Unknown reset options"):
        env.reset(options={"goal": goal})
    with pytest.raises(ValueError, match="expected"):
        task.set_state(goal[:-1])
    with pytest.raises(ValueError, match="state_dim"):
        task.goal_distance(np.zeros((4, task.state_dim + 1)), goal)
    with pytest.raises(ValueError, match="image_size"):
        gymnasium.make(env_id, image_size=1000)


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_action_clipping_and_repeat(env_id: str, make_env: MakeEnv) -> None:
    env, twin, macro = make_env(env_id), make_env(env_id), make_env(env_id, action_repeat=3)
    for e in (env, twin, macro):
        e.reset(seed=11)
    act = np.array([5.0, -0.4], np.float32)
    env.step(act)
    twin.step(np.clip(act, -1, 1))
    np.testing.assert_array_equal(_task(env).get_state(), _task(twin).get_state())
    assert _task(macro).control_dt == pytest.approx(3 * _task(twin).control_dt)
    macro.step(act)
    twin.step(act)
    twin.step(act)
    np.testing.assert_array_equal(_task(macro).get_state(), _task(twin).get_state())


# Geoms that carry the task state, and the least extent (px at 64x64) each must cover on screen.
VISIBLE = {
    "wm/TwoRoom-v0": {("agent",): 11},
    "wm/Reacher-v0": {("link1",): 12, ("link2",): 10, ("fingertip",): 8},
    "wm/Push-v0": {("pusher",): 11, ("block_bar", "block_stem"): 20},
}


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_task_objects_are_plainly_visible(env_id: str, make_env: MakeEnv) -> None:
    env = make_env(env_id)
    task = _task(env)
    env.reset(seed=0)
    state = task.get_state()
    full = task.render_state(state).astype(int)  # (64, 64, 3)
    colours = []
    for names, min_extent in VISIBLE[env_id].items():
        ids = [task.model.geom(n).id for n in names]
        saved = task.model.geom_rgba[ids].copy()
        task.model.geom_rgba[ids, 3] = 0.0  # hide these geoms
        hidden = task.render_state(state).astype(int)
        task.model.geom_rgba[ids] = saved
        mask = np.abs(full - hidden).sum(-1) > 60  # (64, 64) pixels showing the object clearly
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0, f"{names} not visible"
        extent = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
        assert extent >= min_extent, f"{names} spans only {extent}px"
        colours.append(full[mask].mean(0))
    for i in range(len(colours)):
        for j in range(i + 1, len(colours)):
            assert np.abs(colours[i] - colours[j]).sum() > 60, "task objects share a colour"


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
@pytest.mark.parametrize("name", POLICY_NAMES)
def test_policies_stay_in_bounds(env_id: str, name: str, make_env: MakeEnv) -> None:
    env = make_env(env_id)
    policy = make_policy(name, env, np.random.default_rng(0))
    obs, _ = env.reset(seed=0)
    policy.reset()
    for _ in range(60):
        act = policy(obs)
        assert act.dtype == np.float32 and act.shape == (2,)
        assert env.action_space.contains(act)
        obs, *_ = env.step(act)
    with pytest.raises(ValueError, match="Unknown policy"):
        make_policy("greedy", env, np.random.default_rng(0))


def _explore(env: gymnasium.Env, seed: int, steps: int) -> np.ndarray:
    """Task coordinates (steps + 1, k) of one exploration episode."""
    task = _task(env)
    policy = make_policy("explore", env, np.random.default_rng(seed))
    obs, _ = env.reset(seed=seed)
    policy.reset()
    coords = [task.state_to_task_coords(task.get_state())]
    for _ in range(steps):
        obs, *_ = env.step(policy(obs))
        coords.append(task.state_to_task_coords(task.get_state()))
    return np.stack(coords)


def test_tworoom_explore_crosses_the_door(make_env: MakeEnv) -> None:
    env = make_env("wm/TwoRoom-v0")
    crossings = [int(np.sum(np.diff(np.sign(_explore(env, seed, 200)[:, 0])) != 0)) for seed in range(3)]
    assert all(c >= 1 for c in crossings), crossings


def test_reacher_explore_covers_workspace(make_env: MakeEnv) -> None:
    env = make_env("wm/Reacher-v0")
    tips = np.concatenate([_explore(env, seed, 150)[:, 4:6] for seed in range(2)])  # (N, 2)
    hist, _, _ = np.histogram2d(tips[:, 0], tips[:, 1], bins=6, range=[[-1, 1], [-1, 1]])
    assert (hist > 0).sum() >= 18, hist  # the reachable annulus touches 32 of the 36 cells
    angles = np.arctan2(tips[:, 1], tips[:, 0])
    assert np.ptp(angles) > 4.0


def test_push_explore_moves_the_block(make_env: MakeEnv) -> None:
    env = make_env("wm/Push-v0")
    for seed in range(2):
        coords = _explore(env, seed, 150)
        travel = np.abs(np.diff(coords[:, :2], axis=0)).sum()
        turn = np.abs(np.diff(np.unwrap(coords[:, 2]))).sum()
        assert travel > 0.5 and turn > 0.5, (seed, travel, turn)


def _speeds(env: gymnasium.Env, seed: int, steps: int, **kwargs: Any) -> np.ndarray:
    """Joint speeds (steps,) of one exploration episode with explorer options ``kwargs``."""
    task = _task(env)
    policy = make_policy("explore", env, np.random.default_rng(seed), kwargs)
    obs, _ = env.reset(seed=seed)
    policy.reset()
    out = []
    for _ in range(steps):
        obs, *_ = env.step(policy(obs))
        out.append(np.linalg.norm(task.qvel(task.get_state())))
    return np.asarray(out)


@pytest.mark.parametrize("env_id", ["wm/TwoRoom-v0", "wm/Reacher-v0"])
def test_explore_rests_at_targets(env_id: str, make_env: MakeEnv) -> None:
    """Goals are images at rest, so exploration must show the agent settling: rest_prob controls it."""
    env = make_env(env_id)
    still = {p: np.mean([(_speeds(env, s, 150, rest_prob=p) < 0.1).mean() for s in range(2)]) for p in (0.0, 1.0)}
    assert still[1.0] > still[0.0] + 0.05, still
    with pytest.raises(ValueError, match="rest_prob"):
        make_policy("explore", env, np.random.default_rng(0), {"rest_prob": 2.0})
    with pytest.raises(ValueError, match="policy_kwargs"):
        make_policy("explore", env, np.random.default_rng(0), {"no_such_option": 1})
    with pytest.raises(ValueError, match="takes no options"):
        make_policy("random", env, np.random.default_rng(0), {"rest_prob": 0.5})
