#!/usr/bin/env bash
# flowfeed's one script: installs the Debian packages that are missing, builds, then runs.
#
#   bash tools/run.sh main    # install, build, write Fashion-MNIST as PNG files once, train the
#                             # small CNN on them (epoch 1 reads and decodes the files and fills
#                             # the cache, epochs 2+ are served from it); its report lands in
#                             # build/reports/ as JSON and as an HTML page with charts
#   bash tools/run.sh test    # install (with Chromium, for the report page's browser tests),
#                             # build, run the whole test suite, then the torch2, cuda and
#                             # asan suites below (what CI runs)
#   bash tools/run.sh build   # install and build only
#   bash tools/run.sh asan    # install, build build-asan/ with ASan+UBSan, run every test there
#   bash tools/run.sh tsan    # install, build build-tsan/ with TSan (no trainer), run the tests
#                             # of the flow graph, the cache and the pipeline there
#   bash tools/run.sh torch2  # build the trainer against LibTorch 2.x (pip's torch wheel, in
#                             # build-torch2/venv) in build-torch2/ and run the trainer tests
#                             # there; `test` runs this too, so code that compiles only against
#                             # Debian's LibTorch 1.13 cannot land
#   bash tools/run.sh cuda    # build the trainer against the CUDA LibTorch of the GPU machines
#                             # (pip's torch 2.11 with CUDA 13, nvcc from NVIDIA's wheels, all
#                             # in build-cuda/venv) in build-cuda/ and run the trainer tests on
#                             # the CPU; `test` runs this too, so the CUDA code is compiled and
#                             # linked on every change (it runs only on a GPU machine)
#   bash tools/run.sh offline # the offline build (docs/offline.md): fetch the Debian packages into
#                             # .offline-deps, build build-offline/ with the system's copies
#                             # hidden, run flowfeed on 20 photos and the unit tests there
#
# Environment: BUILD_DIR (default build), BUILD_TYPE (default Release), JOBS (default nproc);
# SANITIZE=0 makes `test` skip the asan suite, TORCH2=0 the LibTorch 2.x suite, CUDA=0 the
# CUDA LibTorch suite. The asan and
# tsan builds, their test selections and their runtime options are CMakePresets.json's presets of those names; suppressions of
# third-party findings are in tools/sanitizers/.
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
  pybind11-dev libdlpack-dev
  dataset-fashion-mnist mate-backgrounds
)
# What only the tests need: Chromium renders the HTML report page in the browser tests
# (tests/report_browser_test.cc), which are skipped, saying so, where it is missing.
# python3-venv makes the virtual environment LibTorch 2.x is installed into (tools/run.sh torch2).
# python3-torch and python3-pytest run the Python module's tests (python/tests) with Debian's
# torch 1.13; the torch2 suite runs them again with torch 2.x from its virtual environment.
# strace shows the durability tests (tests/durable_outputs_test.cc) the syncs and renames.
TEST_PACKAGES=(chromium python3-venv python3-torch python3-pytest strace)

