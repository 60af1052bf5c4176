"""CLI: decode one prompt with AR or Jacobi and print the text (streamed) or one JSON object.

python -m model_utils.generate --model M --prompt TEXT --decoder ar|jacobi [--json]
"""
import argparse
import json
import sys

from model_utils.decoding import SCHEMES, ar_passes, collect, jacobi_passes
from model_utils.cli import run_cli
from model_utils.errors import UserError
from model_utils.loading import DEFAULT_MODEL, DEVICES, DTYPES, encode_prompt, eos_ids, load_model
from model_utils.metrics import summarize


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="hub name, local path or embedded name")
    p.add_argument("--prompt", required=True)
    p.add_argument("--decoder", choices=["ar", "jacobi"], default="jacobi")
    p.add_argument("--scheme", choices=SCHEMES, default="sliding")
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--dtype", choices=["auto", *DTYPES], default="auto")
    p.add_argument("--load-in-4bit", action="store_const", const=4, dest="bits")
    p.add_argument("--load-in-8bit", action="store_const", const=8, dest="bits")
    p.add_argument("--device-map", choices=["auto"], help="spread a large model over devices (accelerate)")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--raw", action="store_true", help="do not apply the tokenizer's chat template")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    if not args.prompt.strip():
        raise UserError("The prompt is empty: type something to continue.")
    model, tokenizer = load_model(args.model, device=args.device, dtype=args.dtype, bits=args.bits,
                                  device_map=args.device_map, trust_remote_code=args.trust_remote_code)
    if args.raw:
        prompt_ids = tokenizer(args.prompt)["input_ids"]
    else:
        prompt_ids = encode_prompt(tokenizer, args.prompt)
    eos = eos_ids(model, tokenizer)
    if args.decoder == "ar":
        passes = ar_passes(model, prompt_ids, max_new_tokens=args.max_new_tokens, eos_ids=eos)
    else:
        passes = jacobi_passes(model, prompt_ids, block_size=args.block_size, max_new_tokens=args.max_new_tokens,
                               eos_ids=eos, scheme=args.scheme, seed=args.seed)
    if not args.json:
        passes = stream_to_terminal(passes, tokenizer)
    result = collect(passes, prompt_ids, decoder=args.decoder, scheme=None if args.decoder == "ar" else args.scheme,
                     block_size=1 if args.decoder == "ar" else args.block_size, eos_ids=eos, tokenizer=tokenizer)
    return {"text": result.text, "token_ids": result.token_ids, **summarize(result),
            "trajectory": result.to_dict()}


def stream_to_terminal(passes, tokenizer):
    """Print the final text as it grows, decoding the whole sequence so spaces at joins survive."""
    tokens, shown = [], ""
    for p in passes:
        tokens += p.new_tokens
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        print(text[len(shown):], end="", flush=True)
        shown = text
        yield p
    print()


def report(args: argparse.Namespace) -> None:
    out = run(args)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"[{args.decoder}] {out['tokens']} tokens in {out['forward_passes']} forward passes "
              f"({out['tokens_per_forward']:.2f} tokens/pass), {out['tokens_per_second']:.1f} tokens/s, "
              f"{out['fast_forwarded']} fast-forwarded, {out['stationary']} stationary", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: report(args))


if __name__ == "__main__":
    sys.exit(main())
