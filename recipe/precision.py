"""Print the faster training and collection precision for a model on this machine: bfloat16 or float32.

python -m recipe.precision --model M

On a CUDA GPU with bfloat16: bfloat16. On a CPU: bfloat16 where the CPU has bfloat16 matrix units (AVX512-BF16 or
AMX) and a 1- plus a 16-token pass measure faster in it (model_utils.pass_costs, kept on disk), else float32.
"""
import sys

import torch

from model_utils.cli import parser, run_cli
from model_utils.loading import load_model
from model_utils.pass_costs import faster_dtype, has_bf16_units


def fastest(model_name: str) -> str:
    if torch.cuda.is_available():
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    if not has_bf16_units():
        return "float32"
    model, _ = load_model(model_name, device="cpu", dtype="float32")
    return str(faster_dtype(model)).removeprefix("torch.")


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--model", required=True)
    args = p.parse_args(argv)
    return run_cli(lambda: print(fastest(args.model)))


if __name__ == "__main__":
    sys.exit(main())
