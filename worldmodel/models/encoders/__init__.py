"""Frozen encoders behind one protocol (:class:`FrameEncoder`): the in-house VideoViT and Hugging Face
foundation models (V-JEPA 2, DINOv2) loaded from local weights. See docs/encoders.md.

``registry.load_frame_encoder`` builds any of them from an ``encoder`` config entry; it is imported lazily
here so that ``worldmodel.models.vit`` can depend on the protocol without an import cycle.
"""

from __future__ import annotations

from typing import Any

from worldmodel.models.encoders.protocol import IN_HOUSE, EncoderError, FrameEncoder

__all__ = ["IN_HOUSE", "EncoderError", "FrameEncoder", "encoder_identity", "load_frame_encoder"]


def __getattr__(name: str) -> Any:
    """Lazy access to the registry's loaders (avoids importing transformers or vit at package import)."""
    if name in ("encoder_identity", "load_frame_encoder"):
        from worldmodel.models.encoders import registry

        return getattr(registry, name)
    raise AttributeError(name)
