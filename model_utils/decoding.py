"""Greedy AR and Jacobi decoding for any Hugging Face causal LM, one forward pass at a time.

Both decoders are generators of `Pass` records (`decode_passes` picks one by name), so a caller can
stream, animate or interleave two runs pass by pass; `to_result` turns a finished generator into a
`DecodeResult`, and `decode` does both.

The KV cache holds the prompt plus every final token except the last one, which is always
slot 0 of the next window (the "carry"). A Jacobi pass feeds a window c of s tokens; with
a = argmax of its logits, slot i of the next state is a[i-1]. The first f slots with
c[i] == a[i-1] are verified, so the pass makes f tokens final (c[1:f] and a[f-1]) and the cache
is cropped back to the verified part.
"""
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial

import torch
from transformers import DynamicCache, PreTrainedModel

from model_utils.branches import editable, honours_masks, keep_positions, layout
from model_utils.candidates import Candidate
from model_utils.errors import UserError
from model_utils.loading import context_length, encode_prompt, eos_ids
from model_utils.pass_costs import pass_costs
from model_utils.records import DecodeResult, Pass
from model_utils.window import Planner

DECODERS = ("ar", "jacobi")
SCHEMES = ("sliding", "block")
MAX_BRANCHES = 2  # candidate branches per pass
FASTEST = dict(candidates=True, adaptive=True)  # the fastest measured setting (README), the CLI's and app's default


def speedups(applies: bool, candidates: bool | None = None, adaptive: bool | None = None) -> dict:
    """candidates and adaptive as given, else FASTEST where it applies (greedy sliding Jacobi of one prompt)
    and off elsewhere."""
    given = dict(candidates=candidates, adaptive=adaptive)
    return {k: FASTEST[k] and applies if v is None else v for k, v in given.items()}


class Forward:
    """The model's own forward over a window at explicit positions, with a rollback-able cache.

    Where the cache cannot be rolled back (sliding-window layers past the window without past
    recording, recurrent layers), it drops the cache and recomputes the whole sequence.
    """

    def __init__(self, model: PreTrainedModel, use_cache: bool = True):
        self.model = model
        self.device = model.device
        self.cache = DynamicCache(config=model.config) if use_cache else None
        if self.cache is not None:
            self.cache.activate_past_recording()
        self.sequence: list[int] = []  # every token whose K/V the cache holds (or would hold)

    @property
    def cache_len(self) -> int:
        return self.cache.get_seq_length() if self.cache is not None else len(self.sequence)

    def __call__(self, window: list[int], last_only: bool = False) -> list[int]:
        """Argmax predictions after each window token (one if last_only); the window joins the sequence."""
        return self.logits(window, last_only).argmax(-1).tolist()

    @torch.inference_mode()
    def logits(self, window: list[int], last_only: bool = False) -> torch.Tensor:
        """float32 logits after each window token (one row if last_only); the window joins the sequence."""
        start = len(self.sequence) if self.cache is not None else 0
        ids = window if self.cache is not None else self.sequence + window
        input_ids = torch.tensor([ids], device=self.device)
        position_ids = torch.arange(start, start + len(ids), device=self.device)[None]
        keep = 1 if last_only else len(window)
        out = self.model(input_ids=input_ids, position_ids=position_ids, cache=self.cache,
                         use_cache=self.cache is not None, logits_to_keep=keep)
        self.sequence += window
        return out.logits[0, -keep:].float()

    @property
    def takes_branches(self) -> bool:
        """Whether candidate branches can share a pass (model_utils.branches): a cache whose positions can be
        dropped one by one, and a forward that honours a 4D mask."""
        return editable(self.cache) and honours_masks(self.model)

    @torch.inference_mode()
    def branch_logits(self, window: list[int], branches: list[list[int]]) -> list[torch.Tensor]:
        """Logits after every slot of the window, then of each branch, from one forward; each branch continues
        window[0] and sees only the cached sequence, window[0] and its own earlier tokens. Everything fed joins
        the sequence; `keep` then picks what stays."""
        ids = window + [x for b in branches for x in b]
        positions, mask = layout(len(self.sequence), len(window), [len(b) for b in branches], self.model.dtype,
                                 self.device)
        logits = self.model(input_ids=torch.tensor([ids], device=self.device), cache=self.cache, use_cache=True,
                            position_ids=positions, attention_mask=mask, logits_to_keep=len(ids)).logits[0].float()
        self.sequence += ids
        return list(logits.split([len(window)] + [len(b) for b in branches]))

    def keep(self, fed: int, slots: list[int]) -> None:
        """Of the last `fed` tokens of the sequence, keep those at `slots` (increasing) and forget the rest."""
        if slots == list(range(len(slots))):
            self.rollback(fed - len(slots))
            return
        t = len(self.sequence) - fed
        self.sequence = self.sequence[:t] + [self.sequence[t + i] for i in slots]
        keep_positions(self.cache, torch.tensor(list(range(t)) + [t + i for i in slots], device=self.device))
        assert self.cache_len == len(self.sequence), "cache out of step with the sequence"

    def rollback(self, n: int) -> None:
        """Forget the last n tokens of the sequence."""
        if n == 0:
            return
        self.sequence = self.sequence[:-n]
        if self.cache is None:
            return
        if self.cache.is_croppable:
            self.cache.crop(-n)
        else:
            self.cache = None
        assert self.cache_len == len(self.sequence), "cache out of step with the sequence"


