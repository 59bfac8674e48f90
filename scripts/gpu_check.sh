#!/usr/bin/env bash
# The GPU checks of issue 15 on a machine that has a CUDA GPU and a torch venv but nothing else of
# this project's: run from the repository root there, with gpu-bundle/ (scripts/gpu_bundle.sh, made
# on the build machine) beside scripts/. See docs/gpu_check.md for the device tool's command line.
#   bash scripts/gpu_check.sh
# Environment:
#   OUT                     where gpu_check.txt and logs/ go (default /tmp/mops-gpu-check)
#   MOPS_TORCH_PYTHON       the torch venv's python (default /opt/torch/.venv/bin/python): its
#                           site-packages/torch/lib and site-packages/nvidia/*/lib give LibTorch and CUDA
#   MOPS_GPU_BUNDLE         the bundle (default: gpu-bundle/ in the repository root)
#   MOPS_GPU_CHECK_BUDGET   seconds for all steps together (default 390): each step's timeout is cut
#                           to what is left, and a step that would get under 10 s is skipped
#   MOPS_PYTORCH_STEP       the PyTorch side of the step benchmark (default bench/pytorch_step.py)
# Steps (each timed, logged to $OUT/logs/NN-name.log; a failure never stops the script):
#   machine, libraries, Open MPI  nvidia-smi; ldd of every bundled binary; mpirun -np 2 hostname
#   generate       mops generate --device cuda on the embedded model (prints the device line)
#   mpi-federate   one MpiFederate test on the CPU: the compiled-in paths, mpirun -> mops federate
#   gpu-tests      mops_tests --gtest_filter='Gpu*' (tests/base/test_devices.cpp, GpuFederate.*)
#   mpi-np2        mpirun -np 2 mops_mpi_tests (the MPI communicator)
#   nccl-np1       MOPS_TEST_COMM=nccl mpirun -np 1 mops_mpi_tests (NCCL: one rank per GPU)
#   bench-*        mops_step_bench --device cuda: two small shapes x mop/prompt x with/without
#                  --cache, then the Llama-7B-shaped step (bfloat16) for mop and prompt
#   pytorch-*      bench/pytorch_step.py on the GPU, where it has --device (the same shapes)
# It ends with a summary ($OUT/gpu_check.txt, also printed): every step's status and time, the
# figures (device line, test counts, JSON lines, the projected time of 50 000 MoPs steps at the
# 7B shape), GPU memory and utilisation sampled during the run, versions and the environment used.
# Exit status: 0 when no step failed or timed out, 1 otherwise.
set -uo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
BUNDLE=${MOPS_GPU_BUNDLE:-$REPO/gpu-bundle}
[[ $BUNDLE = /* ]] || BUNDLE=$REPO/$BUNDLE
OUT=${OUT:-/tmp/mops-gpu-check}
LOGS=$OUT/logs
SUMMARY=$OUT/gpu_check.txt
BUDGET=${MOPS_GPU_CHECK_BUDGET:-390}
MIN_STEP=10
PY=${MOPS_TORCH_PYTHON:-/opt/torch/.venv/bin/python}
PYTORCH_STEP=${MOPS_PYTORCH_STEP:-bench/pytorch_step.py}
T0=$SECONDS
mkdir -p "$LOGS" || { echo "gpu_check: cannot write $OUT" >&2; exit 1; }
rm -f "$LOGS"/*.log "$OUT/bench.jsonl"

say() { echo "gpu_check: $*"; }
WARNINGS=()
warn() { WARNINGS+=("$*"); echo "gpu_check: WARNING: $*"; }

# --- the bundle and what it expects ---
if [[ ! -f $BUNDLE/paths.env ]]; then
  echo "gpu_check: no bundle at $BUNDLE (make it on the build machine: bash scripts/gpu_bundle.sh," \
       "and carry gpu-bundle)" | tee "$SUMMARY" >&2
  exit 1
fi
# shellcheck source=/dev/null
source "$BUNDLE/paths.env"  # SOURCE_DIR BUILD_DIR TEST_WORK_DIR ... TORCH_VERSION GLIBC_NEEDED OMPI_*_REL
chmod u+x "$BUNDLE"/bin/* "$BUNDLE"/openmpi/bin/* 2>/dev/null  # in case the copy lost the mode bits

# --- machine ---
GLIBC_HERE=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
if [[ -n $GLIBC_HERE && -n ${GLIBC_NEEDED:-} ]] &&
   [[ $(printf '%s\n%s\n' "$GLIBC_NEEDED" "$GLIBC_HERE" | sort -V | head -1) != "$GLIBC_NEEDED" ]]; then
  warn "glibc $GLIBC_HERE here, the bundle needs >= $GLIBC_NEEDED: its binaries cannot start (bundle on an older distribution)"
fi
GPU_SAMPLER=""
stop_sampler() { [[ -n $GPU_SAMPLER ]] && kill "$GPU_SAMPLER" 2>/dev/null; GPU_SAMPLER=""; }
trap stop_sampler EXIT
if command -v nvidia-smi >/dev/null; then
  nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"
  # One sample a second while the checks run: peak memory and utilisation go into the summary.
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,memory.total,power.draw \
             --format=csv,noheader,nounits -lms 1000 >"$LOGS/gpu-samples.csv" 2>/dev/null &
  GPU_SAMPLER=$!
else
  echo "nvidia-smi: not found on this machine" | tee "$OUT/nvidia-smi.txt"
fi

# --- the torch venv: LibTorch and the CUDA libraries ---
SITE=""
VENV=$(dirname "$(dirname "$PY")")
for dir in "$VENV"/lib/python3*/site-packages "$VENV"/lib64/python3*/site-packages; do
  [[ -d $dir/torch/lib ]] && { SITE=$dir; break; }
done
if [[ -z $SITE && -x $PY ]]; then  # ask that python (without importing torch), then torch itself
  SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])' 2>/dev/null)
  [[ -d $SITE/torch/lib ]] ||
    SITE=$("$PY" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)
