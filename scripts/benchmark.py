"""The field's closed-loop protocol (Hydra entry point): held-out start frame, goal = the frame `offset` env steps
later, `max_steps` env steps of budget; every world model x every agent variant, random and oracle, over seeds.

python scripts/benchmark.py ++world_models.world_model=runs/.../world_model.pt ++world_models.random_init=...
python scripts/benchmark.py ... env=reacher planner=mppi planner.num_samples=64 seeds=[0,1,2] out_root=outputs/b

Writes benchmark.md, benchmark.csv and benchmark.json into out_dir and prints the table; each (seed, variant) is
an evaluate run under out_dir/runs/. Re-running the same command resumes (configs/benchmark.yaml).
"""

from __future__ import annotations

from scripts.common import hydra_main, setup_headless

setup_headless()

from omegaconf import DictConfig, OmegaConf  # noqa: E402

import worldmodel.config  # noqa: E402, F401  (registers the typed schemas the config's defaults list names)


@hydra_main("../configs", "benchmark")
def main(cfg: DictConfig) -> None:
    """Check the inputs, run (or resume) every run, print the table and where it was written."""
    from worldmodel.eval.benchmark import run_benchmark

    result = run_benchmark(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    print(result["markdown"])
    print()
    for path in result["files"].values():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
