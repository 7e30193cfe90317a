#!/usr/bin/env bash
# flowfeed against PyTorch's DataLoader and against hand-written limits, on the same machine,
# data (data/photos), transforms (configs/photos.yaml = RandomResizedCrop(224),
# RandomHorizontalFlip(), ToTensor(), Normalize(ImageNet)), batch 64 and thread/worker count:
#
#   flowfeed        cache.mode=off (epoch 1 = uncached) and cache.mode=memory (epochs 2+ = cached)
#   DataLoader      torchvision ImageFolder, num_workers=THREADS             (torch_baseline.py)
#   DataLoader+cache  a Dataset that keeps decoded PIL images in a dict, num_workers=THREADS and 0
#   raw decode      TurboJPEG tjDecompress2 of the in-memory files on THREADS threads (raw_loops.cc)
#   raw augment     crop+resize+flip+normalise of in-memory decoded images on THREADS threads
#
# Prints one markdown table (medians of REPEAT runs); every raw JSON goes to $OUT.
#
#   bash tools/bench/compare.sh                 # THREADS=2 REPEAT=3 EPOCHS=3
#   THREADS=4 REPEAT=5 bash tools/bench/compare.sh
#
# As root, every epoch-1 measurement starts with the files evicted from the page cache
# (`sync; echo 3 > /proc/sys/vm/drop_caches`, plus flowfeed's --cold); otherwise files are warm.
# The DataLoader rows need Debian's python3-torch and python3-torchvision for /usr/bin/python3
# (PYTHON to override); as root they are installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${FLOWFEED:-build/flowfeed}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-3}
EPOCHS=${EPOCHS:-3}
RAW_REPS=${RAW_REPS:-5}
PHOTOS=${PHOTOS:-2000}
ROOT=${ROOT:-data/photos}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${OUT:-build/reports/compare}
CONFIG=configs/photos.yaml

log() { echo "compare.sh: $*" >&2; }

# --- build what is missing -------------------------------------------------------------------
[ -x "$BIN" ] || bash tools/run.sh build
RAW=build/tools/bench/flowfeed_raw_loops
if [ ! -x "$RAW" ]; then
  RAW=build/flowfeed_raw_loops
  if [ ! -x "$RAW" ] || [ tools/bench/raw_loops.cc -nt "$RAW" ]; then
    log "compiling $RAW by hand (add_subdirectory(tools/bench) to CMake builds it as $RAW)"
    mkdir -p build
    # shellcheck disable=SC2046
    g++ -O2 -std=c++17 tools/bench/raw_loops.cc $(pkg-config --cflags --libs libturbojpeg opencv4) \
        -pthread -o "$RAW"
  fi
fi
[ -d "$ROOT" ] || "$BIN" dataset photos --out "$ROOT" --count "$PHOTOS"

ROOT_USER=no
[ "$(id -u)" -eq 0 ] && ROOT_USER=yes
HAVE_TORCH=yes
if ! "$PYTHON" -c 'import torch, torchvision' 2>/dev/null; then
  if [ "$ROOT_USER" = yes ] && [ "$PYTHON" = /usr/bin/python3 ]; then
    log "installing python3-torch python3-torchvision"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3-torch python3-torchvision
  else
    log "$PYTHON cannot import torch and torchvision, and installing them needs root:"
    log "  apt-get install python3-torch python3-torchvision   (then run again); DataLoader rows skipped"
    HAVE_TORCH=no
  fi
fi

# --- measurements ----------------------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT"
FILES=warm
COLD_ARGS=()
if [ "$ROOT_USER" = yes ]; then
  FILES=cold
  COLD_ARGS=(--cold)
fi
drop_caches() {
  if [ "$ROOT_USER" = yes ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi
}

flowfeed_run() {  # NAME CACHE_MODE REP
  drop_caches
  "$BIN" bench "$CONFIG" --epochs "$EPOCHS" --set "source.root=$ROOT" --set "cache.mode=$2" \
      --set "threads=$THREADS" "${COLD_ARGS[@]}" --report "$OUT/$1.r$3.json" \
      > "$OUT/$1.r$3.log" 2>&1 || { log "flowfeed failed, see $OUT/$1.r$3.log"; exit 1; }
}
torch_run() {  # NAME MODE WORKERS REP
  drop_caches
  "$PYTHON" tools/bench/torch_baseline.py --root "$ROOT" --workers "$3" --epochs "$EPOCHS" \
      --batch 64 --mode "$2" --seed "$4" > "$OUT/$1.r$4.json" 2> "$OUT/$1.r$4.log" \
      || { log "torch_baseline failed, see $OUT/$1.r$4.log"; exit 1; }
}

for r in $(seq 1 "$REPEAT"); do
  log "repeat $r/$REPEAT (threads/workers $THREADS, files $FILES)"
  flowfeed_run flowfeed_off off "$r"
  flowfeed_run flowfeed_memory memory "$r"
  if [ "$HAVE_TORCH" = yes ]; then
    torch_run torch_plain plain "$THREADS" "$r"
    torch_run torch_cached cached "$THREADS" "$r"
    torch_run torch_cached_w0 cached 0 "$r"
  fi
  "$RAW" decode "$ROOT" --threads "$THREADS" --reps "$RAW_REPS" > "$OUT/raw_decode.r$r.json"
  "$RAW" augment "$ROOT" --threads "$THREADS" --reps "$RAW_REPS" --seed "$r" > "$OUT/raw_augment.r$r.json"
done

python3 tools/bench/compare_table.py "$OUT" --threads "$THREADS" --files "$FILES" | tee "$OUT/table.md"
