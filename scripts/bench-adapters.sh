#!/usr/bin/env bash
# Adapter benchmarks: time and peak step memory of each adapter kind as ratios to LoRA at the same
# shape, from paired rounds. Each round is one fresh run of benchmarks/bench_adapters over every
# selected benchmark once, in a random order (--benchmark_enable_random_interleaving), so the
# kinds of a shape are timed within seconds of each other; the ratio to LoRA is formed within each
# round and the table gives the median of those per-round ratios and their interquartile range.
# On a noisy machine this separates a real overhead from drift far better than comparing two
# medians taken minutes apart.
#
#   scripts/bench-adapters.sh [--quick] [--paired] [--shapes REGEX] [--rounds N] [--kinds 'lora|hyplora'] [--build DIR] [-- extra benchmark args]
#     --quick    only n:512 and d <= 1024 plus the goal shape n:512/d:4096/r:32
#     --paired   pair single steps instead of runs: the Paired/ benchmarks alternate one LoRA step
#                and one step of the kind, so each time ratio compares steps milliseconds apart;
#                each round gives the median over its pairs, and the table the median over
#                rounds [min, max]. Peak memory still comes from the Adapter/ benchmarks (exact).
#     --shapes   regex of the shapes instead, e.g. 'n:512/d:256/r:[0-9]+'
#     --rounds N paired rounds (default 5; --reps is accepted as a synonym)
#     --kinds    regex of the kinds to time (LoRA is always added: it is the reference)
# Goal (issue): hyplora ≤ 1.05× LoRA time at n:512/d:4096/r:32, ≤ 1.10× everywhere; memory ≤ 1.02×.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5
paired=0
build=build
shapes='n:[0-9]+/d:[0-9]+/r:[0-9]+'
kinds='[a-z_]+'
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) shapes='n:512/(d:(256|1024)/r:[0-9]+|d:4096/r:32)' ; shift ;;
    --paired) paired=1; shift ;;
    --shapes) shapes="$2"; shift 2 ;;
    --rounds|--reps) rounds="$2"; shift 2 ;;
    --kinds) kinds="(lora|$2)"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: scripts/bench-adapters.sh [--quick] [--paired] [--shapes REGEX] [--rounds N] [--kinds REGEX] [--build DIR] [-- args]" >&2; exit 2 ;;
  esac
done
bin="$build/benchmarks/bench_adapters"
if [[ ! -x "$bin" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target bench_adapters -j "$(nproc)"
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
filter="^Adapter/$kinds/$shapes(/|\$)"
if [[ $paired == 1 ]]; then
  # Peak memory is exact: one short pass over the Adapter/ benchmarks gives it.
  "$bin" --benchmark_filter="$filter" --benchmark_min_time=0.01 \
    --benchmark_format=json --benchmark_out="$dir/memory.json" --benchmark_out_format=json >/dev/null
  filter="^Paired/$kinds/$shapes(/|\$)"
fi
echo "bench_adapters: OMP_NUM_THREADS=$OMP_NUM_THREADS, $rounds rounds, filter '$filter'" >&2
# Step pairs: 2 s per benchmark by default (hundreds of pairs where a step is under a
# millisecond); a later --benchmark_min_time in the extra args wins (more pairs at big shapes).
pairs_time=()
[[ $paired == 1 ]] && pairs_time=(--benchmark_min_time=2)
for ((i = 0; i < rounds; ++i)); do
  "$bin" --benchmark_filter="$filter" --benchmark_enable_random_interleaving=true "${pairs_time[@]}" \
    --benchmark_format=json --benchmark_out="$dir/round$i.json" --benchmark_out_format=json "${extra[@]}" >/dev/null
  echo "  round $((i + 1))/$rounds done" >&2
done
if [[ $paired == 1 ]]; then
  python3 scripts/bench_adapters_report.py paired "$dir/memory.json" "$dir"/round*.json
else
  python3 scripts/bench_adapters_report.py rounds "$dir"/round*.json
fi
