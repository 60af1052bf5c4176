"""Quality guard: greedy outputs on held-out prompts, checked for repetition loops and answer format."""
import sys

import torch

from model_utils.decoding import decode
from model_utils.gsm8k_eval import extract_answer
from model_utils.loading import encode_prompt
from model_utils.trajectories import is_degenerate

class QualityGuard:
    """Compares every check with the first one (the model before training) and warns when it falls."""

    def __init__(self, tokenizer, prompts: list[str], max_new_tokens: int = 128, max_format_drop: float = 0.2):
        self.tokenizer, self.max_new_tokens, self.max_format_drop = tokenizer, max_new_tokens, max_format_drop
        self.prompts = [encode_prompt(tokenizer, p) for p in prompts]
        self.eos = {tokenizer.eos_token_id}
        self.baseline: dict | None = None

    def check(self, model) -> dict:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            outputs = [decode(model, ids, decoder="ar", max_new_tokens=self.max_new_tokens, eos_ids=self.eos).token_ids
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
