"""Train the world model's predictor on a frozen encoder (Hydra entry point).

    python scripts/train_predictor.py data.path=... encoder.path=...

Re-running the same command resumes from <out_dir>/checkpoints/last.pt; the result is
<out_dir>/world_model.pt.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.common import user_errors_exit  # noqa: E402
from worldmodel.training.checkpoint import CheckpointError  # noqa: E402
from worldmodel.training.pretrain import config_to_dict  # noqa: E402
from worldmodel.training.train_predictor import train_predictor  # noqa: E402


@hydra.main(config_path="../configs", config_name="train_predictor", version_base="1.3")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    """Train into cfg.out_dir and print a JSON summary."""
    plain = config_to_dict(cfg)
    if plain.get("threads"):
        torch.set_num_threads(int(plain["threads"]))
    try:
        summary = train_predictor(plain, plain["out_dir"], device=plain["device"])
    except CheckpointError as exc:
        print(
            f"error: {exc}\n(hint: use a fresh out_dir, or delete its checkpoints/ to restart)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    summary.pop("world_model", None)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
