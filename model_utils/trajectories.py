"""Collect a model's own Jacobi trajectories: one record per (prompt, block), reference §3.

Blocks are decoded with the official block scheme (KV cache, carried token in slot 0); each
record holds the prefix before the block, every state from the initial guess to the fixed point,
and the fixed point appended to the prefix (the teacher output).
"""
import hashlib
import itertools
import json
import os
import random
import re
import sys
from collections.abc import Callable, Iterator

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from model_utils.batching import batch_decode_passes
from model_utils.data import check_writable
from model_utils.decoding import check_inputs, decode, to_result
from model_utils.errors import UserError
from model_utils.loading import encode_prompt, eos_ids
from model_utils.locks import sole_writer
from model_utils.metrics import pass_states
from model_utils.quality import is_degenerate
from model_utils.records import DecodeResult


def tokenizer_hash(tokenizer: PreTrainedTokenizerBase) -> str:
    """A fingerprint of the vocabulary, to refuse trajectories from another tokenizer."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha1(json.dumps(vocab).encode()).hexdigest()[:16]


def block_trajectories(result: DecodeResult) -> list[tuple[int, list[list[int]]]]:
    """Per block: its start position and its states s0 (initial guess) .. fixed point, in block slots."""
    out, states = [], pass_states(result)
    for block in sorted({p.block for p in result.passes if p.window}):
        items = [(p, s) for p, s in zip(result.passes, states) if p.window and p.block == block]
        start = items[0][0].start
        end = min(start + len(items[0][0].window), len(result.token_ids))
        trajectory = [items[0][0].window[: end - start]]
        trajectory += [[s[pos] for pos in range(start, end)] for _, s in items]
        fixed = result.token_ids[start:end]
        trajectory = [t for i, t in enumerate(trajectory) if i == 0 or t != trajectory[i - 1]]
        if trajectory[-1] != fixed:
            trajectory.append(fixed)
        out.append((start, trajectory))
    return out


def augment(trajectory: list[list[int]], rng: random.Random) -> list[list[int]]:
    """Reference §3 augmentation: in all but the last two states, fix ⌊k/2⌋ wrong slots (not the first)."""
    fixed = trajectory[-1]
    out = []
    for i, state in enumerate(trajectory):
        state = list(state)
        wrong = [j for j, (a, b) in enumerate(zip(state, fixed)) if a != b]
        if i < len(trajectory) - 2 and len(wrong) > 1:
            for j in rng.choices(wrong[1:], k=len(wrong) // 2):
                state[j] = fixed[j]
        out.append(state)
    return out


def decode_prompts(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, items: list[tuple[int, dict]], *,
                   block_size: int, max_new_tokens: int, seed: int,
                   batch_size: int = 1) -> Iterator[DecodeResult | str]:
    """Each prompt's block-scheme decoding (seeded by its row number), or why it cannot be decoded, in input order.

    batch_size > 1 decodes up to that many prompts together with continuous batching (model_utils.batching: the
    same passes, fewer forwards); a result waits only for the ones before it.
    """
    prompts, problems = [], {}
    for k, (_, row) in enumerate(items):
        prompts.append(encode_prompt(tokenizer, row["prompt"]))
        try:
            check_inputs(model, prompts[-1], max_new_tokens, block_size)
        except UserError as e:  # this row can never pass
            problems[k] = str(e)
    todo = [k for k in range(len(items)) if k not in problems]
    options = dict(scheme="block", block_size=block_size, max_new_tokens=max_new_tokens,
                   eos_ids=eos_ids(model, tokenizer))
    if batch_size == 1:
        for k in range(len(items)):
            yield problems.get(k) or decode(model, prompts[k], decoder="jacobi", seed=seed + items[k][0], **options)
        return
    passes, finished, ready = {k: [] for k in todo}, {}, 0
    stream = batch_decode_passes(model, [prompts[k] for k in todo], decoder="jacobi", batch_size=batch_size,
                                 seed=[seed + items[k][0] for k in todo], pad_id=tokenizer.pad_token_id or 0,
                                 **options)
    for j, p, done in itertools.chain(stream, [(None, None, True)]):
        if j is not None:
            k = todo[j]
            passes[k].append(p)
            if not done:
                continue
            finished[k] = to_result(passes.pop(k), prompts[k], decoder="jacobi", scheme="block",
                                    block_size=block_size, eos_ids=options["eos_ids"])
        while ready < len(items) and (ready in problems or ready in finished):
            yield problems.get(ready) or finished.pop(ready)
            ready += 1


def prompt_records(tokenizer: PreTrainedTokenizerBase, row: dict, data_id: int, result: DecodeResult, *,
                   block_size: int, labels: bool, do_augment: bool, seed: int) -> list[dict]:
    """Turn each block of one prompt's decoding into a training record; drop degenerate ones."""
    prompt_ids = result.prompt_ids
    rng = random.Random(seed * 1_000_003 + data_id)
    fingerprint = tokenizer_hash(tokenizer)
    label_ids = None
    if labels:
        if not row.get("answer"):
            raise UserError(f"--labels needs an 'answer' field, and record {data_id + 1} has none.")
        label_ids = prompt_ids + tokenizer(row["answer"])["input_ids"] + [tokenizer.eos_token_id]
    blocks = block_trajectories(result)
    records = []
    for k, (start, trajectory) in enumerate(blocks):
        prefix = prompt_ids + result.token_ids[:start]
        fixed = trajectory[-1]
        if is_degenerate(result.token_ids[: start + len(fixed)]):
            break  # a repeat in the output so far stays in every later block
        record = {
            "data_id": f"data_{data_id}", "jacobian_itr_id": f"itr_{k}", "prompt_ids": prefix,
            "prompt_ids_len": len(prompt_ids), "block_size": block_size,
            "answer_trajectory_ids": augment(trajectory, rng) if do_augment else trajectory,
            "teacher_output_ids": prefix + fixed, "tokenizer": fingerprint,
        }
        if label_ids is not None:
            record["labels_ids"] = label_ids
        records.append(record)
    for j, record in enumerate(records):  # marks the prompt as finished for a resumed collection
        record["last_block"] = j == len(records) - 1
    return records


