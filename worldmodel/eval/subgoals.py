"""Waypoint graph over dataset frames ("search on the replay buffer", Eysenbach et al. 2019): subgoals that lead
a short-horizon planner around obstacles that a straight-line distance to the goal cannot see.

Nodes are frames of the training trajectories, taken every ``stride`` steps. Two kinds of edges: consecutive
nodes of one trajectory (a transition the robot really made, weight = the steps between them) and nearest
neighbours in feature space whose distance is below that of a typical ``stride``-step transition (weight scaled
to steps). All-pairs shortest paths are computed once; at planning time the current and goal observations are
attached to their nearest nodes and the subgoal is the node ``lookahead`` steps along the shortest path (or the
goal itself when it is that close). The same class serves the world model (features = latents, L1) and the
oracle (features = true task coordinates, Euclidean), so the ceiling plans with the same subgoal machinery.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodel.config.agent import SubgoalsConfig

METRICS = ("l1", "euclidean")


SubgoalConfig = SubgoalsConfig
"""Settings of ``agent.subgoals`` (worldmodel/config/agent.py)."""


def pairwise_distance(x: Tensor, y: Tensor, metric: str) -> Tensor:
    """(B, F) x (M, F) -> (B, M): mean absolute difference ("l1", the planner's latent cost) or Euclidean."""
    if metric == "l1":
        return torch.cdist(x, y, p=1) / x.shape[-1]
    if metric == "euclidean":
        return torch.cdist(x, y, p=2, compute_mode="donot_use_mm_for_euclid_dist")  # exact, not via x.y
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def load_graph_frames(path: str, max_frames: int, val_fraction: float = 0.1, split_seed: int = 0) -> dict[str, Any]:
    """Every ``stride``-th frame of the training split (same split as ClipDataset): pixels (M, 3, H, W) uint8,
    states (M, Ds), proprio (M, P), episodes (M,), times (M,), stride."""
    from worldmodel.data.clips import split_episodes
    from worldmodel.data.reader import TrajectoryFile

    tf = TrajectoryFile(path)
    try:
        train, _ = split_episodes(tf.num_episodes, val_fraction, split_seed)
        lengths = tf.episode_lengths[train]
        stride = max(1, int(np.ceil(lengths.sum() / max_frames)))
        while stride < lengths.max() and int(np.ceil(lengths / stride).sum()) > max_frames:
            stride += 1  # each episode rounds its own count up
        columns: dict[str, list[np.ndarray]] = {"pixels": [], "state": [], "proprio": []}
        episodes, times = [], []
        for ep, n in zip(train, lengths):
            s = int(tf.episode_starts[ep])
            t = np.arange(0, int(n), stride)
            for key in columns:
                columns[key].append(tf.read(key, s, s + int(n))[t])
            episodes.append(np.full(len(t), ep))
            times.append(t)
    finally:
        tf.close()
    return {
        "pixels": torch.from_numpy(np.concatenate(columns["pixels"])).permute(0, 3, 1, 2).contiguous(),
        "states": torch.from_numpy(np.concatenate(columns["state"])),
        "proprio": torch.from_numpy(np.concatenate(columns["proprio"])).float(),
        "episodes": np.concatenate(episodes),
        "times": np.concatenate(times),
        "stride": stride,
    }


class WaypointGraph:
    """Shortest paths over dataset frames; ``subgoal`` returns the node ``lookahead`` steps toward the goal."""

    def __init__(
        self,
        features: Tensor,
        episodes: np.ndarray,
        times: np.ndarray,
        metric: str = "l1",
        neighbors: int = 8,
        link_quantile: float = 0.5,
    ) -> None:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components, shortest_path

        feats = features.detach().float().flatten(1).cpu()  # (M, F)
        m = feats.shape[0]
        episodes, times = np.asarray(episodes), np.asarray(times)
        if len(episodes) != m or len(times) != m:
            raise ValueError(f"features ({m}), episodes ({len(episodes)}) and times ({len(times)}) differ in length")
        self.metric = metric
        self.features = feats
        dmat = pairwise_distance(feats, feats, metric)  # (M, M)
        # Trajectory edges: consecutive nodes of one episode, weight = env steps between them.
        order = np.lexsort((times, episodes))
        a, b = order[:-1], order[1:]
        same = episodes[a] == episodes[b]
        a, b = a[same], b[same]
        if len(a) == 0:
            raise ValueError("the graph needs episodes with at least two nodes; use more frames or longer episodes")
        gap = (times[b] - times[a]).astype(np.float64)  # (E_t,)
        step_d = dmat[torch.from_numpy(a), torch.from_numpy(b)].numpy()  # (E_t,)
        moved = step_d[step_d > 0]  # resting frames (distance 0) say nothing about how far a transition goes
        self.link_distance = float(np.quantile(moved, link_quantile)) if len(moved) else 0.0  # typical transition
        self.stride = float(np.median(gap))
        rows, cols, weights = [a], [b], [gap]
        # Neighbour edges: the k nearest other nodes closer than a typical transition, weight scaled to steps.
        k = min(neighbors, m - 1)
        if k > 0 and self.link_distance > 0:
            d_nn, i_nn = dmat.clone().fill_diagonal_(float("inf")).topk(k, dim=1, largest=False)  # (M, k)
            keep = (d_nn < self.link_distance).numpy()
            src = np.repeat(np.arange(m), k).reshape(m, k)[keep]
            dst = i_nn.numpy()[keep]
            w = self.stride * d_nn.numpy()[keep] / self.link_distance
            rows.append(src)
            cols.append(dst)
            weights.append(np.maximum(w, 1e-6))
        r, c, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
        lo, hi = np.minimum(r, c), np.maximum(r, c)  # undirected: one entry per pair, the lightest edge
        order = np.lexsort((w, hi, lo))
        lo, hi, w = lo[order], hi[order], w[order]
        first = np.ones(len(w), dtype=bool)
        first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
        graph = coo_matrix((w[first], (lo[first], hi[first])), shape=(m, m)).tocsr()
        dist, pred = shortest_path(graph, directed=False, return_predecessors=True)
        self.dist = torch.from_numpy(dist.astype(np.float32))  # (M, M) path length in env steps (inf: unreachable)
        self.pred = torch.from_numpy(pred.astype(np.int64))  # (M, M) pred[g, i]: the node after i on i's path to g
        self.num_edges = int(first.sum())
        self.num_components = int(connected_components(graph, directed=False)[0])

    @property
    def num_nodes(self) -> int:
        """M nodes."""
        return int(self.features.shape[0])

    def nearest(self, x: Tensor) -> Tensor:
        """(B, F) features -> (B,) index of the nearest node."""
        return pairwise_distance(x.detach().float().flatten(1).cpu(), self.features, self.metric).argmin(dim=1)

    def subgoal(
        self, x_now: Tensor, x_goal: Tensor, lookahead: float, max_hops: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Subgoal nodes for B agents: (node (B,), direct (B,) bool). ``direct`` marks agents whose goal is within
        ``lookahead`` steps (or unreachable in the graph): they should aim at the goal itself."""
        start, goal = self.nearest(x_now), self.nearest(x_goal)  # (B,), (B,)
        total = self.dist[start, goal]  # (B,)
        direct = (total <= lookahead) | ~torch.isfinite(total)
        cur = start.clone()
        # Walk every agent's path at once until it is lookahead steps from its start (a path has < M hops).
        for _ in range(self.num_nodes if max_hops is None else max_hops):
            nxt = self.pred[goal, cur]  # (B,)
            move = (~direct) & (cur != goal) & (nxt >= 0) & (self.dist[start, cur] < lookahead)
            if not bool(move.any()):
                break
            cur = torch.where(move, nxt, cur)
        return cur, direct
