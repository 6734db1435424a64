"""report.md / report.html of an evaluation folder and of a pipeline run, from real closed-loop episodes (real
MuJoCo, real videos from the library's own encoder), opened in a real headless Chromium; TensorBoard logging."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_evaluate import ENV, cem, near_goal_specs

from worldmodel.eval.agents import OracleAgent, RandomAgent
from worldmodel.eval.closed_loop import EvalSettings, run_closed_loop
from worldmodel.eval.paired import mcnemar_exact

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

# Appended to a copy of the page: records load errors, console errors and what every video and image decoded.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error',
  e => window.__errors.push('error: ' + (e.message || (e.target && e.target.src))), true);
const origError = console.error;
console.error = (...a) => { window.__errors.push('console: ' + a.join(' ')); origError(...a); };
function report() {
  const vids = [...document.querySelectorAll('video')].map(v => ({w: v.videoWidth, h: v.videoHeight,
    ready: v.readyState, error: v.error ? v.error.code : null, src: v.currentSrc}));
  const imgs = [...document.querySelectorAll('img')].map(i => ({w: i.naturalWidth, done: i.complete}));
  const out = document.createElement('pre');
  out.id = 'probe-result';
  out.textContent = JSON.stringify({videos: vids, images: imgs, errors: window.__errors});
  document.body.appendChild(out);
}
setTimeout(report, 2500);
</script>"""


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real evaluation folder: random and the CEM oracle on 4 near goals, with videos, summarised."""
    from worldmodel.eval.summary import write_summary

    out = tmp_path_factory.mktemp("eval")
    specs = near_goal_specs(4)
    st = EvalSettings(max_steps=12, num_envs=4, video_episodes=4)
    results = {
        "oracle": run_closed_loop(OracleAgent(cem(samples=32, iters=2)), ENV, {}, specs, st, out, "oracle",
                                  progress=False),
        "random": run_closed_loop(RandomAgent(-np.ones(2), np.ones(2)), ENV, {}, specs, st, out, "random",
                                  progress=False),
    }
    context = {
        "env_id": ENV, "env_kwargs": {}, "seed": 0, "goals": {"source": "test"}, "world_models": {},
        "episodes": len(specs), "settings": st.__dict__, "planner": {"_target_": "planners.cem.CEMPlanner",
        "horizon": 6, "num_samples": 32, "iterations": 2}, "agent": {}, "objective": {}, "device": "cpu",
        "threads": 1, "success_threshold": 0.15,
    }
    summary = write_summary(out, context, results, logger="tensorboard")
    return {"out": out, "summary": summary, "results": results}


def test_evaluation_report_is_self_contained_with_paired_test(evaluation: dict[str, Any]) -> None:
    out, results = evaluation["out"], evaluation["results"]
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the page must not load anything off the page"
    assert "<script" not in page and page.count("data:image/png;base64,") == 2  # success.png and distance.png
    assert page.count("<video controls muted loop playsinline") == 2
    for method in ("oracle", "random"):
        assert f'src="video_{method}.mp4" type="video/mp4"' in page and (out / f"video_{method}.mp4").exists()
    # The paired test, recomputed from the records: oracle-only successes against random-only successes.
    o = {r["episode"]: r["success"] for r in results["oracle"]}
    r = {x["episode"]: x["success"] for x in results["random"]}
    b, c = sum(o[k] and not r[k] for k in o), sum(r[k] and not o[k] for k in o)
    assert b >= 3  # the oracle solves these near goals, random does not
    row = f"| oracle | random | 4 | {sum(o.values()) / 4:.0%} | {sum(r.values()) / 4:.0%} | {b} | {c} | " \
          f"{mcnemar_exact(b, c):.3f} |"
    assert row in md
    assert f"<td>{b}</td><td>{c}</td><td>{mcnemar_exact(b, c):.3f}</td>" in page
    assert "No record of a command line" in md  # no Hydra record: the report says where the settings are


def test_tensorboard_gets_success_rates_and_episodes(evaluation: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (evaluation["out"] / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert acc.Scalars("success_rate/oracle")[0].value == evaluation["summary"]["methods"]["oracle"]["success_rate"]
    assert [e.step for e in acc.Scalars("episode/random/final_distance")] == [0, 1, 2, 3]
    assert "success_ci95_low/random" in tags and "final_distance/oracle" in acc.Tags()["histograms"]


def test_unknown_or_missing_logger_is_a_clear_error() -> None:
    import importlib.util

    from worldmodel.eval.loggers import check_logger

    with pytest.raises(ValueError, match="is not one of"):
        check_logger("mlflow")
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ValueError, match=r"pip install worldmodel\[wandb\]"):
            check_logger("wandb")
    assert check_logger("none") == "none"


def test_pipeline_report_puts_warnings_first_and_commands_last(evaluation: dict[str, Any], tmp_path: Path) -> None:
    from worldmodel.eval.report import write_report

    pred = tmp_path / "predictor_world_model-abc"
    pred.mkdir()
    (pred / "train_summary.json").write_text(json.dumps({"warnings": ["stopped by the wall-clock cap"]}))
    (pred / "stage_done.json").write_text(json.dumps({"command": ["py", "scripts/train_predictor.py", "a=1"]}))
    folders = {"predictor_world_model": pred, "evaluate": evaluation["out"]}
    write_report(tmp_path, folders, {}, 60.0, {})
    page = (tmp_path / "report.html").read_text()
    body = page[page.index("<body>"):]
    assert body.index('class="warning"') < body.index("<h2>Closed loop</h2>")
    assert "stopped by the wall-clock cap" in body and "python scripts/train_predictor.py a=1" in body
    rel = os.path.relpath(evaluation["out"] / "video_oracle.mp4", tmp_path)  # videos stay files, linked relatively
    assert f'<source src="{rel}" type="video/mp4">' in body and (tmp_path / rel).is_file()
    assert body.index("python scripts/train_predictor.py") > body.index("Paired comparison")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: the report's browser test needs one")
def test_report_plays_in_headless_chromium(evaluation: dict[str, Any]) -> None:
    out = evaluation["out"]
    page = (out / "report.html").read_text().replace("</body>", PROBE + "</body>")
    probe = out / "report_probe.html"
    probe.write_text(page)
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--mute-audio",
           "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=6000",
           "--enable-logging=stderr", "--v=0", "--dump-dom", probe.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    probe.unlink()
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the page did not finish loading:\n{proc.stderr[-2000:]}"
    import html

    res = json.loads(html.unescape(m.group(1)))
    assert res["errors"] == []
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and "report_probe" in ln]
    assert not [ln for ln in console if "Uncaught" in ln or "Failed" in ln], console
    assert len(res["videos"]) == 2 and len(res["images"]) == 2
    for v in res["videos"]:
        assert v["error"] is None and v["w"] > 0 and v["h"] > 0 and v["ready"] >= 2, v
    assert all(i["done"] and i["w"] > 0 for i in res["images"]), res["images"]


def test_videos_are_browser_h264_with_even_sizes(tmp_path: Path) -> None:
    """media.write_video_grid: H.264 yuv420p (what browsers decode), padded to even sizes, moov atom first."""
    import imageio_ffmpeg

    from worldmodel.eval.media import write_video_grid

    frames = [np.full((1, 33, 65, 3), 40 * t, dtype=np.uint8) for t in range(4)]  # one odd tile, no upscaling
    path = write_video_grid(frames, tmp_path / "v.mp4", scale=1)
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)], capture_output=True, text=True).stderr
    w, h = map(int, re.search(r"Video: h264 .*yuv420p.*?, (\d+)x(\d+)", info).groups())
    assert (w, h) == (65 + 4 + 1, 33 + 4 + 1)  # 2 px of border each side, then one line of padding
    head = path.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head


def test_a_webm_beside_the_mp4_is_offered_first(tmp_path: Path) -> None:
    from worldmodel.eval.report_html import video_figure

    (tmp_path / "video_a.mp4").write_bytes(b"x")
    assert "webm" not in video_figure("video_a.mp4", tmp_path, "a")
    (tmp_path / "video_a.webm").write_bytes(b"x")
    fig = video_figure("video_a.mp4", tmp_path, "a")
    assert fig.index('src="video_a.webm" type="video/webm"') < fig.index('src="video_a.mp4" type="video/mp4"')
    assert "not found" in video_figure("video_b.mp4", tmp_path, "b")


def test_report_names_the_command_from_hydras_record(evaluation: dict[str, Any], tmp_path: Path) -> None:
    from worldmodel.eval.report import write_eval_report

    out = tmp_path / "run"
    shutil.copytree(evaluation["out"], out)
    (out / "hydra" / ".hydra").mkdir(parents=True)
    (out / "hydra" / ".hydra" / "overrides.yaml").write_text("- env=tworoom\n- methods=[random,oracle]\n")
    write_eval_report(out, evaluation["summary"])  # the paired tests from the records on disk this time
    md = (out / "report.md").read_text()
    assert "python scripts/evaluate.py env=tworoom 'methods=[random,oracle]'" in md
    assert md.count("| oracle | random | 4 |") == 1
