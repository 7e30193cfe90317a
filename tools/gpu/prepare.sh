#!/usr/bin/env bash
# prepare.sh: builds and stages what tools/gpu/run.sh carries to the GPU machine (docs/gpu.md).
#
#   bash tools/gpu/prepare.sh          # after `bash tools/run.sh cuda` made build-cuda/venv
#
# 1. Builds build-gpu/ (flowfeed and flowfeed_trainer_tests) the way `tools/run.sh cuda` builds
#    build-cuda/: against the CUDA LibTorch of the GPU machines (pip's torch 2.11 with CUDA 13,
#    from build-cuda/venv, read only) with nvcc from NVIDIA's wheels and TORCH_CUDA_ARCH_LIST=9.0;
#    unlike build-cuda it is JPEG-only (FLOWFEED_OPENCV_IMGCODECS=OFF: OpenCV's imgcodecs would
#    bring about 180 MB of libraries) and has no Python module.
# 2. Stages the carried folder .gpu-carry/ (git-ignored), the one path to name in the run tool's
#    `carry`:
#      flowfeed-gpu.tar.gz  bin/flowfeed, bin/flowfeed_trainer_tests, and lib/: every shared
#                           library they load that is neither LibTorch's or CUDA's (the GPU
#                           machine has its own torch 2.11 with the nvidia-* wheels) nor part
#                           of every glibc system (BASELINE below),
#                           read off `ldd`: oneTBB, yaml-cpp, TurboJPEG, OpenCV core and
#                           imgproc with the BLAS, LAPACK, gfortran and X11 libraries they need
#      photo-src/           the Debian photographs (mate-backgrounds) the photo folder is cut
#                           from on the GPU machine (`flowfeed dataset photos --source`)
#      deps/debs/           the offline bundle (tools/offline/fetch.sh) for the fallback: a
#                           build there with tools/offline/build.sh when the carried binary
#                           does not start (GPU_CARRY_DEBS=0 leaves it out)
#      MANIFEST.txt         the commit, the build's settings, the sources' hash (run.sh warns
#                           when the tree it runs in has other sources), sizes, library list
# 3. Prints the sizes against the run tool's 64 MiB and the `run` call to make.
#
# Environment: CUDA_DIR (default build-cuda: its venv/ and cuda-toolkit/ are used, never
# written), BUILD_DIR (default build-gpu), CARRY (default .gpu-carry), DEPS (default
# .offline-deps, fetched when it has no packages), PHOTO_SOURCE (default
# /usr/share/backgrounds/mate), GPU_CARRY_DEBS (default 1), JOBS (default nproc).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
CUDA_DIR=${CUDA_DIR:-build-cuda}
BUILD_DIR=${BUILD_DIR:-build-gpu}
CARRY=${CARRY:-.gpu-carry}
DEPS=${DEPS:-.offline-deps}
PHOTO_SOURCE=${PHOTO_SOURCE:-/usr/share/backgrounds/mate}
JOBS=${JOBS:-$(nproc)}
venv=$CUDA_DIR/venv
toolkit=$(realpath -m "$CUDA_DIR/cuda-toolkit")

# Libraries every Linux that runs PyTorch has (glibc, GCC's runtime, zlib): never carried, so the
# GPU machine's own, newer copies are used.
BASELINE='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libutil\.so|libstdc\+\+\.so|libgcc_s\.so|libz\.so)'

