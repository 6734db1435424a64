"""Shared helpers for the command-line entry points: user errors become one clear line and exit code 2.

Every script reports bad input (a missing or corrupt file, a bad argument or config value, a misspelt config
key) as exactly one ``error: <what is wrong and how to fix it>`` line on stderr and exits with status 2,
before writing anything. argparse scripts build their parser with :class:`ArgumentParser`; Hydra scripts use
:func:`hydra_main` in place of ``hydra.main``, which also turns Hydra's own composition errors (a misspelt key,
an unknown config group option, a malformed override) into that line; both wrap their work in
:func:`user_errors_exit`. ``tests/test_cli_errors.py`` runs every script with a broken input.

Diagnostics go through ``logging``: argparse scripts add ``-q/-v`` with :func:`add_verbosity_flags` and call
:func:`configure_logging` (both from worldmodel.logs); Hydra scripts keep Hydra's logging (console and the run's
log file). Importing this module refuses, with one ``error:`` line, a folder of the working directory that would
stand in for one of the library's packages (``envs/`` under ``python -m``; see worldmodel.cli).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from worldmodel.cli import check_not_shadowed
from worldmodel.logs import add_verbosity_flags, configure_logging

check_not_shadowed()  # a user's envs/ or scripts/ folder first on sys.path (python -m): one clear error, exit 2

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["add_verbosity_flags", "configure_logging"]  # re-exported: scripts take logging set-up from here

# Errors a user can cause with a path, a file or a config value: report, don't dump a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, KeyError)

_FULL_ERROR = "HYDRA_FULL_ERROR"  # makes Hydra raise composition errors instead of printing them itself


def setup_headless() -> None:
    """Pick a headless OpenGL backend before mujoco is imported (see envs.rendering)."""
    from envs.rendering import configure_headless

    configure_headless()


def one_line(text: object) -> str:
    """``text`` on one line: whitespace runs collapsed, lines joined by '; ' (by a space after ':', '.', ...)."""
    joined = ""
    for line in str(text).splitlines():
        part = " ".join(line.split())
        if part and joined:
            joined += (" " if joined.endswith((":", ".", ";", ",", "(")) else "; ") + part
        elif part:
            joined = part
    return joined


def fail(message: object) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with status 2."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    raise SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the scripts' convention: a bad argument is one ``error:`` line and exit status 2
    (plain argparse prints its usage block first and names the program instead of ``error:``)."""

    def error(self, message: str) -> NoReturn:
        """Report a command-line mistake on one line, pointing at --help."""
        fail(f"{message} (see {self.prog} --help)")


def _number(text: str, cast: Callable[[str], Any], ok: Callable[[Any], bool], expected: str) -> Any:
    """argparse type body: ``cast(text)`` if ``ok`` of it, else one message saying what was ``expected``."""
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(text, float, lambda v: 0 < v < float("inf"), "a finite number > 0")


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    return _number(text, float, lambda v: 0.0 < v < 1.0, "a number strictly between 0 and 1")


def positive_int_list(text: str) -> list[int]:
    """argparse type: comma-separated integers >= 1, e.g. '1,16'."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return [positive_int(p) for p in parts]


def _config_error_types() -> tuple[type[BaseException], ...]:
    """Hydra's and OmegaConf's exception base classes, where those libraries are already imported (an error
    can only come from a library that was imported, so nothing is imported here)."""
    found: list[type[BaseException]] = []
    hydra_errors = sys.modules.get("hydra.errors")
    if hydra_errors is not None:
        found.append(hydra_errors.HydraException)
    omegaconf_errors = sys.modules.get("omegaconf.errors")
    if omegaconf_errors is not None:
        found.append(omegaconf_errors.OmegaConfBaseException)
    return tuple(found)


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is something the user caused (bad path, file, value or config), not a bug."""
    return isinstance(exc, USER_ERRORS + _config_error_types())


