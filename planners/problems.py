"""Planning problems whose optima are known to high precision, for testing and benchmarking planners.

Every problem is a `PlanningProblem`: a batch of B environments (B = 4 by default) that differ in their
start states, goals or shifts, with a torch cost over action sequences (B, S, H, A) -> (B, S) that is
differentiable (so the gradient planner works), the action bounds (A,), and the global optimum
(`opt_actions` (B, H, A), `opt_cost` (B,) > 0, float64). Two cost forms, u = vec(actions) in R^D, D = H*A:

  QuadraticProblem: cost_b(u) = scale * ( min_k ( |M u - y_bk|^2 + c_bk ) + rho |u|^2 ), with M (N, D) the
      stacked, weighted rollout map of linear dynamics and y_bk the weighted reference minus the free
      response from env b's start. K = 1: a box-constrained least-squares problem (convex); K > 1: the
      minimum of convex pieces (non-convex), whose global minimum is the smallest of the pieces' minima.
      Each piece is solved in float64 by scipy's bounded-variable least squares (`lsq_linear`, method
      "bvls", an exact active-set method) and checked by `kkt_residual` (~1e-15), so `opt_cost` is exact
      to rounding. scipy is imported lazily: `import planners` stays torch-only.
  StyblinskiTangProblem: a separable non-convex sum over action coordinates, solved per coordinate from
      the real roots of a cubic (exact to rounding).

Families (`planning_suite`; A = 2 throughout):
  lq_H{5,10,15}_x{0.01,1,100}: finite-horizon LQ regulation of a fixed random 4-state linear system,
      sum_t |x_t|^2 + |u|^2 (Q = I, R = I), times the cost scale; bounds +-10 while the optimal actions
      have |u*|_inf in [0.3, 0.7] (interior optimum, so it is the unconstrained least-squares solution).
  lq_bounded_H10, lq_bounded_asym_H15: the same system with starts 5x farther (|u*_unconstrained|_inf
      1.5-3.5) and bounds +-0.5, or asymmetric [-0.3, -0.8]..[0.8, 0.3]: 13-19 active bounds per env.
  single_integrator_H10: p_{t+1} = p_t + 0.5 u_t in 2-D, sum_t |p_t - goal|^2 + 0.01 |u|^2, goals 2-3 away,
      bounds +-1 bind. single_integrator_wide_H10: goals 0.3-0.6 away, effort 0.3 |u|^2, bounds +-10,
      |u*|_inf about 0.5.
  double_integrator_H15: 2-D point mass (p, v), dt 0.2, reach the goal and stop: sum_t |x_t - (goal, 0)|^2
      + 0.1 |u|^2, bounds +-1 bind.
  two_basin_H10: single integrator (bounds +-1) with the goal 1.6-2.4 away and a decoy goal 1.3x as far
      in the opposite direction, whose basin is raised (offset c) to cost 1.5x the global optimum: a
      planner must not average the two modes nor settle in the worse one.
  styblinski_tang_H5: sum_d g(u_d - s_bd) - g_min + 0.2 u_d^2, g(z) = (z^4 - 16 z^2 + 5 z) / 2, shifts
      s in [0, 1], bounds +-5: two basins per coordinate (2^10 local minima); a wrong basin in any one
      coordinate costs >= 1.5x the optimum. The mid-box start lies in every coordinate's global basin of
      attraction (the barrier is at z = 0.16), so this checks that broad sampling, clipping and averaging
      do not throw coordinates into wrong basins; with s in [-1, 1] (starts in wrong basins) the planners
      measured, references included, missed the global optimum in up to 1 of 4 instances at 300 x 10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

RHO_LQ = 1.0  # effort weight of the lq family (Q = I, R = rho I)
# the subset `planning_suite(quick=True)` builds
QUICK = ("lq_H5_x1", "lq_H15_x100", "lq_bounded_H10", "single_integrator_H10", "single_integrator_wide_H10",
         "double_integrator_H15", "two_basin_H10", "styblinski_tang_H5")


@dataclass(frozen=True)
class PlanningProblem:
    """A batch of B planning problems with a known global optimum (base of the problem families).

    Fields:
        name, family: identifiers; doc: one line saying what it is.
        horizon: H; action_dim: A; low, high: (A,) float32 action bounds (shared by all environments).
        rho: effort weight (rho |u|^2); scale: overall cost multiplier.
        opt_actions: (B, H, A) float64 global minimiser; opt_cost: (B,) float64 its cost (> 0).
    """

    name: str
    family: str
    doc: str
    horizon: int
    action_dim: int
    low: Tensor
    high: Tensor
    rho: float
    scale: float
    opt_actions: Tensor
    opt_cost: Tensor

    @property
    def batch_size(self) -> int:
        """B, the number of environments."""
        return int(self.opt_cost.shape[0])

    def raw_cost(self, u: Tensor) -> Tensor:
        """Unscaled cost (B, S) of flattened actions u (B, S, D), without the effort term."""
        raise NotImplementedError

    def cost(self, actions: Tensor) -> Tensor:
        """Cost (B, S) of actions (B, S, H, A), computed in the actions' dtype; differentiable."""
        u = actions.flatten(-2)  # (B, S, D)
        return self.scale * (self.raw_cost(u) + self.rho * u.pow(2).sum(-1))  # (B, S)

    def cost_of(self, actions: Tensor) -> Tensor:
        """Float64 cost (B,) of one plan per environment, actions (B, H, A)."""
        return self.cost(actions.detach().to(torch.float64)[:, None])[:, 0]  # (B,)

    def centre_cost(self) -> Tensor:
        """Cost (B,) of the constant mid-box plan, the planners' default starting mean."""
        mid = ((self.low + self.high) / 2).to(torch.float64)  # (A,)
        return self.cost_of(mid.expand(self.batch_size, self.horizon, self.action_dim))

    def per_env(self) -> dict[str, Tensor]:
        """Fields indexed by environment along dim 0 (sliced by `subset`)."""
        return {"opt_actions": self.opt_actions, "opt_cost": self.opt_cost}

    def subset(self, index: int) -> PlanningProblem:
        """The single-environment problem (B = 1) of environment `index`."""
        return replace(self, **{k: v[index : index + 1] for k, v in self.per_env().items()})


