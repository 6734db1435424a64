"""Representation diagnostics: collapse stats, ridge probes to task coords, latent-vs-true distance ranks.

Any frozen ``FrameEncoder`` works (the in-house VideoViT, V-JEPA 2, DINOv2: ``worldmodel.models.encoders``):
frames are embedded alone with ``embed_image`` and pooled on the encoder's own patch grid."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodel.models.encoders.protocol import FrameEncoder
from worldmodel.models.pooling import pool_tokens
from worldmodel.models.stats import collapse_stats


def ridge_fit(x: Tensor, y: Tensor, lam: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Closed-form ridge on standardised features: x (N, F), y (N, K) -> (W (F, K), bias (K,), mu, sd)."""
    x, y = x.double(), y.double()
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    xs = (x - mu) / sd  # (N, F)
    ym = y.mean(0)
    yc = y - ym  # (N, K)
    n, f = xs.shape
    if f <= n:
        w = torch.linalg.solve(xs.T @ xs + lam * torch.eye(f, dtype=xs.dtype), xs.T @ yc)  # (F, K)
    else:  # dual form: cheaper when features outnumber samples
        w = xs.T @ torch.linalg.solve(xs @ xs.T + lam * torch.eye(n, dtype=xs.dtype), yc)
    return w, ym, mu, sd


def ridge_predict(x: Tensor, w: Tensor, bias: Tensor, mu: Tensor, sd: Tensor) -> Tensor:
    """Apply a fitted ridge model: x (N, F) -> (N, K)."""
    return ((x.double() - mu) / sd) @ w + bias


