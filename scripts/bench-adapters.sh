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
  python3 - "$dir/memory.json" "$dir"/round*.json <<'PY'
import json, re, statistics, sys

mem = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    m = re.match(r"Adapter/([^/]+)/(n:\d+/d:\d+/r:\d+)", b["run_name"])
    if m and b.get("run_type") == "iteration":
        mem[m.group(2), m.group(1)] = b["peak_bytes"]
rounds = []  # one {(shape, kind): benchmark} per round
for path in sys.argv[2:]:
    t = {}
    for b in json.load(open(path))["benchmarks"]:
        m = re.match(r"Paired/([^/]+)/(n:\d+/d:\d+/r:\d+)", b["run_name"])
        if m and b.get("run_type") == "iteration":
            t[m.group(2), m.group(1)] = b
    if not t:
        sys.exit(f"{path}: no Paired/ benchmark matched; check --kinds and the shapes")
    rounds.append(t)
keys = set().union(*rounds)
shapes = sorted({s for s, _ in keys}, key=lambda s: [int(v) for v in re.findall(r"\d+", s)][::-1])
kinds = ["dora", "hyplora", "hyplora_official", "hyplora_stereographic"]
print(f"{len(rounds)} rounds of step pairs; time/LoRA = median over rounds of each round's median "
      "per-pair ratio [min, max over rounds]; q1-q3 = quartiles of the pairs (median over rounds)")
print(f"{'shape':<22}{'kind':<24}{'LoRA ms':>9}{'kind ms':>9}{'time/LoRA':>11}{'[min, max]':>17}{'q1-q3':>14}{'pairs':>7}{'mem/LoRA':>10}")
worst = {}
for s in shapes:
    for k in kinds:
        bs = [r[(s, k)] for r in rounds if (s, k) in r]
        if not bs:
            continue
        rat = [b["ratio"] for b in bs]
        tr = statistics.median(rat)
        q1 = statistics.median(b["ratio_q1"] for b in bs)
        q3 = statistics.median(b["ratio_q3"] for b in bs)
        lm, km = statistics.median(b["lora_ms"] for b in bs), statistics.median(b["kind_ms"] for b in bs)
        pairs = int(statistics.median(b["pairs"] for b in bs))
        mr = mem[(s, k)] / mem[(s, "lora")] if (s, k) in mem and (s, "lora") in mem else float("nan")
        print(f"{s:<22}{k:<24}{lm:>9.3f}{km:>9.3f}{tr:>11.3f}{f'[{min(rat):.3f}, {max(rat):.3f}]':>17}"
              f"{f'{q1:.2f}-{q3:.2f}':>14}{pairs:>7}{mr:>10.3f}")
        w = worst.setdefault(k, [0, "", 0])
        if tr > w[0]:
            w[0], w[1] = tr, s
        w[2] = max(w[2], mr)
print()
print("worst over shapes: time/LoRA (shape), mem/LoRA")
for k, (tr, s, mr) in worst.items():
    print(f"  {k:<24}{tr:7.3f} ({s})  {mr:7.3f}")
PY
  exit 0
fi
python3 - "$dir"/round*.json <<'PY'
import json, re, statistics, sys

def quartiles(v):
    v = sorted(v)
    if len(v) < 4:
        return v[0], v[-1]
    q = statistics.quantiles(v, n=4)
    return q[0], q[2]

rounds = []  # one {(shape, kind): ms} per round
mem = {}
for path in sys.argv[1:]:
    t = {}
    for b in json.load(open(path))["benchmarks"]:
        m = re.match(r"Adapter/([^/]+)/(n:\d+/d:\d+/r:\d+)", b["run_name"])
        if not m or b.get("run_type") != "iteration":
            continue
        kind, shape = m.groups()
        t[(shape, kind)] = b["real_time"]  # ms
        mem[(shape, kind)] = b["peak_bytes"]
    if not t:
        sys.exit(f"{path}: no Adapter/ benchmark matched; check --kinds and the shapes")
    rounds.append(t)
keys = set().union(*rounds)
shapes = sorted({s for s, _ in keys}, key=lambda s: [int(v) for v in re.findall(r"\d+", s)][::-1])
kinds = ["linear", "lora", "dora", "hyplora", "hyplora_official", "hyplora_stereographic"]
print(f"{len(rounds)} paired rounds; time/LoRA = median of the per-round ratios "
      f"[{'interquartile range' if len(rounds) >= 4 else 'min, max'}]")
print(f"{'shape':<22}{'kind':<24}{'ms (median)':>12}{'time/LoRA':>11}{'IQR':>16}{'peak MB':>9}{'mem/LoRA':>10}")
worst = {}
for s in shapes:
    lm = mem.get((s, "lora"))
    for k in kinds:
        if (s, k) not in keys:
            continue
        ms = statistics.median(r[(s, k)] for r in rounds if (s, k) in r)
        ratios = [r[(s, k)] / r[(s, "lora")] for r in rounds if (s, k) in r and (s, "lora") in r]
        tr = statistics.median(ratios) if ratios else float("nan")
        lo, hi = quartiles(ratios) if ratios else (float("nan"), float("nan"))
        mr = mem[(s, k)] / lm if lm else float("nan")
        iqr = f"[{lo:.3f}, {hi:.3f}]" if k != "lora" else ""
        print(f"{s:<22}{k:<24}{ms:>12.3f}{tr:>11.3f}{iqr:>16}{mem[(s, k)] / 2**20:>9.2f}{mr:>10.3f}")
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
