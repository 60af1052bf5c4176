"""The consistency trainer: it learns, resumes after a cancel, keeps a frozen target, runs under accelerate,
and refuses bad inputs in one sentence."""
import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import BLOCK, MAX_NEW, ROWS, read, save_base

from model_utils.data import read_prompts
from model_utils.decoding import decode
from model_utils.errors import UserError
from model_utils.loading import encode_prompt, eos_ids, load_model
from model_utils.tiny_models import tiny_tokenizer
from model_utils.train import ConsistencyTrainer, TrainConfig, last_complete_checkpoint, train


def tokens_per_forward(model, tokenizer) -> float:
    results = [decode(model, encode_prompt(tokenizer, r["prompt"]), block_size=BLOCK, max_new_tokens=MAX_NEW,
                      eos_ids=eos_ids(model, tokenizer)) for r in ROWS]
    return sum(len(r.token_ids) for r in results) / sum(len(r.passes) for r in results)


def weights(path):
    model, _ = load_model(path, device="cpu")
    return {k: v.clone() for k, v in model.state_dict().items()}


class StopAt:
    def __init__(self, step):
        self.step, self.seen = step, 0

    def on_step(self, step, max_steps, losses):
        self.seen = step

    def should_stop(self):
        return self.seen >= self.step


@pytest.mark.slow
def test_training_lowers_consistency_loss_and_raises_tokens_per_forward(base, loaded, trajectories, tmp_path):
    before = tokens_per_forward(*loaded)
    out = str(tmp_path / "cllm")
    train(TrainConfig(model=base, trajectories=trajectories, out=out, max_steps=120, lr=1e-2, batch_size=4,
                      ar_weight=1.0, device="cpu", save_steps=60))
    losses = [r["consistency"] for r in read(os.path.join(out, "log.jsonl")) if "consistency" in r]
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    after = tokens_per_forward(*load_model(out, device="cpu"))
    assert after > before + 0.3


@pytest.mark.slow
def test_frozen_target_keeps_the_start_model_as_the_consistency_target(base, trajectories, tmp_path):
    out = str(tmp_path / "frozen")
    config = TrainConfig(model=base, trajectories=trajectories, out=out, max_steps=30, lr=1e-2, batch_size=4,
                         ar_weight=1.0, device="cpu", save_steps=30, frozen_target=True)
    train(config)
    start, trained = weights(base), weights(out)
    assert any(not torch.allclose(start[k], trained[k]) for k in start)  # the student moved
    teacher, _ = load_model(base, device="cpu")
    batch = {"target_ids": torch.tensor([[5, 6, 7]]), "target_mask": torch.ones(1, 3, dtype=torch.long)}
    trainer = ConsistencyTrainer.__new__(ConsistencyTrainer)
    trainer.target_model, trainer.reuse = teacher, True
    moved, _ = load_model(out, device="cpu")
    got = ConsistencyTrainer.target_logits(trainer, moved, batch, ar_logits=torch.zeros(1, 3, 1))
    assert torch.equal(got, teacher(input_ids=batch["target_ids"]).logits.detach())
    with open(os.path.join(out, "train_config.json")) as f:
        assert "frozen_target" in json.load(f)


@pytest.mark.slow
def test_cancel_then_resume_equals_an_uninterrupted_run(base, trajectories, tmp_path):
    common = dict(model=base, trajectories=trajectories, max_steps=8, lr=3e-3, batch_size=2, device="cpu",
                  save_steps=3)
    train(TrainConfig(out=str(tmp_path / "straight"), **common))
    out = str(tmp_path / "interrupted")
    train(TrainConfig(out=out, **common), callback=StopAt(5))  # cancel: saves checkpoint-5
    assert last_complete_checkpoint(os.path.join(out, "checkpoints")).endswith("checkpoint-5")
    assert os.listdir(os.path.join(out, "checkpoints")) == ["checkpoint-5"]  # one optimizer state: the latest's
    os.makedirs(os.path.join(out, "checkpoints", "checkpoint-7"))  # a save torn by a kill
    train(TrainConfig(out=out, resume=True, **common))
    a, b = weights(str(tmp_path / "straight")), weights(out)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    steps = [r["step"] for r in read(os.path.join(out, "log.jsonl")) if "consistency" in r]
    assert steps == list(range(1, 9))


@pytest.mark.slow
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


def test_each_log_row_covers_every_micro_batch_of_its_step(base, trajectories, tmp_path):
    out = str(tmp_path / "accum")
    train(TrainConfig(model=base, trajectories=trajectories, out=out, max_steps=2, batch_size=2, grad_accum=3,
                      lr=1e-3, device="cpu", save_steps=2))
    rows = [r for r in read(os.path.join(out, "log.jsonl")) if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2] and all(len(r["records"]) == 6 for r in rows)
