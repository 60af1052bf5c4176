"""What one forward pass of w tokens costs on this machine, measured once and kept.

A pass's cost depends on the model's shape, device, dtype, thread count and processor, not on its weights, so one
measurement serves every run (and every checkpoint) of that shape: it is kept in memory while the model lives and on
disk in ~/.cache/cllm-lab/pass_costs.json (CLLM_LAB_CACHE moves the folder; delete the file to measure again). The
adaptive window (model_utils.window), --dtype auto (model_utils.loading) and bench.pass_cost use it.
"""
import copy
import json
import os
import platform
import statistics
import time
import weakref
from itertools import accumulate

import torch
from transformers import DynamicCache, PreTrainedModel

MEASURED_WIDTHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
WARM_WIDTH = 32  # measured at least this wide: a 16-token window and 16 candidate tokens
_measured: "weakref.WeakKeyDictionary[PreTrainedModel, dict]" = weakref.WeakKeyDictionary()


class PassCosts:
    """Seconds of one cached forward of w tokens, linear between the measured widths (flat past the last)."""

    def __init__(self, seconds: dict[int, float]):
        self.widths = sorted(seconds)
        self.seconds = [seconds[w] for w in self.widths]

    def __call__(self, width: int) -> float:
        for (w0, s0), (w1, s1) in zip(zip(self.widths, self.seconds), zip(self.widths[1:], self.seconds[1:])):
            if width <= w1:
                return s0 + (s1 - s0) * (width - w0) / (w1 - w0) if width > w0 else s0
        return self.seconds[-1]


@torch.inference_mode()
def measure_pass_costs(model: PreTrainedModel, max_width: int, context: int = 64, repeats: int = 9) -> PassCosts:
    """Median seconds of forwards of each measured width up to max_width over a cached `context`-token prefix,
    the widths taken in turn so that drift hits all alike, made non-decreasing in the width."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if limit is not None:  # a learned-position model takes no position past its context
        max_width = max(1, min(max_width, limit - 1 - context))
        context = min(context, limit - 1 - max_width)
    widths = [w for w in MEASURED_WIDTHS if w < max_width] + [max_width]
    vocab = model.get_input_embeddings().num_embeddings
    ids = torch.randint(vocab, (1, context + max_width), generator=torch.Generator().manual_seed(0)).to(model.device)
    prefix = DynamicCache(config=model.config)
    prefix.activate_past_recording()
    model(input_ids=ids[:, :context], cache=prefix, use_cache=True, logits_to_keep=1)
    times: dict[int, list[float]] = {w: [] for w in widths}
    for _ in range(repeats + 2):
        for w in widths:
            cache = prefix if prefix.is_croppable else copy.deepcopy(prefix)  # recurrent layers: a fresh copy
            t0 = time.perf_counter()
            model(input_ids=ids[:, context:context + w], cache=cache, use_cache=True,
                  position_ids=torch.arange(context, context + w, device=model.device)[None])
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            times[w].append(time.perf_counter() - t0)
            if prefix.is_croppable:
                prefix.crop(-w)
    medians = [statistics.median(times[w][2:]) for w in widths]
    return PassCosts(dict(zip(widths, accumulate(medians, max))))


def pass_costs(model: PreTrainedModel, max_width: int = WARM_WIDTH) -> PassCosts:
    """measure_pass_costs up to at least max_width (WARM_WIDTH by default), once per model shape, device, dtype,
    thread count and processor: kept while the model lives and on disk, so a one-shot
    run on a machine that measured this shape before pays nothing."""
    per_model = _measured.setdefault(model, {})
    key = (str(model.device), model.dtype)
    if key not in per_model or per_model[key][0] < max_width:
        width = max(max_width, WARM_WIDTH)
        stored = load(model, width)
        if stored:
            per_model[key] = (width, PassCosts(stored))
        else:
            costs = measure_pass_costs(model, width)
            save(model, width, dict(zip(costs.widths, costs.seconds)))
            per_model[key] = (width, costs)
    return per_model[key][1]


SHAPE_FIELDS = ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "vocab_size", "n_embd", "n_layer", "n_head")


def path() -> str:
    folder = os.environ.get("CLLM_LAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cllm-lab")
    return os.path.join(folder, "pass_costs.json")


def processor() -> str:
    """The CPU's model name (or the GPU's), which with the thread count decides a forward's speed."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return f"{names[0]} x{len(names)}" if names else platform.processor()
    except OSError:
        return platform.processor() or platform.machine()


def cache_key(model: PreTrainedModel, width: int) -> str:
    config = model.config
    shape = {f: getattr(config, f, None) for f in SHAPE_FIELDS}
    quantised = getattr(config, "quantization_config", None) is not None
    return json.dumps([shape, str(model.device), str(model.dtype), quantised, torch.get_num_threads(), processor(),
                       torch.__version__, width], sort_keys=True)


def read_all() -> dict:
    try:
        with open(path(), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def load(model: PreTrainedModel, width: int) -> dict[int, float] | None:
    """{width: seconds} measured before for this model shape on this machine, or None."""
    found = read_all().get(cache_key(model, width))
    try:
        return {int(w): float(s) for w, s in found.items()} if found else None
    except (AttributeError, ValueError):
        return None


def save(model: PreTrainedModel, width: int, seconds: dict[int, float]) -> None:
    """Add a measurement (atomically: a temp file renamed over the old one); an unwritable cache is skipped."""
    _write(read_all() | {cache_key(model, width): {str(w): s for w, s in seconds.items()}})


def _write(data: dict) -> None:
    target = path()
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, target)
    except OSError:
        pass


def has_bf16_units() -> bool:
    """Whether the CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX), where bfloat16 can beat float32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def faster_dtype(model: PreTrainedModel) -> torch.dtype:
    """bfloat16 where it makes both a 1-token pass (AR's) and a 16-token pass (Jacobi's) faster than float32 on this
    machine, else float32: measured once per model shape and machine (medians of 5) and kept on disk. Measured on a
    2-core Xeon with AMX, SmolLM2-135M: bfloat16 made Jacobi's wide passes faster but AR's one-token pass slower
    (AR 15.3 against 18.5 tokens/s), so float32 stays there."""
    entry = "dtype-both-widths:" + cache_key(model, 16)
    found = read_all().get(entry)
    if found in ("float32", "bfloat16"):
        return getattr(torch, found)
    fp32 = measure_pass_costs(model, 16, repeats=5)
    bf16 = measure_pass_costs(copy.deepcopy(model).to(torch.bfloat16), 16, repeats=5)
    best = "bfloat16" if bf16(1) < fp32(1) and bf16(16) < fp32(16) else "float32"
    _write(read_all() | {entry: best})
    return getattr(torch, best)
