"""Bad input at the edges: one clear sentence (exit 2 on the command line), never a traceback or a wrong success."""
import json
import os

import pytest
import torch

from model_utils.data import read_prompts
from model_utils.errors import UserError
from model_utils.loading import encode_prompt, load_model
from model_utils.tiny_models import tiny_model, tiny_tokenizer
from model_utils.train import TrainConfig, record_problem, train


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("llama")
    tiny_model("llama", dtype=torch.float32).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00binary\x00", "not UTF-8"),
    ('{"question": "caf\u00e9"}\n'.encode("latin-1"), "not UTF-8"),
])
def test_non_utf8_data_files_are_one_sentence(tmp_path, content, message):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_prompts(str(path))


def test_a_folder_as_data_file_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="is a folder"):
        read_prompts(str(tmp_path))


@pytest.mark.parametrize("prompt", ["w5 \udcff w6", None])
def test_prompts_that_are_not_text_are_refused(prompt):
    with pytest.raises(UserError, match="not valid Unicode|empty"):
        encode_prompt(tiny_tokenizer(), prompt)


def test_a_model_folder_without_weights_is_one_sentence(saved, tmp_path):
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes(open(os.path.join(saved, name), "rb").read())
    with pytest.raises(UserError, match="weights .* could not be read"):
        load_model(str(tmp_path), device="cpu")


def test_a_truncated_weights_file_is_one_sentence(saved, tmp_path):
    for name in os.listdir(saved):
        data = open(os.path.join(saved, name), "rb").read()
        (tmp_path / name).write_bytes(data[: len(data) // 2] if name == "model.safetensors" else data)
    with pytest.raises(UserError, match="weights .* could not be read"):
        load_model(str(tmp_path), device="cpu")


def test_a_random_bert_language_model_head_is_refused_by_its_declared_kind(tmp_path):
    """Small random weights make a bidirectional model look causal to a numeric probe; its config says otherwise."""
    from transformers import BertConfig, BertLMHeadModel
    BertLMHeadModel(BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, initializer_range=1e-4)).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(UserError, match="not a causal"):
        load_model(str(tmp_path), device="cpu")


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "batch size"), ("grad_accum", 0, "accumulation"), ("lr", float("nan"), "learning rate"),
    ("warmup", -5, "warmup"), ("epochs", 0, "epochs"), ("max_steps", 0, "max-steps"),
    ("label_smoothing", 1.0, "smoothing"), ("consistency", "other", "global or local"),
])
def test_training_numbers_are_checked_where_the_config_is_built(field, value, message):
    with pytest.raises(UserError, match=message):
        TrainConfig(model="m", trajectories="t", out="o", **{field: value})


GOOD = {"prompt_ids": [5, 6], "answer_trajectory_ids": [[7, 8], [9, 8]], "teacher_output_ids": [5, 6, 9, 8],
        "prompt_ids_len": 2}


@pytest.mark.parametrize("change, message", [
    ({"answer_trajectory_ids": [[]]}, "empty state"), ({"answer_trajectory_ids": [[7, "x"]]}, "not an integer"),
    ({"answer_trajectory_ids": [[7, 999]]}, "vocabulary"), ({"teacher_output_ids": None}, "teacher_output_ids"),
    ({"answer_trajectory_ids": [[7, 8], [9]]}, "different lengths"), ({"prompt_ids_len": "2"}, "prompt_ids_len"),
])
def test_bad_trajectory_records_are_named(change, message):
    assert record_problem(GOOD, 96, gt_labels=False) is None
    assert message in record_problem(GOOD | change, 96, gt_labels=False)


def test_bad_records_leave_nothing_that_blocks_the_rerun(saved, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOOD | {"answer_trajectory_ids": [[7, 999]], "tokenizer": "x"}) + "\n")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="Record 1"):
        train(TrainConfig(model=saved, trajectories=str(bad), out=str(out), max_steps=2, device="cpu"))
    assert not out.exists()


