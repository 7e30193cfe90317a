#!/usr/bin/env bash
# Prints the batch_digest of every epoch of every shipped config (configs/*.yaml), run by
# `flowfeed bench` on a small real data set, one line per config and epoch. A refactoring that
# claims "behaviour unchanged" runs it before and after and diffs the two outputs:
#
#   bash tools/check/digests.sh build/flowfeed > before.txt
#   ... change, rebuild ...
#   bash tools/check/digests.sh build/flowfeed > after.txt && diff before.txt after.txt
#
# Data: 600 photos cut by `flowfeed dataset photos` (seeded, so identical every time) and the
# first 3,000 Fashion-MNIST records; each config runs 3 epochs (epoch 1 fills the cache, 2+
# are served from it), with its cache in a fresh temporary folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=$(realpath "${1:-build/flowfeed}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN" dataset photos --out "$WORK/photos" --count 600 --seed 7 >/dev/null
if [ ! -d build/data/fashion-mnist/train ]; then
  "$BIN" dataset fashion-mnist --out build/data/fashion-mnist >/dev/null
fi
for cfg in configs/*.yaml; do
  name=$(basename "$cfg" .yaml)
  sets=(--set cache.path="$WORK/cache-$name")
  case "$name" in
    fashion_mnist) sets+=(--set source.limit=3000) ;;
    fashion_mnist_images) sets+=(--set source.limit=3000) ;;
    *) sets+=(--set source.root="$WORK/photos") ;;
  esac
  "$BIN" bench "$cfg" --epochs 3 "${sets[@]}" --report "$WORK/$name.json" >/dev/null 2>"$WORK/$name.err" ||
    { echo "$name: failed"; cat "$WORK/$name.err" >&2; continue; }
  python3 - "$name" "$WORK/$name.json" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
for e in json.load(open(path))["epochs"]:
    print(f"{name} epoch {e['epoch']}: {e['samples']} samples {e['batch_digest']}")
PY
done
