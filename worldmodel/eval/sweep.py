"""One table across evaluation runs (a Hydra ``--multirun`` sweep, or any folder of runs).

Every ``summary.json`` below a root is one run; each of its methods is one row: env, planner, seed, method,
success with its 95% Wilson interval, reach rate, final distance and planning latency. Rows that differ
only by seed are aggregated: mean ± std of the per-seed success rates, and the success rate pooled over
all their episodes with its Wilson interval. Runs of one env and planner whose other settings differ
(e.g. ``planner.num_samples``) are kept apart by a ``variant`` column naming the differing settings.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from worldmodel.eval.closed_loop import wilson_interval

RUN_COLUMNS = (
    "run",
    "env",
    "planner",
    "variant",
    "seed",
    "method",
    "episodes",
    "success",
    "ci_low",
    "ci_high",
    "reached",
    "final_distance",
    "plan_latency_s",
)
AGG_COLUMNS = (
    "env",
    "planner",
    "variant",
    "method",
    "seeds",
    "episodes",
    "success_mean",
    "success_std",
    "pooled_success",
    "pooled_ci_low",
    "pooled_ci_high",
    "reached",
    "final_distance",
    "plan_latency_s",
)
IGNORED = {
    "planner._target_",
    "planner.seed",
    "planner.action_low",
    "planner.action_high",
    "planner.device",
    "eval.video_episodes",
}
"""Settings never used to tell variants apart (the planner and seed columns, filled-in values, the video)."""
NAMES = {"settings": "eval", "env_kwargs": "env.kwargs"}
"""summary.json entries under their config names (as a user would override them)."""


def find_summaries(root: str | Path) -> list[Path]:
    """Every ``summary.json`` below ``root`` (sharded runs count once merged), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    return sorted(p for p in root.rglob("summary.json") if p.is_file())


def unmerged_shards(root: str | Path) -> list[Path]:
    """Folders with shard summaries but no merged summary.json (run scripts/merge_eval.py on them)."""
    dirs = {p.parent for p in Path(root).rglob("summary.shard*of*.json")}
    return sorted(d for d in dirs if not (d / "summary.json").exists())


def planner_name(summary: dict[str, Any]) -> str:
    """``planners.cem.CEMPlanner`` -> ``CEM``."""
    target = str((summary.get("planner") or {}).get("_target_", "?"))
    return target.rsplit(".", 1)[-1].removesuffix("Planner") or target


def _flatten(obj: Any, prefix: str) -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(obj) if isinstance(obj, list) else obj}


def run_settings(summary: dict[str, Any]) -> dict[str, Any]:
    """The settings of a run that may tell variants apart, flattened to ``eval.max_steps``-style keys."""
    keys = ("episodes", "settings", "planner", "agent", "objective", "env_kwargs", "goals", "device", "world_models")
    flat: dict[str, Any] = {}
    for k in keys:
        if k in summary:
            flat.update(_flatten(summary[k], NAMES.get(k, k)))
    return {k: v for k, v in flat.items() if k not in IGNORED}


def load_rows(root: str | Path) -> list[dict[str, Any]]:
    """One row per (run, method) for every summary.json below ``root``."""
    root = Path(root)
    runs = []
    for path in find_summaries(root):
        try:
            summary = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(summary, dict) or "methods" not in summary:
            continue  # some other tool's summary.json
        runs.append((path, summary))
    # Variants: settings that differ between runs of the same env and planner.
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _, s in runs:
        groups.setdefault((s.get("env_id", "?"), planner_name(s)), []).append(run_settings(s))
    varying = {
        g: sorted(k for k in set().union(*sets) if len({repr(x.get(k)) for x in sets}) > 1)
        for g, sets in groups.items()
    }
    rows = []
    for path, s in runs:
        env, planner = s.get("env_id", "?"), planner_name(s)
        settings = run_settings(s)
        variant = ", ".join(f"{k}={settings.get(k)}" for k in varying[(env, planner)])
        run = os.path.relpath(path.parent, root)
        for method, m in s["methods"].items():
            rows.append(
                {
                    "run": run,
                    "env": env,
                    "planner": planner,
                    "variant": variant,
                    "seed": s.get("seed"),
                    "method": method,
                    "episodes": int(m["episodes"]),
                    "success": m["success_rate"],
                    "ci_low": m["success_ci95"][0],
                    "ci_high": m["success_ci95"][1],
                    "reached": m["reached_rate"],
                    "final_distance": m["final_distance_mean"],
                    "plan_latency_s": m["plan_latency_s"]["mean"],
                    "_calls": m["plan_latency_s"]["calls"],
                }
            )
    return rows


