#!/usr/bin/env bash
# Builds everything with AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer
# (g++, RelWithDebInfo) into ${MOPS_ASAN_BUILD_DIR:-build-asan} and runs every test there; the
# first report ends the process, so a report fails its test. Extra arguments go to both ctest
# passes below (bash scripts/sanitize.sh -L unit). The first build took 40 minutes on 2 busy cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${MOPS_ASAN_BUILD_DIR:-build-asan}
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" -DCMAKE_EXE_LINKER_FLAGS="$SAN" \
  -DCMAKE_SHARED_LINKER_FLAGS="$SAN" -DCMAKE_MODULE_LINKER_FLAGS="$SAN" \
  >"$BUILD_DIR.configure.log" 2>&1 || { cat "$BUILD_DIR.configure.log" >&2; exit 1; }
cmake --build "$BUILD_DIR" -j "$(nproc)"

ASAN="halt_on_error=1:detect_leaks=1:print_stacktrace=1:strict_string_checks=1"
ASAN+=":detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Third-party frames only (see the file).
export LSAN_OPTIONS=suppressions=$PWD/scripts/sanitizers/lsan.supp:print_suppressions=0
# Tests that start Open MPI jobs: the MPI tests, the NCCL test (mpirun), the SLURM array and the
# sweep (their federated points run mpirun). Open MPI has no frame pointers, so ASan's fast
# unwinder stops inside it and leaves its leaks' stacks too short to match lsan.supp: these
# tests run with the slow (DWARF) unwinder, about 4x slower.
MPI_TESTS='^(MpiFederate\.|mpi_communicator_|gpu_nccl_|slurm_|sweep_)'
status=0
ASAN_OPTIONS=$ASAN ctest --test-dir "$BUILD_DIR" -j "$(nproc)" --output-on-failure -E "$MPI_TESTS" "$@" ||
  status=$?
ASAN_OPTIONS=$ASAN:fast_unwind_on_malloc=0 ctest --test-dir "$BUILD_DIR" -j "$(nproc)" --output-on-failure \
  -R "$MPI_TESTS" "$@" || status=$?
exit "$status"
