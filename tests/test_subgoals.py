"""Waypoint-graph subgoals (worldmodel/eval/subgoals.py), the proprio goal cost and subgoal targets of the agents,
and the evaluate entry point with agent.subgoals enabled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_evaluate import ENV, ROOT, tiny_world_model

from planners.cem import CEMPlanner
from worldmodel.eval.agents import LatentPlanningAgent, OracleAgent
from worldmodel.eval.closed_loop import EvalSettings, run_closed_loop
from worldmodel.eval.episodes import EpisodeSpec, env_episode_specs
from worldmodel.eval.subgoals import SubgoalConfig, WaypointGraph, load_graph_frames
from worldmodel.planning import LatentDistance, LatentTargets, Objective, ProprioDistance, Rollout, Target

# Synthetic two-room arena [-1, 1]^2: a wall of half thickness WALL at x = 0, open where |y| < DOOR.
DOOR, WALL, STEP = 0.3, 0.05, 0.05


def _in_wall(p: np.ndarray) -> bool:
    return abs(p[0]) < WALL and abs(p[1]) >= DOOR


def random_walks(n_ep: int = 60, n_steps: int = 40, seed: int = 0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Random-walk episodes (steps of length STEP, reflected at the arena border, never entering the wall):
    features (M, 2), episodes (M,), times (M,). Every 4th episode starts in the door so the rooms are linked,
    every 10th (offset 2) next to the wall."""
    rng = np.random.default_rng(seed)
    pts, eps, times = [], [], []
    for e in range(n_ep):
        if e % 4 == 0:
            p = np.array([rng.uniform(-0.04, 0.04), rng.uniform(-0.25, 0.25)])
        elif e % 10 == 2:  # along the wall, where a careless neighbour link would cut through it
            p = np.array([rng.choice([-1, 1]) * rng.uniform(WALL, WALL + 0.03), rng.uniform(0.4, 0.9)])
            p[1] *= rng.choice([-1, 1])
        else:
            p = rng.uniform(-1, 1, 2)
            while _in_wall(p):
                p = rng.uniform(-1, 1, 2)
        for t in range(n_steps):
            pts.append(p.copy())
            eps.append(e)
            times.append(t)
            for _ in range(100):  # resample the direction until the step stays out of the wall
                a = rng.uniform(0, 2 * np.pi)
                q = p + STEP * np.array([np.cos(a), np.sin(a)])
                q = np.where(q > 1, 2 - q, np.where(q < -1, -2 - q, q))
                if not _in_wall(q):
                    p = q
                    break
    return torch.tensor(np.array(pts), dtype=torch.float32), np.array(eps), np.array(times)


@pytest.fixture(scope="module")
def two_rooms() -> tuple[torch.Tensor, WaypointGraph]:
    """The synthetic two-room features and their Euclidean waypoint graph."""
    x, eps, times = random_walks()
    return x, WaypointGraph(x, eps, times, "euclidean", neighbors=8, link_quantile=0.5)


