#!/usr/bin/env bash
# build.sh: builds flowfeed on a machine without network from the packages tools/offline/fetch.sh
# downloaded (docs/offline.md).
#
#   bash tools/offline/build.sh [DEPS [BUILD_DIR]]   # defaults: .offline-deps, build-offline
#
# Unpacks DEPS/debs/*.deb into DEPS/usr (dpkg -x: no root, nothing outside DEPS), configures a
# JPEG-only build (FLOWFEED_OPENCV_IMGCODECS=OFF: the bundle has no imgcodecs) against it, with
# the trainer when `python3 -c 'import torch'` works (its LibTorch), builds, and prints the
# LD_LIBRARY_PATH to run the results with.
#
# Environment: TORCH=0 builds no trainer even where torch imports; TARGETS (default: all) the
# targets to build; JOBS (default nproc); CMAKE_ARGS, more -D options.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DEPS=$(realpath -m "${1:-.offline-deps}")
BUILD_DIR=${2:-build-offline}
JOBS=${JOBS:-$(nproc)}
MULTIARCH=x86_64-linux-gnu

compgen -G "$DEPS/debs/*.deb" >/dev/null ||
  { echo "build.sh: no packages in $DEPS/debs: run tools/offline/fetch.sh on a machine with network" >&2; exit 1; }
# Unpacked again whenever a package is newer than the last unpacking.
if [ ! -f "$DEPS/.unpacked" ] || [ -n "$(find "$DEPS/debs" -name '*.deb' -newer "$DEPS/.unpacked")" ]; then
  rm -rf "$DEPS/usr" "$DEPS/lib" "$DEPS/etc"
  for d in "$DEPS"/debs/*.deb; do dpkg -x "$d" "$DEPS"; done
  touch "$DEPS/.unpacked"
fi

LIB=$DEPS/usr/lib/$MULTIARCH
# libblas.so.3 and liblapack.so.3 live in blas/ and lapack/: Debian links them into lib/ through
# update-alternatives, which dpkg -x does not run. The linker needs them too (libopencv_core.so's
# NEEDED entries), and ctest's test discovery runs the test program during the build.
export LD_LIBRARY_PATH="$LIB:$LIB/blas:$LIB/lapack${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The .pc files say prefix=/usr: the sysroot puts DEPS in front of their paths, and LIBDIR (not
# PATH) keeps the system's own .pc files out, which would get the same prefix and point nowhere.
export PKG_CONFIG_SYSROOT_DIR=$DEPS
export PKG_CONFIG_LIBDIR="$LIB/pkgconfig:$DEPS/usr/share/pkgconfig"

# Headers in the multiarch folder (jconfig.h, which jpeglib.h includes) are found through the
# compiler's default search path on Debian, which knows nothing of DEPS; the .pc files name only
# DEPS/usr/include. CPLUS_INCLUDE_PATH is searched where the default one would be.
export CPLUS_INCLUDE_PATH="$DEPS/usr/include/$MULTIARCH${CPLUS_INCLUDE_PATH:+:$CPLUS_INCLUDE_PATH}"

prefix="$DEPS/usr"
torch=OFF
if [ "${TORCH:-1}" != 0 ] && tp=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null); then
  prefix="$prefix;$tp"
  torch=ON
  echo "build.sh: LibTorch from $tp: the trainer is built"
else
  echo "build.sh: no torch for python3 (or TORCH=0): no trainer"
fi

GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of words
cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DFLOWFEED_OPENCV_IMGCODECS=OFF -DFLOWFEED_WITH_TORCH=$torch \
  -DFLOWFEED_PYTHON=OFF ${CMAKE_ARGS:-}
targets=()
for t in ${TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j "$JOBS" "${targets[@]}"
echo "build.sh: built in $BUILD_DIR; run with"
echo "  export LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
echo "(to build again by hand, also export CPLUS_INCLUDE_PATH=$CPLUS_INCLUDE_PATH)"
