#!/usr/bin/env bash
# flowfeed's one script: installs the Debian packages that are missing, builds, then runs.
#
#   bash tools/run.sh main    # install, build, train the small CNN on Fashion-MNIST
#   bash tools/run.sh test    # install, build, run the whole test suite (what CI runs)
#   bash tools/run.sh build   # install and build only
#
# Environment: BUILD_DIR (default build), BUILD_TYPE (default Release), JOBS (default nproc).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-Release}
JOBS=${JOBS:-$(nproc)}

# Every package the build, the tests and the main job need. Data packages bring the real data:
# Fashion-MNIST (IDX files) and the MATE desktop's photographs.
PACKAGES=(
  build-essential cmake pkg-config
  libtbb-dev libopencv-dev libturbojpeg0-dev libjpeg62-turbo-dev libyaml-cpp-dev zlib1g-dev
  nlohmann-json3-dev libcli11-dev libxxhash-dev
  libgtest-dev libgmock-dev
  libtorch-dev
  libgloo-dev
  dataset-fashion-mnist mate-backgrounds
)

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "run.sh: all ${#PACKAGES[@]} packages present"
    return
  fi
  echo "run.sh: installing ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "run.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  local gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_BUILD_TYPE="$BUILD_TYPE"
  fi
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

cmd=${1:-main}
case "$cmd" in
  main)
    install_missing
    build
    mkdir -p "$BUILD_DIR/reports"
    "$BUILD_DIR/flowfeed" train configs/fashion_mnist.yaml --report "$BUILD_DIR/reports/train-fashion_mnist.json"
    ;;
  test)
    install_missing
    build
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
    ;;
  build)
    install_missing
    build
    ;;
  *)
    echo "usage: bash tools/run.sh [main|test|build]" >&2
    exit 2
    ;;
esac
