"""Trajectory collection: the record schema, resume, shards, degenerate blocks dropped, bad data refused."""
import json
import subprocess
import sys

import pytest
import torch
from helpers import BLOCK, MAX_NEW, ROWS, read

from model_utils import collect
from model_utils.decoding import decode
from model_utils.errors import UserError
from model_utils.loading import encode_prompt, eos_ids
from model_utils.quality import is_degenerate
from model_utils.tiny_models import tiny_model, tiny_tokenizer
from model_utils.trajectories import collect_trajectories, finished_ids, merge_trajectories


def test_records_follow_the_reference_schema(loaded, trajectories):
    model, tokenizer = loaded
    records = read(trajectories)
    assert {r["data_id"] for r in records} == {f"data_{i}" for i in range(len(ROWS))}
    for r in records:
        prefix, states = r["prompt_ids"], r["answer_trajectory_ids"]
        fixed = r["teacher_output_ids"][len(prefix):]
        assert states[-1] == fixed and all(len(s) == len(fixed) for s in states)
        assert r["teacher_output_ids"][:len(prefix)] == prefix
        assert r["labels_ids"][:r["prompt_ids_len"]] == prefix[:r["prompt_ids_len"]]
    # the blocks of a prompt chain into its greedy output
    first = [r for r in records if r["data_id"] == "data_0"]
    prompt = encode_prompt(tokenizer, ROWS[0]["prompt"])
    greedy = decode(model, prompt, decoder="ar", max_new_tokens=MAX_NEW, eos_ids=eos_ids(model, tokenizer))
    assert first[-1]["teacher_output_ids"] == (prompt + greedy.token_ids)[:len(first[-1]["teacher_output_ids"])]
    assert [r["jacobian_itr_id"] for r in first] == [f"itr_{k}" for k in range(len(first))]


def test_collection_resumes_without_duplicates(loaded, tmp_path):
    path = str(tmp_path / "traj.jsonl")
    collect_trajectories(*loaded, ROWS[:3], path, block_size=BLOCK, max_new_tokens=MAX_NEW)
    with open(path, "a") as f:  # a run killed mid-write leaves a torn line
        f.write('{"data_id": "data_3", "jacobian_itr_id": "itr_0", "prompt_')
    assert finished_ids(path) == {"data_0", "data_1", "data_2"}
    collect_trajectories(*loaded, ROWS, path, block_size=BLOCK, max_new_tokens=MAX_NEW)
    once = str(tmp_path / "once.jsonl")
    collect_trajectories(*loaded, ROWS, once, block_size=BLOCK, max_new_tokens=MAX_NEW)
    assert read(path) == read(once)


