"""Merge a sharded evaluation: validate the shards in OUT_DIR and write summary.json, plots and the table.

python scripts/merge_eval.py outputs/eval/tworoom_cem_seed0 [--shards 4]

Exits with status 2 and writes nothing when a shard is missing, unfinished, or ran with other settings.
"""

from __future__ import annotations

from scripts.common import ArgumentParser, positive_int, user_errors_exit


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, merge, print the results table."""
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="evaluation folder holding episodes_<method>.shard<i>of<n>.jsonl files")
    parser.add_argument("--shards", type=positive_int, default=None, help="shard count (default: from the file names)")
    args = parser.parse_args(argv)
    from worldmodel.eval.shard import merge_shards
    from worldmodel.eval.summary import format_table

    summary = merge_shards(args.out_dir, args.shards)
    print(format_table(summary))
    print(f"summary: {args.out_dir}/summary.json (merged from {summary['shards']} shards)")


if __name__ == "__main__":
    main()
