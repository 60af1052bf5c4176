"""Candidate branches and the cost-aware window: exact (== greedy AR) on every family, and doing what they say."""
import copy
import os
from functools import partial

import pytest
import torch

from model_utils import pass_costs as pass_costs_module
from model_utils.branches import honours_masks
from model_utils.candidates import Candidate, NgramIndex, RecyclePool, propose
from model_utils.decoding import Forward, JacobiRow, _passes, decode, jacobi_passes
from model_utils.errors import UserError
from model_utils.loading import encode_prompt, eos_ids, load_model
from model_utils.pass_costs import PassCosts, pass_costs
from model_utils.records import DecodeResult
from model_utils.tiny_models import tiny_model
from model_utils.window import STRETCH, Planner, WidthStats, within_budget
from viz.trajectory import CANDIDATE_LABEL, candidate_cells, trajectory_figure

FAMILIES = ["llama", "gpt2", "qwen2", "gpt-neox", "phi", "mistral-sliding"]
VARIANTS = [dict(candidates=True), dict(adaptive=True), dict(candidates=True, adaptive=True)]
PROMPTS = [[1, 17, 33, 5, 60, 8], [4, 9, 4, 9, 4, 9, 4], [30, 31, 32, 33, 30, 31, 32, 33, 30, 31]]
MAX_NEW = 40


@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
    return tiny_model(request.param)


@pytest.mark.parametrize("block_size", [3, 16])
def test_every_variant_equals_greedy_ar_in_float64(model, block_size):
    wins = 0
    for prompt in PROMPTS:
        ar = decode(model, prompt, decoder="ar", max_new_tokens=MAX_NEW).token_ids
        for options in VARIANTS:
            result = decode(model, prompt, block_size=block_size, max_new_tokens=MAX_NEW, **options)
            assert result.token_ids == ar, options
            wins += sum(p.winner > 0 for p in result.passes)
    sliding_window = getattr(model.config, "sliding_window", None) is not None
    assert (wins == 0) if sliding_window else (wins > 0)  # branches are fed, and win, where the cache allows


def test_a_sliding_window_model_gets_no_branches():
    model = tiny_model("mistral-sliding")
    result = decode(model, PROMPTS[1], block_size=8, max_new_tokens=MAX_NEW, candidates=True)
    assert all(not p.branches for p in result.passes)


def test_candidates_are_cut_to_the_room_left(model):
    prompt, near_the_end = PROMPTS[2], 0
    for max_new in (1, 3, 9, 20, 30, 40):
        ar = decode(model, prompt, decoder="ar", max_new_tokens=max_new).token_ids
        result = decode(model, prompt, block_size=16, max_new_tokens=max_new, candidates=True, adaptive=True)
        assert result.token_ids == ar and len(result.token_ids) == max_new
        made = 0
        for p in result.passes:
            room = max_new - made
            assert all(len(b) + 1 <= room for b in p.branches)  # a branch and its bonus token fit the room left
            near_the_end += bool(p.branches) and room < 16  # fed where a whole-window branch would not fit
            made += len(p.new_tokens)
    sliding_window = getattr(model.config, "sliding_window", None) is not None
    assert sliding_window or near_the_end > 0


def test_eos_inside_a_winning_branch_stops_there():
    model = tiny_model("qwen2", seed=2)  # a recycled candidate wins with a token the answer has not had before
    free = decode(model, PROMPTS[1], block_size=8, max_new_tokens=MAX_NEW, candidates=True)
    before, eos = [], None
    for p in free.passes:
        fresh = [t for t in p.new_tokens[1:-1] if t not in before + p.new_tokens[:1]]
        if p.winner and fresh:  # a token this branch guessed that the answer has not had before
            eos = fresh[0]
            break
        before += p.new_tokens
    assert eos is not None
    ar = decode(model, PROMPTS[1], decoder="ar", max_new_tokens=MAX_NEW, eos_ids={eos})
    result = decode(model, PROMPTS[1], block_size=8, max_new_tokens=MAX_NEW, eos_ids={eos}, candidates=True)
    assert result.token_ids == ar.token_ids and result.token_ids[-1] == eos and result.stop_reason == "eos"
    assert result.passes[-1].winner > 0 and result.passes[-1].new_tokens[-1] == eos


def test_cache_holds_the_prompt_and_every_final_token_but_the_carry(model):
    row = JacobiRow(model, PROMPTS[2], block_size=6, max_new_tokens=MAX_NEW, eos_ids=set(), scheme="sliding", seed=0)
    fwd = Forward(model)
    planner = partial(Planner, model, row.prompt_ids, block_size=6, candidates=True, adaptive=False, budget=6,
                      max_branches=2)
    for p in _passes(row, fwd, planner):
        assert fwd.sequence == PROMPTS[2] + row.known[:-1]
        assert 1 <= len(p.new_tokens) <= 6
    fresh = Forward(model)
    fresh.logits(PROMPTS[2] + row.known[:-1])
    assert torch.allclose(fwd.logits(row.known[-1:]), fresh.logits(row.known[-1:]), atol=1e-10)