def test_resume_skips_prompts_whose_last_block_was_dropped(loaded, tmp_path, monkeypatch):
    from model_utils import trajectories
    monkeypatch.setattr(trajectories, "is_degenerate", lambda ids: len(ids) > MAX_NEW - BLOCK // 2)
    path = str(tmp_path / "traj.jsonl")
    first = collect_trajectories(*loaded, ROWS, path, block_size=BLOCK, max_new_tokens=MAX_NEW)
    records = read(path)
    assert first == len(records) > 0 and all(r["jacobian_itr_id"] != f"itr_{MAX_NEW // BLOCK - 1}" for r in records)
    assert finished_ids(path) == {f"data_{i}" for i in range(len(ROWS))}
    assert collect_trajectories(*loaded, ROWS, path, block_size=BLOCK, max_new_tokens=MAX_NEW) == 0


def one_token_model():
    """A tiny Llama that says token 0 over and over: its final norm is zeroed, so every logit is 0."""
    model = tiny_model("llama", dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    return model, tiny_tokenizer()


def test_degenerate_records_are_dropped(tmp_path):
    model, tokenizer = one_token_model()
    prompt = encode_prompt(tokenizer, ROWS[0]["prompt"])
    output = decode(model, prompt, decoder="ar", max_new_tokens=MAX_NEW).token_ids
    assert output == [0] * MAX_NEW and is_degenerate(output) and not is_degenerate(output[:BLOCK])
    path = str(tmp_path / "traj.jsonl")
    written = collect_trajectories(model, tokenizer, ROWS[:2], path, block_size=BLOCK, max_new_tokens=MAX_NEW)
    records = read(path)
    # block 0 (8 repeats) is kept; from block 1 on the output repeats one token 10+ times, so collection stops
    assert written == len(records) == 2
    assert [(r["data_id"], r["jacobian_itr_id"], r["last_block"]) for r in records] == [
        ("data_0", "itr_0", True), ("data_1", "itr_0", True)]
    assert not any(is_degenerate(r["teacher_output_ids"][r["prompt_ids_len"]:]) for r in records)
    assert finished_ids(path) == {"data_0", "data_1"}  # dropping the rest still finishes the prompt


def test_collect_cli_refuses_bad_data_in_one_line(base, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    done = subprocess.run([sys.executable, "-m", "model_utils.collect", "--model", base, "--data", str(bad),
                           "--out", str(tmp_path / "t.jsonl"), "--device", "cpu"], capture_output=True, text=True)
    assert done.returncode == 2 and "not valid JSON" in done.stderr


def test_empty_data_set_is_refused(loaded, tmp_path):
    with pytest.raises(UserError, match="empty"):
        collect_trajectories(*loaded, [], str(tmp_path / "t.jsonl"))


def test_shards_together_collect_what_one_process_does(loaded, trajectories, tmp_path):
    parts = [str(tmp_path / f"part{k}.jsonl") for k in range(2)]
    for k, path in enumerate(parts):
        collect_trajectories(*loaded, ROWS, path, block_size=BLOCK, max_new_tokens=MAX_NEW, labels=True, shard=(k, 2))
    key = lambda r: (int(r["data_id"].split("_")[1]), r["jacobian_itr_id"])  # noqa: E731
    assert sorted(read(parts[0]) + read(parts[1]), key=key) == sorted(read(trajectories), key=key)


def test_batched_collection_writes_the_records_of_one_at_a_time(loaded, trajectories, tmp_path):
    path = str(tmp_path / "batched.jsonl")
    collect_trajectories(*loaded, ROWS, path, block_size=BLOCK, max_new_tokens=MAX_NEW, labels=True, batch_size=4)
    assert open(path).read() == open(trajectories).read()


def test_a_row_over_the_context_is_skipped_in_a_batch_and_the_rest_collected(loaded, tmp_path):
    rows = ROWS[:3] + [{"prompt": " ".join(["w5"] * 200), "answer": "w9"}]
    skipped = []
    path = str(tmp_path / "t.jsonl")
    collect_trajectories(*loaded, rows, path, block_size=BLOCK, max_new_tokens=MAX_NEW, batch_size=4,
                         on_skip=lambda row, why: skipped.append((row, why)))
    assert [row for row, _ in skipped] == [4] and "context" in skipped[0][1]
    assert {r["data_id"] for r in read(path)} == {"data_0", "data_1", "data_2"}


def test_merge_refuses_a_missing_part_a_conflict_and_mixed_collections(loaded, trajectories, tmp_path):
    parts = [str(tmp_path / f"t.part{k}-of-2.jsonl") for k in range(2)]
    for k, path in enumerate(parts):
        collect_trajectories(*loaded, ROWS, path, block_size=BLOCK, max_new_tokens=MAX_NEW, labels=True, shard=(k, 2))
    out = str(tmp_path / "merged.jsonl")
    with pytest.raises(UserError, match="Part 1 of 2 .* is missing"):
        merge_trajectories(parts[:1], out)
    assert merge_trajectories(parts + [trajectories], out)[1] == len({r["data_id"] for r in read(trajectories)})
    assert open(out).read() == open(trajectories).read()  # overlapping identical records are kept once
    other = str(tmp_path / "other.jsonl")
    collect_trajectories(*loaded, ROWS, other, block_size=BLOCK, max_new_tokens=MAX_NEW, labels=True, seed=7)
    with pytest.raises(UserError, match="different records"):
        merge_trajectories([trajectories, other], out)
    with pytest.raises(UserError, match="also one of the parts"):
        merge_trajectories(parts, parts[0])
    with pytest.raises(UserError, match="does not exist"):
        merge_trajectories([str(tmp_path / "nope.jsonl")], out)


def test_merge_takes_only_finished_prompts_of_a_torn_part(trajectories, tmp_path):
    torn = tmp_path / "torn.jsonl"
    lines = open(trajectories).read().splitlines(keepends=True)
    torn.write_text("".join(lines[:-1]) + lines[-1][:20])  # killed while writing the last record
    out = str(tmp_path / "merged.jsonl")
    _, prompts = merge_trajectories([str(torn)], out)
    finished = {r["data_id"] for r in read(trajectories)} - {json.loads(lines[-1])["data_id"]}
    assert prompts == len(finished) and {r["data_id"] for r in read(out)} == finished


def test_a_shard_under_a_launcher_is_refused_in_one_sentence(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert collect.main(["--model", "tiny-arith-base", "--data", "x.jsonl", "--out", str(tmp_path / "t.jsonl"),
                         "--shard", "0/2"]) == 2
    err = capsys.readouterr().err
    assert "--shard is taken from the process rank" in err and len(err.strip().splitlines()) == 1
