"""Benchmark batched JEPA pretraining against a per-sample loop reference at equal token counts.

python scripts/bench_pretrain.py [--device cpu|cuda] [--quick] [--encoder tiny] [--batch-size 32]

Both variants get the same clips and the same trimmed masks: per sample and mask set, Nc context tokens and
Nt target tokens. The reference follows the I-JEPA walkthrough loop (for each sample: encode its context and
its targets; for each target block: run the predictor and the loss), with each sample's Nt target tokens split
into that mask set's number of blocks, so both do the same token work. Each variant runs in its own
subprocess so peak memory (ru_maxrss on CPU, max_memory_allocated on GPU) is measured separately.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.common import (  # noqa: E402
    ArgumentParser,
    non_negative_int,
    positive_float,
    positive_int,
    user_errors_exit,
)
from worldmodel.models.jepa import JEPA, JEPAConfig, gather_tokens  # noqa: E402
from worldmodel.models.masks import MaskSampler, default_vjepa_specs  # noqa: E402
from worldmodel.models.vit import EncoderConfig, VideoViT  # noqa: E402


def load_encoder_yaml(name: str) -> dict[str, Any]:
    """Read configs/encoder/<name>.yaml with PyYAML (no Hydra needed on the benchmark machine)."""
    import yaml

    with (ROOT / "configs" / "encoder" / f"{name}.yaml").open() as f:
        return yaml.safe_load(f)


def build(enc_dict: dict[str, Any], device: torch.device) -> JEPA:
    """JEPA with EMA teacher from an encoder config dict, seeded."""
    torch.manual_seed(0)
    enc = VideoViT(EncoderConfig.from_dict(enc_dict))
    return JEPA(enc, JEPAConfig.from_dict(enc_dict.get("predictor") or {})).to(device)


def loop_loss(
    model: JEPA, pixels: torch.Tensor, masks: list[tuple[torch.Tensor, torch.Tensor]], blocks: list[int]
) -> torch.Tensor:
    """Per-sample reference: per sample encode context and targets; per target block run predictor + L1."""
    grid = model.encoder.cfg.grid(pixels.shape[1], pixels.shape[-1])
    total, count = pixels.new_zeros((), dtype=torch.float32), 0
    for b in range(pixels.shape[0]):
        clip = pixels[b : b + 1]  # (1, T, 3, H, W)
        with torch.no_grad():
            h = model.target_encoder(clip)  # (1, N, D)
            h = F.layer_norm(h, (h.shape[-1],))
        for (ctx_idx, tgt_idx), k in zip(masks, blocks):
            c = ctx_idx[b : b + 1]  # (1, Nc)
            z = model.encoder(clip, keep_idx=c)  # (1, Nc, D)
            for block in tgt_idx[b : b + 1].tensor_split(k, dim=1):  # (1, Nt/k) each
                pred = model.predictor(z, c, block, grid)  # (1, Nt/k, D)
                err = (pred.float() - gather_tokens(h, block).float()).abs().mean(-1)
                total = total + err.sum()
                count += err.numel()
    return total / count


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Run one variant and return its timing/memory record."""
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    enc_dict = load_encoder_yaml(args.encoder)
    model = build(enc_dict, device)
    cfg = model.encoder.cfg
    grid = cfg.grid()
    specs = default_vjepa_specs()
    blocks = [s.num_blocks for s in specs]
    sampler = MaskSampler(specs, grid, min_context=16)
    g = torch.Generator().manual_seed(0)
    n_steps = args.warmup + args.steps
    clips = torch.randint(
        0,
        256,
        (n_steps, args.batch_size, cfg.num_frames, 3, cfg.img_size, cfg.img_size),
        dtype=torch.uint8,
        generator=g,
    )
    all_masks = [[(c.to(device), t.to(device)) for c, t in sampler(args.batch_size, g)] for _ in range(n_steps)]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    losses, t_start, timed = [], 0.0, 0
    for i in range(n_steps):
        if i == args.warmup:
            sync()
            t_start = time.perf_counter()
        if i > args.warmup and args.budget_s and time.perf_counter() - t_start > args.budget_s:
            break  # time cap per variant: report the timed steps completed so far
        pixels = clips[i].to(device)
        with autocast:
            loss = (
                model(pixels, all_masks[i]).loss
                if args.variant == "batched"
                else loop_loss(model, pixels, all_masks[i], blocks)
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.update_target(0.998)
        losses.append(float(loss.detach()))
        timed += int(i >= args.warmup)
    sync()
    elapsed = time.perf_counter() - t_start
    rec = {
        "variant": args.variant,
        "timed_steps": timed,
        "clips_per_s": args.batch_size * timed / elapsed,
        "s_per_step": elapsed / timed,
        "ctx_tokens": [int(c.shape[1]) for c, _ in all_masks[0]],
        "mean_ctx_tokens": sum(c.shape[1] for m in all_masks for c, _ in m) / (len(all_masks) * len(specs)),
        "mean_tgt_tokens": sum(t.shape[1] for m in all_masks for _, t in m) / (len(all_masks) * len(specs)),
        "first_loss": losses[0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_rss,
    }
    if device.type == "cuda":
        rec["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return rec


def encoder_choices() -> list[str]:
    """Names of the VideoViT architecture yamls in configs/encoder/ (those with a ``dim`` key): the export entry
    and the foundation encoders (vjepa2, dinov2) are frozen encoders, not architectures to pretrain."""
    import yaml

    names = []
    for q in sorted((ROOT / "configs" / "encoder").glob("*.yaml")):
        with q.open() as f:
            cfg = yaml.safe_load(f)
        if isinstance(cfg, dict) and "dim" in cfg:
            names.append(q.stem)
    return names


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Parse args; as parent, run both variants in subprocesses and print a table with the speed ratio."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--encoder", default="tiny", help="architecture configs/encoder/<name>.yaml (one with a dim key)")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--steps", type=positive_int, default=None, help="timed steps per variant")
    p.add_argument("--warmup", type=non_negative_int, default=None, help="untimed steps (default 1 on cpu, 3 on cuda)")
    p.add_argument(
        "--threads", type=positive_int, default=None, help="torch threads (default: 2 on cpu, all cores on cuda)"
    )
    p.add_argument("--budget-s", type=positive_float, default=None, help="cap on timed seconds per variant")
    p.add_argument("--quick", action="store_true", help="few steps (smoke / quick comparison)")
    p.add_argument("--variant", choices=["batched", "loop"], help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the raw records as JSON too")
    args = p.parse_args(argv)
    encoders = encoder_choices()
    if args.encoder not in encoders:
        choose = ", ".join(encoders)
        yaml_path = f"configs/encoder/{args.encoder}.yaml"
        if (ROOT / yaml_path).is_file():
            p.error(f"argument --encoder: {yaml_path} is a frozen encoder, not an architecture; choose one of {choose}")
        p.error(f"argument --encoder: no config {yaml_path}; choose one of {choose}")
    if not (args.device == "cpu" or args.device.startswith("cuda")):
        p.error(f"argument --device: expected cpu, cuda or cuda:N, got {args.device!r}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"argument --device {args.device}: no CUDA device here; use --device cpu")
    if args.batch_size is None:
        args.batch_size = 64 if args.device.startswith("cuda") else 32
    if args.warmup is None:
        args.warmup = 3 if args.device.startswith("cuda") else 1
    if args.threads is None:
        args.threads = (os.cpu_count() or 1) if args.device.startswith("cuda") else min(2, os.cpu_count() or 1)
    if args.steps is None:
        args.steps = 2 if args.quick else (20 if args.device.startswith("cuda") else 5)
    if args.variant:
        print("RESULT " + json.dumps(child(args)))
        return
    recs = {}
    for variant in ("batched", "loop"):
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--device",
            args.device,
            "--encoder",
            args.encoder,
            "--batch-size",
            str(args.batch_size),
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--threads",
            str(args.threads),
            *(["--budget-s", str(args.budget_s)] if args.budget_s else []),
        ]
        out = subprocess.run(
            cmd, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        if out.returncode != 0:
            sys.exit(f"{variant} failed:\n{out.stderr[-3000:]}")
        recs[variant] = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
        r = recs[variant]
        print(f"[{variant}] {r['clips_per_s']:.1f} clips/s over {r['timed_steps']} timed steps", flush=True)
    dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu ({args.threads} threads)"
    print(
        f"device: {dev}  encoder: {args.encoder}  batch: {args.batch_size}  max timed steps: {args.steps}  "
        f"torch {torch.__version__}"
    )
    b, lp = recs["batched"], recs["loop"]
    print(
        f"tokens per sample and mask set: context {b['ctx_tokens']} (mean {b['mean_ctx_tokens']:.1f}), "
        f"target mean {b['mean_tgt_tokens']:.1f}  "
        f"[loop: ctx {lp['mean_ctx_tokens']:.1f}, tgt {lp['mean_tgt_tokens']:.1f}]"
    )
    mem_key = "peak_cuda_mb" if "peak_cuda_mb" in b else "rss_growth_mb"
    print(f"{'variant':<10}{'clips/s':>10}{'s/step':>10}{'first loss':>12}{'peak mem MB':>14}  ({mem_key})")
    for name, r in recs.items():
        print(f"{name:<10}{r['clips_per_s']:>10.1f}{r['s_per_step']:>10.3f}{r['first_loss']:>12.4f}{r[mem_key]:>14.1f}")
    print(f"speed-up batched / per-sample loop: {b['clips_per_s'] / lp['clips_per_s']:.2f}x")
    if args.json:
        print(json.dumps(recs, indent=2))


if __name__ == "__main__":
    main()
