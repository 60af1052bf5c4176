"""Read prompt/answer jsonl files (GSM8K `question`/`answer`, or `prompt`) with clear errors."""
import json
import os

from model_utils.errors import UserError


def read_jsonl(path: str, max_bytes: int | None = None) -> list[dict]:
    """Every line a JSON object; a missing, oversized, malformed or empty file is refused."""
    if os.path.isdir(path):
        raise UserError(f"Data file {path!r} is a folder: give a .jsonl file.")
    if not os.path.isfile(path):
        raise UserError(f"Data file {path!r} does not exist.")
    if max_bytes is not None and os.path.getsize(path) > max_bytes:
        raise UserError(f"Data file {os.path.basename(path)!r} is {os.path.getsize(path) / 1e6:.1f} MB; "
                        f"the limit is {max_bytes / 1e6:.1f} MB.")
    rows = []
    with open(path, encoding="utf-8") as f:
        try:
            lines = f.readlines()
        except UnicodeDecodeError as e:
            raise UserError(f"Data file {os.path.basename(path)!r} is not UTF-8 text (byte {e.start} cannot be "
                            f"decoded): give a .jsonl file with one JSON object per line.") from e
        for number, line in enumerate(lines, 1):
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


def check_writable(path: str, what: str, folder: bool = False) -> None:
    """Refuse an output file (or, with folder=True, an output folder) that could not be written, before any work."""
    path = os.path.abspath(path)
    if folder and os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{what} {path!r} is a file: give a folder.")
    if not folder and os.path.isdir(path):
        raise UserError(f"{what} {path!r} is a folder: give a file name.")
    existing = path if os.path.exists(path) else os.path.dirname(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if existing != path and not os.path.isdir(existing):
        raise UserError(f"{what} {path!r} cannot be created: {existing!r} is a file.")
    if not os.access(existing, os.W_OK):
        raise UserError(f"{what} {path!r} cannot be written (no permission): choose another place.")
