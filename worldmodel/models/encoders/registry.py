"""Build any frozen encoder from an ``encoder`` config entry, and identify it (name, options, weight hash).

Config entries (the ``encoder`` group of configs/train_predictor.yaml):
  ``{path: runs/.../encoder.pt}``               in-house VideoViT export of scripts/pretrain.py (hashed envelope)
  ``{path: <dir>}`` (a save_pretrained dir)     in-house VideoViT in config.json + model.safetensors
  ``{name: vjepa2, path: <dir>, dtype: ...}``   V-JEPA 2 from a local Hugging Face directory
  ``{name: dinov2, path: <dir>, img_size: ..., dtype: ...}``   DINOv2 likewise
A plain path (str/Path) means the in-house encoder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from worldmodel.models.encoders.hf import FAMILIES, check_weights_dir, dir_sha256, load_hf_encoder
from worldmodel.models.encoders.protocol import IN_HOUSE, EncoderError, FrameEncoder

EncoderLike = str | Path | Mapping[str, Any]
IN_HOUSE_NAMES = (None, "", "export", IN_HOUSE)
"""``encoder.name`` values that mean the in-house encoder given by ``encoder.path``."""


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder to load: family name, weights path and the options that change its tokens."""

    name: str
    path: Path
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def foundation(self) -> bool:
        """Whether this is a Hugging Face foundation encoder (its weights are referenced, not copied)."""
        return self.name != IN_HOUSE


def encoder_spec(cfg: EncoderLike) -> EncoderSpec:
    """Parse an encoder config entry (or a plain path); one clear EncoderError for an entry that names none."""
    if isinstance(cfg, (str, Path)):
        return EncoderSpec(IN_HOUSE, Path(cfg))
    name = cfg.get("name")
    path = cfg.get("path")
    if name in FAMILIES:
        if not path:
            raise EncoderError(f"encoder={name} needs encoder.path=<local weights dir> (docs/encoders.md)")
        opts = {"img_size": cfg.get("img_size"), "dtype": str(cfg.get("dtype") or "float32")}
        return EncoderSpec(str(name), Path(path), opts)
    if name in IN_HOUSE_NAMES and path:
        return EncoderSpec(IN_HOUSE, Path(path))
    if "dim" in cfg and not path:
        raise EncoderError(
            f"encoder={name} is a VideoViT architecture to pretrain (scripts/pretrain.py); a world model needs a "
            "trained encoder: give encoder.path=<pretrain out_dir>/encoder.pt, or encoder=vjepa2 / encoder=dinov2 "
            "with encoder.path=<local weights dir>"
        )
    raise EncoderError(
        f"encoder entry {dict(cfg)} names no encoder; use encoder.path=<encoder.pt or save_pretrained dir> or "
        f"encoder=<one of {sorted(FAMILIES)}> with encoder.path=<local weights dir>"
    )


def file_sha256(path: str | Path, block: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (an encoder checkpoint's identity)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_sha256(spec: EncoderSpec) -> str:
    """Hash of the encoder's weights: the export file's bytes, or the directory's config + safetensors files."""
    if spec.foundation:
        check_weights_dir(spec.name, spec.path)
        return dir_sha256(spec.path)
    if spec.path.is_file():
        return file_sha256(spec.path)
    if (spec.path / "config.json").is_file():
        return dir_sha256(spec.path)
    raise FileNotFoundError(
        f"encoder checkpoint not found: {spec.path} (export one with scripts/pretrain.py, or pass a "
        "VideoViT.save_pretrained directory)"
    )


def encoder_identity(cfg: EncoderLike) -> dict[str, Any]:
    """{"name", "path", "options", "sha256"}: what a cache key and a world model record about the encoder."""
    spec = encoder_spec(cfg)
    return {"name": spec.name, "path": str(spec.path), "options": dict(spec.options), "sha256": weights_sha256(spec)}


def load_frame_encoder(cfg: EncoderLike, device: str | torch.device = "cpu") -> FrameEncoder:
    """Load the encoder an entry names, frozen (eval mode, requires_grad False) on `device`."""
    from worldmodel.models.vit import VideoViT, load_encoder

    spec = encoder_spec(cfg)
    if spec.foundation:
        return load_hf_encoder(spec.name, spec.path, device, spec.options.get("img_size"), spec.options["dtype"])
    if spec.path.is_dir():
        return VideoViT.from_pretrained(spec.path, device)
    if not spec.path.is_file():
        raise FileNotFoundError(f"encoder checkpoint not found: {spec.path} (export one with scripts/pretrain.py)")
    return load_encoder(spec.path, device)
