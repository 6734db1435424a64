"""Does each world model's latent goal cost rank candidate plans as the task does? (the planner's view of model error)

python scripts/cost_fidelity.py --world-model wm=runs/push/predictor_world_model-X/world_model.pt \
    --world-model random_init=runs/push/predictor_random_init-Y/world_model.pt [--data DATA.h5] \
    [--episodes 48] [--samples 64] [--offset 25] [--seed 0] [--out DIR]

From held-out protocol starts (a dataset frame; goal image = the frame --offset env steps later), --samples
candidate action sequences per start (noisy copies of the dataset's own, and uniform random) are scored by the
env's task distance through the true physics, by the latent goal cost of the simulated frames encoded (a perfect
predictor), and by the world model's imagined latent goal cost. The table gives the rank correlation of each pair
over the candidates, the spread ratio and the success / task distance of what each cost picks
(worldmodel/eval/cost_fidelity.py).
The env and its settings come from the data file; it must be one of the library's tasks (or the adapter) with a
simulator. Writes cost_fidelity.json and cost_fidelity.md into --out (default: beside the first world model).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.common import (  # noqa: E402
    ArgumentParser,
    add_verbosity_flags,
    configure_logging,
    fraction,
    non_negative_int,
    positive_int,
    setup_headless,
    user_errors_exit,
)

log = logging.getLogger("wm.cost_fidelity")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options, checked (one ``error:`` line and exit status 2 for a bad one)."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world-model", action="append", required=True, metavar="NAME=PATH",
                   help="a world_model.pt of scripts/train_predictor.py; repeatable (one table row each)")
    p.add_argument("--data", default=None, help="trajectory file (default: the one the first model was trained on)")
    p.add_argument("--episodes", type=positive_int, default=48, help="held-out protocol starts")
    p.add_argument("--samples", type=positive_int, default=64, help="candidate plans per start (>= 8)")
    p.add_argument("--offset", type=positive_int, default=25,
                   help="env steps from start to goal image, scored as one plan: the plan's reach (planner.horizon x "
                   "frameskip; 25 = Push's preset, 5 x 5)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="episode and candidate seed")
    p.add_argument("--random-fraction", type=fraction, default=0.25, help="share of uniform random candidates")
    p.add_argument("--num-envs", type=positive_int, default=8)
    p.add_argument("--out", default=None, help="report folder (default: <first world model dir>/cost_fidelity)")
    p.add_argument("--device", default="cpu")
    add_verbosity_flags(p)
    args = p.parse_args(argv)
    configure_logging(args.verbosity)
    names = []
    for entry in args.world_model:
        name, sep, path = entry.partition("=")
        if not sep or not name or not path:
            p.error(f"argument --world-model: expected NAME=PATH, got {entry!r}")
        names.append(name)
    if len(set(names)) != len(names):
        p.error(f"argument --world-model: names must differ, got {names}")
    if args.out and Path(args.out).is_file():
        p.error(f"argument --out: {args.out} is a file; give a folder")
    return args


def task_env(data: str) -> tuple[str, dict[str, Any]]:
    """The env id and settings the data file records; a ValueError when it has none this library can simulate."""
    import gymnasium

    import envs  # noqa: F401  (registers the tasks)
    from worldmodel.data.reader import TrajectoryFile

    tf = TrajectoryFile(data)
    env_id, kwargs = tf.meta.env_id, dict(tf.meta.env_kwargs)
    tf.close()
    if env_id == "none" or env_id not in gymnasium.registry:
        raise ValueError(
            f"{data} records env {env_id!r}, which this library cannot simulate; the diagnostic needs the task's "
            "simulator (data collected with scripts/collect.py from a library env or wm/GymAdapter-v0)"
        )
    return env_id, kwargs


def write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all (a temporary beside it, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Check inputs, score every world model on the same starts and candidates, print and write the table."""
    args = parse_args(argv)
    setup_headless()
    import torch

    from worldmodel.eval.cost_fidelity import FidelityConfig, cost_fidelity, format_fidelity

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    cfg = FidelityConfig(episodes=args.episodes, offset=args.offset, samples=args.samples, seed=args.seed,
                         random_fraction=args.random_fraction, num_envs=args.num_envs)
    from scripts.probe_encoder import load_world_models  # NAME=PATH -> loaded models, a bad file named

    models = load_world_models(args.world_model, args.device)
    first = next(iter(models.values()))
    data = args.data or first.meta.get("data_path")
    if not data:
        raise ValueError("the first world model records no data path; pass --data")
    env_id, env_kwargs = task_env(str(data))
    results = {}
    for name, wm in models.items():
        log.info("scoring %s", name)
        results[name] = cost_fidelity(wm, str(data), env_id, env_kwargs, cfg)
    table = format_fidelity(results)
    out = Path(args.out) if args.out else Path(args.world_model[0].partition("=")[2]).parent / "cost_fidelity"
    out.mkdir(parents=True, exist_ok=True)
    paths = dict(a.partition("=")[::2] for a in args.world_model)
    report = {"data": str(data), "env_id": env_id, "world_models": paths, "results": results}
    write_atomic(out / "cost_fidelity.json", json.dumps(report, indent=2))
    write_atomic(out / "cost_fidelity.md", table)
    print(table)
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
