"""agent.dynamics=simulator: candidates simulated in the true physics, their frames encoded by the world model's
encoder, scored by the same latent objective (the representation's ceiling, without predictor error)."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from planners.cem import CEMPlanner
from tests.test_evaluate import ENV, latent_only, tiny_world_model
from worldmodel.config.agent import AgentConfig
from worldmodel.eval.agents import LatentPlanningAgent
from worldmodel.eval.assemble import check_agent_config
from worldmodel.eval.closed_loop import EvalSettings, run_closed_loop
from worldmodel.eval.episodes import env_episode_specs
from worldmodel.planning import LatentDistance, Objective, ProprioDistance, RenderedDynamics


def _env() -> gymnasium.Env:
    return gymnasium.make(ENV, image_size=32, action_repeat=2, disable_env_checker=True)


def test_rendered_latents_are_the_encoded_frames_of_the_simulated_states() -> None:
    """Each candidate's last latent is the encoder's latent of the frame of the state the simulator reaches."""
    env = _env()
    base = env.unwrapped
    env.reset(seed=3)
    wm = tiny_world_model()
    states = np.stack([base.get_state(), base.make_state([0.4, -0.3])])  # (B=2, Ds)
    actions = torch.rand(2, 3, 4, 2) * 2 - 1  # (B, S, H, A)
    encode = lambda px: wm.encode(px)["latents"]  # noqa: E731
    sim = base.batch_simulator()
    for steps, frames in (("last", 1), ("all", 4)):
        out = RenderedDynamics(sim, states, base.render_state, encode, frameskip=1, steps=steps)(actions)
        assert out.latents.shape == (2, 3, frames, 4, 16) and out.states.shape[:3] == (2, 3, 4)
    # b=1, s=2, the last step: render that simulated state by hand and encode it
    end = sim(states[1:2], actions[1, 2:3].double().numpy())[0, -1]  # (Ds,)
    frame = torch.from_numpy(base.render_state(end)).permute(2, 0, 1)[None]  # (1, 3, H, W)
    torch.testing.assert_close(out.latents[1, 2, -1], encode(frame)[0])
    # at frameskip 2 a planner action is 2 env actions concatenated (as the world model is trained and the agent
    # executes): 2 planner steps reach the state of the 4 distinct env actions, in order
    macro = actions.reshape(2, 3, 2, 4)  # (B, S, H=2, 2*A)
    skipped = RenderedDynamics(sim, states, base.render_state, encode, frameskip=2)(macro)
    four = sim(states, actions[:, 0].double().numpy())  # (B, 4, Ds): sample 0's four env actions
    np.testing.assert_allclose(skipped.states[:, 0, -1], four[:, -1])
    np.testing.assert_allclose(skipped.states[:, 0, 0], four[:, 1])
    with pytest.raises(ValueError, match="not 2 env actions"):
        RenderedDynamics(sim, states, base.render_state, encode, frameskip=2)(actions[..., :1])
    env.close()


def test_simulator_dynamics_agent_plans_without_the_predictor(tmp_path: Path) -> None:
    """The agent never calls the predictor, and its costs are the latent distances of rendered frames."""
    wm = tiny_world_model()

    def no_rollout(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("agent.dynamics=simulator must not imagine through the predictor")

    wm.rollout = no_rollout  # type: ignore[method-assign]
    planner = CEMPlanner(wm.action_low, wm.action_high, horizon=2, num_samples=8, iterations=2, num_elites=2)
    agent = LatentPlanningAgent(wm, planner, latent_only(), execute_steps=2, dynamics="simulator")
    st = EvalSettings(max_steps=4, num_envs=2, video_episodes=0)
    recs = run_closed_loop(agent, ENV, {"image_size": 32}, env_episode_specs(2, seed=1), st, tmp_path, "wm",
                           progress=False)
    assert len(recs) == 2 and all(len(r["distance_curve"]) == 5 for r in recs)


def test_simulator_dynamics_refuses_what_it_cannot_score(tmp_path: Path) -> None:
    wm = tiny_world_model()
    planner = CEMPlanner(wm.action_low, wm.action_high, horizon=2, num_samples=8, iterations=1, num_elites=2)
    with_proprio = Objective([(1.0, LatentDistance()), (0.5, ProprioDistance())])
    with pytest.raises(ValueError, match="objective.proprio.weight=0"):
        LatentPlanningAgent(wm, planner, with_proprio, proprio_readout=lambda z: z[..., 0, :4], dynamics="simulator")
    with pytest.raises(ValueError, match="agent.dynamics='imagined' must be one of"):
        AgentConfig(dynamics="imagined")
    with pytest.raises(ValueError, match="must be one of"):
        check_agent_config({"dynamics": "imagined"})
