"""model.generate(..., custom_generate=jacobi_generate) == model.generate(do_sample=False), streamed, batched."""
import pytest
import torch
from transformers import TextStreamer

from model_utils import jacobi_generate
from model_utils.errors import UserError
from model_utils.tiny_models import tiny_model, tiny_tokenizer

FAMILIES = ["llama", "gpt2", "qwen2", "gpt-neox", "phi", "mistral-sliding"]
PROMPT = torch.tensor([[1, 17, 33, 5, 60, 8]])


@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
    return tiny_model(request.param)


@pytest.mark.parametrize("block_size", [1, 5, 16])
def test_custom_generate_equals_greedy_generate(model, block_size):
    ref = model.generate(PROMPT, do_sample=False, max_new_tokens=24, pad_token_id=0)
    got = model.generate(PROMPT, custom_generate=jacobi_generate, max_new_tokens=24, pad_token_id=0,
                         jacobi_block_size=block_size)
    assert torch.equal(got, ref)


def test_return_dict_has_the_sequences_and_the_jacobi_statistics(model):
    ref = model.generate(PROMPT, do_sample=False, max_new_tokens=24, pad_token_id=0)
    out = model.generate(PROMPT, custom_generate=jacobi_generate, max_new_tokens=24, pad_token_id=0,
                         return_dict_in_generate=True)
    assert torch.equal(out.sequences, ref)
    new = ref.shape[1] - PROMPT.shape[1]
    assert 1 <= out.forward_passes[0] <= new and out.tokens_per_forward[0] == new / out.forward_passes[0]
    assert out.records[0].token_ids == ref[0, PROMPT.shape[1]:].tolist()


def test_a_left_padded_batch_equals_greedy_generate(model):
    ids = torch.tensor([[0, 0, 0, 1, 17, 33], [1, 17, 33, 5, 60, 8], [0, 1, 40, 41, 42, 43]])
    mask = (torch.arange(6)[None] >= torch.tensor([[3], [0], [1]])).long()
    ref = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=20, pad_token_id=0)
    got = model.generate(ids, attention_mask=mask, custom_generate=jacobi_generate, max_new_tokens=20, pad_token_id=0)
    assert torch.equal(got, ref)


def test_it_streams_through_a_text_streamer(capsys):
    model, tokenizer = tiny_model("qwen2"), tiny_tokenizer()
    out = model.generate(PROMPT, custom_generate=jacobi_generate, max_new_tokens=12, pad_token_id=0,
                         streamer=TextStreamer(tokenizer, skip_prompt=True))
    printed = capsys.readouterr().out
    assert printed.strip() == tokenizer.decode(out[0, PROMPT.shape[1]:]).strip() and printed.endswith("\n")


def test_sampling_is_refused_in_one_sentence():
    with pytest.raises(UserError, match="decodes greedily"):
        tiny_model("llama").generate(PROMPT, custom_generate=jacobi_generate, do_sample=True, max_new_tokens=4,
                                     pad_token_id=0)


def test_speedups_on_a_batch_are_refused_in_one_sentence():
    ids = torch.tensor([[1, 17, 33], [1, 40, 41]])
    with pytest.raises(UserError, match="A batch runs plain Jacobi"):
        tiny_model("llama").generate(ids, custom_generate=jacobi_generate, max_new_tokens=4, pad_token_id=0,
                                     jacobi_candidates=True)
