#!/usr/bin/env bash
# README command 1: set up, build, and run the main job on the embedded default.
#
# The main job, about 5 minutes once built: the embedded task suite (skills7) and its client
# partition, the embedded base model (models/, rebuilt by scripts/make_base_model.sh) on the
# test split, compressed to 90 % sparsity with SparseGPT, then MoPs (top-1 routing, chosen on
# validation) against the prompt baseline trained centrally (20 000 steps) and federated (100
# clients, 10 rounds, 2 MPI ranks), each ending with the paper's table: seed 1 of the 3-seed
# study jobs/main_job.ini, whose result the README gives beside it.
# Outputs (checkpoints, HDF5 results) go to ${MOPS_OUT:-out/quickstart}; each run replaces
# the last one's (--overwrite).
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
# The training progress lines (every 5 s, with the ETA) of a command's stderr, the rest dropped.
progress_only() { grep --line-buffered -E '^(train|federate) [a-z]+ [0-9]+/' >&2 || true; }

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

step "compressed: SparseGPT, 90 % of every block weight removed"
"$MOPS" prune --config jobs/quickstart/prune.ini --model "$MODEL" --tokenizer "$TOKENIZER" \
  --out "$OUT/base-sparse90.safetensors" --overwrite 2>/dev/null | tail -n 12

step "MoPs against the prompt baseline, trained centrally (20 000 steps, the paper's; about 3 minutes)"
"$MOPS" train --config jobs/quickstart/train.ini --model "$OUT/base-sparse90.safetensors" --dense-model "$MODEL" \
  --tokenizer "$TOKENIZER" --out "$OUT/centralized.h5" --overwrite 2> >(progress_only)

step "MoPs against FedPrompt, federated: 100 clients, 10 per round, 10 rounds of 250 local steps, 2 MPI ranks"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np 2 \
  "$MOPS" federate --config jobs/quickstart/federate.ini --model "$OUT/base-sparse90.safetensors" \
  --tokenizer "$TOKENIZER" --out "$OUT/federated.h5" --overwrite 2> >(progress_only)
step "the compressed model answering with the MoPs prompts (the gate picks an expert from the instruction)"
"$MOPS" generate --model "$OUT/base-sparse90.safetensors" --tokenizer "$TOKENIZER" --prompts "$OUT/centralized.mop.h5" \
  --instruction "Sort the numbers from smallest to largest." --input "31, 4, 17, 9" --greedy 2>/dev/null
echo "results: $OUT/centralized.{prompt,mop}.h5 $OUT/federated.{fedprompt,mop}.h5 (h5py; schema in README)"

step "a real checkpoint: llama2.c stories260K (its tokenizer is not shipped: ids only)"
"$MOPS" convert --model ../shared/models/stories260K.bin --out "$OUT/stories260K.safetensors" --overwrite 2>/dev/null
"$MOPS" generate --model "$OUT/stories260K.safetensors" --ids 1 --greedy --max-new-tokens 24 --print-ids 2>/dev/null
