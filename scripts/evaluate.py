"""Closed-loop evaluation (Hydra entry point): world models beside the random floor and the oracle ceiling.

python scripts/evaluate.py world_models.world_model=runs/.../world_model.pt planner=mppi
"""

from __future__ import annotations

from scripts.common import setup_headless, user_errors_exit

setup_headless()

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    """Evaluate and print the results table."""
    from worldmodel.eval.evaluate import evaluate, format_table

    summary = evaluate(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    print(format_table(summary))
    print(f"summary: {cfg.out_dir}/summary.json")


if __name__ == "__main__":
    main()
