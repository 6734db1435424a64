"""The Python API: load a world model, encode observations as the envs return them, plan, evaluate.

    from worldmodel import WorldModel, evaluate_planning
    from worldmodel.config import CEMConfig, EvalConfig

    wm = WorldModel.load("world_model.pt")                 # weights_only loading
    obs, _ = env.reset(seed=0)                             # {"pixels": (H, W, 3) uint8, "proprio": (P,)}
    actions = wm.plan(obs, goal_pixels, planner=CEMConfig(num_samples=64, iterations=5))   # (k, A_env)
    summary = evaluate_planning("world_model.pt", env="tworoom", eval=EvalConfig(max_steps=40), episodes=8)

Settings are the dataclasses of ``worldmodel.config`` (the same schemas the command line's configs use), and
everything runs on the library's own machinery: ``plan`` builds the planner, objective and dynamics that the
closed-loop agents use (``worldmodel.eval.assemble``, ``worldmodel.planning``); ``evaluate_planning`` is
``worldmodel.eval.evaluate.evaluate`` on an ``EvaluateConfig``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodel.config import (
    AgentConfig,
    CEMConfig,
    EnvConfig,
    EvalConfig,
    EvaluateConfig,
    GoalsConfig,
    ObjectiveConfig,
    OracleConfig,
    PlannerConfig,
)

VIEW_PREFIX = "pixels/"
"""Observation key prefix of an env's extra cameras (``pixels/<camera>``; ``pixels`` is its main camera)."""

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
"""The library's Hydra configs (env options are read from CONFIG_DIR/env/<name>.yaml)."""

Observation = Any
"""What an env returns: a dict with ``pixels`` (H, W, 3) uint8 and ``proprio`` (P,), a bare (H, W, 3) frame, a
batch of either ((B, H, W, 3) / a list of dicts), or a (B, 3, H, W) uint8 tensor."""


def _pixels_tensor(pixels: Any) -> Tensor:
    """(H, W, 3) or (B, H, W, 3) uint8 frames (numpy or torch), or (B, 3, H, W) tensors -> (B, 3, H, W) uint8."""
    if isinstance(pixels, Sequence) and not isinstance(pixels, np.ndarray | Tensor):
        pixels = np.stack([np.asarray(p) for p in pixels])
    x = torch.as_tensor(np.ascontiguousarray(pixels) if isinstance(pixels, np.ndarray) else pixels)
    if x.ndim == 3:
        x = x[None]  # (1, ., ., .)
    if x.ndim != 4 or 3 not in (x.shape[1], x.shape[-1]):
        raise ValueError(
            f"pixels must be (H, W, 3) or (B, H, W, 3) frames as the envs return them, or (B, 3, H, W); "
            f"got shape {tuple(x.shape)}"
        )
    if x.dtype != torch.uint8:
        raise ValueError(f"pixels must be uint8 (0..255) as the envs render them, got {x.dtype}")
    return x if x.shape[1] == 3 else x.permute(0, 3, 1, 2)  # (B, 3, H, W)


def split_observation(obs: Observation, cameras: list[str] | None = None) -> tuple[Any, Tensor | None]:
    """(pixels, proprio (B, P) float32 or None) of one observation or a batch of them.

    ``cameras`` None: pixels (B, 3, H, W) uint8 of ``obs["pixels"]`` (or of a bare frame). A list of camera names
    (a multi-camera world model's ``cameras``): {camera: (B, 3, H, W)}, each camera from the observation's
    ``pixels/<camera>`` key (an env built with ``extra_cameras`` returns those) and the one camera without such a
    key from ``pixels`` (the env's main camera).
    """
    if isinstance(obs, Sequence) and obs and isinstance(obs[0], Mapping):
        obs = {k: np.stack([np.asarray(o[k]) for o in obs]) for k in obs[0]}  # list of dicts -> dict of batches
    if cameras is not None:
        return _camera_views(obs, cameras)
    if isinstance(obs, Mapping):
        if "pixels" not in obs:
            raise ValueError(f"a dict observation needs 'pixels' (and optionally 'proprio'); got keys {sorted(obs)}")
        pixels = _pixels_tensor(obs["pixels"])
        return pixels, _proprio(obs, len(pixels))
    return _pixels_tensor(obs), None


def _proprio(obs: Mapping[str, Any], batch: int) -> Tensor | None:
    """(B, P) float32 of the observation's optional ``proprio`` (pixel-only envs and goal images have none)."""
    raw = obs.get("proprio")
    return None if raw is None else torch.as_tensor(np.asarray(raw, dtype=np.float32)).reshape(batch, -1)


