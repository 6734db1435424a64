"""Frozen-encoder throughput (frames/s) of each encoder class at one tiny size, against the in-house VideoViT.

    OMP_NUM_THREADS=1 python scripts/bench_encoders.py [--dim 192] [--depth 6] [--heads 3] [--patch 8]
        [--image-size 64] [--batch 64] [--reps 5] [--threads 1] [--device cpu] [--json out.json]

All three encoders get the same width, depth, heads and patch size, are built with random weights, written to a
temporary directory (VideoViT.save_pretrained / transformers save_pretrained) and loaded through the library's
own loader (``load_frame_encoder``, local files only), then encode the same uint8 frames with
``pooling.encode_frames`` (pool "none"): exactly the path the embedding cache and the world model take, including
each model's preprocessing. V-JEPA 2 encodes each frame as a 2-frame clip of itself (one tubelet, like VideoViT);
DINOv2 encodes the frame plus a CLS token. Frames/s is the median over --reps rounds after one warm-up call; each
round times every encoder once, in turn (fair on a shared machine); the ratio column is each encoder's frames/s
over VideoViT's, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.common import ArgumentParser, positive_int, user_errors_exit  # noqa: E402


def build_dirs(root: Path, dim: int, depth: int, heads: int, patch: int, size: int) -> dict[str, dict[str, Any]]:
    """Save one random encoder of each class at the given shape; return their ``encoder`` config entries."""
    import torch
    from transformers import Dinov2Config, Dinov2Model, VJEPA2Config, VJEPA2Model

    from worldmodel.models.vit import EncoderConfig, VideoViT

    torch.manual_seed(0)
    VideoViT(
        EncoderConfig(img_size=size, num_frames=2, tubelet=2, patch=patch, dim=dim, depth=depth, heads=heads)
    ).save_pretrained(root / "videovit")
    shape = {"hidden_size": dim, "num_hidden_layers": depth, "num_attention_heads": heads, "patch_size": patch}
    VJEPA2Model(
        VJEPA2Config(
            crop_size=size,
            frames_per_clip=2,
            tubelet_size=2,
            mlp_ratio=4.0,
            pred_hidden_size=32,
            pred_num_attention_heads=2,
            pred_num_hidden_layers=1,
            pred_num_mask_tokens=2,
            **shape,
        )
    ).save_pretrained(root / "vjepa2")
    Dinov2Model(Dinov2Config(image_size=size, intermediate_size=4 * dim, **shape)).save_pretrained(root / "dinov2")
    return {
        "videovit": {"path": str(root / "videovit")},
        "vjepa2": {"name": "vjepa2", "path": str(root / "vjepa2")},
        "dinov2": {"name": "dinov2", "path": str(root / "dinov2"), "img_size": size},
    }


def _timed(enc: Any, x: Any, device: str) -> float:
    """Seconds for one encode_frames call (pool "none") on frames x."""
    import torch

    from worldmodel.models.pooling import encode_frames

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    encode_frames(enc, x, "none")  # (B, N, D)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure(entries: dict[str, dict[str, Any]], frames: Any, reps: int, device: str) -> dict[str, dict[str, Any]]:
    """Median frames/s of each encoder over `reps` rounds; every round times each encoder once, in turn, so a
    shared machine's load changes hit all of them alike (one untimed warm-up call each first)."""
    from worldmodel.models.encoders import load_frame_encoder
    from worldmodel.models.pooling import encode_frames

    x = frames.to(device)
    encs = {name: load_frame_encoder(e, device) for name, e in entries.items()}
    shapes = {name: list(encode_frames(enc, x, "none").shape[1:]) for name, enc in encs.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in encs}
    for _ in range(reps):
        for name, enc in encs.items():
            times[name].append(_timed(enc, x, device))
    return {
        name: {
            "frames_per_s": x.shape[0] / statistics.median(times[name]),
            "tokens": shapes[name],
            "params": sum(p.numel() for p in enc.parameters()),  # type: ignore[attr-defined]
        }
        for name, enc in encs.items()
    }


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Measure every encoder class on the same frames; print a table (and JSON with --json)."""
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=positive_int, default=192)
    ap.add_argument("--depth", type=positive_int, default=6)
    ap.add_argument("--heads", type=positive_int, default=3)
    ap.add_argument("--patch", type=positive_int, default=8)
    ap.add_argument("--image-size", type=positive_int, default=64)
    ap.add_argument("--batch", type=positive_int, default=64, help="frames per timed batch")
    ap.add_argument("--reps", type=positive_int, default=5, help="timed batches per encoder")
    ap.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.dim % args.heads or args.image_size % args.patch:
        ap.error("--dim must divide by --heads and --image-size by --patch")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (args.batch, 3, args.image_size, args.image_size), dtype=torch.uint8, generator=g)
    with tempfile.TemporaryDirectory() as tmp:
        entries = build_dirs(Path(tmp), args.dim, args.depth, args.heads, args.patch, args.image_size)
        res = measure(entries, frames, args.reps, args.device)
    ref = res["videovit"]["frames_per_s"]
    print(
        f"encode throughput, {args.image_size}px frames, dim {args.dim} depth {args.depth} heads {args.heads} "
        f"patch {args.patch}, batch {args.batch}, {torch.get_num_threads()} thread(s), {args.device}"
    )
    print(f"{'encoder':<10} {'params':>10} {'tokens (N, D)':>14} {'frames/s':>10} {'vs videovit':>12}")
    for name, r in res.items():
        r["ratio_vs_videovit"] = r["frames_per_s"] / ref
        tok = f"({r['tokens'][0]}, {r['tokens'][1]})"
        print(f"{name:<10} {r['params']:>10,} {tok:>14} {r['frames_per_s']:>10.1f} {r['ratio_vs_videovit']:>11.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": res}, indent=2))


if __name__ == "__main__":
    main()
