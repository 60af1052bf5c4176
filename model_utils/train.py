"""Consistency training of a CLLM on Jacobi trajectories, on transformers' Trainer (reference §4).

python -m model_utils.train --model M --trajectories TRAJ.jsonl --out DIR [--max-steps N] [--resume]

Loss per record: consistency (global: a random state -> the fixed point; local: a state -> the
next state; soft cross-entropy from the first wrong slot, target under stop-gradient: the model's
own logits, or with --frozen-target a frozen copy of the start model's) plus
ar_weight x AR (label-smoothed, on the teacher output or with --gt-labels the data set's answer).
Trainer gives `accelerate launch` / torchrun (DDP, FSDP2, DeepSpeed; see configs/accelerate),
checkpoints with optimizer, scheduler and RNG state, and a reproducible data order, so --resume
after a kill ends where an uninterrupted run would. Under several processes, each trains its own
part of every global batch (batch_size per process), the logged losses are their mean, and only
the main process writes the log, the checkpoints' extras and the final model.
"""
import copy
import json
import math
import os
import random
import shutil
import sys
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Protocol

import torch
from accelerate import PartialState
from accelerate.utils import DistributedType
from transformers import Trainer, TrainerCallback, TrainingArguments

from model_utils.cli import parser, run_cli, seed
from model_utils.data import check_writable, read_jsonl, read_prompts
from model_utils.errors import UserError
from model_utils.loading import DEVICES, load_model
from model_utils.locks import sole_writer
from model_utils.losses import ar_loss, consistency_loss, consistency_mask
from model_utils.packed import PackedDataset, collate_packed, group_prompts, packed_losses
from model_utils.quality import QualityGuard
from model_utils.trajectories import tokenizer_hash

CHECKPOINTS = "checkpoints"
LOG = "log.jsonl"
FINISHED = "finished.json"  # written after the final save of a run that was not cancelled


@dataclass
class TrainConfig:
    model: str
    trajectories: str
    out: str
    max_steps: int = -1
    epochs: float = 1.0
    lr: float = 2e-5
    batch_size: int = 1
    grad_accum: int = 1
    consistency: str = "global"
    ar_weight: float = 10.0
    label_smoothing: float = 0.1
    gt_labels: bool = False
    ar_mask_prompt: bool = False
    frozen_target: bool = False
    block_size: int | None = None
    seed: int = 0
    save_steps: int = 200
    keep_checkpoints: int = 1  # the newest N checkpoints stay, each with its optimizer state
    warmup: float = 0.03
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    save_dtype: str | None = None
    guard_prompts: list[str] = field(default_factory=list)
    guard_max_new_tokens: int = 128
    packed: bool = False  # every block of an answer in one forward (model_utils.packed) instead of one per record
    lora_rank: int = 0  # 0: full fine-tuning; else a PEFT LoRA of this rank on every linear layer
    precision: str = "float32"  # or bfloat16: autocast over float32 weights

    def __post_init__(self):
        """Every number is checked here, where the CLI and the app build the config."""
        def need(ok: bool, what: str, value) -> None:
            if not ok:
                raise UserError(f"{what} (got {value}).")
        finite = math.isfinite
        need(self.consistency in ("global", "local"), "The consistency loss must be global or local",
             repr(self.consistency))
        need(self.max_steps == -1 or self.max_steps >= 1, "--max-steps must be at least 1 (or -1: use --epochs)",
             self.max_steps)
        need(self.max_steps >= 1 or (finite(self.epochs) and self.epochs > 0), "--epochs must be above 0",
             self.epochs)
        need(finite(self.lr) and self.lr > 0, "The learning rate must be a number above 0", self.lr)
        need(self.batch_size >= 1, "The batch size must be at least 1", self.batch_size)
        need(self.grad_accum >= 1, "Gradient accumulation must be at least 1 step", self.grad_accum)
        need(finite(self.ar_weight) and self.ar_weight >= 0, "The AR weight must be a number ≥ 0", self.ar_weight)
        need(finite(self.label_smoothing) and 0 <= self.label_smoothing < 1, "Label smoothing must be in [0, 1)",
             self.label_smoothing)
        need(self.save_steps >= 1, "--save-steps must be at least 1", self.save_steps)
        need(self.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1", self.keep_checkpoints)
        need(finite(self.warmup) and self.warmup >= 0, "--warmup must be a number ≥ 0", self.warmup)
        need(self.guard_max_new_tokens >= 1, "--guard-max-new-tokens must be at least 1", self.guard_max_new_tokens)
        need(0 <= self.seed <= 2**32 - 1, "The seed must be from 0 to 2**32 - 1", self.seed)
        need(self.lora_rank >= 0, "--lora-rank must be 0 (full fine-tuning) or more", self.lora_rank)
        need(self.precision in ("float32", "bfloat16"), "--precision must be float32 or bfloat16",
             repr(self.precision))
        need(not (self.packed and self.consistency == "local"), "--packed trains the global consistency loss only",
             self.consistency)
        need(not (self.packed and self.gt_labels), "--packed trains on the model's own answers, not --gt-labels",
             self.gt_labels)


class Callback(Protocol):
    """What the app passes in: losses after each step, and a cancel flag read every step."""
    def on_step(self, step: int, max_steps: int, losses: dict) -> None: ...
    def should_stop(self) -> bool: ...


def token_ids(value, vocab: int, empty_ok: bool = False) -> bool:
    """True if value is a list of token ids of the vocabulary (non-empty unless empty_ok)."""
    return (isinstance(value, list) and (empty_ok or bool(value))
            and all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab for t in value))


