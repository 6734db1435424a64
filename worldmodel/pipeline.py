"""The main job as cached stages: each stage is one of the library's scripts, run in its own folder.

A stage's folder is named after a hash of its script, the config it composes as values (its yaml, the group
options it chooses, the typed schemas' defaults and its overrides; worldmodel.stage_config) and its upstream
stages, so changing a setting (on the command line, in a yaml or in a schema's default) runs the stage again in
a new folder (the old results stay), while a comment or a reformatted yaml leaves it reused. Code is not hashed:
after changing code that a stage runs, delete its folder or give it a new `root`.
A stage that was interrupted is re-run in the same folder, where the script itself resumes.

A stage runs as ``python -P -m worldmodel.cli <stage> ...`` in the caller's working directory (the installed
package, never a checkout path, and never the working directory on sys.path); its output goes to its
``stage.log`` while its progress bars are mirrored live (worldmodel.progress). Messages go through ``logging``
(logger ``worldmodel.pipeline``).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldmodel.cli import package_home, stage_for_script
from worldmodel.progress import ProgressMirror, parse_bar
from worldmodel.stage_config import compose_stage_config

logger = logging.getLogger(__name__)

ROOT = package_home()  # the folder holding the library's packages and configs/ (site-packages or a checkout)
CONFIGS = ROOT / "configs"


def flatten_overrides(cfg: dict[str, Any], prefix: str = "") -> list[str]:
    """{"train": {"steps": 5}, "encoder": "tiny"} -> ["train.steps=5", "encoder=tiny"] (Hydra CLI syntax).

    A dict under a key ending in ``_kwargs`` (e.g. ``policy_kwargs``) is passed whole as a Hydra dict
    literal with Hydra's add-or-override prefix, ``++policy_kwargs={rest_prob:0.5}``: such keys default to
    ``{}``, which Hydra's struct mode refuses to extend with a plain override.
    """
    out: list[str] = []
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and str(key).endswith("_kwargs"):
            out.append(f"++{name}={{{','.join(_hydra_item(k, v) for k, v in value.items())}}}")
        elif isinstance(value, dict):
            out.extend(flatten_overrides(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out.append(f"{name}=[{','.join(str(v) for v in value)}]")
        elif value is None:
            out.append(f"{name}=null")
        elif isinstance(value, bool):
            out.append(f"{name}={'true' if value else 'false'}")
        else:
            out.append(f"{name}={value}")
    return out


def _hydra_item(key: str, value: Any) -> str:
    """``key:value`` inside a Hydra dict literal (lists as [a,b], None as null)."""
    if isinstance(value, (list, tuple)):
        return f"{key}:[{','.join(str(v) for v in value)}]"
    if value is None:
        return f"{key}:null"
    if isinstance(value, bool):
        return f"{key}:{'true' if value else 'false'}"
    return f"{key}:{value}"


@dataclass
class Stage:
    """One step of the pipeline: a script, its arguments, and what it must leave behind.

    Arguments may name ``{stage_dir}`` (this stage's folder) and ``{<upstream name>}`` (an upstream
    stage's folder); they are filled in when the command is built, never part of the stage's identity.
    """

    name: str
    script: str
    args: list[str]
    outputs: list[str]  # files (relative to the stage folder) whose existence marks the stage done
    upstream: list[Stage] = field(default_factory=list)
    launchable: bool = False  # may run under a multi-process launcher (torchrun): training and evaluation
    search_dirs: tuple[str, ...] = ()  # the user's config folders (--config-dir), searched before configs/
    pinned_key: str | None = field(default=None, compare=False)  # set by freeze(): the key for a whole run

    def freeze(self) -> None:
        """Fix the key for this run (upstream stages first), so a config file edited while the run goes on cannot
        give a stage one folder when it runs and another when a later stage names it."""
        self.pinned_key = None
        self.pinned_key = self.key

    @property
    def key(self) -> str:
        """Hash of everything that decides this stage's result: script, the config it composes as values (its yaml,
        the group options its arguments choose, the schemas' defaults, its overrides; worldmodel.stage_config) or,
        for an argparse script, its arguments, and its upstream stages' keys."""
        if self.pinned_key is not None:
            return self.pinned_key
        config = self.composed()
        blob = json.dumps(
            {"script": self.script, "config": self.args if config is None else config,
             "up": [u.key for u in self.upstream]},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    def composed(self) -> dict[str, Any] | None:
        """The config this stage's script will compose, as values with folders as tokens (None: argparse script)."""
        return compose_stage_config(self.script, [*self._placeheld_args(), *self.hydra_args()], CONFIGS)

    def _placeheld_args(self) -> list[str]:
        """The arguments with folder placeholders as plain tokens (``{collect}`` -> ``__collect__``): Hydra would
        read the braces as a dict, and a folder is where a result goes, never part of what it is."""
        names = ["stage_dir", *(u.name for u in self.upstream)]
        out = []
        for arg in self.args:
            for name in names:
                arg = arg.replace(f"{{{name}}}", f"__{name}__")
            out.append(arg)
        return out

    def hydra_args(self) -> list[str]:
        """Arguments that give a Hydra stage the user's config folders (none for argparse scripts)."""
        if not self.search_dirs or not (CONFIGS / f"{Path(self.script).stem}.yaml").exists():
            return []
        return ["hydra.searchpath=[" + ",".join(f"file://{d}" for d in self.search_dirs) + "]"]

    def folder(self, root: Path) -> Path:
        """Where this stage runs: root/<name>-<key>."""
        return root / f"{self.name}-{self.key}"

    def command(self, root: Path, python: str, launcher: str | None = None) -> list[str]:
        """The full command line with the folder placeholders filled in: the stage through the installed package's
        front door (``python -P -m worldmodel.cli <stage> ...``, never a checkout path, never the working directory
        on sys.path); ``launcher`` (torchrun arguments, e.g. ``--standalone --nproc_per_node=2``) runs a launchable
        stage through ``torch.distributed.run -m worldmodel.cli``."""
        subst = {f"{{{u.name}}}": str(u.folder(root)) for u in self.upstream}
        subst["{stage_dir}"] = str(self.folder(root))
        args = []
        for a in self.args:
            for k, v in subst.items():
                a = a.replace(k, v)
            args.append(a)
        stage_args = [stage_for_script(self.script), *args, *self.hydra_args()]
        if launcher and self.launchable:  # its workers run `python -u -m worldmodel.cli` with PYTHONSAFEPATH=1
            torchrun = module_command(python, "torch.distributed.run")
            return [*torchrun, *shlex.split(launcher), "-m", "worldmodel.cli", *stage_args]
        return [*module_command(python, "worldmodel.cli"), *stage_args]


# `python -c` for interpreters without -P (Python 3.10, or a `python` other than this one): drop the '' entry
_NO_CWD_BOOT = "import runpy, sys; sys.path.pop(0); runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"


def module_command(python: str, module: str) -> list[str]:
    """``python -m module`` without the working directory on sys.path (so a user's ``envs/`` folder cannot stand
    in for the library's): ``-P`` on Python 3.11+, else an equivalent ``-c`` bootstrap."""
    if python == sys.executable and sys.version_info >= (3, 11):
        return [python, "-P", "-m", module]
    return [python, "-c", _NO_CWD_BOOT.format(module=module)]


def stage_env() -> dict[str, str]:
    """The environment of a stage: the caller's, with the package's own folder on PYTHONPATH when it is not
    installed into site-packages (a checkout), no empty PYTHONPATH entry (that would mean the working
    directory), PYTHONSAFEPATH (3.11+: no working directory on sys.path, torchrun's workers too) and unbuffered
    output (so progress arrives as it happens)."""
    import site

    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    home = str(package_home())
    site_dirs = {str(Path(d).resolve()) for d in [*site.getsitepackages(), site.getusersitepackages()]}
    if home not in site_dirs and home not in paths:
        paths.insert(0, home)
    env = {**os.environ, "PYTHONSAFEPATH": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``1 h 02 min``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _stream_stage(cmd: list[str], log_path: Path, mirror: ProgressMirror) -> int:
    """Run ``cmd`` in the working directory, appending all its output to ``log_path`` as it comes and feeding it
    to ``mirror``; returns the exit status. An interrupt (Ctrl-C) kills the child and is re-raised."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with log_path.open("ab") as logf:
        proc = subprocess.Popen(cmd, env=stage_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read1(1 << 16):
                logf.write(chunk)
                logf.flush()
                mirror.feed(decoder.decode(chunk))
            return proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
            mirror.close()


def _log_tail(path: Path, lines: int = 15) -> list[str]:
    """The last ``lines`` lines of a stage log that are not progress-bar states (those are in the log too)."""
    text = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip() and parse_bar(ln) is None]
    return text[-lines:]


def run_stage(
    stage: Stage, root: Path, python: str, launcher: str | None = None, progress_every_s: float = 30.0
) -> tuple[Path, float, bool]:
    """Run (or reuse) a stage; returns (folder, seconds spent, reused). The launcher is not part of the
    stage's identity: a multi-process run computes the same result up to float rounding. The stage's output goes
    to its ``stage.log``; its progress bars are mirrored live (see worldmodel.progress)."""
    folder = stage.folder(root)
    done = folder / "stage_done.json"
    if done.exists() and all((folder / o).exists() for o in stage.outputs):
        logger.info("[pipeline] %s: reusing %s", stage.name, folder)
        return folder, 0.0, True
    folder.mkdir(parents=True, exist_ok=True)
    cmd = stage.command(root, python, launcher)
    logger.info("[pipeline] %s: %s", stage.name, " ".join(cmd[1:]))
    t0 = time.perf_counter()
    live = sys.stderr.isatty()
    code = _stream_stage(cmd, folder / "stage.log", ProgressMirror(stage.name, sys.stderr, live, progress_every_s))
    dt = time.perf_counter() - t0
    if code != 0:
        tail = _log_tail(folder / "stage.log")
        raise RuntimeError(f"stage {stage.name} failed (exit {code}); log {folder / 'stage.log'}:\n" + "\n".join(tail))
    missing = [o for o in stage.outputs if not (folder / o).exists()]
    if missing:
        raise RuntimeError(f"stage {stage.name} finished but did not write {missing} in {folder}")
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps({"command": cmd, "seconds": dt, "key": stage.key}, indent=2))
    os.replace(tmp, done)
    logger.info("[pipeline] %s: done in %s", stage.name, format_seconds(dt))
    return folder, dt, False


def build_stages(cfg: dict[str, Any]) -> dict[str, Stage]:
    """The pipeline's stages from its config (see configs/pipeline.yaml), in run order."""
    env_choice = cfg["env_choice"]
    device = cfg.get("device", "auto")
    env_kw = [f"env.kwargs.{k}={v}" for k, v in (cfg.get("env_kwargs") or {}).items()]
    collect = Stage(
        "collect",
        "collect.py",
        [
            f"env={env_choice}",
            *env_kw,
            *flatten_overrides(cfg["collect"]),
            "out={stage_dir}/data.h5",
            "hydra.run.dir={stage_dir}/hydra",
        ],
        ["data.h5"],
    )
    pretrain = Stage(
        "pretrain",
        "pretrain.py",
        [
            "data.path={collect}/data.h5",
            f"device={device}",
            *flatten_overrides(cfg["pretrain"]),
            "out_dir={stage_dir}",
        ],
        ["encoder.pt", "encoder_random.pt"],
        upstream=[collect],
        launchable=True,
    )
    stages = {"collect": collect, "pretrain": pretrain}
    encoders = {"world_model": "encoder.pt"}
    if cfg.get("compare_random_init", True):
        encoders["random_init"] = "encoder_random.pt"
    for name, enc in encoders.items():
        stages[f"predictor_{name}"] = Stage(
            f"predictor_{name}",
            "train_predictor.py",
            [
                "data.path={collect}/data.h5",
                f"encoder.path={{pretrain}}/{enc}",
                f"device={device}",
                *flatten_overrides(cfg["predictor"]),
                "out_dir={stage_dir}",
            ],
            ["world_model.pt"],
            upstream=[collect, pretrain],
            launchable=True,
        )
    if cfg.get("diagnostics", True):
        stages.update(_diagnostic_stages(stages, list(encoders)))
        if cfg.get("protocol"):
            stages["cost_fidelity"] = _fidelity_stage(cfg, list(encoders), stages)
    stages["evaluate"] = _evaluate_stage(cfg, list(encoders), env_kw, stages)
    if cfg.get("protocol"):
        stages["benchmark"] = _benchmark_stage(cfg, list(encoders), env_kw, stages)
    for stage in stages.values():  # the user's --config-dir (their own env/planner configs) reaches every stage
        stage.search_dirs = tuple(str(d) for d in cfg.get("config_search_dirs") or ())
    return stages


def _world_model_args(encoders: list[str]) -> list[str]:
    """``--world-model NAME={predictor_NAME}/world_model.pt`` for each predictor stage (argparse diagnostics)."""
    return [a for name in encoders for a in ("--world-model", f"{name}={{predictor_{name}}}/world_model.pt")]


def _diagnostic_stages(stages: dict[str, Stage], encoders: list[str]) -> dict[str, Stage]:
    """Representation probes of the pretrained encoder and of each world model's goal distances, and rollout error
    of each world model."""
    collect, pretrain = stages["collect"], stages["pretrain"]
    predictors = [stages[f"predictor_{name}"] for name in encoders]
    # the planner's goal distances of each world model (latent L1, and its learned metric when it has one)
    world_models = _world_model_args(encoders)
    out: dict[str, Stage] = {}
    out["probe"] = Stage(
        "probe",
        "probe_encoder.py",
        [
            "--data",
            "{collect}/data.h5",
            "--encoder",
            "{pretrain}/encoder.pt",
            "--random",
            "{pretrain}/encoder_random.pt",
            *world_models,
            "--json",
            "{stage_dir}/probe.json",
        ],
        ["probe.json"],
        upstream=[collect, pretrain, *predictors],
    )
    for name in encoders:
        out[f"rollout_error_{name}"] = Stage(
            f"rollout_error_{name}",
            "rollout_error.py",
            [f"{{predictor_{name}}}/world_model.pt", "--out", "{stage_dir}"],
            ["rollout_error.json"],
            upstream=[stages[f"predictor_{name}"]],
        )
    return out


def _fidelity_stage(cfg: dict[str, Any], encoders: list[str], stages: dict[str, Stage]) -> Stage:
    """Cost fidelity (scripts/cost_fidelity.py) of every world model from the protocol's held-out starts, one plan's
    reach ahead (the protocol planner's horizon x the predictors' frameskip): does the imagined latent cost rank
    candidate plans as the encoded true frames and the task do? As many starts as the protocol has episodes per
    seed, as many candidates as its planner samples per iteration."""
    from dataclasses import asdict

    from worldmodel.config.train import PredictorDataConfig

    bench = cfg.get("benchmark") or {}
    planner = {**(cfg.get("planner") or {}), **(bench.get("planner") or {})}
    data = {**asdict(PredictorDataConfig()), **((cfg.get("predictor") or {}).get("data") or {})}
    sizes = [
        "--episodes", str(bench.get("episodes", 50)),
        "--samples", str(planner.get("num_samples", 64)),
        "--num-envs", str((bench.get("eval") or {}).get("num_envs", 8)),
        "--offset", str(int(planner.get("horizon", 5)) * int(data["frameskip"])),
    ]
    return Stage(
        "cost_fidelity",
        "cost_fidelity.py",
        [*_world_model_args(encoders), "--data", "{collect}/data.h5", *sizes, "--out", "{stage_dir}"],
        ["cost_fidelity.json", "cost_fidelity.md"],
        upstream=[stages["collect"], *(stages[f"predictor_{n}"] for n in encoders)],
    )


def _evaluate_stage(
    cfg: dict[str, Any], encoders: list[str], env_kw: list[str], stages: dict[str, Stage]
) -> Stage:
    """Closed-loop evaluation of every world model beside the random floor and the oracle ceiling."""
    device = cfg.get("device", "auto")
    wm_args = [f"++world_models.{name}={{predictor_{name}}}/world_model.pt" for name in encoders]
    return Stage(
        "evaluate",
        "evaluate.py",
        [
            f"env={cfg['env_choice']}",
            f"planner={cfg['planner_choice']}",
            *env_kw,
            f"device={device}",
            *wm_args,
            *flatten_overrides(cfg["evaluate"]),
            "out_dir={stage_dir}",
        ],
        ["summary.json"],
        upstream=[stages[f"predictor_{n}"] for n in encoders],
        launchable=True,
    )


def _benchmark_stage(
    cfg: dict[str, Any], encoders: list[str], env_kw: list[str], stages: dict[str, Stage]
) -> Stage:
    """The field's protocol (scripts/benchmark.py) on the same world models: held-out dataset starts and goals
    from the collected data, agent variants as columns, random and oracle per seed."""
    wm_args = [f"++world_models.{name}={{predictor_{name}}}/world_model.pt" for name in encoders]
    return Stage(
        "benchmark",
        "benchmark.py",
        [
            f"env={cfg['env_choice']}",
            f"planner={cfg['planner_choice']}",
            *env_kw,
            f"device={cfg.get('device', 'auto')}",
            *wm_args,
            "data={collect}/data.h5",
            *flatten_overrides(cfg.get("benchmark") or {}),
            "out_dir={stage_dir}",
        ],
        ["benchmark.json"],
        upstream=[stages["collect"], *(stages[f"predictor_{n}"] for n in encoders)],
    )


def check_planning_reach(cfg: dict[str, Any]) -> None:
    """Refuse (ValueError) an evaluation horizon past what the predictor stages train on, before any stage runs:
    evaluate.planner.horizon (else the planner group's) plus agent.context_frames against predictor.data.clip_len
    (see worldmodel.planning.horizon)."""
    from dataclasses import asdict

    from worldmodel.config.agent import AgentConfig
    from worldmodel.config.evaluate import typed
    from worldmodel.config.train import PredictorDataConfig
    from worldmodel.planning.horizon import check_planning_horizon

    ev = cfg.get("evaluate") or {}
    agent = typed(AgentConfig, ev.get("agent"))  # the schemas' one default for what the overrides leave out
    planner = {**(cfg.get("planner") or {}), **(ev.get("planner") or {})}
    data = {**asdict(PredictorDataConfig()), **((cfg.get("predictor") or {}).get("data") or {})}
    if "horizon" not in planner:
        return
    check_planning_horizon(
        int(planner["horizon"]),
        agent.context_frames,
        int(data["clip_len"]) - 1,
        int(data["frameskip"]),
        agent.allow_long_horizon,
        "evaluate.agent.allow_long_horizon",
        prefix="evaluate.",
        clip_key="predictor.data.clip_len",
    )


def check_metric_trained(cfg: dict[str, Any]) -> None:
    """Refuse (ValueError) a planning stage, or a benchmark variant, that weighs the learned step metric when the
    predictor stages fit none (``predictor.metric.steps`` 0), before any stage runs rather than after training.
    The weights read are those the stage composes (its yaml, the schema's defaults and variants, the overrides)."""
    steps = int(((cfg.get("predictor") or {}).get("metric") or {}).get("steps") or 0)
    if steps > 0:
        return
    stages = build_stages(cfg)
    for name in ("evaluate", "benchmark"):
        if name not in stages:
            continue
        for setting, weight in _metric_weights(stages[name]):
            if weight > 0:
                raise ValueError(
                    f"{setting}={weight:g} plans with a learned step metric, but the predictor stages fit none "
                    f"(predictor.metric.steps=0); set predictor.metric.steps (e.g. 2000) or {setting}=0"
                )


def _metric_weights(stage: Stage) -> list[tuple[str, float]]:
    """(setting, weight) of the metric term for a planning stage as composed, and for each benchmark variant as the
    benchmark builds it (worldmodel.eval.benchmark.variant_config)."""
    from worldmodel.eval.benchmark import BENCHMARK_KEYS, variant_config

    composed = stage.composed() or {}

    def weight(cfg: dict[str, Any]) -> float:
        return float(((cfg.get("objective") or {}).get("metric") or {}).get("weight") or 0.0)

    out = [(f"{stage.name}.objective.metric.weight", weight(composed))]
    base = {k: v for k, v in composed.items() if k not in BENCHMARK_KEYS}
    for vname, over in (composed.get("variants") or {}).items():
        if over is not None:
            vcfg = variant_config(base, str(vname), over, CONFIGS)
            out.append((f"{stage.name}.variants.{vname}.objective.metric.weight", weight(vcfg)))
    return out


def log_stage_warnings(name: str, folder: Path) -> list[str]:
    """Log a stage's warnings (a wall-clock cap that cut training short, a predictor that does not beat
    copy-last; from its train_summary.json) loudly on the console, and return them."""
    from worldmodel.eval.report import stage_warnings

    warnings = stage_warnings(folder)
    for line in warnings:
        logger.warning("[pipeline] WARNING %s: %s", name, line)
    return warnings


def log_timings(timings: dict[str, float], reused: dict[str, bool], total: float) -> None:
    """One line per stage with the time it took (or ``reused``), then the total."""
    width = max(map(len, timings), default=5)
    rows = [f"  {n:<{width}}  {'reused' if reused[n] else format_seconds(s):>14}" for n, s in timings.items()]
    rows.append(f"  {'total':<{width}}  {format_seconds(total):>14}")
    logger.info("[pipeline] time per stage:\n%s", "\n".join(rows))


def run_pipeline(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run every stage in order and write root/report.md; returns the timing, paths and stage warnings."""
    from worldmodel.config.pipeline import check_stage_overrides
    from worldmodel.eval.assemble import check_agent_config, check_oracle_planner
    from worldmodel.eval.report import write_report
    from worldmodel.planning.config import compose_objective

    ev = cfg.get("evaluate", {}) or {}  # a typo fails now, not after training; a moved key names its new place
    check_agent_config(ev.get("agent") or {}, compose_objective(ev.get("objective"), ROOT / "configs"))
    for stage_name in ("collect", "pretrain", "predictor", "evaluate", "benchmark"):
        check_stage_overrides(stage_name, cfg.get(stage_name) or {})
    check_oracle_planner(cfg.get("planner") or {}, ev.get("methods"))
    check_planning_reach(cfg)
    check_metric_trained(cfg)
    root = Path(cfg["root"]).resolve()
    root.mkdir(parents=True, exist_ok=True)
    python = cfg.get("python") or sys.executable
    every = float(cfg.get("progress_every_s") or 30.0)
    timings: dict[str, float] = {}
    reused: dict[str, bool] = {}
    folders: dict[str, Path] = {}
    warnings: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    stages = build_stages(cfg)
    for stage in stages.values():  # run order: every upstream stage is frozen before the stages that name it
        stage.freeze()
    for name, stage in stages.items():
        folders[name], timings[name], reused[name] = run_stage(stage, root, python, cfg.get("launcher"), every)
        warnings[name] = log_stage_warnings(name, folders[name])
    total = time.perf_counter() - t0
    report = write_report(root, folders, timings, total, cfg)
    log_timings(timings, reused, total)
    logger.info("[pipeline] report: %s (and %s to open in a browser)", report, report.with_suffix(".html"))
    if any(warnings.values()):
        logger.warning("[pipeline] %d WARNING(s) above; they head the report too", sum(map(len, warnings.values())))
    return {
        "report": str(report),
        "timings": timings,
        "folders": {k: str(v) for k, v in folders.items()},
        "warnings": {k: v for k, v in warnings.items() if v},
    }
