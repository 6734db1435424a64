"""The benchmark command (worldmodel/eval/benchmark.py, scripts/benchmark.py): the real evaluate() on real MuJoCo
episodes from a tiny collected dataset and a tiny world model, 2 seeds x 2 episodes x 2 variants."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_evaluate import ENV, ROOT, tiny_world_model

from worldmodel.eval.benchmark import check_held_out, run_benchmark, variant_config
from worldmodel.eval.closed_loop import wilson_interval

VARIANTS = ["latent", "latent_proprio_subgoals"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A collected TwoRoom dataset (6 episodes of 24 steps, 32 px) and two tiny world models trained "on" it."""
    from worldmodel.data.collect import CollectConfig, collect

    root = tmp_path_factory.mktemp("bench")
    cfg = CollectConfig(
        env_id=ENV, out=str(root / "d.h5"), episodes=6, episode_length=24, workers=1, env_kwargs={"image_size": 32}
    )
    data = str(collect(cfg, progress=False))
    out = {"data": data}
    for name in ("world_model", "random_init"):
        wm = tiny_world_model()
        wm.meta["data_path"] = data  # the benchmark's default data, and the readout's and graph's
        out[name] = str(wm.save(root / f"{name}.pt"))
    return out


def compose(files: dict[str, str], out_dir: Path, *extra: str) -> dict[str, Any]:
    """configs/benchmark.yaml with a tiny budget, as scripts/benchmark.py would hand it over."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    overrides = [
        f"++world_models.world_model={files['world_model']}",
        f"++world_models.random_init={files['random_init']}",
        "~variants.latent_proprio",
        f"out_dir={out_dir}",
        "seeds=[0,1]",
        "episodes=2",
        "offset=4",
        "max_steps=3",
        "env.kwargs.image_size=32",
        "eval.num_envs=2",
        "eval.video_episodes=0",
        "planner.horizon=2",
        "planner.num_samples=8",
        "planner.iterations=2",
        "device=cpu",
        "env.kwargs.success_radius=0.03",  # so that 4 steps apart is not already a success: cells differ
        *extra,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return OmegaConf.to_container(hydra_compose(config_name="benchmark", overrides=overrides), resolve=True)


def jsonl_state(out_dir: Path) -> dict[str, tuple[int, str]]:
    """episodes_*.jsonl below out_dir -> (mtime_ns, content)."""
    return {str(p): (p.stat().st_mtime_ns, p.read_text()) for p in sorted(out_dir.rglob("episodes_*.jsonl"))}


def pooled(summaries: list[dict[str, Any]], method: str) -> tuple[float, list[float]]:
    """(pooled success, per-seed rates) of ``method`` recomputed from summary.json files."""
    ms = [s["methods"][method] for s in summaries]
    n = sum(m["episodes"] for m in ms)
    succ = sum(round(m["success_rate"] * m["episodes"]) for m in ms)
    return succ / n, [m["success_rate"] for m in ms]


def test_benchmark_table_matches_its_runs_and_resumes(files: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "bench"
    res = run_benchmark(compose(files, out), progress=False, log=lambda _: None)
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == sorted([f"{v}_seed{s}" for v in VARIANTS for s in (0, 1)] + ["baselines_seed0", "baselines_seed1"])
    rows = ["world_model", "random_init", "random", "oracle"]
    assert list(res["table"]) == rows and all(list(c) == VARIANTS for c in res["table"].values())

    md = (out / "benchmark.md").read_text()
    assert "| | latent | latent_proprio_subgoals |" in md
    assert [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| ") and "**" in line] == [
        f"| {r}" for r in rows
    ]
    with (out / "benchmark.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["method"] for r in table] == rows
    assert {"latent", "latent_seed0", "latent_seed1", "latent_proprio_subgoals_plan_latency_s"} <= set(table[0])
    assert json.loads((out / "benchmark.json").read_text())["table"].keys() == set(rows)
    assert len({c["success"] for cells in res["table"].values() for c in cells.values()}) > 1  # not all equal

    def summary(run: str) -> dict[str, Any]:
        return json.loads((out / "runs" / run / "summary.json").read_text())

    for row, csv_row in zip(rows, table):
        for v in VARIANTS:
            run = "baselines" if row in ("random", "oracle") else v
            sums = [summary(f"{run}_seed{s}") for s in (0, 1)]
            rate, per_seed = pooled(sums, row)
            c = res["table"][row][v]
            assert c["success"] == pytest.approx(rate) and list(c["per_seed"].values()) == per_seed
            assert c["ci95"] == pytest.approx(list(wilson_interval(c["successes"], 4)))
            assert c["episodes"] == 4 and float(csv_row[v]) == pytest.approx(rate)
            hits = sum(round(m["methods"][row]["reached_rate"] * 2) for m in sums)  # first hit, from the runs
            assert c["first_hit"] == pytest.approx(hits / 4) and c["first_hit"] >= c["success"]
            assert float(csv_row[f"{v}_first_hit"]) == pytest.approx(hits / 4)
    for s in (0, 1):  # the protocol reached evaluate: dataset goals 4 steps on, 3-step budget, 2 episodes per seed
        sm = summary(f"latent_proprio_subgoals_seed{s}")
        assert sm["seed"] == s and sm["goals"]["source"] == "dataset" and sm["goals"]["offset"] == 4
        assert sm["settings"]["max_steps"] == 3 and sm["episodes"] == 2 and sm["agent"]["subgoals"]["enabled"]
        assert sm["objective"]["proprio"]["weight"] == 1.0
        assert summary(f"latent_seed{s}")["objective"]["proprio"]["weight"] == 0.0
        base = summary(f"baselines_seed{s}")
        assert set(base["methods"]) == {"random", "oracle"} and not base["agent"]["subgoals"]["enabled"]
    recs = (out / "runs" / "latent_seed0" / "episodes_world_model.jsonl").read_text().splitlines()[1:]
    assert [json.loads(r)["source"].startswith("dataset:") for r in recs] == [True, True]

    before = jsonl_state(out)  # 2 x 2 world-model runs x 2 models + 2 baseline runs x 2 methods
    assert len(before) == 12
    again = run_benchmark(compose(files, out), progress=False, log=lambda _: None)
    assert again["reused_runs"] == 6 and jsonl_state(out) == before and again["table"] == res["table"]
    (out / "runs" / "latent_seed1" / "benchmark_run.json").unlink()  # evaluate runs it again: every episode is done
    third = run_benchmark(compose(files, out), progress=False, log=lambda _: None)
    assert third["reused_runs"] == 5 and jsonl_state(out) == before and third["table"] == res["table"]
    with pytest.raises(ValueError, match=r"baselines_seed0 was run with other settings \(oracle.cost_steps\)"):
        run_benchmark(compose(files, out, "oracle.cost_steps=last"), progress=False, log=lambda _: None)
    assert jsonl_state(out) == before


@pytest.mark.parametrize(
    "extra, error, words",
    [
        (["++world_models.world_model=/nope/wm.pt"], FileNotFoundError, ["'world_model'", "/nope/wm.pt"]),
        (["data=/nope/d.h5"], FileNotFoundError, ["/nope/d.h5"]),
        (["++variants.latent.objectiv={latent:{weight:1}}"], ValueError, ["'latent'", "objectiv"]),
        (["++variants.latent.agent.subgoal={enabled:true}"], ValueError, ["'latent'", "subgoal"]),
        (["offset=25"], ValueError, ["offset=25", "held-out"]),
        (["seed=3"], ValueError, ["seeds"]),
        (["methods=[random,ceiling]"], ValueError, ["ceiling"]),
    ],
)
def test_bad_input_is_refused_before_any_run(
    files: dict[str, str], tmp_path: Path, extra: list[str], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as exc:
        run_benchmark(compose(files, tmp_path / "b", *extra), progress=False, log=lambda _: None)
    assert all(w in str(exc.value) for w in words), str(exc.value)
    assert not (tmp_path / "b").exists()  # nothing ran, nothing written


def test_script_exits_2_on_a_missing_world_model(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    script = str(ROOT / "scripts" / "benchmark.py")
    cmd = [sys.executable, script, "++world_models.wm=/nope/wm.pt", f"out_root={tmp_path}"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "error: world model 'wm': /nope/wm.pt not found" in res.stderr, res.stderr[-2000:]


def test_variant_overrides_merge_onto_the_base_settings() -> None:
    base = {"objective": {"latent": {"weight": 1.0}, "proprio": {"weight": 0.0}}, "agent": {"execute_steps": 2}}
    over = {"objective": {"proprio": {"weight": 1.0}}, "agent": {"subgoals": {"enabled": True}}}
    v = variant_config(base, "mine", over)
    assert v["objective"] == {"latent": {"weight": 1.0}, "proprio": {"weight": 1.0}}
    assert v["agent"] == {"execute_steps": 2, "subgoals": {"enabled": True}} and base["agent"] == {"execute_steps": 2}
    named = variant_config(base, "named", {"objective": "latent_proprio"})  # a config of the objective group
    assert named["objective"]["proprio"]["weight"] == 1.0 and named["objective"]["latent"]["kind"] == "l1"
    with pytest.raises(ValueError, match="'bad/name'"):
        variant_config(base, "bad/name", {})
    with pytest.raises(ValueError, match="planner must be a dict"):
        variant_config(base, "x", {"planner": 3})


def test_a_null_variant_is_dropped_and_an_empty_one_runs_the_base(files: dict[str, str], tmp_path: Path) -> None:
    from worldmodel.eval.benchmark import plan_benchmark

    plan = plan_benchmark(compose(files, tmp_path / "b", "variants.latent_proprio_subgoals=null", "++variants.base={}"))
    assert list(plan.variants) == ["latent", "base"] and plan.variants["base"] == {}
    with pytest.raises(ValueError, match="no variants"):
        plan_benchmark(compose(files, tmp_path / "c", "variants.latent_proprio_subgoals=null", "variants.latent=null"))
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_held_out_check_names_the_file_and_the_longest_episode(files: dict[str, str]) -> None:
    check_held_out(files["data"], 20, ENV)
    with pytest.raises(ValueError, match=r"longest: 2[45]\)"):
        check_held_out(files["data"], 40)
    with pytest.raises(ValueError, match="recorded on wm/TwoRoom-v0"):
        check_held_out(files["data"], 4, "wm/Reacher-v0")
