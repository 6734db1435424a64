"""Push: a disc pusher moves a T-shaped block to a goal pose (position AND yaw), PushT-style, from above.

State layout (state_dim = 15): qpos ``[block_x, block_y, block_yaw, pusher_x, pusher_y]``, then the five
matching velocities, then the five warm-start accelerations. Proprio (4,): pusher ``[x, y, vx, vy]``.
Action (2,): force command on the pusher along x and y in [-1, 1].
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.base import MujocoGoalEnv, wrap_angle

BLOCK = slice(0, 3)  # qpos indices of block x, y, yaw
PUSHER = slice(3, 5)  # qpos indices of pusher x, y


class PushEnv(MujocoGoalEnv):
    """Planar pushing of a T block; info distance = position error + angle_weight * |yaw error|."""

    xml_file = "push.xml"
    substeps = 5  # 0.01 s physics steps -> 0.05 s control steps
    task_coord_names = (
        "block_x",
        "block_y",
        "block_yaw",
        "block_cos_yaw",
        "block_sin_yaw",
        "pusher_x",
        "pusher_y",
    )

    def __init__(
        self,
        image_size: int = 64,
        action_repeat: int = 1,
        render_mode: str | None = None,
        terminate_on_success: bool = False,
        extra_cameras: tuple[str, ...] | list[str] = (),
        success_threshold: float = 0.1,
        success_angle_threshold: float = 0.2,
        angle_weight: float = 0.25,
        start_block_range: float = 0.35,
        goal_max_offset: float = 0.5,
        goal_max_rotation: float = np.pi / 2,
    ) -> None:
        if success_threshold <= 0 or success_angle_threshold <= 0:
            raise ValueError("success_threshold (arena units) and success_angle_threshold (rad) must be > 0.")
        if angle_weight < 0 or goal_max_offset < 0 or goal_max_rotation < 0 or start_block_range < 0:
            raise ValueError(
                "angle_weight, start_block_range, goal_max_offset, goal_max_rotation must be >= 0."
            )
        super().__init__(image_size, action_repeat, render_mode, terminate_on_success, extra_cameras)
        self.success_threshold = float(success_threshold)
        self.success_angle_threshold = float(success_angle_threshold)
        self.angle_weight = float(angle_weight)
        self.goal_max_offset = float(goal_max_offset)
        self.goal_max_rotation = float(goal_max_rotation)
        wall = self.model.geom("wall_n")
        self.arena_half = float(wall.pos[1] - wall.size[1])
        self.pusher_radius = float(self.model.geom("pusher").size[0])
        # Largest distance from the block origin to a T corner: the block rotates freely within this margin.
        corners = []
        for name in ("block_bar", "block_stem"):
            g = self.model.geom(name)
            corners += [
                g.pos[:2] + np.array([sx * g.size[0], sy * g.size[1]]) for sx in (-1, 1) for sy in (-1, 1)
            ]
        self.block_radius = float(max(np.linalg.norm(c) for c in corners))
        self.block_limit = self.arena_half - self.block_radius - 0.03  # block centre range for goals
        if start_block_range > self.block_limit:
            raise ValueError(f"start_block_range={start_block_range} must be <= {self.block_limit:.2f}.")
        self.start_block_range = float(start_block_range)

    def _proprio(self, data: mujoco.MjData) -> np.ndarray:
        """Pusher position and velocity (4,) float32."""
        return np.concatenate([data.qpos[PUSHER], data.qvel[PUSHER]]).astype(np.float32)

    def _place_pusher(self, rng: np.random.Generator, block_pose: np.ndarray) -> np.ndarray:
        """State at rest with the block at block_pose (3,) and the pusher at a random free spot."""
        hi = self.arena_half - self.pusher_radius - 0.02
        for _ in range(1000):
            state = self.make_state(np.concatenate([block_pose, rng.uniform(-hi, hi, size=2)]))
            if not self._in_collision(state):
                return state
        raise RuntimeError("Could not place the pusher without overlap; check push.xml geometry.")

    def _sample_init_state(self, rng: np.random.Generator) -> np.ndarray:
        """Block near the centre with any yaw, pusher anywhere free, all at rest."""
        r = self.start_block_range
        block = np.array([rng.uniform(-r, r), rng.uniform(-r, r), rng.uniform(-np.pi, np.pi)])
        return self._place_pusher(rng, block)

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        """Block pose within goal_max_offset / goal_max_rotation of the current one, not already solved."""
        here = self.get_state()
        block = self.qpos(here)[BLOCK]
        lim = self.block_limit
        for _ in range(1000):
            radius = self.goal_max_offset * np.sqrt(rng.random())  # uniform over the disc
            heading = rng.uniform(-np.pi, np.pi)
            xy = block[:2] + radius * np.array([np.cos(heading), np.sin(heading)])
            if np.any(np.abs(xy) > lim):
                continue
            yaw = wrap_angle(block[2] + rng.uniform(-self.goal_max_rotation, self.goal_max_rotation))
            goal = self._place_pusher(rng, np.array([xy[0], xy[1], yaw]))
            if not self.is_success(here, goal):
                return goal
        raise RuntimeError(
            "Could not sample an unsolved Push goal; raise goal_max_offset/goal_max_rotation "
            "or lower the success thresholds."
        )

    def pose_errors(self, states: np.ndarray, goal_state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Block position error (...,) in arena units and absolute yaw error (...,) in radians."""
        goal = self.qpos(self._check_state(goal_state, "goal_state"))[BLOCK]
        block = self.qpos(states)[..., BLOCK]
        pos_err = np.linalg.norm(block[..., :2] - goal[:2], axis=-1)
        yaw_err = np.abs(wrap_angle(block[..., 2] - goal[2]))
        return pos_err, yaw_err

    def goal_distance(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Position error plus angle_weight * yaw error (...,), in arena units."""
        pos_err, yaw_err = self.pose_errors(states, goal_state)
        return pos_err + self.angle_weight * yaw_err

    def is_success(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Block within success_threshold in position AND success_angle_threshold in yaw (...,)."""
        pos_err, yaw_err = self.pose_errors(states, goal_state)
        return (pos_err < self.success_threshold) & (yaw_err < self.success_angle_threshold)

    def state_to_task_coords(self, states: np.ndarray) -> np.ndarray:
        """Block x, y, wrapped yaw, cos/sin yaw and pusher x, y (..., 7)."""
        q = self.qpos(states)
        yaw = q[..., 2]
        return np.stack(
            [q[..., 0], q[..., 1], wrap_angle(yaw), np.cos(yaw), np.sin(yaw), q[..., 3], q[..., 4]], axis=-1
        )
