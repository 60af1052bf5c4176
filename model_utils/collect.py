"""CLI: collect Jacobi trajectories for consistency training (resumable).

python -m model_utils.collect --model M --data FILE --out TRAJ.jsonl [--block-size 16] [--augment] [--labels]
    [--batch-size B] [--shard k/n]

Started by accelerate launch or torchrun, each process takes its shard from its rank and the number of
processes, writes TRAJ.part<rank>-of-<n>.jsonl (on its own GPU where there are several), and
`python -m model_utils.merge` joins the parts.
"""
import argparse
import os
import sys

import torch
from tqdm import tqdm

from model_utils.cli import (
    BLOCK_SIZE,
    MAX_NEW_TOKENS,
    add_model_args,
    load_options,
    parser,
    positive_int,
    run_cli,
    seed,
)
from model_utils.data import check_writable, read_prompts
from model_utils.errors import UserError
from model_utils.loading import load_model
from model_utils.trajectories import collect_trajectories, part_path


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
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--shard", type=shard,
                   help="k/n: collect prompts k, k+n, ... (run n processes in parallel; default: 0/1, or the "
                        "process's rank under accelerate launch / torchrun)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="prompts decoded together (default: 1)")
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


def launcher_shard() -> tuple[int, int] | None:
    """(rank, processes) when accelerate launch or torchrun started several processes."""
    n = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), n) if n > 1 else None


def collect(args: argparse.Namespace) -> None:
    out, (k, n) = args.out, args.shard or (0, 1)
    launched = launcher_shard()
    if launched:
        if args.shard:
            raise UserError("--shard is taken from the process rank under accelerate launch / torchrun: leave it out.")
        (k, n), out = launched, part_path(args.out, *launched)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # "cuda" is this process's GPU
    rows = read_prompts(args.data)
    check_writable(out, "The trajectory file")  # before the model loads
    model, tokenizer = load_model(args.model, **load_options(args))
    with tqdm(total=len(range(k, min(len(rows), args.limit or len(rows)), n)), desc=f"prompts {k}/{n}",
              unit="prompt", position=k) as bar:
        written = collect_trajectories(model, tokenizer, rows, out, block_size=args.block_size,
                                       max_new_tokens=args.max_new_tokens, limit=args.limit, augment=args.augment,
                                       labels=args.labels, seed=args.seed, shard=(k, n), batch_size=args.batch_size,
                                       progress=lambda done, total: bar.update(done - bar.n))
    print(f"wrote {written} records to {out}", file=sys.stderr)
    if launched and k == 0:
        parts = " ".join(part_path(args.out, j, n) for j in range(n))
        print(f"when every process is done: python -m model_utils.merge --out {args.out} {parts}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
