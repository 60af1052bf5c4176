"""Tiny randomly initialised causal LMs of several families, and a word-level tokenizer, for tests."""
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PhiConfig,
    PhiForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

VOCAB = 96
COMMON = dict(vocab_size=VOCAB, max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0)


def tiny_model(family: str, seed: int = 0, dtype: torch.dtype = torch.float64):
    """A 2-layer model of the family; float64 so block and one-token forwards agree exactly."""
    torch.manual_seed(seed)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**COMMON, **small, num_key_value_heads=2))
    elif family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**COMMON, **small, num_key_value_heads=2))
    elif family == "mistral-sliding":  # sliding-window attention narrower than the generation
        model = MistralForCausalLM(MistralConfig(**COMMON, **small, num_key_value_heads=2, sliding_window=8))
    elif family == "phi":
        model = PhiForCausalLM(PhiConfig(**COMMON, **small))
    elif family == "gpt-neox":
        model = GPTNeoXForCausalLM(GPTNeoXConfig(**COMMON, **small))
    elif family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=128, n_embd=32, n_layer=2, n_head=4,
                                           bos_token_id=1, eos_token_id=2, pad_token_id=0))
    else:
        raise ValueError(family)
    return model.to(dtype).eval()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over "w0".."w95" with <pad>=0, <s>=1, </s>=2."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2} | {f"w{i}": i for i in range(3, VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
