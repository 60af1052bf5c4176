"""CLI: collect Jacobi trajectories for consistency training (resumable).

python -m model_utils.collect --model M --data FILE --out TRAJ.jsonl [--block-size 16] [--augment] [--labels]
"""
import argparse
import sys

from tqdm import tqdm

from model_utils.cli import BLOCK_SIZE, MAX_NEW_TOKENS, add_model_args, load_options, parser, positive_int, run_cli
from model_utils.data import check_writable, read_prompts
from model_utils.loading import load_model
from model_utils.trajectories import collect_trajectories


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="jsonl with question/answer or prompt fields")
    p.add_argument("--out", required=True)
    p.add_argument("--block-size", type=int, default=BLOCK_SIZE, help="Jacobi block of the block scheme")
    p.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    p.add_argument("--limit", type=positive_int, help="collect only the first N prompts")
    p.add_argument("--augment", action="store_true")
    p.add_argument("--labels", action="store_true", help="store the data set's answers for --gt-labels training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard", type=shard, default=(0, 1),
                   help="k/n: collect prompts k, k+n, ... (run n processes in parallel)")
    add_model_args(p)
    args = p.parse_args(argv)
    return run_cli(lambda: collect(args))


def shard(text: str) -> tuple[int, int]:
    """argparse type of --shard: "k/n" with 0 <= k < n."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not k/n (e.g. 0/2)") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"shard {text} does not exist: use k/n with 0 <= k < n")
    return k, n


def collect(args: argparse.Namespace) -> None:
    rows = read_prompts(args.data)
    check_writable(args.out, "The trajectory file")  # before the model loads
    model, tokenizer = load_model(args.model, **load_options(args))
    k, n = args.shard
    with tqdm(total=len(range(k, min(len(rows), args.limit or len(rows)), n)), desc="prompts", unit="prompt") as bar:
        written = collect_trajectories(model, tokenizer, rows, args.out, block_size=args.block_size,
                                       max_new_tokens=args.max_new_tokens, limit=args.limit, augment=args.augment,
                                       labels=args.labels, seed=args.seed, shard=(k, n),
                                       progress=lambda done, total: bar.update(done - bar.n))
    print(f"wrote {written} records to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
