"""Plan with a trained world model in a gymnasium env, step by step, from Python.

    python examples/plan_in_env.py --world-model runs/example/predictor/world_model.pt [--steps 40] [--tiny]

The env returns {"pixels": (H, W, 3) uint8, "proprio": (P,)} observations and renders its goal image; the world
model takes them as they are (``WorldModel.plan``: encode, imagine candidate action sequences, keep the one whose
last imagined frame is nearest the goal image) and returns the next env actions. Any env that follows
envs/contract.py works, e.g. gymnasium's Reacher through `--env wm/GymAdapter-v0` (configs/env/gym_reacher.yaml).
`--tiny` (or WM_EXAMPLE_TINY=1) uses a small planner budget and few steps.
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def run_episode(world_model: str, env_name: str, steps: int, samples: int, iterations: int, seed: int = 0) -> dict:
    """One episode: plan, execute the first planned step, observe, replan. Returns the distances to the goal."""
    import gymnasium

    import envs  # noqa: F401  (registers the wm/* envs)
    from worldmodel import WorldModel
    from worldmodel.api import env_config
    from worldmodel.config import CEMConfig

    wm = WorldModel.load(world_model)
    trained = (wm.meta or {}).get("env_kwargs") or {}  # the env settings the model was trained with
    cfg = env_config(env_name, **{k: trained[k] for k in ("image_size", "action_repeat") if k in trained})
    env = gymnasium.make(cfg.id, disable_env_checker=True, **cfg.kwargs)
    obs, info = env.reset(seed=seed)
    goal = env.unwrapped.goal_pixels  # (H, W, 3) uint8: the goal is an image, never a state
    planner = CEMConfig(horizon=3, num_samples=samples, iterations=iterations)
    distances = [float(info["distance"])]
    for _ in range(steps):
        for action in wm.plan(obs, goal, planner=planner):  # (frameskip, A_env) env actions
            obs, _, terminated, truncated, info = env.step(action)
        distances.append(float(info["distance"]))
        if terminated or truncated:
            break
    env.close()
    return {"distances": distances, "success": bool(info.get("success"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world-model", required=True, help="world_model.pt (examples/train_on_your_data.py)")
    parser.add_argument("--env", default="tworoom", help="configs/env option or gymnasium id (default tworoom)")
    parser.add_argument("--steps", type=int, default=40, help="planner calls (each executes one planned step)")
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("WM_EXAMPLE_TINY") == "1")
    args = parser.parse_args()
    steps, samples, iterations = (3, 16, 2) if args.tiny else (args.steps, 300, 10)
    result = run_episode(args.world_model, args.env, steps, samples, iterations)
    d = np.round(result["distances"], 3)
    print(f"distance to goal: {d[0]} -> {d[-1]} after {len(d) - 1} plans; success: {result['success']}")


if __name__ == "__main__":
    main()
