"""Local Minari datasets as an import source (nothing is downloaded: ``minari.load_dataset(id)`` on disk).

A Minari episode has T+1 observations and T actions; keys are paths into its fields, e.g.
``observations/pixels`` (dict observations), ``observations`` (array observations), ``actions``,
``rewards``, ``terminations``, ``infos/<name>``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldmodel.data.importers.sources import EpisodeRef, split_optional
from worldmodel.data.importers.spec import ImportSpec
from worldmodel.data.schema import DatasetError

FIELDS = ("observations", "actions", "rewards", "terminations", "truncations", "infos")


def _lookup(tree: Any, key: str) -> Any:
    """Follow a '/'-separated path through nested dicts; KeyError when a part is missing."""
    node = tree
    for part in key.split("/"):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(part)
        node = node[part]
    return node


def _has(tree: Any, key: str) -> bool:
    """Whether the '/'-separated path ``key`` exists in the nested dict."""
    try:
        _lookup(tree, key)
    except KeyError:
        return False
    return True


def _key_paths(tree: Any, prefix: str = "") -> list[str]:
    """Every leaf path of a nested dict (for error messages)."""
    if not isinstance(tree, dict):
        return [prefix]
    out: list[str] = []
    for k, v in tree.items():
        out += _key_paths(v, f"{prefix}/{k}" if prefix else str(k))
    return out


class MinariSource:
    """Episodes of a local Minari dataset, read one at a time (the last one is cached)."""

    def __init__(self, spec: ImportSpec) -> None:
        try:
            import minari
        except ImportError as exc:
            raise DatasetError(
                spec.source, "format=minari needs the minari package", "pip install 'minari>=0.5'"
            ) from exc
        self.path = spec.source
        try:
            self.dataset = minari.load_dataset(spec.source, download=False)
        except Exception as exc:  # minari raises FileNotFoundError/ValueError depending on the version
            raise DatasetError(
                spec.source,
                f"cannot load the local Minari dataset ({exc})",
                "check the id with `minari list local` (MINARI_DATASETS_PATH sets where datasets live)",
            ) from exc
        ids = [int(i) for i in self.dataset.episode_indices]
        self.episodes = [EpisodeRef(j, f"Minari episode {i}", group=str(i), seed=i) for j, i in enumerate(ids)]
        self.covered_rows = -1
        self._cached: tuple[str, dict[str, Any]] | None = None
        self.columns: list[str] = []
        self.absent: dict[str, str] = {}
        if self.episodes:  # check the mapping against the first episode
            tree = self._tree(self.episodes[0])
            self.columns = _key_paths(tree)
            _, self.absent = split_optional(
                self.path,
                spec,
                lambda key: _has(tree, key),
                f"{self.episodes[0].label}; it has {self.columns}",
                "fix keys.{ours} in the import config",
            )
        env_spec = getattr(self.dataset, "env_spec", None)
        self.env_id = getattr(env_spec, "id", None)
        self.env_kwargs = dict(getattr(env_spec, "kwargs", {}) or {})

    def _tree(self, ref: EpisodeRef) -> dict[str, Any]:
        """The episode's fields as a nested dict, loaded once per episode."""
        if self._cached is None or self._cached[0] != ref.group:
            (ep,) = list(self.dataset.iterate_episodes([int(ref.group)]))
            self._cached = (ref.group, {f: getattr(ep, f) for f in FIELDS})
        return self._cached[1]

    def read(self, ref: EpisodeRef, key: str) -> np.ndarray:
        """The field at path ``key`` of one episode."""
        try:
            return np.asarray(_lookup(self._tree(ref), key))
        except KeyError:
            raise DatasetError(self.path, f"key {key!r} is missing from {ref.label}") from None

    def shape(self, ref: EpisodeRef, key: str) -> tuple[int, ...]:
        """Shape of one episode's field (the episode is loaded and cached)."""
        return tuple(self.read(ref, key).shape)

    def close(self) -> None:
        """Drop the cached episode."""
        self._cached = None
