"""Does a world model's latent goal cost rank candidate plans as the task does? The planner's view of model error.

A sampling planner only ever compares candidates: what it needs from the world model is that the candidate with
the lowest imagined cost is one that truly ends near the goal. Open-loop latent L1 does not measure that (a lower
one planned worse on Push, docs/results.md). This diagnostic scores the *same* candidate action sequences three
ways, from held-out protocol starts (a dataset frame, the goal image ``offset`` env steps later):

    task       the env's task distance after simulating each candidate in the true physics (what should be minimised)
    rendered   the latent goal cost of the simulated final frames, encoded: the representation with a perfect predictor
    predicted  the latent goal cost of the world model's imagined final latents: what the planner minimises

and reports, per start and then averaged, the Spearman rank correlation of each pair over the candidates, the
task distance of the candidate each cost would pick, and the spread ratio: how much the imagined cost varies over
the candidates against how much the rendered cost does (std over candidates, predicted / rendered; near 0 = the
predictor imagines the same outcome whatever the plan, so no ranking of its can be right). ``rendered vs task``
isolates the representation, ``predicted vs rendered`` the predictor, ``predicted vs task`` both.

Candidates per start: copies of the dataset's own actions (which reached the goal image) perturbed with Gaussian
noise at several scales of the action range, and uniform random sequences: from "nearly reaches the goal" to
"unrelated", as a planner's samples span. The dataset's actions themselves are replayed once as a check (they must
reach the goal state) but are not a candidate: their rendered frame *is* the goal image, which no planner samples.
Beside the rank correlations over all candidates (``all``; random ones are easy to tell apart) it reports them over
the quarter of candidates nearest the goal in task distance (``near``: the fine distinctions CEM's later iterations
make), and the mean task distance of the elites each cost would keep (its lowest-cost eighth, CEM's elite share).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodel.eval.episodes import EnvBatch, EpisodeSpec, dataset_episode_specs
from worldmodel.planning.dynamics import LatentDynamics, RenderedDynamics, SimulatorDynamics
from worldmodel.planning.horizon import trained_horizon
from worldmodel.planning.objective import LatentDistance, Objective, Target, TaskDistance, cost_function

PAIRS = (("predicted", "task"), ("rendered", "task"), ("predicted", "rendered"))
"""The rank correlations reported: (cost a, cost b)."""


@dataclass(frozen=True)
class FidelityConfig:
    """What the diagnostic samples (held-out protocol starts and candidate plans)."""

    episodes: int = 48
    """protocol starts (held-out dataset frames), each with its goal image ``offset`` env steps later"""
    offset: int = 25
    """env steps from start to goal, scored as one plan: set it to the plan's reach (planner.horizon x frameskip;
    Push's preset: 5 x 5), within the predictor's trained horizon"""
    samples: int = 64
    """candidate action sequences per start"""
    noise: tuple[float, ...] = (0.1, 0.3, 1.0)
    """scales of the Gaussian noise added to the dataset's actions, as fractions of the half action range"""
    random_fraction: float = 0.25
    """share of candidates drawn uniformly from the action box"""
    seed: int = 0
    """seed of the starts (the benchmark's episode seed) and of the candidates"""
    num_envs: int = 8
    """environments reset together (one renderer each)"""
    split: str = "val"
    """dataset split the starts come from"""

    def __post_init__(self) -> None:
        if self.samples < 8:
            raise ValueError(f"samples={self.samples}: rank correlations need at least 8 candidates per start")
        if not 0.0 <= self.random_fraction < 1.0:
            raise ValueError(f"random_fraction={self.random_fraction} must be in [0, 1)")
        if not self.noise or min(self.noise) <= 0:
            raise ValueError(f"noise={self.noise} must list positive scales")


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman correlation of each row: (B, S), (B, S) -> (B,) (ties broken by order; costs are continuous)."""
    ra = a.argsort(-1).argsort(-1).to(torch.float64)  # (B, S) ranks
    rb = b.argsort(-1).argsort(-1).to(torch.float64)
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1)).clamp_min(1e-12)


def candidate_actions(
    demo: np.ndarray, low: np.ndarray, high: np.ndarray, cfg: FidelityConfig, rng: np.random.Generator
) -> np.ndarray:
    """(B, T, A) demonstrated env actions -> (B, S, T, A) candidates: noisy demos, then uniform samples."""
    b, t, a = demo.shape
    n_rand = int(round(cfg.random_fraction * cfg.samples))
    n_noisy = cfg.samples - n_rand
    half = (high - low) / 2.0  # (A,)
    scales = np.resize(np.asarray(cfg.noise, dtype=np.float64), n_noisy)  # (S_noisy,) cycling through the scales
    noise = rng.standard_normal((b, n_noisy, t, a)) * scales[None, :, None, None] * half  # (B, S_noisy, T, A)
    noisy = demo[:, None] + noise  # (B, S_noisy, T, A)
    uniform = rng.uniform(low, high, size=(b, n_rand, t, a))  # (B, S_rand, T, A)
    cands = np.concatenate([noisy, uniform], axis=1)  # (B, S, T, A)
    return np.clip(cands, low, high).astype(np.float32)


def demo_actions(data_path: str, specs: Sequence[EpisodeSpec], offset: int) -> np.ndarray:
    """(B, offset, A) the dataset's actions from each spec's start frame to its goal frame."""
    from worldmodel.data.reader import TrajectoryFile

    tf = TrajectoryFile(data_path)
    try:
        rows = []
        for spec in specs:
            _, ep, t0 = spec.source.split(":")
            g = int(tf.episode_starts[int(ep)]) + int(t0)
            rows.append(np.asarray(tf.read("actions", g, g + offset), dtype=np.float64))  # (offset, A)
    finally:
        tf.close()
    return np.stack(rows)


def _score_batch(
    wm: Any, batch: EnvBatch, cands: np.ndarray, demo: np.ndarray, sim: Any
) -> tuple[dict[str, Tensor], np.ndarray, np.ndarray]:
    """Costs (B, S) of candidates (B, S, T, A_env) under the task, rendered and predicted scorings; success (B, S)
    of each candidate and (B,) of the replayed demonstration (B, T, A_env)."""
    base: Any = batch.base[0]
    b, s, t, a = cands.shape
    fs = int(wm.frameskip)
    states, goals = batch.states(), batch.goal_states()  # (B, Ds) each
    env_acts = torch.from_numpy(np.concatenate([cands, demo[:, None].astype(np.float32)], axis=1))  # (B, S+1, T, A)
    macro = env_acts[:, :s].reshape(b, s, t // fs, fs * a)  # (B, S, H, fs*A): k env actions per planner step
    pixels = torch.from_numpy(np.ascontiguousarray(batch.pixels)).permute(0, 3, 1, 2)  # (B, 3, H, W)
    goal_px = torch.from_numpy(np.ascontiguousarray(batch.goal_pixels())).permute(0, 3, 1, 2)
    proprio = torch.from_numpy(np.asarray(batch.proprio, dtype=np.float32))  # (B, P)
    obs = wm.encode(pixels, proprio)
    goal = Target(latents=wm.encode(goal_px)["latents"])  # (B, N, D)
    latent = Objective([(1.0, LatentDistance("l1", "last"))])
    prop = obs["proprio"][:, None] if obs["proprio"] is not None else None  # (B, 1, P)

    def encode(frames: Tensor) -> Tensor:  # (M, 3, H, W) uint8 -> (M, N, D)
        return wm.encode(frames)["latents"]

    with torch.no_grad():
        sim_rollout = SimulatorDynamics(sim, states)(env_acts)  # states (B, S+1, T, Ds)
        task = TaskDistance(base.goal_distance, "last")(sim_rollout, Target(states=goals))[:, :s]  # (B, S)
        rendered = cost_function(RenderedDynamics(sim, states, base.render_state, encode, fs), latent, goal)(macro)
        predicted = cost_function(LatentDynamics(wm, obs["latents"][:, None], prop), latent, goal)(macro)
    final = sim_rollout.states[:, :, -1]  # (B, S+1, Ds)
    success = np.stack([base.is_success(final[i], goals[i]) for i in range(b)]).astype(bool)  # (B, S+1)
    costs = {"task": task.cpu(), "rendered": rendered.cpu(), "predicted": predicted.cpu()}
    return costs, success[:, :s], success[:, s]


def _stat(x: np.ndarray) -> dict[str, float]:
    """Mean over starts and the half-width of its normal 95% interval."""
    x = np.asarray(x, dtype=np.float64)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return {"mean": float(x.mean()), "ci95": float(half)}


def _summarise(costs: dict[str, Tensor], success: np.ndarray) -> dict[str, Any]:
    """Rank correlations (all candidates, and the quarter nearest the goal) and what each cost would pick."""
    b, s = success.shape
    out: dict[str, Any] = {"starts": b, "candidates": s}
    near = costs["task"].topk(max(4, s // 4), dim=-1, largest=False).indices  # (B, S/4) nearest in task distance
    for a, c in PAIRS:
        out[f"spearman_{a}_vs_{c}"] = _stat(rank_correlation(costs[a], costs[c]).numpy())
        sub_a, sub_c = costs[a].gather(-1, near), costs[c].gather(-1, near)  # (B, S/4)
        out[f"spearman_near_{a}_vs_{c}"] = _stat(rank_correlation(sub_a, sub_c).numpy())
    for key, idx in (("spread_ratio", None), ("spread_ratio_near", near)):
        pred = costs["predicted"] if idx is None else costs["predicted"].gather(-1, idx)  # (B, S) or (B, S/4)
        ren = costs["rendered"] if idx is None else costs["rendered"].gather(-1, idx)
        out[key] = _stat((pred.std(-1) / ren.std(-1).clamp_min(1e-12)).numpy())
    task = costs["task"].numpy()  # (B, S)
    rows = np.arange(b)
    elite = max(1, s // 8)
    for name in ("predicted", "rendered", "task"):
        pick = costs[name].argmin(-1).numpy()  # (B,)
        kept = costs[name].topk(elite, dim=-1, largest=False).indices.numpy()  # (B, S/8)
        out[f"pick_{name}"] = {
            "task_distance": _stat(task[rows, pick]),
            "success": float(success[rows, pick].mean()),
            "elite_task_distance": _stat(np.take_along_axis(task, kept, -1).mean(-1)),
        }
    out["any_candidate_success"] = float(success.any(-1).mean())
    return out


def cost_fidelity(wm: Any, data_path: str, env_id: str, env_kwargs: dict[str, Any], cfg: FidelityConfig) -> dict:
    """Score ``cfg.samples`` candidates from ``cfg.episodes`` held-out protocol starts three ways (module doc)."""
    fs = int(wm.frameskip)
    if cfg.offset % fs:
        raise ValueError(f"offset={cfg.offset} env steps is not a whole number of planner steps (frameskip {fs})")
    trained = trained_horizon(getattr(wm, "meta", None))
    if trained is not None and cfg.offset // fs > trained:
        raise ValueError(
            f"offset={cfg.offset} env steps is {cfg.offset // fs} predictor steps at frameskip {fs}, but this world "
            f"model was trained at most {trained} steps ahead; lower the offset to <= {trained * fs} (score the "
            "plan's reach, planner.horizon x frameskip)"
        )
    specs = dataset_episode_specs(data_path, cfg.episodes, cfg.offset, cfg.seed, cfg.split)
    demo = demo_actions(data_path, specs, cfg.offset).astype(np.float32)  # (E, T, A)
    rng = np.random.default_rng([int(cfg.seed), 31337])
    batch = EnvBatch(env_id, env_kwargs, min(cfg.num_envs, len(specs)))
    parts: dict[str, list[Any]] = {"task": [], "rendered": [], "predicted": [], "success": [], "demo": []}
    try:
        sim = batch.base[0].batch_simulator()
        cands = candidate_actions(demo, batch.action_low, batch.action_high, cfg, rng)  # (E, S, T, A)
        for i in range(0, len(specs), batch.num_envs):
            chunk = specs[i : i + batch.num_envs]
            n, pad = len(chunk), batch.num_envs - len(chunk)
            batch.reset(chunk)
            part, dpart = cands[i : i + n], demo[i : i + n]
            if pad:  # the spare envs repeat the last start (EnvBatch.reset); their rows are dropped below
                part = np.concatenate([part, np.repeat(part[-1:], pad, axis=0)])
                dpart = np.concatenate([dpart, np.repeat(dpart[-1:], pad, axis=0)])
            costs, success, demo_ok = _score_batch(wm, batch, part, dpart, sim)
            for k, v in costs.items():
                parts[k].append(v[:n])
            parts["success"].append(success[:n])
            parts["demo"].append(demo_ok[:n])
    finally:
        batch.close()
    costs = {k: torch.cat(parts[k]) for k in ("task", "rendered", "predicted")}
    out = _summarise(costs, np.concatenate(parts["success"]))
    out["demo_replay_success"] = float(np.concatenate(parts["demo"]).mean())
    out["config"] = asdict(cfg)
    return out


def format_fidelity(results: dict[str, dict[str, Any]]) -> str:
    """A markdown table, one row per world model: means over starts (their 95% half-widths are in the JSON)."""
    head = (
        "| world model | predicted vs task: all / near | rendered vs task: all / near | predicted vs rendered: "
        "all / near | spread ratio: all / near | elite task distance: predicted / rendered / task | picked by "
        "predicted: success, task distance | picked by rendered | best candidate |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for name, r in results.items():
        cells = [
            f"{r[f'spearman_{a}_vs_{c}']['mean']:.2f} / {r[f'spearman_near_{a}_vs_{c}']['mean']:.2f}" for a, c in PAIRS
        ]
        cells.append(f"{r['spread_ratio']['mean']:.2f} / {r['spread_ratio_near']['mean']:.2f}")
        cells.append(" / ".join(f"{r[f'pick_{k}']['elite_task_distance']['mean']:.3f}"
                                for k in ("predicted", "rendered", "task")))
        cells += [f"{r[k]['success']:.0%}, {r[k]['task_distance']['mean']:.3f}"
                  for k in ("pick_predicted", "pick_rendered", "pick_task")]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"
