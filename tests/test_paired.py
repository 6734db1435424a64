"""The exact McNemar test against hand-computed binomial values, and the pairing of episode records."""

from __future__ import annotations

import json

import pytest

from worldmodel.eval.paired import (
    compare_methods,
    default_pairs,
    format_markdown,
    mcnemar_exact,
    read_episode_records,
)


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (8, 2, 2 * (1 + 10 + 45) / 1024),  # P(X <= 2 | n=10) doubled = 112/1024
        (2, 8, 2 * (1 + 10 + 45) / 1024),  # symmetric
        (0, 5, 2 / 32),  # both tails of the extreme outcome
        (10, 0, 2 / 1024),
        (3, 3, 1.0),
        (1, 0, 1.0),  # one discordant episode tells nothing
        (0, 0, 1.0),  # none at all
        (6, 1, 2 * (1 + 7) / 128),  # P(X <= 1 | n=7) doubled = 16/128
    ],
)
def test_mcnemar_exact_hand_values(b: int, c: int, expected: float) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact(-1, 2)


def _recs(outcomes: list[int], seed: int = 0, start: int = 0) -> list[dict]:
    return [{"seed": seed, "episode": start + i, "source": "env", "success": bool(s)} for i, s in enumerate(outcomes)]


def test_compare_methods_counts_discordant_on_shared_episodes_only() -> None:
    a = _recs([1, 1, 1, 0, 1, 0, 1, 1])
    b = _recs([0, 1, 0, 0, 0, 1, 0, 1]) + _recs([1, 1], start=8)  # episodes 8, 9 only B ran: not shared
    (t,) = compare_methods({"wm": a, "random": b})
    assert (t.a, t.b, t.n, t.a_only, t.b_only) == ("wm", "random", 8, 4, 1)
    assert t.a_rate == 6 / 8 and t.b_rate == 3 / 8
    assert t.p_value == pytest.approx(2 * (1 + 5) / 32)  # P(X <= 1 | n=5) doubled


def test_episodes_with_other_seeds_are_not_paired() -> None:
    assert compare_methods({"a": _recs([1, 1], seed=0), "b": _recs([0, 0], seed=1)}) == []


def test_repeated_episode_is_refused() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        compare_methods({"a": _recs([1]) + _recs([0]), "b": _recs([1])})


def test_default_pairs_skip_floor_against_ceiling() -> None:
    assert default_pairs(["wm1", "wm2", "random", "oracle"]) == [
        ("wm1", "wm2"), ("wm1", "random"), ("wm1", "oracle"), ("wm2", "random"), ("wm2", "oracle")
    ]
    assert default_pairs(["oracle", "random"]) == [("oracle", "random")]  # baselines alone: compare them


def test_read_episode_records_and_markdown(tmp_path) -> None:
    for method, outs in (("wm", [1, 1, 0]), ("random", [0, 0, 0])):
        lines = [{"header": {"method": method}}, *_recs(outs)]
        (tmp_path / f"episodes_{method}.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{cut")
    recs = read_episode_records(tmp_path)
    assert sorted(recs) == ["random", "wm"] and len(recs["wm"]) == 3
    md = format_markdown(compare_methods(recs, default_pairs(list(recs))))
    assert md[2] == "| wm | random | 3 | 67% | 0% | 2 | 0 | 0.500 |"


def test_read_episode_records_prefers_the_merged_file_over_shards(tmp_path) -> None:
    def write(name: str, recs: list[dict]) -> None:
        (tmp_path / name).write_text("\n".join(json.dumps(x) for x in [{"header": {}}, *recs]) + "\n")

    write("episodes_wm.v2.shard0of2.jsonl", _recs([1, 1]))  # a world model named with a dot
    write("episodes_wm.v2.shard1of2.jsonl", _recs([0], start=2))
    assert [r["episode"] for r in read_episode_records(tmp_path)["wm.v2"]] == [0, 1, 2]  # shards: their union
    write("episodes_wm.v2.jsonl", _recs([1, 1, 0]))
    assert [r["episode"] for r in read_episode_records(tmp_path)["wm.v2"]] == [0, 1, 2]  # merged: it alone


def test_benchmark_pairs_pool_seeds_and_share_the_baseline_runs(tmp_path) -> None:
    """The benchmark's paired tests: world-model rows from each variant's runs, baselines from the seed's one
    baseline run (the same episodes), pooled over seeds; each world model's variants against each other."""
    from worldmodel.eval.benchmark import _paired_markdown, paired_tests

    def run(name: str, variant: str | None, seed: int, outs: dict[str, list[int]]) -> dict:
        folder = tmp_path / name
        folder.mkdir()
        for method, o in outs.items():
            lines = [{"header": {}}, *_recs(o, seed=seed)]
            (folder / f"episodes_{method}.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        return {"name": name, "variant": variant, "seed": seed, "out_dir": str(folder)}

    runs = [
        run("baselines_seed0", None, 0, {"random": [0, 0, 0], "oracle": [1, 1, 1]}),
        run("a_seed0", "a", 0, {"wm": [1, 1, 0]}),
        run("b_seed0", "b", 0, {"wm": [0, 0, 0]}),
        run("baselines_seed1", None, 1, {"random": [0, 0, 1], "oracle": [1, 1, 1]}),
        run("a_seed1", "a", 1, {"wm": [1, 1, 1]}),
        run("b_seed1", "b", 1, {"wm": [1, 0, 0]}),
    ]
    result = {"runs": runs, "variants": {"a": {}, "b": {}}, "world_models": {"wm": "wm.pt"},
              "table": {"wm": {}, "random": {}, "oracle": {}}}
    tests = {(t["group"], t["a"], t["b"]): t for t in paired_tests(result)}
    t = tests[("variant `a`", "wm", "random")]
    assert (t["n"], t["a_only"], t["b_only"]) == (6, 4, 0)  # seed 1 episode 2: both succeed
    assert t["p_value"] == pytest.approx(2 / 16)
    t = tests[("`wm` across variants", "a", "b")]
    assert (t["n"], t["a_only"], t["b_only"]) == (6, 4, 0)
    t = tests[("variant `b`", "wm", "oracle")]
    assert (t["n"], t["a_only"], t["b_only"]) == (6, 0, 5) and t["p_value"] == pytest.approx(2 / 32)
    assert ("variant `a`", "random", "oracle") not in tests  # floor against ceiling: no test
    md = _paired_markdown(list(tests.values()))
    assert sum(line.startswith("| A | B |") for line in md) == 3 and md[-1].startswith("Paired on the same episodes")