def check_inputs(model: PreTrainedModel, prompt_ids: list[int], max_new_tokens: int,
                 block_size: int = 1) -> int:
    """Reject bad inputs with one sentence; return max_new_tokens capped to the model's context."""
    if not prompt_ids:
        raise UserError("The prompt is empty: type something to continue.")
    if block_size < 1:
        raise UserError(f"Block size must be at least 1 (got {block_size}).")
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens must be at least 1 (got {max_new_tokens}).")
    limit = context_length(model)
    if limit is not None and len(prompt_ids) >= limit:
        raise UserError(f"The prompt is {len(prompt_ids)} tokens long but the model's context "
                        f"holds {limit}: shorten it.")
    return min(max_new_tokens, limit - len(prompt_ids)) if limit is not None else max_new_tokens


def cut_at_stop(new_tokens: list[int], known: list[int], eos_ids: set[int],
            max_new_tokens: int) -> tuple[list[int], str | None]:
    """Cut a pass's new tokens at the first EOS or the length limit; say why decoding stops."""
    for i, t in enumerate(new_tokens):
        if t in eos_ids:
            return new_tokens[: i + 1][: max_new_tokens - len(known)], "eos"
    room = max_new_tokens - len(known)
    if len(new_tokens) >= room:
        return new_tokens[:room], "length"
    return new_tokens, None


def verified(guesses: list[int], predictions: list[int]) -> int:
    """How many guesses in a row equal the model's prediction before them (predictions[i] precedes guesses[i])."""
    n = 0
    while n < len(guesses) and guesses[n] == predictions[n]:
        n += 1
    return n