def graph_path(graph: WaypointGraph, start: int, goal: int) -> list[int]:
    """Node sequence of the shortest path start -> goal, following graph.pred[goal, cur]."""
    path = [start]
    while path[-1] != goal:
        nxt = int(graph.pred[goal, path[-1]])
        assert nxt >= 0 and len(path) <= graph.num_nodes, "path walk broke off"
        path.append(nxt)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small collected TwoRoom dataset: 6 episodes of 25 frames at 32 px."""
    from worldmodel.data.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("data") / "d.h5"
    cfg = CollectConfig(
        env_id=ENV, out=str(out), episodes=6, episode_length=24, workers=1, env_kwargs={"image_size": 32}
    )
    return str(collect(cfg, progress=False))


def tiny_planner(wm: Any = None, samples: int = 8, horizon: int = 3) -> CEMPlanner:
    low, high = (wm.action_low, wm.action_high) if wm is not None else (-torch.ones(2), torch.ones(2))
    return CEMPlanner(low, high, horizon=horizon, num_samples=samples, iterations=2, num_elites=2)


def first_latents(z: torch.Tensor) -> torch.Tensor:
    """A fixed stand-in proprio readout: latents (..., N, D) -> their first 4 entries (..., 4)."""
    return z.flatten(-2)[..., :4]


# ----------------------------------------------------------------------------------------------- WaypointGraph


def test_subgoal_leads_through_the_door(two_rooms: tuple[torch.Tensor, WaypointGraph]) -> None:
    """Across the wall: not direct, on a shortest path through the door, the first node >= lookahead along it."""
    x, graph = two_rooms
    assert int(torch.isfinite(graph.dist).sum(1).max()) > 0.8 * graph.num_nodes  # one main component
    start_x, goal_x = torch.tensor([[-0.6, 0.8]]), torch.tensor([[0.6, 0.8]])
    lookahead = 8.0
    node, direct = graph.subgoal(start_x, goal_x, lookahead)
    assert node.shape == (1,) and direct.shape == (1,) and direct.dtype == torch.bool
    assert not bool(direct[0])
    s, g = int(graph.nearest(start_x)[0]), int(graph.nearest(goal_x)[0])
    assert bool(torch.isfinite(graph.dist[s, g]))  # both in the main component (a few stray walks are not)
    path = graph_path(graph, s, g)
    pts = x[path].numpy()  # (L, 2)
    # No hop may pass through the wall. No tolerance is needed: steps and neighbour links are <= STEP = WALL long,
    # so a hop across x = 0 has both ends inside the wall strip |x| < WALL, which the data only visits in the door.
    crossings = 0
    for p, q in zip(pts[:-1], pts[1:]):
        if (p[0] < 0) != (q[0] < 0):
            crossings += 1
            y0 = p[1] + (q[1] - p[1]) * (0 - p[0]) / (q[0] - p[0])
            assert abs(y0) < DOOR, f"hop {p} -> {q} crosses the wall at y={y0:.3f}"
    assert crossings >= 1  # it does reach the other room
    # It is a shortest path: every node on it splits the start-goal distance.
    d = graph.dist
    total = float(d[s, g])
    cum = d[s, torch.tensor(path)]  # (L,) path distance of each node from the start
    torch.testing.assert_close(cum + d[torch.tensor(path), g], torch.full_like(cum, total), rtol=1e-4, atol=1e-3)
    assert total > lookahead
    # The subgoal is the first node along the path whose distance from the start reaches the lookahead.
    idx = int(np.flatnonzero(cum.numpy() >= lookahead)[0])
    assert int(node[0]) == path[idx]
    assert float(d[s, node[0]]) >= lookahead and float(cum[idx - 1]) < lookahead
    # A straight line heads into the wall; the subgoal instead stays left and moves toward the door.
    sub = x[node[0]]
    door = torch.tensor([0.0, 0.0])
    assert sub[0] < 0 and (sub - door).norm() < (x[s] - door).norm()


def test_graph_distances_respect_the_wall(two_rooms: tuple[torch.Tensor, WaypointGraph]) -> None:
    """No graph path is shorter than the shortest wall-avoiding route: no edge (of any pair) cuts through the wall."""
    x, graph = two_rooms
    # Every edge covers at most STEP arena units per unit of weight (trajectory steps are <= STEP long and weigh
    # one step; neighbour edges weigh stride * d / link_distance with stride 1 and link_distance <= STEP), so a
    # path of weight w is at most w * STEP long, and must be at least as long as the best route through the door.
    assert graph.stride == 1.0 and graph.link_distance <= STEP + 1e-6
    p, q = x[:, None, :].double(), x[None, :, :].double()  # (M, 1, 2), (1, M, 2)
    cross = (p[..., 0] < 0) != (q[..., 0] < 0)  # (M, M) opposite sides of x = 0
    t = p[..., 0] / (p[..., 0] - q[..., 0]).where(cross, torch.ones_like(cross, dtype=torch.float64))
    y = (p[..., 1] + t * (q[..., 1] - p[..., 1])).clamp(-DOOR, DOOR)  # best crossing point within the door
    c = torch.stack([torch.zeros_like(y), y], dim=-1)
    via_door = (p - c).norm(dim=-1) + (c - q).norm(dim=-1)
    bound = torch.where(cross, via_door, (p - q).norm(dim=-1))  # (M, M) lower bound on any legal route
    # Tolerance: the graph's float32 torch.cdist (matrix-product form) errs by up to ~5e-4 per edge, and a path
    # sums a few of them; a cut through the wall saves at least a door detour (>= 0.1 for most wall points).
    reach = torch.isfinite(graph.dist)
    assert bool((graph.dist.double()[reach] * STEP >= bound[reach] - 2e-3).all())
    assert float(reach.double().mean()) > 0.6  # most pairs are connected, so the check covers them


def test_lookahead_beyond_the_path_aims_at_the_goal(two_rooms: tuple[torch.Tensor, WaypointGraph]) -> None:
    """With the goal within lookahead steps along the graph, `direct` is True; just beyond it, False."""
    _, graph = two_rooms
    start_x, goal_x = torch.tensor([[-0.6, 0.8]]), torch.tensor([[0.6, 0.8]])
    s, g = int(graph.nearest(start_x)[0]), int(graph.nearest(goal_x)[0])
    total = float(graph.dist[s, g])
    assert bool(graph.subgoal(start_x, goal_x, total + 1.0)[1][0])
    assert bool(graph.subgoal(start_x, goal_x, total)[1][0])  # within: <= lookahead
    before_goal = float(graph.dist[s, graph_path(graph, s, g)[-2]])
    node, direct = graph.subgoal(start_x, goal_x, (before_goal + total) / 2)  # reached only at the goal node
    assert not bool(direct[0]) and int(node[0]) == g


def test_batched_subgoals_match_one_by_one(two_rooms: tuple[torch.Tensor, WaypointGraph]) -> None:
    """Several agents in one call get the same subgoals and direct flags as each alone."""
    _, graph = two_rooms
    starts = torch.tensor([[-0.6, 0.8], [0.7, -0.7], [-0.5, -0.5], [0.2, 0.9], [-0.8, 0.0]])
    goals = torch.tensor([[0.6, 0.8], [-0.7, 0.6], [-0.45, -0.5], [0.8, -0.8], [0.9, 0.1]])
    node, direct = graph.subgoal(starts, goals, 6.0)
    assert node.shape == (5,) and direct.shape == (5,)
    assert bool(direct[2]) and not bool(direct[0])  # a mix of direct and routed agents
    for i in range(5):
        n1, d1 = graph.subgoal(starts[i : i + 1], goals[i : i + 1], 6.0)
        assert int(n1[0]) == int(node[i]) and bool(d1[0]) == bool(direct[i]), i


def test_unreachable_goal_falls_back_to_the_goal() -> None:
    """Two disconnected clusters: 2 components, a goal in the other one is `direct`; within one, exact steps."""
    rng = np.random.default_rng(1)
    walk = np.cumsum(rng.normal(0, 0.05, (40, 2)), axis=0)
    x = torch.tensor(np.concatenate([walk, walk + 10.0]), dtype=torch.float32)  # (80, 2)
    eps, times = np.repeat([0, 1], 40), np.tile(3 * np.arange(40), 2)  # nodes every 3rd env step
    graph = WaypointGraph(x, eps, times, "euclidean", neighbors=0)
    assert graph.num_components == 2 and graph.num_edges == 78
    node, direct = graph.subgoal(x[[0]], x[[70]], 5.0)  # goal in the other cluster
    assert bool(direct[0]) and not torch.isfinite(graph.dist[0, 70])
    node, direct = graph.subgoal(x[[0]], x[[30]], 5.0)  # same episode: trajectory edges weigh 3 steps each
    assert not bool(direct[0]) and int(node[0]) == 2 and float(graph.dist[0, 30]) == 90.0


def test_neighbour_links_only_below_a_transition() -> None:
    """Episodes farther apart than a transition stay unlinked; closer ones link with weight stride * d / link."""
    y = 0.4 + 0.05 * np.arange(11)
    eps, times = np.repeat([0, 1], 11), np.tile(2 * np.arange(11), 2)  # stride 2, transitions 0.05 long
    for gap, linked in ((0.12, False), (0.03, True)):  # 0.12: facing each other across a 0.1-thick wall
        x = torch.tensor(
            np.concatenate([np.stack([np.full(11, -0.06), y], 1), np.stack([np.full(11, -0.06 + gap), y], 1)]),
            dtype=torch.float32,
        )
        graph = WaypointGraph(x, eps, times, "euclidean", neighbors=8, link_quantile=0.5)
        assert graph.stride == 2.0 and graph.link_distance == pytest.approx(0.05, rel=1e-4)
        assert graph.num_components == (1 if linked else 2)
        assert float(graph.dist[0, 3]) == pytest.approx(6.0)  # three trajectory hops of 2 steps
        if linked:
            assert float(graph.dist[0, 11]) == pytest.approx(2 * 0.03 / 0.05, rel=1e-3)
            assert float(graph.dist[0, 14]) == pytest.approx(6.0 + 1.2, rel=1e-3)
        else:
            assert not torch.isfinite(graph.dist[0, 11])


def test_subgoal_config_validates() -> None:
    """SubgoalConfig refuses frames < 2, link_quantile outside (0, 1], lookahead <= 0 and neighbors < 0."""
    SubgoalConfig()
    SubgoalConfig(frames=2, neighbors=0, link_quantile=1.0, lookahead=0.5)
    for bad in (
        {"frames": 1},
        {"link_quantile": 0.0},
        {"link_quantile": 1.5},
        {"lookahead": 0.0},
        {"lookahead": -3.0},
        {"neighbors": -1},
    ):
        with pytest.raises(ValueError, match=f"agent.subgoals.{next(iter(bad))}"):
            SubgoalConfig(**bad)


def test_graph_rejects_bad_inputs() -> None:
    """Features, episodes and times of different lengths, an unknown metric, or no multi-node episode: ValueError."""
    x = torch.randn(6, 3)
    eps, times = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 2, 0, 1, 2])
    WaypointGraph(x, eps, times)
    with pytest.raises(ValueError, match="differ in length"):
        WaypointGraph(x, eps[:5], times)
    with pytest.raises(ValueError, match="differ in length"):
        WaypointGraph(x, eps, np.arange(7))
    with pytest.raises(ValueError, match="metric"):
        WaypointGraph(x, eps, times, metric="cosine")
    with pytest.raises(ValueError, match="at least two nodes"):
        WaypointGraph(x, np.arange(6), np.zeros(6))


# ----------------------------------------------------------------------------------------------- load_graph_frames


def test_load_graph_frames_strides_the_training_split(dataset: str) -> None:
    """Shapes and dtypes, M <= max_frames, every stride-th frame from 0 of training episodes only, same data."""
    from worldmodel.data.clips import split_episodes
    from worldmodel.data.reader import TrajectoryFile

    tf = TrajectoryFile(dataset)
    train, val = split_episodes(tf.num_episodes, 0.1, 0)
    assert len(val) >= 1
    try:
        for max_frames in (40, 60, 500):
            f = load_graph_frames(dataset, max_frames)
            m, stride = len(f["episodes"]), f["stride"]
            assert 2 <= m <= max_frames
            assert f["pixels"].shape == (m, 3, 32, 32) and f["pixels"].dtype == torch.uint8
            assert f["states"].shape == (m, 6) and f["proprio"].shape == (m, 4)
            assert f["proprio"].dtype == torch.float32 and f["times"].shape == (m,)
            assert set(f["episodes"].tolist()) == set(train.tolist())
            assert np.all(f["times"] % stride == 0)
            for ep in train:
                s, n = int(tf.episode_starts[ep]), int(tf.episode_lengths[ep])
                sel = f["episodes"] == ep
                np.testing.assert_array_equal(f["times"][sel], np.arange(0, n, stride))
                idx = s + f["times"][sel]
                np.testing.assert_array_equal(
                    f["states"][torch.from_numpy(sel)].numpy(), tf.read("state", s, s + n)[idx - s]
                )
                px = tf.read("pixels", s, s + n)[idx - s]  # (k, H, W, 3)
                np.testing.assert_array_equal(f["pixels"][torch.from_numpy(sel)].permute(0, 2, 3, 1).numpy(), px)
        assert load_graph_frames(dataset, 500)["stride"] == 1  # everything fits: no striding
    finally:
        tf.close()


def test_load_graph_frames_never_exceeds_max_frames(dataset: str) -> None:
    """5 training episodes of 25 frames and max_frames=63: stride 2 keeps 5 * 13 = 65 > 63 frames."""
    assert len(load_graph_frames(dataset, 63)["episodes"]) <= 63


# ----------------------------------------------------------------------------------------------- proprio readout


def test_fit_proprio_readout_predicts_normalised_proprio(dataset: str) -> None:
    """Readout latents (..., N, D) -> normalised proprio (..., 4), float32, R^2 > 0.5 on its training frames."""
    from worldmodel.eval.probes import load_probe_frames
    from worldmodel.eval.readouts import fit_proprio_readout

    wm = tiny_world_model()
    wm.proprio_mean.copy_(torch.tensor([0.3, -0.2, 0.05, 0.0]))
    wm.proprio_std.copy_(torch.tensor([0.5, 0.4, 2.0, 3.0]))
    readout = fit_proprio_readout(wm, dataset, max_frames=120)
    z = torch.randn(2, 5, 3, 4, 16)
    assert readout(z).shape == (2, 5, 3, 4) and readout(z).dtype == torch.float32
    assert readout(z[0, 0, 0]).shape == (4,)
    frames = load_probe_frames(dataset, "train", 120)
    with torch.no_grad():
        lat = wm.encode(frames["pixels"])["latents"]  # (M, N, D)
    target = wm.normalize_proprio(frames["proprio"])  # (M, 4)
    pred = readout(lat)
    sse = (pred - target).pow(2).sum(0)
    sst = (target - target.mean(0)).pow(2).sum(0)
    r2 = 1 - sse / sst  # (4,)
    assert bool((r2 > 0.5).all()), r2
    torch.testing.assert_close(pred.mean(0), target.mean(0), atol=1e-3, rtol=1e-3)  # fitted intercept
    assert float((pred - frames["proprio"]).abs().mean()) > 0.1  # not the raw proprio


def test_knn_proprio_readout_returns_neighbour_proprio(dataset: str) -> None:
    """knn readout: with k=1 a training frame's own latents give back its normalised proprio; k averages k frames."""
    from worldmodel.eval.probes import load_probe_frames
    from worldmodel.eval.readouts import fit_proprio_readout

    wm = tiny_world_model()
    frames = load_probe_frames(dataset, "train", 120)
    with torch.no_grad():
        lat = wm.encode(frames["pixels"])["latents"]  # (M, N, D)
    target = wm.normalize_proprio(frames["proprio"])  # (M, 4)
    one = fit_proprio_readout(wm, dataset, max_frames=120, kind="knn", k=1)
    torch.testing.assert_close(one(lat[:10]), target[:10])
    assert one(lat[:6].reshape(2, 3, *lat.shape[1:])).shape == (2, 3, 4)
    three = fit_proprio_readout(wm, dataset, max_frames=120, kind="knn", k=3)
    d = torch.cdist(lat[:1].flatten(1), lat.flatten(1), p=1)  # (1, M)
    nearest = d.topk(3, largest=False).indices[0]
    torch.testing.assert_close(three(lat[:1])[0], target[nearest].mean(0))
    with pytest.raises(ValueError, match="readout must be one of"):
        fit_proprio_readout(wm, dataset, max_frames=120, kind="mlp")


