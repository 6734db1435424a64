"""The field's closed-loop planning protocol as one command (``scripts/benchmark.py``, ``configs/benchmark.yaml``).

DINO-WM, LeWorldModel and stable-worldmodel report success this way: start at a held-out dataset frame, goal image =
the frame ``offset`` env steps later in the same episode, ``max_steps`` env steps of budget, the env's success rule.
Every world model runs every agent *variant* (evaluate overrides of ``objective`` / ``agent`` / ``planner``): one
``evaluate()`` call per (seed, variant), in its own folder. Random and oracle run once per seed with subgoals off
(else the oracle's ceiling would follow the variant). One table: rows are world models, then random and oracle;
columns are variants; a cell is the success pooled over seeds (95% Wilson interval), per seed, and plan latency.
A variant set to null (``variants.latent_proprio=null``, or in a yaml) is dropped, like ``~variants.latent_proprio``;
an empty one (``{}``) runs the base settings.

Every input is checked before any episode runs. Re-running resumes: a finished run (``benchmark_run.json`` beside
its ``summary.json``) is read back without reloading models and refitting readouts and graphs; an unfinished one
goes to evaluate, which skips its finished episodes. A run folder made with other settings is refused.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from worldmodel.eval.closed_loop import wilson_interval
from worldmodel.eval.summary import METHOD_LABELS, write_json

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BASELINES = ("random", "oracle", "expert")  # expert: the env's user-supplied policy, the ceiling without a simulator
VARIANT_KEYS = ("objective", "agent", "planner")
BENCHMARK_KEYS = ("world_models", "data", "seeds", "episodes", "offset", "max_steps", "methods", "variants",
                  "out_root", "out_dir", "hydra", "logger")
RUN_RECORD = "benchmark_run.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Run:
    """One evaluate() call: a variant's world-model run (``variant`` set) or a seed's baselines (``variant=None``)."""

    name: str
    variant: str | None
    seed: int
    cfg: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """Everything the benchmark will run, settled and checked before the first episode."""

    runs: list[Run]
    data: str
    world_models: dict[str, str]
    variants: dict[str, dict[str, Any]]
    methods: list[str]
    seeds: list[int]
    out_dir: Path


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``over`` merged in (nested dicts key by key, everything else replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_settings(cfg: Mapping[str, Any]) -> None:
    """The benchmark's own keys: counts, names, and the evaluate keys it sets itself."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("run the benchmark as one process; to shard one evaluation use scripts/evaluate.py")
    if not cfg.get("world_models"):
        raise ValueError("no world models: give at least one, e.g. ++world_models.world_model=<world_model.pt>")
    seeds = list(cfg.get("seeds") or [])
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {cfg.get('seeds')!r}")
    for key in ("episodes", "offset", "max_steps"):
        if not isinstance(cfg.get(key), int) or cfg[key] < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {cfg.get(key)!r}")
    bad = [m for m in cfg.get("methods") or [] if m not in BASELINES]
    if bad:
        raise ValueError(f"unknown methods {bad}; methods are {list(BASELINES)} (world models go in world_models)")
    bad = [n for n in cfg["world_models"] if n in BASELINES or not _NAME.match(str(n))]
    if bad:
        raise ValueError(f"world model names {bad} must be plain (letters, digits, _ . -) and not {list(BASELINES)}")
    if cfg.get("seed") is not None:
        raise ValueError(f"seed={cfg['seed']}: the benchmark seeds its runs from `seeds`; use seeds=[{cfg['seed']}]")
    if any(v is not None for v in (cfg.get("goals") or {}).values()):
        raise ValueError("goals.* are set by the benchmark (held-out dataset frames): use data=<h5> and offset=<steps>")
    if (cfg.get("eval") or {}).get("max_steps") is not None:
        raise ValueError("eval.max_steps is set by the benchmark: use max_steps=<env steps>")
    from worldmodel.eval.loggers import check_logger

    check_logger(cfg.get("logger", "auto"))
    shard = cfg.get("shard") or {}
    if shard.get("count") not in (None, 1) or shard.get("index") not in (None, 0):
        raise ValueError("the benchmark runs unsharded; leave shard.index/shard.count unset")


