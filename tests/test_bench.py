"""bench.speed, bench.accuracy and bench.plot on tiny random models: JSON contracts, scoring, errors."""
import json
import subprocess
import sys

import plotly.graph_objects as go
import pytest
import torch

from bench import accuracy, device_check, plot, precision, speed, throughput
from bench.accuracy import rates, run_accuracy, score
from model_utils.errors import UserError
from model_utils.loading import load_model
from model_utils.tiny_models import tiny_model, tiny_tokenizer

PROBLEMS = [
    {"question": "w5 w9 w11", "answer": "so #### 3", "template": "a", "seen": True},
    {"question": "w7 w7 w8 w20", "answer": "#### 1,000", "template": "b", "seen": False},
    {"prompt": "w30 w31 w30 w31", "answer": "#### 12", "template": "b", "seen": False},
]
ARGS = ["--block-size", "4", "--max-new-tokens", "12", "--device", "cpu", "--dtype", "float64"]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def models(tmp):
    """Two different float32 tiny llamas on disk, loaded in float64 so AR and Jacobi agree exactly."""
    paths = {}
    for name, seed in (("base", 0), ("cllm", 1)):
        tiny_model("llama", seed=seed, dtype=torch.float32).save_pretrained(tmp / name)
        tiny_tokenizer().save_pretrained(tmp / name)
        paths[name] = str(tmp / name)
    return paths


@pytest.fixture(scope="module")
def prompts(tmp):
    path = tmp / "problems.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return str(path)


