"""What a world model file records about its frozen encoder, and rebuilding the encoder from that record.

In-house VideoViT (a few MB): its weights are stored inside the world model file, as they always were, so the
file is self-contained. Foundation encoders (V-JEPA 2 ViT-L: 1.2 GB of safetensors) are *referenced*: the
record holds the family name, the local weights directory, the options, the model/preprocessing config and the
SHA-256 of the directory's weight files; loading re-reads that directory (or one given instead) and refuses it
unless the name and the hash match. Copying the weights would make every world model as large as the encoder and
duplicate identical bytes across every predictor trained on it, with nothing gained: the hash already pins the
exact weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from worldmodel.checkpoint import load_state_dict_checked
from worldmodel.models.encoders.hf import check_weights_dir, dir_sha256, load_hf_encoder
from worldmodel.models.encoders.protocol import IN_HOUSE, EncoderError, FrameEncoder


def encoder_record(encoder: FrameEncoder, info: Mapping[str, Any] | None) -> dict[str, Any]:
    """The record saved with a world model: {"name", "config", "sha256", "path", "options"} (path/options only
    for foundation encoders, which also need the weight hash: their weights are not stored)."""
    info = dict(info or {})
    rec: dict[str, Any] = {"name": encoder.name, "config": encoder.config_dict(), "sha256": info.get("sha256")}
    if encoder.name != IN_HOUSE:
        if not info.get("sha256") or not info.get("path"):
            raise EncoderError(
                f"a world model on the foundation encoder {encoder.name!r} references its weights instead of copying "
                "them: build it with encoder_info=worldmodel.models.encoders.encoder_identity(<encoder entry>)"
            )
        rec["path"] = str(Path(info["path"]).resolve())
        rec["options"] = dict(info.get("options") or {})
    return rec


def encoder_from_record(
    rec: Mapping[str, Any], state: Mapping[str, Tensor] | None, where: str, encoder_dir: str | Path | None = None
) -> FrameEncoder:
    """Rebuild (on CPU, frozen) the encoder a world model was trained on; `encoder_dir` replaces a foundation
    encoder's recorded weights directory (e.g. on another machine), and must hold the same weights."""
    from worldmodel.models.vit import EncoderConfig, VideoViT

    name = rec.get("name", IN_HOUSE)
    if name == IN_HOUSE:
        if encoder_dir is not None:
            raise EncoderError(f"{where} stores its in-house encoder's weights; encoder_dir is for foundation encoders")
        encoder = VideoViT(EncoderConfig.from_dict(rec["config"]))
        load_state_dict_checked(encoder, state or {}, what=f"encoder in {where}")
        return encoder.eval().requires_grad_(False)
    directory = Path(encoder_dir if encoder_dir is not None else rec["path"])
    trained = f"{where} was trained on encoder {name} (weights sha256 {str(rec['sha256'])[:12]}.. from {rec['path']})"
    try:
        check_weights_dir(name, directory)
    except EncoderError as e:
        raise EncoderError(f"{trained}, but {e}; pass encoder_dir=<a copy of those weights>") from e
    sha = dir_sha256(directory)
    if sha != rec["sha256"]:
        raise EncoderError(
            f"{trained}, but {directory} holds other {name} weights (sha256 {sha[:12]}..); its latents would not be "
            "the ones the predictor learnt: pass encoder_dir=<the original weights> or retrain the predictor"
        )
    opts = dict(rec.get("options") or {})
    encoder = load_hf_encoder(name, directory, "cpu", opts.get("img_size"), str(opts.get("dtype") or "float32"))
    if encoder.config_dict() != rec["config"]:
        raise EncoderError(f"{trained}, but {directory} now loads as {encoder.config_dict()} != {rec['config']}")
    return encoder
