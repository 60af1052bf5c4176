"""Greedy Jacobi (both schemes) == greedy AR == transformers generate, token for token."""
import pytest
import torch

from model_utils.decoding import decode, decode_passes, jacobi_passes, to_result
from model_utils.errors import UserError
from model_utils.metrics import run_progress, summarize
from model_utils.tiny_models import tiny_model, tiny_tokenizer

FAMILIES = ["llama", "gpt2", "qwen2", "gpt-neox", "phi", "mistral-sliding"]
PROMPT = [1, 17, 33, 5, 60, 8]
MAX_NEW = 24


def reference(model, prompt, max_new, eos=None):
    out = model.generate(torch.tensor([prompt]), max_new_tokens=max_new, do_sample=False,
                         eos_token_id=eos, pad_token_id=0)
    return out[0, len(prompt):].tolist()


@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
    return tiny_model(request.param)


@pytest.mark.parametrize("scheme", ["sliding", "block"])
@pytest.mark.parametrize("block_size", [1, 2, 7, 16, MAX_NEW + 9])
def test_jacobi_equals_ar_equals_generate(model, scheme, block_size):
    ref = reference(model, PROMPT, MAX_NEW)
    ar = decode(model, PROMPT, decoder="ar", max_new_tokens=MAX_NEW)
    jac = decode(model, PROMPT, decoder="jacobi", scheme=scheme, block_size=block_size, max_new_tokens=MAX_NEW)
    assert ar.token_ids == ref
    assert jac.token_ids == ref
    assert len(ar.passes) == MAX_NEW


@pytest.mark.parametrize("scheme", ["sliding", "block"])
def test_eos_inside_a_block_stops_like_generate(model, scheme):
    free = reference(model, PROMPT, MAX_NEW)
    eos = free[9]  # a token that first appears around the middle of a 7-token block
    ref = reference(model, PROMPT, MAX_NEW, eos=eos)
    assert ref[-1] == eos and len(ref) < MAX_NEW
    jac = decode(model, PROMPT, decoder="jacobi", scheme=scheme, block_size=7, max_new_tokens=MAX_NEW,
                 eos_ids={eos})
    ar = decode(model, PROMPT, decoder="ar", max_new_tokens=MAX_NEW, eos_ids={eos})
    assert jac.token_ids == ar.token_ids == ref
    assert jac.stop_reason == "eos"


@pytest.mark.parametrize("scheme", ["sliding", "block"])
def test_cache_invariants_and_pass_budget(model, scheme):
    n = 7
    known = 0
    passes = list(jacobi_passes(model, PROMPT, block_size=n, max_new_tokens=MAX_NEW, scheme=scheme))
    for p in passes:
        known += len(p.new_tokens)
        assert p.cache_len == len(PROMPT) + known - 1  # every final token but the carry is cached
        assert 1 <= len(p.new_tokens) <= max(n, 1)
    if scheme == "block":
        per_block = {}
        for p in passes[1:]:
            per_block[p.block] = per_block.get(p.block, 0) + 1
        assert all(count <= n for count in per_block.values())


def test_cached_and_uncached_agree(model):
    cached = decode(model, PROMPT, block_size=5, max_new_tokens=MAX_NEW)
    uncached = decode(model, PROMPT, block_size=5, max_new_tokens=MAX_NEW, use_cache=False)
    assert cached.token_ids == uncached.token_ids
    assert [p.guess for p in cached.passes] == [p.guess for p in uncached.passes]


def test_final_tokens_equal_sum_of_fast_forwards():
    model = tiny_model("llama", seed=3)
    for scheme in ("sliding", "block"):
        result = decode(model, PROMPT, scheme=scheme, block_size=6, max_new_tokens=30)
        assert sum(run_progress(result).fast_forward) == len(result.token_ids)
        summary = summarize(result)
        assert summary["forward_passes"] == len(result.passes)
        assert summary["tokens_per_forward"] == pytest.approx(30 / len(result.passes))


def test_seed_makes_runs_reproducible():
    model = tiny_model("qwen2")
    a = decode(model, PROMPT, block_size=8, max_new_tokens=20, seed=5)
    b = decode(model, PROMPT, block_size=8, max_new_tokens=20, seed=5)
    assert [p.window for p in a.passes] == [p.window for p in b.passes]


