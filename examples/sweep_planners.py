"""Sweep planners and budgets on one world model from Python, and print one table.

    python examples/sweep_planners.py --world-model runs/example/predictor/world_model.pt [--tiny]

Every (planner, samples x iterations) pair is one closed-loop evaluation (``evaluate_planning``, the same harness
as scripts/evaluate.py) in its own folder under --out; the table is ``worldmodel.eval.sweep.sweep_summary`` over
them (what scripts/sweep_summary.py prints): success with its 95% interval, goal distance and plan latency.
Re-running resumes every finished run. `--tiny` (or WM_EXAMPLE_TINY=1) runs 2 short episodes per cell.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def sweep(world_model: str, out: Path, budgets: list[tuple[int, int]], episodes: int, max_steps: int) -> str:
    """Evaluate CEM, MPPI and iCEM at each (samples, iterations) budget; returns the markdown table."""
    from worldmodel import WorldModel, evaluate_planning
    from worldmodel.api import env_config
    from worldmodel.config import CEMConfig, EvalConfig, ICEMConfig, MPPIConfig
    from worldmodel.eval.sweep import sweep_summary

    trained = (WorldModel.load(world_model).meta or {}).get("env_kwargs") or {}
    env = env_config("tworoom", **{k: trained[k] for k in ("image_size", "action_repeat") if k in trained})
    settings = EvalConfig(max_steps=max_steps, num_envs=episodes, video_episodes=0)
    for schema in (CEMConfig, MPPIConfig, ICEMConfig):
        for samples, iterations in budgets:
            planner = schema(horizon=3, num_samples=samples, iterations=iterations)
            run = out / f"{schema.__name__.removesuffix('Config').lower()}_{samples}x{iterations}"
            evaluate_planning(world_model, env=env, planner=planner, eval=settings, episodes=episodes,
                              methods=[], device="cpu", out_dir=run)
    return sweep_summary(out)["markdown"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world-model", required=True, help="world_model.pt (examples/train_on_your_data.py)")
    parser.add_argument("--out", default="outputs/sweeps/example", help="one folder per run, and the table")
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("WM_EXAMPLE_TINY") == "1")
    args = parser.parse_args()
    budgets, episodes, max_steps = ([(8, 1)], 2, 3) if args.tiny else ([(64, 5), (300, 10)], 16, 60)
    print(sweep(args.world_model, Path(args.out), budgets, episodes, max_steps))


if __name__ == "__main__":
    main()
