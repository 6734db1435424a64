"""The learned step metric: it recovers how many steps apart frames are where the raw latent distance is flat; it
trains with the predictor, travels in the world model's files, and is a term of the planner's cost
(objective.metric; refused, with the fix, on a world model without one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_train_predictor import inputs, tiny_cfg  # noqa: F401  (the module's fixture and config)
from worldmodel.config.objective import ObjectiveConfig
from worldmodel.config.train import LatentMetricConfig
from worldmodel.eval.probes import world_model_distances
from worldmodel.planning import MetricDistance, Rollout, Target, build_objective
from worldmodel.training.metric import fit_latent_metric
from worldmodel.training.train_predictor import train_predictor
from worldmodel.world_model import WorldModel


def line_walks(positions: int, episodes: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random walks on a line of ``positions`` cells: (cell of every frame (F,), episode starts, lengths)."""
    rng = np.random.default_rng(seed)
    cells = []
    for _ in range(episodes):
        x = int(rng.integers(positions))
        for _ in range(length):
            cells.append(x)
            x = int(np.clip(x + rng.choice([-1, 1]), 0, positions - 1))
    starts = np.arange(episodes) * length
    return np.asarray(cells), starts, np.full(episodes, length)


def test_metric_recovers_steps_where_the_raw_distance_is_flat() -> None:
    """One-hot latents: every two different cells are equally far apart in L1, so only the trajectories' time
    order can say which cells are near. The fitted distance must grow with the number of cells between them."""
    n = 12
    cells, starts, lengths = line_walks(n, episodes=60, length=40, seed=0)
    z = torch.eye(n)[torch.from_numpy(cells)][:, None, :]  # (F, 1, n)
    raw = (torch.eye(n)[0] - torch.eye(n)[1:]).abs().mean(-1)
    assert torch.allclose(raw, raw[0].expand_as(raw))  # flat: cell 1 looks as far from 0 as cell 11
    cfg = LatentMetricConfig(steps=600, batch_size=256, width=64, dim=8, cap=30.0)
    metric, summary = fit_latent_metric(
        z, (starts[:50], lengths[:50]), cfg, seed=0, val_episodes=(starts[50:], lengths[50:])
    )
    with torch.no_grad():
        d = metric.distance(torch.eye(n)[:, None, None, :], torch.eye(n)[None, :, None, :])  # (n, n)
    gaps = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    for k in range(1, n - 1):  # farther apart on the line -> farther apart in the metric, on average
        assert d[torch.from_numpy(gaps == k + 1)].mean() > d[torch.from_numpy(gaps == k)].mean()
    assert float(d[0, n - 1]) > 5 * float(d[0, 1])
    assert abs(float(d.diagonal().abs().max())) < 1e-5
    assert summary["step_distance"] < 1.2  # neighbours stay about one step apart
    val = summary["val"]
    assert val["offset_1"] < val["offset_4"] < val["offset_16"]  # held-out episodes, no labels


def test_metric_trains_with_the_predictor_and_round_trips(inputs: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    summary = train_predictor(
        tiny_cfg(inputs, 2, "metric.steps=30", "metric.width=16", "metric.dim=4", "metric.batch_size=32"),
        inputs["dir"] / "with_metric",
        device="cpu",
        progress=False,
    )
    assert summary["metric"]["seconds"] > 0 and "offset_1" in summary["metric"]["val"]
    wm = summary["world_model"].cpu()
    assert wm.metric is not None and wm.metric.config_dict()["dim"] == 4
    assert float(wm.metric.unit) == pytest.approx(summary["metric"]["unit"]) and summary["metric"]["unit"] != 1.0
    z = torch.randn(5, *wm.latent_shape)
    expected = wm.metric.distance(z[:1], z)
    for loaded in (
        WorldModel.load(inputs["dir"] / "with_metric" / "world_model.pt", "cpu"),
        WorldModel.from_pretrained(wm.save_pretrained(tmp_path / "hf"), "cpu"),
    ):
        assert loaded.metric is not None and float(loaded.metric.unit) == float(wm.metric.unit)
        torch.testing.assert_close(loaded.metric.distance(z[:1], z), expected)
    plain = train_predictor(tiny_cfg(inputs, 2), inputs["dir"] / "without_metric", device="cpu", progress=False)
    assert plain["metric"] is None
    assert WorldModel.load(inputs["dir"] / "without_metric" / "world_model.pt", "cpu").metric is None

    # the probe's view: both latent goal distances against a true distance on the same pairs
    frames = torch.randint(0, 255, (12, 3, 32, 32), dtype=torch.uint8)
    i, j = torch.arange(12).repeat(2), torch.arange(12).roll(1).repeat(2)
    true = (i - j).abs().double()
    report = world_model_distances(wm, frames, (i, j, true), radius=2.0)
    assert set(report) == {"latent_l1", "metric"} and len(report["metric"]["profile"]) == 8
    assert -1 <= report["metric"]["spearman_all"] <= 1
    assert set(world_model_distances(plain["world_model"].cpu(), frames, (i, j, true), None)) == {"latent_l1"}


class HalfSum(torch.nn.Module):
    """A stand-in metric with a known answer: phi(z) = sum(z) / 2 over tokens and channels, 3 latent units a step."""

    unit = 3.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.sum((-1, -2))[..., None] / 2

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (self(a) - self(b)).norm(dim=-1)


def test_metric_space_scores_rollouts_and_needs_a_metric() -> None:
    b, s, h, n, d = 2, 3, 4, 1, 2
    latents = torch.arange(b * s * h * n * d, dtype=torch.float32).reshape(b, s, h, n, d)
    rollout, target = Rollout(torch.zeros(b, s, h, 2), latents=latents), Target(latents=torch.zeros(b, n, d))
    cfg = ObjectiveConfig.from_dict({"latent": {"weight": 0.0}, "metric": {"weight": 2.0, "steps": "all"}})
    objective = build_objective(cfg, metric=HalfSum())
    assert objective.describe() == "2 x MetricDistance(all)"
    expected = 2 * 3 * (latents.sum((-1, -2)) / 2).mean(-1)  # (B, S): weight x unit x mean over the horizon
    torch.testing.assert_close(objective(rollout, target), expected)
    last = MetricDistance(HalfSum(), "last")(rollout, target)
    torch.testing.assert_close(last, 3 * latents[:, :, -1].sum((-1, -2)) / 2)
    both = build_objective(ObjectiveConfig.from_dict({"metric": {"weight": 1.0}}), metric=HalfSum())
    assert both.describe() == "1 x LatentDistance(l1, last) + 1 x MetricDistance(last)"
    with pytest.raises(ValueError, match=r"metric.steps=2000, or set objective.metric.weight=0"):
        build_objective(cfg)
    assert build_objective(ObjectiveConfig()).describe() == "1 x LatentDistance(l1, last)"  # off by default


def test_bad_metric_settings_are_refused_before_training() -> None:
    for bad in ({"steps": -1}, {"dim": 0}, {"cap": 1.0}, {"penalty": 0.0}):
        with pytest.raises(ValueError, match="metric"):
            LatentMetricConfig(**bad)  # type: ignore[arg-type]
