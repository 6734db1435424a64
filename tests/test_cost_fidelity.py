"""Cost fidelity: the same candidate plans scored by the task (true physics), the encoded simulated frames and the
world model's imagination, from held-out protocol starts of a collected dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import worldmodel.eval.cost_fidelity as cf
from tests.test_evaluate import ENV, tiny_world_model
from worldmodel.eval.probes import spearman

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A collected TwoRoom dataset (6 episodes of 24 steps, 32 px) and a tiny world model saved "on" it."""
    from worldmodel.data.collect import CollectConfig, collect

    root = tmp_path_factory.mktemp("fidelity")
    cfg = CollectConfig(
        env_id=ENV, out=str(root / "d.h5"), episodes=6, episode_length=24, workers=1, env_kwargs={"image_size": 32}
    )
    data = str(collect(cfg, progress=False))
    wm = tiny_world_model()
    wm.meta["data_path"] = data
    return {"data": data, "world_model": str(wm.save(root / "wm.pt"))}


def test_rank_correlation_is_spearman_per_row() -> None:
    a, b = torch.randn(5, 40), torch.randn(5, 40)
    b[0] = a[0] * 3 + 1  # monotone: 1
    b[1] = -a[1]  # reversed: -1
    rho = cf.rank_correlation(a, b)
    assert rho[0] == pytest.approx(1.0) and rho[1] == pytest.approx(-1.0)
    for i in range(5):
        assert rho[i].item() == pytest.approx(spearman(a[i], b[i]), abs=1e-6)


def test_candidates_perturb_the_demo_inside_the_action_box() -> None:
    rng = np.random.default_rng(0)
    demo = rng.uniform(-0.5, 0.5, size=(3, 10, 2))  # (B, T, A)
    low, high = -np.ones(2), np.ones(2)
    cfg = cf.FidelityConfig(samples=32, noise=(0.01,), random_fraction=0.25)
    cands = cf.candidate_actions(demo, low, high, cfg, rng)
    assert cands.shape == (3, 32, 10, 2) and cands.dtype == np.float32
    assert cands.min() >= -1 and cands.max() <= 1
    near = np.abs(cands[:, :24] - demo[:, None]).max()  # 24 noisy copies at 1% of the half range
    assert near < 0.06
    assert np.abs(cands[:, 24:] - demo[:, None]).mean() > 0.3  # 8 uniform ones are not the demo
    with pytest.raises(ValueError, match="at least 8"):
        cf.FidelityConfig(samples=4)


def test_summary_reads_what_each_cost_picks() -> None:
    task = torch.rand(6, 16) + 0.1  # (B, S)
    task[:, 3] = 0.0  # candidate 3 is the best everywhere and the only success
    success = np.zeros((6, 16), dtype=bool)
    success[:, 3] = True
    out = cf._summarise({"task": task, "rendered": task * 2, "predicted": -task}, success)
    assert out["spearman_rendered_vs_task"]["mean"] == pytest.approx(1.0)
    assert out["spearman_predicted_vs_task"]["mean"] == pytest.approx(-1.0)
    assert out["pick_rendered"]["success"] == 1.0 and out["pick_predicted"]["success"] == 0.0
    assert out["pick_predicted"]["task_distance"]["mean"] == pytest.approx(task.max(-1).values.mean().item())
    assert out["pick_task"]["elite_task_distance"]["mean"] <= out["pick_predicted"]["elite_task_distance"]["mean"]
    assert out["any_candidate_success"] == 1.0


def test_dataset_actions_replay_to_the_goal_and_a_perfect_predictor_matches_the_rendered_cost(
    files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo replayed from the start state reaches the goal frame's state (the actions line up with the frames);
    a predictor that imagines exactly the simulated frames ranks candidates exactly as the rendered cost does."""
    from worldmodel.world_model import WorldModel

    wm = WorldModel.load(files["world_model"], "cpu")
    cfg = cf.FidelityConfig(episodes=5, offset=6, samples=12, num_envs=2)
    made: dict[str, Any] = {}

    class Recorded(cf.RenderedDynamics):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made["rendered"] = self

    monkeypatch.setattr(cf, "RenderedDynamics", Recorded)
    monkeypatch.setattr(cf, "LatentDynamics", lambda *args: made["rendered"])  # the "predictor" sees the physics
    out = cf.cost_fidelity(wm, files["data"], ENV, {"image_size": 32}, cfg)
    assert out["starts"] == 5 and out["candidates"] == 12  # 5 starts over 3 batches of 2 envs (one padded)
    assert out["demo_replay_success"] == 1.0
    assert out["spearman_predicted_vs_rendered"]["mean"] == pytest.approx(1.0)
    assert out["pick_predicted"] == out["pick_rendered"]
    wm.frameskip = 4
    with pytest.raises(ValueError, match="not a whole number of planner steps"):
        cf.cost_fidelity(wm, files["data"], ENV, {"image_size": 32}, cfg)
    wm.frameskip, wm.meta["trained_horizon"] = 1, 3
    with pytest.raises(ValueError, match="trained at most 3 steps ahead; lower the offset to <= 3"):
        cf.cost_fidelity(wm, files["data"], ENV, {"image_size": 32}, cfg)


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts/cost_fidelity.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def test_script_writes_the_table_and_refuses_bad_input(files: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = _script("--world-model", f"tiny={files['world_model']}", "--episodes", "2", "--samples", "8", "--offset",
                  "4", "--num-envs", "2", "--out", str(out))
    assert res.returncode == 0, res.stderr
    report = json.loads((out / "cost_fidelity.json").read_text())
    assert report["env_id"] == ENV and report["results"]["tiny"]["starts"] == 2
    assert "| tiny |" in (out / "cost_fidelity.md").read_text()
    before = (out / "cost_fidelity.json").read_text()
    for bad, words in (  # (a garbage checkpoint and too few samples: tests/test_cli_errors.py)
        (["--world-model", "nope.pt"], "NAME=PATH"),
        (["--world-model", f"a={tmp_path / 'missing.pt'}"], "missing.pt"),
    ):
        res = _script(*bad, "--out", str(out))
        assert res.returncode == 2, (bad, res.stderr)
        assert res.stderr.startswith("error:") and words in res.stderr, res.stderr
    assert (out / "cost_fidelity.json").read_text() == before  # nothing overwritten by a refused run