def both(lw: float, pw: float) -> Objective:
    """Latent (l1, last) x lw + proprio (l1, last) x pw."""
    return Objective([(lw, LatentDistance("l1", "last")), (pw, ProprioDistance("l1", "last"))])


@pytest.mark.parametrize("kind", ["l1", "l2"])
@pytest.mark.parametrize("steps", ["last", "all"])
def test_proprio_cost_arithmetic(kind: str, steps: str) -> None:
    """ProprioDistance: mean |diff| (l1) or mean diff^2 (l2) over P, at the last step or averaged over H."""
    term = ProprioDistance(kind, steps)
    pred, goal = torch.randn(2, 5, 3, 4).double(), torch.randn(2, 4).double()
    p, gl = pred.numpy(), goal.numpy()
    want = np.zeros((2, 5))
    for b in range(2):
        for s in range(5):
            per_h = []
            for h in range(3):
                d = [p[b, s, h, k] - gl[b, k] for k in range(4)]
                per_h.append(sum(abs(v) if kind == "l1" else v * v for v in d) / 4)
            want[b, s] = per_h[-1] if steps == "last" else sum(per_h) / 3
    acts = torch.zeros(2, 5, 3, 2)
    got = term(Rollout(actions=acts, proprio=pred), Target(proprio=goal))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    with pytest.raises(ValueError, match="predicts proprio"):
        term(Rollout(actions=acts), Target(proprio=goal))


