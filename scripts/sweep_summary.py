"""One table across evaluation runs: every summary.json below ROOT (e.g. a --multirun sweep's out_root).

python scripts/sweep_summary.py outputs/sweeps/planners [--out DIR]

Prints the runs and the aggregate over seeds as markdown and writes sweep_summary.md, sweep_runs.csv and
sweep_seeds.csv into ROOT (or DIR).
"""

from __future__ import annotations

import sys

from scripts.common import ArgumentParser, user_errors_exit


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, tabulate, print."""
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder searched recursively for summary.json")
    parser.add_argument("--out", default=None, help="folder for the markdown and CSV files (default: ROOT)")
    args = parser.parse_args(argv)
    from worldmodel.eval.sweep import sweep_summary

    res = sweep_summary(args.root, args.out)
    print(res["markdown"])
    print()
    for path in res["files"].values():
        print(f"wrote {path}")
    for d in res["unmerged"]:
        print(f"note: {d} holds shards but no summary.json; merge with scripts/merge_eval.py {d}", file=sys.stderr)


if __name__ == "__main__":
    main()
