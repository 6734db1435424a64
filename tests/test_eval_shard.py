"""Sharded evaluation: shards (in process and under torchrun) merge into exactly the unsharded results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_evaluate import ENV, ROOT

from worldmodel.eval.agents import RandomAgent
from worldmodel.eval.closed_loop import EvalSettings, Shard, run_closed_loop, shard_episodes
from worldmodel.eval.episodes import env_episode_specs
from worldmodel.eval.evaluate import evaluate
from worldmodel.eval.shard import resolve_shard

# 5 episodes in waves of 2: [0, 1] [2, 3] [4]; shard 0 of 2 runs waves 0 and 2 (a partial wave), shard 1 wave 1.
TINY = [
    "episodes=5",
    "eval.max_steps=4",
    "eval.num_envs=2",
    "eval.video_episodes=2",
    "planner.num_samples=16",
    "planner.iterations=2",
    "planner.num_elites=4",
    "device=cpu",
]
PER_RUN = ("plan_times_s",)
"""Record fields that are measurements of the run (wall-clock), not results."""


def tiny_cfg(out: Path, **shard: int) -> dict[str, Any]:
    """The evaluate.yaml config with the TINY overrides, as scripts/evaluate.py would resolve it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"out_dir={out}", *TINY])
    res: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    res["shard"] = shard
    return res