class JacobiRow:
    """One prompt's Jacobi state between passes: its verified tokens, the next window, why it stopped.

    The decoders feed `window` to a forward and hand the predictions to `advance`; a window of one
    token (block_size 1) is greedy AR. Shared by the one-prompt decoders and the batched one.
    """

    def __init__(self, model: PreTrainedModel, prompt_ids: list[int], *, block_size: int, max_new_tokens: int,
                 eos_ids: set[int], scheme: str, seed: int):
        if scheme not in SCHEMES:
            raise UserError(f"Unknown Jacobi scheme {scheme!r}: choose one of {', '.join(SCHEMES)}.")
        self.max_new_tokens = check_inputs(model, prompt_ids, max_new_tokens, block_size)
        self.prompt_ids, self.block_size, self.eos_ids, self.scheme = list(prompt_ids), block_size, eos_ids, scheme
        self.generator = torch.Generator().manual_seed(seed)
        self.known: list[int] = []
        self.window: list[int] = []
        self.origins: list[str] = []  # where each window slot's guess came from
        self.kept_slots: list[int] = []  # the fed slots whose K/V the last pass keeps
        self.window_verified = 0  # how many of the window's guesses the last pass verified
        self.block, self.n_passes = 0, 0
        self.stop: str | None = None

    @property
    def cache_len(self) -> int:
        """How many tokens' K/V the cache keeps for this row: the prompt and every final token but the carry."""
        return len(self.prompt_ids) + len(self.known) - 1

    def guesses(self, k: int) -> list[int]:
        """k tokens drawn with replacement from the current sequence (reference §1A.2)."""
        if k <= 0:
            return []
        pool = self.prompt_ids + self.known
        picks = torch.randint(len(pool), (k,), generator=self.generator).tolist()
        return [pool[i] for i in picks]

    def begin(self, first: int, seconds: float) -> Pass:
        """Take the prefill's prediction (the first new token) and set up the first window."""
        self.known, self.stop = cut_at_stop([first], [], self.eos_ids, self.max_new_tokens)
        self.n_passes = 1
        if self.stop is None:
            self.set_window(self.known[-1:], min(self.block_size, self.max_new_tokens - 1) - 1)
        return Pass(index=0, block=-1, start=0, window=[], guess=[first], new_tokens=list(self.known),
                    seconds=seconds, cache_len=self.cache_len)

    def set_window(self, ahead: list[int], refill: int) -> None:
        """The next window: the carry and the model's guesses after it, then `refill` random guesses."""
        self.window = ahead + self.guesses(refill)
        self.origins = ["model"] * len(ahead) + ["random"] * max(refill, 0)

    def advance(self, predicted: list[int], seconds: float, branches: Sequence[Candidate] = (),
                branch_predicted: Sequence[list[int]] = ()) -> Pass:
        """Verify the window (and any candidate branches fed beside it) against the argmax predictions after each
        slot; keep the branch that verifies the most and set up the next window.

        The pass makes `len(new_tokens)` tokens final: the caller keeps that many slots of the winning branch
        in the cache (`kept_slots`).
        """
        window, start, s = self.window, len(self.known) - 1, len(self.window)
        f = 1 + verified(window[1:], predicted)
        winner, made, ahead, self.kept_slots = 0, window[1:f] + [predicted[f - 1]], predicted[f - 1:], list(range(f))
        self.window_verified, offset = f - 1, s
        for i, (b, bp) in enumerate(zip(branches, branch_predicted), 1):
            a = verified(list(b.tokens), [predicted[0]] + bp)
            if a + 1 > len(made):
                winner, made, ahead = i, list(b.tokens[:a]) + [bp[a - 1]], bp[a - 1:]
                self.kept_slots = [0] + list(range(offset, offset + a))
            offset += len(b.tokens)
        tokens, self.stop = cut_at_stop(made, self.known, self.eos_ids, self.max_new_tokens)
        self.kept_slots = self.kept_slots[:len(tokens)]
        self.known += tokens
        converged = f == s
        if winner:
            guess = [window[0]] + made + ahead[1:]
        else:
            guess = [window[0]] + (predicted if self.scheme == "sliding" or converged else predicted[:-1])
        block = self.block if self.scheme == "block" else start // self.block_size
        p = Pass(index=self.n_passes, block=block, start=start, window=window, guess=guess, new_tokens=tokens,
                 seconds=seconds, cache_len=self.cache_len, origins=self.origins,
                 branches=[list(b.tokens) for b in branches], branch_origins=[b.origin for b in branches],
                 winner=winner)
        self.n_passes += 1
        width = min(self.block_size, self.max_new_tokens - len(self.known))
        if self.stop is not None:
            self.window = []
        elif self.scheme == "sliding":
            self.set_window(ahead[:width], width - len(ahead))
        elif converged:
            self.block += 1
            self.set_window(self.known[-1:], width - 1)
        else:
            self.window, self.origins = predicted[f - 1: s - 1], ["model"] * (s - f)
        return p


def ar_passes(model: PreTrainedModel, prompt_ids: list[int], *, max_new_tokens: int = 256,
              eos_ids: set[int] = frozenset(), use_cache: bool = True) -> Iterator[Pass]:
    """Greedy autoregressive decoding: one new token per forward pass (a Jacobi window of one token)."""
    return jacobi_passes(model, prompt_ids, block_size=1, max_new_tokens=max_new_tokens, eos_ids=eos_ids,
                         use_cache=use_cache)