def cli(module: str, *args: str) -> tuple[int, str]:
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--shard", "abc"], "is not k/n"), (["--shard", "0/0"], "does not exist"), (["--limit", "-1"], "at least 1"),
])
def test_collect_arguments_are_checked(tmp_path, args, message):
    code, err = cli("model_utils.collect", "--model", "m", "--data", "d", "--out", str(tmp_path / "o"), *args)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["--port", "99999"], "not a port"), (["--port", "-1"], "not a port"), (["--host", "999.1.1.1"], "not an IP"),
    (["--load-in-4bit", "--load-in-8bit"], "not allowed with"),
])
def test_app_launch_arguments_are_checked(args, message):
    code, err = cli("app", *args)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "at least 1"), (["--hidden", "256", "--heads", "3"], "not a multiple"),
    (["--max-steps", "0"], "at least 1"),
])
def test_pretrain_arguments_are_checked_before_any_work(tmp_path, args, message):
    code, err = cli("recipe.pretrain", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"),
                    "--heldout", str(tmp_path / "h.jsonl"), *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "h.jsonl").exists() and not (tmp_path / "w").exists()


def test_bench_refuses_an_unwritable_json_before_running(tmp_path):
    (tmp_path / "file").write_text("x")
    code, err = cli("bench.speed", "--json", str(tmp_path / "file" / "out.json"))  # would take minutes to run
    assert code == 2 and "is a file" in err and "Traceback" not in err


@pytest.mark.slow
def test_resuming_a_finished_run_changes_nothing(saved, tmp_path):
    from model_utils.trajectories import collect_trajectories
    model, tokenizer = load_model(saved, device="cpu")
    rows = [{"prompt": f"w{i + 5} w{i + 9} w{i + 20}"} for i in range(4)]
    trajectories = str(tmp_path / "traj.jsonl")
    collect_trajectories(model, tokenizer, rows, trajectories, block_size=4, max_new_tokens=12)
    config = dict(model=saved, trajectories=trajectories, out=str(tmp_path / "out"), max_steps=3, save_steps=2,
                  device="cpu", lr=1e-3)
    train(TrainConfig(**config))
    files = ("log.jsonl", "model.safetensors")
    before = {name: (tmp_path / "out" / name).read_bytes() for name in files}
    for _ in range(2):
        train(TrainConfig(**config, resume=True))
    assert {name: (tmp_path / "out" / name).read_bytes() for name in files} == before
    assert len((tmp_path / "out" / "log.jsonl").read_text().splitlines()) == 3


def test_an_unreachable_hub_is_one_quick_sentence(monkeypatch):
    import socket

    import huggingface_hub

    def no_dns(*args, **kwargs):
        raise socket.gaierror("Name or service not known")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(UserError, match="cannot be reached"):  # at once, without huggingface_hub's retries
        load_model("someone/not-downloaded-model", device="cpu")


def hold_lock(path: str):
    """Another process that holds path's writer lock until killed."""
    import subprocess
    import sys
    code = (f"import time; from model_utils.locks import sole_writer\n"
            f"with sole_writer({path!r}):\n    print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_and_a_killed_one_blocks_nothing(saved, tmp_path):
    from model_utils.trajectories import collect_trajectories
    model, tokenizer = load_model(saved, device="cpu")
    rows = [{"prompt": "w5 w9 w20"}, {"prompt": "w6 w10 w21"}]
    out = str(tmp_path / "traj.jsonl")
    holder = hold_lock(out)
    try:
        with pytest.raises(UserError, match="being written by another run"):
            collect_trajectories(model, tokenizer, rows, out, block_size=4, max_new_tokens=8)
        with pytest.raises(UserError, match="being written by another run"):
            train(TrainConfig(model=saved, trajectories=out, out=out, max_steps=1, device="cpu"))
    finally:
        holder.kill()  # kill -9: the OS drops its lock
        holder.wait()
    assert collect_trajectories(model, tokenizer, rows, out, block_size=4, max_new_tokens=8) > 0


def test_a_row_that_can_never_pass_is_skipped_and_named(saved, tmp_path):
    from model_utils.trajectories import collect_trajectories
    model, tokenizer = load_model(saved, device="cpu")
    rows = [{"prompt": "w5 w9 w20"}, {"prompt": " ".join(["w7"] * 200)}, {"prompt": "w6 w10 w21"}]
    skipped = []
    out = tmp_path / "traj.jsonl"
    collect_trajectories(model, tokenizer, rows, str(out), block_size=4, max_new_tokens=8,
                         on_skip=lambda row, reason: skipped.append((row, reason)))
    assert [row for row, _ in skipped] == [2] and "context" in skipped[0][1]
    ids = {json.loads(line)["data_id"] for line in out.read_text().splitlines()}
    assert ids == {"data_0", "data_2"}


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.write_text("just some notes\n"), "not a trajectory file"),
])
def test_a_collection_output_that_is_no_trajectory_file_is_refused(saved, tmp_path, make, message):
    from model_utils.trajectories import collect_trajectories
    out = tmp_path / "out.jsonl"
    make(out)
    model, tokenizer = load_model(saved, device="cpu")
    with pytest.raises(UserError, match=message):
        collect_trajectories(model, tokenizer, [{"prompt": "w5 w6"}], str(out), block_size=4, max_new_tokens=4)