def variant_config(base: Mapping[str, Any], name: str, overrides: Any, config_dir: Path = CONFIGS) -> dict[str, Any]:
    """``base`` evaluate settings with variant ``name``'s overrides; unknown keys are a ValueError naming them."""
    from worldmodel.planning.config import compose_objective

    if not _NAME.match(str(name)) or name == "baselines":
        raise ValueError(f"variant name {name!r} must be a plain name (letters, digits, _ . -) other than 'baselines'")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(VARIANT_KEYS))
    if unknown:
        raise ValueError(f"variant {name!r}: unknown keys {unknown}; a variant overrides {list(VARIANT_KEYS)}")
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if key == "objective" and isinstance(value, str):  # a config of the objective group, e.g. latent_proprio
            out[key] = compose_objective(value, config_dir)
        elif isinstance(value, Mapping):
            out[key] = deep_merge(out.get(key) or {}, value)
        else:
            raise ValueError(f"variant {name!r}: {key} must be a dict of settings, got {value!r}")
    return out


def check_held_out(path: str, offset: int, env_id: str | None = None) -> None:
    """Refuse trajectories recorded on another env or without a held-out episode (``dataset_episode_specs``'s
    split: 10% of episodes, seed 0) longer than ``offset``."""
    from worldmodel.data.clips import split_episodes
    from worldmodel.data.reader import TrajectoryFile

    if not Path(path).is_file():
        raise FileNotFoundError(f"data {path} not found; set data=<trajectories.h5> (held-out episodes give goals)")
    tf = TrajectoryFile(path)
    try:
        _, val = split_episodes(tf.num_episodes, 0.1, 0)
        lengths = tf.episode_lengths[val]
        if env_id is not None and tf.meta.env_id != env_id:
            raise ValueError(f"data {path} was recorded on {tf.meta.env_id}, but the benchmark runs {env_id}")
    finally:
        tf.close()
    if not (lengths > offset).any():
        longest = int(lengths.max()) if len(lengths) else 0
        raise ValueError(
            f"data {path}: none of its {len(val)} held-out episodes (of {tf.num_episodes}) is longer than "
            f"offset={offset} env steps (longest: {longest}); lower offset or use data with longer episodes"
        )