def test_cost_combines_latent_and_proprio_terms(tmp_path: Path) -> None:
    """Planner cost = lw * latent cost + pw * proprio cost of the rollout (lw=0: proprio alone)."""
    wm = tiny_world_model()
    rollout = wm.rollout
    seen: dict[str, Any] = {}

    def recording_rollout(*args: Any, **kwargs: Any) -> dict[str, Any]:
        seen["pred"] = rollout(*args, **kwargs)
        return seen["pred"]

    wm.rollout = recording_rollout  # type: ignore[method-assign]
    acts = torch.linspace(-1, 1, 2 * 4 * 3 * 2).reshape(2, 4, 3, 2)

    class RecordingCEM(CEMPlanner):
        def plan(self, cost_fn, batch_size, initial_mean=None):  # type: ignore[no-untyped-def]
            seen["cost"] = cost_fn(acts)
            seen["pred_of_cost"] = seen["pred"]
            return super().plan(cost_fn, batch_size, initial_mean)

    specs = env_episode_specs(2, seed=1)
    st = EvalSettings(max_steps=1, num_envs=2, video_episodes=0)
    for lw, pw in ((0.0, 1.0), (2.0, 0.5)):
        planner = RecordingCEM(wm.action_low, wm.action_high, horizon=3, num_samples=4, iterations=1, num_elites=2)
        agent = LatentPlanningAgent(wm, planner, both(lw, pw), proprio_readout=first_latents)
        run_closed_loop(agent, ENV, {"image_size": 32}, specs, st, tmp_path / f"{lw}", "wm", progress=False)
        pred = seen["pred_of_cost"]
        assert agent.targets is not None
        goal = agent.targets.goal  # (B, N, D) encoded goal images
        goal_prop = first_latents(goal)  # (B, 4)
        torch.testing.assert_close(agent.targets(goal).proprio, goal_prop)
        prop_cost = (pred["proprio"][:, :, -1] - goal_prop[:, None]).abs().mean(-1)  # (B, S): l1, last step
        want = pw * prop_cost
        if lw > 0:
            want = want + lw * (pred["latents"][:, :, -1] - goal[:, None]).abs().mean((-1, -2))
        assert seen["cost"].shape == (2, 4)
        torch.testing.assert_close(seen["cost"], want)


