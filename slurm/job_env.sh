# shellcheck shell=bash
# Sourced by the slurm/*.sbatch scripts inside a job (not run by itself). Expects ROOT (the
# repository) and ME (the script's name) to be set; sets MOPS and PYTHON and the Open MPI
# settings for root, cds to ROOT, prints one line saying what runs where, and defines
# fail, has_option and make_out_dir.

fail() { echo "$ME: $*" >&2; exit 1; }

[ -n "${SLURM_JOB_ID:-}" ] || fail "not inside a SLURM job: submit it with sbatch (see the header of slurm/$ME)"
cd "$ROOT" || fail "cannot enter $ROOT"

# The mops binary: MOPS, else the default build directory.
MOPS=${MOPS:-$ROOT/${MOPS_BUILD_DIR:-build}/mops}
[ -x "$MOPS" ] || fail "no mops binary at $MOPS: build it (bash scripts/build.sh) or submit with MOPS=/path/to/mops"

# Python with h5py for jobs/sweep.py: the project's environment (scripts/setup.sh), MOPS_PYTHON to change it.
PYTHON=${MOPS_PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || fail "no Python at $PYTHON: run bash scripts/setup.sh (it makes .venv) or submit with MOPS_PYTHON=/path/to/python"

# Open MPI refuses to run as root without these (containers, the local test cluster).
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# True when the arguments already contain option $1 (as "--opt v" or "--opt=v").
has_option() {
  local name=$1 arg; shift
  for arg in "$@"; do
    case "$arg" in "$name"|"$name"=*) return 0 ;; esac
  done
  return 1
}

echo "$ME: job ${SLURM_JOB_ID}${SLURM_ARRAY_TASK_ID:+ (array ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID})}" \
     "on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-1} task(s), ${SLURM_CPUS_PER_TASK:-1} CPU(s) per task," \
     "GPUs per task: ${SLURM_GPUS_PER_TASK:-none}; mops: $MOPS; started $(date '+%F %T')"

# mops writes --out FILE but does not create its directory: create it.
make_out_dir() {
  local previous="" arg
  for arg in "$@"; do
    case "$arg" in --out=*) mkdir -p "$(dirname "${arg#--out=}")" ;; esac
    [ "$previous" = --out ] && mkdir -p "$(dirname "$arg")"
    previous=$arg
  done
  return 0
}
