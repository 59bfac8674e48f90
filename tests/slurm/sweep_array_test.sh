#!/usr/bin/env bash
# ctest slurm_sweep_array: starts a real single-node SLURM (slurm/local_cluster.sh), submits
# slurm/sweep_array.sbatch as a job array over the settings of SPEC with `sbatch --wait`, checks
# every point's HDF5 results and the job logs, and stops the cluster (also on failure).
#
#   tests/slurm/sweep_array_test.sh --mops build/mops --out DIR [--spec jobs/tiny.ini]
#
# Run from the repository root, as root, after `bash scripts/setup.sh`. The cluster gets its own
# directory and ports (MOPS_SLURM_DIR, MOPS_SLURM_PORT below), so it never touches one that
# slurm/local_cluster.sh started with its defaults.
set -euo pipefail

spec=jobs/tiny.ini mops="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mops) mops=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --spec) spec=$2; shift 2 ;;
    *) echo "usage: $0 --mops PATH --out DIR [--spec SPEC]" >&2; exit 2 ;;
  esac
done
{ [ -n "$mops" ] && [ -n "$out" ]; } || { echo "usage: $0 --mops PATH --out DIR [--spec SPEC]" >&2; exit 2; }
[ -x "$mops" ] || { echo "FAILED: no mops binary at $mops: build it first (bash scripts/build.sh)" >&2; exit 1; }
[ -f slurm/sweep_array.sbatch ] || { echo "FAILED: run from the repository root" >&2; exit 1; }

export MOPS_SLURM_DIR=${MOPS_SLURM_TEST_DIR:-/tmp/mops-slurm-test}
export MOPS_SLURM_PORT=${MOPS_SLURM_TEST_PORT:-16827}
export MOPS=$mops
WAIT_LIMIT=${MOPS_SLURM_TEST_WAIT:-1500}   # seconds for the whole array; below the ctest TIMEOUT
start_time=$(date +%s)

fail() {
  echo "FAILED: $*" >&2
  exit 1
}

# On any exit: on failure show the daemons' logs, then stop the cluster (no daemons left behind).
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ] && [ -d "$MOPS_SLURM_DIR/log" ]; then
    for log in "$MOPS_SLURM_DIR"/log/*.log; do
      echo "--- last lines of $log:" >&2
      tail -n 20 "$log" >&2
    done
  fi
  slurm/local_cluster.sh stop >&2 || echo "WARNING: slurm/local_cluster.sh stop failed" >&2
  echo "sweep_array_test: $([ "$rc" -eq 0 ] && echo passed || echo FAILED) in $(($(date +%s) - start_time)) s"
  exit "$rc"
}
# One such test at a time on this machine, also across build directories (same dir and ports).
exec 9>"$MOPS_SLURM_DIR.lock"
flock -w "$WAIT_LIMIT" 9 || fail "another SLURM test still holds $MOPS_SLURM_DIR.lock after $WAIT_LIMIT s"
trap cleanup EXIT
trap 'exit 130' INT TERM

slurm/local_cluster.sh start 9>&- ||
  fail "the single-node SLURM did not start (reason above). The test needs root and Debian's munge," \
       "slurmctld, slurmd and slurm-client (bash scripts/setup.sh installs them)."
eval "$(slurm/local_cluster.sh env)"

rm -rf "$out"
mkdir -p "$out/logs"
python=${MOPS_PYTHON:-.venv/bin/python}  # the project's environment (scripts/setup.sh)
settings=$("$python" jobs/sweep.py "$spec" --list) || fail "jobs/sweep.py $spec --list failed"
n=$(echo "$settings" | wc -l)
echo "sweep_array_test: $n settings of $spec: $(echo "$settings" | tr '\n' ' ')"

# The array: one task per setting; --wait returns when all have ended, with the highest exit code.
job=$(timeout "$WAIT_LIMIT" sbatch --parsable --wait --array=0-$((n - 1)) \
        --output="$out/logs/%x-%A_%a.out" slurm/sweep_array.sbatch "$spec" "$out") || {
  rc=$?
  for log in "$out"/logs/*.out; do [ -f "$log" ] && { echo "--- $log:" >&2; tail -n 30 "$log" >&2; }; done
  [ "$rc" -eq 124 ] && fail "the array job did not finish within $WAIT_LIMIT s (job logs above)"
  fail "the array job failed (sbatch exit $rc; job logs above)"
}
job=${job%%;*}
echo "sweep_array_test: array job $job finished"

# One log per array task, written by that task (its header names job and task).
for i in $(seq 0 $((n - 1))); do
  log="$out/logs/mops-sweep-${job}_$i.out"
  [ -s "$log" ] || fail "missing or empty job log $log"
  grep -q "(array ${job}_$i) on " "$log" || fail "$log does not say it ran as array task ${job}_$i"
  grep -q "setting $i of $spec" "$log" || fail "$log did not run setting $i"
done

# Every point's results: status finished, the point's mode/method/seed, the schema.
"$python" tests/slurm/check_sweep_output.py "$spec" "$out" || fail "the sweep's results are incomplete (above)"
