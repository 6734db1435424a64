"""The main job end to end on a tiny budget: collect -> pretrain -> predictors -> diagnostics -> evaluate ->
report, then a re-run that reuses every stage and a changed setting that re-runs only what depends on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worldmodel.pipeline import Stage, check_metric_trained, check_planning_reach, flatten_overrides

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "collect.episodes=6", "collect.episode_length=24", "collect.workers=1",
    "pretrain.train.steps=3", "pretrain.train.batch_size=4", "pretrain.train.time_budget_s=null",
    "++pretrain.train.eval_every=1000", "++pretrain.train.log_every=1",
    "predictor.train.steps=8", "predictor.train.batch_size=8", "++predictor.train.eval_every=4",
    "++predictor.train.val_clips=8", "++predictor.train.ckpt_every=4",
    "predictor.metric.steps=5", "predictor.metric.batch_size=16",
    "evaluate.episodes=2", "evaluate.eval.max_steps=4", "evaluate.eval.num_envs=2",
    "evaluate.planner.num_samples=8", "evaluate.planner.iterations=2", "++evaluate.eval.video_episodes=2",
]


def run_pipeline(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "pipeline.py"), f"root={root}", *TINY, *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_stage_key_follows_the_values_it_composes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed value in a yaml the stage composes (its planner option) gives the stage a new key; a comment there,
    a yaml it does not compose (another planner), an override that restates a default, and argparse scripts' keys
    do not move it."""
    import shutil

    import worldmodel.pipeline as pl

    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    monkeypatch.setattr(pl, "CONFIGS", configs)
    up = Stage("collect", "collect.py", ["env=tworoom", "out={stage_dir}/data.h5"], ["data.h5"])
    wm = "++world_models.w={collect}/world_model.pt"
    ev = Stage("evaluate", "evaluate.py", ["planner=mppi", wm], ["summary.json"], upstream=[up])
    probe = Stage("probe", "probe_encoder.py", ["--data", "x"], ["probe.json"], upstream=[up])
    before = (up.key, ev.key, probe.key)
    (configs / "planner" / "cem.yaml").write_text((configs / "planner" / "cem.yaml").read_text() + "num_samples: 3\n")
    mppi = configs / "planner" / "mppi.yaml"
    mppi.write_text("# a comment moves nothing\n" + mppi.read_text() + "\n")
    assert (up.key, ev.key, probe.key) == before
    default = pl.compose_stage_config("evaluate.py", ["planner=mppi"], configs)["planner"]["num_samples"]
    restated = ["planner=mppi", f"planner.num_samples={default}", wm]
    assert Stage("evaluate", "evaluate.py", restated, ["summary.json"], upstream=[up]).key == before[1]
    mppi.write_text(mppi.read_text() + "num_samples: 17\n")  # the option the stage composes: a changed setting
    assert up.key == before[0] and probe.key == before[2] and ev.key != before[1]
    for stage in (up, ev):  # a run freezes its keys: an edit while it runs moves no folder a later stage names
        stage.freeze()
    frozen = ev.key
    mppi.write_text(mppi.read_text().replace("num_samples: 17", "num_samples: 18"))
    assert ev.key == frozen and Stage("evaluate", "evaluate.py", ["planner=mppi"], ["summary.json"], [up]).key != frozen


def test_stage_key_refuses_overrides_that_do_not_compose() -> None:
    """A stage whose overrides Hydra cannot compose is refused when its key is taken (before any stage runs),
    naming the script and the option."""
    with pytest.raises(ValueError, match=r"evaluate\.py: its overrides do not compose.*nosuch"):
        _ = Stage("evaluate", "evaluate.py", ["planner=nosuch"], ["summary.json"]).key