@pytest.fixture(scope="module")
def speed_run(models, prompts, tmp):
    out = tmp / "speed.json"
    proc = subprocess.run([sys.executable, "-m", "bench.speed", "--base", models["base"], "--cllm", models["cllm"],
                           "--prompts", prompts, *ARGS, "--json", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(out.read_text()), str(out)


@pytest.fixture(scope="module")
def accuracy_json(models, prompts, tmp):
    out = tmp / "accuracy.json"
    assert accuracy.main(["--model", models["base"], "--prompts", prompts, "--decoder", "jacobi", *ARGS,
                          "--json", str(out)]) == 0
    return str(out)


def test_speed_times_only_the_decoders_asked_and_ar_in_other_dtypes(models):
    base, base_tok = load_model(models["base"], device="cpu", dtype="float64")
    cllm, cllm_tok = load_model(models["cllm"], device="cpu", dtype="float64")
    base32, _ = load_model(models["base"], device="cpu", dtype="float32")
    result = speed.run_speed(base, base_tok, cllm, cllm_tok, [PROBLEMS[0]["question"]], max_new_tokens=8,
                             decoders=["jacobi_cllm"], ar_bases={"float32": base32}, progress=False)
    assert set(result["decoders"]) == {"jacobi_cllm", "ar_cllm", "ar_base", "ar_base_float32"}
    assert result["baseline"] in ("ar_base", "ar_base_float32") and result["decoders"]["jacobi_cllm"]["matches_ar"] == 1
    with pytest.raises(UserError, match="Unknown decoder 'nope'"):
        speed.run_speed(base, base_tok, cllm, cllm_tok, ["w5"], decoders=["nope"])


def test_speed_json_has_every_decoder_with_sane_values(speed_run):
    stdout, result, _ = speed_run
    assert set(result["decoders"]) == set(speed.REFERENCE)
    assert result["config"]["n_prompts"] == len(PROBLEMS) and result["config"]["dtype"] == "float64"
    assert result["baseline"] in ("ar_base", "ar_generate_base")
    for name, d in result["decoders"].items():
        assert d["tokens_per_second"] > 0 and d["tokens_per_forward"] >= 1, name
        assert d["matches_ar"] == 1.0, name  # float64: every greedy decoder reproduces AR exactly
        assert d["speedup"] == pytest.approx(d["tokens_per_second"] / result["decoders"][result["baseline"]]
                                             ["tokens_per_second"])
    d = result["decoders"]
    assert d["ar_base"]["tokens_per_forward"] == d["ar_cllm"]["tokens_per_forward"] == 1.0
    assert d["ar_base"]["tokens"] == d["jacobi_base"]["tokens"] == d["ar_generate_base"]["tokens"]
    assert d["jacobi_cllm"]["fast_forwarded_per_block"] >= 0 and d["prompt_lookup_base"]["stationary_per_block"] is None
    assert max(d["ar_base"]["speedup"], d["ar_generate_base"]["speedup"]) == 1.0
    assert sum(line.startswith("| ") for line in stdout.splitlines()) == 1 + len(speed.REFERENCE)
    assert "speedup vs" in stdout


def test_accuracy_json_and_jacobi_equals_ar(models, prompts, accuracy_json):
    result = json.load(open(accuracy_json))
    assert result["n"] == len(result["outputs"]) == len(PROBLEMS)
    for key in ("exact_match", "format_rate", "collapse_rate"):
        assert 0 <= result[key] <= 1
    assert {k: v["n"] for k, v in result["by_seen"].items()} == {"seen": 1, "unseen": 2}
    model, tokenizer = load_model(models["base"], device="cpu", dtype="float64")
    ar = run_accuracy(model, tokenizer, PROBLEMS, decoder="ar", max_new_tokens=12, progress=False)
    assert [o["output"] for o in ar["outputs"]] == [o["output"] for o in result["outputs"]]
    assert ar["tokens_per_forward"] == 1.0
    assert result["tokens_per_forward"] == sum(o["tokens"] for o in result["outputs"]) / sum(
        o["forward_passes"] for o in result["outputs"]) and all(
        o["forward_passes"] <= o["tokens"] for o in result["outputs"])


def test_scoring_of_hand_made_outputs():
    assert score("9 * 2 = 18 #### 1,000", [5, 6], "#### 1000") == {
        "pred": "1000", "gold": "1000", "correct": True, "formatted": True, "collapsed": False, "looped": False}
    assert score("so #### 12.0", [5], "#### 12")["correct"]
    assert score("#### 12 then #### 13", [5], "#### 12")["correct"] is False  # the last answer counts
    assert score("the answer is 12", [5], "#### 12")["formatted"] is False
    assert score("#### 13", [5], "#### 12") == {"pred": "13", "gold": "12", "correct": False, "formatted": True,
                                                "collapsed": False, "looped": False}
    assert score("", [7] * 10, "#### 1")["collapsed"] and not score("", [7] * 9 + [8] + [7] * 9, "#### 1")["collapsed"]
    assert score("", [1, 2, 3, 4] * 4, "#### 1")["looped"] and not score("", [1, 2, 3, 4] * 2, "#### 1")["looped"]
    scored = [score("#### 3", [1, 2], "#### 3"), score("x", [4] * 12, "#### 3"), score("#### 4", [1], "#### 3"),
              score("#### 3", [1], "#### 3"), score("y", [5, 6] * 10, "#### 3")]
    for s, (tokens, passes) in zip(scored, [(2, 1), (12, 3), (1, 1), (1, 1), (20, 2)]):
        s |= {"tokens": tokens, "forward_passes": passes}
    assert rates(scored) == {"n": 5, "exact_match": 0.4, "format_rate": 0.6, "collapse_rate": 0.2,
                             "loop_rate": 0.2, "tokens_per_forward": 36 / 8}


@pytest.mark.parametrize("cli", [speed, accuracy])
@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ('{"question": "w5", "answer": "#### 1"}\n{not json\n', "Line 2 of 'prompts.jsonl' is not valid JSON"),
    ("\n", "is empty"),
    ('{"text": "w5"}\n', "'question' or 'prompt'"),
])
def test_bad_prompt_files_are_one_line_and_nonzero(cli, content, message, tmp_path, capsys):
    path = tmp_path / "prompts.jsonl"
    if content is not None:
        path.write_text(content)
    assert cli.main(["--prompts", str(path), "--device", "cpu"]) != 0
    out = capsys.readouterr()
    assert out.out == "" and message in out.err and len(out.err.strip().splitlines()) == 1


def test_accuracy_needs_answers(tmp_path, capsys):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"question": "w5"}\n')
    assert accuracy.main(["--prompts", str(path)]) != 0
    assert "no `answer`" in capsys.readouterr().err


def test_cli_process_exits_nonzero_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "bench.accuracy", "--prompts", "/no/such.jsonl"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.startswith("error: ")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_plot_writes_html_of_speed_and_accuracy(speed_run, accuracy_json, tmp_path, capsys):
    out = tmp_path / "fig.html"
    assert plot.main([speed_run[2], accuracy_json, "--out", str(out)]) == 0
    assert "plotly" in out.read_text()[:100000] and capsys.readouterr().out.strip() == str(out)


def test_plot_falls_back_to_html_when_png_export_fails(speed_run, tmp_path, monkeypatch, capsys):
    def no_chromium(*args, **kwargs):
        raise RuntimeError("Chrome not found")

    monkeypatch.setattr(go.Figure, "write_image", no_chromium)
    assert plot.main([speed_run[2], "--out", str(tmp_path / "fig.png")]) == 0
    assert (tmp_path / "fig.html").exists() and not (tmp_path / "fig.png").exists()
    err = capsys.readouterr().err
    assert "Chrome not found" in err and len(err.strip().splitlines()) == 1