def _load_models(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(name -> WorldModel on the CPU, env facts): files exist, load, and fit the env. Checks only."""
    from worldmodel.checkpoint import CheckpointError
    from worldmodel.eval.assemble import env_kwargs_of
    from worldmodel.eval.evaluate import _env_facts, load_world_models

    for name, path in cfg["world_models"].items():
        if not Path(str(path)).is_file():
            raise FileNotFoundError(
                f"world model {name!r}: {path} not found; train one with scripts/train_predictor.py"
            )
    facts = _env_facts(cfg["env"]["id"], env_kwargs_of(cfg))
    try:
        models = load_world_models(dict(cfg), facts, env_kwargs_of(cfg), torch.device("cpu"))
    except CheckpointError as exc:  # an unreadable or tampered file: a user error, not a crash
        raise ValueError(str(exc)) from None
    return models, facts


def _check_variant(name: str, vcfg: dict[str, Any], models: Mapping[str, Any], facts: Mapping[str, Any]) -> None:
    """Everything evaluate() would refuse later for this variant: settings, planner, readout and graph data."""
    from worldmodel.eval.assemble import build_planner, check_agent_config, graph_data, subgoal_config
    from worldmodel.planning import ObjectiveConfig
    from worldmodel.planning.horizon import check_reach_of

    try:
        check_agent_config(vcfg.get("agent") or {}, vcfg.get("objective"))
        build_planner(vcfg["planner"], facts["low"], facts["high"], torch.device("cpu"), 0)
    except ValueError as exc:
        raise ValueError(f"variant {name!r}: {exc}") from None
    obj = ObjectiveConfig.from_dict(vcfg.get("objective"))
    sub = subgoal_config((vcfg.get("agent") or {}).get("subgoals"))
    for wm_name, wm in models.items():
        try:
            check_reach_of(wm_name, wm, vcfg["planner"], vcfg.get("agent"))
        except ValueError as exc:
            raise ValueError(f"variant {name!r}, {exc}") from None
        if obj.proprio.weight > 0 and wm.proprio_dim == 0:
            raise ValueError(f"variant {name!r} uses objective.proprio, but world model {wm_name!r} predicts no "
                             f"proprio; set objective.proprio.weight=0 in it or drop it (~variants.{name})")
        readout_data = obj.proprio.data or (wm.meta or {}).get("data_path")
        if obj.proprio.weight > 0 and not (readout_data and Path(readout_data).exists()):
            raise FileNotFoundError(f"variant {name!r}, world model {wm_name!r}: the proprio readout's data "
                                    f"{readout_data!r} does not exist; set objective.proprio.data=<trajectories.h5>")
        if sub.enabled:
            try:
                graph_data(sub, wm)
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"variant {name!r}, world model {wm_name!r}: {exc}") from None


def plan_benchmark(cfg: Mapping[str, Any], config_dir: Path = CONFIGS) -> Plan:
    """Check every input and build the evaluate config of every run; raises before any episode runs."""
    from worldmodel.eval.assemble import check_oracle_planner
    from worldmodel.eval.evaluate import check_methods_fit_env

    _check_settings(cfg)
    # a variant set to null is dropped (a preset's `variants: {latent_proprio: null}`, like ~variants.latent_proprio)
    variants = {str(k): dict(v) for k, v in (cfg.get("variants") or {}).items() if v is not None}
    if not variants:
        raise ValueError("no variants: give at least one, e.g. ++variants.latent={objective:{proprio:{weight:0}}}")
    base = {k: copy.deepcopy(v) for k, v in cfg.items() if k not in BENCHMARK_KEYS}
    base["episodes"] = int(cfg["episodes"])
    base["eval"] = {**(cfg.get("eval") or {}), "max_steps": int(cfg["max_steps"])}
    base["shard"] = {**(cfg.get("shard") or {}), "index": None, "count": None}
    vcfgs = {name: variant_config(base, name, over, config_dir) for name, over in variants.items()}
    models, facts = _load_models(cfg)
    check_methods_fit_env(list(cfg.get("methods") or []), facts, cfg["env"]["id"])
    data = cfg.get("data") or next(iter(models.values())).meta.get("data_path")
    if not data:
        raise ValueError("data=null and the first world model records no data_path; set data=<trajectories.h5>")
    check_held_out(str(data), int(cfg["offset"]), cfg["env"]["id"])
    for name, vcfg in vcfgs.items():
        _check_variant(name, vcfg, models, facts)
    methods = list(cfg.get("methods") or [])
    check_oracle_planner(base["planner"], methods)
    base["goals"] = {"source": "dataset", "dataset": str(data), "offset": int(cfg["offset"])}
    wms = {name: str(path) for name, path in cfg["world_models"].items()}
    out_dir = Path(str(cfg["out_dir"]))
    runs = _runs(base, vcfgs, wms, methods, list(cfg["seeds"]), out_dir, {n: wm.frameskip for n, wm in models.items()})
    return Plan(runs, str(data), wms, variants, methods, list(cfg["seeds"]), out_dir)


def _runs(base: dict[str, Any], vcfgs: Mapping[str, dict[str, Any]], wms: dict[str, str], methods: list[str],
          seeds: list[int], out_dir: Path, frameskips: Mapping[str, int]) -> list[Run]:
    """Per seed: the baselines' run (subgoals off), then one run per variant with every world model."""
    from worldmodel.eval.assemble import oracle_frameskip

    # Without world models in its run the oracle would plan horizon x 1 env steps: keep the world models' reach.
    oracle = {**(base.get("oracle") or {}), "frameskip": oracle_frameskip(base, frameskips)}
    baseline = deep_merge(base, {"agent": {"subgoals": {"enabled": False}}, "oracle": oracle})
    runs = []
    for seed in seeds:
        if methods:
            name = f"baselines_seed{seed}"
            cfg = {**baseline, "seed": seed, "world_models": {}, "methods": methods}
            runs.append(Run(name, None, seed, {**cfg, "out_dir": str(out_dir / "runs" / name)}))
        for variant, vcfg in vcfgs.items():
            name = f"{variant}_seed{seed}"
            cfg = {**vcfg, "goals": base["goals"], "seed": seed, "world_models": wms, "methods": []}
            runs.append(Run(name, variant, seed, {**cfg, "out_dir": str(out_dir / "runs" / name)}))
    return runs


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two nested settings dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _recorded(run: Run) -> dict[str, Any]:
    """What the benchmark recorded when ``run`` finished (``{}``: never finished, or a cut file)."""
    try:
        return json.loads((Path(run.cfg["out_dir"]) / RUN_RECORD).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def check_finished_runs(plan: Plan) -> None:
    """Refuse a run folder made with other settings (evaluate's own check misses some, e.g. ``oracle.*``)."""
    for run in plan.runs:
        old = _recorded(run).get("evaluate_config")
        keys = [] if old is None else _diff(old, json.loads(json.dumps(run.cfg)))
        if keys:
            raise ValueError(
                f"{run.cfg['out_dir']} was run with other settings ({', '.join(keys[:6])}); use another out_dir "
                "(out_root=...) or delete that folder"
            )


def run_one(run: Run, progress: bool = True) -> tuple[dict[str, Any], float, bool]:
    """(summary, seconds the run took, reused) of one run, resuming or reusing what is on disk."""
    from worldmodel.eval.evaluate import evaluate

    cfg, old = json.loads(json.dumps(run.cfg)), _recorded(run)
    summary = Path(cfg["out_dir"]) / "summary.json"
    if old.get("evaluate_config") == cfg and summary.exists():
        return json.loads(summary.read_text()), float(old.get("seconds") or 0.0), True
    t0 = time.perf_counter()
    result = evaluate(cfg, progress=progress)
    seconds = time.perf_counter() - t0
    write_json(Path(cfg["out_dir"]) / RUN_RECORD, {"evaluate_config": cfg, "seconds": seconds})
    return result, seconds, False


def cell(summaries: Mapping[int, Mapping[str, Any]], method: str) -> dict[str, Any]:
    """One table cell: ``method`` pooled over the seeds' summaries (seed -> summary.json)."""
    ms = {str(seed): summary["methods"][method] for seed, summary in summaries.items()}
    n = sum(int(m["episodes"]) for m in ms.values())
    succ = sum(round(m["success_rate"] * m["episodes"]) for m in ms.values())
    hits = sum(round(m["reached_rate"] * m["episodes"]) for m in ms.values())  # the field's first-hit rule
    lat = [m["plan_latency_s"] for m in ms.values() if m["plan_latency_s"]["mean"] is not None]
    calls = sum(x["calls"] for x in lat)
    return {
        "episodes": n, "successes": succ, "success": succ / n if n else None,
        "ci95": list(wilson_interval(succ, n)), "per_seed": {s: m["success_rate"] for s, m in ms.items()},
        "first_hit": hits / n if n else None, "first_hit_ci95": list(wilson_interval(hits, n)),
        "final_distance": sum(m["final_distance_mean"] * m["episodes"] for m in ms.values()) / n if n else None,
        "plan_latency_s": sum(x["mean"] * x["calls"] for x in lat) / calls if calls else None,
    }


def build_table(plan: Plan, summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """row (world model, then each baseline) -> variant -> cell; baselines repeat their one run per seed."""
    by_run = {(r.variant, r.seed): summaries[r.name] for r in plan.runs}
    table = {row: {v: cell({s: by_run[(v, s)] for s in plan.seeds}, row) for v in plan.variants}
             for row in plan.world_models}
    for row in plan.methods:  # one run per seed, shared by every column
        shared = cell({s: by_run[(None, s)] for s in plan.seeds}, row)
        table[row] = {v: shared for v in plan.variants}
    return table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _cell_text(c: Mapping[str, Any]) -> str:
    lat = "-" if c["plan_latency_s"] is None else f"{c['plan_latency_s']:.3f} s"
    seeds = "/".join(_pct(x) for x in c["per_seed"].values())
    hit = f"first hit {_pct(c['first_hit'])} ({_pct(c['first_hit_ci95'][0])}-{_pct(c['first_hit_ci95'][1])})"
    return f"**{_pct(c['success'])}** ({_pct(c['ci95'][0])}-{_pct(c['ci95'][1])}) · {seeds} · {hit} · {lat}"


def _baselines_note(methods: list[str]) -> str:
    """What the baseline rows are (they run once per seed, the same in every column)."""
    if not methods:
        return ""
    notes = [f"{' and '.join(methods)} run once per seed, the same in every column"]
    if "oracle" in methods:
        notes.append("the oracle plans through the simulator without subgoals")
    if "expert" in methods:
        notes.append("expert (user policy) is the env's own expert policy acting on the true state, the ceiling "
                     "where no simulator exists")
    return "; ".join(notes) + "."


def format_markdown(result: Mapping[str, Any]) -> str:
    """The benchmark table with the protocol, the variants' overrides and the timing."""
    p, variants = result["planner"], list(result["variants"])
    budget = ", ".join(f"{k} {p[k]}" for k in ("horizon", "num_samples", "iterations") if k in p)
    lines = [
        f"# Benchmark: {result['env_id']}, {str(p.get('_target_', '?')).rsplit('.', 1)[-1].removesuffix('Planner')} "
        f"({budget})",
        "",
        f"Start at a held-out frame of `{result['data']}`, goal image = the frame {result['offset']} env steps "
        f"later in the same episode, {result['max_steps']} env steps of budget, success = the env's rule at the "
        f"end. {result['episodes']} episodes per seed, seeds {', '.join(map(str, result['seeds']))}.",
        "",
        "| | " + " | ".join(variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    for row, cells in result["table"].items():
        lines.append(f"| {METHOD_LABELS.get(row, row)} | " + " | ".join(_cell_text(cells[v]) for v in variants) + " |")
    lines += [
        "",
        "Cell: success at the end of the budget pooled over seeds (95% Wilson interval) · per-seed success · "
        "first-hit success (inside the goal region at any step: the rule the field's tables use) with its "
        f"interval · mean plan latency per planner call. {_baselines_note(result.get('methods') or [])}",
        "",
        *[f"- `{v}`: {json.dumps(o) if o else 'the base settings'}" for v, o in result["variants"].items()],
        *[f"- `{n}`: `{path}`" for n, path in result["world_models"].items()],
        "",
        f"Wall time {result['wall_s']:.0f} s this invocation ({result['reused_runs']} of {len(result['runs'])} runs "
        f"reused); the runs took {result['run_seconds']:.0f} s when computed.",
    ]
    return "\n".join(lines)


def paired_tests(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Exact McNemar tests on the shared episodes (pooled over seeds): in each variant's column every world model
    against the others and the baselines, and each world model's variants against each other. Each test is a
    ``Paired`` dict with the ``group`` it belongs to."""
    from worldmodel.eval.paired import compare_methods, default_pairs, read_episode_records

    cells: dict[tuple[str, str | None], list[dict[str, Any]]] = {}  # (row, variant or None) -> episode records
    for run in result["runs"]:
        for method, recs in read_episode_records(run["out_dir"]).items():
            cells.setdefault((method, run["variant"]), []).extend(recs)
    tests = []
    for v in result["variants"]:
        column = {row: cells.get((row, v if row in result["world_models"] else None), []) for row in result["table"]}
        group = f"variant `{v}`"
        tests += [{"group": group, **t.as_dict()} for t in compare_methods(column, default_pairs(list(column)))]
    for wm in result["world_models"]:
        by_variant = {v: cells.get((wm, v), []) for v in result["variants"]}
        tests += [{"group": f"`{wm}` across variants", **t.as_dict()} for t in compare_methods(by_variant)]
    return tests


def _paired_markdown(tests: list[dict[str, Any]]) -> list[str]:
    """The paired tests as a markdown section, one table per group (empty without any test)."""
    from worldmodel.eval.paired import Paired, format_markdown

    if not tests:
        return []
    lines = ["", "## Paired comparison (same episodes, pooled over seeds)"]
    groups = list(dict.fromkeys(t["group"] for t in tests))
    for g in groups:
        rows = [Paired(**{k: v for k, v in t.items() if k != "group"}) for t in tests if t["group"] == g]
        table = format_markdown(rows, METHOD_LABELS)
        lines += ["", f"**{g}**", "", *table[:-2]]
    return [*lines, "", table[-1]]  # the explanation once, after the last table


def write_csv(path: Path, result: Mapping[str, Any]) -> None:
    """The table as CSV (atomically): one line per row, per variant pooled success, CI, episodes, seeds, latency."""
    cols = ["method", "kind"]
    for v in result["variants"]:
        cols += [v, f"{v}_ci_low", f"{v}_ci_high", f"{v}_episodes",
                 *[f"{v}_seed{s}" for s in result["seeds"]], f"{v}_first_hit", f"{v}_first_hit_ci_low",
                 f"{v}_first_hit_ci_high", f"{v}_plan_latency_s"]
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for row, cells in result["table"].items():
            line: list[Any] = [row, "baseline" if row in BASELINES else "world_model"]
            for v in result["variants"]:
                c = cells[v]
                line += [c["success"], *c["ci95"], c["episodes"], *c["per_seed"].values(), c["first_hit"],
                         *c["first_hit_ci95"], c["plan_latency_s"]]
            w.writerow(["" if x is None else x for x in line])
    os.replace(tmp, path)


def _links(result: Mapping[str, Any]) -> list[str]:
    """Markdown: the command (from Hydra's record) and a link to each run's own report (plots, videos)."""
    from worldmodel.eval.report import eval_command

    out = Path(str(result["out_dir"]))
    cmd = eval_command(out, "scripts/benchmark.py")
    lines = ["", "## Runs", "", "Each run's own report has its plots, videos and per-method paired tests.", ""]
    for r in result["runs"]:
        folder = Path(r["out_dir"])
        target = folder / "report.html" if (folder / "report.html").exists() else folder / "summary.json"
        lines.append(f"- [{r['name']}]({os.path.relpath(target, out)})")
    if cmd:
        lines += ["", "## Command", "", "```", cmd, "```"]
    return lines


def _write_html(markdown: str, path: Path) -> None:
    from worldmodel.eval.report_html import write_html

    write_html(markdown, path)


def run_benchmark(cfg: Mapping[str, Any], progress: bool = True, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Check, run (or reuse) every run, write benchmark.md/.csv/.json into ``out_dir``; returns the result dict."""
    t0 = time.perf_counter()
    plan = plan_benchmark(cfg)
    check_finished_runs(plan)
    summaries, runs = {}, []
    for i, run in enumerate(plan.runs, 1):
        log(f"[benchmark] {i}/{len(plan.runs)} {run.name}: {run.cfg['out_dir']}")
        summaries[run.name], seconds, reused = run_one(run, progress)
        runs.append({"name": run.name, "variant": run.variant, "seed": run.seed, "out_dir": run.cfg["out_dir"],
                     "reused": reused, "seconds": seconds})
    first = plan.runs[0].cfg
    result: dict[str, Any] = {
        "env_id": first["env"]["id"], "env_kwargs": first["env"].get("kwargs") or {}, "planner": first["planner"],
        "data": plan.data, "offset": int(cfg["offset"]), "max_steps": int(cfg["max_steps"]),
        "episodes": int(cfg["episodes"]), "seeds": plan.seeds, "world_models": plan.world_models,
        "methods": plan.methods, "variants": plan.variants, "table": build_table(plan, summaries), "runs": runs,
        "reused_runs": sum(r["reused"] for r in runs), "run_seconds": sum(r["seconds"] for r in runs),
        "out_dir": str(plan.out_dir),
    }
    result["wall_s"] = time.perf_counter() - t0
    out = plan.out_dir
    out.mkdir(parents=True, exist_ok=True)
    result["paired"] = paired_tests(result)
    result["markdown"] = "\n".join([format_markdown(result), *_paired_markdown(result["paired"]), *_links(result)])
    (tmp := out / f".benchmark.md.{os.getpid()}").write_text(result["markdown"] + "\n")
    os.replace(tmp, out / "benchmark.md")
    _write_html(result["markdown"], out / "benchmark.html")
    write_csv(out / "benchmark.csv", result)
    write_json(out / "benchmark.json", result)
    from worldmodel.eval.loggers import log_benchmark

    log_benchmark(out, result, cfg.get("logger", "auto"), log)
    result["files"] = {k: out / f"benchmark.{k}" for k in ("md", "html", "csv", "json")}
    return result
