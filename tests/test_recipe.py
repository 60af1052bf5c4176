"""The embedded models' recipe: generated problems whose arithmetic is right, held-out problems that are never
trained on, and a tokenizer that gives GSM8K text back exactly."""
import ast
import json
import operator
import os
import random
import re
import subprocess
import sys
from fractions import Fraction

import pytest
import torch
from helpers import ROOT
from transformers import AutoTokenizer

from model_utils.quality import extract_answer
from recipe import gsm8k_synth
from recipe.gsm8k_synth import TEMPLATES, generate, make_problem, seen_templates, unseen_templates
from recipe.tokenizer import prompt_text, training_text

PER_TEMPLATE = 150
# `a * b = <<a*b=c>>c`, money with a `$` before the annotation: the shown sum, the annotation, the value after it
STEP = re.compile(r"(\d+(?: [-+*/] \d+)*) = \$?<<([^<>=]+)=([^<>]+)>>(\d+)")
OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def value(expr: str) -> Fraction:
    """The exact value of an expression of integers and + - * / (no eval)."""
    def walk(node):
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            return OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        raise ValueError(f"not integer arithmetic: {expr!r}")
    return walk(ast.parse(expr, mode="eval").body)


def problems(name: str, n: int = PER_TEMPLATE, seed: int = 0):
    """n problems of template `name`, each with what the template itself returned."""
    r = random.Random(seed)
    for _ in range(n):
        state = r.getstate()
        problem = make_problem(r, name)
        r.setstate(state)  # replay the same draws through the template directly
        while True:
            try:
                returned = TEMPLATES[name](r)
                break
            except ValueError:
                continue
        yield problem, returned


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_every_step_of_every_template_is_right_and_ends_at_the_answer(name):
    for problem, (question, lines, answer) in problems(name):
        assert problem["question"] == question and problem["template"] == name
        assert problem["seen"] == (name in seen_templates())
        *steps, final = problem["answer"].split("\n")
        assert steps == lines and final == f"#### {answer}"
        assert isinstance(answer, int) and answer >= 0
        values = []
        for line in steps:
            found = STEP.findall(line)
            assert len(found) == 1, f"{name}: one calculator annotation per step line: {line!r}"
            shown, expr, result, after = found[0]
            assert shown.replace(" ", "") == expr, line  # the sum as written is the one annotated
            assert value(expr) == int(result) == int(after), f"{name}: {line!r} is wrong"
            values.append(int(result))
        assert values[-1] == answer, f"{name}: the last step gives {values[-1]}, the answer says {answer}"
        assert extract_answer(problem["answer"]) == str(answer)


def test_seen_and_unseen_templates_split_the_set():
    seen, unseen = set(seen_templates()), set(unseen_templates())
    assert seen and unseen and not seen & unseen
    assert seen | unseen == set(TEMPLATES)
    assert unseen == gsm8k_synth.UNSEEN


def test_generate_makes_distinct_questions_of_the_asked_templates():
    out = generate(300, 3, unseen_templates())
    assert len(out) == 300 and len({p["question"] for p in out}) == 300
    assert {p["template"] for p in out} <= set(unseen_templates()) and not any(p["seen"] for p in out)
    assert out == generate(300, 3, unseen_templates())  # seeded


def test_excluded_questions_are_never_generated():
    # one template with a few thousand distinct questions, so a second draw would surely repeat some
    train = {p["question"] for p in generate(3000, 0, ["subscription"])}
    again = {p["question"] for p in generate(500, 1, ["subscription"])}
    assert again & train  # without exclude=: repeats (so the next check can fail)
    heldout = generate(500, 1, ["subscription"], exclude=train)
    assert len(heldout) == 500 and not {p["question"] for p in heldout} & train


def test_held_out_problems_are_not_in_the_training_corpus():
    from recipe.pretrain import build_corpus
    corpus, heldout = build_corpus(seed=5, n_synth=3000, real_frac=0.2)
    train = {p["question"] for p in corpus}
    assert len(heldout) == 100 and not {p["question"] for p in heldout} & train
    assert sum(p["seen"] for p in heldout) == 50
    assert {p["template"] for p in heldout if not p["seen"]} <= set(unseen_templates())
    assert not any(p["template"] in unseen_templates() for p in corpus)  # unseen templates are never trained on


@pytest.mark.slow
def test_the_bundled_held_out_set_is_the_recipes_and_never_trained_on():
    from recipe.pretrain import build_corpus
    corpus, heldout = build_corpus(seed=0, n_synth=120_000, real_frac=0.2)  # recipe/build_models.sh's defaults
    with open(os.path.join(ROOT, "assets/data/synth/heldout.jsonl")) as f:
        bundled = [json.loads(line) for line in f]
    assert bundled == heldout
    train = {p["question"] for p in corpus}
    assert not any(p["question"] in train for p in bundled)


@pytest.fixture(scope="module")
def embedded_tokenizer():
    return AutoTokenizer.from_pretrained(os.path.join(ROOT, "assets/models/tiny-arith-base"))


def gsm8k_rows(n: int) -> list[dict]:
    with open(os.path.join(ROOT, "assets/data/gsm8k/train.jsonl")) as f:
        return [json.loads(line) for line, _ in zip(f, range(n))]


def test_the_embedded_tokenizer_gives_gsm8k_text_back_exactly(embedded_tokenizer):
    tok = embedded_tokenizer
    rows = gsm8k_rows(400)
    assert len(rows) == 400
    for row in rows:
        for text in (row["question"], row["answer"]):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert tok.decode(ids) == text
        full = training_text(tok, row["question"], row["answer"])
        assert tok.decode(tok(full, add_special_tokens=False)["input_ids"]) == full


def test_the_embedded_tokenizer_splits_digits_and_renders_the_chat_template(embedded_tokenizer):
    tok = embedded_tokenizer
    ids = tok("12345", add_special_tokens=False)["input_ids"]
    assert [tok.decode([i]) for i in ids] == list("12345")  # single-digit tokens
    prompt = prompt_text(tok, "  What is 2 + 2? ")
    assert prompt == f"{tok.eos_token}Question:\nWhat is 2 + 2?\nAnswer:\n"
    assert training_text(tok, "What is 2 + 2?", "2 + 2 = <<2+2=4>>4\n#### 4") == prompt + (
        "2 + 2 = <<2+2=4>>4\n#### 4" + tok.eos_token)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without a GPU")
def test_pretrain_on_cuda_without_a_gpu_stops_before_any_work(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "recipe.pretrain", "--device", "cuda", "--work", str(tmp_path / "w"),
                           "--out", str(tmp_path / "m")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no CUDA GPU is visible" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "w").exists()
