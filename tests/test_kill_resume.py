"""Kill-safe resume of the four long jobs: collect, pretrain, train_predictor and evaluate.

Each job runs as a real subprocess on tiny data and is SIGKILLed, with its whole process group, at a seeded
random moment after it has made progress (so the kill lands mid-work), then the same command is re-run to
completion and the result must equal an uninterrupted run. The trainers are compared bit for bit: on CPU
with one thread every kernel is deterministic, a resume restores model, optimiser (and EMA target) and step,
and batches, masks and schedules are functions of the step, so a resumed run has no reason to differ at all.
A tampered or foreign checkpoint must stop a script with an error naming the file, and a pickle payload must
never run. WM_KILL_SEED moves the kill moments (tests/killutil.py).
"""

from __future__ import annotations

import csv
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import test_train_predictor
import torch
from killutil import (
    compose_config,
    kill_in_window,
    kill_rng,
    leftover_temp_files,
    require,
    run_cmd,
    run_ok,
    script_cmd,
)
from omegaconf import OmegaConf
from test_collect import _collect_cmd
from test_evaluate import tiny_world_model
from test_pretrain import tiny_cfg as pretrain_cfg

from worldmodel.checkpoint import load_checkpoint
from worldmodel.data.collect import collect, shard_dir_for
from worldmodel.data.reader import TrajectoryFile
from worldmodel.eval.evaluate import evaluate
from worldmodel.models.vit import load_encoder
from worldmodel.pipeline import flatten_overrides
from worldmodel.training import pretrain as pretrain_mod
from worldmodel.training import train_predictor as predictor_mod
from worldmodel.world_model import WorldModel

inputs = test_train_predictor.inputs  # module fixture: 6 TwoRoom episodes at 32 px and a tiny encoder

COLLECT_EPISODES = 60
PT_STEPS, PT_CKPT = 40, 3
PR_STEPS, PR_CKPT, PR_EVAL = 60, 7, 10
TIMING = {"clips_per_s", "samples_per_s"}
"""CSV columns that measure speed: the only ones allowed to differ between runs."""


# ------------------------------------------------------------------------------------------------ helpers
def known_bug(reason: str) -> pytest.MarkDecorator:
    """A production bug this test demonstrates: strict xfail on its assertion (other failures still fail)."""
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)


def _complete_lines(path: Path) -> list[str]:
    """Lines of a file being written, without a trailing partial line ([] if it does not exist yet)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    return text.splitlines()[: text.count("\n")]


def _last_logged_step(csv_path: Path) -> int:
    """Step of the last complete row of a metrics.csv being written (0 before the first row)."""
    lines = _complete_lines(csv_path)
    return int(float(lines[-1].split(",")[0])) if len(lines) > 1 else 0


def _csv_rows(path: Path) -> list[dict[str, str]]:
    """metrics.csv rows as raw strings (equal means bit-equal floats), without empty cells and timing columns."""
    with path.open(newline="") as f:
        return [{k: v for k, v in r.items() if v not in ("", None) and k not in TIMING} for r in csv.DictReader(f)]


def _assert_equal_states(a: Any, b: Any, where: str = "") -> None:
    """Nested dicts/lists of tensors and plain values are exactly equal."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_equal_states(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal_states(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _kill_trainer(
    script: str, overrides: list[str], root: Path, steps: int, ckpt_every: int
) -> tuple[Path, list[str], dict[str, Any]]:
    """Kill a trainer after a random step past its first checkpoint; returns its out_dir, command and what the
    killed run left."""
    rng = kill_rng(script)

    def start(out: Path) -> tuple[list[str], Callable[[], bool]]:
        k = rng.randint(ckpt_every + 1, steps - 20)  # past the first checkpoint (earlier: below), ~0.3 s before the end
        return script_cmd(script, *overrides, f"out_dir={out}"), lambda: _last_logged_step(out / "metrics.csv") >= k

    def in_window(out: Path) -> bool:
        return (out / "checkpoints" / "last.pt").exists() and _last_logged_step(out / "metrics.csv") < steps

    out, cmd = kill_in_window(start, in_window, root, rng, 0.03)
    left = {
        "rows": _csv_rows(out / "metrics.csv"),
        "ckpt_step": int(load_checkpoint(out / "checkpoints" / "last.pt")["step"]),  # loads: never left corrupt
        "stale": set(leftover_temp_files(out)),
    }
    logged = _last_logged_step(out / "metrics.csv")
    assert left["ckpt_step"] <= logged
    print(f"{script}: killed after step {logged}, last checkpoint at step {left['ckpt_step']}")
    return out, cmd, left


