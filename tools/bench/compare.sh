#!/usr/bin/env bash
# flowfeed against PyTorch's DataLoader and against hand-written limits, on the same machine,
# data (data/photos5k, 5,000 photos), transforms (configs/photos.yaml = RandomResizedCrop(224),
# RandomHorizontalFlip(), ToTensor(), Normalize(ImageNet)), batch 64 and thread/worker count:
#
#   flowfeed runs (NAME.rN.json), each with --epochs EPOCHS at THREADS threads:
#     flowfeed_off        cache.mode=off: every epoch reads and decodes (epoch 1 = uncached)
#     flowfeed_off_nofuse cache off with fuse=false (NOFUSE=1: the engine's fusions off:
#                         full-image decode then crop, separate flip/normalise)
#     flowfeed_auto       the shipped default: configs/photos.yaml as it is (cache.mode auto, the
#                         cost model chooses files or pixels), with cache.path set to
#                         $OUT/cache-auto, deleted before each run (epoch 1 fills an empty cache)
#     flowfeed_pixels     cache.mode=memory cache.after=decode: decoded pixels in memory, the
#                         cached epochs to hold against the raw augment loop; its memory_bytes
#                         is the decoded-RGB size the other caches are compared with
#     flowfeed_files      cache.mode=memory cache.after=read: the encoded files in memory
#     flowfeed_disk       cache.mode=disk (whatever the cost model keeps), cache.path
#                         $OUT/cache-disk, deleted before each run; the table reports its
#                         epoch-2 hit rate
#     flowfeed_off_t1, flowfeed_pixels_t1   the cache-off and pixels runs at threads=1 (SCALING=1)
#   The memory runs start from an empty cache by construction (a new process).
#   DataLoader      torchvision ImageFolder, num_workers=THREADS             (torch_baseline.py)
#   DataLoader+cache  a Dataset that keeps decoded PIL images in a dict, num_workers=THREADS and 0
#   raw decode      TurboJPEG tjDecompress2 of the in-memory files on THREADS threads (raw_loops.cc)
#   raw augment     crop+resize+flip+normalise of in-memory decoded images on THREADS threads
#   raw decode+augment  full decode of the in-memory files + the same crop/resize/flip/normalise,
#                   THREADS threads (the uncached limit doing the same work as flowfeed's epoch 1)
#   raw decode and raw augment also at 1 thread (SCALING=1), for the thread-scaling table
#
# Prints markdown tables (compare_table.py: comparison, what each cache kept, thread scaling,
# goals; medians of REPEAT runs, ratios paired within a repeat); every raw JSON goes to $OUT.
# Runs are interleaved: each repeat runs every contender once, back to back. Each flowfeed run
# writes its --report there (NAME.rN.json) and each DataLoader run a report of the same shape
# (NAME.rN.report.json, torch_baseline.py --report); the last line names the pair to overlay
# with `flowfeed report A B -o compare.html`.
#
#   bash tools/bench/compare.sh                 # THREADS=2 REPEAT=3 EPOCHS=3
#   THREADS=4 REPEAT=5 bash tools/bench/compare.sh
#   SCALING=0 NOFUSE=0 bash tools/bench/compare.sh   # skip the 1-thread and fuse=false runs
#   RAW_LOOPS=/tmp/raw_loops ...                # use this flowfeed_raw_loops binary
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
PHOTOS=${PHOTOS:-5000}
ROOT=${ROOT:-data/photos5k}
SCALING=${SCALING:-1}
NOFUSE=${NOFUSE:-1}
[ "$THREADS" = 1 ] && SCALING=0  # the 1-thread runs would repeat the THREADS ones
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${OUT:-build/reports/compare}
CONFIG=configs/photos.yaml

log() { echo "compare.sh: $*" >&2; }

# --- build what is missing -------------------------------------------------------------------
[ -x "$BIN" ] || bash tools/run.sh build
RAW=${RAW_LOOPS:-build/tools/bench/flowfeed_raw_loops}
if [ -z "${RAW_LOOPS:-}" ] && { [ ! -x "$RAW" ] || [ tools/bench/raw_loops.cc -nt "$RAW" ]; }; then
  # Missing, or older than its source (a CMake build that has not been rebuilt since).
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

