"""What every command line of the project shares: argument groups with one set of defaults, and bad
input as one line with exit 2."""
import argparse
import os
import sys
from collections.abc import Callable

from model_utils.decoding import DECODERS, FASTEST, SCHEMES, speedups
from model_utils.errors import UserError
from model_utils.loading import DEVICES, DTYPES, quiet_transformers

BLOCK_SIZE = 16
MAX_NEW_TOKENS = 256


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def int_in(low: int, high: int, what: str) -> Callable[[str], int]:
    """argparse type: a whole number in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be from {low} to {high} (got {value})")
        return value
    return parse


MAX_SEED = 2**32 - 1
seed = int_in(0, MAX_SEED, "a seed")
threads = int_in(1, os.cpu_count() or 1, "the thread count (this machine's cores at most)")
top_k = int_in(0, 10**9, "top-k")
block_size = int_in(1, 4096, "the block size")


def top_p(text: str) -> float:
    """argparse type of --top-p: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"top-p must be above 0 and at most 1 (got {text})")
    return value


MIN_TEMPERATURE = 1e-3  # below it, probabilities under/overflow: use 0 (greedy)


def temperature(text: str) -> float:
    """argparse type of --temperature: 0 (greedy) or a finite number from MIN_TEMPERATURE."""
    value = non_negative_float(text)
    if 0 < value < MIN_TEMPERATURE:
        raise argparse.ArgumentTypeError(f"a temperature must be 0 (greedy) or at least {MIN_TEMPERATURE} (got "
                                         f"{text})")
    return value


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2), like every other refusal; --help has the
    usage."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def parser(doc: str | None, prog: str | None = None) -> argparse.ArgumentParser:
    """A parser whose --help shows the module docstring as written."""
    return OneLineParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_model_args(p: argparse.ArgumentParser, quantisation: bool = True) -> None:
    """--device, --dtype, 4/8-bit loading (one of them), --trust-remote-code."""
    g = p.add_argument_group("model")
    g.add_argument("--device", choices=DEVICES, default="auto", help="where the model runs (default: auto)")
    g.add_argument("--dtype", choices=["auto", *DTYPES], default="auto",
                   help="weights' dtype (auto: float32 on CPU, bfloat16/float16 on a GPU)")
    if quantisation:
        bits = g.add_mutually_exclusive_group()
        bits.add_argument("--load-in-4bit", action="store_const", const=4, dest="bits",
                          help="quantise to 4 bits with bitsandbytes")
        bits.add_argument("--load-in-8bit", action="store_const", const=8, dest="bits",
                          help="quantise to 8 bits with bitsandbytes")
    g.add_argument("--trust-remote-code", action="store_true", help="run model code from the hub (off by default)")


def add_decoding_args(p: argparse.ArgumentParser, decoder: str | None = "jacobi") -> None:
    """--decoder (unless None), --block-size, --max-new-tokens, --scheme, --seed."""
    g = p.add_argument_group("decoding")
    if decoder is not None:
        g.add_argument("--decoder", choices=DECODERS, default=decoder, help=f"default: {decoder}")
    g.add_argument("--block-size", type=block_size, default=BLOCK_SIZE,
                   help=f"Jacobi window (default: {BLOCK_SIZE})")
    g.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help=f"default: {MAX_NEW_TOKENS}")
    g.add_argument("--scheme", choices=SCHEMES, default="sliding", help="Jacobi scheme (default: sliding)")
    g.add_argument("--seed", type=seed, default=0, help="seed of Jacobi's initial guesses (default: 0)")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number of at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0 (got {text})")
    return value


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """--temperature (0: greedy), --top-k, --top-p; sampled Jacobi is distributed exactly as AR sampling."""
    g = p.add_argument_group("sampling")
    g.add_argument("--temperature", type=temperature, default=0.0,
                   help="0 (default): greedy; above 0: sample (AR and Jacobi give the same distribution)")
    g.add_argument("--top-k", type=top_k, default=0, help="sample among the k likeliest tokens (0: all)")
    g.add_argument("--top-p", type=top_p, default=1.0, help="sample within the top-p probability mass (1: all)")


def add_speedup_args(p: argparse.ArgumentParser) -> None:
    """--candidates/--no-candidates and --adaptive/--no-adaptive: on by default for greedy sliding Jacobi."""
    g = p.add_argument_group("Jacobi speed-ups (greedy, sliding scheme; the output stays equal to AR's)")
    g.add_argument("--candidates", action=argparse.BooleanOptionalAction,
                   help="verify n-gram and recycled continuations beside the window in the same pass (default: "
                        f"{'on' if FASTEST['candidates'] else 'off'})")
    g.add_argument("--adaptive", action=argparse.BooleanOptionalAction,
                   help="choose the window's width from measured pass costs (default: "
                        f"{'on' if FASTEST['adaptive'] else 'off'})")


def speedup_options(args: argparse.Namespace) -> dict:
    """candidates and adaptive as given, else the fastest measured setting where it applies (greedy sliding
    Jacobi, one prompt at a time) and off elsewhere."""
    applies = (args.decoder == "jacobi" and args.scheme == "sliding" and args.temperature == 0
               and getattr(args, "batch_size", 1) == 1)
    return speedups(applies, args.candidates, args.adaptive)


def sampling_options(args: argparse.Namespace) -> dict:
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)


def load_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of load_model that add_model_args gathered."""
    return dict(device=args.device, dtype=args.dtype, bits=getattr(args, "bits", None),
                trust_remote_code=args.trust_remote_code)


def decode_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of decode that add_decoding_args gathered."""
    keys = ("decoder", "block_size", "max_new_tokens", "scheme", "seed")
    return {k: getattr(args, k) for k in keys if hasattr(args, k)}


def run_cli(body: Callable[[], object]) -> int:
    """Run a CLI body: exit 0, or print its UserError as one line on stderr and exit 2."""
    quiet_transformers()
    try:
        body()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
