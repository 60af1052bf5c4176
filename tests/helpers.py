"""Plain helpers shared by the tests (the fixtures live in conftest.py): tiny saved models, a jsonl in the
tiny tokenizer's words, `python -m app` on a free port, and the rows the trajectory and training tests use."""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import torch

from model_utils.tiny_models import tiny_model, tiny_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = "w5 w17 w33 w60 w8"

# trajectory collection and training
ROWS = [{"prompt": " ".join(f"w{(7 * i + 3 * k) % 90 + 3}" for k in range(5)), "answer": f"w{i + 10} w{i + 20}"}
        for i in range(6)]
BLOCK, MAX_NEW = 8, 24


def save_tiny(folder: str, seed: int) -> str:
    model, tokenizer = tiny_model("llama", seed=seed), tiny_tokenizer()
    model.generation_config.eos_token_id = 2
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_base(path, seed=0):
    """A tiny Llama with sharpened embeddings, so its greedy output is decided, not near-tied."""
    model = tiny_model("llama", seed=seed, dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed" in name or "lm_head" in name:
                p.mul_(8)
    model.generation_config.eos_token_id = None
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


def read(path) -> list[dict]:
    """The records of a jsonl file."""
    with open(path) as f:
        return [json.loads(line) for line in f]


def words_jsonl(path, n: int = 4) -> str:
    """A question/answer jsonl in the tiny tokenizer's words."""
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"question": f"w{i + 5} w{i + 9} w{i + 20}", "answer": f"w{i + 30} w{i + 31}"}) + "\n")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(args: list[str], log_path: str, env: dict | None = None) -> subprocess.Popen:
    """`python -m app ARGS` with its output in a log file (a pipe nobody reads would fill up and block it)."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                        "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "tests")])} | (env or {})
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def wait_until_up(url: str, proc: subprocess.Popen, log_path: str, timeout: float = 120) -> float:
    """Seconds until the app answers; fails with its output if it dies or never answers."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            with open(log_path) as f:
                raise RuntimeError(f"the app exited with {proc.returncode}:\n{f.read()}")
        try:
            urllib.request.urlopen(url + "/config", timeout=2)
            return time.perf_counter() - t0
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the app did not answer on {url} within {timeout} s")


def assert_offline_html(page: str) -> None:
    """A page that opens without a network: plotly.js inlined, no script or stylesheet fetched from any host."""
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", page, re.IGNORECASE), "a <script src=...> to fetch"
    assert not re.search(r"<link\b[^>]*\bhref\s*=\s*[\"']?(https?:)?//", page, re.IGNORECASE), "a <link> to a host"
    assert re.search(r"<script[^>]*>\s*/\*\*?\s*\*?\s*plotly\.js v\d", page), "plotly.js is not inlined"
    assert len(page) > 3_000_000  # plotly.js itself is inside
