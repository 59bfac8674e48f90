#!/usr/bin/env bash
# Installs what MoPs needs from Debian 12's apt, and nothing that is already there.
# Idempotent; works as root or through sudo; prints nothing when all is present.
set -euo pipefail

PACKAGES=(
  g++ make cmake pkg-config git                 # toolchain
  libtorch-dev libopenblas0-pthread             # LibTorch 1.13 (CPU) on OpenBLAS, not the reference BLAS
  libopenmpi-dev openmpi-bin                    # MPI
  libhdf5-dev                                   # results files
  libboost-program-options-dev                  # command line and config files
  libsentencepiece-dev sentencepiece            # tokenizers
  nlohmann-json3-dev                            # JSON (checkpoint headers, configs)
  googletest libgtest-dev                       # tests
  clang libclang-rt-14-dev                      # fuzz targets: libFuzzer, ASan, UBSan (scripts/fuzz.sh)
  python3 python3-numpy python3-h5py python3-matplotlib  # reference checks and analysis
  python3-torch                                 # PyTorch eager side of bench/step_comparison.sh
  munge slurmctld slurmd slurm-client           # single-node SLURM for the slurm tests (slurm/local_cluster.sh)
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null; then
  SUDO=(sudo)
else
  echo "setup: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}" >&2
log=$(mktemp)
if ! { "${SUDO[@]}" apt-get update -qq &&
       "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: apt-get failed (log above)" >&2
  exit 1
fi
rm -f "$log"
