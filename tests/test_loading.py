"""Loading by path, and one clear sentence for each bad model or setting."""
import json
import logging
import subprocess
import sys

import pytest
import torch
from transformers import CONFIG_MAPPING, BertConfig, BertForMaskedLM, T5Config, T5ForConditionalGeneration
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from model_utils import generate
from model_utils.decoding import decode_text
from model_utils.errors import UserError
from model_utils.loading import (
    DEFAULT_THREADS,
    check_causal,
    decoding_threads,
    drop_int8_cast_notice,
    encode_prompt,
    eos_ids,
    load_model,
)
from model_utils.tiny_models import tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def saved_llama(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama")
    tiny_model("llama", dtype=torch.float32).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


def test_loads_a_local_model_and_tokenizer(saved_llama):
    model, tokenizer = load_model(saved_llama, device="cpu")
    assert model.dtype == torch.float32 and not model.training
    assert eos_ids(model, tokenizer) == {2}
    assert encode_prompt(tokenizer, "w5 w6") == [5, 6]


def test_unknown_path_is_one_sentence():
    with pytest.raises(UserError, match="was not found"):
        load_model("/no/such/model/dir")


def test_bert_is_refused_as_not_causal(tmp_path):
    BertForMaskedLM(BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32)).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(UserError, match="not a causal"):
        load_model(str(tmp_path), device="cpu")


def causal_types() -> list[str]:
    return sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


@pytest.mark.parametrize("model_type", causal_types())
def test_no_causal_architecture_transformers_lists_is_refused(model_type):
    """Each family's default config, declaring its causal LM class (an encoder family's as a decoder, which its
    causal class needs): GPT-NeoX sets is_decoder=False by default and is causal all the same."""
    try:
        config = CONFIG_MAPPING[model_type]()
    except Exception as e:  # noqa: BLE001 - a config that needs arguments cannot be made from defaults
        pytest.skip(f"{model_type}'s config has no defaults ({type(e).__name__})")
    config.architectures = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type]]
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        config.is_decoder = True
    check_causal(model_type, config)


def test_gpt_neox_loads_and_an_encoder_used_as_a_decoder_without_is_decoder_is_refused(tmp_path):
    tiny_model("gpt-neox", dtype=torch.float32).save_pretrained(tmp_path / "neox")
    tiny_tokenizer().save_pretrained(tmp_path / "neox")
    model, _ = load_model(str(tmp_path / "neox"), device="cpu")
    assert model.config.model_type == "gpt_neox" and model.config.is_decoder is False
    bert = BertConfig(architectures=["BertLMHeadModel"])  # is_decoder False: it attends both ways
    with pytest.raises(UserError, match="not a causal"):
        check_causal("bert", bert)
    bert.is_decoder = True
    check_causal("bert", bert)


def test_encoder_decoder_is_refused(tmp_path):
    T5ForConditionalGeneration(T5Config(vocab_size=96, d_model=32, d_ff=32, num_layers=1, num_heads=2,
                                        d_kv=8)).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(UserError, match="encoder-decoder"):
        load_model(str(tmp_path), device="cpu")


def test_tokenizer_without_eos_is_refused(tmp_path):
    tiny_model("llama", dtype=torch.float32).save_pretrained(tmp_path)
    tok = tiny_tokenizer()
    tok.eos_token = None
    tok.save_pretrained(tmp_path)
    with pytest.raises(UserError, match="no EOS"):
        load_model(str(tmp_path), device="cpu")


@pytest.mark.parametrize("bits", [4, 8])
def test_4_and_8_bit_models_run_on_the_cpu_and_jacobi_equals_ar(bits):
    """bitsandbytes has CPU kernels: a quantised model decodes there, and Jacobi keeps AR's output."""
    from model_utils.decoding import decode
    from model_utils.loading import resolve_path
    model, tokenizer = load_model(resolve_path("tiny-arith-cllm"), device="cpu", bits=bits)
    assert model.device.type == "cpu" and getattr(model, f"is_loaded_in_{bits}bit")
    ids = encode_prompt(tokenizer, "Tom has 3 boxes with 12 apples each. He eats 5 apples. How many are left?")
    eos = eos_ids(model, tokenizer)
    ar = decode(model, ids, decoder="ar", max_new_tokens=48, eos_ids=eos)
    assert len(ar.token_ids) > 10 and decode(model, ids, max_new_tokens=48, eos_ids=eos).token_ids == ar.token_ids


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
@pytest.mark.parametrize("kwargs, message", [
    (dict(device="cuda"), "no CUDA GPU"),
    (dict(dtype="float8"), "Unknown dtype"),
])
def test_gpu_only_options_on_cpu_are_refused(saved_llama, kwargs, message):
    with pytest.raises(UserError, match=message):
        load_model(saved_llama, **({"device": "cpu"} | kwargs))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "model_utils.generate", *args], capture_output=True, text=True)


