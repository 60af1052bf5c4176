"""CLI: merge trajectory files (the parts of a collection run on several processes) into one, in data-set order.

python -m model_utils.merge --out TRAJ.jsonl TRAJ.part0-of-2.jsonl TRAJ.part1-of-2.jsonl
"""
import sys

from model_utils.cli import parser, run_cli
from model_utils.trajectories import merge_trajectories


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("parts", nargs="+", help="trajectory files written by model_utils.collect")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    def body() -> None:
        records, prompts = merge_trajectories(args.parts, args.out)
        print(f"wrote {records} records of {prompts} prompts to {args.out}", file=sys.stderr)
    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
