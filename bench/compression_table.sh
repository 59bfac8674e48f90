#!/usr/bin/env bash
# Compression table of the embedded base model: test perplexity (response tokens, all tasks)
# and seconds taken by `mops prune` (calibration passes + solver) for SparseGPT and magnitude
# pruning at every setting of the issue, with and without int8. Prints a Markdown table.
#
#   bash bench/compression_table.sh [MOPS_BINARY] [THREADS] [WORK_DIR]
# METHODS="sparsegpt magnitude" and STORAGE="fp32 int8" (the defaults) choose the columns.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mops="${1:-$root/build/mops}"
threads="${2:-1}"
work="${3:-$(mktemp -d)}"
mkdir -p "$work"
settings=("--sparsity 0" "--sparsity 0.5" "--sparsity 0.75" "--sparsity 0.85" "--sparsity 0.9"
          "--nm 2:4" "--nm 4:8" "--nm 3:4" "--nm 7:8")

# Prints "PERPLEXITY SECONDS" of one run, read from the compression record in the checkpoint.
run_point() {
  local method="$1" setting="$2" int8="$3" out
  out="$work/$method-$(echo "${setting#--}" | tr ' :' '_-')-$int8.safetensors"  # sparsegpt-nm_2-4-int8
  "$mops" prune --model "$root/models/skills7-base.safetensors" --tokenizer "$root/models/skills7-tokenizer.model" \
    --data skills7 --method "$method" $setting $([ "$int8" = int8 ] && echo --int8) --out "$out" \
    --threads "$threads" >/dev/null 2>&1
  "${PYTHON:-.venv/bin/python}" - "$out" <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
record = json.loads(header["__metadata__"]["compression"])
print("%.4f %.1f" % (record["perplexity_after"]["overall"], record["seconds"]))
PY
}

methods=(${METHODS:-sparsegpt magnitude})
storage=(${STORAGE:-fp32 int8})
header="| setting" rule="|---"
for method in "${methods[@]}"; do
  for int8 in "${storage[@]}"; do
    label="$method"
    [ "$int8" = int8 ] && label="$method+int8"
    header="$header | $label ppl | s" rule="$rule|---|---"
  done
done
echo "$header |"
echo "$rule|"
for setting in "${settings[@]}"; do
  # the dense row: int8 alone (pruning at sparsity 0 leaves the weights bit-identical)
  row="| ${setting#--* }"
  [ "$setting" = "--sparsity 0" ] && row="| dense"
  for method in "${methods[@]}"; do
    for int8 in "${storage[@]}"; do
      read -r ppl seconds < <(run_point "$method" "$setting" "$int8")
      row="$row | $ppl | $seconds"
    done
  done
  echo "$row |"
done
