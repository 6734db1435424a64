"""One front door for every stage: ``wm <stage> [arguments]`` (``wm --help`` lists the stages).

Each stage is one of the entry points in ``scripts/`` and takes exactly the arguments its script takes (Hydra
overrides for the Hydra stages, flags for the argparse ones)::

    wm pipeline env=reacher planner=mppi
    wm collect env=push episodes=500 workers=2
    wm inspect data/push_explore.h5 --video

``python -m worldmodel <stage>`` is the same command. A stage runs from the installed package, with the Hydra
configs that ship inside it; the working directory is never searched for the library's own packages (a folder
named ``envs/`` or ``scripts/`` there is refused with one clear error when ``python -m`` put it first on
``sys.path``).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

# stage name -> module holding its main(); the module's file name is what the pipeline's stages name.
STAGES: dict[str, str] = {
    "pipeline": "scripts.pipeline",
    "collect": "scripts.collect",
    "inspect": "scripts.inspect_dataset",
    "import": "scripts.import_dataset",
    "pretrain": "scripts.pretrain",
    "probe": "scripts.probe_encoder",
    "train-predictor": "scripts.train_predictor",
    "rollout-error": "scripts.rollout_error",
    "cost-fidelity": "scripts.cost_fidelity",
    "evaluate": "scripts.evaluate",
    "merge-eval": "scripts.merge_eval",
    "benchmark": "scripts.benchmark",
    "sweep-summary": "scripts.sweep_summary",
    "bench-data": "scripts.bench_data",
    "bench-encoders": "scripts.bench_encoders",
    "bench-planners": "scripts.bench_planners",
    "bench-planner-quality": "scripts.bench_planner_quality",
    "bench-predictor": "scripts.bench_predictor",
    "bench-pretrain": "scripts.bench_pretrain",
}

# The library's top-level packages besides worldmodel: a folder of the same name must not stand in for them.
OWN_PACKAGES = ("envs", "planners", "scripts", "configs")


def stage_for_script(script: str) -> str:
    """The ``wm`` stage name of a scripts/ file name (``train_predictor.py`` -> ``train-predictor``)."""
    module = f"scripts.{Path(script).stem}"
    for name, mod in STAGES.items():
        if mod == module:
            return name
    raise ValueError(f"scripts/{script} is not a wm stage; known: {', '.join(STAGES)}")


def package_home() -> Path:
    """The folder that holds the library's packages (site-packages, or the checkout for an editable install)."""
    return Path(__file__).resolve().parents[1]


def shadowing_folders() -> dict[str, list[str]]:
    """Library package name -> folders of the working directory (or of the started script's folder) that Python
    would import it from instead of the library's own: a user's ``envs/`` when ``python -m`` put the working
    directory first on sys.path. (Folders elsewhere are left alone: some wheels ship a stray ``scripts/``.)"""
    home = package_home()
    suspects = {Path.cwd().resolve(), *(Path(sys.path[0] or ".").resolve() for _ in sys.path[:1])} - {home}
    found: dict[str, list[str]] = {}
    for name in OWN_PACKAGES:
        module = sys.modules.get(name)
        try:
            spec = module.__spec__ if module is not None else importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        locations = list(getattr(spec, "submodule_search_locations", None) or []) if spec is not None else []
        wrong = [loc for loc in locations if Path(loc).resolve().parent in suspects]
        if wrong:
            found[name] = wrong
    return found


def check_not_shadowed() -> None:
    """Exit with status 2 and one ``error:`` line when a folder of the user's stands in for a library package."""
    found = shadowing_folders()
    if not found:
        return
    name, folders = next(iter(found.items()))
    print(
        f"error: the folder {folders[0]} stands in for the library's {name!r} package (it is imported instead of "
        f"{package_home() / name}, because the working directory comes first on sys.path under `python -m` or an "
        f"empty PYTHONPATH entry); run the `wm` command (or `python -P -m worldmodel`), or run from another folder",
        file=sys.stderr,
    )
    raise SystemExit(2)


def summary(module: str) -> str:
    """First line of a stage module's docstring, read without importing it (so ``wm --help`` is instant)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = re.sub(r" \(Hydra( entry point)?\)", "", re.split(r"\.\s+(?=[A-Z`])", paragraph)[0]).rstrip(".")
    return sentence if len(sentence) <= 100 else sentence[:99] + "…"


def usage() -> str:
    """The ``wm --help`` text: how to call a stage, then one line per stage."""
    from worldmodel._version import __version__

    width = max(map(len, STAGES))
    lines = [
        f"usage: wm <stage> [arguments]     (worldmodel {__version__})",
        "",
        "Each stage takes the arguments of its script: Hydra overrides (key=value, --multirun, --config-dir, ...)",
        "or flags; `wm <stage> --help` shows them.",
        "",
        "stages:",
    ]
    lines += [f"  {name:<{width}}  {summary(module)}" for name, module in STAGES.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run ``wm <stage> [arguments]``: dispatch to the stage's ``main()`` with its arguments as sys.argv."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    if argv[0] in ("-V", "--version"):
        from worldmodel._version import __version__

        print(f"worldmodel {__version__}")
        return
    stage = argv[0]
    if stage not in STAGES:
        import difflib

        close = difflib.get_close_matches(stage, STAGES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"error: no stage {stage!r}{hint}; see wm --help", file=sys.stderr)
        raise SystemExit(2)
    check_not_shadowed()
    sys.argv = [f"wm {stage}", *argv[1:]]  # argparse and Hydra read sys.argv; messages name `wm <stage>`
    importlib.import_module(STAGES[stage]).main()


if __name__ == "__main__":
    main()
