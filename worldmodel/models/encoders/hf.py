"""Hugging Face foundation encoders (V-JEPA 2, DINOv2) as frozen :class:`FrameEncoder`s, from local weights.

Shape letters: B frames, S the model's image side, p its patch side, N = (S/p)^2 patch tokens, D width.

Preprocessing (``embed_image``), per model:
  both      uint8 RGB frames (B, 3, H, W) -> float in [0, 1] -> resized to S x S (the whole frame, no centre crop:
            simulator frames are square and the agent may be at the border) -> (x - mean) / std with the
            model's processor statistics (ImageNet mean/std unless its preprocessor json says otherwise).
  vjepa2    S = config.crop_size (256 for facebook/vjepa2-vitl-fpc64-256; its RoPE positions assume it, so it is
            not configurable), bilinear resize as its video processor. Each frame is encoded on its own as a clip
            of tubelet_size (2) copies of itself, as V-JEPA 2-AC does, so there is one latent per frame and a
            goal image maps like any observation. Tokens: the encoder's last layer after its final LayerNorm
            (the predictor inside VJEPA2Model is dropped at load).
  dinov2    S = preprocessor_config.json crop_size if present, else 224 (DINO-WM's input size; S must be a
            multiple of patch_size 14), bicubic resize as its image processor; position embeddings are
            interpolated by the model. Tokens: last_hidden_state (after the final LayerNorm) without the CLS
            token (and without register tokens, if the checkpoint has any).

Weights are read with ``from_pretrained(dir, local_files_only=True, use_safetensors=True)``: nothing reaches the
network and nothing but JSON and safetensors is read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodel.models.encoders.protocol import EncoderError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

FAMILIES: dict[str, dict[str, Any]] = {
    "vjepa2": {"model_type": "vjepa2", "repo": "facebook/vjepa2-vitl-fpc64-256", "resample": "bilinear"},
    "dinov2": {"model_type": "dinov2", "repo": "facebook/dinov2-small", "resample": "bicubic"},
}
"""Foundation encoder families: the config.json ``model_type`` each needs and an example Hub repository."""


def weight_files(directory: Path) -> list[Path]:
    """The files that define a Hugging Face model directory's tokens: config.json, *.safetensors, the index json
    and the processor jsons (they set image size and mean/std)."""
    names = ["config.json", "preprocessor_config.json", "video_preprocessor_config.json"]
    names += sorted(p.name for p in directory.glob("*.safetensors"))
    names += sorted(p.name for p in directory.glob("*.safetensors.index.json"))
    return [directory / n for n in names if (directory / n).is_file()]


def dir_sha256(directory: str | Path, block: int = 1 << 22) -> str:
    """SHA-256 over (name, bytes) of a model directory's weight files (``weight_files``), in name order."""
    outer = hashlib.sha256()
    for path in weight_files(Path(directory)):
        inner = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(block), b""):
                inner.update(chunk)
        outer.update(f"{path.name}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest()


def check_weights_dir(family: str, directory: str | Path) -> dict[str, Any]:
    """Validate a local weights directory for `family` before loading; returns its config.json as a dict."""
    if family not in FAMILIES:
        raise EncoderError(f"unknown foundation encoder {family!r}; choose one of {sorted(FAMILIES)}")
    spec, directory = FAMILIES[family], Path(directory)
    fetch = f"download it on a machine with internet: hf download {spec['repo']} --local-dir {directory}"
    if not directory.is_dir():
        raise EncoderError(f"encoder={family}: weights directory {directory} not found; {fetch} (docs/encoders.md)")
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise EncoderError(
            f"encoder={family}: {directory} has no config.json, so it is not a Hugging Face model directory; {fetch}"
        )
    try:
        config = json.loads(cfg_path.read_text())
    except ValueError as e:
        raise EncoderError(f"encoder={family}: {cfg_path} is not valid JSON ({e}); {fetch}") from e
    found = config.get("model_type")
    if found != spec["model_type"]:
        other = [k for k, v in FAMILIES.items() if v["model_type"] == found]
        hint = f"use encoder={other[0]} for it" if other else "point encoder.path at a directory of that model"
        raise EncoderError(
            f"encoder={family} needs a {spec['model_type']!r} model but {directory} holds model_type {found!r}; {hint}"
        )
    if not list(directory.glob("*.safetensors")):
        raise EncoderError(
            f"encoder={family}: {directory} has no *.safetensors weights (only safetensors are loaded); {fetch}"
        )
    return config


def _processor_settings(directory: Path) -> dict[str, Any]:
    """Image size and mean/std from the directory's (video_)preprocessor_config.json, when present."""
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        path = directory / name
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError as e:
                raise EncoderError(f"{path} is not valid JSON ({e}); re-download the model directory") from e
    return {}


def _side(value: Any) -> int | None:
    """An int side from a processor size entry (int, {"height", "width"} or {"shortest_edge"})."""
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return value.get("height") or value.get("shortest_edge")
    return None


class HFFrameEncoder(nn.Module):
    """A frozen Hugging Face ViT (V-JEPA 2 encoder or DINOv2) behind the FrameEncoder protocol."""

    def __init__(self, family: str, backbone: nn.Module, hf_config: Any, img_size: int, processor: dict) -> None:
        super().__init__()
        self.family = family
        self.backbone = backbone
        self.hf_config = hf_config
        self.patch = int(hf_config.patch_size if isinstance(hf_config.patch_size, int) else hf_config.patch_size[0])
        self.img_size = int(img_size)
        if self.img_size % self.patch:
            raise EncoderError(
                f"encoder={family}: image size {self.img_size} is not a multiple of the model's patch size "
                f"{self.patch}, so its patch grid does not fit; set encoder.img_size to a multiple of {self.patch}"
            )
        self.mean = tuple(float(x) for x in processor.get("image_mean", IMAGENET_MEAN))
        self.std = tuple(float(x) for x in processor.get("image_std", IMAGENET_STD))
        self.resample = FAMILIES[family]["resample"]
        self.tubelet = int(getattr(hf_config, "tubelet_size", 1)) if family == "vjepa2" else 1
        self.skip = 1 + int(getattr(hf_config, "num_register_tokens", 0) or 0) if family == "dinov2" else 0
        self.register_buffer("pix_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pix_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    @property
    def name(self) -> str:
        """Family name: "vjepa2" or "dinov2"."""
        return self.family

    @property
    def dim(self) -> int:
        """Token width D (the model's hidden size)."""
        return int(self.hf_config.hidden_size)

    def patch_grid(self, height: int, width: int) -> tuple[int, int]:
        """(S/p, S/p): every frame is resized to the model's S x S input, whatever its size."""
        if height < 1 or width < 1:
            raise EncoderError(f"frames of {height}x{width} pixels cannot be encoded")
        side = self.img_size // self.patch
        return side, side

    def config_dict(self) -> dict[str, Any]:
        """What identifies this encoder besides its weight hash: family, model shape and preprocessing."""
        c = self.hf_config
        return {
            "name": self.family,
            "model_type": c.model_type,
            "img_size": self.img_size,
            "patch": self.patch,
            "dim": self.dim,
            "depth": int(c.num_hidden_layers),
            "heads": int(c.num_attention_heads),
            "frames_per_clip": self.tubelet,
            "resample": self.resample,
            "mean": list(self.mean),
            "std": list(self.std),
            "dtype": str(next(self.backbone.parameters()).dtype).removeprefix("torch."),
        }

    def preprocess(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) uint8 or float in [0, 1] -> resized, normalised (B, 3, S, S) float32."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise EncoderError(f"expected frames (B, 3, H, W), got {tuple(images.shape)}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()  # (B, 3, H, W)
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            x = F.interpolate(
                x, size=(self.img_size, self.img_size), mode=self.resample, antialias=True, align_corners=False
            ).clamp_(0.0, 1.0)  # (B, 3, S, S)
        return (x - self.pix_mean) / self.pix_std

    @torch.no_grad()
    def embed_image(self, images: Tensor) -> Tensor:
        """Encode single frames: (B, 3, H, W) -> patch tokens (B, (S/p)^2, D), row-major."""
        x = self.preprocess(images).to(next(self.backbone.parameters()).dtype)  # (B, 3, S, S)
        if self.family == "vjepa2":
            clip = x[:, None].expand(-1, self.tubelet, -1, -1, -1)  # (B, tubelet, 3, S, S): one tubelet per frame
            return self.backbone(pixel_values_videos=clip).last_hidden_state  # (B, N, D)
        return self.backbone(pixel_values=x).last_hidden_state[:, self.skip :]  # (B, N, D): CLS/registers dropped


def _from_pretrained(family: str, directory: Path, dtype: torch.dtype) -> nn.Module:
    """The transformers model of `family` from a local directory; raises EncoderError on missing/odd weights."""
    if family == "vjepa2":
        from transformers import VJEPA2Model as cls
    else:
        from transformers import Dinov2Model as cls
    try:
        model, info = cls.from_pretrained(
            str(directory), local_files_only=True, use_safetensors=True, dtype=dtype, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError) as e:
        raise EncoderError(f"encoder={family}: cannot load weights from {directory} ({type(e).__name__}: {e})") from e
    missing = [k for k in info.get("missing_keys", []) if not k.startswith("predictor.")]
    bad = list(info.get("mismatched_keys", []))
    if missing or bad:
        raise EncoderError(
            f"encoder={family}: the weights in {directory} do not match its config.json (missing {missing[:5]}, "
            f"mismatched {bad[:5]}); re-download the directory"
        )
    return model.encoder if family == "vjepa2" else model  # V-JEPA 2: keep the encoder, drop its predictor


def load_hf_encoder(
    family: str,
    directory: str | Path,
    device: str | torch.device = "cpu",
    img_size: int | None = None,
    dtype: str = "float32",
) -> HFFrameEncoder:
    """Load a foundation encoder from a local Hugging Face directory, frozen (eval, no grad) on `device`.

    img_size: input side S (DINOv2 only; null takes the processor's crop size, else 224). dtype: weights and
    compute dtype (float32 | bfloat16 | float16); the tokens handed on are cast to float32 by encode_frames.
    """
    directory = Path(directory)
    config = check_weights_dir(family, directory)
    if dtype not in DTYPES:
        raise EncoderError(f"encoder.dtype={dtype!r} unsupported; use one of {sorted(DTYPES)}")
    processor = _processor_settings(directory)
    if family == "vjepa2":
        side = int(config.get("crop_size", 256))
        if img_size is not None and int(img_size) != side:
            raise EncoderError(
                f"encoder=vjepa2: img_size={img_size} differs from the model's crop_size {side}; its rotary "
                "positions assume crop_size, so leave encoder.img_size null"
            )
    else:
        side = int(img_size) if img_size is not None else int(_side(processor.get("crop_size")) or 224)
    patch = config.get("patch_size", 14)
    patch = patch if isinstance(patch, int) else patch[0]
    if side % patch:  # check before reading hundreds of MB of weights
        raise EncoderError(
            f"encoder={family}: image size {side} is not a multiple of the model's patch size {patch}, so its patch "
            f"grid does not fit; set encoder.img_size to a multiple of {patch}"
        )
    backbone = _from_pretrained(family, directory, DTYPES[dtype])
    enc = HFFrameEncoder(family, backbone, backbone.config, side, processor)
    return enc.to(device).eval().requires_grad_(False)
