#!/usr/bin/env bash
# The MoPs training step in C++ (mops_step_bench) against the same step in PyTorch eager
# (pytorch_step.py), run alternately (C++, C++ with the activation cache in its steady state,
# Python, C++, ...) with the same threads:
# SPLIT=blas gives the $THREADS cores to OpenBLAS and runs LibTorch's intra-op pool on 1 thread
# (mops's default), SPLIT=torch the reverse; both sides get the same. Prints a table; never
# fails on time.
#   bench/step_comparison.sh            (env: BENCH=build-bench/mops_step_bench THREADS=1 SPLIT=blas
#                                             REPS=3 STEPS=4 WARMUP=1 PYTHON=/usr/bin/python3
#                                             CONFIGS="small medium small-b1 medium-b1")
#
# ms/step: median over the REPS runs of each run's median of STEPS timed steps (after WARMUP).
# Model FLOPs per step (matrix products only; norms, RoPE, softmax, gate and Adam are not counted),
# with B batch, T tokens, C width, Ckv = G*D key/value width, F SwiGLU width, V vocabulary,
# L layers, Lm = L/2, K0 first prompts, K = E*P mid prompts:
#   lin(S)  = 2*B*S*(2*C*C + 2*C*Ckv + 3*C*F)        wq, wo, wk, wv, w1, w2, w3 on S positions
#   att(S)  = 4*B*S*S*C                              Q K^T and P V over all S x S columns
#   cls     = 2*B*T*C*V                              tied classifier
#   lower   = Lm * (lin(K0+T) + att(K0+T))           forward only, no autograd
#   upper   = (L-Lm) * (2*lin(K+T) + 3*att(K+T)) + 2*cls
#             forward + backward; the frozen weights get no gradient, so a linear layer's
#             backward is one product (dX) and an attention product's is two (both operands)
#   flops   = lower + upper
# Both columns use these FLOPs, the Python step's. The C++ step does less: its loss classifies only
# the positions that predict a response token (half of T here), and with the cache it skips the lower half.
# %sgemm: flops / time / (this machine's 1024^3 sgemm rate, measured here first: the fastest of
# torch::mm in C++ and torch.mm in Python under the same split, and torch.mm with OpenBLAS at
# $THREADS threads; with OpenBLAS at one thread a single product uses one core only).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-build-bench/mops_step_bench}
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-1}
SPLIT=${SPLIT:-blas}
REPS=${REPS:-3}
STEPS=${STEPS:-4}
WARMUP=${WARMUP:-1}
SELECTED=${CONFIGS:-small medium small-b1 medium-b1}
# LibTorch intra-op threads and OpenBLAS threads of both implementations.
case $SPLIT in
  blas) TORCH_THREADS=1 BLAS_THREADS=$THREADS ;;
  torch) TORCH_THREADS=$THREADS BLAS_THREADS=1 ;;
  *) echo "SPLIT=$SPLIT is not one of blas, torch" >&2; exit 2 ;;
esac
export OMP_NUM_THREADS=$TORCH_THREADS OPENBLAS_NUM_THREADS=$BLAS_THREADS

# name: model and prompt shape options shared by both implementations
ALL_CONFIGS=(
  "small     --dim 128 --layers 6 --heads 4 --kv-heads 2 --seq 64 --batch 8 --experts 7 --prompts-per-expert 4"
  "medium    --dim 256 --layers 8 --heads 8 --kv-heads 4 --seq 128 --batch 8 --experts 7 --prompts-per-expert 10"
  "small-b1  --dim 128 --layers 6 --heads 4 --kv-heads 2 --seq 64 --batch 1 --experts 7 --prompts-per-expert 4"
  "medium-b1 --dim 256 --layers 8 --heads 8 --kv-heads 4 --seq 128 --batch 1 --experts 7 --prompts-per-expert 10"
)

results=$(mktemp)
trap 'rm -f "$results"' EXIT

# Appends "name options json" for one run of one implementation.
run_one() {
  local impl=$1 name=$2; shift 2
  local cmd=("$BENCH" --threads "$THREADS" --thread-split "$SPLIT")
  [ "$impl" = cached ] && cmd+=(--cache)
  [ "$impl" = python ] && cmd=("$PYTHON" bench/pytorch_step.py --threads "$TORCH_THREADS")
  echo "$name|$*|$("${cmd[@]}" "$@" --json)" >>"$results"
}