@dataclass(frozen=True)
class QuadraticProblem(PlanningProblem):
    """min over K basins of |M u - y_bk|^2 + c_bk, plus rho |u|^2, times scale (module docstring).

    Extra fields:
        mat: (N, D) float64 stacked rollout map, D = H*A (actions flattened time-major).
        targets: (B, K, N) float64 per-environment, per-basin targets.
        offsets: (B, K) float64 constant added to each basin.
    """

    mat: Tensor = torch.zeros(0, 0)
    targets: Tensor = torch.zeros(0, 0, 0)
    offsets: Tensor = torch.zeros(0, 0)

    def raw_cost(self, u: Tensor) -> Tensor:
        """min_k |M u - y_bk|^2 + c_bk for u (B, S, D) -> (B, S)."""
        mat = self.mat.to(device=u.device, dtype=u.dtype)  # (N, D)
        pred = torch.einsum("nd,bsd->bsn", mat, u)  # (B, S, N)
        y = self.targets.to(device=u.device, dtype=u.dtype)  # (B, K, N)
        resid = pred[:, :, None, :] - y[:, None]  # (B, S, K, N)
        off = self.offsets.to(device=u.device, dtype=u.dtype)[:, None]  # (B, 1, K)
        return (resid.pow(2).sum(-1) + off).amin(-1)  # (B, S)

    def per_env(self) -> dict[str, Tensor]:
        """Per-environment fields, including targets and offsets."""
        return {**super().per_env(), "targets": self.targets, "offsets": self.offsets}


ST_ARGMIN = -2.903534027771178  # argmin of g(z) = (z^4 - 16 z^2 + 5 z) / 2
ST_MIN = -39.16616570377142  # g(ST_ARGMIN)


