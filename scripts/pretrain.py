"""Pretrain a V-JEPA video encoder (Hydra).

    python scripts/pretrain.py data.path=data/tworoom.h5 [encoder=small] [train.steps=N] [masks.preset=causal]
    torchrun --standalone --nproc_per_node=4 scripts/pretrain.py data.path=...   # DDP, train.batch_size global

Re-running the same command resumes from <out_dir>/checkpoints/last.pt; train.steps=0 exports a random-init
encoder. A NaN/inf loss stops the run with exit status 2 and leaves the last good checkpoint untouched.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import worldmodel.config  # noqa: E402, F401  (registers the typed schema configs/pretrain.yaml names)
from scripts.common import hydra_main, run_training  # noqa: E402
from worldmodel.training.distributed import hydra_worker_overrides  # noqa: E402
from worldmodel.training.loop import config_to_dict  # noqa: E402
from worldmodel.training.pretrain import pretrain  # noqa: E402


@hydra_main("../configs", "pretrain")
def main(cfg: DictConfig) -> None:
    """Run pretraining into cfg.out_dir and print a JSON summary (rank 0 under torchrun)."""
    run_training(
        pretrain, config_to_dict(cfg), drop="model", hint="use a fresh out_dir, or delete the checkpoint to restart"
    )


if __name__ == "__main__":
    sys.argv += hydra_worker_overrides()  # ranks > 0 write nothing into the shared Hydra output dir
    main()
