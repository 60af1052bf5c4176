"""The shared command-line pieces: argument groups, the options they gather, one-line errors with exit 2."""
import subprocess
import sys

import pytest
from helpers import ROOT

from model_utils import cli, generate
from model_utils.errors import UserError


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def full_parser():
    p = cli.parser("doc")
    cli.add_model_args(p)
    cli.add_decoding_args(p)
    return p


def test_defaults_and_the_options_they_gather():
    args = full_parser().parse_args([])
    assert cli.load_options(args) == dict(device="auto", dtype="auto", bits=None, trust_remote_code=False)
    assert cli.decode_options(args) == dict(decoder="jacobi", block_size=cli.BLOCK_SIZE,
                                            max_new_tokens=cli.MAX_NEW_TOKENS, scheme="sliding", seed=0)
    args = full_parser().parse_args(["--load-in-8bit", "--device", "cpu", "--dtype", "float16", "--decoder", "ar",
                                     "--block-size", "4", "--trust-remote-code"])
    assert cli.load_options(args) == dict(device="cpu", dtype="float16", bits=8, trust_remote_code=True)
    assert cli.decode_options(args)["decoder"] == "ar" and cli.decode_options(args)["block_size"] == 4
    assert full_parser().parse_args(["--load-in-4bit"]).bits == 4


def test_without_quantisation_or_decoder_the_options_leave_them_out():
    p = cli.parser(None)
    cli.add_model_args(p, quantisation=False)
    cli.add_decoding_args(p, decoder=None)
    args = p.parse_args([])
    assert cli.load_options(args)["bits"] is None and "decoder" not in cli.decode_options(args)
    with pytest.raises(SystemExit):
        p.parse_args(["--load-in-4bit"])


def test_4_and_8_bit_together_is_an_argparse_error():
    done = run_module("model_utils.generate", "--model", "X", "--prompt", "hi", "--load-in-4bit", "--load-in-8bit")
    assert done.returncode == 2 and done.stdout == ""
    assert "not allowed with argument" in done.stderr and "Traceback" not in done.stderr


def test_a_user_error_is_one_error_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setattr(cli, "quiet_transformers", lambda: None)  # leave this process's logging as it is

    def body():
        raise UserError("The prompt is empty: type something to continue.")
    assert cli.run_cli(body) == 2
    assert capsys.readouterr().err == "error: The prompt is empty: type something to continue.\n"
    assert cli.run_cli(lambda: None) == 0


def test_a_user_error_inside_a_main_is_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setattr(cli, "quiet_transformers", lambda: None)
    assert generate.main(["--model", "/no/such/model/dir", "--prompt", "  ", "--device", "cpu"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "error: The prompt is empty: type something to continue.\n"


def test_other_errors_are_not_swallowed(monkeypatch):
    monkeypatch.setattr(cli, "quiet_transformers", lambda: None)

    def body():
        raise RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        cli.run_cli(body)


def speedup_parser():
    p = full_parser()
    cli.add_speedup_args(p)
    cli.add_sampling_args(p)
    return p


@pytest.mark.parametrize("argv, expected", [
    ([], cli.FASTEST),  # greedy sliding Jacobi: the fastest measured setting
    (["--no-candidates", "--no-adaptive"], dict(candidates=False, adaptive=False)),
    (["--no-adaptive"], dict(candidates=cli.FASTEST["candidates"], adaptive=False)),
    (["--scheme", "block"], dict(candidates=False, adaptive=False)),
    (["--decoder", "ar"], dict(candidates=False, adaptive=False)),
    (["--temperature", "0.7"], dict(candidates=False, adaptive=False)),
    (["--scheme", "block", "--candidates"], dict(candidates=True, adaptive=False)),  # as asked: decode refuses it
])
def test_speedups_default_to_the_fastest_setting_where_they_apply(argv, expected):
    assert cli.speedup_options(speedup_parser().parse_args(argv)) == expected


def test_generate_refuses_speedups_where_they_do_not_apply(capsys):
    for argv, words in ((["--scheme", "block", "--candidates"], "sliding scheme"),
                        (["--decoder", "ar", "--adaptive"], "Jacobi's"),
                        (["--prompts-file", "x.jsonl", "--batch-size", "2", "--candidates"], "plain Jacobi")):
        what = [] if "--prompts-file" in argv else ["--prompt", "w5 w9"]
        assert generate.main(["--model", "tiny-arith-base", *what, "--device", "cpu", *argv]) == 2
        assert words in capsys.readouterr().err
