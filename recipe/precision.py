"""Print the precision to collect and train in on this machine: bfloat16 or float32.

python -m recipe.precision

bfloat16 on a CUDA GPU that has it, and on a CPU with bfloat16 matrix units (AVX512-BF16 or AMX): measured on a
2-core Xeon with AMX, 4 packed LoRA training steps of SmolLM2-135M (batch 4) took 18.6 s with bfloat16 autocast
and 30.3 s in float32, and batched collection's 256-token passes gain likewise. float32 elsewhere (without those
units, bfloat16 matrix products are emulated and slower).
"""
import sys

import torch

from model_utils.cli import parser, run_cli
from model_utils.pass_costs import has_bf16_units


def precision() -> str:
    if torch.cuda.is_available():
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if has_bf16_units() else "float32"


def main(argv: list[str] | None = None) -> int:
    parser(__doc__).parse_args(argv)
    return run_cli(lambda: print(precision()))


if __name__ == "__main__":
    sys.exit(main())