def _weighted(values: Iterable[tuple[float | None, int]]) -> float | None:
    pairs = [(v, w) for v, w in values if v is not None and w > 0]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows grouped over seeds: mean ± std of success across runs, and pooled over all episodes (Wilson CI)."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["env"], r["planner"], r["variant"], r["method"]), []).append(r)
    out = []
    for (env, planner, variant, method), rs in groups.items():
        seeds = [r["seed"] for r in rs]
        dup = sorted({str(x) for x in seeds if seeds.count(x) > 1})
        if dup:
            print(
                f"warning: {env} {planner} {variant or ''} {method}: seed(s) {', '.join(dup)} in several runs "
                f"({', '.join(r['run'] for r in rs)}); each run counts once",
                file=sys.stderr,
            )
        rates = [r["success"] for r in rs]
        n = sum(r["episodes"] for r in rs)
        succ = sum(round(r["success"] * r["episodes"]) for r in rs)
        lo, hi = wilson_interval(succ, n)
        mean = sum(rates) / len(rates)
        std = math.sqrt(sum((x - mean) ** 2 for x in rates) / (len(rates) - 1)) if len(rates) > 1 else 0.0
        out.append(
            {
                "env": env,
                "planner": planner,
                "variant": variant,
                "method": method,
                "seeds": len(rs),
                "episodes": n,
                "success_mean": mean,
                "success_std": std,
                "pooled_success": succ / n if n else float("nan"),
                "pooled_ci_low": lo,
                "pooled_ci_high": hi,
                "reached": _weighted((r["reached"], r["episodes"]) for r in rs),
                "final_distance": _weighted((r["final_distance"], r["episodes"]) for r in rs),
                "plan_latency_s": _weighted((r["plan_latency_s"], r["_calls"]) for r in rs),
            }
        )
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0%}"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def format_markdown(rows: list[dict[str, Any]], agg: list[dict[str, Any]]) -> str:
    """Two markdown tables: every run, then the aggregate over seeds."""
    show_variant = any(r["variant"] for r in rows)
    v_head, v_sep = ("| variant ", "|---") if show_variant else ("", "")
    lines = [
        "## Runs",
        "",
        f"| env | planner {v_head}| seed | method | episodes | success | 95% CI | reached | final dist | "
        "plan latency (s) | run |",
        f"|---|---{v_sep}|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=_order):
        v = f"| {r['variant'] or '-'} " if show_variant else ""
        lines.append(
            f"| {r['env']} | {r['planner']} {v}| {'-' if r['seed'] is None else r['seed']} | {r['method']} | "
            f"{r['episodes']} | {_pct(r['success'])} | {_pct(r['ci_low'])}-{_pct(r['ci_high'])} | "
            f"{_pct(r['reached'])} | {_num(r['final_distance'])} | {_num(r['plan_latency_s'])} | {r['run']} |"
        )
    lines += [
        "",
        "## Over seeds",
        "",
        "Success is the mean ± std of the per-seed rates; pooled is over all their episodes, with its 95% "
        "Wilson interval.",
        "",
        f"| env | planner {v_head}| method | seeds | episodes | success (mean ± std) | pooled | pooled 95% CI | "
        "reached | final dist | plan latency (s) |",
        f"|---|---{v_sep}|---|---|---|---|---|---|---|---|---|",
    ]
    for a in sorted(agg, key=_order):
        v = f"| {a['variant'] or '-'} " if show_variant else ""
        lines.append(
            f"| {a['env']} | {a['planner']} {v}| {a['method']} | {a['seeds']} | {a['episodes']} | "
            f"{_pct(a['success_mean'])} ± {_pct(a['success_std'])} | {_pct(a['pooled_success'])} | "
            f"{_pct(a['pooled_ci_low'])}-{_pct(a['pooled_ci_high'])} | {_pct(a['reached'])} | "
            f"{_num(a['final_distance'])} | {_num(a['plan_latency_s'])} |"
        )
    return "\n".join(lines)


def _order(r: dict[str, Any]) -> tuple[Any, ...]:
    seed = r.get("seed")
    return (r["env"], r["planner"], r["variant"], r["method"], seed is None, seed if seed is not None else 0)


def write_csv(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """CSV with ``columns`` (atomically)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in sorted(rows, key=_order):
            w.writerow({k: "" if r.get(k) is None else r[k] for k in columns})
    os.replace(tmp, path)


def sweep_summary(root: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Tabulate every run below ``root``; writes sweep_summary.md, sweep_runs.csv, sweep_seeds.csv.

    Returns ``{"rows", "aggregate", "markdown", "files", "unmerged"}``.
    """
    root = Path(root)
    rows = load_rows(root)
    if not rows:
        raise FileNotFoundError(f"no evaluation summary.json below {root}")
    agg = aggregate(rows)
    md = format_markdown(rows, agg)
    out = Path(out_dir) if out_dir is not None else root
    out.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out / "sweep_summary.md", "runs": out / "sweep_runs.csv", "seeds": out / "sweep_seeds.csv"}
    tmp = files["markdown"].with_name(f".sweep_summary.md.{os.getpid()}")
    tmp.write_text(f"# Evaluation sweep: {root}\n\n{md}\n")
    os.replace(tmp, files["markdown"])
    write_csv(files["runs"], rows, RUN_COLUMNS)
    write_csv(files["seeds"], agg, AGG_COLUMNS)
    return {"rows": rows, "aggregate": agg, "markdown": md, "files": files, "unmerged": unmerged_shards(root)}
