"""The main job (Hydra entry point): collect, pretrain, train predictors, diagnose, evaluate, report.

python scripts/pipeline.py                      # TwoRoom, CPU-sized defaults
python scripts/pipeline.py env=reacher planner=mppi
"""

from __future__ import annotations

from scripts.common import setup_headless, user_errors_exit

setup_headless()

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402


@hydra.main(config_path="../configs", config_name="pipeline", version_base="1.3")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    """Run the stages (reusing finished ones) and print where the report is."""
    from worldmodel.pipeline import run_pipeline

    choices = HydraConfig.get().runtime.choices
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain["env_choice"] = choices["env"]  # type: ignore[index]
    plain["planner_choice"] = choices["planner"]  # type: ignore[index]
    try:
        run_pipeline(plain)  # type: ignore[arg-type]
    except RuntimeError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
