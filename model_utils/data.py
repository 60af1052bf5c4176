"""Read prompt/answer jsonl files (GSM8K `question`/`answer`, or `prompt`) with clear errors."""
import json
import os

from model_utils.errors import UserError


def read_jsonl(path: str, max_bytes: int | None = None) -> list[dict]:
    """Every line a JSON object; a missing, oversized, malformed or empty file is refused."""
    if not os.path.isfile(path):
        raise UserError(f"Data file {path!r} does not exist.")
    if max_bytes is not None and os.path.getsize(path) > max_bytes:
        raise UserError(f"Data file {os.path.basename(path)!r} is {os.path.getsize(path) / 1e6:.1f} MB; "
                        f"the limit is {max_bytes / 1e6:.1f} MB.")
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"Line {number} of {os.path.basename(path)!r} is not valid JSON ({e.msg}).") from e
            if not isinstance(row, dict):
                raise UserError(f"Line {number} of {os.path.basename(path)!r} is not a JSON object.")
            rows.append(row)
    if not rows:
        raise UserError(f"Data file {os.path.basename(path)!r} is empty.")
    return rows


def read_prompts(path: str, max_bytes: int | None = None) -> list[dict]:
    """Rows with a `prompt` (from `question` or `prompt`) and, where given, the reference `answer`."""
    rows = read_jsonl(path, max_bytes)
    out = []
    for number, row in enumerate(rows, 1):
        prompt = row.get("question", row.get("prompt"))
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError(f"Record {number} of {os.path.basename(path)!r} has no non-empty "
                            f"'question' or 'prompt' field.")
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise UserError(f"Record {number} of {os.path.basename(path)!r} has a non-text 'answer'.")
        out.append(row | {"prompt": prompt})
    return out
