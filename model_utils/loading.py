"""Load any Hugging Face causal LM and its tokenizer, refusing bad settings in one sentence."""
import logging
import os
import socket
from urllib.parse import urlparse

import huggingface_hub
import torch
import transformers
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from model_utils import pass_costs, smollm2
from model_utils.errors import UserError
from model_utils.gguf import gguf_file, gguf_problem

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}
DEFAULT_MODEL = "smollm2-135m-cllm"
EMBEDDED = {smollm2.NAME: "assets/models/smollm2-135m-instruct", "smollm2-135m-cllm": "assets/models/smollm2-135m-cllm",
            "tiny-arith-base": "assets/models/tiny-arith-base", "tiny-arith-cllm": "assets/models/tiny-arith-cllm"}
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resolve_path(name: str) -> str:
    """An embedded model's short name or a project-relative asset path becomes an absolute path (the real base is
    prepared there from its pinned GGUF file the first time)."""
    if name == smollm2.NAME:
        return smollm2.prepare(os.path.join(PROJECT_ROOT, EMBEDDED[name]))
    if name in EMBEDDED:
        return os.path.join(PROJECT_ROOT, EMBEDDED[name])
    if not os.path.exists(name) and os.path.exists(os.path.join(PROJECT_ROOT, name)):
        return os.path.join(PROJECT_ROOT, name)
    return name


def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise UserError(f"Unknown device {device!r}: choose one of {', '.join(DEVICES)}.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible to torch: use --device cpu.")
    if device == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for but Apple's MPS backend is not available: use --device cpu.")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """auto: float32 on CPU (load_model may then choose bfloat16: prefers_bfloat16), bfloat16 on a GPU that has it,
    else float16."""
    if dtype == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise UserError(f"Unknown dtype {dtype!r}: choose auto or one of {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def quantization_config(bits: int | None, device: str) -> BitsAndBytesConfig | None:
    if bits is None:
        return None
    if bits not in (4, 8):
        raise UserError(f"Quantisation must be 4 or 8 bits (got {bits}).")
    if device == "mps":
        raise UserError(f"bitsandbytes has no {bits}-bit kernels for Apple's MPS: use --device cpu or cuda, or drop "
                        f"--load-in-{bits}bit.")
    if bits == 4:  # bitsandbytes runs on the CPU too; there float32 compute is the fast path on most CPUs
        compute = torch.bfloat16 if device == "cuda" else torch.float32
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute)
    return BitsAndBytesConfig(load_in_8bit=True)


def drop_int8_cast_notice(record: logging.LogRecord) -> bool:
    """Log filter: bitsandbytes logs "MatMul8bitLt: inputs will be cast ..." on every 8-bit matmul."""
    return not record.getMessage().startswith("MatMul8bitLt")


def hub_reachable() -> bool:
    """False when HF_HUB_OFFLINE is set or the Hub's host name does not resolve: a quick offline check that
    sends nothing to the Hub (huggingface_hub would otherwise retry for about half a minute)."""
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return False
    try:
        socket.getaddrinfo(urlparse(huggingface_hub.constants.ENDPOINT).hostname, 443)
    except OSError:
        return False
    return True


def load_tokenizer(path: str, trust_remote_code: bool = False, local_files_only: bool = False,
                   gguf_file: str | None = None) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code,
                                                  local_files_only=local_files_only, gguf_file=gguf_file)
    except (OSError, ValueError) as e:
        raise UserError(f"No tokenizer could be loaded from {path!r}: {first_line(e)}") from e
    if tokenizer.eos_token_id is None:
        raise UserError(f"The tokenizer of {path!r} has no EOS token, so generation could never stop.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def quiet_transformers() -> None:
    """Keep a CLI's stderr for its one-line errors and summary: no load-time warnings or weight bars."""
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def first_line(e: Exception) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def check_causal(name: str, config: PretrainedConfig) -> None:
    """Refuse a model whose config does not declare a causal (left-to-right) language model.

    Its declared architectures must include a causal LM class. `is_decoder` only matters for encoder families
    (those with a masked-LM head, e.g. BERT or RoBERTa), whose causal LM class is bidirectional unless
    is_decoder is set; decoder-only families such as GPT-NeoX may set it False by default and stay causal.
    """
    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    architectures = getattr(config, "architectures", None) or []
    kind = architectures[0] if architectures else config.model_type
    if getattr(config, "is_encoder_decoder", False) and not any(a in causal for a in architectures):
        raise UserError(f"{name!r} is an encoder-decoder model ({config.model_type}); CLLM Lab needs a causal LM.")
    encoder_family = config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(
        config, "is_encoder_decoder", False)
    if (architectures and not any(a in causal for a in architectures)) or (
            encoder_family and getattr(config, "is_decoder", False) is not True):
        raise UserError(f"{name!r} is a {kind}, not a causal (left-to-right) language model: "
                        f"its prediction for a token would depend on the tokens after it.")


