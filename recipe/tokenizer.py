"""Byte-level BPE tokenizer (single-digit tokens) with a GSM8K `Question:/Answer:` chat template."""

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"  # also used as BOS
PAD = "<|pad|>"

# Training text for one problem == render([user]) with the generation prompt + answer + EOS
# == render([user, assistant]).
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{- 'Question:\\n' + message['content'] + '\\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}{{- 'Answer:\\n' + message['content'] + eos_token -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Answer:\\n' -}}{%- endif -%}"
)


def build_tokenizer(problems: Iterable[dict], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train the BPE on `problems` (as the chat template renders them) and wrap it with the template."""
    texts = (f"Question:\n{p['question'].strip()}\nAnswer:\n{p['answer'].strip()}" for p in problems)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",  # left padding for batched generation
        model_max_length=512,
        chat_template=CHAT_TEMPLATE,
    )


def prompt_text(tokenizer: PreTrainedTokenizerFast, question: str) -> str:
    """The inference prompt for one question (ends with `Answer:\\n`)."""
    messages = [{"role": "user", "content": question.strip()}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def training_text(tokenizer: PreTrainedTokenizerFast, question: str, answer: str) -> str:
    """The full training text for one problem: prompt, answer, EOS."""
    return prompt_text(tokenizer, question) + answer.strip() + tokenizer.eos_token
