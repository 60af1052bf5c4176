"""Candidate branches in one forward pass: their attention mask and positions, keeping one branch's K/V, and a
once-per-model check that the model's forward honours such a mask (beyond-jacobi.md §5a, §5b)."""
import weakref

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

_checked: "weakref.WeakKeyDictionary[PreTrainedModel, dict]" = weakref.WeakKeyDictionary()


def layout(t: int, s: int, lengths: list[int], dtype: torch.dtype,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (1, n) and additive mask (1, 1, n, t + n) for a window of s tokens after t cached ones, followed
    by branches of `lengths` tokens: the window is causal; each branch continues the window's slot 0 and sees the
    cache, that slot and its own earlier tokens, at the positions it would have."""
    n = s + sum(lengths)
    allowed = torch.zeros(n, t + n, dtype=torch.bool, device=device)
    allowed[:, :t] = True
    allowed[:s, t:t + s] = torch.ones(s, s, dtype=torch.bool, device=device).tril()
    positions, row = list(range(t, t + s)), s
    for m in lengths:
        positions += range(t + 1, t + 1 + m)
        allowed[row:row + m, t] = True
        allowed[row:row + m, t + row:t + row + m] = torch.ones(m, m, dtype=torch.bool, device=device).tril()
        row += m
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
    return torch.tensor([positions], device=device), mask[None, None]


def keep_positions(cache: DynamicCache, index: torch.Tensor) -> None:
    """Keep only the cached positions in `index`, on every layer."""
    for layer in cache.layers:
        if layer.is_initialized:
            layer.keys, layer.values = layer.keys.index_select(-2, index), layer.values.index_select(-2, index)


def editable(cache: DynamicCache | None) -> bool:
    """Whether single positions can be dropped from the cache: full-attention layers only (no sliding-window or
    recurrent layers, whose states are not one entry per position)."""
    return cache is not None and all(type(layer) is DynamicLayer for layer in cache.layers)


@torch.inference_mode()
def honours_masks(model: PreTrainedModel) -> bool:
    """Whether a window and a branch fed together under `layout`'s mask give the logits of feeding each alone
    (some attentions ignore a 4D mask or fail on it: flash-attention 2, ALiBi models); checked once per model,
    device and dtype. Where it does not, the decoder feeds no branches."""
    key = (str(model.device), model.dtype)
    found = _checked.setdefault(model, {})
    if key not in found:
        found[key] = _probe(model)
    return found[key]


def _probe(model: PreTrainedModel) -> bool:
    ids = torch.tensor([[3, 4, 5, 6, 7, 8, 9]], device=model.device)
    prefix, window, branch = ids[:, :3], ids[:, 3:6], ids[:, 6:]

    def alone(tokens: torch.Tensor) -> torch.Tensor:
        cache = DynamicCache(config=model.config)
        model(input_ids=prefix, cache=cache, use_cache=True)
        return model(input_ids=tokens, cache=cache, use_cache=True, logits_to_keep=tokens.shape[1],
                     position_ids=torch.arange(3, 3 + tokens.shape[1], device=model.device)[None]).logits[0].float()

    try:
        cache = DynamicCache(config=model.config)
        model(input_ids=prefix, cache=cache, use_cache=True)
        positions, mask = layout(3, 3, [1], model.dtype, model.device)
        together = model(input_ids=torch.cat([window, branch], 1), cache=cache, use_cache=True,
                         position_ids=positions, attention_mask=mask, logits_to_keep=4).logits[0].float()
        expected = torch.cat([alone(window), alone(torch.cat([window[:, :1], branch], 1))[1:]])
    except (RuntimeError, ValueError, TypeError, IndexError):
        return False
    return bool((together - expected).abs().max() <= 0.02 * expected.abs().max() + 1e-6)
