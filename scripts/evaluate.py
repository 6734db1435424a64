"""Closed-loop evaluation (Hydra entry point): world models beside the random floor and the oracle ceiling.

python scripts/evaluate.py world_models.world_model=runs/.../world_model.pt planner=mppi
torchrun --standalone --nproc_per_node=4 scripts/evaluate.py ...   # 4 shards, merged by rank 0 (docs/scaling.md)
python scripts/evaluate.py --multirun planner=cem,mppi seed=0,1    # a sweep; tabulate with scripts/sweep_summary.py

A world model trained on several cameras (data.cameras=[top,side]) makes the env render them: env.kwargs.extra_cameras
is filled from the world models when unset; set explicitly without one of their cameras, it is an error naming the fix.
"""

from __future__ import annotations

import os

from scripts.common import hydra_main, setup_headless

setup_headless()

from omegaconf import DictConfig, OmegaConf  # noqa: E402

import worldmodel.config  # noqa: E402, F401  (registers the typed schemas the config's defaults list names)


@hydra_main("../configs", "evaluate")
def main(cfg: DictConfig) -> None:
    """Evaluate and print the results table (a sharded process that did not merge says where its shard is)."""
    from worldmodel.checkpoint import CheckpointError
    from worldmodel.eval.evaluate import evaluate, format_table

    try:
        summary = evaluate(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    except CheckpointError as exc:  # an unreadable or tampered world model: one clear line, exit status 2
        raise ValueError(str(exc)) from None
    if "shard" in summary:
        i, n = summary["shard"]["index"], summary["shard"]["count"]
        print(f"shard {i} of {n} finished: {cfg.out_dir}/summary.shard{i}of{n}.json")
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # torchrun's rank 0 merges; by hand, the last shard does
            print(
                f"waiting for other shards; the last to finish merges (or: python scripts/merge_eval.py {cfg.out_dir})"
            )
        return
    print(format_table(summary))
    print(
        f"summary: {cfg.out_dir}/summary.json"
        + (f" (merged from {summary['shards']} shards)" if "shards" in summary else "")
    )


if __name__ == "__main__":
    main()