def _assert_resumed_log(out: Path, ref: Path, killed: dict[str, Any], steps: int, eval_every: int = 0) -> None:
    """Each step logged exactly once, equal to the uninterrupted log; steps lost by the kill were redone
    identically."""
    rows = _csv_rows(out / "metrics.csv")
    train = [int(r["step"]) for r in rows if r.get("loss")]
    val = [int(r["step"]) for r in rows if not r.get("loss")]
    assert train == list(range(1, steps + 1))
    assert val == (list(range(eval_every, steps + 1, eval_every)) if eval_every else [])
    assert rows == _csv_rows(ref / "metrics.csv")
    for lost in (r for r in killed["rows"] if int(r["step"]) > killed["ckpt_step"]):
        assert lost in rows, lost  # a step the kill lost was redone identically
    # The resumed run leaves no temporary file: neither its own nor one the kill left mid-write.
    assert leftover_temp_files(out) == [], killed["stale"]


def _flip_bytes(path: Path) -> None:
    """Corrupt a file in place: invert 16 bytes in its middle."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    path.write_bytes(bytes(data))


class _Payload:
    """Pickles to a call that creates ``marker``: loading it must never execute that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _assert_refused(res: Any, path: Path, *needles: str) -> None:
    """The script stopped with status 2 and a one-line error naming ``path`` (no traceback)."""
    assert res.returncode == 2, res.stderr[-3000:]
    assert f"error: {path}" in res.stderr and "Traceback" not in res.stderr, res.stderr[-3000:]
    for needle in needles:
        assert needle in res.stderr, res.stderr[-3000:]


