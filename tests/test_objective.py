"""The planning objective (worldmodel/planning): term arithmetic, composition, settings, and every shipped
planner config planning through a tiny trained world model with it (the gradient planner through real
gradients of the predictor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_evaluate import ENV, ROOT, tiny_world_model

from worldmodel.planning import (
    ActionPenalty,
    LatentDistance,
    LatentDynamics,
    Objective,
    ObjectiveConfig,
    ProprioDistance,
    Rollout,
    Target,
    TaskDistance,
    build_objective,
    cost_function,
)
from worldmodel.planning.config import compose_objective, refuse_moved_agent_keys

PLANNERS = sorted(p.stem for p in (ROOT / "configs" / "planner").glob("*.yaml"))


@pytest.mark.parametrize("kind", ["l1", "l2"])
@pytest.mark.parametrize("steps", ["last", "all"])
def test_latent_distance_arithmetic(kind: str, steps: str) -> None:
    """Mean |diff| or diff^2 over tokens and channels, at the last step or averaged over the horizon."""
    pred = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64)  # (B, S, H, N, D)
    goal = torch.randn(2, 5, 6, dtype=torch.float64)  # (B, N, D)
    diff = (pred - goal[:, None, None]).numpy()
    per = np.abs(diff).mean((-1, -2)) if kind == "l1" else (diff**2).mean((-1, -2))  # (B, S, H)
    want = per[..., -1] if steps == "last" else per.mean(-1)
    got = LatentDistance(kind, steps)(Rollout(actions=torch.zeros(2, 3, 4, 2), latents=pred), Target(latents=goal))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    # A candidate that ends on the goal costs 0 at its last step.
    pred[:, 1, -1] = goal
    at_goal = LatentDistance(kind, "last")(Rollout(torch.zeros(2, 3, 4, 2), latents=pred), Target(latents=goal))
    assert torch.all(at_goal[:, 1] == 0) and torch.all(at_goal[:, [0, 2]] > 0)


def test_latent_distance_in_the_encoders_space_undoes_the_standardisation() -> None:
    """space=encoder scores the encoder's own pooled latents: the distance between denormalised latents."""
    wm = tiny_world_model()
    n, d = wm.latent_std.shape
    wm.latent_std.copy_(torch.rand(n, d) * 3 + 0.1)  # channels of very different spread
    wm.latent_mean.copy_(torch.randn(n, d))
    raw_pred, raw_goal = torch.randn(2, 3, 4, n, d), torch.randn(2, n, d)  # encoder-space latents
    roll = Rollout(actions=torch.zeros(2, 3, 4, 2), latents=wm.normalize_latents(raw_pred))
    target = Target(latents=wm.normalize_latents(raw_goal))
    cfg = ObjectiveConfig.from_dict({"latent": {"space": "encoder", "steps": "all"}})
    obj = build_objective(cfg, latent_std=wm.latent_std)
    want = LatentDistance("l1", "all")(Rollout(roll.actions, latents=raw_pred), Target(latents=raw_goal))
    torch.testing.assert_close(obj(roll, target), want, rtol=1e-4, atol=1e-5)
    assert "LatentDistance(l1, all, encoder)" in obj.describe()
    # the default space is the model's standardised latents, which ranks candidates differently here
    default = build_objective(ObjectiveConfig.from_dict({"latent": {"steps": "all"}}), latent_std=wm.latent_std)
    assert not torch.allclose(default(roll, target), want)
    with pytest.raises(ValueError, match="needs the world model's latent_std"):
        build_objective(cfg)
    with pytest.raises(ValueError, match="objective.latent.space must be one of"):
        ObjectiveConfig.from_dict({"latent": {"space": "raw"}})
    with pytest.raises(ValueError, match="pass the world model's latent_std"):
        LatentDistance(scale=torch.ones(n + 1, d))(roll, target)


def test_objective_is_the_weighted_sum_and_drops_zero_weights() -> None:
    acts = torch.randn(2, 4, 3, 2)
    roll = Rollout(actions=acts, latents=torch.randn(2, 4, 3, 5, 6))
    target = Target(latents=torch.randn(2, 5, 6))
    lat, eff = LatentDistance(), ActionPenalty()
    total = Objective([(2.0, lat), (0.5, eff)])(roll, target)
    torch.testing.assert_close(total, 2.0 * lat(roll, target) + 0.5 * acts.pow(2).mean((-1, -2)))
    # A switched-off proprio term never asks for the proprio the rollout does not have.
    only = Objective([(1.0, lat), (0.0, ProprioDistance())])
    torch.testing.assert_close(only(roll, target), lat(roll, target))
    assert not only.needs(ProprioDistance) and "LatentDistance(l1, last)" in only.describe()
    with pytest.raises(ValueError, match="latent kind must be one of"):
        LatentDistance("cos")


