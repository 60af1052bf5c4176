"""Accuracy of greedy AR or Jacobi outputs on GSM8K-style problems: exact match of the final
`#### N` answer, format rate (an answer is given), collapse rate (a token repeated 10+ times in a row) and
loop rate (a phrase said over and over: 16+ tokens of one phrase repeated 3+ times).

python -m bench.accuracy [--model M] [--prompts FILE] [--limit N] [--decoder ar|jacobi] [--block-size 16]
    [--max-new-tokens 256] [--scheme sliding|block] [--device auto] [--dtype auto] [--json OUT]

Items need `question` (or `prompt`) and `answer`; items with `seen` (generated problems) also get
exact match split into seen and unseen templates.
"""
import argparse
import sys

from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.data import DEFAULT_PROMPTS, check_json_out, prompt_of, read_items, write_json
from model_utils.cli import add_decoding_args, add_model_args, decode_options, load_options, parser, run_cli
from model_utils.decoding import decode_text
from model_utils.loading import DEFAULT_MODEL, load_model
from model_utils.quality import extract_answer, has_loop, has_repeat


def score(output: str, token_ids: list[int], answer: str) -> dict:
    """One output against the reference answer's `#### N` (numbers compared, commas stripped)."""
    pred, gold = extract_answer(output), extract_answer(answer)
    return {"pred": pred, "gold": gold,
            "correct": pred is not None and gold is not None and float(pred) == float(gold),
            "formatted": pred is not None, "collapsed": has_repeat(token_ids),
            "looped": has_loop(token_ids)}


def rates(scored: list[dict]) -> dict:
    n = len(scored)
    return {"n": n, "exact_match": sum(s["correct"] for s in scored) / n,
            "format_rate": sum(s["formatted"] for s in scored) / n,
            "collapse_rate": sum(s["collapsed"] for s in scored) / n,
            "loop_rate": sum(s["looped"] for s in scored) / n,
            "tokens_per_forward": sum(s["tokens"] for s in scored) / sum(s["forward_passes"] for s in scored)}


def run_accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, items: list[dict], *,
                 decoder: str = "ar", block_size: int = 16, max_new_tokens: int = 256, scheme: str = "sliding",
                 seed: int = 0, progress: bool = True) -> dict:
    """Decode every item's question (chat template applied here) and score it; see the module doc."""
    outputs = []
    for item in tqdm(items, desc="accuracy", unit="problem", file=sys.stderr, disable=not progress):
        question = prompt_of(item)
        result = decode_text(model, tokenizer, question, decoder=decoder, block_size=block_size,
                             max_new_tokens=max_new_tokens, scheme=scheme, seed=seed)
        extra = {k: item[k] for k in ("template", "seen") if k in item}
        outputs.append({"question": question, "output": result.text, "tokens": len(result.token_ids),
                        "forward_passes": len(result.passes),
                        **score(result.text, result.token_ids, item["answer"]), **extra})
    config = dict(decoder=decoder, block_size=block_size, max_new_tokens=max_new_tokens, scheme=scheme, seed=seed)
    out = {"config": config, **rates(outputs)}
    if any("seen" in o for o in outputs):
        groups = {"seen": [o for o in outputs if o.get("seen") is True],
                  "unseen": [o for o in outputs if o.get("seen") is False]}
        out["by_seen"] = {k: rates(v) for k, v in groups.items() if v}
    return out | {"outputs": outputs}


def summary(result: dict) -> str:
    lines = [f"exact match {result['exact_match']:.1%}, format {result['format_rate']:.1%}, "
             f"collapse {result['collapse_rate']:.1%}, loops {result['loop_rate']:.1%}, "
             f"{result['tokens_per_forward']:.2f} tokens/forward (n={result['n']})"]
    for name, r in result.get("by_seen", {}).items():
        lines.append(f"  {name}: exact match {r['exact_match']:.1%} (n={r['n']})")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--model", default=DEFAULT_MODEL, help="hub name, local path or embedded name")
    p.add_argument("--prompts", default=DEFAULT_PROMPTS,
                   help="jsonl with `question` (or `prompt`) and `answer` per line")
    p.add_argument("--limit", type=int, help="use only the first N problems")
    p.add_argument("--json", metavar="OUT", help="also write the result, with every output, here")
    add_decoding_args(p, decoder="ar")
    add_model_args(p)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    check_json_out(args.json)
    items = read_items(args.prompts, args.limit, need_answer=True)
    model, tokenizer = load_model(args.model, **load_options(args))
    result = run_accuracy(model, tokenizer, items, **decode_options(args))
    result["config"] |= dict(model=args.model, prompts=args.prompts, dtype=args.dtype)
    print(summary(result))
    write_json(args.json, result)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