def jacobi_passes(model: PreTrainedModel, prompt_ids: list[int], *, block_size: int = 16,
                  max_new_tokens: int = 256, eos_ids: set[int] = frozenset(), scheme: str = "sliding",
                  seed: int = 0, use_cache: bool = True, candidates: bool = False, adaptive: bool = False,
                  budget: int | None = None) -> Iterator[Pass]:
    """Greedy Jacobi decoding of windows of `block_size` tokens until each reaches its fixed point.

    scheme "block": the official one: a block's window shrinks to its unverified part until the
    block converges (at least 2 passes per block). scheme "sliding": after each pass the window
    keeps the model's new guesses and is refilled to full size, so a pass can make up to
    block_size tokens final.

    Sliding only: `candidates` feeds up to MAX_BRANCHES continuations from n-grams and recycled guesses
    (model_utils.candidates; at most `budget` tokens, block_size by default) beside the window in the same
    pass and keeps the branch that verifies the most; `adaptive` picks each pass's width from measured pass
    costs (model_utils.window; the first run of a model times them, inside its prefill pass). Both leave the
    output equal to greedy AR.
    """
    row = JacobiRow(model, prompt_ids, block_size=block_size, max_new_tokens=max_new_tokens, eos_ids=eos_ids,
                    scheme=scheme, seed=seed)
    make_planner = None
    if candidates or adaptive:
        if scheme != "sliding":
            raise UserError("Candidate branches and the adaptive window work with the sliding scheme: choose it, "
                            "or turn both off.")
        budget = block_size if budget is None else budget
        if candidates and budget < 1:
            raise UserError(f"The candidate budget must be at least 1 token (got {budget}).")
        make_planner = partial(Planner, model, row.prompt_ids, block_size=block_size, candidates=candidates,
                               adaptive=adaptive, budget=budget, max_branches=MAX_BRANCHES)
    return _passes(row, Forward(model, use_cache), make_planner)


def _passes(row: JacobiRow, fwd: Forward, make_planner: Callable[[], Planner] | None = None) -> Iterator[Pass]:
    t0 = time.perf_counter()
    planner = make_planner() if make_planner is not None else None
    first = fwd(row.prompt_ids, last_only=True)[0]
    yield row.begin(first, time.perf_counter() - t0)
    if planner is not None:
        planner.extend(row.known)
    with_candidates = planner is not None and fwd.takes_branches  # the cache and the model stay what they are
    while row.stop is None:
        t0 = time.perf_counter()
        branches: list[Candidate] = []
        if planner is not None:
            width, branches = planner.plan(row.window, with_candidates)
            row.window, row.origins = row.window[:width], row.origins[:width]
        window, fed = row.window, len(row.window) + sum(len(b.tokens) for b in branches)
        if branches:
            predicted, *branch_predicted = [x.argmax(-1).tolist()
                                            for x in fwd.branch_logits(window, [list(b.tokens) for b in branches])]
        else:
            predicted, branch_predicted = fwd(window), []
        p = row.advance(predicted, 0.0, branches, branch_predicted)
        fwd.keep(fed, row.kept_slots)  # the winning branch's verified part (cut at EOS or the length limit)
        assert fwd.cache_len == p.cache_len, "cache length invariant broken"
        if planner is not None:
            planner.learn(p, row.window_verified, predicted, time.perf_counter() - t0)
        p.seconds = time.perf_counter() - t0
        yield p


def warm_up(model: PreTrainedModel) -> None:
    """Do now what the first fast Jacobi run of a model would: time its passes and check it takes branches."""
    pass_costs(model)
    honours_masks(model)


