"""Speed of greedy decoders on the same prompts: our AR and Jacobi loops on a base model and on its
CLLM, and transformers' prompt-lookup decoding and plain generate on the base.

Jacobi runs in four variants, so that each part's gain is measured side by side: plain sliding Jacobi
(jacobi_base, jacobi_cllm), +candidates (n-gram and recycled branches verified in the same pass: *_cand),
+adaptive (the cost-aware window: *_adapt) and both (*_cand_adapt).

python -m bench.speed [--base B] [--cllm C] [--prompts FILE] [--limit N] [--block-size 16]
    [--max-new-tokens 256] [--scheme sliding|block] [--device auto] [--dtype auto] [--json OUT]

Each prompt runs every decoder in turn, so machine drift hits all alike, after one untimed warm-up
of every decoder on the first prompt. Tokens are all generated tokens, EOS included; seconds are
wall-clock time per call. The AR baseline for speedups is the faster of our AR loop and generate
on the base model.
"""
import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.data import DEFAULT_PROMPTS, check_json_out, prompt_of, read_items, sync, write_json
from model_utils.cli import add_decoding_args, add_model_args, load_options, parser, run_cli
from model_utils.decoding import check_inputs, decode
from model_utils.errors import UserError
from model_utils.loading import encode_prompt, eos_ids, load_model
from model_utils.metrics import summarize
from model_utils.pass_costs import processor

PROMPT_LOOKUP_TOKENS = 10
VARIANTS = {"": {}, "_cand": dict(candidates=True), "_adapt": dict(adaptive=True),
            "_cand_adapt": dict(candidates=True, adaptive=True)}
# every decoder, in the order each prompt runs them, with the AR run whose output it should equal
REFERENCE = ({"ar_base": "ar_base"} | {f"jacobi{v}_base": "ar_base" for v in VARIANTS}
             | {f"jacobi{v}_cllm": "ar_cllm" for v in VARIANTS}
             | {"ar_cllm": "ar_cllm", "prompt_lookup_base": "ar_base", "ar_generate_base": "ar_base"})


@dataclass
class Run:
    tokens: list[int]
    seconds: float
    forward_passes: int
    stats: dict | None  # summarize() of a run of our own decoders


def run_ours(model: PreTrainedModel, prompt_ids: list[int], **kw) -> Run:
    sync(model.device)
    t0 = time.perf_counter()
    result = decode(model, prompt_ids, **kw)
    sync(model.device)
    return Run(result.token_ids, time.perf_counter() - t0, len(result.passes), summarize(result))


def run_generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt_ids: list[int],
                 eos: set[int], max_new_tokens: int, **kw) -> Run:
    """transformers' greedy `generate` (kw: e.g. prompt_lookup_num_tokens); a hook counts forward passes."""
    max_new_tokens = check_inputs(model, prompt_ids, max_new_tokens)
    ids = torch.tensor([prompt_ids], device=model.device)
    calls = []
    hook = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        sync(model.device)
        t0 = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens,
                             eos_token_id=sorted(eos), pad_token_id=tokenizer.pad_token_id, **kw)
        sync(model.device)
        seconds = time.perf_counter() - t0
    finally:
        hook.remove()
    return Run(out[0, len(prompt_ids):].tolist(), seconds, len(calls), None)


def aggregate(runs: list[Run], reference: list[Run]) -> dict:
    """Totals over prompts, per-block means of the Jacobi counts, and the share equal to the AR output."""
    tokens, seconds = sum(len(r.tokens) for r in runs), sum(r.seconds for r in runs)
    passes = sum(r.forward_passes for r in runs)
    stats = [r.stats for r in runs if r.stats is not None]

    def mean(key: str) -> float | None:
        return sum(s[key] for s in stats) / len(stats) if stats else None

    return {
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "forward_passes": passes,
        "tokens_per_forward": tokens / passes,
        "fast_forwarded_per_block": mean("fast_forwarded_per_block"),
        "stationary_per_block": mean("stationary_per_block"),
        "matches_ar": sum(r.tokens == a.tokens for r, a in zip(runs, reference)) / len(runs),
    }