def error_message(exc: BaseException, config_dir: Path | None = None) -> str:
    """One line saying what is wrong, for a user error or a Hydra/OmegaConf config error."""
    if isinstance(exc, _config_error_types()):
        return config_error_message(exc, config_dir)
    if isinstance(exc, KeyError) and exc.args:
        return one_line(exc.args[0])
    return one_line(exc)


def user_errors_exit(fn: F) -> F:
    """Decorator: print user errors as one ``error: <message>`` line on stderr and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not is_user_error(exc):
                raise
            fail(error_message(exc))

    return wrapper  # type: ignore[return-value]


def _unknown_key_message(exc: BaseException, cause: BaseException, can_add: bool = True) -> str:
    """A misspelt (not-in-struct) key: name it, suggest the closest existing keys, say how to add one (``can_add``:
    a yaml-only node, not a typed schema, which takes no new keys)."""
    full_key = str(getattr(cause, "full_key", None) or getattr(cause, "key", "?"))
    key = str(getattr(cause, "key", None) or full_key.rsplit(".", 1)[-1])
    parent = getattr(cause, "parent_node", None)
    siblings = [str(k) for k in parent.keys() if k != "hydra"] if parent is not None else []
    prefix = full_key[: -len(key)] if full_key.endswith(key) else ""
    close = difflib.get_close_matches(key, siblings, n=3, cutoff=0.6)
    if close:
        known = f" (did you mean {' or '.join(repr(prefix + c) for c in close)}?)"
    else:
        known = f" (keys there: {', '.join(siblings)})" if siblings else ""
    append = re.search(r"use (\+\S+)", str(exc)) if can_add else None
    add = f", or write {append.group(1)} to add a new key" if append else ""
    return f"unknown config key {full_key!r}{known}; fix the spelling{add}"


_TYPE_NAMES = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}


def _typed_value_message(cause: BaseException | None) -> str | None:
    """A value of the wrong type for a typed (dataclass) field: ``episodes='abc' must be an integer``."""
    text = str(cause or "")
    found = re.match(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", text, flags=re.S) or re.match(
        r"Value '(.*)' is not a valid (bool)", text, flags=re.S)
    if not found:
        return None
    key = str(getattr(cause, "full_key", None) or "?")
    want = {**_TYPE_NAMES, "bool": "true or false"}.get(found.group(2), found.group(2))
    return f"{key}={found.group(1)!r} must be {want} (e.g. {key}=10)" if want == "an integer" else (
        f"{key}={found.group(1)!r} must be {want}")


def config_error_message(exc: BaseException, config_dir: Path | None = None) -> str:
    """One line for a Hydra composition error (misspelt key, unknown group option or config, bad override)."""
    text = str(exc)
    cause = exc.__cause__
    if cause is not None and "not in struct" in str(cause):
        return _unknown_key_message(exc, cause)
    if cause is not None and re.match(r"Key '[^']+' not in '\w+'", str(cause)):  # a typed schema (dataclass)
        return _unknown_key_message(exc, cause, can_add=False)
    typed_value = _typed_value_message(cause if cause is not None else exc)
    if typed_value:
        return typed_value
    options = getattr(exc, "options", None)
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    if missing and options:
        group, name = missing.groups()
        return f"config group {group!r} has no option {name!r}; choose one of {', '.join(options)}"
    primary = re.search(r"Cannot find primary config '([^']+)'", text)
    if primary:
        names = sorted(p.stem for p in config_dir.glob("*.yaml")) if config_dir and config_dir.is_dir() else []
        choose = f"; choose one of {', '.join(names)} (--config-name)" if names else ""
        where = f" in {config_dir}" if config_dir else ""
        return f"no config {primary.group(1)!r}{where}{choose}"
    override = getattr(exc, "override", None)  # OverrideParseException
    if override:
        first = text.strip().splitlines()[0] if text.strip() else "syntax error"
        return f"cannot parse override {override!r}: {first} (quote values with special characters)"
    text = text.split("Config search path:")[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if cause is not None and not lines:
        lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip() and "full_key" not in ln]
    return one_line(" ".join(lines)) or type(exc).__name__


def _check_hydra_flags(prog: str) -> None:
    """Parse sys.argv with Hydra's own parser first so a misspelt flag (--multirn) is one error line too."""
    try:
        from hydra._internal.utils import get_args_parser  # the parser hydra.main itself uses
    except ImportError:  # another Hydra layout: Hydra reports its own flag errors
        return
    parser = get_args_parser()
    parser.error = lambda message: fail(f"{message} (see {prog} --help)")  # type: ignore[method-assign]
    parser.parse_args()


