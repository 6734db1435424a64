"""Kill-and-resume test helpers: run an entry-point script in its own process group and SIGKILL the whole
group (the script and any worker processes) once it has made some progress, at a seeded random moment."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
KILL_SEED = int(os.environ.get("WM_KILL_SEED", "0"))
"""Base seed of the kill moments; loop over a few values by hand (WM_KILL_SEED=1 ...) to hunt flakiness."""

TEMP_MARKERS = (".tmp", "tmp-")
"""Name fragments of the library's temporary files (atomic writes); none may survive a finished run."""


def kill_rng(job: str) -> random.Random:
    """Seeded RNG for one job's kill moment (distinct per job, shifted by WM_KILL_SEED)."""
    return random.Random(f"{KILL_SEED}:{job}")


def script_env() -> dict[str, str]:
    """Environment for a script run: the repo importable and one thread per math library (steady, fast)."""
    one = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    return {**os.environ, **one, "PYTHONPATH": str(ROOT)}


def script_cmd(script: str, *overrides: str) -> list[str]:
    """Command line of ``scripts/<script>`` with Hydra overrides."""
    return [sys.executable, str(ROOT / "scripts" / script), *overrides]


def compose_config(name: str, overrides: list[str]) -> dict[str, Any]:
    """The resolved config a script would see for ``overrides`` (Hydra's own keys left out)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    keep = [o for o in overrides if not o.startswith("hydra.")]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return OmegaConf.to_container(compose(config_name=name, overrides=keep), resolve=True)  # type: ignore[return-value]


def run_cmd(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing its output."""
    return subprocess.run(cmd, cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=timeout)


def require(ok: bool, message: str) -> None:
    """A precondition of a test, not what it checks: failing it is never taken for an expected failure (xfail
    tests expect an AssertionError)."""
    if not ok:
        pytest.fail(message)


def run_ok(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command that must succeed; fail the test with its stderr otherwise."""
    res = run_cmd(cmd, timeout)
    require(res.returncode == 0, f"{' '.join(cmd)}\nexit {res.returncode}\n{res.stderr[-4000:]}")
    return res


def _group_alive(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes in process group ``pgid``."""
    alive = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(d.name))
    return alive


def kill_midway(
    cmd: list[str],
    progress: Callable[[], bool],
    rng: random.Random,
    max_extra_s: float,
    log: Path,
    timeout: float = 300,
    poll_s: float = 0.01,
) -> bool:
    """Start ``cmd`` as a new session, wait until ``progress()`` is true, sleep a random extra delay in
    [0, max_extra_s), then SIGKILL its whole process group; fails the test if a process of the group survives.
    Returns False when the job finished on its own before the kill (a job that fails fails the test)."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=script_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    t0 = time.monotonic()
    try:
        while not progress() and proc.poll() is None:
            if time.monotonic() - t0 > timeout:
                pytest.fail(f"no progress after {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(poll_s)
        if proc.poll() is None:
            time.sleep(rng.uniform(0.0, max_extra_s))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    at = time.monotonic() - t0
    deadline = time.monotonic() + 10
    while (left := _group_alive(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    require(not left, f"processes {left} of the killed job survived SIGKILL of its group")
    if proc.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"job failed ({proc.returncode}) before the kill:\n{log.read_text()[-3000:]}")
    print(f"{Path(cmd[1]).name}: {'killed' if proc.returncode else 'finished'} at {at:.2f} s (seed {KILL_SEED})")
    return proc.returncode == -signal.SIGKILL


def kill_in_window(
    start: Callable[[Path], tuple[list[str], Callable[[], bool]]],
    in_window: Callable[[Path], bool],
    root: Path,
    rng: random.Random,
    max_extra_s: float,
    attempts: int = 3,
    poll_s: float = 0.01,
) -> tuple[Path, list[str]]:
    """Kill a job (``start(work_dir)`` gives its command and progress test) once ``in_window(work_dir)`` holds
    afterwards. A loaded machine can starve this poller for a while and let the job run past the window (or
    to its end); then the kill is retried in a fresh work dir. Returns the work dir and command of the kill."""
    for attempt in range(attempts):
        work = root / f"attempt{attempt}"
        cmd, progress = start(work)
        if kill_midway(cmd, progress, rng, max_extra_s, root / f"killed{attempt}.log", poll_s=poll_s) and in_window(
            work
        ):
            return work, cmd
        print(f"{Path(cmd[1]).name}, attempt {attempt}: the kill did not land in its window; retrying")
    pytest.fail(f"{attempts} kills in a row missed their window (machine too loaded?)")


def files_under(root: Path) -> Iterator[Path]:
    """Every file below ``root`` (hidden ones included)."""
    return (p for p in root.rglob("*") if p.is_file())


def leftover_temp_files(root: Path) -> list[str]:
    """Temporary files (atomic-write tmp files, hidden files such as shards) still lying below ``root``."""
    return sorted(
        str(p.relative_to(root))
        for p in files_under(root)
        if p.name.startswith(".") or any(m in p.name for m in TEMP_MARKERS) or ".shards" in str(p)
    )
