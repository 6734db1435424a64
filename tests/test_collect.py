"""Collection end to end: real envs, real worker processes, real HDF5; resume after a SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodel.data import ClipDataset, DatasetError, TrajectoryFile
from worldmodel.data.collect import CollectConfig, collect, shard_dir_for

ROOT = Path(__file__).resolve().parents[1]
ENV = "wm/TwoRoom-v0"


def cfg(out: Path, **kw: object) -> CollectConfig:
    base = dict(
        env_id=ENV, out=str(out), episodes=4, episode_length=20, workers=1, env_kwargs={"image_size": 64}
    )
    base.update(kw)
    return CollectConfig(**base)  # type: ignore[arg-type]


def test_collect_round_trip_into_clips(tmp_path: Path) -> None:
    out = collect(cfg(tmp_path / "c.h5"), progress=False)
    tf = TrajectoryFile(out, verify=True)
    assert tf.num_episodes == 4 and tf.num_frames == 4 * 21
    assert tf.meta.env_id == ENV and tf.meta.policy == "explore"
    assert tf.image_shape == (64, 64, 3)
    ep = tf.episode(1)
    assert np.all(ep["actions"][-1] == 0) and np.all(np.abs(ep["actions"][:-1]) <= 1.0)
    assert ep["pixels"].std() > 0  # a real rendered scene, not a blank frame
    assert not shard_dir_for(out).exists()
    ds = ClipDataset(out, clip_len=4, frameskip=2, split="all")
    item = ds[len(ds) - 1]
    assert item["pixels"].shape == (4, 3, 64, 64) and item["actions"].shape == (3, 4)
    # The clip's state column matches what the file holds for that episode and frame.
    e, s = int(item["episode"]), int(item["start"])
    np.testing.assert_allclose(
        item["state"].numpy(), tf.episode(e)["state"][s : s + 7 : 2].astype(np.float32)
    )


def test_same_data_for_any_worker_count(tmp_path: Path) -> None:
    a = TrajectoryFile(collect(cfg(tmp_path / "a.h5", workers=1), progress=False))
    b = TrajectoryFile(collect(cfg(tmp_path / "b.h5", workers=2), progress=False))
    for i in range(4):
        ea, eb = a.episode(i), b.episode(i)
        for k in ("pixels", "actions", "state"):
            np.testing.assert_array_equal(ea[k], eb[k])


def test_rerun_is_a_no_op_and_other_config_is_refused(tmp_path: Path) -> None:
    out = collect(cfg(tmp_path / "c.h5"), progress=False)
    mtime = out.stat().st_mtime_ns
    collect(cfg(tmp_path / "c.h5"), progress=False)
    assert out.stat().st_mtime_ns == mtime
    with pytest.raises(DatasetError, match="not collected with this config.*overwrite=true"):
        collect(cfg(tmp_path / "c.h5", seed=5), progress=False)
    assert out.stat().st_mtime_ns == mtime
    collect(cfg(tmp_path / "c.h5", seed=5, overwrite=True), progress=False)
    assert TrajectoryFile(out).meta.seed == 5


def _collect_cmd(out: Path, episodes: int, workers: int) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "scripts" / "collect.py"),
        "env=tworoom",
        f"episodes={episodes}",
        "episode_length=40",
        f"workers={workers}",
        f"out={out}",
        "hydra.run.dir=" + str(out.parent / "hydra"),
    ]


def test_resume_after_sigkill(tmp_path: Path) -> None:
    out = tmp_path / "k.h5"
    episodes = 10
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        _collect_cmd(out, episodes, 1),
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    shards = shard_dir_for(out)
    deadline = time.time() + 120
    while time.time() < deadline:
        if shards.exists() and len(list(shards.glob("ep_*.npz"))) >= 3:
            break
        if proc.poll() is not None:
            pytest.fail("collector exited before it could be killed")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(shards.glob("ep_*.npz")))
    assert 3 <= done_before < episodes
    assert not out.exists(), "a killed collection must not leave a (partial) output file"

    res = subprocess.run(
        _collect_cmd(out, episodes, 2), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    tf = TrajectoryFile(out, verify=True)
    assert tf.num_episodes == episodes
    # No episode lost or duplicated: identical to an uninterrupted in-process collection.
    ref = TrajectoryFile(
        collect(cfg(tmp_path / "ref.h5", episodes=episodes, episode_length=40), progress=False)
    )
    np.testing.assert_array_equal(tf.episode_seeds, ref.episode_seeds)
    assert len(set(tf.episode_seeds.tolist())) == episodes
    for i in range(episodes):
        np.testing.assert_array_equal(tf.episode(i)["state"], ref.episode(i)["state"])


def test_collect_script_reports_bad_output_clearly(tmp_path: Path) -> None:
    out = tmp_path / "x.h5"
    out.write_bytes(b"precious user data")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        _collect_cmd(out, 2, 1), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2
    assert "error:" in res.stderr and "x.h5" in res.stderr and "overwrite=true" in res.stderr
    assert out.read_bytes() == b"precious user data"


def test_clip_dataset_batches_through_dataloader(tmp_path: Path) -> None:
    out = collect(cfg(tmp_path / "c.h5", episodes=3), progress=False)
    dl = torch.utils.data.DataLoader(ClipDataset(out, clip_len=3), batch_size=5, shuffle=True, num_workers=2)
    batch = next(iter(dl))
    assert batch["pixels"].shape == (5, 3, 3, 64, 64) and batch["pixels"].dtype == torch.uint8


def test_bad_policy_kwargs_fail_before_anything_is_written(tmp_path: Path) -> None:
    """An explorer option that does not exist is refused up front: no shard folder, no output file."""
    out = tmp_path / "x.h5"
    with pytest.raises(ValueError, match="policy_kwargs"):
        collect(cfg(out, episodes=2, episode_length=5, policy_kwargs={"bogus": 1}), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_second_camera_is_optional_and_leaves_the_default_view_unchanged(tmp_path: Path) -> None:
    """extra_cameras=[side] writes schema v2 with cameras [top, side]; top equals the single-camera file's pixels
    (and every other column is identical); an unknown camera name fails before anything is written."""
    small = {"image_size": 16}
    one_cfg = cfg(tmp_path / "one.h5", episodes=2, episode_length=5, env_kwargs=small)
    one = TrajectoryFile(collect(one_cfg, progress=False))
    two_cfg = cfg(tmp_path / "two.h5", episodes=2, episode_length=5, env_kwargs={**small, "extra_cameras": ["side"]})
    two = TrajectoryFile(collect(two_cfg, progress=False), verify=True)
    assert (one.meta.schema_version, one.cameras) == (1, ["main"])
    assert (two.meta.schema_version, two.cameras) == (2, ["top", "side"])
    n = one.num_frames
    np.testing.assert_array_equal(two.read_pixels(0, n, "top"), one.read("pixels", 0, n))
    for key in ("actions", "proprio", "state", "success"):
        np.testing.assert_array_equal(two.read(key, 0, n), one.read(key, 0, n))
    side = two.read_pixels(0, n, "side")
    assert side.shape == (n, 16, 16, 3) and np.abs(side.astype(int) - one.read("pixels", 0, n)).mean() > 10
    bad = cfg(tmp_path / "bad.h5", episodes=1, episode_length=3, env_kwargs={**small, "extra_cameras": ["front"]})
    with pytest.raises(ValueError, match=r"'front' is not another camera of tworoom.xml \(it has \['top', 'side'\]"):
        collect(bad, progress=False)
    assert not (tmp_path / "bad.h5").exists()
