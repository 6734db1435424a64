"""Pretrain a V-JEPA video encoder (Hydra).

    python scripts/pretrain.py data.path=data/tworoom.h5 [encoder=small] [train.steps=N] [masks.preset=causal]
    torchrun --standalone --nproc_per_node=4 scripts/pretrain.py data.path=...   # DDP, train.batch_size global

Re-running the same command resumes from <out_dir>/checkpoints/last.pt; train.steps=0 exports a random-init
encoder. A NaN/inf loss stops the run with exit status 2 and leaves the last good checkpoint untouched.
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
from worldmodel.training.distributed import cleanup, hydra_worker_overrides, is_main  # noqa: E402
from worldmodel.training.pretrain import config_to_dict, pretrain  # noqa: E402


@hydra.main(config_path="../configs", config_name="pretrain", version_base="1.3")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    """Run pretraining into cfg.out_dir and print a JSON summary (rank 0 under torchrun)."""
    plain = config_to_dict(cfg)
    if plain.get("threads"):
        torch.set_num_threads(int(plain["threads"]))
    try:
        try:
            summary = pretrain(plain, plain["out_dir"], device=plain["device"])
        except CheckpointError as exc:
            if is_main():
                print(
                    f"error: {exc}\n(hint: use a fresh out_dir, or delete the checkpoint to restart)", file=sys.stderr
                )
            raise SystemExit(2) from None
        except FloatingPointError as exc:  # non-finite loss/gradients: same on every rank
            if is_main():
                print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        summary.pop("model", None)
        if is_main():
            print(json.dumps(summary, indent=2))
    finally:
        cleanup()


if __name__ == "__main__":
    sys.argv += hydra_worker_overrides()  # ranks > 0 write nothing into the shared Hydra output dir
    main()
