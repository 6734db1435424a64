"""Typed settings of ``goals``: where episodes start and what they aim at."""

from __future__ import annotations

from dataclasses import dataclass

GOAL_SOURCES = ("env", "dataset")


@dataclass
class GoalsConfig:
    """Episode starts and goals."""

    source: str | None = "env"
    """env: the env samples start and goal | dataset: start at a dataset frame, goal ``offset`` steps later
    (the benchmark sets it; leave it unset there)"""
    dataset: str | None = None
    """HDF5 file for source=dataset (its held-out episodes are used)"""
    offset: int | None = 25
    """env steps between start and goal frame for source=dataset"""
