"""Trajectory files: writer/reader round trip, clip loading, splits, workers, and every bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from worldmodel.data import ClipDataset, DatasetError, DatasetMeta, TrajectoryFile, TrajectoryWriter
from worldmodel.data.schema import SCHEMA_VERSION

A, P, DS, H = 2, 4, 6, 16


def make_meta(**extra: object) -> DatasetMeta:
    return DatasetMeta(
        schema_version=SCHEMA_VERSION,
        env_id="wm/Test-v0",
        env_kwargs={"image_size": H},
        action_low=-np.ones(A, np.float32),
        action_high=np.ones(A, np.float32),
        control_dt=0.05,
        policy="random",
        seed=0,
        extra=dict(extra),
    )


def make_episode(ep: int, n: int) -> dict[str, np.ndarray]:
    """Episode whose every value encodes (episode, frame) so reads can be checked exactly."""
    t = np.arange(n)
    code = ep * 1000 + t  # (n,)
    pixels = np.zeros((n, H, H, 3), np.uint8)
    pixels[:, 0, 0, 0] = ep
    pixels[:, 0, 0, 1] = t
    actions = np.stack([code, -code], axis=1).astype(np.float32)
    actions[-1] = 0.0
    return {
        "pixels": pixels,
        "actions": actions,
        "proprio": np.repeat(code[:, None], P, axis=1).astype(np.float32),
        "state": np.repeat(code[:, None], DS, axis=1).astype(np.float64),
        "success": t == n - 1,
        "distance": (n - 1 - t).astype(np.float32),
    }


def write_file(path: Path, lengths: list[int], **kw: object) -> Path:
    with TrajectoryWriter(path, make_meta(), **kw) as w:
        for i, n in enumerate(lengths):
            w.append(make_episode(i, n), seed=100 + i, goal_state=np.full(DS, i, np.float64))
    return path


@pytest.fixture()
def traj(tmp_path: Path) -> Path:
    return write_file(tmp_path / "traj.h5", [12, 9, 15, 10, 11])


def test_round_trip(traj: Path) -> None:
    tf = TrajectoryFile(traj, verify=True)
    assert tf.num_episodes == 5 and tf.num_frames == 57
    assert tf.meta.env_id == "wm/Test-v0" and tf.meta.env_kwargs == {"image_size": H}
    ep = tf.episode(2)
    ref = make_episode(2, 15)
    for k in ref:
        np.testing.assert_array_equal(ep[k], ref[k])
    assert int(ep["seed"]) == 102 and np.all(ep["goal_state"] == 2)
    s = tf.summary()
    assert s["episodes"] == 5 and s["steps"] == 52 and s["image_shape"] == [H, H, 3]


def test_clip_contents_and_frameskip(traj: Path) -> None:
    ds = ClipDataset(traj, clip_len=4, frameskip=2, split="all")
    span = 7
    assert len(ds) == sum(n - span + 1 for n in [12, 9, 15, 10, 11])
    for idx in [0, 5, len(ds) - 1]:
        item = ds[idx]
        ep, start = int(item["episode"]), int(item["start"])
        assert item["pixels"].shape == (4, 3, H, H) and item["pixels"].dtype == torch.uint8
        frames = start + 2 * torch.arange(4)
        assert torch.equal(item["pixels"][:, 0, 0, 0], torch.full((4,), ep, dtype=torch.uint8))
        assert torch.equal(item["pixels"][:, 1, 0, 0].long(), frames)
        assert torch.equal(item["proprio"][:, 0], (ep * 1000 + frames).float())
        # actions: (T-1, 2*A): the two skipped actions between kept frames, concatenated.
        assert item["actions"].shape == (3, 2 * A)
        expect = torch.tensor(
            [
                [ep * 1000 + f, -(ep * 1000 + f), ep * 1000 + f + 1, -(ep * 1000 + f + 1)]
                for f in frames[:-1].tolist()
            ],
            dtype=torch.float32,
        )
        assert torch.equal(item["actions"], expect)
        assert item["state"].dtype == torch.float32 and item["state"].shape == (4, DS)


def test_clips_never_cross_episodes(traj: Path) -> None:
    ds = ClipDataset(traj, clip_len=5, split="all")
    eps = ds[np.arange(len(ds))[0]]["episode"]
    for i in range(len(ds)):
        item = ds[i]
        assert torch.all(item["pixels"][:, 0, 0, 0] == item["pixels"][0, 0, 0, 0])
        assert int(item["pixels"][0, 0, 0, 0]) == int(item["episode"])
    assert eps.dtype == torch.int64


def test_split_by_episode_is_disjoint_and_deterministic(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.h5", [6] * 20)
    tr = ClipDataset(path, clip_len=3, split="train", val_fraction=0.2, seed=1)
    va = ClipDataset(path, clip_len=3, split="val", val_fraction=0.2, seed=1)
    assert set(tr.episode_ids).isdisjoint(va.episode_ids)
    assert len(tr.episode_ids) == 16 and len(va.episode_ids) == 4
    assert np.array_equal(
        va.episode_ids, ClipDataset(path, clip_len=3, split="val", val_fraction=0.2, seed=1).episode_ids
    )


def test_dataloader_workers_match_single_process(traj: Path) -> None:
    ds = ClipDataset(traj, clip_len=3, split="all")
    ref = [ds[i]["proprio"] for i in range(len(ds))]
    dl = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    got = torch.cat([b["proprio"] for b in dl])
    assert torch.equal(got, torch.stack(ref))


def test_in_memory_equals_on_disk(traj: Path) -> None:
    a = ClipDataset(traj, clip_len=4, split="all")
    b = ClipDataset(traj, clip_len=4, split="all", in_memory=True)
    for i in [0, 7, len(a) - 1]:
        for k in ("pixels", "actions", "proprio", "state"):
            assert torch.equal(a[i][k], b[i][k])


# ----------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="file not found"):
        TrajectoryFile(tmp_path / "nope.h5")


def test_truncated_file(traj: Path, tmp_path: Path) -> None:
    bad = tmp_path / "trunc.h5"
    data = traj.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="trunc.h5") as err:
        TrajectoryFile(bad)
    assert "corrupt" in str(err.value) or "truncated" in str(err.value)


def test_garbage_file(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.h5"
    bad.write_bytes(b"not an hdf5 file at all" * 100)
    with pytest.raises(DatasetError, match="garbage.h5.*not a readable HDF5"):
        TrajectoryFile(bad)


def test_missing_key(traj: Path, tmp_path: Path) -> None:
    bad = tmp_path / "nokey.h5"
    shutil.copy(traj, bad)
    with h5py.File(bad, "a") as f:
        del f["proprio"]
    with pytest.raises(DatasetError, match=r"nokey.h5.*missing dataset\(s\) \['proprio'\]"):
        TrajectoryFile(bad)


def test_unknown_schema_version(traj: Path, tmp_path: Path) -> None:
    bad = tmp_path / "v99.h5"
    shutil.copy(traj, bad)
    with h5py.File(bad, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(DatasetError, match="v99.h5.*unknown schema version 99"):
        TrajectoryFile(bad)


def test_overlapping_episode_bounds(traj: Path, tmp_path: Path) -> None:
    bad = tmp_path / "overlap.h5"
    shutil.copy(traj, bad)
    with h5py.File(bad, "a") as f:
        f["episode_starts"][2] = 5
    with pytest.raises(DatasetError, match="episode 2 starts at frame 5"):
        TrajectoryFile(bad)


def test_clip_longer_than_every_episode(traj: Path) -> None:
    with pytest.raises(DatasetError, match=r"traj.h5.*clip_len=20.*longest episode.*15"):
        ClipDataset(traj, clip_len=20, split="all")


def test_writer_refuses_to_overwrite_and_leaves_no_partial_file(traj: Path) -> None:
    before = traj.read_bytes()
    with pytest.raises(FileExistsError):
        TrajectoryWriter(traj, make_meta())
    # A failure mid-write leaves the existing file intact and no temporary file behind.
    with pytest.raises(ValueError, match="column 'proprio' has 3 rows"):
        with TrajectoryWriter(traj, make_meta(), overwrite=True) as w:
            w.append(make_episode(0, 5), seed=0, goal_state=np.zeros(DS))
            ep = make_episode(1, 5)
            ep["proprio"] = ep["proprio"][:3]
            w.append(ep, seed=1, goal_state=np.zeros(DS))
    assert traj.read_bytes() == before
    assert not list(traj.parent.glob(".traj.h5.tmp-*"))


def test_writer_rejects_nan(tmp_path: Path) -> None:
    ep = make_episode(0, 5)
    ep["actions"][2, 0] = np.nan
    with pytest.raises(ValueError, match="'actions' holds NaN"):
        with TrajectoryWriter(tmp_path / "n.h5", make_meta()) as w:
            w.append(ep, seed=0, goal_state=np.zeros(DS))
    assert not (tmp_path / "n.h5").exists()


def test_single_frame_clips(traj: Path) -> None:
    ds = ClipDataset(traj, clip_len=1, split="all")
    assert len(ds) == 57
    item = ds[3]
    assert item["pixels"].shape == (1, 3, H, H) and item["actions"].shape == (0, A)


def two_camera_episode(ep: int, n: int) -> dict[str, np.ndarray]:
    """make_episode with its pixels as camera 'front' and a brighter copy as camera 'wrist'."""
    cols = make_episode(ep, n)
    px = cols.pop("pixels")
    return {"pixels/front": px, "pixels/wrist": px + 7, **cols}


def test_schema_v2_cameras_round_trip_and_misuse_fails(tmp_path: Path) -> None:
    path = tmp_path / "v2.h5"
    with TrajectoryWriter(path, make_meta()) as w:
        for i, n in enumerate([5, 7]):
            w.append(two_camera_episode(i, n), seed=i, goal_state=np.zeros(DS))
    tf = TrajectoryFile(path, verify=True)
    assert tf.meta.schema_version == 2 and tf.cameras == ["front", "wrist"]
    ep = tf.episode(1)
    np.testing.assert_array_equal(ep["pixels"], make_episode(1, 7)["pixels"])  # the default camera
    np.testing.assert_array_equal(ep["pixels/wrist"], make_episode(1, 7)["pixels"] + 7)
    assert tf.summary()["cameras"] == {"front": [H, H, 3], "wrist": [H, H, 3]}
    # an episode with other cameras, or with both layouts, is refused and nothing is written
    bad = tmp_path / "bad.h5"
    with pytest.raises(ValueError, match=r"episode 1: pixel columns \['pixels/front'\] differ"):
        with TrajectoryWriter(bad, make_meta()) as w:
            w.append(two_camera_episode(0, 4), seed=0, goal_state=np.zeros(DS))
            one = two_camera_episode(1, 4)
            del one["pixels/wrist"]
            w.append(one, seed=1, goal_state=np.zeros(DS))
    with pytest.raises(ValueError, match="either 'pixels' or 'pixels/<camera>'"):
        with TrajectoryWriter(bad, make_meta()) as w:
            w.append({**make_episode(0, 4), "pixels/side": make_episode(0, 4)["pixels"]}, 0, np.zeros(DS))
    assert not bad.exists() and not list(tmp_path.glob(".bad.h5.tmp-*"))
    # a damaged cameras attribute is a clear error
    tf.close()
    with h5py.File(path, "a") as f:
        f.attrs["cameras"] = '["front"]'
    with pytest.raises(DatasetError, match=r"holds cameras \['front', 'wrist'\] but the cameras attribute lists"):
        TrajectoryFile(path)
