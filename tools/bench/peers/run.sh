#!/usr/bin/env bash
# flowfeed against the data loaders a user would pick instead, current releases from PyPI, on the
# same folder of JPEGs (data/photos5k: 5,000 photos), the same transform (configs/photos.yaml:
# RandomResizedCrop 224, horizontal flip, ImageNet normalisation, float32 NCHW batches of 64),
# the same thread / worker count, 3 epochs each, files evicted before each run (as root):
#
#   flowfeed           configs/photos.yaml as shipped (cache.mode auto: the cost model keeps the
#                      files or the decoded pixels), the cache folder emptied before each run
#   flowfeed (no cache)  cache.mode=off: every epoch reads and decodes
#   flowfeed (pixels)  cache.after=decode in memory: the decoded images kept
#   DataLoader (PIL), DataLoader (tensor), DataLoader (tensor) + dict cache   dataloader.py
#   DALI (CPU)         dali_cpu.py
#   SPDL               spdl_pipe.py
#   tf.data, tf.data + cache()   tfdata.py
#   FFCV               ffcv_pipe.py (its .beton conversion timed apart, once per run of this)
#   raw limits         flowfeed_raw_loops: decode, augment, decode+augment of in-memory data
#
# Each peer script says how it follows its project's own advice, and checks every batch (shape,
# dtype, value range, each image once an epoch). Every run goes through measure.py (peak PSS of
# the process tree). Runs are interleaved: each repeat runs every system once per thread count.
# A peer that fails to install or run is a row saying so, with its error.
#
#   bash tools/bench/peers/run.sh                  # THREADS="2 1" REPEAT=3
#   THREADS=2 REPEAT=1 bash tools/bench/peers/run.sh
#   ONLY="flowfeed dali" bash tools/bench/peers/run.sh   # a subset (names as in SYSTEMS below)
#
# Creates build/peers-venv from requirements.txt (pinned) on first use; FFCV, which builds from
# source against Debian's OpenCV and libjpeg-turbo, is installed apart and may fail alone. SPDL
# decodes with FFmpeg's libraries, which come from Debian (apt-get as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
HERE=tools/bench/peers
BIN=${FLOWFEED:-build/flowfeed}
THREADS=${THREADS:-2 1}
REPEAT=${REPEAT:-3}
EPOCHS=${EPOCHS:-3}
ROOT=${ROOT:-data/photos5k}
OUT=${OUT:-build/reports/peers}
VENV=${VENV:-build/peers-venv}
SYSTEMS="flowfeed flowfeed_off flowfeed_pixels dl_pil dl_tensor dl_cached dali spdl tf tf_cached ffcv"
ONLY=${ONLY:-$SYSTEMS}
PY=$VENV/bin/python
export TQDM_DISABLE=1 TF_CPP_MIN_LOG_LEVEL=2

log() { echo "peers: $*" >&2; }
ROOT_USER=no
[ "$(id -u)" -eq 0 ] && ROOT_USER=yes
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.log "$OUT"/*.err

# --- the peers' environment --------------------------------------------------------------------
if [ "$ROOT_USER" = yes ] && ! ldconfig -p | grep -q 'libavfilter.so.8 '; then
  log "installing FFmpeg's libraries for SPDL (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    libavdevice59 libavfilter8 libavformat59 libavcodec59 libswscale6 libswresample4 >/dev/null
fi
STAMP=$VENV/.requirements
if [ ! -x "$PY" ] || ! cmp -s "$HERE/requirements.txt" "$STAMP"; then
  log "creating $VENV from $HERE/requirements.txt (several GB; minutes the first time)"
  python3 -m venv "$VENV"
  if "$VENV/bin/pip" install -q -r "$HERE/requirements.txt" > "$OUT/install.log" 2>&1; then
    cp "$HERE/requirements.txt" "$STAMP"
  else
    log "pip install failed; every peer row will carry its error (see $OUT/install.log)"
  fi
fi
FFCV_REQ=$(sed -n 's/^# ffcv: *//p' "$HERE/requirements.txt")
if ! "$PY" -c 'import ffcv' 2>/dev/null; then
  log "installing $FFCV_REQ (built from source)"
  "$VENV/bin/pip" install -q "$FFCV_REQ" > "$OUT/ffcv-install.log" 2>&1 \
    || log "FFCV did not install; its row carries the error ($OUT/ffcv-install.log)"
fi

# --- flowfeed, the raw loops, the data --------------------------------------------------------
[ -x "$BIN" ] || bash tools/run.sh build
RAW=build/tools/bench/flowfeed_raw_loops
[ -x "$RAW" ] || RAW=build/flowfeed_raw_loops
if [ ! -x "$RAW" ] || [ tools/bench/raw_loops.cc -nt "$RAW" ]; then
  RAW=build/flowfeed_raw_loops
  # shellcheck disable=SC2046
  g++ -O2 -std=c++17 tools/bench/raw_loops.cc $(pkg-config --cflags --libs libturbojpeg opencv4) \
      -pthread -o "$RAW"