# Installs those of the given packages (default: PACKAGES) that are missing.
install_missing() {
  local wanted=("${PACKAGES[@]}" "$@")
  local missing=()
  for p in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "run.sh: all ${#wanted[@]} packages present"
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

GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

build() {
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE="$BUILD_TYPE"
  fi
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

# Builds build-asan/ or build-tsan/ and runs its tests, all from the CMake preset of that name
# (FLOWFEED_SANITIZE, build type, the test selection, ASAN_/UBSAN_/TSAN_OPTIONS). Returns
# non-zero when the build or a test fails.
sanitizer_suite() {
  local preset=$1 dir=build-$1
  # GCC 12's sanitizer runtimes predate the 32-bit mmap randomisation of newer kernels (TSan
  # then stops with "unexpected memory mapping"): there the tests run with ASLR off.
  local no_aslr=()
  if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ] &&
     setarch "$(uname -m)" -R true 2>/dev/null; then
    no_aslr=(setarch "$(uname -m)" -R)
  fi
  echo "run.sh: $preset suite in $dir"
  # Configured every time (seconds): a preset's variables then reach a build folder made before
  # they changed (FLOWFEED_PYTHON=OFF there: the module cannot load into an uninstrumented
  # Python).
  cmake --preset "$preset" "${GEN[@]}" >/dev/null || return 1
  cmake --build "$dir" -j "$JOBS" || return 1
  "${no_aslr[@]}" ctest --preset "$preset" -j "$JOBS"
}

# The trainer built against LibTorch 2.x from PyPI (pinned in tools/requirements-libtorch2.txt,
# installed into build-torch2/venv, never into the system) and its tests run: the engine and
# the CLI are the same sources, the trainer is compiled as C++20 there (LibTorch 2.x needs it).
torch2_suite() {
  local dir=build-torch2 venv=build-torch2/venv req=tools/requirements-libtorch2.txt
  echo "run.sh: LibTorch 2.x suite in $dir"
  if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.requirements"; then
    python3 -m venv "$venv" || return 1
    "$venv/bin/pip" install -q -r "$req" || return 1
    cp "$req" "$venv/.requirements"
  fi
  local prefix
  prefix=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))') || return 1
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S . -B "$dir" "${GEN[@]}" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DFLOWFEED_WITH_TORCH=ON \
      -DCMAKE_PREFIX_PATH="$prefix" -DTorch_DIR="$prefix/share/cmake/Torch" || return 1
  fi
  cmake --build "$dir" -j "$JOBS" --target flowfeed flowfeed_trainer_tests || return 1
  local status=0
  "$dir/tests/flowfeed_trainer_tests" || status=1
  # The Python module with torch 2.x: the module links no LibTorch (tensors cross as DLPack), so
  # the one built for this interpreter's version is tested against the venv's torch.
  if cmake --build "$dir" -j "$JOBS" --target flowfeed_python; then
    PYTHONPATH="$dir/python" FLOWFEED_BIN="$dir/flowfeed" FLOWFEED_REQUIRE_TENSORBOARD=1 \
      FLOWFEED_REQUIRE_TORCHDATA=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
      python/tests || status=1
  else
    echo "run.sh: the Python module did not build in $dir (above): its torch 2.x tests not run" >&2
    status=1
  fi
  return "$status"
}

