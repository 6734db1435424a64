"""Probe a frozen encoder against a random-init one of the same shape on held-out episodes.

python scripts/probe_encoder.py --data data/tworoom.h5 --encoder runs/pretrain/X/encoder.pt [--random PATH]
python scripts/probe_encoder.py --data data/mine.h5 --encoder ENC.pt --coords 'x=state[0],y=state[1]' --radius 0.05
python scripts/probe_encoder.py --data data/tworoom.h5 --encoder dinov2:weights/dinov2-small
python scripts/probe_encoder.py --data data/tworoom.h5 --encoder ENC.pt --world-model wm=runs/.../world_model.pt

--encoder is any frozen encoder the encoder loader reads (worldmodel/models/encoders/registry.py): the in-house
export (encoder.pt, or a VideoViT.save_pretrained directory), or FAMILY:DIR for a foundation encoder from local
weights (vjepa2:DIR, dinov2:DIR). The random-init baseline has the same architecture with fresh weights.

Linear (ridge) probes from pooled frame embeddings to task coordinates (R^2, RMSE, RMSE / success radius) and
Spearman correlation of latent L1 distance with the true task distance (all pairs, near pairs).

Task coordinates come from the file's environment when it is one of the library's (its task coordinates,
success radius and exact task distance). Otherwise -- an imported file records env_id none -- or with --coords,
they come from the file's columns: state, proprio, a slice (state[0:2]) or named parts (x=state[0],y=state[1]),
with Euclidean distance between them; --radius sets the success radius in those coordinates (without it the
RMSE/radius, near-pair and nearest-neighbour rows are left out). Without an env and without --coords the
state column is probed (dims that never change are left out, with a note).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.common import (  # noqa: E402
    ArgumentParser,
    add_verbosity_flags,
    configure_logging,
    fraction,
    positive_float,
    positive_int,
    user_errors_exit,
)
from worldmodel.eval.probes import (  # noqa: E402
    CoordSpec,
    constant_coords,
    coord_pair_distances,
    describe_coords,
    env_pair_distances,
    load_probe_frames,
    parse_coords,
    probe_encoder,
    random_init_like,
    task_env,
    world_model_distances,
)
from worldmodel.models.encoders.protocol import FrameEncoder  # noqa: E402
from worldmodel.models.encoders.registry import EncoderLike, load_frame_encoder  # noqa: E402

log = logging.getLogger("wm.probe_encoder")

EXAMPLE_COORDS = "--coords 'x=state[0],y=state[1]'"


@dataclass
class Target:
    """What the probes predict: coordinates of the train and test frames, their names, the success radius and
    (i, j, true distance) pairs over the test frames; ``label`` says where they came from (header line)."""

    names: list[str]
    radius: float | None
    train: torch.Tensor  # (M, K)
    test: torch.Tensor  # (M', K)
    pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    label: str


def parse_grids(text: str) -> list[tuple[int, int] | None]:
    """'2,4,mean' -> [(2, 2), (4, 4), None]; ValueError for anything else."""
    grids: list[tuple[int, int] | None] = []
    for g in (t.strip() for t in text.split(",")):
        if g == "mean":
            grids.append(None)
        elif g.isdigit() and int(g) >= 1:
            grids.append((int(g), int(g)))
        else:
            raise ValueError(f"--grids {text!r}: {g!r} is not a pooling grid; use sizes >= 1 or mean, e.g. 2,4,mean")
    return grids


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options, checked (one ``error:`` line and exit status 2 for a bad one)."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="trajectory HDF5 file (ours, collected or imported)")
    p.add_argument(
        "--encoder",
        required=True,
        help="encoder.pt exported by scripts/pretrain.py (or a VideoViT.save_pretrained dir), or FAMILY:DIR for a "
        "foundation encoder from local weights (vjepa2:DIR, dinov2:DIR)",
    )
    p.add_argument(
        "--random",
        default=None,
        help="random-init encoder (same forms as --encoder; default: encoder_random.pt beside an in-house "
        "--encoder, else a fresh init of --encoder's architecture)",
    )
    p.add_argument(
        "--coords",
        default=None,
        help="task coordinates from the file's columns instead of its env: state, proprio, state[0:2], or "
        "named parts x=state[0],y=state[1],yaw=state[4] (default: the env's; state when the file has no env)",
    )
    p.add_argument(
        "--radius",
        type=positive_float,
        default=None,
        help="success radius in the task coordinates (default: the env's; none for column coordinates)",
    )
    p.add_argument("--grids", default="2,4", help="pooling grids, e.g. 2,4,mean")
    p.add_argument("--knn", type=positive_int, default=None,
                   help="also a non-linear probe: each test frame's coordinates as the mean of its K nearest training "
                   "frames in L1 latent distance (the planner's metric); R2 per coordinate")
    p.add_argument(
        "--world-model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also profile a world model's latent goal distances on the same pairs: its latent L1 (the planner's "
        "latent term) and its learned step metric when it has one (objective.metric); repeatable",
    )
    p.add_argument("--max-train", type=positive_int, default=4000)
    p.add_argument("--max-test", type=positive_int, default=2000)
    p.add_argument("--anchors", type=positive_int, default=200, help="anchor frames for the pair distances")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (they go to stderr)")
    p.add_argument("--val-fraction", type=fraction, default=0.1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--json", default=None, help="write the full result dict here")
    add_verbosity_flags(p)
    args = p.parse_args(argv)
    configure_logging(args.verbosity)
    args.grids = parse_grids(args.grids)
    if not (args.device == "cpu" or args.device == "cuda" or args.device.startswith("cuda:")):
        p.error(f"argument --device: expected cpu, cuda or cuda:N, got {args.device!r}")
    for entry in args.world_model:
        name, sep, path = entry.partition("=")
        if not sep or not name or not path:
            p.error(f"argument --world-model: expected NAME=PATH, got {entry!r}")
    if args.json and Path(args.json).is_dir():
        p.error(f"argument --json: {args.json} is a folder; give a file name")
    return args


def column_dims(path: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The file's metadata and the widths of the columns coordinates can come from (checks the file first)."""
    from worldmodel.data.reader import TrajectoryFile

    tf = TrajectoryFile(path)
    try:
        meta = {"env_id": tf.meta.env_id, "env_kwargs": tf.meta.env_kwargs}
        return meta, {"state": tf.column_shape("state")[0], "proprio": tf.column_shape("proprio")[0]}
    finally:
        tf.close()


