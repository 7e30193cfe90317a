#!/usr/bin/env bash
# Two flowfeed builds, A and B, on the same configs, alternated run by run so that drift in the
# machine's load hits both alike; then `flowfeed report` overlays the last pair of each config.
#
#   A=/tmp/old-build/flowfeed B=build/flowfeed bash tools/bench/ab.sh
#   A=... B=... REPEAT=7 bash tools/bench/ab.sh
#
# Configs: configs/fashion_mnist.yaml (4 epochs, per-sample work of a few microseconds, so any
# per-sample overhead shows) and configs/photos.yaml on data/photos5k with the memory cache
# (3 epochs, 2 threads). Prints per config and build the median samples/s of epoch 1 and of
# epochs 2+, and every run's epochs 2+ figure so the spread is visible. Files are warm: each run
# reads them moments after the previous one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
A=${A:?set A to the first flowfeed binary}
B=${B:-build/flowfeed}
REPEAT=${REPEAT:-5}
ROOT=${ROOT:-data/photos5k}
OUT=${OUT:-build/reports/ab}
PYTHON=${PYTHON:-/usr/bin/python3}
mkdir -p "$OUT"
[ -d "$ROOT" ] || build/flowfeed dataset photos --out "$ROOT" --count 5000 >&2
for rep in $(seq 1 "$REPEAT"); do
  for side in A B; do
    bin=${!side}
    "$bin" bench configs/fashion_mnist.yaml --epochs 4 --report "$OUT/$side-fashion_mnist.r$rep.json" >/dev/null 2>&1
    "$bin" bench configs/photos.yaml --epochs 3 --set source.root="$ROOT" --set cache.mode=memory \
      --set threads=2 --report "$OUT/$side-photos.r$rep.json" >/dev/null 2>&1
  done
  echo "ab.sh: round $rep of $REPEAT done" >&2
done
"$PYTHON" - "$OUT" "$REPEAT" <<'PY'
import json, statistics as st, sys
out, repeat = sys.argv[1], int(sys.argv[2])
for config in ["fashion_mnist", "photos"]:
    for side in ["A", "B"]:
        first, later = [], []
        for r in range(1, repeat + 1):
            sps = [e["samples_per_second"] for e in json.load(open(f"{out}/{side}-{config}.r{r}.json"))["epochs"]]
            first.append(sps[0])
            later.append(st.mean(sps[1:]))
        print(f"{config:14s} {side}: epoch 1 median {st.median(first):9.0f}  epochs 2+ median "
              f"{st.median(later):9.0f} samples/s  (epochs 2+ per run: {', '.join(f'{x:.0f}' for x in later)})")
PY
B_BIN=$B
"$B_BIN" report "$OUT/A-photos.r$REPEAT.json" "$OUT/B-photos.r$REPEAT.json" --label A --label B \
  -o "$OUT/photos.html" >/dev/null 2>&1 && echo "ab.sh: $OUT/photos.html overlays the last photos pair" >&2
