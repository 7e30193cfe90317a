#!/usr/bin/env bash
# Fuzzes flowfeed's parsers of untrusted bytes with libFuzzer (clang, ASan + UBSan).
#
#   bash tools/fuzz.sh                  # every target, 60 s each
#   bash tools/fuzz.sh 300 decode tar   # these targets, 300 s each
#
# Targets: decode (JPEG/PNG/... decoding, region decode), config (YAML configs), idx (IDX
# files), tar (tar shards), cache (the disk cache's files). Sources in fuzz/; each target's seed
# corpus is fuzz/corpus/<name> (checked in; the ctest tests fuzz_replay_<name> replay it).
#
# Builds in build-fuzz/ (CC=clang CXX=clang++, -DFLOWFEED_FUZZ=ON) and runs one target at a
# time on a writable copy of its corpus, build-fuzz/corpus/<name> (the repository's corpus is
# only read). Crashes, leaks, timeouts and out-of-memory inputs go to
# build-fuzz/artifacts/<name>/; minimise one with
#   build-fuzz/fuzz/fuzz_<name> -minimize_crash=1 -runs=10000 build-fuzz/artifacts/<name>/crash-...
# and, once fixed, add it to fuzz/corpus/<name>/ so that the replay test keeps it fixed.
#
# Environment: BUILD_DIR (default build-fuzz), JOBS (default nproc), FUZZ_ARGS (extra libFuzzer
# flags), FUZZ_TIMEOUT (seconds one input may take, default 10), FUZZ_RSS_MB (default 2048).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
ALL_TARGETS=(decode config idx tar cache)

SECONDS_EACH=60
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
  SECONDS_EACH=$1
  shift
fi
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
  if [[ ! " ${ALL_TARGETS[*]} " =~ " $t " ]]; then
    echo "fuzz.sh: unknown target '$t' (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
  fi
done

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2; exit 1; }

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFLOWFEED_FUZZ=ON -DFLOWFEED_BUILD_TESTS=OFF -DFLOWFEED_WITH_TORCH=OFF
fi
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]/#/fuzz_}"

# The dictionary of a target, when it has one.
dict_of() {
  case "$1" in
    decode) echo fuzz/dict/jpeg.dict ;;
    config) echo fuzz/dict/yaml.dict ;;
    *) [ -f "fuzz/dict/$1.dict" ] && echo "fuzz/dict/$1.dict" ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

summary=()
status=0
for t in "${TARGETS[@]}"; do
  corpus="$BUILD_DIR/corpus/$t"
  artifacts="$BUILD_DIR/artifacts/$t"
  log="$BUILD_DIR/logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  args=(-max_total_time="$SECONDS_EACH" -rss_limit_mb="$FUZZ_RSS_MB" -timeout="$FUZZ_TIMEOUT"
        -artifact_prefix="$artifacts/" -print_final_stats=1)
  dict=$(dict_of "$t" || true)
  [ -n "$dict" ] && args+=(-dict="$dict")
  # shellcheck disable=SC2206
  args+=(${FUZZ_ARGS:-})
  before=$(ls "$artifacts" | wc -l)
  echo "fuzz.sh: $t for ${SECONDS_EACH}s (log: $log)"
  set +e
  "$BUILD_DIR/fuzz/fuzz_$t" "${args[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  after=$(ls "$artifacts" | wc -l)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  [ -z "$execs" ] && execs=$(grep -o '^#[0-9]*' <<<"$last" | tr -d '#' || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
  units=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
  found=$((after - before))
  line=$(printf '%-7s %5ss  execs %-10s (%s/s)  cov %-6s ft %-7s corpus %-6s new artifacts %s  rc %s' \
           "$t" "$SECONDS_EACH" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${units:-?}" \
           "$found" "$rc")
  summary+=("$line")
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    status=1
    grep -E 'ERROR: |SUMMARY: |runtime error|fuzz invariant|Test unit written' "$log" | head -8 | sed 's/^/    /'
  fi
done

echo
echo "fuzz.sh summary (logs and artifacts under $BUILD_DIR/):"
printf '%s\n' "${summary[@]}"
exit $status
