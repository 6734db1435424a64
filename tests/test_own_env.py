"""The environment contract (envs/contract.py) and the generic adapter (wm/GymGeneric-v0) on an env that is not
MuJoCo: docs/own_env.md's numpy dot, written to a temporary folder from the page's own code blocks, run end to end
through the real scripts (collect -> pretrain -> train_predictor -> benchmark with the random floor and the expert
ceiling), plus unit tests of the contract, the hooks, the goal image and the errors."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
import yaml

import envs
from envs.contract import GOAL_ENV_MEMBERS, check_env, describe_missing, implements, missing_members
from envs.generic import GENERIC_ID, GenericGoalEnv, area_resize_matrix
from envs.policies import make_policy
from planners.cem import CEMPlanner
from worldmodel.data import TrajectoryFile
from worldmodel.data.collect import CollectConfig, collect
from worldmodel.eval.agents import ExpertAgent, OracleAgent, RandomAgent
from worldmodel.eval.closed_loop import EvalSettings, run_closed_loop, summarize
from worldmodel.eval.episodes import EnvBatch, env_episode_specs

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "own_env.md"

# The doc's commands at a tiny budget: values replaced by key, missing keys appended.
TINY: dict[str, dict[str, str]] = {
    "collect.py": {"episodes": "6", "episode_length": "24"},
    "pretrain.py": {"train.steps": "3", "train.batch_size": "4", "train.eval_every": "1000", "train.log_every": "1",
                    "device": "cpu"},
    "train_predictor.py": {"train.steps": "8", "train.batch_size": "8", "train.eval_every": "4",
                           "train.val_clips": "8", "train.ckpt_every": "4", "device": "cpu"},
    "benchmark.py": {"seeds": "[0]", "episodes": "4", "offset": "6", "max_steps": "10", "planner.num_samples": "8",
                     "planner.iterations": "2", "eval.num_envs": "4", "eval.video_episodes": "0", "device": "cpu"},
    "pipeline.py": {"collect.episodes": "6", "collect.episode_length": "24", "collect.workers": "1",
                    "pretrain.train.steps": "3", "pretrain.train.batch_size": "4", "predictor.train.steps": "8",
                    "predictor.train.batch_size": "8", "++predictor.train.eval_every": "4",
                    "++predictor.train.val_clips": "8", "predictor.metric.steps": "5",
                    "predictor.metric.batch_size": "16", "evaluate.episodes": "2", "evaluate.eval.max_steps": "4",
                    "evaluate.eval.num_envs": "2", "evaluate.planner.num_samples": "8",
                    "evaluate.planner.iterations": "2", "device": "cpu"},
}

# A second user env for the error and resampling tests: renders whatever `frame` says, at 96 x 80.
ODD_ENV = '''
import gymnasium
import numpy as np
from gymnasium import spaces


class Odd(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode=None, frame="rgb"):
        self.frame, self.x = frame, np.zeros(1)
        self.action_space = spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = np.zeros(1)
        return self.x.copy(), {}

    def step(self, action):
        self.x = self.x + np.asarray(action, dtype=np.float64)
        return self.x.copy(), 0.0, False, False, {}

    def render(self):
        img = np.full((96, 80, 3), 40, np.uint8)
        if self.frame == "gray":
            return img[..., 0]
        if self.frame == "float":
            return img / 255.0
        return img


gymnasium.register(id="odd/Odd-v0", entry_point=Odd)


def get_state(env):
    return env.x.copy()


def set_state(env, state):
    env.x = np.array(state, dtype=np.float64)


def forgetful_set(env, state):
    pass
'''


def doc_files() -> dict[str, str]:
    """docs/own_env.md's code blocks whose first line is ``# <path>: ...``, as {path: code}."""
    out = {}
    for code in re.findall(r"```(?:python|yaml)\n(.*?)```", DOC.read_text(), re.S):
        m = re.match(r"# (\S+\.(?:py|yaml)):", code)
        if m:
            out[m.group(1)] = code
    return out


def doc_commands() -> list[list[str]]:
    """The page's command block of the generic example, one argv per command (the PYTHONPATH export skipped)."""
    block = next(b for b in re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S) if "dot_configs" in b)
    cmds = []
    for line in block.strip().splitlines():
        if line.startswith("export "):
            assert line.startswith("export PYTHONPATH=$PWD"), line
            continue
        cmds.append(shlex.split(line, comments=True))
    return cmds


