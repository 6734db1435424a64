"""Pretrain a V-JEPA video encoder (Hydra).

    python scripts/pretrain.py data.path=data/tworoom.h5 [encoder=small] [train.steps=N] [masks.preset=causal]

Re-running the same command resumes from <out_dir>/checkpoints/last.pt; train.steps=0 exports a random-init
encoder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worldmodel.training.checkpoint import CheckpointError  # noqa: E402
from worldmodel.training.pretrain import config_to_dict, pretrain  # noqa: E402


@hydra.main(config_path="../configs", config_name="pretrain", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Run pretraining into cfg.out_dir and print a JSON summary."""
    plain = config_to_dict(cfg)
    if plain.get("threads"):
        torch.set_num_threads(int(plain["threads"]))
    try:
        summary = pretrain(plain, plain["out_dir"], device=plain["device"])
    except CheckpointError as exc:
        print(f"error: {exc}\n(hint: use a fresh out_dir, or delete the checkpoint to restart)", file=sys.stderr)
        raise SystemExit(2) from None
    summary.pop("model", None)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
