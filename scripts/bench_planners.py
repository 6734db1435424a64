"""Plan-latency benchmark: batched KV-cached planning vs a per-env, uncached, host-syncing loop and torchrl.

Problem: a random-weight ActionConditionedPredictor (latency does not depend on training), T0 history
latents per env, a goal latent, L1 goal cost on the predicted latents (all steps or the final one).
Rows:
  ours        planners.CEMPlanner (or MPPI) over all B envs at once; cost = predictor.rollout with the KV
              cache, the history prefix shared by an env's samples, row chunking on CPU, a CUDA graph on GPU.
  ref (a)     what DINO-WM / stable-worldmodel planners do by default: a Python loop over envs, CEM whose
              cost re-runs the model over the whole prefix at each imagined step (no cache) and an `.item()`
              host sync every iteration. Same samples x iterations x horizon and elites as ours.
  torchrl (b) torchrl.modules.planners CEMPlanner / MPPIPlanner over a fixed-size ModelBasedEnvBase wrapper
              (state = fixed window of T0+H-1 frames; every env step runs the predictor over the window).
Usage: python scripts/bench_planners.py [--quick] [--device cuda] [--gpu-target]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from planners.cem import CEMPlanner
from planners.cuda_graph import GraphedCost
from planners.icem import ICEMPlanner
from planners.mppi import MPPIPlanner
from scripts.common import ArgumentParser, non_negative_int, positive_int, positive_int_list, user_errors_exit
from worldmodel.models.predictor import ActionConditionedPredictor

_TRL_ENV: list[object] = []  # last torchrl env built (used by the equivalence check)
MPPI_TEMPERATURE = 0.05  # lambda of our MPPI; torchrl gets 1/lambda (it multiplies, no max-subtraction)


@dataclass(frozen=True)
class Problem:
    """Planning inputs for B envs: history (B, T0, N, D), past actions (B, T0-1, A), goal (B, N, D)."""

    history: Tensor
    action_history: Tensor
    goal: Tensor


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line settings (see --help); presets --quick and --gpu-target override sizes."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quick", action="store_true", help="reduced run: smaller budget, 1 repeat")
    p.add_argument("--gpu-target", action="store_true", help="~15M-param model, 300x30x5 (GPU target)")
    p.add_argument("--width", type=positive_int, default=192)
    p.add_argument("--depth", type=positive_int, default=6)
    p.add_argument("--heads", type=positive_int, default=6)
    p.add_argument("--latent-dim", type=positive_int, default=64)
    p.add_argument("--tokens", type=positive_int, default=1, help="latent tokens per frame N")
    p.add_argument("--action-dim", type=positive_int, default=2)
    p.add_argument("--history", type=positive_int, default=3, help="T0 context frames (DINO-WM default num_hist=3)")
    p.add_argument("--samples", type=positive_int, default=300)
    p.add_argument("--iterations", type=positive_int, default=10)
    p.add_argument("--horizon", type=positive_int, default=5)
    p.add_argument("--elites", type=positive_int, default=30)
    p.add_argument("--envs", default="1,16", help="comma-separated env counts B")
    p.add_argument("--cost", choices=["all", "final"], default="all", help="L1 on all or the final latent")
    p.add_argument("--chunk-size", type=int, default=-1, help="rows per chunk (-1: 300 CPU, none GPU)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed plans per row (median reported)")
    p.add_argument("--ref-envs", type=non_negative_int, default=0,
                   help="time the per-env reference on this many envs and scale linearly (0 = all)")
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch intra-op threads (0 = leave default)")
    p.add_argument("--no-graph", action="store_true", help="GPU: do not CUDA-graph our cost function")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True, help="GPU: TF32 matmuls")
    p.add_argument("--bf16", action="store_true", help="GPU: bfloat16 predictor weights (ours and reference)")
    p.add_argument("--compile", action="store_true", help="GPU: torch.compile our CEM/MPPI cost")
    p.add_argument("--profile", action="store_true", help="GPU: print the top CUDA kernels of one plan")
    p.add_argument("--skip-torchrl", action="store_true")
    p.add_argument("--skip-reference", action="store_true")
    args = p.parse_args(argv)
    if args.gpu_target:
        args.width, args.depth, args.heads, args.iterations = 384, 8, 6, 30
    if args.quick:
        args.repeats = 1
        args.samples, args.iterations = min(args.samples, 100), min(args.iterations, 4)
        args.elites = min(args.elites, 10)
        if args.device == "cpu" and args.ref_envs == 0:
            args.ref_envs = 2
    check_args(p, args)
    return args


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse settings the benchmark cannot run with (one ``error:`` line, exit status 2)."""
    try:
        positive_int_list(args.envs)
    except argparse.ArgumentTypeError as exc:
        p.error(f"argument --envs: {exc}")
    if not (args.device == "cpu" or args.device == "cuda" or args.device.startswith("cuda:")):
        p.error(f"argument --device: expected cpu, cuda or cuda:N, got {args.device!r}")
    if args.device != "cpu" and not torch.cuda.is_available():
        p.error(f"argument --device {args.device}: no CUDA device here; use --device cpu")
    if args.width % args.heads:
        p.error(f"--width {args.width} must be divisible by --heads {args.heads}")
    if args.elites > args.samples:
        p.error(f"--elites {args.elites} must not exceed --samples {args.samples}")


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are real (timing only, never inside planning)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of `fn` over `repeats` runs after one warm-up run.

    On a shared CPU the process time is the steadier measure of work; on GPU read the wall time.
    """
    fn()
    sync(device)
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def make_problem(args: argparse.Namespace, b: int, device: torch.device, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> Problem:
    """Random history latents, past actions and goal latents for B envs (model inputs in `dtype`)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    hist = torch.randn(b, args.history, args.tokens, args.latent_dim, generator=g)
    acts = torch.rand(b, args.history - 1, args.action_dim, generator=g) * 2 - 1
    goal = torch.randn(b, args.tokens, args.latent_dim, generator=g)
    return Problem(hist.to(device, dtype), acts.to(device, dtype), goal.to(device))


