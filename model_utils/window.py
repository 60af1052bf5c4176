"""The cost-aware window: how many tokens each Jacobi pass feeds, from what a pass costs and what passes verify.

A pass of w tokens costs c(w), measured once per model, device and dtype. What a width is worth is the number of
tokens its passes make final, and that depends on the passes before: a wide window's far guesses come from the
previous pass's predictions and improve as the window keeps sliding (the stationary tokens), so a width is judged
by whole stretches of passes played at it. Per model, the decoder keeps the decayed tokens per pass seen at each
width (over all its runs) and plays, stretch by stretch, the width with the most expected tokens per second:
tokens per pass, plus an optimism bonus for widths seen little (discounted UCB, Garivier and Moulines 2008),
over c(width + the candidate tokens fed beside it) plus the decoder's own time per pass. A model whose guesses
do not hold thus settles near greedy AR (a window of one), and a CLLM on the whole window.
"""
import weakref
from math import log, sqrt

from transformers import PreTrainedModel

from model_utils.candidates import Candidate, NgramIndex, RecyclePool, propose
from model_utils.pass_costs import PassCosts, pass_costs
from model_utils.records import Pass

WIDTHS = (1, 2, 4, 8)  # the widths played, with the block size
STRETCH = 8  # passes played at a width before choosing again
DECAY = 0.995  # per pass: what older passes still weigh
OPTIMISM = 0.3  # tokens per pass: the scale of the bonus for widths seen little
_seen: "weakref.WeakKeyDictionary[PreTrainedModel, dict]" = weakref.WeakKeyDictionary()


class WidthStats:
    """Decayed passes, tokens made final and candidate tokens fed at each window width (see the module doc)."""

    def __init__(self, widths: list[int]):
        self.passes = dict.fromkeys(widths, 0.0)
        self.tokens = dict.fromkeys(widths, 0.0)
        self.candidate_tokens = dict.fromkeys(widths, 0.0)

    def record(self, width: int, tokens: int, candidate_tokens: int) -> None:
        for w in self.passes:
            self.passes[w] *= DECAY
            self.tokens[w] *= DECAY
            self.candidate_tokens[w] *= DECAY
        self.passes[width] += 1
        self.tokens[width] += tokens
        self.candidate_tokens[width] += candidate_tokens

    def choose(self, costs: PassCosts, overhead: float) -> int:
        """The width with the highest optimistic tokens per second. Before any pass, the widest (the block size
        the user gave); a width not played yet is valued as if it made final as many tokens per pass as the best
        width played so far (at most its own width), so a narrower one is tried only where it could pay."""
        played = [w for w in self.passes if self.passes[w] >= 1]
        if not played:
            return max(self.passes)
        total = sum(self.passes.values())
        prior = max(self.tokens[w] / self.passes[w] for w in played)
        extra = max(self.candidate_tokens[w] / self.passes[w] for w in played)

        def value(w: int) -> float:
            n = self.passes[w]
            if n < 1:
                return min(float(w), prior) / (costs(round(w + extra)) + overhead)
            per_pass = self.tokens[w] / n + OPTIMISM * sqrt(log(max(total, 2.0)) / n)
            return per_pass / (costs(round(w + self.candidate_tokens[w] / n)) + overhead)

        return max(self.passes, key=lambda w: (value(w), -w))


def width_stats(model: PreTrainedModel, block_size: int, budget: int) -> WidthStats:
    """The WidthStats of a model for one block size and candidate budget, kept while the model lives."""
    per_model = _seen.setdefault(model, {})
    key = (str(model.device), model.dtype, block_size, budget)
    if key not in per_model:
        per_model[key] = WidthStats(sorted({w for w in WIDTHS if w < block_size} | {block_size}))
    return per_model[key]


def within_budget(candidates: list[Candidate], budget: int) -> list[Candidate]:
    """The candidates, in order, that fit in `budget` tokens in all."""
    chosen, used = [], 0
    for c in candidates:
        if used + len(c.tokens) <= budget:
            chosen.append(c)
            used += len(c.tokens)
    return chosen


class Planner:
    """One run's candidate sources, and the width it plays: plans each pass and learns from it."""

    def __init__(self, model: PreTrainedModel, sequence: list[int], *, block_size: int, candidates: bool,
                 adaptive: bool, budget: int, max_branches: int):
        self.index = NgramIndex(sequence) if candidates else None
        self.pool = RecyclePool()
        self.budget, self.max_branches = budget if candidates else 0, max_branches
        self.costs = pass_costs(model, block_size + self.budget) if adaptive else None
        self.stats = width_stats(model, block_size, self.budget) if adaptive else None
        self.width, self.played = block_size, STRETCH  # the first pass chooses
        self.overhead = 0.0  # seconds a pass takes beyond its forward (the decoder's own work), a moving average

    def extend(self, tokens: list[int]) -> None:
        if self.index is not None:
            self.index.extend(tokens)

    def plan(self, window: list[int], with_candidates: bool) -> tuple[int, list[Candidate]]:
        """This pass's width (at most the window's) and the candidates to feed beside it."""
        if self.stats is not None and self.played >= STRETCH:
            self.width, self.played = self.stats.choose(self.costs, self.overhead), 0
        width, found = min(self.width, len(window)), []
        if self.index is not None and with_candidates and len(window) > 1:
            found = propose(self.index, self.pool, len(window) - 1, window[1:width], self.max_branches)
        return width, within_budget(found, self.budget)

    def learn(self, p: Pass, window_verified: int, predicted: list[int], seconds: float) -> None:
        """Count what the pass made final, index its new tokens, pool the guesses it refuted, and time it."""
        fed = len(p.window) + sum(len(b) for b in p.branches)
        if self.stats is not None and len(p.window) == self.width:  # not a pass cut short by the length limit
            self.stats.record(self.width, len(p.new_tokens), fed - len(p.window))
            self.played += 1
            self.overhead = 0.9 * self.overhead + 0.1 * max(seconds - self.costs(fed), 0.0)
        if self.index is not None:
            self.index.extend(p.new_tokens)
            self.pool.add(p.window[window_verified + 1:])
            if p.winner:
                self.pool.add(predicted[window_verified:])
