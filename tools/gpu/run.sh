#!/usr/bin/env bash
# run.sh: the one script run on a lent GPU machine (docs/gpu.md). Run from the repository root
# with the folder tools/gpu/prepare.sh staged (.gpu-carry) carried along:
#
#   run(command="bash tools/gpu/run.sh", carry=[".gpu-carry"], timeout_s=540, kind="nvidia-h200")
#
# Phases, in order, each under its own time limit and all under one budget
# (FLOWFEED_GPU_BUDGET_S, default 450 s); a phase that fails or runs out of time is recorded
# and the next one runs:
#   facts       the machine: nvidia-smi, CPUs, memory, python3's torch and torchvision, CUDA
#   binary      unpacks the carried flowfeed and its libraries, checks that it starts against
#               this machine's torch; if it does not, `build`: tools/offline/build.sh from the
#               carried Debian packages with this machine's LibTorch and nvcc
#   tests       the trainer's tests: TrainerCuda.* (the GPU ones) first, then the others
#   photos      `flowfeed dataset photos` cuts the photo folder from the carried photographs
#   train       `flowfeed train`: ResNet-18, 224 px, batch 256, 16 threads, CUDA, bf16 amp,
#               channels_last, cuDNN benchmark, normalisation on the device (uint8 batches)
#   dataloader  the same model and epochs fed by PyTorch's DataLoader (tools/gpu/dataloader_train.py)
#   bench       `flowfeed bench` (the pipeline alone, as the CUDA trainer runs it: uint8 batches,
#               normalize left to the GPU) at 1, 2, 4, 8 and 16 threads
#   table       tools/gpu/table.py: $OUT/summary.md (the table for docs/benchmarks.md)
# $OUT gets run.log (everything printed), summary.md, summary.json and results.tar.gz (every
# report, log and config, refreshed after each phase, so a run cut short keeps what it did).
# Exits 0 when every phase that ran passed (a failed `binary` that `build` replaced counts so).
#
# FLOWFEED_GPU_REHEARSAL=1 runs the same phases small on a machine without a GPU (device cpu,
# 256 images of 64 px, batch 32, 2 epochs, threads 1 and 2, float32): tools/gpu/rehearse.sh.
# Other environment: PYTHON (default python3), CARRY (default .gpu-carry), FLOWFEED_GPU_WORK (the
# scratch folder, default a new one under /tmp), FLOWFEED_GPU_IMAGES, _EPOCHS, _THREADS,
# _SCALING (thread counts of the bench), _AMP (true or false), FLOWFEED_GPU_BUILD=1 (build here
# even if the carried binary starts), FLOWFEED_GPU_BUILD_LIMIT (that build's limit, default 330 s).
set -uo pipefail  # no -e: a failing phase is recorded, and the next one runs

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
export REPO=$PWD
export OUT=${OUT:-$REPO/gpu-out}
mkdir -p "$OUT"
export WORK=${FLOWFEED_GPU_WORK:-$(mktemp -d /tmp/flowfeed-gpu.XXXXXX)}
mkdir -p "$WORK"
export PY=${PYTHON:-python3}
CARRY=$(realpath -m "${CARRY:-.gpu-carry}")
export CARRY
BUDGET_S=${FLOWFEED_GPU_BUDGET_S:-450}
export REHEARSAL=${FLOWFEED_GPU_REHEARSAL:-0}
if [ "$REHEARSAL" = 1 ]; then
  defaults=(256 2 2 "1 2" 64 32 cpu false)
else
  defaults=(10240 4 16 "1 2 4 8 16" 224 256 cuda true)
fi
export IMAGES=${FLOWFEED_GPU_IMAGES:-${defaults[0]}}
export EPOCHS=${FLOWFEED_GPU_EPOCHS:-${defaults[1]}}
export THREADS=${FLOWFEED_GPU_THREADS:-${defaults[2]}}
export SCALING=${FLOWFEED_GPU_SCALING:-${defaults[3]}}
export SIZE=${defaults[4]} BATCH=${defaults[5]} DEVICE=${defaults[6]}
# bf16 autocast for both loaders; a rehearsal trains in float32 (bf16 on a CPU is slow or
# emulated, and the figures mean nothing there).
export AMP=${FLOWFEED_GPU_AMP:-${defaults[7]}}
# The optimiser of both runs: torchvision's ImageNet recipe for ResNet (lr 0.1 at batch 256,
# momentum 0.9, weight decay 1e-4), at a constant rate.
export LR=0.1 MOMENTUM=0.9 WD=1.0e-4

