"""Batched greedy AR and Jacobi == one prompt at a time, token for token and pass for pass."""
import random

import pytest
import torch

from model_utils.batching import BatchForward, batch_decode
from model_utils.decoding import decode
from model_utils.errors import UserError
from model_utils.loading import encode_prompt, eos_ids, load_model
from model_utils.tiny_models import tiny_model

FAMILIES = ["llama", "gpt2", "qwen2", "gpt-neox", "phi", "mistral-sliding"]
RNG = random.Random(1)
PROMPTS = [[1] + [RNG.randrange(3, 96) for _ in range(n)] for n in (2, 19, 7, 11, 3, 15, 9)]  # ragged
MAX_NEW = 40


def eos_in_mid_run(model) -> set[int]:
    """One or two EOS ids that end rows in different passes and leave some to run to the length limit."""
    outputs = [decode(model, p, decoder="ar", max_new_tokens=MAX_NEW).token_ids for p in PROMPTS]
    tokens = sorted({t for out in outputs for t in out})
    for eos in [{t} for t in tokens] + [{a, b} for a in tokens for b in tokens if a < b]:
        ends = [next((j for j, t in enumerate(out) if t in eos), None) for out in outputs]
        if None in ends and len({e for e in ends if e}) >= 2:
            return eos
    raise AssertionError("no EOS ids end the rows at different times")


@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
    return tiny_model(request.param)


@pytest.mark.parametrize("decoder,scheme,block_size", [("ar", "sliding", 1), ("jacobi", "sliding", 5),
                                                       ("jacobi", "sliding", 16), ("jacobi", "block", 7)])
def test_batched_equals_one_at_a_time(model, decoder, scheme, block_size):
    eos = eos_in_mid_run(model)
    alone = [decode(model, p, decoder=decoder, scheme=scheme, block_size=block_size, max_new_tokens=MAX_NEW,
                    eos_ids=eos) for p in PROMPTS]
    batched = batch_decode(model, PROMPTS, decoder=decoder, scheme=scheme, block_size=block_size, batch_size=3,
                           max_new_tokens=MAX_NEW, eos_ids=eos)
    assert [r.token_ids for r in batched] == [r.token_ids for r in alone]
    assert [[p.new_tokens for p in r.passes] for r in batched] == [[p.new_tokens for p in r.passes] for r in alone]
    assert {r.stop_reason for r in alone} == {"eos", "length"}  # rows finish early and late
    assert len({len(r.passes) for r in alone}) > 1


def test_jacobi_equals_ar_when_batched(model):
    ar = batch_decode(model, PROMPTS, decoder="ar", batch_size=4, max_new_tokens=MAX_NEW)
    jacobi = batch_decode(model, PROMPTS, decoder="jacobi", block_size=8, batch_size=4, max_new_tokens=MAX_NEW)
    assert [r.token_ids for r in jacobi] == [r.token_ids for r in ar]


@pytest.mark.parametrize("family,slack", [("llama", None), ("llama", 0), ("mistral-sliding", None)])
def test_the_cache_stays_within_its_bound(monkeypatch, family, slack):
    """After every pass the cache is at most `slack` columns longer than its longest row, and rows leave."""
    model = tiny_model(family)
    seen = []
    keep, init = BatchForward.keep, BatchForward.__init__

    def spy_init(self, *args, **kwargs):
        init(self, *args, **kwargs, **({} if slack is None else {"slack": slack}))

    def spy_keep(self, counts):
        keep(self, counts)
        seen.append((self.cache_len, max(self.valid), self.slack, self.rows,
                     sum(layer.keys.shape[2] for layer in self.cache.layers) // len(self.cache.layers)))

    monkeypatch.setattr(BatchForward, "__init__", spy_init)
    monkeypatch.setattr(BatchForward, "keep", spy_keep)
    batch_decode(model, PROMPTS, block_size=16, batch_size=4, max_new_tokens=MAX_NEW)
    assert seen and all(length <= longest + slack and stored == length for length, longest, slack, _, stored in seen)
    assert seen[0][3] == 4 and seen[-1][3] < 4  # full batch first, finished rows gone at the end
    if family == "mistral-sliding" or slack == 0:
        assert all(length == longest for length, longest, *_ in seen)


def test_batched_equals_one_at_a_time_on_the_embedded_pair_in_float32():
    for name in ("tiny-arith-base", "tiny-arith-cllm"):
        model, tokenizer = load_model(name, dtype="float32")
        prompts = [encode_prompt(tokenizer, q) for q in (
            "Tom has 3 apples and buys 5 more. How many apples does he have?",
            "A box holds 12 pens. How many pens are in 4 boxes?",
            "Sara reads 15 pages a day. How many pages does she read in a week?")]
        eos = eos_ids(model, tokenizer)
        for decoder in ("ar", "jacobi"):
            alone = [decode(model, p, decoder=decoder, max_new_tokens=96, eos_ids=eos).token_ids for p in prompts]
            batched = batch_decode(model, prompts, decoder=decoder, batch_size=2, max_new_tokens=96, eos_ids=eos)
            assert [r.token_ids for r in batched] == alone, (name, decoder)


@pytest.mark.parametrize("kwargs,message", [({"batch_size": 0}, "batch size must be at least 1"),
                                            ({"decoder": "beam"}, "Unknown decoder"),
                                            ({"max_new_tokens": 0}, "max_new_tokens must be at least 1")])
def test_bad_batch_inputs_are_refused_in_one_sentence(kwargs, message):
    with pytest.raises(UserError, match=message):
        batch_decode(tiny_model("llama"), PROMPTS, **kwargs)


def test_a_model_with_other_than_attention_layers_is_refused():
    model = tiny_model("llama")
    model.config.layer_types = ["full_attention", "linear_attention"]
    with pytest.raises(UserError, match="attention layers only.*--batch-size 1"):
        batch_decode(model, PROMPTS)


def test_no_prompts_give_no_results():
    assert batch_decode(tiny_model("llama"), []) == []


def test_more_rows_than_prompts():
    model = tiny_model("qwen2", dtype=torch.float64)
    alone = decode(model, PROMPTS[1], max_new_tokens=MAX_NEW).token_ids
    assert batch_decode(model, PROMPTS[1:2], batch_size=16, max_new_tokens=MAX_NEW)[0].token_ids == alone


def test_rows_near_the_end_of_the_context_stay_inside_it():
    """gpt2 has absolute positions (128 here): a short row's padding slots must not point past them."""
    model = tiny_model("gpt2")
    prompts = [[1] + [5 + i % 80 for i in range(110)], [1, 17, 33]]
    alone = [decode(model, p, block_size=16, max_new_tokens=40).token_ids for p in prompts]
    assert [r.token_ids for r in batch_decode(model, prompts, block_size=16, max_new_tokens=40)] == alone
