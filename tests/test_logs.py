"""The command line's logging set-up (worldmodel.logs): -q/-v for argparse scripts, Hydra's handlers kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import argparse, logging
from worldmodel.logs import add_verbosity_flags, configure_logging
p = argparse.ArgumentParser()
add_verbosity_flags(p)
configure_logging(p.parse_args().verbosity)
log = logging.getLogger("worldmodel.x")
log.debug("dbg"); log.info("progress"); log.warning("careful")
print("result")
"""


@pytest.mark.parametrize(
    ("flags", "stderr"),
    [
        ([], "progress\nwarning: careful\n"),
        (["-q"], "warning: careful\n"),
        (["-vv"], "dbg\nprogress\nwarning: careful\n"),
    ],
)
def test_verbosity_flags_choose_what_reaches_stderr(flags: list[str], stderr: str) -> None:
    """Diagnostics on stderr at the chosen level (warnings prefixed), results alone on stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", SCRIPT, *flags], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout == "result\n" and res.stderr == stderr, res.stderr


def test_existing_handlers_are_kept_and_console_made_compact() -> None:
    """Under Hydra (handlers already installed) nothing is replaced; compact_console shortens console lines only."""
    import io
    import logging

    from worldmodel.logs import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    console = logging.StreamHandler(sys.stdout)  # what hydra/job_logging installs (plus a FileHandler)
    buffer = io.StringIO()
    other = logging.StreamHandler(buffer)
    try:
        root.handlers = [console, other]
        root.setLevel(logging.INFO)
        configure_logging(compact_console=True)
        assert root.handlers == [console, other] and root.level == logging.INFO
        assert console.formatter is not None and console.formatter._fmt == "%(asctime)s %(message)s"
        assert other.formatter is None  # not a console: left as it was
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])
