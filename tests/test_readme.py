"""Every README code block of this library is tested: Python blocks run for real on tiny fixtures made here, and
every shell command is parsed, its script must exist, and a Hydra script's overrides are composed with Hydra's
compose API against the shipped configs (so a misspelt key in the README fails here)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HYDRA_SCRIPTS = {"pipeline", "evaluate", "benchmark", "collect", "pretrain", "train_predictor"}
"""scripts/<name>.py composing configs/<name>.yaml."""


def blocks(lang: tuple[str, ...]) -> list[str]:
    """The fenced code blocks of README.md in one of the languages ``lang``."""
    found = re.findall(r"^```(\w*)\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    return [body for tag, body in found if tag in lang]


def commands() -> list[str]:
    """Every shell command of the README's bash blocks (continuations joined, comments dropped, && split)."""
    out = []
    for body in blocks(("bash", "sh", "shell")):
        text = re.sub(r"\\\n\s*", " ", body)
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            out += [part.strip() for part in line.split("&&") if part.strip()]
    return out


def script_of(words: list[str]) -> tuple[str, list[str]] | None:
    """(script name, its arguments) of a command running scripts/<name>.py or ``wm <stage>``, else None."""
    from worldmodel.cli import STAGES

    for i, word in enumerate(words):
        if word.startswith("scripts/") and word.endswith(".py"):
            return Path(word).stem, words[i + 1 :]
        if Path(word).name == "wm" and i + 1 < len(words):
            assert words[i + 1] in STAGES, f"wm has no stage {words[i + 1]!r}"
            return STAGES[words[i + 1]].rsplit(".", 1)[-1], words[i + 2 :]
    return None


def hydra_overrides(args: list[str]) -> list[str]:
    """The config overrides of a Hydra script's arguments; a --multirun sweep (a=x,y) takes its first value."""
    overrides = []
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        if "," in value and not value.startswith(("[", "{", "'", '"')):
            value = value.split(",")[0]
        overrides.append(f"{key}={value}")
    return overrides


def compose(name: str, overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import worldmodel.config  # noqa: F401  (registers the schemas the configs name)

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hydra_compose(config_name=name, overrides=overrides)


def test_readme_has_the_blocks_this_test_covers() -> None:
    assert len(blocks(("python",))) >= 3 and len(commands()) >= 10
    scripts = {found[0] for c in commands() if (found := script_of(shlex.split(c)))}
    assert {"pipeline", "evaluate", "benchmark", "collect"} <= scripts, scripts


@pytest.mark.parametrize("command", commands())
def test_readme_shell_command(command: str) -> None:
    """The command parses, its files exist, and a Hydra script's overrides compose against the shipped configs."""
    words = shlex.split(command)
    if words[0] == "bash":
        assert (ROOT / words[1]).exists(), command
        return
    if words[1:3] == ["-m", "pytest"]:
        assert (ROOT / "tests").is_dir()
        return
    found = script_of(words)
    assert found is not None, f"README command runs no scripts/<name>.py: {command}"
    name, args = found
    assert (ROOT / "scripts" / f"{name}.py").exists(), command
    if name in HYDRA_SCRIPTS:
        compose(name, hydra_overrides(args))


def test_a_misspelt_readme_override_would_fail() -> None:
    """The compose check above is not vacuous: a misspelt key is refused, naming it."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="proprio_wieght"):
        compose("evaluate", ["agent.proprio_wieght=1"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding what the README's Python blocks load: world_model.pt and data/tworoom_explore.h5."""
    from test_evaluate import tiny_world_model

    from worldmodel.data.collect import CollectConfig, collect

    d = tmp_path_factory.mktemp("readme")
    tiny_world_model().save(d / "world_model.pt")
    (d / "data").mkdir()
    collect(
        CollectConfig(env_id="wm/TwoRoom-v0", out=str(d / "data" / "tworoom_explore.h5"), episodes=10,
                      episode_length=12, workers=1, env_kwargs={"image_size": 32}),
        progress=False,
    )
    return d


def test_readme_python_blocks_run(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python blocks, in order, in one namespace (a later block uses what an earlier one made)."""
    monkeypatch.chdir(workdir)
    namespace: dict[str, Any] = {"__name__": "readme"}
    for i, body in enumerate(blocks(("python",))):
        try:
            exec(compile(body, f"README.md python block {i}", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"README python block {i} failed: {exc!r}\n{body}") from exc
    assert (workdir / "outputs" / "eval" / "python" / "summary.json").exists()
    assert namespace["plan"].shape == (2, 5, 2)