fi
TORCH_LIB=""; NVIDIA_LIBS=""; TORCH_HERE=""
if [[ -n $SITE && -d $SITE/torch/lib ]]; then
  TORCH_LIB=$SITE/torch/lib
  NVIDIA_LIBS=$(ls -d "$SITE"/nvidia/*/lib 2>/dev/null | paste -sd: -)
  TORCH_HERE=$(sed -n "s/^__version__ *= *'\\(.*\\)'.*/\\1/p" "$SITE/torch/version.py" 2>/dev/null)
  [[ -n ${TORCH_VERSION:-} && $TORCH_HERE != "$TORCH_VERSION" ]] &&
    warn "torch $TORCH_HERE in $SITE, the bundle was built against $TORCH_VERSION: LibTorch's C++ ABI may differ"
else
  warn "no torch/lib found for $PY (set MOPS_TORCH_PYTHON to the torch venv's python)"
fi
MISSING_CUDA=()
while read -r soname; do
  [[ -n $soname ]] || continue
  found=""
  for dir in $TORCH_LIB ${NVIDIA_LIBS//:/ }; do [[ -e $dir/$soname ]] && { found=$dir; break; }; done
  [[ -n $found ]] || MISSING_CUDA+=("$soname")
done <"$BUNDLE/needs-from-torch-venv.txt"
(( ${#MISSING_CUDA[@]} )) &&
  warn "the torch venv lacks ${MISSING_CUDA[*]} (needed by the bundle; a system CUDA toolkit may still provide them)"

# --- the environment: bundled libraries first, then LibTorch's and CUDA's, then the machine's own ---
# Only the bundled programs get this library path (B_ENV before each); the machine's own (python,
# nvidia-smi, awk...) keep theirs, so that Debian's copies never stand in for their newer libraries.
ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
OMPI_LIB=$BUNDLE/openmpi/${OMPI_LIBDIR_REL:-lib/x86_64-linux-gnu/openmpi/lib}
MOPS_LIBS=$BUNDLE/lib:$OMPI_LIB:$BUNDLE/pmix/lib
[[ -n $TORCH_LIB ]] && MOPS_LIBS+=:$TORCH_LIB
[[ -n $NVIDIA_LIBS ]] && MOPS_LIBS+=:$NVIDIA_LIBS
[[ -n $ORIG_LD_LIBRARY_PATH ]] && MOPS_LIBS+=:$ORIG_LD_LIBRARY_PATH
B_ENV=(env "LD_LIBRARY_PATH=$MOPS_LIBS")
export PATH=$BUNDLE/openmpi/${OMPI_BINDIR_REL:-bin}:$BUNDLE/bin:$PATH
# Open MPI relocated (its sysconfdir, /etc/openmpi on Debian, is absolute: set apart).
export OPAL_PREFIX=$BUNDLE/openmpi
export OPAL_SYSCONFDIR=$BUNDLE/openmpi/etc/openmpi
# Debian's PMIx has absolute install dirs: each one set (pinstalldirs env component of PMIx 4.2).
if [[ ${PMIX_BUNDLED:-0} == 1 ]]; then
  export PMIX_PREFIX=$BUNDLE/pmix PMIX_LIBDIR=$BUNDLE/pmix/lib PMIX_PKGLIBDIR=$BUNDLE/pmix/lib/pmix
  export PMIX_DATADIR=$BUNDLE/pmix/share PMIX_PKGDATADIR=$BUNDLE/pmix/share/pmix PMIX_SYSCONFDIR=$BUNDLE/pmix/share
  export PMIX_MCA_mca_base_component_path=$BUNDLE/pmix/lib/pmix
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# Containers often forbid process_vm_readv (CMA): shared-memory transfers then fail. Copy-in/out instead.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export MOPS_PLUGIN_DIR=$BUNDLE/bin

# --- the build's compiled-in paths, made here ---
LINKS_MADE=()
if [[ -e $SOURCE_DIR || -L $SOURCE_DIR ]]; then
  if [[ $(realpath "$SOURCE_DIR" 2>/dev/null) != "$(realpath "$REPO")" ]]; then
    warn "$SOURCE_DIR (the build's source dir) exists and is not this repository: tests read its models/"
  fi
else
  if mkdir -p "$(dirname "$SOURCE_DIR")" 2>/dev/null && ln -s "$REPO" "$SOURCE_DIR" 2>/dev/null; then
    LINKS_MADE+=("$SOURCE_DIR -> $REPO")
  else
    warn "cannot link $SOURCE_DIR to $REPO: tests that read the build's source dir will fail"
  fi
fi
link_binary() {  # link_binary BUNDLED_NAME PATH_THE_BUILD_EXPECTS
  local target=$BUNDLE/bin/$1 where=$2
  if [[ -e $where && ! -L $where ]]; then
    warn "$where exists (not a link): left as it is"
    return
  fi
  if mkdir -p "$(dirname "$where")" 2>/dev/null && ln -sfn "$target" "$where" 2>/dev/null; then
    LINKS_MADE+=("$where -> $target")
  else
    warn "cannot link $where to $target"
  fi
}
link_binary mops "$BINARY"
link_binary mops_step_bench "$BUILD_DIR/mops_step_bench"
link_binary libmops_sentencepiece.so "$PLUGIN_DIR/libmops_sentencepiece.so"
link_binary mops_tests "$BUILD_DIR/tests/mops_tests"
link_binary mops_mpi_tests "$BUILD_DIR/tests/mops_mpi_tests"
mkdir -p "$TEST_WORK_DIR" 2>/dev/null || warn "cannot make the tests' work dir $TEST_WORK_DIR"
[[ -x $PYTHON ]] || echo "gpu_check: note: $PYTHON (the build's MOPS_PYTHON) is absent here; the Gpu* tests do not use it"

# --- steps ---
S_NAME=(); S_STATUS=(); S_SECS=(); S_NOTE=(); S_LOG=(); S_CMD=()
LAST=-1
# run_step NAME TIMEOUT COMMAND...: runs COMMAND under `timeout` (cut to the budget left), output to its log.
run_step() {
  local name=$1 limit=$2; shift 2
  local i=${#S_NAME[@]}
  local log
  log=$LOGS/$(printf '%02d' $((i + 1)))-$name.log
  S_NAME+=("$name"); S_LOG+=("$log"); LAST=$i
  local left=$((BUDGET - (SECONDS - T0)))
  if ((left < MIN_STEP)); then
    S_STATUS+=(SKIP); S_SECS+=(0); S_NOTE+=("the time budget (${BUDGET} s) is spent")
    echo "# skipped: time budget spent" >"$log"
    say "[$((i + 1))] $name: SKIP (time budget spent)"
    return 0
  fi
  ((limit > left)) && limit=$left
  local shown=$*
  shown=${shown//"LD_LIBRARY_PATH=$MOPS_LIBS"/LD_LIBRARY_PATH=\$MOPS_LIBS}
  printf '# %s (timeout %s s)\n# MOPS_LIBS=%s\n' "$shown" "$limit" "$MOPS_LIBS" >"$log"
  S_CMD[i]=$shown
  say "[$((i + 1))] $name (timeout $limit s)"
  local start=$EPOCHREALTIME
  timeout -k 10 "$limit" "$@" >>"$log" 2>&1 </dev/null
  local rc=$?
  local secs
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  S_SECS+=("$secs")
  if ((rc == 0)); then
    S_STATUS+=(PASS); S_NOTE+=("")
  elif ((rc == 124 || rc == 137)); then
    S_STATUS+=(TIMEOUT); S_NOTE+=("killed after $limit s")
  else
    S_STATUS+=(FAIL)
    local why
    why=$(grep -v '^# ' "$log" | grep -m1 -iE 'error|fail|not found|cannot|no such|abort|no CUDA GPU')
    [[ -n $why ]] || why=$(grep -v '^# ' "$log" | grep -v '^ *$' | tail -1)
    S_NOTE+=("exit $rc: $(cut -c1-220 <<<"$why")")
  fi
  say "[$((i + 1))] $name: ${S_STATUS[$i]} (${secs} s)${S_NOTE[$i]:+ - ${S_NOTE[$i]}}"
  return 0
}
skip_step() {  # skip_step NAME WHY
  S_NAME+=("$1"); S_STATUS+=(SKIP); S_SECS+=(0); S_NOTE+=("$2"); S_LOG+=(""); LAST=$((${#S_NAME[@]} - 1))
  say "[${#S_NAME[@]}] $1: SKIP ($2)"
}
# After a gtest step: its counts in the note; SKIP when every test skipped, with gtest's reason.
gtest_result() {
  local log=${S_LOG[$LAST]} passed skipped failed reason
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | head -1)
  skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | head -1)
  failed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | head -1)
  reason=$(grep -A1 -m1 ': Skipped$' "$log" | tail -1 | cut -c1-200)
  [[ -z $passed && -z $skipped && -z $failed ]] && return
  local counts="${passed:-0} passed, ${skipped:-0} skipped, ${failed:-0} failed"
  if [[ ${S_STATUS[$LAST]} == PASS && ${passed:-0} == 0 && ${skipped:-0} -gt 0 ]]; then
    S_STATUS[LAST]=SKIP
  elif [[ ${S_STATUS[$LAST]} == PASS && ${passed:-0} == 0 && ${skipped:-0} == 0 ]]; then
    S_STATUS[LAST]=FAIL; counts="no test matched its --gtest_filter"
  fi
  S_NOTE[LAST]="$counts${reason:+; skipped because: $reason}${S_NOTE[$LAST]:+; ${S_NOTE[$LAST]}}"
}
# After a benchmark step: its JSON line into bench.jsonl, FAIL when it printed none.
JSON_OF=()
bench_result() {
  local json
  json=$(grep -m1 '^{' "${S_LOG[$LAST]}")
  JSON_OF[LAST]=$json
  if [[ -n $json ]]; then
    echo "$json" >>"$OUT/bench.jsonl"
  elif [[ ${S_STATUS[$LAST]} == PASS ]]; then
    S_STATUS[LAST]=FAIL; S_NOTE[LAST]="no JSON line in the output"
  fi
}
ms_of() { sed -n 's/.*"ms_per_step": *\([0-9.]*\).*/\1/p' <<<"${JSON_OF[$1]:-}"; }

# The libraries every bundled binary resolves to: none may be missing, none may come from the system's
# Open MPI / HDF5 / Boost / SentencePiece (they are not there).
check_libs() {
  local bad=0 file
  for file in "$BUNDLE"/bin/* "$BUNDLE/openmpi/${OMPI_BINDIR_REL:-bin}/orterun" "$BUNDLE/openmpi/${OMPI_BINDIR_REL:-bin}/orted"; do
    echo "== $file"
    LD_LIBRARY_PATH=$MOPS_LIBS ldd "$file" 2>&1 | sed 's/ (0x[0-9a-f]*)$//'
    if LD_LIBRARY_PATH=$MOPS_LIBS ldd "$file" 2>&1 | grep -q 'not found'; then bad=1; fi
  done
  echo "== Open MPI plug-ins and PMIx plug-ins with a missing library:"
  for file in "$BUNDLE"/openmpi/"${OMPI_PKGLIBDIR_REL:-lib/x86_64-linux-gnu/openmpi/lib/openmpi3}"/*.so "$BUNDLE"/pmix/lib/pmix/*.so; do
    [[ -f $file ]] || continue
    LD_LIBRARY_PATH=$MOPS_LIBS ldd "$file" 2>&1 | grep 'not found' | sed "s|^|$(basename "$file"): |"
  done
  [[ $bad == 0 ]] || { echo "error: a bundled binary has a library not found"; return 1; }
}
export -f check_libs
export BUNDLE OMPI_BINDIR_REL OMPI_PKGLIBDIR_REL MOPS_LIBS

mpi_info() {  # where the bundled Open MPI looks (OPAL_PREFIX), its components, a 2-rank job
  LD_LIBRARY_PATH=$MOPS_LIBS ompi_info --path all 2>&1 | sed -n '/Prefix\|Libdir\|Pkglibdir\|Pkgdatadir\|Sysconfdir/p'
  LD_LIBRARY_PATH=$MOPS_LIBS ompi_info 2>&1 | grep -E 'Open MPI:|MCA pmix|MCA btl|MCA pml'
  local host=hostname
  command -v hostname >/dev/null || host="uname -n"
  # shellcheck disable=SC2086
  LD_LIBRARY_PATH=$MOPS_LIBS mpirun -np 2 $host
}
export -f mpi_info

run_step libraries 30 bash -c check_libs
run_step openmpi 30 bash -c mpi_info

MOPS=$BUNDLE/bin/mops
run_step generate 60 "${B_ENV[@]}" "$MOPS" generate --model models/skills7-base.safetensors --ids 1 --max-new-tokens 8 \
  --print-ids --greedy --device cuda
DEVICE_LINE=$(grep -m1 '^device:' "${S_LOG[$LAST]}")

# The compiled-in paths and mpirun -> mops federate -> HDF5 readers, on the CPU (what GpuFederate does first).
run_step mpi-federate 60 "${B_ENV[@]}" OMP_NUM_THREADS=1 "$BUNDLE/bin/mops_tests" \
  --gtest_filter='MpiFederate.EachRoundReducesExactlyTheStateAndTheMetrics' --gtest_color=no
gtest_result
run_step gpu-tests 200 "${B_ENV[@]}" OMP_NUM_THREADS=1 "$BUNDLE/bin/mops_tests" --gtest_filter='Gpu*' --gtest_color=no
gtest_result
run_step mpi-np2 60 "${B_ENV[@]}" OMP_NUM_THREADS=1 mpirun -np 2 "$BUNDLE/bin/mops_mpi_tests" --gtest_color=no
gtest_result
run_step nccl-np1 90 "${B_ENV[@]}" OMP_NUM_THREADS=1 NCCL_DEBUG=VERSION MOPS_TEST_COMM=nccl mpirun -np 1 "$BUNDLE/bin/mops_mpi_tests" --gtest_color=no
gtest_result

BENCH=$BUNDLE/bin/mops_step_bench
# shellcheck disable=SC2034  # used through the name reference below
SMALL_A=(--dim 128 --layers 6 --heads 4 --kv-heads 2 --seq 64 --batch 8 --experts 7 --prompts-per-expert 4)
# shellcheck disable=SC2034
SMALL_B=(--dim 256 --layers 8 --heads 8 --kv-heads 4 --seq 128 --batch 8 --experts 7 --prompts-per-expert 10)
LLAMA7B=(--dim 4096 --layers 32 --heads 32 --kv-heads 32 --hidden 11008 --vocab 32000 --seq 256 --batch 1
         --experts 7 --prompts-per-expert 10 --first-prompts 10 --dtype bfloat16 --steps 10 --warmup 3)
for shape in A B; do
  declare -n args=SMALL_$shape
  for method in mop prompt; do
    for cache in "" --cache; do
      run_step "bench-$shape-$method${cache:+-cache}" 60 "${B_ENV[@]}" "$BENCH" "${args[@]}" --method "$method" $cache --device cuda --json
      bench_result
    done
  done
  unset -n args
done

run_step bench-7B-mop 180 "${B_ENV[@]}" "$BENCH" "${LLAMA7B[@]}" --method mop --device cuda --json
bench_result
I_7B_MOP=$LAST
LEFT=$((BUDGET - (SECONDS - T0)))
if [[ ${S_STATUS[$I_7B_MOP]} == TIMEOUT ]]; then
  skip_step bench-7B-prompt "the mop run at this shape timed out"
elif [[ ${S_STATUS[$I_7B_MOP]} == PASS ]] && ((LEFT < ${S_SECS[$I_7B_MOP]%.*})); then
  skip_step bench-7B-prompt "the mop run took ${S_SECS[$I_7B_MOP]} s, ${LEFT} s of the budget are left"
else
  run_step bench-7B-prompt 180 "${B_ENV[@]}" "$BENCH" "${LLAMA7B[@]}" --method prompt --device cuda --json
  bench_result
fi
I_7B_PROMPT=$LAST
# PyTorch eager on the GPU: only where bench/pytorch_step.py has --device (and --dtype for the 7B shape).
PY_HELP=""
[[ -x $PY && -f $PYTORCH_STEP ]] && PY_HELP=$(timeout 60 "$PY" "$PYTORCH_STEP" --help 2>&1)
py_step() {  # py_step NAME ARGS...: the torch venv's python, in the machine's own environment
  local name=$1; shift
  run_step "$name" 90 "$PY" "$PYTORCH_STEP" "$@" --device cuda --json
  bench_result
}
if [[ $PY_HELP == *"[--device"* ]]; then  # in its usage line
  for shape in A B; do
    declare -n args=SMALL_$shape
    for method in mop prompt; do py_step "pytorch-$shape-$method" "${args[@]}" --method "$method"; done
    unset -n args
  done
  # torch.compile of the same step on the GPU, once (it compiles for tens of seconds).
  run_step pytorch-compile-B-mop 150 "$PY" "$PYTORCH_STEP" "${SMALL_B[@]}" --method mop --compile --device cuda --json
  bench_result
  PY_DEVICE=yes
else
  why="$PYTORCH_STEP has no --device option: the PyTorch eager side runs on the CPU only"
  [[ -x $PY ]] || why="no python at $PY"
  [[ -f $PYTORCH_STEP ]] || why="no $PYTORCH_STEP"
  skip_step pytorch-gpu "$why"
  PY_DEVICE=no
fi

if [[ $PY_DEVICE == yes ]]; then
  if [[ $PY_HELP == *"[--dtype"* ]]; then
    py_step pytorch-7B-mop "${LLAMA7B[@]}" --method mop
  else
    skip_step pytorch-7B "$PYTORCH_STEP has no --dtype: no bfloat16 7B comparison"
  fi
fi
stop_sampler

# --- summary ---
project() {  # project INDEX LABEL: 50 000 steps at that step's ms/step
  local ms
  ms=$(ms_of "$1")
  if [[ -n $ms ]]; then
    awk -v ms="$ms" -v label="$2" 'BEGIN { s = 50000 * ms / 1000;
      printf "50 000 %s steps at %.3f ms/step: %.0f s = %.2f h (training steps only: no data, evaluation or communication)\n", label, ms, s, s / 3600 }'
  else
    echo "50 000 $2 steps: no 7B figure (step ${S_NAME[$1]}: ${S_STATUS[$1]})"
  fi
}
failed=0
{
  echo "MoPs GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -n), ${SECONDS} s in all, budget ${BUDGET} s)"
  echo "repository: $REPO; bundle: $BUNDLE (from ${BUNDLED_FROM:-?} at ${BUNDLED_COMMIT:-?}, ${BUNDLED_OS:-?})"
  echo
  echo "== machine"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap,pstate --format=csv 2>&1
    grep -m1 'CUDA Version' "$OUT/nvidia-smi.txt" | sed 's/  */ /g'
  else
    echo "no nvidia-smi"
  fi
  command -v nvcc >/dev/null && echo "nvcc: $(nvcc --version 2>/dev/null | grep -m1 release || echo 'does not run')"
  echo "OS: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), kernel $(uname -r), glibc ${GLIBC_HERE:-?} (bundle needs >= ${GLIBC_NEEDED:-?})"
  echo "CPU: $(nproc) cores, $(awk '/^model name/ { $1 = $2 = $3 = ""; print; exit }' /proc/cpuinfo | sed 's/^ *//'); memory $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "torch venv: ${SITE:-not found} (torch ${TORCH_HERE:-?}; the bundle was built against ${TORCH_VERSION:-?}); python $("$PY" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo '?')"
  echo "Open MPI ${OMPI_VERSION:-?} bundled; $(grep -m1 'Open MPI:' "${S_LOG[1]}" 2>/dev/null | sed 's/^ *//')"
  ((${#WARNINGS[@]})) && printf 'WARNING: %s\n' "${WARNINGS[@]}"
  echo
  echo "== steps"
  for i in "${!S_NAME[@]}"; do
    printf '%2d %-20s %-7s %7s s  %s\n' $((i + 1)) "${S_NAME[$i]}" "${S_STATUS[$i]}" "${S_SECS[$i]}" "${S_NOTE[$i]}"
    [[ ${S_STATUS[$i]} == FAIL || ${S_STATUS[$i]} == TIMEOUT ]] && failed=$((failed + 1))
  done
  echo
  echo "== figures"
  echo "device line (mops generate --device cuda): ${DEVICE_LINE:-none (see logs/03-generate.log)}"
  for i in "${!S_NAME[@]}"; do
    case ${S_NAME[$i]} in
      mpi-federate | gpu-tests | mpi-np2 | nccl-np1)
        echo "${S_NAME[$i]}:"
        grep -E '^\[ *(OK|FAILED|SKIPPED) *\] .*\([0-9]+ ms\)$|^\[  (PASSED|SKIPPED|FAILED)  ?\] [0-9]+ tests?|ranks had failures|final perplexity|differ bitwise from the serial sum|NCCL version' \
          "${S_LOG[$i]}" 2>/dev/null | sed 's/^/  /'
        ;;
    esac
  done
  echo "step benchmarks (JSON lines, also in bench.jsonl):"
  for i in "${!S_NAME[@]}"; do
    [[ -n ${JSON_OF[$i]:-} ]] && echo "  ${S_NAME[$i]}: ${JSON_OF[$i]}"
  done
  [[ -s $OUT/bench.jsonl ]] || echo "  none"
  project "$I_7B_MOP" "MoPs (7B shape, bfloat16, seq 256, batch 1)"
  project "$I_7B_PROMPT" "prompt-baseline (7B shape)"
  if [[ -s $LOGS/gpu-samples.csv ]]; then
    awk -F', *' '{ if ($3 > mem) mem = $3; if ($2 > util) util = $2; total = $4; n++ }
      END { printf "GPU samples (1/s, %d): peak memory used %d of %d MiB, peak utilisation %d %%\n", n, mem, total, util }' \
      "$LOGS/gpu-samples.csv"
  fi
  echo
  echo "== commands (logs/NN-name.log; MOPS_LIBS is the LD_LIBRARY_PATH below)"
  for i in "${!S_NAME[@]}"; do
    [[ -n ${S_CMD[$i]:-} ]] && printf '%2d %s\n' $((i + 1)) "${S_CMD[$i]}"
  done
  echo
  echo "== environment"
  echo "LD_LIBRARY_PATH=$MOPS_LIBS"
  echo "OPAL_PREFIX=$OPAL_PREFIX OPAL_SYSCONFDIR=$OPAL_SYSCONFDIR PMIX_PREFIX=${PMIX_PREFIX:-} MOPS_PLUGIN_DIR=$MOPS_PLUGIN_DIR"
  echo "compiled-in paths: SOURCE_DIR=$SOURCE_DIR BUILD_DIR=$BUILD_DIR TEST_WORK_DIR=$TEST_WORK_DIR PYTHON=$PYTHON"
  ((${#LINKS_MADE[@]})) && printf 'linked: %s\n' "${LINKS_MADE[@]}"
  echo
  echo "== nvidia-smi (at the start)"
  cat "$OUT/nvidia-smi.txt"
} >"$SUMMARY" 2>&1
echo
echo "================ $SUMMARY (here without the test lines, commands, environment and nvidia-smi)"
awk '/^== (commands|environment|nvidia-smi)/ { skip = 1 } /^== (machine|steps|figures)/ { skip = 0 }
     !skip && !/^  \[/' "$SUMMARY"
((failed == 0))