echo "# step_comparison: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(getconf _NPROCESSORS_ONLN) cores, $THREADS threads" \
     "to $SPLIT (LibTorch intra-op $TORCH_THREADS, OpenBLAS $BLAS_THREADS), $REPS runs x $STEPS steps (after $WARMUP warm-up)"
run_one cpp sgemm --sgemm
run_one python sgemm --sgemm
OPENBLAS_NUM_THREADS=$THREADS run_one python sgemm-openblas --sgemm
for config in "${ALL_CONFIGS[@]}"; do
  read -r name options <<<"$config"
  [[ " $SELECTED " == *" $name "* ]] || continue
  for method in mop prompt; do
    for ((rep = 0; rep < REPS; ++rep)); do
      for impl in cpp cached python; do
        # shellcheck disable=SC2086
        run_one "$impl" "$name" $options --method "$method" --steps "$STEPS" --warmup "$WARMUP"
      done
    done
    echo "# done: $name $method" >&2
  done
done

"$PYTHON" - "$results" <<'EOF'
import json, statistics, sys

def flops(o):
    B, T, C, L = o["batch"], o["seq"], o["dim"], o["layers"]
    D = C // o["heads"]; Ckv = o["kv-heads"] * D; F = 32 * ((2 * 4 * C // 3 + 31) // 32)
    V, K0, K, Lm = o.get("vocab", 1024), o.get("first-prompts", 10), o["experts"] * o["prompts-per-expert"], L // 2
    lin = lambda S: 2 * B * S * (2 * C * C + 2 * C * Ckv + 3 * C * F)
    att = lambda S: 4 * B * S * S * C
    cls = 2 * B * T * C * V
    return Lm * (lin(K0 + T) + att(K0 + T)) + (L - Lm) * (2 * lin(K + T) + 3 * att(K + T)) + 2 * cls

def options(text):
    words = text.split()
    return {w[2:]: int(v) for w, v in zip(words[::2], words[1::2]) if v.lstrip("-").isdigit()}

runs, sgemm = {}, {}
for line in open(sys.argv[1]):
    name, opts, result = line.rstrip("\n").split("|", 2)
    r = json.loads(result)
    if name.startswith("sgemm"):
        sgemm[name + " " + r["impl"]] = r["sgemm_gflops"]
        continue
    impl = "cached" if r.get("cache") else r["impl"]
    runs.setdefault((name, r["method"]), {"opts": options(opts), "cpp": [], "cached": [], "python": []})[impl].append(r)

peak = max(sgemm.values())
print(f"# sgemm 1024^3 (GFLOP/s): C++ {sgemm['sgemm cpp']:.1f}, Python {sgemm['sgemm python']:.1f}, "
      f"Python with OpenBLAS threads = torch threads {sgemm['sgemm-openblas python']:.1f}; machine rate {peak:.1f}")
print("| config | method | C++ ms/step | C++ cached ms/step | Python ms/step | Python/C++ | Python/C++ cached | "
      "C++ tokens/s | Python tokens/s | GFLOP/step | C++ %sgemm | Python %sgemm |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (name, method), v in runs.items():
    ms = {impl: statistics.median(r["ms_per_step"] for r in v[impl]) for impl in ("cpp", "cached", "python")}
    o, f = v["opts"], flops(v["opts"])
    tps = {impl: o["batch"] * o["seq"] / (ms[impl] / 1e3) for impl in ms}
    pct = {impl: 100 * f / (ms[impl] / 1e3) / (peak * 1e9) for impl in ms}
    print(f"| {name} | {method} | {ms['cpp']:.1f} | {ms['cached']:.1f} | {ms['python']:.1f} | {ms['python'] / ms['cpp']:.2f} | "
          f"{ms['python'] / ms['cached']:.2f} | {tps['cpp']:.0f} | {tps['python']:.0f} | {f / 1e9:.2f} | {pct['cpp']:.1f} | "
          f"{pct['python']:.1f} |")
EOF
