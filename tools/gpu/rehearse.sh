#!/usr/bin/env bash
# rehearse.sh: runs tools/gpu/run.sh on this machine (no GPU) the way the GPU machine will see it,
# small (FLOWFEED_GPU_REHEARSAL=1: device cpu, 256 images of 64 px, 2 epochs, threads 1 and 2),
# to find what breaks before device time is spent (docs/gpu.md).
#
#   bash tools/gpu/rehearse.sh        # after tools/gpu/prepare.sh
#
# - The tree is copied as the run tool copies it: tracked files and untracked ones git does not
#   ignore, plus the carried folder (.gpu-carry), into a new folder under /tmp; run.sh runs there.
# - python3 is the CUDA venv's (build-cuda/venv: the GPU machines' torch 2.11, which runs on the
#   CPU) with torchvision, Pillow and numpy (pinned below, as on the GPU machines' image) from
#   pip into build-gpu/rehearsal-py, installed once.
# - In a private mount namespace (unshare -m as root, else with --map-root-user) every system
#   copy of a library the carry holds is hidden (/dev/null mounted over the file), so the carried
#   flowfeed can only start from the carried copies, as on a machine without them; and the venv
#   is moved (seen at another path, an empty folder where it was), so the binaries' rpath, which
#   names the build machine's torch folders, finds nothing, as on the GPU machine.
# FLOWFEED_GPU_BUILD=1 rehearses the fallback instead: run.sh builds from the carried packages.
# Output: the copy's gpu-out/ (run.log, summary.md, summary.json, results.tar.gz); its path is
# printed. Environment: CUDA_DIR (default build-cuda), CARRY (default .gpu-carry), KEEP=0
# removes the copy afterwards except gpu-out/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
CUDA_DIR=${CUDA_DIR:-build-cuda}
CARRY=${CARRY:-.gpu-carry}

if [ -z "${FLOWFEED_REHEARSE_HIDDEN:-}" ]; then
  [ -f "$CARRY/flowfeed-gpu.tar.gz" ] || { echo "rehearse.sh: no $CARRY: run tools/gpu/prepare.sh" >&2; exit 1; }
  venv=$(realpath "$CUDA_DIR/venv")
  py=$venv/bin/python  # bin/python itself not resolved: the link is what makes it the venv's
  extra=$PWD/build-gpu/rehearsal-py
  if ! PYTHONPATH=$extra "$py" -c 'import torchvision, PIL, numpy' 2>/dev/null; then
    "$py" -m pip install -q --no-deps --target "$extra" torchvision==0.26.0 pillow numpy
  fi
  copy=$(mktemp -d /tmp/flowfeed-rehearse.XXXXXX)
  mkdir -p "$copy/repo"
  { git ls-files -z; git ls-files -z --others --exclude-standard; } |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    xargs -0 cp --parents -t "$copy/repo"
  cp -a "$CARRY" "$copy/repo/"
  if [ "${FLOWFEED_GPU_BUILD:-0}" = 1 ]; then
    # The fallback build's packages are unpacked out here, as tools/offline/check.sh does: dpkg
    # itself needs libmd, which the namespace hides (build.sh then reuses the unpacked tree).
    bash tools/offline/unpack.sh "$copy/repo/$(basename "$CARRY")/deps"
  fi
  echo "rehearse.sh: the tree as the device sees it: $copy/repo ($(du -sh "$copy/repo" | cut -f1))"
  ns=(unshare --mount)
  [ "$(id -u)" -eq 0 ] || ns=(unshare --mount --map-root-user)
  start=$(date +%s)
  status=0
  FLOWFEED_REHEARSE_HIDDEN=1 REHEARSE_COPY=$copy REHEARSE_VENV=$venv REHEARSE_PYTHONPATH=$extra \
    "${ns[@]}" bash "$0" || status=$?
  echo "rehearse.sh: run.sh ended with status $status in $(($(date +%s) - start)) s; results in $copy/repo/gpu-out"
  if [ "${KEEP:-1}" = 0 ]; then
    find "$copy/repo" -mindepth 1 -maxdepth 1 ! -name gpu-out -exec rm -rf {} +
  fi
  exit "$status"
fi

# --- inside the namespace ---
cd "$REHEARSE_COPY/repo"
tar -tzf "$CARRY/flowfeed-gpu.tar.gz" | sed -n 's|^lib/\(..*\)$|\1|p' > /tmp/carried-libs.$$
hidden=0
while read -r so; do
  for dir in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/blas \
             /usr/lib/x86_64-linux-gnu/lapack; do
    [ -e "$dir/$so" ] || continue
    real=$(realpath "$dir/$so")
    if ! grep -qxF "$real" /tmp/hidden.$$ 2>/dev/null; then
      mount --bind /dev/null "$real"
      echo "$real" >> /tmp/hidden.$$
      hidden=$((hidden + 1))
    fi
  done
done < /tmp/carried-libs.$$
echo "rehearse.sh: hid $hidden system library files that the carry also holds:"
sed 's/^/  /' /tmp/hidden.$$ 2>/dev/null
rm -f /tmp/carried-libs.$$ /tmp/hidden.$$
# The venv moves: seen at another path, and an empty folder where it was. The binaries' rpath
# names the venv's torch/lib and nvidia-* folders where prepare.sh found them; on the GPU
# machine torch is elsewhere, so here too only what run.sh puts in LD_LIBRARY_PATH is found.
moved=$REHEARSE_COPY/venv  # beside the copy of the tree, removed with it
mkdir -p "$moved"
mount --bind "$REHEARSE_VENV" "$moved"
mount -t tmpfs -o size=1M,mode=0555 none "$REHEARSE_VENV"
echo "rehearse.sh: the venv seen at $moved; $REHEARSE_VENV (where the binaries' rpath points) is empty"
export PYTHON=$moved/bin/python PYTHONPATH=$REHEARSE_PYTHONPATH
# The scratch folder inside the copy (on the GPU machine it is under /tmp), so KEEP=0 removes it.
export OUT=$PWD/gpu-out FLOWFEED_GPU_REHEARSAL=1 FLOWFEED_GPU_WORK=$PWD/gpu-work
bash tools/gpu/run.sh
