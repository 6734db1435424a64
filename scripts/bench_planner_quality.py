"""Plan-quality benchmark: every configs/planner/*.yaml against problems with known optima, and references.

Rows: each shipped planner config at its yaml budget (horizon taken from the problem; everything else from
the yaml), built with hydra's `instantiate` exactly as worldmodel/eval/evaluate.py `build_planner` does; and
references at EQUAL budget (the same samples x iterations as the sampling configs, 300 x 10 by default):

  pytorch-mppi MPPI (`pytorch_mppi.MPPI`, open loop): one controller per environment (it is not batched over
      environments). Its state is a dummy (nx = 1) that the dynamics leave unchanged; the running cost is 0
      and `terminal_state_cost(states, actions)` returns the problem's cost of the whole sampled action
      sequence (K, T, A), so each of its iterations scores K full sequences exactly as our planners do.
      It is run open loop: `command(state, shift_nominal_trajectory=False)` once per iteration, then the
      nominal sequence `U` is the answer. Settings: its default lambda_ = 1 (absolute cost units),
      noise_sigma = (0.5 x half range)^2 per action dim (the noise of our MPPI's original default), u_min /
      u_max = the bounds, U_init = the box centre (our planners' start); its control-cost term is on (as in
      the library).
  torchrl CEMPlanner / MPPIPlanner: a one-step ModelBasedEnvBase whose action is the whole flattened sequence
      (H*A,) with Bounded specs = the bounds, reward = -cost; planning_horizon = 1, so their Gaussian over
      (H*A) is exactly their per-step Gaussian over H steps (the same algorithm as bench_planners.py's
      step-by-step wiring, without H env steps). top_k = 10% of the samples (our num_elites). MPPIPlanner's
      temperature is 1 (lambda = 1, cost units) and its advantage module returns reward - max reward over the
      candidates (a constant baseline per environment, which torchrl's exp(temperature * advantage) needs to
      avoid 0/0 at large costs; it does not change the normalised weights). Both start from torchrl's own
      mean 0, std 1.

Metric (per problem, environment and seed): cost ratio = cost(plan) / optimal cost; every problem has an
optimum > 0 (planners/problems.py), so a ratio of 1.10 means 10% above the optimum, and "within 10%" means
ratio <= 1.10. Also printed: the normalised gap (cost - opt) / (cost of the mid-box plan - opt), the share of
the starting gap left. Non-finite plans score +inf. A second table lists each problem's worst ratio.

    .venv/bin/python scripts/bench_planner_quality.py [--quick] [--seeds 3] [--out table.md]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from planners.problems import PlanningProblem, planning_suite
from scripts.common import ArgumentParser, positive_int, user_errors_exit

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "planner"
TARGET = 1.10  # worst-case cost / optimum every shipped config must reach at its yaml budget
SMALL = {"num_samples": 64, "iterations": 5}  # the main job's override (configs/pipeline.yaml)
PlanFn = Callable[[PlanningProblem, int], Tensor]  # (problem, seed) -> actions (B, H, A)


def load_configs(names: list[str] | None = None) -> dict[str, DictConfig]:
    """The shipped planner options as Hydra composes them (schema defaults under the yaml), by name."""
    from worldmodel.config.planner import planner_option, planner_options

    return {n: planner_option(n) for n in planner_options() if names is None or n in names}


def build_planner(cfg: DictConfig, problem: PlanningProblem, seed: int, **overrides: Any) -> Any:
    """Instantiate a planner yaml for `problem` (its bounds and horizon), as evaluate.build_planner does."""
    from hydra.utils import instantiate

    fields = dict(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    fields.update(action_low=problem.low, action_high=problem.high, horizon=problem.horizon, device="cpu",
                  seed=seed, **overrides)
    return instantiate(fields, _convert_="all")


def config_row(cfg: DictConfig, **overrides: Any) -> PlanFn:
    """Plan function of one yaml config (with optional budget overrides)."""

    def plan(problem: PlanningProblem, seed: int) -> Tensor:
        planner = build_planner(cfg, problem, seed, **overrides)
        return planner.plan(problem.cost, problem.batch_size).actions  # (B, H, A)

    return plan


def pytorch_mppi_row(samples: int, iterations: int) -> PlanFn:
    """pytorch-mppi's MPPI, open loop, one controller per environment (see the module docstring)."""
    from pytorch_mppi import MPPI

    def plan(problem: PlanningProblem, seed: int) -> Tensor:
        torch.manual_seed(seed)
        out = []
        sigma = torch.diag((0.5 * (problem.high - problem.low) / 2).pow(2))  # (A, A)
        mid = (problem.low + problem.high) / 2  # (A,)
        for i in range(problem.batch_size):
            sub = problem.subset(i)

            def terminal(states: Tensor, actions: Tensor, sub: PlanningProblem = sub) -> Tensor:
                return sub.cost(actions)  # actions (1, K, T, A) -> (1, K)

            ctrl = MPPI(lambda s, u: s, lambda s, u: torch.zeros(s.shape[0]), 1, sigma, num_samples=samples,
                        horizon=problem.horizon, lambda_=1.0, u_min=problem.low, u_max=problem.high,
                        U_init=mid.expand(problem.horizon, -1).clone(), terminal_state_cost=terminal)
            for _ in range(iterations):
                ctrl.command(torch.zeros(1), shift_nominal_trajectory=False)
            out.append(ctrl.U.clamp(problem.low, problem.high))  # (H, A)
        return torch.stack(out)  # (B, H, A)

    return plan


