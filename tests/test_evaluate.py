"""Closed-loop harness: agents, batched episodes, resumable JSONL, summaries, and the evaluate script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from planners.cem import CEMPlanner
from worldmodel.eval.agents import LatentPlanningAgent, OracleAgent, RandomAgent
from worldmodel.eval.closed_loop import EvalSettings, run_closed_loop, summarize, wilson_interval
from worldmodel.eval.episodes import EpisodeSpec, env_episode_specs
from worldmodel.models.predictor import ActionConditionedPredictor, PredictorConfig
from worldmodel.models.vit import EncoderConfig, VideoViT
from worldmodel.planning import ActionPenalty, LatentDistance, Objective, ReadoutDistance, Rollout, Target
from worldmodel.world_model import WorldModel

ROOT = Path(__file__).resolve().parents[1]
ENV = "wm/TwoRoom-v0"


def near_goal_specs(n: int) -> list[EpisodeSpec]:
    """Same-room start/goal pairs 0.5 apart: solvable in a few steps by a competent planner."""
    import gymnasium

    import envs  # noqa: F401

    env = gymnasium.make(ENV, disable_env_checker=True).unwrapped
    specs = []
    for i in range(n):
        y = -0.4 + 0.25 * i
        specs.append(EpisodeSpec(i, 100 + i, env.make_state([-0.7, y]), env.make_state([-0.2, y]), "test"))
    env.close()
    return specs


def cem(horizon: int = 6, samples: int = 64, iters: int = 3, low: float = -1.0) -> CEMPlanner:
    return CEMPlanner(
        torch.full((2,), low),
        torch.ones(2),
        horizon=horizon,
        num_samples=samples,
        iterations=iters,
        num_elites=8,
    )


def test_wilson_interval() -> None:
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0.25 < hi < 0.35
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and 0.65 < lo < 0.75
    lo, hi = wilson_interval(8, 16)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9


def test_oracle_beats_random_on_near_goals(tmp_path: Path) -> None:
    specs = near_goal_specs(4)
    st = EvalSettings(max_steps=25, num_envs=4, video_episodes=0)
    rnd = run_closed_loop(
        RandomAgent(-np.ones(2), np.ones(2)), ENV, {}, specs, st, tmp_path, "random", progress=False
    )
    orc = run_closed_loop(OracleAgent(cem()), ENV, {}, specs, st, tmp_path, "oracle", progress=False)
    s_r, s_o = summarize(rnd), summarize(orc)
    assert s_o["success_rate"] == 1.0, s_o
    assert s_o["final_distance_mean"] < 0.15 < s_r["final_distance_mean"]
    assert all(r["steps_to_success"] is not None and r["steps_to_success"] <= 25 for r in orc)
    assert s_o["plan_latency_s"]["calls"] == 4 * 25


def test_stop_on_success_ends_episodes_early(tmp_path: Path) -> None:
    specs = near_goal_specs(2)
    st = EvalSettings(max_steps=30, num_envs=2, stop_on_success=True, video_episodes=0)
    recs = run_closed_loop(OracleAgent(cem()), ENV, {}, specs, st, tmp_path, "oracle", progress=False)
    for r in recs:
        assert r["success"] and len(r["distance_curve"]) == r["steps_to_success"] + 1


def test_resume_repeats_the_uninterrupted_run(tmp_path: Path) -> None:
    specs = env_episode_specs(4, seed=3)
    st = EvalSettings(max_steps=6, num_envs=2, video_episodes=0)
    full = run_closed_loop(
        OracleAgent(cem(samples=16, iters=2)), ENV, {}, specs, st, tmp_path / "a", "oracle", progress=False
    )
    # Simulate a kill after the first wave, with a half-written line at the end.
    path = tmp_path / "a" / "episodes_oracle.jsonl"
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 4
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])
    resumed = run_closed_loop(
        OracleAgent(cem(samples=16, iters=2)), ENV, {}, specs, st, tmp_path / "a", "oracle", progress=False
    )
    keys = ("episode", "success", "final_distance", "distance_curve")
    assert [{k: r[k] for k in keys} for r in resumed] == [{k: r[k] for k in keys} for r in full]


def test_results_from_other_settings_are_refused(tmp_path: Path) -> None:
    specs = env_episode_specs(2, seed=0)
    run_closed_loop(
        RandomAgent(-np.ones(2), np.ones(2)),
        ENV,
        {},
        specs,
        EvalSettings(max_steps=3, num_envs=2, video_episodes=0),
        tmp_path,
        "random",
        progress=False,
    )
    with pytest.raises(
        ValueError, match="episodes_random.jsonl was written by an evaluation with other settings"
    ):
        run_closed_loop(
            RandomAgent(-np.ones(2), np.ones(2)),
            ENV,
            {},
            specs,
            EvalSettings(max_steps=4, num_envs=2, video_episodes=0),
            tmp_path,
            "random",
            progress=False,
        )


def latent_only() -> Objective:
    return Objective([(1.0, LatentDistance("l1", "last"))])


def tiny_world_model(image_size: int = 32) -> WorldModel:
    torch.manual_seed(0)
    enc = VideoViT(
        EncoderConfig(img_size=image_size, num_frames=2, tubelet=2, patch=8, dim=16, depth=1, heads=2)
    )
    pred = ActionConditionedPredictor.from_config(
        PredictorConfig(
            latent_dim=16,
            action_dim=2,
            num_tokens=4,
            proprio_dim=4,
            width=32,
            depth=1,
            heads=2,
            max_frames=12,
        )
    )
    return WorldModel(
        enc,
        pred,
        "2x2",
        1,
        2,
        -torch.ones(2),
        torch.ones(2),
        torch.zeros(4, 16),
        torch.ones(4, 16),
        torch.zeros(4),
        torch.ones(4),
        meta={"env_id": ENV, "env_kwargs": {"image_size": image_size}},
    )


def test_latent_planning_agent_runs_batched_with_video(tmp_path: Path) -> None:
    wm = tiny_world_model()
    calls = []

    class CountingCEM(CEMPlanner):
        def plan(self, cost_fn, batch_size, initial_mean=None):  # type: ignore[no-untyped-def]
            calls.append(batch_size)
            return super().plan(cost_fn, batch_size, initial_mean)

    planner = CountingCEM(wm.action_low, wm.action_high, horizon=3, num_samples=8, iterations=2, num_elites=2)
    agent = LatentPlanningAgent(wm, planner, latent_only(), execute_steps=2, context_frames=2)
    specs = env_episode_specs(3, seed=1)
    st = EvalSettings(max_steps=5, num_envs=3, video_episodes=3)
    recs = run_closed_loop(agent, ENV, {"image_size": 32}, specs, st, tmp_path, "world_model", progress=False)
    assert [r["episode"] for r in recs] == [0, 1, 2]
    assert calls == [3, 3, 3]  # one planner call per replanning step, for all three envs at once
    assert all(len(r["distance_curve"]) == 6 for r in recs)
    assert (tmp_path / "video_world_model.mp4").stat().st_size > 1000


def test_action_cost_adds_the_control_effort_term(tmp_path: Path) -> None:
    """objective.action adds weight * mean squared action to each candidate's latent goal cost."""
    wm = tiny_world_model()
    seen: dict[float, torch.Tensor] = {}

    class RecordingCEM(CEMPlanner):
        def plan(self, cost_fn, batch_size, initial_mean=None):  # type: ignore[no-untyped-def]
            acts = torch.linspace(-1, 1, batch_size * 4 * 3 * 2).reshape(batch_size, 4, 3, 2)
            seen[weight] = cost_fn(acts)  # (B, 4)
            return super().plan(cost_fn, batch_size, initial_mean)

    specs = env_episode_specs(2, seed=1)
    st = EvalSettings(max_steps=1, num_envs=2, video_episodes=0)
    for weight in (0.0, 0.5):
        planner = RecordingCEM(wm.action_low, wm.action_high, horizon=3, num_samples=4, iterations=1, num_elites=2)
        objective = Objective([(1.0, LatentDistance()), (weight, ActionPenalty())])
        agent = LatentPlanningAgent(wm, planner, objective)
        run_closed_loop(agent, ENV, {"image_size": 32}, specs, st, tmp_path / str(weight), "wm", progress=False)
    acts = torch.linspace(-1, 1, 2 * 4 * 3 * 2).reshape(2, 4, 3, 2)
    torch.testing.assert_close(seen[0.5] - seen[0.0], 0.5 * acts.pow(2).mean((-1, -2)))


