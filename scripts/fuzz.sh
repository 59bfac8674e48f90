#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang++ with -fsanitize=fuzzer,address,undefined) and runs
# each for SECONDS (default 600), 2 at a time, on its corpus; prints per target executions,
# exec/s, coverage (cov/ft of libFuzzer's final stats), corpus size and crashes.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]       (targets: fuzz/targets.cmake; default all)
# Environment: MOPS_FUZZ_BUILD_DIR (default build-fuzz), MOPS_FUZZ_JOBS (default 2),
# MOPS_FUZZ_FINDINGS (default fuzz/findings).
# libFuzzer reads fuzz/corpus/T and fuzz/regressions/T and writes the inputs it adds to
# BUILD/corpus/T (kept between runs, never committed). A crash, hang (-timeout=10) or
# out-of-memory (-rss_limit_mb=2048) stops that target and is saved to FINDINGS/T/ (gitignored);
# the exit status is then 1. Logs: BUILD/logs/T.log.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
[ $# -gt 0 ] && shift
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2; }
build=${MOPS_FUZZ_BUILD_DIR:-build-fuzz}
jobs=${MOPS_FUZZ_JOBS:-2}
findings=${MOPS_FUZZ_FINDINGS:-fuzz/findings}

read -r -a all_targets <<<"$(sed -n 's/^set(MOPS_FUZZ_TARGETS \(.*\))$/\1/p' fuzz/targets.cmake)"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $target "* ]] ||
    { echo "fuzz.sh: unknown target '$target' (targets: ${all_targets[*]})" >&2; exit 2; }
done

command -v clang++ >/dev/null ||
  { echo "fuzz.sh: clang++ not found; install clang and libclang-rt-14-dev (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$build/logs"
if ! { cmake -S fuzz -B "$build" -DCMAKE_CXX_COMPILER=clang++ &&
       cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"; } >"$build/logs/build.log" 2>&1; then
  cat "$build/logs/build.log" >&2
  echo "fuzz.sh: building the fuzz targets failed (log above)" >&2
  exit 1
fi

# Runs TARGET for $seconds; its summary line goes to $build/logs/TARGET.summary.
run_target() {
  local target=$1 log="$build/logs/$1.log" out="$build/corpus/$1" found="$findings/$1"
  mkdir -p "$out" "$found" fuzz/regressions/"$target"
  local before
  before=$(find "$found" -type f | wc -l)
  local status=0 start=$SECONDS
  "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$found/" "$out" "fuzz/corpus/$target" \
    "fuzz/regressions/$target" >"$log" 2>&1 || status=$?
  local elapsed=$((SECONDS - start))
  local crashes=$(( $(find "$found" -type f | wc -l) - before ))
  local execs rate cov ft corp
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="? (exit $status, see $log)"; fi
  printf '%-16s %6s %12s %8s %7s %7s %6s %6s  %s\n' "$target" "$elapsed" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$(find "$out" -type f | wc -l)" "$crashes" \
    >"$build/logs/$target.summary"
  [ "$status" -eq 0 ]
}

echo "fuzz.sh: ${targets[*]} for ${seconds} s each, $jobs at a time (logs: $build/logs/)" >&2
failed=0
running=0
for target in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  run_target "$target" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done

printf '%-16s %6s %12s %8s %7s %7s %6s %6s  %s\n' target seconds executions exec/s cov ft corpus new crashes
for target in "${targets[@]}"; do cat "$build/logs/$target.summary"; done
if [ "$failed" -ne 0 ]; then
  echo "fuzz.sh: findings (crash, hang or out-of-memory) saved under $findings/; minimise with" \
       "$build/fuzz_TARGET -minimize_crash=1 -runs=100000 FILE and add it to fuzz/regressions/TARGET/" >&2
  exit 1
fi
