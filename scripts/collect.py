"""Collect trajectories with a scripted policy into one HDF5 file (Hydra entry point).

    python scripts/collect.py env=tworoom episodes=200 episode_length=100 policy=explore

Re-running the same command resumes an interrupted collection; see worldmodel/data/collect.py.
"""

from __future__ import annotations

from scripts.common import hydra_main, setup_headless

setup_headless()

from omegaconf import DictConfig, OmegaConf  # noqa: E402

from worldmodel.data.collect import CollectConfig, collect  # noqa: E402


def _number(cfg: DictConfig, key: str) -> int:
    """The integer config value ``key``; ValueError naming the key for anything else (``episodes=abc``)."""
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}={value!r} must be an integer (e.g. {key}=10)")
    return value


def config_from_hydra(cfg: DictConfig) -> CollectConfig:
    """Translate the Hydra config into the collector's typed config (the Hydra config is not mutated)."""
    kwargs = OmegaConf.to_container(cfg.env.get("kwargs", {}), resolve=True)
    return CollectConfig(
        env_id=str(cfg.env.id),
        env_kwargs=dict(kwargs),  # type: ignore[arg-type]
        out=str(cfg.out),
        episodes=_number(cfg, "episodes"),
        episode_length=_number(cfg, "episode_length"),
        policy=str(cfg.policy),
        policy_kwargs=dict(OmegaConf.to_container(cfg.policy_kwargs, resolve=True)) if "policy_kwargs" in cfg else {},  # type: ignore[arg-type]
        seed=_number(cfg, "seed"),
        workers=_number(cfg, "workers"),
        overwrite=bool(cfg.overwrite),
        compression=None if cfg.compression in (None, "none") else str(cfg.compression),
        keep_shards=bool(cfg.keep_shards),
    )


@hydra_main("../configs", "collect")
def main(cfg: DictConfig) -> None:
    """Collect, then print a one-line summary of the file."""
    from worldmodel.data.reader import TrajectoryFile

    out = collect(config_from_hydra(cfg))
    tf = TrajectoryFile(out)
    s = tf.summary()
    print(
        f"wrote {out}: {s['episodes']} episodes, {s['steps']} steps, images {s['image_shape']}, "
        f"{s['file_mb']} MB; success at episode end {s['success_at_end']:.0%}"
    )


if __name__ == "__main__":
    main()
