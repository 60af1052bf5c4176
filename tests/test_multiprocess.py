"""Consistency training on two processes (accelerate launch with the shipped DDP config, gloo on the CPU) trains
what one process trains."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from helpers import BLOCK, MAX_NEW, ROOT, ROWS, free_port
from safetensors.torch import load_file

pytestmark = pytest.mark.slow  # several processes each: about a minute in all
STEPS = 4


def launch(processes: int, *args: str) -> subprocess.CompletedProcess:
    """python -m … on `processes` processes through accelerate launch and the shipped DDP config."""
    if processes > 1:
        args = ("-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/ddp.yaml",
                "--num_processes", str(processes), "--main_process_port", str(free_port()), *args)
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def train(base: str, trajectories: str, out, processes: int, *extra: str) -> None:
    """The same global batch of 2: one process × 2 records, or two processes × 1 record each."""
    args = ["-m", "model_utils.train", "--model", base, "--trajectories", trajectories, "--out", str(out),
            "--max-steps", str(STEPS), "--save-steps", "2", "--keep-checkpoints", "2", "--lr", "1e-3",
            "--device", "cpu", "--batch-size", str(2 // processes), *extra]
    launch(processes, *args)


def log(out) -> list[dict]:
    with open(os.path.join(out, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def weights(out) -> dict:
    return load_file(os.path.join(out, "model.safetensors"))


def test_two_processes_train_the_records_one_process_trains_and_resume(base, trajectories, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    train(base, trajectories, one, 1)
    train(base, trajectories, two, 2)
    with open(two / "finished.json") as f:
        assert json.load(f) == {"steps": STEPS, "processes": 2}
    log_one, log_two = log(one), log(two)
    assert [r["step"] for r in log_two] == list(range(1, STEPS + 1))  # the main process alone wrote the log
    for a, b in zip(log_one, log_two):
        assert b["records"] == a["records"] and len(set(b["records"])) == 2  # each process its own record
        assert b["loss"] == pytest.approx(a["loss"], rel=0.05)
        assert b["consistency"] == pytest.approx(a["consistency"], rel=0.05)
    w_start, w_one, w_two = weights(base), weights(one), weights(two)
    moved_one = torch.cat([(w_one[k] - w_start[k]).flatten() for k in w_start])
    moved_two = torch.cat([(w_two[k] - w_start[k]).flatten() for k in w_start])
    assert (moved_one - moved_two).norm() / moved_one.norm() < 0.3  # the same updates (measured: 0.12)

    # a kill after the step-2 checkpoint: the two-process run resumes and ends where it would have
    resumed = tmp_path / "resumed"
    shutil.copytree(two, resumed)
    shutil.rmtree(resumed / "checkpoints" / f"checkpoint-{STEPS}")
    for name in ("finished.json", "model.safetensors"):
        os.remove(resumed / name)
    train(base, trajectories, resumed, 2, "--resume")
    w_resumed = weights(resumed)
    assert all((w_resumed[k] == w_two[k]).all() for k in w_two)
    assert [r["records"] for r in log(resumed)] == [r["records"] for r in log_two]


def test_collection_on_two_processes_merged_equals_one_process(base, trajectories, tmp_path):
    data, out = tmp_path / "rows.jsonl", tmp_path / "traj.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    done = launch(2, "-m", "model_utils.collect", "--model", base, "--data", str(data), "--out", str(out),
                  "--block-size", str(BLOCK), "--max-new-tokens", str(MAX_NEW), "--labels", "--device", "cpu",
                  "--batch-size", "2")
    parts = [tmp_path / f"traj.part{k}-of-2.jsonl" for k in range(2)]
    assert all(p.stat().st_size for p in parts) and not out.exists()
    ids = [{json.loads(line)["data_id"] for line in p.read_text().splitlines()} for p in parts]
    assert ids[0] and ids[1] and not ids[0] & ids[1]  # each process its own prompts
    assert "python -m model_utils.merge" in done.stderr
    launch(1, "-m", "model_utils.merge", "--out", str(out), *map(str, parts))
    assert out.read_text() == open(trajectories).read()  # the same records, in the same order
