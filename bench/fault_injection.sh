#!/usr/bin/env bash
# Kill -9 collection and training at random moments (mid-prompt, mid-step, during checkpoint writes and the
# final save), resume each time, and compare with an uninterrupted run: records must be the same set with no
# duplicate, and the final weights byte-identical. Uses the embedded base on the CPU; about 10 minutes.
# bash bench/fault_injection.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
W=${1:-runs/faults}
rm -rf "$W" && mkdir -p "$W"
export OMP_NUM_THREADS=1
head -n 24 assets/data/gsm8k/train.jsonl > "$W/prompts.jsonl"
collect() { python -m model_utils.collect --model tiny-arith-base --data "$W/prompts.jsonl" --out "$1" --block-size 16 \
  --max-new-tokens 96 --augment --seed 0 2>/dev/null; }
train() { python -m model_utils.train --model tiny-arith-base --trajectories "$W/once.jsonl" --out "$1" --max-steps 60 \
  --save-steps 7 --batch-size 4 --lr 5e-4 --device cpu --seed 0 $2 2>/dev/null; }
kill_after() {  # run "$@" in the background and kill -9 it after $1 seconds (if still running)
  local t=$1; shift
  "$@" & local pid=$!
  sleep "$t"; kill -9 "$pid" 2>/dev/null && echo "  killed after ${t}s" || echo "  finished before ${t}s"
  wait "$pid" 2>/dev/null || true
}
echo "== collection: uninterrupted, then killed 4 times and resumed"
collect "$W/once.jsonl"
for t in 12 16 14 19; do kill_after "$t" collect "$W/killed.jsonl"; done
collect "$W/killed.jsonl"
python - "$W/once.jsonl" "$W/killed.jsonl" <<'PY'
import sys
once, killed = (open(p).read().splitlines() for p in sys.argv[1:])
dupes = len(killed) - len(set(killed))
print(f"collection: {len(once)} records uninterrupted, {len(killed)} after kills, {dupes} duplicated, "
      f"{'same set' if sorted(once) == sorted(killed) else 'DIFFERENT'}")
PY
echo "== training: uninterrupted, then killed 5 times (mid-step, checkpoint writes, final save) and resumed"
train "$W/train-once" ""
for t in 12 15 13 17 14; do
  resume=$([ -d "$W/train-killed" ] && echo --resume || true)
  kill_after "$t" train "$W/train-killed" "$resume"
done
train "$W/train-killed" --resume
cmp -s "$W/train-once/model.safetensors" "$W/train-killed/model.safetensors" && same=identical || same=DIFFERENT
steps=$(python -c "import json,sys; rows=[json.loads(l)['step'] for l in open(sys.argv[1])]; \
print(len(rows), 'log rows,', len(rows) - len(set(rows)), 'duplicated steps')" "$W/train-killed/log.jsonl")
echo "training: final weights $same; $steps"
