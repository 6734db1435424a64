"""Shared helpers for the command-line entry points: user errors become one clear line and exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Errors a user can cause with a path, a file or a config value: report, don't dump a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, KeyError)


def setup_headless() -> None:
    """Pick a headless OpenGL backend before mujoco is imported (see envs.rendering)."""
    from envs.rendering import configure_headless

    configure_headless()


def user_errors_exit(fn: F) -> F:
    """Decorator: print user errors as ``error: <message>`` on stderr and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"error: {msg}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]


def run_training(train: Callable[..., dict[str, Any]], plain: dict[str, Any], drop: str, hint: str) -> None:
    """Run a training function on ``plain`` config (any rank under torchrun) and print its JSON summary on rank 0.

    A checkpoint problem or a non-finite loss prints ``error: ...`` (rank 0; plus ``hint`` for checkpoints)
    and exits with status 2 on every rank; the process group is always cleaned up. ``drop`` names the summary
    entry that holds the model object (not JSON).
    """
    import json

    import torch

    from worldmodel.checkpoint import CheckpointError
    from worldmodel.training.distributed import cleanup, is_main

    if plain.get("threads"):
        torch.set_num_threads(int(plain["threads"]))
    try:
        try:
            summary = train(plain, plain["out_dir"], device=plain["device"])
        except (CheckpointError, FloatingPointError) as exc:  # FloatingPointError: non-finite, same on all ranks
            if is_main():
                extra = f"\n(hint: {hint})" if isinstance(exc, CheckpointError) else ""
                print(f"error: {exc}{extra}", file=sys.stderr)
            raise SystemExit(2) from None
        summary.pop(drop, None)
        if is_main():
            print(json.dumps(summary, indent=2))
    finally:
        cleanup()
