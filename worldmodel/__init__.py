"""World models that plan: data, encoders, predictors, training and evaluation.

The Python API (worldmodel/api.py)::

    from worldmodel import WorldModel, evaluate_planning
    wm = WorldModel.load("world_model.pt")            # observations as the envs return them
    actions = wm.plan(obs, goal_obs)                   # the next env actions toward the goal image
    summary = evaluate_planning("world_model.pt", env="tworoom", episodes=8)

Settings are the dataclasses of ``worldmodel.config`` (the command line's structured configs); importing this
package registers them with Hydra. ``WorldModel`` and ``evaluate_planning`` are imported on first use, so
``import worldmodel`` stays light (no torch).
"""

from __future__ import annotations

from typing import Any

import worldmodel.config  # noqa: F401  (registers the typed configs with Hydra's ConfigStore)

try:
    from worldmodel._version import __version__
except ImportError:  # a checkout without the generated version module
    __version__ = "0.0.0+unknown"

__all__ = ["WorldModel", "__version__", "evaluate_planning"]

_API = {"WorldModel": "worldmodel.api", "evaluate_planning": "worldmodel.api"}


def __getattr__(name: str) -> Any:
    """Import the Python API lazily (it needs torch)."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'worldmodel' has no attribute {name!r}")