def test_probe_readout_cost_plans_in_task_coordinates(tmp_path: Path) -> None:
    """objective.probe: a ridge readout fitted on labelled frames maps latents to task coords, and the
    ReadoutDistance term is the Euclidean distance of the read-out imagined and goal coords."""
    import gymnasium

    from worldmodel.data.collect import CollectConfig, collect
    from worldmodel.eval.readouts import fit_latent_readout

    data = collect(
        CollectConfig(env_id=ENV, out=str(tmp_path / "d.h5"), episodes=6, episode_length=24, workers=1,
                      env_kwargs={"image_size": 32}),
        progress=False,
    )
    wm = tiny_world_model()
    env = gymnasium.make(ENV, image_size=32, disable_env_checker=True)
    readout = fit_latent_readout(wm, env.unwrapped, str(data), max_frames=120)
    env.close()
    z = torch.randn(2, 5, 3, 4, 16)  # (B, S, H, N, D)
    assert readout(z).shape == (2, 5, 3, 2) and readout(z).dtype == torch.float32
    planner = CEMPlanner(wm.action_low, wm.action_high, horizon=3, num_samples=8, iterations=2, num_elites=2)
    term = ReadoutDistance(readout, "last")
    agent = LatentPlanningAgent(wm, planner, Objective([(1.0, term)]))
    goal = torch.randn(2, 4, 16)
    cost = term(Rollout(actions=torch.zeros(2, 5, 3, 2), latents=z), Target(latents=goal))
    torch.testing.assert_close(cost, (readout(z)[..., -1, :] - readout(goal)[:, None]).norm(dim=-1))
    recs = run_closed_loop(agent, ENV, {"image_size": 32}, env_episode_specs(2, seed=1),
                           EvalSettings(max_steps=2, num_envs=2, video_episodes=0), tmp_path, "wm", progress=False)
    assert len(recs) == 2


