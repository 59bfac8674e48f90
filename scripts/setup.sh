#!/usr/bin/env bash
# Installs what MoPs needs: Debian 12's packages (apt), then the project's Python environment
# .venv (LibTorch comes from its torch wheel) from the pinned requirements.txt. Installs nothing
# that is already there; idempotent; works as root or through sudo; prints nothing when all is
# present.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  g++ make cmake pkg-config git                 # toolchain
  libopenmpi-dev openmpi-bin                    # MPI
  libhdf5-dev                                   # results files
  libboost-program-options-dev                  # command line and config files
  libsentencepiece-dev sentencepiece            # tokenizers
  nlohmann-json3-dev                            # JSON (checkpoint headers, configs)
  googletest libgtest-dev                       # tests
  clang libclang-rt-14-dev                      # fuzz targets: libFuzzer, ASan, UBSan (scripts/fuzz.sh)
  python3 python3-venv                          # the base of .venv (torch, numpy, h5py, matplotlib)
  munge slurmctld slurmd slurm-client           # single-node SLURM for the slurm tests (slurm/local_cluster.sh)
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

install_debian_packages() {
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
}

# The venv is rebuilt when requirements.txt changed since it was made (its copy in the venv).
make_python_environment() {
  local venv=.venv
  if [ -x "$venv/bin/python" ] && cmp -s requirements.txt "$venv/requirements.txt"; then return; fi
  echo "setup: installing the Python environment $venv from requirements.txt (torch with LibTorch, ~5 GB)" >&2
  local log
  log=$(mktemp)
  rm -rf "$venv"
  if ! { /usr/bin/python3 -m venv "$venv" &&
         "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r requirements.txt; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: pip failed (log above); the environment $venv is incomplete and will be remade next time" >&2
    rm -f "$venv/requirements.txt"
    exit 1
  fi
  rm -f "$log"
  cp requirements.txt "$venv/requirements.txt"
}

[ ${#missing[@]} -eq 0 ] || install_debian_packages
make_python_environment
