#!/usr/bin/env bash
# Regenerates the seed corpora under fuzz/corpus/<target>/seed-* (reproducers of fixed
# findings, the other files there, are kept). Builds fuzz_make_seeds (fuzz/make_seeds.cc) in
# BUILD_DIR (default build-replay, a normal non-fuzz build), runs it, then adds tar seeds made
# by GNU tar (ustar, gnu and pax formats) from the tiny sample files it leaves.
#
#   bash fuzz/make_seeds.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build-replay}
JOBS=${JOBS:-$(nproc)}

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S . -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" -j "$JOBS" --target fuzz_make_seeds

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -f fuzz/corpus/*/seed-*
mkdir -p fuzz/corpus/{decode,config,idx,tar,cache}
"$BUILD_DIR/fuzz/fuzz_make_seeds" fuzz/corpus . "$work"

# GNU tar, byte-for-byte reproducible: fixed owner, mode, mtime and order; 512-byte records.
tar_opts=(--sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=0644 -b1)
pax_opts=(--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)
pack() {  # pack FLAGS_OCTAL OUT TAR
  { printf "\\$1"; cat "$3"; } >"$2"
}
(cd "$work/tarsrc" && tar "${tar_opts[@]}" --format=ustar -cf ../ustar.tar \
   00000000.jpg 00000000.cls 00000001.png 00000001.cls)
(cd "$work/tarsrc" && tar "${tar_opts[@]}" --format=gnu -cf ../gnu.tar .)
(cd "$work/tarsrc" && tar "${tar_opts[@]}" "${pax_opts[@]}" --format=pax -cf ../pax.tar .)
pack 001 fuzz/corpus/tar/seed-gnutar-ustar-limit-1 "$work/ustar.tar"
pack 000 fuzz/corpus/tar/seed-gnutar-gnu-longnames "$work/gnu.tar"
pack 000 fuzz/corpus/tar/seed-gnutar-pax-longnames "$work/pax.tar"

for d in fuzz/corpus/*/; do
  printf '%-22s %3d files %7d bytes\n' "$d" "$(ls "$d" | wc -l)" "$(cat "$d"* | wc -c)"
done