def decode_passes(model: PreTrainedModel, prompt_ids: list[int], *, decoder: str = "jacobi",
                  block_size: int = 16, max_new_tokens: int = 256, eos_ids: set[int] = frozenset(),
                  scheme: str = "sliding", seed: int = 0, use_cache: bool = True, temperature: float = 0.0,
                  top_k: int = 0, top_p: float = 1.0, candidates: bool = False,
                  adaptive: bool = False) -> Iterator[Pass]:
    """The pass generator of "ar" or "jacobi" decoding: greedy at temperature 0, else sampled exactly as AR
    sampling would (model_utils.sampling; sliding scheme). block_size, scheme, candidates and adaptive are greedy
    Jacobi's (jacobi_passes); seed seeds Jacobi's guesses and every draw."""
    if decoder not in DECODERS:
        raise UserError(f"Unknown decoder {decoder!r}: choose one of {', '.join(DECODERS)}.")
    if temperature < 0:
        raise UserError(f"The temperature must be 0 (greedy) or above (got {temperature}).")
    if decoder == "ar" and (candidates or adaptive):
        raise UserError("Candidate branches and the adaptive window are Jacobi's: choose the Jacobi decoder, "
                        "or turn both off.")
    if temperature > 0:
        if decoder == "jacobi" and (candidates or adaptive):
            raise UserError("Candidate branches and the adaptive window are for greedy decoding: turn both off "
                            "to sample.")
        from model_utils.sampling import Sampling, sampled_passes  # sampling builds on this module
        if decoder == "jacobi" and scheme != "sliding":
            raise UserError("Sampled Jacobi decoding uses the sliding scheme: choose --scheme sliding.")
        return sampled_passes(model, prompt_ids, block_size=1 if decoder == "ar" else block_size,
                              max_new_tokens=max_new_tokens, eos_ids=eos_ids, seed=seed, use_cache=use_cache,
                              sampling=Sampling(temperature, top_k, top_p))
    if decoder == "ar":
        return ar_passes(model, prompt_ids, max_new_tokens=max_new_tokens, eos_ids=eos_ids, use_cache=use_cache)
    return jacobi_passes(model, prompt_ids, block_size=block_size, max_new_tokens=max_new_tokens,
                         eos_ids=eos_ids, scheme=scheme, seed=seed, use_cache=use_cache, candidates=candidates,
                         adaptive=adaptive)


def to_result(passes: Iterable[Pass], prompt_ids: list[int], *, decoder: str, scheme: str | None,
              block_size: int, eos_ids: set[int], tokenizer=None) -> DecodeResult:
    """Run a pass generator to the end and build the record (with token texts if a tokenizer is given)."""
    done = list(passes)
    tokens = [t for p in done for t in p.new_tokens]
    stop = "eos" if tokens and tokens[-1] in eos_ids else "length"
    if decoder == "ar":
        scheme, block_size = None, 1
    result = DecodeResult(decoder, scheme, block_size, list(prompt_ids), tokens, done, stop)
    if tokenizer is not None:
        result.text = tokenizer.decode(tokens, skip_special_tokens=True)
        for p in done:
            p.guess_text = tokenizer.convert_ids_to_tokens(p.guess)
    return result


def decode(model: PreTrainedModel, prompt_ids: list[int], *, decoder: str = "jacobi",
           block_size: int = 16, max_new_tokens: int = 256, eos_ids: set[int] = frozenset(),
           scheme: str = "sliding", seed: int = 0, use_cache: bool = True, temperature: float = 0.0,
           top_k: int = 0, top_p: float = 1.0, candidates: bool = False, adaptive: bool = False,
           tokenizer=None) -> DecodeResult:
    """Decode with "ar" or "jacobi" (greedy, or sampled at temperature > 0) and return the whole record."""
    passes = decode_passes(model, prompt_ids, decoder=decoder, block_size=block_size, max_new_tokens=max_new_tokens,
                           eos_ids=eos_ids, scheme=scheme, seed=seed, use_cache=use_cache, temperature=temperature,
                           top_k=top_k, top_p=top_p, candidates=candidates, adaptive=adaptive)
    return to_result(passes, prompt_ids, decoder=decoder, scheme=scheme, block_size=block_size, eos_ids=eos_ids,
                     tokenizer=tokenizer)


def decode_text(model: PreTrainedModel, tokenizer, prompt: str | list[dict], **options) -> DecodeResult:
    """Decode a prompt text (or chat messages) through the chat template, stopping at the model's EOS ids."""
    return decode(model, encode_prompt(tokenizer, prompt), eos_ids=eos_ids(model, tokenizer), tokenizer=tokenizer,
                  **options)
