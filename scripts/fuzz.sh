#!/usr/bin/env bash
# Builds (if needed) and runs one libFuzzer target on its seed corpus for SECONDS, then prints its execution count.
# Usage: scripts/fuzz.sh TARGET SECONDS [BUILD_DIR]
#   TARGET     a name from tests/fuzz/fuzz_<name>.{cpp,c}: "safetensors" or "fuzz_safetensors"; "list" lists them
#   BUILD_DIR  a clang build with -DILLM_FUZZ=ON, configured here when missing (default: build-fuzz)
# New inputs the fuzzer finds go to BUILD_DIR/fuzz-corpus/<name>/ (the committed seeds stay as they are); a finding
# is written to BUILD_DIR/fuzz-findings/<name>/ and makes the script exit non-zero. Needs clang, libfuzzer-14-dev
# and libomp-14-dev (scripts/setup.sh installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = list ] || [ $# -lt 2 ]; then
  [ "${1:-}" = list ] || echo "usage: scripts/fuzz.sh TARGET SECONDS [BUILD_DIR]   (scripts/fuzz.sh list: the targets)" >&2
  for f in "$here"/tests/fuzz/fuzz_*.c "$here"/tests/fuzz/fuzz_*.cpp; do
    [ -e "$f" ] && basename "$f" | sed -E 's/^fuzz_(.*)\.(c|cpp)$/\1/'
  done
  [ "${1:-}" = list ] && exit 0 || exit 2
fi
name=${1#fuzz_}
seconds=$2
build=${3:-"$here/build-fuzz"}
case "$seconds" in '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;; esac
if [ ! -e "$here/tests/fuzz/fuzz_$name.cpp" ] && [ ! -e "$here/tests/fuzz/fuzz_$name.c" ]; then
  echo "fuzz.sh: no target '$name' (tests/fuzz/fuzz_$name.cpp or .c); scripts/fuzz.sh list" >&2
  exit 2
fi
seeds="$here/tests/fuzz/corpus/$name"
[ -d "$seeds" ] || { echo "fuzz.sh: no seed corpus $seeds" >&2; exit 2; }

if [ ! -f "$build/CMakeCache.txt" ]; then
  echo "fuzz.sh: configuring $build (clang, ILLM_FUZZ=ON)" >&2
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
        -DILLM_FUZZ=ON >/dev/null
fi
cmake --build "$build" --target "fuzz_$name" -j"${ILLM_FUZZ_BUILD_JOBS:-2}" >/dev/null
binary=$(find "$build" -type f -name "fuzz_$name" -perm -u+x | head -n 1)
[ -n "$binary" ] || { echo "fuzz.sh: fuzz_$name was not built in $build" >&2; exit 1; }

work="$build/fuzz-corpus/$name" findings="$build/fuzz-findings/$name"
mkdir -p "$work" "$findings"
log="$build/fuzz-$name.log"
extra=()
[ -f "$here/tests/fuzz/$name.dict" ] && extra+=("-dict=$here/tests/fuzz/$name.dict")
echo "fuzz.sh: fuzz_$name for ${seconds} s (log: $log)" >&2
status=0
export LSAN_OPTIONS="suppressions=$here/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
"$binary" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 -rss_limit_mb=2048 \
  -artifact_prefix="$findings/" "${extra[@]}" "$work" "$seeds" >"$log" 2>&1 || status=$?
executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
if [ "$status" -ne 0 ]; then
  echo "fuzz_$name: FINDING after ${executions:-?} executions (exit $status); input in $findings/, log $log" >&2
  grep -m 5 -E "ERROR|SUMMARY|runtime error|deadly signal|uncaught" "$log" >&2 || true
  exit 1
fi
echo "fuzz_$name: ${executions:-?} executions in ${seconds} s, no findings"
