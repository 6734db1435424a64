"""Typed settings of predictor training (``scripts/train_predictor.py``, configs/train_predictor.yaml).

configs/train_predictor.yaml lists ``train_predictor_schema`` first and keeps only the group choices, the
run_name/out_dir interpolations and Hydra's settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class PredictorDataConfig:
    """The trajectories the predictor is trained on."""

    path: str = "data/tworoom_explore.h5"
    """trajectory HDF5 file"""
    clip_len: int = 8
    """T frames per training clip (teacher forcing over T-1 transitions)"""
    frameskip: int = 1
    """env steps per predictor step; the frameskip actions between kept frames are concatenated"""
    val_fraction: float = 0.1
    """held-out episodes (same split as ClipDataset with the same split_seed)"""
    split_seed: int = 0
    """seed of the train/validation episode split"""
    cameras: list[str] | None = None
    """null: the file's default camera only; a list of its camera names (e.g. [top, side]): each is encoded by the
    same frozen encoder and pooled, and a frame's tokens are their concatenation (N = K x N_cam); the world model
    records the list and evaluation envs must render those cameras (env.kwargs.extra_cameras)"""


@dataclass
class EmbedCacheConfig:
    """The embedding cache (frozen-encoder latents of every frame, built once)."""

    path: str | None = None
    """null: <data dir>/.embed_cache/<data>.<encoder>-<hash>.<pool>.h5"""
    dtype: str = "float32"
    """float32 | float16 (half the disk/RAM for pool=none)"""
    batch_frames: int = 256
    """frames per encoder batch while building"""
    rebuild: bool = False
    """force a rebuild even when the key matches"""


LATENT_NORMS = ("channel", "global", "none")
"""how latents are scaled for the predictor and the cost: per (token, channel) | one spread | raw"""


@dataclass
class WorldModelConfig:
    """What the world model predicts and how it normalises."""

    use_proprio: bool = True
    """add a proprio token per frame (and an L1 proprio loss)"""
    latent_norm: str = "channel"
    """how the encoder's pooled latents are scaled for the predictor and the planner's cost, from training-set
    statistics: channel (standardise each (token, channel): every channel at unit spread) | global (centre each
    channel, divide all by one spread: the encoder's own geometry, in which the directions it varies most in weigh
    most in the loss and the cost) | none (the raw latents)"""
    normalize_latents: bool | None = None
    """replaced by latent_norm (true = channel, false = none); setting it is refused with that message"""
    rollout_chunk: int = 1024
    """sequences per predictor chunk in WorldModel.rollout (B*S are flattened)"""

    def __post_init__(self) -> None:
        if self.normalize_latents is not None:
            raise ValueError(
                f"model.normalize_latents={self.normalize_latents} is replaced by model.latent_norm: channel (was "
                "true) | none (was false) | global; set model.latent_norm instead"
            )
        if self.latent_norm not in LATENT_NORMS:
            raise ValueError(f"model.latent_norm must be one of {list(LATENT_NORMS)}, got {self.latent_norm!r}")


@dataclass
class PredictorLossConfig:
    """Loss weights and the autoregressive rollout term."""

    teacher_forcing: float = 1.0
    """weight of the teacher-forced next-frame L1"""
    rollout: float = 1.0
    """weight of the autoregressive rollout L1 (0 disables it)"""
    rollout_steps: int = 2
    """K autoregressive steps in the rollout loss (V-JEPA 2-AC uses 2)"""
    rollout_context: int = 1
    """C ground-truth frames before the rollout (C + K <= clip_len)"""
    proprio: float = 0.1
    """weight of the proprio-head L1 (teacher forcing and rollout)"""


@dataclass
class PredictorTrainConfig:
    """Optimisation, schedules, logging and checkpoints."""

    steps: int = 3000
    """optimiser steps (the schedules span them)"""
    batch_size: int = 64
    """global batch: under torchrun each of the N processes takes batch_size / N clips per step"""
    seed: int = 0
    """seed of initialisation and batches"""
    lr: float = 0.0003
    """peak learning rate (AdamW), reached after warmup"""
    lr_start: float = 1e-05
    """learning rate at step 0 (linear warmup from here)"""
    lr_final: float = 1e-06
    """learning rate at the last step (cosine decay to here)"""
    warmup: int = 100
    """warmup steps"""
    weight_decay: float = 0.04
    """AdamW weight decay"""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW moment decay rates"""
    grad_clip: float = 1.0
    """gradient-norm clip (0 = off)"""
    log_every: int = 20
    """steps between metric rows (metrics.csv, TensorBoard)"""
    eval_every: int = 250
    """steps between validation losses"""
    val_clips: int = 256
    """fixed held-out clips for the validation loss"""
    ckpt_every: int = 250
    """steps between checkpoints (out_dir/checkpoints/last.pt)"""
    stop_after: int | None = None
    """stop (checkpoint + export) after this many steps; schedules still span `steps`"""
    tensorboard: bool = True
    """also log to TensorBoard"""


