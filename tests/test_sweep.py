"""Hydra --multirun sweeps of evaluate.py (one folder per job) and the table across their summaries."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_evaluate import ROOT

from worldmodel.eval.closed_loop import wilson_interval
from worldmodel.eval.sweep import sweep_summary


def test_multirun_over_planners_and_seeds_and_its_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A real sweep: 2 planners x 2 seeds, random + oracle, 2 episodes of 3 steps each."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "evaluate.py"),
            "--multirun",
            "planner=cem,mppi",
            "seed=0,1",
            f"out_root={tmp_path}",
            "episodes=2",
            "eval.max_steps=3",
            "eval.num_envs=2",
            "eval.video_episodes=0",
            "planner.num_samples=16",
            "planner.iterations=2",
            "device=cpu",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    runs = sorted(p.parent.name for p in tmp_path.rglob("summary.json"))
    assert runs == ["tworoom_cem_seed0", "tworoom_cem_seed1", "tworoom_mppi_seed0", "tworoom_mppi_seed1"]
    assert len(list((tmp_path / "multirun").glob("*/[0-3]/.hydra"))) == 4  # Hydra's own logs, per job

    from scripts.sweep_summary import main

    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "## Runs" in out and "## Over seeds" in out and "| wm/TwoRoom-v0 | MPPI |" in out
    with (tmp_path / "sweep_runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["seed"] for r in rows} == {"0", "1"}
    assert {(r["planner"], r["method"]) for r in rows} == {
        (p, m) for p in ("CEM", "MPPI") for m in ("random", "oracle")
    }
    assert all(r["variant"] == "" for r in rows)  # only planner and seed vary
    # Random actions do not depend on the planner: same seed, same episodes, same result.
    rnd = {(r["planner"], r["seed"]): r["final_distance"] for r in rows if r["method"] == "random"}
    assert rnd[("CEM", "0")] == rnd[("MPPI", "0")] != rnd[("CEM", "1")]
    with (tmp_path / "sweep_seeds.csv").open() as f:
        agg = list(csv.DictReader(f))
    assert len(agg) == 4 and all(a["seeds"] == "2" and a["episodes"] == "4" for a in agg)
    assert (tmp_path / "sweep_summary.md").read_text().startswith("# Evaluation sweep")


def synthetic_summary(root: Path, name: str, seed: int | None, succ: int, n: int, **planner: Any) -> None:
    """A SYNTHETIC summary.json (made up, in evaluate.py's format) with ``succ`` of ``n`` oracle successes."""
    lo, hi = wilson_interval(succ, n)
    method = {
        "episodes": n,
        "success_rate": succ / n,
        "success_ci95": [lo, hi],
        "reached_rate": succ / n,
        "final_distance_mean": 0.1 * (seed or 0) + 0.2,
        "plan_latency_s": {"mean": 0.01, "calls": 10 * n},
    }
    summary = {
        "env_id": "wm/TwoRoom-v0",
        "env_kwargs": {"image_size": 64},
        "seed": seed,
        "episodes": n,
        "settings": {"max_steps": 60, "num_envs": 8, "video_episodes": 8},
        "planner": {"_target_": "planners.cem.CEMPlanner", "num_samples": 300, "seed": 0, **planner},
        "agent": {},
        "device": "cpu",
        "methods": {"oracle": method},
    }
    (root / name).mkdir(parents=True)
    (root / name / "summary.json").write_text(json.dumps(summary))


def test_aggregate_over_seeds_on_synthetic_summaries(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """SYNTHETIC summaries (not from real runs): exact numbers for the seed aggregate and the variant column."""
    synthetic_summary(tmp_path, "a/s0", 0, 3, 10)
    synthetic_summary(tmp_path, "a/s1", 1, 5, 10)
    synthetic_summary(tmp_path, "b/s0", 0, 9, 10, num_samples=1000)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "summary.shard0of2.json").write_text("{}")  # a sharded run nobody merged yet
    res = sweep_summary(tmp_path)
    assert {r["variant"] for r in res["rows"]} == {"planner.num_samples=300", "planner.num_samples=1000"}
    agg = {a["variant"]: a for a in res["aggregate"]}
    a = agg["planner.num_samples=300"]
    assert a["seeds"] == 2 and a["episodes"] == 20
    assert a["success_mean"] == pytest.approx(0.4) and a["success_std"] == pytest.approx(0.02**0.5)
    assert a["pooled_success"] == pytest.approx(0.4)
    assert (a["pooled_ci_low"], a["pooled_ci_high"]) == pytest.approx(wilson_interval(8, 20))
    assert a["final_distance"] == pytest.approx(0.25)
    assert agg["planner.num_samples=1000"]["seeds"] == 1
    assert res["unmerged"] == [tmp_path / "c"]
    assert "40% ± 14%" in res["markdown"]


def test_sweep_summary_without_runs_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from scripts.sweep_summary import main

    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path)])
    assert exc.value.code == 2 and "no evaluation summary.json below" in capsys.readouterr().err
