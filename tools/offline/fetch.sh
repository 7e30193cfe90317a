#!/usr/bin/env bash
# fetch.sh: downloads the Debian 12 packages an offline build of flowfeed needs (docs/offline.md).
#
#   bash tools/offline/fetch.sh [DEPS]     # default DEPS: .offline-deps (git-ignored)
#
# Runs on a Debian 12 (bookworm) machine with network; `apt-get download` needs no root. Writes
# DEPS/debs/*.deb, then prints the bundle's size and the source tree's: both travel to the GPU
# machine, where tools/offline/build.sh unpacks and builds. The packages are the -dev ones the
# build includes and links (ROOTS), then whatever their shared libraries need that is neither in
# the bundle nor part of every glibc userland (BASELINE): found by reading each library's NEEDED
# entries, not by following Depends, which would pull in imgcodecs' GDAL and friends.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DEPS=${1:-.offline-deps}

# What the build includes and links. OpenCV: core and imgproc only (the build runs with
# FLOWFEED_OPENCV_IMGCODECS=OFF there); libopencv-dev, with OpenCV's CMake package, is left out
# on purpose, see the top-level CMakeLists.txt.
ROOTS=(
  # libtbbbind: nothing links it, but TBB's CMake package checks that its file exists.
  libtbb-dev libtbb12 libtbbmalloc2 libtbbbind-2-5
  libyaml-cpp-dev libyaml-cpp0.7
  libturbojpeg0-dev libturbojpeg0 libjpeg62-turbo-dev libjpeg62-turbo
  libopencv-core-dev libopencv-core406 libopencv-imgproc-dev libopencv-imgproc406
  libxxhash-dev libxxhash0 zlib1g-dev
  nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev
)
# Assumed present on the target (any glibc system that runs PyTorch has them); never bundled.
BASELINE=(libc6 libstdc++6 libgcc-s1 zlib1g)

mkdir -p "$DEPS/debs"
scan=$(mktemp -d)
trap 'rm -rf "$scan"' EXIT

have_deb() { compgen -G "$DEPS/debs/${1}_*.deb" >/dev/null; }

wanted=("${ROOTS[@]}")
while :; do
  missing=()
  for p in "${wanted[@]}"; do have_deb "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "fetch.sh: downloading ${missing[*]}"
    # As root, apt hands downloads to its _apt user, who cannot write here: it warns, then
    # downloads as root anyway; saying so up front keeps the warning out.
    sandbox=(); [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
    (cd "$DEPS/debs" && apt-get download -q "${sandbox[@]}" "${missing[@]}" >/dev/null)
  fi
  rm -rf "$scan"/root && mkdir -p "$scan/root"
  for d in "$DEPS"/debs/*.deb; do dpkg -x "$d" "$scan/root"; done
  # Every soname the bundle provides, and every one its ELF files need.
  find "$scan/root" \( -type f -o -type l \) -name '*.so*' -printf '%f\n' | sort -u > "$scan/have"
  find "$scan/root" -type f -name '*.so*' -exec sh -c 'objdump -p "$1" 2>/dev/null' _ {} \; |
    awk '$1 == "NEEDED" { print $2 }' | sort -u > "$scan/need"
  added=()
  while read -r so; do
    # Several packages may hold a soname (ld-linux-x86-64.so.2: libc6 and libc6-i386): one in
    # BASELINE settles it, otherwise the first is taken.
    owners=$(dpkg -S "*/$so" 2>/dev/null | cut -d: -f1 | tr ', ' '\n\n' | sed '/^$/d' | sort -u) || true
    if [ -z "$owners" ]; then
      echo "fetch.sh: no installed package here provides $so (install it, or add its package to ROOTS)" >&2
      exit 1
    fi
    base=0
    for o in $owners; do [[ " ${BASELINE[*]} " == *" $o "* ]] && base=1; done
    [ "$base" = 1 ] && continue
    pkg=$(echo "$owners" | head -1)
    [[ " ${wanted[*]} " == *" $pkg "* ]] && continue
    echo "fetch.sh: $so -> $pkg"
    added+=("$pkg")
  done < <(comm -23 "$scan/need" "$scan/have")
  [ ${#added[@]} -eq 0 ] && break
  wanted+=("${added[@]}")
done

bundle=$(du -cb "$DEPS"/debs/*.deb | tail -1 | cut -f1)
source=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "fetch.sh: $(ls "$DEPS"/debs/*.deb | wc -l) packages in $DEPS/debs: $(mib "$bundle");" \
     "source tree (git ls-files): $(mib "$source"); together $(mib $((bundle + source))) (limit 64 MiB)"
if [ $((bundle + source)) -ge $((64 * 1048576)) ]; then
  echo "fetch.sh: over 64 MiB" >&2
  exit 1
fi
