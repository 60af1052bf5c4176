"""The fine-tuning runs on disk: listed (also after a restart) with their state and size, and deleted."""
import json
import os
import shutil

from model_utils.errors import UserError
from model_utils.loading import PROJECT_ROOT
from model_utils.train import FINISHED, LOG

RUNS = os.environ.get("CLLM_LAB_RUNS", os.path.join(PROJECT_ROOT, "runs/app"))
SCORECARD = "scorecard.json"  # written by the Fine-tune tab when a run ends


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def run_state(path: str) -> str:
    """finished, cancelled (a model and a checkpoint to resume), or incomplete (nothing usable yet)."""
    if os.path.exists(os.path.join(path, FINISHED)):
        return "finished"
    if os.path.exists(os.path.join(path, "config.json")):
        return "cancelled"
    return "incomplete"


def list_runs(root: str) -> list[dict]:
    """Every run folder under root, newest first: name, path, state, size in MB, last logged step, scorecard."""
    if not os.path.isdir(root):
        return []
    runs = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if not os.path.isdir(path) or name.endswith(".lock"):
            continue
        size = folder_bytes(path)
        trajectories = path + "-trajectories.jsonl"
        if os.path.exists(trajectories):
            size += os.path.getsize(trajectories)
        card = read_json(os.path.join(path, SCORECARD))
        runs.append({"name": name, "path": path, "state": run_state(path), "mb": size / 1e6,
                     "step": last_step(path), "scorecard": card, "mtime": os.path.getmtime(path)})
    return sorted(runs, key=lambda r: r["mtime"], reverse=True)


def last_step(path: str) -> int:
    """The last step the run's log recorded (0 before the first)."""
    return max((r["step"] for r in log_losses(path)), default=0)


def read_json(path: str) -> dict | None:
    """A JSON file's object, or None where it is missing or torn (a run killed while writing it)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def log_losses(path: str) -> list[dict]:
    """The loss rows of a run's log.jsonl (quality-guard rows and a torn last line left out)."""
    log = os.path.join(path, LOG)
    if not os.path.exists(log):
        return []
    rows = []
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return [{k: r[k] for k in ("step", "loss", "consistency", "ar") if k in r}
            for r in rows if isinstance(r, dict) and "loss" in r and "step" in r]


def delete_run(root: str, name: str) -> str:
    """Remove a run's folder and its trajectories; returns the folder that was removed."""
    path = os.path.join(root, name)
    if not name or os.path.dirname(os.path.normpath(path)) != os.path.normpath(root) or not os.path.isdir(path):
        raise UserError(f"There is no run named {name!r} to delete.")
    shutil.rmtree(path)
    for extra in (path + "-trajectories.jsonl", path + "-trajectories.jsonl.lock", path + ".lock"):
        if os.path.exists(extra):
            os.remove(extra)
    return path
