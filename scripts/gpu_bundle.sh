#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs on a GPU machine that has LibTorch (a torch venv) but no
# Open MPI, HDF5, Boost or SentencePiece: the binaries of a build made here and every shared library
# they load, except those that machine brings itself. Run here, from anywhere:
#   bash scripts/gpu_bundle.sh                     # build dir: build (MOPS_BUILD_DIR changes it)
#   MOPS_GPU_BUNDLE=/tmp/b bash scripts/gpu_bundle.sh   # other destination (default: gpu-bundle/)
#   MOPS_GPU_BUNDLE_SLIM=1 bash scripts/gpu_bundle.sh   # without Open MPI's network-fabric (UCX, OFI,
#       PSM, verbs) and OpenSHMEM plug-ins and their libraries (about 7 MiB less): one node needs none
# It prints its size and that of the working tree: the device tool carries 64 MiB in all.
# The bundle (ignored by git, carried by the device tool: docs/gpu_check.md):
#   bin/       mops, mops_step_bench, mops_tests, mops_mpi_tests, libmops_sentencepiece.so (stripped)
#   lib/       the ldd closure of those and of the Open MPI / PMIx below, minus glibc, the driver
#              (libcuda), the torch venv's libraries and the CUDA toolkit's (libcudart, libnccl,
#              libcublas...: the GPU machine's torch venv has them under site-packages/nvidia/*/lib)
#   openmpi/   Debian's Open MPI in its own layout, relocatable with OPAL_PREFIX=openmpi:
#              bin/ (orterun = mpirun, orted, ompi_info), lib/x86_64-linux-gnu/openmpi/lib (libmpi...),
#              .../openmpi3 (mca_*.so), share/openmpi (help files), etc/openmpi (OPAL_SYSCONFDIR)
#   pmix/      the external PMIx Open MPI uses (lib/libpmix.so.2, lib/pmix plug-ins, share),
#              relocatable with PMIX_PREFIX, PMIX_LIBDIR, PMIX_DATADIR... (gpu_check.sh sets them)
#   paths.env  the build's compiled-in paths (generated/build_paths.h) and what the bundle expects
#   needs-from-torch-venv.txt   the CUDA libraries left out (gpu_check.sh checks that they are there)
#   MANIFEST.txt  every file with where it came from, and every library left out with why
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${MOPS_BUILD_DIR:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
DEST=${MOPS_GPU_BUNDLE:-$ROOT/gpu-bundle}
[[ $DEST = /* ]] || DEST=$PWD/$DEST

die() { echo "gpu_bundle: $*" >&2; exit 1; }
note() { echo "gpu_bundle: $*" >&2; }

for tool in ldd strip readelf objdump realpath; do
  command -v "$tool" >/dev/null || die "needs $tool (binutils / libc-bin)"
done

# --- the build's files ---
declare -A BIN_SRC=(
  [mops]=$BUILD/mops
  [mops_step_bench]=$BUILD/mops_step_bench
  [mops_tests]=$BUILD/tests/mops_tests
  [mops_mpi_tests]=$BUILD/tests/mops_mpi_tests
  [libmops_sentencepiece.so]=$BUILD/libmops_sentencepiece.so
)
BIN_ORDER=(mops mops_step_bench mops_tests mops_mpi_tests libmops_sentencepiece.so)
for name in "${BIN_ORDER[@]}"; do
  [[ -f ${BIN_SRC[$name]} ]] || die "${BIN_SRC[$name]} is missing: build $BUILD first (scripts/build.sh)"
done
PATHS_H=$BUILD/generated/build_paths.h
[[ -f $PATHS_H ]] || die "$PATHS_H is missing: not a configured build dir?"
define_of() {  # the string value of `#define NAME "value"` in build_paths.h
  sed -n "s/^#define $1 \"\\([^\"]*\\)\".*/\\1/p" "$PATHS_H" | head -1
}
SOURCE_DIR=$(define_of MOPS_SOURCE_DIR)
SHARED_DIR=$(define_of MOPS_SHARED_DIR)
PLUGIN_DIR=$(define_of MOPS_PLUGIN_BUILD_DIR)
BINARY=$(define_of MOPS_BINARY)
TEST_WORK_DIR=$(define_of MOPS_TEST_WORK_DIR)
PYTHON=$(define_of MOPS_PYTHON)
[[ -n $SOURCE_DIR && -n $BINARY && -n $TEST_WORK_DIR ]] || die "cannot read the paths in $PATHS_H"
BUILD_DIR=$(dirname "$BINARY")

# --- Open MPI's and PMIx's directories (ompi_info when present, Debian 12's otherwise) ---
ompi_path() {  # ompi_info's path NAME, or $2
  local value=""
  if command -v ompi_info >/dev/null; then
    value=$(ompi_info --parsable --path "$1" 2>/dev/null | sed -n "s/^path:$1://p" | head -1)
  fi
  echo "${value:-$2}"
}
OMPI_PREFIX=$(ompi_path prefix /usr)
OMPI_BINDIR=$(ompi_path bindir /usr/bin)
OMPI_LIBDIR=$(ompi_path libdir /usr/lib/x86_64-linux-gnu/openmpi/lib)
OMPI_PKGLIBDIR=$(ompi_path pkglibdir /usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3)
OMPI_PKGDATADIR=$(ompi_path pkgdatadir /usr/share/openmpi)
OMPI_SYSCONFDIR=$(ompi_path sysconfdir /etc/openmpi)
for dir in "$OMPI_BINDIR" "$OMPI_LIBDIR" "$OMPI_PKGLIBDIR" "$OMPI_PKGDATADIR"; do
  [[ -d $dir ]] || die "Open MPI's $dir is missing (Debian: apt-get install openmpi-bin libopenmpi-dev)"
done
[[ -x $OMPI_BINDIR/orterun && -x $OMPI_BINDIR/orted ]] || die "no orterun/orted in $OMPI_BINDIR: Open MPI 4 expected"
# A prefix-relative path below the bundle's openmpi/ (the layout OPAL_PREFIX relocates).
ompi_rel() {
  case $1 in
    "$OMPI_PREFIX"/*) echo "${1#"$OMPI_PREFIX"/}" ;;
    *) die "$1 is not below Open MPI's prefix $OMPI_PREFIX: not relocatable with OPAL_PREFIX" ;;
  esac
}

TMP=$DEST.tmp.$$
rm -rf "$TMP"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/bin" "$TMP/lib"
MANIFEST=$TMP/MANIFEST.txt
: >"$MANIFEST"
manifest() { printf '%s\n' "$*" >>"$MANIFEST"; }

# --- binaries, stripped ---
for name in "${BIN_ORDER[@]}"; do
  strip --strip-unneeded -o "$TMP/bin/$name" "${BIN_SRC[$name]}"
  chmod 755 "$TMP/bin/$name"
  manifest "bin/$name <- ${BIN_SRC[$name]} (stripped)"
done

# --- Open MPI: binaries, libraries, plug-ins, help files, configuration ---
OM=$TMP/openmpi
OM_BIN=$OM/$(ompi_rel "$OMPI_BINDIR")
OM_LIB=$OM/$(ompi_rel "$OMPI_LIBDIR")
OM_PKGLIB=$OM/$(ompi_rel "$OMPI_PKGLIBDIR")
OM_PKGDATA=$OM/$(ompi_rel "$OMPI_PKGDATADIR")
mkdir -p "$OM_BIN" "$OM_LIB" "$OM_PKGLIB" "$OM_PKGDATA" "$OM/etc/openmpi"
for tool in orterun orted ompi_info; do
  [[ -x $OMPI_BINDIR/$tool ]] || continue
  cp -L "$OMPI_BINDIR/$tool" "$OM_BIN/$tool"
  manifest "openmpi/$(ompi_rel "$OMPI_BINDIR")/$tool <- $OMPI_BINDIR/$tool"
done
# Copies, not links: the bundle holds no symbolic link (a copying tool may drop them).
cp "$OM_BIN/orterun" "$OM_BIN/mpirun"
cp "$OM_BIN/orterun" "$OM_BIN/mpiexec"
cp -aL "$OMPI_PKGDATADIR/." "$OM_PKGDATA/"
manifest "openmpi/$(ompi_rel "$OMPI_PKGDATADIR")/ <- $OMPI_PKGDATADIR/ (help files)"
if [[ -d $OMPI_SYSCONFDIR ]]; then
  cp -aL "$OMPI_SYSCONFDIR/." "$OM/etc/openmpi/"
  manifest "openmpi/etc/openmpi/ <- $OMPI_SYSCONFDIR/ (OPAL_SYSCONFDIR: MCA defaults, default hostfile)"
fi
# Plug-ins: all of them, except those whose libraries are missing here (they could not load here either).
PLUGINS=()
# Slim: the plug-ins for networks between nodes and for OpenSHMEM (Debian's MCA defaults in
# /etc/openmpi exclude the UCX, OFI and openib ones anyway).
SLIM_RE='^mca_(btl_(openib|ofi|usnic|uct)|mtl_(ofi|psm|psm2)|pml_ucx|osc_ucx|atomic_[a-z0-9]+|spml_[a-z0-9]+|sshmem_[a-z0-9]+|memheap_[a-z0-9]+|scoll_[a-z0-9]+)\.so$'
for plugin in "$OMPI_PKGLIBDIR"/*.so; do
  if [[ ${MOPS_GPU_BUNDLE_SLIM:-0} == 1 && $(basename "$plugin") =~ $SLIM_RE ]]; then
    manifest "left out: $plugin (MOPS_GPU_BUNDLE_SLIM=1)"
    continue
  fi
  if ldd "$plugin" 2>/dev/null | grep -q "not found"; then
    note "left out the Open MPI plug-in $(basename "$plugin"): $(ldd "$plugin" | awk '/not found/{print $1}' | tr '\n' ' ')missing here"
    manifest "left out: $plugin (its libraries are missing here)"
    continue
  fi
  cp -L "$plugin" "$OM_PKGLIB/"
  PLUGINS+=("$OM_PKGLIB/$(basename "$plugin")")
done
manifest "openmpi/$(ompi_rel "$OMPI_PKGLIBDIR")/ <- $OMPI_PKGLIBDIR/ (${#PLUGINS[@]} plug-ins)"
for extra in "$OMPI_LIBDIR"/*.so; do  # ompi_monitoring_prof.so and the like: real files in libdir
  [[ -f $extra && ! -L $extra ]] && cp -L "$extra" "$OM_LIB/" && PLUGINS+=("$OM_LIB/$(basename "$extra")")
done

# --- the library closure ---
# Libraries the GPU machine brings itself: glibc's own, the driver, the torch venv's, the CUDA toolkit's.
GLIBC_RE='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|libanl|libmvec|libnsl|libBrokenLocale|libthread_db|libc_malloc_debug|libnss_[a-z0-9]+)\.so\.[0-9.]+$|^ld-linux'
DRIVER_RE='^(libcuda|libnvidia-[a-z0-9-]+|libnvcuvid|libnvoptix)\.so'
CUDA_RE='^(libcudart|libnccl|libcublas|libcublasLt|libcufft|libcufftw|libcurand|libcusparse|libcusparseLt|libcusolver|libcusolverMg|libcudnn[a-z_]*|libnvJitLink|libnvrtc|libnvrtc-builtins|libcupti|libcufile|libcufile_rdma|libnvshmem_host|libnvToolsExt|libnvtx3interop|libnvperf_host|libnvblas|libcheckpoint)\.so'
declare -A LIB_PATH=()     # soname -> the file it resolves to here
declare -A LEFT_OUT=()     # soname -> why it is not bundled
declare -A NEEDS_TORCH=()  # CUDA sonames the torch venv must provide there
NOT_FOUND=()
closure_of() {  # adds what `ldd FILE` resolves, for each FILE
  local file name path
  for file in "$@"; do
    while read -r name path; do
      [[ -n $name ]] || continue
      if [[ $path == "not" ]]; then
        [[ $name =~ $DRIVER_RE ]] && { LEFT_OUT[$name]="the driver's (not here either)"; continue; }
        NOT_FOUND+=("$name (needed by $file)")
        continue
      fi
      if [[ $name =~ $GLIBC_RE ]]; then LEFT_OUT[$name]="glibc"
      elif [[ $name =~ $DRIVER_RE ]]; then LEFT_OUT[$name]="the driver's"
      elif [[ $path == */site-packages/* ]]; then
        LEFT_OUT[$name]="torch venv: $path"
        [[ $name =~ $CUDA_RE ]] && NEEDS_TORCH[$name]=1
      elif [[ $name =~ $CUDA_RE || $path == /usr/local/cuda* ]]; then
        LEFT_OUT[$name]="CUDA toolkit: $path"
        NEEDS_TORCH[$name]=1
      else
        if [[ -n ${LIB_PATH[$name]:-} && $(realpath "${LIB_PATH[$name]}") != $(realpath "$path") ]]; then
          die "$name resolves to both ${LIB_PATH[$name]} and $path"
        fi
        LIB_PATH[$name]=$path
      fi
    done < <(ldd "$file" 2>/dev/null | awk '$2 == "=>" { print $1, $3 }')
  done
}
closure_of "${BIN_SRC[@]}" "$OMPI_BINDIR/orterun" "$OMPI_BINDIR/orted" "${PLUGINS[@]}"
if (( ${#NOT_FOUND[@]} )); then
  printf '  %s\n' "${NOT_FOUND[@]}" >&2
  die "libraries not found here (fix the build machine first)"
fi

# Open MPI's own libraries go to its libdir, PMIx's to pmix/lib, the rest to lib/.
PMIX_SRC_PREFIX=""
is_ompi_lib() { [[ $1 =~ ^(libmpi|libmpi_[a-z0-9_-]+|libopen-rte|libopen-pal|liboshmem|libompitrace|libmca_common_[a-z0-9_]+)\.so ]]; }
for name in $(printf '%s\n' "${!LIB_PATH[@]}" | sort); do
  path=${LIB_PATH[$name]}
  if is_ompi_lib "$name"; then
    cp -L "$path" "$OM_LIB/$name"
    manifest "openmpi/$(ompi_rel "$OMPI_LIBDIR")/$name <- $path"
  elif [[ $name == libpmix.so* ]]; then
    real=$(realpath "$path")
    PMIX_SRC_PREFIX=$(dirname "$(dirname "$real")")  # .../pmix2/lib/libpmix.so.2.x -> .../pmix2
    mkdir -p "$TMP/pmix/lib"
    cp -L "$path" "$TMP/pmix/lib/$name"
    manifest "pmix/lib/$name <- $path ($real)"
  else
    cp -L "$path" "$TMP/lib/$name"
    manifest "lib/$name <- $path"
  fi
done
# The Open MPI libraries that no bundled file links but a plug-in or a user might (libmpi_cxx...).
for lib in "$(dirname "$(realpath "${LIB_PATH[libmpi.so.40]:-/nonexistent}")")"/libmca_common_*.so.[0-9]*; do
  [[ -f $lib ]] || continue
  name=$(objdump -p "$lib" | awk '/SONAME/{print $2}')
  [[ -e $OM_LIB/$name ]] || { cp -L "$lib" "$OM_LIB/$name"; manifest "openmpi/$(ompi_rel "$OMPI_LIBDIR")/$name <- $lib"; }
done

# --- PMIx (external to Open MPI on Debian): its plug-ins, help files and MCA defaults ---
if [[ -n $PMIX_SRC_PREFIX ]]; then
  if [[ -d $PMIX_SRC_PREFIX/lib/pmix ]]; then
    mkdir -p "$TMP/pmix/lib/pmix"
    for plugin in "$PMIX_SRC_PREFIX"/lib/pmix/*.so; do
      [[ -f $plugin ]] || continue
      cp -L "$plugin" "$TMP/pmix/lib/pmix/"
      closure_of "$plugin"
    done
    manifest "pmix/lib/pmix/ <- $PMIX_SRC_PREFIX/lib/pmix/ (PMIx plug-ins)"
  fi
  if [[ -d $PMIX_SRC_PREFIX/share ]]; then
    mkdir -p "$TMP/pmix/share"
    cp -aL "$PMIX_SRC_PREFIX/share/." "$TMP/pmix/share/"
    # Its MCA defaults name the plug-in directory absolutely: gpu_check.sh sets it (PMIX_MCA_...).
    [[ -f $TMP/pmix/share/pmix-mca-params.conf ]] &&
      sed -i 's|^\(mca_base_component_path *=.*\)|# \1   (gpu_bundle.sh: set by PMIX_MCA_mca_base_component_path)|' \
        "$TMP/pmix/share/pmix-mca-params.conf"
    manifest "pmix/share/ <- $PMIX_SRC_PREFIX/share/ (help files, pmix-mca-params.conf without its absolute component path)"
  fi
  # The PMIx plug-ins' own libraries (zlib...), when not bundled already.
  for name in $(printf '%s\n' "${!LIB_PATH[@]}" | sort); do
    is_ompi_lib "$name" || [[ $name == libpmix.so* || -e $TMP/lib/$name ]] ||
      { cp -L "${LIB_PATH[$name]}" "$TMP/lib/$name"; manifest "lib/$name <- ${LIB_PATH[$name]}"; }
  done
fi

for name in $(printf '%s\n' "${!LEFT_OUT[@]}" | sort); do manifest "left out: $name (${LEFT_OUT[$name]})"; done
printf '%s\n' "${!NEEDS_TORCH[@]}" | sort >"$TMP/needs-from-torch-venv.txt"

# --- what the GPU machine must have: glibc, the torch version this build linked ---
GLIBC_NEEDED=$(find "$TMP" -type f \( -name '*.so*' -o -perm -u+x \) -print0 |
  xargs -0 objdump -T 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
TORCH_LIB=$(ldd "$BUILD/mops" | awk '$1 == "libtorch_cpu.so" { print $3 }')
TORCH_VERSION=""
if [[ -n $TORCH_LIB && -f $(dirname "$(dirname "$TORCH_LIB")")/version.py ]]; then
  TORCH_VERSION=$(sed -n "s/^__version__ *= *'\\(.*\\)'.*/\\1/p" "$(dirname "$(dirname "$TORCH_LIB")")/version.py")
fi
GIT_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (working tree modified)" || true)
{
  echo "# Written by scripts/gpu_bundle.sh on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ); read by scripts/gpu_check.sh."
  echo "# The build's compiled-in paths (from $PATHS_H):"
  printf 'SOURCE_DIR=%q\n' "$SOURCE_DIR"
  printf 'SHARED_DIR=%q\n' "$SHARED_DIR"
  printf 'BUILD_DIR=%q\n' "$BUILD_DIR"
  printf 'PLUGIN_DIR=%q\n' "$PLUGIN_DIR"
  printf 'BINARY=%q\n' "$BINARY"
  printf 'TEST_WORK_DIR=%q\n' "$TEST_WORK_DIR"
  printf 'PYTHON=%q\n' "$PYTHON"
  echo "# What the bundle expects of the machine it runs on:"
  printf 'TORCH_VERSION=%q\n' "$TORCH_VERSION"
  printf 'GLIBC_NEEDED=%q\n' "$GLIBC_NEEDED"
  echo "# Where it came from:"
  printf 'BUNDLED_FROM=%q\n' "$BUILD"
  printf 'BUNDLED_COMMIT=%q\n' "$GIT_COMMIT$GIT_DIRTY"
  printf 'BUNDLED_GLIBC=%q\n' "$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')"
  printf 'BUNDLED_OS=%q\n' "$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  printf 'OMPI_VERSION=%q\n' "$(ompi_info --parsable 2>/dev/null | sed -n 's/^ompi:version:full://p' | head -1)"
  printf 'OMPI_LIBDIR_REL=%q\n' "$(ompi_rel "$OMPI_LIBDIR")"
  printf 'OMPI_PKGLIBDIR_REL=%q\n' "$(ompi_rel "$OMPI_PKGLIBDIR")"
  printf 'OMPI_PKGDATADIR_REL=%q\n' "$(ompi_rel "$OMPI_PKGDATADIR")"
  printf 'OMPI_BINDIR_REL=%q\n' "$(ompi_rel "$OMPI_BINDIR")"
  printf 'PMIX_BUNDLED=%q\n' "$([[ -n $PMIX_SRC_PREFIX ]] && echo 1 || echo 0)"
} >"$TMP/paths.env"

LINKS=$(find "$TMP" -type l | head -3)
[[ -z $LINKS ]] || die "symbolic links in the bundle: $LINKS"
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT
SIZE_KB=$(du -sk "$DEST" | cut -f1)
echo "gpu_bundle: $DEST: $(find "$DEST" -type f | wc -l) files, $((SIZE_KB / 1024)) MiB ($SIZE_KB KiB)" \
     "(bin $(du -sh "$DEST/bin" | cut -f1), lib $(du -sh "$DEST/lib" | cut -f1)," \
     "openmpi $(du -sh "$DEST/openmpi" | cut -f1), pmix $(du -sh "$DEST/pmix" 2>/dev/null | cut -f1 || echo 0))"
TREE_KB=0
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then  # what the device tool copies besides
  TREE_KB=$(( $(cd "$ROOT" && git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1) / 1024 ))
fi
echo "gpu_bundle: with the working tree ($((TREE_KB / 1024)) MiB) the device tool carries $(((SIZE_KB + TREE_KB) / 1024)) MiB of its 64"
if ((SIZE_KB + TREE_KB > 64 * 1024)); then
  note "too big to carry: try MOPS_GPU_BUNDLE_SLIM=1"
  exit 1
fi
echo "gpu_bundle: needs glibc >= $GLIBC_NEEDED and torch $TORCH_VERSION there; CUDA libraries from its torch venv:" \
     "$(tr '\n' ' ' <"$DEST/needs-from-torch-venv.txt")"
