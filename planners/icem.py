"""iCEM planner (Pinneri et al. 2020): CEM with coloured noise, population decay, elite retention, mean injection."""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import BoundLike
from planners.cem import CEMPlanner


def colored_noise(
    beta: float, batch_size: int, num: int, horizon: int, action_dim: int, generator: torch.Generator,
    device: torch.device,
) -> Tensor:
    """Unit-variance Gaussian noise (B, S, H, A) with power spectrum ∝ 1/f^beta along H (beta=0 is white).

    Spectrum amplitudes f^(-beta/2) (f_0 clamped to 1/H) scale complex Gaussians; DC and Nyquist terms are
    real with √2 weight so beta=0 gives exactly independent samples; the inverse real FFT is then divided by
    its analytic per-step std.
    """
    n_freq = horizon // 2 + 1
    f = torch.arange(n_freq, device=device, dtype=torch.float32) / horizon  # (F,)
    f[0] = 1.0 / horizon
    amp = f.pow(-beta / 2.0)  # (F,)
    real = torch.randn(batch_size, num, action_dim, n_freq, generator=generator, device=device)  # (B,S,A,F)
    imag = torch.randn(batch_size, num, action_dim, n_freq, generator=generator, device=device)  # (B,S,A,F)
    real_only = torch.zeros(n_freq, dtype=torch.bool, device=device)  # DC (and Nyquist for even H)
    real_only[0] = True
    if horizon % 2 == 0:
        real_only[-1] = True
    scale = torch.where(real_only, amp * 2.0**0.5, amp)  # (F,)
    imag = torch.where(real_only, torch.zeros_like(imag), imag)
    x = torch.fft.irfft(torch.complex(real * scale, imag * scale), n=horizon, dim=-1)  # (B, S, A, H)
    # Var(x_t) = sum_k w_k amp_k^2 / H^2, w = 2 for real-only bins (after the sqrt 2), 4 for complex bins.
    weight = torch.where(real_only, torch.full_like(amp, 2.0), torch.full_like(amp, 4.0))  # (F,)
    std = (weight * amp.pow(2)).sum().sqrt() / horizon
    return (x / std).transpose(-1, -2)  # (B, S, H, A)


class ICEMPlanner(CEMPlanner):
    """Improved CEM: coloured (power-law) noise, shrinking population, retained elites and mean injection.

    Args (beyond CEMPlanner's):
        noise_beta: exponent beta of the 1/f^beta noise spectrum along the horizon (0 white, 2 Brownian-like).
        population_decay: gamma ≥ 1; iteration i draws max(num_samples · gamma^-i, 2·num_elites) samples.
    Defaults follow the paper: elite_retention 0.3, inject_mean True, momentum 0.1. Bounds by clipping.
    """

    def __init__(
        self,
        action_low: BoundLike,
        action_high: BoundLike,
        horizon: int,
        num_samples: int = 300,
        iterations: int = 10,
        num_elites: int = 30,
        init_std: float = 0.5,
        mean_momentum: float = 0.1,
        std_momentum: float = 0.1,
        min_std: float = 0.02,
        elite_retention: float = 0.3,
        inject_mean: bool = True,
        noise_beta: float = 2.0,
        population_decay: float = 1.25,
        seed: int = 0,
        action_dim: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Validate and store iCEM settings."""
        super().__init__(action_low, action_high, horizon, num_samples, iterations, num_elites, init_std,
                         mean_momentum, std_momentum, min_std, elite_retention, inject_mean, seed,
                         action_dim, device)
        if population_decay < 1.0:
            raise ValueError("population_decay must be >= 1")
        self.noise_beta = float(noise_beta)
        self.population_decay = float(population_decay)

    def population(self, iteration: int) -> int:
        """Decayed sample count for `iteration`, never below 2·num_elites (or num_samples if smaller)."""
        decayed = int(self.num_samples * self.population_decay ** (-iteration))
        return max(decayed, min(2 * self.num_elites, self.num_samples))

    def noise(self, batch_size: int, num: int) -> Tensor:
        """Coloured noise (B, S, H, A) with exponent `noise_beta`."""
        return colored_noise(self.noise_beta, batch_size, num, self.horizon, self.action_dim, self.generator,
                             self.device)