def _camera_views(obs: Observation, cameras: list[str]) -> tuple[dict[str, Tensor], Tensor | None]:
    """({camera: (B, 3, H, W)}, proprio) of a dict observation holding every camera of ``cameras``."""
    fix = (
        f"this world model observes cameras {cameras}: pass an observation dict with 'pixels' (the env's main "
        "camera) and 'pixels/<camera>' for each other camera, as an env built with env.kwargs.extra_cameras returns "
        "it (render a goal's other views with env.render_state(goal_state, camera=<name>))"
    )
    if not isinstance(obs, Mapping):
        raise ValueError(f"{fix}; got {type(obs).__name__}")
    found = {c: obs[VIEW_PREFIX + c] for c in cameras if VIEW_PREFIX + c in obs}
    rest = [c for c in cameras if c not in found]
    if len(rest) > 1 or (rest and "pixels" not in obs):
        raise ValueError(f"{fix}; got keys {sorted(obs)} (no view of {rest})")
    if rest:
        found[rest[0]] = obs["pixels"]
    views = {c: _pixels_tensor(found[c]) for c in cameras}
    return views, _proprio(obs, len(views[cameras[0]]))


class WorldModel:
    """A trained world model (``worldmodel.world_model.WorldModel``) that takes observations as envs return them.

    Every attribute of the underlying model (``rollout``, ``action_low``, ``frameskip``, ``meta``, ...) is
    reachable on this object; ``model`` is the underlying model itself.
    """

    def __init__(self, model: Any, path: str | None = None) -> None:
        self.model, self.path = model, path
        self._readouts: dict[str, Any] = {}

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
        """Load a ``world_model.pt`` (weights_only, hash-checked) onto ``device`` ("auto" picks CUDA if present)."""
        from worldmodel.eval.evaluate import resolve_device
        from worldmodel.world_model import WorldModel as CoreWorldModel

        if not Path(path).exists():
            raise FileNotFoundError(f"world model {path} not found; train one with scripts/train_predictor.py")
        dev = resolve_device(device) if isinstance(device, str) else device
        return cls(CoreWorldModel.load(path, dev), str(path))

    def __getattr__(self, name: str) -> Any:
        if name == "model":  # not set yet (during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)

    @torch.no_grad()
    def encode(self, obs: Observation) -> dict[str, Tensor | None]:
        """{"latents": (B, N, D), "proprio": (B, P) normalised or None} of an observation or a batch of them (for
        a multi-camera model, observations with ``pixels`` and ``pixels/<camera>``: ``split_observation``)."""
        pixels, proprio = split_observation(obs, self.model.cameras)
        return self.model.encode(pixels, proprio)

    @torch.no_grad()
    def plan(
        self,
        obs: Observation,
        goal: Observation,
        planner: PlannerConfig | None = None,
        objective: ObjectiveConfig | None = None,
        steps: int = AgentConfig.execute_steps,
        seed: int = 0,
    ) -> np.ndarray:
        """The next env actions from ``obs`` toward the goal image(s) ``goal``: (steps * frameskip, A_env) for one
        observation, (B, steps * frameskip, A_env) for a batch. ``steps`` planner steps of the best plan are
        returned (at most ``planner.horizon``); ``goal`` pixels only are used (the goal's proprio is read out of
        the image when the objective has a proprio term). ``planner``: a worldmodel.config planner schema (default
        ``CEMConfig()``); ``objective``: ``ObjectiveConfig`` (default: the latent L1 distance at the last step).
        A multi-camera model (``cameras``) takes ``obs`` and ``goal`` as dicts with ``pixels`` and
        ``pixels/<camera>`` (``split_observation``).
        """
        from worldmodel.planning import LatentDynamics, cost_function

        planner_cfg = planner if planner is not None else CEMConfig()
        if not 1 <= steps <= planner_cfg.horizon:
            raise ValueError(f"steps={steps} must lie in 1..planner.horizon={planner_cfg.horizon}")
        now, goal_now = self.encode(obs), self.model.encode(split_observation(goal, self.model.cameras)[0])
        b = now["latents"].shape[0]  # type: ignore[union-attr]
        if goal_now["latents"].shape[0] not in (1, b):  # type: ignore[union-attr]
            raise ValueError(f"{goal_now['latents'].shape[0]} goal images for {b} observations; give 1 or {b}")  # type: ignore[union-attr]
        goal_lat = goal_now["latents"].expand(b, *goal_now["latents"].shape[1:])  # type: ignore[union-attr]  # (B, N, D)
        prop = now["proprio"][:, None] if now["proprio"] is not None else None  # (B, 1, P)
        dynamics = LatentDynamics(self.model, now["latents"][:, None], prop)  # type: ignore[index]  # (B, 1, N, D)
        built = self._planner(planner_cfg, seed)
        target = self._targets(objective or ObjectiveConfig(), goal_lat)
        with torch.enable_grad():  # gradient planners differentiate the cost
            plan = built.plan(cost_function(dynamics, self._objective(objective), target), batch_size=b).actions
        env_dim = self.model.action_low.numel() // self.model.frameskip
        acts = plan[:, :steps].reshape(b, steps * self.model.frameskip, env_dim).cpu().numpy()  # (B, k*fs, A_env)
        return acts[0] if _single(obs) else acts

    def _planner(self, cfg: PlannerConfig, seed: int) -> Any:
        """The planner a closed-loop agent would build from ``cfg`` (bounds from the model)."""
        from omegaconf import OmegaConf

        from worldmodel.eval.assemble import build_planner

        plain = OmegaConf.to_container(OmegaConf.structured(cfg))
        return build_planner(plain, self.model.action_low, self.model.action_high, self.model.device, seed)  # type: ignore[arg-type]

    def _objective(self, cfg: ObjectiveConfig | None) -> Any:
        from worldmodel.planning import build_objective

        return build_objective(cfg or ObjectiveConfig(), latent_std=self.model.latent_std, metric=self.model.metric)

    def _targets(self, cfg: ObjectiveConfig, goal: Tensor) -> Any:
        """The goal target (latents, and the goal proprio read out of them when the proprio term is on)."""
        from worldmodel.eval.assemble import proprio_readout
        from worldmodel.planning import Target

        if cfg.proprio.weight == 0:
            return Target(latents=goal)
        key = repr(cfg.proprio)
        if key not in self._readouts:  # fitted once per readout setting on the training data
            self._readouts[key] = proprio_readout(self.model, cfg)
        return Target(latents=goal, proprio=self._readouts[key](goal))


