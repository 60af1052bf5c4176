"""Greedy-decoding evaluation on GSM8K-style problems: exact match and `#### N` format rate."""

import argparse
import json
import re

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast

from model_utils.tokenizer_build import prompt_text

ANSWER_RE = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")


def extract_answer(text: str) -> str | None:
    """The number after the last `####` (commas and $ stripped, `12.0` -> `12`), or None."""
    found = ANSWER_RE.findall(text)
    if not found:
        return None
    num = found[-1].replace(",", "")
    value = float(num)
    return str(int(value)) if value.is_integer() else num


@torch.no_grad()
def generate_answers(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, questions: list[str],
                     batch_size: int = 16, max_new_tokens: int = 256) -> list[str]:
    """Greedy completions (special tokens dropped) for the chat-template prompts of `questions`."""
    model.eval()
    outs = []
    for i in range(0, len(questions), batch_size):
        prompts = [prompt_text(tokenizer, q) for q in questions[i:i + batch_size]]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        outs += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return outs


def evaluate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, problems: list[dict], **kw) -> dict:
    """Exact match and format rate of greedy answers to `problems` (dicts with `question`, `answer`)."""
    outs = generate_answers(model, tokenizer, [p["question"] for p in problems], **kw)
    preds = [extract_answer(o) for o in outs]
    golds = [extract_answer(p["answer"]) for p in problems]
    return {
        "n": len(problems),
        "exact_match": sum(p is not None and p == g for p, g in zip(preds, golds)) / len(problems),
        "format_rate": sum(p is not None for p in preds) / len(problems),
        "example": outs[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="assets/models/gsm8k-base")
    ap.add_argument("--data", default="assets/data/synth/heldout.jsonl")
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    with open(args.data) as f:
        problems = [json.loads(line) for line in f][:args.n]
    print(json.dumps(evaluate(model, tokenizer, problems), indent=1))


if __name__ == "__main__":
    main()
