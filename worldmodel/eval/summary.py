"""Summaries of a closed-loop evaluation: per-method statistics normalised between floor and ceiling, plots,
an atomically written summary.json, and the markdown table the scripts and the report print."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodel.eval.closed_loop import summarize

METHOD_LABELS = {"expert": "expert (user policy)"}
"""How tables name a method whose nature the bare name hides: the expert is the user's policy, not a planner."""


def ceiling_method(names: Any) -> str | None:
    """The ceiling success is normalised to: the simulator oracle, else the user's expert policy, else none."""
    return next((m for m in ("oracle", "expert") if m in names), None)


def write_summary(
    out: Path,
    context: dict[str, Any],
    results: dict[str, list[dict[str, Any]]],
    extra: dict[str, Any] | None = None,
    logger: str | None = "auto",
) -> dict[str, Any]:
    """Summaries per method (normalised between random and the ceiling: the oracle, else the expert), plots,
    summary.json (atomically), report.md and report.html (``worldmodel.eval.report.write_eval_report``), and the
    results sent to ``logger`` (``worldmodel.eval.loggers``: auto = TensorBoard when installed)."""
    from worldmodel.eval.loggers import log_evaluation
    from worldmodel.eval.media import plot_distance_curves, plot_success
    from worldmodel.eval.report import write_eval_report

    summaries = {name: summarize(recs) for name, recs in results.items()}
    top = ceiling_method(summaries)
    if "random" in summaries and top is not None:
        floor, ceil = summaries["random"]["success_rate"], summaries[top]["success_rate"]
        for s in summaries.values():
            s["normalized_success"] = (s["success_rate"] - floor) / (ceil - floor) if ceil > floor else None
    title = (
        f"{context['env_id']} · {context['planner']['_target_'].rsplit('.', 1)[-1]} · {context['episodes']} episodes"
    )
    if summaries:  # written under temporary names and renamed: two shards finishing together may both merge
        tmp = out / f".{os.getpid()}.success.png"
        os.replace(plot_success(summaries, tmp, title), out / "success.png")
        tmp = out / f".{os.getpid()}.distance.png"
        os.replace(plot_distance_curves(results, tmp, context["success_threshold"], title), out / "distance.png")
    summary = {
        **context,
        **(extra or {}),
        "methods": summaries,
        "videos": sorted(p.name for p in out.glob("video_*.mp4")),
    }
    write_json(out / "summary.json", summary)
    write_eval_report(out, summary, results)
    log_evaluation(out, summary, results, logger)
    return summary


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=json_default))
    os.replace(tmp, path)


def json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, torch.Tensor):
        return x.tolist()
    return str(x)


def format_table(summary: dict[str, Any]) -> str:
    """Markdown table of the methods' success (with CI), reach rate, distances and latency."""
    rows = [
        "| method | success | 95% CI | reached | final dist | steps to success | plan latency (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary["methods"].items():
        lat = s["plan_latency_s"]["mean"]
        steps = s["mean_steps_to_success"]
        rows.append(
            f"| {METHOD_LABELS.get(name, name)} | {s['success_rate']:.0%} | "
            f"{s['success_ci95'][0]:.0%}-{s['success_ci95'][1]:.0%} | "
            f"{s['reached_rate']:.0%} | {s['final_distance_mean']:.3f} | "
            f"{'-' if steps is None else f'{steps:.1f}'} | {'-' if lat is None else f'{lat:.3f}'} |"
        )
    return "\n".join(rows)
