"""Throughput against batch size: our batched Jacobi and AR (model_utils.batching, continuous batching)
and transformers' padded `generate` (static batches of left-padded prompts), on one model.

python -m bench.throughput [--model tiny-arith-cllm] [--prompts FILE] [--limit 32] [--batch-sizes 1,2,4,8,16]
    [--block-size 16] [--max-new-tokens 256] [--device auto] [--dtype auto] [--json OUT]

Every decoder decodes the same prompts at each batch size, after one untimed warm-up. Tokens are all
generated tokens (EOS included, padding after it not); seconds are wall-clock time for the whole set.
A forward hook times every forward pass and counts the tokens fed to it (rows x window); over the
passes after the prefills (steps) that shows what a pass costs against its width: where that cost
starts to grow, batching stops paying.
"""
import argparse
import sys
import time

import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.data import DEFAULT_PROMPTS, check_json_out, prompt_of, read_items, sync, write_json
from model_utils.batching import batch_decode
from model_utils.cli import BLOCK_SIZE, MAX_NEW_TOKENS, add_model_args, load_options, parser, run_cli
from model_utils.errors import UserError
from model_utils.loading import encode_prompt, eos_ids, load_model

DECODERS = ("jacobi_batched", "ar_batched", "ar_generate_padded")
WIDTH_BINS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class PassTimer:
    """Times every forward of a model and counts the tokens fed to it: `passes` is [(tokens fed, seconds, prefill)]."""

    def __init__(self, model: PreTrainedModel):
        self.model, self.passes = model, []
        self._fed, self._prefill, self._start = 0, False, 0.0
        self._hooks = [model.register_forward_pre_hook(self._before, with_kwargs=True),
                       model.register_forward_hook(self._after)]

    def _before(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        sync(self.model.device)
        self._fed, self._prefill = ids.numel(), cache is None or cache.get_seq_length() == 0
        self._start = time.perf_counter()

    def _after(self, module, args, output) -> None:
        sync(self.model.device)
        self.passes.append((self._fed, time.perf_counter() - self._start, self._prefill))

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()


def generated(row: list[int], eos: set[int]) -> list[int]:
    """A padded generate row's tokens up to and including its first EOS."""
    end = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
    return row[:end]


def run_generate_padded(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[list[int]],
                        batch_size: int, max_new_tokens: int, eos: set[int]) -> list[list[int]]:
    """transformers' greedy generate over static batches of left-padded prompts."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start: start + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=model.device)
        rows = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=max_new_tokens,
                              eos_token_id=sorted(eos), pad_token_id=pad)[:, width:].tolist()
        out += [generated(row, eos) for row in rows]
    return out


def run_one(model, tokenizer, prompts, decoder: str, batch_size: int, block_size: int, max_new_tokens: int,
            eos: set[int]) -> tuple[list[list[int]], float, list[tuple[int, float, bool]]]:
    """One decoder over every prompt: (outputs, seconds, per pass (tokens fed, seconds, prefill))."""
    timer = PassTimer(model)
    try:
        sync(model.device)
        t0 = time.perf_counter()
        if decoder == "ar_generate_padded":
            outputs = run_generate_padded(model, tokenizer, prompts, batch_size, max_new_tokens, eos)
        else:
            results = batch_decode(model, prompts, decoder=decoder.removesuffix("_batched"), batch_size=batch_size,
                                   block_size=block_size, max_new_tokens=max_new_tokens, eos_ids=eos,
                                   pad_id=tokenizer.pad_token_id or 0)
            outputs = [r.token_ids for r in results]
        sync(model.device)
        seconds = time.perf_counter() - t0
    finally:
        timer.remove()
    return outputs, seconds, timer.passes


def run_throughput(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], *,
                   batch_sizes: list[int], block_size: int = BLOCK_SIZE, max_new_tokens: int = MAX_NEW_TOKENS,
                   progress: bool = True) -> dict:
    """Time every decoder at every batch size on `prompts` (texts; chat template applied here)."""
    if not prompts:
        raise UserError("No prompts to time.")
    ids = [encode_prompt(tokenizer, p) for p in prompts]
    eos = eos_ids(model, tokenizer)
    for decoder in DECODERS:  # untimed warm-up
        run_one(model, tokenizer, ids[:2], decoder, 2, block_size, 16, eos)
    rows, reference, widths = [], None, {}
    plan = [(b, d) for b in batch_sizes for d in DECODERS]
    for batch_size, decoder in tqdm(plan, desc="throughput", file=sys.stderr, disable=not progress):
        outputs, seconds, passes = run_one(model, tokenizer, ids, decoder, batch_size, block_size, max_new_tokens,
                                           eos)
        if reference is None and decoder == "ar_batched":
            reference = outputs
        tokens = sum(len(o) for o in outputs)
        steps = [(n, s) for n, s, prefill in passes if not prefill]
        rows.append({"decoder": decoder, "batch_size": batch_size, "tokens": tokens, "seconds": seconds,
                     "tokens_per_second": tokens / seconds, "forward_passes": len(passes),
                     "tokens_per_forward": tokens / len(passes),
                     "fed_per_step": sum(n for n, _ in steps) / len(steps),
                     "ms_per_step": 1000 * sum(s for _, s in steps) / len(steps), "outputs": outputs})
        for n, s in steps:
            widths.setdefault(next(b for b in WIDTH_BINS + (n,) if n <= b), []).append(s)
    for row in rows:
        outputs = row.pop("outputs")
        row["matches_ar"] = sum(o == r for o, r in zip(outputs, reference)) / len(outputs)
    pass_cost = {str(w): 1000 * sorted(s)[len(s) // 2] for w, s in sorted(widths.items())}  # median ms, no prefill
    config = dict(n_prompts=len(prompts), batch_sizes=batch_sizes, block_size=block_size,
                  max_new_tokens=max_new_tokens, device=str(model.device),
                  dtype=str(model.dtype).removeprefix("torch."), threads=torch.get_num_threads())
    return {"config": config, "runs": rows, "pass_ms_by_tokens_fed": pass_cost}


def table(result: dict) -> str:
    """The result as two markdown tables: throughput per batch size, and a pass's cost against its width."""
    lines = ["| batch | decoder | tokens/s | × its batch 1 | tokens/forward | tokens fed/step | ms/step "
             "| matches AR |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    single = {r["decoder"]: r["tokens_per_second"] for r in result["runs"] if r["batch_size"] == min(
        result["config"]["batch_sizes"])}
    for r in result["runs"]:
        lines.append(f"| {r['batch_size']} | {r['decoder']} | {r['tokens_per_second']:.1f} "
                     f"| {r['tokens_per_second'] / single[r['decoder']]:.2f}x | {r['tokens_per_forward']:.2f} "
                     f"| {r['fed_per_step']:.1f} | {r['ms_per_step']:.1f} | {r['matches_ar']:.0%} |")
    lines += ["", "steps: the forward passes after the prefills; tokens/forward counts every pass", "",
              "| tokens fed to a step (up to) | median ms per step |", "|---:|---:|"]
    lines += [f"| {w} | {ms:.1f} |" for w, ms in result["pass_ms_by_tokens_fed"].items()]
    return "\n".join(lines)


def batch_sizes(text: str) -> list[int]:
    """argparse type of --batch-sizes: comma-separated whole numbers of at least 1."""
    try:
        sizes = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1 (got {text})")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--model", default="tiny-arith-cllm", help="hub name, local path or embedded name")
    p.add_argument("--prompts", default=DEFAULT_PROMPTS, help="jsonl with `question` or `prompt` per line")
    p.add_argument("--limit", type=int, default=32, help="use only the first N prompts (default: 32)")
    p.add_argument("--batch-sizes", type=batch_sizes, default=[1, 2, 4, 8, 16])
    p.add_argument("--block-size", type=int, default=BLOCK_SIZE)
    p.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    p.add_argument("--json", metavar="OUT", help="also write the result here")
    add_model_args(p)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    check_json_out(args.json)
    prompts = [prompt_of(item) for item in read_items(args.prompts, args.limit)]
    model, tokenizer = load_model(args.model, **load_options(args))
    result = run_throughput(model, tokenizer, prompts, batch_sizes=args.batch_sizes, block_size=args.block_size,
                            max_new_tokens=args.max_new_tokens)
    result["config"] |= dict(model=args.model, prompts=args.prompts)
    print(table(result))
    write_json(args.json, result)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