def finished_ids(path: str) -> set[str]:
    """Prompts whose records are all on disk; a torn last line or half-written prompt is cut away."""
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    complete = [line for line in lines[:-1] if line.strip()]  # text after the last newline is torn
    records = []
    for number, line in enumerate(complete, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            records.append(None)
        if not isinstance(records[-1], dict) or "data_id" not in records[-1]:
            raise UserError(f"{path!r} is not a trajectory file (line {number} is no trajectory record): "
                            f"give a new file name, or the file an earlier collection wrote.")
    done = {r["data_id"] for r in records if r.get("last_block")}
    kept = [line for line, r in zip(complete, records) if r["data_id"] in done]
    if len(kept) != len(complete) or lines[-1]:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in kept))
        os.replace(tmp, path)
    return done


def collect_trajectories(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: list[dict],
                         out_path: str, *, block_size: int = 16, max_new_tokens: int = 256, limit: int | None = None,
                         augment: bool = False, labels: bool = False, seed: int = 0, shard: tuple[int, int] = (0, 1),
                         batch_size: int = 1, progress: Callable[[int, int], None] | None = None,
                         on_skip: Callable[[int, str], None] | None = None) -> int:
    """Append the records of every prompt not yet in out_path; returns how many records were written.

    A row that cannot be decoded (over the model's context, no answer for labels) is skipped and reported to
    on_skip(row number, reason), by default as a warning on stderr; a rerun reports it again.

    shard (k, n) takes prompts k, k+n, k+2n, ... so n processes can collect one data set in parallel;
    batch_size prompts are decoded together in each forward pass (the same records, fewer passes).
    """
    if block_size < 1:
        raise UserError(f"Block size must be at least 1 (got {block_size}).")
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens must be at least 1 (got {max_new_tokens}).")
    if batch_size < 1:
        raise UserError(f"The batch size must be at least 1 (got {batch_size}).")
    if limit is not None and limit < 1:
        raise UserError(f"The limit must be at least 1 prompt (got {limit}).")
    rows = rows[:limit] if limit else rows
    missing = next((i for i, row in enumerate(rows, 1) if labels and not row.get("answer")), None)
    if missing:
        raise UserError(f"--labels needs an 'answer' field in every record, and record {missing} has none.")
    if not rows:
        raise UserError("The data set is empty: there is nothing to collect.")
    k, n = shard
    if not 0 <= k < n:
        raise UserError(f"Shard {k}/{n} does not exist: use k/n with 0 <= k < n.")
    mine = [(i, row) for i, row in enumerate(rows) if i % n == k]
    check_writable(out_path, "The trajectory file")
    with sole_writer(out_path):
        return append_records(model, tokenizer, mine, out_path, block_size=block_size, max_new_tokens=max_new_tokens,
                              augment=augment, labels=labels, seed=seed, batch_size=batch_size, progress=progress,
                              on_skip=on_skip)


