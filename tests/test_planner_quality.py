"""Plan quality against known optima: every configs/planner/*.yaml within 10% of the optimum on the suite.

The suite (planners/problems.py) holds LQ problems with bounds far wider than the optimal actions at several
horizons and cost scales, box-constrained QPs with active bounds, integrators and non-convex problems; its
optima are exact (least squares / active set, cubic roots) and verified here. Fails if a default regresses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from planners.problems import (
    QUICK,
    PlanningProblem,
    QuadraticProblem,
    StyblinskiTangProblem,
    kkt_residual,
    planning_suite,
)
from scripts.bench_planner_quality import TARGET, config_row, load_configs, main, score
from worldmodel.config.planner import planner_option, planner_options

CONFIGS = planner_options()
SEEDS = 3  # planner seeds per problem, as in the benchmark


@pytest.fixture(scope="module")
def full_suite() -> list[PlanningProblem]:
    """Every problem, B = 4 environments each."""
    return planning_suite()


@pytest.fixture(scope="module")
def quick_suite() -> list[PlanningProblem]:
    """The QUICK subset used by the per-config quality check."""
    return planning_suite(quick=True)


def test_suite_is_what_the_docs_say(full_suite: list[PlanningProblem], quick_suite: list[PlanningProblem]) -> None:
    """Several horizons and cost scales, wide and binding bounds, both non-convex families, B > 1 differing envs."""
    names = {p.name for p in full_suite}
    assert {f"lq_H{h}_x{s}" for h in (5, 10, 15) for s in ("0.01", "1", "100")} <= names
    assert {p.name for p in quick_suite} == set(QUICK)
    families = {p.family for p in full_suite}
    assert {"lq", "single_integrator", "double_integrator", "two_basin", "styblinski_tang"} <= families
    for p in full_suite:
        assert p.batch_size == 4 and bool((p.opt_cost > 0).all())
        assert p.opt_actions.shape == (4, p.horizon, p.action_dim)
        assert not torch.allclose(p.opt_actions[0], p.opt_actions[1])  # environments differ
        wide = bool((p.high - p.low >= 20).all())
        if p.family == "lq" and wide:
            assert float(p.opt_actions.abs().max()) < 0.1 * float(p.high.max())  # bounds far wider than u*


def test_optima_are_exact(full_suite: list[PlanningProblem]) -> None:
    """KKT holds, the optimum is feasible, and no random feasible point nor nearby perturbation beats it."""
    g = torch.Generator().manual_seed(0)
    for p in full_suite:
        lo, hi = p.low.double(), p.high.double()
        u = p.opt_actions
        assert bool(((u >= lo) & (u <= hi)).all()), p.name
        torch.testing.assert_close(p.cost_of(u), p.opt_cost, rtol=1e-12, atol=0)
        if isinstance(p, QuadraticProblem):
            assert float(kkt_residual(p).max()) < 1e-9, p.name
        near = u[:, None] + 0.05 * torch.randn(4, 256, p.horizon, p.action_dim, generator=g, dtype=torch.float64)
        far = lo + (hi - lo) * torch.rand(4, 256, p.horizon, p.action_dim, generator=g, dtype=torch.float64)
        cand = torch.minimum(torch.maximum(torch.cat([near, far], 1), lo), hi)  # (B, 512, H, A)
        assert bool((p.cost(cand) >= p.opt_cost[:, None] * (1 - 1e-12)).all()), p.name


def test_styblinski_tang_optimum_beats_a_dense_grid(full_suite: list[PlanningProblem]) -> None:
    """Per coordinate (the problem is separable) the solved optimum is below every point of a 1e-4 grid."""
    p = next(q for q in full_suite if isinstance(q, StyblinskiTangProblem))
    grid = torch.linspace(float(p.low[0]), float(p.high[0]), 100_001, dtype=torch.float64)  # (G,)

    def per_coord(u: torch.Tensor) -> torch.Tensor:
        z = u - p.shift[..., None] if u.ndim == 1 else u - p.shift
        return 0.5 * (z.pow(4) - 16 * z.pow(2) + 5 * z) + p.rho * u.pow(2)

    best_grid = per_coord(grid).amin(-1)  # (B, D)
    at_opt = per_coord(p.opt_actions.flatten(1))  # (B, D)
    assert bool((at_opt <= best_grid + 1e-12).all())
    wrong = p.opt_actions.flatten(1).clone()
    wrong[:, 0] = p.shift[:, 0] + 2.7468  # the other basin of one coordinate
    assert bool((p.cost_of(wrong.view_as(p.opt_actions)) > 1.5 * p.opt_cost).all())


def test_cost_is_batched_differentiable_and_subsettable(quick_suite: list[PlanningProblem]) -> None:
    """(B, S, H, A) -> (B, S), gradients flow, subset(i) is environment i alone."""
    for p in quick_suite:
        x = torch.zeros(4, 3, p.horizon, p.action_dim, requires_grad=True)
        c = p.cost(x)  # (B, S)
        assert c.shape == (4, 3) and c.dtype == torch.float32
        (grad,) = torch.autograd.grad(c.sum(), x)
        assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0
        one = p.subset(2)
        assert one.batch_size == 1
        torch.testing.assert_close(one.cost(x[2:3].detach()), c[2:3].detach())


@pytest.mark.parametrize("name", CONFIGS)
def test_default_config_is_within_10_percent_of_the_optimum(name: str, quick_suite: list[PlanningProblem]) -> None:
    """The yaml as shipped (its budget; horizon from the problem) ends within 10% of every optimum."""
    cfg = planner_option(name)
    result = score(config_row(cfg), quick_suite, SEEDS)
    bad = {k: round(v, 3) for k, v in result["per_problem"].items() if v > TARGET}
    assert not bad, f"{name}: worst cost / optimum above {TARGET} on {bad}"


@pytest.mark.slow
def test_defaults_beat_references_at_equal_budget(quick_suite: list[PlanningProblem]) -> None:
    """Each sampling config's worst ratio is no worse than pytorch-mppi's and torchrl's at 300 x 10."""
    pytest.importorskip("pytorch_mppi")
    pytest.importorskip("torchrl")
    from scripts.bench_planner_quality import pytorch_mppi_row, torchrl_rows

    refs = {"pytorch-mppi": pytorch_mppi_row(300, 10), **torchrl_rows(300, 10)}
    worst_ref = min(score(fn, quick_suite, SEEDS)["worst"] for fn in refs.values())
    for name, cfg in load_configs().items():
        assert score(config_row(cfg), quick_suite, SEEDS)["worst"] <= worst_ref, name


def test_bench_script_writes_the_table(tmp_path: Path) -> None:
    """--quick --out writes the markdown table with a row per config (references skipped to stay fast)."""
    out = tmp_path / "quality.md"
    main(["--quick", "--seeds", "1", "--batch", "2", "--no-refs", "--no-small", "--configs", "cem,mppi",
          "--out", str(out)])
    text = out.read_text()
    assert "| ours cem | 300 x 10 |" in text and "| ours mppi | 300 x 10 |" in text
    assert "worst ratio per problem" in text and "styblinski_tang_H5" in text
