#!/usr/bin/env bash
# Adapter benchmarks: runs benchmarks/bench_adapters with repetitions (kinds of one shape run side
# by side, so machine drift hits each pair alike) and prints, per shape, each kind's median step
# time and peak step memory as ratios to LoRA.
#
#   scripts/bench-adapters.sh [--quick] [--reps N] [--build DIR] [-- extra benchmark args]
#     --quick   only n:512 and d <= 1024 plus the goal shape n:512/d:4096/r:32
#     --reps N  repetitions (default 3; medians are reported)
# Goal (issue): hyplora ≤ 1.05× LoRA time at n:512/d:4096/r:32, ≤ 1.10× everywhere; memory ≤ 1.02×.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=3
build=build
filter='Adapter/'
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) filter='Adapter/.*/n:512/(d:(256|1024)/|d:4096/r:32)' ; shift ;;
    --reps) reps="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: scripts/bench-adapters.sh [--quick] [--reps N] [--build DIR] [-- args]" >&2; exit 2 ;;
  esac
done
bin="$build/benchmarks/bench_adapters"
if [[ ! -x "$bin" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target bench_adapters -j "$(nproc)"
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
echo "bench_adapters: OMP_NUM_THREADS=$OMP_NUM_THREADS, $reps repetitions, filter '$filter'" >&2
"$bin" --benchmark_filter="$filter" --benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=false \
  --benchmark_format=json --benchmark_out="$out" --benchmark_out_format=json "${extra[@]}" >/dev/null
python3 - "$out" <<'PY'
import json, re, statistics, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
t, mem = {}, {}
for b in runs:
    if b.get("run_type") != "iteration":
        continue
    m = re.match(r"Adapter/([^/]+)/(n:\d+/d:\d+/r:\d+)", b["run_name"])
    if not m:
        continue
    kind, shape = m.groups()
    t.setdefault((shape, kind), []).append(b["real_time"])  # ms
    mem[(shape, kind)] = b["peak_bytes"]
shapes = sorted({s for s, _ in t}, key=lambda s: [int(v) for v in re.findall(r"\d+", s)][::-1])
kinds = ["linear", "lora", "dora", "hyplora", "hyplora_official", "hyplora_stereographic"]
print(f"{'shape':<22}{'kind':<24}{'ms (median)':>12}{'time/LoRA':>11}{'peak MB':>10}{'mem/LoRA':>10}")
worst = {}
for s in shapes:
    lt = statistics.median(t[(s, "lora")]) if (s, "lora") in t else None
    lm = mem.get((s, "lora"))
    for k in kinds:
        if (s, k) not in t:
            continue
        med = statistics.median(t[(s, k)])
        tr = med / lt if lt else float("nan")
        mr = mem[(s, k)] / lm if lm else float("nan")
        print(f"{s:<22}{k:<24}{med:>12.3f}{tr:>11.3f}{mem[(s, k)] / 2**20:>10.2f}{mr:>10.3f}")
        if k != "lora":
            w = worst.setdefault(k, [0, "", 0])
            if tr > w[0]:
                w[0], w[1] = tr, s
            w[2] = max(w[2], mr)
    print()
print("worst over shapes: time/LoRA (shape), mem/LoRA")
for k, (tr, s, mr) in worst.items():
    print(f"  {k:<24}{tr:7.3f} ({s})  {mr:7.3f}")
PY
