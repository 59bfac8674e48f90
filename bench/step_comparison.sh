#!/usr/bin/env bash
# The MoPs training step in C++ (mops_step_bench) against the same step in PyTorch, eager and
# torch.compile'd (pytorch_step.py, --compile), run alternately with the same threads: C++, C++
# with the activation cache in its steady state, [the C++ before binary, uncached and cached,]
# Python eager, Python torch.compile, then again. Prints a table; never fails on time.
#   bench/step_comparison.sh   (env: BENCH=build-bench/mops_step_bench THREADS=1 REPS=3 STEPS=4 WARMUP=1
#                                    PYTHON=.venv/bin/python COMPILE=1 BEFORE=
#                                    CONFIGS="small medium small-b1 medium-b1")
#
# Threads: both implementations run on LibTorch 2.11 (BENCH built against the torch wheel of the
# project's venv .venv, PYTHON that venv's Python), whose matrix products are MKL's inside
# libtorch_cpu, on LibTorch's intra-op (OpenMP) pool: every run gets OMP_NUM_THREADS=$THREADS and
# --threads $THREADS, and inductor's kernels use the same pool.
# BEFORE=path adds a second C++ bench binary measured in the same alternation, e.g. the LibTorch
# 1.13 + OpenBLAS build kept at /work/old-1.13/mops_step_bench, run as it was measured before:
# --threads $THREADS --thread-split blas with OPENBLAS_NUM_THREADS=$THREADS and OMP_NUM_THREADS=1
# (the cores to OpenBLAS, LibTorch's own ops on one thread); columns "C++ before" and before/after.
# COMPILE=0 drops the torch.compile column: each of its runs compiles cold (a fresh inductor cache,
# see pytorch_step.py), ~35 s for the small config on 2 cores, in the run's warm-up, not timed;
# "compile s" is the median of those first warm-up steps. A failed torch.compile run does not stop
# the script: its column reads "failed" and the reason is printed under the table.
# A run's stderr is shown only when it fails.
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
# All columns use these FLOPs, the Python step's. The C++ step does less: its loss classifies only
# the positions that predict a response token (half of T here), and with the cache it skips the lower half.
# %sgemm: flops / time / (this machine's 1024^3 sgemm rate at $THREADS threads, measured here first:
# the fastest of torch::mm in C++, torch.mm in Python and, with BEFORE, torch::mm of the before
# binary on OpenBLAS).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-build-bench/mops_step_bench}
PYTHON=${PYTHON:-.venv/bin/python}
THREADS=${THREADS:-1}
REPS=${REPS:-3}
STEPS=${STEPS:-4}
WARMUP=${WARMUP:-1}
COMPILE=${COMPILE:-1}
BEFORE=${BEFORE:-}
SELECTED=${CONFIGS:-small medium small-b1 medium-b1}
for program in "$BENCH" "$PYTHON" ${BEFORE:+"$BEFORE"}; do
  [ -x "$program" ] || { echo "step_comparison: $program is not an executable (see the header of $0)" >&2; exit 2; }
done
case $COMPILE in 0 | 1) ;; *) echo "step_comparison: COMPILE=$COMPILE is not 0 or 1" >&2; exit 2 ;; esac
export OMP_NUM_THREADS=$THREADS

# name: model and prompt shape options shared by both implementations
ALL_CONFIGS=(
  "small     --dim 128 --layers 6 --heads 4 --kv-heads 2 --seq 64 --batch 8 --experts 7 --prompts-per-expert 4"
  "medium    --dim 256 --layers 8 --heads 8 --kv-heads 4 --seq 128 --batch 8 --experts 7 --prompts-per-expert 10"
  "small-b1  --dim 128 --layers 6 --heads 4 --kv-heads 2 --seq 64 --batch 1 --experts 7 --prompts-per-expert 4"
  "medium-b1 --dim 256 --layers 8 --heads 8 --kv-heads 4 --seq 128 --batch 1 --experts 7 --prompts-per-expert 10"
)
IMPLS=(cpp cached)
[ -n "$BEFORE" ] && IMPLS+=(before before-cached)
IMPLS+=(python)
[ "$COMPILE" = 1 ] && IMPLS+=(python-compile)

results=$(mktemp)
log=$(mktemp)
trap 'rm -f "$results" "$log"' EXIT

# Appends "impl|name|options|json" for one run of one implementation (impl: cpp, cached, before,
# before-cached, python, python-compile).
run_one() {
  local impl=$1 name=$2; shift 2
  local environment=() cmd=()
  case $impl in
    cpp | cached) cmd=("$BENCH" --threads "$THREADS") ;;
    before | before-cached)
      environment=(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS="$THREADS")
      cmd=("$BEFORE" --threads "$THREADS" --thread-split blas) ;;
    python) cmd=("$PYTHON" bench/pytorch_step.py --threads "$THREADS") ;;
    python-compile) cmd=("$PYTHON" bench/pytorch_step.py --threads "$THREADS" --compile) ;;
  esac
  [[ $impl == *cached ]] && cmd+=(--cache)
  local out status=0
  out=$(env "${environment[@]}" "${cmd[@]}" "$@" --json 2>"$log") || status=$?
  out=${out##*$'\n'}  # the JSON line
  if [ "$status" -ne 0 ] && ! [[ $impl == python-compile && $out == "{"*'"error"'* ]]; then
    cat "$log" >&2
    echo "step_comparison: failed (exit $status): ${environment[*]} ${cmd[*]} $* --json" >&2
    exit 1
  fi
  [ "$status" -ne 0 ] && echo "# torch.compile failed: $name $*: $(head -c 300 <<<"$out")" >&2
  echo "$impl|$name|$*|$out" >>"$results"
}