def regression_scores(pred: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-dimension R^2 and RMSE: pred, y (N, K) -> (K,), (K,)."""
    pred, y = pred.double(), y.double()
    sse = ((pred - y) ** 2).sum(0)
    sst = ((y - y.mean(0)) ** 2).sum(0).clamp_min(1e-12)
    return 1.0 - sse / sst, (sse / y.shape[0]).sqrt()


def linear_probe(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    names: Sequence[str] | None = None,
    success_radius: float | None = None,
    lambdas: Sequence[float] = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0),
    groups_train: Tensor | None = None,
) -> dict[str, Any]:
    """Ridge probe with lambda picked on a held-out group split of train; R^2/RMSE per dim on test."""
    n = x_train.shape[0]
    gen = torch.Generator().manual_seed(0)
    if groups_train is not None and groups_train.unique().numel() >= 2:
        uniq = groups_train.unique()
        val_groups = uniq[torch.randperm(uniq.numel(), generator=gen)[: max(1, uniq.numel() // 5)]]
        is_val = torch.isin(groups_train, val_groups)
    else:
        is_val = torch.zeros(n, dtype=torch.bool)
        is_val[torch.randperm(n, generator=gen)[: max(1, n // 5)]] = True
    best_lam, best_err = lambdas[0], float("inf")
    for lam in lambdas:
        params = ridge_fit(x_train[~is_val], y_train[~is_val], lam)
        err = float(((ridge_predict(x_train[is_val], *params) - y_train[is_val].double()) ** 2).mean())
        if err < best_err:
            best_lam, best_err = lam, err
    params = ridge_fit(x_train, y_train, best_lam)
    r2, rmse = regression_scores(ridge_predict(x_test, *params), y_test)
    names = list(names) if names is not None else [f"y{i}" for i in range(y_train.shape[1])]
    out: dict[str, Any] = {
        "lambda": best_lam,
        "r2": dict(zip(names, r2.tolist())),
        "rmse": dict(zip(names, rmse.tolist())),
        "r2_mean": float(r2.mean()),
    }
    if success_radius:
        out["rmse_over_radius"] = {k: v / success_radius for k, v in out["rmse"].items()}
    return out


def spearman(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import rankdata  # here, not at module level: importing scipy.stats takes about 1 s

    ra = rankdata(np.asarray(a, dtype=np.float64))
    rb = rankdata(np.asarray(b, dtype=np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def pair_rank_correlation(
    emb: Tensor,
    i: Tensor,
    j: Tensor,
    true: Tensor,
    success_radius: float | None = None,
    near_factor: float = 2.0,
    max_pairs: int = 20000,
) -> dict[str, float]:
    """Spearman of latent L1 (mean |e_i - e_j|) vs true distance over pairs, all and near (< f*radius)."""

    def latent(ii: Tensor, jj: Tensor) -> Tensor:
        """Mean absolute latent difference per pair (what an L1 planning cost measures)."""
        parts = [(emb[a].float() - emb[b].float()).abs().mean(-1) for a, b in zip(ii.split(4096), jj.split(4096))]
        return torch.cat(parts) if parts else torch.zeros(0)

    lat_all = latent(i[:max_pairs], j[:max_pairs])
    out: dict[str, Any] = {
        "spearman_all": spearman(lat_all, true[:max_pairs]),
        "pairs_all": float(min(max_pairs, i.numel())),
    }
    if success_radius:
        near = true < near_factor * success_radius
        ni, nj, nt = i[near][:max_pairs], j[near][:max_pairs], true[near][:max_pairs]
        out["spearman_near"] = spearman(latent(ni, nj), nt) if ni.numel() >= 10 else float("nan")
        out["pairs_near"] = float(ni.numel())
        out.update(distance_profile(latent, i, j, true, success_radius, float(lat_all.mean())))
    return out


def pair_distance_report(
    distance: Callable[[Tensor, Tensor], Tensor], i: Tensor, j: Tensor, true: Tensor, radius: float | None
) -> dict[str, Any]:
    """Spearman of any pair distance ``distance(i, j) -> (n,)`` vs the true distance (all pairs, near < 2 radii)
    and, with a radius, its profile over true-distance bins (``distance_profile``)."""
    d_all = distance(i, j)
    out: dict[str, Any] = {"spearman_all": spearman(d_all, true)}
    if radius:
        near = true < 2 * radius
        out["spearman_near"] = spearman(d_all[near], true[near]) if int(near.sum()) >= 10 else float("nan")
        out.update(distance_profile(distance, i, j, true, radius, float(d_all.mean())))
    return out


@torch.no_grad()
def world_model_distances(
    wm: Any, frames: Tensor, pairs: tuple[Tensor, Tensor, Tensor], radius: float | None, max_pairs: int = 20000
) -> dict[str, dict[str, Any]]:
    """The planner's two latent goal distances of a world model on held-out frames (M, 3, H, W) uint8, against
    the true distance of ``pairs`` = (i, j, true): its latent L1 in the model's space, and its learned step
    metric when it has one (``objective.metric``)."""
    z = wm.encode(frames)["latents"].float().cpu()  # (M, N, D); encode batches the frames itself
    i, j, true = (t[:max_pairs] for t in pairs)
    out = {"latent_l1": pair_distance_report(lambda a, b: (z[a] - z[b]).abs().mean((-1, -2)), i, j, true, radius)}
    if wm.metric is not None:
        metric = wm.metric.cpu()
        out["metric"] = pair_distance_report(lambda a, b: metric.distance(z[a], z[b]), i, j, true, radius)
    return out


PROFILE_EDGES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0, float("inf"))  # true-distance bins, in success radii


def distance_profile(
    latent: Any, i: Tensor, j: Tensor, true: Tensor, radius: float, scale: float, per_bin: int = 2000
) -> dict[str, Any]:
    """Mean latent distance per true-distance bin (in success radii), divided by the mean over all pairs.

    What a planner descends: a profile that keeps rising just outside the success radius gives it a slope
    toward the goal; a flat stretch (``plateau`` = bin [1.5r, 2r) over bin [1r, 1.5r), near 1) is where it
    hovers.
    """
    edges = PROFILE_EDGES
    prof = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (true >= lo * radius) & (true < hi * radius)
        bi, bj = i[sel][:per_bin], j[sel][:per_bin]
        prof.append(float(latent(bi, bj).mean()) / max(scale, 1e-12) if bi.numel() >= 10 else float("nan"))
    plateau = prof[3] / prof[2] if prof[2] else float("nan")  # bin [1.5, 2)r over bin [1, 1.5)r
    return {"profile_edges": list(edges), "profile": prof, "plateau": plateau}


def nearest_neighbour_retrieval(
    train_emb: Tensor, train_coords: Tensor, test_emb: Tensor, test_coords: Tensor, success_radius: float
) -> dict[str, float]:
    """How far (true Euclidean distance over the coords) each test frame's latent nearest training frame is.

    Features are standardised with training statistics and compared by mean L1, as the world model's
    latents are by the planner and the subgoal graph; ``beyond_radius`` is the fraction of test frames whose
    nearest neighbour lies more than one success radius away (a graph node in the wrong place), next to the
    best any metric could do on these frames (``oracle_median``).
    """
    mu, sd = train_emb.mean(0), train_emb.std(0).clamp_min(1e-6)
    tr, te = (train_emb - mu) / sd, (test_emb - mu) / sd  # (M, F), (T, F)
    nn = torch.cat([torch.cdist(c, tr, p=1).argmin(1) for c in te.split(512)])  # (T,)
    tc, rc = test_coords.double(), train_coords.double()
    d = (tc - rc[nn]).norm(dim=-1).numpy()  # (T,)
    best = torch.cat([torch.cdist(c, rc).min(1).values for c in tc.split(512)]).numpy()  # (T,)
    return {
        "median": float(np.median(d)),
        "p90": float(np.quantile(d, 0.9)),
        "beyond_radius": float(np.mean(d > success_radius)),
        "oracle_median": float(np.median(best)),
    }


def random_pairs(m: int, count: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """`count` random index pairs (i != j) over m items."""
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, m, (count,), generator=g)
    j = torch.randint(0, m, (count,), generator=g)
    keep = i != j
    return i[keep], j[keep]


def distance_rank_correlation(
    emb: Tensor,
    coords: Tensor,
    success_radius: float | None = None,
    num_pairs: int = 20000,
    near_factor: float = 2.0,
    seed: int = 0,
) -> dict[str, float]:
    """Spearman between latent L1 and Euclidean distance of `coords` (M, K) over random frame pairs."""
    i, j = random_pairs(emb.shape[0], num_pairs * 20 if success_radius else num_pairs, seed)
    true = (coords[i].double() - coords[j].double()).norm(dim=-1)  # (P,)
    return pair_rank_correlation(emb, i, j, true, success_radius, near_factor, num_pairs)


def anchor_pair_distances(
    distance_to: Callable[[int], np.ndarray], m: int, num_anchors: int = 200, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """(i, j, dist) from anchor frames to all other frames, shuffled; ``distance_to(a)`` gives (m,) distances
    of every frame to frame ``a``."""
    rng = np.random.default_rng(seed)
    anchors = rng.choice(m, size=min(num_anchors, m), replace=False)
    ii, jj, dd = [], [], []
    for a in anchors:
        d = np.asarray(distance_to(int(a)), dtype=np.float64)  # (M,)
        others = np.flatnonzero(np.arange(m) != a)
        ii.append(others)
        jj.append(np.full(others.shape, a))
        dd.append(d[others])
    perm = rng.permutation(sum(len(x) for x in ii))
    cat = lambda xs: torch.from_numpy(np.concatenate(xs)[perm])  # noqa: E731
    return cat(ii).long(), cat(jj).long(), cat(dd)


def env_pair_distances(
    env: Any, states: np.ndarray, num_anchors: int = 200, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Exact task distances via env.goal_distance from anchor frames to all frames: (i, j, dist), shuffled."""
    return anchor_pair_distances(lambda a: env.goal_distance(states, states[a]), states.shape[0], num_anchors, seed)


def coord_pair_distances(coords: Tensor, num_anchors: int = 200, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Euclidean distances in coordinate space (M, K) from anchor frames to all frames: (i, j, dist), shuffled."""
    c = coords.double().numpy()
    return anchor_pair_distances(lambda a: np.linalg.norm(c - c[a], axis=1), c.shape[0], num_anchors, seed)


@torch.no_grad()
def knn_probe(
    x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, k: int, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Non-linear probe: each test frame's coordinates predicted as the mean over its ``k`` nearest training frames
    in L1 latent distance (the planner's cost metric); R^2 per coordinate on the test frames. Where the linear probe
    fails, this says whether the coordinate is in the latent at all, read the way the planner's cost reads it.
    x: (M, F) features, y: (M, C) coordinates."""
    preds = []
    for chunk in x_test.split(512):  # (m, F): a (m, M_train) distance block at a time
        idx = torch.cdist(chunk, x_train, p=1).topk(min(k, x_train.shape[0]), largest=False).indices  # (m, k)
        preds.append(y_train[idx].mean(1))  # (m, C)
    r2, _ = regression_scores(torch.cat(preds), y_test)
    labels = list(names) if names is not None else [f"c{i}" for i in range(y_test.shape[1])]
    return {"k": int(k), "r2": {n: float(v) for n, v in zip(labels, r2)}}


@torch.no_grad()
def encode_frames(
    encoder: FrameEncoder,
    frames: Tensor,
    grids: Sequence[tuple[int, int] | None] = ((2, 2), (4, 4)),
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    progress: bool = False,
    desc: str = "encode frames",
) -> dict[str, Tensor]:
    """Embed single frames (M, 3, H, W) uint8 and pool: {"2x2": (M, 4*D), "mean": (M, D), ...} on CPU.

    ``progress`` shows a tqdm bar over the frames (labelled ``desc``)."""
    from tqdm import tqdm

    out: dict[str, list[Tensor]] = {grid_name(gr): [] for gr in grids}
    encoder.eval()  # type: ignore[attr-defined]
    hw = encoder.patch_grid(int(frames.shape[-2]), int(frames.shape[-1]))  # (H', W') of the encoder's tokens
    with tqdm(total=frames.shape[0], desc=desc, unit="frame", disable=not progress, dynamic_ncols=True) as bar:
        for chunk in frames.split(batch_size):
            tok = encoder.embed_image(chunk.to(device))  # (b, N, D)
            for gr in grids:
                out[grid_name(gr)].append(pool_tokens(tok, gr, hw).flatten(1).float().cpu())  # (b, g*g*D)
            bar.update(chunk.shape[0])
    return {k: torch.cat(v) for k, v in out.items()}


def grid_name(grid: tuple[int, int] | None) -> str:
    """Label of a pooling grid: (2, 2) -> "2x2", None -> "mean"."""
    return "mean" if grid is None else f"{grid[0]}x{grid[1]}"


def probe_encoder(
    encoder: FrameEncoder,
    train_frames: Tensor,
    train_coords: Tensor,
    test_frames: Tensor,
    test_coords: Tensor,
    names: Sequence[str] | None = None,
    success_radius: float | None = None,
    distance_dims: Sequence[int] | None = None,
    grids: Sequence[tuple[int, int] | None] = ((2, 2), (4, 4)),
    train_groups: Tensor | None = None,
    test_pairs: tuple[Tensor, Tensor, Tensor] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    label: str = "encoder",
    knn: int | None = None,
) -> dict[str, Any]:
    """All probes for one encoder: per pooling grid, linear probe + distance ranks on test (+ a k-nearest-neighbour
    probe in L1 latent distance when ``knn`` is set); collapse stats.

    `test_pairs` = (i, j, true task distance) over test frames (e.g. from env_pair_distances); without it the
    true distance is Euclidean over `distance_dims` of the test coords. ``progress`` shows tqdm bars (encoding the
    train and test frames, then one step per pooling grid), labelled ``label``.
    """
    from tqdm import tqdm

    e_tr = encode_frames(encoder, train_frames, grids, device=device, progress=progress, desc=f"{label}: train frames")
    e_te = encode_frames(encoder, test_frames, grids, device=device, progress=progress, desc=f"{label}: test frames")
    dims = list(distance_dims) if distance_dims is not None else list(range(test_coords.shape[1]))
    result: dict[str, Any] = {}
    for key in tqdm(list(e_tr), desc=f"{label}: probes", unit="grid", disable=not progress, dynamic_ncols=True):
        d = e_te[key].shape[1]
        result[key] = {
            "linear": linear_probe(
                e_tr[key],
                train_coords,
                e_te[key],
                test_coords,
                names,
                success_radius,
                groups_train=train_groups,
            ),
            "distance": (
                pair_rank_correlation(e_te[key], *test_pairs, success_radius=success_radius)
                if test_pairs is not None
                else distance_rank_correlation(e_te[key], test_coords[:, dims], success_radius)
            ),
            "feature_dim": d,
        }
        if knn:
            result[key]["knn"] = knn_probe(e_tr[key], train_coords, e_te[key], test_coords, knn, names)
        if success_radius:
            result[key]["retrieval"] = nearest_neighbour_retrieval(
                e_tr[key], train_coords[:, dims], e_te[key], test_coords[:, dims], success_radius
            )
    with torch.no_grad():
        tok = encoder.embed_image(test_frames[: min(256, test_frames.shape[0])].to(device))  # (m, N, D)
    result["collapse"] = collapse_stats(tok.float().cpu(), g=torch.Generator().manual_seed(0))
    return result


def load_probe_frames(
    path: str,
    split: str,
    max_frames: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    cameras: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Frames of a ClipDataset split: pixels (M, 3, H, W) uint8 (with ``cameras``: {camera: (M, 3, H, W)}, as a
    multi-camera world model's ``encode`` takes them), states (M, Ds), proprio (M, P), episodes (M,), meta."""
    from worldmodel.data import ClipDataset

    # clip_len=2 and frame 0 of each clip: every frame except each episode's last (clip_len=1 has no actions)
    ds = ClipDataset(path, clip_len=2, split=split, val_fraction=val_fraction, seed=0, in_memory=True,
                     cameras=list(cameras) if cameras is not None else None)
    idx = np.arange(len(ds))
    if max_frames is not None and len(idx) > max_frames:
        idx = np.sort(np.random.default_rng(seed).choice(len(idx), max_frames, replace=False))
    items = [ds[int(k)] for k in idx]
    if cameras is not None:
        views = torch.stack([it["views"][:, 0] for it in items])  # (M, K, 3, H, W)
        pixels: Any = {c: views[:, i] for i, c in enumerate(cameras)}
    else:
        pixels = torch.stack([it["pixels"][0] for it in items])  # (M, 3, H, W)
    return {
        "pixels": pixels,
        "states": torch.stack([it["state"][0] for it in items]),
        "proprio": torch.stack([it["proprio"][0] for it in items]),
        "episodes": torch.stack([it["episode"] for it in items]),
        "meta": ds.meta,
    }


def make_env(meta: Mapping[str, Any]) -> Any:
    """The dataset's environment (unwrapped) for task coordinates, distances and success radius."""
    import gymnasium

    import envs  # noqa: F401  (registers wm/* environments)

    return gymnasium.make(meta["env_id"], **dict(meta.get("env_kwargs") or {})).unwrapped


TASK_API = ("task_coord_names", "state_to_task_coords", "goal_distance", "success_threshold")
"""What an env must provide for probes in its task coordinates (the library's envs do)."""


def task_env(meta: Mapping[str, Any]) -> tuple[Any | None, str]:
    """``(env, "")`` when the dataset's env is registered here and provides task coordinates (TASK_API), else
    ``(None, why not)`` -- an imported file records ``env_id: none``, or an env this library does not have.

    A registered env that cannot be built with the file's env_kwargs is a ValueError naming the env.
    """
    import gymnasium

    import envs  # noqa: F401  (registers wm/* environments)

    env_id = str(meta.get("env_id") or "none")
    if env_id == "none":
        return None, "the file records no environment (env_id none)"
    if env_id not in gymnasium.registry:
        return None, f"environment {env_id!r} is not registered here"
    try:
        env = make_env(meta)
    except Exception as exc:  # any constructor error: the file's env_kwargs do not fit this env
        raise ValueError(f"cannot build the file's environment {env_id!r} ({type(exc).__name__}: {exc})") from exc
    missing = [name for name in TASK_API if not hasattr(env, name)]
    if missing:
        return None, f"environment {env_id!r} has no task coordinates (no {', '.join(missing)})"
    return env, ""


COORD_COLUMNS = {"state": "states", "proprio": "proprio"}
"""Columns task coordinates can come from -> their key in load_probe_frames' result."""

_COORD_ITEM = re.compile(r"(?:(?P<name>[A-Za-z_]\w*)\s*=\s*)?(?P<column>[A-Za-z_]\w*)\s*(?:\[(?P<index>[^\]]*)\])?")


@dataclass(frozen=True)
class CoordPart:
    """Dims [start, stop) of one column, labelled ``names`` (one per dim)."""

    column: str
    start: int
    stop: int
    names: tuple[str, ...]


@dataclass(frozen=True)
class CoordSpec:
    """Task coordinates taken from the file's columns (parse_coords), in order."""

    parts: tuple[CoordPart, ...]

    @property
    def names(self) -> list[str]:
        """One label per coordinate."""
        return [n for p in self.parts for n in p.names]

    def select(self, frames: Mapping[str, Tensor]) -> Tensor:
        """(M, K) float64 coordinates from load_probe_frames' columns."""
        cols = [frames[COORD_COLUMNS[p.column]][:, p.start : p.stop].double() for p in self.parts]
        return torch.cat(cols, dim=1)

    @property
    def sources(self) -> list[str]:
        """Where each coordinate comes from: 'state[0]', ..."""
        return [f"{p.column}[{k}]" for p in self.parts for k in range(p.start, p.stop)]


def describe_coords(names: Sequence[str], sources: Sequence[str]) -> str:
    """'x=state[0], state[1]' -- each coordinate with its column dim (the name alone when it is that)."""
    return ", ".join(s if n == s else f"{n}={s}" for n, s in zip(names, sources))


def _coord_range(index: str | None, column: str, dim: int, item: str) -> tuple[int, int]:
    """[start, stop) of ``column[index]`` (index: None, 'i', 'a:b', 'a:', ':b'); ValueError when out of range."""
    if index is None:
        return 0, dim
    where = f"{column} has {dim} dims (indices 0 to {dim - 1})"
    one = re.fullmatch(r"\s*(\d+)\s*", index)
    if one:
        i = int(one.group(1))
        if i >= dim:
            raise ValueError(f"{item!r}: index {i} is out of range: {where}")
        return i, i + 1
    span = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", index)
    if not span:
        raise ValueError(f"{item!r}: index [{index}] must be [i] or [a:b] with a, b >= 0")
    a = int(span.group(1)) if span.group(1) else 0
    b = int(span.group(2)) if span.group(2) else dim
    if b > dim:
        raise ValueError(f"{item!r}: slice [{index}] is out of range: {where}")
    if a >= b:
        raise ValueError(f"{item!r}: slice [{index}] selects no dims")
    return a, b


def _coord_part(item: str, dims: Mapping[str, int]) -> CoordPart:
    """One comma-separated item of a coordinate spec."""
    m = _COORD_ITEM.fullmatch(item)
    if not m:
        raise ValueError(f"cannot parse {item!r}: write COLUMN, COLUMN[i], COLUMN[a:b] or NAME=COLUMN[...]")
    name, column, index = m.group("name"), m.group("column"), m.group("index")
    if column not in dims:
        have = ", ".join(f"{c} ({d} dims)" for c, d in dims.items())
        raise ValueError(f"{item!r}: unknown column {column!r}; coordinates come from {have}")
    start, stop = _coord_range(index, column, dims[column], item)
    if name is None:
        names = tuple(f"{column}[{k}]" for k in range(start, stop))
    else:
        names = (name,) if stop - start == 1 else tuple(f"{name}[{k}]" for k in range(stop - start))
    return CoordPart(column, start, stop, names)


def parse_coords(text: str, dims: Mapping[str, int]) -> CoordSpec:
    """Task coordinates from columns: ``state``, ``proprio``, ``state[0:2]``, ``proprio[3]``, or named parts
    ``x=state[0],y=state[1],yaw=state[4]`` (a named slice ``pos=state[0:2]`` gives pos[0], pos[1]).

    ``dims`` maps each column (COORD_COLUMNS) to its width. Indices count from 0; ValueError naming the item
    for bad syntax, an unknown column, an index out of range, an empty slice or a repeated name.
    """
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise ValueError(f"{text!r} has an empty item; e.g. state, state[0:2] or x=state[0],y=state[1]")
    parts = tuple(_coord_part(t, dims) for t in items)
    names = [n for p in parts for n in p.names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{text!r} names {', '.join(repeated)} more than once; give each coordinate its own name")
    return CoordSpec(parts)


def constant_coords(coords: Tensor, names: Sequence[str]) -> list[str]:
    """Names of the coordinates (M, K) that never change over the frames (no probe can score them)."""
    spread = coords.double().amax(0) - coords.double().amin(0)  # (K,)
    return [n for n, s in zip(names, spread.tolist()) if not s > 0]


def compare_encoders(encoders: Mapping[str, FrameEncoder], **probe_kwargs: Any) -> dict[str, dict[str, Any]]:
    """Run probe_encoder for each named encoder (e.g. pretrained vs random-init) with the same data."""
    return {name: probe_encoder(enc, **probe_kwargs, label=name) for name, enc in encoders.items()}


def random_init_like(encoder: FrameEncoder, seed: int = 0) -> FrameEncoder:
    """The same encoder architecture with fresh random weights (frozen, eval mode, on the encoder's device): the
    baseline a pretrained encoder's probes are compared with. A VideoViT is rebuilt from its config; any other
    module (e.g. a foundation encoder) is copied and every sub-module's ``reset_parameters`` re-run, with the
    parameters no such module owns (position embeddings, class/register tokens) redrawn from N(0, 0.02^2)."""
    import copy

    from torch import nn

    from worldmodel.models.vit import VideoViT

    if not isinstance(encoder, nn.Module):
        raise TypeError(f"a random-init baseline needs an nn.Module encoder, got {type(encoder).__name__}")
    device = next(encoder.parameters()).device
    torch.manual_seed(seed)
    if isinstance(encoder, VideoViT):
        fresh: nn.Module = VideoViT(encoder.cfg)
    else:
        fresh = copy.deepcopy(encoder)
        owned: set[int] = set()
        for mod in fresh.modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()  # type: ignore[operator]
                owned.update(id(p) for p in mod.parameters(recurse=False))
        with torch.no_grad():
            for p in fresh.parameters():
                if id(p) not in owned:
                    p.normal_(0.0, 0.02)
    return fresh.to(device).eval().requires_grad_(False)  # type: ignore[return-value]