def test_a_forward_that_ignores_the_mask_gets_no_branches():
    model = tiny_model("llama", seed=4)
    forward = model.forward
    model.forward = lambda *args, attention_mask=None, **kw: forward(*args, **kw)  # e.g. an ALiBi or flash model
    assert not honours_masks(model)
    result = decode(model, PROMPTS[1], block_size=8, max_new_tokens=MAX_NEW, candidates=True)
    assert all(not p.branches for p in result.passes)
    assert result.token_ids == decode(model, PROMPTS[1], decoder="ar", max_new_tokens=MAX_NEW).token_ids


def test_pass_costs_stay_inside_a_short_context():
    model = tiny_model("gpt2")  # learned positions: 128 of them
    result = decode(model, PROMPTS[0], block_size=60, max_new_tokens=MAX_NEW, candidates=True, adaptive=True)
    assert result.token_ids == decode(model, PROMPTS[0], decoder="ar", max_new_tokens=MAX_NEW).token_ids


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("family", ["llama", "gpt2", "phi"])
def test_each_branch_sees_only_the_sequence_and_itself(family, attention):
    model = tiny_model(family)
    model.config._attn_implementation = attention
    prefix, window, branches = [1, 17, 33, 5, 60], [8, 40, 41, 42], [[50, 51, 52], [60, 61]]
    fwd = Forward(model)
    fwd.logits(prefix)
    alone = []
    for tokens in [window] + [[window[0]] + b for b in branches]:
        f = copy.deepcopy(fwd)
        alone.append(f.logits(tokens))
    main, first, second = fwd.branch_logits(window, branches)
    assert torch.allclose(main, alone[0], atol=1e-10)
    assert torch.allclose(first, alone[1][1:], atol=1e-10)
    assert torch.allclose(second, alone[2][1:], atol=1e-10)


def test_keeping_a_branch_leaves_the_cache_of_a_fresh_prefill(model):
    if getattr(model.config, "sliding_window", None) is not None:
        pytest.skip("branches are not fed to sliding-window caches")
    prefix, window, branches = [1, 17, 33, 5, 60], [8, 40, 41, 42], [[50, 51, 52], [60, 61]]
    fwd = Forward(model)
    fwd.logits(prefix)
    fwd.branch_logits(window, branches)
    fwd.keep(9, [0, 7, 8])  # the carry 8, then the second branch: 60, 61
    assert fwd.sequence == prefix + [8, 60, 61] and fwd.cache_len == 8
    fresh = Forward(model)
    fresh.logits(prefix + [8, 60, 61])
    assert torch.allclose(fwd.logits([7]), fresh.logits([7]), atol=1e-10)


def test_embedded_models_stay_exact_in_float32():
    for name in ("tiny-arith-base", "tiny-arith-cllm"):
        model, tokenizer = load_model(f"assets/models/{name}", device="cpu")
        eos = eos_ids(model, tokenizer)
        for question in ("Tom has 3 boxes with 12 apples each. He eats 5 apples. How many apples are left?",
                         "A shop sells 4 pens for 3 dollars. How much do 20 pens cost?"):
            ids = encode_prompt(tokenizer, question)
            ar = decode(model, ids, decoder="ar", max_new_tokens=96, eos_ids=eos).token_ids
            for options in VARIANTS:
                assert decode(model, ids, max_new_tokens=96, eos_ids=eos, **options).token_ids == ar, (name, options)


def test_records_say_where_guesses_came_from_and_which_branch_won():
    result = decode(tiny_model("qwen2"), PROMPTS[1], block_size=8, max_new_tokens=MAX_NEW, candidates=True)
    for p in result.passes[1:]:
        assert len(p.origins) == len(p.window) and set(p.origins) <= {"model", "random"}
        assert len(p.branches) == len(p.branch_origins) and set(p.branch_origins) <= {"ngram", "recycled"}
        assert 0 <= p.winner <= len(p.branches)
        if p.winner:
            assert p.new_tokens[:-1] == p.branches[p.winner - 1][:len(p.new_tokens) - 1]
    assert "random" in result.passes[1].origins  # the first window is refilled at random
    again = DecodeResult.from_dict(result.to_dict())
    assert [p.winner for p in again.passes] == [p.winner for p in result.passes]


def test_ngram_index_continues_the_newest_earlier_occurrence():
    index = NgramIndex([5, 6, 7, 8, 1, 5, 6, 7, 9, 2])
    index.extend([5, 6, 7])
    assert index.continuations(3) == [(9, 2, 5)]  # "5 6 7" last occurred before "9 2"; "6 7" agrees
    index.extend([4])
    assert index.continuations(3) == []


