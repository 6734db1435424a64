"""Stdlib ``logging`` for the command line: diagnostics through loggers, results on stdout.

Library modules log with ``logging.getLogger(__name__)``; entry points configure the output once:

* argparse scripts: :func:`add_verbosity_flags` on the parser (``-q`` quiet: warnings only; ``-v`` verbose:
  debug), then ``configure_logging(args.verbosity)``: plain ``message`` lines on stderr (``warning: ...``
  for warnings and errors).
* Hydra scripts: Hydra has already set up logging (its ``hydra/job_logging``: the console plus
  ``<run dir>/<job>.log``); :func:`configure_logging` keeps that, so every record still lands in the run's log,
  and with ``compact_console=True`` shortens the console lines to ``HH:MM:SS message``. Verbosity under Hydra
  is Hydra's own ``hydra.verbose=true`` (or ``hydra.verbose=[worldmodel.pipeline]``).
"""

from __future__ import annotations

import argparse
import logging
import sys

CONSOLE_STREAMS = ("<stdout>", "<stderr>")


class _PlainFormatter(logging.Formatter):
    """``message`` for info and debug, ``warning: message`` / ``error: message`` above."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def add_verbosity_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``-q/--quiet`` and ``-v/--verbose`` (repeatable) as one ``verbosity`` count (quiet -1, default 0)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=0,
                       help="print warnings and errors only")
    group.add_argument("-v", "--verbose", dest="verbosity", action="count", help="print debug messages too")


def level_for(verbosity: int) -> int:
    """Logging level for a verbosity count: <0 WARNING, 0 INFO, >0 DEBUG."""
    return logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG


def _is_console(handler: logging.Handler) -> bool:
    """Whether a handler writes to the terminal (stdout/stderr), not to a file."""
    stream = getattr(handler, "stream", None)
    if isinstance(handler, logging.FileHandler) or stream is None:
        return False
    consoles = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    return any(stream is s for s in consoles) or getattr(stream, "name", None) in CONSOLE_STREAMS


def configure_logging(verbosity: int = 0, compact_console: bool = False) -> None:
    """Configure the root logger for a command-line entry point (see the module docstring).

    Where handlers are already installed (Hydra's job logging, or an application embedding the library) they are
    kept; otherwise one stderr handler is added. ``compact_console`` gives console handlers ``HH:MM:SS message``.
    """
    root = logging.getLogger()
    # PyOpenGL announces at INFO that its optional C accelerator is absent, on every rendering import: noise
    logging.getLogger("OpenGL.acceleratesupport").setLevel(logging.WARNING)
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PlainFormatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(level_for(verbosity))
    elif verbosity:
        root.setLevel(level_for(verbosity))
    if compact_console:
        for handler in root.handlers:
            if _is_console(handler):
                handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
