#!/usr/bin/env bash
# How the cost grows: the MoPs training step (mops_step_bench, the small config) as the
# sequence length, the width d and the number of prompts double, each alone; then SparseGPT's
# time per block as d doubles (sparsegpt_bench). Prints Markdown tables; never fails on time.
#   bench/cost_growth.sh    (env: BUILD=build-bench THREADS=0 STEPS=4 WARMUP=1 METHOD=mop)
#
# The step: d=128, 6 layers, 4 heads, 2 key/value heads, sequence 64, batch 8, 7 x 4 mid prompts,
# 10 first prompts. "x previous" is the time over the row before it; the FLOPs of the matrix
# products grow 2x with the sequence at these sizes (plus the attention's S^2 term), 4x with d
# (plus 2x in the attention), and with the prompts only through the upper half's S = E*P + T.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-bench}
THREADS=${THREADS:-0}
STEPS=${STEPS:-4}
WARMUP=${WARMUP:-1}
METHOD=${METHOD:-mop}
base=(--layers 6 --batch 8 --experts 7 --method "$METHOD" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" --json)

# Prints one table row: the varied value, ms/step, tokens/s, x previous.
previous=""
row() {
  local value=$1; shift
  local json ms tokens
  json=$("$BUILD/mops_step_bench" "${base[@]}" "$@")
  ms=$(sed 's/.*"ms_per_step": \([0-9.]*\).*/\1/' <<<"$json")
  tokens=$(sed 's/.*"tokens_per_s": \([0-9.]*\).*/\1/' <<<"$json")
  if [ -n "$previous" ]; then ratio=$(awk -v a="$ms" -v b="$previous" 'BEGIN { printf "%.2f", a / b }'); else ratio="-"; fi
  echo "| $value | $ms | $tokens | $ratio |"
  previous=$ms
}

echo "# cost_growth: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(getconf _NPROCESSORS_ONLN) cores, --threads $THREADS, method $METHOD, median of $STEPS steps"
echo; echo "| sequence length | ms/step | tokens/s | x previous |"; echo "|---|---|---|---|"
previous=""
for seq in 64 128 256; do row "$seq" --dim 128 --heads 4 --kv-heads 2 --seq "$seq" --prompts-per-expert 4; done
echo; echo "| d (heads of 32) | ms/step | tokens/s | x previous |"; echo "|---|---|---|---|"
previous=""
for dim in 128 256 512; do row "$dim" --dim "$dim" --heads $((dim / 32)) --kv-heads $((dim / 64)) --seq 64 --prompts-per-expert 4; done
echo; echo "| prompts per expert (x 7 experts) | ms/step | tokens/s | x previous |"; echo "|---|---|---|---|"
previous=""
for p in 4 8 16; do row "$p" --dim 128 --heads 4 --kv-heads 2 --seq 64 --prompts-per-expert "$p"; done
echo
"$BUILD/sparsegpt_bench" --dims 128,256,512,1024 --threads "$THREADS"
