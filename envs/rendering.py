"""Choose MuJoCo's headless OpenGL backend once, before mujoco is imported anywhere.

``import envs`` (and so any import from this package) calls :func:`configure_headless` before mujoco is
imported. setup.sh writes the backend it verified to ``.venv/mujoco_gl``, read here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BACKEND_FILE = "mujoco_gl"
"""File in the virtual environment's prefix where setup.sh records the backend that worked."""


def configure_headless() -> str:
    """Set MUJOCO_GL (and PyOpenGL's platform) unless the user already chose; returns the backend.

    Order: the user's MUJOCO_GL, then the backend setup.sh verified on this machine, then EGL.
    """
    if "MUJOCO_GL" not in os.environ:
        recorded = Path(sys.prefix) / BACKEND_FILE
        backend = recorded.read_text().strip() if recorded.exists() else ""
        os.environ["MUJOCO_GL"] = backend or "egl"
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    return os.environ["MUJOCO_GL"]