def choose_coordinates(args: argparse.Namespace, meta: dict[str, Any], dims: dict[str, int]) -> tuple[Any, CoordSpec]:
    """(env, None) for the env's task coordinates, or (None, spec) for coordinates from the file's columns."""
    if args.coords is not None:
        try:
            return None, parse_coords(args.coords, dims)
        except ValueError as exc:
            raise ValueError(f"--coords: {exc}") from None
    env, why = task_env(meta)
    if env is not None:
        return env, None  # type: ignore[return-value]
    log.info("note: %s; probing the file's state column (%d dims); choose with %s", why, dims["state"], EXAMPLE_COORDS)
    return None, parse_coords("state", dims)


def env_target(env: Any, train: dict[str, Any], test: dict[str, Any], args: argparse.Namespace) -> Target:
    """The env's task coordinates, success radius (or --radius) and exact task distances (as always)."""
    radius = float(args.radius) if args.radius is not None else float(env.success_threshold)

    def to_coords(st: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(env.state_to_task_coords(st.double().numpy()), dtype=torch.float64)

    pairs = env_pair_distances(env, test["states"].double().numpy(), args.anchors)
    label = f"env {train['meta']['env_id']}"
    return Target(
        list(env.task_coord_names), radius, to_coords(train["states"]), to_coords(test["states"]), pairs, label
    )


def column_target(spec: CoordSpec, train: dict[str, Any], test: dict[str, Any], args: argparse.Namespace) -> Target:
    """Coordinates from the file's columns with Euclidean task distance; dims that never change are an error
    when chosen with --coords and left out (with a note) from the default state column."""
    names, sources, tr, te = spec.names, spec.sources, spec.select(train), spec.select(test)
    flat = constant_coords(tr, names)
    if flat and (args.coords is not None or len(flat) == len(names)):
        which = "--coords" if args.coords is not None else "the state column"
        raise ValueError(
            f"{which}: {', '.join(flat)} never change over the training frames, so no probe can score them "
            f"(an import without a state column stores a copy of proprio, or zeros); choose others with "
            f"{EXAMPLE_COORDS} or --coords proprio"
        )
    if flat:
        log.info("note: left out %s: constant over the training frames", ", ".join(flat))
        keep = [k for k, n in enumerate(names) if n not in flat]
        names, sources, tr, te = [names[k] for k in keep], [sources[k] for k in keep], tr[:, keep], te[:, keep]
    pairs = coord_pair_distances(te, args.anchors)
    where = describe_coords(names, sources)
    label = f"env {train['meta']['env_id']} (coordinates from the file: {where}; Euclidean distance)"
    return Target(names, args.radius, tr, te, pairs, label)


def encoder_entry(text: str) -> EncoderLike:
    """``--encoder`` text -> an encoder loader entry: FAMILY:DIR for a foundation encoder, else an in-house path."""
    from worldmodel.models.encoders.hf import FAMILIES

    family, sep, rest = text.partition(":")
    if sep and family in FAMILIES:
        return {"name": family, "path": rest}
    return text


def load_one(text: str, device: str, what: str) -> FrameEncoder:
    """Load one encoder given on the command line; a missing or bad one is a ValueError naming the option."""
    from worldmodel.checkpoint import CheckpointError
    from worldmodel.models.encoders.protocol import EncoderError

    try:
        return load_frame_encoder(encoder_entry(text), device)
    except (CheckpointError, EncoderError, FileNotFoundError) as exc:
        raise ValueError(
            f"{what} {text}: {exc} (give an encoder.pt exported by scripts/pretrain.py, a VideoViT.save_pretrained "
            "dir, or vjepa2:DIR / dinov2:DIR with local weights)"
        ) from None


def load_encoders(args: argparse.Namespace) -> tuple[FrameEncoder, FrameEncoder, str]:
    """(pretrained, random-init, where the random-init one came from); a bad checkpoint is a ValueError."""
    in_house = isinstance(encoder_entry(args.encoder), str)
    beside = Path(args.encoder).with_name("encoder_random.pt") if in_house else None
    entry = encoder_entry(args.random) if args.random else None
    if entry is not None and not Path(entry if isinstance(entry, str) else entry["path"]).exists():
        raise ValueError(f"--random {args.random} not found (leave --random out to use a fresh random init)")
    enc = load_one(args.encoder, args.device, "--encoder")
    if args.random:
        return enc, load_one(args.random, args.device, "--random"), args.random
    if beside is not None and beside.is_file():
        return enc, load_one(str(beside), args.device, "--random"), str(beside)
    return enc, random_init_like(enc, 0), "fresh seed 0"


def print_table(results: dict[str, dict[str, Any]], names: list[str], radius: float | None) -> None:
    """Pretrained vs random-init side by side, one block per pooling grid."""
    encs = list(results)
    grids = [k for k in results[encs[0]] if k != "collapse"]
    w = 14
    head = f"{'metric':<28}" + "".join(f"{e:>{w}}" for e in encs)
    for grid in grids:
        print(f"\n== pooled {grid} (feature dim {results[encs[0]][grid]['feature_dim']}) ==")
        print(head)
        rows: list[tuple[str, list[float]]] = [("R2 mean", [results[e][grid]["linear"]["r2_mean"] for e in encs])]
        for n in names:
            rows.append((f"R2 {n}", [results[e][grid]["linear"]["r2"][n] for e in encs]))
        if "knn" in results[encs[0]][grid]:
            k = results[encs[0]][grid]["knn"]["k"]
            rows += [(f"kNN{k} R2 {n}", [results[e][grid]["knn"]["r2"][n] for e in encs]) for n in names]
        for n in names:
            rows.append((f"RMSE {n}", [results[e][grid]["linear"]["rmse"][n] for e in encs]))
        if radius:
            for n in names:
                rows.append((f"RMSE/radius {n}", [results[e][grid]["linear"]["rmse_over_radius"][n] for e in encs]))
        rows.append(("Spearman latent~true (all)", [results[e][grid]["distance"]["spearman_all"] for e in encs]))
        if radius:
            rows.append(("Spearman (near < 2r)", [results[e][grid]["distance"]["spearman_near"] for e in encs]))
            dist0 = results[encs[0]][grid]["distance"]
            edges = dist0.get("profile_edges", [])
            for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):  # latent distance by true distance
                label = f"latent/mean true {lo:g}-{hi:g}r"
                rows.append((label, [results[e][grid]["distance"]["profile"][k] for e in encs]))
            if edges:
                rows.append(("plateau [1.5,2)r / [1,1.5)r", [results[e][grid]["distance"]["plateau"] for e in encs]))
            if "retrieval" in results[encs[0]][grid]:  # latent nearest training frame, in true distance
                rows.append(("NN true dist median", [results[e][grid]["retrieval"]["median"] for e in encs]))
                rows.append(("NN true dist p90", [results[e][grid]["retrieval"]["p90"] for e in encs]))
                rows.append(("NN beyond radius (frac)", [results[e][grid]["retrieval"]["beyond_radius"] for e in encs]))
        for label, vals in rows:
            print(f"{label:<28}" + "".join(f"{v:>{w}.4f}" for v in vals))
    print("\n== collapse (test tokens) ==")
    print(head)
    for k in results[encs[0]]["collapse"]:
        print(f"{k:<28}" + "".join(f"{results[e]['collapse'][k]:>{w}.4f}" for e in encs))


