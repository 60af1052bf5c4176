"""Pretrain the small GSM8K base model (LlamaForCausalLM) from scratch on CPU.

python -m recipe.pretrain --out assets/models/tiny-arith-base --work runs/base [--seed 0] [--max-minutes 60] [--resume]

The work dir holds the corpus, the tokenizer and Trainer checkpoints; everything is rebuilt from the seed.
"""

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from bench.accuracy import run_accuracy
from model_utils.cli import parser, positive_int, run_cli, seed, threads
from model_utils.data import check_writable, read_jsonl
from model_utils.errors import UserError
from model_utils.loading import PROJECT_ROOT, resolve_device
from model_utils.locks import sole_writer
from recipe import gsm8k_synth
from recipe.tokenizer import build_tokenizer, prompt_text, training_text

GSM8K_DIR = Path(PROJECT_ROOT) / "assets/data/gsm8k"
HELDOUT = Path(PROJECT_ROOT) / "assets/data/synth/heldout.jsonl"
MAX_LEN = 512


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    tmp.replace(path)


def build_corpus(seed: int, n_synth: int, real_frac: float) -> tuple[list[dict], list[dict]]:
    """Shuffled training corpus (synthetic seen-template + repeated real GSM8K) and the held-out set."""
    synth = gsm8k_synth.generate(n_synth, seed, gsm8k_synth.seen_templates())
    train_q = {p["question"] for p in synth}
    heldout = (gsm8k_synth.generate(50, seed + 1, gsm8k_synth.seen_templates(), exclude=train_q)
               + gsm8k_synth.generate(50, seed + 2, gsm8k_synth.unseen_templates(), exclude=train_q))
    real = [{"question": r["question"], "answer": r["answer"], "template": "gsm8k", "seen": True}
            for r in read_jsonl(GSM8K_DIR / "train.jsonl")]
    repeats = max(1, round(n_synth * real_frac / (1 - real_frac) / len(real)))
    corpus = synth + real * repeats
    random.Random(seed).shuffle(corpus)
    return corpus, heldout


def encode(tokenizer: PreTrainedTokenizerFast, corpus: list[dict]) -> list[dict]:
    """Token ids with labels on the answer tokens (and EOS) only; drops examples over MAX_LEN."""
    prompts = tokenizer([prompt_text(tokenizer, p["question"]) for p in corpus], add_special_tokens=False)["input_ids"]
    fulls = tokenizer([training_text(tokenizer, p["question"], p["answer"]) for p in corpus],
                      add_special_tokens=False)["input_ids"]
    data = []
    for prompt, full in zip(prompts, fulls):
        if len(full) <= MAX_LEN:
            assert full[:len(prompt)] == prompt
            data.append({"input_ids": full, "labels": [-100] * len(prompt) + full[len(prompt):]})
    return data


