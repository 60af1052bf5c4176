"""Jacobi decoding inside transformers' own `generate`: `model.generate(ids, custom_generate=jacobi_generate)`.

transformers 5 calls a `custom_generate` callable in place of its decoding loop (beyond-jacobi.md §5c). This one
runs greedy Jacobi (model_utils.decoding; several rows through model_utils.batching), so its output equals
`generate(do_sample=False)` token for token, and returns `sequences` (plus the Jacobi statistics with
`return_dict_in_generate=True`).
"""
import inspect
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel
from transformers.generation.utils import GenerateDecoderOnlyOutput

from model_utils.batching import batch_decode
from model_utils.decoding import jacobi_passes, speedups, to_result
from model_utils.errors import UserError
from model_utils.metrics import summarize
from model_utils.records import DecodeResult


@dataclass
class JacobiGenerateOutput(GenerateDecoderOnlyOutput):
    """generate's output plus, per row, the Jacobi run: forward passes, tokens per pass, and the whole record."""
    forward_passes: list[int] | None = None
    tokens_per_forward: list[float] | None = None
    records: list[DecodeResult] | None = None


def caller_streamer():
    """The `streamer=` given to `generate`, which transformers 5 does not pass on to a custom decoding loop
    (it only puts the prompt into it): read from generate's frame, or None."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_code.co_name != "generate":
        frame = frame.f_back
    return frame.f_locals.get("streamer") if frame is not None else None


def jacobi_generate(model: PreTrainedModel, input_ids: torch.LongTensor, logits_processor=None, stopping_criteria=None,
                    generation_config=None, jacobi_block_size: int = 16, jacobi_scheme: str = "sliding",
                    jacobi_seed: int = 0, jacobi_candidates: bool | None = None, jacobi_adaptive: bool | None = None,
                    **model_kwargs):
    """Greedy Jacobi as transformers' decoding loop; pass it as `custom_generate=` (see the module doc).

    Takes max_new_tokens / max_length and eos_token_id from the generation config, `streamer=` (batch 1), and
    `attention_mask` for left-padded batches. Sampling settings are refused: Jacobi here is greedy. Candidate
    branches and the adaptive window (model_utils.decoding.jacobi_passes) follow FASTEST for one row with the
    sliding scheme unless given; a batch runs plain Jacobi.
    """
    config = generation_config
    if config.do_sample or (logits_processor is not None and len(logits_processor) > 0):
        raise UserError("jacobi_generate decodes greedily: leave out do_sample, temperature, top-k/p and other "
                        "logits processors.")
    prompt_len = input_ids.shape[1]
    max_new_tokens = config.max_length - prompt_len
    eos = config.eos_token_id
    eos = set([eos] if isinstance(eos, int) else eos or [])
    mask = model_kwargs.get("attention_mask")
    rows = [row[m.bool()].tolist() if mask is not None else row.tolist()
            for row, m in zip(input_ids, mask if mask is not None else input_ids)]
    options = dict(block_size=jacobi_block_size, max_new_tokens=max_new_tokens, eos_ids=eos, scheme=jacobi_scheme)
    streamer = caller_streamer()
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    if len(rows) > 1 and (jacobi_candidates or jacobi_adaptive):
        raise UserError("A batch runs plain Jacobi: leave out jacobi_candidates and jacobi_adaptive, or decode "
                        "one row.")
    extra = speedups(jacobi_scheme == "sliding", jacobi_candidates, jacobi_adaptive)
    if len(rows) == 1:
        passes = []
        for p in jacobi_passes(model, rows[0], seed=jacobi_seed, **options, **extra):
            passes.append(p)
            if streamer is not None:
                streamer.put(torch.tensor(p.new_tokens))
        results = [to_result(passes, rows[0], decoder="jacobi", scheme=jacobi_scheme, block_size=jacobi_block_size,
                             eos_ids=eos)]
    else:
        if streamer is not None:
            raise UserError("A streamer takes one row at a time: stream a batch of one, or leave the streamer out.")
        results = batch_decode(model, rows, decoder="jacobi", batch_size=len(rows), seed=jacobi_seed, pad_id=pad,
                               **options)
    if streamer is not None:
        streamer.end()
    width = max(len(r.token_ids) for r in results)
    new = torch.tensor([r.token_ids + [pad] * (width - len(r.token_ids)) for r in results], device=input_ids.device)
    sequences = torch.cat([input_ids, new.to(input_ids.dtype)], dim=1)
    if not config.return_dict_in_generate:
        return sequences
    stats = [summarize(r) for r in results]
    return JacobiGenerateOutput(sequences=sequences, forward_passes=[s["forward_passes"] for s in stats],
                                tokens_per_forward=[s["tokens_per_forward"] for s in stats], records=results)