def print_distances(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The world models' latent goal distances side by side: rank correlation and profile over true distance."""
    cols = [(wm, kind) for wm, kinds in results.items() for kind in kinds]
    w = max(14, *(len(wm) + len(kind) + 3 for wm, kind in cols))
    print("\n== world models: the planner's latent goal distances on the same pairs ==")
    print(f"{'metric':<28}" + "".join(f"{wm + ' ' + kind:>{w}}" for wm, kind in cols))
    first = results[cols[0][0]][cols[0][1]]
    rows = [("Spearman latent~true (all)", "spearman_all", None), ("Spearman (near < 2r)", "spearman_near", None)]
    edges = first.get("profile_edges", [])
    rows += [(f"dist/mean true {lo:g}-{hi:g}r", "profile", k) for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
    for label, key, k in rows:
        if key not in first:
            continue
        vals = [results[wm][kind][key] if k is None else results[wm][kind][key][k] for wm, kind in cols]
        print(f"{label:<28}" + "".join(f"{v:>{w}.4f}" for v in vals))


def load_world_models(entries: list[str], device: str) -> dict[str, Any]:
    """NAME=PATH entries -> loaded world models; a bad file is a ValueError naming the option."""
    from worldmodel.checkpoint import CheckpointError
    from worldmodel.world_model import WorldModel, WorldModelError

    out = {}
    for entry in entries:
        name, _, path = entry.partition("=")
        try:
            out[name] = WorldModel.load(path, device)
        except (CheckpointError, WorldModelError, FileNotFoundError) as exc:
            hint = "give a world_model.pt of scripts/train_predictor.py"
            raise ValueError(f"--world-model {entry}: {exc} ({hint})") from None
    return out


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Check the inputs, load data and encoders, run the probes, print the table (and optionally write JSON)."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta, dims = column_dims(args.data)  # a missing or corrupt file fails here, before any loading
    env, spec = choose_coordinates(args, meta, dims)
    enc, rnd, rnd_label = load_encoders(args)
    world_models = load_world_models(args.world_model, args.device)

    train = load_probe_frames(args.data, "train", args.max_train, val_fraction=args.val_fraction)
    test = load_probe_frames(args.data, "val", args.max_test, val_fraction=args.val_fraction)
    target = env_target(env, train, test, args) if env is not None else column_target(spec, train, test, args)
    kw = dict(
        train_frames=train["pixels"],
        train_coords=target.train,
        test_frames=test["pixels"],
        test_coords=target.test,
        names=target.names,
        success_radius=target.radius,
        grids=args.grids,
        train_groups=train["episodes"],
        test_pairs=target.pairs,
        device=args.device,
        progress=not args.no_progress,
        knn=args.knn,
    )
    results = {name: probe_encoder(e, **kw, label=name) for name, e in (("pretrained", enc), ("random-init", rnd))}
    radius = target.radius if target.radius is not None else "none (--radius not given)"
    print(
        f"{target.label}  train frames {len(train['pixels'])}  "
        f"test frames {len(test['pixels'])} "
        f"(held-out episodes)  success radius {radius}  "
        f"random-init: {rnd_label}"
    )
    print_table(results, target.names, target.radius)
    if world_models:
        results["world_models"] = {
            name: world_model_distances(wm, test["pixels"], target.pairs, target.radius)
            for name, wm in world_models.items()
        }
        print_distances(results["world_models"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
