#!/usr/bin/env bash
# Epoch 1 against epochs 2+ with the first-epoch cache: the photo folder and Fashion-MNIST, cache
# in memory and on disk, with and without --cold, plus a run that reuses the disk cache a
# previous run left. Prints one markdown table; per-run output goes to $OUT.
#
#   bash tools/bench/cache.sh                 # EPOCHS=3
#
# --cold needs root (it evicts files from the page cache); without root those rows say so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${FLOWFEED:-build/flowfeed}
EPOCHS=${EPOCHS:-3}
PHOTOS=${PHOTOS:-2000}
OUT=${OUT:-build/reports/cache}
CACHE_DIR=${CACHE_DIR:-build/bench-cache}

[ -x "$BIN" ] || bash tools/run.sh build
[ -d data/photos ] || "$BIN" dataset photos --out data/photos --count "$PHOTOS"
mkdir -p "$OUT"
rm -rf "$CACHE_DIR"

# Fashion-MNIST's shipped config has no deterministic stage before its random flip, so nothing
# is cached there; this variant normalises first, so the cache holds normalised floats.
FMNIST_CACHED='pipeline=[{type: normalize, mean: [0.2860], std: [0.3530]}, {type: random_horizontal_flip}]'

rows=()
REPEAT=${REPEAT:-3}
# measure NAME CONFIG MODE COLD(yes/no) [CACHE_NAME]: REPEAT runs, each from an empty disk cache,
# or, with CACHE_NAME, each reusing the disk cache that name's runs left.
measure() {
  local name=$1 cfg=$2 mode=$3 cold=$4 reuse=${5:-}
  local path="$CACHE_DIR/${reuse:-$name}"
  local files=warm reports=()
  for r in $(seq 1 "$REPEAT"); do
    [ -z "$reuse" ] && rm -rf "$path"
    local args=(bench "$cfg" --epochs "$EPOCHS" --set "cache.mode=$mode" --set "cache.path=$path"
                --report "$OUT/$name.r$r.json")
    [ "$cfg" = configs/fashion_mnist.yaml ] && args+=(--set "$FMNIST_CACHED")
    if [ "$cold" = yes ]; then
      if [ "$(id -u)" -eq 0 ]; then args+=(--cold); files=cold; else files="warm (not root)"; fi
    fi
    echo "== $BIN ${args[*]}" >&2
    "$BIN" "${args[@]}" > "$OUT/$name.r$r.txt" 2>&1 || { cat "$OUT/$name.r$r.txt" >&2; exit 1; }
    grep -E "^(epoch 1 took|memory:)" "$OUT/$name.r$r.txt" >&2 || true
    reports+=("$OUT/$name.r$r.json")
  done
  rows+=("$name:$files:$(IFS=,; echo "${reports[*]}")")
}

for cold in yes no; do
  for mode in memory disk; do
    measure "photos-$mode-$cold" configs/photos.yaml "$mode" "$cold"
    measure "fmnist-$mode-$cold" configs/fashion_mnist.yaml "$mode" "$cold"
  done
  measure "photos-off-$cold" configs/photos.yaml off "$cold"
done
# The disk cache the photos-disk-no runs left, reused by the next runs: epoch 1 starts from it.
measure photos-disk-reused configs/photos.yaml disk yes photos-disk-no
echo "(median of $REPEAT runs each; $EPOCHS epochs per run)"
python3 tools/bench/cache_table.py "${rows[@]}"
