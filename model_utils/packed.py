"""Multi-block consistency training: every block of one answer trained in a single forward pass.

CLLM's global consistency loss (reference §4) trains one block per sequence: prompt + answer so far + one
intermediate Jacobi state, and a second sequence with the fixed point for the target. Jacobi Forcing
(beyond-jacobi.md §3) packs all the blocks of an answer into one sequence under an attention mask. Here the
sequence is

    prompt ‖ answer (the fixed points, the clean stream) ‖ s_0 ‖ s_1 ‖ … (one intermediate state per block)

The clean stream is ordinary causal text: its logits are the AR loss's and, detached, the consistency
targets. A state s_j sits at its block's positions and sees the prompt, the clean answer before block j and
itself causally: exactly what a sliding Jacobi window sees once the tokens before it are verified. Its logits
learn the clean stream's at the same positions, from the first slot where the state is wrong onwards
(the slot before it predicts that one). One forward of about prompt + 2 × answer tokens replaces 2 × blocks
forwards of CLLM's per-block records.
"""
import random

import torch

from model_utils.losses import consistency_loss


def group_prompts(records: list[dict]) -> list[dict]:
    """Per prompt (data_id, in file order): its prompt, the whole answer and each block's (start, states)."""
    by_id: dict[str, list[dict]] = {}
    for r in records:
        by_id.setdefault(r["data_id"], []).append(r)
    prompts = []
    for rs in by_id.values():
        rs = sorted(rs, key=lambda r: len(r["prompt_ids"]))
        n_prompt = rs[0]["prompt_ids_len"]
        blocks = [(len(r["prompt_ids"]) - n_prompt, r["answer_trajectory_ids"]) for r in rs]
        prompts.append({"prompt": rs[0]["prompt_ids"][:n_prompt],
                        "answer": rs[-1]["teacher_output_ids"][n_prompt:], "blocks": blocks})
    return prompts


class PackedDataset(torch.utils.data.Dataset):
    """One item per prompt; each block's student state is drawn anew each epoch (seeded), never the fixed point."""

    def __init__(self, prompts: list[dict], seed: int, mask_prompt: bool):
        self.prompts, self.seed, self.mask_prompt = prompts, seed, mask_prompt
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, i: int) -> dict:
        p = self.prompts[i]
        rng = random.Random(f"{self.seed}-{self.epoch}-{i}")
        states = [(start, s[rng.randrange(len(s) - 1)] if len(s) > 1 else s[0], s[-1]) for start, s in p["blocks"]]
        return {"index": i, "prompt": p["prompt"], "answer": p["answer"], "states": states,
                "ar_start": len(p["prompt"]) if self.mask_prompt else 0}


def pack(item: dict) -> dict:
    """One item's ids, positions, allowed attention, AR labels and (student, teacher) positions."""
    prompt, answer = item["prompt"], item["answer"]
    clean = prompt + answer
    ids, positions = list(clean), list(range(len(clean)))
    allowed_spans = []  # per state: (first row, length, visible clean prefix)
    student, teacher = [], []
    for start, state, fixed in item["states"]:
        row, first = len(ids), len(prompt) + start
        ids += state
        positions += range(first, first + len(state))
        allowed_spans.append((row, len(state), first))
        wrong = next((t for t in range(1, len(state)) if state[t] != fixed[t]), None)
        if wrong is not None:  # slots wrong-1 .. end predict the wrong slots and the token after the block
            last = min(len(state), len(clean) - first)  # the clean stream must have the target's position
            student += [row + t for t in range(wrong - 1, last)]
            teacher += [first + t for t in range(wrong - 1, last)]
    n = len(ids)
    allowed = torch.zeros(n, n, dtype=torch.bool)
    allowed[: len(clean), : len(clean)] = torch.ones(len(clean), len(clean), dtype=torch.bool).tril()
    for row, length, visible in allowed_spans:
        allowed[row:row + length, :visible] = True
        allowed[row:row + length, row:row + length] = torch.ones(length, length, dtype=torch.bool).tril()
    labels = [-100] * n
    for t in range(item["ar_start"], len(clean) - 1):
        labels[t] = clean[t + 1]
    return {"ids": ids, "positions": positions, "allowed": allowed, "labels": labels,
            "student": student, "teacher": teacher}


def collate_packed(items: list[dict], pad_id: int) -> dict:
    """Right-padded batch; a pad row attends to itself only (a row that sees nothing would give NaN)."""
    packs = [pack(it) for it in items]
    width = max(len(p["ids"]) for p in packs)
    pairs = max(1, max(len(p["student"]) for p in packs))
    b = len(packs)
    ids = torch.full((b, width), pad_id)
    positions = torch.zeros(b, width, dtype=torch.long)
    allowed = torch.eye(width, dtype=torch.bool).repeat(b, 1, 1)
    labels = torch.full((b, width), -100)
    student = torch.zeros(b, pairs, dtype=torch.long)
    teacher = torch.zeros(b, pairs, dtype=torch.long)
    keep = torch.zeros(b, pairs, dtype=torch.bool)
    for k, p in enumerate(packs):
        n, m = len(p["ids"]), len(p["student"])
        ids[k, :n], positions[k, :n], labels[k, :n] = torch.tensor(p["ids"]), torch.tensor(p["positions"]), \
            torch.tensor(p["labels"])
        allowed[k, :n, :n] = p["allowed"]
        student[k, :m], teacher[k, :m], keep[k, :m] = torch.tensor(p["student"]), torch.tensor(p["teacher"]), True
    return {"input_ids": ids, "position_ids": positions, "allowed": allowed[:, None], "labels": labels,
            "student": student, "teacher": teacher, "keep": keep,
            "index": torch.tensor([it["index"] for it in items])}


def packed_losses(model, inputs: dict, label_smoothing: float, target_model=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(consistency, AR) of one packed batch from one forward (a second, without gradients, for a frozen target)."""
    logits = model(input_ids=inputs["input_ids"], position_ids=inputs["position_ids"],
                   attention_mask=inputs["allowed"]).logits
    labels = inputs["labels"]
    l_ar = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
                                             label_smoothing=label_smoothing)
    if target_model is None:
        target_logits = logits.detach()
    else:
        with torch.no_grad():
            target_logits = target_model(input_ids=inputs["input_ids"], position_ids=inputs["position_ids"],
                                         attention_mask=inputs["allowed"]).logits
    rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
    student = logits[rows, inputs["student"]]
    target = target_logits[rows, inputs["teacher"]]
    return consistency_loss(student, target, inputs["keep"]), l_ar
