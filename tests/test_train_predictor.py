"""Predictor training from the shipped Hydra config: the loss falls, re-running resumes, the export loads; a
world model no better than copy-last is flagged, and planning past its trained horizon is refused."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir

from worldmodel.checkpoint import CheckpointError
from worldmodel.data.collect import CollectConfig, collect
from worldmodel.eval.assemble import world_model_agent
from worldmodel.models.vit import EncoderConfig, VideoViT, save_encoder
from worldmodel.training.logger import read_csv_log
from worldmodel.training.loop import config_to_dict
from worldmodel.training.train_predictor import train_predictor
from worldmodel.world_model import WorldModel

CONFIGS = Path(__file__).resolve().parents[1] / "configs"




@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("trainpred")
    data = collect(
        CollectConfig(
            env_id="wm/TwoRoom-v0",
            out=str(d / "tr.h5"),
            episodes=6,
            episode_length=24,
            workers=1,
            env_kwargs={"image_size": 32},
        ),
        progress=False,
    )
    torch.manual_seed(0)
    save_encoder(
        VideoViT(EncoderConfig(img_size=32, num_frames=2, tubelet=2, patch=8, dim=32, depth=1, heads=2)),
        d / "enc.pt",
    )
    return {"dir": d, "data": Path(data), "enc": d / "enc.pt"}


def tiny_cfg(inputs: dict[str, Path], steps: int, *extra: str) -> dict[str, Any]:
    """The shipped train_predictor.yaml, shrunk for a seconds-long CPU run."""
    overrides = [
        f"data.path={inputs['data']}",
        f"encoder.path={inputs['enc']}",
        f"cache.path={inputs['dir'] / 'cache.h5'}",
        "data.clip_len=4",
        "data.val_fraction=0.2",
        "predictor.width=32",
        "predictor.depth=2",
        "predictor.heads=2",
        "predictor.max_frames=8",
        f"train.steps={steps}",
        "train.batch_size=16",
        "train.lr=3e-3",
        "train.warmup=5",
        "train.log_every=1",
        "train.eval_every=20",
        "train.ckpt_every=20",
        "train.tensorboard=false",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return config_to_dict(compose(config_name="train_predictor", overrides=overrides))


def test_loss_falls_and_training_resumes(inputs: dict[str, Path]) -> None:
    out = inputs["dir"] / "run"
    first = train_predictor(tiny_cfg(inputs, 40), out, device="cpu", progress=False)
    assert first["resumed_from"] == 0 and first["cache_rebuilt"]
    rows = [r for r in read_csv_log(out / "metrics.csv") if "loss" in r]
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    early = sum(r["loss"] for r in rows[:5]) / 5
    late = sum(r["loss"] for r in rows[-5:]) / 5
    assert late < 0.8 * early, (early, late)
    assert {"tf_loss", "rollout_loss", "proprio_loss"} <= set(rows[0])
    assert any("val/loss" in r for r in read_csv_log(out / "metrics.csv"))

    # Re-running with a longer budget continues from the checkpoint (cache reused, no step repeated).
    second = train_predictor(tiny_cfg(inputs, 60), out, device="cpu", progress=False)
    assert second["resumed_from"] == 40 and second["steps"] == 60 and not second["cache_rebuilt"]
    steps = [int(r["step"]) for r in read_csv_log(out / "metrics.csv") if "loss" in r]
    assert steps == list(range(1, 61))

    wm = WorldModel.load(out / "world_model.pt", "cpu")
    # default pool 2x2cat: one token per frame
    assert wm.train_config["train"]["steps"] == 60 and wm.latent_shape == (1, 4 * 32) and wm.action_dim == 2
    assert wm.proprio_dim == 4 and wm.meta["env_id"] == "wm/TwoRoom-v0"
    torch.testing.assert_close(
        wm.predictor.state_dict()["latent_out.weight"],
        second["world_model"].predictor.state_dict()["latent_out.weight"].cpu(),
    )

    # Resuming with a different model/loss setting is refused instead of silently mixing runs.
    with pytest.raises(CheckpointError, match="loss"):
        train_predictor(tiny_cfg(inputs, 60, "loss.rollout_steps=3"), out, device="cpu", progress=False)


def test_bad_settings_are_clear_errors(inputs: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="needs clip_len >= 5"):
        train_predictor(
            tiny_cfg(inputs, 2, "loss.rollout_steps=4"), inputs["dir"] / "bad1", device="cpu", progress=False
        )
    with pytest.raises(ValueError, match="max_frames"):
        train_predictor(
            tiny_cfg(inputs, 2, "predictor.max_frames=3"),
            inputs["dir"] / "bad2",
            device="cpu",
            progress=False,
        )
    with pytest.raises(ValueError, match="pooling setting"):
        train_predictor(tiny_cfg(inputs, 2, "pool=avg"), inputs["dir"] / "bad3", device="cpu", progress=False)


@pytest.mark.parametrize("norm", ["channel", "global", "none"])
def test_latent_norm_sets_the_space_the_predictor_and_planner_share(inputs: dict[str, Path], norm: str) -> None:
    """channel: every (token, channel) standardised; global: centred, one spread for all (the encoder's own
    geometry, up to scale); none: raw. The world model's encode() returns latents in that space."""
    summary = train_predictor(tiny_cfg(inputs, 1, f"model.latent_norm={norm}"), inputs["dir"] / f"norm_{norm}",
                              device="cpu", progress=False)
    wm = summary["world_model"].cpu()
    std, mean = wm.latent_std, wm.latent_mean  # (N, D)
    if norm == "channel":
        assert std.std() > 0.05 * std.mean()  # channels of the tiny ViT differ in spread
    elif norm == "global":
        assert torch.allclose(std, std.flatten()[0].expand_as(std)) and float(mean.abs().sum()) > 0
    else:
        assert torch.all(std == 1) and torch.all(mean == 0)
    px = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    z = wm.encode(px)["latents"]  # (3, N, D)
    torch.testing.assert_close(wm.denormalize_latents(z), wm.denormalize_latents(wm.normalize_latents(
        wm.denormalize_latents(z))))
    if norm != "channel":  # distances are the raw latents' up to one factor: the encoder's own geometry
        raw = wm.denormalize_latents(z)
        ratio = (z[0] - z[1]).abs().sum() / (raw[0] - raw[1]).abs().sum()
        ratio2 = (z[0] - z[2]).abs().sum() / (raw[0] - raw[2]).abs().sum()
        torch.testing.assert_close(ratio, ratio2)
    for bad, match in (("model.latent_norm=pca", "model.latent_norm must be one of"),
                       ("model.normalize_latents=false", "replaced by model.latent_norm: channel")):
        with pytest.raises(ValueError, match=match):
            train_predictor(tiny_cfg(inputs, 1, bad), inputs["dir"] / "norm_bad", device="cpu", progress=False)
        assert not (inputs["dir"] / "norm_bad").exists()  # refused before anything is written


