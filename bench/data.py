"""Prompt files (jsonl with `question` or `prompt`, optionally `answer`) and the CLIs' shared plumbing."""
import json

import torch

from model_utils.data import read_prompts
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


def write_json(path: str, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
