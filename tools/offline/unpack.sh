#!/usr/bin/env bash
# unpack.sh: unpacks the offline bundle (docs/offline.md) where it lies and writes DEPS/env.sh,
# the environment that builds against it and runs what was built. tools/offline/build.sh and
# check.sh call it; run it by hand only to use the bundle without build.sh (a plugin or a
# program of one's own against an installed JPEG-only flowfeed).
#
#   bash tools/offline/unpack.sh [DEPS]    # default: .offline-deps; then: . DEPS/env.sh
#
# dpkg -x puts DEPS/debs/*.deb into DEPS/usr (no root, nothing outside DEPS), again whenever a
# package is newer than the last unpacking or DEPS has moved since (the .pc files name it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DEPS=$(realpath -m "${1:-.offline-deps}")
MULTIARCH=x86_64-linux-gnu

compgen -G "$DEPS/debs/*.deb" >/dev/null ||
  { echo "unpack.sh: no packages in $DEPS/debs: run tools/offline/fetch.sh on a machine with network" >&2; exit 1; }
if [ "$(cat "$DEPS/.unpacked" 2>/dev/null)" != "$DEPS" ] ||
   [ -n "$(find "$DEPS/debs" -name '*.deb' -newer "$DEPS/.unpacked")" ]; then
  rm -rf "${DEPS:?}/usr" "${DEPS:?}/lib" "${DEPS:?}/etc"
  for d in "$DEPS"/debs/*.deb; do dpkg -x "$d" "$DEPS"; done
  # The .pc files say /usr (prefix=/usr, libdir=/usr/lib/..., -I/usr/include): DEPS/usr in its
  # place, in the files themselves, as CMake's pkg_check_modules also reads them from
  # CMAKE_PREFIX_PATH's folders. Not PKG_CONFIG_SYSROOT_DIR, which puts DEPS in front of every
  # absolute -I and -L, those of .pc files outside the bundle too (an installed flowfeed.pc's).
  for pc in "$DEPS/usr/lib/$MULTIARCH/pkgconfig"/*.pc "$DEPS/usr/share/pkgconfig"/*.pc; do
    if [ -e "$pc" ]; then sed -i -E "s#(=|-I|-L)/usr(/|\$|[[:space:]])#\1$DEPS/usr\2#g" "$pc"; fi
  done
  echo "$DEPS" >"$DEPS/.unpacked"
fi

LIB=$DEPS/usr/lib/$MULTIARCH
# pkg-config's own folders after the bundle's, for what the bundle does not carry; LIBDIR, not
# PKG_CONFIG_PATH, which callers set for their own packages.
system_pc=$(pkg-config --variable pc_path pkg-config 2>/dev/null || true)
cat >"$DEPS/env.sh" <<EOF
# Written by tools/offline/unpack.sh: the environment for building against the bundle in
# $DEPS and for running what was built. Source it (. $DEPS/env.sh).
#
# libblas.so.3 and liblapack.so.3 live in blas/ and lapack/: Debian links them into lib/ through
# update-alternatives, which dpkg -x does not run. The linker needs them too (libopencv_core.so's
# NEEDED entries), and ctest's test discovery runs the test program during the build.
export LD_LIBRARY_PATH="$LIB:$LIB/blas:$LIB/lapack\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PKG_CONFIG_LIBDIR="$LIB/pkgconfig:$DEPS/usr/share/pkgconfig${system_pc:+:$system_pc}"
# The bundle's CMake packages (TBB, yaml-cpp, GTest, ...) and OpenCV core and imgproc.
export CMAKE_PREFIX_PATH="$DEPS/usr\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}"
# Headers in the multiarch folder (jconfig.h, which jpeglib.h includes) are found through the
# compiler's default search path on Debian, which knows nothing of DEPS; the .pc files name only
# DEPS/usr/include. CPLUS_INCLUDE_PATH is searched where the default one would be.
export CPLUS_INCLUDE_PATH="$DEPS/usr/include/$MULTIARCH\${CPLUS_INCLUDE_PATH:+:\$CPLUS_INCLUDE_PATH}"
EOF
echo "unpack.sh: $DEPS unpacked; its environment: . $DEPS/env.sh"