# A CUDA toolkit folder for Torch's CMake config, which enables the CUDA language and looks for
# nvcc, the CUDA headers and libcudart of CUDA >= 12.6 before it configures: the venv's NVIDIA
# wheels have them all, but as versioned libraries only (libcudart.so.13) spread over several
# packages, where CMake looks for one prefix with unversioned names. No driver comes with them:
# libcuda.so is an empty stand-in, as NVIDIA's toolkit has one for machines without a GPU (the
# link drops it: nothing calls the driver directly, LibTorch opens it at run time).
cuda_toolkit_from_wheels() {
  local wheels=$1 toolkit=$2 f name
  rm -rf "$toolkit"
  mkdir -p "$toolkit/lib/stubs" || return 1
  ln -s "$wheels/cu13/bin" "$toolkit/bin"
  ln -s "$wheels/cu13/include" "$toolkit/include"
  ln -s "$wheels/cu13/nvvm" "$toolkit/nvvm"
  ln -s lib "$toolkit/lib64"
  for f in "$wheels"/*/lib/*.so* "$wheels"/cu13/lib/*.a; do
    name=$(basename "$f")
    ln -sf "$f" "$toolkit/lib/$name"
    case "$name" in *.so.*) ln -sf "$f" "$toolkit/lib/${name%%.so.*}.so" ;; esac
  done
  echo 'void flowfeed_no_cuda_driver(void) {}' |
    cc -shared -fPIC -x c - -o "$toolkit/lib/stubs/libcuda.so" -Wl,-soname,libcuda.so.1
}

# The trainer built against the CUDA LibTorch the GPU machines run (pinned in
# tools/requirements-cuda.txt, installed into build-cuda/venv with the CUDA compiler from
# NVIDIA's wheels, never into the system) and its tests run on this machine's CPU: the CUDA
# build configures, compiles and links on every change, and the CPU path works with it; the
# CUDA tests skip without a GPU, so nothing here shows the CUDA path runs.
cuda_suite() {
  local dir=build-cuda venv=build-cuda/venv req=tools/requirements-cuda.txt
  local toolkit=$PWD/build-cuda/cuda-toolkit site
  echo "run.sh: CUDA LibTorch suite in $dir"
  if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.requirements"; then
    python3 -m venv "$venv" || return 1
    "$venv/bin/pip" install -q -r "$req" || return 1
    rm -rf "$toolkit"
    cp "$req" "$venv/.requirements"
  fi
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
  # Made once per venv: a fresh stand-in driver would relink everything on every run.
  if [ ! -x "$toolkit/bin/nvcc" ]; then
    cuda_toolkit_from_wheels "$site/nvidia" "$toolkit" || return 1
  fi
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    # The torch package's folder as the prefix, not torch.utils.cmake_prefix_path: TorchConfig
    # looks for libtorch.so in <prefix>/lib only after the system's folders, where Debian's
    # 1.13 would be linked in beside 2.11's other libraries (the tests then crash). Without a
    # GPU to ask, Torch's CMake would guess the architectures: the GPU machines' H100 and H200
    # are 9.0.
    TORCH_CUDA_ARCH_LIST=9.0 cmake -S . -B "$dir" "${GEN[@]}" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
      -DFLOWFEED_WITH_TORCH=ON -DCMAKE_PREFIX_PATH="$site/torch" \
      -DTorch_DIR="$site/torch/share/cmake/Torch" \
      -DCUDA_TOOLKIT_ROOT_DIR="$toolkit" -DCUDAToolkit_ROOT="$toolkit" \
      -DCMAKE_CUDA_COMPILER="$toolkit/bin/nvcc" || return 1
  fi
  cmake --build "$dir" -j "$JOBS" --target flowfeed flowfeed_trainer_tests || return 1
  "$dir/tests/flowfeed_trainer_tests"
}

cmd=${1:-main}
case "$cmd" in
  main)
    install_missing
    build
    mkdir -p "$BUILD_DIR/reports"
    # The IDX files as PNG folders, once (a complete folder is reused); the config reads them
    # from build/data/fashion-mnist whatever BUILD_DIR is.
    "$BUILD_DIR/flowfeed" dataset fashion-mnist --out build/data/fashion-mnist
    "$BUILD_DIR/flowfeed" train configs/fashion_mnist_images.yaml \
      --report "$BUILD_DIR/reports/train-fashion_mnist.json" \
      --html "$BUILD_DIR/reports/train-fashion_mnist.html"
    ;;
  test)
    install_missing "${TEST_PACKAGES[@]}"
    build
    # Both suites run even when the first fails, so one CI run reports both.
    status=0
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" || status=1
    if [ "${TORCH2:-1}" != 0 ]; then
      torch2_suite || status=1
    fi
    if [ "${CUDA:-1}" != 0 ]; then
      cuda_suite || status=1
    fi
    if [ "${SANITIZE:-1}" != 0 ]; then
      sanitizer_suite asan || status=1
    fi
    exit "$status"
    ;;
  build)
    install_missing
    build
    ;;
  asan|tsan)
    install_missing "${TEST_PACKAGES[@]}"
    sanitizer_suite "$cmd"
    ;;
  torch2)
    install_missing "${TEST_PACKAGES[@]}"
    torch2_suite
    ;;
  cuda)
    install_missing "${TEST_PACKAGES[@]}"
    cuda_suite
    ;;
  offline)
    install_missing
    bash tools/offline/check.sh
    ;;
  *)
    echo "usage: bash tools/run.sh [main|test|build|asan|tsan|torch2|cuda|offline]" >&2
    exit 2
    ;;
esac
