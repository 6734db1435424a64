"""LeRobot dataset folders (v2.1 and v3.0, two cameras, mp4 + parquet written here with PyAV and pyarrow) import
into schema v2 with values and frames intact; bad folders, missing videos, unknown cameras and dropped or
duplicated frames fail with one error and write nothing; schema v1 files still read; ClipDataset serves cameras."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from worldmodel.data import ClipDataset, DatasetError, TrajectoryFile, TrajectoryWriter
from worldmodel.data.importers import ImportSpec, import_dataset
from worldmodel.data.importers.lerobot_export import V21_VIDEO, V30_VIDEO, write_lerobot, write_mp4
from worldmodel.data.schema import DatasetMeta

ROOT = Path(__file__).resolve().parents[1]
CAMS = ["observation.images.top", "observation.images.wrist"]
LENGTHS = [12, 9, 15]
FPS = 10
KEYS = {"pixels": None, "action": "action", "proprio": "observation.state", "timestamp": "timestamp"}


def frames(e: int, n: int, cam: int) -> np.ndarray:
    """uint8 (n, 32, 32, 3): two flat halves whose colours change with frame, episode and camera, so a frame
    taken from the wrong time, episode or camera is far from the right one even after lossy encoding."""
    x = np.zeros((n, 32, 32, 3), np.uint8)
    t = np.arange(n)
    x[:, :16] = np.stack([(30 + 9 * t + 50 * e) % 256, np.full(n, 100 + 40 * cam), 200 - 6 * t], 1)[:, None, None]
    x[:, 16:] = np.stack([np.full(n, 50 + 40 * cam), (20 + 11 * t) % 256, np.full(n, 60 + 30 * e)], 1)[:, None, None]
    return x


def episodes() -> list[dict[str, np.ndarray]]:
    """Three episodes of unequal length: two cameras, a 3-d state and a 2-d action with distinct values."""
    out = []
    for e, n in enumerate(LENGTHS):
        t = np.arange(n)[:, None]
        out.append(
            {
                CAMS[0]: frames(e, n, 0),
                CAMS[1]: frames(e, n, 1),
                "observation.state": (e * 100 + t + np.array([0.0, 0.1, 0.2])).astype(np.float32),
                "action": (t * np.array([1.0, -1.0]) + 10 * e).astype(np.float32),
                "observation.effort": (t * 0.5).astype(np.float32),
            }
        )
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same episodes as a v2.1 and a v3.0 dataset (v3.0: two episodes per parquet / mp4 file)."""
    base = tmp_path_factory.mktemp("lerobot")
    eps = episodes()
    return {v: write_lerobot(base / v, eps, CAMS, fps=FPS, version=v, episodes_per_file=2) for v in ("v2.1", "v3.0")}


def spec(source: Path, out: Path, **kw: object) -> ImportSpec:
    return ImportSpec.from_dict({"source": str(source), "out": str(out), "format": "lerobot", "keys": KEYS, **kw})


def assert_frames_match(got: np.ndarray, want: np.ndarray, where: str) -> None:
    """Lossy video: every frame is within a small mean error of its own source frame, and nearer to it than to
    any other frame of the episode (so a shift by one frame would fail)."""
    assert got.shape == want.shape, where
    err = np.abs(got[:, None].astype(np.int16) - want[None].astype(np.int16)).mean(axis=(2, 3, 4))  # (T, T)
    assert np.all(np.diag(err) < 3.0), (where, np.diag(err))
    assert np.array_equal(err.argmin(axis=1), np.arange(len(got))), where


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_import_round_trip(datasets: dict[str, Path], tmp_path: Path, version: str) -> None:
    out = tmp_path / "out.h5"
    summary = import_dataset(spec(datasets[version], out))
    assert summary["episodes"] == 3 and summary["frames"] == sum(LENGTHS)
    assert summary["cameras"] == {"top": CAMS[0], "wrist": CAMS[1]}
    assert summary["unused_columns"] == ["observation.effort"]
    assert summary["control_dt"] == pytest.approx(1 / FPS)
    tf = TrajectoryFile(out, verify=True)
    assert tf.meta.schema_version == 2 and tf.cameras == ["top", "wrist"]
    assert tf.meta.extra["import_layout"] == f"lerobot-{version}" and tf.meta.extra["fps"] == FPS
    assert tf.episode_lengths.tolist() == LENGTHS
    for e, src in enumerate(episodes()):
        ep = tf.episode(e)
        np.testing.assert_array_equal(ep["proprio"], src["observation.state"])
        np.testing.assert_array_equal(ep["actions"][:-1], src["action"][:-1])
        assert np.all(ep["actions"][-1] == 0)
        for cam, key in zip(tf.cameras, CAMS):
            assert_frames_match(ep[f"pixels/{cam}"], src[key], f"{version} episode {e} {cam}")
        np.testing.assert_array_equal(ep["pixels"], ep["pixels/top"])