def warn_skipped(row: int, reason: str) -> None:
    print(f"warning: row {row} of the data set skipped: {reason}", file=sys.stderr)


def append_records(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, mine: list[tuple[int, dict]],
                   out_path: str, *, block_size: int, max_new_tokens: int, augment: bool, labels: bool, seed: int,
                   batch_size: int, progress: Callable[[int, int], None] | None,
                   on_skip: Callable[[int, str], None] | None) -> int:
    """collect_trajectories' loop, run while holding the output's lock: batch_size prompts at a time."""
    done = finished_ids(out_path)
    todo = [(i, row) for i, row in mine if f"data_{i}" not in done]
    written, count = 0, len(mine) - len(todo)
    results = decode_prompts(model, tokenizer, todo, block_size=block_size, max_new_tokens=max_new_tokens, seed=seed,
                             batch_size=batch_size)
    with open(out_path, "a", encoding="utf-8") as f:
        for (i, row), result in zip(todo, results):
            records = []
            if isinstance(result, str):
                (on_skip or warn_skipped)(i + 1, result)
            else:
                records = prompt_records(tokenizer, row, i, result, block_size=block_size, labels=labels,
                                         do_augment=augment, seed=seed)
            f.write("".join(json.dumps(r) + "\n" for r in records))
            f.flush()
            written += len(records)
            count += 1
            if progress:
                progress(count, len(mine))
    return written


def part_path(path: str, k: int, n: int) -> str:
    """Where process k of n writes its share of `path`: traj.jsonl -> traj.part0-of-2.jsonl."""
    root, ext = os.path.splitext(path)
    return f"{root}.part{k}-of-{n}{ext}"


PART = re.compile(r"\.part(\d+)-of-(\d+)(\.[^.]*)?$")


def merge_trajectories(parts: list[str], out_path: str) -> tuple[int, int]:
    """Merge trajectory files (the parts of a sharded collection) into out_path, in data-set order.

    Only prompts whose records are all on disk are taken (as a resumed collection would). Refused in one
    sentence: a missing or unreadable part, a part of a k-of-n set that is not there, records of one prompt
    in two parts that differ, parts from different tokenizers or block sizes, an output that is an input.
    Returns (records written, prompts).
    """
    if not parts:
        raise UserError("Give the trajectory files to merge.")
    if os.path.abspath(out_path) in {os.path.abspath(p) for p in parts}:
        raise UserError(f"The merged file {out_path!r} is also one of the parts: give a new file name.")
    check_writable(out_path, "The merged trajectory file")
    sets = {}
    for path in parts:
        if not os.path.isfile(path):
            raise UserError(f"Trajectory file {path!r} does not exist.")
        match = PART.search(path)
        if match:
            sets.setdefault((PART.sub("", path), int(match[2])), set()).add(int(match[1]))
    for (stem, n), have in sets.items():
        missing = sorted(set(range(n)) - have)
        if missing:
            raise UserError(f"Part {missing[0]} of {n} of {stem!r} is missing: give every part "
                            f"({', '.join(part_path(stem, k, n) for k in missing)}).")
    by_prompt: dict[str, tuple[str, list[dict]]] = {}
    for path in parts:
        with sole_writer(path):
            done = finished_ids(path)
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        grouped: dict[str, list[dict]] = {}
        for r in records:
            if r["data_id"] in done:
                grouped.setdefault(r["data_id"], []).append(r)
        for data_id, rs in grouped.items():
            if data_id in by_prompt and by_prompt[data_id][1] != rs:
                raise UserError(f"Prompt {data_id} is in {by_prompt[data_id][0]!r} and in {path!r} with different "
                                f"records: these files come from different collections.")
            by_prompt.setdefault(data_id, (path, rs))
    merged = [r for _, (_, rs) in sorted(by_prompt.items(), key=lambda kv: int(kv[0].split("_")[1])) for r in rs]
    kinds = {(r.get("tokenizer"), r.get("block_size")) for r in merged}
    if len(kinds) > 1:
        raise UserError("The parts were collected with different tokenizers or block sizes: merge only the parts "
                        "of one collection.")
    with sole_writer(out_path):
        tmp = out_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(r) + "\n" for r in merged))
        os.replace(tmp, out_path)
    return len(merged), len(by_prompt)