def test_record_round_trips_through_json():
    import json

    from model_utils.records import DecodeResult
    result = decode(tiny_model("gpt2"), PROMPT, block_size=4, max_new_tokens=10)
    again = DecodeResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt=[]), "empty"),
    (dict(block_size=0), "Block size"),
    (dict(block_size=-3), "Block size"),
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(prompt=[5] * 128), "context"),
    (dict(scheme="diagonal"), "scheme"),
])
def test_bad_inputs_are_refused_in_one_sentence(kwargs, message):
    model = tiny_model("llama")
    args = dict(prompt=PROMPT, block_size=4, max_new_tokens=8, scheme="sliding") | kwargs
    with pytest.raises(UserError, match=message):
        list(jacobi_passes(model, args["prompt"], block_size=args["block_size"],
                           max_new_tokens=args["max_new_tokens"], scheme=args["scheme"]))


def test_decode_passes_picks_the_decoder_by_name():
    model = tiny_model("llama")
    ar = list(decode_passes(model, PROMPT, decoder="ar", max_new_tokens=6))
    jac = list(decode_passes(model, PROMPT, decoder="jacobi", block_size=4, max_new_tokens=6))
    assert len(ar) == 6 and all(len(p.new_tokens) == 1 for p in ar)
    assert [t for p in jac for t in p.new_tokens] == [t for p in ar for t in p.new_tokens]
    assert len(jac[1].window) == 4 and all(len(p.window) == 1 for p in ar[1:])  # Jacobi windows, AR carries


def test_an_unknown_decoder_is_refused_in_one_sentence():
    with pytest.raises(UserError, match="Unknown decoder 'beam': choose one of ar, jacobi"):
        decode_passes(tiny_model("llama"), PROMPT, decoder="beam")
    with pytest.raises(UserError, match="Unknown decoder"):
        decode(tiny_model("llama"), PROMPT, decoder="AR")


def test_to_result_builds_the_record_of_a_pass_generator():
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    passes = decode_passes(model, PROMPT, decoder="ar", max_new_tokens=5, block_size=9, scheme="block")
    result = to_result(passes, PROMPT, decoder="ar", scheme="block", block_size=9, eos_ids=set(), tokenizer=tokenizer)
    assert (result.decoder, result.scheme, result.block_size, result.stop_reason) == ("ar", None, 1, "length")
    assert result.token_ids == decode(model, PROMPT, decoder="ar", max_new_tokens=5).token_ids
    assert result.text == tokenizer.decode(result.token_ids, skip_special_tokens=True)
    assert result.passes[1].guess_text == tokenizer.convert_ids_to_tokens(result.passes[1].guess)


def test_generation_is_capped_at_the_context():
    model = tiny_model("llama")
    prompt = [5] * 120
    result = decode(model, prompt, block_size=16, max_new_tokens=50)
    assert len(result.token_ids) == 128 - 120
    assert result.token_ids == decode(model, prompt, decoder="ar", max_new_tokens=50).token_ids


@pytest.mark.parametrize("scheme", ["sliding", "block"])
def test_eos_in_the_middle_of_a_multi_token_pass(scheme):
    """Phi seed 3 makes [20, 5, 74] final in one pass; with 5 as EOS the pass must be cut after it."""
    model = tiny_model("phi", seed=3)
    free = decode(model, PROMPT, scheme=scheme, block_size=7, max_new_tokens=MAX_NEW)
    assert any(p.new_tokens == [20, 5, 74] for p in free.passes)
    ref = reference(model, PROMPT, MAX_NEW, eos=5)
    jac = decode(model, PROMPT, scheme=scheme, block_size=7, max_new_tokens=MAX_NEW, eos_ids={5})
    assert jac.token_ids == ref and ref[-2:] == [20, 5]
    limited = decode(model, PROMPT, scheme=scheme, block_size=7, max_new_tokens=len(ref) - 1)
    assert limited.token_ids == ref[:-1]  # the length limit also cuts a multi-token pass
