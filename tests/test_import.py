"""Importers: every supported foreign layout round-trips into ClipDataset batches identical to native data;
bad input fails with an error naming the file, the key and the rows; the docs' worked example runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldmodel.data import ClipDataset, DatasetError, TrajectoryFile
from worldmodel.data.collect import CollectConfig, collect
from worldmodel.data.importers import Boundaries, ImportSpec, episode_ranges, import_dataset

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"pixels": "pixels", "action": "action", "proprio": "proprio", "state": "state"}


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small natively collected file: 3 episodes of unequal length would be nicer, collect gives equal ones."""
    out = tmp_path_factory.mktemp("native") / "native.h5"
    cfg = CollectConfig(
        env_id="wm/TwoRoom-v0",
        out=str(out),
        episodes=3,
        episode_length=9,
        workers=1,
        env_kwargs={"image_size": 16},
        seed=3,
    )
    return collect(cfg, progress=False)


def columns(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """All frame columns of a trajectory file, plus episode starts and lengths."""
    tf = TrajectoryFile(path)
    cols = {k: tf.read(k, 0, tf.num_frames) for k in ("pixels", "actions", "proprio", "state", "success")}
    return cols, tf.episode_starts.copy(), tf.episode_lengths.copy()


def assert_same_batches(a: Path, b: Path) -> None:
    """Every ClipDataset item (clip_len 3, frameskip 2) of the two files is identical."""
    da = ClipDataset(a, clip_len=3, frameskip=2, split="all")
    db = ClipDataset(b, clip_len=3, frameskip=2, split="all")
    assert len(da) == len(db) > 0
    for i in range(len(da)):
        x, y = da[i], db[i]
        for k in ("pixels", "actions", "proprio", "state", "episode", "start"):
            assert torch.equal(x[k], y[k]), (k, i)


def spec(source: Path, out: Path, **kw: Any) -> ImportSpec:
    """An ImportSpec with our default mapping, overridden by kw."""
    d: dict[str, Any] = {"source": str(source), "out": str(out), "keys": dict(KEYS)}
    d.update(kw)
    return ImportSpec.from_dict(d)


def flat_file(path: Path, cols: dict[str, np.ndarray], extra: dict[str, np.ndarray]) -> Path:
    """Write flat columns (HDF5 or npz by suffix)."""
    data = {**cols, **extra}
    if path.suffix == ".npz":
        np.savez(path, **data)
    else:
        with h5py.File(path, "w") as f:
            for k, v in data.items():
                f[k] = v
    return path


def foreign_flat(native: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Native columns renamed to foreign keys, with a non-zero last action per episode (it must be dropped)."""
    cols, starts, lengths = columns(native)
    act = cols["actions"].copy()
    act[starts + lengths - 1] = 0.5  # foreign files often store an action on the last row too
    return (
        {"pixels": cols["pixels"], "action": act, "proprio": cols["proprio"], "state": cols["state"]},
        starts,
        lengths,
    )


@pytest.mark.parametrize(
    "kind,suffix",
    [("index", ".h5"), ("lengths", ".npz"), ("offsets", ".h5"), ("swm", ".h5"), ("ranges", ".npz"), ("ends", ".h5")],
)
def test_flat_layouts_round_trip(native: Path, tmp_path: Path, kind: str, suffix: str) -> None:
    cols, starts, lengths = foreign_flat(native)
    n = len(cols["pixels"])
    ends = starts + lengths
    extra = {
        "episode_index": np.repeat(np.arange(len(starts)) + 7, lengths),  # any ids, one contiguous run each
        "ep_len": lengths,
        "ep_offset": starts,
        "ranges": np.stack([starts, ends], 1),
        "done": np.isin(np.arange(n), ends - 1),
        "timestamp": np.concatenate([np.arange(m) * 0.1 for m in lengths]),
    }
    src = flat_file(tmp_path / f"foreign{suffix}", cols, extra)
    boundaries = {
        "index": {"kind": "index", "key": "episode_index"},
        "lengths": {"kind": "lengths", "key": "ep_len"},
        "offsets": {"kind": "offsets", "key": "ep_offset"},
        "swm": {"kind": "offsets", "key": "ep_offset", "lengths_key": "ep_len"},
        "ranges": {"kind": "ranges", "key": "ranges"},
        "ends": {"kind": "ends", "key": "done"},
    }[kind]
    keys = {**KEYS, "timestamp": "timestamp"}
    summary = import_dataset(spec(src, tmp_path / "out.h5", boundaries=boundaries, keys=keys))
    assert summary["episodes"] == len(starts) and summary["frames"] == n
    assert summary["control_dt"] == pytest.approx(0.1) and summary["control_dt_from"] == "median timestamp step"
    assert_same_batches(native, tmp_path / "out.h5")
    TrajectoryFile(tmp_path / "out.h5", verify=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=6), st.integers(0, 100))
def test_every_boundary_kind_gives_the_same_episodes(lengths: list[int], first_id: int) -> None:
    """Index column, lengths, offsets (with and without lengths), ranges and end flags agree."""
    lens = np.array(lengths)
    n = int(lens.sum())
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    cols = {
        "idx": np.repeat(np.arange(len(lens)) * 3 + first_id, lens),
        "len": lens,
        "off": starts,
        "rng": np.stack([starts, starts + lens], 1),
        "end": np.isin(np.arange(n), starts + lens - 1),
    }
    expected = np.stack([starts, starts + lens], 1)
    for b in (
        Boundaries("index", "idx"),
        Boundaries("lengths", "len"),
        Boundaries("offsets", "off"),
        Boundaries("offsets", "off", "len"),
        Boundaries("ranges", "rng"),
        Boundaries("ends", "end"),
    ):
        np.testing.assert_array_equal(episode_ranges("f.h5", b, cols.__getitem__, n), expected, err_msg=b.kind)


def test_episode_groups_hdf5_npz_and_folder(native: Path, tmp_path: Path) -> None:
    cols, starts, lengths = foreign_flat(native)
    eps = [{k: v[s : s + m] for k, v in cols.items()} for s, m in zip(starts, lengths)]
    # HDF5: nested groups, Minari-like T-1 actions, CHW float images in 0-1.
    with h5py.File(tmp_path / "g.h5", "w") as f:
        for i, ep in enumerate(eps):
            g = f.create_group(f"episode_{i}")
            g["obs/pixels"] = np.moveaxis(ep["pixels"], -1, 1).astype(np.float32) / 255.0  # (T, 3, H, W)
            g["obs/proprio"] = ep["proprio"]
            g["obs/state"] = ep["state"]
            g["actions"] = ep["action"][:-1]
        f.create_group("metadata")  # not an episode: excluded by episode_pattern
    keys = {"pixels": "obs/pixels", "action": "actions", "proprio": "obs/proprio", "state": "obs/state"}
    s = import_dataset(
        spec(tmp_path / "g.h5", tmp_path / "g_out.h5", layout="episodes", episode_pattern="episode_*", keys=keys)
    )
    assert s["image_layout"] == "chw" and s["image_range"] == "unit"
    assert_same_batches(native, tmp_path / "g_out.h5")
    # npz with 'prefix/key' names and float 0-255 images (episode 10 sorts after 2: natural order).
    names = ["ep_1", "ep_2", "ep_10"]
    np.savez(
        tmp_path / "p.npz",
        **{
            f"{g}/{k}": (v.astype(np.float64) if k == "pixels" else v)
            for g, ep in zip(names, eps)
            for k, v in ep.items()
        },
    )
    s = import_dataset(spec(tmp_path / "p.npz", tmp_path / "p_out.h5", layout="episodes", episode_pattern="ep_*"))
    assert s["image_range"] == "byte"
    assert_same_batches(native, tmp_path / "p_out.h5")
    # A folder with one npz per episode.
    folder = tmp_path / "eps"
    folder.mkdir()
    for g, ep in zip(names, eps):
        np.savez(folder / f"{g}.npz", **ep)
    import_dataset(spec(folder, tmp_path / "d_out.h5", layout="episodes", episode_pattern="ep_*", format="npz"))
    assert_same_batches(native, tmp_path / "d_out.h5")


def test_missing_optional_columns_get_documented_defaults(native: Path, tmp_path: Path) -> None:
    cols, starts, lengths = foreign_flat(native)
    src = flat_file(tmp_path / "f.h5", {"pixels": cols["pixels"], "action": cols["action"][:, 0]}, {"ep_len": lengths})
    import_dataset(
        spec(
            src,
            tmp_path / "o.h5",
            keys={"pixels": "pixels", "action": "action"},
            boundaries={"kind": "lengths", "key": "ep_len"},
            control_dt=0.25,
        )
    )
    tf = TrajectoryFile(tmp_path / "o.h5", verify=True)
    ep = tf.episode(0)
    assert ep["proprio"].shape == (lengths[0], 1) and not ep["proprio"].any()
    assert ep["state"].shape == (lengths[0], 1) and not ep["success"].any() and np.isnan(ep["distance"]).all()
    assert ep["actions"].shape == (lengths[0], 1) and ep["actions"][-1, 0] == 0.0
    assert tf.meta.control_dt == 0.25 and tf.meta.env_id == "none"
    a = cols["action"][:, 0][np.setdiff1d(np.arange(len(cols["action"])), starts + lengths - 1)]
    assert tf.meta.action_low[0] == a.min() and tf.meta.action_high[0] == a.max()  # bounds from the data
    item = ClipDataset(tmp_path / "o.h5", clip_len=4, split="all")[0]
    assert item["proprio"].shape == (4, 1) and item["actions"].shape == (3, 1)


def expect_error(tmp_path: Path, source: Path, pattern: str, **kw: Any) -> None:
    """The import fails with a DatasetError/ValueError matching ``pattern`` and writes nothing."""
    out = tmp_path / "bad_out.h5"
    with pytest.raises((DatasetError, ValueError)) as info:
        import_dataset(spec(source, out, **kw))
    assert re.search(pattern, str(info.value)), str(info.value)
    assert not out.exists() and not list(tmp_path.glob(".bad_out.h5.tmp*"))


def test_bad_inputs_name_file_key_and_rows(native: Path, tmp_path: Path) -> None:
    cols, starts, lengths = foreign_flat(native)
    n = len(cols["pixels"])
    idx = {"kind": "index", "key": "episode_index"}
    ep_index = np.repeat(np.arange(3), lengths)
    good = dict(cols, episode_index=ep_index)

    def write(name: str, **changes: np.ndarray) -> Path:
        return flat_file(tmp_path / name, {**good, **changes}, {})

    src = write("a.h5")
    expect_error(
        tmp_path,
        src,
        r"a\.h5: key 'obs/proprio' \(mapped to proprio\) is not in the file",
        boundaries=idx,
        keys={**KEYS, "proprio": "obs/proprio"},
    )
    src = write("b.h5", proprio=cols["proprio"][:-3])
    expect_error(
        tmp_path,
        src,
        rf"b\.h5: key 'proprio' .* has {n - 3} rows but pixels .* has {n} \(rows {n - 3}:{n}",
        boundaries=idx,
    )
    src = write("c.h5", ep_len=lengths + np.array([0, 2, 0]))
    expect_error(
        tmp_path,
        src,
        rf"c\.h5: boundary key 'ep_len': episode lengths sum to {n + 2} .*\(rows {n}:{n + 2} are missing",
        boundaries={"kind": "lengths", "key": "ep_len"},
    )
    overlap = np.array([[0, lengths[0] + 2], [lengths[0], lengths[0] + lengths[1]]])
    src = write("d.h5", r=overlap)
    expect_error(
        tmp_path,
        src,
        rf"d\.h5: boundary key 'r': episode 1 \(rows {lengths[0]}:.*\) overlaps episode 0",
        boundaries={"kind": "ranges", "key": "r"},
    )
    src = write("e.h5", r=np.array([[0, 5], [5, n + 4]]))
    expect_error(
        tmp_path,
        src,
        rf"e\.h5: boundary key 'r': episode 1 covers rows 5:{n + 4}, out of range",
        boundaries={"kind": "ranges", "key": "r"},
    )
    split = ep_index.copy()
    split[2:4] = 1  # episode 1 appears inside episode 0: not contiguous
    src = write("f.h5", episode_index=split)
    expect_error(
        tmp_path,
        src,
        r"f\.h5: boundary key 'episode_index': episode 0 is not contiguous \(rows 0:2 and 4:",
        boundaries=idx,
    )
    src = write("g.h5", pixels=cols["pixels"].astype(np.int64) * 2)
    expect_error(
        tmp_path,
        src,
        r"g\.h5: key 'pixels' \(mapped to pixels\), episode 0 \(rows 0:10\): integer images "
        r"must lie in 0-255",
        boundaries=idx,
    )
    src = write("h.h5", action=np.array([str(x) for x in cols["action"][:, 0]], dtype="S8"))
    expect_error(
        tmp_path,
        src,
        r"h\.h5: key 'action' \(mapped to action\), episode 0 \(rows 0:10\): must be numeric",
        boundaries=idx,
    )
    bad_state = cols["state"].copy()
    bad_state[lengths[0] + 3] = np.nan
    src = write("i.h5", state=bad_state)
    expect_error(
        tmp_path,
        src,
        rf"i\.h5: key 'state' .* episode 1 \(rows {lengths[0]}:{2 * lengths[0]}\): NaN or inf "
        r"at rows 3:4 of the episode",
        boundaries=idx,
    )
    t = np.concatenate([np.arange(m) * 0.1 for m in lengths])
    t[lengths[0] + 5] = 0.0
    src = write("j.h5", ts=t)
    expect_error(
        tmp_path,
        src,
        r"j\.h5: key 'ts' \(mapped to timestamp\), episode 1 .*not strictly increasing at "
        r"rows 4:6",
        boundaries=idx,
        keys={**KEYS, "timestamp": "ts"},
    )
    src = write("k.h5", pixels=cols["pixels"].astype(np.float32) / 255.0 * 300.0)
    expect_error(
        tmp_path,
        src,
        r"k\.h5: key 'pixels'.*float images must lie in 0-1 for image_range='unit'",
        boundaries=idx,
        image_range="unit",
    )
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['boundary'\]"):
        ImportSpec.from_dict({"source": "x.h5", "out": "y.h5", "keys": KEYS, "boundary": {}})
    # An existing output is never overwritten without overwrite=true.
    (tmp_path / "exists.h5").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        import_dataset(spec(write("l.h5"), tmp_path / "exists.h5", boundaries=idx))
    assert (tmp_path / "exists.h5").read_bytes() == b"keep"


def test_dataset_goals_from_imported_file(native: Path, tmp_path: Path) -> None:
    """Offline-goal evaluation specs come out of an imported file exactly as out of the native one."""
    from worldmodel.eval.episodes import dataset_episode_specs

    cols, starts, lengths = foreign_flat(native)
    src = flat_file(tmp_path / "f.npz", cols, {"ep_len": lengths})
    import_dataset(
        spec(
            src,
            tmp_path / "o.h5",
            boundaries={"kind": "lengths", "key": "ep_len"},
            env_id="wm/TwoRoom-v0",
            env_kwargs={"image_size": 16},
        )
    )
    a = dataset_episode_specs(str(native), 3, offset=4, seed=0, split="all")
    b = dataset_episode_specs(str(tmp_path / "o.h5"), 3, offset=4, seed=0, split="all")
    for x, y in zip(a, b):
        assert x.source == y.source
        np.testing.assert_array_equal(x.init_state, y.init_state)
        np.testing.assert_array_equal(x.goal_state, y.goal_state)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_minari_dataset_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Minari dataset recorded locally from pixel-env rollouts imports frame for frame.

    Episodes are handed to minari.create_dataset_from_buffers (DataCollector.step needs jax, minari[create]).
    """
    minari = pytest.importorskip("minari")
    import gymnasium
    from minari.data_collector.episode_buffer import EpisodeBuffer

    import envs  # noqa: F401

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = gymnasium.make("wm/TwoRoom-v0", image_size=16, max_episode_steps=6, disable_env_checker=True)
    rng = np.random.default_rng(0)
    buffers = []
    for ep in range(3):
        obs, _ = env.reset(seed=ep)
        seq, acts, rews, terms, truncs = [obs], [], [], [], []
        done = False
        while not done:
            a = rng.uniform(-1, 1, 2).astype(np.float32)
            obs, r, term, trunc, _ = env.step(a)
            seq.append(obs)
            acts.append(a)
            rews.append(r)
            terms.append(term)
            truncs.append(trunc)
            done = term or trunc
        observations = {k: np.stack([o[k] for o in seq]) for k in ("pixels", "proprio")}  # (T+1, ...)
        buffers.append(
            EpisodeBuffer(
                id=ep,
                seed=ep,
                observations=observations,
                actions=np.stack(acts),
                rewards=rews,
                terminations=terms,
                truncations=truncs,
            )
        )
    minari.create_dataset_from_buffers(
        "wmtest/tworoom-random-v0", buffers, env=env, algorithm_name="random", jpeg_encoding=False
    )
    env.close()
    cfg = {
        "source": "wmtest/tworoom-random-v0",
        "out": str(tmp_path / "m.h5"),
        "format": "auto",
        "layout": "episodes",
        "keys": {"pixels": "observations/pixels", "action": "actions", "proprio": "observations/proprio"},
    }
    s = import_dataset(ImportSpec.from_dict(cfg))
    assert s["episodes"] == 3 and s["frames"] == 3 * 7 and s["env_id"] == "wm/TwoRoom-v0"
    assert {"rewards", "terminations", "truncations"} <= set(s["unused_columns"])
    assert not {"actions", "observations/pixels", "observations/proprio"} & set(s["unused_columns"])
    tf = TrajectoryFile(tmp_path / "m.h5", verify=True)
    ds = minari.load_dataset("wmtest/tworoom-random-v0")
    for i, ep in enumerate(ds.iterate_episodes()):
        ours = tf.episode(i)
        np.testing.assert_array_equal(ours["pixels"], ep.observations["pixels"])
        np.testing.assert_array_equal(ours["actions"][:-1], ep.actions)
        assert not ours["actions"][-1].any()
    item = ClipDataset(tmp_path / "m.h5", clip_len=3, split="all")[0]
    assert item["pixels"].shape == (3, 3, 16, 16)


def test_docs_example_runs(tmp_path: Path) -> None:
    """docs/own_data.md: its python block writes a foreign file, its shell block imports it; both run as-is."""
    text = (ROOT / "docs" / "own_data.md").read_text()
    py = re.search(r"```python\n(.*?)```", text, re.S)
    sh = re.search(r"```bash\n(python scripts/import_dataset.py.*?)```", text, re.S)
    assert py and sh
    subprocess.run([sys.executable, "-c", py.group(1)], cwd=tmp_path, check=True, timeout=60)
    cmd = sh.group(1).replace("\\\n", " ").split()
    cmd[0:2] = [sys.executable, str(ROOT / "scripts" / "import_dataset.py")]
    r = subprocess.run(
        cmd,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    tf = TrajectoryFile(tmp_path / "data" / "my_robot.h5", verify=True)
    assert tf.num_episodes == 4 and tf.image_shape == (32, 32, 3)
    # A broken mapping fails with one clear line and exit status 2.
    bad = cmd + ["keys.action=act", "out=data/other.h5"]
    r = subprocess.run(
        bad,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 2 and "key 'act' (mapped to action) is not in the file" in r.stderr


def preset(name: str, source: Path, out: Path) -> ImportSpec:
    """The ImportSpec of configs/import/<name>.yaml (as scripts/import_dataset.py builds it) for source/out."""
    from omegaconf import OmegaConf

    fields = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "import" / f"{name}.yaml"), resolve=False)
    assert isinstance(fields, dict)
    fields.pop("hydra", None)
    return ImportSpec.from_dict({**{str(k): v for k, v in fields.items()}, "source": str(source), "out": str(out)})


def swm_file(native: Path, path: Path, drop: tuple[str, ...] = ()) -> Path:
    """A stable-worldmodel recording of the native episodes: flat columns, ep_offset + ep_len, a reward column."""
    cols, starts, lengths = foreign_flat(native)
    cols["state"] = cols["state"] + 10.0  # unlike proprio, so a copy would show
    extra = {"ep_offset": starts, "ep_len": lengths, "reward": np.zeros(len(cols["pixels"]), np.float32)}
    return flat_file(path, {k: v for k, v in cols.items() if k not in drop}, extra)


def test_stable_worldmodel_preset_takes_the_state_column(native: Path, tmp_path: Path) -> None:
    """The preset maps `state`; the summary lists the columns it did not use (here the reward)."""
    src = swm_file(native, tmp_path / "swm.h5")
    s = import_dataset(preset("stable_worldmodel", src, tmp_path / "o.h5"))
    assert s["state"] == "state" and s["proprio"] == "proprio" and s["unused_columns"] == ["reward"]
    ours, theirs = TrajectoryFile(tmp_path / "o.h5"), TrajectoryFile(native)
    n = ours.num_frames
    np.testing.assert_array_equal(ours.read("state", 0, n), theirs.read("state", 0, n) + 10.0)  # the column itself
    np.testing.assert_array_equal(ours.read("proprio", 0, n), theirs.read("proprio", 0, n))


def test_stable_worldmodel_preset_without_state_falls_back_to_proprio(native: Path, tmp_path: Path) -> None:
    """`state` and `proprio` are optional in the preset: a file without state gets proprio, and says so."""
    src = swm_file(native, tmp_path / "swm.h5", drop=("state",))
    s = import_dataset(preset("stable_worldmodel", src, tmp_path / "o.h5"))
    assert s["state"] == "copy of proprio (optional key 'state' is not in the source)", s["state"]
    tf = TrajectoryFile(tmp_path / "o.h5")
    np.testing.assert_array_equal(tf.read("state", 0, tf.num_frames), tf.read("proprio", 0, tf.num_frames))
    assert "state" not in tf.meta.extra["keys"]  # the file records what was mapped, not the absent key
    src = swm_file(native, tmp_path / "bare.h5", drop=("state", "proprio"))
    s = import_dataset(preset("stable_worldmodel", src, tmp_path / "bare_out.h5"))
    assert s["proprio"].startswith("missing: (T, 1) zeros (optional key 'proprio'") and "zeros" in s["state"]


def test_preset_required_keys_stay_errors(native: Path, tmp_path: Path) -> None:
    """A mapped key that is not optional in the preset (action; LeRobot's proprio) is still a clear error."""
    src = swm_file(native, tmp_path / "swm.h5", drop=("action",))
    with pytest.raises(DatasetError, match=r"key 'action' \(mapped to action\) is not in the file; it has \["):
        import_dataset(preset("stable_worldmodel", src, tmp_path / "o.h5"))
    cols, starts, lengths = foreign_flat(native)
    lerobot = {"observation.image": cols["pixels"], "action": cols["action"]}
    extra = {"episode_index": np.repeat(np.arange(len(starts)), lengths), "timestamp": np.zeros(len(cols["action"]))}
    src = flat_file(tmp_path / "lr.h5", lerobot, extra)
    with pytest.raises(DatasetError, match=r"key 'observation.state' \(mapped to proprio\) is not in the file"):
        import_dataset(preset("lerobot", src, tmp_path / "o.h5"))
    assert not (tmp_path / "o.h5").exists()
    with pytest.raises(ValueError, match=r"\['pixels'\] cannot be optional"):
        ImportSpec.from_dict({"source": "x.h5", "out": "y.h5", "keys": KEYS, "optional_keys": ["pixels"]})
    with pytest.raises(ValueError, match=r"optional_keys has unknown column\(s\) \['stat'\]"):
        ImportSpec.from_dict({"source": "x.h5", "out": "y.h5", "keys": KEYS, "optional_keys": ["stat"]})


def test_every_preset_summary_lists_unused_columns(native: Path, tmp_path: Path) -> None:
    """lerobot (flat, with the optional environment state), episodes (groups, an optional key in some groups
    only is an error) and stable_worldmodel: the summary names what the file holds that was not imported."""
    cols, starts, lengths = foreign_flat(native)
    n = len(cols["pixels"])
    lerobot = {
        "observation.image": cols["pixels"],
        "action": cols["action"],
        "observation.state": cols["proprio"],
        "observation.environment_state": cols["state"],
        "next.reward": np.zeros(n),
    }
    extra = {
        "episode_index": np.repeat(np.arange(len(starts)), lengths),
        "timestamp": np.concatenate([np.arange(m) * 0.1 for m in lengths]),
        "index": np.arange(n),
    }
    s = import_dataset(preset("lerobot", flat_file(tmp_path / "lr.h5", lerobot, extra), tmp_path / "lr_out.h5"))
    assert s["state"] == "observation.environment_state" and s["unused_columns"] == ["index", "next.reward"]
    eps = [{k: v[a : a + m] for k, v in cols.items()} for a, m in zip(starts, lengths)]
    with h5py.File(tmp_path / "g.h5", "w") as f:
        for i, ep in enumerate(eps):
            g = f.create_group(f"episode_{i}")
            for ours, key in (("pixels", "obs/pixels"), ("action", "actions"), ("proprio", "obs/proprio")):
                g[key] = ep[ours]
            g["obs/state"] = ep["state"]
            g["rewards"] = np.zeros(len(ep["pixels"]))
    s = import_dataset(preset("episodes", tmp_path / "g.h5", tmp_path / "g_out.h5"))
    assert s["state"] == "obs/state" and s["unused_columns"] == ["rewards"]
    assert_same_batches(native, tmp_path / "g_out.h5")
    with h5py.File(tmp_path / "g.h5", "a") as f:
        del f["episode_1/obs/state"]  # present in some groups only: which state would the episodes get?
    with pytest.raises(
        DatasetError, match=r"key 'obs/state' \(mapped to state\) is missing from episode group 'episode_1'"
    ):
        import_dataset(preset("episodes", tmp_path / "g.h5", tmp_path / "g_out2.h5"))