T0=$(date +%s)
printf '%s\n' "images=$IMAGES" "epochs=$EPOCHS" "threads=$THREADS" "scaling=${SCALING// /,}" \
  "size=$SIZE" "batch=$BATCH" "device=$DEVICE" "amp=$AMP" "rehearsal=$REHEARSAL" "lr=$LR" \
  "momentum=$MOMENTUM" "weight_decay=$WD" > "$WORK/settings.txt"
printf 'phase\tstatus\tseconds\tlimit\n' > "$WORK/phases.tsv"
date -u +%Y-%m-%dT%H:%M:%SZ > "$WORK/started"

# Refreshes $OUT's summary and archive; called after every phase.
pack() {
  "$PY" "$REPO/tools/gpu/table.py" "$WORK" --md "$OUT/summary.md.tmp" --json "$OUT/summary.json.tmp" \
    > "$WORK/table.log" 2>&1 &&
    mv "$OUT/summary.md.tmp" "$OUT/summary.md" && mv "$OUT/summary.json.tmp" "$OUT/summary.json"
  tar -czf "$OUT/results.tar.gz.tmp" -C "$WORK" --exclude=./photos --exclude=./carry \
    --exclude='./cache-*' --exclude=./build . 2>/dev/null &&
    mv "$OUT/results.tar.gz.tmp" "$OUT/results.tar.gz"
}

# phase NAME LIMIT: runs the function phase_NAME under `timeout` (which signals the whole process
# group: DataLoader workers too) for LIMIT seconds or what is left of the budget, less 15 s kept
# for the table. Returns the phase's status; 124 means it ran out of time.
phase() {
  local name=$1 limit=$2 left t start rc
  left=$((BUDGET_S - ($(date +%s) - T0) - 15))
  t=$((limit < left ? limit : left))
  if [ "$t" -lt 5 ]; then
    echo "=== $name: skipped, ${left} s of the budget left"
    printf '%s\tskipped\t0\t0\n' "$name" >> "$WORK/phases.tsv"
    return 125
  fi
  echo "=== $name (limit $t s, $(( $(date +%s) - T0 )) s into the run)"
  start=$(date +%s.%N)
  timeout -k 10 "$t" bash -c "phase_$name"
  rc=$?
  local secs
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  [ "$rc" = 124 ] && echo "=== $name: ran out of its $t s"
  echo "=== $name: status $rc in $secs s"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$secs" "$t" >> "$WORK/phases.tsv"
  pack
  return "$rc"
}

# How later phases run flowfeed: written by `binary` or `build` to $WORK/env.sh.
ff() { LD_LIBRARY_PATH="$FF_LD" "$FF_BIN" "$@"; }
load_env() {
  # shellcheck disable=SC1091
  [ -f "$WORK/env.sh" ] && source "$WORK/env.sh" && return 0
  echo "no flowfeed binary (neither the carried one nor a build started)" >&2
  return 1
}
# GPU utilisation (nvidia-smi's utilization.gpu: the share of time a kernel ran), sampled every
# 0.5 s while a training phase runs, for both loaders alike.
sample_gpu() {
  command -v nvidia-smi > /dev/null || return 0
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits \
    -lms 500 > "$WORK/gpu-util-$1.csv" 2> /dev/null &
  echo $! > "$WORK/gpu-util-$1.pid"
}
stop_gpu() {
  [ -f "$WORK/gpu-util-$1.pid" ] && kill "$(cat "$WORK/gpu-util-$1.pid")" 2> /dev/null
  rm -f "$WORK/gpu-util-$1.pid"
}
# The folders of the machine's LibTorch: torch/lib and the lib/ folders of the nvidia-* wheels
# beside it (CUDA runtime, cuDNN, NCCL, ...). libtorch_cuda finds the wheels' libraries through
# its $ORIGIN rpath, but flowfeed links NCCL itself, and its own rpath names the build machine's
# folders: the loader must be told.
torch_libs() {
  "$PY" -c 'import glob, os, torch
d = os.path.dirname(torch.__file__)
print(":".join([os.path.join(d, "lib")] + sorted(glob.glob(os.path.join(os.path.dirname(d), "nvidia", "*", "lib")))))'
}
export -f ff load_env sample_gpu stop_gpu torch_libs

