"""The frozen-encoder protocol the rest of the library depends on: frames in, patch tokens out.

Shape letters: B frames, H/W pixels, H'/W' patch grid, N = H' * W' patch tokens, D token width.

Implemented by the in-house :class:`worldmodel.models.vit.VideoViT` and by the Hugging Face wrappers in
:mod:`worldmodel.models.encoders.hf` (V-JEPA 2, DINOv2). The embedding cache, ``pooling.encode_frames`` and
``WorldModel`` only use what is listed here, so any module with these members works as a frozen encoder.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

IN_HOUSE = "videovit"
"""Name of the in-house encoder (``VideoViT``), as recorded in world models and caches."""


class EncoderError(ValueError):
    """An encoder (weights directory, config or input size) cannot be used as asked; the message says why."""


@runtime_checkable
class FrameEncoder(Protocol):
    """A frozen image encoder producing one set of patch tokens per frame."""

    @property
    def name(self) -> str:
        """Short name of the encoder family ("videovit", "vjepa2", "dinov2"); recorded in world models."""
        ...

    @property
    def dim(self) -> int:
        """Token width D."""
        ...

    def patch_grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (H', W') of the tokens made from frames of height x width pixels; raises EncoderError
        when such frames do not fit the encoder."""
        ...

    def embed_image(self, images: Tensor) -> Tensor:
        """Encode single frames: (B, 3, H, W) uint8 (or float in [0, 1]) -> (B, H'*W', D) patch tokens, row-major."""
        ...

    def config_dict(self) -> dict[str, Any]:
        """JSON-able description naming the encoder ({"name": ..., ...}); with the weight hash it identifies it."""
        ...