def test_a_field_of_a_stage_group_option_passes_to_the_stage() -> None:
    """A field of a group option in a stage subtree (the recipe's ``predictor.residual``, a user's
    ``++predictor={predictor.residual:false}``) passes the schema check and reaches the stage's command; a misspelt
    one, or one of the wrong type, is refused when the stage's key is taken."""
    from worldmodel.config.pipeline import check_stage_overrides

    for override, value in ((), "true"), (("++predictor={predictor.residual:false}",), "false"):
        cfg = _pipeline_cfg(*override)
        check_stage_overrides("predictor", cfg["predictor"])
        args = _stage_args(cfg, "tworoom")
        assert f"predictor.residual={value}" in args["predictor_world_model"]
        assert f"predictor.residual={value}" in args["predictor_random_init"]
    for env, value in ("reacher", True), ("push", False):  # Reacher's preset takes the recipe's; Push's pins it off
        args = _stage_args(_pipeline_cfg(f"env={env}"), env)["predictor_world_model"]
        assert [a for a in args if "residual" in a] == [f"predictor.residual={str(value).lower()}"], (env, args)
    with pytest.raises(ValueError, match=r"train_predictor\.py: its overrides do not compose.*residul"):
        _ = Stage("p", "train_predictor.py", ["predictor=cpu", "predictor.residul=true"], ["world_model.pt"]).key
    with pytest.raises(ValueError, match=r"predictor\.residual=maybe \(Value 'maybe' is not a valid bool"):
        _ = Stage("p", "train_predictor.py", ["predictor=cpu", "predictor.residual=maybe"], ["world_model.pt"]).key


def test_flatten_overrides() -> None:
    assert flatten_overrides({"train": {"steps": 5, "on": True}, "encoder": "tiny", "m": [1, 2], "x": None}) == [
        "train.steps=5", "train.on=true", "encoder=tiny", "m=[1,2]", "x=null"]
    assert flatten_overrides({"policy_kwargs": {"rest_prob": 0.5, "rest_steps": [3, 12]}}) == [
        "++policy_kwargs={rest_prob:0.5,rest_steps:[3,12]}"]


def test_stage_key_depends_on_args_and_upstream() -> None:
    a = Stage("a", "collect.py", ["seed=1"], ["out"])
    b = Stage("b", "pretrain.py", ["train.seed=1"], ["out"], upstream=[a])
    key_b = b.key
    a2 = Stage("a", "collect.py", ["seed=2"], ["out"])
    assert Stage("b", "pretrain.py", ["train.seed=1"], ["out"], upstream=[a2]).key != key_b
    assert Stage("b", "pretrain.py", ["train.seed=1"], ["out"], upstream=[a]).key == key_b
    assert Stage("b", "pretrain.py", ["train.seed=2"], ["out"], upstream=[a]).key != key_b


def test_launcher_wraps_only_launchable_stages(tmp_path: Path) -> None:
    """launcher="--standalone --nproc_per_node=2" runs training/eval via torchrun, other stages as before; every
    stage runs through the package's front door without the working directory on sys.path, never a checkout path."""
    collect = Stage("collect", "collect.py", ["out={stage_dir}/data.h5"], ["data.h5"])
    train = Stage("pretrain", "pretrain.py", ["data.path={collect}/data.h5"], ["encoder.pt"], [collect], True)
    launcher = "--standalone --nproc_per_node=2"
    py = sys.executable
    safe = ["-P"] if sys.version_info >= (3, 11) else ["-c"]
    assert train.command(tmp_path, py, launcher)[: 2 + len(safe) + 4] == [
        py, *safe, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "worldmodel.cli",
        "pretrain"][: 2 + len(safe) + 4]
    assert train.command(tmp_path, py, launcher)[-1] == f"data.path={collect.folder(tmp_path)}/data.h5"
    assert collect.command(tmp_path, py, launcher)[:5] == [py, *safe, "-m", "worldmodel.cli", "collect"][:5]
    assert train.command(tmp_path, py)[-2:] == ["pretrain", f"data.path={collect.folder(tmp_path)}/data.h5"]
    assert not any("scripts/" in a for a in train.command(tmp_path, py, launcher) + collect.command(tmp_path, py))
    other = collect.command(tmp_path, "/opt/other/python")  # another interpreter: the -c bootstrap (no -P there)
    assert other[:2] == ["/opt/other/python", "-c"] and "sys.path.pop(0)" in other[2] and other[3] == "collect"
    assert train.key == Stage("pretrain", "pretrain.py", train.args, ["encoder.pt"], [collect]).key


