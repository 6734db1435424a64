"""Evaluation episodes: deterministic start/goal specs and a batch of environments stepped together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from envs.contract import GoalEnv


@dataclass(frozen=True)
class EpisodeSpec:
    """One evaluation episode: where it starts, what it must reach, and the seed that fixes both."""

    index: int
    seed: int
    init_state: np.ndarray | None  # (Ds,) or None: the env samples a start from `seed`
    goal_state: np.ndarray | None  # (Ds,) or None: the env samples a goal from `seed`
    source: str  # "env" or "dataset:<episode>:<frame>"


def env_episode_specs(num: int, seed: int) -> list[EpisodeSpec]:
    """Episodes whose start and goal the environment samples from a per-episode seed."""
    specs = []
    for i in range(num):
        s = int(np.random.SeedSequence([int(seed), 7919, i]).generate_state(1, dtype=np.uint32)[0])
        specs.append(EpisodeSpec(index=i, seed=s, init_state=None, goal_state=None, source="env"))
    return specs


def dataset_episode_specs(
    path: str, num: int, offset: int, seed: int, split: str = "val"
) -> list[EpisodeSpec]:
    """Start at a dataset frame and take the frame ``offset`` steps later as the goal (DINO-WM protocol).

    Episodes come from the held-out split by default, so the goals were never trained on.
    """
    from worldmodel.data.clips import split_episodes
    from worldmodel.data.reader import TrajectoryFile

    tf = TrajectoryFile(path)
    train_ids, val_ids = split_episodes(tf.num_episodes, 0.1, 0)
    pool = {"val": val_ids, "train": train_ids, "all": np.arange(tf.num_episodes)}[split]
    pool = pool[tf.episode_lengths[pool] > offset]
    if len(pool) == 0:
        raise ValueError(
            f"{path}: no {split!r} episode is longer than goal offset {offset}; lower eval.goal_offset"
        )
    rng = np.random.default_rng([int(seed), 104729])
    specs = []
    for i in range(num):
        ep = int(pool[rng.integers(len(pool))])
        t0 = int(rng.integers(0, tf.episode_lengths[ep] - offset))
        g = int(tf.episode_starts[ep])
        states = tf.read("state", g + t0, g + t0 + offset + 1)
        specs.append(
            EpisodeSpec(
                index=i,
                seed=int(rng.integers(2**31)),
                init_state=states[0],
                goal_state=states[-1],
                source=f"dataset:{ep}:{t0}",
            )
        )
    tf.close()
    return specs


VIEW_PREFIX = "pixels/"
"""Observation keys of an env's extra cameras (``pixels/<camera>``, envs/base.py); ``pixels`` is its main camera."""


class EnvBatch:
    """B environments of one task stepped in lock-step; episodes that finished keep their last frame.

    Any env that implements the contract of ``envs/contract.py`` (``GoalEnv``) can be batched: the built-in tasks,
    the MuJoCo adapter, the generic adapter for any gymnasium env, or the user's own. Stepping is a loop over
    environments (stepping and rendering are per-instance); everything a planner touches is batched.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], num_envs: int) -> None:
        from envs.rendering import configure_headless

        configure_headless()
        import gymnasium

        import envs  # noqa: F401

        kwargs = dict(env_kwargs)
        kwargs.pop("max_episode_steps", None)
        self.envs = [
            gymnasium.make(env_id, max_episode_steps=None, disable_env_checker=True, **kwargs)
            for _ in range(num_envs)
        ]
        self.base: list[GoalEnv] = [e.unwrapped for e in self.envs]
        self._check_contract()
        space = self.envs[0].action_space
        self.action_low = np.asarray(space.low, dtype=np.float32)
        self.action_high = np.asarray(space.high, dtype=np.float32)
        self.num_envs = num_envs
        self.active = np.zeros(num_envs, dtype=bool)
        self.pixels: np.ndarray | None = None  # (B, H, W, 3)
        self.proprio: np.ndarray | None = None  # (B, P)
        self.views: dict[str, np.ndarray] = {}  # extra camera -> (B, H, W, 3), from the envs' pixels/<camera>
        self.info: list[dict[str, Any]] = []

    def _check_contract(self) -> None:
        """Refuse an env without the contract's members, naming each and its fix (before any episode)."""
        from envs.contract import GOAL_ENV_MEMBERS, describe_missing

        missing = describe_missing(self.base[0], GOAL_ENV_MEMBERS) if self.base else []
        if missing:
            self.close()
            raise ValueError("the env cannot be evaluated (envs/contract.py): " + "; ".join(missing))

    def reset(self, specs: list[EpisodeSpec]) -> None:
        """Start one episode per env (fewer specs than envs leaves the rest inactive)."""
        obs, infos = [], []
        for b, env in enumerate(self.envs):
            spec = specs[b] if b < len(specs) else specs[-1]
            options = {}
            if spec.init_state is not None:
                options["init_state"] = spec.init_state
            if spec.goal_state is not None:
                options["goal_state"] = spec.goal_state
            o, info = env.reset(seed=spec.seed, options=options or None)
            obs.append(o)
            infos.append(info)
        self.active = np.arange(self.num_envs) < len(specs)
        self._store(obs, infos)

    def _store(self, obs: list[dict[str, np.ndarray]], infos: list[dict[str, Any]]) -> None:
        """Keep the observations as batches: the main camera, proprio, and every extra camera the envs render."""
        self.pixels = np.stack([o["pixels"] for o in obs])  # (B, H, W, 3)
        self.proprio = np.stack([o["proprio"] for o in obs])  # (B, P)
        extra = [k for k in obs[0] if k.startswith(VIEW_PREFIX)]
        self.views = {k[len(VIEW_PREFIX) :]: np.stack([o[k] for o in obs]) for k in extra}  # each (B, H, W, 3)
        self.info = infos

    def _last_obs(self, b: int) -> dict[str, np.ndarray]:
        """Env b's last observation (every camera), for an env whose episode has finished."""
        assert self.pixels is not None and self.proprio is not None, "reset the batch first"
        views = {VIEW_PREFIX + c: v[b] for c, v in self.views.items()}
        return {"pixels": self.pixels[b], "proprio": self.proprio[b], **views}

    def step(self, actions: np.ndarray) -> None:
        """Apply actions (B, A) to the active envs; inactive ones repeat their last observation."""
        obs, infos = [], []
        for b, env in enumerate(self.envs):
            if self.active[b]:
                o, _, _, _, info = env.step(actions[b])
            else:
                o, info = self._last_obs(b), self.info[b]
            obs.append(o)
            infos.append(info)
        self._store(obs, infos)

    def goal_pixels(self) -> np.ndarray:
        """(B, H, W, 3) goal images of the current episodes."""
        return np.stack([b.goal_pixels for b in self.base])

    def states(self) -> np.ndarray:
        """(B, Ds) current simulator states."""
        return np.stack([b.get_state() for b in self.base])

    def goal_states(self) -> np.ndarray:
        """(B, Ds) current goal states."""
        return np.stack([b.goal_state for b in self.base])

    def success(self) -> np.ndarray:
        """(B,) success flags of the latest step."""
        return np.array([bool(i["success"]) for i in self.info])

    def distance(self) -> np.ndarray:
        """(B,) goal distances of the latest step."""
        return np.array([float(i["distance"]) for i in self.info])

    def close(self) -> None:
        """Free every renderer."""
        for e in self.envs:
            e.close()
