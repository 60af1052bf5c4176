"""Fidelity: does greedy Jacobi (the defaults) give exactly greedy AR's output, prompt by prompt, in a dtype?

python -m bench.fidelity --model M [--prompts FILE] [--limit N] [--dtype float32] [--max-new-tokens 256] [--json OUT]

In float32 and float64 Jacobi must equal AR on every prompt. In bfloat16 a 16-token forward rounds differently
from a 1-token one, so where AR's two likeliest tokens are nearly tied the two decoders can part: each mismatch
is reported with its first differing position and AR's top-2 logit gap there (recomputed by one forward over the
prompt and AR's output).
"""
import sys

import torch
from tqdm import tqdm

from bench.data import DEFAULT_PROMPTS, check_json_out, prompt_of, read_items, write_json
from model_utils.cli import add_model_args, load_options, parser, positive_int, run_cli
from model_utils.decoding import FASTEST, decode
from model_utils.loading import DEFAULT_MODEL, encode_prompt, eos_ids, load_model


@torch.inference_mode()
def top2_gap(model, prompt_ids: list[int], tokens: list[int], position: int) -> float:
    """AR's logit gap between its two likeliest tokens at output position `position`."""
    ids = torch.tensor([prompt_ids + tokens[:position]], device=model.device)
    top = model(input_ids=ids, logits_to_keep=1).logits[0, -1].float().topk(2).values
    return (top[0] - top[1]).item()


def run_fidelity(model, tokenizer, prompts: list[str], max_new_tokens: int) -> dict:
    eos = eos_ids(model, tokenizer)
    mismatches, n = [], 0
    for number, prompt in enumerate(tqdm(prompts, desc="fidelity", unit="prompt", file=sys.stderr), 1):
        ids = encode_prompt(tokenizer, prompt)
        ar = decode(model, ids, decoder="ar", max_new_tokens=max_new_tokens, eos_ids=eos).token_ids
        jacobi = decode(model, ids, decoder="jacobi", max_new_tokens=max_new_tokens, eos_ids=eos,
                        **FASTEST).token_ids
        n += 1
        if jacobi != ar:
            first = next((i for i, (a, b) in enumerate(zip(ar, jacobi)) if a != b), min(len(ar), len(jacobi)))
            mismatches.append({"prompt": number, "first_difference": first, "ar_tokens": len(ar),
                               "top2_logit_gap": top2_gap(model, ids, ar, first)})
    return {"n": n, "equal": n - len(mismatches), "equal_rate": (n - len(mismatches)) / n, "mismatches": mismatches}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--prompts", default=DEFAULT_PROMPTS)
    p.add_argument("--limit", type=positive_int)
    p.add_argument("--max-new-tokens", type=positive_int, default=256)
    p.add_argument("--json", metavar="OUT")
    add_model_args(p)
    args = p.parse_args(argv)

    def body() -> None:
        check_json_out(args.json)
        model, tokenizer = load_model(args.model, **load_options(args))
        result = run_fidelity(model, tokenizer, [prompt_of(i) for i in read_items(args.prompts, args.limit)],
                              args.max_new_tokens)
        result["config"] = dict(model=args.model, prompts=args.prompts, dtype=str(model.dtype)[6:],
                                max_new_tokens=args.max_new_tokens, decoding="jacobi, sliding, block 16, defaults")
        print(f"{args.model} {result['config']['dtype']}: Jacobi == AR on {result['equal']}/{result['n']} prompts")
        for m in result["mismatches"]:
            print(f"  prompt {m['prompt']}: first differs at token {m['first_difference']} of {m['ar_tokens']}, "
                  f"AR's top-2 logit gap there {m['top2_logit_gap']:.4f}")
        write_json(args.json, result)
    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