def record_problem(r: dict, vocab: int, gt_labels: bool) -> str | None:
    """What is wrong with one trajectory record, or None."""
    if not isinstance(r.get("answer_trajectory_ids"), list) or "prompt_ids" not in r:
        return "is not a trajectory record (collect one with python -m model_utils.collect)"
    states = r["answer_trajectory_ids"]
    if not states or not all(token_ids(s, vocab) for s in states):
        return f"has an empty state or a token id that is not an integer in the vocabulary (0..{vocab - 1})"
    if len({len(s) for s in states}) > 1:
        return "has states of different lengths"
    for key in ("prompt_ids", "teacher_output_ids") + (("labels_ids",) if gt_labels else ()):
        if not token_ids(r.get(key), vocab):
            return f"has no valid {key!r} (token ids of the vocabulary)"
    if not isinstance(r.get("prompt_ids_len"), int):
        return "has no integer 'prompt_ids_len'"
    return None


def load_records(config: TrainConfig, tokenizer, vocab: int) -> list[dict]:
    records = read_jsonl(config.trajectories)
    fingerprint = tokenizer_hash(tokenizer)
    for i, r in enumerate(records, 1):
        if config.gt_labels and "labels_ids" not in r:
            raise UserError("--gt-labels needs trajectories collected with --labels.")
        problem = record_problem(r, vocab, config.gt_labels)
        if problem:
            raise UserError(f"Record {i} of {config.trajectories!r} {problem}.")
        if r.get("tokenizer") != fingerprint:
            raise UserError(f"{config.trajectories!r} was collected with another tokenizer than "
                            f"{config.model!r}'s; collect trajectories with this model.")
        if config.block_size is not None and r["block_size"] != config.block_size:
            raise UserError(f"The trajectories use block size {r['block_size']} but --block-size is "
                            f"{config.block_size}.")
    return records


class TrajectoryDataset(torch.utils.data.Dataset):
    """One item per record: a student state, its target state and the AR sequence."""

    def __init__(self, records: list[dict], consistency: str, gt_labels: bool, seed: int, mask_prompt: bool = False):
        self.records, self.consistency, self.gt_labels, self.seed = records, consistency, gt_labels, seed
        self.mask_prompt = mask_prompt
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        states = r["answer_trajectory_ids"]
        rng = random.Random(f"{self.seed}-{self.epoch}-{i}")
        j = rng.randrange(len(states) - 1) if len(states) > 1 else 0
        target = states[-1] if self.consistency == "global" else states[min(j + 1, len(states) - 1)]
        return {"index": i, "prefix": r["prompt_ids"], "state": states[j], "target": target,
                "ar": r["labels_ids"] if self.gt_labels else r["teacher_output_ids"],
                "ar_start": r["prompt_ids_len"] if self.mask_prompt else 0}


