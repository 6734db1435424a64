"""Tests over every configs/planner/*.yaml: LQ optimum, bounds, purity, seeds, NaN safety, batching, MPC."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hydra.utils import instantiate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from planners import Planner, RecedingHorizonController, colored_noise, shift_plan
from planners.mppi import MPPIPlanner
from worldmodel.config.planner import planner_option, planner_options

CONFIGS = planner_options()
H, A, DT, RHO = 5, 2, 0.5, 1.0  # horizon, action dims, integrator step, effort weight




def load(name: str) -> DictConfig:
    """One shipped planner config as Hydra composes it (its schema's defaults under the yaml)."""
    return planner_option(name)


def make(name: str, low: Tensor | None = None, high: Tensor | None = None, **overrides: object) -> Planner:
    """Instantiate a planner config with bounds (default [-1, 1]^A) and optional field overrides."""
    low = torch.full((A,), -1.0) if low is None else low
    high = torch.full((A,), 1.0) if high is None else high
    overrides.setdefault("horizon", H)
    return instantiate(load(name), action_low=low, action_high=high, **overrides)


# ---- a linear-quadratic point-mass problem with a closed-form optimum ------------------------------------
def integrator_matrix(horizon: int = H, dt: float = DT) -> Tensor:
    """M (H, H) with positions p_{t+1} = p_0 + M a (single integrator p_{t+1} = p_t + dt a_t)."""
    t = torch.arange(horizon)
    return dt * (t[:, None] >= t[None, :]).float()


def lq_problem(batch: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Random starts p0 (B, A), reference trajectories (B, H, A) and their interior optimum a* (B, H, A)."""
    g = torch.Generator().manual_seed(seed)
    m = integrator_matrix()
    p0 = torch.randn(batch, A, generator=g) * 0.5
    a_star = (torch.rand(batch, H, A, generator=g) * 2 - 1) * 0.7  # strictly inside [-1, 1]
    # Stationarity of |p0 + M a - ref|^2 + rho |a|^2 at a*: M^T (p0 + M a* - ref) + rho a* = 0.
    ref = p0[:, None] + m @ a_star + RHO * torch.linalg.solve(m.T, a_star)
    return p0, ref, a_star


def lq_cost(p0: Tensor, ref: Tensor) -> Callable[[Tensor], Tensor]:
    """Quadratic tracking + effort cost for actions (B, S, H, A) -> (B, S)."""
    m = integrator_matrix().to(p0.device)

    def cost(actions: Tensor) -> Tensor:
        pos = p0[:, None, None] + torch.einsum("ht,bsta->bsha", m, actions)  # (B, S, H, A)
        return ((pos - ref[:, None]) ** 2).sum((2, 3)) + RHO * (actions**2).sum((2, 3))

    return cost


def closed_form(p0: Tensor, ref: Tensor) -> Tensor:
    """Unconstrained least-squares optimum (B, H, A) of lq_cost."""
    m = integrator_matrix()
    lhs = m.T @ m + RHO * torch.eye(H)
    return torch.linalg.solve(lhs, m.T @ (ref - p0[:, None]))


def assert_solved(name: str, actions: Tensor, p0: Tensor, ref: Tensor) -> None:
    """Cost gap ≤ 5% of the gap at zero actions and action RMSE ≤ 0.1 for every environment."""
    cost = lq_cost(p0, ref)
    a_star = closed_form(p0, ref)
    c_star = cost(a_star[:, None])[:, 0]
    c_zero = cost(torch.zeros_like(a_star)[:, None])[:, 0]
    c = cost(actions[:, None])[:, 0]
    rel_gap = (c - c_star) / (c_zero - c_star)
    rmse = (actions - a_star).pow(2).mean((1, 2)).sqrt()
    assert bool((rel_gap < 0.05).all()), f"{name}: relative cost gap {rel_gap.tolist()}"
    assert bool((rmse < 0.1).all()), f"{name}: action rmse {rmse.tolist()}"


def test_closed_form_matches_construction() -> None:
    """The least-squares solution recovers the interior optimum the problem was built around."""
    p0, ref, a_star = lq_problem(4, seed=3)
    torch.testing.assert_close(closed_form(p0, ref), a_star, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", CONFIGS)
def test_solves_lq_problem(name: str) -> None:
    """Each configured planner reaches the closed-form LQ optimum within tolerance for B=4 envs."""
    p0, ref, _ = lq_problem(4, seed=1)
    result = make(name).plan(lq_cost(p0, ref), batch_size=4)
    assert result.actions.shape == (4, H, A) and result.mean.shape == (4, H, A)
    assert result.best_cost.shape == (4,)
    iters = load(name).iterations
    assert result.cost_history.shape == (4, iters) and result.elite_cost_history.shape == (4, iters)
    assert_solved(name, result.actions, p0, ref)


@pytest.mark.parametrize("name", CONFIGS)
def test_batched_matches_per_env(name: str) -> None:
    """Planning 4 envs at once gives each env an answer as good as planning that env alone."""
    p0, ref, _ = lq_problem(4, seed=2)
    batched = make(name).plan(lq_cost(p0, ref), batch_size=4).actions
    assert_solved(name, batched, p0, ref)
    for i in range(4):
        alone = make(name, seed=10 + i).plan(lq_cost(p0[i : i + 1], ref[i : i + 1]), batch_size=1).actions
        assert_solved(name, alone, p0[i : i + 1], ref[i : i + 1])
        torch.testing.assert_close(batched[i], alone[0], atol=0.25, rtol=0)


@pytest.mark.parametrize("name", CONFIGS)
def test_same_seed_same_answer(name: str) -> None:
    """Re-seeding reproduces a plan exactly; a different seed gives a different one."""
    p0, ref, _ = lq_problem(2, seed=4)
    cost = lq_cost(p0, ref)
    planner = make(name, seed=7)
    first = planner.plan(cost, 2)
    second = planner.plan(cost, 2)  # generator advanced: continues the stream
    planner.reseed()
    again = planner.plan(cost, 2)
    torch.testing.assert_close(first.actions, again.actions, atol=0, rtol=0)
    torch.testing.assert_close(first.cost_history, again.cost_history, atol=0, rtol=0)
    fresh = make(name, seed=7).plan(cost, 2)
    torch.testing.assert_close(first.actions, fresh.actions, atol=0, rtol=0)
    assert not torch.equal(first.actions, second.actions)
    planner.reseed(8)
    assert not torch.equal(planner.plan(cost, 2).actions, first.actions)


@pytest.mark.parametrize("name", CONFIGS)
def test_inputs_and_config_not_mutated(name: str) -> None:
    """Bounds, the warm start and the config are left exactly as given."""
    cfg = load(name)
    before = OmegaConf.to_yaml(cfg)
    low, high = torch.tensor([-1.0, -0.5]), torch.tensor([1.0, 0.5])
    init = torch.full((2, H, A), 3.0)  # outside the box on purpose
    copies = (low.clone(), high.clone(), init.clone())
    planner = instantiate(cfg, action_low=low, action_high=high, horizon=H)
    p0, ref, _ = lq_problem(2, seed=5)
    result = planner.plan(lq_cost(p0, ref), 2, initial_mean=init)
    for got, want in zip((low, high, init), copies):
        assert torch.equal(got, want)
    assert OmegaConf.to_yaml(cfg) == before
    assert result.actions.data_ptr() != init.data_ptr()


@st.composite
def boxes(draw: st.DrawFn) -> tuple[Tensor, Tensor, int, int, Tensor, Tensor]:
    """Random bounds (A,), horizon, batch, a linear cost direction (B, H, A) and a warm start (B, H, A)."""
    a = draw(st.integers(1, 3))
    h = draw(st.integers(1, 6))
    b = draw(st.integers(1, 3))
    floats = st.floats(-5.0, 5.0, allow_nan=False, width=32)
    lows = draw(st.lists(floats, min_size=a, max_size=a))
    widths = draw(st.lists(st.floats(0.015625, 4.0, width=32), min_size=a, max_size=a))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    low = torch.tensor(lows)
    high = low + torch.tensor(widths)
    direction = torch.randn(b, h, a, generator=g)
    init = torch.randn(b, h, a, generator=g) * 10.0
    return low, high, h, b, direction, init


@pytest.mark.parametrize("name", CONFIGS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(box=boxes())
def test_bounds_never_violated(name: str, box: tuple[Tensor, Tensor, int, int, Tensor, Tensor]) -> None:
    """Every candidate sent to the cost and every returned action lies inside [low, high]."""
    low, high, h, b, direction, init = box
    seen: list[Tensor] = []

    def cost(actions: Tensor) -> Tensor:
        seen.append(actions.detach().clone())
        return (actions * direction[:, None]).sum((2, 3)) * 10.0  # pushes towards a corner of the box

    overrides: dict[str, object] = {"horizon": h, "iterations": 3}
    if load(name).num_samples > 16:
        overrides["num_samples"] = 16
    if "num_elites" in load(name):
        overrides["num_elites"] = 4
    planner = make(name, low, high, **overrides)
    result = planner.plan(cost, b, initial_mean=init)
    for t in [*seen, result.actions, result.mean]:
        assert bool((t >= low).all()) and bool((t <= high).all())


@pytest.mark.parametrize("name", CONFIGS)
def test_non_finite_costs_do_not_poison(name: str) -> None:
    """NaN/inf for a third of the samples leaves the plan finite and still near the optimum."""
    p0, ref, _ = lq_problem(3, seed=6)
    base = lq_cost(p0, ref)

    def cost(actions: Tensor) -> Tensor:
        c = base(actions)  # (B, S)
        idx = torch.arange(c.shape[1])
        bad = torch.where(idx % 3 == 1, float("nan"), torch.where(idx % 3 == 2, float("inf"), 0.0))
        bad = torch.where(idx == 0, 0.0, bad)  # keep sample 0 finite (the injected mean / restart 0)
        return c + torch.where(idx % 3 == 0, 0.0, bad)

    result = make(name).plan(cost, 3)
    assert bool(torch.isfinite(result.actions).all()) and bool(torch.isfinite(result.best_cost).all())
    assert bool(torch.isfinite(result.cost_history).all())
    # Planners still converge using the remaining finite samples (looser tolerance: a third of the budget).
    c_star = base(closed_form(p0, ref)[:, None])[:, 0]
    c_zero = base(torch.zeros(3, 1, H, A))[:, 0]
    c = base(result.actions[:, None])[:, 0]
    assert bool(((c - c_star) / (c_zero - c_star) < 0.1).all())


@pytest.mark.parametrize("name", CONFIGS)
def test_all_non_finite_env_is_isolated(name: str) -> None:
    """An env whose costs are all NaN gets a finite, in-bounds plan and does not disturb the other envs."""
    p0, ref, _ = lq_problem(2, seed=7)
    base = lq_cost(p0, ref)

    def cost(actions: Tensor) -> Tensor:
        c = base(actions)
        return torch.stack([c[0], torch.full_like(c[1], float("nan"))])

    result = make(name).plan(cost, 2)
    assert bool(torch.isfinite(result.actions).all())
    assert bool((result.actions.abs() <= 1).all())
    assert torch.isinf(result.best_cost[1]) and torch.isfinite(result.best_cost[0])
    assert_solved(name, result.actions[:1], p0[:1], ref[:1])


@pytest.mark.parametrize("name", CONFIGS)
def test_warm_start_is_used(name: str) -> None:
    """Starting from the optimum (shape (H, A) or (B, H, A)) with a one-iteration budget stays near it."""
    p0, ref, a_star = lq_problem(2, seed=8)
    planner = make(name, iterations=1)
    cold = planner.plan(lq_cost(p0, ref), 2).actions
    warm = planner.plan(lq_cost(p0, ref), 2, initial_mean=a_star).actions
    warm_shared = planner.plan(lq_cost(p0[:1], ref[:1]), 1, initial_mean=a_star[0]).actions
    err = lambda x, y: (x - y).pow(2).mean().sqrt()  # noqa: E731
    assert err(warm, a_star) < err(cold, a_star)
    assert err(warm_shared, a_star[:1]) < 0.3


def test_shift_plan() -> None:
    """Shifting drops the executed actions and repeats the last one at the tail."""
    plan = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)
    shifted = shift_plan(plan, 1)
    assert torch.equal(shifted[:, :3], plan[:, 1:]) and torch.equal(shifted[:, 3], plan[:, 3])
    assert torch.equal(shift_plan(plan, 0), plan)


def test_colored_noise_statistics() -> None:
    """Unit variance per step; beta=0 is uncorrelated, beta=2 strongly correlated along the horizon."""
    g = torch.Generator().manual_seed(0)
    for beta, lo, hi in ((0.0, -0.05, 0.05), (2.0, 0.3, 1.0)):
        x = colored_noise(beta, 1, 20000, 6, 1, g, torch.device("cpu"))[0, :, :, 0]  # (S, H)
        torch.testing.assert_close(x.var(0), torch.ones(6), atol=0.06, rtol=0)
        lag1 = torch.corrcoef(torch.stack([x[:, :-1].reshape(-1), x[:, 1:].reshape(-1)]))[0, 1]
        assert lo < float(lag1) < hi


def point_mass_cost(pos: Tensor, goal: Tensor) -> Callable[[Tensor], Tensor]:
    """Goal-reaching cost for a 2-D single integrator from positions (B, A): tracking + small effort."""
    m = integrator_matrix()

    def cost(actions: Tensor) -> Tensor:
        traj = pos[:, None, None] + torch.einsum("ht,bsta->bsha", m, actions)  # (B, S, H, A)
        return ((traj - goal[:, None, None]) ** 2).sum((2, 3)) + 0.01 * (actions**2).sum((2, 3))

    return cost


@pytest.mark.parametrize("name", CONFIGS)
def test_mpc_reaches_goal(name: str) -> None:
    """Closed loop on a point mass: replanning every step drives both envs to their goals."""
    ctrl = RecedingHorizonController(make(name, iterations=5), num_envs=2, execute_steps=1)
    pos = torch.tensor([[1.5, -1.5], [-1.0, 0.5]])
    goal = torch.tensor([[-1.0, 1.0], [1.0, -1.0]])
    for _ in range(20):
        act = ctrl.act(point_mass_cost(pos, goal))  # (B, 1, A)
        assert act.shape == (2, 1, A) and bool((act.abs() <= 1).all())
        pos = pos + DT * act[:, 0]
    assert float((pos - goal).norm(dim=1).max()) < 0.1
    assert ctrl.mean is not None
    kept = ctrl.mean.clone()
    ctrl.reset(torch.tensor([True, False]))
    assert torch.equal(ctrl.mean[1], kept[1])
    assert torch.equal(ctrl.mean[0], torch.zeros(H, A))
    ctrl.reset()
    assert ctrl.mean is None


@pytest.mark.parametrize("name", CONFIGS)
def test_device_follows_bounds(name: str) -> None:
    """All result tensors live on the bounds' device (and on an explicit `device`)."""
    p0, ref, _ = lq_problem(1, seed=9)
    planner = make(name, iterations=1)
    assert planner.device == torch.device("cpu") and planner.generator.device == torch.device("cpu")
    result = planner.plan(lq_cost(p0, ref), 1)
    assert all(t.device == torch.device("cpu") for t in vars(result).values())
    explicit = make(name, iterations=1, device="cpu")
    assert explicit.low.device == torch.device("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", CONFIGS)
def test_cuda_plan_has_no_host_sync(name: str) -> None:
    """On CUDA a plan call runs with sync debug mode 'error' (no .item()/.cpu()/tensor-valued ifs)."""
    dev = torch.device("cuda")
    p0, ref, _ = lq_problem(2, seed=1)
    p0, ref = p0.to(dev), ref.to(dev)
    planner = make(name, torch.full((A,), -1.0, device=dev), torch.full((A,), 1.0, device=dev))
    cost = lq_cost(p0, ref)
    planner.plan(cost, 2)  # warm-up (lazy CUDA init may sync)
    torch.cuda.set_sync_debug_mode("error")
    try:
        result = planner.plan(cost, 2)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.actions.device.type == "cuda"
    assert_solved(name, result.actions.cpu(), p0.cpu(), ref.cpu())


def test_mppi_std_temperature_is_scale_free() -> None:
    """temperature_scale="std": multiplying every cost by 100 leaves the weights unchanged; absolute does not."""
    g = torch.Generator().manual_seed(0)
    costs = torch.rand(3, 50, generator=g)
    costs[0, 7] = float("inf")
    rel = MPPIPlanner(-torch.ones(2), torch.ones(2), horizon=3, temperature=0.5, temperature_scale="std")
    torch.testing.assert_close(rel.weights(costs), rel.weights(100 * costs))
    assert rel.weights(costs)[0, 7] == 0 and torch.allclose(rel.weights(costs).sum(1), torch.ones(3))
    ab = MPPIPlanner(-torch.ones(2), torch.ones(2), horizon=3, temperature=0.5, temperature_scale="absolute")
    assert not torch.allclose(ab.weights(costs), ab.weights(100 * costs))
    with pytest.raises(ValueError, match="temperature_scale"):
        MPPIPlanner(-torch.ones(2), torch.ones(2), horizon=3, temperature_scale="relative")


def test_cem_elites_as_a_fraction_of_samples() -> None:
    from planners.cem import CEMPlanner

    assert CEMPlanner(-1.0, 1.0, horizon=3, num_samples=64, num_elites=0.1, action_dim=2).num_elites == 6
    assert CEMPlanner(-1.0, 1.0, horizon=3, num_samples=10, num_elites=0.05, action_dim=2).num_elites == 2
    with pytest.raises(ValueError, match="num_elites"):
        CEMPlanner(-1.0, 1.0, horizon=3, num_samples=10, num_elites=2.5, action_dim=2)


# ---- properties added with the plan-quality work (planners/problems.py, tests/test_planner_quality.py) ----
@pytest.mark.parametrize("name", CONFIGS)
def test_non_finite_costs_are_never_chosen(name: str) -> None:
    """Samples whose cost is NaN/+inf/-inf never become the answer; the answer's cost is best_cost (finite)."""
    p0, ref, _ = lq_problem(3, seed=11)
    base = lq_cost(p0, ref)
    kinds = torch.tensor([float("nan"), float("inf"), -float("inf")])

    def cost(actions: Tensor) -> Tensor:
        c = base(actions)  # (B, S)
        forbidden = actions[..., 0, 0] > 0.0  # (B, S): a half-space that contains the optimum of env 0..2
        return torch.where(forbidden, kinds[torch.arange(c.shape[1]) % 3], c)

    result = make(name).plan(cost, 3)
    assert bool((result.actions[:, 0, 0] <= 0.0).all())
    assert bool(torch.isfinite(result.best_cost).all())
    torch.testing.assert_close(cost(result.actions[:, None])[:, 0], result.best_cost, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CONFIGS)
def test_environments_are_independent(name: str) -> None:
    """Env 0's plan is bit-identical whatever env 1's cost is (same seed): nothing couples the batch."""
    p0, ref, _ = lq_problem(2, seed=12)
    p0_other, ref_other, _ = lq_problem(2, seed=13)
    first = make(name, seed=3).plan(lq_cost(p0, ref), 2)
    mixed_p0 = torch.stack([p0[0], p0_other[1]])
    mixed_ref = torch.stack([ref[0], 5.0 * ref_other[1]])

    def mixed(actions: Tensor) -> Tensor:
        c = lq_cost(mixed_p0, mixed_ref)(actions)  # (B, S)
        return torch.stack([c[0], torch.where(c[1] > c[1].median(), float("nan"), c[1])])

    second = make(name, seed=3).plan(mixed, 2)
    assert torch.equal(first.actions[0], second.actions[0]) and torch.equal(first.best_cost[0], second.best_cost[0])
    assert not torch.equal(first.actions[1], second.actions[1])


@pytest.mark.parametrize("name", CONFIGS)
def test_answer_is_at_least_as_good_as_the_start(name: str) -> None:
    """Warm-started at the optimum with the full default budget, no config returns a worse plan."""
    p0, ref, a_star = lq_problem(2, seed=14)
    cost = lq_cost(p0, ref)
    result = make(name).plan(cost, 2, initial_mean=a_star)
    c_star = cost(a_star[:, None])[:, 0]
    assert bool((cost(result.actions[:, None])[:, 0] <= c_star * (1 + 1e-5) + 1e-6).all())


def test_mppi_elite_temperature_is_scale_free_and_truncated() -> None:
    """temperature_scale="elite": weights ignore the cost scale, vanish past the K-th sample, and the K-th elite
    gets exp(-1/temperature) of the best one's weight."""
    g = torch.Generator().manual_seed(1)
    costs = torch.rand(2, 40, generator=g)
    costs[1, 3] = float("nan")
    planner = MPPIPlanner(-torch.ones(2), torch.ones(2), horizon=3, num_samples=40, num_elites=8, temperature=0.5)
    w = planner.weights(costs)  # (B, S)
    torch.testing.assert_close(w, planner.weights(100.0 * costs - 3.0))
    assert bool(((w > 0).sum(1) == 8).all()) and w[1, 3] == 0
    ranked = torch.sort(w[0], descending=True).values
    torch.testing.assert_close(ranked[7] / ranked[0], torch.tensor(float(torch.exp(torch.tensor(-2.0)))))
    all_nan = planner.weights(torch.full((1, 40), float("nan")))
    assert torch.equal(all_nan, torch.zeros(1, 40))


def test_option_validation() -> None:
    """Unknown option values fail at construction with the option's name (hydra users see it verbatim)."""
    from planners.base import rank_weights, scale_ladder
    from planners.cem import CEMPlanner
    from planners.gradient import GradientPlanner

    with pytest.raises(ValueError, match="elite_weights"):
        CEMPlanner(-1.0, 1.0, horizon=3, action_dim=2, elite_weights="linear")
    with pytest.raises(ValueError, match="std_update"):
        MPPIPlanner(-1.0, 1.0, horizon=3, action_dim=2, std_update="both")
    with pytest.raises(ValueError, match="scale_levels"):
        CEMPlanner(-1.0, 1.0, horizon=3, action_dim=2, scale_levels=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        GradientPlanner(-1.0, 1.0, horizon=3, action_dim=2, lr_schedule="step")
    with pytest.raises(ValueError, match="temperature_scale must be 'absolute' or 'std'"):
        MPPIPlanner(-1.0, 1.0, horizon=3, action_dim=2, temperature_scale="rel")
    w = rank_weights(5, "log", torch.device("cpu"))
    assert torch.isclose(w.sum(), torch.tensor(1.0)) and bool((w[:-1] > w[1:]).all())
    assert torch.equal(scale_ladder(7, 3, torch.device("cpu")), torch.tensor([1, 0.5, 0.25, 1, 0.5, 0.25, 1.0]))
