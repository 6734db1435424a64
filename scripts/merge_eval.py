"""Merge a sharded evaluation: validate the shards in OUT_DIR and write summary.json, plots, report.md/.html.

python scripts/merge_eval.py outputs/eval/tworoom_cem_seed0 [--shards 4]

Exits with status 2 and writes nothing when a shard is missing, unfinished, or ran with other settings.
"""

from __future__ import annotations

import logging

from scripts.common import ArgumentParser, add_verbosity_flags, configure_logging, positive_int, user_errors_exit

log = logging.getLogger("wm.merge_eval")


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, merge, print the results table."""
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="evaluation folder holding episodes_<method>.shard<i>of<n>.jsonl files")
    parser.add_argument("--shards", type=positive_int, default=None, help="shard count (default: from the file names)")
    add_verbosity_flags(parser)
    args = parser.parse_args(argv)
    configure_logging(args.verbosity)
    from worldmodel.eval.shard import merge_shards
    from worldmodel.eval.summary import format_table

    summary = merge_shards(args.out_dir, args.shards)
    print(format_table(summary))
    log.info("summary: %s/summary.json (merged from %d shards)", args.out_dir, summary["shards"])
    log.info("report: %s/report.html (open it in a browser: table, paired tests, plots, videos)", args.out_dir)


if __name__ == "__main__":
    main()