@dataclass(frozen=True)
class StyblinskiTangProblem(PlanningProblem):
    """Shifted Styblinski-Tang sum over every action coordinate, plus rho |u|^2, times scale.

    cost_b(u) = scale * sum_d [ g(u_d - s_bd) - g_min + rho u_d^2 ],  g(z) = (z^4 - 16 z^2 + 5 z) / 2.
    Each coordinate has two basins, near z = -2.90 (global) and z = +2.75 (14.1 higher), so the sum has
    2^D local minima. Separable: the global minimum is the best real root (or bound) of each coordinate's
    cubic derivative, solved in float64 (`solve_st_coordinate`).

    Extra field: shift: (B, D) float64 per-environment shifts s.
    """

    shift: Tensor = torch.zeros(0, 0)

    def raw_cost(self, u: Tensor) -> Tensor:
        """sum_d g(u_d - s_bd) - g_min for u (B, S, D) -> (B, S)."""
        z = u - self.shift.to(device=u.device, dtype=u.dtype)[:, None]  # (B, S, D)
        return (0.5 * (z.pow(4) - 16 * z.pow(2) + 5 * z) - ST_MIN).sum(-1)

    def per_env(self) -> dict[str, Tensor]:
        """Per-environment fields, including the shifts."""
        return {**super().per_env(), "shift": self.shift}


def rollout_maps(a_dyn: Tensor, b_dyn: Tensor, horizon: int) -> tuple[Tensor, Tensor]:
    """Free-response F (H, n, n) and forced-response G (H, n, H*m) of x_{t+1} = A x_t + B u_t, t = 1..H."""
    n, m = b_dyn.shape
    free = torch.zeros(horizon, n, n, dtype=torch.float64)
    forced = torch.zeros(horizon, n, horizon * m, dtype=torch.float64)
    power = torch.eye(n, dtype=torch.float64)
    for t in range(horizon):
        power = a_dyn @ power  # A^{t+1}
        free[t] = power
        forced[t] = a_dyn @ forced[t - 1] if t > 0 else forced[t]
        forced[t, :, t * m : (t + 1) * m] = b_dyn
    return free, forced  # x_{t+1} = free[t] x0 + forced[t] u


def solve_box_lsq(mat: Tensor, target: Tensor, rho: float, low: Tensor, high: Tensor) -> tuple[Tensor, float]:
    """argmin over low <= u <= high of |M u - y|^2 + rho |u|^2 (float64, exact active set); returns (u, value)."""
    from scipy.optimize import lsq_linear

    d = mat.shape[1]
    aug = torch.cat([mat, math.sqrt(rho) * torch.eye(d, dtype=torch.float64)]).numpy()  # (N+D, D)
    rhs = torch.cat([target, torch.zeros(d, dtype=torch.float64)]).numpy()  # (N+D,)
    res = lsq_linear(aug, rhs, bounds=(low.numpy(), high.numpy()), method="bvls", tol=1e-14, max_iter=10_000)
    u = torch.from_numpy(res.x).clamp(low, high)  # (D,)
    value = float((mat @ u - target).pow(2).sum() + rho * u.pow(2).sum())
    return u, value


def kkt_residual(problem: QuadraticProblem) -> Tensor:
    """Largest KKT violation (B,) of opt_actions for its optimal basin, relative to the gradient scale."""
    u = problem.opt_actions.flatten(-2)  # (B, D)
    resid = torch.einsum("nd,bd->bn", problem.mat, u)[:, None] - problem.targets  # (B, K, N)
    k = (resid.pow(2).sum(-1) + problem.offsets).argmin(-1)  # (B,)
    r = resid[torch.arange(problem.batch_size), k]  # (B, N)
    grad = 2 * (r @ problem.mat + problem.rho * u)  # (B, D)
    lo = problem.low.to(torch.float64).repeat(problem.horizon)  # (D,)
    hi = problem.high.to(torch.float64).repeat(problem.horizon)  # (D,)
    at_lo, at_hi = u <= lo + 1e-10, u >= hi - 1e-10
    viol = torch.where(at_lo, (-grad).clamp_min(0), torch.where(at_hi, grad.clamp_min(0), grad.abs()))  # (B, D)
    ref = (2 * problem.mat.abs().sum(0) * problem.targets.abs().amax((1, 2))[:, None]).amax(-1)  # (B,)
    return viol.amax(-1) / ref