def collate(pad_id: int):
    """Right-pad a batch: pad ids in input_ids, -100 in labels, 0 in attention_mask."""
    def fn(batch: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        pad = [width - len(b["input_ids"]) for b in batch]
        return {
            "input_ids": torch.tensor([b["input_ids"] + [pad_id] * n for b, n in zip(batch, pad)]),
            "labels": torch.tensor([b["labels"] + [-100] * n for b, n in zip(batch, pad)]),
            "attention_mask": torch.tensor([[1] * len(b["input_ids"]) + [0] * n for b, n in zip(batch, pad)]),
        }
    return fn


class TimeLimit(TrainerCallback):
    """Checkpoint and stop once the wall-clock budget is spent."""

    def __init__(self, minutes: float):
        self.deadline = time.time() + 60 * minutes

    def on_step_end(self, args, state, control, **kwargs):
        if time.time() > self.deadline:
            control.should_save = True
            control.should_training_stop = True


def make_model(tokenizer: PreTrainedTokenizerFast, layers: int, hidden: int, heads: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=MAX_LEN,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def save_final(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, out: Path) -> None:
    """fp16 safetensors weights, tokenizer and greedy generation config."""
    model.half().save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                     bos_token_id=tokenizer.bos_token_id, do_sample=False, max_new_tokens=256).save_pretrained(out)


def final_check(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, heldout_path: Path,
                n_gsm8k: int) -> dict:
    """Greedy exact match and answer format on the held-out generated problems and GSM8K test."""
    heldout = read_jsonl(str(heldout_path))
    sets = {"heldout_seen": [p for p in heldout if p["seen"]], "heldout_unseen": [p for p in heldout if not p["seen"]],
            "gsm8k_test": read_jsonl(str(GSM8K_DIR / "test.jsonl"))[:n_gsm8k]}
    results = {}
    for name, problems in sets.items():
        r = run_accuracy(model, tokenizer, problems, decoder="ar")
        results[name] = {k: r[k] for k in ("n", "exact_match", "format_rate")} | {"example": r["outputs"][0]["output"]}
    return results


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("assets/models/tiny-arith-base"))
    ap.add_argument("--work", type=Path, default=Path("runs/base"))
    ap.add_argument("--seed", type=seed, default=0)
    ap.add_argument("--max-steps", type=positive_int, default=3000, help="length of the lr schedule")
    ap.add_argument("--max-minutes", type=float, default=60,
                    help="wall-clock cap on training (checkpoints, then stops)")
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --work")
    ap.add_argument("--threads", type=threads, default=1)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train (cuda: a CUDA GPU)")
    ap.add_argument("--batch-size", type=positive_int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--layers", type=positive_int, default=4)
    ap.add_argument("--hidden", type=positive_int, default=256)
    ap.add_argument("--heads", type=positive_int, default=4)
    ap.add_argument("--n-synth", type=int, default=120_000)
    ap.add_argument("--real-frac", type=float, default=0.2)
    ap.add_argument("--save-steps", type=positive_int, default=200)
    ap.add_argument("--eval-gsm8k", type=positive_int, default=100, help="GSM8K test questions for the final check")
    ap.add_argument("--heldout", type=Path, default=HELDOUT, help="where the held-out problems are written")
    args = ap.parse_args(argv)
    return run_cli(lambda: locked_pretrain(args))


def locked_pretrain(args: argparse.Namespace) -> None:
    """Pretrain while holding the work folder's lock: a second run into it is refused."""
    check_args(args)
    with sole_writer(str(args.work)):
        pretrain(args)


def check_args(args: argparse.Namespace) -> None:
    """Refuse a shape or an output that would fail, before any work is done."""
    resolve_device(args.device)
    if args.hidden % args.heads:
        raise UserError(f"--hidden {args.hidden} is not a multiple of --heads {args.heads}.")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UserError(f"--lr must be a number above 0 (got {args.lr}).")
    if not 0 <= args.real_frac < 1:
        raise UserError(f"--real-frac must be in [0, 1) (got {args.real_frac}).")
    check_writable(str(args.out), "--out", folder=True)
    check_writable(str(args.work), "--work", folder=True)
    check_writable(str(args.heldout), "--heldout")


def pretrain(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)

    ckpt_dir, tok_dir = args.work / "ckpt", args.work / "tokenizer"
    if not args.resume and ckpt_dir.exists() and any(ckpt_dir.iterdir()):
        raise UserError(f"{ckpt_dir} has checkpoints: pass --resume or use a fresh --work.")
    corpus, heldout = build_corpus(args.seed, args.n_synth, args.real_frac)  # deterministic in the seed
    write_jsonl(args.heldout, heldout)
    write_jsonl(args.work / "corpus.jsonl", corpus)
    if not (args.resume and tok_dir.exists()):
        build_tokenizer(corpus).save_pretrained(tok_dir)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    data = encode(tokenizer, corpus)
    print(f"corpus: {len(data)} examples, {sum(len(d['input_ids']) for d in data) / len(data):.0f} tokens/example")

    model = make_model(tokenizer, args.layers, args.hidden, args.heads)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    targs = TrainingArguments(
        output_dir=str(ckpt_dir), max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=min(200, args.max_steps // 10),
        weight_decay=0.1, adam_beta2=0.95, max_grad_norm=1.0,
        logging_steps=25, save_strategy="steps", save_steps=args.save_steps, save_total_limit=2,
        seed=args.seed, data_seed=args.seed, use_cpu=args.device == "cpu", report_to="none",
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length", dataloader_num_workers=0, disable_tqdm=False,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=data, data_collator=collate(tokenizer.pad_token_id),
                      processing_class=tokenizer, callbacks=[TimeLimit(args.max_minutes)])
    last = get_last_checkpoint(ckpt_dir) if args.resume and ckpt_dir.exists() else None
    start = time.time()
    trainer.train(resume_from_checkpoint=last)
    steps_done = trainer.state.global_step
    print(f"trained to step {steps_done}/{args.max_steps} in {(time.time() - start) / 60:.1f} min")
    if steps_done < args.max_steps:
        print("time limit reached before the end of the schedule; rerun with --resume to finish")

    save_final(trainer.model, tokenizer, args.out)
    final = LlamaForCausalLM.from_pretrained(args.out, dtype=torch.float32).to(args.device).eval()
    results = {"steps": steps_done, **final_check(final, tokenizer, args.heldout, args.eval_gsm8k)}
    (args.work / "eval.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