def test_recycle_pool_and_propose():
    pool = RecyclePool(size=2)
    pool.add([3, 4, 5, 6])
    pool.add([9, 4, 8])
    pool.add([1])  # too short to continue anything
    assert pool.continuations(4, 5) == [(8,), (5, 6)]
    index = NgramIndex([1, 2, 3, 7, 7, 1, 2, 3, 4])
    found = propose(index, pool, 4, guesses=[5, 6, 0], limit=3)
    assert found == [Candidate((8,), "recycled")]  # (5, 6) repeats the window's own guesses
    assert propose(index, pool, 4, guesses=[0], limit=0) == []


def test_candidates_are_kept_within_the_budget():
    found = [Candidate((1, 2, 3), "ngram"), Candidate((4, 5, 6, 7), "recycled"), Candidate((8,), "recycled")]
    assert within_budget(found, 4) == [found[0], found[2]]


def test_pass_costs_interpolate_and_never_fall_with_the_width():
    costs = PassCosts({1: 1.0, 4: 2.5, 16: 4.0})
    assert costs(1) == 1.0 and costs(2) == pytest.approx(1.5) and costs(16) == 4.0 and costs(40) == 4.0


def test_the_block_size_is_played_first_and_a_narrower_width_only_where_it_could_pay():
    costs = PassCosts({1: 1.0, 2: 1.1, 16: 2.0})
    stats = WidthStats([1, 2, 16])
    assert stats.choose(costs, 0.0) == 16  # nothing played yet: the block size the user gave
    for _ in range(8):
        stats.record(16, 5, 0)  # guesses that hold: 5 tokens a pass for twice the cost
    assert stats.choose(costs, 0.0) == 16  # 1 or 2 tokens a pass could not beat 2.5 per unit of cost
    failing = WidthStats([1, 2, 16])
    for _ in range(8):
        failing.record(16, 1, 0)
    assert failing.choose(costs, 0.0) == 1  # guesses that fail: AR's single token is cheaper
    for _ in range(50):
        failing.record(1, 1, 0)
        failing.record(2, 1, 0)  # a second slot that never holds
    assert failing.choose(costs, 0.0) == 1  # a model whose guesses fail decodes as AR


def test_the_adaptive_window_starts_at_the_block_size():
    model = tiny_model("llama")  # a new model object: nothing is known of its widths yet
    result = decode(model, [1, 17, 33, 5, 60, 8], block_size=4, max_new_tokens=100, adaptive=True)
    widths = [len(p.window) for p in result.passes[1:]]
    assert widths[:STRETCH] == [4] * STRETCH
    assert min(widths[STRETCH:]) < 4  # a random model's guesses fail: it tries narrower windows


def test_bad_combinations_are_refused_in_one_sentence():
    model = tiny_model("llama")
    with pytest.raises(UserError, match="sliding scheme"):
        decode(model, PROMPTS[0], scheme="block", candidates=True)
    with pytest.raises(UserError, match="greedy"):
        decode(model, PROMPTS[0], temperature=0.7, adaptive=True)
    with pytest.raises(UserError, match="Jacobi's"):
        decode(model, PROMPTS[0], decoder="ar", candidates=True)
    with pytest.raises(UserError, match="budget must be at least 1"):
        jacobi_passes(model, PROMPTS[0], candidates=True, budget=0)


def test_the_stepper_marks_what_a_winning_candidate_guessed():
    result = decode(tiny_model("phi"), PROMPTS[1], block_size=8, max_new_tokens=MAX_NEW, candidates=True)
    cells = candidate_cells(result)
    won = [k for k, p in enumerate(result.passes) if p.winner]
    assert cells and {k for k, _ in cells} <= set(won)
    fig = trajectory_figure(result, current=won[0])
    assert any(t.name == CANDIDATE_LABEL for t in fig.data)
    marks = fig.frames[won[0]].data[1]
    assert len(marks.x) >= 1 and "candidate" in marks.hovertext[0]
    assert "candidate won" in fig.frames[won[0]].layout.title.text


def test_pass_costs_are_measured_once_per_shape_and_machine_and_kept_on_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("CLLM_LAB_CACHE", str(tmp_path))
    first = pass_costs(tiny_model("llama", seed=3))
    assert os.path.isfile(tmp_path / "pass_costs.json")

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")
    monkeypatch.setattr(pass_costs_module, "measure_pass_costs", no_measuring)
    again = pass_costs(tiny_model("llama", seed=4))  # another model object (other weights), the same shape
    assert again.seconds == first.seconds
    with pytest.raises(AssertionError, match="measured again"):
        pass_costs(tiny_model("gpt2"))  # another shape