def _restore_env(name: str, value: str | None) -> None:
    """Set (or, for None, remove) one environment variable."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def hydra_main(config_path: str, config_name: str) -> Callable[[Callable[[Any], None]], Callable[[], None]]:
    """``hydra.main`` (version_base 1.3) with the scripts' error convention, for a task taking the config.

    User errors raised by the task, and Hydra's composition errors (a misspelt key, a missing config group
    option, a malformed override, an unknown flag), are printed as one ``error:`` line with exit status 2.
    Hydra prints composition errors itself and exits 1 unless HYDRA_FULL_ERROR is set, so it is set while
    Hydra composes and removed again while the task runs: the task, and any process it starts, see the
    caller's environment, and an unexpected error in the task is reported by Hydra as before.
    ``config_path`` is relative to the scripts/ folder, like hydra.main's; Hydra is given its absolute path, so
    the configs are read from the folder that ships beside scripts/ (the checkout's, or the installed wheel's
    ``configs`` package data) however the script is started (``wm <stage>``, ``python scripts/x.py``), never from
    an importable module named ``configs`` that a user's folder could stand in for.
    """
    import hydra

    config_dir = (Path(__file__).resolve().parent / config_path).resolve()

    def decorate(task: Callable[[Any], None]) -> Callable[[], None]:
        saved: dict[str, str | None] = {}
        checked = user_errors_exit(task)

        @functools.wraps(task)
        def task_in_caller_env(cfg: Any) -> None:
            _restore_env(_FULL_ERROR, saved.get("value"))
            checked(cfg)
            os.environ[_FULL_ERROR] = "1"  # a --multirun sweep composes the next job after this one

        # Hydra names the job after the script (through functools.wraps); the config folder is absolute
        hydra_task = hydra.main(config_path=str(config_dir), config_name=config_name, version_base="1.3")(
            task_in_caller_env
        )

        @functools.wraps(task)
        def main() -> None:
            prog = Path(sys.argv[0]).name
            _check_hydra_flags(prog)
            saved["value"] = os.environ.get(_FULL_ERROR)
            os.environ[_FULL_ERROR] = "1"
            try:
                hydra_task()
            except Exception as exc:
                if not isinstance(exc, _config_error_types()):
                    raise
                fail(config_error_message(exc, config_dir))
            finally:
                _restore_env(_FULL_ERROR, saved["value"])

        return main

    return decorate


def run_training(train: Callable[..., dict[str, Any]], plain: dict[str, Any], drop: str, hint: str) -> None:
    """Run a training function on ``plain`` config (any rank under torchrun) and print its JSON summary on rank 0.

    A checkpoint problem or a non-finite loss prints ``error: ...`` (rank 0; plus ``hint`` for checkpoints, on
    the same line) and exits with status 2 on every rank; the process group is always cleaned up. ``drop``
    names the summary entry that holds the model object (not JSON).
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
                extra = f" (hint: {hint})" if isinstance(exc, CheckpointError) else ""
                print(f"error: {one_line(exc)}{extra}", file=sys.stderr)
            raise SystemExit(2) from None
        summary.pop(drop, None)
        if is_main():
            print(json.dumps(summary, indent=2))
    finally:
        cleanup()