def test_task_distance_reads_the_envs_metric() -> None:
    """TaskDistance: the env's goal distance per env over (S, H) simulated states; mean over H or last step."""
    states = np.random.default_rng(0).normal(size=(2, 3, 4, 6))  # (B, S, H, Ds)
    goals = np.random.default_rng(1).normal(size=(2, 6))

    def metric(s: np.ndarray, g: np.ndarray) -> np.ndarray:
        return np.linalg.norm(s[..., :2] - g[:2], axis=-1)

    roll = Rollout(actions=torch.zeros(2, 3, 4, 2), states=states)
    got = TaskDistance(metric, "all")(roll, Target(states=goals))
    want = np.stack([metric(states[i], goals[i]) for i in range(2)]).mean(-1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    assert TaskDistance(metric, "last")(roll, Target(states=goals)).shape == (2, 3)


def test_cost_function_builds_a_graph_only_for_actions_that_require_grad() -> None:
    """Sampling planners get no autograd graph even when the model's weights require grad; the gradient planner's
    actions get real gradients through the predictor."""
    wm = tiny_world_model()
    wm.predictor.requires_grad_(True)  # as right after training, before WorldModel.load freezes it
    obs = wm.encode(torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), torch.randn(2, 4))
    dyn = LatentDynamics(wm, obs["latents"][:, None], obs["proprio"][:, None])  # type: ignore[index]
    cost = cost_function(dyn, Objective([(1.0, LatentDistance("l1", "all"))]), Target(latents=torch.randn(2, 4, 16)))
    acts = torch.rand(2, 5, 3, 2) * 2 - 1
    plain = cost(acts)
    assert plain.shape == (2, 5) and not plain.requires_grad
    leaf = acts.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(cost(leaf).sum(), leaf)
    assert grad.abs().sum() > 0
    torch.testing.assert_close(cost(leaf).detach(), plain)
    # Each candidate's cost is its own (batched rollout == one candidate at a time).
    torch.testing.assert_close(cost(acts[:, 2:3])[:, 0], plain[:, 2], atol=1e-5, rtol=1e-4)


def test_objective_settings_are_checked_with_names() -> None:
    cfg = ObjectiveConfig.from_dict(compose_objective("latent_proprio", ROOT / "configs"))
    assert cfg.proprio.weight == 1.0 and cfg.latent.kind == "l1"
    assert ObjectiveConfig.from_dict(compose_objective("latent", ROOT / "configs")).proprio.weight == 0.0
    obj = build_objective(cfg)
    assert obj.needs(ProprioDistance) and obj.needs(LatentDistance) and not obj.needs(ActionPenalty)
    for raw, match in (
        ({"latent": {"knd": "l1"}}, r"unknown objective.latent keys \['knd'\]"),
        ({"proprio": {"readout": "mlp"}}, "objective.proprio.readout must be one of"),
        ({"latent": {"weight": 0.0}}, "every objective weight is 0"),
        ({"action": {"weight": -1.0}}, "must be >= 0"),
    ):
        with pytest.raises(ValueError, match=match):
            ObjectiveConfig.from_dict(raw)
    with pytest.raises(ValueError, match="agent.cost_kind -> objective.latent.kind"):
        refuse_moved_agent_keys({"cost_kind": "l2", "execute_steps": 1})
    with pytest.raises(ValueError, match="choose one of \\['latent', 'latent_proprio'\\]"):
        compose_objective("latnet", ROOT / "configs")
    with pytest.raises(ValueError, match="probe readout"):
        build_objective(ObjectiveConfig.from_dict({"probe": {"weight": 1.0}}))


# ------------------------------------------------------------------------------------ planners through the agent