def load_model(name: str, *, device: str = "auto", dtype: str = "auto", bits: int | None = None,
               device_map: str | None = None, trust_remote_code: bool = False
               ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM by hub name, local path, GGUF file or embedded short name; eval mode on its device.

    A folder holding a PEFT LoRA adapter loads its base (as the adapter names it) and merges the adapter in."""
    path = resolve_path(name)
    if os.path.isfile(os.path.join(path, "adapter_config.json")):
        return load_adapter(name, path, device=device, dtype=dtype, bits=bits, device_map=device_map,
                            trust_remote_code=trust_remote_code)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    quant = quantization_config(bits, device)
    if bits == 8:
        logging.getLogger("bitsandbytes.autograd._functions").addFilter(drop_int8_cast_notice)
    gguf = gguf_file(path)
    offline = not os.path.exists(path) and not hub_reachable()
    hub = {"trust_remote_code": trust_remote_code, "local_files_only": offline}
    if gguf:
        path, hub["gguf_file"] = gguf
    try:
        config = AutoConfig.from_pretrained(path, **hub)
    except (OSError, ValueError, KeyError) as e:
        if gguf:
            raise gguf_problem(name, e) from e
        if os.path.isdir(path):
            raise UserError(f"The folder {name!r} holds no readable model config.json ({first_line(e)}): "
                            f"give a folder saved with save_pretrained.") from e
        if offline:
            raise UserError(f"Model {name!r} was not found: it is not a local model folder, and the Hugging Face "
                            f"Hub cannot be reached from here (offline) nor was it downloaded before: connect to "
                            f"the network or give a local folder.") from e
        raise UserError(f"Model {name!r} was not found: it is neither a local model directory nor "
                        f"a model the Hugging Face Hub could serve ({first_line(e)}).") from e
    check_causal(name, config)
    tokenizer = load_tokenizer(path, **hub)
    placement = {"device_map": device_map or device} if device_map or quant else {}
    try:
        logging.getLogger("transformers.modeling_utils").setLevel(logging.ERROR)
        model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=torch_dtype,
                                                     quantization_config=quant, **hub, **placement)
    except (ValueError, NotImplementedError, KeyError) as e:
        if gguf:
            raise gguf_problem(name, e) from e
        raise UserError(f"{name!r} ({config.model_type}) cannot be loaded as a causal language model: "
                        f"{first_line(e)}") from e
    except (OSError, RuntimeError, SafetensorError) as e:  # no weights, or a truncated or corrupt weights file
        raise UserError(f"The weights of {name!r} could not be read ({first_line(e)}): the folder needs a "
                        f"complete model.safetensors (or pytorch_model.bin); download or save it again.") from e
    if not placement:
        model.to(device)
    model.eval()
    if dtype == "auto" and prefers_bfloat16(model):
        model.to(torch.bfloat16)
    return model, tokenizer


def prefers_bfloat16(model: PreTrainedModel) -> bool:
    """--dtype auto on a CPU: bfloat16 for a model of 100M+ parameters where the CPU has bfloat16 matrix units and
    it measures faster there (once per model shape and machine, kept on disk); float32 elsewhere (smaller models
    keep the exact float32 path; what they would gain is a few milliseconds)."""
    if model.device.type != "cpu" or model.dtype != torch.float32 or model.num_parameters() < SMALL_MODEL:
        return False
    if getattr(model.config, "quantization_config", None) is not None or not pass_costs.has_bf16_units():
        return False
    return pass_costs.faster_dtype(model) == torch.bfloat16


def load_adapter(name: str, path: str, **options) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A LoRA adapter folder: its base loaded as asked, the adapter merged in (then an ordinary model)."""
    from peft import PeftConfig, PeftModel

    if options.get("bits"):
        raise UserError(f"{name!r} is a LoRA adapter, which is merged into its base at load time: load it without "
                        f"4/8-bit quantisation.")
    base = PeftConfig.from_pretrained(path).base_model_name_or_path
    dtype = options.pop("dtype")
    model, tokenizer = load_model(base, dtype="float64" if dtype == "float64" else "float32", **options)
    try:
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise UserError(f"The LoRA adapter {name!r} does not fit its base {base!r} ({first_line(e)}).") from e
    model.eval()
    if dtype == "auto":
        if prefers_bfloat16(model):
            model.to(torch.bfloat16)
    else:
        model.to(resolve_dtype(dtype, model.device.type))
    return model, tokenizer


SMALL_MODEL = 100e6  # parameters; below this a CPU decoding pass is too short for a second thread to pay


def decoding_threads(models: list[PreTrainedModel]) -> int:
    """Threads for decoding on the CPU: 1 while every model is small, else torch's default (all cores).

    Measured with the embedded 4.7M CLLM on 2 cores, 128 tokens: one and two threads take about as long on a quiet
    machine (AR 1.06 / 1.12 s), but with another process busy on one core two threads take 3x longer
    (AR 2.97 s against 0.96 s, Jacobi 2.20 against 0.55): the pool waits for the busy core at every operation.
    """
    cpu = [m for m in models if m.device.type == "cpu"]
    if cpu and all(m.num_parameters() < SMALL_MODEL for m in cpu):
        return 1
    return DEFAULT_THREADS


DEFAULT_THREADS = torch.get_num_threads()  # before anything changes it


def eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Every id that ends generation: generation_config's (an int or a list) plus the tokenizer's."""
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return ids | {tokenizer.eos_token_id}


def check_text(text: str) -> None:
    """Refuse text that cannot be written as UTF-8 (lone surrogates, e.g. from invalid bytes on a command line)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UserError(f"The prompt has a character that is not valid Unicode at position {e.start} "
                        f"(invalid UTF-8 bytes?): retype or remove it.") from e


def encode_prompt(tokenizer: PreTrainedTokenizerBase, messages: str | list[dict]) -> list[int]:
    """Token ids of a prompt: the chat template when the tokenizer has one, else the raw text."""
    if messages is None or isinstance(messages, str):
        if not (messages or "").strip():
            raise UserError("The prompt is empty: type something to continue.")
        messages = [{"role": "user", "content": messages}]
    for m in messages:
        check_text(m["content"])
    if tokenizer.chat_template:
        out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(out["input_ids"] if hasattr(out, "keys") else out)
    return tokenizer("\n".join(m["content"] for m in messages))["input_ids"]


def context_length(model: PreTrainedModel) -> int | None:
    """The model's context in tokens (None where its config names none)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
