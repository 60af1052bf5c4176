"""CLI: collect Jacobi trajectories for consistency training (resumable).

python -m model_utils.collect --model M --data FILE --out TRAJ.jsonl [--block-size 16] [--augment] [--labels]
"""
import argparse
import sys

from tqdm import tqdm

from model_utils.data import read_prompts
from model_utils.cli import run_cli
from model_utils.loading import DEVICES, DTYPES, load_model
from model_utils.trajectories import collect_trajectories


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="jsonl with question/answer or prompt fields")
    p.add_argument("--out", required=True)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--limit", type=int)
    p.add_argument("--augment", action="store_true")
    p.add_argument("--labels", action="store_true", help="store the data set's answers for --gt-labels training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard", default="0/1", help="k/n: collect prompts k, k+n, ... (run n processes in parallel)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--dtype", choices=["auto", *DTYPES], default="auto")
    args = p.parse_args(argv)
    return run_cli(lambda: collect(args))


def collect(args: argparse.Namespace) -> None:
    rows = read_prompts(args.data)
    model, tokenizer = load_model(args.model, device=args.device, dtype=args.dtype)
    k, n = (int(x) for x in args.shard.split("/"))
    bar = tqdm(total=len(range(k, min(len(rows), args.limit or len(rows)), n)), desc="prompts", unit="prompt")
    written = collect_trajectories(model, tokenizer, rows, args.out, block_size=args.block_size,
                                   max_new_tokens=args.max_new_tokens, limit=args.limit, augment=args.augment,
                                   labels=args.labels, seed=args.seed, shard=(k, n),
                                   progress=lambda done, total: bar.update(done - bar.n))
    bar.close()
    print(f"wrote {written} records to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