def test_both_layouts_give_the_same_file_content(datasets: dict[str, Path], tmp_path: Path) -> None:
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    import_dataset(spec(datasets["v2.1"], a, cameras=["wrist"]))
    import_dataset(spec(datasets["v3.0"], b, cameras=["observation.images.wrist"]))
    ta, tb = TrajectoryFile(a), TrajectoryFile(b)
    assert ta.cameras == tb.cameras == ["wrist"]
    for key in ("pixels", "actions", "proprio", "state"):
        np.testing.assert_array_equal(ta.read(key, 0, ta.num_frames), tb.read(key, 0, tb.num_frames))


def test_partial_frame_reads_match_full_decode(datasets: dict[str, Path]) -> None:
    """read_frames on a window (the benchmark's direct clip reader) returns the same frames as a full decode."""
    from worldmodel.data.importers.lerobot_source import LeRobotSource

    src = LeRobotSource(spec(datasets["v3.0"], Path("unused.h5")))
    ref = src.episodes[1]  # second episode of the first v3.0 file: needs the seek to from_timestamp
    full = src.read(ref, CAMS[0])
    np.testing.assert_array_equal(src.read_frames(ref, CAMS[0], 3, 7), full[3:7])
    assert_frames_match(full, episodes()[1][CAMS[0]], "episode 1")


