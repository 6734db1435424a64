"""Paired comparison of methods that ran on the same episodes: the exact McNemar test.

Two methods evaluated on the same episodes (same seed, start and goal) are compared episode by episode. Only the
discordant episodes carry information: ``b`` where the first method succeeds and the second fails, ``c`` the other
way round. Under "no difference" each discordant episode is a fair coin, so the two-sided p-value is the exact
binomial test of ``b`` successes in ``b + c`` trials at p = 1/2. Two overlapping 95% intervals of the success rates
say much less: paired episodes share their difficulty, and the test uses that.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

EPISODE_KEY = ("seed", "episode", "source")
"""What makes two records the same episode: the spec's seed, its index and where its start and goal came from."""


@dataclass(frozen=True)
class Paired:
    """The exact McNemar test of method ``a`` against method ``b`` on ``n`` shared episodes."""

    a: str
    b: str
    n: int  # shared episodes
    a_rate: float  # success rate of a on the shared episodes
    b_rate: float
    a_only: int  # discordant: a succeeds, b fails
    b_only: int  # discordant: b succeeds, a fails
    p_value: float  # two-sided exact binomial test of a_only in a_only + b_only trials at 1/2 (1.0 with none)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of ``a_only`` in ``a_only + b_only`` trials at p = 1/2.

    1.0 when there is no discordant episode (nothing tells the methods apart).
    """
    from scipy.stats import binomtest

    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {a_only} and {b_only}")
    n = a_only + b_only
    return 1.0 if n == 0 else float(binomtest(a_only, n, 0.5, alternative="two-sided").pvalue)


def episode_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The key that identifies a record's episode across methods and run folders."""
    missing = [k for k in EPISODE_KEY if k not in record]
    if missing:
        raise ValueError(f"episode record lacks {missing}; paired tests need {list(EPISODE_KEY)} in every record")
    return tuple(record[k] for k in EPISODE_KEY)


def outcomes(records: Iterable[Mapping[str, Any]], field: str = "success") -> dict[tuple[Any, ...], bool]:
    """episode key -> outcome (``success`` at the end, or ``reached`` at any step) of one method's records."""
    out: dict[tuple[Any, ...], bool] = {}
    for r in records:
        key = episode_key(r)
        if key in out:
            raise ValueError(f"episode {key} appears twice in one method's records; paired tests need each once")
        out[key] = bool(r[field])
    return out


def paired_test(a: str, b: str, a_out: Mapping[tuple, bool], b_out: Mapping[tuple, bool]) -> Paired | None:
    """McNemar of a against b on the episodes both ran (None when they share none)."""
    shared = sorted(set(a_out) & set(b_out), key=repr)
    if not shared:
        return None
    xa = [a_out[k] for k in shared]
    xb = [b_out[k] for k in shared]
    a_only = sum(x and not y for x, y in zip(xa, xb))
    b_only = sum(y and not x for x, y in zip(xa, xb))
    n = len(shared)
    return Paired(a, b, n, sum(xa) / n, sum(xb) / n, a_only, b_only, mcnemar_exact(a_only, b_only))


def compare_methods(
    results: Mapping[str, Iterable[Mapping[str, Any]]],
    pairs: Sequence[tuple[str, str]] | None = None,
    field: str = "success",
) -> list[Paired]:
    """McNemar tests between methods' episode records (method -> records): the given ``pairs``, else every pair.

    Pairs that share no episode are left out.
    """
    outs = {name: outcomes(recs, field) for name, recs in results.items()}
    todo = pairs if pairs is not None else list(itertools.combinations(outs, 2))
    tests = [paired_test(a, b, outs[a], outs[b]) for a, b in todo]
    return [t for t in tests if t is not None]


def default_pairs(names: Sequence[str], baselines: Sequence[str] = ("random", "oracle", "expert")) -> list[tuple]:
    """Each world model against each baseline and against each other world model (baselines not against each
    other: the floor and the ceiling need no test), or every pair where no world model ran."""
    wms = [n for n in names if n not in baselines]
    base = [n for n in names if n in baselines]
    if not wms:
        return list(itertools.combinations(base, 2))
    return [*itertools.combinations(wms, 2), *((w, b) for w in wms for b in base)]


_RESULTS = re.compile(r"^episodes_(?P<method>.+?)(?P<shard>\.shard\d+of\d+)?\.jsonl$")


def read_episode_records(folder: str | Path) -> dict[str, list[dict[str, Any]]]:
    """method -> episode records of an evaluation folder: the merged ``episodes_<method>.jsonl`` where it exists,
    else the union of the method's shard files."""
    files: dict[str, dict[bool, list[Path]]] = {}
    for path in sorted(Path(folder).glob("episodes_*.jsonl")):
        m = _RESULTS.match(path.name)
        if m:
            files.setdefault(m["method"], {}).setdefault(m["shard"] is None, []).append(path)
    recs: dict[str, list[dict[str, Any]]] = {}
    for method, kinds in files.items():
        for path in kinds.get(True) or kinds.get(False) or []:
            recs.setdefault(method, []).extend(_records(path))
    return recs


def _records(path: Path) -> list[dict[str, Any]]:
    """The records of one results file (its header line and a line cut by a kill left out)."""
    out = []
    for line in path.read_text().splitlines()[1:]:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill (the harness re-runs its wave)
    return out


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def format_markdown(tests: Sequence[Paired], label: Mapping[str, str] | None = None) -> list[str]:
    """Markdown lines: one table row per pair (empty when there is no pair)."""
    if not tests:
        return []

    def name(n: str) -> str:
        return (label or {}).get(n, n)

    lines = [
        "| A | B | shared episodes | A success | B success | A only | B only | exact McNemar p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in tests:
        lines.append(
            f"| {name(t.a)} | {name(t.b)} | {t.n} | {t.a_rate:.0%} | {t.b_rate:.0%} | {t.a_only} | {t.b_only} | "
            f"{_fmt_p(t.p_value)} |"
        )
    lines += [
        "",
        "Paired on the same episodes (same seed, start and goal): *A only* counts episodes A solved and B did not, "
        "*B only* the reverse; p is the two-sided exact binomial test of A only in A only + B only trials at 1/2 "
        "(exact McNemar). p < 0.05 means the success rates differ beyond chance on these episodes.",
    ]
    return lines