def test_agent_constructor_errors() -> None:
    """Weights all 0 or negative, a proprio term without a readout, or an oracle graph without states."""
    wm = tiny_world_model()
    for terms, match in (
        ([(0.0, LatentDistance()), (0.0, ProprioDistance())], "no term with a positive weight"),
        ([(-1.0, LatentDistance())], "must be >= 0"),
    ):
        with pytest.raises(ValueError, match=match):
            Objective(terms)
    with pytest.raises(ValueError, match="needs a proprio readout"):
        LatentPlanningAgent(wm, tiny_planner(wm), both(1.0, 1.0))
    LatentPlanningAgent(wm, tiny_planner(wm), both(0.0, 1.0), proprio_readout=first_latents)
    graph = WaypointGraph(torch.randn(4, 2), np.zeros(4), np.arange(4), "euclidean")
    with pytest.raises(ValueError, match="subgoal_graph and subgoal_states"):
        OracleAgent(tiny_planner(), subgoal_graph=graph)
    with pytest.raises(ValueError, match="subgoal_graph and subgoal_states"):
        OracleAgent(tiny_planner(), subgoal_states=np.zeros((4, 6)))


class StubGraph:
    """A WaypointGraph stand-in with fixed answers that records what it was asked."""

    def __init__(self, features: torch.Tensor, node: list[int], direct: list[bool]) -> None:
        self.features = features
        self.answer = (torch.tensor(node), torch.tensor(direct))
        self.calls: list[tuple[torch.Tensor, torch.Tensor, float]] = []

    def subgoal(self, x_now: torch.Tensor, x_goal: torch.Tensor, lookahead: float) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append((x_now, x_goal, lookahead))
        return self.answer