def test_plot_refuses_a_file_that_is_no_result(tmp_path, capsys):
    path = tmp_path / "other.json"
    path.write_text('{"a": 1}')
    assert plot.main([str(path)]) != 0 and "is not a bench.speed, bench.accuracy or" in capsys.readouterr().err


def test_device_check_dry_run_on_cpu():
    """The GPU check script runs its checks on the CPU too, bitsandbytes' 8 and 4 bits included."""
    proc = subprocess.run([sys.executable, "-m", "bench.device_check", "--device", "cpu", "--n", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("ok   tiny ") for line in lines) == 12 and not any("DIFF" in line for line in lines)
    floats = [line for line in lines if line.startswith("ok   tiny-arith-cllm cpu") and "bit:" not in line]
    assert len(floats) == 3 and all("Jacobi==AR on 2/2" in line for line in floats)
    assert sum(line.startswith(f"ok   tiny-arith-cllm cpu {bits}-bit") for bits in (8, 4) for line in lines) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without a GPU")
def test_device_check_without_a_gpu_says_so_in_one_line(capsys):
    assert device_check.main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU is visible" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def throughput_json(models, prompts, tmp):
    out = tmp / "throughput.json"
    assert throughput.main(["--model", models["cllm"], "--prompts", prompts, "--batch-sizes", "1,2", *ARGS,
                            "--json", str(out)]) == 0
    return str(out)


def test_throughput_json_has_every_decoder_at_every_batch_size(throughput_json):
    result = json.loads(open(throughput_json).read())
    runs = {(r["decoder"], r["batch_size"]): r for r in result["runs"]}
    assert set(runs) == {(d, b) for d in throughput.DECODERS for b in (1, 2)}
    for (decoder, batch), r in runs.items():
        assert r["tokens"] > 0 and r["seconds"] > 0 and r["tokens_per_second"] == r["tokens"] / r["seconds"]
        assert r["matches_ar"] == 1.0  # float64: every decoder's output equals one-at-a-time AR
        if decoder == "ar_batched":  # one token per row per step: the step is as wide as the rows in it
            assert r["fed_per_step"] <= batch and r["tokens_per_forward"] <= batch
    assert runs[("ar_batched", 2)]["forward_passes"] < runs[("ar_batched", 1)]["forward_passes"]
    assert set(result["pass_ms_by_tokens_fed"]) <= {str(w) for w in throughput.WIDTH_BINS}


def test_plot_draws_a_throughput_result_on_its_own(throughput_json, speed_run, tmp_path, capsys):
    out = tmp_path / "throughput.html"
    assert plot.main([throughput_json, "--out", str(out)]) == 0 and "rows in the batch" in out.read_text()
    assert plot.main([throughput_json, speed_run[2], "--out", str(out)]) == 2
    assert "drawn on their own" in capsys.readouterr().err


def test_bad_batch_sizes_are_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        throughput.parse_args(["--batch-sizes", "1,0"])
    assert "at least 1" in capsys.readouterr().err


def test_speed_chart_names_files_by_their_prompts_and_dtype_and_labels_bars_flat(speed_run):
    result = json.loads(open(speed_run[2]).read())
    label = plot.result_label("speed", result)
    assert label == "problems (3) · float64"  # neither a held-out nor a GSM8K file: its name, count and dtype
    fig = plot.figure({label: result})
    bars = [t for t in fig.data if t.type == "bar"]
    assert {t.name for t in bars} == {label} and all(t.textangle == 0 for t in bars)
    assert "Jacobi CLLM" in bars[0].x and plot.decoder_label("prompt_lookup_base") == "prompt lookup base"
    result["config"]["prompts"] = "assets/data/synth/heldout.jsonl"
    assert plot.result_label("speed_heldout", result) == "held-out (3) · float64"


def test_precision_measures_both_decoders_and_their_agreement(models, prompts):
    model, tokenizer = load_model(models["cllm"], device="cpu", dtype="float64")
    row = precision.measure(model, tokenizer, precision.read_items(prompts, need_answer=True), max_new_tokens=8)
    assert row["jacobi_equals_ar"] == 1.0 and row["ar_tokens_per_second"] > 0 and row["jacobi_tokens_per_second"] > 0
    assert 0 <= row["exact_match"] <= 1 and row["n"] == len(PROBLEMS)