phase_facts() {
  set -x
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit,persistence_mode \
    --format=csv
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  nproc
  lscpu | grep -E '^(Model name|Socket|Core|Thread|CPU\(s\)|CPU max MHz|NUMA node\(s\))'
  free -g
  df -h /tmp "$REPO" /dev/shm
  uname -r
  head -2 /etc/os-release
  ldd --version | head -1
  command -v "$PY" cmake ninja nvcc
  cmake --version | head -1
  nvcc --version | tail -2
  set +x
  "$PY" - <<'EOF' | tee "$WORK/facts.json"
import json, os, platform, sys
import torch
f = {"python": sys.version.split()[0], "torch": torch.__version__,
     "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
     "cudnn": torch.backends.cudnn.version(), "cpus": os.cpu_count(),
     "machine": platform.machine(), "torch_lib": os.path.join(os.path.dirname(torch.__file__), "lib")}
try:
    import torchvision, PIL
    f["torchvision"], f["pillow"] = torchvision.__version__, PIL.__version__
except Exception as e:  # the DataLoader phase then fails, saying why
    f["torchvision"] = "missing: %s" % e
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    f["gpu"], f["gpu_memory_gib"] = p.name, round(p.total_memory / 2**30, 1)
    f["gpu_sms"], f["gpu_capability"] = p.multi_processor_count, "%d.%d" % (p.major, p.minor)
print(json.dumps(f, indent=1))
EOF
}

phase_binary() {
  rm -rf "$WORK/carry" && mkdir -p "$WORK/carry"
  tar -xzf "$CARRY/flowfeed-gpu.tar.gz" -C "$WORK/carry" || return 1
  cp "$CARRY/MANIFEST.txt" "$WORK/MANIFEST.txt"
  sed -n '1,9p' "$CARRY/MANIFEST.txt"
  local torch_libs want have
  torch_libs=$(torch_libs) || return 1
  # The sources the binary was built from against this tree's: a mismatch means prepare.sh was
  # not run after the last change, and the figures are not this tree's.
  want=$(awk '/^source_hash:/ { print $2 }' "$CARRY/MANIFEST.txt")
  have=$(cd "$REPO" && xargs -d '\n' sha256sum < "$CARRY/sources.txt" 2>/dev/null | sha256sum | cut -c1-16)
  if [ "$want" = "$have" ]; then
    echo "binary: built from this tree's sources ($have)"
    echo same > "$WORK/source_match"
  else
    echo "binary: WARNING: built from other sources ($want) than this tree's ($have): run" \
         "tools/gpu/prepare.sh again before the run"
    echo "differs: carried $want, tree $have" > "$WORK/source_match"
  fi
  # The machine's own LD_LIBRARY_PATH stays behind ours: the driver's libcuda may be found there.
  local ld="$torch_libs:$WORK/carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  LD_LIBRARY_PATH=$ld ldd "$WORK/carry/bin/flowfeed" | tee "$WORK/ldd-flowfeed.txt"
  if grep -q 'not found' "$WORK/ldd-flowfeed.txt"; then
    echo "binary: libraries not found (above)"
    return 1
  fi
  # Loads every library and runs the CLI (a symbol or version missing fails here).
  LD_LIBRARY_PATH=$ld "$WORK/carry/bin/flowfeed" --version || return 1
  LD_LIBRARY_PATH=$ld "$WORK/carry/bin/flowfeed" stages > /dev/null || return 1
  cat > "$WORK/env.sh" <<EOF
export FF_BIN=$WORK/carry/bin/flowfeed FF_TESTS=$WORK/carry/bin/flowfeed_trainer_tests
export FF_LD=$ld FF_KIND=carried
EOF
  echo "binary: the carried flowfeed starts (LD_LIBRARY_PATH=$ld)"
}

