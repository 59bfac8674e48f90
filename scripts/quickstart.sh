#!/usr/bin/env bash
# README command 1: set up, build, and run the main job on the embedded default.
#
# Until the MoPs training job lands (issue 5), this runs the largest pipeline that exists:
# the embedded default task suite (skills7) with its client partition, the embedded base
# model (models/, rebuilt by scripts/make_base_model.sh) evaluated per task and answering
# instructions, and the real llama2.c stories260K checkpoint converted and generating.
# Outputs go to ${MOPS_OUT:-out/quickstart}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
MOPS=${MOPS_BUILD_DIR:-build}/mops
OUT=${MOPS_OUT:-out/quickstart}
MODEL=models/skills7-base.safetensors
TOKENIZER=models/skills7-tokenizer.model
mkdir -p "$OUT"

step() { printf '\n== %s\n' "$*"; }

step "the embedded default task suite (skills7), its split and a 10-client partition"
"$MOPS" data stats --data skills7 --tokenizer "$TOKENIZER" --clients 10 2>/dev/null

step "the embedded base model on the test split"
"$MOPS" info --model "$MODEL"
"$MOPS" evaluate --model "$MODEL" --tokenizer "$TOKENIZER" --data skills7 --exact-match-per-task 20 2>/dev/null

step "answers from it (greedy)"
ask() {
  printf '%-46s %-28s -> ' "$1" "$2"
  "$MOPS" generate --model "$MODEL" --tokenizer "$TOKENIZER" --instruction "$1" --input "$2" --greedy 2>/dev/null
}
ask "Sort the numbers from smallest to largest." "31, 4, 17, 9"
ask "Add 3 to every number in the list." "31, 4, 17, 9"
ask "Spell out every number in the list." "31, 4, 17, 9"
ask "Classify the relation between the two words." "petal, flower"

step "a real checkpoint: llama2.c stories260K (its tokenizer is not shipped: ids only)"
"$MOPS" convert --model ../shared/models/stories260K.bin --out "$OUT/stories260K.safetensors" 2>/dev/null
"$MOPS" generate --model "$OUT/stories260K.safetensors" --ids 1 --greedy --max-new-tokens 24 --print-ids 2>/dev/null