torch_version=$("$PYTHON" -c 'import torch; print(torch.__version__)')
echo "# step_comparison: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(getconf _NPROCESSORS_ONLN) cores, $THREADS threads" \
     "to LibTorch's intra-op pool (OMP_NUM_THREADS=$THREADS), $REPS runs x $STEPS steps (after $WARMUP warm-up)"
programs="# C++: $BENCH; Python: $PYTHON, torch $torch_version, eager"
[ "$COMPILE" = 1 ] && programs+=" and torch.compile (inductor, a cold cache each run)"
[ -n "$BEFORE" ] && programs+="; C++ before: $BEFORE, OpenBLAS $THREADS threads (--thread-split blas)"
echo "$programs"
run_one cpp sgemm --sgemm
run_one python sgemm --sgemm
[ -n "$BEFORE" ] && run_one before sgemm --sgemm
for config in "${ALL_CONFIGS[@]}"; do
  read -r name options <<<"$config"
  [[ " $SELECTED " == *" $name "* ]] || continue
  for method in mop prompt; do
    for ((rep = 0; rep < REPS; ++rep)); do
      for impl in "${IMPLS[@]}"; do
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

runs, sgemm, impls = {}, {}, []
for line in open(sys.argv[1]):
    impl, name, opts, result = line.rstrip("\n").split("|", 3)
    r = json.loads(result)
    if name == "sgemm":
        sgemm[impl] = r["sgemm_gflops"]
        continue
    if impl not in impls:
        impls.append(impl)
    runs.setdefault((name, r["method"]), {"opts": options(opts)}).setdefault(impl, []).append(r)

peak = max(sgemm.values())
print(f"# sgemm 1024^3 (GFLOP/s): C++ torch::mm {sgemm['cpp']:.1f}, Python torch.mm {sgemm['python']:.1f}"
      + (f", C++ before torch::mm (OpenBLAS) {sgemm['before']:.1f}" if "before" in sgemm else "")
      + f"; machine rate {peak:.1f}")
before, compiled = "before" in impls, "python-compile" in impls
head = ["config", "method", "C++ ms/step", "C++ cached ms/step"]
head += ["C++ before ms/step", "C++ before cached", "before/after", "before/after cached"] if before else []
head += ["Python ms/step"] + (["compile ms/step", "compile s"] if compiled else [])
head += ["Python/C++", "Python/C++ cached"] + (["compile/C++", "compile/C++ cached", "compile/Python"] if compiled else [])
head += ["C++ tokens/s", "Python tokens/s"] + (["compile tokens/s"] if compiled else [])
head += ["GFLOP/step", "C++ %sgemm", "Python %sgemm"] + (["compile %sgemm"] if compiled else [])
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
failures = []
for (name, method), v in runs.items():
    good = {impl: [r for r in v.get(impl, []) if "error" not in r] for impl in impls}
    failures += [f"{name} {method}: {r['error']}" for r in v.get("python-compile", []) if "error" in r]
    # an implementation with a failed run has no median: "failed"
    ms = {impl: statistics.median(r["ms_per_step"] for r in good[impl])
          for impl in impls if good[impl] and len(good[impl]) == len(v.get(impl, []))}
    o, f = v["opts"], flops(v["opts"])
    num = lambda impl, fmt="{:.1f}": fmt.format(ms[impl]) if impl in ms else "failed"
    ratio = lambda a, b: f"{ms[a] / ms[b]:.2f}" if a in ms and b in ms else "failed"
    tps = lambda impl: f"{o['batch'] * o['seq'] / (ms[impl] / 1e3):.0f}" if impl in ms else "failed"
    pct = lambda impl: f"{100 * f / (ms[impl] / 1e3) / (peak * 1e9):.1f}" if impl in ms else "failed"
    row = [name, method, num("cpp"), num("cached")]
    if before:
        row += [num("before"), num("before-cached"), ratio("before", "cpp"), ratio("before-cached", "cached")]
    row += [num("python")]
    if compiled:
        seconds = [r["compile_seconds"] for r in good["python-compile"]]
        row += [num("python-compile"), f"{statistics.median(seconds):.1f}" if "python-compile" in ms else "failed"]
    row += [ratio("python", "cpp"), ratio("python", "cached")]
    if compiled:
        row += [ratio("python-compile", "cpp"), ratio("python-compile", "cached"), ratio("python-compile", "python")]
    row += [tps("cpp"), tps("python")] + ([tps("python-compile")] if compiled else [])
    row += [f"{f / 1e9:.2f}", pct("cpp"), pct("python")] + ([pct("python-compile")] if compiled else [])
    print("| " + " | ".join(row) + " |")
    recompiles = sum(r.get("recompiles_in_timed_steps", 0) for r in good.get("python-compile", []))
    if recompiles:
        failures.append(f"{name} {method}: torch.compile recompiled {recompiles} times in timed steps (timings include it)")
for failure in failures:
    print("# " + failure.replace("\n", " "))
EOF
