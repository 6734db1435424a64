"""Every entry point in scripts/ meets the README's promise on bad input: exit status 2, exactly one line on stderr
starting with ``error: `` that names the problem (no traceback), and no output file created or overwritten.

The scripts are found by listing scripts/*.py (every file with a ``__main__`` block), so a new script without a
case in CASES fails ``test_script_refuses_broken_input``. Each case runs the script as a real subprocess with a
broken input chosen to fail early (a garbage or wrong-schema data file, a missing file or folder, a bad argument
or config value, a misspelt config key or option), so the whole file stays fast.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HYDRA_SCRIPTS = {"benchmark", "collect", "evaluate", "import_dataset", "pipeline", "pretrain", "train_predictor"}


def entry_points() -> list[str]:
    """Stems of the scripts/*.py files that run as programs (a ``if __name__ == "__main__":`` block)."""
    return sorted(p.stem for p in (ROOT / "scripts").glob("*.py") if '__name__ == "__main__"' in p.read_text())


@dataclass(frozen=True)
class Case:
    """Arguments (with {garbage}, {wrong}, {missing}, {empty}, {existing}, {out} placeholders) and a fragment
    the error line must contain."""

    args: tuple[str, ...]
    message: str


CASES: dict[str, list[Case]] = {
    "bench_data": [Case(("--episodes", "0"), "argument --episodes: must be an integer >= 1, got 0")],
    "bench_encoders": [
        Case(("--dim", "100", "--heads", "3", "--json", "{out}/e.json"), "--dim must divide by --heads")
    ],
    "bench_planner_quality": [
        Case(("--configs", "cem,nope", "--out", "{out}/quality.md"), "no planner config 'nope'; choose from cem")
    ],
    "bench_planners": [Case(("--envs", "1,x"), "argument --envs: expected an integer >= 1, got 'x'")],
    "bench_predictor": [
        Case(
            ("data.pth={garbage}", "--json", "{out}/b.json"),
            "unknown config key 'data.pth' (did you mean 'data.path'?)",
        )
    ],
    "bench_pretrain": [Case(("--encoder", "tinyy"), "no config configs/encoder/tinyy.yaml; choose one of")],
    "benchmark": [
        Case(("++world_models.wm={garbage}", "out_root={out}/bench"), "garbage.h5: unreadable or not a weights-only")
    ],
    "collect": [
        Case(("episdoes=3", "out={existing}"), "unknown config key 'episdoes' (did you mean 'episodes'?)"),
        Case(("episodes=abc", "workers=1", "out={out}/c.h5"), "episodes='abc' must be an integer"),
    ],
    "cost_fidelity": [
        Case(("--world-model", "wm={garbage}", "--out", "{out}/cf"), "garbage.h5: unreadable or not a weights-only"),
        Case(("--world-model", "wm={garbage}", "--samples", "4", "--out", "{out}/cf"), "at least 8 candidates"),
    ],
    "evaluate": [
        Case(("planer=cem", "out_dir={out}/ev"), "unknown config key 'planer' (did you mean 'planner'?)"),
        Case(("++world_models.wm={garbage}", "out_dir={out}/ev"), "garbage.h5: unreadable or not a weights-only"),
    ],
    "import_dataset": [
        Case(
            ("--config-name", "stable_worldmodle", "source={garbage}", "out={out}/i.h5"),
            "no config 'stable_worldmodle'",
        ),
        Case(
            ("--config-name", "stable_worldmodel", "source={garbage}", "out={out}/i.h5"),
            "garbage.h5: cannot open as hdf5",
        ),
    ],
    "inspect_dataset": [
        Case(("{wrong}", "--out", "{out}/previews"), "wrong.h5: missing attribute(s)"),
        Case(("{garbage}", "--frmes", "3"), "unrecognized arguments: --frmes 3"),
    ],
    "merge_eval": [Case(("{empty}",), "empty: no shard files")],
    "pipeline": [Case(("root={out}/pipeline", "env=tworum"), "config group 'env' has no option 'tworum'")],
    "pretrain": [Case(("data.path={wrong}", "out_dir={out}/pretrain"), "wrong.h5: missing attribute(s)")],
    "probe_encoder": [
        Case(("--data", "{garbage}", "--encoder", "{garbage}", "--json", "{out}/p.json"), "not a readable HDF5 file")
    ],
    "rollout_error": [Case(("{garbage}", "--out", "{out}/rollout"), "garbage.h5: unreadable or not a weights-only")],
    "sweep_summary": [Case(("{missing}", "--out", "{out}/sweep"), "missing.h5 is not a directory")],
    "train_predictor": [
        Case(("data.path={missing}", "encoder.path={garbage}", "out_dir={out}/tp"), "missing.h5: file not found"),
        Case(("train.step=3", "out_dir={out}/tp"), "unknown config key 'train.step' (did you mean 'train.steps'?)"),
        Case(("metric.steps=-5", "out_dir={out}/tp"), "metric.steps=-5 must be >= 0"),
    ],
}


def broken_inputs(tmp: Path) -> dict[str, str]:
    """The files a case can point at, written under tmp/in; tmp/out is where outputs would go."""
    inp = tmp / "in"
    (inp / "empty").mkdir(parents=True)
    (inp / "garbage.h5").write_text("this is not an HDF5 file\n")
    with h5py.File(inp / "wrong.h5", "w") as f:  # valid HDF5, not a trajectory file
        f["pixels"] = np.zeros((4, 8, 8), np.uint8)
    (tmp / "out").mkdir()
    (tmp / "out" / "existing.h5").write_bytes(b"an existing output that must survive")
    return {
        "garbage": str(inp / "garbage.h5"),
        "wrong": str(inp / "wrong.h5"),
        "missing": str(inp / "missing.h5"),
        "empty": str(inp / "empty"),
        "existing": str(tmp / "out" / "existing.h5"),
        "out": str(tmp / "out"),
    }


def snapshot(root: Path, skip: Path) -> dict[str, str]:
    """Relative path -> content hash of every file below root, except those below ``skip`` (Hydra's log)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and skip not in p.parents
    }


def run_case(script: str, case: Case, tmp: Path, paths: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run scripts/<script>.py with the case's arguments from an empty working folder under tmp."""
    args = [a.format(**paths) for a in case.args]
    if script in HYDRA_SCRIPTS:  # Hydra's own run folder (.hydra/, the log) goes where the check ignores it
        args.append(f"hydra.run.dir={tmp / 'hydra'}")
    cwd = tmp / "cwd"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, str(ROOT / "scripts" / f"{script}.py"), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_every_case_belongs_to_a_script() -> None:
    """No stale cases: each names an entry point in scripts/."""
    assert set(CASES) <= set(entry_points()), sorted(set(CASES) - set(entry_points()))


@pytest.mark.parametrize("script", entry_points())
def test_script_refuses_broken_input(script: str, tmp_path: Path) -> None:
    if script not in CASES:
        pytest.fail(f"scripts/{script}.py has no broken-input case: add one to CASES in {Path(__file__).name}")
    for k, case in enumerate(CASES[script]):
        tmp = tmp_path / f"case{k}"
        tmp.mkdir()
        paths = broken_inputs(tmp)
        before = snapshot(tmp, tmp / "hydra")
        res = run_case(script, case, tmp, paths)
        shown = f"scripts/{script}.py {' '.join(case.args)}\nexit {res.returncode}\nstderr:\n{res.stderr[-3000:]}"
        assert res.returncode == 2, shown
        assert "Traceback" not in res.stderr, shown
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), shown
        assert case.message in lines[0], shown
        assert snapshot(tmp, tmp / "hydra") == before, f"{shown}\nfiles were created or changed"


def test_pipeline_passes_on_a_stage_that_refused_its_input() -> None:
    """A stage that exited 2 (its own ``error:`` line) makes the pipeline exit 2 with that line; a crash does not."""
    from scripts.pipeline import stage_refused_input

    log = "stage collect failed (exit 2); log /r/collect-1/stage.log:\n[collect] start\nerror: episodes must be >= 1"
    assert stage_refused_input(log) == (
        "stage collect failed on bad input: episodes must be >= 1 (log /r/collect-1/stage.log)"
    )
    assert stage_refused_input(log.replace("(exit 2)", "(exit 1)")) is None
    assert stage_refused_input("stage x failed (exit 2); log /l:\nTraceback (most recent call last):") is None


def test_every_entry_point_is_a_wm_stage() -> None:
    """`wm <stage>` reaches every script in scripts/ (and names no script that is gone)."""
    from worldmodel.cli import STAGES, stage_for_script

    assert sorted(m.removeprefix("scripts.") for m in STAGES.values()) == entry_points()
    assert stage_for_script("train_predictor.py") == "train-predictor" and stage_for_script("collect.py") == "collect"


def _wm(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m worldmodel <args>`` (the ``wm`` command) from ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "worldmodel", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("script", ["collect", "inspect_dataset"])  # one Hydra stage, one argparse stage
def test_wm_front_door_reports_like_the_script(script: str, tmp_path: Path) -> None:
    """`wm <stage>` gives the script's own one-line error (naming `wm <stage>` where it names the program)."""
    from worldmodel.cli import stage_for_script

    case = CASES[script][-1]
    paths = broken_inputs(tmp_path)
    args = [a.format(**paths) for a in case.args]
    if script in HYDRA_SCRIPTS:
        args.append(f"hydra.run.dir={tmp_path / 'hydra'}")
    (tmp_path / "cwd").mkdir()
    res = _wm([stage_for_script(f"{script}.py"), *args], tmp_path / "cwd")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and case.message in lines[0], res.stderr
    if script == "inspect_dataset":
        assert "(see wm inspect --help)" in lines[0]


def test_wm_unknown_stage_and_help(tmp_path: Path) -> None:
    """A misspelt stage is one error line with the closest stage; `wm --help` lists every stage."""
    from worldmodel.cli import STAGES

    res = _wm(["colect", "episodes=1"], tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == "error: no stage 'colect' (did you mean 'collect'?); see wm --help"
    helped = _wm(["--help"], tmp_path)
    assert helped.returncode == 0 and all(f"\n  {name} " in helped.stdout for name in STAGES), helped.stdout


def test_a_users_envs_folder_is_named_not_imported(tmp_path: Path) -> None:
    """`python -m` puts the working directory first on sys.path: a user's envs/ there (here a namespace folder of
    their own modules) would stand in for the library's envs; it is refused with one line naming the folder."""
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "my_task.py").write_text("X = 1\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    env.pop("PYTHONPATH", None)
    res = subprocess.run([sys.executable, "-m", "scripts.collect", "episodes=1"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: the folder {tmp_path / 'envs'} stands in for the library's 'envs' package")
