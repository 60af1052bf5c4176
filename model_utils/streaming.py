"""Incremental detokenisation: the text each pass adds, for a terminal or a chat bubble."""
from transformers import PreTrainedTokenizerBase

INCOMPLETE = "\ufffd"  # what decode() shows for the first bytes of an unfinished multi-byte character


class TextStream:
    """Decodes the whole sequence each time, so spaces at token joins survive, and holds back a
    trailing multi-byte character until its last byte arrives."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self.text = ""

    def add(self, tokens: list[int]) -> str | None:
        """The text the new tokens add, or None when decoding rewrote earlier text (read `text` again)."""
        self.tokens += tokens
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True).rstrip(INCOMPLETE)
        old, self.text = self.text, text
        return text[len(old):] if text.startswith(old) else None
