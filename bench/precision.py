"""One model in float32, bfloat16, 8-bit and 4-bit on one device: tokens/s of greedy AR and Jacobi, how often
Jacobi's output equals AR's, and Jacobi's exact match and answer format.

python -m bench.precision [--model tiny-arith-cllm] [--prompts FILE] [--limit 20] [--device cpu] [--json OUT]

Each precision decodes every prompt with AR, then with Jacobi (block 16, sliding, up to 256 new tokens), after
one untimed warm-up; tokens/s is all generated tokens over the wall-clock time of the set.
"""
import argparse
import sys
import time

from bench.accuracy import rates, score
from bench.data import check_json_out, prompt_of, read_items, write_json
from model_utils.cli import parser, run_cli
from model_utils.decoding import decode_text
from model_utils.loading import DEVICES, load_model

PRECISIONS = {"float32": dict(dtype="float32"), "bfloat16": dict(dtype="bfloat16"), "8-bit": dict(bits=8),
              "4-bit": dict(bits=4)}


def measure(model, tokenizer, items: list[dict], max_new_tokens: int) -> dict:
    """Both decoders' tokens/s on the items, Jacobi's share equal to AR, and Jacobi's accuracy rates."""
    decode_text(model, tokenizer, prompt_of(items[0]), decoder="jacobi", max_new_tokens=16)  # warm-up
    runs = {}
    for decoder in ("ar", "jacobi"):
        t0 = time.perf_counter()
        results = [decode_text(model, tokenizer, prompt_of(it), decoder=decoder, max_new_tokens=max_new_tokens)
                   for it in items]
        runs[decoder] = (results, sum(len(r.token_ids) for r in results) / (time.perf_counter() - t0))
    scored = [score(r.text, r.token_ids, it["answer"]) | {"tokens": len(r.token_ids), "forward_passes": len(r.passes)}
              for r, it in zip(runs["jacobi"][0], items)]
    return {"ar_tokens_per_second": runs["ar"][1], "jacobi_tokens_per_second": runs["jacobi"][1],
            "jacobi_equals_ar": sum(a.token_ids == b.token_ids for a, b in zip(*(runs[d][0] for d in runs)))
            / len(items), **rates(scored)}


def run(args: argparse.Namespace) -> None:
    check_json_out(args.json)
    items = read_items(args.prompts, args.limit, need_answer=True)
    rows = {}
    for precision, options in PRECISIONS.items():
        model, tokenizer = load_model(args.model, device=args.device, **options)
        rows[precision] = measure(model, tokenizer, items, args.max_new_tokens)
    print("| precision | AR tokens/s | Jacobi tokens/s | Jacobi == AR | exact match | answer format |\n"
          "|---|---:|---:|---:|---:|---:|")
    for precision, r in rows.items():
        print(f"| {precision} | {r['ar_tokens_per_second']:.1f} | {r['jacobi_tokens_per_second']:.1f} "
              f"| {r['jacobi_equals_ar']:.0%} | {r['exact_match']:.0%} | {r['format_rate']:.0%} |")
    write_json(args.json, {"config": vars(args) | {"n_prompts": len(items)}, "precisions": rows})


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--model", default="tiny-arith-cllm")
    p.add_argument("--prompts", default="assets/data/synth/heldout.jsonl")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
