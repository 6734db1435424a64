"""Sharded evaluation: which shard this process is, the torchrun barrier, and validating shards before a merge.

A sharded run writes, per shard ``i`` of ``n``, ``episodes_<method>.shard<i>of<n>.jsonl`` (results files with
the unsharded header plus ``"shard": {"index": i, "count": n}``) and, when the shard has finished every
method, ``summary.shard<i>of<n>.json``. :func:`collect_shards` checks that all ``n`` shards finished with
the same settings and together hold every episode exactly once; :func:`merge_shards`
then writes the same ``episodes_<method>.jsonl`` / ``summary.json`` / plots an unsharded run writes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from worldmodel.eval.closed_loop import Shard, read_results, shard_episodes, write_results

SHARD_SUMMARY = re.compile(r"^summary\.shard(\d+)of(\d+)\.json$")
SHARD_RESULTS = re.compile(r"^episodes_(.+)\.shard(\d+)of(\d+)\.jsonl$")
PER_SHARD_KEYS = ("shard", "methods", "videos", "threads")
"""Top-level shard-summary entries allowed to differ between shards (everything else must be equal)."""


def torchrun_rank() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) from the environment torchrun sets; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def resolve_shard(cfg: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None) -> tuple[Shard | None, bool]:
    """(shard or None when unsharded, whether the shard comes from torchrun) from the ``shard`` config.

    ``index``/``count`` left null take RANK/WORLD_SIZE under torchrun (unsharded outside it). Under torchrun
    with several processes they must be left null or equal RANK/WORLD_SIZE: every process is one shard.
    """
    env = os.environ if environ is None else environ
    cfg = cfg or {}
    index, count = cfg.get("index"), cfg.get("count")
    rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    if world > 1:
        if count not in (None, world) or index not in (None, rank):
            raise ValueError(
                f"under torchrun every process is one shard (RANK={rank} of WORLD_SIZE={world}); leave "
                f"shard.index/shard.count unset, got index={index} count={count}"
            )
        return Shard(rank, world), True
    if count is None:
        if index not in (None, 0):
            raise ValueError(f"shard.index={index} needs shard.count")
        return None, False
    if index is None:
        raise ValueError(f"shard.count={count} needs shard.index (0..{int(count) - 1})")
    shard = Shard(int(index), int(count))
    return (None if shard.count == 1 else shard), False


def barrier(timeout_min: float = 1440.0) -> None:
    """Wait for every torchrun process (gloo, CPU only; the process group lives only for the barrier)."""
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", timeout=timedelta(minutes=float(timeout_min)))
    try:
        dist.barrier()
    finally:
        if created:
            dist.destroy_process_group()


def shard_count(out_dir: str | Path) -> int:
    """The shard count of the shard files in ``out_dir``; raises if there are none or several counts."""
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"{out} is not a directory")
    counts = set()
    for p in out.iterdir():
        m = SHARD_SUMMARY.match(p.name) or SHARD_RESULTS.match(p.name)
        if m:
            counts.add(int(m.groups()[-1]))
    if not counts:
        raise FileNotFoundError(f"{out}: no shard files (episodes_<method>.shard<i>of<n>.jsonl); nothing to merge")
    if len(counts) > 1:
        raise ValueError(f"{out} holds shards of several counts {sorted(counts)}; pass the count to merge")
    return counts.pop()


def finished_shards(out_dir: str | Path, count: int) -> list[int]:
    """Indices of the shards of ``count`` whose summary file exists (they ran every method to the end)."""
    out = Path(out_dir)
    return [i for i in range(count) if (out / f"summary{Shard(i, count).suffix}.json").exists()]


def _ranges(xs: list[int]) -> str:
    """[0, 1, 2, 5, 8, 9] -> '0-2, 5, 8-9'."""
    parts: list[str] = []
    for x in sorted(xs):
        if parts and x == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{x}"
        else:
            parts.append(str(x))
    return ", ".join(parts)


def _expected(header: dict[str, Any], shard: Shard) -> list[int]:
    """Episodes ``shard`` runs under a results header."""
    return shard_episodes(int(header["episodes"]), int(header["settings"]["num_envs"]), shard)


def collect_shards(
    out_dir: str | Path, count: int | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Validate the shards in ``out_dir``; returns (summary context, header per method, records per method).

    The context is shard 0's summary without its per-shard entries; headers are the unsharded headers;
    records are sorted by episode. Raises ValueError listing every problem (missing shard, missing or
    repeated episodes, other settings) and naming the shard files and episodes concerned.
    """
    out = Path(out_dir)
    n = shard_count(out) if count is None else int(count)
    shards = [Shard(i, n) for i in range(n)]
    problems: list[str] = []
    summaries: dict[int, dict[str, Any]] = {}
    for s in shards:
        path = out / f"summary{s.suffix}.json"
        if not path.exists():
            problems.append(
                f"shard {s.index} of {n} did not finish ({path.name} missing): run it again with "
                f"shard.index={s.index} shard.count={n} (it resumes)"
            )
            continue
        summaries[s.index] = json.loads(path.read_text())
    methods: list[str] = []
    for sm in summaries.values():
        methods += [m for m in sm.get("methods", {}) if m not in methods]
    for p in sorted(out.glob(f"episodes_*.shard*of{n}.jsonl")):
        m = SHARD_RESULTS.match(p.name)
        if m and m.group(1) not in methods:
            methods.append(m.group(1))
    if not methods:
        problems.append(f"no shard of {n} has results")
    context: dict[str, Any] | None = None
    for i, sm in sorted(summaries.items()):
        ctx = {k: v for k, v in sm.items() if k not in PER_SHARD_KEYS}
        if context is None:
            context = ctx
        elif ctx != context:
            diff = sorted(k for k in set(ctx) | set(context) if ctx.get(k) != context.get(k))
            problems.append(f"summary{shards[i].suffix}.json has other settings than shard 0 ({', '.join(diff)})")
        if list(sm.get("methods", {})) != methods:
            problems.append(f"summary{shards[i].suffix}.json has methods {list(sm.get('methods', {}))}, not {methods}")
    headers: dict[str, dict[str, Any]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for method in methods:
        base, recs = _method_records(out, method, shards, problems)
        if base is not None:
            headers[method] = base
            records[method] = sorted(recs, key=lambda r: r["episode"])
    if problems:
        raise ValueError(f"cannot merge the {n} shards in {out}:\n  " + "\n  ".join(problems))
    assert context is not None
    return context, headers, records


def _method_records(
    out: Path, method: str, shards: list[Shard], problems: list[str]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """One method's unsharded header and records over every shard; what is wrong is added to ``problems``."""
    base: dict[str, Any] | None = None
    recs: list[dict[str, Any]] = []
    for s in shards:
        path = out / f"episodes_{method}{s.suffix}.jsonl"
        try:
            header, rs = read_results(path)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if header is None:
            todo = "" if base is None else f": episodes {_ranges(_expected(base, s))} not run"
            problems.append(f"{path.name} missing or empty (shard {s.index} of {s.count}){todo}")
            continue
        if header.get("shard") != s.as_dict():
            problems.append(f"{path.name}: header says shard {header.get('shard')}, not {s.as_dict()}")
            continue
        unsharded = {k: v for k, v in header.items() if k != "shard"}
        if base is None:
            base = unsharded
        elif unsharded != base:
            diff = sorted(k for k in set(unsharded) | set(base) if unsharded.get(k) != base.get(k))
            problems.append(f"{path.name} was written with other settings than shard 0 ({', '.join(diff)})")
            continue
        problems += _episode_problems(path.name, _expected(header, s), [int(r["episode"]) for r in rs], s)
        recs += rs
    return base, recs


def _episode_problems(name: str, expected: list[int], got: list[int], s: Shard) -> list[str]:
    """Missing, repeated and foreign episodes of one shard's results file."""
    missing = sorted(set(expected) - set(got))
    repeated = sorted({e for e in got if got.count(e) > 1})
    foreign = sorted(set(got) - set(expected))
    out = []
    if missing:
        out.append(f"{name}: episodes {_ranges(missing)} missing (shard {s.index} of {s.count})")
    if repeated:
        out.append(f"{name}: episodes {_ranges(repeated)} repeated")
    if foreign:
        out.append(f"{name}: episodes {_ranges(foreign)} belong to another shard")
    return out


def merge_shards(out_dir: str | Path, count: int | None = None, logger: str | None = "auto") -> dict[str, Any]:
    """Validate the shards in ``out_dir`` and write what the unsharded run writes; returns the summary.

    Raises ValueError (naming missing shards and episodes) and writes nothing when the shards are
    incomplete or disagree. The merged ``episodes_<method>.jsonl`` carry the unsharded header, so
    re-running unsharded in ``out_dir`` finds every episode done. ``logger``: where the merged results are also
    logged (worldmodel.eval.loggers).
    """
    from worldmodel.eval.summary import write_summary

    out = Path(out_dir)
    n = shard_count(out) if count is None else int(count)
    context, headers, records = collect_shards(out, n)
    for method, header in headers.items():
        path = out / f"episodes_{method}.jsonl"
        old, _ = read_results(path) if path.exists() else (None, [])
        if old is not None and old != header:
            raise ValueError(
                f"cannot merge the {n} shards in {out}: {path.name} exists with other settings; move it away"
            )
    for method, header in headers.items():
        write_results(out / f"episodes_{method}.jsonl", header, records[method])
    return write_summary(out, context, records, extra={"shards": n}, logger=logger)