def test_cli_json_contract(saved_llama):
    out = run_cli("--model", saved_llama, "--prompt", "w5 w9 w11", "--decoder", "jacobi", "--block-size", "4",
                  "--max-new-tokens", "12", "--device", "cpu", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("text", "token_ids", "forward_passes", "tokens_per_forward", "seconds", "tokens_per_second",
                "fast_forwarded", "stationary", "trajectory"):
        assert key in data
    ar = json.loads(run_cli("--model", saved_llama, "--prompt", "w5 w9 w11", "--decoder", "ar",
                            "--max-new-tokens", "12", "--device", "cpu", "--json").stdout)
    assert ar["token_ids"] == data["token_ids"] and ar["forward_passes"] == len(ar["token_ids"])


def test_cli_prompts_file_prints_one_json_line_per_prompt_in_input_order(saved_llama, tmp_path):
    prompts = ["w5 w9 w11", "w7", "w30 w31 w32 w33 w34 w35 w36", "w12 w13"]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    common = ["--model", saved_llama, "--prompts-file", str(path), "--max-new-tokens", "12", "--device", "cpu",
              "--json"]
    batched = run_cli(*common, "--decoder", "jacobi", "--block-size", "4", "--batch-size", "3")
    assert batched.returncode == 0, batched.stderr
    rows = [json.loads(line) for line in batched.stdout.splitlines()]
    assert len(rows) == len(prompts) and all("trajectory" in r and "tokens_per_forward" in r for r in rows)
    model, tokenizer = load_model(saved_llama, device="cpu")
    for prompt, row in zip(prompts, rows):  # input order: each line is that prompt's one-at-a-time output
        alone = decode_text(model, tokenizer, prompt, decoder="ar", max_new_tokens=12)
        assert row["token_ids"] == alone.token_ids and row["text"] == alone.text
    ar = run_cli(*common, "--decoder", "ar", "--batch-size", "2")
    assert [json.loads(line)["token_ids"] for line in ar.stdout.splitlines()] == [r["token_ids"] for r in rows]


def test_cli_batch_size_without_a_prompts_file_is_one_sentence(saved_llama):
    out = run_cli("--model", saved_llama, "--prompt", "w5", "--batch-size", "4", "--device", "cpu")
    assert out.returncode == 2 and "--batch-size needs --prompts-file" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_cli_streams_text_and_a_summary(saved_llama):
    out = run_cli("--model", saved_llama, "--prompt", "w5 w9", "--max-new-tokens", "6", "--device", "cpu")
    assert out.returncode == 0 and out.stdout.strip()
    assert "forward passes" in out.stderr


@pytest.mark.parametrize("args, message", [
    (["--model", "/no/such/dir", "--prompt", "hi"], "not found"),
    (["--prompt", "  ", "--block-size", "4"], "empty"),
    (["--prompt", "w5", "--block-size", "0"], "the block size must be from 1"),
    (["--prompt", "w5", "--max-new-tokens", "0"], "max_new_tokens"),
])
def test_cli_errors_are_one_line_and_nonzero(saved_llama, args, message):
    if "--model" not in args:
        args = ["--model", saved_llama, "--device", "cpu", *args]
    out = run_cli(*args)
    assert out.returncode != 0 and out.stdout == ""
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_int8_cast_notice_is_dropped_and_other_records_kept():
    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("bitsandbytes.autograd._functions", logging.WARNING, __file__, 1, msg, (), None)
    notice = "MatMul8bitLt: inputs will be cast from torch.float32 to float16 during quantization"
    assert not drop_int8_cast_notice(record(notice))
    assert drop_int8_cast_notice(record("some other bitsandbytes warning"))


def test_decoding_on_the_cpu_uses_one_thread_for_small_models(monkeypatch):
    small = tiny_model("llama")
    assert decoding_threads([small]) == 1
    big = tiny_model("llama")
    monkeypatch.setattr(big, "num_parameters", lambda: 7_000_000_000)
    assert decoding_threads([small, big]) == DEFAULT_THREADS


def test_generate_sets_its_threads(saved_llama):
    before = torch.get_num_threads()
    try:
        for wanted, args in ((1, []), (2, ["--threads", "2"])):
            assert generate.main(["--model", saved_llama, "--prompt", "w5 w9", "--max-new-tokens", "4", "--device",
                                  "cpu", "--json", *args]) == 0
            assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)


def test_cli_samples_reproducibly_and_refuses_sampling_in_a_batch(saved_llama, tmp_path, capsys):
    args = ["--model", saved_llama, "--prompt", "w5 w9", "--max-new-tokens", "10", "--device", "cpu", "--json",
            "--temperature", "0.8", "--top-k", "20", "--seed", "4"]
    outputs = []
    for _ in range(2):
        assert generate.main(args) == 0
        outputs.append(json.loads(capsys.readouterr().out)["token_ids"])
    assert outputs[0] == outputs[1]
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "w5"}\n{"prompt": "w6"}\n')
    assert generate.main(["--model", saved_llama, "--prompts-file", str(path), "--batch-size", "2", "--device", "cpu",
                          "--temperature", "0.8"]) == 2
    assert "Batched decoding is greedy" in capsys.readouterr().err