def make_problem(name: str, family: str, doc: str, mat: Tensor, targets: Tensor, offsets: Tensor, rho: float,
                 scale: float, low: Tensor, high: Tensor, horizon: int) -> QuadraticProblem:
    """Solve every (environment, basin) box QP exactly and assemble the problem with its global optimum."""
    a = low.shape[0]
    lo, hi = low.to(torch.float64).repeat(horizon), high.to(torch.float64).repeat(horizon)  # (D,)
    b, k = targets.shape[:2]
    best_u = torch.zeros(b, horizon * a, dtype=torch.float64)
    best_v = torch.full((b,), math.inf, dtype=torch.float64)
    for i in range(b):
        for j in range(k):
            u, v = solve_box_lsq(mat, targets[i, j], rho, lo, hi)
            v = v + float(offsets[i, j])
            if v < best_v[i]:
                best_u[i], best_v[i] = u, v
    return QuadraticProblem(name, family, doc, horizon, a, low.float(), high.float(), rho, scale,
                            best_u.view(b, horizon, a), scale * best_v, mat, targets, offsets)


def tracking_terms(a_dyn: Tensor, b_dyn: Tensor, weights: Tensor, x0: Tensor, refs: Tensor) -> tuple[Tensor, Tensor]:
    """Stacked map M (H*n, D) and targets (B, K, H*n) of sum_t w_t |x_t - ref_k|^2 from starts x0 (B, n)."""
    horizon = weights.shape[0]
    free, forced = rollout_maps(a_dyn, b_dyn, horizon)  # (H, n, n), (H, n, D)
    sw = weights.sqrt()[:, None]  # (H, 1)
    mat = (sw[:, :, None] * forced).reshape(-1, forced.shape[-1])  # (H*n, D)
    resp = torch.einsum("hij,bj->bhi", free, x0)  # (B, H, n)
    tgt = sw * (refs[:, :, None, :] - resp[:, None])  # (B, K, H, n)
    return mat, tgt.flatten(-2)


