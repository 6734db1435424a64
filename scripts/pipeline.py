"""The main job (Hydra entry point): collect, pretrain, train predictors, diagnose, evaluate, report.

python scripts/pipeline.py                      # TwoRoom, CPU-sized defaults (or: wm pipeline)
python scripts/pipeline.py env=push             # the task's preset (configs/preset/push.yaml), CPU budget
python scripts/pipeline.py env=push budget=gpu  # the same recipe with the field's full planner budget
python scripts/pipeline.py env=reacher planner=mppi

Each stage's progress bar is mirrored on one line as it runs (plain lines every 30 s when the output is not a
terminal: ++progress_every_s=N); its full output is in <root>/<stage>-<hash>/stage.log, and the time of each stage
and the total close the run.
"""

from __future__ import annotations

import re
from pathlib import Path

from scripts.common import configure_logging, fail, hydra_main, setup_headless

setup_headless()

from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402


@hydra_main("../configs", "pipeline")
def main(cfg: DictConfig) -> None:
    """Run the stages (reusing finished ones), showing each one's progress, and log where the report is."""
    from worldmodel.pipeline import run_pipeline

    configure_logging(compact_console=True)  # Hydra's handlers (console + <root>/hydra/pipeline.log), short lines
    choices = HydraConfig.get().runtime.choices
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain["env_choice"] = choices["env"]  # type: ignore[index]
    plain["planner_choice"] = choices["planner"]  # type: ignore[index]
    plain["preset_choice"] = choices.get("preset")  # type: ignore[index]  # configs/preset/<task>.yaml, or None
    plain["budget_choice"] = choices.get("budget")  # type: ignore[index]  # configs/budget/<cpu|gpu>.yaml
    plain["config_search_dirs"] = user_config_dirs()  # type: ignore[index]
    try:
        run_pipeline(plain)  # type: ignore[arg-type]
    except RuntimeError as exc:
        refused = stage_refused_input(str(exc))
        if refused:  # the stage's own one-line error: bad input, so exit status 2 as the stage did
            fail(refused)
        raise SystemExit(f"error: {exc}") from None  # a stage that crashed: the tail of its log, exit status 1


def user_config_dirs() -> list[str]:
    """Absolute paths of the config folders given with --config-dir (the stages search them too)."""
    sources = HydraConfig.get().runtime.config_sources
    return [str(Path(s.path).resolve()) for s in sources if s.provider == "command-line" and s.schema == "file"]


def stage_refused_input(message: str) -> str | None:
    """For a stage that exited with status 2 (a script refusing bad input), one line naming the stage, its
    ``error:`` line and its log; None for any other failure."""
    head = re.match(r"stage (\S+) failed \(exit 2\); log (.+?):\n", message)
    errors = [ln[len("error: ") :] for ln in message.splitlines()[1:] if ln.startswith("error: ")]
    if not head or not errors:
        return None
    return f"stage {head.group(1)} failed on bad input: {errors[-1]} (log {head.group(2)})"


if __name__ == "__main__":
    main()
