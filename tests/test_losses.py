"""Consistency losses and the training examples built from trajectory records."""
import torch
from helpers import read

from model_utils.losses import consistency_loss, consistency_mask
from model_utils.train import TrajectoryDataset, collate


def test_consistency_mask_starts_at_the_first_wrong_slot():
    state = torch.tensor([[7, 1, 2, 9, 4], [7, 1, 2, 3, 4]])
    fixed = torch.tensor([[7, 1, 2, 3, 4], [7, 1, 2, 3, 4]])
    keep = consistency_mask(state, fixed, prefix_len=torch.tensor([3, 3]), block_len=torch.tensor([5, 5]), seq_len=8)
    # row 0: first wrong slot 3 -> logits at 3+3-1=5 .. 3+5-2=6 predict slots 3 and 4
    assert keep[0].tolist() == [False] * 5 + [True, True, False]
    assert not keep[1].any()  # already at the fixed point: nothing to learn


def test_consistency_loss_is_soft_cross_entropy_with_stop_gradient():
    torch.manual_seed(0)
    student = torch.randn(2, 4, 6, requires_grad=True)
    target = torch.randn(2, 4, 6, requires_grad=True)
    keep = torch.tensor([[False, True, True, False], [False, False, True, False]])
    loss = consistency_loss(student, target, keep)
    ce = -(target.softmax(-1) * student.log_softmax(-1)).sum(-1)
    expected = ((ce[0, 1] + ce[0, 2]) / 2 + ce[1, 2]) / 2
    assert torch.allclose(loss, expected)
    loss.backward()
    assert target.grad is None and student.grad is not None
    assert student.grad[0, 0].abs().sum() == 0  # unkept positions get no gradient


def test_local_consistency_targets_the_next_state(trajectories):
    records = read(trajectories)
    item = TrajectoryDataset(records, "local", False, seed=0)[0]
    states = records[0]["answer_trajectory_ids"]
    j = states.index(item["state"])
    assert item["target"] == states[j + 1]
    assert TrajectoryDataset(records, "global", False, seed=0)[0]["target"] == states[-1]


def test_ar_labels_can_skip_the_prompt(trajectories):
    records = read(trajectories)
    items = [TrajectoryDataset(records, "global", False, seed=0, mask_prompt=mask)[1] for mask in (False, True)]
    full, masked = (collate([it], pad_id=0)["ar_labels"][0] for it in items)
    n = records[1]["prompt_ids_len"]
    assert (full[:n] != -100).all() and (masked[:n] == -100).all() and torch.equal(full[n:], masked[n:])
