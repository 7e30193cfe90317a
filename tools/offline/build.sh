#!/usr/bin/env bash
# build.sh: builds flowfeed on a machine without network from the packages tools/offline/fetch.sh
# downloaded (docs/offline.md).
#
#   bash tools/offline/build.sh [DEPS [BUILD_DIR]]   # defaults: .offline-deps, build-offline
#
# Unpacks DEPS/debs/*.deb into DEPS/usr and writes DEPS/env.sh (tools/offline/unpack.sh: no
# root, nothing outside DEPS), configures a JPEG-only build (FLOWFEED_OPENCV_IMGCODECS=OFF: the
# bundle has no imgcodecs) against it, with the trainer when `python3 -c 'import torch'` works
# (its LibTorch), and builds. Run the results, or build against them, after `. DEPS/env.sh`.
#
# Environment: TORCH=0 builds no trainer even where torch imports; TARGETS (default: all) the
# targets to build; JOBS (default nproc); CMAKE_ARGS, more -D options.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DEPS=$(realpath -m "${1:-.offline-deps}")
BUILD_DIR=${2:-build-offline}
JOBS=${JOBS:-$(nproc)}

bash tools/offline/unpack.sh "$DEPS"
# shellcheck source=/dev/null  # written by unpack.sh
. "$DEPS/env.sh"

prefix="$DEPS/usr"
torch=(-DFLOWFEED_WITH_TORCH=OFF)
# The torch package's folder as the prefix, not torch.utils.cmake_prefix_path: TorchConfig finds
# libtorch.so with find_library, whose hint <torch>/lib comes after the system's folders, so
# with share/cmake as the prefix a system LibTorch wins where there is one (tools/run.sh's cuda
# suite met Debian's 1.13 that way); as the prefix, the torch folder's lib/ comes first.
if [ "${TORCH:-1}" != 0 ] &&
   tp=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null); then
  prefix="$prefix;$tp"
  torch=(-DFLOWFEED_WITH_TORCH=ON -DTorch_DIR="$tp/share/cmake/Torch")
  echo "build.sh: LibTorch from $tp: the trainer is built"
else
  echo "build.sh: no torch for python3 (or TORCH=0): no trainer"
fi

GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of words
cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DFLOWFEED_OPENCV_IMGCODECS=OFF "${torch[@]}" \
  -DFLOWFEED_PYTHON=OFF ${CMAKE_ARGS:-}
targets=()
for t in ${TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j "$JOBS" "${targets[@]}"
echo "build.sh: built in $BUILD_DIR; to run it or build again by hand: . $DEPS/env.sh"
