"""Batched greedy AR and Jacobi decoding: many prompts share each forward pass (continuous batching).

Each row keeps its own verified length. The rows sit right-aligned in one KV cache: row b's
valid K/V are the last `valid[b]` slots, the rest is left padding hidden by the attention mask,
and positions are given per row. A pass feeds every row's window (padded on the right to the
widest); afterwards each row keeps the slots it verified and the cache is compacted back to
right-aligned rows (rejected slots dropped), so its length is always the longest row's. Rows that
finish leave the batch and waiting prompts join it (prefilled on their own, then left-padded
into the cache). Every row's output equals its one-at-a-time greedy output, and with the same seed
so do its passes.
"""
import time
from collections import deque
from collections.abc import Iterator

import torch
from transformers import DynamicCache, PreTrainedModel

from model_utils.decoding import DECODERS, JacobiRow, to_result
from model_utils.errors import UserError
from model_utils.records import DecodeResult, Pass

ATTENTION_LAYERS = ("full_attention", "sliding_attention")


def check_batchable(model: PreTrainedModel) -> None:
    """Refuse models whose layers are not all attention (their cache cannot drop slots per row)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    other = sorted(set(getattr(config, "layer_types", None) or []) - set(ATTENTION_LAYERS))
    if other:
        raise UserError(f"Batched decoding needs a model made of attention layers only, and this one has "
                        f"{', '.join(other)} layers: decode one prompt at a time (--batch-size 1).")


def default_slack(model: PreTrainedModel) -> int:
    """64 hole columns, or none where a sliding window is measured in cache columns and holes would shift it."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    sliding = getattr(config, "sliding_window", None) or "sliding_attention" in (getattr(config, "layer_types", None)
                                                                                 or [])
    return 0 if sliding else 64


def left_pad(rows: list[torch.Tensor], length: int, dim: int) -> torch.Tensor:
    """Concatenate tensors along dim 0 after padding each with zeros on the left of `dim` to `length`."""
    padded = []
    for t in rows:
        shape = list(t.shape)
        shape[dim] = length - t.shape[dim]
        padded.append(torch.cat([t.new_zeros(shape), t], dim=dim))
    return torch.cat(padded, dim=0)


class BatchForward:
    """The model's own forward over one window per row, on a shared cache of right-aligned rows."""

    def __init__(self, model: PreTrainedModel, pad_id: int = 0, slack: int | None = None):
        self.model, self.device, self.pad_id = model, model.device, pad_id
        self.slack = default_slack(model) if slack is None else slack  # hole columns tolerated before compacting
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros(0, 0, dtype=torch.long, device=self.device)  # 1 where a slot holds a row's K/V
        self.width = 0  # of the last window

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    @property
    def cache_len(self) -> int:
        return self.mask.shape[1]

    @property
    def valid(self) -> list[int]:
        return self.mask.sum(1).tolist()

    @torch.inference_mode()
    def add(self, prompts: list[list[int]]) -> list[int]:
        """Prefill new rows (appended after the current ones); return each one's next-token prediction."""
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        cache = DynamicCache()  # full attention layers only: a sliding window is applied by the mask
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                         cache=cache, use_cache=True, logits_to_keep=1)
        if self.cache is None or self.rows == 0:
            self.cache, self.mask = cache, mask
        else:
            length = max(self.cache_len, width)
            for old, new in zip(self.cache.layers, cache.layers):
                old.keys = left_pad([old.keys, new.keys], length, dim=2)
                old.values = left_pad([old.values, new.values], length, dim=2)
            self.mask = left_pad([self.mask, mask], length, dim=1)
        return out.logits[:, -1].float().argmax(-1).tolist()

    @torch.inference_mode()
    def __call__(self, windows: list[list[int]]) -> list[list[int]]:
        """Argmax predictions after each slot of each row's window; every slot joins the cache."""
        width = max(len(w) for w in windows)
        ids = torch.tensor([w + [self.pad_id] * (width - len(w)) for w in windows], device=self.device)
        new = torch.tensor([[1] * len(w) + [0] * (width - len(w)) for w in windows], device=self.device)
        lengths = torch.tensor([len(w) for w in windows], device=self.device)[:, None]
        # padding slots repeat the row's last position, so none runs past the model's context
        positions = self.mask.sum(1, keepdim=True) + torch.minimum(torch.arange(width, device=self.device), lengths - 1)
        self.mask = torch.cat([self.mask, new], dim=1)
        out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions, cache=self.cache,
                         use_cache=True)
        self.width = width
        predicted = out.logits.float().argmax(-1).tolist()
        return [row[: len(w)] for row, w in zip(predicted, windows)]

    @torch.inference_mode()
    def keep(self, counts: list[int]) -> None:
        """Keep the first counts[b] slots of row b's last window, drop the rest, and compact the cache."""
        width = self.width
        kept = torch.arange(width, device=self.device)[None] < torch.tensor(counts, device=self.device)[:, None]
        self.mask[:, -width:] *= kept
        self.compact()

    @torch.inference_mode()
    def drop(self, keep_rows: list[int]) -> None:
        """Let every row not in keep_rows leave the batch."""
        if len(keep_rows) == self.rows:
            return
        index = torch.tensor(keep_rows, dtype=torch.long, device=self.device)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.compact()

    def compact(self) -> None:
        """Cut the columns no row uses; if the rows' holes outgrow the slack, right-align every row's K/V."""
        used = self.mask.any(0).nonzero()
        first, last = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 0)
        if (first, last) != (0, self.cache_len):
            self.mask = self.mask[:, first:last]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:last], layer.values[:, :, first:last]
        length = max(self.valid, default=0)
        aligned = bool((self.mask[:, 1:] >= self.mask[:, :-1]).all())  # every row: padding, then its K/V
        if self.cache_len - length > self.slack or (self.slack == 0 and not aligned):
            order = torch.sort(self.mask, dim=1, stable=True).indices[:, self.cache_len - length:]  # padding, K/V
            for layer in self.cache.layers:
                index = order[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[3])
                layer.keys, layer.values = layer.keys.gather(2, index), layer.values.gather(2, index)
            self.mask = self.mask.gather(1, order)
        assert self.cache.get_seq_length() == self.cache_len <= length + self.slack, "cache outgrew its bound"


