#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang into build-fuzz/ and runs each for SECONDS:
#   scripts/fuzz.sh [SECONDS] [HARNESS...]   (default 60 per harness; all of idx data checkpoint image)
#   scripts/fuzz.sh 300 checkpoint           (only fuzz_checkpoint, for 5 minutes)
# Corpora grow in build-fuzz/corpus/<name>/ (seeded from fuzz/corpus/<name>/); a crash is saved
# as build-fuzz/findings/<name>/crash-* and reported. Commit a crashing input to
# fuzz/regressions/<name>/ with its fix: the replay tests run it in every build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
case "$secs" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;; esac
shift || true
harnesses=${*:-idx data checkpoint image}
for name in $harnesses; do
  [ -f "$root/fuzz/fuzz_$name.c" ] || { echo "fuzz.sh: no harness '$name' (fuzz/fuzz_$name.c); pick from idx data checkpoint image" >&2; exit 2; }
done
command -v clang >/dev/null || { echo "fuzz.sh: clang not found: scripts/install-deps.sh --fuzz" >&2; exit 2; }
build="$root/build-fuzz"
CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVAE_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target $(printf 'fuzz_%s ' $harnesses) >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# -malloc_limit_mb above -rss_limit_mb: HDF5 callocs a conversion buffer as long as a (damaged)
# variable-length string claims, untouched and harmless (fuzz/regressions/checkpoint/oom-*); real
# memory growth still stops at the RSS limit.
# HDF5 keeps library-wide caches that LSan reports at exit; leaks are checked by the ASan ctest run.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for name in $harnesses; do
  corpus="$build/corpus/$name" findings="$build/findings/$name"
  mkdir -p "$corpus" "$findings"
  cp -n "$root/fuzz/corpus/$name/"* "$corpus/" 2>/dev/null || true
  log="$build/fuzz_$name.log"
  set +e
  "$build/fuzz_$name" "$corpus" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=8192 -timeout=10 \
    -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(find "$findings" -type f | wc -l)
  echo "fuzz_$name: ${runs:-?} executions in ${secs}s, corpus $(ls "$corpus" | wc -l) inputs, findings $crashes (exit $rc, log $log)"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
    grep -m 5 -E "ERROR|SUMMARY|contract broken" "$log" || true
  fi
done
exit $status