def results(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, records without run-time measurements) of a results file."""
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    return lines[0]["header"], [{k: v for k, v in r.items() if k not in PER_RUN} for r in lines[1:]]


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary without what legitimately differs between runs (latency, threads, shard count)."""
    out = {k: v for k, v in summary.items() if k not in ("threads", "shards")}
    out["methods"] = {m: {k: v for k, v in s.items() if k != "plan_latency_s"} for m, s in summary["methods"].items()}
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One unsharded run and the same run as 2 in-process shards (shard 1, finishing last, merges)."""
    root = tmp_path_factory.mktemp("shards")
    full = evaluate(tiny_cfg(root / "full"), progress=False)
    first = evaluate(tiny_cfg(root / "sharded", index=0, count=2), progress=False)
    after_first = sorted(p.name for p in (root / "sharded").iterdir())
    merged = evaluate(tiny_cfg(root / "sharded", index=1, count=2), progress=False)
    return {"root": root, "full": full, "first": first, "after_first": after_first, "merged": merged}


def test_shards_run_whole_waves_round_robin() -> None:
    assert shard_episodes(5, 2, Shard(0, 2)) == [0, 1, 4]
    assert shard_episodes(5, 2, Shard(1, 2)) == [2, 3]
    assert shard_episodes(5, 8, Shard(1, 2)) == []  # one wave: the other shard runs nothing
    assert sorted(e for i in range(3) for e in shard_episodes(37, 4, Shard(i, 3))) == list(range(37))


def test_resolve_shard_from_config_and_torchrun() -> None:
    assert resolve_shard({}, {}) == (None, False)
    assert resolve_shard({"index": 1, "count": 3}, {}) == (Shard(1, 3), False)
    assert resolve_shard({"index": 0, "count": 1}, {}) == (None, False)
    assert resolve_shard({"index": None, "count": None}, {"RANK": "1", "WORLD_SIZE": "2"}) == (Shard(1, 2), True)
    assert resolve_shard({}, {"RANK": "0", "WORLD_SIZE": "1"}) == (None, False)
    with pytest.raises(ValueError, match="needs shard.index"):
        resolve_shard({"count": 2}, {})
    with pytest.raises(ValueError, match="index must be in"):
        resolve_shard({"index": 2, "count": 2}, {})
    with pytest.raises(ValueError, match="under torchrun every process is one shard"):
        resolve_shard({"index": 0, "count": 2}, {"RANK": "1", "WORLD_SIZE": "2"})


def test_merged_shards_equal_the_unsharded_run(runs: dict[str, Any]) -> None:
    root = runs["root"]
    assert "shard" in runs["first"] and "summary.json" not in runs["after_first"]
    assert "summary.shard0of2.json" in runs["after_first"]
    assert runs["merged"]["shards"] == 2
    for method in ("random", "oracle"):
        full_header, full_recs = results(root / "full" / f"episodes_{method}.jsonl")
        merged_header, merged_recs = results(root / "sharded" / f"episodes_{method}.jsonl")
        assert merged_header == full_header  # the merged file is what an unsharded run leaves behind
        assert merged_recs == full_recs
        _, shard0 = results(root / "sharded" / f"episodes_{method}.shard0of2.jsonl")
        assert [r["episode"] for r in shard0] == [0, 1, 4]
    on_disk = json.loads((root / "sharded" / "summary.json").read_text())
    assert comparable(on_disk) == comparable(json.loads((root / "full" / "summary.json").read_text()))
    assert (
        on_disk["methods"]["oracle"]["plan_latency_s"]["calls"]
        == runs["full"]["methods"]["oracle"]["plan_latency_s"]["calls"]
    )
    # Media: the first wave's video comes from shard 0 (same file names as unsharded); plots from the merge.
    for name in ("video_random.mp4", "video_oracle.mp4", "success.png", "distance.png"):
        assert (root / "sharded" / name).stat().st_size > 0
    assert on_disk["videos"] == ["video_oracle.mp4", "video_random.mp4"]


def test_merge_script_rebuilds_the_summary(runs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from scripts.merge_eval import main

    out = tmp_path / "run"
    shutil.copytree(runs["root"] / "sharded", out)
    (out / "summary.json").unlink()
    main([str(out)])
    assert "| oracle |" in capsys.readouterr().out
    merged = json.loads((runs["root"] / "sharded" / "summary.json").read_text())
    assert comparable(json.loads((out / "summary.json").read_text())) == comparable(merged)


@pytest.mark.parametrize("damage", ["missing_shard", "missing_episode", "repeated_episode", "other_settings"])
def test_invalid_shards_are_a_clear_error_and_write_nothing(
    runs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture, damage: str
) -> None:
    from scripts.merge_eval import main

    out = tmp_path / "run"
    shutil.copytree(runs["root"] / "sharded", out)
    (out / "summary.json").write_text("{}")  # an earlier summary must survive a failed merge untouched
    for m in ("random", "oracle"):
        (out / f"episodes_{m}.jsonl").unlink()
    shard1 = out / "episodes_oracle.shard1of2.jsonl"
    lines = shard1.read_text().splitlines()
    if damage == "missing_shard":
        for p in out.glob("*shard1of2*"):
            p.unlink()
        expect = ["shard 1 of 2 did not finish", "episodes_oracle.shard1of2.jsonl missing", "episodes 2-3 not run"]
    elif damage == "missing_episode":  # a shard killed mid-wave
        shard1.write_text("\n".join(lines[:2]) + "\n")
        expect = ["episodes_oracle.shard1of2.jsonl: episodes 3 missing (shard 1 of 2)"]
    elif damage == "repeated_episode":
        shard1.write_text("\n".join([*lines, lines[1]]) + "\n")
        expect = ["episodes_oracle.shard1of2.jsonl: episodes 2 repeated"]
    else:
        header = json.loads(lines[0])
        header["header"]["settings"]["max_steps"] = 99
        shard1.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
        expect = ["episodes_oracle.shard1of2.jsonl was written with other settings than shard 0 (settings)"]
    with pytest.raises(SystemExit) as exc:
        main([str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for text in expect:
        assert text in err, err
    assert (out / "summary.json").read_text() == "{}"
    assert not (out / "episodes_random.jsonl").exists() and not (out / "episodes_oracle.jsonl").exists()


def test_resume_after_a_cut_partial_wave_repeats_the_uninterrupted_run(tmp_path: Path) -> None:
    """The last wave is partial ([2]) and keeps the batch size of the first, so resuming it changes nothing."""
    specs = env_episode_specs(3, seed=5)
    st = EvalSettings(max_steps=5, num_envs=2, video_episodes=0)

    def run(out: Path) -> list[dict[str, Any]]:
        agent = RandomAgent(-np.ones(2), np.ones(2))
        recs = run_closed_loop(agent, ENV, {}, specs, st, out, "random", progress=False)
        return [{k: v for k, v in r.items() if k not in PER_RUN} for r in recs]

    full = run(tmp_path / "a")
    path = tmp_path / "a" / "episodes_random.jsonl"
    lines = path.read_text().splitlines()
    # Killed while writing wave [2]: wave [0, 1] complete, then the first record of the next wave cut short.
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2] + "\n" + lines[3][:20])
    assert run(tmp_path / "a") == full  # the cut wave is re-run whole (episode 1 is dropped and redone)
    header, recs = results(path)
    assert [r["episode"] for r in recs] == [0, 1, 2] and recs == full


def test_torchrun_two_processes_merge_on_rank_0(runs: dict[str, Any], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    res = subprocess.run(
        [*cmd, str(ROOT / "scripts" / "evaluate.py"), f"out_dir={tmp_path}", *TINY],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "merged from 2 shards" in res.stdout and "shard 1 of 2 finished" in res.stdout
    for method in ("random", "oracle"):
        assert results(tmp_path / f"episodes_{method}.jsonl") == results(
            runs["root"] / "full" / f"episodes_{method}.jsonl"
        )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert comparable(summary) == comparable(json.loads((runs["root"] / "full" / "summary.json").read_text()))
