"""Reacher: planar two-link arm seen from above; the goal is an arm configuration (both joint angles).

State layout (state_dim = 6): ``[q_shoulder, q_elbow, dq_shoulder, dq_elbow, warm_shoulder, warm_elbow]``
(the shoulder angle is unbounded, the elbow is limited to +-2.6 rad).
Proprio (6,): ``[cos q_s, sin q_s, cos q_e, sin q_e, dq_s, dq_e]``. Action (2,): joint torques in [-1, 1].
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.base import MujocoGoalEnv, wrap_angle


class ReacherEnv(MujocoGoalEnv):
    """Two-link arm with motorised shoulder and elbow; success when both joints are near the goal."""

    xml_file = "reacher.xml"
    substeps = 5  # 0.01 s physics steps -> 0.05 s control steps
    task_coord_names = (
        "cos_shoulder",
        "sin_shoulder",
        "cos_elbow",
        "sin_elbow",
        "fingertip_x",
        "fingertip_y",
    )

    def __init__(
        self,
        image_size: int = 64,
        action_repeat: int = 1,
        render_mode: str | None = None,
        terminate_on_success: bool = False,
        extra_cameras: tuple[str, ...] | list[str] = (),
        success_threshold: float = 0.15,
        elbow_margin: float = 0.2,
    ) -> None:
        if success_threshold <= 0:
            raise ValueError(f"success_threshold={success_threshold} must be > 0 (radians, joint-space L2).")
        super().__init__(image_size, action_repeat, render_mode, terminate_on_success, extra_cameras)
        self.success_threshold = float(success_threshold)
        # Link lengths and joint range read from the MJCF so the analytic kinematics match the model.
        self.link_lengths = (
            float(self.model.body("link2").pos[0]),
            float(self.model.site("fingertip").pos[0]),
        )
        lo, hi = self.model.joint("elbow").range
        if not 0.0 <= elbow_margin < hi:
            raise ValueError(f"elbow_margin={elbow_margin} must lie in [0, {hi}) radians.")
        self.elbow_range = (float(lo) + elbow_margin, float(hi) - elbow_margin)

    def _proprio(self, data: mujoco.MjData) -> np.ndarray:
        """Joint angles as cos/sin plus joint velocities (6,) float32."""
        q = data.qpos
        return np.array(
            [np.cos(q[0]), np.sin(q[0]), np.cos(q[1]), np.sin(q[1]), data.qvel[0], data.qvel[1]],
            dtype=np.float32,
        )

    def _sample_config(self, rng: np.random.Generator) -> np.ndarray:
        """Joint angles (2,): shoulder uniform on the circle, elbow uniform inside its limits."""
        return np.array([rng.uniform(-np.pi, np.pi), rng.uniform(*self.elbow_range)])

    def _sample_init_state(self, rng: np.random.Generator) -> np.ndarray:
        """Arm at rest in a uniformly random configuration."""
        return self.make_state(self._sample_config(rng))

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        """Uniformly random configuration at rest (every one is reachable), not already solved."""
        here = self.get_state()
        for _ in range(100):
            goal = self.make_state(self._sample_config(rng))
            if not self.is_success(here, goal):
                return goal
        raise RuntimeError("Could not sample an unsolved Reacher goal; lower success_threshold.")

    def fingertip_xy(self, states: np.ndarray) -> np.ndarray:
        """Fingertip position (..., 2) by forward kinematics of the joint angles."""
        q = self.qpos(states)
        l1, l2 = self.link_lengths
        q12 = q[..., 0] + q[..., 1]
        x = l1 * np.cos(q[..., 0]) + l2 * np.cos(q12)
        y = l1 * np.sin(q[..., 0]) + l2 * np.sin(q12)
        return np.stack([x, y], axis=-1)

    def state_to_task_coords(self, states: np.ndarray) -> np.ndarray:
        """cos/sin of both joints and fingertip xy (..., 6)."""
        q = self.qpos(states)
        tip = self.fingertip_xy(states)
        return np.concatenate(
            [
                np.stack(
                    [np.cos(q[..., 0]), np.sin(q[..., 0]), np.cos(q[..., 1]), np.sin(q[..., 1])], axis=-1
                ),
                tip,
            ],
            axis=-1,
        )

    def goal_distance(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Joint-space L2 distance (...,) in radians, wrapping the shoulder angle."""
        goal_q = self.qpos(self._check_state(goal_state, "goal_state"))
        dq = wrap_angle(self.qpos(states) - goal_q)  # (..., 2)
        return np.linalg.norm(dq, axis=-1)

    def is_success(self, states: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Whether the configuration is within success_threshold radians of the goal (...,)."""
        return self.goal_distance(states, goal_state) < self.success_threshold
