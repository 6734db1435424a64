"""Rollout error vs horizon of a world model on held-out episodes, with copy-last and mean baselines.

    python scripts/rollout_error.py runs/predictor/pool2x2_fs1/world_model.pt [--data data/tworoom_explore.h5]
        [--horizon 10] [--context 1] [--split val] [--out DIR] [--device cpu]

Prints the table and writes rollout_error.{json,txt,png} to --out (default: beside the checkpoint).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.common import ArgumentParser, add_verbosity_flags, configure_logging, positive_int, user_errors_exit  # noqa: E402

log = logging.getLogger("wm.rollout_error")


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Parse arguments, evaluate, print the table and write the report files."""
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world_model", help="world_model.pt from scripts/train_predictor.py")
    ap.add_argument("--data", default=None, help="trajectory file (default: the one the model was trained on)")
    ap.add_argument("--horizon", type=positive_int, default=10)
    ap.add_argument("--context", type=positive_int, default=1, help="true frames given before the open-loop rollout")
    ap.add_argument("--split", default="val", choices=["val", "train", "all"])
    ap.add_argument("--stride", type=positive_int, default=5, help="frames between window starts within an episode")
    ap.add_argument("--max-windows", type=positive_int, default=512)
    ap.add_argument("--out", default=None, help="report folder (default: <checkpoint dir>/rollout_error)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (they go to stderr)")
    add_verbosity_flags(ap)
    args = ap.parse_args(argv)
    configure_logging(args.verbosity)

    import torch

    from worldmodel.checkpoint import CheckpointError
    from worldmodel.eval.rollout_error import format_table, rollout_error, write_report
    from worldmodel.world_model import WorldModel

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    try:
        wm = WorldModel.load(args.world_model, args.device)
    except CheckpointError as exc:
        raise ValueError(str(exc)) from None
    data = args.data or wm.meta.get("data_path")
    if not data:
        raise ValueError("the checkpoint records no data path; pass --data")
    result = rollout_error(
        wm,
        data,
        horizon=args.horizon,
        context=args.context,
        split=args.split,
        stride=args.stride,
        max_windows=args.max_windows,
        progress=not args.no_progress,
    )
    result["world_model"] = str(args.world_model)
    out = Path(args.out) if args.out else Path(args.world_model).parent / "rollout_error"
    paths = write_report(result, out)
    print(format_table(result))
    log.info("wrote %s, %s, %s", paths["json"], paths["table"], paths["plot"])


if __name__ == "__main__":
    main()
