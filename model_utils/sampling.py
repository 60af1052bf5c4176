"""Sampled AR and Jacobi decoding whose output is distributed exactly as AR sampling (temperature, top-k, top-p).

Jacobi checks its guesses with the speculative-sampling rule (Leviathan et al. 2023; beyond-jacobi.md): every
guess x in slot i was drawn from a distribution q (the model's, warped, at the pass that proposed it; a point
mass for the random refill and the first window). Under the current distribution p after slots 0..i-1 it is
kept with probability min(1, p(x) / q(x)); the first one refused is replaced by a draw from max(p - q, 0)
normalised, and the pass ends there. If every guess is kept, one more token is drawn from p after the last
slot. Each produced token is therefore a draw from p given the tokens before it: the run is an AR sample.
Block size 1 is plain AR sampling. One torch.Generator, seeded, makes every draw, so a seed gives one text.
"""
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from model_utils.decoding import Forward, check_inputs, cut_at_stop
from model_utils.errors import UserError
from model_utils.records import Pass


@dataclass(frozen=True)
class Sampling:
    """How tokens are drawn: temperature > 0, top_k (0: all tokens) and top_p (1: all of the mass)."""
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        if not self.temperature > 0:
            raise UserError(f"A sampling temperature must be above 0 (got {self.temperature}); 0 is greedy decoding.")
        if self.top_k < 0:
            raise UserError(f"top-k must be 0 (off) or a positive number of tokens (got {self.top_k}).")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top-p must be in (0, 1] (got {self.top_p}).")

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Rows of logits -> float64 probabilities after temperature, top-k and top-p (as transformers' warpers)."""
        scores = logits.double() / self.temperature
        if self.top_k:
            kth = torch.topk(scores, min(self.top_k, scores.shape[-1]), dim=-1).values[..., -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if self.top_p < 1:
            ordered, index = torch.sort(scores, dim=-1, descending=True)
            mass = ordered.softmax(-1).cumsum(-1)
            cut = mass - ordered.softmax(-1) >= self.top_p  # tokens after the smallest set holding top_p
            scores = scores.masked_fill(cut.scatter(-1, index, cut), float("-inf"))
        return scores.softmax(-1)


def draw(p: torch.Tensor, generator: torch.Generator) -> int:
    return int(torch.multinomial(p, 1, generator=generator))


def sampled_passes(model: PreTrainedModel, prompt_ids: list[int], *, block_size: int = 16, max_new_tokens: int = 256,
                   eos_ids: set[int] = frozenset(), sampling: Sampling = Sampling(), seed: int = 0,
                   use_cache: bool = True) -> Iterator[Pass]:
    """Sampled decoding in windows of block_size tokens (sliding scheme; 1 is AR), pass by pass (see the module doc)."""
    max_new_tokens = check_inputs(model, prompt_ids, max_new_tokens, block_size)
    generator = torch.Generator().manual_seed(seed)
    fwd = Forward(model, use_cache)

    def refill(k: int) -> tuple[list[int], list[torch.Tensor | None]]:
        """k guesses drawn from the sequence so far, each proposed with certainty (q = a point mass)."""
        pool = prompt_ids + known
        return [pool[i] for i in torch.randint(len(pool), (k,), generator=generator).tolist()], [None] * k

    t0 = time.perf_counter()
    first = draw(sampling.probs(fwd.logits(prompt_ids, last_only=True))[0], generator)
    known, stop = cut_at_stop([first], [], eos_ids, max_new_tokens)
    yield Pass(index=0, block=-1, start=0, window=[], guess=[first], new_tokens=list(known),
               seconds=time.perf_counter() - t0, cache_len=fwd.cache_len)
    guesses, proposals = refill(min(block_size, max_new_tokens - 1) - 1)
    window = known[-1:] + guesses
    n_passes = 1
    while stop is None:
        t0, fed = time.perf_counter(), window
        start, s = len(known) - 1, len(fed)
        p = sampling.probs(fwd.logits(fed))
        tokens = []
        for i in range(1, s + 1):
            if i == s:  # every guess kept: one more token from the last slot's distribution
                tokens.append(draw(p[s - 1], generator))
                break
            x, q = fed[i], proposals[i - 1]
            q_x = 1.0 if q is None else float(q[x])
            if float(torch.rand((), generator=generator, dtype=torch.float64)) < min(1.0, float(p[i - 1, x]) / q_x):
                tokens.append(x)
                continue
            residual = (p[i - 1] - (q if q is not None else torch.nn.functional.one_hot(
                torch.tensor(x), p.shape[-1]).double())).clamp(min=0)
            tokens.append(draw(residual / residual.sum(), generator))
            break
        f = len(tokens)
        tokens, stop = cut_at_stop(tokens, known, eos_ids, max_new_tokens)
        known += tokens
        fwd.rollback(s - len(tokens))
        room = max_new_tokens - len(known)
        if stop is None:  # the next window: the carry, fresh draws from this pass's later slots, then a refill
            ahead = list(range(f, s))[: min(block_size, room) - 1]
            guesses, proposals = [draw(p[j], generator) for j in ahead], [p[j] for j in ahead]
            more, more_q = refill(min(block_size, room) - 1 - len(guesses))
            window, proposals = known[-1:] + guesses + more, proposals + more_q
        yield Pass(index=n_passes, block=start // block_size, start=start, window=fed,
                   guess=[fed[0]] + tokens + (window[1:] if stop is None else []), new_tokens=tokens,
                   seconds=time.perf_counter() - t0, cache_len=fwd.cache_len)
        n_passes += 1
