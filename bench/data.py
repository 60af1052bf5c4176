"""Prompt files (jsonl with `question` or `prompt`, optionally `answer`) and the CLIs' shared plumbing."""
import json
import os

import torch

from model_utils.data import check_writable, read_prompts
from model_utils.errors import UserError
from model_utils.loading import resolve_path

DEFAULT_PROMPTS = "assets/data/gsm8k/test.jsonl"


def read_items(path: str, limit: int | None = None, need_answer: bool = False) -> list[dict]:
    """The first `limit` items of a jsonl prompt file, each with a `question` or `prompt` text."""
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1 (got {limit}).")
    items = read_prompts(resolve_path(path))[:limit]
    for n, item in enumerate(items, 1):
        if need_answer and not isinstance(item.get("answer"), str):
            raise UserError(f"Record {n} of {path!r} has no `answer` to score against.")
    return items


def prompt_of(item: dict) -> str:
    return item.get("question", item.get("prompt")).strip()


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_json(path: str | None, data: dict) -> None:
    """Write data as indented JSON to path, whole or not at all (nothing when path is None)."""
    if path is None:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)


def check_json_out(path: str | None) -> None:
    """Refuse an unwritable --json before the benchmark runs (nothing when None)."""
    if path is not None:
        check_writable(path, "--json")
