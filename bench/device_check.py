"""CUDA and bitsandbytes checks, for a machine with a GPU (CI has none): prints one line per check.

python -m bench.device_check [--prompts assets/data/synth/heldout.jsonl] [--n 20]

1. Jacobi (sliding and block) == greedy AR == transformers' generate on tiny random models of several
   families, on CUDA in float32 (TF32 off) and float64.
2. The embedded CLLM on CUDA in float32, bfloat16 and float16, and loaded in 8 and 4 bits through
   bitsandbytes: the share of prompts where Jacobi equals AR, tokens per forward, and tokens/s.
Low-precision forwards over 1 and 16 tokens may round differently, so a near-tie can make Jacobi and
AR part ways there: the share is reported, not assumed.
"""
import argparse
import sys

import torch

from bench.data import prompt_of, read_items
from bench.speed import run_ours
from model_utils.cli import parser, run_cli
from model_utils.decoding import decode
from model_utils.loading import encode_prompt, eos_ids, load_model, resolve_device
from model_utils.tiny_models import tiny_model

FAMILIES = ("llama", "gpt2", "qwen2", "gpt-neox", "phi", "mistral-sliding")


def tiny_families(dtype: torch.dtype, device: str) -> None:
    prompt = [1, 5, 9, 14, 3, 22, 7]
    for family in FAMILIES:
        model = tiny_model(family, dtype=dtype).to(device)
        ar = decode(model, prompt, decoder="ar", max_new_tokens=40).token_ids
        ids = torch.tensor([prompt], device=device)
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=40,
                             eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
        same = {f"{scheme} n={n}": decode(model, prompt, block_size=n, max_new_tokens=40, scheme=scheme).token_ids == ar
                for scheme in ("sliding", "block") for n in (2, 7, 16)}
        ok = gen == ar and all(same.values())
        print(f"{'ok  ' if ok else 'DIFF'} tiny {family} {device} {str(dtype)[6:]}: generate==AR {gen == ar}, "
              f"Jacobi==AR {sum(same.values())}/{len(same)}", flush=True)


def embedded(prompts: list[str], device: str, dtype: str = "float32", bits: int | None = None) -> None:
    model, tokenizer = load_model("tiny-arith-cllm", device=device, dtype=dtype, bits=bits)
    eos = eos_ids(model, tokenizer)
    kw = dict(block_size=16, max_new_tokens=256, eos_ids=eos)
    runs = [(run_ours(model, ids, decoder="ar", **kw), run_ours(model, ids, decoder="jacobi", **kw))
            for ids in [encode_prompt(tokenizer, p) for p in prompts[:1] + prompts]]  # the first one warms up
    same = sum(ar.tokens == jacobi.tokens for ar, jacobi in runs)
    tokens = sum(len(jacobi.tokens) for _, jacobi in runs)
    passes = sum(jacobi.forward_passes for _, jacobi in runs)
    label = f"{bits}-bit" if bits else dtype
    ar_speed = tokens / sum(ar.seconds for ar, _ in runs)
    jacobi_speed = tokens / sum(j.seconds for _, j in runs)
    print(f"ok   tiny-arith-cllm {device} {label}: Jacobi==AR on {same}/{len(runs)} prompts, "
          f"{tokens / passes:.2f} tokens/forward, AR {ar_speed:.0f} vs Jacobi {jacobi_speed:.0f} tokens/s "
          f"(memory {model.get_memory_footprint() / 1e6:.1f} MB)", flush=True)


def run(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    gpu = torch.cuda.get_device_name() if device == "cuda" else "no GPU"
    print(f"torch {torch.__version__}, {gpu}", flush=True)
    for dtype in (torch.float64, torch.float32):
        tiny_families(dtype, device)
    prompts = [prompt_of(item) for item in read_items(args.prompts, args.n)]
    for dtype in ("float32", "bfloat16", "float16"):
        embedded(prompts, device, dtype=dtype)
    for bits in (8, 4):
        try:
            embedded(prompts, device, bits=bits)
        except Exception as e:  # report and go on: one line per check
            print(f"FAIL tiny-arith-cllm {device} {bits}-bit: {type(e).__name__}: {str(e).splitlines()[0]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--prompts", default="assets/data/synth/heldout.jsonl")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--device", default="cuda", help="cpu: a dry run of the same checks")
    args = p.parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
