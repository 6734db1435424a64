"""Probes: ridge R^2 ~1 on linear embeddings and ~0 on noise; distance ranks; collapse statistics."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from worldmodel.eval.probes import distance_rank_correlation, encode_frames, linear_probe, probe_encoder, spearman
from worldmodel.models.stats import collapse_stats, effective_rank
from worldmodel.models.vit import EncoderConfig, VideoViT


def _coords(n: int, g: torch.Generator) -> torch.Tensor:
    """Random 3-D task coordinates (N, 3)."""
    return torch.rand(n, 3, generator=g) * 2 - 1


def test_linear_probe_recovers_linear_embedding() -> None:
    g = torch.Generator().manual_seed(0)
    y_tr, y_te = _coords(600, g), _coords(200, g)
    proj = torch.randn(3, 48, generator=g)
    x_tr = y_tr @ proj + 0.01 * torch.randn(600, 48, generator=g)
    x_te = y_te @ proj + 0.01 * torch.randn(200, 48, generator=g)
    res = linear_probe(x_tr, y_tr, x_te, y_te, names=["x", "y", "yaw"], success_radius=0.1)
    assert res["r2_mean"] > 0.99
    assert all(v < 0.05 for v in res["rmse_over_radius"].values())
    assert set(res["r2"]) == {"x", "y", "yaw"}


def test_linear_probe_on_noise_is_near_zero() -> None:
    g = torch.Generator().manual_seed(1)
    y_tr, y_te = _coords(600, g), _coords(300, g)
    res = linear_probe(torch.randn(600, 48, generator=g), y_tr, torch.randn(300, 48, generator=g), y_te)
    assert abs(res["r2_mean"]) < 0.1
    assert all(r < 0.1 for r in res["r2"].values())


def test_linear_probe_group_split_and_dual_form() -> None:
    g = torch.Generator().manual_seed(2)
    y_tr, y_te = _coords(100, g), _coords(50, g)
    proj = torch.randn(3, 400, generator=g)  # more features than samples -> dual solve
    res = linear_probe(y_tr @ proj, y_tr, y_te @ proj, y_te, groups_train=torch.arange(100) // 10)
    assert res["r2_mean"] > 0.98


def test_knn_probe_reads_a_coordinate_the_linear_probe_cannot() -> None:
    """A coordinate stored non-linearly (features = cos/sin of 3 x angle, target = the angle's cosine) defeats the
    linear probe but not the nearest neighbours; noise features defeat both."""
    from worldmodel.eval.probes import knn_probe

    g = torch.Generator().manual_seed(0)
    angle = torch.rand(1200, generator=g) * 6.283
    feats = torch.stack([torch.cos(3 * angle), torch.sin(3 * angle)], 1) + 0.01 * torch.randn(1200, 2, generator=g)
    target = torch.cos(3 * angle + 1.0)[:, None] ** 2  # a non-linear function of what the features hold
    lin = linear_probe(feats[:1000], target[:1000], feats[1000:], target[1000:], ["c"], None)
    knn = knn_probe(feats[:1000], target[:1000], feats[1000:], target[1000:], k=5, names=["c"])
    assert lin["r2"]["c"] < 0.2 and knn["r2"]["c"] > 0.9 and knn["k"] == 5, (lin["r2"], knn)
    noise = torch.randn(1200, 2, generator=g)
    assert knn_probe(noise[:1000], target[:1000], noise[1000:], target[1000:], k=5)["r2"]["c0"] < 0.2


def test_spearman_and_distance_ranks() -> None:
    assert spearman(torch.arange(10.0), torch.arange(10.0) ** 3) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    g = torch.Generator().manual_seed(3)
    coords = torch.rand(500, 2, generator=g)
    # an embedding that is an isometry-ish (L1 over a rotated, scaled copy) tracks true distance
    emb = torch.cat([coords, coords @ torch.tensor([[0.7, -0.7], [0.7, 0.7]])], 1) * 5.0
    good = distance_rank_correlation(emb, coords, success_radius=0.05, num_pairs=3000)
    assert good["spearman_all"] > 0.9 and good["spearman_near"] > 0.7 and good["pairs_near"] > 100
    noise = distance_rank_correlation(torch.randn(500, 16, generator=g), coords, success_radius=0.05, num_pairs=3000)
    assert abs(noise["spearman_all"]) < 0.1


def test_distance_profile_shows_slope_and_plateau() -> None:
    """The profile rises with true distance for an isometry; a saturating embedding shows a plateau near 1."""
    g = torch.Generator().manual_seed(5)
    coords = torch.rand(800, 2, generator=g)
    linear = distance_rank_correlation(coords * 3.0, coords, success_radius=0.05, num_pairs=3000)
    prof = linear["profile"]
    assert len(prof) == len(linear["profile_edges"]) - 1 and all(a < b for a, b in zip(prof[:6], prof[1:7]))
    assert linear["plateau"] > 1.2  # bin [1.5r, 2r) sits ~1.4x above [1r, 1.5r) for an isometry
    # Gaussian bumps of std 0.01 (a fifth of the radius 0.05): latent distance saturates inside the radius
    centres = torch.rand(64, 2, generator=g)
    bumps = torch.exp(-((coords[:, None] - centres[None]) ** 2).sum(-1) / (2 * 0.01**2))  # (M, 64)
    sharp = distance_rank_correlation(bumps, coords, success_radius=0.05, num_pairs=3000)
    assert sharp["plateau"] < 1.2 < linear["plateau"]  # measured 1.13 vs 1.37


def test_effective_rank_and_collapse_stats() -> None:
    g = torch.Generator().manual_seed(4)
    iso = torch.randn(2000, 8, generator=g)
    assert effective_rank(iso) > 7.5
    rank1 = torch.randn(2000, 1, generator=g) * torch.ones(1, 8)
    assert effective_rank(rank1) < 1.1
    stats = collapse_stats(torch.zeros(4, 16, 8) + torch.randn(1, 1, 8, generator=g))
    assert stats["std_clip"] == 0.0 and stats["std_token"] == 0.0
    assert math.isfinite(stats["rank_token"])


def test_probe_encoder_end_to_end_shapes() -> None:
    enc = VideoViT(EncoderConfig(img_size=32, dim=32, depth=1, heads=2))
    g = torch.Generator().manual_seed(5)
    frames = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g)
    emb = encode_frames(enc, frames, grids=((2, 2), None), batch_size=16)
    assert emb["2x2"].shape == (40, 4 * 32) and emb["mean"].shape == (40, 32)
    coords = torch.rand(40, 2, generator=g)
    res = probe_encoder(enc, frames[:30], coords[:30], frames[30:], coords[30:], names=["x", "y"], success_radius=0.1)
    assert {"2x2", "4x4", "collapse"} <= set(res)
    assert set(res["2x2"]["linear"]["r2"]) == {"x", "y"}


def test_probe_encoder_progress_bars(capsys: pytest.CaptureFixture[str]) -> None:
    """progress=True: tqdm bars (stderr) over the train and test frames and the pooling grids, labelled."""
    enc = VideoViT(EncoderConfig(img_size=32, dim=32, depth=1, heads=2))
    frames = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    coords = torch.rand(24, 2, generator=torch.Generator().manual_seed(2))
    probe_encoder(enc, frames[:16], coords[:16], frames[16:], coords[16:], grids=((2, 2),), progress=True, label="enc")
    err = capsys.readouterr().err
    assert "enc: train frames" in err and "16/16" in err and "enc: test frames" in err and "8/8" in err
    assert "enc: probes" in err and "1/1" in err
    probe_encoder(enc, frames[:16], coords[:16], frames[16:], coords[16:], grids=((2, 2),))
    assert capsys.readouterr().err == ""  # off by default in the library


def test_nearest_neighbour_retrieval_separates_informative_from_noise_features() -> None:
    """Features that encode the position retrieve a neighbour within the radius; pure noise features do not."""
    from worldmodel.eval.probes import nearest_neighbour_retrieval

    g = torch.Generator().manual_seed(0)
    train_xy, test_xy = torch.rand(800, 2, generator=g) * 2 - 1, torch.rand(200, 2, generator=g) * 2 - 1
    lift = torch.randn(2, 16, generator=g)
    good = nearest_neighbour_retrieval(train_xy @ lift, train_xy, test_xy @ lift, test_xy, success_radius=0.15)
    noise = nearest_neighbour_retrieval(
        torch.randn(800, 16, generator=g), train_xy, torch.randn(200, 16, generator=g), test_xy, success_radius=0.15
    )
    assert good["beyond_radius"] < 0.05 and good["median"] < 0.1
    assert noise["beyond_radius"] > 0.7  # a random neighbour in a 2 x 2 square is rarely within 0.15
    assert good["oracle_median"] == noise["oracle_median"] <= good["median"] + 1e-9


# --- probes on files without a registered environment (imported data) ------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_parse_coords_names_slices_and_errors() -> None:
    from worldmodel.eval.probes import parse_coords

    dims = {"state": 5, "proprio": 2}
    assert parse_coords("state", dims).names == [f"state[{k}]" for k in range(5)]
    spec = parse_coords("x=state[0], y=state[1],yaw=state[4]", dims)
    assert spec.names == ["x", "y", "yaw"] and spec.sources == ["state[0]", "state[1]", "state[4]"]
    assert parse_coords("pos=proprio[0:2],state[3:]", dims).names == ["pos[0]", "pos[1]", "state[3]", "state[4]"]
    frames = {"states": torch.arange(10.0).reshape(2, 5), "proprio": torch.tensor([[7.0, 8.0], [9.0, 6.0]])}
    assert parse_coords("b=proprio[1],a=state[2]", dims).select(frames).tolist() == [[8.0, 2.0], [6.0, 7.0]]
    for bad, pattern in [
        ("pos[0]", r"unknown column 'pos'; coordinates come from state \(5 dims\), proprio \(2 dims\)"),
        ("state[5]", r"index 5 is out of range: state has 5 dims \(indices 0 to 4\)"),
        ("state[1:9]", r"slice \[1:9\] is out of range"),
        ("state[3:3]", r"selects no dims"),
        ("state[-1]", r"must be \[i\] or \[a:b\] with a, b >= 0"),
        ("x=state[0],x=state[1]", r"names x more than once"),
        ("state,", r"empty item"),
        ("x=state[0", r"cannot parse 'x=state\[0'"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            parse_coords(bad, dims)


def test_coord_pair_distances_are_euclidean_from_anchors() -> None:
    from worldmodel.eval.probes import coord_pair_distances

    coords = torch.rand(50, 3, generator=torch.Generator().manual_seed(0))
    i, j, d = coord_pair_distances(coords, num_anchors=5)
    assert len(i) == 5 * 49 and len(set(j.tolist())) == 5 and bool((i != j).all())
    torch.testing.assert_close(d, (coords[i].double() - coords[j].double()).norm(dim=-1))


def imported_file(tmp_path: Path, with_state: bool = True) -> Path:
    """A stable-worldmodel-style recording imported with its preset (env_id none): 32x32 frames whose colour and a
    square show state (x, y); state also holds a constant dim and a random heading; proprio = (x, y) + noise."""
    import h5py
    import numpy as np
    from omegaconf import OmegaConf

    from worldmodel.data.importers import ImportSpec, import_dataset

    rng = np.random.default_rng(0)
    lengths = np.full(20, 16)
    n = int(lengths.sum())
    walk = rng.uniform(0, 1, (20, 1, 2)) + rng.normal(0, 0.04, (20, 16, 2)).cumsum(1)  # each episode anywhere
    xy = np.clip(walk, 0, 1).reshape(n, 2)
    state = np.concatenate([xy, np.ones((n, 1)), rng.uniform(-3, 3, (n, 1))], 1)
    pixels = np.zeros((n, 32, 32, 3), np.uint8)
    pixels[..., :2] = np.round(xy * 255)[:, None, None, :]  # red = x, green = y: any encoder sees both
    for k, (x, y) in enumerate((xy * 26).astype(int)):  # and a square at (x, y)
        pixels[k, y : y + 6, x : x + 6, 2] = 255
    src = tmp_path / "swm.h5"
    with h5py.File(src, "w") as f:
        f["pixels"], f["action"] = pixels, rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        f["proprio"] = (xy + rng.normal(0, 0.01, xy.shape)).astype(np.float32)
        if with_state:
            f["state"] = state
        f["ep_offset"], f["ep_len"] = np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths
    fields = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "import" / "stable_worldmodel.yaml"))
    assert isinstance(fields, dict)
    fields.pop("hydra")
    out = tmp_path / "imported.h5"
    import_dataset(ImportSpec.from_dict({**fields, "source": str(src), "out": str(out)}))  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(imported file without an env, tiny random encoder.pt)."""
    from worldmodel.models.vit import save_encoder

    tmp = tmp_path_factory.mktemp("probe_imported")
    torch.manual_seed(0)
    enc = VideoViT(EncoderConfig(img_size=32, dim=32, depth=1, heads=2))
    return imported_file(tmp), save_encoder(enc, tmp / "encoder.pt")


def run_probe(*args: str) -> subprocess.CompletedProcess[str]:
    """scripts/probe_encoder.py as a subprocess, small settings."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "scripts" / "probe_encoder.py"), "--grids", "2", "--val-fraction", "0.25"]
    return subprocess.run([*cmd, "--anchors", "40", *args], env=env, capture_output=True, text=True, timeout=120)


def test_probe_script_on_imported_file_with_coords(imported: tuple[Path, Path], tmp_path: Path) -> None:
    """No env registered (env_id none): named coordinates from the state column, Euclidean pair distances and
    the given success radius; the table and the JSON carry the chosen names."""
    data, encoder = imported
    out = tmp_path / "probe.json"
    coords = "x=state[0],y=state[1],heading=state[3]"
    res = run_probe("--data", str(data), "--encoder", str(encoder), "--coords", coords, "--radius", "0.1",
                    "--json", str(out))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "pretrained: train frames" in res.stderr and "random-init: probes" in res.stderr  # progress bars
    assert "env none (coordinates from the file: x=state[0], y=state[1], heading=state[3]; Euclidean" in res.stdout
    assert "success radius 0.1" in res.stdout and "random-init: fresh seed 0" in res.stdout
    for row in ("R2 x", "R2 heading", "RMSE/radius y", "Spearman (near < 2r)", "NN beyond radius (frac)"):
        assert row in res.stdout, row
    r2 = json.loads(out.read_text())["pretrained"]["2x2"]["linear"]["r2"]
    assert set(r2) == {"x", "y", "heading"}
    # the frames' colour shows (x, y), so even a random encoder's features carry them; the heading is noise
    # (measured 0.89, 0.95, 0.03): the coordinates are the right columns of the right frames
    assert r2["x"] > 0.5 and r2["y"] > 0.5 and r2["heading"] < 0.3, r2


def test_probe_script_defaults_to_state_without_env(imported: tuple[Path, Path]) -> None:
    """No --coords and no env: the state column with a note; its constant dim is left out; no --radius, so no
    radius rows."""
    data, encoder = imported
    res = run_probe("--data", str(data), "--encoder", str(encoder))
    assert res.returncode == 0, res.stderr
    assert "note: the file records no environment (env_id none); probing the file's state column" in res.stderr
    assert "note: left out state[2]: constant" in res.stderr  # diagnostics are log lines (-q hides them)
    quiet = run_probe("--data", str(data), "--encoder", str(encoder), "-q", "--no-progress")
    assert quiet.returncode == 0 and "note:" not in quiet.stderr and "R2 state[0]" in quiet.stdout, quiet.stderr
    assert "R2 state[0]" in res.stdout and "R2 state[3]" in res.stdout and "R2 state[2]" not in res.stdout
    assert "RMSE/radius" not in res.stdout and "success radius none (--radius not given)" in res.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["--coords", "x=pos[0]"], "--coords: 'x=pos[0]': unknown column 'pos'"),
        (["--coords", "x=state[0],y=state[7]"], "index 7 is out of range: state has 4 dims"),
        (["--coords", "state[2]"], "--coords: state[2] never change"),
        (["--coords", "state", "--radius", "0"], "argument --radius: must be a finite number > 0"),
        (["--grids", "2,x"], "'x' is not a pooling grid"),
    ],
)
def test_probe_script_bad_coords_are_one_error_line(
    imported: tuple[Path, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    data, encoder = imported
    out = tmp_path / "probe.json"
    res = run_probe("--data", str(data), "--encoder", str(encoder), "--json", str(out), *args)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert not out.exists()


def test_probe_script_with_registered_env_keeps_env_coords_unless_coords_given(
    imported: tuple[Path, Path], tmp_path: Path
) -> None:
    """A file from one of the library's envs: its task coordinates and success radius as before; --coords
    switches to the file's columns even then."""
    from worldmodel.data.collect import CollectConfig, collect

    _, encoder = imported
    data = tmp_path / "tworoom.h5"
    cfg = CollectConfig(env_id="wm/TwoRoom-v0", out=str(data), episodes=8, episode_length=12, workers=1,
                        env_kwargs={"image_size": 32}, seed=1)  # fmt: skip
    collect(cfg, progress=False)
    res = run_probe("--data", str(data), "--encoder", str(encoder))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("env wm/TwoRoom-v0  train frames ") and "success radius 0.15  " in res.stdout
    assert "R2 agent_x" in res.stdout and "RMSE/radius agent_y" in res.stdout and "note:" not in res.stdout
    res = run_probe("--data", str(data), "--encoder", str(encoder), "--coords", "proprio")
    assert res.returncode == 0, res.stderr
    assert "env wm/TwoRoom-v0 (coordinates from the file: proprio[0], proprio[1]" in res.stdout
    assert "R2 proprio[0]" in res.stdout and "R2 agent_x" not in res.stdout and "RMSE/radius" not in res.stdout
