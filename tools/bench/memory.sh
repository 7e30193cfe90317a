#!/usr/bin/env bash
# The memory promises of docs/reliability.md, measured: peak RSS (the report's
# run.peak_rss_bytes) of
#   1. configs/fashion_mnist.yaml, 3 epochs, without and with --trace (the trace is streamed to
#      disk, so it should add little beyond the spans of the last second);
#   2. eight 8000 x 8000 PNGs of a few hundred KB each (192 MB decoded apiece) among 24 ordinary
#      photos, one thread, 2 epochs, cache off (big buffers leave their slots; a bounded pool keeps
#      what the next sample reuses), with run.retained_buffer_bytes at the end.
#
#   bash tools/bench/memory.sh                   # uses build/flowfeed
#   FLOWFEED=path/to/flowfeed bash tools/bench/memory.sh
#
# Prints one Markdown table row per run. RSS depends little on the load of the machine; the
# wall times printed beside it do.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
FLOWFEED=${FLOWFEED:-build/flowfeed}
[ -x "$FLOWFEED" ] || { echo "memory.sh: $FLOWFEED not built (cmake --build build)" >&2; exit 1; }
PY=/usr/bin/python3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

field() {  # field REPORT KEY... -> the value at run.KEY
  $PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["run"][sys.argv[2]])' "$@"
}
row() {  # row NAME REPORT SECONDS
  local rss retained
  rss=$(field "$2" peak_rss_bytes)
  retained=$(field "$2" retained_buffer_bytes)
  printf '| %s | %d | %.1f | %.2f |\n' "$1" $((rss / 1048576)) \
    "$($PY -c "print($retained / 1048576)")" "$3"
}
timed() {  # timed REPORT ARGS... -> seconds on stdout; the run's output into $WORK/log
  local t0 t1
  t0=$(date +%s.%N)
  "$FLOWFEED" bench --report "$1" "${@:2}" > "$WORK/log" 2>&1 || { cat "$WORK/log" >&2; exit 1; }
  t1=$(date +%s.%N)
  $PY -c "print($t1 - $t0)"
}

echo "| run | peak RSS MiB | retained buffers MiB at the end | wall s |"
echo "|---|---|---|---|"

s=$(timed "$WORK/plain.json" configs/fashion_mnist.yaml --epochs 3)
row "fashion_mnist, 3 epochs" "$WORK/plain.json" "$s"
s=$(timed "$WORK/traced.json" configs/fashion_mnist.yaml --epochs 3 --trace "$WORK/trace.json")
row "fashion_mnist, 3 epochs, --trace ($(du -m "$WORK/trace.json" | cut -f1) MB trace)" \
  "$WORK/traced.json" "$s"

# The huge PNGs: zero pixels compress ~1000:1; written with zlib alone, a row at a time.
mkdir -p "$WORK/huge/big" "$WORK/huge/small"
$PY - "$WORK/huge" <<'EOF'
import struct, sys, zlib
def png(path, w, h, fill):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compressobj(9)
    row = b"\x00" + bytes([fill]) * (3 * w)
    body = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", body) + chunk(b"IEND", b""))
root = sys.argv[1]
for i in range(8):
    png(f"{root}/big/big{i}.png", 8000, 8000, i)
for i in range(24):
    png(f"{root}/small/small{i}.png", 500, 375, 10 * i)
EOF
cat > "$WORK/huge.yaml" <<EOF
seed: 0
epochs: 2
threads: 1
source: {type: image_folder, root: $WORK/huge}
pipeline:
  - {type: decode}
  - {type: resize, size: 64}
  - {type: center_crop, size: 64}
batch: {size: 8, drop_last: false}
cache: {mode: off}
EOF
s=$(timed "$WORK/huge.json" "$WORK/huge.yaml")
row "8 PNGs of 8000 x 8000 ($(du -k "$WORK/huge/big/big0.png" | cut -f1) KB each) + 24 photos, 1 thread, 2 epochs" \
  "$WORK/huge.json" "$s"
