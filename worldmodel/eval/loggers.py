"""Evaluation results to TensorBoard (default when installed) or Weights & Biases (``logger=wandb``, opt-in).

``logger``: ``auto`` (TensorBoard when it is installed, else nothing, said in one log line), ``tensorboard``,
``wandb`` or ``none``. TensorBoard events go to ``<out>/tensorboard`` (rewritten whole each time the summary is:
a resumed or re-merged evaluation never shows a method twice). W&B is an optional extra, imported only when asked
for; it follows the user's own W&B settings (``WANDB_MODE=offline`` keeps it on the machine). Nothing else here
reaches the network.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)
LOGGERS = ("auto", "tensorboard", "wandb", "none")
WANDB_MISSING = "logger=wandb needs the wandb package: pip install worldmodel[wandb] (or pip install wandb)"


def check_logger(name: str | None) -> str:
    """The logger ``name`` resolves to (``tensorboard``, ``wandb`` or ``none``); ValueError for an unknown name
    or a requested logger whose package is missing. ``auto`` never fails."""
    name = "none" if name is None else str(name)
    if name not in LOGGERS:
        raise ValueError(f"logger={name!r} is not one of {list(LOGGERS)}")
    if name == "wandb" and importlib.util.find_spec("wandb") is None:
        raise ValueError(WANDB_MISSING)
    if name == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise ValueError("logger=tensorboard needs the tensorboard package: pip install tensorboard")
    if name == "auto":
        return "tensorboard" if importlib.util.find_spec("tensorboard") is not None else "none"
    return name


def scalars(summary: Mapping[str, Any]) -> dict[str, float]:
    """tag -> value of the per-method aggregate numbers (success rate and its interval, reach, distances)."""
    out: dict[str, float] = {}
    for method, s in summary["methods"].items():
        out[f"success_rate/{method}"] = s["success_rate"]
        out[f"success_ci95_low/{method}"] = s["success_ci95"][0]
        out[f"success_ci95_high/{method}"] = s["success_ci95"][1]
        out[f"reached_rate/{method}"] = s["reached_rate"]
        for key in ("final_distance_mean", "min_distance_mean", "mean_steps_to_success", "normalized_success"):
            if s.get(key) is not None:
                out[f"{key}/{method}"] = s[key]
        if s["plan_latency_s"]["mean"] is not None:
            out[f"plan_latency_s/{method}"] = s["plan_latency_s"]["mean"]
    return out


def _tensorboard(out: Path, summary: Mapping[str, Any], results: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Aggregates at step 0, per-episode success/distances at step = episode index, distance histograms."""
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter

    from worldmodel.eval.summary import format_table

    folder = out / "tensorboard"
    for old in folder.glob("events.out.tfevents.*"):  # the summary is rewritten whole: so are its events
        old.unlink()
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for tag, value in scalars(summary).items():
            writer.add_scalar(tag, value, 0)
        for method, recs in results.items():
            for r in recs:
                writer.add_scalar(f"episode/{method}/success", float(r["success"]), int(r["episode"]))
                writer.add_scalar(f"episode/{method}/final_distance", r["final_distance"], int(r["episode"]))
            if recs:
                writer.add_histogram(f"final_distance/{method}", np.array([r["final_distance"] for r in recs]), 0)
        writer.add_text("summary", format_table(dict(summary)), 0)
    finally:
        writer.close()


def _wandb(out: Path, summary: Mapping[str, Any], results: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """One W&B run per evaluation folder: the aggregates as its summary, per-episode records as a table."""
    try:
        import wandb
    except ImportError:
        raise ValueError(WANDB_MISSING) from None
    config = {k: v for k, v in summary.items() if k not in ("methods", "videos")}
    run = wandb.init(project="worldmodel", name=out.name, dir=str(out), config=config, job_type="evaluate")
    try:
        run.summary.update(scalars(summary))
        cols = ["method", "episode", "seed", "success", "reached", "final_distance", "steps_to_success"]
        rows = [[m, *(r.get(c) for c in cols[1:])] for m, recs in results.items() for r in recs]
        run.log({"episodes": wandb.Table(columns=cols, data=rows)})
    finally:
        run.finish()


def benchmark_scalars(result: Mapping[str, Any]) -> dict[str, float]:
    """tag -> value of the benchmark table (success and first hit per variant and row) and the paired p-values."""
    out: dict[str, float] = {}
    for row, cells in result["table"].items():
        for variant, c in cells.items():
            if c["success"] is not None:
                out[f"success/{variant}/{row}"] = c["success"]
                out[f"first_hit/{variant}/{row}"] = c["first_hit"]
    for t in result.get("paired") or []:
        group = t["group"].replace("`", "").replace(" ", "_")
        out[f"paired_p/{group}/{t['a']}_vs_{t['b']}"] = t["p_value"]
    return out


def log_benchmark(
    out: str | Path, result: Mapping[str, Any], logger: str | None = "auto", log: Callable[[str], Any] = _log.info
) -> str:
    """Send the benchmark table and paired p-values to ``logger`` (``<out>/tensorboard`` or a W&B run)."""
    kind = check_logger(logger)
    out = Path(out)
    values = benchmark_scalars(result)
    if kind == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        for old in (out / "tensorboard").glob("events.out.tfevents.*"):
            old.unlink()
        with SummaryWriter(log_dir=str(out / "tensorboard")) as writer:
            for tag, value in values.items():
                writer.add_scalar(tag, value, 0)
            writer.add_text("benchmark", str(result.get("markdown", "")), 0)
    elif kind == "wandb":
        import wandb

        run = wandb.init(project="worldmodel", name=out.name, dir=str(out), job_type="benchmark",
                         config={k: result[k] for k in ("env_id", "planner", "seeds", "episodes", "variants")})
        run.summary.update(values)
        run.finish()
    elif logger == "auto":
        log("[benchmark] tensorboard is not installed: results go to benchmark.md/.csv/.json only")
    return kind


def log_evaluation(
    out: str | Path,
    summary: Mapping[str, Any],
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    logger: str | None = "auto",
    log: Callable[[str], Any] = _log.info,
) -> str:
    """Send an evaluation's summary and per-episode records to ``logger``; returns the logger used."""
    kind = check_logger(logger)
    if kind == "none":
        if logger == "auto":
            log("[evaluate] tensorboard is not installed: results go to summary.json and report.md only")
        return kind
    (_tensorboard if kind == "tensorboard" else _wandb)(Path(out), summary, results)
    return kind