def pad(rows: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [value] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


def collate(items: list[dict], pad_id: int) -> dict:
    """Right-pad every sequence; AR labels are -100 on padding (and on the prompt if asked)."""
    student, student_mask = pad([it["prefix"] + it["state"] for it in items], pad_id)
    target, target_mask = pad([it["prefix"] + it["target"] for it in items], pad_id)
    ar, ar_mask = pad([it["ar"] for it in items], pad_id)
    state, _ = pad([it["state"] for it in items], -1)
    target_state, _ = pad([it["target"] for it in items], -1)
    return {"student_ids": student, "student_mask": student_mask, "target_ids": target, "target_mask": target_mask,
            "ar_ids": ar, "ar_mask": ar_mask, "ar_labels": ar.masked_fill(ar_mask == 0, -100).masked_fill(
                torch.arange(ar.shape[1])[None] < torch.tensor([it["ar_start"] for it in items])[:, None], -100),
            "state": state, "target_state": target_state,
            "prefix_len": torch.tensor([len(it["prefix"]) for it in items]),
            "index": torch.tensor([it["index"] for it in items]),
            "block_len": torch.tensor([len(it["state"]) for it in items])}


class ConsistencyTrainer(Trainer):
    """Trainer whose loss is consistency + ar_weight · AR; keeps each micro-batch's parts for the step's log row."""

    def __init__(self, *args, ar_weight: float, label_smoothing: float, reuse_ar_as_target: bool,
                 frozen_target: bool = False, packed: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.ar_weight, self.label_smoothing, self.reuse = ar_weight, label_smoothing, reuse_ar_as_target
        self.packed = packed
        # copied after Trainer has placed the model, so the copy sits on the training device
        self.target_model = copy.deepcopy(self.model).eval().requires_grad_(False) if frozen_target else None
        self.micro: list[tuple[list[float], list[int]]] = []  # this step's (losses, records) per micro-batch

    def step_losses(self) -> dict:
        """The step's losses (mean over its micro-batches and processes) and every record it trained; resets."""
        if not self.micro:
            return {}
        means = [sum(m[0][i] for m in self.micro) / len(self.micro) for i in range(3)]
        records = sorted(r for _, rs in self.micro for r in rs)
        self.micro = []
        return {"consistency": means[0], "ar": means[1], "loss": means[2], "records": records}

    def target_logits(self, model, inputs, ar_logits: torch.Tensor) -> torch.Tensor:
        """Logits on prefix + target state: the frozen start model's, or the model's own under stop-gradient."""
        if self.target_model is not None:
            with torch.no_grad():
                return self.target_model(input_ids=inputs["target_ids"], attention_mask=inputs["target_mask"]).logits
        if self.reuse:  # the AR input is prefix + fixed point: the global target
            return ar_logits.detach()
        with torch.no_grad():
            return model(input_ids=inputs["target_ids"], attention_mask=inputs["target_mask"]).logits

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.packed:
            l_c, l_ar = packed_losses(model, inputs, self.label_smoothing, self.target_model)
            return self.combine(l_c, l_ar, inputs, return_outputs)
        ar_logits = model(input_ids=inputs["ar_ids"], attention_mask=inputs["ar_mask"]).logits
        l_ar = ar_loss(ar_logits, inputs["ar_labels"], self.label_smoothing)
        target_logits = self.target_logits(model, inputs, ar_logits)
        student_logits = model(input_ids=inputs["student_ids"], attention_mask=inputs["student_mask"]).logits
        keep = consistency_mask(inputs["state"], inputs["target_state"], inputs["prefix_len"], inputs["block_len"],
                                student_logits.shape[1])
        l_c = consistency_loss(student_logits, target_logits, keep)
        return self.combine(l_c, l_ar, inputs, return_outputs)

    def combine(self, l_c: torch.Tensor, l_ar: torch.Tensor, inputs: dict, return_outputs: bool):
        loss = l_c + self.ar_weight * l_ar
        mean = self.accelerator.reduce(torch.stack([l_c, l_ar, loss]).detach(), "mean")  # over the processes
        self.micro.append((mean.tolist(), self.accelerator.gather(inputs["index"]).tolist()))
        return (loss, None) if return_outputs else loss


class StepReporter(TrainerCallback):
    """Per-step losses to log.jsonl and the app's callback; cancel; the quality guard at each save."""

    def __init__(self, trainer: ConsistencyTrainer, dataset: TrajectoryDataset, log_path: str,
                 guard: QualityGuard | None, callback: Callback | None, sharded: bool = False):
        self.trainer, self.dataset, self.log_path = trainer, dataset, log_path
        self.guard, self.callback, self.sharded = guard, callback, sharded
        self.cancelled = False

    def write(self, row: dict) -> None:
        if not self.trainer.is_world_process_zero():
            return
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.epoch = int(state.epoch or 0)

    def on_step_end(self, args, state, control, **kwargs):
        losses = self.trainer.step_losses() | {"lr": self.trainer.lr_scheduler.get_last_lr()[0]}
        self.write({"step": state.global_step, **losses})
        if self.callback:
            self.callback.on_step(state.global_step, state.max_steps, losses)
            if self.callback.should_stop():
                self.cancelled = True
                control.should_training_stop = True
                control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        # a sharded model needs every process in each forward: there all run the guard, the main one reports
        if self.guard and (self.sharded or self.trainer.is_world_process_zero()):
            report = self.guard.check(self.trainer.model)
            self.write({"step": state.global_step, "guard": report})
            if self.callback:
                self.callback.on_step(state.global_step, state.max_steps, {"guard": report})


def last_complete_checkpoint(folder: str) -> str | None:
    """The newest checkpoint whose trainer_state.json (written last) parses; torn newer ones are removed."""
    if not os.path.isdir(folder):
        return None
    names = sorted((d for d in os.listdir(folder) if d.startswith("checkpoint-")),
                   key=lambda d: int(d.split("-")[1]), reverse=True)
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(os.path.join(path, "trainer_state.json")) as f:
                json.load(f)
            return path
        except (OSError, json.JSONDecodeError):
            shutil.rmtree(path)
    return None


def trim_log(path: str, last_step: int) -> None:
    """Keep only the log rows up to the checkpoint a run resumes from (all of them are redone after)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        rows = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step and last_step]
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(rows)
    os.replace(path + ".tmp", path)


def prepare_out(config: TrainConfig) -> None:
    """Refuse an existing output unless resuming or overwriting (the main process's job)."""
    exists = os.path.isdir(config.out) and os.listdir(config.out)
    if exists and not (config.resume or config.overwrite):
        raise UserError(f"Output directory {config.out!r} exists: pass --resume to continue it or "
                        f"--overwrite to replace it.")
    if exists and config.overwrite and not config.resume:
        shutil.rmtree(config.out)
    os.makedirs(config.out, exist_ok=True)


def train(config: TrainConfig, callback: Callback | None = None) -> str:
    """Train and save the CLLM to config.out; returns that path (also when cancelled: the last weights).

    The main process holds config.out's lock throughout, so a second run into the same folder is refused.
    """
    check_writable(config.out, "The output folder", folder=True)
    main_process = os.environ.get("RANK", "0") == "0"  # under accelerate / torchrun, rank 0 writes
    with sole_writer(config.out) if main_process else nullcontext():
        return train_unlocked(config, callback)


def train_unlocked(config: TrainConfig, callback: Callback | None) -> str:
    if config.resume and os.path.exists(os.path.join(config.out, FINISHED)):
        print(f"{config.out} finished its training already: nothing to resume (start a new run from it to "
              f"train further).", file=sys.stderr)
        return config.out
    model, tokenizer = load_model(config.model, device=config.device, dtype="float32")
    records = load_records(config, tokenizer, model.get_input_embeddings().num_embeddings)
    processes = PartialState(cpu=model.device.type == "cpu")  # one, or those accelerate / torchrun started
    sharded = processes.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    if sharded and config.save_dtype:
        raise UserError("--save-dtype cannot recast a sharded (FSDP / DeepSpeed) model: leave it out and "
                        "convert the saved model afterwards.")
    if processes.is_main_process:
        prepare_out(config)
        resume_from = last_complete_checkpoint(os.path.join(config.out, CHECKPOINTS)) if config.resume else None
        trim_log(os.path.join(config.out, LOG), int(resume_from.rsplit("-", 1)[1]) if resume_from else 0)
        with open(os.path.join(config.out, "train_config.json"), "w") as f:
            json.dump(asdict(config) | {"processes": processes.num_processes}, f, indent=1)
    processes.wait_for_everyone()  # the others resume from what the main process kept
    resume_from = last_complete_checkpoint(os.path.join(config.out, CHECKPOINTS)) if config.resume else None
    if config.lora_rank:
        model = with_lora(model, config.lora_rank)
    model.train()
    if config.packed:
        dataset = PackedDataset(group_prompts(records), config.seed, config.ar_mask_prompt)
        collator = lambda items: collate_packed(items, tokenizer.pad_token_id)  # noqa: E731
    else:
        dataset = TrajectoryDataset(records, config.consistency, config.gt_labels, config.seed, config.ar_mask_prompt)
        collator = lambda items: collate(items, tokenizer.pad_token_id)  # noqa: E731
    args = TrainingArguments(
        output_dir=os.path.join(config.out, CHECKPOINTS), max_steps=config.max_steps,
        num_train_epochs=config.epochs, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.lr, weight_decay=0.0,
        warmup_steps=config.warmup, lr_scheduler_type="cosine", logging_steps=10, save_steps=config.save_steps,
        save_total_limit=config.keep_checkpoints, report_to="none", seed=config.seed, data_seed=config.seed,
        remove_unused_columns=False, dataloader_num_workers=0, use_cpu=model.device.type == "cpu",
        bf16=config.precision == "bfloat16")
    trainer = ConsistencyTrainer(
        model=model, args=args, train_dataset=dataset,
        data_collator=collator, ar_weight=config.ar_weight, label_smoothing=config.label_smoothing,
        reuse_ar_as_target=config.consistency == "global" and not config.gt_labels,
        frozen_target=config.frozen_target, packed=config.packed)
    guard = QualityGuard(tokenizer, config.guard_prompts, config.guard_max_new_tokens) if config.guard_prompts else None
    reporter = StepReporter(trainer, dataset, os.path.join(config.out, LOG), guard, callback, sharded)
    trainer.add_callback(reporter)
    if guard and not resume_from:
        reporter.write({"step": 0, "guard": guard.check(model)})
    trainer.train(resume_from_checkpoint=resume_from)
    if sharded:  # gathered whole for the final model (the checkpoints stay sharded)
        if trainer.is_fsdp_enabled:
            trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        trainer.save_model(config.out)  # every process hands in its shards; the main process writes
    if processes.is_main_process:
        if not sharded:
            save_final(trainer.model, config)
        tokenizer.save_pretrained(config.out)
        if not reporter.cancelled:
            with open(os.path.join(config.out, FINISHED), "w") as f:
                json.dump({"steps": trainer.state.global_step, "processes": processes.num_processes}, f)
    processes.wait_for_everyone()
    return config.out


def with_lora(model, rank: int):
    """A PEFT LoRA of the given rank (alpha = rank) on every linear layer but the output head."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules="all-linear"))


def save_final(model, config: TrainConfig) -> None:
    """Model (optionally in a smaller dtype) and generation config, next to the checkpoints. A LoRA run saves its
    adapter, naming the base as the run was given it (an embedded name stays a name), merged when loaded."""
    model.eval()
    if config.save_dtype:
        model = model.to(getattr(torch, config.save_dtype))
    if config.lora_rank:
        model.peft_config["default"].base_model_name_or_path = config.model
    model.save_pretrained(config.out)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    p = parser(__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--trajectories", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-steps", type=int, default=-1, help="overrides --epochs when > 0")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--consistency", choices=["global", "local"], default="global")
    p.add_argument("--ar-weight", type=float, default=10.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--gt-labels", action="store_true", help="AR loss on the data set's answers (collect with --labels)")
    p.add_argument("--ar-mask-prompt", action="store_true", help="AR loss on the answer only (official: all tokens)")
    p.add_argument("--frozen-target", action="store_true",
                   help="consistency targets from a frozen copy of the start model (default: the model itself)")
    p.add_argument("--block-size", type=int, help="check that the trajectories use this block size")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--save-steps", type=int, default=200)
    p.add_argument("--keep-checkpoints", type=int, default=1,
                   help="how many of the newest checkpoints to keep (default 1: only the latest, whose optimizer "
                        "state --resume needs; an older one is removed only after a newer one is complete)")
    p.add_argument("--warmup", type=float, default=0.03, help="warmup steps, or a ratio of all steps if < 1")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--device", choices=DEVICES, default="auto", help="where to train (default: auto)")
    p.add_argument("--save-dtype", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--guard-data", help="jsonl of held-out prompts for the quality guard (first --guard-n)")
    p.add_argument("--guard-n", type=int, default=8)
    p.add_argument("--guard-max-new-tokens", type=int, default=128)
    p.add_argument("--packed", action="store_true",
                   help="train every block of an answer in one forward pass (model_utils.packed; global loss)")
    p.add_argument("--lora-rank", type=int, default=0, help="LoRA adapter of this rank (default 0: full fine-tuning)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                   help="bfloat16: autocast over float32 weights (faster where the CPU or GPU has bf16 units)")
    a = p.parse_args(argv)
    guard_prompts = []
    if a.guard_data:
        guard_prompts = [r["prompt"] for r in read_prompts(a.guard_data)[: a.guard_n]]
    fields = {k: v for k, v in vars(a).items() if k in TrainConfig.__dataclass_fields__}
    return TrainConfig(**fields, guard_prompts=guard_prompts)


def main(argv: list[str] | None = None) -> int:
    def body() -> None:
        config = parse_args(argv)
        train(config)
        print(f"saved the CLLM to {config.out}", file=sys.stderr)
    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