def torchrl_rows(samples: int, iterations: int) -> dict[str, PlanFn]:
    """torchrl's CEMPlanner and MPPIPlanner on a one-step env whose action is the flattened sequence."""
    from tensordict.nn import TensorDictModule
    from torch import nn
    from torchrl.data import Bounded, Composite, Unbounded
    from torchrl.envs.model_based import ModelBasedEnvBase
    from torchrl.modules.planners import CEMPlanner, MPPIPlanner

    class Score(nn.Module):
        """Reward -cost of the flattened sequence; the batch is (B, S) inside the planners."""

        def __init__(self, problem: PlanningProblem) -> None:
            super().__init__()
            self.problem = problem

        def forward(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
            p = self.problem
            cost = p.cost(action.reshape(*action.shape[:-1], p.horizon, p.action_dim))  # (B, S)
            return obs, -cost[..., None]  # (B, S, 1)

    class Baseline(nn.Module):
        """Advantage = reward - max reward over the candidates of each environment (see the docstring)."""

        def forward(self, td: Any) -> Any:
            r = td.get(("next", "reward"))  # (B, S, 1, 1)
            td.set("advantage", r - r.amax(dim=-3, keepdim=True))
            return td

    def make_env(problem: PlanningProblem) -> Any:
        world = TensorDictModule(Score(problem), in_keys=["obs", "action"], out_keys=["obs", "reward"])
        d = problem.horizon * problem.action_dim

        class SequenceEnv(ModelBasedEnvBase):
            def __init__(self) -> None:
                super().__init__(world, device="cpu")
                self.observation_spec = Composite(obs=Unbounded((1,)))
                self.state_spec = self.observation_spec.clone()
                self.action_spec = Bounded(problem.low.repeat(problem.horizon), problem.high.repeat(problem.horizon),
                                           shape=(d,))
                self.reward_spec = Unbounded((1,))

            def _reset(self, tensordict: Any, **kwargs: object) -> Any:
                return tensordict

        return SequenceEnv()

    def run(kind: str) -> PlanFn:
        def plan(problem: PlanningProblem, seed: int) -> Tensor:
            from tensordict import TensorDict

            torch.manual_seed(seed)
            env, k = make_env(problem), max(2, round(0.1 * samples))
            planner = (CEMPlanner(env, 1, iterations, samples, k) if kind == "cem" else
                       MPPIPlanner(env, Baseline(), 1.0, 1, iterations, samples, k))
            td = TensorDict({"obs": torch.zeros(problem.batch_size, 1)}, batch_size=[problem.batch_size])
            flat = planner(td).get("action")  # (B, H*A)
            return flat.reshape(problem.batch_size, problem.horizon, problem.action_dim)

        return plan

    return {"torchrl CEMPlanner": run("cem"), "torchrl MPPIPlanner": run("mppi")}


def score(plan: PlanFn, suite: list[PlanningProblem], seeds: int) -> dict[str, Any]:
    """Run `plan` on every problem and seed; cost ratios, normalised gaps and wall time."""
    ratios: dict[str, list[float]] = {}
    gaps: list[float] = []
    wall = 0.0
    for problem in suite:
        for seed in range(seeds):
            t0 = time.perf_counter()
            actions = plan(problem, seed)
            wall += time.perf_counter() - t0
            inside = bool(((actions >= problem.low) & (actions <= problem.high)).all())
            cost = problem.cost_of(actions)  # (B,)
            cost = torch.where(torch.isfinite(cost) & inside, cost, torch.full_like(cost, math.inf))
            ratios.setdefault(problem.name, []).extend((cost / problem.opt_cost).tolist())
            gaps.extend(((cost - problem.opt_cost) / (problem.centre_cost() - problem.opt_cost)).tolist())
    flat = [r for rs in ratios.values() for r in rs]
    worst_problem = max(ratios, key=lambda n: max(ratios[n]))
    return {"median": statistics.median(flat), "worst": max(flat), "worst_problem": worst_problem,
            "within": sum(r <= TARGET for r in flat), "n": len(flat), "median_gap": statistics.median(gaps),
            "worst_gap": max(gaps), "wall": wall, "per_problem": {n: max(r) for n, r in ratios.items()}}


def budget_of(cfg: DictConfig, overrides: dict[str, int]) -> str:
    """'S x I' of a config after overrides."""
    return f"{overrides.get('num_samples', cfg.num_samples)} x {overrides.get('iterations', cfg.iterations)}"


def section(title: str, configs: dict[str, DictConfig], suite: list[PlanningProblem], seeds: int,
            overrides: dict[str, int], refs: bool) -> list[str]:
    """Markdown lines of one benchmark section: summary table and per-problem worst ratios."""
    rows: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, cfg in configs.items():
        rows[f"ours {name}"] = (budget_of(cfg, overrides), score(config_row(cfg, **overrides), suite, seeds))
    if refs:
        sampling = [c for c in configs.values() if c.num_samples > 16]
        s = overrides.get("num_samples", sampling[0].num_samples if sampling else 300)
        it = overrides.get("iterations", sampling[0].iterations if sampling else 10)
        ref_fns = {"pytorch-mppi MPPI": pytorch_mppi_row(s, it), **torchrl_rows(s, it)}
        for label, fn in ref_fns.items():
            rows[label] = (f"{s} x {it}", score(fn, suite, seeds))
    n_inst = next(iter(rows.values()))[1]["n"]
    lines = [f"## {title}", "", f"{len(suite)} problems x B={suite[0].batch_size} envs x {seeds} seeds = "
             f"{n_inst} instances; ratio = cost / optimum (1.00 = optimal); gap = (cost - opt) / (mid-box cost - opt)",
             "", "| planner | samples x iters | median ratio | worst ratio | worst on | within 10% | median gap "
             "| worst gap | wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for label, (budget, r) in rows.items():
        lines.append(f"| {label} | {budget} | {r['median']:.4f} | {r['worst']:.3f} | {r['worst_problem']} | "
                     f"{r['within']}/{r['n']} | {r['median_gap']:.2e} | {r['worst_gap']:.2e} | {r['wall']:.1f} |")
    labels = list(rows)
    lines += ["", "worst ratio per problem:", "", "| problem | " + " | ".join(labels) + " |",
              "|---" * (len(labels) + 1) + "|"]
    for problem in suite:
        cells = [f"{rows[lab][1]['per_problem'][problem.name]:.3f}" for lab in labels]
        lines.append(f"| {problem.name} | " + " | ".join(cells) + " |")
    return lines + [""]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the QUICK subset of problems (planners/problems.py)")
    p.add_argument("--seeds", type=positive_int, default=3, help="planner seeds per problem")
    p.add_argument("--batch", type=positive_int, default=4, help="environments per problem (B)")
    p.add_argument("--configs", default="", help="comma-separated config names (default: all yamls)")
    p.add_argument("--no-refs", action="store_true", help="skip pytorch-mppi and torchrl references")
    p.add_argument("--no-small", action="store_true", help="skip the 64 x 5 (main job budget) section")
    p.add_argument("--out", default="", help="also write the markdown tables to this file")
    args = p.parse_args(argv)
    known = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))
    unknown = [c for c in args.configs.split(",") if c and c not in known]
    if unknown:
        p.error(f"--configs: no planner config {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    return args


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Run both sections and print (and optionally write) the markdown tables."""
    args = parse_args(argv)
    configs = load_configs([c for c in args.configs.split(",") if c] or None)
    suite = planning_suite(quick=args.quick, batch=args.batch)
    lines = [f"# Planner quality (torch {torch.__version__}, {torch.get_num_threads()} threads)", ""]
    lines += section("Default yaml budgets (target: worst ratio <= 1.10)", configs, suite, args.seeds, {},
                     not args.no_refs)
    if not args.no_small:
        lines += section("Main-job budget 64 x 5 (num_samples 64, iterations 5; no target)", configs, suite,
                         args.seeds, SMALL, not args.no_refs)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