phase_build() {
  local torch_libs deps=$CARRY/deps
  compgen -G "$deps/debs/*.deb" > /dev/null ||
    { echo "build: no Debian packages carried in $deps/debs (prepare.sh with GPU_CARRY_DEBS=1)"; return 1; }
  torch_libs=$(torch_libs) || return 1
  # build.sh asks `python3` for LibTorch (and takes the torch package's folder as the prefix):
  # the python3 this script uses. The architecture of the H100 and H200: 9.0.
  mkdir -p "$WORK/pybin"
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$(command -v "$PY")" > "$WORK/pybin/python3"
  chmod +x "$WORK/pybin/python3"
  PATH=$WORK/pybin:$PATH TORCH_CUDA_ARCH_LIST=9.0 JOBS=$(nproc) \
    TARGETS="flowfeed flowfeed_trainer_tests" \
    bash "$REPO/tools/offline/build.sh" "$deps" "$REPO/build-gpu-device" || return 1
  local lib
  lib=$(realpath "$deps")/usr/lib/x86_64-linux-gnu
  cat > "$WORK/env.sh" <<EOF
export FF_BIN=$REPO/build-gpu-device/flowfeed FF_TESTS=$REPO/build-gpu-device/tests/flowfeed_trainer_tests
export FF_LD=$torch_libs:$lib:$lib/blas:$lib/lapack${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} FF_KIND=built-here
EOF
  load_env && ff --version
}

phase_tests() {
  load_env || return 1
  local rc=0 skip=""
  # The test binary runs the flowfeed program at the path compiled into it; the carried one was
  # compiled elsewhere, so the one test that runs it without c10d Gloo is left out.
  [ "$FF_KIND" = carried ] && skip=":Distributed.BadEnvironmentIsNamed"
  cd "$WORK" || return 1
  echo "tests: TrainerCuda.* (skipped without a GPU)"
  LD_LIBRARY_PATH="$FF_LD" "$FF_TESTS" --gtest_filter='TrainerCuda.*' \
    --gtest_output="json:$WORK/tests-cuda.json" || rc=1
  echo "tests: the other trainer tests${skip:+ (less ${skip#:}: it runs the program at the path compiled into the test binary)}"
  LD_LIBRARY_PATH="$FF_LD" "$FF_TESTS" --gtest_filter="-TrainerCuda.*$skip" \
    --gtest_output="json:$WORK/tests-rest.json" || rc=1
  return "$rc"
}

phase_photos() {
  load_env || return 1
  rm -rf "$WORK/photos"
  ff dataset photos --source "$CARRY/photo-src" --out "$WORK/photos" --count "$IMAGES" \
    --threads "$THREADS" || return 1
  du -sb "$WORK/photos" | tee "$WORK/photos-size.txt"
}

