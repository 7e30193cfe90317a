#!/usr/bin/env bash
# Measures flowfeed's pipeline alone (no trainer) on the shipped configs: epoch 1 against later
# epochs, stage by stage, and prints one markdown table.
#
#   bash tools/bench/pipeline.sh            # both configs, 3 epochs, the configs' threads
#   EPOCHS=5 THREADS=2 bash tools/bench/pipeline.sh
#
# As root, the OS page cache is dropped before each config, so epoch 1 reads from disk (cold);
# otherwise the table says the files may have been cached. Later epochs read through the page
# cache either way (flowfeed's own cache is not in this measurement).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${FLOWFEED:-build/flowfeed}
EPOCHS=${EPOCHS:-3}
THREADS=${THREADS:-}
PHOTOS=${PHOTOS:-2000}
OUT=${OUT:-build/reports}

[ -x "$BIN" ] || bash tools/run.sh build
[ -d data/photos ] || "$BIN" dataset photos --out data/photos --count "$PHOTOS"
mkdir -p "$OUT"

reports=()
for cfg in fashion_mnist photos; do
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then
    echo 3 > /proc/sys/vm/drop_caches
    cache=cold
  else
    cache=unknown
  fi
  args=(bench "configs/$cfg.yaml" --epochs "$EPOCHS" --report "$OUT/bench-$cfg.json")
  [ -n "$THREADS" ] && args+=(--set "threads=$THREADS")
  echo "== $BIN ${args[*]} (epoch 1 files: $cache)" >&2
  "$BIN" "${args[@]}" > "$OUT/bench-$cfg.txt"
  cat "$OUT/bench-$cfg.txt" >&2
  reports+=("$cfg:$cache:$OUT/bench-$cfg.json")
done
python3 tools/bench/table.py "${reports[@]}"
