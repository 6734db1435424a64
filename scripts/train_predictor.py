"""Train the world model's predictor on a frozen encoder (Hydra entry point).

    python scripts/train_predictor.py data.path=... encoder.path=...          # in-house encoder.pt of pretrain
    python scripts/train_predictor.py data.path=... encoder=vjepa2 encoder.path=weights/vjepa2-vitl   # docs/encoders.md
    torchrun --standalone --nproc_per_node=4 scripts/train_predictor.py data.path=... encoder.path=...   # DDP

Re-running the same command resumes from <out_dir>/checkpoints/last.pt; the result is
<out_dir>/world_model.pt. A NaN/inf loss stops the run with exit status 2 and leaves the last good
checkpoint untouched.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.common import hydra_main, run_training  # noqa: E402
from worldmodel.training.distributed import hydra_worker_overrides  # noqa: E402
from worldmodel.training.loop import config_to_dict  # noqa: E402
from worldmodel.training.train_predictor import train_predictor  # noqa: E402


@hydra_main("../configs", "train_predictor")
def main(cfg: DictConfig) -> None:
    """Train into cfg.out_dir and print a JSON summary (rank 0 under torchrun)."""
    run_training(
        train_predictor,
        config_to_dict(cfg),
        drop="world_model",
        hint="use a fresh out_dir, or delete its checkpoints/ to restart",
    )


if __name__ == "__main__":
    sys.argv += hydra_worker_overrides()  # ranks > 0 write nothing into the shared Hydra output dir
    main()
