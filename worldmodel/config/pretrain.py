"""Typed settings of V-JEPA encoder pretraining (``scripts/pretrain.py``, configs/pretrain.yaml).

configs/pretrain.yaml names this schema first in its defaults list (``pretrain_schema``) and keeps only what
depends on the composed groups (run_name, out_dir, data.clip_len); every other setting has its one default here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class PretrainDataConfig:
    """The trajectories the encoder is pretrained on."""

    path: str | None = "data/tworoom_explore.h5"
    """trajectory HDF5 file (scripts/collect.py or scripts/import_dataset.py); null when the caller passes datasets"""
    clip_len: int | None = MISSING
    """the architecture's clip length"""
    frameskip: int = 1
    """env steps between consecutive clip frames"""
    val_fraction: float = 0.1
    """fraction of episodes held out for validation"""
    split_seed: int = 0
    """seed of the train/validation episode split"""
    in_memory: bool = True
    """load the HDF5 columns once (fast random access)"""
    num_workers: int = 0
    """DataLoader worker processes (0 = load in the training process)"""


@dataclass
class PretrainModelConfig:
    """the pretraining objective"""

    teacher: str = "sigreg"
    """sigreg (LeJEPA regulariser, no EMA copy) | ema (V-JEPA EMA target). sigreg is the default: in a 52 s H100 pilot
    EMA collapsed token spread 4x, SIGReg did not and beat random-init on near-pair latent-distance ranks (see the
    encoder report)"""
    target_layernorm: bool = True
    """layer-normalise the target tokens before the prediction loss"""
    motion_weight: float = 0.0
    """>0: up-weight target tokens whose pixels change (moving parts)"""
    sigreg_weight: float = 0.05
    """loss = (1-w) * pred + w * SIGReg   (teacher=sigreg)"""
    sigreg_slices: int = 128
    """random 1-D projections SIGReg tests per step (count)"""
    sigreg_knots: int = 17
    """quadrature knots of SIGReg's characteristic-function test (count)"""
    sigreg_t_max: float = 3.0
    """largest frequency of that test (dimensionless)"""
    sigreg_max_samples: int = 2048
    """tokens subsampled per step for SIGReg (count)"""
    sigreg_target: str = "stopgrad"
    """stopgrad: targets = online full-clip tokens, no grad | online: grad through both"""
    sigreg_pool: int = 0
    """g > 0: SIGReg also on the full-clip tokens pooled to g x g cells per tubelet step (each cell centred over the
    batch): spreads what a planner's pooled latents see; costs one full-clip backward pass per step"""
    masked_weight: float = 1.0
    """weight of the masked latent-prediction term above; 0 drops it (and its compute)"""
    action_weight: float = 0.0
    """> 0: also predict each frame's pooled embedding from the previous frame's and the action (LeWorldModel's
    objective, on the embedding the world model plans with); needs actions"""
    action_pool: str = "2x2cat"
    """pooling of each frame's tokens for that term; match predictor.pool downstream"""
    action_sigreg_weight: float = 0.1
    """SIGReg on those pooled embeddings, inside the action term (LeWorldModel: 0.1)"""
    action_width: int = 128
    """that term's throwaway block-causal predictor (models/predictor.py) sizes"""
    action_depth: int = 2
    """depth of that term's predictor (blocks)"""
    action_heads: int = 4
    """attention heads of that term's predictor"""
    recon_weight: float = 0.0
    """> 0: also decode each frame from its pooled embedding (``action_pool``) with a small convolutional decoder
    (squared error over the frames' pixel variance, i.e. 1 - R^2, models/recon_term.py), so the planner's latent
    carries every visible part of the scene (on Push, the block's yaw); the decoder is thrown away"""
    recon_width: int = 64
    """channels of that decoder's first layer (count)"""


