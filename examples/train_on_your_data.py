"""Import your own trajectories and train a world model on them.

    python examples/train_on_your_data.py [--out runs/example] [--tiny]

1. Writes an npz of "your" episodes (here: random-action rollouts of the TwoRoom env, one key prefix per episode:
   episode_<i>/obs/pixels (T, H, W, 3) uint8, episode_<i>/actions (T, A), episode_<i>/obs/proprio (T, P)).
   Replace this step by your own logs; docs/own_data.md lists the layouts the importer reads.
2. Imports it into the library's HDF5 trajectory format (worldmodel.data.importers, checked on the way in).
3. Exports a frozen encoder (a random-init tiny ViT here; `scripts/pretrain.py data.path=...` pretrains one) and
   trains the action-conditioned predictor for a few steps (configs/train_predictor.yaml, composed with Hydra).

Prints the path of the exported world_model.pt; plan with it in examples/plan_in_env.py. `--tiny` (or
WM_EXAMPLE_TINY=1) shrinks everything to a seconds-long run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np


def record_npz(path: Path, episodes: int, length: int, image_size: int, seed: int = 0) -> Path:
    """Random-action rollouts of wm/TwoRoom-v0 as an npz with one key prefix per episode."""
    import gymnasium

    import envs  # noqa: F401  (registers the wm/* envs)

    env = gymnasium.make("wm/TwoRoom-v0", image_size=image_size, disable_env_checker=True)
    rng, arrays = np.random.default_rng(seed), {}
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        pixels, proprio, actions = [obs["pixels"]], [obs["proprio"]], []
        for _ in range(length):
            action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)  # (A,)
            obs, *_ = env.step(action)
            pixels.append(obs["pixels"])
            proprio.append(obs["proprio"])
            actions.append(action)
        arrays[f"episode_{i}/obs/pixels"] = np.stack(pixels)  # (T, H, W, 3) uint8
        arrays[f"episode_{i}/obs/proprio"] = np.stack(proprio).astype(np.float32)  # (T, P)
        arrays[f"episode_{i}/actions"] = np.stack(actions)  # (T-1, A)
    env.close()
    np.savez(path, **arrays)
    return path


def import_npz(source: Path, out: Path, image_size: int) -> Path:
    """The npz as an HDF5 trajectory file (the `episodes` layout of configs/import/episodes.yaml)."""
    from worldmodel.data.importers import ImportSpec, import_dataset

    spec = ImportSpec.from_dict({
        "source": str(source), "out": str(out), "format": "npz", "layout": "episodes",
        "episode_pattern": "episode_*", "optional_keys": ["state"],
        "keys": {"pixels": "obs/pixels", "action": "actions", "proprio": "obs/proprio", "state": "obs/state"},
        "env_id": "wm/TwoRoom-v0", "env_kwargs": {"image_size": image_size}, "overwrite": True,
    })
    import_dataset(spec)
    return out


def train(data: Path, out: Path, image_size: int, steps: int) -> Path:
    """A random-init tiny encoder, then `steps` predictor steps on `data`; returns world_model.pt."""
    import torch
    from hydra import compose, initialize_config_dir

    from worldmodel.models.vit import EncoderConfig, VideoViT, save_encoder
    from worldmodel.training.loop import config_to_dict
    from worldmodel.training.train_predictor import train_predictor

    torch.manual_seed(0)
    encoder = VideoViT(EncoderConfig(img_size=image_size, num_frames=2, tubelet=2, patch=8, dim=32, depth=1, heads=2))
    save_encoder(encoder, out / "encoder.pt")
    overrides = [
        f"data.path={data}", f"encoder.path={out / 'encoder.pt'}", f"cache.path={out / 'cache.h5'}",
        "data.clip_len=4", "data.val_fraction=0.25", "pool=mean",
        "predictor.width=32", "predictor.depth=2", "predictor.heads=2", "predictor.max_frames=8",
        f"train.steps={steps}", "train.batch_size=16", "train.lr=3e-3", "train.warmup=5",
        f"train.eval_every={steps}", f"train.ckpt_every={steps}", "train.val_clips=16", "train.tensorboard=false",
    ]
    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = config_to_dict(compose(config_name="train_predictor", overrides=overrides))
    train_predictor(cfg, out / "predictor", device="cpu", progress=False)
    return out / "predictor" / "world_model.pt"  # (summary: the training record, with the model object)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/example", help="folder for the data and the world model")
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("WM_EXAMPLE_TINY") == "1",
                        help="a seconds-long run (also WM_EXAMPLE_TINY=1)")
    args = parser.parse_args()
    episodes, length, steps = (6, 16, 20) if args.tiny else (40, 60, 1500)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    npz = record_npz(out / "my_robot.npz", episodes, length, image_size=32)
    data = import_npz(npz, out / "my_robot.h5", image_size=32)
    print(f"imported {episodes} episodes into {data}")
    print(f"world model: {train(data, out, image_size=32, steps=steps)}")


if __name__ == "__main__":
    main()
