"""Candidate continuations for a Jacobi pass: n-grams from the verified text and recycled earlier guesses.

A candidate is a guess of the tokens after the carry (the last verified token). The decoder feeds it as an extra
branch of the same pass and keeps it only as far as the model's own predictions confirm it (beyond-jacobi.md §1.5,
§2.3), so a bad candidate costs width, never correctness.

- "ngram": the last 3 (or 2) verified tokens occurred earlier in the prompt or the output; the candidate is what
  followed that occurrence (prompt lookup, Saxena 2023; Lookahead's pool from the prompt and output).
- "recycled": guesses that earlier passes refuted at their position (Jacobi Forcing's rejection recycling) are kept
  in a small pool; the candidate is what followed the carry's token in the newest pooled guess that contains it.
"""
from collections import deque
from dataclasses import dataclass

NGRAM_SIZES = (3, 2)


@dataclass(frozen=True)
class Candidate:
    tokens: tuple[int, ...]
    origin: str  # "ngram" or "recycled"


class NgramIndex:
    """Where each n-gram of a growing token list last occurred, for n in NGRAM_SIZES: an O(1) lookup per pass."""

    def __init__(self, tokens: list[int]):
        self.tokens: list[int] = []
        self.after: dict[tuple[int, ...], int] = {}  # n-gram -> index of the token that followed its newest occurrence
        self.extend(tokens)

    def extend(self, tokens: list[int]) -> None:
        for t in tokens:
            i = len(self.tokens)  # t's index: the n-grams ending just before it are now followed by something
            for n in NGRAM_SIZES:
                if i >= n:
                    self.after[tuple(self.tokens[i - n:i])] = i
            self.tokens.append(t)

    def continuations(self, length: int) -> list[tuple[int, ...]]:
        """What followed the newest earlier occurrence of the last n tokens, longest n first (distinct, non-empty)."""
        found = []
        for n in NGRAM_SIZES:
            start = self.after.get(tuple(self.tokens[-n:])) if len(self.tokens) > n else None
            if start is not None:
                tokens = tuple(self.tokens[start:start + length])
                if tokens and tokens not in found:
                    found.append(tokens)
        return found


class RecyclePool:
    """The newest `size` refuted guess sequences; a candidate is what followed the carry's token in one of them."""

    def __init__(self, size: int = 8):
        self.sequences: deque[tuple[int, ...]] = deque(maxlen=size)

    def add(self, tokens: list[int]) -> None:
        if len(tokens) >= 2:
            self.sequences.append(tuple(tokens))

    def continuations(self, carry: int, length: int) -> list[tuple[int, ...]]:
        found = []
        for seq in reversed(self.sequences):
            if carry in seq[:-1]:
                start = seq.index(carry) + 1
                tokens = seq[start:start + length]
                if tokens not in found:
                    found.append(tokens)
        return found


def propose(index: NgramIndex, pool: RecyclePool, length: int, guesses: list[int], limit: int) -> list[Candidate]:
    """Up to `limit` candidates of at most `length` tokens after the carry, n-grams first, none a prefix of `guesses`
    (the main window's own guesses after the carry, which the pass verifies anyway)."""
    carry = index.tokens[-1]
    found: list[Candidate] = []
    for origin, options in (("ngram", index.continuations(length)), ("recycled", pool.continuations(carry, length))):
        for tokens in options:
            if tuple(guesses[:len(tokens)]) != tokens and all(c.tokens != tokens for c in found):
                found.append(Candidate(tokens, origin))
    return found[:limit]
