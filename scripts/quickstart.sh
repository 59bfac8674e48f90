#!/usr/bin/env bash
# README command 1: set up, build, and run the main job on the embedded default.
#
# Until the MoPs training job lands (issues 3 and 5), this runs the largest pipeline that
# exists: the real stories260K llama2.c checkpoint (inspect, convert, generate), then a
# tokenizer and a small decoder trained from scratch on the shipped corpus, and generation
# from it. Outputs go to ${MOPS_OUT:-out/quickstart}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
MOPS=${MOPS_BUILD_DIR:-build}/mops
OUT=${MOPS_OUT:-out/quickstart}
SHARED=../shared
mkdir -p "$OUT"

step() { printf '\n== %s\n' "$*"; }

step "a real checkpoint: llama2.c stories260K"
"$MOPS" info --model "$SHARED/models/stories260K.bin"
"$MOPS" convert --model "$SHARED/models/stories260K.bin" --out "$OUT/stories260K.safetensors" 2>/dev/null
echo "greedy ids from BOS (its tokenizer is not shipped):"
"$MOPS" generate --model "$OUT/stories260K.safetensors" --ids 1 --greedy --max-new-tokens 24 --print-ids

step "tokenizer trained on the shipped corpus (Dolly sample + this project's README)"
"$MOPS" tokenizer train --input "$SHARED/data/dolly-sample.jsonl" README.md \
  --fields instruction context response --vocab-size 600 --out "$OUT/tokenizer"

step "a small Llama decoder pretrained from scratch on it"
"$MOPS" pretrain --corpus "$SHARED/data/dolly-sample.jsonl" README.md \
  --fields instruction context response --tokenizer "$OUT/tokenizer.model" \
  --dim 96 --layers 3 --heads 4 --kv-heads 2 --seq-len 96 --batch-size 8 --steps 300 \
  --lr 3e-3 --eval-every 100 --out "$OUT/pretrained.safetensors"

step "generation from it"
"$MOPS" generate --model "$OUT/pretrained.safetensors" --tokenizer "$OUT/tokenizer.model" \
  --prompt "MoPs is" --temperature 0.7 --max-new-tokens 40 --seed 1
