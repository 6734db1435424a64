"""Predictor training throughput from the embedding cache vs re-encoding pixels every batch, in one run.

    python scripts/bench_predictor.py [--steps 20] [--threads 1] data.path=DATA.h5 encoder.path=ENCODER.pt

Trailing arguments are Hydra overrides of configs/train_predictor.yaml, so both paths train exactly the
configured predictor with the configured losses. The re-encode path reads pixel clips with ClipDataset (its
defaults), encodes every frame with the frozen encoder and then takes the same optimiser step; the cached path
reads latent clips from the cache. Prints samples/s of both, the time split of the re-encode path, the
one-time cache build, and the ratio against the 5x target.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.common import ArgumentParser, non_negative_int, positive_int, user_errors_exit  # noqa: E402

TARGET = 5.0


def _timed_steps(step_fn: Any, steps: int, warmup: int) -> float:
    """Seconds for `steps` calls of step_fn(i) after `warmup` untimed calls."""
    for i in range(warmup):
        step_fn(i)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step_fn(i)
    return time.perf_counter() - t0


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Measure both training paths on the same data, predictor and losses; print a table and JSON."""
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=positive_int, default=20, help="timed optimiser steps per path")
    ap.add_argument("--warmup", type=non_negative_int, default=2)
    ap.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--skip-build", action="store_true", help="do not time a fresh cache build")
    ap.add_argument("--json", default=None, help="also write the results here")
    args, overrides = ap.parse_known_args(argv)

    import numpy as np
    import torch
    from hydra import compose, initialize_config_dir

    from worldmodel.data import ClipDataset
    from worldmodel.data.embed_cache import ensure_cache
    from worldmodel.models.pooling import encode_frames
    from worldmodel.models.predictor import ActionConditionedPredictor
    from worldmodel.models.vit import load_encoder
    from worldmodel.training.loop import config_to_dict, param_groups, resolve_device
    from worldmodel.training.train_predictor import (
        build_datasets,
        build_predictor_config,
        latent_stats,
        predictor_losses,
    )
    from worldmodel.world_model import WorldModel

    if args.threads:
        torch.set_num_threads(args.threads)
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "configs"), version_base="1.3"):
        cfg = config_to_dict(compose(config_name="train_predictor", overrides=overrides))
    device = resolve_device(cfg["device"])
    d, tcfg, loss_cfg = cfg["data"], cfg["train"], cfg["loss"]
    bs, use_proprio = int(tcfg["batch_size"]), bool(cfg["model"]["use_proprio"])

    build_s = None
    if not args.skip_build:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            ensure_cache(
                d["path"],
                cfg["encoder"]["path"],
                cfg["pool"],
                device,
                cache_path=Path(tmp) / "c.h5",
                batch_frames=int(cfg["cache"]["batch_frames"]),
                progress=False,
            )
            build_s = time.perf_counter() - t0
    train_set, _, _ = build_datasets(cfg, device, progress=True)
    cache = train_set.cache
    n_tok, dim = cache.latent_shape
    env_a = len(cache.meta["action_low"])
    pcfg = build_predictor_config(
        cfg["predictor"],
        dim,
        n_tok,
        train_set.frameskip * env_a,
        cache.proprio.shape[1] if use_proprio else 0,
        int(d["clip_len"]),
    )
    stats = latent_stats(train_set)
    encoder = load_encoder(cfg["encoder"]["path"], device)
    torch.manual_seed(0)
    base = ActionConditionedPredictor.from_config(pcfg)
    wm = WorldModel(
        encoder,
        base,
        cfg["pool"],
        train_set.frameskip,
        env_a,
        torch.tensor(cache.meta["action_low"]),
        torch.tensor(cache.meta["action_high"]),
        stats["latent_mean"],
        stats["latent_std"],
        stats["proprio_mean"] if use_proprio else None,
        stats["proprio_std"] if use_proprio else None,
    ).to(device)
    rng = np.random.default_rng(0)
    n_batches = args.steps + args.warmup

    def make_step(predictor: ActionConditionedPredictor) -> Any:
        """One optimiser step of `predictor` on model-space tensors."""
        opt = torch.optim.AdamW(param_groups(predictor), lr=float(tcfg["lr"]), weight_decay=float(tcfg["weight_decay"]))

        def step(z: torch.Tensor, a: torch.Tensor, p: torch.Tensor | None) -> None:
            losses = predictor_losses(predictor, z, a, p, loss_cfg)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(predictor.parameters(), float(tcfg.get("grad_clip", 1.0)))
            opt.step()

        return step

    # ---- cached path
    idx_cached = [rng.integers(0, len(train_set), bs) for _ in range(n_batches)]
    step_c = make_step(copy.deepcopy(base).train())

    def cached(i: int) -> None:
        b = train_set.batch(idx_cached[i])
        z = wm.normalize_latents(b["latents"].to(device))  # (B, T, N, D)
        a = wm.normalize_actions(b["actions"].to(device))  # (B, T-1, A)
        p = wm.normalize_proprio(b["proprio"].to(device)) if use_proprio else None
        step_c(z, a, p)

    cached_s = _timed_steps(cached, args.steps, args.warmup)

    # ---- re-encode path
    pix_set = ClipDataset(
        d["path"],
        clip_len=int(d["clip_len"]),
        frameskip=int(d.get("frameskip", 1)),
        split="train",
        val_fraction=float(d.get("val_fraction", 0.1)),
        seed=int(d.get("split_seed", 0)),
    )
    idx_pix = [rng.integers(0, len(pix_set), bs) for _ in range(n_batches)]
    step_r = make_step(copy.deepcopy(base).train())
    split = {"read": 0.0, "encode": 0.0, "step": 0.0}

    def reencode(i: int) -> None:
        t0 = time.perf_counter()
        items = [pix_set[int(j)] for j in idx_pix[i]]
        px = torch.stack([it["pixels"] for it in items]).to(device)  # (B, T, 3, H, W) uint8
        acts = torch.stack([it["actions"] for it in items]).to(device)  # (B, T-1, A)
        prop = torch.stack([it["proprio"] for it in items]).to(device)  # (B, T, P)
        t1 = time.perf_counter()
        b, t = px.shape[:2]
        z = encode_frames(encoder, px.reshape(b * t, *px.shape[2:]), cfg["pool"]).reshape(b, t, n_tok, dim)
        z = wm.normalize_latents(z)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        step_r(z, wm.normalize_actions(acts), wm.normalize_proprio(prop) if use_proprio else None)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            split["read"] += t1 - t0
            split["encode"] += t2 - t1
            split["step"] += time.perf_counter() - t2

    reencode_s = _timed_steps(reencode, args.steps, args.warmup)
    samples = args.steps * bs
    res = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "data": d["path"],
        "frames": int(cache.latents.shape[0]),
        "pool": cfg["pool"],
        "latent_shape": [n_tok, dim],
        "clip_len": int(d["clip_len"]),
        "batch_size": bs,
        "predictor": {k: getattr(pcfg, k) for k in ("width", "depth", "heads", "num_tokens")},
        "cached_samples_per_s": samples / cached_s,
        "reencode_samples_per_s": samples / reencode_s,
        "speedup": reencode_s / cached_s,
        "target": TARGET,
        "reencode_split_s_per_step": {k: v / args.steps for k, v in split.items()},
        "cache_build_s": build_s,
        "cache_build_frames_per_s": None if build_s is None else cache.latents.shape[0] / build_s,
    }
    print(f"{'path':<22}{'samples/s':>12}")
    print(f"{'cached latents':<22}{res['cached_samples_per_s']:>12.1f}")
    print(f"{'re-encode each batch':<22}{res['reencode_samples_per_s']:>12.1f}")
    sp = res["reencode_split_s_per_step"]
    print(f"re-encode step split: read {sp['read']:.3f}s  encode {sp['encode']:.3f}s  predictor {sp['step']:.3f}s")
    if build_s is not None:
        print(
            f"one-time cache build: {build_s:.1f}s for {res['frames']} frames "
            f"({res['cache_build_frames_per_s']:.0f} frames/s)"
        )
    verdict = "meets" if res["speedup"] >= TARGET else "BELOW"
    print(f"speedup {res['speedup']:.1f}x ({verdict} the {TARGET:.0f}x target)")
    print(json.dumps(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
