#!/usr/bin/env bash
# The measured tables of the README: speed and accuracy of the embedded pair on 100 held-out generated
# problems and the first 100 GSM8K test questions (CPU, block 16, up to 256 new tokens), in float32 (the
# issue's setting) and in bfloat16 (this CPU's bf16 matmuls make a 16-token pass relatively cheap); the
# CLLM's throughput against batch size on 32 GSM8K test questions.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=assets/results
mkdir -p "$OUT"
for dtype in float32 bfloat16; do
  tag=$([ "$dtype" = float32 ] && echo "" || echo "_bf16")
  for set in heldout:assets/data/synth/heldout.jsonl gsm8k:assets/data/gsm8k/test.jsonl; do
    name=${set%%:*}; file=${set#*:}
    python -m bench.speed --base tiny-arith-base --cllm tiny-arith-cllm --prompts "$file" --limit 100 --block-size 16 \
      --max-new-tokens 256 --device cpu --dtype "$dtype" --json "$OUT/speed_$name$tag.json" | tee "$OUT/speed_$name$tag.md"
    for model in base cllm; do
      python -m bench.accuracy --model "gsm8k-$model" --prompts "$file" --limit 100 --decoder ar --device cpu \
        --dtype "$dtype" --json "$OUT/accuracy_${name}_$model$tag.json"
    done
  done
done
python -m bench.throughput --model tiny-arith-cllm --prompts assets/data/gsm8k/test.jsonl --limit 32 \
  --batch-sizes 1,2,4,8,16 --device cpu --json "$OUT/throughput_gsm8k.json" | tee "$OUT/throughput_gsm8k.md"
python -m bench.plot "$OUT/throughput_gsm8k.json" --out "$OUT/throughput.png"
python -m bench.precision --model tiny-arith-cllm --limit 20 --device cpu --json "$OUT/precision_cpu.json"
python -m bench.plot "$OUT/speed_heldout.json" "$OUT/speed_gsm8k.json" "$OUT/speed_heldout_bf16.json" \
  "$OUT/speed_gsm8k_bf16.json" --out "$OUT/speed.png"