# ------------------------------------------------------------------------------------------------ collect
def _h5_contents(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every dataset of an HDF5 file, and its attributes without the collection timestamp."""
    arrays: dict[str, np.ndarray] = {}

    def grab(name: str, obj: Any) -> None:  # visititems stops at the first non-None return
        if isinstance(obj, h5py.Dataset):
            arrays[name] = obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(grab)
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
    extra = json.loads(attrs.pop("extra"))
    extra.pop("collected_at")
    return arrays, {**attrs, "extra": extra}


def _collect_reference(cmd: list[str], out: Path) -> Path:
    """The same collection as ``cmd``, uninterrupted, in this process (one worker: data do not depend on it)."""
    from scripts.collect import config_from_hydra

    overrides = [o for o in cmd[2:] if not o.startswith(("out=", "workers="))] + [f"out={out}", "workers=1"]
    return collect(config_from_hydra(OmegaConf.create(compose_config("collect", overrides))), progress=False)


def test_collect_killed_midway_resumes_to_the_same_file(tmp_path: Path) -> None:
    rng = kill_rng("collect")

    def start(work: Path) -> tuple[list[str], Callable[[], bool]]:
        shards, k = shard_dir_for(work / "k.h5"), rng.randint(2, COLLECT_EPISODES // 3)  # >= 40 episodes to go
        cmd = _collect_cmd(work / "k.h5", COLLECT_EPISODES, workers=2)  # a pool: the kill takes the workers too
        return cmd, lambda: len(list(shards.glob("ep_*.npz"))) >= k

    def collecting(work: Path) -> bool:  # not yet assembling (a kill there is the test below)
        done = len(list(shard_dir_for(work / "k.h5").glob("ep_*.npz")))
        return done < COLLECT_EPISODES and not (work / "k.h5").exists()

    work, cmd = kill_in_window(start, collecting, tmp_path, rng, 0.05)
    run_ok(cmd)
    got, got_attrs = _h5_contents(work / "k.h5")
    want, want_attrs = _h5_contents(_collect_reference(cmd, tmp_path / "ref" / "ref.h5"))
    assert got.keys() == want.keys() and got_attrs == want_attrs
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    seeds = TrajectoryFile(work / "k.h5", verify=True).episode_seeds
    assert len(seeds) == len(set(seeds.tolist())) == COLLECT_EPISODES  # none lost, none duplicated
    assert leftover_temp_files(work) == []  # shards and partial shard files are gone


def test_collect_killed_while_assembling_leaves_no_temp_file(tmp_path: Path) -> None:
    def start(work: Path) -> tuple[list[str], Callable[[], bool]]:  # polled without pause: assembly takes ~0.1 s
        return _collect_cmd(work / "k.h5", 24, workers=1), lambda: any(work.glob(".k.h5.tmp-*"))

    work, cmd = kill_in_window(start, lambda w: not (w / "k.h5").exists(), tmp_path, kill_rng("assemble"), 0, poll_s=0)
    run_ok(cmd)
    require(TrajectoryFile(work / "k.h5", verify=True).num_episodes == 24, "the resumed collection is incomplete")
    assert leftover_temp_files(work) == []


# ------------------------------------------------------------------------------------------------ pretrain
@pytest.fixture(scope="module")
def pretrain_job(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Overrides of a tiny pretraining run (checkpoint every 3 steps) and its uninterrupted result."""
    overrides = [
        *flatten_overrides(pretrain_cfg(PT_STEPS, ckpt_every=PT_CKPT)),
        f"data.path={inputs['data']}",
        "device=cpu",
        "threads=1",
    ]
    ref = tmp_path_factory.mktemp("pretrain_ref")
    pretrain_mod.pretrain(compose_config("pretrain", [*overrides, f"out_dir={ref}"]), ref, "cpu", progress=False)
    return {"overrides": overrides, "ref": ref}


def test_pretrain_killed_midway_resumes_bit_exactly(pretrain_job: dict[str, Any], tmp_path: Path) -> None:
    ref = pretrain_job["ref"]
    out, cmd, killed = _kill_trainer("pretrain.py", pretrain_job["overrides"], tmp_path, PT_STEPS, PT_CKPT)
    assert not (out / "encoder.pt").exists()

    run_ok(cmd)
    _assert_resumed_log(out, ref, killed, PT_STEPS)
    for name in ("encoder.pt", "encoder_random.pt"):
        _assert_equal_states(load_encoder(out / name, "cpu").state_dict(), load_encoder(ref / name, "cpu").state_dict())
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt", kind=pretrain_mod.CKPT_KIND) for d in (out, ref))
    assert a["step"] == PT_STEPS
    _assert_equal_states({k: a[k] for k in ("model", "optimizer")}, {k: b[k] for k in ("model", "optimizer")})


def test_pretrain_refuses_a_tampered_checkpoint(pretrain_job: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    shutil.copy(pretrain_job["ref"] / "checkpoints" / "last.pt", last)
    _flip_bytes(last)
    tampered = last.read_bytes()
    res = run_cmd(script_cmd("pretrain.py", *pretrain_job["overrides"], f"out_dir={out}"))
    _assert_refused(res, last)
    assert "hash mismatch" in res.stderr or "unreadable" in res.stderr, res.stderr[-2000:]
    assert last.read_bytes() == tampered and not (out / "encoder.pt").exists()


@pytest.fixture(scope="module")
def pretrain_killed_in_first_save(pretrain_job: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretraining run SIGKILLed while it wrote its first checkpoint (so none exists yet), then re-run."""

    def saving(out: Path) -> bool:
        return any((out / "checkpoints").glob(".last.pt.*.tmp")) and not (out / "checkpoints" / "last.pt").exists()

    def start(out: Path) -> tuple[list[str], Callable[[], bool]]:  # polled without pause: a save takes ms
        return script_cmd("pretrain.py", *pretrain_job["overrides"], f"out_dir={out}"), lambda: saving(out)

    root = tmp_path_factory.mktemp("first_save")
    out, cmd = kill_in_window(start, saving, root, kill_rng("pretrain-save"), 0.0, poll_s=0.0)
    assert _last_logged_step(out / "metrics.csv") == PT_CKPT
    run_ok(cmd)
    assert int(load_checkpoint(out / "checkpoints" / "last.pt")["step"]) == PT_STEPS
    return out


def test_pretrain_killed_before_its_first_checkpoint_logs_each_step_once(pretrain_killed_in_first_save: Path) -> None:
    steps = [int(r["step"]) for r in _csv_rows(pretrain_killed_in_first_save / "metrics.csv")]
    assert steps == list(range(1, PT_STEPS + 1))


def test_pretrain_killed_while_checkpointing_leaves_no_temp_file(pretrain_killed_in_first_save: Path) -> None:
    assert leftover_temp_files(pretrain_killed_in_first_save) == []


# ------------------------------------------------------------------------------------------------ predictor
@pytest.fixture(scope="module")
def predictor_job(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Overrides of a tiny predictor run (checkpoint every 7, validation every 10) and its uninterrupted result."""
    extra = (f"train.ckpt_every={PR_CKPT}", f"train.eval_every={PR_EVAL}", "device=cpu", "threads=1")
    cfg = test_train_predictor.tiny_cfg(inputs, PR_STEPS, *extra)
    ref = tmp_path_factory.mktemp("predictor_ref")
    predictor_mod.train_predictor(cfg, ref, "cpu", progress=False)  # also builds the embedding cache
    return {"overrides": flatten_overrides(cfg), "ref": ref}


def test_train_predictor_killed_midway_resumes_bit_exactly(predictor_job: dict[str, Any], tmp_path: Path) -> None:
    ref = predictor_job["ref"]
    out, cmd, killed = _kill_trainer("train_predictor.py", predictor_job["overrides"], tmp_path, PR_STEPS, PR_CKPT)
    assert not (out / "world_model.pt").exists()

    run_ok(cmd)
    _assert_resumed_log(out, ref, killed, PR_STEPS, PR_EVAL)
    got, want = (WorldModel.load(d / "world_model.pt", "cpu").state_dict() for d in (out, ref))
    _assert_equal_states(got, want)
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt", kind=predictor_mod.CKPT_KIND) for d in (out, ref))
    assert a["step"] == PR_STEPS
    keys = ("predictor", "optimizer", "stats")
    _assert_equal_states({k: a[k] for k in keys}, {k: b[k] for k in keys})


def test_train_predictor_refuses_a_pickle_payload_checkpoint(predictor_job: dict[str, Any], tmp_path: Path) -> None:
    out, marker = tmp_path / "run", tmp_path / "pwned"
    last = out / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    torch.save({"step": 1, "predictor": _Payload(marker)}, last)  # a real torch zip file with a payload inside
    before = last.read_bytes()
    res = run_cmd(script_cmd("train_predictor.py", *predictor_job["overrides"], f"out_dir={out}"))
    assert not marker.exists(), "the checkpoint's pickle payload was executed"
    _assert_refused(res, last, "not a weights-only checkpoint", "Unsupported global")
    assert last.read_bytes() == before and not (out / "world_model.pt").exists()


# ------------------------------------------------------------------------------------------------ evaluate
EVAL = [
    "episodes=8",
    "eval.max_steps=10",
    "eval.num_envs=2",  # four waves per method
    "env.kwargs.image_size=32",
    "planner=cem",
    "planner.num_samples=16",
    "planner.iterations=2",
    "planner.num_elites=4",
    "device=cpu",
]
TIMING_FIELDS = ("plan_times_s",)


@pytest.fixture(scope="module")
def world_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random world model for 32 px TwoRoom."""
    return tiny_world_model(32).save(tmp_path_factory.mktemp("wm") / "world_model.pt")


def _episode_lines(out: Path) -> int:
    """Complete lines in all results files (headers included)."""
    return sum(len(_complete_lines(p)) for p in out.glob("episodes_*.jsonl"))


def _results(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Per method, its episode records without timings; every line must parse and follow a header."""
    results = {}
    for p in sorted(out.glob("episodes_*.jsonl")):
        lines = [_parse(p, i, line) for i, line in enumerate(p.read_text().splitlines(), start=1)]
        assert "header" in lines[0] and all("header" not in r for r in lines[1:]), p
        results[p.stem] = [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in lines[1:]]
    return results


def _parse(path: Path, lineno: int, line: str) -> dict[str, Any]:
    """One JSONL line; a corrupt one fails the test (it would stop every later run of the evaluation)."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        raise AssertionError(f"{path}: line {lineno} is corrupt: {line[:120]!r}") from None


def _summary(path: Path) -> dict[str, Any]:
    """summary.json without the latency statistics (timings; their call counts stay)."""
    summary = json.loads(path.read_text())
    for s in summary["methods"].values():
        s["plan_latency_s"] = {"calls": s["plan_latency_s"]["calls"]}
    return summary


def test_evaluate_killed_midway_resumes_to_the_same_results(world_model_path: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    overrides = [*EVAL, "methods=[random,oracle]", "eval.video_episodes=0", f"++world_models.wm={world_model_path}"]
    rng = kill_rng("evaluate")

    def start(out: Path) -> tuple[list[str], Callable[[], bool]]:
        k = rng.randint(2, 3 * 9 - 2)  # three methods, each a header and eight episode lines
        return script_cmd("evaluate.py", *overrides, f"out_dir={out}"), lambda: _episode_lines(out) >= k

    out, cmd = kill_in_window(start, lambda w: _episode_lines(w) < 3 * 9, tmp_path, rng, 0.05)
    run_ok(cmd)
    evaluate(compose_config("evaluate", [*overrides, f"out_dir={ref}"]), progress=False)
    got, want = _results(out), _results(ref)
    assert got.keys() == want.keys() == {"episodes_wm", "episodes_random", "episodes_oracle"}
    for method, records in got.items():
        assert sorted(r["episode"] for r in records) == list(range(8)), method  # each episode exactly once
        assert sorted(records, key=lambda r: r["episode"]) == want[method], method
    assert _summary(out / "summary.json") == _summary(ref / "summary.json")
    assert leftover_temp_files(out) == []


def test_evaluate_killed_midway_still_writes_the_video(world_model_path: Path, tmp_path: Path) -> None:
    overrides = [*EVAL, "methods=[]", "eval.video_episodes=2", f"++world_models.wm={world_model_path}"]

    def start(out: Path) -> tuple[list[str], Callable[[], bool]]:  # killed once the first wave is written
        return script_cmd("evaluate.py", *overrides, f"out_dir={out}"), lambda: _episode_lines(out) >= 2

    out, cmd = kill_in_window(start, lambda w: _episode_lines(w) < 9, tmp_path, kill_rng("video"), 0.0)
    run_ok(cmd)
    require(_episode_lines(out) == 9, "the resumed evaluation is incomplete")
    assert _summary(out / "summary.json")["videos"] == ["video_wm.mp4"]


def test_evaluate_refuses_a_pickle_payload_world_model(tmp_path: Path) -> None:
    bad, marker = tmp_path / "world_model.pt", tmp_path / "pwned"
    bad.write_bytes(pickle.dumps({"predictor_state": _Payload(marker)}, protocol=2))  # plain (non-zip) pickle
    res = run_cmd(script_cmd("evaluate.py", *EVAL, "episodes=2", f"++world_models.wm={bad}", f"out_dir={tmp_path}"))
    assert not marker.exists(), "the world model's pickle payload was executed"
    _assert_refused(res, bad, "not a weights-only checkpoint", "Unsupported global")
    assert not list(tmp_path.glob("episodes_*.jsonl"))
    pickle.loads(bad.read_bytes())  # while a plain unpickler does run the payload
    assert marker.exists()