if [ ! -x "$venv/bin/python" ] || [ ! -x "$toolkit/bin/nvcc" ]; then
  echo "prepare.sh: no $venv or $toolkit/bin/nvcc: run \`bash tools/run.sh cuda\` first" \
       "(or CUDA_DIR=<a folder with both>)" >&2
  exit 1
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
torch_version=$("$venv/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null)
torch_lib=$site/torch/lib

# 1. The build.
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  # As in tools/run.sh cuda_suite: the torch package's folder as the prefix (not
  # cmake_prefix_path, which lets Debian's LibTorch 1.13 in), the architectures of the H100 and
  # H200 (9.0), nvcc and the CUDA headers from the venv's wheels.
  TORCH_CUDA_ARCH_LIST=9.0 cmake -S . -B "$BUILD_DIR" "${GEN[@]}" "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DFLOWFEED_WITH_TORCH=ON \
    -DCMAKE_PREFIX_PATH="$site/torch" -DTorch_DIR="$site/torch/share/cmake/Torch" \
    -DCUDA_TOOLKIT_ROOT_DIR="$toolkit" -DCUDAToolkit_ROOT="$toolkit" \
    -DCMAKE_CUDA_COMPILER="$toolkit/bin/nvcc" \
    -DFLOWFEED_OPENCV_IMGCODECS=OFF -DFLOWFEED_PYTHON=OFF
fi
TORCH_CUDA_ARCH_LIST=9.0 cmake --build "$BUILD_DIR" -j "$JOBS" --target flowfeed flowfeed_trainer_tests

# 2. The carried folder, staged afresh.
rm -rf "$CARRY"
mkdir -p "$CARRY/photo-src"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
cp "$BUILD_DIR/flowfeed" "$BUILD_DIR/tests/flowfeed_trainer_tests" "$stage/bin/"
libs=()
for b in "$stage"/bin/*; do
  if ldd "$b" | grep -q 'not found'; then
    echo "prepare.sh: $b needs libraries this machine lacks:" >&2
    ldd "$b" | grep 'not found' >&2
    exit 1
  fi
  while read -r soname path; do
    # LibTorch's and CUDA's own (the CUDA runtime, which flowfeed links itself, is found through
    # the toolkit made from the wheels): the GPU machine's torch brings its own copies of both.
    case "$path" in "$torch_lib"/*|"$site"/nvidia/*|"$site"/torch/*|"$toolkit"/*) continue ;; esac
    [[ "$soname" =~ $BASELINE ]] && continue
    if [ ! -e "$stage/lib/$soname" ]; then
      cp -L "$path" "$stage/lib/$soname"
      libs+=("$soname <- $(realpath "$path")")
    fi
  done < <(ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
done
# The newest symbol versions the carried files ask of the system's glibc and libstdc++: the GPU
# machine's must be at least these.
needs=$(for f in "$stage"/bin/* "$stage"/lib/*; do objdump -T "$f" 2>/dev/null; done |
        grep -oE '(GLIBC|GLIBCXX|CXXABI)_[0-9.]+' | sort -u -V |
        awk -F_ '{ m[$1] = $0 } END { for (k in m) print m[k] }' | sort | tr '\n' ' ')
tar -czf "$CARRY/flowfeed-gpu.tar.gz" -C "$stage" bin lib

# The source photographs: JPEGs only (the JPEG-only build skips PNG files), less the two larger
# copies of Elephants.jpg (Elephants_3840x2160.jpg, Elephants_5640x3172.jpg: the same photo,
# 24 MB). One class per photo.
photos=0
while IFS= read -r -d '' f; do
  name=$(basename "$f")
  [[ "$name" =~ _[0-9]+x[0-9]+\.jpe?g$ ]] && continue
  cp "$f" "$CARRY/photo-src/$name"
  photos=$((photos + 1))
done < <(find "$PHOTO_SOURCE" -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) -print0 | sort -z)
if [ "$photos" -lt 2 ]; then
  echo "prepare.sh: fewer than 2 JPEG photos under $PHOTO_SOURCE (Debian: mate-backgrounds)" >&2
  exit 1
fi

if [ "${GPU_CARRY_DEBS:-1}" != 0 ]; then
  compgen -G "$DEPS/debs/*.deb" >/dev/null || bash tools/offline/fetch.sh "$DEPS"
  mkdir -p "$CARRY/deps/debs"
  cp "$DEPS"/debs/*.deb "$CARRY/deps/debs/"
fi

# The sources the binary was built from: run.sh hashes the same files in the tree it runs in.
sources=$(git ls-files -- CMakeLists.txt cmake engine trainer datasets presentation tools/flowfeed tests | sort)
source_hash=$(printf '%s\n' "$sources" | xargs -d '\n' sha256sum | sha256sum | cut -c1-16)
printf '%s\n' "$sources" > "$CARRY/sources.txt"
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
carry_bytes=$(du -sb "$CARRY" | cut -f1)
tree_bytes=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } |
              xargs -0 -r du -cb 2>/dev/null | awk '$2 == "total" { s += $1 } END { print s + 0 }')
{
  echo "flowfeed GPU carry, made by tools/gpu/prepare.sh"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  dirty=""
  printf '%s\n' "$sources" | xargs -d '\n' git diff --quiet HEAD -- ||
    dirty=" (with uncommitted changes to the sources)"
  echo "commit: $(git rev-parse HEAD)$dirty"
  echo "source_hash: $source_hash"
  echo "torch: $torch_version ($site/torch)"
  echo "needs from the system: ${needs% }"
  echo "build: $BUILD_DIR, Release, TORCH_CUDA_ARCH_LIST=9.0, FLOWFEED_OPENCV_IMGCODECS=OFF, FLOWFEED_PYTHON=OFF"
  echo "sizes: flowfeed-gpu.tar.gz $(mib "$(stat -c %s "$CARRY/flowfeed-gpu.tar.gz")"), photo-src $(mib "$(du -sb "$CARRY/photo-src" | cut -f1)") ($photos photos)$([ -d "$CARRY/deps" ] && echo ", deps $(mib "$(du -sb "$CARRY/deps" | cut -f1)")")"
  echo "libraries carried (soname <- this machine's file):"
  printf '  %s\n' "${libs[@]}"
  echo "binaries:"
  (cd "$stage/bin" && sha256sum -- *) | sed 's/^/  /'
} > "$CARRY/MANIFEST.txt"
cat "$CARRY/MANIFEST.txt"
echo
echo "prepare.sh: carry $CARRY: $(mib "$carry_bytes"); working tree (tracked + untracked, not" \
     "ignored): $(mib "$tree_bytes"); together $(mib $((carry_bytes + tree_bytes))) (limit 64 MiB)"
if [ $((carry_bytes + tree_bytes)) -ge $((64 * 1048576)) ]; then
  echo "prepare.sh: over 64 MiB: GPU_CARRY_DEBS=0 leaves the fallback bundle out" >&2
  exit 1
fi
echo "prepare.sh: the run tool's call (docs/gpu.md):"
echo "  run(command=\"bash tools/gpu/run.sh\", carry=[\"$CARRY\"], timeout_s=540, kind=\"nvidia-h200\")"
