"""Step-indexed schedules: warm-up + cosine learning rate, cosine weight decay, EMA momentum ramp."""

from __future__ import annotations

import math
from dataclasses import dataclass


def cosine_interp(start: float, end: float, frac: float) -> float:
    """Cosine interpolation from `start` (frac=0) to `end` (frac=1), frac clipped to [0, 1]."""
    frac = min(max(frac, 0.0), 1.0)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * frac))


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warm-up from `start` to `peak` over `warmup` steps, then cosine decay to `final` at `total`."""

    peak: float
    total: int
    warmup: int = 0
    start: float = 0.0
    final: float = 0.0

    def __call__(self, step: int) -> float:
        """Value at optimisation step `step` (0-based)."""
        if self.warmup > 0 and step < self.warmup:
            return self.start + (self.peak - self.start) * step / self.warmup
        span = max(self.total - self.warmup, 1)
        return cosine_interp(self.peak, self.final, (step - self.warmup) / span)


@dataclass(frozen=True)
class CosineRamp:
    """Cosine ramp from `start` to `end` over `total` steps (weight decay 0.04 -> 0.4 as in I-JEPA/V-JEPA)."""

    start: float
    end: float
    total: int

    def __call__(self, step: int) -> float:
        """Value at step `step`."""
        return cosine_interp(self.start, self.end, step / max(self.total, 1))


@dataclass(frozen=True)
class LinearRamp:
    """Linear ramp from `start` to `end` over `total` steps (EMA momentum 0.998 -> 1.0)."""

    start: float
    end: float
    total: int

    def __call__(self, step: int) -> float:
        """Value at step `step`, held at `end` afterwards."""
        frac = min(max(step / max(self.total, 1), 0.0), 1.0)
        return self.start + (self.end - self.start) * frac