def run_speed(base_model: PreTrainedModel, base_tok: PreTrainedTokenizerBase, cllm_model: PreTrainedModel,
              cllm_tok: PreTrainedTokenizerBase, prompts: list[str], *, block_size: int = 16,
              max_new_tokens: int = 256, scheme: str = "sliding", seed: int = 0, progress: bool = True,
              decoders: list[str] | None = None, ar_bases: dict[str, PreTrainedModel] | None = None) -> dict:
    """Time the decoders of REFERENCE (all, or those named and the AR runs they are checked against) on `prompts`
    (texts, chat template applied here), plus AR on each model of ar_bases (the base in other dtypes, rows
    ar_base_<label>); see the module doc."""
    if not prompts:
        raise UserError("No prompts to time.")
    unknown = sorted(set(decoders or []) - set(REFERENCE))
    if unknown:
        raise UserError(f"Unknown decoder {unknown[0]!r}: choose among {', '.join(REFERENCE)}.")
    chosen = set(decoders or REFERENCE) | {REFERENCE[d] for d in decoders or REFERENCE} | {"ar_base"}
    base_eos, cllm_eos = eos_ids(base_model, base_tok), eos_ids(cllm_model, cllm_tok)
    jacobi = dict(decoder="jacobi", block_size=block_size, max_new_tokens=max_new_tokens, scheme=scheme, seed=seed)

    def plan(prompt: str) -> dict[str, Callable[[], Run]]:
        base, cllm = encode_prompt(base_tok, prompt), encode_prompt(cllm_tok, prompt)
        variants = VARIANTS if scheme == "sliding" else {"": {}}  # the block scheme has neither part
        everything = {
            "ar_base": lambda: run_ours(base_model, base, decoder="ar", max_new_tokens=max_new_tokens,
                                        eos_ids=base_eos),
            **{f"ar_base_{label}": partial(run_ours, model, base, decoder="ar", max_new_tokens=max_new_tokens,
                                           eos_ids=base_eos) for label, model in (ar_bases or {}).items()},
            **{f"jacobi{v}_base": partial(run_ours, base_model, base, eos_ids=base_eos, **jacobi, **kw)
               for v, kw in variants.items()},
            **{f"jacobi{v}_cllm": partial(run_ours, cllm_model, cllm, eos_ids=cllm_eos, **jacobi, **kw)
               for v, kw in variants.items()},
            "ar_cllm": lambda: run_ours(cllm_model, cllm, decoder="ar", max_new_tokens=max_new_tokens,
                                        eos_ids=cllm_eos),
            "prompt_lookup_base": lambda: run_generate(base_model, base_tok, base, base_eos, max_new_tokens,
                                                       prompt_lookup_num_tokens=PROMPT_LOOKUP_TOKENS),
            "ar_generate_base": lambda: run_generate(base_model, base_tok, base, base_eos, max_new_tokens),
        }
        return {name: go for name, go in everything.items() if name in chosen or name.startswith("ar_base_")}

    for number, prompt in enumerate(prompts, 1):  # every prompt fits before anything is timed
        try:
            check_inputs(base_model, encode_prompt(base_tok, prompt), max_new_tokens, block_size)
            check_inputs(cllm_model, encode_prompt(cllm_tok, prompt), max_new_tokens, block_size)
        except UserError as e:
            raise UserError(f"Prompt {number}: {e}") from e
    for go in plan(prompts[0]).values():  # untimed warm-up
        go()
    runs = {name: [] for name in plan(prompts[0])}
    for prompt in tqdm(prompts, desc="speed", unit="prompt", file=sys.stderr, disable=not progress):
        for name, go in plan(prompt).items():
            runs[name].append(go())
    decoders = {name: aggregate(runs[name], runs[REFERENCE.get(name, "ar_base")]) for name in runs}
    baseline = max((name for name in decoders if name.startswith("ar_base") or name == "ar_generate_base"),
                   key=lambda name: decoders[name]["tokens_per_second"])
    for d in decoders.values():
        d["speedup"] = d["tokens_per_second"] / decoders[baseline]["tokens_per_second"]
    config = dict(n_prompts=len(prompts), block_size=block_size, max_new_tokens=max_new_tokens, scheme=scheme,
                  seed=seed, prompt_lookup_num_tokens=PROMPT_LOOKUP_TOKENS, device=str(base_model.device),
                  dtype=str(base_model.dtype).removeprefix("torch."))
    return {"config": config, "baseline": baseline, "decoders": decoders}


def table(result: dict) -> str:
    """The result as a markdown table."""
    def num(x: float | None, spec: str) -> str:
        return "–" if x is None else format(x, spec)

    rows = ["| decoder | tokens/s | speedup | tokens/forward | forward passes | fast-forwarded/block "
            "| stationary/block | matches AR |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, d in result["decoders"].items():
        rows.append(f"| {name} | {d['tokens_per_second']:.1f} | {d['speedup']:.2f}x | {d['tokens_per_forward']:.2f} "
                    f"| {d['forward_passes']} | {num(d['fast_forwarded_per_block'], '.2f')} "
                    f"| {num(d['stationary_per_block'], '.2f')} | {d['matches_ar']:.0%} |")
    return "\n".join(rows) + f"\n\nspeedup vs {result['baseline']}, the faster AR on the base model"


def run(args: argparse.Namespace) -> None:
    check_json_out(args.json)
    prompts = [prompt_of(item) for item in read_items(args.prompts, args.limit)]
    base_model, base_tok = load_model(args.base, **load_options(args))
    cllm_model, cllm_tok = load_model(args.cllm, **load_options(args))
    ar_bases = {dtype: load_model(args.base, **(load_options(args) | {"dtype": dtype}))[0]
                for dtype in args.ar_dtypes or []}
    result = run_speed(base_model, base_tok, cllm_model, cllm_tok, prompts, block_size=args.block_size,
                       max_new_tokens=args.max_new_tokens, scheme=args.scheme, seed=args.seed,
                       decoders=args.decoders, ar_bases=ar_bases)
    result["config"] |= dict(base=args.base, cllm=args.cllm, prompts=args.prompts, processor=processor())
    print(table(result))
    write_json(args.json, result)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--base", default="smollm2-135m-instruct", help="hub name, local path or embedded name")
    p.add_argument("--cllm", default="smollm2-135m-cllm", help="hub name, local path or embedded name")
    p.add_argument("--prompts", default=DEFAULT_PROMPTS, help="jsonl with `question` or `prompt` per line")
    p.add_argument("--limit", type=int, help="use only the first N prompts")
    p.add_argument("--json", metavar="OUT", help="also write the result here")
    p.add_argument("--decoders", type=lambda t: t.split(","), metavar="A,B",
                   help=f"time only these (and the AR runs they are checked against); default: all of "
                        f"{', '.join(REFERENCE)}")
    p.add_argument("--ar-dtypes", type=lambda t: t.split(","), metavar="D,D",
                   help="also time AR on the base loaded in these dtypes (e.g. float32,bfloat16); the speedups are "
                        "against the fastest AR row")
    add_decoding_args(p, decoder=None)
    add_model_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
