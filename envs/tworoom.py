"""TwoRoom: a point mass in two rooms joined by a door; the goal is a position, often in the other room.

State layout (state_dim = 6): ``[x, y, vx, vy, warm_x, warm_y]``.
Proprio (4,): ``[x, y, vx, vy]``. Action (2,): force command along x and y in [-1, 1].
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.base import MujocoGoalEnv


class TwoRoomEnv(MujocoGoalEnv):
    """Point mass (x, y slide joints) in a walled arena split by a wall with a door gap at x = 0."""

    xml_file = "tworoom.xml"
    substeps = 5  # 0.01 s physics steps -> 0.05 s control steps
    task_coord_names = ("agent_x", "agent_y")

    def __init__(
        self,
        image_size: int = 64,
        action_repeat: int = 1,
        render_mode: str | None = None,
        terminate_on_success: bool = False,
        extra_cameras: tuple[str, ...] | list[str] = (),
        success_radius: float = 0.15,
        goal_other_room_prob: float = 1.0,
    ) -> None:
        if success_radius <= 0:
            raise ValueError(f"success_radius={success_radius} must be > 0 (arena units; arena is 2 x 2).")
        if not 0.0 <= goal_other_room_prob <= 1.0:
            raise ValueError(f"goal_other_room_prob={goal_other_room_prob} must lie in [0, 1].")
        super().__init__(image_size, action_repeat, render_mode, terminate_on_success, extra_cameras)
        self.success_threshold = float(success_radius)
        self.goal_other_room_prob = float(goal_other_room_prob)
        # Geometry read from the MJCF so code and model cannot disagree.
        wall = self.model.geom("wall_mid_n")
        self.door_half_width = float(wall.pos[1] - wall.size[1])
        self.wall_half_thickness = float(wall.size[0])
        self.arena_half = float(self.model.geom("wall_n").pos[1] - self.model.geom("wall_n").size[1])
        self.agent_radius = float(self.model.geom("agent").size[0])

    def _proprio(self, data: mujoco.MjData) -> np.ndarray:
        """Agent position and velocity (4,) float32."""
        return np.concatenate([data.qpos, data.qvel]).astype(np.float32)

    def sample_position(self, rng: np.random.Generator, room: int | None = None) -> np.ndarray:
        """Collision-free agent position (2,) in room -1 (x < 0), +1 (x > 0) or anywhere (None)."""
        lo_x = self.wall_half_thickness + self.agent_radius + 0.02
        hi = self.arena_half - self.agent_radius - 0.02
        for _ in range(1000):
            side = room if room is not None else (-1 if rng.random() < 0.5 else 1)
            xy = np.array([side * rng.uniform(lo_x, hi), rng.uniform(-hi, hi)])
            if not self._in_collision(self.make_state(xy)):
                return xy
        raise RuntimeError(
            "Could not sample a free TwoRoom position; check the arena geometry in tworoom.xml."
        )

    def room_of(self, xy: np.ndarray) -> np.ndarray:
        """Room index (...,) of positions (..., 2): -1 left of the dividing wall, +1 right of it."""
        return np.where(np.asarray(xy)[..., 0] < 0.0, -1, 1)

    def _sample_init_state(self, rng: np.random.Generator) -> np.ndarray:
        """Agent at rest anywhere in either room."""
        return self.make_state(self.sample_position(rng, None))

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        """Goal position at rest, in the other room with probability goal_other_room_prob."""
        here = self.data.qpos[:2].copy()
        other = rng.random() < self.goal_other_room_prob
        room = -int(self.room_of(here)) if other else None
        for _ in range(100):
            xy = self.sample_position(rng, room)
            if np.linalg.norm(xy - here) > 2.0 * self.success_threshold:
                return self.make_state(xy)
        raise RuntimeError("Could not sample a TwoRoom goal away from the start; lower success_radius.")

    def state_to_task_coords(self, states: np.ndarray) -> np.ndarray:
        """Agent position (..., 2)."""
        return self.qpos(states)[..., :2].astype(np.float64)

    def goal_distance(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Euclidean distance (...,) between agent positions and the goal position."""
        goal_xy = self.qpos(self._check_state(goal_state, "goal_state"))[:2]
        return np.linalg.norm(self.qpos(states)[..., :2] - goal_xy, axis=-1)

    def is_success(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Whether the agent is within success_radius of the goal position (...,)."""
        return self.goal_distance(states, goal_state) < self.success_threshold
