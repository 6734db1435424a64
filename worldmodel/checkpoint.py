"""Atomic, integrity-checked checkpoints loaded only with weights_only=True; resume helpers.

The package's lowest layer (torch only): models export and load their weights with it, the trainers
write and resume from it, and the world model stores itself in it.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

MAGIC = "worldmodel-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, tampered with, foreign, or does not match the model/config."""


def _digest(data: bytes) -> str:
    """SHA-256 hex digest of the payload bytes."""
    return hashlib.sha256(data).hexdigest()


def remove_stale_temp_files(path: str | Path) -> list[Path]:
    """Delete the temporary files (``.<name>.<random>.tmp``) a killed ``save_checkpoint(path, ...)`` left
    beside ``path``; returns them.

    Only files named exactly like its own temporary files for this target are touched. Call it where this
    process is the target's only writer (e.g. rank 0 when a trainer starts): it would also remove a concurrent
    writer's file in progress.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    ours = re.compile(re.escape(f".{path.name}.") + "[a-z0-9_]{8}" + re.escape(".tmp"))  # mkstemp's 8 characters
    stale = [p for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp") if ours.fullmatch(p.name) and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_checkpoint(path: str | Path, state: Mapping[str, Any], kind: str) -> Path:
    """Write `state` atomically (tmp file + os.replace) inside a hashed envelope tagged with `kind`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    data = buf.getvalue()
    envelope = {
        "magic": MAGIC,
        "version": VERSION,
        "kind": kind,
        "sha256": _digest(data),
        "payload": torch.frombuffer(bytearray(data), dtype=torch.uint8),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(envelope, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | Path, kind: str | None = None, map_location: str | torch.device = "cpu") -> dict:
    """Load and verify a checkpoint (weights_only=True); raise CheckpointError on anything unexpected."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        env = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, or pickle with objects outside the weights-only allow-list
        raise CheckpointError(f"{path}: unreadable or not a weights-only checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(env, dict) or env.get("magic") != MAGIC:
        raise CheckpointError(f"{path}: foreign file, not a {MAGIC} envelope")
    if env.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {env.get('version')} unsupported (want {VERSION})")
    if kind is not None and env.get("kind") != kind:
        raise CheckpointError(f"{path}: checkpoint kind {env.get('kind')!r}, expected {kind!r}")
    payload = env.get("payload")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
        raise CheckpointError(f"{path}: envelope has no byte payload")
    data = payload.numpy().tobytes()
    if _digest(data) != env.get("sha256"):
        raise CheckpointError(f"{path}: payload hash mismatch (file tampered with or truncated)")
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: payload not loadable with weights_only=True ({e})") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: payload is not a dict")
    return state


def load_state_dict_checked(module: nn.Module, state: Mapping[str, torch.Tensor], what: str = "model") -> None:
    """Strict load_state_dict with one clear message listing missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{what} does not match the checkpoint: missing={missing[:8]} unexpected={unexpected[:8]} "
            f"shape mismatches={shapes[:8]}"
        )
    module.load_state_dict(state, strict=True)


def _diff(saved: Any, current: Any, prefix: str) -> list[str]:
    """Leaf-level differences between two nested config values, as 'key: checkpoint=... current=...'."""
    if isinstance(saved, Mapping) and isinstance(current, Mapping):
        out: list[str] = []
        for k in sorted(set(saved) | set(current), key=str):
            out += _diff(saved.get(k), current.get(k), f"{prefix}.{k}")
        return out
    return [] if saved == current else [f"{prefix}: checkpoint={saved!r} current={current!r}"]


def check_config_match(saved: Mapping[str, Any], current: Mapping[str, Any], keys: list[str], path: str) -> None:
    """Raise CheckpointError naming each leaf of `keys` that differs between checkpoint config and now."""
    diffs = [d for k in keys for d in _diff(saved.get(k), current.get(k), k)]
    if diffs:
        raise CheckpointError(f"{path}: config differs from the run being resumed: " + "; ".join(diffs))


def latest_checkpoint(ckpt_dir: str | Path, name: str = "last.pt") -> Path | None:
    """Path of the resume checkpoint in `ckpt_dir`, or None when starting fresh."""
    p = Path(ckpt_dir) / name
    return p if p.is_file() else None


# --------------------------------------------------------------------------------------------- pretrained dirs
PRETRAINED_CONFIG = "config.json"
PRETRAINED_WEIGHTS = "model.safetensors"
WEIGHTS_SHA256 = "safetensors_sha256"
"""config.json key holding the SHA-256 of model.safetensors, checked on load when present."""


def _file_digest(path: Path, block: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file, read in blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def save_pretrained_dir(directory: str | Path, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (the Hugging Face layout) into `directory`.

    Both files are written to temporary names first and renamed into place only when both are complete, so a
    failure (e.g. a config that is not JSON) leaves an existing directory as it was. config.json also gets the
    weights file's SHA-256 (``safetensors_sha256``), which :func:`load_pretrained_dir` checks.
    """
    import json

    from safetensors.torch import save_file

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory; pick another save_pretrained target")
    json.dumps(dict(config), allow_nan=True)  # a config that is not JSON fails here, before anything is written
    directory.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}  # no shared storage
    tmp_cfg, tmp_w = directory / f".{PRETRAINED_CONFIG}.tmp", directory / f".{PRETRAINED_WEIGHTS}.tmp"
    try:
        save_file(flat, str(tmp_w), metadata={"format": "pt"})
        digest = {WEIGHTS_SHA256: _file_digest(tmp_w)}  # lets the loader detect a damaged weights file
        tmp_cfg.write_text(json.dumps({**dict(config), **digest}, indent=2, sort_keys=True, allow_nan=True) + "\n")
        os.replace(tmp_w, directory / PRETRAINED_WEIGHTS)
        os.replace(tmp_cfg, directory / PRETRAINED_CONFIG)
    finally:
        tmp_cfg.unlink(missing_ok=True)
        tmp_w.unlink(missing_ok=True)
    return directory


def load_pretrained_dir(directory: str | Path, model_type: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a :func:`save_pretrained_dir` directory: (config dict, tensors); no code is executed (JSON and
    safetensors only). Raises CheckpointError when files are missing, unreadable or of another model_type."""
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, w_path = directory / PRETRAINED_CONFIG, directory / PRETRAINED_WEIGHTS
    if not cfg_path.is_file() or not w_path.is_file():
        raise CheckpointError(
            f"{directory}: not a save_pretrained directory (needs {PRETRAINED_CONFIG} and {PRETRAINED_WEIGHTS})"
        )
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{cfg_path}: unreadable config ({e})") from e
    if not isinstance(config, dict) or config.get("model_type") != model_type:
        found = config.get("model_type") if isinstance(config, dict) else None
        raise CheckpointError(f"{directory}: model_type {found!r}, expected {model_type!r}")
    want = config.get(WEIGHTS_SHA256)
    if want is not None and _file_digest(w_path) != want:
        raise CheckpointError(f"{w_path}: SHA-256 differs from {PRETRAINED_CONFIG}'s (file damaged or replaced)")
    try:
        tensors = load_file(str(w_path), device="cpu")
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"{w_path}: unreadable safetensors file ({e})") from e
    return config, tensors