def l1_cost(latents: Tensor, goal: Tensor, mode: str) -> Tensor:
    """L1 distance of predicted latents (..., H, N, D) to goal (..., N, D), summed over H (all) or last."""
    diff = (latents - goal.unsqueeze(-3)).abs().mean(dim=(-2, -1))  # (..., H)
    return diff.sum(dim=-1) if mode == "all" else diff[..., -1]


# ---- ours ------------------------------------------------------------------------------------------------
def our_cost(model: ActionConditionedPredictor, prob: Problem, mode: str, chunk: int | None
             ) -> Callable[[Tensor], Tensor]:
    """Batched cost (B, S, H, A) -> (B, S): one cached rollout for all envs and samples."""

    def cost(actions: Tensor) -> Tensor:
        lat, _ = model.rollout(prob.history, actions.to(prob.history.dtype),
                               action_history=prob.action_history, chunk_size=chunk)
        return l1_cost(lat.float(), prob.goal[:, None], mode)  # lat (B, S, H, N, D)

    return cost


# ---- reference (a): per-env loop, uncached rollouts, host sync every iteration --------------------------
def reference_plan(model: ActionConditionedPredictor, prob: Problem, args: argparse.Namespace, n_envs: int,
                   gen: torch.Generator) -> list[float]:
    """Plan envs one at a time with CEM, re-running the full prefix per imagined step, `.item()` per iter."""
    device = prob.history.device
    s, h, a, k = args.samples, args.horizon, args.action_dim, args.elites
    best_costs = []
    for e in range(n_envs):
        mean = torch.zeros(h, a, device=device)
        std = torch.ones(h, a, device=device) * 0.5
        hist = prob.history[e : e + 1].expand(s, -1, -1, -1)  # (S, T0, N, D)
        ah = prob.action_history[e : e + 1].expand(s, -1, -1)  # (S, T0-1, A)
        best = float("inf")
        for _ in range(args.iterations):
            acts = (mean + std * torch.randn(s, h, a, generator=gen, device=device)).clamp(-1, 1)  # (S, H, A)
            lat, _ = model.rollout(hist, acts.to(hist.dtype), action_history=ah, use_cache=False)  # (S,H,N,D)
            costs = l1_cost(lat.float(), prob.goal[e : e + 1], args.cost)  # (S,)
            elite_costs, idx = costs.topk(k, largest=False)
            elites = acts[idx]  # (K, H, A)
            mean, std = elites.mean(0), elites.std(0)
            best = min(best, elite_costs[0].item())  # host sync: reference planners log every iteration
        best_costs.append(best)
    return best_costs


