#!/usr/bin/env bash
# Builds and runs hyplora's libFuzzer targets (tests/fuzz/fuzz_*.cpp) with clang++ and
# ASan + UBSan + libFuzzer, one after another, SECONDS each (default 60), then prints the number
# of executions and the rate of each. Non-zero exit if a target crashes, leaks or hangs; the
# reproducer is left in build-fuzz/ (crash-*, leak-*, timeout-*) — turn it into a TEST_CASE.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      TARGET in: safetensors adapter wordnet
#   FUZZ_RUNS=1000000 scripts/fuzz.sh 3600     stop each target after FUZZ_RUNS executions,
#                                              SECONDS is then only the cap (the issue's goal)
# Long runs: start it under `nice -n 19` on a shared machine.
# No CMake: each target is one clang++ command. The committed seeds in tests/fuzz/corpus/<t>/
# are copied into build-fuzz/corpus/<t>/, which grows as libFuzzer finds new coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors adapter wordnet)
CXX=${CXX_FUZZ:-clang++}
out=build-fuzz
mkdir -p "$out"
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=all -Iinclude $eigen -Wall -Wextra -Wpedantic -Werror)
for t in "${targets[@]}"; do
  src=tests/fuzz/fuzz_$t.cpp
  [ -f "$src" ] || { echo "fuzz.sh: no $src" >&2; exit 2; }
  if [ ! -x "$out/fuzz_$t" ] || [ "$src" -nt "$out/fuzz_$t" ] ||
     [ -n "$(find include -name '*.hpp' -newer "$out/fuzz_$t" -print -quit)" ]; then
    echo "== building fuzz_$t" >&2
    "$CXX" "${flags[@]}" "$src" -o "$out/fuzz_$t"
  fi
done
status=0
summary=()
for t in "${targets[@]}"; do
  corpus=$out/corpus/$t
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/$t/* "$corpus"/ 2>/dev/null || true
  log=$out/fuzz_$t.log
  echo "== fuzz_$t for ${secs}s (log: $log)" >&2
  rc=0
  (cd "$out" && UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ASAN_OPTIONS=detect_leaks=1 \
     "./fuzz_$t" "corpus/$t" -max_total_time="$secs" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} \
       -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -detect_leaks=1 \
       -max_len=8192 -print_final_stats=1 -artifact_prefix="./$t-") >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  [ -z "$runs" ] && runs=0
  [ -z "$took" ] || [ "$took" -eq 0 ] && took=$secs
  line="fuzz_$t: $runs executions in ${took}s ($((runs / took))/s), corpus $(ls "$corpus" | wc -l) files, exit $rc"
  if [ "$rc" -ne 0 ]; then
    status=1
    line="$line  FAILED: $(grep -m1 -E 'ERROR|runtime error|SUMMARY' "$log" || true)"
  fi
  summary+=("$line")
done
printf '%s\n' "${summary[@]}"
exit $status