@dataclass
class LatentMetricConfig:
    """A learned step metric on the world model's latents (``worldmodel/models/metric.py``), trained after the
    predictor on the same frames and stored in world_model.pt; the planner adds it with ``objective.metric.weight``."""

    steps: int = 0
    """optimiser steps (0 = no metric: the world model plans with the raw latent distance only)"""
    batch_size: int = 512
    """transitions and random frame pairs per step"""
    width: int = 512
    """hidden width of the metric's two-layer MLP"""
    dim: int = 64
    """dimension of the embedding the distance is measured in"""
    lr: float = 0.001
    """AdamW learning rate (constant)"""
    cap: float = 60.0
    """random pairs are pushed apart up to this many data steps (beyond it a pair adds no gradient)"""
    penalty: float = 100.0
    """weight of the constraint that consecutive frames are at most one step apart (10 let Push's and Reacher's
    consecutive frames drift 1.2-1.6 steps apart, and the metric then earned nothing there; docs/results.md)"""

    def __post_init__(self) -> None:
        if self.steps < 0 or min(self.batch_size, self.width, self.dim) < 1:
            raise ValueError(
                f"metric.steps={self.steps} must be >= 0 and metric.batch_size/width/dim "
                f"({self.batch_size}, {self.width}, {self.dim}) >= 1"
            )
        if self.lr <= 0 or self.cap <= 1 or self.penalty <= 0:
            raise ValueError(
                f"metric.lr={self.lr} and metric.penalty={self.penalty} must be > 0, metric.cap={self.cap} > 1"
            )


@dataclass
class PredictorSizesConfig:
    """Schema of the ``predictor`` group (configs/predictor/*.yaml list ``predictor_schema`` first): every field typed,
    so a wrong value (``predictor.residual=maybe``, ``predictor.width=wide``) is refused when the config composes, and
    by the pipeline before any stage runs. The values live in the group's yamls (cpu | default), not here; what each
    means: worldmodel.models.predictor.PredictorConfig. The four dims are overridden from the data and the encoder."""

    _target_: str = "worldmodel.models.predictor.ActionConditionedPredictor"
    latent_dim: int = MISSING
    action_dim: int = MISSING
    num_tokens: int = MISSING
    proprio_dim: int = MISSING
    width: int = MISSING
    depth: int = MISSING
    heads: int = MISSING
    mlp_ratio: float = MISSING
    residual: bool = MISSING
    max_frames: int = MISSING


@dataclass
class TrainPredictorConfig:
    """Predictor training on a frozen encoder (``scripts/train_predictor.py``); exports world_model.pt."""

    encoder: Any = None
    """the frozen encoder (the ``encoder`` group: export (encoder.path=<encoder.pt>) | vjepa2 | dinov2)"""
    predictor: Any = None
    """predictor sizes (the ``predictor`` group: cpu | default); dims come from the data and the encoder"""

    run_name: str = MISSING
    """run name (configs/train_predictor.yaml: pool<pool>_fs<frameskip>)"""
    out_dir: str = MISSING
    """run folder (runs/predictor/<run_name>); re-running resumes there"""
    device: str = "auto"
    """auto | cpu | cuda"""
    threads: int | None = None
    """torch CPU threads (null = torch default); 1 avoids oversubscription on a shared CPU"""
    data: PredictorDataConfig = field(default_factory=PredictorDataConfig)
    """the trajectories"""
    pool: str = "2x2cat"
    """latent tokens per frame: none (all patches) | mean (1 token) | GxG (average to a G x G grid) | GxGcat (that grid
    concatenated into one token: keeps position, costs one token)"""
    cache: EmbedCacheConfig = field(default_factory=EmbedCacheConfig)
    """the embedding cache"""
    model: WorldModelConfig = field(default_factory=WorldModelConfig)
    """what the world model predicts"""
    loss: PredictorLossConfig = field(default_factory=PredictorLossConfig)
    """loss weights"""
    train: PredictorTrainConfig = field(default_factory=PredictorTrainConfig)
    """optimisation and logging"""
    metric: LatentMetricConfig = field(default_factory=LatentMetricConfig)
    """the learned step metric trained after the predictor (metric.steps=0: none)"""