# ---- torchrl (b) -------------------------------------------------------------------------------------------
class _WindowStep(nn.Module):
    """One imagined step on a fixed window: write the action at frame t, run the predictor on the window."""

    def __init__(self, model: ActionConditionedPredictor, window: int, last: int, mode: str) -> None:
        """Keep the predictor, the window length F and the index of the final imagined input frame."""
        super().__init__()
        self.model, self.window, self.last, self.mode = model, window, last, mode

    def forward(self, latents: Tensor, acts: Tensor, t: Tensor, goal: Tensor, action: Tensor
                ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """latents (..., F, N, D), acts (..., F, A), t (..., 1) → next state and reward (..., 1)."""
        lead = latents.shape[:-3]
        f, n, d = latents.shape[-3:]
        frame = torch.arange(f, device=latents.device)  # (F,)
        here = frame == t  # (..., F) one-hot of the current frame
        acts = torch.where(here[..., None], action[..., None, :], acts)  # (..., F, A)
        flat_acts = acts.reshape(-1, f, acts.shape[-1])  # (R, F, A)
        pred, _ = self.model(latents.reshape(-1, f, n, d), flat_acts)  # (R, F, N, D)
        idx = t.reshape(-1, 1, 1, 1).expand(-1, 1, n, d)
        z_next = pred.gather(1, idx).reshape(*lead, n, d)  # (..., N, D)
        nxt = frame == t + 1  # (..., F)
        latents = torch.where(nxt[..., None, None], z_next[..., None, :, :], latents)
        dist = (z_next - goal).abs().mean(dim=(-2, -1))[..., None]  # (..., 1)
        reward = -dist if self.mode == "all" else torch.where(t == self.last, -dist, torch.zeros_like(dist))
        return latents, acts, t + 1, goal, reward


class _ReturnToGo(nn.Module):
    """MPPI advantage for torchrl: return-to-go of the (negative goal-distance) rewards along the horizon."""

    def forward(self, td):  # noqa: ANN001, ANN201 - tensordict in/out, as torchrl calls it
        """Write "advantage" (..., S, H, 1) = reversed cumulative reward sum."""
        r = td.get(("next", "reward"))  # (B, S, H, 1)
        td.set("advantage", r.flip(-2).cumsum(-2).flip(-2))
        return td


def make_torchrl(model: ActionConditionedPredictor, args: argparse.Namespace, device: torch.device):  # noqa: ANN201
    """Build the fixed-window ModelBasedEnvBase and torchrl's CEM and MPPI planners on it."""
    from tensordict import TensorDict
    from tensordict.nn import TensorDictModule
    from torchrl.data import Bounded, Composite, Unbounded
    from torchrl.envs.model_based import ModelBasedEnvBase
    from torchrl.modules.planners import CEMPlanner as TRLCEM
    from torchrl.modules.planners import MPPIPlanner as TRLMPPI

    window = args.history + args.horizon - 1
    step = _WindowStep(model, window, window - 1, args.cost)
    world = TensorDictModule(step, in_keys=["latents", "acts", "t", "goal", "action"],
                             out_keys=["latents", "acts", "t", "goal", "reward"])
    n, d, a = args.tokens, args.latent_dim, args.action_dim

    class PredictorEnv(ModelBasedEnvBase):
        """Fixed-size model-based env around the predictor (torchrl needs fixed state shapes)."""

        def __init__(self) -> None:
            super().__init__(world, device=device)
            obs = Composite(latents=Unbounded((window, n, d)), acts=Unbounded((window, a)),
                            t=Unbounded((1,), dtype=torch.int64), goal=Unbounded((n, d)))
            self.observation_spec = obs
            self.state_spec = obs.clone()
            self.action_spec = Bounded(-torch.ones(a), torch.ones(a), shape=(a,))
            self.reward_spec = Unbounded((1,))

        def _reset(self, tensordict: TensorDict, **kwargs: object) -> TensorDict:
            return tensordict

    env = PredictorEnv()
    _TRL_ENV[:] = [env]
    cem = TRLCEM(env, args.horizon, args.iterations, args.samples, args.elites)
    mppi = TRLMPPI(env, _ReturnToGo(), temperature=1.0 / MPPI_TEMPERATURE, planning_horizon=args.horizon,
                   optim_steps=args.iterations, num_candidates=args.samples, top_k=args.elites)

    def state(prob: Problem) -> TensorDict:
        b = prob.history.shape[0]
        lat = torch.zeros(b, window, n, d, device=device)
        lat[:, : args.history] = prob.history
        acts = torch.zeros(b, window, a, device=device)
        acts[:, : args.history - 1] = prob.action_history
        t = torch.full((b, 1), args.history - 1, dtype=torch.int64, device=device)
        fields = {"latents": lat, "acts": acts, "t": t, "goal": prob.goal}
        return TensorDict(fields, batch_size=[b], device=device)

    return cem, mppi, state



def _call_fresh(planner: nn.Module, td: object) -> object:
    """Call a torchrl planner on a fresh copy of the initial state tensordict."""
    return planner(td.clone())  # type: ignore[attr-defined]


class _ActionFeeder:
    """torchrl policy that sets a precomputed action sequence (..., H, A) one step per call."""

    def __init__(self, actions: Tensor) -> None:
        """Keep the actions and start at step 0."""
        self.actions, self.step = actions, 0

    def __call__(self, td):  # noqa: ANN001, ANN204 - tensordict in/out, as torchrl calls it
        """Write this step's action into the tensordict."""
        td.set("action", self.actions[..., self.step, :])
        self.step += 1
        return td


def check_equivalence(model: ActionConditionedPredictor, args: argparse.Namespace, device: torch.device,
                      with_torchrl: bool, dtype: torch.dtype = torch.float32) -> None:
    """All three rows must score the same action sequences identically: cached, uncached and torchrl env."""
    prob = make_problem(args, 2, device, seed=1, dtype=dtype)
    g = torch.Generator(device="cpu").manual_seed(1)
    acts = torch.rand(2, 3, args.horizon, args.action_dim, generator=g) * 2 - 1  # (B, S, H, A)
    acts = acts.to(device, dtype)
    lat, _ = model.rollout(prob.history, acts, action_history=prob.action_history)  # (B, S, H, N, D)
    per_step = (lat.float() - prob.goal[:, None, None]).abs().mean(dim=(-2, -1))  # (B, S, H)
    ref, _ = model.rollout(prob.history.repeat_interleave(3, 0), acts.reshape(6, args.horizon, -1),
                           action_history=prob.action_history.repeat_interleave(3, 0), use_cache=False)
    ref_goal = prob.goal.repeat_interleave(3, 0)[:, None]  # (B*S, 1, N, D)
    ref_step = (ref.float() - ref_goal).abs().mean(dim=(-2, -1)).reshape(2, 3, -1)  # (B, S, H)
    msg = f"equivalence: cached vs uncached per-step L1 max diff {(per_step - ref_step).abs().max():.2e}"
    if with_torchrl:
        _, _, state = make_torchrl(model, args, device)
        env = _TRL_ENV[0]
        td = state(prob).unsqueeze(-1).expand(2, 3).clone()
        out = env.rollout(args.horizon, _ActionFeeder(acts), auto_reset=False, tensordict=td,
                          break_when_any_done=False)
        trl_step = -out.get(("next", "reward"))[..., 0]  # (B, S, H)
        if args.cost == "all":
            msg += f"; vs torchrl env {(per_step - trl_step).abs().max():.2e}"
    print(msg)


def profile_plan(planner: CEMPlanner, cost: Callable[[Tensor], Tensor], b: int) -> None:
    """Print the CUDA kernels that dominate one plan call (where the GPU time goes)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        planner.plan(cost, b)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=12, max_name_column_width=60))


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Run the benchmark rows for each B and print latencies and ratios."""
    args = parse_args(argv)
    if not args.skip_torchrl:
        try:
            import torchrl  # noqa: F401
        except ImportError:
            print("torchrl not importable here: torchrl rows skipped")
            args.skip_torchrl = True
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high" if args.tf32 else "highest")
    chunk = (300 if device.type == "cpu" else None) if args.chunk_size < 0 else (args.chunk_size or None)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if cuda and args.bf16 else torch.float32
    model = ActionConditionedPredictor(args.latent_dim, args.action_dim, num_tokens=args.tokens,
                                       width=args.width, depth=args.depth, heads=args.heads,
                                       max_frames=max(16, args.history + args.horizon))
    model = model.to(device, dtype).eval()
    n_params = sum(p.numel() for p in model.parameters())
    envs = [int(x) for x in args.envs.split(",")]
    name = torch.cuda.get_device_name(device) if cuda else f"cpu x{torch.get_num_threads()} threads"
    print(f"device: {name} | torch {torch.__version__}")
    print(f"predictor: width {args.width} depth {args.depth} heads {args.heads} tokens/frame {args.tokens} "
          f"latent {args.latent_dim} params {n_params / 1e6:.2f}M | history T0={args.history}")
    print(f"budget: {args.samples} samples x {args.iterations} iterations x horizon {args.horizon}, "
          f"{args.elites} elites, cost L1 ({args.cost}) | chunk {chunk} | repeats {args.repeats} "
          f"| graph {cuda and not args.no_graph} | tf32 {cuda and args.tf32} | bf16 {cuda and args.bf16} "
          f"| compile {cuda and args.compile}")
    low, high = -torch.ones(args.action_dim, device=device), torch.ones(args.action_dim, device=device)
    results: dict[tuple[str, int], tuple[float, float]] = {}
    with torch.inference_mode():
        check_equivalence(model, args, device, not args.skip_torchrl, dtype)
        for b in envs:
            prob = make_problem(args, b, device, dtype=dtype)
            eager_cost = our_cost(model, prob, args.cost, chunk)
            cost = GraphedCost(eager_cost) if cuda and not args.no_graph else eager_cost
            fast = cost
            if cuda and args.compile:  # one fixed shape for CEM/MPPI; iCEM's shrinking population stays eager
                compiled = torch.compile(eager_cost, fullgraph=True, dynamic=False)
                fast = compiled if args.no_graph else GraphedCost(compiled)
            if cuda and not args.no_graph:  # transparency: the same planner without the CUDA graph
                eager = CEMPlanner(low, high, args.horizon, args.samples, args.iterations, args.elites)
                run_eager = partial(eager.plan, eager_cost, b)
                results[("ours CEM (eager, no CUDA graph)", b)] = timed(run_eager, device, args.repeats)
            planners = {
                "ours CEM": CEMPlanner(low, high, args.horizon, args.samples, args.iterations, args.elites),
                "ours MPPI": MPPIPlanner(low, high, args.horizon, args.samples, args.iterations,
                                         temperature=MPPI_TEMPERATURE, noise_scale=0.5),
                "ours iCEM (decaying population; fewer samples)": ICEMPlanner(
                    low, high, args.horizon, args.samples, args.iterations, args.elites),
            }
            for label, planner in planners.items():
                fn = cost if "iCEM" in label else fast
                results[(label, b)] = timed(partial(planner.plan, fn, b), device, args.repeats)
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("error")  # proves no host sync inside a plan call
                try:
                    planners["ours CEM"].plan(fast, b)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
                print(f"B={b}: ours CEM plan ran under cuda sync debug mode 'error' (no host sync detected)")
                if args.profile:
                    profile_plan(planners["ours CEM"], eager_cost, b)  # eager: kernels visible
            if not args.skip_reference:
                n_ref = b if args.ref_envs <= 0 else min(b, args.ref_envs)
                gen = torch.Generator(device=device).manual_seed(0)
                run_ref = partial(reference_plan, model, prob, args, n_ref, gen)
                wall, cpu = timed(run_ref, device, args.repeats)
                results[("ref (a) loop+uncached+sync", b)] = (wall * b / n_ref, cpu * b / n_ref)
                if n_ref < b:
                    print(f"  note: reference timed on {n_ref} of {b} envs, scaled x{b / n_ref:.1f} (linear)")
            if not args.skip_torchrl and b == 1:  # the torchrl comparison is at B=1
                trl_cem, trl_mppi, state = make_torchrl(model, args, device)
                td = state(prob)
                trl_rows = (("torchrl CEMPlanner (b)", trl_cem), ("torchrl MPPIPlanner (b)", trl_mppi))
                for label, trl in trl_rows:
                    results[(label, b)] = timed(partial(_call_fresh, trl, td), device, args.repeats)
    print(f"\n{'row':50s} {'B':>3s} {'wall ms/plan':>13s} {'cpu ms/plan':>12s} {'wall ms/env':>12s}")
    for (label, b), (wall, cpu) in results.items():
        print(f"{label:50s} {b:3d} {wall * 1e3:13.1f} {cpu * 1e3:12.1f} {wall * 1e3 / b:12.1f}")
    print("\nratios (wall; cpu-time in brackets), equal budget unless marked:")
    pairs = [("ours CEM", "ref (a) loop+uncached+sync", ""), ("ours CEM", "torchrl CEMPlanner (b)", ""),
             ("ours MPPI", "torchrl MPPIPlanner (b)", ""),
             ("ours iCEM (decaying population; fewer samples)", "ref (a) loop+uncached+sync",
              " (NOT equal budget: population decays)")]
    for b in envs:
        for mine, other, note in pairs:
            if (mine, b) in results and (other, b) in results:
                (w0, c0), (w1, c1) = results[(mine, b)], results[(other, b)]
                print(f"  B={b:<3d} {mine} vs {other}: {w1 / w0:.1f}x [{c1 / c0:.1f}x]{note}")

if __name__ == "__main__":
    main()
