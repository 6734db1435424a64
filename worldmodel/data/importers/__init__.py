"""Importers: foreign trajectory files (HDF5/npz, flat or per-episode, local Minari, LeRobot dataset folders
v2.1/v3.0 with mp4 cameras) into our HDF5 schema.

Converted files are ordinary trajectory files, so every later stage reads them through
TrajectoryFile / ClipDataset unchanged. See docs/own_data.md.
"""

from __future__ import annotations

from worldmodel.data.importers.convert import convert_pixels, import_dataset, scan
from worldmodel.data.importers.sources import EpisodeRef, episode_ranges, open_source
from worldmodel.data.importers.spec import Boundaries, ImportSpec

__all__ = [
    "Boundaries",
    "EpisodeRef",
    "ImportSpec",
    "convert_pixels",
    "episode_ranges",
    "import_dataset",
    "open_source",
    "scan",
]
