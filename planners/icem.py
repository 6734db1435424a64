"""iCEM (Pinneri et al. 2020): CEM with coloured noise, population decay, elite retention, mean injection."""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import BoundLike
from planners.cem import CEMPlanner


def noise_spectrum(beta: float, horizon: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Per-frequency amplitudes (F,) and real-only mask (F,) for 1/f^beta noise, built without host syncs.

    Amplitudes are f^(-beta/2) with f_0 clamped to 1/H, divided by the analytic per-step std of the inverse
    real FFT so samples have unit variance. DC (and Nyquist for even H) bins are real with a sqrt(2) weight,
    which makes beta=0 exactly white.
    """
    n_freq = horizon // 2 + 1
    k = torch.arange(n_freq, device=device)  # (F,)
    f = (k.float() / horizon).clamp_min(1.0 / horizon)  # (F,)
    amp = f.pow(-beta / 2.0)  # (F,)
    real_only = (k == 0) | (k * 2 == horizon)  # (F,)
    # Var(x_t) = sum_k w_k amp_k^2 / H^2 with w = 2 for real-only bins (after the sqrt 2), 4 for complex bins.
    weight = torch.where(real_only, 2.0, 4.0)  # (F,)
    std = (weight * amp.pow(2)).sum().sqrt() / horizon
    scale = torch.where(real_only, amp * 2.0**0.5, amp) / std  # (F,)
    return scale, real_only


def colored_noise(
    beta: float, batch_size: int, num: int, horizon: int, action_dim: int, generator: torch.Generator,
    device: torch.device, spectrum: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Unit-variance Gaussian noise (B, S, H, A) with power spectrum ∝ 1/f^beta along H via an inverse FFT.

    Pass a precomputed `noise_spectrum(beta, horizon, device)` to skip rebuilding it on every call.
    """
    scale, real_only = noise_spectrum(beta, horizon, device) if spectrum is None else spectrum  # (F,), (F,)
    n_freq = scale.shape[0]
    real = torch.randn(batch_size, num, action_dim, n_freq, generator=generator, device=device)  # (B,S,A,F)
    imag = torch.randn(batch_size, num, action_dim, n_freq, generator=generator, device=device)  # (B,S,A,F)
    imag = torch.where(real_only, 0.0, imag)
    x = torch.fft.irfft(torch.complex(real * scale, imag * scale), n=horizon, dim=-1)  # (B, S, A, H)
    return x.transpose(-1, -2)  # (B, S, H, A)


class ICEMPlanner(CEMPlanner):
    """Improved CEM: coloured (power-law) noise, shrinking population, retained elites and mean injection.

    Args (beyond CEMPlanner's, which also gives iCEM its scale search, rank weights and step-based std):
        noise_beta: exponent beta of the 1/f^beta noise spectrum along the horizon (0 white, 2 Brownian-like).
        population_decay: gamma ≥ 1; iteration i draws max(num_samples · gamma^-i, 2·num_elites) samples.
    Class defaults follow the paper (elite_retention 0.3, inject_mean True, momentum 0.1, beta 2, decay 1.25);
    the shipped `planner=icem` (worldmodel/config/planner.py, ICEMConfig) turns momentum and population decay off
    and uses beta 0.5 (measured in scripts/bench_planner_quality.py). Bounds by clipping.
    """

    def __init__(
        self,
        action_low: BoundLike,
        action_high: BoundLike,
        horizon: int,
        num_samples: int = 300,
        iterations: int = 10,
        num_elites: int | float = 0.1,
        init_std: float = 0.5,
        mean_momentum: float = 0.1,
        std_momentum: float = 0.1,
        min_std: float = 0.001,
        elite_retention: float = 0.3,
        inject_mean: bool = True,
        noise_beta: float = 2.0,
        population_decay: float = 1.25,
        elite_weights: str = "log",
        std_update: str = "step",
        scale_levels: int = 6,
        seed: int = 0,
        action_dim: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Validate and store iCEM settings."""
        super().__init__(action_low, action_high, horizon, num_samples, iterations, num_elites, init_std,
                         mean_momentum, std_momentum, min_std, elite_retention, inject_mean,
                         elite_weights=elite_weights, std_update=std_update, scale_levels=scale_levels,
                         seed=seed, action_dim=action_dim, device=device)
        if population_decay < 1.0:
            raise ValueError("population_decay must be >= 1")
        self.noise_beta = float(noise_beta)
        self.population_decay = float(population_decay)
        self.spectrum = noise_spectrum(self.noise_beta, self.horizon, self.device)  # built once, on device

    def population(self, iteration: int) -> int:
        """Decayed sample count for `iteration`, never below 2·num_elites (or num_samples if smaller)."""
        decayed = int(self.num_samples * self.population_decay ** (-iteration))
        return max(decayed, min(2 * self.num_elites, self.num_samples))

    def noise(self, batch_size: int, num: int) -> Tensor:
        """Coloured noise (B, S, H, A) with exponent `noise_beta`."""
        return colored_noise(self.noise_beta, batch_size, num, self.horizon, self.action_dim, self.generator,
                             self.device, self.spectrum)