def test_latent_targets_follow_the_graph_subgoal() -> None:
    """LatentTargets: the goal without a graph, else the subgoal node's latents (goal where direct) and their
    proprio; without a readout no proprio."""
    goal, now = torch.randn(2, 4, 16), torch.randn(2, 4, 16)
    target = LatentTargets(goal, first_latents)(now)
    assert target.latents is goal
    torch.testing.assert_close(target.proprio, first_latents(goal))
    graph = StubGraph(torch.randn(7, 64), node=[3, 5], direct=[False, True])
    target = LatentTargets(goal, first_latents, graph, lookahead=4.0)(now)
    ((x_now, x_goal, look),) = graph.calls
    torch.testing.assert_close(x_now, now.flatten(1))
    torch.testing.assert_close(x_goal, goal.flatten(1))
    assert look == 4.0
    torch.testing.assert_close(target.latents[0], graph.features[3].view(4, 16))
    torch.testing.assert_close(target.latents[1], goal[1])
    torch.testing.assert_close(target.proprio, first_latents(target.latents))
    assert LatentTargets(goal, None, graph, lookahead=4.0)(now).proprio is None


def test_oracle_plans_toward_the_subgoal_state(tmp_path: Path) -> None:
    """The oracle's cost measures distance to the graph's subgoal state (the goal state where direct)."""
    import gymnasium

    import envs  # noqa: F401

    env = gymnasium.make(ENV, disable_env_checker=True, image_size=32).unwrapped
    starts = [env.make_state([-0.6, 0.5]), env.make_state([-0.6, -0.5])]
    goals = [env.make_state([0.6, 0.5]), env.make_state([0.6, -0.5])]
    specs = [EpisodeSpec(i, 100 + i, starts[i], goals[i], "test") for i in range(2)]
    states = np.stack([env.make_state([-0.6, 0.5]), env.make_state([-0.2, 0.0])])  # node 0 is env 0's start
    env.close()
    graph = StubGraph(torch.zeros(2, 2), node=[0, 1], direct=[False, True])
    seen: dict[str, torch.Tensor] = {}

    class RecordingCEM(CEMPlanner):
        def plan(self, cost_fn, batch_size, initial_mean=None):  # type: ignore[no-untyped-def]
            seen.setdefault("cost", cost_fn(torch.zeros(batch_size, 2, 3, 2)))  # stand still
            return super().plan(cost_fn, batch_size, initial_mean)

    agent = OracleAgent(
        RecordingCEM(-torch.ones(2), torch.ones(2), horizon=3, num_samples=4, iterations=1, num_elites=2),
        subgoal_graph=graph,
        subgoal_states=states,
        subgoal_lookahead=6.0,
    )
    recs = run_closed_loop(
        agent,
        ENV,
        {"image_size": 32},
        specs,
        EvalSettings(max_steps=1, num_envs=2, video_episodes=0),
        tmp_path,
        "oracle",
        progress=False,
    )
    assert len(recs) == 2
    x_now, x_goal, look = graph.calls[0]
    np.testing.assert_allclose(x_now.numpy(), [[-0.6, 0.5], [-0.6, -0.5]], atol=1e-5)
    np.testing.assert_allclose(x_goal.numpy(), [[0.6, 0.5], [0.6, -0.5]], atol=1e-5)
    assert look == 6.0
    cost = seen["cost"]  # (2, 2): env 0 sits on its subgoal; env 1 is direct, 1.2 from its goal
    assert float(cost[0].abs().max()) < 1e-3
    torch.testing.assert_close(cost[1], torch.full((2,), 1.2), atol=1e-3, rtol=0)


