"""The examples/ scripts run as users run them (tiny): import data and train, plan in an env, sweep planners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str, cwd: Path) -> str:
    """stdout of ``python examples/<name> --tiny <args>`` (asserting exit status 0)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "WM_EXAMPLE_TINY": "1"}
    res = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), "--tiny", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_examples_train_plan_and_sweep(tmp_path: Path) -> None:
    """train_on_your_data writes and imports an npz and trains a world model; the other two plan with it."""
    out = run_example("train_on_your_data.py", "--out", str(tmp_path / "ex"), cwd=tmp_path)
    wm = tmp_path / "ex" / "predictor" / "world_model.pt"
    assert wm.exists() and "imported 6 episodes" in out
    assert (tmp_path / "ex" / "my_robot.npz").exists() and (tmp_path / "ex" / "my_robot.h5").exists()

    out = run_example("plan_in_env.py", "--world-model", str(wm), cwd=tmp_path)
    assert "after 3 plans" in out

    out = run_example("sweep_planners.py", "--world-model", str(wm), "--out", str(tmp_path / "sweep"), cwd=tmp_path)
    for planner in ("CEM", "MPPI", "ICEM"):
        assert f"| wm/TwoRoom-v0 | {planner} | 0 | world_model | 2 |" in out
    assert len(list((tmp_path / "sweep").glob("*/summary.json"))) == 3
