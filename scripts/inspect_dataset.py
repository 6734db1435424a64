"""Print a trajectory file's summary and save a preview grid (PNG) and, optionally, an mp4.

python scripts/inspect_dataset.py data/tworoom_explore.h5 [--out previews/] [--video] [--verify]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from scripts.common import ArgumentParser, add_verbosity_flags, configure_logging, positive_int, user_errors_exit

log = logging.getLogger("wm.inspect")


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Validate the file, print its summary as aligned key/value lines, write the previews."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="trajectory HDF5 file")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for previews (default: beside the file)"
    )
    parser.add_argument("--episodes", type=positive_int, default=6, help="episodes in the preview grid")
    parser.add_argument("--frames", type=positive_int, default=8, help="frames per episode in the grid")
    parser.add_argument("--video", action="store_true", help="also write an mp4 of the first episodes")
    parser.add_argument("--verify", action="store_true", help="read every row to detect corruption")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--camera", default=None, help="camera to preview (default: the file's first camera)")
    add_verbosity_flags(parser)
    args = parser.parse_args(argv)
    configure_logging(args.verbosity)

    import imageio.v2 as imageio

    from worldmodel.data.preview import episode_video, frame_grid
    from worldmodel.data.reader import TrajectoryFile

    tf = TrajectoryFile(args.path, verify=args.verify)
    tf.pixel_key(args.camera)  # an unknown camera fails here, naming the file's cameras
    summary = tf.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        width = max(len(k) for k in summary)
        for k, v in summary.items():
            print(f"{k:<{width}}  {v}")
    out_dir = args.out or args.path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.path.stem + (f"_{args.camera}" if args.camera else "")
    grid_path = out_dir / f"{stem}_preview.png"
    imageio.imwrite(grid_path, frame_grid(tf, episodes=args.episodes, frames=args.frames, camera=args.camera))
    log.info("preview grid: %s", grid_path)
    if args.video:
        log.info("preview video: %s", episode_video(tf, out_dir / f"{stem}_preview.mp4", camera=args.camera))


if __name__ == "__main__":
    main()
