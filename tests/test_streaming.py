"""TextStream: the text each pass adds, with a multi-byte character held back until its last byte arrives."""
import os

import pytest
from helpers import ROOT
from transformers import AutoTokenizer

from model_utils.streaming import TextStream
from model_utils.tiny_models import tiny_tokenizer


@pytest.fixture(scope="module")
def byte_level():
    """The embedded byte-level BPE tokenizer: a character outside ASCII can take several tokens."""
    return AutoTokenizer.from_pretrained(os.path.join(ROOT, "assets/models/tiny-arith-base"))


def feed(stream: TextStream, ids: list[int]) -> list[str | None]:
    return [stream.add([i]) for i in ids]


def test_ascii_text_grows_token_by_token_with_its_spaces(byte_level):
    text = "She sells 12 eggs at $2 each.\n#### 24"
    ids = byte_level(text, add_special_tokens=False)["input_ids"]
    stream = TextStream(byte_level)
    pieces = feed(stream, ids)
    assert None not in pieces and all(pieces) and len(pieces) == len(ids)
    assert "".join(pieces) == stream.text == text


def test_a_character_split_over_byte_tokens_is_held_back_then_emitted_whole(byte_level):
    text = "café ☕"
    ids = byte_level(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text)  # é and ☕ each take more than one token here
    stream = TextStream(byte_level)
    pieces = feed(stream, ids)
    assert "".join(p for p in pieces if p is not None) == stream.text == text
    assert not any("\ufffd" in p for p in pieces if p)  # never half a character
    assert "é" in pieces and "☕" in pieces  # each arrives whole, in one piece
    assert "" in pieces  # ... after passes that added only some of its bytes
    held = TextStream(byte_level)
    first_byte = next(k for k in range(1, len(ids)) if byte_level.decode(ids[:k]).endswith("\ufffd"))
    held.add(ids[:first_byte])
    assert held.text == "caf"


def test_several_tokens_per_pass_and_special_tokens(byte_level):
    ids = byte_level("Answer:\n7 + 5 = 12", add_special_tokens=False)["input_ids"]
    stream = TextStream(byte_level)
    assert stream.add(ids[:3]) + stream.add(ids[3:]) == "Answer:\n7 + 5 = 12"
    assert stream.add([byte_level.eos_token_id]) == ""  # EOS adds no text
    assert stream.tokens == ids + [byte_level.eos_token_id]


def test_word_level_tokens_join_with_spaces():
    stream = TextStream(tiny_tokenizer())
    assert [stream.add([5]), stream.add([6, 7])] == ["w5", " w6 w7"]


class Rewriting:
    """A tokenizer whose decoding of a longer sequence changes what it showed before."""

    def decode(self, tokens, skip_special_tokens=True):
        return "ab" if tokens == [1] else "xyz"


def test_rewritten_text_is_none_and_the_stream_holds_the_new_text():
    stream = TextStream(Rewriting())
    assert stream.add([1]) == "ab"
    assert stream.add([2]) is None and stream.text == "xyz"
