"""The world model: frozen encoder + action-conditioned predictor + normalisation, stored as one file.

Shape letters: B environments/batch, S candidate sequences, T time, T0 history frames, H horizon, N latent
tokens per frame, D latent dim, A actions per predictor step (frameskip * env action dim), P proprio dim.

Latent space: ``encode`` returns *normalised* latents, (z - mean) / std with per-(token, channel) statistics
of the training set, which is the space the predictor reads and writes, ``rollout`` returns and the planning
objective (``worldmodel/planning``) compares. ``denormalize_latents`` maps back to raw encoder (pooled) tokens.
Actions are passed in environment units; the model rescales them with the action bounds (and a frameskip step
takes frameskip env actions concatenated, as ClipDataset groups them).

Encoder: any frozen ``FrameEncoder`` (in-house VideoViT, V-JEPA 2, DINOv2). The file records which one
(``encoder_info``: name, config, weight hash); an in-house encoder's weights are stored in the file, a foundation
encoder's are referenced by local directory + hash (``worldmodel/models/encoders/records.py`` says why) and
``load`` refuses a directory holding another model or other weights. Two on-disk forms: ``save``/``load`` (one
hashed, weights_only envelope file) and ``save_pretrained``/``from_pretrained`` (config.json + model.safetensors).

Cameras: ``cameras`` is None for a model trained on its data's default camera (``encode`` takes pixel tensors, as
always), or the K camera names it was trained on, in token order. Each camera is encoded and pooled alone and a
frame's latents are the concatenation, N = K x N_cam tokens camera-major (the embedding cache's layout); ``encode``
then takes ``{camera: (B, [T,] 3, H, W)}`` holding exactly those cameras and refuses any other set by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from worldmodel.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_pretrained_dir,
    load_state_dict_checked,
    save_checkpoint,
    save_pretrained_dir,
)
from worldmodel.models.encoders.protocol import IN_HOUSE, EncoderError, FrameEncoder
from worldmodel.models.encoders.records import encoder_from_record, encoder_record
from worldmodel.models.metric import LatentMetric
from worldmodel.models.pooling import encode_views, pool_name
from worldmodel.models.predictor import ActionConditionedPredictor, PredictorConfig

WORLD_MODEL_KIND = "worldmodel.world_model/v1"
PRETRAINED_MODEL_TYPE = "worldmodel-world-model"
"""``model_type`` in the config.json of a world model saved with ``save_pretrained``."""
STAT_KEYS = ("action_low", "action_high", "latent_mean", "latent_std", "proprio_mean", "proprio_std")

LatentsLike = Tensor | Mapping[str, Any]
PixelsLike = Tensor | Mapping[str, Tensor]
"""Pixels for ``encode``: (B, [T,] 3, H, W) uint8 (one camera), or {camera: (B, [T,] 3, H, W)} (named cameras)."""


class WorldModelError(ValueError):
    """A world model does not fit the data, environment or inputs it is used with."""


def _latents_of(x: LatentsLike) -> Tensor:
    """Accept a latent tensor or the dict returned by encode/rollout."""
    return x["latents"] if isinstance(x, Mapping) else x


class WorldModel(nn.Module):
    """Frozen encoder + predictor with the statistics and settings needed to plan on pixels."""

    def __init__(
        self,
        encoder: FrameEncoder,
        predictor: ActionConditionedPredictor,
        pool: str | int | None,
        frameskip: int,
        env_action_dim: int,
        action_low: Tensor,
        action_high: Tensor,
        latent_mean: Tensor,
        latent_std: Tensor,
        proprio_mean: Tensor | None = None,
        proprio_std: Tensor | None = None,
        train_config: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        rollout_chunk: int = 1024,
        encoder_info: Mapping[str, Any] | None = None,
        cameras: list[str] | None = None,
        metric: LatentMetric | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, nn.Module) or not isinstance(encoder, FrameEncoder):
            raise WorldModelError(f"encoder must be a FrameEncoder module, got {type(encoder).__name__}")
        self.encoder = encoder.eval().requires_grad_(False)
        self.predictor = predictor
        self.pool = pool_name(pool)
        self.frameskip = int(frameskip)
        self.env_action_dim = int(env_action_dim)
        if predictor.action_dim != self.frameskip * self.env_action_dim:
            raise WorldModelError(
                f"predictor action_dim {predictor.action_dim} != frameskip {frameskip} x env "
                f"action dim {env_action_dim}"
            )
        low = torch.as_tensor(action_low, dtype=torch.float32).reshape(-1)
        high = torch.as_tensor(action_high, dtype=torch.float32).reshape(-1)
        if low.numel() == self.env_action_dim:  # per env step bounds -> per predictor step
            low, high = low.repeat(self.frameskip), high.repeat(self.frameskip)
        if low.numel() != predictor.action_dim:
            raise WorldModelError(f"action bounds have {low.numel()} entries, predictor wants {predictor.action_dim}")
        self.register_buffer("action_low", low)  # (A,)
        self.register_buffer("action_high", high)  # (A,)
        self.register_buffer("latent_mean", torch.as_tensor(latent_mean, dtype=torch.float32))  # (N, D)
        self.register_buffer("latent_std", torch.as_tensor(latent_std, dtype=torch.float32))  # (N, D)
        p = predictor.proprio_dim
        self.register_buffer("proprio_mean", torch.zeros(p) if proprio_mean is None else proprio_mean.float())  # (P,)
        self.register_buffer("proprio_std", torch.ones(p) if proprio_std is None else proprio_std.float())  # (P,)
        self.train_config = dict(train_config or {})
        self.meta = dict(meta or {})
        self.rollout_chunk = int(rollout_chunk)
        self.cameras = None if cameras is None else [str(c) for c in cameras]
        self.metric = metric  # the learned step metric on this model's latents (objective.latent.space=metric)
        k = 1 if self.cameras is None else len(self.cameras)
        if predictor.num_cameras != k:
            raise WorldModelError(f"predictor has {predictor.num_cameras} camera group(s) but cameras={cameras}")
        try:  # which encoder this is (foundation encoders: weights dir + hash, checked now, not at save time)
            self.encoder_info = encoder_record(encoder, encoder_info)
        except EncoderError as e:
            raise WorldModelError(str(e)) from e

    # ------------------------------------------------------------------------------------ properties
    @property
    def action_dim(self) -> int:
        """A: action entries per predictor step (frameskip * env action dim); what rollout expects."""
        return self.predictor.action_dim

    @property
    def proprio_dim(self) -> int:
        """P of the proprio token (0 when the model uses no proprio)."""
        return self.predictor.proprio_dim

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(N, D) of one frame's latents."""
        return self.predictor.num_tokens, self.predictor.latent_dim

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return self.latent_mean.device

    # ------------------------------------------------------------------------------------ normalisation
    def normalize_latents(self, z: Tensor) -> Tensor:
        """Raw pooled encoder tokens (..., N, D) -> model space."""
        return (z - self.latent_mean) / self.latent_std

    def denormalize_latents(self, z: Tensor) -> Tensor:
        """Model-space latents (..., N, D) -> raw pooled encoder tokens."""
        return z * self.latent_std + self.latent_mean

    def normalize_actions(self, a: Tensor) -> Tensor:
        """Env-unit actions (..., A) -> [-1, 1] by the action bounds."""
        mid, half = (
            (self.action_high + self.action_low) / 2,
            (self.action_high - self.action_low).clamp_min(1e-8) / 2,
        )
        return (a - mid) / half

    def normalize_proprio(self, p: Tensor) -> Tensor:
        """Raw proprio (..., P) -> standardised."""
        return (p - self.proprio_mean) / self.proprio_std

    # ------------------------------------------------------------------------------------ encode
    def _views(self, pixels: PixelsLike) -> list[Tensor]:
        """The pixel tensors of each camera in the model's order; WorldModelError for another camera set."""
        if isinstance(pixels, Mapping):
            if self.cameras is None:
                raise WorldModelError(
                    f"this world model was trained on its data's default camera only, got cameras {list(pixels)}; "
                    "pass pixels as one tensor (B, [T,] 3, H, W)"
                )
            got = [str(c) for c in pixels]
            if set(got) != set(self.cameras):
                missing = [c for c in self.cameras if c not in got]
                extra = [c for c in got if c not in self.cameras]
                raise WorldModelError(
                    f"camera set {got} differs from the cameras this world model was trained on, {self.cameras} "
                    f"(missing {missing}, unexpected {extra}); pass exactly those cameras, or use a world model "
                    "trained on these (data.cameras)"
                )
            return [pixels[c] for c in self.cameras]
        if self.cameras is not None and len(self.cameras) > 1:
            raise WorldModelError(
                f"this world model observes cameras {self.cameras}: pass {{camera: (B, [T,] 3, H, W)}} for each"
            )
        return [pixels]

    @torch.no_grad()
    def encode(
        self, pixels: PixelsLike, proprio: Tensor | None = None, batch_frames: int = 256
    ) -> dict[str, Tensor | None]:
        """Encode observations: pixels (B, 3, H, W) or (B, T, 3, H, W) uint8 -> {"latents": (B, [T,] N, D),
        "proprio": (B, [T,] P) normalised, or None}; feed the dict (or its tensors) to rollout.

        A multi-camera model takes ``{camera: (B, [T,] 3, H, W)}`` with exactly its ``cameras`` (any order; all of
        one shape B[, T]); its N latents per frame are each camera's pooled tokens concatenated in model order."""
        views = self._views(pixels)
        lead = {tuple(v.shape[:-3]) for v in views}
        if any(v.ndim not in (4, 5) or v.shape[-3] != 3 for v in views) or len(lead) != 1:
            raise WorldModelError(
                f"pixels must be (B, 3, H, W) or (B, T, 3, H, W), the same B[, T] for every camera, got "
                f"{[tuple(v.shape) for v in views]}; convert (H, W, 3) images with .permute(..., 2, 0, 1)"
            )
        single = views[0].ndim == 4
        xs = [(v[:, None] if single else v).to(self.device) for v in views]  # K x (B, T, 3, H, W)
        b, t = xs[0].shape[:2]
        flats = [x.reshape(b * t, *x.shape[2:]) for x in xs]  # K x (B*T, 3, H, W)
        lat = torch.cat(
            [
                encode_views(self.encoder, [f[i : i + batch_frames] for f in flats], self.pool)
                for i in range(0, b * t, batch_frames)
            ]
        )  # (B*T, N, D), N = K x N_cam
        lat = self.normalize_latents(lat).reshape(b, t, *lat.shape[1:])  # (B, T, N, D)
        prop = None
        if proprio is not None and self.proprio_dim > 0:
            if proprio.shape[-1] != self.proprio_dim:
                raise WorldModelError(
                    f"proprio has dim {proprio.shape[-1]}, the model was trained with {self.proprio_dim}"
                )
            prop = self.normalize_proprio(proprio.to(self.device, torch.float32))
        return {"latents": lat[:, 0] if single else lat, "proprio": prop}

    # ------------------------------------------------------------------------------------ rollout
    def rollout(
        self,
        latent_history: LatentsLike,
        actions: Tensor,
        proprio_history: Tensor | None = None,
        action_history: Tensor | None = None,
        chunk_size: int | None = None,
    ) -> dict[str, Tensor | None]:
        """Imagine H frames for every environment and candidate: history (B, [T0,] N, D), actions (B, H, A) or
        (B, S, H, A) in env units -> {"latents": (B, [S,] H, N, D), "proprio": (B, [S,] H, P) or None}.

        B*S sequences are flattened and run through the predictor's KV-cached rollout in chunks of chunk_size.
        action_history (B, T0-1, A) holds the actions between history frames (zeros if None). Gradients flow
        to `actions` unless the caller disables them (gradient planners rely on that).
        """
        if isinstance(latent_history, Mapping):
            proprio_history = latent_history.get("proprio") if proprio_history is None else proprio_history
        lat = _latents_of(latent_history).to(self.device)
        lat = lat[:, None] if lat.ndim == 3 else lat  # (B, T0, N, D)
        n, d = self.latent_shape
        if lat.ndim != 4 or tuple(lat.shape[2:]) != (n, d):
            raise WorldModelError(
                f"latent_history must be (B, [T0,] {n}, {d}) from WorldModel.encode, got "
                f"{tuple(_latents_of(latent_history).shape)}"
            )
        if actions.ndim not in (3, 4) or actions.shape[-1] != self.action_dim:
            raise WorldModelError(
                f"actions must be (B, H, {self.action_dim}) or (B, S, H, {self.action_dim}) (frameskip "
                f"{self.frameskip} x env action dim {self.env_action_dim}), got {tuple(actions.shape)}"
            )
        sampled = actions.ndim == 4
        acts = (actions if sampled else actions[:, None]).to(self.device)  # (B, S, H, A)
        b, s, h, a = acts.shape
        if lat.shape[0] not in (1, b):
            raise WorldModelError(f"latent_history has batch {lat.shape[0]} but actions have batch {b}")
        t0 = lat.shape[1]
        flat_lat = lat.expand(b, *lat.shape[1:])[:, None].expand(b, s, t0, n, d).reshape(b * s, t0, n, d)
        flat_act = self.normalize_actions(acts).reshape(b * s, h, a)  # (B*S, H, A)
        flat_ah = None
        if action_history is not None:
            ah = action_history.to(self.device)  # (B, T0-1, A)
            flat_ah = self.normalize_actions(ah).expand(b, *ah.shape[1:])[:, None].expand(b, s, *ah.shape[1:])
            flat_ah = flat_ah.reshape(b * s, *ah.shape[1:])
        flat_prop = None
        if self.proprio_dim > 0:
            if proprio_history is None:
                raise WorldModelError("this world model uses proprio: pass proprio to encode() (or proprio_history)")
            ph = proprio_history.to(self.device)
            ph = ph[:, None] if ph.ndim == 2 else ph  # (B, T0, P)
            flat_prop = ph.expand(b, *ph.shape[1:])[:, None].expand(b, s, *ph.shape[1:]).reshape(b * s, *ph.shape[1:])
        out_lat, out_prop = self.predictor.rollout(
            flat_lat,
            flat_act,
            flat_prop,
            flat_ah,
            use_cache=True,
            chunk_size=chunk_size or self.rollout_chunk,
        )
        out_lat = out_lat.reshape(b, s, h, n, d)
        if out_prop is not None:
            out_prop = out_prop.reshape(b, s, h, -1)
        if not sampled:
            out_lat = out_lat[:, 0]
            out_prop = None if out_prop is None else out_prop[:, 0]
        return {"latents": out_lat, "proprio": out_prop}

    # ------------------------------------------------------------------------------------ compatibility
    def check_compatible(
        self,
        action_dim: int,
        proprio_dim: int | None = None,
        frameskip: int | None = None,
        env_id: str | None = None,
    ) -> None:
        """Raise WorldModelError unless an env/dataset with this per-step action_dim (proprio, env) fits."""
        problems = []
        if int(action_dim) != self.env_action_dim:
            problems.append(
                f"action dim {action_dim} != the model's {self.env_action_dim} per env step "
                f"(x frameskip {self.frameskip} = {self.action_dim} per predictor step)"
            )
        if frameskip is not None and int(frameskip) != self.frameskip:
            problems.append(f"frameskip {frameskip} != the model's {self.frameskip}")
        if proprio_dim is not None and self.proprio_dim > 0 and int(proprio_dim) != self.proprio_dim:
            problems.append(f"proprio dim {proprio_dim} != the model's {self.proprio_dim}")
        trained_env = self.meta.get("env_id")
        if env_id is not None and trained_env and env_id != trained_env:
            problems.append(f"env {env_id!r} != the model's {trained_env!r}")
        if problems:
            raise WorldModelError(
                "world model does not match: " + "; ".join(problems) + ". Train one on this environment's data "
                "(scripts/train_predictor.py data.path=...) or load the checkpoint trained for it."
            )

    # ------------------------------------------------------------------------------------ save / load
    def _settings(self) -> dict[str, Any]:
        """Everything but tensors needed to rebuild this model (JSON-able); ``cameras`` only when named, so a
        single-camera model's files are exactly as before."""
        cams = {} if self.cameras is None else {"cameras": self.cameras}
        metric = {} if self.metric is None else {"metric_config": self.metric.config_dict()}
        return {
            **cams,
            **metric,
            "encoder_info": self.encoder_info,
            "encoder_config": self.encoder.config_dict(),
            "predictor_config": asdict(self.predictor.config),
            "pool": self.pool,
            "frameskip": self.frameskip,
            "env_action_dim": self.env_action_dim,
            "action_dim": self.action_dim,
            "proprio_dim": self.proprio_dim,
            "train_config": self.train_config,
            "meta": self.meta,
            "rollout_chunk": self.rollout_chunk,
        }

    def _tensors(self) -> dict[str, dict[str, Tensor]]:
        """CPU tensors by part: encoder (in-house only; a foundation encoder is referenced), predictor, stats, and
        the learned metric when there is one."""
        cpu = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        inhouse = self.encoder_info["name"] == IN_HOUSE
        parts = {
            "encoder": {k[8:]: v for k, v in cpu.items() if inhouse and k.startswith("encoder.")},
            "predictor": {k[len("predictor.") :]: v for k, v in cpu.items() if k.startswith("predictor.")},
            "stats": {k: cpu[k] for k in STAT_KEYS},
        }
        if self.metric is not None:
            parts["metric"] = {k[len("metric.") :]: v for k, v in cpu.items() if k.startswith("metric.")}
        return parts

    def save(self, path: str | Path) -> Path:
        """Write everything needed to rebuild this model to one atomic, weights_only-loadable checkpoint."""
        t = self._tensors()
        payload = {
            **self._settings(),
            "encoder_state": t["encoder"],
            "predictor_state": t["predictor"],
            "stats": t["stats"],
            **({"metric_state": t["metric"]} if "metric" in t else {}),
        }
        return save_checkpoint(path, payload, kind=WORLD_MODEL_KIND)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json + model.safetensors (predictor.*, stats.*, and encoder.* for an in-house encoder):
        the Hugging Face / stable-worldmodel layout, loadable without running code."""
        t = self._tensors()
        tensors = {f"{part}.{k}": v for part, d in t.items() for k, v in d.items()}
        return save_pretrained_dir(directory, {"model_type": PRETRAINED_MODEL_TYPE, **self._settings()}, tensors)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device, encoder_dir: str | Path | None = None) -> WorldModel:
        """Rebuild a saved world model on `device` in eval mode (encoder frozen), loading weights_only.

        Files written before encoders were recorded load as in-house ones. A foundation encoder is read from its
        recorded weights directory, or from `encoder_dir`, which must hold the same model and weights.
        """
        st = load_checkpoint(path, kind=WORLD_MODEL_KIND, map_location="cpu")
        wm = cls._build(st, st["encoder_state"], st["predictor_state"], st["stats"], str(path), device, encoder_dir)
        return wm.attach_metric(st.get("metric_config"), st.get("metric_state"), str(path))

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu", encoder_dir: str | Path | None = None
    ) -> WorldModel:
        """Load a :meth:`save_pretrained` directory (see :meth:`load` for encoder_dir)."""
        config, tensors = load_pretrained_dir(directory, PRETRAINED_MODEL_TYPE)
        parts: dict[str, dict[str, Tensor]] = {"encoder": {}, "predictor": {}, "stats": {}, "metric": {}}
        for k, v in tensors.items():
            part, _, rest = k.partition(".")
            if part not in parts:
                raise CheckpointError(f"{directory}: unexpected tensor {k!r} in model.safetensors")
            parts[part][rest] = v
        wm = cls._build(
            config, parts["encoder"], parts["predictor"], parts["stats"], str(directory), device, encoder_dir
        )
        return wm.attach_metric(config.get("metric_config"), parts["metric"], str(directory))

    def attach_metric(
        self, config: Mapping[str, Any] | None, state: Mapping[str, Tensor] | None, where: str
    ) -> WorldModel:
        """Rebuild a saved learned metric (none when ``config`` is None) on this model's device; returns self."""
        if config is None:
            return self
        if not state:
            raise CheckpointError(f"{where}: metric_config is recorded but the metric's weights are missing")
        metric = LatentMetric.from_config(dict(config))
        load_state_dict_checked(metric, state, what=f"latent metric in {where}")
        self.metric = metric.to(self.device).eval().requires_grad_(False)
        return self

    @classmethod
    def _build(
        cls,
        st: Mapping[str, Any],
        encoder_state: Mapping[str, Tensor],
        predictor_state: Mapping[str, Tensor],
        s: Mapping[str, Tensor],
        where: str,
        device: str | torch.device,
        encoder_dir: str | Path | None,
    ) -> WorldModel:
        """A world model from saved settings and tensors (shared by load and from_pretrained)."""
        rec = st.get("encoder_info") or {"name": IN_HOUSE, "config": st["encoder_config"]}  # older files
        missing = [k for k in STAT_KEYS if k not in s]
        if missing:
            raise CheckpointError(f"{where}: statistics {missing} missing")
        try:
            encoder = encoder_from_record(rec, encoder_state, where, encoder_dir)
        except EncoderError as e:
            raise WorldModelError(str(e)) from e
        if encoder_dir is not None:  # the same weights, found elsewhere: record where they are now
            rec = {**rec, "path": str(Path(encoder_dir).resolve())}
        predictor = ActionConditionedPredictor.from_config(PredictorConfig(**st["predictor_config"]))
        load_state_dict_checked(predictor, predictor_state, what=f"predictor in {where}")
        wm = cls(
            encoder,
            predictor,
            st["pool"],
            st["frameskip"],
            st["env_action_dim"],
            s["action_low"],
            s["action_high"],
            s["latent_mean"],
            s["latent_std"],
            s["proprio_mean"],
            s["proprio_std"],
            st["train_config"],
            st["meta"],
            st.get("rollout_chunk", 1024),
            encoder_info=rec,
            cameras=st.get("cameras"),
        )
        wm.predictor.requires_grad_(False)  # planning needs gradients w.r.t. actions only
        return wm.to(device).eval()