@pytest.fixture(scope="module")
def untrained(inputs: dict[str, Path]) -> dict[str, Any]:
    """train.steps=0: the predictor keeps its random initial weights, a world model that cannot beat copy-last."""
    out, err = inputs["dir"] / "untrained", io.StringIO()
    with contextlib.redirect_stderr(err):
        summary = train_predictor(tiny_cfg(inputs, 0), out, device="cpu", progress=False)
    return {"out": out, "summary": summary, "stderr": err.getvalue()}


def test_a_predictor_worse_than_copy_last_is_flagged(untrained: dict[str, Any]) -> None:
    """At every trained horizon h = 1..T-1 (clip_len 4: 1..3) the untrained predictor is worse than repeating the
    last frame: a WARNING in the log, the summary and train_summary.json, and the figures in the model's meta."""
    summary, out = untrained["summary"], untrained["out"]
    rec = summary["copy_last_by_horizon"]
    assert rec["horizon"] == [1, 2, 3] and rec["not_beaten_at"] == [1, 2, 3] and rec["clips"] > 0
    assert all(m > c for m, c in zip(rec["model"], rec["copy_last"]))
    assert len(summary["warnings"]) == 1 and "does not beat copy-last" in summary["warnings"][0]
    assert f"WARNING: {summary['warnings'][0]}" in untrained["stderr"]
    saved = json.loads((out / "train_summary.json").read_text())
    assert saved["warnings"] == summary["warnings"] and saved["stopped_early"] is None
    wm = WorldModel.load(out / "world_model.pt", "cpu")
    assert wm.meta["trained_horizon"] == 3 and wm.meta["trained_clip_frames"] == 4
    assert wm.meta["copy_last_by_horizon"]["not_beaten_at"] == [1, 2, 3]


@pytest.fixture(scope="module")
def more_data(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path]) -> dict[str, Path]:
    """40 TwoRoom episodes (the 6 of ``inputs`` are too few for a predictor that generalises), same encoder."""
    d = tmp_path_factory.mktemp("trainpred40")
    data = collect(
        CollectConfig(
            env_id="wm/TwoRoom-v0",
            out=str(d / "tr40.h5"),
            episodes=40,
            episode_length=24,
            workers=1,
            env_kwargs={"image_size": 32},
        ),
        progress=False,
    )
    return {"dir": d, "data": Path(data), "enc": inputs["enc"]}