flowfeed_run() {  # NAME CACHE_MODE REP [KEY=VALUE ...]  (extra --set overrides, applied last)
  # CACHE_MODE "-" keeps the config's cache.mode (the shipped default).
  local name=$1 mode=$2 rep=$3
  shift 3
  local extra=() kv
  [ "$mode" = - ] || extra+=(--set "cache.mode=$mode")
  for kv in "$@"; do extra+=(--set "$kv"); done
  drop_caches
  "$BIN" bench "$CONFIG" --epochs "$EPOCHS" --set "source.root=$ROOT" --set "threads=$THREADS" \
      "${extra[@]}" "${COLD_ARGS[@]}" --report "$OUT/$name.r$rep.json" \
      > "$OUT/$name.r$rep.log" 2>&1 || { log "flowfeed failed, see $OUT/$name.r$rep.log"; exit 1; }
}
fresh_dir() {  # an empty folder for a disk cache, so the run's epoch 1 fills it from nothing
  rm -rf "$1"
  mkdir -p "$1"
}
torch_run() {  # NAME MODE WORKERS REP
  drop_caches
  "$PYTHON" tools/bench/torch_baseline.py --root "$ROOT" --workers "$3" --epochs "$EPOCHS" \
      --batch 64 --mode "$2" --seed "$4" --report "$OUT/$1.r$4.report.json" \
      > "$OUT/$1.r$4.json" 2> "$OUT/$1.r$4.log" \
      || { log "torch_baseline failed, see $OUT/$1.r$4.log"; exit 1; }
}

for r in $(seq 1 "$REPEAT"); do
  log "repeat $r/$REPEAT (threads/workers $THREADS, files $FILES)"
  flowfeed_run flowfeed_off off "$r"
  fresh_dir "$OUT/cache-auto"
  flowfeed_run flowfeed_auto - "$r" "cache.path=$OUT/cache-auto"
  flowfeed_run flowfeed_pixels memory "$r" cache.after=decode
  flowfeed_run flowfeed_files memory "$r" cache.after=read
  fresh_dir "$OUT/cache-disk"
  flowfeed_run flowfeed_disk disk "$r" "cache.path=$OUT/cache-disk"
  rm -rf "$OUT/cache-auto" "$OUT/cache-disk"  # keep $OUT to reports (the disk store is ~130 MiB)
  if [ "$SCALING" = 1 ]; then
    flowfeed_run flowfeed_off_t1 off "$r" threads=1
    flowfeed_run flowfeed_pixels_t1 memory "$r" threads=1 cache.after=decode
  fi
  if [ "$NOFUSE" = 1 ]; then
    flowfeed_run flowfeed_off_nofuse off "$r" fuse=false
  fi
  if [ "$HAVE_TORCH" = yes ]; then
    torch_run torch_plain plain "$THREADS" "$r"
    torch_run torch_cached cached "$THREADS" "$r"
    torch_run torch_cached_w0 cached 0 "$r"
  fi
  "$RAW" decode "$ROOT" --threads "$THREADS" --reps "$RAW_REPS" > "$OUT/raw_decode.r$r.json"
  "$RAW" augment "$ROOT" --threads "$THREADS" --reps "$RAW_REPS" --seed "$r" > "$OUT/raw_augment.r$r.json"
  "$RAW" decode_augment "$ROOT" --threads "$THREADS" --reps "$RAW_REPS" --seed "$r" \
      > "$OUT/raw_decode_augment.r$r.json"
  if [ "$SCALING" = 1 ]; then
    "$RAW" decode "$ROOT" --threads 1 --reps "$RAW_REPS" > "$OUT/raw_decode_t1.r$r.json"
    "$RAW" augment "$ROOT" --threads 1 --reps "$RAW_REPS" --seed "$r" > "$OUT/raw_augment_t1.r$r.json"
  fi
done

python3 tools/bench/compare_table.py "$OUT" --threads "$THREADS" --files "$FILES" | tee "$OUT/table.md"
if [ "$HAVE_TORCH" = yes ]; then
  # Both reports have flowfeed's shape (epochs, consumer wait); `flowfeed report` overlays them.
  log "overlay them: $BIN report $OUT/flowfeed_off.r$REPEAT.json" \
      "$OUT/torch_plain.r$REPEAT.report.json --label flowfeed --label DataLoader" \
      "-o $OUT/compare.html"
fi
