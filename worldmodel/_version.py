"""The installed package's version, read from its metadata (pyproject.toml is the one place it is written)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("worldmodel")
except PackageNotFoundError:  # a checkout on PYTHONPATH that was never pip-installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
