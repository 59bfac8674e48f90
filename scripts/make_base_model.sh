#!/usr/bin/env bash
# Rebuilds the embedded default base model, models/skills7-base.safetensors, and its
# tokenizer, models/skills7-tokenizer.model, as committed (fixed seeds and thread count; bit
# for bit on the same LibTorch build). About 46 minutes on 2 cores, in two stages of 2600
# steps (the second continues the first on new records with a fresh learning-rate schedule).
#
# The base model is pretrained on packed sequences of fresh skills7 examples (2 x 140 000,
# each seen about 1.5 times) drawn with seeds 1000 and 1001; the experiments use seed 0, so their test
# records are not the ones it was trained on (except where a task's input space is tiny:
# word_relation has about 50 distinct inputs). The loss counts response tokens only: the
# instructions and inputs of skills7 are random draws, and predicting them taught the model
# nothing (measured: with the loss on all tokens, 4000 steps gave 0-10 % exact match on six
# of the seven tasks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
MOPS=${MOPS_BUILD_DIR:-build}/mops
OUT=${1:-models}
mkdir -p "$OUT"

"$MOPS" tokenizer train --data skills7 --seed 1000 --skills7-per-task 3000 --samples-per-source 21000 \
  --vocab-size 1024 --out "$OUT/skills7-tokenizer" --overwrite
"$MOPS" pretrain --data skills7 --seed 1000 --skills7-per-task 20000 --samples-per-source 200000 \
  --loss-on responses --tokenizer "$OUT/skills7-tokenizer.model" \
  --dim 128 --layers 4 --heads 4 --kv-heads 2 --max-seq-len 512 --seq-len 256 --batch-size 16 \
  --steps 2600 --lr 3e-3 --min-lr 1e-4 --warmup-steps 100 --eval-every 200 --checkpoint-every 200 \
  --threads 2 --exact-match-per-task 50 --out "$OUT/skills7-base-stage1.safetensors" --overwrite
"$MOPS" pretrain --init "$OUT/skills7-base-stage1.safetensors" \
  --data skills7 --seed 1001 --skills7-per-task 20000 --samples-per-source 200000 \
  --loss-on responses --tokenizer "$OUT/skills7-tokenizer.model" --max-seq-len 512 --seq-len 256 --batch-size 16 \
  --steps 2600 --lr 1.5e-3 --min-lr 5e-5 --warmup-steps 50 --eval-every 200 --checkpoint-every 200 \
  --threads 2 --exact-match-per-task 50 --out "$OUT/skills7-base.safetensors" --overwrite
rm "$OUT/skills7-base-stage1.safetensors"
