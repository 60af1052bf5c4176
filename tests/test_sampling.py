"""Sampled AR and Jacobi: the same distribution as AR sampling, seeded, greedy at temperature 0."""
from collections import Counter

import pytest
import torch

from model_utils.decoding import decode
from model_utils.errors import UserError
from model_utils.metrics import summarize
from model_utils.sampling import Sampling
from model_utils.tiny_models import tiny_model

PROMPT = [1, 17, 33, 5, 60, 8]
NEW, TOP_K, RUNS = 4, 2, 600


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def exact_distribution(model) -> dict[tuple, float]:
    """P(x1..x4) of AR sampling with top-k 2 at temperature 1, by enumerating every continuation."""
    sampling, frontier = Sampling(1.0, TOP_K), {(): 1.0}
    for _ in range(NEW):
        grown = {}
        for seq, prob in frontier.items():
            with torch.no_grad():
                logits = model(torch.tensor([PROMPT + list(seq)])).logits[0, -1:]
            p = sampling.probs(logits)[0]
            for t in torch.nonzero(p).flatten().tolist():
                grown[seq + (t,)] = prob * float(p[t])
        frontier = grown
    return frontier


def chi_square(samples: Counter, exact: dict) -> float:
    n = sum(samples.values())
    return sum((samples.get(k, 0) - n * p) ** 2 / (n * p) for k, p in exact.items())


@pytest.mark.slow  # 1,200 sampled runs
@pytest.mark.parametrize("decoder, block_size", [("ar", 1), ("jacobi", 4)])
def test_sampled_outputs_follow_the_ar_sampling_distribution(model, decoder, block_size):
    exact = exact_distribution(model)
    assert len(exact) == TOP_K ** NEW and abs(sum(exact.values()) - 1) < 1e-9
    samples = Counter(tuple(decode(model, PROMPT, decoder=decoder, block_size=block_size, max_new_tokens=NEW,
                                   temperature=1.0, top_k=TOP_K, seed=seed).token_ids) for seed in range(RUNS))
    assert set(samples) <= set(exact)  # nothing outside the top-2 of each step (keeping every guess breaks this)
    # 15 degrees of freedom: about 15 ± 5.5 when the distributions agree; 45 is p ≈ 1e-4
    assert chi_square(samples, exact) < 45


def test_jacobi_sampling_keeps_some_guesses(model):
    """The test above must exercise the acceptance rule: some passes make more than one token final."""
    runs = [decode(model, PROMPT, block_size=4, max_new_tokens=12, temperature=1.0, top_k=TOP_K, seed=s)
            for s in range(50)]
    assert any(len(p.new_tokens) > 1 for r in runs for p in r.passes[1:])


def test_the_same_seed_gives_the_same_text_and_temperature_0_is_greedy(model):
    def run(seed, **kw):
        return decode(model, PROMPT, block_size=8, max_new_tokens=24, seed=seed, **kw).token_ids
    assert run(3, temperature=0.9) == run(3, temperature=0.9)
    assert len({tuple(run(s, temperature=0.9)) for s in range(6)}) > 1
    assert run(3, temperature=0.0) == decode(model, PROMPT, decoder="ar", max_new_tokens=24).token_ids


def test_a_sampled_record_has_consistent_passes(model):
    r = decode(model, PROMPT, block_size=6, max_new_tokens=30, temperature=0.7, top_p=0.9, seed=1)
    assert [t for p in r.passes for t in p.new_tokens] == r.token_ids
    assert all(p.guess[: len(p.new_tokens) + 1] == [p.guess[0], *p.new_tokens] for p in r.passes[1:])
    assert summarize(r)["tokens"] == len(r.token_ids)


@pytest.mark.parametrize("kwargs, message", [(dict(temperature=-1.0), "0 \\(greedy\\) or above"),
                                             (dict(temperature=1.0, top_p=0.0), "top-p must be in"),
                                             (dict(temperature=1.0, top_k=-2), "top-k must be"),
                                             (dict(temperature=1.0, scheme="block"), "sliding scheme")])
def test_bad_sampling_settings_are_refused_in_one_sentence(model, kwargs, message):
    with pytest.raises(UserError, match=message):
        decode(model, PROMPT, max_new_tokens=4, **kwargs)


def test_top_k_and_top_p_keep_the_likeliest_tokens():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert torch.count_nonzero(Sampling(1.0, top_k=2).probs(logits)) == 2
    p = Sampling(1.0, top_p=0.7).probs(logits)[0]  # softmax: 0.64, 0.24, ...: the first two hold 0.7
    assert torch.count_nonzero(p) == 2 and abs(float(p.sum()) - 1) < 1e-12
