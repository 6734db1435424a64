"""Dynamics that turn candidate action sequences (B, S, H, A) into a ``Rollout`` for the objective.

``LatentDynamics`` imagines through a world model from the frames an agent has seen; ``SimulatorDynamics``
simulates through the true physics from the exact current state (the oracle). Both satisfy the ``Dynamics``
protocol in ``objective.py``, and so does any callable a user writes.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
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

