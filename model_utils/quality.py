"""Output quality: answer format, token repeats and phrase loops, and the guard that watches them in training."""
import re
import sys

import torch

from model_utils.decoding import decode
from model_utils.loading import encode_prompt, eos_ids

REPEAT_LIMIT = 10
LOOP_SPAN = 16  # tokens of a phrase loop that make an output degenerate
LOOP_PERIOD = 32  # longest phrase (in tokens) looked for
ANSWER_RE = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")


def extract_answer(text: str) -> str | None:
    """The number after the last `####` (commas and $ stripped, `12.0` -> `12`), or None."""
    found = ANSWER_RE.findall(text)
    if not found:
        return None
    num = found[-1].replace(",", "")
    value = float(num)
    return str(int(value)) if value.is_integer() else num


def has_repeat(ids: list[int], limit: int = REPEAT_LIMIT) -> bool:
    """True if some token appears `limit` or more times in a row."""
    run = 0
    for i, t in enumerate(ids):
        run = run + 1 if i and t == ids[i - 1] else 1
        if run >= limit:
            return True
    return False


def longest_loop(ids: list[int], max_period: int = LOOP_PERIOD) -> int:
    """Length of the longest stretch that repeats one phrase of 1..max_period tokens at least three times."""
    best = 0
    for period in range(1, max_period + 1):
        run = 0  # positions j in a row with ids[j] == ids[j - period]
        for j in range(period, len(ids)):
            run = run + 1 if ids[j] == ids[j - period] else 0
            if run >= 2 * period:
                best = max(best, run + period)
    return best


def has_loop(ids: list[int]) -> bool:
    """True if one phrase is said over and over for LOOP_SPAN or more tokens."""
    return longest_loop(ids) >= LOOP_SPAN


def is_degenerate(ids: list[int]) -> bool:
    """Token-level (one token 10+ times) or phrase-level repetition (a loop of LOOP_SPAN+ tokens):
    the maintainers' advice is to remove both before training (reference §3, issue #11)."""
    return has_repeat(ids) or has_loop(ids)


class QualityGuard:
    """Compares every check with the first one (the model before training) and warns when it falls."""

    def __init__(self, tokenizer, prompts: list[str], max_new_tokens: int = 128, max_format_drop: float = 0.2):
        self.tokenizer, self.max_new_tokens, self.max_format_drop = tokenizer, max_new_tokens, max_format_drop
        self.prompts = [encode_prompt(tokenizer, p) for p in prompts]
        self.baseline: dict | None = None

    def check(self, model) -> dict:
        was_training = model.training
        model.eval()
        eos = eos_ids(model, self.tokenizer)
        with torch.no_grad():
            outputs = [decode(model, ids, decoder="ar", max_new_tokens=self.max_new_tokens, eos_ids=eos).token_ids
                       for ids in self.prompts]
        model.train(was_training)
        texts = [self.tokenizer.decode(o, skip_special_tokens=True) for o in outputs]
        report = {"n": len(outputs), "collapsed": sum(is_degenerate(o) for o in outputs),
                  "format_rate": sum(extract_answer(t) is not None for t in texts) / max(len(texts), 1),
                  "sample": texts[0][:200] if texts else ""}
        if self.baseline is None:
            self.baseline = report
        report["warning"] = self.warning(report)
        if report["warning"]:
            print(f"\n{'!' * 70}\nQUALITY GUARD: {report['warning']}\n{'!' * 70}", file=sys.stderr)
        return report

    def warning(self, report: dict) -> str | None:
        base = self.baseline
        if report["collapsed"] > base["collapsed"]:
            return (f"{report['collapsed']} of {report['n']} held-out outputs repeat one token 10+ times or loop "
                    f"over one phrase (before training: {base['collapsed']}); lower the lr or raise --ar-weight.")
        if report["format_rate"] < base["format_rate"] - self.max_format_drop:
            return (f"answer format fell from {base['format_rate']:.0%} to {report['format_rate']:.0%} "
                    f"of held-out outputs.")
        return None


def scorecard(model, tokenizer, prompts: list[str], block_size: int = 16, max_new_tokens: int = 128) -> dict:
    """Greedy Jacobi on held-out prompts: tokens per forward pass, answer-format rate, and repeating outputs."""
    eos = eos_ids(model, tokenizer)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        results = [decode(model, encode_prompt(tokenizer, p), decoder="jacobi", block_size=block_size,
                          max_new_tokens=max_new_tokens, eos_ids=eos) for p in prompts]
    model.train(was_training)
    texts = [tokenizer.decode(r.token_ids, skip_special_tokens=True) for r in results]
    return {"n": len(results),
            "tokens_per_forward": sum(len(r.token_ids) for r in results) / max(sum(len(r.passes) for r in results), 1),
            "format_rate": sum(extract_answer(t) is not None for t in texts) / max(len(texts), 1),
            "repeats": sum(is_degenerate(r.token_ids) for r in results)}
