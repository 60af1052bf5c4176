"""Consistency and AR losses of a CLLM (reference §4), for padded batches."""
import torch
import torch.nn.functional as F


def consistency_loss(student_logits: torch.Tensor, target_logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Soft cross-entropy -Σ softmax(target)·log_softmax(student) per kept position, averaged
    over each row's kept positions, then over the rows that keep any; target gets no gradient."""
    target = F.softmax(target_logits.detach().float(), dim=-1)
    per_position = -(target * F.log_softmax(student_logits.float(), dim=-1)).sum(-1)
    kept = keep.float()
    rows = kept.sum(-1)
    per_row = (per_position * kept).sum(-1) / rows.clamp(min=1)
    has_any = rows > 0
    if not has_any.any():
        return student_logits.sum() * 0.0
    return per_row[has_any].mean()


def consistency_mask(state: torch.Tensor, target_state: torch.Tensor, prefix_len: torch.Tensor,
                     block_len: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Logit positions that predict block slots t*..n-1, t* = first slot (≥1) where state ≠ target.

    state/target_state: [B, n] (padded); prefix_len, block_len: [B]. Returns [B, seq_len] bool.
    """
    n = state.shape[1]
    slots = torch.arange(n, device=state.device)[None]
    differs = (state != target_state) & (slots >= 1) & (slots < block_len[:, None])
    first = torch.where(differs.any(-1), differs.float().argmax(-1), block_len)  # block_len: nothing to learn
    positions = torch.arange(seq_len, device=state.device)[None]
    start = prefix_len + first - 1
    end = prefix_len + block_len - 1  # exclusive: the last slot's logit predicts past the block
    return (positions >= start[:, None]) & (positions < end[:, None])


def ar_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.1) -> torch.Tensor:
    """Next-token cross-entropy with label smoothing; labels of -100 are ignored."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                           ignore_index=-100, label_smoothing=label_smoothing)