write_config() {
  cat > "$WORK/train.yaml" <<EOF
# configs/photos.yaml's pipeline (torchvision's ImageNet training transform) with the trainer of
# tools/gpu/run.sh: ResNet-18 (ImageNet stem), SGD as torchvision's recipe at a constant rate,
# and the GPU switches the DataLoader run also uses (docs/training.md).
seed: 0
epochs: $EPOCHS
threads: $THREADS
source: {type: image_folder, root: $WORK/photos}
pipeline:
  - {type: decode, color: rgb}
  - {type: random_resized_crop, size: $SIZE, scale: [0.08, 1.0], ratio: [0.75, 1.3333333333333333]}
  - {type: random_horizontal_flip, p: 0.5}
  - {type: normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
batch: {size: $BATCH, drop_last: false, layout: nchw, dtype: float32}
cache: {mode: auto, budget: 25%, path: $WORK/cache-train}
model: {type: resnet18, stem: imagenet}
optimizer: {type: sgd, lr: $LR, momentum: $MOMENTUM, nesterov: false, weight_decay: $WD}
schedule: {type: constant, warmup_epochs: 0}
device: $DEVICE
amp: $AMP
channels_last: auto        # on CUDA: NHWC weights and inputs (the DataLoader run does the same)
cudnn_benchmark: true      # as the DataLoader run's torch.backends.cudnn.benchmark
normalize_on_device: auto  # on CUDA: the trailing normalize runs after the copy, batches are uint8
EOF
}
export -f write_config

phase_train() {
  load_env || return 1
  write_config
  cd "$WORK" || return 1
  rm -rf "$WORK/cache-train"
  sample_gpu train
  ff train "$WORK/train.yaml" --report "$WORK/train.json" --html "$WORK/train.html" 2>&1 |
    tee "$WORK/train.log"
  local rc=${PIPESTATUS[0]}
  stop_gpu train
  return "$rc"
}

# The DataLoader's workers hand batches over in shared memory: 16 workers x 2 batches ahead x
# 154 MB of float32 is 4.9 GB of /dev/shm. A container's /dev/shm is often 64 MB, which ends a
# DataLoader with a bus error; there, as root, it is enlarged for this throwaway machine.
check_shm() {
  local avail
  avail=$(df --output=avail -B1G /dev/shm 2> /dev/null | tail -1 | tr -d ' ')
  echo "dataloader: /dev/shm has ${avail:-?} GiB free"
  if [ -n "$avail" ] && [ "$avail" -lt 8 ] && [ "$(id -u)" = 0 ] && [ "$REHEARSAL" != 1 ]; then
    mount -o remount,size=32G /dev/shm && echo "dataloader: /dev/shm remounted with 32 GiB" ||
      echo "dataloader: could not enlarge /dev/shm: the DataLoader may fail for it"
    df -h /dev/shm
  fi
}
export -f check_shm

phase_dataloader() {
  local amp=() rc
  [ "$AMP" = true ] || amp=(--no-amp)
  cd "$WORK" || return 1
  check_shm
  sample_gpu dataloader
  PYTHONUNBUFFERED=1 "$PY" "$REPO/tools/gpu/dataloader_train.py" --root "$WORK/photos" \
    --epochs "$EPOCHS" --batch "$BATCH" --workers "$THREADS" --size "$SIZE" --lr "$LR" \
    --momentum "$MOMENTUM" --weight-decay "$WD" --device "$DEVICE" "${amp[@]}" \
    --json "$WORK/dataloader.json"
  rc=$?
  stop_gpu dataloader
  return "$rc"
}

phase_bench() {
  load_env || return 1
  [ -f "$WORK/train.yaml" ] || write_config
  cd "$WORK" || return 1
  # The pipeline as the CUDA trainer runs it (normalize_on_device): without the trailing
  # normalize, which runs on the GPU there, and with uint8 batches.
  { echo "# train.yaml's pipeline as the CUDA trainer runs it: normalize on the GPU, uint8 batches"
    sed -e '/{type: normalize,/d' -e 's/dtype: float32/dtype: uint8/' "$WORK/train.yaml"
  } > "$WORK/bench.yaml"
  grep -q 'type: normalize' "$WORK/bench.yaml" && { echo "bench: normalize still in bench.yaml"; return 1; }
  local t rc=0
  for t in $SCALING; do
    rm -rf "$WORK/cache-bench-$t"
    echo "bench: $t threads"
    ff bench "$WORK/bench.yaml" --epochs 2 --set threads="$t" --set cache.path="$WORK/cache-bench-$t" \
      --report "$WORK/bench-t$t.json" > "$WORK/bench-t$t.log" 2>&1 || rc=1
    grep -E '^epoch [0-9]+:' "$WORK/bench-t$t.log"
    rm -rf "$WORK/cache-bench-$t"
  done
  return "$rc"
}
export -f phase_facts phase_binary phase_build phase_tests phase_photos phase_train \
  phase_dataloader phase_bench

# Everything printed goes to $OUT/run.log as well.
main() {
  echo "run.sh: $(cat "$WORK/started"), budget ${BUDGET_S} s, work folder $WORK," \
       "rehearsal=$REHEARSAL: $IMAGES images, $EPOCHS epochs, $THREADS threads, ${SIZE} px," \
       "batch $BATCH, device $DEVICE, bench threads: $SCALING"
  phase facts 60
  if [ "${FLOWFEED_GPU_BUILD:-0}" = 1 ] || ! phase binary 60; then
    phase build "${FLOWFEED_GPU_BUILD_LIMIT:-330}"
  fi
  phase tests 120
  phase photos 120
  phase train 180
  phase dataloader 180
  phase bench 180
  echo "=== done in $(( $(date +%s) - T0 )) s"
  pack
  cat "$OUT/summary.md" 2>/dev/null || { echo "no summary: $WORK/table.log says"; cat "$WORK/table.log"; }
  # The exit status: 0 when every phase that ran passed (`binary` may fail: `build` replaces it).
  local failed
  failed=$(awk -F'\t' 'NR > 1 && $2 != "0" && $1 != "binary" { printf "%s%s", sep, $1; sep = " " }' "$WORK/phases.tsv")
  [ -z "$failed" ] || { echo "=== phases not passed: $failed"; return 1; }
}
main 2>&1 | tee -a "$OUT/run.log"
exit "${PIPESTATUS[0]}"
