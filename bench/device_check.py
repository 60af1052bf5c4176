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
import time
import warnings
from pathlib import Path

import torch

from bench.data import prompt_of, read_items, sync
from model_utils.decoding import decode
from model_utils.loading import encode_prompt, eos_ids, load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny import tiny_model  # noqa: E402  (test helper: tiny random models of several families)

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
    model, tokenizer = load_model("gsm8k-cllm", device=device, dtype=dtype, bits=bits)
    eos = eos_ids(model, tokenizer)
    same = tokens = passes = 0
    seconds = {"ar": 0.0, "jacobi": 0.0}
    outputs = {}
    for prompt in [prompts[0]] + prompts:  # the first one warms up
        ids = encode_prompt(tokenizer, prompt)
        for decoder in ("ar", "jacobi"):
            sync(model.device)
            t0 = time.perf_counter()
            outputs[decoder] = decode(model, ids, decoder=decoder, block_size=16, max_new_tokens=256, eos_ids=eos)
            sync(model.device)
            seconds[decoder] += time.perf_counter() - t0
        same += outputs["jacobi"].token_ids == outputs["ar"].token_ids
        tokens += len(outputs["jacobi"].token_ids)
        passes += len(outputs["jacobi"].passes)
    n = len(prompts) + 1
    label = f"{bits}-bit" if bits else dtype
    print(f"ok   gsm8k-cllm {device} {label}: Jacobi==AR on {same}/{n} prompts, {tokens / passes:.2f} tokens/forward, "
          f"AR {tokens / seconds['ar']:.0f} vs Jacobi {tokens / seconds['jacobi']:.0f} tokens/s "
          f"(memory {model.get_memory_footprint() / 1e6:.1f} MB)", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", default="assets/data/synth/heldout.jsonl")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--device", default="cuda", help="cpu: a dry run of the same checks")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU visible to torch: nothing to check here", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", message="MatMul8bitLt")  # bitsandbytes says it on every 8-bit matmul
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "no GPU"
    print(f"torch {torch.__version__}, {gpu}", flush=True)
    for dtype in (torch.float64, torch.float32):
        tiny_families(dtype, args.device)
    prompts = [prompt_of(item) for item in read_items(args.prompts, args.n)]
    for dtype in ("float32", "bfloat16", "float16"):
        embedded(prompts, args.device, dtype=dtype)
    for bits in (8, 4):
        try:
            embedded(prompts, args.device, bits=bits)
        except Exception as e:  # report and go on: one line per check
            print(f"FAIL gsm8k-cllm {args.device} {bits}-bit: {type(e).__name__}: {str(e).splitlines()[0]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