def test_evaluate_script_missing_world_model_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "evaluate.py"),
            f"out_dir={tmp_path}",
            f"++world_models.world_model={tmp_path / 'missing.pt'}",
            "episodes=1",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "missing.pt not found" in res.stderr and "train_predictor.py" in res.stderr


def test_evaluate_script_writes_summary_and_plots(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "evaluate.py"),
            f"out_dir={tmp_path}",
            "episodes=2",
            "eval.max_steps=4",
            "eval.num_envs=2",
            "planner.num_samples=16",
            "planner.iterations=2",
            "planner.num_elites=4",
            "planner=cem",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["methods"]) == {"random", "oracle"}
    assert summary["methods"]["oracle"]["episodes"] == 2
    assert (tmp_path / "success.png").exists() and (tmp_path / "distance.png").exists()
    assert "| oracle |" in res.stdout


def test_bad_planner_setting_is_a_value_error() -> None:
    """A wrong planner option reaches the user as the planner's own message (scripts exit 2 on ValueError)."""
    from worldmodel.eval.assemble import build_planner

    cfg = {"_target_": "planners.mppi.MPPIPlanner", "horizon": 3, "temperature_scale": "rel"}
    with pytest.raises(ValueError, match="temperature_scale must be 'absolute' or 'std'"):
        build_planner(cfg, -torch.ones(2), torch.ones(2), torch.device("cpu"), 0)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        Objective([(1.0, LatentDistance()), (-1.0, ActionPenalty())])


def test_oracle_reach_does_not_depend_on_the_last_world_model_loaded() -> None:
    """The oracle plans planner.horizon x frameskip env steps with a frameskip fixed by the settings: the world
    models' common one, or oracle.frameskip; world models that disagree need oracle.frameskip."""
    from worldmodel.eval.assemble import oracle_agent, oracle_frameskip

    assert oracle_frameskip({}, {}) == 1
    assert oracle_frameskip({}, {"a": 2, "b": 2}) == 2
    assert oracle_frameskip({"oracle": {"frameskip": 3}}, {"a": 2, "b": 1}) == 3
    for order in ({"a": 1, "b": 2}, {"b": 2, "a": 1}):
        with pytest.raises(ValueError, match="set oracle.frameskip"):
            oracle_frameskip({}, order)
    with pytest.raises(ValueError, match="oracle.frameskip=0 must be >= 1"):
        oracle_frameskip({"oracle": {"frameskip": 0}}, {})
    cfg = {"env": {"id": ENV, "kwargs": {}}, "planner": {"_target_": "planners.cem.CEMPlanner", "horizon": 5},
           "agent": {"execute_steps": 2}}
    agent = oracle_agent(cfg, -torch.ones(2), torch.ones(2), frameskip=2, graph_default=None)
    assert agent.planner.horizon == 10 and agent.execute_steps == 4


def test_gradient_planner_for_the_oracle_is_refused_before_running(tmp_path: Path) -> None:
    """planner=gd cannot plan through the simulator (no gradients): a clear error naming the fix, nothing run."""
    from worldmodel.eval.evaluate import evaluate

    cfg = {
        "env": {"id": ENV, "kwargs": {"image_size": 32}},
        "planner": {"_target_": "planners.gradient.GradientPlanner", "horizon": 2},
        "methods": ["random", "oracle"],
        "episodes": 1,
        "eval": {"max_steps": 1, "num_envs": 1, "video_episodes": 0},
        "out_dir": str(tmp_path / "out"),
    }
    with pytest.raises(ValueError, match=r"GradientPlanner plans with gradients.*methods=\[random\]"):
        evaluate(cfg, progress=False)
    assert not (tmp_path / "out").exists()
    summary = evaluate({**cfg, "methods": ["random"]}, progress=False)
    assert set(summary["methods"]) == {"random"}


def test_oracle_results_from_other_oracle_settings_are_refused(tmp_path: Path) -> None:
    """oracle.* settings are part of the oracle's results header, so a resumed run never mixes two oracles."""
    from worldmodel.eval.evaluate import evaluate

    cfg = {
        "env": {"id": ENV, "kwargs": {"image_size": 32}},
        "planner": {"_target_": "planners.cem.CEMPlanner", "horizon": 2, "num_samples": 8, "iterations": 1},
        "methods": ["oracle"],
        "episodes": 1,
        "eval": {"max_steps": 1, "num_envs": 1, "video_episodes": 0},
        "out_dir": str(tmp_path / "out"),
        "oracle": {"cost_steps": "all"},
    }
    evaluate(cfg, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        evaluate({**cfg, "oracle": {"cost_steps": "last"}}, progress=False)