def run_import(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """scripts/import_dataset.py with the lerobot_dataset preset, run from ``cwd``."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_dataset.py"), "--config-name", "lerobot_dataset", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_script_imports_and_reports_cameras(datasets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    r = run_import(f"source={datasets['v3.0']}", f"out={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "cameras" in r.stdout and out.is_file()


def _corrupt(root: Path, version: str, camera: str, kind: str) -> None:
    """Re-encode the first video file of ``camera`` with frame 5 dropped (its time left empty) or frame 4
    duplicated (shown twice, every later frame one step late)."""
    if version == "v2.1":
        path = root / V21_VIDEO.format(episode_chunk=0, video_key=camera, episode_index=0)
        src = episodes()[0][camera]
    else:  # the first v3.0 file holds episodes 0 and 1 back to back
        path = root / V30_VIDEO.format(video_key=camera, chunk_index=0, file_index=0)
        src = np.concatenate([episodes()[0][camera], episodes()[1][camera]])
    idx = list(range(len(src)))
    if kind == "drop":
        idx.remove(5)
        pts = idx
    else:
        idx.insert(5, 4)
        pts = list(range(len(idx)))
    write_mp4(path, src[idx], FPS, pts=pts)


@pytest.mark.parametrize(
    ("version", "kind", "message"),
    [
        ("v2.1", "drop", r"episode 0, camera 'observation.images.wrist': no video frame at t=0\.500 s .*dropped"),
        ("v2.1", "duplicate", r"episode 0, camera 'observation.images.wrist': 1 video frame\(s\) from t=1\.200 s "),
        ("v3.0", "drop", r"episode 0, camera 'observation.images.wrist': no video frame at t=0\.500 s .*dropped"),
        ("v3.0", "duplicate", r"episode 1, camera 'observation.images.wrist': 1 video frame\(s\) from t=0\.900 s "),
    ],
)
def test_dropped_or_duplicated_frame_is_an_error(
    datasets: dict[str, Path], tmp_path: Path, version: str, kind: str, message: str
) -> None:
    root = tmp_path / "ds"
    shutil.copytree(datasets[version], root)
    _corrupt(root, version, CAMS[1], kind)
    out = tmp_path / "out.h5"
    with pytest.raises(DatasetError, match=message):
        import_dataset(spec(root, out))
    assert not out.exists() and not list(tmp_path.glob(".out.h5.tmp-*"))


def test_bad_input_exits_2_and_writes_nothing(datasets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    not_ds = tmp_path / "plain"
    not_ds.mkdir()
    (not_ds / "x.txt").write_text("hello")
    missing = tmp_path / "missing_video"
    shutil.copytree(datasets["v2.1"], missing)
    (missing / V21_VIDEO.format(episode_chunk=0, video_key=CAMS[0], episode_index=2)).unlink()
    cases = [
        ([f"source={not_ds}", "format=lerobot"], r"not a LeRobot dataset folder: meta/info\.json is missing"),
        ([f"source={missing}"], r"episode 2, camera 'observation.images.top': video file is missing"),
        ([f"source={datasets['v3.0']}", "cameras=[top,side]"], r"camera 'side' is not a video feature .*wrist"),
    ]
    for args, message in cases:
        r = run_import(*args, f"out={out}", cwd=tmp_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("error: ") and re.search(message, r.stderr), (args, r.stderr)
        assert not out.exists() and not list(tmp_path.glob(".out.h5.tmp-*"))


def test_schema_v1_still_reads_and_writes(tmp_path: Path) -> None:
    """A single unnamed pixels column is written as version 1 (unchanged layout) and read as camera 'main'."""
    meta = DatasetMeta(2, "none", {}, -np.ones(2, np.float32), np.ones(2, np.float32), 0.1, "test", 0, {})
    path = tmp_path / "v1.h5"
    rng = np.random.default_rng(0)
    px = rng.integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
    ep = {
        "pixels": px,
        "actions": np.zeros((6, 2), np.float32),
        "proprio": np.zeros((6, 1), np.float32),
        "state": np.zeros((6, 1)),
        "success": np.zeros(6, bool),
        "distance": np.zeros(6, np.float32),
    }
    with TrajectoryWriter(path, meta) as w:
        w.append(ep, seed=0, goal_state=np.zeros(1))
    with h5py.File(path) as f:
        assert f.attrs["schema_version"] == 1 and isinstance(f["pixels"], h5py.Dataset) and "cameras" not in f.attrs
    tf = TrajectoryFile(path)
    assert tf.cameras == ["main"]
    np.testing.assert_array_equal(tf.read_pixels(0, 6, "main"), px)
    np.testing.assert_array_equal(tf.read("pixels/main", 0, 6), px)
    with pytest.raises(DatasetError, match=r"no camera 'top'; the file has cameras \['main'\]"):
        tf.read_pixels(0, 6, "top")
    ds = ClipDataset(path, clip_len=3, split="all", cameras=["main"])
    assert ds[0]["views"].shape == (1, 3, 3, 8, 8)


def test_two_camera_clip_dataset(datasets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "two.h5"
    import_dataset(spec(datasets["v3.0"], out))
    tf = TrajectoryFile(out)
    default = ClipDataset(out, clip_len=4, frameskip=2, split="all")
    assert "views" not in default[0] and default.meta["cameras"] == ["top"]
    both = ClipDataset(out, clip_len=4, frameskip=2, split="all", cameras=["wrist", "top"], in_memory=True)
    assert both.meta["cameras"] == ["wrist", "top"]
    for i in (0, len(both) - 1):
        item, ref = both[i], default[i]
        assert item["views"].shape == (2, 4, 3, 32, 32) and item["views"].dtype == torch.uint8
        assert torch.equal(item["views"][1], ref["pixels"])  # top
        assert torch.equal(item["pixels"], item["views"][0])  # the first listed camera
        ep, start = both.locate(i)
        g = int(tf.episode_starts[ep]) + start
        wrist = torch.from_numpy(tf.read_pixels(g, g + 7, "wrist")[::2]).permute(0, 3, 1, 2)
        assert torch.equal(item["views"][0], wrist)
        assert torch.equal(item["actions"], ref["actions"])
    with pytest.raises(DatasetError, match=r"no camera 'side'"):
        ClipDataset(out, clip_len=4, split="all", cameras=["side"])


def test_config_errors_name_the_fix(datasets: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use --config-name lerobot_dataset"):
        ImportSpec.from_dict(
            {"source": str(datasets["v2.1"]), "out": "x.h5", "keys": {"pixels": "observation.image", "action": "a"}}
        )
    with pytest.raises(ValueError, match="cameras is for format=lerobot"):
        ImportSpec.from_dict(
            {"source": "x.h5", "out": "y.h5", "keys": {"pixels": "p", "action": "a"}, "cameras": ["a"]}
        )
    info = json.loads((datasets["v2.1"] / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v2.1"