def batch_decode_passes(model: PreTrainedModel, prompts: list[list[int]], *, decoder: str = "jacobi",
                        batch_size: int = 8, block_size: int = 16, max_new_tokens: int = 256,
                        eos_ids: set[int] = frozenset(), scheme: str = "sliding",
                        seed: int | list[int] = 0, pad_id: int = 0) -> Iterator[tuple[int, Pass, bool]]:
    """Decode every prompt greedily, up to batch_size rows per pass; yield (prompt index, pass, whether that
    prompt is finished) as they happen.

    A pass's seconds are those of the batched forward it was part of. seed seeds every prompt's Jacobi
    guesses as one-at-a-time decoding would; a list gives prompt i its own seed[i].
    """
    if decoder not in DECODERS:
        raise UserError(f"Unknown decoder {decoder!r}: choose one of {', '.join(DECODERS)}.")
    if batch_size < 1:
        raise UserError(f"The batch size must be at least 1 (got {batch_size}).")
    check_batchable(model)
    block = 1 if decoder == "ar" else block_size
    seeds = seed if isinstance(seed, list) else [seed] * len(prompts)
    rows = [JacobiRow(model, p, block_size=block, max_new_tokens=max_new_tokens, eos_ids=eos_ids,
                      scheme="sliding" if decoder == "ar" else scheme, seed=seed) for p, seed in zip(prompts, seeds)]
    waiting = deque(range(len(prompts)))
    active: list[int] = []  # prompt index of each cache row
    fwd = BatchForward(model, pad_id)
    while waiting or active:
        if waiting and len(active) < batch_size:
            joining = [waiting.popleft() for _ in range(min(batch_size - len(active), len(waiting)))]
            t0 = time.perf_counter()
            firsts = fwd.add([rows[i].prompt_ids for i in joining])
            seconds = time.perf_counter() - t0
            for i, first in zip(joining, firsts):
                p = rows[i].begin(first, seconds)
                yield i, p, rows[i].stop is not None
            active += joining
        else:
            t0 = time.perf_counter()
            predicted = fwd([rows[i].window for i in active])
            passes = [rows[i].advance(pred, 0.0) for i, pred in zip(active, predicted)]
            fwd.keep([len(p.new_tokens) for p in passes])
            seconds = time.perf_counter() - t0
            for i, p in zip(active, passes):
                p.seconds = seconds
                yield i, p, rows[i].stop is not None
        alive = [b for b, i in enumerate(active) if rows[i].stop is None]
        fwd.drop(alive)
        active = [active[b] for b in alive]
        assert fwd.valid == [rows[i].cache_len for i in active], "a row's cache is out of step with its tokens"


def batch_decode(model: PreTrainedModel, prompts: list[list[int]], *, decoder: str = "jacobi", batch_size: int = 8,
                 block_size: int = 16, max_new_tokens: int = 256, eos_ids: set[int] = frozenset(),
                 scheme: str = "sliding", seed: int | list[int] = 0, pad_id: int = 0,
                 tokenizer=None) -> list[DecodeResult]:
    """Every prompt's record, in input order, decoded in batches of up to batch_size rows."""
    passes: list[list[Pass]] = [[] for _ in prompts]
    for i, p, _ in batch_decode_passes(model, prompts, decoder=decoder, batch_size=batch_size, block_size=block_size,
                                    max_new_tokens=max_new_tokens, eos_ids=eos_ids, scheme=scheme, seed=seed,
                                    pad_id=pad_id):
        passes[i].append(p)
    return [to_result(ps, prompt, decoder=decoder, scheme=scheme, block_size=block_size, eos_ids=eos_ids,
                      tokenizer=tokenizer) for ps, prompt in zip(passes, prompts)]
