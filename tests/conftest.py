"""Fixtures shared by the test modules: tiny saved models and the app running on them (one per session),
and a tiny base model with its Jacobi trajectories (the trajectory, quality, loss and training tests)."""
import os
import subprocess
import sys

# before anything imports huggingface_hub or gradio, which read them once
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if "CLLM_LAB_CACHE" not in os.environ:  # measured pass costs: the tests' own, never the user's
    import tempfile
    os.environ["CLLM_LAB_CACHE"] = tempfile.mkdtemp(prefix="cllm-lab-cache-")
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402
from helpers import BLOCK, MAX_NEW, ROWS, free_port, save_base, save_tiny, start_app, wait_until_up  # noqa: E402

from model_utils.loading import load_model  # noqa: E402
from model_utils.trajectories import collect_trajectories  # noqa: E402


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


# Session-scoped (they were module-scoped in the one module that used them): four modules share them now,
# and none changes them (tests that train load the model afresh from `base`).
@pytest.fixture(scope="session")
def base(tmp_path_factory) -> str:
    """The saved tiny base model's folder."""
    return save_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="session")
def loaded(base):
    """(model, tokenizer) of `base` on the CPU."""
    return load_model(base, device="cpu")


@pytest.fixture(scope="session")
def trajectories(loaded, tmp_path_factory) -> str:
    """The path of `base`'s trajectories of ROWS (with labels)."""
    path = str(tmp_path_factory.mktemp("traj") / "traj.jsonl")
    collect_trajectories(*loaded, ROWS, path, block_size=BLOCK, max_new_tokens=MAX_NEW, labels=True)
    return path
