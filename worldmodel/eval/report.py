"""report.md and report.html for a pipeline run (success between floor and ceiling, what pretraining earns,
diagnostics, paired tests, commands) and for one evaluation folder."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

TRAIN_SUMMARY = "train_summary.json"  # written by the training stages (worldmodel.training.loop.write_summary)


def _rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)


def train_summary(folder: Path) -> dict[str, Any]:
    """A training stage's train_summary.json ({} for other stages, and for folders from before it was written)."""
    try:
        return json.loads((Path(folder) / TRAIN_SUMMARY).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def stage_warnings(folder: Path) -> list[str]:
    """The warnings a training stage recorded: a wall-clock cap that cut it short, a predictor no better than
    copy-last at some trained horizon."""
    return [str(w) for w in train_summary(folder).get("warnings") or []]


def _warning_lines(folders: dict[str, Path]) -> list[str]:
    """Red lines for the top of the report, one per stage warning (empty when there is none)."""
    lines = []
    for name, folder in folders.items():
        for w in stage_warnings(folder):
            lines.append(f'> <span style="color:red">🔴 **WARNING** ({name}): {w}.</span>')
            lines.append(">")
    return [*lines[:-1], ""] if lines else []


def _copy_last_line(name: str, summary: dict[str, Any]) -> list[str]:
    """The predictor's own validation figures against copy-last at every trained horizon (from its training)."""
    rec = summary.get("copy_last_by_horizon")
    if not rec:
        return []
    ratios = ", ".join(f"{r:.2f}" for r in rec["model_over_copy_last"])
    verdict = (
        "beats copy-last at every trained horizon"
        if not rec["not_beaten_at"]
        else f"**does not beat copy-last at h = {rec['not_beaten_at']}**"
    )
    return [
        f"**{name}** at the end of training, on {rec['clips']} validation clips, open loop from one frame: "
        f"model / copy-last L1 at h = 1..{len(rec['horizon'])} (the horizons it was trained on): {ratios}; it "
        f"{verdict}.",
        "",
    ]


def _probe_section(probe: dict[str, Any]) -> list[str]:
    """Table: per encoder and pooling grid, probe R^2, RMSE/radius and latent-vs-true distance correlation."""
    lines = [
        "| encoder | pooling | probe R² (mean) | max RMSE / success radius | Spearman all pairs | "
        "Spearman near pairs | nearest neighbour beyond radius |",
        "|---|---|---|---|---|---|---|",
    ]
    for enc, res in probe.items():
        if enc == "world_models":  # the goal distances' table, below
            continue
        for grid, r in res.items():
            if grid == "collapse" or not isinstance(r, dict) or "linear" not in r:
                continue
            lin, dist = r["linear"], r["distance"]
            ratio = max(lin.get("rmse_over_radius", {"-": float("nan")}).values())
            lines.append(
                f"| {enc} | {grid} | {lin['r2_mean']:.3f} | {ratio:.2f} | {dist['spearman_all']:.3f} | "
                f"{dist.get('spearman_near', float('nan')):.3f} | "
                f"{r.get('retrieval', {}).get('beyond_radius', float('nan')):.1%} |"
            )
    lines += [
        "",
        "Nearest neighbour beyond radius: the share of held-out frames whose nearest training frame in (standardised) "
        "latent L1 lies more than one success radius away in truth; the subgoal graph and the planner's goal "
        "matching rely on it.",
    ]
    if probe.get("world_models"):
        lines += ["", *_goal_distance_section(probe["world_models"])]
    return lines


def _goal_distance_section(world_models: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Table: each world model's planning distances (latent L1, learned metric) against the true task distance."""
    cols = [(wm, kind) for wm, kinds in world_models.items() for kind in kinds]
    edges = next(iter(world_models.values()))["latent_l1"].get("profile_edges") or []
    bins = [f"{lo:g}-{hi:g} r" if hi != float("inf") else f"> {lo:g} r" for lo, hi in zip(edges[:-1], edges[1:])]
    head = ["Spearman all pairs", "Spearman near pairs", *bins]
    lines = [
        "The planner's goal distances on the same held-out pairs: each world model's latent L1 (in its own latent "
        "space) and its learned step metric where it has one (`objective.metric`). The profile is the mean distance "
        "per bin of true distance (in success radii) over the mean of all pairs: where a row stops rising, the "
        "planner has no slope toward the goal.",
        "",
        "| distance | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(head),
    ]
    for wm, kind in cols:
        r = world_models[wm][kind]
        vals = [r.get("spearman_all"), r.get("spearman_near"), *(r.get("profile") or [None] * len(bins))]
        cells = ["–" if v is None or v != v else f"{v:.2f}" for v in vals]
        lines.append(f"| {wm}: {kind.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return lines


def _rollout_section(name: str, res: dict[str, Any]) -> list[str]:
    """Rollout error against horizon next to the copy-last and mean-embedding baselines."""
    lines = [
        f"**{name}** ({res['windows']} held-out windows, {res['metric']})",
        "",
        "| h | model | copy last | mean embedding | model / copy last |",
        "|---|---|---|---|---|",
    ]
    trained = res.get("trained_horizon")
    for i, h in enumerate(res["horizon"]):
        beyond = " (beyond training)" if trained is not None and h > trained else ""
        lines.append(
            f"| {h}{beyond} | {res['model'][i]:.4f} | {res['copy_last'][i]:.4f} | {res['mean_embedding'][i]:.4f} | "
            f"{res['model_over_copy_last'][i]:.3f} |"
        )
    if "proprio_head" in res:
        fmt = lambda k: "[" + ", ".join(f"{v:.3f}" for v in res[k][-1]) + "]"  # noqa: E731
        lines += [
            "",
            f"Proprio error per dimension at h = {res['horizon'][-1]} (raw units): predictor's proprio head "
            f"{fmt('proprio_head')}; linear readout of the imagined latents {fmt('proprio_readout')} (of the true "
            f"latents {fmt('proprio_readout_true')}); copy last {fmt('proprio_copy_last')}.",
        ]
    return lines


def _agent_line(agent: dict[str, Any], objective: dict[str, Any] | None) -> str:
    """One sentence on what the world model's planner minimises and whether it follows graph subgoals."""
    from worldmodel.planning import ObjectiveConfig

    cfg = ObjectiveConfig.from_dict(objective)
    parts = [f"latent {cfg.latent.kind} x {cfg.latent.weight:g}"] if cfg.latent.weight > 0 else []
    if cfg.metric.weight > 0:
        where = "last imagined step" if cfg.metric.steps == "last" else "mean over the horizon"
        parts.append(f"learned step metric x {cfg.metric.weight:g} ({where})")
    if cfg.proprio.weight > 0:
        parts.append(
            f"imagined-vs-goal proprio x {cfg.proprio.weight:g} (goal proprio read out from the goal image, "
            f"{cfg.proprio.readout})"
        )
    if cfg.action.weight > 0:
        parts.append(f"mean squared action x {cfg.action.weight:g}")
    if cfg.probe.weight > 0:
        parts.append(f"probe-space task distance x {cfg.probe.weight:g}")
    steps = "last imagined step" if cfg.latent.steps == "last" else "mean over the horizon"
    line = f"World-model cost (`objective`): {' + '.join(parts)}, at the {steps}."
    sub = agent.get("subgoals") or {}
    if sub.get("enabled"):
        line += (
            f" Subgoals: a waypoint graph over {sub.get('frames', 3000)} training frames; each plan aims "
            "`lookahead` steps along the shortest path to the goal (the oracle uses the same graph on true states)."
        )
    return line


def closed_loop_lines(summary: dict[str, Any], folder: Path, root: Path) -> list[str]:
    """The closed-loop table, the planner and cost in words, plots and videos of one evaluation folder, with
    paths relative to ``root`` (where the report sits)."""
    from worldmodel.eval.summary import format_table

    lines = [
        format_table(summary),
        "",
        f"Planner `{summary['planner']['_target_']}`: horizon {summary['planner'].get('horizon')}, "
        f"{summary['planner'].get('num_samples')} samples x {summary['planner'].get('iterations')} iterations; "
        f"budget {summary['settings']['max_steps']} env steps; success threshold "
        f"{summary['success_threshold']}; device {summary['device']}. `success` is at the episode's end, "
        "`reached` at any step.",
        "",
    ]
    if summary.get("world_models"):
        lines += [_agent_line(summary.get("agent") or {}, summary.get("objective")), ""]
    plots = [
        f"![{n}]({_rel(folder / f'{n}.png', root)})" for n in ("success", "distance") if (folder / f"{n}.png").exists()
    ]
    if plots:
        lines += [" ".join(plots), ""]
    videos = summary.get("videos", [])
    if videos:
        lines += [
            "Videos of the first episodes (each tile: the observation beside its goal image): "
            + ", ".join(f"[{v}]({_rel(folder / v, root)})" for v in videos),
            "",
        ]
    return lines


def paired_lines(
    folder: Path, order: list[str] | None = None, records: dict[str, list[dict[str, Any]]] | None = None
) -> list[str]:
    """Exact McNemar tests between the methods of one evaluation folder (they ran the same episodes), pairs in
    the order of ``order`` (the summary's methods); ``records`` (method -> episode records) or those on disk."""
    from worldmodel.eval.paired import compare_methods, default_pairs, format_markdown, read_episode_records
    from worldmodel.eval.summary import METHOD_LABELS

    records = records if records is not None else read_episode_records(folder)
    rank = {m: i for i, m in enumerate(order or [])}
    records = dict(sorted(records.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    tests = compare_methods(records, default_pairs(list(records)))
    if not tests:
        return []
    return ["### Paired comparison (same episodes)", "", *format_markdown(tests, METHOD_LABELS), ""]


def eval_command(folder: Path, script: str = "scripts/evaluate.py") -> str | None:
    """The command line that made an evaluation or benchmark folder, from Hydra's record of its overrides."""
    path = Path(folder) / "hydra" / ".hydra" / "overrides.yaml"
    if not path.exists():
        return None
    import yaml

    overrides = yaml.safe_load(path.read_text()) or []
    return " ".join(["python", script, *(shlex.quote(str(o)) for o in overrides)])


def _stage_commands(folders: dict[str, Path]) -> list[str]:
    """One code block per stage with the command that made it (from its stage_done.json)."""
    lines = []
    for name, folder in folders.items():
        try:
            cmd = json.loads((folder / "stage_done.json").read_text())["command"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            continue
        lines += [f"**{name}**", "", "```", "python " + " ".join(shlex.quote(c) for c in cmd[1:]), "```", ""]
    return ["## Commands", "", "The command each stage ran (every number above comes from these).", "", *lines] \
        if lines else []


def _write_both(root: Path, lines: list[str], name: str = "report") -> Path:
    """Write root/<name>.md and root/<name>.html (each atomically); returns the markdown's path."""
    from worldmodel.eval.report_html import write_html

    text = "\n".join(lines)
    out = root / f"{name}.md"
    tmp = root / f".{name}.md.{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, out)
    write_html(text, root / f"{name}.html")
    return out


def write_eval_report(
    out: Path, summary: dict[str, Any], records: dict[str, list[dict[str, Any]]] | None = None
) -> Path:
    """report.md and report.html of one evaluation folder: success table, plots, videos, paired tests (on
    ``records``, method -> episode records, or those in the folder), command."""
    out = Path(out)
    lines = [
        f"# Closed-loop evaluation: {summary['env_id']}",
        "",
        f"{summary['episodes']} episodes per method, every method on the same episodes (seed {summary.get('seed')}, "
        f"goals from {(summary.get('goals') or {}).get('source', 'env')}).",
        "",
        *closed_loop_lines(summary, out, out),
        *paired_lines(out, list(summary["methods"]), records),
    ]
    cmd = eval_command(out)
    lines += ["## Command", "", "```", cmd, "```", ""] if cmd else [
        "## Command", "", "No record of a command line in `hydra/.hydra/` (evaluate() called from Python, or a "
        "`--multirun` job: see its sweep folder); every setting is in `summary.json`.", ""]
    if summary.get("shards"):
        lines += [f"Merged from {summary['shards']} shards (`python scripts/merge_eval.py {out}` remakes it).", ""]
    return _write_both(out, lines)


def _protocol_lines(folder: Path | None, root: Path) -> list[str]:
    """The field's protocol table (the benchmark stage's benchmark.md, its title dropped), when the stage ran."""
    table = folder / "benchmark.md" if folder is not None else None
    if table is None or not table.exists():
        return []
    body = [ln for ln in table.read_text().splitlines() if not ln.startswith("# ")]
    head = (f"Start at a held-out dataset frame, goal image = a later frame of the same episode, the env's own success "
            f"rule at the end of the budget (full tables and runs: `{_rel(folder, root)}`).")
    return ["## The field's protocol (held-out dataset goals)", "", head, "", *body, ""]


def _fidelity_lines(folder: Path | None, root: Path) -> list[str]:
    """The cost-fidelity table (scripts/cost_fidelity.py), when the stage ran."""
    table = folder / "cost_fidelity.md" if folder is not None else None
    if table is None or not table.exists():
        return []
    head = ("The same candidate plans from held-out protocol starts, one plan's reach ahead, ranked by the task "
            "distance through the true physics, by the latent cost of the encoded true frames (`rendered`) and by the "
            "world model's imagined latent cost (`predicted`): Spearman over all candidates / the quarter nearest the "
            "goal; spread ratio = how much the imagined cost varies with the plan against the rendered one "
            f"(worldmodel/eval/cost_fidelity.py; `{_rel(folder, root)}`).")
    return ["## Cost fidelity (what the planner's ranking of plans loses)", "", head, "",
            *table.read_text().splitlines(), ""]


def _preset_lines(cfg: dict[str, Any]) -> list[str]:
    """Which task preset and compute budget the main job composed (configs/preset, configs/budget)."""
    budget = cfg.get("budget_choice")
    if not budget:
        return []
    preset = cfg.get("preset_choice")
    recipe = f"the task preset `configs/preset/{preset}.yaml`" if preset else "no task preset (the schema's defaults)"
    return [f"Settings: {recipe} on the `{budget}` budget (`configs/budget/{budget}.yaml`); docs/presets.md.", ""]


def write_report(
    root: Path, folders: dict[str, Path], timings: dict[str, float], total_s: float, cfg: dict[str, Any]
) -> Path:
    """Write root/report.md and root/report.html (atomically) from the stage outputs; returns report.md's path."""
    summary = json.loads((folders["evaluate"] / "summary.json").read_text())
    m = summary["methods"]
    lines = [f"# World-model planning report: {summary['env_id']}", "", *_warning_lines(folders)]
    wm = m.get("world_model")
    if wm and "random" in m and "oracle" in m:
        lines += [
            f"**Closed-loop success: {wm['success_rate']:.0%}** "
            f"(95% CI {wm['success_ci95'][0]:.0%}-{wm['success_ci95'][1]:.0%}) over {wm['episodes']} episodes, "
            f"between the random-action floor **{m['random']['success_rate']:.0%}** and the simulator ceiling "
            f"**{m['oracle']['success_rate']:.0%}** (same planner through the true dynamics).",
        ]
        if "random_init" in m:
            lines.append(
                f"A frozen random-init encoder with its own trained predictor reaches "
                f"**{m['random_init']['success_rate']:.0%}**: that difference is what pretraining earns."
            )
        lines.append("")
    lines += ["## Closed loop", "", *closed_loop_lines(summary, folders["evaluate"], root)]
    lines += paired_lines(folders["evaluate"], list(m))
    lines += _protocol_lines(folders.get("benchmark"), root)
    lines += _fidelity_lines(folders.get("cost_fidelity"), root)
    if "probe" in folders and (folders["probe"] / "probe.json").exists():
        probe = json.loads((folders["probe"] / "probe.json").read_text())
        lines += ["## Representation (held-out episodes)", "", *_probe_section(probe), ""]
    ro = [k for k in folders if k.startswith("rollout_error_")]
    vs_copy = [ln for k in folders if k.startswith("predictor_")
               for ln in _copy_last_line(k.removeprefix("predictor_"), train_summary(folders[k]))]
    if ro or vs_copy:
        lines += ["## Predictor rollout error", "", *vs_copy]
        for k in ro:
            res = json.loads((folders[k] / "rollout_error.json").read_text())
            lines += [*_rollout_section(k.removeprefix("rollout_error_"), res), ""]
            if (folders[k] / "rollout_error.png").exists():
                lines += [f"![rollout error {k.removeprefix('rollout_error_')}]"
                          f"({_rel(folders[k] / 'rollout_error.png', root)})", ""]
    lines += ["## Stages", "", "| stage | folder | seconds this run |", "|---|---|---|"]
    for k, f in folders.items():
        lines.append(
            f"| {k} | `{_rel(f, root)}` | {'reused' if timings.get(k, 0) == 0 else f'{timings[k]:.0f}'} |"
        )
    lines += ["", f"Total wall time of the stages run this time: {total_s / 60:.1f} min.", ""]
    lines += _preset_lines(cfg)
    lines += _stage_commands(folders)
    return _write_both(root, lines)
