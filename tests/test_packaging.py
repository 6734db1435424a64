"""The built wheel is self-contained: installed into a fresh virtual environment and run from a folder outside the
checkout (one that holds a user's own ``envs/`` package), ``wm collect``, ``wm evaluate`` and a pipeline stage run
from the installed package and its shipped configs; the checkout is not importable there.

The fresh environment borrows the set-up ``.venv``'s dependencies through a ``.pth`` line naming its
site-packages (so nothing is downloaded, and ``.venv``'s editable install of the checkout is not activated:
``.pth`` files inside a borrowed folder are not run). The wheel is built from a copy of the package's files, so
the build leaves nothing in the checkout. About 40-60 s on 2 busy cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])  # the set-up venv's site-packages: dependencies are borrowed from it
PACKAGE_FILES = ["worldmodel", "envs", "planners", "scripts", "configs", "pyproject.toml", "README.md", "LICENSE"]


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with a clean environment for the installed package (no PYTHONPATH, one thread)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(res: subprocess.CompletedProcess[str]) -> str:
    """The command's output, for an assertion message."""
    return f"{' '.join(res.args)}\nexit {res.returncode}\nstdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-3000:]}"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout installed (no dependencies: those are borrowed)."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    for name in PACKAGE_FILES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                  str(src)], tmp)
    assert built.returncode == 0, _ok(built)
    wheel = next(dist.glob("worldmodel-*.whl"))
    env_dir = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], tmp)
    assert made.returncode == 0, _ok(made)
    python = env_dir / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp)
                   .stdout.strip())
    (purelib / "_borrowed_deps.pth").write_text(f"{SITE}\n")
    inst = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                 str(wheel)], tmp)
    assert inst.returncode == 0, _ok(inst)
    return env_dir


@pytest.fixture()
def user_dir(tmp_path: Path) -> Path:
    """A working folder outside the checkout with the user's own ``envs`` package (which must never be imported)."""
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "__init__.py").write_text("raise ImportError('the user folder envs/ was imported')\n")
    (tmp_path / "envs" / "my_task.py").write_text("X = 1\n")
    return tmp_path


def test_wheel_ships_configs_license_and_one_front_door(venv: Path, user_dir: Path) -> None:
    """The installed package (not the checkout) is what imports; every yaml of configs/ ships; `wm --help` lists
    the stages; the license is in the metadata."""
    python = str(venv / "bin" / "python")
    probe = (
        "import sys, importlib.metadata as md, worldmodel, envs, scripts, configs, worldmodel._version as v;"
        "print(worldmodel.__file__); print(envs.__file__); print(configs.__file__); print(v.__version__);"
        "print(md.version('worldmodel')); print(any('LICENSE' in str(f) for f in md.files('worldmodel')));"
        "print('\\n'.join(sys.path))"
    )
    res = _run([python, "-I", "-c", probe], user_dir)  # -I: no working directory on sys.path
    assert res.returncode == 0, _ok(res)
    wm_file, envs_file, configs_file, version, meta_version, has_license, *path = res.stdout.splitlines()
    for file in (wm_file, envs_file, configs_file):
        assert Path(file).is_relative_to(venv), res.stdout
    assert version == meta_version and has_license == "True"
    assert not any(Path(p).resolve() == ROOT for p in path if p), path
    shipped = {p.relative_to(Path(configs_file).parent) for p in Path(configs_file).parent.rglob("*.yaml")}
    assert shipped == {p.relative_to(ROOT / "configs") for p in (ROOT / "configs").rglob("*.yaml")}
    helped = _run([str(venv / "bin" / "wm"), "--help"], user_dir)
    assert helped.returncode == 0, _ok(helped)
    for stage in ("pipeline", "collect", "pretrain", "train-predictor", "evaluate", "import", "inspect", "probe"):
        assert f"\n  {stage} " in helped.stdout, helped.stdout


def test_installed_stages_run_outside_the_checkout(venv: Path, user_dir: Path) -> None:
    """`wm collect` and a random-baseline `wm evaluate` from a folder holding its own envs/; a pipeline stage runs
    its child through the installed package too; `python -m` there names the folder that stands in for envs."""
    wm = str(venv / "bin" / "wm")
    data = user_dir / "data.h5"
    col = _run([wm, "collect", "episodes=2", "episode_length=6", "workers=1", f"out={data}",
                f"hydra.run.dir={user_dir / 'hydra_collect'}"], user_dir)
    assert col.returncode == 0 and data.exists(), _ok(col)
    assert "wrote" in col.stdout and "2 episodes" in col.stdout, _ok(col)

    ev = _run([wm, "evaluate", "methods=[random]", "episodes=2", "eval.max_steps=3", "eval.num_envs=2",
               "eval.video_episodes=0", "out_dir=ev"], user_dir)  # a relative out_dir: the user's folder
    assert ev.returncode == 0, _ok(ev)
    assert (user_dir / "ev" / "summary.json").exists(), _ok(ev)

    stage = (
        "import sys; from pathlib import Path; from worldmodel.pipeline import Stage, run_stage;"
        "s = Stage('inspect', 'inspect_dataset.py', ['data.h5', '--out', '{stage_dir}/previews'],"
        " ['previews/data_preview.png']);"
        "print(run_stage(s, Path('runs').resolve(), sys.executable)[0])"
    )
    res = _run([str(venv / "bin" / "python"), "-I", "-c", stage], user_dir)  # the stage's child gets the user's cwd
    assert res.returncode == 0, _ok(res)
    folder = Path(res.stdout.strip().splitlines()[-1])
    assert folder.parent == (user_dir / "runs").resolve(), _ok(res)
    assert (folder / "previews" / "data_preview.png").exists(), _ok(res)
    command = json.loads((folder / "stage_done.json").read_text())["command"]
    assert command[1:] == ["-P", "-m", "worldmodel.cli", "inspect", "data.h5", "--out", str(folder / "previews")]

    shadowed = _run([str(venv / "bin" / "python"), "-m", "worldmodel", "collect", "episodes=1"], user_dir)
    assert shadowed.returncode == 2, _ok(shadowed)
    assert shadowed.stderr.startswith(f"error: the folder {user_dir / 'envs'} stands in for the library's 'envs'")
