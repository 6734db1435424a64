"""A learned distance on frozen latents: about how many data steps apart two frames are, for the planner's cost.

Why: the raw distance between pooled latents (L1 or L2) is precise near the goal but goes flat a short way from
it: once two frames show the agent in clearly different places, every further place looks "equally different"
(TwoRoom: held-out pairs 4-8 success radii apart and pairs farther than 8 are as far apart in mean latent L1;
docs/results.md, "A learned step metric"). A planner with a short horizon then has no slope to follow from far
away. This head maps a frame's latents to a small vector whose Euclidean distances grow with the number of steps
between frames along the data's own trajectories, and so keeps growing with range, and goes around walls.

How (a symmetric form of quasimetric RL, Wang et al. 2023): with ``d(x, y) = |phi(x) - phi(y)|``, maximise the
distance of random frame pairs (capped) subject to consecutive frames of a trajectory being at most one step
apart. Under that constraint the largest distance any pair can get is the number of data steps on the shortest
chain of observed transitions between them, so the optimum measures reachability, not appearance. It uses the
trajectories' time order only: no state, proprio or label enters it, and the encoder stays frozen.

Shape letters: N latent tokens per frame, D latent dim, K metric dim.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class LatentMetric(nn.Module):
    """phi: latents (..., N, D) in the world model's space -> (..., K); ``distance`` is |phi(a) - phi(b)| in steps.

    Args:
        latent_shape: (N, D) of one frame's latents.
        width: hidden width of the two-layer MLP.
        dim: K, the embedding the distance is measured in.
        mean, std: (N, D) input standardisation (the training frames'); identity when not given.

    Buffer ``unit`` (a scalar) is the latent L1 distance per metric step, measured on random training pairs when
    the metric is fitted: the planner's metric term multiplies by it, so its weight is on the latent term's scale.
    """

    def __init__(
        self,
        latent_shape: tuple[int, int],
        width: int = 512,
        dim: int = 64,
        mean: Tensor | None = None,
        std: Tensor | None = None,
    ) -> None:
        super().__init__()
        n, d = (int(x) for x in latent_shape)
        if min(n, d, width, dim) < 1:
            raise ValueError(f"latent metric sizes must be >= 1: latent_shape={latent_shape} width={width} dim={dim}")
        self.latent_shape, self.width, self.dim = (n, d), int(width), int(dim)
        self.register_buffer("mean", torch.zeros(n, d) if mean is None else mean.float().reshape(n, d))  # (N, D)
        self.register_buffer("std", torch.ones(n, d) if std is None else std.float().reshape(n, d))  # (N, D)
        self.register_buffer("unit", torch.ones(()))  # latent L1 per step, set by the fit
        self.net = nn.Sequential(
            nn.Linear(n * d, width), nn.GELU(), nn.Linear(width, width), nn.GELU(), nn.Linear(width, dim)
        )

    def forward(self, z: Tensor) -> Tensor:
        """(..., N, D) latents -> (..., K) metric embedding."""
        if tuple(z.shape[-2:]) != self.latent_shape:
            raise ValueError(f"latent metric expects latents (..., {self.latent_shape}), got {tuple(z.shape)}")
        x = ((z - self.mean) / self.std).flatten(-2)  # (..., N*D)
        return self.net(x)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """(..., N, D) x (..., N, D) (broadcast) -> (...,) distances in data steps."""
        return (self(a) - self(b)).norm(dim=-1)

    def config_dict(self) -> dict[str, Any]:
        """The sizes that rebuild this module (JSON-able)."""
        return {"latent_shape": list(self.latent_shape), "width": self.width, "dim": self.dim}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LatentMetric:
        """An untrained module of the recorded sizes (load its state_dict next)."""
        return cls(tuple(config["latent_shape"]), int(config["width"]), int(config["dim"]))  # type: ignore[arg-type]