fi
[ -d "$ROOT" ] || "$BIN" dataset photos --out "$ROOT" --count 5000

COLD=()
FILES=warm
if [ "$ROOT_USER" = yes ]; then COLD=(--cold); FILES=cold; fi
drop_caches() { if [ "$ROOT_USER" = yes ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi; }

# run NAME T R COMMAND...: the command under measure.py; its stdout to NAME.tT.rR.json, stderr to
# .log; on failure the log's last lines to .err, which the table shows as the row's error.
run() {
  local name=$1 t=$2 r=$3
  shift 3
  local base="$OUT/$name.t$t.r$r"
  drop_caches
  # measure.py needs only Python's standard library: the system's python3, so flowfeed's rows
  # are measured even where the peers' environment failed to install.
  if ! python3 "$HERE/measure.py" "$base.mem.json" -- "$@" > "$base.json" 2> "$base.log"; then
    tail -n 3 "$base.log" > "$base.err"
    log "$name (threads $t) failed: $(tail -n 1 "$base.log")"
  fi
}
want() { [[ " $ONLY " == *" $1 "* ]]; }

flowfeed_run() {  # NAME T R [KEY=VALUE ...]
  local name=$1 t=$2 r=$3
  shift 3
  local sets=() kv
  for kv in "$@"; do sets+=(--set "$kv"); done
  rm -rf "$OUT/cache-$name"
  run "$name" "$t" "$r" "$BIN" bench configs/photos.yaml --epochs "$EPOCHS" --set "source.root=$ROOT" \
      --set "threads=$t" --set "cache.path=$OUT/cache-$name" "${sets[@]}" "${COLD[@]}" \
      --report "$OUT/$name.t$t.r$r.report.json"
  rm -rf "$OUT/cache-$name"
}
peer_run() {  # NAME T R SCRIPT [ARGS...]
  local name=$1 t=$2 r=$3 script=$4
  shift 4
  run "$name" "$t" "$r" "$PY" "$HERE/$script" --root "$ROOT" --threads "$t" --epochs "$EPOCHS" \
      --seed "$r" --report "$OUT/$name.t$t.r$r.report.json" "$@"
}

BETON=$OUT/photos.beton
if want ffcv && "$PY" -c 'import ffcv' 2>/dev/null; then
  log "converting $ROOT to $BETON (timed apart)"
  "$PY" "$HERE/ffcv_pipe.py" --root "$ROOT" --threads "${THREADS%% *}" --convert "$BETON" \
      > "$OUT/ffcv_convert.json" 2> "$OUT/ffcv_convert.log" || tail -n 3 "$OUT/ffcv_convert.log" > "$OUT/ffcv_convert.err"
fi

for r in $(seq 1 "$REPEAT"); do
  for t in $THREADS; do
    log "repeat $r/$REPEAT, $t thread(s), files $FILES"
    want flowfeed && flowfeed_run flowfeed "$t" "$r"
    want flowfeed_off && flowfeed_run flowfeed_off "$t" "$r" cache.mode=off
    want flowfeed_pixels && flowfeed_run flowfeed_pixels "$t" "$r" cache.mode=memory cache.after=decode
    want dl_pil && peer_run dl_pil "$t" "$r" dataloader.py --mode pil
    want dl_tensor && peer_run dl_tensor "$t" "$r" dataloader.py --mode tensor
    want dl_cached && peer_run dl_cached "$t" "$r" dataloader.py --mode tensor_cached
    want dali && peer_run dali "$t" "$r" dali_cpu.py
    want spdl && peer_run spdl "$t" "$r" spdl_pipe.py
    want tf && peer_run tf "$t" "$r" tfdata.py --mode plain
    want tf_cached && peer_run tf_cached "$t" "$r" tfdata.py --mode cached
    if want ffcv; then
      if [ -f "$BETON" ]; then
        peer_run ffcv "$t" "$r" ffcv_pipe.py --beton "$BETON"
      else
        cp "$OUT/ffcv-install.log" "$OUT/ffcv.t$t.r$r.log" 2>/dev/null || true
        { tail -n 2 "$OUT/ffcv-install.log" 2>/dev/null || echo "FFCV: no .beton"; } > "$OUT/ffcv.t$t.r$r.err"
      fi
    fi
    "$RAW" decode "$ROOT" --threads "$t" --reps 3 > "$OUT/raw_decode.t$t.r$r.json"
    "$RAW" augment "$ROOT" --threads "$t" --reps 3 --seed "$r" > "$OUT/raw_augment.t$t.r$r.json"
    "$RAW" decode_augment "$ROOT" --threads "$t" --reps 3 --seed "$r" \
        > "$OUT/raw_decode_augment.t$t.r$r.json"
  done
done
rm -f "$BETON"

python3 "$HERE/table.py" "$OUT" --files "$FILES" | tee "$OUT/table.md"
T1=${THREADS%% *}
log "one page with every system: $BIN report $OUT/*.t$T1.r$REPEAT.report.json -o $OUT/peers.html"
