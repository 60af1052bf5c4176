#!/usr/bin/env bash
# Rebuild the embedded pair from seed 0 on CPU: tokenizer + data + base model, then its Jacobi
# trajectories and the consistency-trained CLLM (two epochs on trajectories of the base's training mix,
# then one epoch on trajectories of all 7,473 real GSM8K train questions plus every second record of the
# first set). Collection drops the blocks where the base has fallen into a token or phrase loop. Every
# stage resumes where it stopped: rerun the script after an interruption. The training stages use a CUDA
# GPU when there is one. Work files go to runs/ (git-ignored); the models to assets/models/.
# Knobs (environment): SEED, BASE_STEPS (base pretraining steps, 8000), N_PROMPTS, N_GSM8K (0: all), EPOCHS, LR, LR_GSM8K.
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${SEED:-0}
BLOCK=16
W=runs
BASE=assets/models/tiny-arith-base
CLLM=assets/models/tiny-arith-cllm
mkdir -p "$W/base" "$W/cllm"

train_cllm() {  # start model, trajectories, output dir, epochs, learning rate; resumes if the dir exists
  local resume
  resume=$([ -d "$3" ] && echo --resume || true)
  python -m model_utils.train --model "$1" --trajectories "$2" --out "$3" --epochs "$4" --lr "$5" \
    --block-size "$BLOCK" --batch-size 8 --ar-weight 5 --ar-mask-prompt --label-smoothing 0.1 --save-steps 200 \
    --seed "$SEED" --save-dtype float16 --guard-data assets/data/synth/heldout.jsonl --guard-n 8 $resume
}

echo "== 1/5 base model (tokenizer, data, pretraining) =="
if [ ! -f "$BASE/model.safetensors" ]; then
  resume=$([ -d "$W/base/ckpt" ] && echo --resume || true)
  python -m recipe.pretrain --out "$BASE" --work "$W/base" --seed "$SEED" --max-steps "${BASE_STEPS:-8000}" \
    --max-minutes 100 --threads 2 $resume
fi

echo "== 2/5 prompts for trajectory collection (the base's own training corpus; then all real GSM8K train questions) =="
head -n "${N_PROMPTS:-6000}" "$W/base/corpus.jsonl" > "$W/cllm/prompts.jsonl"
awk -v skip="${N_PROMPTS:-6000}" -v n="${N_GSM8K:-0}" \
  'NR > skip && /"template": "gsm8k"/ && !seen[$0]++ { print; if (++k == n) exit }' \
  "$W/base/corpus.jsonl" > "$W/cllm/prompts-gsm8k.jsonl"

echo "== 3/5 Jacobi trajectories of the base (block $BLOCK, augmented, loops dropped; two processes) =="
for set in "" -gsm8k; do
  pids=()
  for k in 0 1; do
    OMP_NUM_THREADS=1 python -m model_utils.collect --model "$BASE" --data "$W/cllm/prompts$set.jsonl" \
      --out "$W/cllm/trajectories$set-$k.jsonl" --block-size "$BLOCK" --max-new-tokens 256 --augment --labels \
      --seed "$SEED" --shard "$k/2" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done  # fails the script if either shard failed
  cat "$W/cllm/trajectories$set-0.jsonl" "$W/cllm/trajectories$set-1.jsonl" > "$W/cllm/trajectories$set.jsonl"
done
{ cat "$W/cllm/trajectories-gsm8k.jsonl"; awk 'NR % 2 == 0' "$W/cllm/trajectories.jsonl"; } > "$W/cllm/trajectories-mix.jsonl"

echo "== 4/5 consistency training =="
train_cllm "$BASE" "$W/cllm/trajectories.jsonl" "$W/cllm/train" "${EPOCHS:-2}" "${LR:-5e-4}"

echo "== 5/5 consistency training, one more epoch with real-GSM8K trajectories =="
train_cllm "$W/cllm/train" "$W/cllm/trajectories-mix.jsonl" "$W/cllm/train-gsm8k" 1 "${LR_GSM8K:-6e-4}"
mkdir -p "$CLLM"
cp "$W/cllm/train-gsm8k"/{config.json,generation_config.json,model.safetensors,tokenizer.json,tokenizer_config.json,chat_template.jinja} "$CLLM/"
echo "done: $BASE and $CLLM"