def test_stage_env_never_puts_the_working_directory_on_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty PYTHONPATH entry (``PYTHONPATH=:/x``, i.e. the working directory) is dropped; the package's own
    folder is added when it is not in site-packages; 3.11's PYTHONSAFEPATH reaches torchrun's workers."""
    from worldmodel.pipeline import stage_env

    monkeypatch.setenv("PYTHONPATH", os.pathsep + "/somewhere" + os.pathsep)
    env = stage_env()
    parts = env["PYTHONPATH"].split(os.pathsep)
    assert "" not in parts and "/somewhere" in parts and env["PYTHONSAFEPATH"] == "1"
    assert str(ROOT) in parts  # this checkout (an editable install) is not in site-packages


def test_progress_mirror_plain_lines_when_not_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    """Off a terminal, a child's thousands of tqdm refreshes become a few plain lines: the first state of each
    bar, one line per ``every_s`` of (fake) time, and 100% once; nothing else in the output is taken for a bar."""
    import io
    import logging

    from worldmodel.progress import ProgressMirror, parse_bar

    now = [0.0]
    out = io.StringIO()
    mirror = ProgressMirror("pretrain", out, live=False, every_s=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="worldmodel.pipeline"):
        mirror.feed("[pretrain] start\n")
        for step in range(1, 1001):
            now[0] = step * 0.1  # 100 s in all
            text = f"\rpretrain:  {step // 10:2d}%|##   | {step}/1000 [00:{step // 10:02d}<01:40, 10.0it/s, loss=0.5]"
            mirror.feed(text[: len(text) // 2])  # a refresh split across two reads
            mirror.feed(text[len(text) // 2 :])
        mirror.feed("\n")
        mirror.feed("encode data.h5: 100%|##########| 48/48 [00:01<00:00, 40.0frame/s]\n")
        mirror.close()
    lines = [r.getMessage() for r in caplog.records]
    assert out.getvalue() == ""  # nothing drawn in place
    assert lines[0] == "[pipeline] pretrain: pretrain   0% 1/1000 [00:00<01:40, 10.0it/s, loss=0.5]"
    assert 4 <= len(lines) <= 6, lines
    assert lines[-1] == "[pipeline] pretrain: encode data.h5 100% 48/48 [00:01<00:00, 40.0frame/s]"
    assert "[pipeline] pretrain: pretrain 100% 1000/1000 [00:100<01:40, 10.0it/s, loss=0.5]" in lines
    assert parse_bar("wrote x.h5: 6 episodes, 144 steps") is None and parse_bar("error: 50% of it|bad") is None
    assert parse_bar("collect wm/TwoRoom-v0: 12ep [00:03, 3.9ep/s]").n == "12ep"  # a bar without a total


def test_progress_mirror_live_line_on_a_terminal() -> None:
    """On a terminal the stage's bar is one line rewritten in place and cleared when the stage ends."""
    import io

    from worldmodel.progress import ProgressMirror

    out = io.StringIO()
    now = [0.0]
    mirror = ProgressMirror("collect", out, live=True, clock=lambda: now[0])
    for n in range(1, 7):
        now[0] += 1.0
        mirror.feed(f"\rcollect wm/TwoRoom-v0: {n * 100 // 6:3d}%|#  | {n}/6 [00:0{n}<00:00, 1.0ep/s]")
    mirror.close()
    text = out.getvalue()
    assert "\n" not in text and text.count("\r\033[K") == 7 and text.endswith("\r\033[K")
    assert "[pipeline] collect: collect wm/TwoRoom-v0 100% |####################| 6/6" in text


@pytest.mark.slow
def test_pipeline_under_torchrun_launcher(tmp_path: Path) -> None:
    """The whole tiny pipeline with its training and evaluation stages under 2-process torchrun (~40 s)."""
    res = run_pipeline(tmp_path, 'launcher="--standalone --nproc_per_node=2"', "device=cpu")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("-m torch.distributed.run --standalone --nproc_per_node=2") == 4  # pretrain, 2 x pred, eval
    summary = json.loads((next(tmp_path.glob("evaluate-*")) / "summary.json").read_text())
    assert all(m["episodes"] == 2 for m in summary["methods"].values())
    assert "Closed-loop success" in (tmp_path / "report.md").read_text()


