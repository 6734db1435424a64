"""The config a pipeline stage composes, as values: the identity of its result (worldmodel.pipeline's stage keys).

A stage's key hashes what its script will run with (Hydra's composition of its yaml, the group options its
arguments choose, the typed schemas' defaults and its overrides), not the bytes of the files that went into it: a
comment, a reordered yaml or an edited docstring in a schema module leaves every finished stage reusable, while a
changed value anywhere in that chain gives the stage a new folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def _own_global_hydra() -> Iterator[None]:
    """Hydra's global state set aside while composing, then put back (the pipeline itself runs as a Hydra app)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        restore_gh_from_backup(backup)


def compose_stage_config(script: str, overrides: list[str], config_dir: Path) -> dict[str, Any] | None:
    """What the Hydra script ``script`` composes from ``config_dir/<stem>.yaml`` with ``overrides`` (values as
    written, interpolations unresolved, Hydra's own node dropped); None for an argparse script (no such yaml).

    Raises ValueError naming the override Hydra refused (a group option that does not exist, a wrong type).
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import worldmodel.config  # noqa: F401  (the typed schemas the yamls name as their first default)

    name = Path(script).stem
    if not (config_dir / f"{name}.yaml").exists():
        return None
    try:
        with _own_global_hydra(), initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
            cfg = compose(config_name=name, overrides=list(overrides))
    except Exception as exc:  # Hydra's override, missing-option and validation errors have no common base
        cause = f" ({exc.__cause__})".replace("\n", " ") if exc.__cause__ is not None else ""
        raise ValueError(f"{script}: its overrides do not compose: {exc}{cause}") from None
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]
