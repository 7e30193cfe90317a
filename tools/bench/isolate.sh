#!/usr/bin/env bash
# The cost of `isolate: process` (docs/plugins.md, "Isolating a stage"): `flowfeed bench` of one
# cheap plugin stage (cutout, p: 1) run in-process and isolated, on Fashion-MNIST (60,000 28x28
# grey images, Debian's dataset-fashion-mnist) and on 224x224 RGB photos (made by `flowfeed
# dataset photos`, resized once and kept in the memory cache, so that epochs 2+ run little but
# the stage). Prints, per dataset: the stage's mean time per sample (its busy time over its
# samples, epochs 2+) and the epochs 2+ throughput, in-process and isolated.
#   usage: tools/bench/isolate.sh        (FLOWFEED=path/to/flowfeed, OUT=folder, EPOCHS=4)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${FLOWFEED:-build/flowfeed}"
out="${OUT:-build/bench-isolate}"
epochs="${EPOCHS:-4}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
[ -d "$out/photos" ] || "$bin" dataset photos --out "$out/photos" --count 1000 > /dev/null

write() {  # dataset isolate
  local source pre
  if [ "$1" = fmnist ]; then
    source="{type: idx, root: /usr/share/datasets/fashion-mnist, images: train-images-idx3-ubyte.gz, labels: train-labels-idx1-ubyte.gz}"
    pre=""
  else
    source="{type: image_folder, root: $out/photos}"
    pre="  - {type: decode, color: rgb}
  - {type: resize, size: [224, 224]}"
  fi
  cat > "$out/$1-$2.yaml" <<YAML
seed: 0
epochs: $epochs
threads: 2
plugins: [cutout.so]  # found in the program's own plugin folder
source: $source
pipeline:
$pre
  - {type: cutout, p: 1, isolate: $2}
batch: {size: 128}
cache: {mode: memory}
YAML
}

printf '%-8s %-8s %18s %22s\n' dataset isolate "cutout us/sample" "epochs 2+ samples/s"
for data in fmnist photos; do
  for iso in none process; do
    write "$data" "$iso"
    "$bin" bench "$out/$data-$iso.yaml" --report "$out/$data-$iso.json" > "$out/$data-$iso.log" 2>&1
    python3 - "$out/$data-$iso.json" "$data" "$iso" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
later = r["epochs"][1:]
busy = count = samples = seconds = 0.0
for e in later:
    s = e["stages"]["cutout"]
    busy += s["busy_seconds"]; count += s["count"]
    samples += e["samples"]; seconds += e["seconds"]
print("%-8s %-8s %18.1f %22.0f" % (sys.argv[2], sys.argv[3], 1e6 * busy / count, samples / seconds))
PY
  done
done