@pytest.fixture(scope="module")
def trained_world_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """tiny_world_model with its predictor trained (teacher forcing, 150 Adam steps) on collected TwoRoom clips."""
    from worldmodel.data.collect import CollectConfig, collect
    from worldmodel.data.reader import TrajectoryFile

    out = tmp_path_factory.mktemp("wmdata") / "d.h5"
    path = collect(CollectConfig(env_id=ENV, out=str(out), episodes=8, episode_length=24, workers=1,
                                 env_kwargs={"image_size": 32}), progress=False)
    wm = tiny_world_model()
    tf = TrajectoryFile(path)
    eps = [tf.episode(i) for i in range(tf.num_episodes)]
    tf.close()
    px = torch.from_numpy(np.stack([e["pixels"] for e in eps])).permute(0, 1, 4, 2, 3)  # (E, T, 3, H, W)
    lat = wm.encode(px)["latents"]  # (E, T, N, D)
    wm.latent_mean.copy_(lat.mean((0, 1)) * wm.latent_std + wm.latent_mean)  # centre the latent space
    lat = wm.encode(px)["latents"]
    prop = wm.normalize_proprio(torch.from_numpy(np.stack([e["proprio"] for e in eps])).float())  # (E, T, P)
    acts = wm.normalize_actions(torch.from_numpy(np.stack([e["actions"] for e in eps])).float())  # (E, T, A)
    opt = torch.optim.Adam(wm.predictor.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        e = torch.randint(0, lat.shape[0], (16,), generator=gen)
        t = torch.randint(0, lat.shape[1] - 5, (16,), generator=gen)
        idx = t[:, None] + torch.arange(5)  # (16, 5)
        z, p, a = lat[e[:, None], idx], prop[e[:, None], idx], acts[e[:, None], idx]
        pz, pp = wm.predictor(z[:, :-1], a[:, :-1], p[:, :-1])
        loss = (pz - z[:, 1:]).abs().mean() + (pp - p[:, 1:]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    wm.predictor.requires_grad_(False)
    return wm.eval(), px[:, 0], px[:, 8], prop[:, 0]


@pytest.mark.parametrize("name", PLANNERS)
def test_every_planner_config_plans_through_the_world_model(name: str, trained_world_model: Any) -> None:
    """Each shipped planner yaml, through the agent's objective on a trained world model, returns a plan whose
    objective is below that of random sequences, for every env (gd: through real predictor gradients)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from worldmodel.eval.assemble import build_planner

    wm, start_px, goal_px, start_prop = trained_world_model
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("evaluate", overrides=[f"planner={name}", "planner.horizon=3"]))
    planner = build_planner(cfg["planner"], wm.action_low, wm.action_high, torch.device("cpu"), 0)  # type: ignore[index]
    b = 4
    obs = wm.encode(start_px[:b], None)["latents"]  # (B, N, D)
    goal = wm.encode(goal_px[:b], None)["latents"]
    dyn = LatentDynamics(wm, obs[:, None], start_prop[:b, None])
    cost = cost_function(dyn, Objective([(1.0, LatentDistance("l1", "last"))]), Target(latents=goal))
    plan = planner.plan(cost, batch_size=b)
    planned = cost(plan.actions[:, None])[:, 0]  # (B,)
    rand = cost(torch.rand(b, 64, 3, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1)  # (B, 64)
    assert torch.all(planned < rand.mean(1)), (planned, rand.mean(1))
    assert torch.all(planned <= rand.quantile(0.1, dim=1)), (planned, rand.quantile(0.1, dim=1))
    assert torch.all(plan.actions >= wm.action_low) and torch.all(plan.actions <= wm.action_high)


def test_gradient_planner_gets_predictor_gradients(trained_world_model: Any) -> None:
    """The gd config's Adam steps see non-zero gradients of the objective through the predictor, and lower it."""
    from planners.gradient import GradientPlanner

    wm, start_px, goal_px, start_prop = trained_world_model
    obs, goal = wm.encode(start_px[:2])["latents"], wm.encode(goal_px[:2])["latents"]
    cost = cost_function(LatentDynamics(wm, obs[:, None], start_prop[:2, None]),
                         Objective([(1.0, LatentDistance("l1", "last"))]), Target(latents=goal))
    norms: list[torch.Tensor] = []

    def spy(actions: torch.Tensor) -> torch.Tensor:
        c = cost(actions)
        if actions.requires_grad:
            norms.append(torch.autograd.grad(c.sum(), actions, retain_graph=True)[0].abs().sum())
        return c

    planner = GradientPlanner(wm.action_low, wm.action_high, horizon=3, num_samples=4, iterations=20)
    result = planner.plan(spy, batch_size=2)
    assert len(norms) == 20 and all(float(n) > 0 for n in norms)
    assert torch.all(result.cost_history[:, -1] < result.cost_history[:, 0])


@pytest.mark.parametrize("name", PLANNERS)
def test_every_planner_config_runs_the_agent_in_closed_loop(name: str, trained_world_model: Any,
                                                            tmp_path: Path) -> None:
    """The closed-loop path a user takes with `planner=<name>` (the gd config used to fail here: no graph)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from worldmodel.eval.agents import LatentPlanningAgent
    from worldmodel.eval.assemble import build_planner
    from worldmodel.eval.closed_loop import EvalSettings, run_closed_loop
    from worldmodel.eval.episodes import env_episode_specs

    wm = trained_world_model[0]
    over = [f"planner={name}", "planner.horizon=2", "planner.iterations=2"]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("evaluate", overrides=over))
    planner = build_planner(cfg["planner"], wm.action_low, wm.action_high, torch.device("cpu"), 0)  # type: ignore[index]
    agent = LatentPlanningAgent(wm, planner, Objective([(1.0, LatentDistance())]), context_frames=2)
    recs = run_closed_loop(agent, ENV, {"image_size": 32}, env_episode_specs(2, seed=0),
                           EvalSettings(max_steps=2, num_envs=2, video_episodes=0), tmp_path, "wm", progress=False)
    assert len(recs) == 2 and all(len(r["distance_curve"]) == 3 for r in recs)
