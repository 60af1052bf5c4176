"""CLI: decode one prompt with AR or Jacobi and print the text (streamed) or one JSON object.

python -m model_utils.generate --model M --prompt TEXT --decoder ar|jacobi [--json]
"""
import argparse
import json
import sys

from model_utils.cli import add_decoding_args, add_model_args, decode_options, load_options, parser, run_cli
from model_utils.decoding import decode_passes, to_result
from model_utils.errors import UserError
from model_utils.loading import DEFAULT_MODEL, encode_prompt, eos_ids, load_model
from model_utils.metrics import summarize
from model_utils.streaming import TextStream


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--model", default=DEFAULT_MODEL, help="hub name, local path or embedded name")
    p.add_argument("--prompt", required=True)
    p.add_argument("--raw", action="store_true", help="do not apply the tokenizer's chat template")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    add_decoding_args(p)
    add_model_args(p)
    p.add_argument("--device-map", choices=["auto"], help="spread a large model over devices (accelerate)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    if not args.prompt.strip():
        raise UserError("The prompt is empty: type something to continue.")
    model, tokenizer = load_model(args.model, device_map=args.device_map, **load_options(args))
    prompt_ids = tokenizer(args.prompt)["input_ids"] if args.raw else encode_prompt(tokenizer, args.prompt)
    eos = eos_ids(model, tokenizer)
    options = decode_options(args)
    passes = decode_passes(model, prompt_ids, eos_ids=eos, **options)
    if not args.json:
        passes = stream_to_terminal(passes, tokenizer)
    result = to_result(passes, prompt_ids, decoder=args.decoder, scheme=args.scheme, block_size=args.block_size,
                       eos_ids=eos, tokenizer=tokenizer)
    return {"text": result.text, "token_ids": result.token_ids, **summarize(result),
            "trajectory": result.to_dict()}


def stream_to_terminal(passes, tokenizer):
    """Print the final text as it grows."""
    stream = TextStream(tokenizer)
    for p in passes:
        print(stream.add(p.new_tokens) or "", end="", flush=True)
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