def random_system(seed: int = 0) -> tuple[Tensor, Tensor]:
    """A fixed random, marginally stable 4-state, 2-input linear system (float64), dt 0.2."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(4, 4, generator=g, dtype=torch.float64)
    cont = (raw - raw.T) - 0.1 * torch.eye(4, dtype=torch.float64)  # rotation-like with light damping
    a_dyn = torch.linalg.matrix_exp(0.2 * cont)
    b_dyn = 0.2 * torch.randn(4, 2, generator=g, dtype=torch.float64)
    return a_dyn, b_dyn


def lq(horizon: int, scale: float, batch: int, seed: int, u_max: float, low: Tensor, high: Tensor,
       name: str, doc: str) -> PlanningProblem:
    """LQ regulation of `random_system`; starts scaled so the unconstrained |u*|_inf = u_max * U[0.6, 1.4]."""
    a_dyn, b_dyn = random_system(seed)
    g = torch.Generator().manual_seed(seed + 1000 * horizon)
    x0 = torch.randn(batch, 4, generator=g, dtype=torch.float64)  # (B, n)
    mat, tgt = tracking_terms(a_dyn, b_dyn, torch.ones(horizon, dtype=torch.float64), x0,
                              torch.zeros(batch, 1, 4, dtype=torch.float64))
    rho = RHO_LQ
    hess = mat.T @ mat + rho * torch.eye(mat.shape[1], dtype=torch.float64)  # (D, D)
    u_unc = torch.linalg.solve(hess, mat.T @ tgt[:, 0].T).T  # (B, D), linear in x0
    want = u_max * (0.6 + 0.8 * torch.rand(batch, generator=g, dtype=torch.float64))  # (B,)
    tgt = tgt * (want / u_unc.abs().amax(-1))[:, None, None]
    return make_problem(name, "lq", doc, mat, tgt, torch.zeros(batch, 1, dtype=torch.float64), rho, scale, low,
                        high, horizon)


def integrator(name: str, doc: str, horizon: int, batch: int, seed: int, low: Tensor, high: Tensor,
               dist: tuple[float, float], decoy: bool = False, rho: float = 0.01) -> PlanningProblem:
    """2-D single integrator p += 0.5 u: track a goal `dist` away (and a decoy 1.3x as far the other way)."""
    g = torch.Generator().manual_seed(seed + 7 * horizon)
    eye = torch.eye(2, dtype=torch.float64)
    p0 = 3 * torch.rand(batch, 2, generator=g, dtype=torch.float64) - 1.5  # (B, 2)
    ang = 2 * math.pi * torch.rand(batch, generator=g, dtype=torch.float64)
    r = dist[0] + (dist[1] - dist[0]) * torch.rand(batch, generator=g, dtype=torch.float64)
    direction = torch.stack([ang.cos(), ang.sin()], -1)  # (B, 2)
    refs = (p0 + r[:, None] * direction)[:, None]  # (B, 1, 2)
    if decoy:
        refs = torch.cat([refs, (p0 - 1.3 * r[:, None] * direction)[:, None]], 1)  # (B, 2, 2)
    mat, tgt = tracking_terms(eye, 0.5 * eye, torch.ones(horizon, dtype=torch.float64), p0, refs)
    off = torch.zeros(batch, refs.shape[1], dtype=torch.float64)
    if decoy:  # raise the decoy's basin to 1.5x the true goal's optimum (a known, clearly worse local minimum)
        lo, hi = low.to(torch.float64).repeat(horizon), high.to(torch.float64).repeat(horizon)
        for i in range(batch):
            v_true = solve_box_lsq(mat, tgt[i, 0], rho, lo, hi)[1]
            v_decoy = solve_box_lsq(mat, tgt[i, 1], rho, lo, hi)[1]
            off[i, 1] = max(1.5 * v_true - v_decoy, 0.0)
    return make_problem(name, "two_basin" if decoy else "single_integrator", doc, mat, tgt, off, rho, 1.0, low,
                        high, horizon)


def double_integrator(horizon: int, batch: int, seed: int) -> QuadraticProblem:
    """2-D point mass, dt 0.2, bounds +-1: sum_t |x_t - x_g|^2 + 0.1 |u|^2 with x_g = (goal, 0)."""
    g = torch.Generator().manual_seed(seed + 11)
    dt = 0.2
    a_dyn = torch.eye(4, dtype=torch.float64)
    a_dyn[0, 2] = a_dyn[1, 3] = dt
    b_dyn = torch.zeros(4, 2, dtype=torch.float64)
    b_dyn[2, 0] = b_dyn[3, 1] = dt
    x0 = torch.cat([3 * torch.rand(batch, 2, generator=g, dtype=torch.float64) - 1.5,
                    0.5 * torch.randn(batch, 2, generator=g, dtype=torch.float64)], 1)  # (B, 4)
    goal = torch.cat([3 * torch.rand(batch, 2, generator=g, dtype=torch.float64) - 1.5,
                      torch.zeros(batch, 2, dtype=torch.float64)], 1)[:, None]  # (B, 1, 4)
    mat, tgt = tracking_terms(a_dyn, b_dyn, torch.ones(horizon, dtype=torch.float64), x0, goal)
    one = torch.ones(2)
    doc = "2-D double integrator reach-and-stop, bounds +-1 bind"
    return make_problem(f"double_integrator_H{horizon}", "double_integrator", doc, mat, tgt,
                        torch.zeros(batch, 1, dtype=torch.float64), 0.1, 1.0, -one, one, horizon)


def solve_st_coordinate(shift: float, rho: float, low: float, high: float) -> float:
    """Global argmin over [low, high] of g(u - shift) + rho u^2 (real cubic roots and the bounds, float64)."""
    import numpy as np

    def h(u: float) -> float:
        z = u - shift
        return 0.5 * (z**4 - 16 * z**2 + 5 * z) + rho * u**2

    # h'(u) = 0 with z = u - shift: 2 z^3 + (2 rho - 16) z + (2.5 + 2 rho shift) = 0
    roots = np.roots([2.0, 0.0, 2 * rho - 16.0, 2.5 + 2 * rho * shift])
    cands = [float(r.real) + shift for r in roots if abs(r.imag) < 1e-9] + [low, high]
    cands = [min(max(c, low), high) for c in cands]
    return min(cands, key=h)


def styblinski_tang(horizon: int, batch: int, seed: int, scale: float = 1.0) -> StyblinskiTangProblem:
    """Shifted Styblinski-Tang sum over (H, A=2) actions, shifts U[0, 1], effort 0.2, bounds +-5."""
    g = torch.Generator().manual_seed(seed + 13 * horizon)
    d, rho, lim = horizon * 2, 0.2, 5.0
    shift = torch.rand(batch, d, generator=g, dtype=torch.float64)  # (B, D)
    opt = torch.tensor([[solve_st_coordinate(float(s), rho, -lim, lim) for s in row] for row in shift],
                       dtype=torch.float64)  # (B, D)
    z = opt - shift
    value = (0.5 * (z.pow(4) - 16 * z.pow(2) + 5 * z) - ST_MIN + rho * opt.pow(2)).sum(-1)  # (B,)
    bound = torch.full((2,), lim)
    doc = f"shifted Styblinski-Tang, H={horizon}: 2^{d} local minima, bounds +-5"
    return StyblinskiTangProblem(f"styblinski_tang_H{horizon}", "styblinski_tang", doc, horizon, 2, -bound, bound,
                                 rho, scale, opt.view(batch, horizon, 2), scale * value, shift)


def planning_suite(quick: bool = False, batch: int = 4, seed: int = 0) -> list[PlanningProblem]:
    """Build the suite (see the module docstring); `quick` keeps only the problems named in QUICK."""
    wide, one = torch.full((2,), 10.0), torch.ones(2)
    builders = {}
    for h in (5, 10, 15):
        for s in (0.01, 1.0, 100.0):
            name = f"lq_H{h}_x{s:g}"
            doc = f"LQ regulation, H={h}, cost x{s:g}, bounds +-10, |u*| <= 0.7"
            builders[name] = (lambda h=h, s=s, name=name, doc=doc:
                              lq(h, s, batch, seed, 0.5, -wide, wide, name, doc))
    builders["lq_bounded_H10"] = lambda: lq(10, 1.0, batch, seed, 2.5, -0.5 * one, 0.5 * one, "lq_bounded_H10",
                                            "LQ regulation, H=10, bounds +-0.5 bind (|u*_unc| ~ 2.5)")
    asym_lo, asym_hi = torch.tensor([-0.3, -0.8]), torch.tensor([0.8, 0.3])
    builders["lq_bounded_asym_H15"] = lambda: lq(15, 1.0, batch, seed, 2.5, asym_lo, asym_hi, "lq_bounded_asym_H15",
                                                 "LQ regulation, H=15, asymmetric bounds bind")
    builders["single_integrator_H10"] = lambda: integrator(
        "single_integrator_H10", "2-D single integrator tracking a goal 2-3 away, bounds +-1 bind", 10, batch,
        seed, -one, one, (2.0, 3.0))
    builders["single_integrator_wide_H10"] = lambda: integrator(
        "single_integrator_wide_H10", "2-D single integrator, goal 0.3-0.6 away, effort 0.3, bounds +-10", 10,
        batch, seed, -wide, wide, (0.3, 0.6), rho=0.3)
    builders["double_integrator_H15"] = lambda: double_integrator(15, batch, seed)
    builders["two_basin_H10"] = lambda: integrator(
        "two_basin_H10", "single integrator, goal vs a decoy 1.3x as far the other way at 1.5x the optimum", 10,
        batch, seed, -one, one, (1.6, 2.4), decoy=True)
    builders["styblinski_tang_H5"] = lambda: styblinski_tang(5, batch, seed)
    names = [n for n in builders if not quick or n in QUICK]
    return [builders[n]() for n in names]