def test_a_predictor_that_beats_copy_last_gets_no_warning(more_data: dict[str, Path]) -> None:
    """400 steps on 40 episodes with one mean-pooled token per frame: better than copy-last at every trained h."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        summary = train_predictor(
            tiny_cfg(more_data, 400, "pool=mean", "train.eval_every=200"),
            more_data["dir"] / "run",
            device="cpu",
            progress=False,
        )
    rec = summary["copy_last_by_horizon"]
    assert rec["horizon"] == [1, 2, 3] and rec["not_beaten_at"] == [], rec
    assert max(rec["model_over_copy_last"]) < 0.95, rec
    assert summary["warnings"] == [] and "WARNING" not in err.getvalue()
    rows = read_csv_log(more_data["dir"] / "run" / "metrics.csv")
    worst = [r["val/open_loop_over_copy_last_worst"] for r in rows if "val/open_loop_over_copy_last_worst" in r]
    assert len(worst) == 2 and worst[-1] == pytest.approx(max(rec["model_over_copy_last"]), rel=1e-5)


def _agent_cfg(horizon: int, **agent: Any) -> dict[str, Any]:
    planner = {"_target_": "planners.cem.CEMPlanner", "horizon": horizon, "num_samples": 8, "iterations": 1}
    return {"planner": planner, "agent": agent, "objective": None}


def test_a_predictor_worse_only_at_early_steps_warns_only_where_planning_reads_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A model worse than copy-last at step 1 only (as predictors on raw latents are) is not called a random-floor
    model when trained; planning warns only when the goal cost's step (planner.horizon) is one it does not beat."""
    from types import SimpleNamespace

    from worldmodel.planning.horizon import check_world_model_horizon
    from worldmodel.training.train_predictor import copy_last_warning

    rec = {"horizon": [1, 2, 3], "model_over_copy_last": [1.11, 0.81, 0.68], "not_beaten_at": [1], "clips": 8}
    assert copy_last_warning(rec) is None
    full = copy_last_warning({**rec, "model_over_copy_last": [1.2, 1.1, 1.05], "not_beaten_at": [1, 2, 3]})
    assert full is not None and "any rollout step 1..3" in full and "h=3: 1.05" in full
    wm = SimpleNamespace(meta={"trained_horizon": 3, "copy_last_by_horizon": rec}, frameskip=1)
    with caplog.at_level("WARNING", logger="worldmodel.planning.horizon"):
        check_world_model_horizon(wm, 3)
        check_world_model_horizon(wm, 2)
    assert not [r for r in caplog.records if "copy-last" in r.getMessage()]
    with caplog.at_level("WARNING", logger="worldmodel.planning.horizon"):
        check_world_model_horizon(wm, 1)
    (warned,) = [r.getMessage() for r in caplog.records if "copy-last" in r.getMessage()]
    assert "planner.horizon=1 reads" in warned and "random floor" in warned


def test_planning_past_the_trained_horizon_is_refused(untrained: dict[str, Any]) -> None:
    """Trained on 4-frame clips: 3 predictor steps ahead of one frame plan, 4 are refused (naming both numbers and
    the override), and agent.allow_long_horizon=true or a world model from before the meta was recorded plan."""
    wm = WorldModel.load(untrained["out"] / "world_model.pt", "cpu")
    cpu, env = torch.device("cpu"), wm.meta["env_id"]
    assert world_model_agent(wm, _agent_cfg(3), env, {}, cpu).planner.horizon == 3
    with pytest.raises(ValueError, match=r"planner.horizon=4 .* clips of 4 frames .*agent.allow_long_horizon=true"):
        world_model_agent(wm, _agent_cfg(4), env, {}, cpu)
    with pytest.raises(ValueError, match=r"after 2 context frame\(s\) needs 5 frames"):
        world_model_agent(wm, _agent_cfg(3, context_frames=2), env, {}, cpu)
    assert world_model_agent(wm, _agent_cfg(6, allow_long_horizon=True), env, {}, cpu).planner.horizon == 6
    del wm.meta["trained_horizon"]  # saved before this was recorded: not refused
    assert world_model_agent(wm, _agent_cfg(6), env, {}, cpu).planner.horizon == 6


def test_evaluate_refuses_a_too_long_horizon_before_writing_anything(untrained: dict[str, Any], tmp_path: Path) -> None:
    """scripts/evaluate.py checks every world model's reach before any episode: exit 2, the model's name and the
    override in one error line, and nothing in the output folder but Hydra's own log folder."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    wm_path = untrained["out"] / "world_model.pt"
    wm = WorldModel.load(wm_path, "cpu")
    image_size = int(wm.meta["env_kwargs"].get("image_size", 64))
    out = tmp_path / "eval"
    res = subprocess.run(
        [sys.executable, str(root / "scripts" / "evaluate.py"), f"++world_models.ok={wm_path}",
         f"++world_models.far={wm_path}", "planner.horizon=4", "episodes=1", "methods=[random]",
         f"env.kwargs.image_size={image_size}", f"out_dir={out}"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: world model 'ok': planner.horizon=4"), res.stderr
    assert "agent.allow_long_horizon=true" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["hydra"]


@pytest.mark.parametrize(
    ("override", "says"),
    [("predictor.residual=maybe", "predictor.residual='maybe' must be true or false"),
     ("predictor.width=wide", "predictor.width='wide' must be an integer")],
)
def test_a_wrong_predictor_size_type_is_refused_before_anything_is_written(
    override: str, says: str, tmp_path: Path
) -> None:
    """The predictor group is typed (predictor_schema): a wrong value exits 2 naming the key, before the data, the
    encoder or the output folder is touched (untyped, ``residual=maybe`` was truthy and built a residual predictor)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "pred"
    res = subprocess.run(
        [sys.executable, str(root / "scripts" / "train_predictor.py"), override, "data.path=missing.h5",
         "encoder.path=missing.pt", f"out_dir={out}"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert says in res.stderr and not out.exists()
