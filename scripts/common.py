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
    """Pick a headless OpenGL backend before mujoco is imported (see worldmodel.rendering)."""
    from worldmodel.rendering import configure_headless

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