@dataclass
class MasksConfig:
    """Which tokens the predictor sees (context) and predicts (targets)."""

    preset: str = "causal"
    """causal (first tubelet steps -> the rest) | vjepa (8 short blocks @0.15 + 2 long blocks @0.7) | mixed. causal is
    the default: on TwoRoom it is the one objective that lifts the 2x2 near-pair distance ranks clear of random-init
    (+0.14 at 480 steps, +0.19 at 1000; vjepa +0.05) and the main job plans at 97% with it (94% with vjepa);
    docs/results.md"""
    context_t: int | None = None
    """causal: leading tubelet steps used as context (default T'/2)"""
    min_context: int = 16
    """resample samples whose context would be smaller"""
    specs: Any = None
    """explicit list of {kind, num_blocks, spatial_scale, aspect_ratio, temporal_scale, context_t}"""


@dataclass
class PretrainTrainConfig:
    """Optimisation, schedules, logging and export."""

    steps: int = 1000
    """~12 min of the tiny ViT on a 2-core CPU; 0 = export a random-init encoder of the same shape"""
    batch_size: int = 32
    """global batch: under torchrun each of the N processes takes batch_size / N clips per step"""
    seed: int = 0
    """seed of initialisation, batches and masks"""
    lr: float = 0.0005
    """peak learning rate (AdamW), reached after warmup"""
    lr_start: float = 1e-05
    """learning rate at step 0 (linear warmup from here)"""
    lr_final: float = 1e-06
    """learning rate at the last step (cosine decay to here)"""
    warmup: int = 100
    """warmup steps"""
    weight_decay: float = 0.04
    """AdamW weight decay at step 0"""
    weight_decay_end: float = 0.4
    """weight decay at the last step (cosine ramp)"""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW moment decay rates"""
    ema_start: float = 0.998
    """EMA momentum of the teacher at step 0 (teacher=ema)"""
    ema_end: float = 1.0
    """EMA momentum at the last step (linear ramp)"""
    grad_clip: float = 1.0
    """gradient-norm clip (0 = off)"""
    precision: str = "auto"
    """auto: bf16 autocast on GPU, fp32 on CPU | fp32"""
    log_every: int = 10
    """steps between metric rows (metrics.csv, TensorBoard)"""
    eval_every: int = 100
    """steps between validation losses (0 = never)"""
    ckpt_every: int = 200
    """steps between checkpoints (out_dir/checkpoints/last.pt)"""
    stop_after: int | None = None
    """stop (checkpoint + export) after this many steps; schedules still span `steps`"""
    time_budget_s: float | None = None
    """a wall-clock cap: stop (checkpoint + export) after this many seconds of training. null: none, the same steps
    (the same encoder) on any machine; a cap that cuts the run short is a WARNING in the log and `stopped_early` in
    out_dir/train_summary.json"""
    export: str = "target"
    """target (EMA encoder when teacher=ema) | online"""
    export_random: bool = True
    """also write encoder_random.pt (same shape, step-0 weights)"""
    tensorboard: bool = True
    """also log to TensorBoard (out_dir/tb)"""


@dataclass
class PretrainConfig:
    """V-JEPA encoder pretraining (``scripts/pretrain.py``); the encoder architecture is the ``encoder`` group."""

    encoder: Any = None
    """the encoder architecture (the ``encoder`` group: configs/encoder/<name>.yaml, e.g. tiny)"""
    run_name: str = MISSING
    """run name (configs/pretrain.yaml: <encoder>_<teacher>_<masks preset>)"""
    out_dir: str = MISSING
    """run folder (configs/pretrain.yaml: runs/pretrain/<run_name>); re-running resumes there"""
    device: str = "auto"
    """auto | cpu | cuda"""
    threads: int | None = None
    """torch CPU threads (null = torch default); 1 avoids oversubscription on a shared CPU"""
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    """the trajectories"""
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    """the pretraining objective"""
    masks: MasksConfig = field(default_factory=MasksConfig)
    """context/target masks"""
    train: PretrainTrainConfig = field(default_factory=PretrainTrainConfig)
    """optimisation, schedules, logging and export"""

