"""Typed settings of the ``planner`` config group (configs/planner/*.yaml select these schemas).

Every planner takes its action bounds from the environment when it is built (``action_low``/``action_high`` are
filled in by the caller), so only the search settings are configured. ``PLANNER_SCHEMAS`` maps each planner class
path (``_target_``) to its schema, so a planner given as a plain dict is checked too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PlannerConfig:
    """Settings every planner shares."""

    _target_: str = "planners.cem.CEMPlanner"
    """class path of the planner (hydra.utils.instantiate)"""
    action_low: Any = None
    """(A,) lower action bound, action units; supplied by the caller (the env's action space)"""
    action_high: Any = None
    """(A,) upper action bound, action units; supplied by the caller"""
    horizon: int = 5
    """H, actions per planned sequence (planner steps; each is the world model's frameskip env steps)"""
    seed: int = 0
    """seed of the planner's own torch.Generator (evaluation overrides it with the episode seed)"""
    action_dim: int | None = None
    """A; only needed when the bounds are scalars"""
    device: str | None = None
    """device for planner tensors; null follows the device of action_low"""


@dataclass
class CEMConfig(PlannerConfig):
    """Cross-entropy method (``planners.cem.CEMPlanner``; ``planner=cem``). Defaults measured by
    scripts/bench_planner_quality.py: within 6% of the optimum on every problem of planners/problems.py at 300 x 10."""

    _target_: str = "planners.cem.CEMPlanner"
    num_samples: int = 300
    """S, candidate sequences per iteration and environment (count; the sampling budget)"""
    iterations: int = 10
    """refits of the Gaussian per plan call (count; the sequential budget)"""
    num_elites: Any = 0.1
    """K, lowest-cost samples used to refit mean and std (int count, or a fraction of num_samples)"""
    init_std: float = 0.5
    """initial std, fraction of the half action range (the first iteration's scale search shrinks it)"""
    mean_momentum: float = 0.0
    """m in mean <- m*old + (1-m)*elite mean (dimensionless; 0 = plain CEM)"""
    std_momentum: float = 0.0
    """same momentum for the std (dimensionless)"""
    min_std: float = 0.001
    """std floor, fraction of the half action range (0.02 kept samples too coarse to reach optima whose actions are
    small relative to the bounds: 1.34x on single_integrator_wide)"""
    elite_retention: float = 0.0
    """fraction of last iteration's elites kept (with their costs) in the next pool (of num_elites)"""
    inject_mean: bool = True
    """evaluate the current mean as one candidate every iteration, and the final mean once after the last (one extra
    cost call of 1 sequence per env); the answer is the best evaluated"""
    elite_weights: str = "log"
    """log: CMA-ES log-rank weights over the K elites (best heaviest) | equal: classic CEM mean"""
    std_update: str = "step"
    """step: std = weighted RMS of the elites' steps from the OLD mean (stays large while the mean is still moving,
    collapses when it stops) | spread: classic CEM spread around the new mean"""
    scale_levels: int = 6
    """L; first-iteration sample s uses std x 2^-(s mod L) (count; 1 = off), so the refit picks the scale that produced
    the elites when init_std is far wider than the optimal actions"""


@dataclass
class MPPIConfig(PlannerConfig):
    """Model-predictive path integral control (``planners.mppi.MPPIPlanner``; ``planner=mppi``). Weights:
    softmax(-(c - min c) / lambda) over the num_elites lowest-cost samples of each environment (0 for the rest)."""

    _target_: str = "planners.mppi.MPPIPlanner"
    num_samples: int = 300
    """S, perturbed sequences per iteration and environment (count; the sampling budget)"""
    iterations: int = 10
    """weighted-mean updates per plan call (count; the sequential budget)"""
    temperature: float = 0.3
    """lambda in units set by temperature_scale (dimensionless for elite/std); smaller = greedier"""
    temperature_scale: str = "elite"
    """elite: lambda = temperature x (K-th best - best cost) of each env per iteration: scale-free and it sharpens as
    the samples concentrate (the K-th elite gets weight e^-1/0.3 = 0.036) | std: lambda = temperature x std of the
    costs (scale-free, never sharpens: with 1.0 it averaged samples a cost-std apart, 1.5-155x above the optimum) |
    absolute: cost units"""
    num_elites: Any = 0.1
    """K, samples that get a weight (int count, or a fraction of num_samples; null = all samples)"""
    noise_scale: float = 0.5
    """initial perturbation std, fraction of the half action range (the scale search shrinks it)"""
    control_cost: float = 0.0
    """gamma of the control-cost term gamma * sum(mean * eps / sigma^2) (dimensionless; 0 disables)"""
    adapt_std: bool = True
    """refit the std to the weighted samples each iteration (annealed noise; false = fixed std)"""
    min_std: float = 0.001
    """std floor, fraction of the half action range, when adapt_std is true"""
    inject_mean: bool = True
    """evaluate the current mean as one candidate every iteration and the final mean after the last; the answer is the
    best sequence evaluated (false: the unevaluated weighted mean)"""
    std_update: str = "step"
    """step: std from the weighted steps from the old mean | spread: spread around the new mean"""
    scale_levels: int = 6
    """L; first-iteration sample s uses std x 2^-(s mod L) (count; 1 = off)"""


@dataclass
class ICEMConfig(PlannerConfig):
    """Improved CEM, Pinneri et al. 2020 (``planners.icem.ICEMPlanner``; ``planner=icem``); shares CEM's scale
    search, rank weights, step-based std and mean evaluation."""

    _target_: str = "planners.icem.ICEMPlanner"
    num_samples: int = 300
    """S, candidate sequences per iteration (count; the sampling budget, see population_decay)"""
    iterations: int = 10
    """refits per plan call (count; the sequential budget)"""
    num_elites: Any = 0.1
    """K, lowest-cost samples used to refit mean and std (int count, or a fraction of num_samples)"""
    init_std: float = 0.5
    """initial std, fraction of the half action range (the first iteration's scale search shrinks it)"""
    mean_momentum: float = 0.0
    """m in mean <- m*old + (1-m)*elite mean (dimensionless; the paper's 0.1 slowed convergence: 1.2x on
    single_integrator_wide)"""
    std_momentum: float = 0.0
    """same momentum for the std (dimensionless)"""
    min_std: float = 0.001
    """std floor, fraction of the half action range"""
    elite_retention: float = 0.3
    """fraction of last iteration's elites kept (with their costs) in the next pool (of num_elites)"""
    inject_mean: bool = True
    """evaluate the current mean as one candidate every iteration and the final mean after the last"""
    noise_beta: float = 0.5
    """exponent of the 1/f^beta noise spectrum along the horizon (dimensionless; 0 = white; paper uses 2-3.5 for H~30;
    1.0 left 1.10x on single_integrator_wide, whose optimum is an impulse)"""
    population_decay: float = 1.0
    """gamma >= 1; iteration i draws max(S * gamma^-i, 2K) samples (1.0 = all S samples every iteration, so iCEM
    evaluates the samples x iterations its budget names; 1.25 evaluated about half and missed the Styblinski-Tang
    optimum by 1.6-2.2x)"""
    elite_weights: str = "log"
    """log: CMA-ES log-rank weights over the K elites | equal: classic CEM mean"""
    std_update: str = "step"
    """step: std from the elites' steps from the old mean | spread: spread around the new mean"""
    scale_levels: int = 6
    """L; first-iteration sample s uses std x 2^-(s mod L) (count; 1 = off)"""


@dataclass
class GDConfig(PlannerConfig):
    """Gradient planning: projected Adam through a differentiable cost (``planners.gradient.GradientPlanner``;
    ``planner=gd``). Restarts are batched as samples; bounds are enforced by clamping after each step."""

    _target_: str = "planners.gradient.GradientPlanner"
    num_samples: int = 8
    """R, restarts per environment optimised jointly (count)"""
    iterations: int = 100
    """Adam steps per plan call (count)"""
    lr: float = 0.05
    """Adam step size, fraction of the half action range per step"""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """Adam moment decay rates (dimensionless)"""
    lr_schedule: str = "constant"
    """constant | cosine (lr * (1 + cos(pi i / I)) / 2); constant measured closer to the optimum"""
    init_std: float = 0.5
    """scatter of restarts 2..R-1 around the CEM answer, fraction of the half action range"""
    init_from_cem: bool = True
    """restart 0 = a short CEM solve, restart 1 = the initial mean itself (warm start or box centre; without it, CEM's
    broad samples had moved 1-3 Styblinski-Tang coordinates into wrong basins: 2-4x the optimum), restarts 2..R-1
    scattered around the CEM solve"""
    cem_samples: int = 100
    """CEM samples per iteration for the initialisation (count)"""
    cem_iterations: int = 3
    """CEM iterations for the initialisation (count)"""
    cem_elites: int = 10
    """CEM elites for the initialisation (count)"""

PLANNER_SCHEMAS: dict[str, type[PlannerConfig]] = {
    cls._target_: cls for cls in (CEMConfig, MPPIConfig, ICEMConfig, GDConfig)  # type: ignore[misc]
}
"""planner class path -> its schema; the group option names are ``cem``, ``mppi``, ``icem``, ``gd``."""

PLANNER_OPTIONS: dict[str, type[PlannerConfig]] = {"cem": CEMConfig, "mppi": MPPIConfig, "icem": ICEMConfig,
                                                   "gd": GDConfig}
"""``planner=<name>`` -> its schema."""


def planner_option(name: str, config_dir: str | Path | None = None) -> Any:
    """``configs/planner/<name>.yaml`` as Hydra composes it: the option's schema (its one default per setting) under
    what the yaml sets itself. For tools that read the shipped planner options outside a Hydra run (benchmarks,
    tests); ``config_dir`` defaults to the configs shipped with the package."""
    import yaml
    from omegaconf import OmegaConf

    folder = Path(config_dir) if config_dir is not None else Path(__file__).resolve().parents[2] / "configs"
    raw = yaml.safe_load((folder / "planner" / f"{name}.yaml").read_text()) or {}
    defaults = raw.pop("defaults", [])
    schemas = [d for d in defaults if isinstance(d, str) and d.endswith("_schema")]
    base = OmegaConf.structured(PLANNER_OPTIONS[schemas[0][: -len("_schema")]]) if schemas else OmegaConf.create()
    return OmegaConf.merge(base, raw)


def planner_options(config_dir: str | Path | None = None) -> list[str]:
    """The names of the shipped planner options (``planner=<name>``), sorted."""
    folder = Path(config_dir) if config_dir is not None else Path(__file__).resolve().parents[2] / "configs"
    return sorted(p.stem for p in (folder / "planner").glob("*.yaml"))
