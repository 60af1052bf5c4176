"""Multi-block (packed) consistency training and LoRA adapters: the packed forward is the per-block forwards,
training runs and resumes, and an adapter folder loads as its base with the adapter merged."""
import json
import os

import pytest
import torch
from helpers import BLOCK, read

from model_utils.errors import UserError
from model_utils.loading import load_model
from model_utils.packed import PackedDataset, collate_packed, group_prompts, pack
from model_utils.train import TrainConfig, train


@pytest.fixture(scope="module")
def prompts(trajectories):
    return group_prompts(read(trajectories))


def test_grouping_rebuilds_each_answer_and_its_blocks(trajectories, prompts):
    records = read(trajectories)
    assert len(prompts) == len({r["data_id"] for r in records})
    for p in prompts:
        for start, states in p["blocks"]:
            assert states[-1] == p["answer"][start:start + len(states[-1])]  # a block's fixed point is the answer
        assert [start for start, _ in p["blocks"]] == list(range(0, len(p["blocks"]) * BLOCK, BLOCK))


def test_a_state_in_the_pack_sees_what_it_would_see_alone(loaded, prompts):
    model, _ = loaded
    model = model.double()
    items = [PackedDataset(prompts, seed=0, mask_prompt=False)[i] for i in range(3)]
    batch = collate_packed(items, pad_id=0)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       attention_mask=batch["allowed"]).logits
        for k, item in enumerate(items):
            clean = item["prompt"] + item["answer"]
            row = len(clean)
            alone = model(input_ids=torch.tensor([clean])).logits[0]
            assert torch.allclose(logits[k, :len(clean)], alone, atol=1e-9)
            for start, state, _ in item["states"]:
                alone = model(input_ids=torch.tensor([item["prompt"] + item["answer"][:start] + state])).logits[0]
                assert torch.allclose(logits[k, row:row + len(state)], alone[-len(state):], atol=1e-9)
                row += len(state)
    model.float()


def test_consistency_pairs_start_one_slot_before_the_first_wrong_guess():
    item = {"prompt": [5, 6], "answer": [10, 11, 12, 13, 14, 15], "ar_start": 2,
            "states": [(0, [10, 11, 99, 98], [10, 11, 12, 13]), (4, [14, 15], [14, 15])]}
    packed = pack(item)
    assert packed["ids"] == [5, 6, 10, 11, 12, 13, 14, 15, 10, 11, 99, 98, 14, 15]
    assert packed["positions"][8:] == [2, 3, 4, 5, 6, 7]
    assert packed["student"] == [9, 10, 11] and packed["teacher"] == [3, 4, 5]  # the right block learns nothing
    assert packed["labels"][1] == -100 and packed["labels"][2] == 11 and packed["labels"][7] == -100
    allowed = packed["allowed"]
    assert allowed[10, :2].all() and not allowed[10, 2:8].any() and allowed[10, 8:11].all()
    assert not allowed[10, 11:].any()
    assert allowed[12, :6].all() and not allowed[12, 6:12].any()  # block 2 sees the clean block 1, not the noisy


def test_packed_lora_training_saves_an_adapter_that_loads_merged(base, trajectories, tmp_path):
    out = str(tmp_path / "lora")
    config = TrainConfig(model=base, trajectories=trajectories, out=out, max_steps=3, batch_size=2, lr=1e-2,
                         packed=True, lora_rank=4, label_smoothing=0.0, save_steps=2, device="cpu")
    train(config)
    assert os.path.isfile(os.path.join(out, "adapter_config.json"))
    assert not os.path.exists(os.path.join(out, "model.safetensors"))
    rows = read(os.path.join(out, "log.jsonl"))
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["consistency"] > 0 for r in rows)
    merged, _ = load_model(out, device="cpu")
    plain, _ = load_model(base, device="cpu")
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        assert not torch.allclose(merged(ids).logits, plain(ids).logits)  # the adapter changed the model
    with open(os.path.join(out, "adapter_config.json")) as f:
        assert json.load(f)["base_model_name_or_path"] == base


def test_packed_training_refuses_what_it_cannot_train(base, trajectories, tmp_path):
    for bad, sentence in ((dict(consistency="local"), "global consistency loss only"),
                          (dict(gt_labels=True), "not --gt-labels"), (dict(lora_rank=-1), "--lora-rank"),
                          (dict(precision="fp8"), "float32 or bfloat16")):
        with pytest.raises(UserError, match=sentence):
            TrainConfig(model=base, trajectories=trajectories, out=str(tmp_path / "x"), packed=True, **bad)


def test_an_adapter_is_not_merged_into_a_quantised_base(base, trajectories, tmp_path):
    out = str(tmp_path / "lora")
    train(TrainConfig(model=base, trajectories=trajectories, out=out, max_steps=1, packed=True, lora_rank=2,
                      device="cpu"))
    with pytest.raises(UserError, match="LoRA adapter"):
        load_model(out, device="cpu", bits=8)
