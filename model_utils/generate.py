"""CLI: decode a prompt with AR or Jacobi and print the text (streamed) or one JSON object; or decode
every prompt of a jsonl file, several per forward pass, and print one line (a JSON object with --json)
per prompt, in input order.

python -m model_utils.generate --model M --prompt TEXT --decoder ar|jacobi [--json]
python -m model_utils.generate --model M --prompts-file F.jsonl [--batch-size 8] --decoder ar|jacobi [--json]
"""
import argparse
import json
import sys
from collections.abc import Iterator

import torch
from tqdm import tqdm

from model_utils.batching import batch_decode
from model_utils.cli import (
    add_decoding_args,
    add_model_args,
    add_sampling_args,
    add_speedup_args,
    decode_options,
    load_options,
    parser,
    positive_int,
    run_cli,
    sampling_options,
    speedup_options,
    threads,
)
from model_utils.data import read_prompts
from model_utils.decoding import decode, decode_passes, to_result
from model_utils.errors import UserError
from model_utils.loading import DEFAULT_MODEL, decoding_threads, encode_prompt, eos_ids, load_model
from model_utils.metrics import summarize
from model_utils.records import DecodeResult
from model_utils.streaming import TextStream


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--model", default=DEFAULT_MODEL, help="hub name, local path or embedded name")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt")
    what.add_argument("--prompts-file", help="jsonl with a 'prompt' or 'question' field per line")
    p.add_argument("--batch-size", type=positive_int, default=1,
                   help="with --prompts-file: prompts decoded together in each forward pass (default: 1)")
    p.add_argument("--raw", action="store_true", help="do not apply the tokenizer's chat template")
    p.add_argument("--json", action="store_true", help="print a JSON object per prompt instead of the text")
    add_decoding_args(p)
    add_speedup_args(p)
    add_sampling_args(p)
    add_model_args(p)
    p.add_argument("--device-map", choices=["auto"], help="spread a large model over devices (accelerate)")
    p.add_argument("--threads", type=threads,
                   help="CPU threads (default: 1 for models under 100M parameters, else all cores)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    if not args.prompt.strip():
        raise UserError("The prompt is empty: type something to continue.")
    model, tokenizer = load_model(args.model, device_map=args.device_map, **load_options(args))
    torch.set_num_threads(args.threads or decoding_threads([model]))
    prompt_ids = encode(tokenizer, args.prompt, args.raw)
    eos = eos_ids(model, tokenizer)
    passes = decode_passes(model, prompt_ids, eos_ids=eos, **decode_options(args), **sampling_options(args),
                           **speedup_options(args))
    if not args.json:
        passes = stream_to_terminal(passes, tokenizer)
    return output(to_result(passes, prompt_ids, decoder=args.decoder, scheme=args.scheme, block_size=args.block_size,
                            eos_ids=eos, tokenizer=tokenizer))


def run_file(args: argparse.Namespace) -> Iterator[dict]:
    """The output of every prompt of --prompts-file, in input order, decoded --batch-size at a time."""
    rows = read_prompts(args.prompts_file)
    model, tokenizer = load_model(args.model, device_map=args.device_map, **load_options(args))
    torch.set_num_threads(args.threads or decoding_threads([model]))
    prompts = [encode(tokenizer, row["prompt"], args.raw) for row in rows]
    eos = eos_ids(model, tokenizer)
    options = decode_options(args)
    if args.batch_size == 1:
        results = (decode(model, p, eos_ids=eos, tokenizer=tokenizer, **options, **sampling_options(args),
                          **speedup_options(args)) for p in prompts)
    else:
        results = batch_decode(model, prompts, batch_size=args.batch_size, eos_ids=eos,
                               pad_id=tokenizer.pad_token_id or 0, tokenizer=tokenizer, **options)
    for result in tqdm(results, total=len(prompts), desc="prompts", unit="prompt", disable=None):
        yield output(result)


def encode(tokenizer, prompt: str, raw: bool) -> list[int]:
    return tokenizer(prompt)["input_ids"] if raw else encode_prompt(tokenizer, prompt)


def output(result: DecodeResult) -> dict:
    """What --json prints for one prompt."""
    return {"text": result.text, "token_ids": result.token_ids, **summarize(result), "trajectory": result.to_dict()}


def stream_to_terminal(passes, tokenizer):
    """Print the final text as it grows."""
    stream = TextStream(tokenizer)
    for p in passes:
        print(stream.add(p.new_tokens) or "", end="", flush=True)
        yield p
    print()


def report(args: argparse.Namespace) -> None:
    if args.prompts_file is not None and args.batch_size > 1 and args.temperature > 0:
        raise UserError("Batched decoding is greedy: use --batch-size 1 to sample, or leave out --temperature.")
    if args.prompts_file is not None and args.batch_size > 1 and (args.candidates or args.adaptive):
        raise UserError("Batched decoding runs plain Jacobi: use --batch-size 1 for --candidates or --adaptive.")
    if args.prompts_file is not None:
        for out in run_file(args):
            print(json.dumps(out) if args.json else json.dumps(out["text"]), flush=True)
        return
    if args.batch_size != 1:
        raise UserError("--batch-size needs --prompts-file: one --prompt is decoded on its own.")
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
