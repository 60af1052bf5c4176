"""Trajectory collection, consistency losses, training, resume and bad inputs (issue 3)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from model_utils.data import read_prompts
from model_utils.decoding import decode
from model_utils.errors import UserError
from model_utils.loading import encode_prompt, eos_ids, load_model
from model_utils.losses import consistency_loss, consistency_mask
from model_utils.train import TrainConfig, TrajectoryDataset, last_complete_checkpoint, train
from model_utils.trajectories import collect_trajectories, finished_ids
from tiny import tiny_model, tiny_tokenizer

ROWS = [{"prompt": " ".join(f"w{(7 * i + 3 * k) % 90 + 3}" for k in range(5)), "answer": f"w{i + 10} w{i + 20}"}
        for i in range(6)]
BLOCK, MAX_NEW = 8, 24


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


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return save_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def loaded(base):
    return load_model(base, device="cpu")


@pytest.fixture(scope="module")
def trajectories(loaded, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("traj") / "traj.jsonl")
    collect_trajectories(*loaded, ROWS, path, block_size=BLOCK, max_new_tokens=MAX_NEW, labels=True)
    return path


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


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


def test_degenerate_records_are_dropped(tmp_path):
    from model_utils.trajectories import has_repeat
    assert has_repeat([5] * 10) and not has_repeat([5] * 9 + [6] + [5] * 9)


def test_phrase_loops_are_degenerate_and_ordinary_repeats_are_not():
    from model_utils.trajectories import LOOP_SPAN, is_degenerate, longest_loop
    phrase = [11, 12, 13, 14, 15]  # "the first day, " said over and over
    assert longest_loop([1, 2] + phrase * 4 + [3]) == 20
    assert is_degenerate([1, 2] + phrase * 4) and is_degenerate([7] * 10)
    assert not is_degenerate([1, 2] + phrase * 2 + [3])  # said twice: no loop
    assert not is_degenerate([4, 5] * 7 + [9])  # a 2-token phrase thrice is a loop, but 15 tokens < LOOP_SPAN
    assert LOOP_SPAN == 16 and is_degenerate([4, 5] * 8)
    long_phrase = list(range(100, 140))  # 40 tokens: longer than any phrase looked for
    assert not is_degenerate(long_phrase * 3)


def test_quality_guard_warns_when_loops_appear_or_the_format_falls(loaded):
    from model_utils.quality import QualityGuard
    model, tokenizer = loaded
    guard = QualityGuard(tokenizer, [row["prompt"] for row in ROWS[:2]], max_new_tokens=MAX_NEW)
    first = guard.check(model)
    assert first["n"] == 2 and first["warning"] is None and guard.check(model)["warning"] is None
    worse = first | {"collapsed": first["collapsed"] + 1}
    assert "loop over one phrase" in guard.warning(worse)
    assert "answer format fell" in guard.warning(first | {"format_rate": first["format_rate"] - 0.5})


def test_consistency_mask_starts_at_the_first_wrong_slot():
    state = torch.tensor([[7, 1, 2, 9, 4], [7, 1, 2, 3, 4]])
    fixed = torch.tensor([[7, 1, 2, 3, 4], [7, 1, 2, 3, 4]])
    keep = consistency_mask(state, fixed, prefix_len=torch.tensor([3, 3]), block_len=torch.tensor([5, 5]), seq_len=8)
    # row 0: first wrong slot 3 -> logits at 3+3-1=5 .. 3+5-2=6 predict slots 3 and 4
    assert keep[0].tolist() == [False] * 5 + [True, True, False]
    assert not keep[1].any()  # already at the fixed point: nothing to learn


def test_consistency_loss_is_soft_cross_entropy_with_stop_gradient():
    torch.manual_seed(0)
    student = torch.randn(2, 4, 6, requires_grad=True)
    target = torch.randn(2, 4, 6, requires_grad=True)
    keep = torch.tensor([[False, True, True, False], [False, False, True, False]])
    loss = consistency_loss(student, target, keep)
    ce = -(target.softmax(-1) * student.log_softmax(-1)).sum(-1)
    expected = ((ce[0, 1] + ce[0, 2]) / 2 + ce[1, 2]) / 2
    assert torch.allclose(loss, expected)
    loss.backward()
    assert target.grad is None and student.grad is not None
    assert student.grad[0, 0].abs().sum() == 0  # unkept positions get no gradient


def test_local_consistency_targets_the_next_state(trajectories):
    records = read(trajectories)
    item = TrajectoryDataset(records, "local", False, seed=0)[0]
    states = records[0]["answer_trajectory_ids"]
    j = states.index(item["state"])
    assert item["target"] == states[j + 1]
    assert TrajectoryDataset(records, "global", False, seed=0)[0]["target"] == states[-1]


def tokens_per_forward(model, tokenizer) -> float:
    results = [decode(model, encode_prompt(tokenizer, r["prompt"]), block_size=BLOCK, max_new_tokens=MAX_NEW,
                      eos_ids=eos_ids(model, tokenizer)) for r in ROWS]
    return sum(len(r.token_ids) for r in results) / sum(len(r.passes) for r in results)


def test_training_lowers_consistency_loss_and_raises_tokens_per_forward(base, loaded, trajectories, tmp_path):
    before = tokens_per_forward(*loaded)
    out = str(tmp_path / "cllm")
    train(TrainConfig(model=base, trajectories=trajectories, out=out, max_steps=120, lr=1e-2, batch_size=4,
                      ar_weight=1.0, device="cpu", save_steps=60))
    losses = [r["consistency"] for r in read(os.path.join(out, "log.jsonl")) if "consistency" in r]
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    after = tokens_per_forward(*load_model(out, device="cpu"))
    assert after > before + 0.3


def test_frozen_target_keeps_the_start_model_as_the_consistency_target(base, trajectories, tmp_path):
    out = str(tmp_path / "frozen")
    config = TrainConfig(model=base, trajectories=trajectories, out=out, max_steps=30, lr=1e-2, batch_size=4,
                         ar_weight=1.0, device="cpu", save_steps=30, frozen_target=True)
    train(config)
    start, trained = weights(base), weights(out)
    assert any(not torch.allclose(start[k], trained[k]) for k in start)  # the student moved
    from model_utils.train import ConsistencyTrainer
    teacher, _ = load_model(base, device="cpu")
    batch = {"target_ids": torch.tensor([[5, 6, 7]]), "target_mask": torch.ones(1, 3, dtype=torch.long)}
    trainer = ConsistencyTrainer.__new__(ConsistencyTrainer)
    trainer.target_model, trainer.reuse = teacher, True
    moved, _ = load_model(out, device="cpu")
    got = ConsistencyTrainer.target_logits(trainer, moved, batch, ar_logits=torch.zeros(1, 3, 1))
    assert torch.equal(got, teacher(input_ids=batch["target_ids"]).logits.detach())
    assert "frozen_target" in json.load(open(os.path.join(out, "train_config.json")))


class StopAt:
    def __init__(self, step):
        self.step, self.seen = step, 0

    def on_step(self, step, max_steps, losses):
        self.seen = step

    def should_stop(self):
        return self.seen >= self.step


def weights(path):
    model, _ = load_model(path, device="cpu")
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_cancel_then_resume_equals_an_uninterrupted_run(base, trajectories, tmp_path):
    common = dict(model=base, trajectories=trajectories, max_steps=8, lr=3e-3, batch_size=2, device="cpu",
                  save_steps=3)
    train(TrainConfig(out=str(tmp_path / "straight"), **common))
    out = str(tmp_path / "interrupted")
    train(TrainConfig(out=out, **common), callback=StopAt(5))  # cancel: saves checkpoint-5
    assert last_complete_checkpoint(os.path.join(out, "checkpoints")).endswith("checkpoint-5")
    os.makedirs(os.path.join(out, "checkpoints", "checkpoint-7"))  # a save torn by a kill
    train(TrainConfig(out=out, resume=True, **common))
    a, b = weights(str(tmp_path / "straight")), weights(out)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    steps = [r["step"] for r in read(os.path.join(out, "log.jsonl")) if "consistency" in r]
    assert steps == list(range(1, 9))


def test_accelerate_launch_runs_the_trainer(base, trajectories, tmp_path):
    out = str(tmp_path / "acc")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu", "-m",
           "model_utils.train", "--model", base, "--trajectories", trajectories, "--out", out, "--max-steps", "2",
           "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert os.path.exists(os.path.join(out, "model.safetensors"))


def test_bad_data_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_prompts(str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a"}\n{"question": \n')
    with pytest.raises(UserError, match="Line 2 .* not valid JSON"):
        read_prompts(str(bad))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(UserError, match="empty"):
        read_prompts(str(empty))
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"text": "a"}\n')
    with pytest.raises(UserError, match="'question' or 'prompt'"):
        read_prompts(str(nofield))


def test_collect_cli_refuses_bad_data_in_one_line(base, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    done = subprocess.run([sys.executable, "-m", "model_utils.collect", "--model", base, "--data", str(bad),
                           "--out", str(tmp_path / "t.jsonl"), "--device", "cpu"], capture_output=True, text=True)
    assert done.returncode == 2 and "not valid JSON" in done.stderr


def test_trajectories_from_another_tokenizer_are_refused(base, trajectories, tmp_path):
    other = tmp_path / "other"
    save_base(other)
    tok = tiny_tokenizer()
    tok.add_tokens(["extra"])
    tok.save_pretrained(other)
    with pytest.raises(UserError, match="another tokenizer"):
        train(TrainConfig(model=str(other), trajectories=trajectories, out=str(tmp_path / "o"), max_steps=1,
                          device="cpu"))


def test_block_size_mismatch_and_existing_output_are_refused(base, trajectories, tmp_path):
    with pytest.raises(UserError, match="block size 8"):
        train(TrainConfig(model=base, trajectories=trajectories, out=str(tmp_path / "a"), max_steps=1,
                          block_size=16, device="cpu"))
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(UserError, match="exists"):
        train(TrainConfig(model=base, trajectories=trajectories, out=str(out), max_steps=1, device="cpu"))
    assert (out / "keep.txt").read_text() == "precious"
    train(TrainConfig(model=base, trajectories=trajectories, out=str(out), max_steps=1, device="cpu", overwrite=True))
    assert not (out / "keep.txt").exists()


def test_empty_data_set_is_refused(loaded, tmp_path):
    with pytest.raises(UserError, match="empty"):
        collect_trajectories(*loaded, [], str(tmp_path / "t.jsonl"))


def test_ar_labels_can_skip_the_prompt(trajectories):
    from model_utils.train import collate
    records = read(trajectories)
    items = [TrajectoryDataset(records, "global", False, seed=0, mask_prompt=mask)[1] for mask in (False, True)]
    full, masked = (collate([it], pad_id=0)["ar_labels"][0] for it in items)
    n = records[1]["prompt_ids_len"]
    assert (full[:n] != -100).all() and (masked[:n] == -100).all() and torch.equal(full[n:], masked[n:])


def test_shards_together_collect_what_one_process_does(loaded, trajectories, tmp_path):
    parts = [str(tmp_path / f"part{k}.jsonl") for k in range(2)]
    for k, path in enumerate(parts):
        collect_trajectories(*loaded, ROWS, path, block_size=BLOCK, max_new_tokens=MAX_NEW, labels=True, shard=(k, 2))
    key = lambda r: (int(r["data_id"].split("_")[1]), r["jacobian_itr_id"])  # noqa: E731
    assert sorted(read(parts[0]) + read(parts[1]), key=key) == sorted(read(trajectories), key=key)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without a GPU")
def test_pretrain_on_cuda_without_a_gpu_stops_before_any_work(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "model_utils.pretrain", "--device", "cuda", "--work", str(tmp_path / "w"),
                           "--out", str(tmp_path / "m")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no CUDA GPU is visible" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "w").exists()
