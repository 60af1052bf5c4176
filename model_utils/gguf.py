"""GGUF files (llama.cpp, Ollama) as model inputs: transformers dequantizes them to a float model (with `gguf`)."""
import json
import os
import shutil

from model_utils.errors import UserError


def gguf_file(path: str) -> tuple[str, str] | None:
    """(folder, file name) when path is a .gguf file or a folder holding one and no config.json; else None."""
    if os.path.isfile(path) and path.endswith(".gguf"):
        return os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, "config.json")):
        return None
    found = sorted(f for f in os.listdir(path) if f.endswith(".gguf"))
    if len(found) > 1:
        raise UserError(f"The folder {path!r} holds {len(found)} GGUF files ({', '.join(found[:3])}): give the path "
                        f"of the one to load.")
    return (os.path.abspath(path), found[0]) if found else None


def gguf_problem(name: str, e: Exception) -> UserError:
    """One sentence for a GGUF file transformers cannot read (architecture or quantisation type)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return UserError(f"transformers cannot read the GGUF file of {name!r} ({text.rstrip('.')}): it reads the "
                     f"architectures and quantisation types its GGUF documentation lists; convert the model or give "
                     f"a safetensors folder.")


def dequantize_to_folder(path: str, out: str, source: dict | None = None) -> None:
    """Save a GGUF model as a float32 safetensors folder (written beside out, then renamed into place).

    transformers refuses save_pretrained on a model loaded from GGUF, so its weights are copied into a model
    built from the same config, which saves normally.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = gguf_file(path) or (None, None)
    if name is None:
        raise UserError(f"{path!r} is not a GGUF file.")
    try:
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (ValueError, NotImplementedError, KeyError) as e:
        raise gguf_problem(path, e) from e
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the weights are plain floats now: train and save like any model
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    tmp = out.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if source:
        with open(os.path.join(tmp, "source.json"), "w") as f:
            json.dump(source, f, indent=1)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
