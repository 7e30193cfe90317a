#!/usr/bin/env bash
# An uncached epoch from tar shards against the image folder they were written from: the same
# photos, the same torchvision-style training transforms (configs/photos.yaml), cache off,
# files evicted from the page cache before each run (--cold, needs root). Runs alternate
# folder / shards REPEAT times; prints a markdown table of the medians. Per-run output: $OUT.
#
#   bash tools/bench/shards.sh            # PHOTOS=5000 ROOT=data/photos5k PER_SHARD=1000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${FLOWFEED:-build/flowfeed}
PHOTOS=${PHOTOS:-5000}
ROOT=${ROOT:-data/photos5k}
PER_SHARD=${PER_SHARD:-1000}
SHARDS=${SHARDS:-$ROOT-shards}
REPEAT=${REPEAT:-3}
THREADS=${THREADS:-0}
OUT=${OUT:-build/reports/shards}

[ -x "$BIN" ] || bash tools/run.sh build
[ -d "$ROOT" ] || "$BIN" dataset photos --out "$ROOT" --count "$PHOTOS"
if [ ! -d "$SHARDS" ]; then
  "$BIN" dataset shards --from "$ROOT" --out "$SHARDS" --per-shard "$PER_SHARD" | tail -1
fi
pattern=$(cd "$SHARDS" && ls shard-*.tar | sort | sed -n '1p;$p' | tr '\n' ' ' |
          awk '{ a=$1; b=$2; sub(/^shard-/, "", a); sub(/\.tar$/, "", a); sub(/^shard-/, "", b);
                 sub(/\.tar$/, "", b); printf "shard-{%s..%s}.tar", a, b }')
mkdir -p "$OUT"
cold=()
files="warm (not root)"
if [ "$(id -u)" -eq 0 ]; then cold=(--cold); files=cold; fi

run() {  # NAME r EXTRA-SET...
  local name=$1 r=$2
  shift 2
  "$BIN" bench configs/photos.yaml --epochs 1 "${cold[@]}" --set cache.mode=off \
    --set "threads=$THREADS" "$@" --report "$OUT/$name.r$r.json" > "$OUT/$name.r$r.txt" 2>&1 ||
    { cat "$OUT/$name.r$r.txt" >&2; exit 1; }
  grep -E "^epoch 1:" "$OUT/$name.r$r.txt" | sed "s/^/$name: /" >&2
}

for r in $(seq 1 "$REPEAT"); do
  run folder "$r" --set "source.root=$ROOT"
  run shards "$r" --set "source={type: tar, root: $SHARDS, shards: '$pattern'}"
done

python3 - "$OUT" "$REPEAT" "$files" "$ROOT" "$SHARDS/$pattern" <<'PY'
import json, statistics, sys
out, repeat, files, root, shards = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def med(name, key):
    vals = []
    for r in range(1, repeat + 1):
        e = json.load(open(f"{out}/{name}.r{r}.json"))["epochs"][0]
        vals.append(e[key] if key in e else e["stages"]["read"]["busy_seconds"])
    return statistics.median(vals)
f, s = med("folder", "samples_per_second"), med("shards", "samples_per_second")
fr, sr = med("folder", "read"), med("shards", "read")
print(f"| source (uncached epoch, files {files}) | images/s | read stage busy s | vs folder |")
print("|---|---:|---:|---:|")
print(f"| image folder {root} | {f:,.0f} | {fr:.2f} | 1.00x |")
print(f"| tar shards {shards} | {s:,.0f} | {sr:.2f} | {s / f:.2f}x |")
print(f"(median of {repeat} alternating runs)")
PY
