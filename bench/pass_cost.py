"""Cost of one Jacobi pass of w tokens against one AR step, for Llama shapes of several sizes and dtypes.

python -m bench.pass_cost [--shapes 4x256,6x512,8x512] [--widths 1,16] [--prompt 150] [--repeats 30] [--threads 2]

Random weights with the embedded tokenizer's vocabulary: the cost of a forward does not depend on what was learnt.
"""

import argparse
import statistics
import time

import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from model_utils.cli import parser, run_cli


def make_llama(layers: int, hidden: int, vocab: int = 2048) -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                         num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64,
                         max_position_embeddings=1024, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


@torch.inference_mode()
def pass_ms(model: LlamaForCausalLM, prompt: int, width: int, repeats: int) -> float:
    """Median milliseconds of a forward of `width` new tokens over a cached `prompt`-token prefix."""
    ids = torch.randint(0, model.config.vocab_size, (1, prompt + width))
    cache = DynamicCache(config=model.config)
    model(ids[:, :prompt], past_key_values=cache, use_cache=True)
    times = []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        model(ids[:, prompt:], past_key_values=cache, use_cache=True)
        times.append(time.perf_counter() - start)
        cache.crop(-width)
    return 1000 * statistics.median(times[3:])


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--shapes", default="4x256,6x512,8x512,8x576", help="LAYERSxHIDDEN, comma-separated")
    ap.add_argument("--widths", default="1,16")
    ap.add_argument("--prompt", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    return run_cli(lambda: table(args))


def table(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    widths = [int(w) for w in args.widths.split(",")]
    cells = " | ".join(f"{w}-token ms" for w in widths)
    print(f"| shape | parameters | dtype | {cells} | widest ÷ fastest 1-token |")
    print("|---|---:|---|" + "---:|" * (len(widths) + 1))
    for shape in args.shapes.split(","):
        layers, hidden = (int(x) for x in shape.split("x"))
        model = make_llama(layers, hidden)
        n = sum(p.numel() for p in model.parameters()) / 1e6
        rows = {dtype: [pass_ms(model.to(dtype), args.prompt, w, args.repeats) for w in widths]
                for dtype in (torch.float32, torch.bfloat16)}
        fastest_one = min(r[0] for r in rows.values())
        for dtype, ms in rows.items():
            cells = " | ".join(f"{m:.2f}" for m in ms)
            name = str(dtype).removeprefix("torch.")
            print(f"| {shape} | {n:.1f}M | {name} | {cells} | {ms[-1] / fastest_one:.2f} |")


if __name__ == "__main__":
    raise SystemExit(main())