def test_outputs_under_a_file_are_refused_before_any_work(saved, tmp_path):
    from model_utils.trajectories import collect_trajectories
    (tmp_path / "file").write_text("x")
    model, tokenizer = load_model(saved, device="cpu")
    with pytest.raises(UserError, match="is a file"):
        collect_trajectories(model, tokenizer, [{"prompt": "w5 w6"}], str(tmp_path / "file" / "t.jsonl"))
    with pytest.raises(UserError, match="is a file"):
        train(TrainConfig(model=saved, trajectories="t.jsonl", out=str(tmp_path / "file"), device="cpu"))
    with pytest.raises(UserError, match="is a file"):
        train(TrainConfig(model=saved, trajectories="t.jsonl", out=str(tmp_path / "file" / "run"), device="cpu"))


@pytest.mark.parametrize("options, rows, message", [
    ({"max_new_tokens": 0}, [{"prompt": "w5 w6"}], "max_new_tokens must be at least 1"),
    ({"labels": True}, [{"prompt": "w5 w6", "answer": "w7"}, {"prompt": "w8"}], "record 2 has none"),
])
def test_collection_settings_that_fail_every_row_are_refused_not_skipped(saved, tmp_path, options, rows, message):
    from model_utils.trajectories import collect_trajectories
    model, tokenizer = load_model(saved, device="cpu")
    with pytest.raises(UserError, match=message):
        collect_trajectories(model, tokenizer, rows, str(tmp_path / "t.jsonl"), block_size=4, **options)


@pytest.mark.parametrize("config", [None, "{oops"])
def test_a_folder_without_a_readable_config_is_named_as_such(tmp_path, config):
    if config is not None:
        (tmp_path / "config.json").write_text(config)
    with pytest.raises(UserError, match="holds no readable model config.json"):
        load_model(str(tmp_path), device="cpu")


@pytest.mark.parametrize("module, args, message", [
    ("model_utils.generate", ["--seed", "1e20"], "not a whole number"),
    ("model_utils.generate", ["--seed", "-1"], "a seed must be from 0 to 4294967295"),
    ("model_utils.generate", ["--seed", str(2**32)], "a seed must be from 0"),
    ("model_utils.generate", ["--threads", "100000"], "the thread count"),
    ("model_utils.generate", ["--top-p", "5"], "top-p must be above 0 and at most 1"),
    ("model_utils.generate", ["--top-p", "0"], "top-p must be above 0"),
    ("model_utils.generate", ["--top-k", "-5"], "top-k must be from 0"),
    ("model_utils.generate", ["--temperature", "1e-308"], "a temperature must be 0 (greedy) or at least"),
    ("model_utils.generate", ["--decoder", "ar", "--block-size", "-5"], "the block size must be from 1"),
    ("model_utils.collect", ["--data", "x", "--out", "y", "--seed", "-1"], "a seed must be from 0"),
    ("model_utils.train", ["--trajectories", "x", "--out", "y", "--seed", "99999999999"], "a seed must be from 0"),
    ("app", ["--threads", "100000"], "the thread count"),
])
def test_numbers_out_of_range_are_refused_where_they_are_parsed(module, args, message):
    import subprocess
    import sys
    model = [] if module == "app" else ["--model", "tiny-arith-cllm"]
    done = subprocess.run([sys.executable, "-m", module, *model, *args], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=120)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_training_seed_out_of_range_is_one_sentence(seed):
    with pytest.raises(UserError, match="seed must be from 0 to 2\\*\\*32 - 1"):
        TrainConfig(model="m", trajectories="t", out="o", seed=seed)
