"""Trajectory data: the HDF5 schema, atomic writer, validated reader, clip dataset and parallel collector.

Imports are lazy so collector worker processes start without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SCHEMA_VERSION": "worldmodel.data.schema",
    "DatasetError": "worldmodel.data.schema",
    "DatasetMeta": "worldmodel.data.schema",
    "TrajectoryWriter": "worldmodel.data.writer",
    "TrajectoryFile": "worldmodel.data.reader",
    "ClipDataset": "worldmodel.data.clips",
    "split_episodes": "worldmodel.data.clips",
    "collect": "worldmodel.data.collect",
    "CollectConfig": "worldmodel.data.collect",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'worldmodel.data' has no attribute {name!r}")