def test_pipeline_end_to_end_reuse_and_invalidation(tmp_path: Path) -> None:
    res = run_pipeline(tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = (tmp_path / "report.md").read_text()
    assert "Closed-loop success" in report and "| world_model |" in report and "| oracle |" in report
    assert "| random_init |" in report and "Representation" in report and "rollout error" in report
    assert "| world_model: latent l1 |" in report and "| random_init: metric |" in report  # the goal distances
    assert "learned step metric x 1 (mean over the horizon)" in report  # and the cost that plans with it
    evaluate = next(tmp_path.glob("evaluate-*"))
    summary = json.loads((evaluate / "summary.json").read_text())
    assert set(summary["methods"]) == {"world_model", "random_init", "random", "oracle"}
    assert all(m["episodes"] == 2 for m in summary["methods"].values())
    assert (evaluate / "video_world_model.mp4").exists()
    for folder in tmp_path.glob("predictor_*"):  # the recipe's learned step metric, fitted after each predictor
        metric = json.loads((folder / "train_summary.json").read_text())["metric"]
        assert metric is not None and metric["unit"] > 0 and "offset_1" in metric["val"], folder

    assert res.stdout.count("[pipeline] pretrain: pretrain ") >= 2 and "[pipeline] collect: collect " in res.stdout
    assert "\r" not in res.stdout + res.stderr  # not a terminal: plain progress lines, no carriage returns
    assert b"\r" in (next(tmp_path.glob("pretrain-*")) / "stage.log").read_bytes()  # the child's own bar, whole
    assert "time per stage:" in res.stdout and "  total " in res.stdout

    again = run_pipeline(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("reusing") == 8, again.stdout

    changed = run_pipeline(tmp_path, "evaluate.eval.max_steps=3")
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert changed.stdout.count("reusing") == 7 and len(list(tmp_path.glob("evaluate-*"))) == 2

    protocol = run_pipeline(tmp_path, "evaluate.eval.max_steps=3", "protocol=true", "benchmark.seeds=[0]",
                            "benchmark.episodes=2", "benchmark.offset=4", "benchmark.max_steps=4",
                            "benchmark.eval.num_envs=2", "benchmark.planner.num_samples=8",
                            "benchmark.planner.iterations=2")
    assert protocol.returncode == 0, protocol.stderr[-3000:]
    assert protocol.stdout.count("reusing") == 8  # only the protocol's stages (cost fidelity, benchmark) are new
    bench = json.loads((next(tmp_path.glob("benchmark-*")) / "benchmark.json").read_text())
    assert {"world_model", "random_init"} <= set(json.dumps(bench).split('"')), bench.keys()
    report = (tmp_path / "report.md").read_text()
    assert "## The field's protocol" in report and "| world_model |" in report.split("## The field's protocol")[1]
    fidelity = json.loads((next(tmp_path.glob("cost_fidelity-*")) / "cost_fidelity.json").read_text())
    assert fidelity["results"]["world_model"]["starts"] == 2 and fidelity["results"]["random_init"]["candidates"] == 8
    assert "## Cost fidelity" in report and "| random_init |" in report.split("## Cost fidelity")[1]


def test_failing_stage_is_reported_with_its_log(tmp_path: Path) -> None:
    res = run_pipeline(tmp_path, "predictor.pool=9x9")
    assert res.returncode != 0
    assert "stage predictor_world_model failed" in res.stderr and "stage.log" in res.stderr


@pytest.mark.parametrize(
    "bad", ["++evaluate.objective.proprio.readout=knnn", "++evaluate.agent.subgoals.lookahed=3",
            "++evaluate.agent.proprio_weight=2", "++predictor.model.latent_norm=pca",
            "++evaluate.objective.latent.space=raw", "predictor.predictor.residual=true"]
)
def test_bad_agent_setting_is_refused_before_any_stage(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "root"
    res = run_pipeline(root, bad)
    assert res.returncode == 2
    named = {"readout=knnn": "knnn", "lookahed": "lookahed", "proprio_weight": "objective.proprio.weight",
             "latent_norm=pca": "model.latent_norm must be one of", "space=raw": "objective.latent.space must be",
             "predictor.residual=true": "'++predictor={predictor.residual:true}'"}
    assert next(v for k, v in named.items() if k in bad) in res.stderr, res.stderr
    stages = [p.name for p in root.iterdir() if p.name != "hydra"] if root.exists() else []
    assert stages == []  # nothing collected or trained for a run that could not finish


def _pipeline_cfg(*overrides: str) -> dict:
    """configs/pipeline.yaml as the pipeline gets it (interpolations left alone: they need a Hydra run)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="pipeline", overrides=list(overrides), return_hydra_config=True)
    choices = cfg.hydra.runtime.choices
    plain = OmegaConf.to_container(cfg)
    plain.pop("hydra")  # type: ignore[union-attr]
    return {**plain, "env_choice": choices["env"], "planner_choice": choices["planner"]}  # type: ignore[dict-item]


def test_main_job_planning_reach_is_within_the_trained_horizon() -> None:
    """The main job (horizon 5, one context frame, 8-frame predictor clips: 7 steps) is not refused, nor is
    env=reacher planner=mppi; a horizon of 8 is, before any stage, unless the override allows it."""
    check_planning_reach(_pipeline_cfg())
    check_planning_reach(_pipeline_cfg("env=reacher", "planner=mppi"))
    check_planning_reach(_pipeline_cfg("evaluate.planner.horizon=7"))
    with pytest.raises(ValueError, match=r"evaluate.planner.horizon=8 .*clips of 8 frames.*"
                                         r"predictor.data.clip_len >= 9.* evaluate.agent.allow_long_horizon=true"):
        check_planning_reach(_pipeline_cfg("evaluate.planner.horizon=8"))
    check_planning_reach(_pipeline_cfg("evaluate.planner.horizon=8", "evaluate.agent.allow_long_horizon=true"))
    check_planning_reach(_pipeline_cfg("evaluate.planner.horizon=8", "predictor.data.clip_len=9"))


def test_wall_clock_cap_that_cuts_pretraining_short_is_loud(tmp_path: Path) -> None:
    """The default trains every step; a cap the user sets (1 us: one step of 3) is recorded in the stage's
    train_summary.json, printed as a WARNING by the stage and the pipeline, and heads the report in red, also when
    the stage is reused; the tiny predictors (8 steps) lose to copy-last and are flagged the same way (~40 s)."""
    assert _pipeline_cfg()["pretrain"]["train"]["time_budget_s"] is None
    res = run_pipeline(tmp_path, "pretrain.train.time_budget_s=0.000001")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    pretrain = next(tmp_path.glob("pretrain-*"))
    summary = json.loads((pretrain / "train_summary.json").read_text())
    assert summary["stopped_early"] == {"reason": "time_budget", "time_budget_s": 1e-06, "steps_done": 1,
                                       "steps_planned": 3}
    assert summary["steps"] == 1 and "stopped early at step 1 of 3" in summary["warnings"][0]
    assert f"WARNING: {summary['warnings'][0]}" in (pretrain / "stage.log").read_text()
    assert f"[pipeline] WARNING pretrain: {summary['warnings'][0]}" in res.stdout
    assert "[pipeline] WARNING predictor_world_model: the world model does not beat copy-last" in res.stdout
    report = (tmp_path / "report.md").read_text()
    head = report[: report.index("Closed-loop success")]
    assert '<span style="color:red">' in head and "**WARNING** (pretrain): pretraining stopped early" in head
    assert "**WARNING** (predictor_world_model): the world model does not beat copy-last" in head

    again = run_pipeline(tmp_path, "pretrain.train.time_budget_s=0.000001")
    assert again.returncode == 0 and again.stdout.count("reusing") == 8, again.stdout + again.stderr[-3000:]
    assert f"[pipeline] WARNING pretrain: {summary['warnings'][0]}" in again.stdout


def test_planning_with_a_metric_no_stage_fits_is_refused_before_any_stage(tmp_path: Path) -> None:
    """The recipe plans with the learned step metric its predictor stages fit; switching the fit off and not the
    term is refused before any stage runs, naming both settings; switching both off (Push's preset) is not."""
    check_metric_trained(_pipeline_cfg())
    check_metric_trained(_pipeline_cfg("env=push"))
    check_metric_trained(_pipeline_cfg("predictor.metric.steps=0", "evaluate.objective.metric.weight=0"))
    with pytest.raises(ValueError, match=r"benchmark.objective.metric.weight=1 .*predictor.metric.steps=0"):
        check_metric_trained(_pipeline_cfg("predictor.metric.steps=0", "evaluate.objective.metric.weight=0",
                                           "protocol=true"))
    off = ("predictor.metric.steps=0", "evaluate.objective.metric.weight=0", "benchmark.objective.metric.weight=0",
           "protocol=true")
    check_metric_trained(_pipeline_cfg(*off))
    with pytest.raises(ValueError, match=r"benchmark.variants.mine.objective.metric.weight=0.5 .*metric.steps"):
        check_metric_trained(_pipeline_cfg(*off, "++benchmark.variants.mine={objective:{metric:{weight:0.5}}}"))
    root = tmp_path / "root"
    res = run_pipeline(root, "predictor.metric.steps=0")
    assert res.returncode == 2 and "evaluate.objective.metric.weight=1 plans with a learned step metric" in res.stderr
    assert not root.exists() or [p.name for p in root.iterdir() if p.name != "hydra"] == []


def test_planning_past_the_trained_horizon_is_refused_before_any_stage(tmp_path: Path) -> None:
    root = tmp_path / "root"
    res = run_pipeline(root, "evaluate.planner.horizon=8")
    assert res.returncode == 2 and " evaluate.agent.allow_long_horizon=true" in res.stderr, res.stderr
    stages = [p.name for p in root.iterdir() if p.name != "hydra"] if root.exists() else []
    assert stages == []  # refused before any stage ran


def _stage_args(cfg: dict, env: str) -> dict[str, list[str]]:
    """Every stage's arguments as the pipeline would build them for ``cfg`` on task ``env``."""
    from worldmodel.pipeline import build_stages

    return {k: s.args for k, s in build_stages({**cfg, "env_choice": env, "planner_choice": "cem"}).items()}


def test_task_presets_and_budgets_compose_into_valid_stages() -> None:
    """env=<task> picks configs/preset/<task>.yaml (TwoRoom's changes nothing: the main job stays as measured),
    budget=gpu the field's full planner budget on top; every composition passes the stages' own schemas."""
    from worldmodel.config.pipeline import check_stage_overrides

    assert _stage_args(_pipeline_cfg(), "tworoom") == _stage_args(_pipeline_cfg("~preset"), "tworoom")
    assert "benchmark" not in _stage_args(_pipeline_cfg(), "tworoom")  # the main job: no protocol stage
    for env in ("tworoom", "reacher", "push", "gym_reacher"):
        for budget in ("cpu", "gpu"):
            cfg = _pipeline_cfg(f"env={env}", f"budget={budget}")
            for stage in ("collect", "pretrain", "predictor", "evaluate", "benchmark"):
                check_stage_overrides(stage, cfg.get(stage) or {})
            check_planning_reach(cfg)
            check_metric_trained(cfg)
            samples = {cfg[s]["planner"].get("num_samples") for s in ("evaluate", "benchmark")}
            if budget == "gpu":
                assert samples == {300} and cfg["evaluate"]["planner"]["iterations"] == 30
                assert cfg["benchmark"]["planner"]["num_elites"] == 30 and cfg["protocol"] is True
                assert cfg["root"].endswith("_gpu") and cfg["evaluate"]["oracle"]["num_samples"] is None
    push = _stage_args(_pipeline_cfg("env=push"), "push")
    assert "env.kwargs.action_repeat=1" in push["collect"] and "data.frameskip=5" in push["predictor_world_model"]
    assert "model.action_weight=1" in push["pretrain"] and "oracle.frameskip=5" in push["benchmark"]
    assert {"variants.latent_proprio=null", "variants.latent_proprio_subgoals=null"} <= set(push["benchmark"])
    reacher = _stage_args(_pipeline_cfg("env=reacher"), "reacher")
    assert "objective.proprio.readout=knn" in reacher["evaluate"] and "benchmark" in reacher
    main = _stage_args(_pipeline_cfg(), "tworoom")  # the predictor's latent space: raw, but standardised on Reacher
    for name in ("predictor_world_model", "predictor_random_init"):
        assert "model.latent_norm=none" in main[name] and "model.latent_norm=none" in push[name]
        assert "model.latent_norm=channel" in reacher[name] and "model.latent_norm=none" not in reacher[name]
    over_horizon = [main["evaluate"], reacher["evaluate"], reacher["benchmark"]]  # the main job has no protocol stage
    assert all("objective.latent.steps=all" in args for args in over_horizon)
    for stage in ("evaluate", "benchmark"):  # Push keeps the cost at the last imagined step
        assert "objective.latent.steps=last" in push[stage] and "objective.latent.steps=all" not in push[stage]
    assert _pipeline_cfg("env=gym_reacher")["env_kwargs"] == {"action_repeat": 2}  # no preset: the defaults
