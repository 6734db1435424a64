"""Dynamics that turn candidate action sequences (B, S, H, A) into a ``Rollout`` for the objective.

``LatentDynamics`` imagines through a world model from the frames an agent has seen; ``SimulatorDynamics``
simulates through the true physics from the exact current state (the oracle); ``RenderedDynamics`` simulates
the same way and encodes the rendered frames (the learned cost with a perfect predictor). All satisfy the
``Dynamics`` protocol in ``objective.py``, and so does any callable a user writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from worldmodel.planning.objective import Rollout


class Imagines(Protocol):
    """The part of a world model LatentDynamics uses (``worldmodel.world_model.WorldModel`` has it)."""

    def rollout(
        self,
        latent_history: Tensor,
        actions: Tensor,
        proprio_history: Tensor | None = None,
        action_history: Tensor | None = None,
    ) -> dict[str, Tensor | None]:
        """(B, T0, N, D) history and (B, S, H, A) actions -> {"latents": (B, S, H, N, D), "proprio": ...}."""


class LatentDynamics:
    """Imagine candidates through a world model from an observed context.

    Args:
        world_model: anything with ``rollout`` as ``WorldModel`` has it (KV-cached, batched over B*S).
        latents: (B, T0, N, D) normalised latents of the frames seen so far (T0 >= 1).
        proprio: (B, T0, P) normalised proprio of those frames, or None.
        actions: (B, T0-1, A) actions executed between those frames, or None (zeros).
    """

    def __init__(
        self, world_model: Imagines, latents: Tensor, proprio: Tensor | None = None, actions: Tensor | None = None
    ) -> None:
        self.wm, self.latents, self.proprio, self.actions = world_model, latents, proprio, actions

    def __call__(self, actions: Tensor) -> Rollout:
        """(B, S, H, A) env-unit actions -> imagined latents (B, S, H, N, D) and proprio (B, S, H, P)."""
        pred = self.wm.rollout(self.latents, actions, proprio_history=self.proprio, action_history=self.actions)
        return Rollout(actions=actions, latents=pred["latents"], proprio=pred.get("proprio"))


class SimulatorDynamics:
    """Simulate candidates exactly from the current env states with MuJoCo's batched rollout.

    Args:
        simulator: ``envs.simulate.BatchSimulator`` (or anything mapping (N, Ds) states and (N, H, A) actions
            to (N, H, Ds) states).
        states: (B, Ds) current env states.
    """

    def __init__(self, simulator: Any, states: np.ndarray) -> None:
        self.sim, self.states = simulator, np.asarray(states)

    def __call__(self, actions: Tensor) -> Rollout:
        """(B, S, H, A) actions -> simulated states (B, S, H, Ds) (host arrays: the simulator runs on the CPU)."""
        b, s, h, a = actions.shape
        acts = actions.detach().cpu().numpy().astype(np.float64).reshape(b * s, h, a)  # (B*S, H, A)
        start = np.repeat(self.states, s, axis=0)  # (B*S, Ds)
        traj = self.sim(start, acts).reshape(b, s, h, -1)  # (B, S, H, Ds)
        return Rollout(actions=actions, states=traj)


class RenderedDynamics:
    """The true simulator seen through the world model's frozen encoder: its latent cost with perfect prediction.

    Each candidate is simulated exactly from the current env states (``SimulatorDynamics``, as for the oracle), the
    frames the objective reads are rendered and encoded into the world model's latent space, and the objective
    scores those latents against the goal image's, exactly as it scores imagined ones. Planning with it measures
    what the *representation* allows when the predictor makes no error: the ceiling of a latent goal cost, to set
    beside the world model's (predictor + representation) and the oracle's (true task distance).

    Args:
        simulator: ``envs.simulate.BatchSimulator`` ((N, Ds) states, (N, H, A) env actions -> (N, H, Ds)).
        states: (B, Ds) current env states.
        render: one env state (Ds,) -> (H_img, W_img, 3) uint8 frame, as the env observes it.
        encode: (M, 3, H_img, W_img) uint8 frames -> (M, N, D) latents in the world model's space (all M frames in
            one call: ``WorldModel.encode`` batches them itself).
        frameskip: env steps per planner step. A world model at frameskip k plans macro actions of k * A_env dims,
            the k env actions between two kept frames concatenated (``worldmodel/data/clips.py``); they are
            unpacked into k env steps, as the agent unpacks the plan it executes.
        steps: "last" renders the final step only (the objective reads nothing else); "all" renders every step.
    """

    def __init__(
        self,
        simulator: Any,
        states: np.ndarray,
        render: Callable[[np.ndarray], np.ndarray],
        encode: Callable[[Tensor], Tensor],
        frameskip: int = 1,
        steps: str = "last",
    ) -> None:
        if steps not in ("last", "all"):
            raise ValueError(f"steps={steps!r} must be 'last' or 'all'")
        self.physics, self.render, self.encode = SimulatorDynamics(simulator, states), render, encode
        self.frameskip, self.steps = int(frameskip), steps

    def __call__(self, actions: Tensor) -> Rollout:
        """(B, S, H, fs*A) actions -> encoded latents (B, S, H', N, D), H' = 1 ("last") or H; states (B, S, H, Ds)."""
        b, s, h, a = actions.shape
        if a % self.frameskip:
            raise ValueError(f"a planner action of {a} dims is not {self.frameskip} env actions (frameskip)")
        env_actions = actions.reshape(b, s, h * self.frameskip, a // self.frameskip)  # (B, S, H*fs, A_env)
        traj = self.physics(env_actions).states[:, :, self.frameskip - 1 :: self.frameskip]  # (B, S, H, Ds)
        seen = traj[:, :, -1:] if self.steps == "last" else traj  # (B, S, H', Ds)
        # One renderer draws one frame at a time: this loop is MuJoCo's, not the planner's (a diagnostic path).
        frames = np.stack([self.render(x) for x in seen.reshape(-1, seen.shape[-1])])  # (M, H_img, W_img, 3)
        with torch.no_grad():
            lat = self.encode(torch.from_numpy(frames).permute(0, 3, 1, 2))  # (M, N, D)
        latents = lat.reshape(*seen.shape[:3], *lat.shape[1:]).to(actions.device)  # (B, S, H', N, D)
        return Rollout(actions=actions, latents=latents, states=traj)