def tiny(cmd: list[str]) -> list[str]:
    """``python scripts/<x>.py ...`` -> this interpreter on the repo's script, with TINY's values."""
    assert cmd[0] == "python" and cmd[1].startswith("scripts/"), cmd
    script, over = cmd[1], dict(TINY[Path(cmd[1]).name])
    args = []
    for arg in cmd[2:]:
        key = arg.split("=", 1)[0]
        args.append(f"{key}={over.pop(key)}" if "=" in arg and key in over else arg)
    return [sys.executable, str(ROOT / script), *args, *(f"{k}={v}" for k, v in over.items())]


@pytest.fixture(scope="module")
def dot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the doc's dot_env.py, dot_configs/env/dot.yaml and check_dot.py, plus odd_env.py."""
    root = tmp_path_factory.mktemp("own_env")
    files = doc_files()
    assert {"dot_env.py", "dot_configs/env/dot.yaml", "check_dot.py"} <= set(files), sorted(files)
    for rel, code in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(code)
    (root / "odd_env.py").write_text(ODD_ENV)
    return root


@pytest.fixture
def user_code(dot_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The folder on sys.path, as a user's PYTHONPATH would put it."""
    monkeypatch.syspath_prepend(str(dot_dir))
    yield dot_dir


def dot_kwargs(dot_dir: Path, **over: Any) -> dict[str, Any]:
    """The doc's dot.yaml kwargs (without the TimeLimit), overridable."""
    kw = yaml.safe_load((dot_dir / "dot_configs" / "env" / "dot.yaml").read_text())["kwargs"]
    kw.pop("max_episode_steps")
    kw.update(over)
    return kw


def make_dot(dot_dir: Path, **over: Any) -> GenericGoalEnv:
    env = gymnasium.make(GENERIC_ID, disable_env_checker=True, **dot_kwargs(dot_dir, **over)).unwrapped
    assert isinstance(env, GenericGoalEnv)
    return env


def subprocess_env(dot_dir: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{dot_dir}", "OMP_NUM_THREADS": "1"}


# ----------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("env_id", [*envs.ENV_IDS, "wm/GymAdapter-v0", GENERIC_ID])
def test_every_env_kind_implements_the_contract(env_id: str, user_code: Path) -> None:
    if env_id == "wm/GymAdapter-v0":
        kw = yaml.safe_load((ROOT / "configs" / "env" / "gym_reacher.yaml").read_text())["kwargs"]
        kw.pop("max_episode_steps")
    elif env_id == GENERIC_ID:
        kw = dot_kwargs(user_code, simulator=True)
    else:
        kw = {}
    env = gymnasium.make(env_id, disable_env_checker=True, **{**kw, "image_size": 32})
    check_env(env, capabilities=("simulator", "task_coords"))  # runs it: reset, step, set_state, goal image, metrics
    assert implements(env) and implements(env, "simulator") and implements(env, "task_coords")
    assert implements(env, "expert") == (env_id == GENERIC_ID)  # only the dot has a user expert
    env.close()


def test_contract_names_what_is_missing_and_the_fix() -> None:
    class Half:
        action_space = state_dim = proprio_dim = success_threshold = control_dt = None

        def reset(self) -> None: ...

    problems = describe_missing(Half(), GOAL_ENV_MEMBERS)
    assert missing_members(Half(), GOAL_ENV_MEMBERS) == [
        "step", "get_state", "set_state", "goal_state", "goal_pixels", "goal_distance", "is_success", "close"]
    assert len(problems) == 8 and all(p.startswith("Half has no '") for p in problems)
    with pytest.raises(ValueError, match=r"Half has no 'goal_pixels' \(property, goal image \(H, W, 3\) uint8\): "
                                         r"render the goal state without touching the episode"):
        check_env(Half())
    with pytest.raises(ValueError, match="unknown capability 'simulater'"):
        implements(Half(), "simulater")


def test_contract_check_catches_a_state_hook_that_loses_the_state(user_code: Path) -> None:
    env = gymnasium.make(GENERIC_ID, gym_id="odd_env:odd/Odd-v0", image_size=16, disable_env_checker=True,
                         state={"get": "odd_env:get_state", "set": "odd_env:forgetful_set"})
    with pytest.raises(ValueError, match=r"set_state\(s\) then get_state\(\) does not return s"):
        check_env(env)
    env.close()


def test_env_batch_refuses_an_env_without_the_contract() -> None:
    with pytest.raises(ValueError, match=r"cannot be evaluated.*PendulumEnv has no 'state_dim'.*'goal_pixels'"):
        EnvBatch("Pendulum-v1", {}, 1)


# ----------------------------------------------------------------------------- the generic adapter


def test_hooks_round_trip_and_replay(user_code: Path) -> None:
    env = make_dot(user_code)
    obs, info = env.reset(seed=3)
    assert env.state_dim == 2 and env.proprio_dim == 2 and env.action_dim == 2
    assert obs["pixels"].shape == (64, 64, 3) and obs["pixels"].dtype == np.uint8
    np.testing.assert_array_equal(obs["proprio"], env.get_state().astype(np.float32))
    assert env.task_coord_names == ("x", "y") and env.control_dt == pytest.approx(0.1)  # 1 / render_fps
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (8, 2))
    start = env.get_state()
    traj = [env.step(a)[0]["pixels"] for a in acts]
    end = env.get_state()
    env.set_state(start)  # through the user's set hook
    np.testing.assert_array_equal(env.get_state(), start)
    replay = [env.step(a)[0]["pixels"] for a in acts]
    np.testing.assert_array_equal(env.get_state(), end)
    np.testing.assert_array_equal(np.stack(replay), np.stack(traj))
    # reset options start at a stored state with a stored goal; distances are vectorised
    env.reset(seed=9, options={"init_state": end, "goal_state": start})
    np.testing.assert_array_equal(env.get_state(), end)
    np.testing.assert_array_equal(env.goal_state, start)
    d = env.goal_distance(np.stack([start, end])[None].repeat(3, 0), start)  # (3, 2)
    assert d.shape == (3, 2) and d[0, 0] == 0 and d[0, 1] == pytest.approx(np.linalg.norm(end - start))
    env.close()


def test_goal_image_does_not_disturb_the_episode(user_code: Path) -> None:
    env, twin = make_dot(user_code), make_dot(user_code)
    obs, _ = env.reset(seed=5)
    twin.reset(seed=5)
    acts = np.random.default_rng(1).uniform(-1, 1, (10, 2))
    for a in acts[:5]:
        env.step(a)
        twin.step(a)
    before, current = env.get_state(), env.get_obs()["pixels"]
    goal_img = env.goal_pixels  # rendered on the scratch copy
    np.testing.assert_array_equal(env.get_state(), before)
    np.testing.assert_array_equal(env.get_obs()["pixels"], current)
    assert not np.array_equal(goal_img, current)
    np.testing.assert_array_equal(goal_img, env.render_state(env.goal_state))
    np.testing.assert_array_equal(env.render_state(before), current)
    for a in acts[5:]:
        o1, *_ = env.step(a)
        o2, *_ = twin.step(a)
        np.testing.assert_array_equal(o1["pixels"], o2["pixels"])
    np.testing.assert_array_equal(env.get_state(), twin.get_state())
    env.close()
    twin.close()


def test_actions_are_mapped_and_renders_resized(user_code: Path) -> None:
    env = gymnasium.make(GENERIC_ID, gym_id="odd_env:odd/Odd-v0", image_size=32, disable_env_checker=True,
                         state={"get": "odd_env:get_state", "set": "odd_env:set_state"},
                         goal={"kind": "rollout", "steps": 4, "hold": 2}).unwrapped
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (32, 32, 3) and np.all(obs["pixels"] == 40)  # 96 x 80 averaged down, flat stays
    np.testing.assert_array_equal(env.action_to_env(np.array([-1.0, 0.5, 3.0])[:, None]), [[-2.0], [1.0], [2.0]])
    np.testing.assert_allclose(env.env_to_action(env.action_to_env(np.array([[0.3]]))), [[0.3]])
    env.set_state(np.zeros(1))
    env.step(np.array([0.5]))
    np.testing.assert_allclose(env.get_state(), [1.0])  # 0.5 in [-1, 1] -> 1.0 in the env's [-2, 2]
    assert env.goal_kind == "rollout" and abs(env.goal_state[0]) <= 8.0  # 4 held random steps of at most 2
    m = area_resize_matrix(96, 32)  # (32, 96): each output row averages 3 source rows
    np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(m[0, :3], 1 / 3, rtol=1e-6)
    env.close()


@pytest.mark.parametrize(
    "over, words",
    [
        ({"state": None}, ["state hooks are missing", "env.kwargs.state={get:", "docs/own_env.md"]),
        ({"state": {"get": "odd_env:get_state"}}, ["state hooks are missing"]),
        ({"state": {"get": "odd_env", "set": "odd_env:set_state"}}, ["state.get='odd_env' must be an import path"]),
        ({"state": {"get": "odd_env:nope", "set": "odd_env:set_state"}}, ["state.get", "no callable 'nope'"]),
        ({"state": {"get": "no_such_mod:f", "set": "odd_env:set_state"}}, ["cannot import module 'no_such_mod'"]),
        ({"gym_kwargs": {"frame": "gray"}}, ["render() returned uint8 array of shape (96, 80)", "(H, W, 3) uint8"]),
        ({"gym_kwargs": {"frame": "float"}}, ["render() returned float64 array", "(H, W, 3) uint8"]),
        ({"gym_id": "odd_env:odd/Nope-v0"}, ["gym_id='odd_env:odd/Nope-v0'", "cannot be made"]),
        ({"gym_id": "CartPole-v1"}, ["action space Discrete(2) is not a 1-D Box"]),
        ({"success": {"indices": [3]}}, ["success.indices=[3] is out of range for a state of 1 entries"]),
        ({"goal": {"kind": "function"}}, ["goal.kind=function needs goal.function"]),
        ({"expert": "odd_env:missing"}, ["expert='odd_env:missing'", "no callable 'missing'"]),
    ],
)
def test_clear_errors(user_code: Path, over: dict[str, Any], words: list[str]) -> None:
    kw = {"gym_id": "odd_env:odd/Odd-v0", "image_size": 16,
          "state": {"get": "odd_env:get_state", "set": "odd_env:set_state"}, **over}
    with pytest.raises(ValueError) as exc:
        gymnasium.make(GENERIC_ID, disable_env_checker=True, **kw)
    assert all(w in str(exc.value) for w in words), str(exc.value)


def test_simulator_matches_step_and_the_oracle_plans_through_it(user_code: Path, tmp_path: Path) -> None:
    env = make_dot(user_code, simulator=True)
    env.reset(seed=1)
    start = env.get_state()
    acts = np.random.default_rng(2).uniform(-1.5, 1.5, (5, 2))  # clipped the same way in step and simulator
    traj = []
    for a in acts:
        env.step(a)
        traj.append(env.get_state())
    pred = env.batch_simulator()(np.stack([start, start]), np.stack([acts, acts]))  # (2, 5, Ds)
    np.testing.assert_array_equal(pred[1], np.stack(traj))
    env.close()
    kw = dot_kwargs(user_code, simulator=True, image_size=16)
    specs = env_episode_specs(2, seed=0)
    settings = EvalSettings(max_steps=12, num_envs=2, video_episodes=0)
    planner = CEMPlanner(torch.full((2,), -1.0), torch.ones(2), horizon=3, num_samples=32, iterations=3, num_elites=4)
    recs = run_closed_loop(OracleAgent(planner), GENERIC_ID, kw, specs, settings, tmp_path, "oracle", progress=False)
    assert all(r["final_distance"] < 0.25 * r["initial_distance"] for r in recs), recs


def test_expert_baseline_and_collection_policies(user_code: Path, tmp_path: Path) -> None:
    kw = dot_kwargs(user_code, image_size=16)
    specs = env_episode_specs(4, seed=0)
    settings = EvalSettings(max_steps=15, num_envs=4, video_episodes=0)
    rnd = RandomAgent(-np.ones(2, np.float32), np.ones(2, np.float32), seed=0)
    s_r = summarize(run_closed_loop(rnd, GENERIC_ID, kw, specs, settings, tmp_path, "random", progress=False))
    s_e = summarize(run_closed_loop(ExpertAgent(), GENERIC_ID, kw, specs, settings, tmp_path, "expert", progress=False))
    assert s_e["success_rate"] == 1.0 and s_r["success_rate"] < 1.0
    assert s_e["final_distance_mean"] < 0.1 < s_r["final_distance_mean"]
    env = gymnasium.make(GENERIC_ID, disable_env_checker=True, **kw)
    env.reset(seed=0)
    quiet = make_policy("expert", env, np.random.default_rng(0))
    noisy = make_policy("expert", env, np.random.default_rng(0), {"noise": 0.3, "random_prob": 0.2})
    a, b = quiet({}), noisy({})
    assert a.dtype == np.float32 and np.all(np.abs(b) <= 1) and not np.array_equal(a, b)
    with pytest.raises(ValueError, match="policy_kwargs \\['nois'\\] do not fit the expert policy"):
        make_policy("expert", env, np.random.default_rng(0), {"nois": 0.3})
    env.close()
    for policy, extra in (("random", {}), ("expert", {"noise": 0.2}), ("explore", {})):
        out = collect(CollectConfig(env_id=GENERIC_ID, env_kwargs=kw, out=str(tmp_path / f"{policy}.h5"), episodes=2,
                                    episode_length=15, workers=1, policy=policy, policy_kwargs=extra), progress=False)
        tf = TrajectoryFile(out, verify=True)
        ep = tf.episode(0)
        assert ep["state"].shape == (16, 2) and ep["pixels"].shape == (16, 16, 16, 3) and tf.meta.policy == policy
        if policy == "expert":  # the expert reaches the episode's goal even with noise
            assert ep["success"][-1] and ep["distance"][-1] < ep["distance"][0]
        tf.close()


def test_oracle_and_expert_are_refused_on_envs_without_them(user_code: Path, tmp_path: Path) -> None:
    reacher = gymnasium.make("wm/Reacher-v0", image_size=16)
    with pytest.raises(ValueError, match=r"policy 'expert' needs an env with an expert policy: ReacherEnv has no "
                                         r"'expert_action'"):
        make_policy("expert", reacher, np.random.default_rng(0))
    reacher.close()
    cmd = [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--config-dir", "dot_configs", "env=dot",
           "methods=[random,oracle]", "episodes=1", f"out_dir={tmp_path / 'eval'}"]
    res = subprocess.run(cmd, cwd=user_code, env=subprocess_env(user_code), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "error: methods contains 'oracle', but env wm/GymGeneric-v0 (GenericGoalEnv) has no batch_simulator" in (
        res.stderr), res.stderr[-2000:]
    assert "methods=[random,expert]" in res.stderr and "env.kwargs.simulator=true" in res.stderr
    assert not list((tmp_path / "eval").glob("episodes_*"))  # refused before any episode


# ----------------------------------------------------------------------------- the worked example, end to end


def test_docs_example_end_to_end(dot_dir: Path) -> None:
    """docs/own_env.md's check and its four commands at a tiny budget: the expert ceiling beats the random floor."""
    env = subprocess_env(dot_dir)
    res = subprocess.run([sys.executable, "check_dot.py"], cwd=dot_dir, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    cmds = doc_commands()
    assert [Path(c[1]).name for c in cmds] == ["collect.py", "pretrain.py", "train_predictor.py", "benchmark.py"]
    for cmd in cmds:
        res = subprocess.run(tiny(cmd), cwd=dot_dir, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, f"{cmd[1]}: {res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    tf = TrajectoryFile(dot_dir / "data" / "dot.h5")
    assert tf.num_episodes == 6 and tf.meta.env_id == GENERIC_ID and tf.meta.policy == "random"
    tf.close()
    out = dot_dir / "outputs" / "dot_benchmark"
    result = json.loads((out / "benchmark.json").read_text())
    table = result["table"]
    assert list(table) == ["world_model", "random", "expert"] and result["methods"] == ["random", "expert"]
    assert list(table["random"]) == ["latent", "latent_proprio"]
    for row in table.values():
        for c in row.values():
            assert c["episodes"] == 4 and 0.0 <= c["success"] <= 1.0 and 0.0 <= c["first_hit"] <= 1.0
    floor, ceiling = table["random"]["latent"]["success"], table["expert"]["latent"]["success"]
    assert ceiling == 1.0 and floor < ceiling
    md = (out / "benchmark.md").read_text()
    assert "| expert (user policy) |" in md and "| random |" in md and "| world_model |" in md
    assert "the ceiling where no simulator exists" in md


def test_docs_pipeline_on_the_users_env(dot_dir: Path) -> None:
    """docs/own_env.md's main-job command: --config-dir reaches every stage, the expert stands in for the oracle, and
    the report names the env and heads with the copy-last warning this tiny predictor earns."""
    block = next(b for b in re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S) if "scripts/pipeline.py" in b)
    cmd = next(shlex.split(line) for line in block.splitlines() if "scripts/pipeline.py" in line)
    res = subprocess.run(tiny(cmd), cwd=dot_dir, env=subprocess_env(dot_dir), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    root = dot_dir / "runs" / "dot_pipeline"
    assert "hydra.searchpath=[file://" in res.stdout and "env=dot" in res.stdout
    summary = json.loads(next(root.glob("evaluate-*/summary.json")).read_text())
    assert summary["env_id"] == GENERIC_ID and set(summary["methods"]) == {"world_model", "random_init", "random",
                                                                           "expert"}
    report = (root / "report.md").read_text()
    assert "| expert (user policy) |" in report and "does not beat copy-last" in report.split("## ")[0]
