"""Probe a frozen encoder against a random-init one of the same shape on held-out episodes.

python scripts/probe_encoder.py --data data/tworoom.h5 --encoder runs/pretrain/X/encoder.pt [--random PATH]

Linear (ridge) probes from pooled frame embeddings to the env's task coordinates (R^2, RMSE, RMSE / success
radius) and Spearman correlation of latent L1 distance with the env's task distance (all pairs, near pairs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worldmodel.eval.probes import env_pair_distances, load_probe_frames, make_env, probe_encoder  # noqa: E402
from worldmodel.models.vit import VideoViT, load_encoder  # noqa: E402


def parse_grids(text: str) -> list[tuple[int, int] | None]:
    """'2,4,mean' -> [(2, 2), (4, 4), None]."""
    return [None if g == "mean" else (int(g), int(g)) for g in text.split(",") if g]


def random_like(encoder: VideoViT, seed: int, device: str) -> VideoViT:
    """A randomly initialised encoder with the same config (frozen, eval mode)."""
    torch.manual_seed(seed)
    enc = VideoViT(encoder.cfg).to(device).eval()
    enc.requires_grad_(False)
    return enc


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


def main() -> None:
    """Load data and encoders, run the probes, print the table (and optionally write JSON)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--encoder", required=True, help="encoder.pt exported by scripts/pretrain.py")
    p.add_argument(
        "--random",
        default=None,
        help="random-init encoder.pt (default: encoder_random.pt beside --encoder, else a fresh init)",
    )
    p.add_argument("--grids", default="2,4", help="pooling grids, e.g. 2,4,mean")
    p.add_argument("--max-train", type=int, default=4000)
    p.add_argument("--max-test", type=int, default=2000)
    p.add_argument("--anchors", type=int, default=200, help="anchor frames for exact env task distances")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="write the full result dict here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    train = load_probe_frames(args.data, "train", args.max_train, val_fraction=args.val_fraction)
    test = load_probe_frames(args.data, "val", args.max_test, val_fraction=args.val_fraction)
    env = make_env(train["meta"])
    names = list(env.task_coord_names)
    radius = float(env.success_threshold)
    to_coords = lambda st: torch.as_tensor(env.state_to_task_coords(st.double().numpy()), dtype=torch.float64)  # noqa: E731
    pairs = env_pair_distances(env, test["states"].double().numpy(), args.anchors)

    enc = load_encoder(args.encoder, args.device)
    rnd_path = Path(args.random) if args.random else Path(args.encoder).with_name("encoder_random.pt")
    rnd = load_encoder(rnd_path, args.device) if rnd_path.is_file() else random_like(enc, 0, args.device)
    kw = dict(
        train_frames=train["pixels"],
        train_coords=to_coords(train["states"]),
        test_frames=test["pixels"],
        test_coords=to_coords(test["states"]),
        names=names,
        success_radius=radius,
        grids=parse_grids(args.grids),
        train_groups=train["episodes"],
        test_pairs=pairs,
        device=args.device,
    )
    results = {"pretrained": probe_encoder(enc, **kw), "random-init": probe_encoder(rnd, **kw)}
    print(
        f"env {train['meta']['env_id']}  train frames {len(train['pixels'])}  "
        f"test frames {len(test['pixels'])} "
        f"(held-out episodes)  success radius {radius}  "
        f"random-init: {rnd_path if rnd_path.is_file() else 'fresh seed 0'}"
    )
    print_table(results, names, radius)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
