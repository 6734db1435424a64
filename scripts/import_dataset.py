"""Import foreign trajectories (LeRobot v2.1/v3.0 folders, HDF5/npz flat or per-episode, local Minari datasets).

    python scripts/import_dataset.py --config-name lerobot_dataset source=path/to/lerobot_dataset out=data/mine.h5
    python scripts/import_dataset.py --config-name lerobot source=my.h5 out=data/mine.h5
    python scripts/import_dataset.py --config-name minari source=mujoco/reacher/expert-v0 out=data/r.h5 dry_run=true

Each file in configs/import/ is a complete import config (an ImportSpec); any field can be overridden. A mapped
key the source lacks is an error unless its column is in the preset's optional_keys; the summary says what stood
in for such a column and lists the source's columns that were not used.

Validates every episode (keys, shapes, dtypes, NaNs, episode boundaries, timestamps), prints a summary and
writes our HDF5 schema atomically; see docs/own_data.md.
"""

from __future__ import annotations

from scripts.common import hydra_main, setup_headless

setup_headless()

import json  # noqa: E402

from omegaconf import DictConfig, OmegaConf  # noqa: E402

from worldmodel.data.importers.spec import ImportSpec  # noqa: E402


def spec_from_hydra(cfg: DictConfig) -> ImportSpec:
    """The typed, validated ImportSpec of a Hydra config from configs/import/."""
    fields = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(fields, dict)
    return ImportSpec.from_dict({str(k): v for k, v in fields.items()})


@hydra_main("../configs/import", "episodes")
def main(cfg: DictConfig) -> None:
    """Import, then print the import summary and (unless dry_run) the written file's own summary."""
    from worldmodel.data.importers import import_dataset

    spec = spec_from_hydra(cfg)
    summary = import_dataset(spec, progress=True)  # a bar on stderr as episodes are written
    for key, value in summary.items():
        print(f"{key:>18}: {json.dumps(value)}")
    if summary["out"]:
        from worldmodel.data.reader import TrajectoryFile

        tf = TrajectoryFile(summary["out"], verify=True)
        s = tf.summary()
        print(
            f"wrote {summary['out']}: {s['episodes']} episodes, {s['frames']} frames, images {s['image_shape']}, "
            f"actions {s['action_dim']}-d, proprio {s['proprio_dim']}-d, state {s['state_dim']}-d, {s['file_mb']} MB"
        )


if __name__ == "__main__":
    main()