# ----------------------------------------------------------------------------------------------- closed loop


def test_closed_loop_with_subgoal_graphs(dataset: str, tmp_path: Path) -> None:
    """Latent agent (latent graph + proprio cost) and oracle (task-coord graph) run 2 envs x 2 steps and record."""
    from worldmodel.eval.assemble import latent_graph, state_graph
    from worldmodel.eval.readouts import fit_proprio_readout

    wm = tiny_world_model()
    sub = SubgoalConfig(enabled=True, data=dataset, frames=60)
    graph = latent_graph(wm, sub)
    assert isinstance(graph, WaypointGraph) and 2 <= graph.num_nodes <= 60
    assert graph.features.shape[1] == 4 * 16
    asked: list[torch.Tensor] = []
    subgoal = graph.subgoal

    def recording_subgoal(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        out = subgoal(*args, **kwargs)
        asked.append(out[1])
        return out

    graph.subgoal = recording_subgoal  # type: ignore[method-assign]
    agent = LatentPlanningAgent(
        wm,
        tiny_planner(wm),
        both(1.0, 1.0),
        proprio_readout=fit_proprio_readout(wm, dataset, 120),
        subgoal_graph=graph,
        subgoal_lookahead=2.0,
    )
    specs = env_episode_specs(2, seed=1)
    st = EvalSettings(max_steps=2, num_envs=2, video_episodes=0)
    recs = run_closed_loop(agent, ENV, {"image_size": 32}, specs, st, tmp_path, "wm", progress=False)
    assert len(recs) == 2 and all(len(r["distance_curve"]) == 3 for r in recs)
    assert len(asked) == 2 and all(d.shape == (2,) for d in asked)  # one subgoal query per replanning step
    assert len((tmp_path / "episodes_wm.jsonl").read_text().splitlines()) == 3

    sgraph, states = state_graph(sub, ENV, {"image_size": 32}, dataset)
    assert states.shape == (sgraph.num_nodes, 6) and sgraph.features.shape == (sgraph.num_nodes, 2)
    oracle = OracleAgent(tiny_planner(), subgoal_graph=sgraph, subgoal_states=states, subgoal_lookahead=2.0)
    recs = run_closed_loop(oracle, ENV, {"image_size": 32}, specs, st, tmp_path, "oracle", progress=False)
    assert len(recs) == 2 and all(len(r["distance_curve"]) == 3 for r in recs)
    assert len((tmp_path / "episodes_oracle.jsonl").read_text().splitlines()) == 3


def eval_cfg(out: Path, subgoals: dict[str, Any]) -> dict[str, Any]:
    """configs/evaluate.yaml resolved with tiny settings: the oracle only, 2 episodes of 2 steps, 32 px."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    overrides = [
        f"out_dir={out}",
        "episodes=2",
        "methods=[oracle]",
        "eval.max_steps=2",
        "eval.num_envs=2",
        "eval.video_episodes=0",
        "planner.num_samples=8",
        "planner.iterations=1",
        "planner.num_elites=2",
        "planner.horizon=3",
        "env.kwargs.image_size=32",
        "device=cpu",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("evaluate", overrides=overrides)
    res: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    res["agent"]["subgoals"].update(subgoals)
    return res


def test_evaluate_with_subgoals(dataset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate() with subgoals runs the oracle on a graph, writes summary.json; no data: FileNotFoundError."""
    from worldmodel.eval.evaluate import evaluate

    asked: list[int] = []
    subgoal = WaypointGraph.subgoal

    def counting_subgoal(self: WaypointGraph, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        asked.append(self.num_nodes)
        return subgoal(self, *args, **kwargs)

    monkeypatch.setattr(WaypointGraph, "subgoal", counting_subgoal)
    summary = evaluate(eval_cfg(tmp_path / "on", {"enabled": True, "data": dataset, "frames": 60}), progress=False)
    assert set(summary["methods"]) == {"oracle"} and summary["methods"]["oracle"]["episodes"] == 2
    written = json.loads((tmp_path / "on" / "summary.json").read_text())
    assert written["agent"]["subgoals"]["enabled"] is True
    assert len(asked) == 2 and 2 <= asked[0] <= 60  # the oracle consulted a 60-frame graph at both steps
    with pytest.raises(FileNotFoundError, match="agent.subgoals.data"):
        evaluate(eval_cfg(tmp_path / "off", {"enabled": True}), progress=False)


def test_evaluate_refuses_bad_agent_settings_before_running(tmp_path: Path) -> None:
    """An unknown agent.subgoals key, a bad objective.proprio.readout or a cost setting still under `agent` is a
    ValueError before any episode runs."""
    from worldmodel.eval.evaluate import evaluate

    base = {
        "env": {"id": ENV, "kwargs": {"image_size": 32}},
        "planner": {"_target_": "planners.cem.CEMPlanner", "horizon": 2, "num_samples": 4, "iterations": 1,
                    "num_elites": 2},
        "methods": ["random"],
        "episodes": 1,
        "eval": {"max_steps": 1, "num_envs": 1, "video_episodes": 0},
        "out_dir": str(tmp_path / "out"),
    }
    with pytest.raises(ValueError, match="unknown agent.subgoals keys \\['bogus'\\]"):
        evaluate({**base, "agent": {"subgoals": {"bogus": 1}}}, progress=False)
    with pytest.raises(ValueError, match="objective.proprio.readout must be one of"):
        evaluate({**base, "objective": {"proprio": {"readout": "mlp"}}}, progress=False)
    with pytest.raises(ValueError, match="agent.proprio_weight -> objective.proprio.weight"):
        evaluate({**base, "agent": {"proprio_weight": 1.0}}, progress=False)
    with pytest.raises(ValueError, match="unknown objective keys \\['latnet'\\]"):
        evaluate({**base, "objective": {"latnet": {"weight": 1.0}}}, progress=False)
    assert not list((tmp_path / "out").glob("episodes_*"))  # nothing ran, nothing written
