"""Fixtures for the app tests: tiny saved models and a running `python -m app` on a free port."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tiny import tiny_model, tiny_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = "w5 w17 w33 w60 w8"


def save_tiny(folder: str, seed: int) -> str:
    model, tokenizer = tiny_model("llama", seed=seed), tiny_tokenizer()
    model.generation_config.eos_token_id = 2
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


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


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("models")
    return save_tiny(str(root / "base"), 0), save_tiny(str(root / "cllm"), 1)


@pytest.fixture(scope="session")
def app_url(tiny_models, tmp_path_factory):
    """The app on tiny models, started once for the whole session."""
    port, runs = free_port(), tmp_path_factory.mktemp("runs")
    log = str(runs / "app.log")
    proc = start_app(["--port", str(port), "--base", tiny_models[0], "--cllm", tiny_models[1], "--device", "cpu"],
                     log, {"CLLM_LAB_RUNS": str(runs)})
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_until_up(url, proc, log)
        print(f"\napp launch-to-ready: {ready:.1f} s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