def _single(obs: Observation) -> bool:
    """Whether ``obs`` is one observation (a (H, W, 3) frame, or a dict holding one) rather than a batch."""
    if isinstance(obs, Mapping):
        return np.ndim(obs["pixels"]) == 3
    if isinstance(obs, Sequence) and not isinstance(obs, np.ndarray | Tensor):
        return False
    return np.ndim(obs) == 3


def env_config(env: str | EnvConfig | Mapping[str, Any], **kwargs: Any) -> EnvConfig:
    """An ``EnvConfig`` from a config option name (``"tworoom"``: configs/env/tworoom.yaml), a gymnasium id
    (``"wm/Reacher-v0"``), a dict or an EnvConfig; ``kwargs`` update its env kwargs (e.g. action_repeat=2)."""
    from omegaconf import OmegaConf

    from worldmodel.config import typed

    if isinstance(env, str) and "/" not in env and "-v" not in env:
        path = CONFIG_DIR / "env" / f"{env}.yaml"
        if not path.exists():
            options = sorted(p.stem for p in (CONFIG_DIR / "env").glob("*.yaml"))
            raise ValueError(f"env={env!r} is not a config in {CONFIG_DIR / 'env'}; choose one of {options}")
        env = OmegaConf.to_container(OmegaConf.load(path))  # type: ignore[assignment]
    elif isinstance(env, str):
        env = EnvConfig(id=env)
    cfg: EnvConfig = typed(EnvConfig, env)
    return replace(cfg, kwargs={**cfg.kwargs, **kwargs})


def evaluate_planning(
    world_models: str | Path | Mapping[str, str | Path] | None = None,
    *,
    env: str | EnvConfig = "tworoom",
    planner: PlannerConfig | None = None,
    objective: ObjectiveConfig | None = None,
    agent: AgentConfig | None = None,
    eval: EvalConfig | None = None,  # noqa: A002  (the config subtree's name)
    goals: GoalsConfig | None = None,
    oracle: OracleConfig | None = None,
    methods: Sequence[str] = ("random",),
    episodes: int = EvaluateConfig.episodes,
    seed: int = 0,
    device: str = EvaluateConfig.device,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Closed-loop evaluation from Python; returns the summary (also written to ``out_dir``/summary.json).

    ``world_models``: one world_model.pt (evaluated as ``world_model``), a dict name -> path, or None (baselines
    only: ``methods=["random"]`` needs no world model and no planner settings). The other settings are the
    ``worldmodel.config`` dataclasses; anything left out takes its one default. ``out_dir`` defaults to
    outputs/eval/<env>_<planner>_seed<seed>; re-running resumes there.
    """
    from worldmodel.eval.evaluate import evaluate

    models = {"world_model": world_models} if isinstance(world_models, str | Path) else dict(world_models or {})
    env_cfg = env if isinstance(env, EnvConfig) else env_config(env)
    planner_cfg = planner if planner is not None else CEMConfig()
    name = Path(env_cfg.id.split("/")[-1]).stem.lower()
    cfg = EvaluateConfig(
        world_models={k: str(v) for k, v in models.items()},
        methods=list(methods),
        episodes=episodes,
        seed=seed,
        device=device,
        out_dir=str(out_dir or f"{EvaluateConfig.out_root}/{name}_{type(planner_cfg).__name__.lower()}_seed{seed}"),
        env=env_cfg,
        planner=planner_cfg,
        objective=objective or ObjectiveConfig(),
        agent=agent or AgentConfig(),
        goals=goals or GoalsConfig(),
        eval=eval or EvalConfig(),
        oracle=oracle or OracleConfig(),
    )
    return evaluate(cfg, progress=progress)
