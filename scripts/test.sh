#!/usr/bin/env bash
# README command 2: set up, build, run every test (ctest; labels unit, mpi, slurm, gpu, fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
ctest --test-dir "${MOPS_BUILD_DIR:-build}" -j "$(nproc)" --output-on-failure "$@"
