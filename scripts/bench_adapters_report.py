#!/usr/bin/env python3
"""Tables of scripts/bench-adapters.sh from its bench_adapters JSON runs (one file per round).

    bench_adapters_report.py rounds ROUND.json...              run-level paired rounds
    bench_adapters_report.py paired MEMORY.json ROUND.json...  step pairs (Paired/ benchmarks)

rounds: each file is one run over every selected Adapter/ benchmark; a kind's time ratio to LoRA
is formed within each round, and the table gives the median of those ratios [interquartile
range] and the peak step memory ratio. paired: each file is one run of the Paired/ benchmarks,
whose counters hold the median per-pair ratio of that round; the table gives the median over
rounds [min, max], the pairs' quartiles, and the memory ratio from MEMORY.json (the Adapter/
benchmarks' exact peak_bytes).
"""
import json
import re
import statistics
import sys

SHAPE = r"(n:\d+/d:\d+/r:\d+)"


def load(path, family):
    """{(shape, kind): benchmark} of one run's iteration entries of `family` (Adapter, Paired)."""
    out = {}
    for b in json.load(open(path))["benchmarks"]:
        m = re.match(family + r"/([^/]+)/" + SHAPE, b["run_name"])
        if m and b.get("run_type") == "iteration":
            out[m.group(2), m.group(1)] = b
    if not out:
        sys.exit(f"{path}: no {family}/ benchmark matched; check --kinds and the shapes")
    return out


def shapes_of(keys):
    return sorted({s for s, _ in keys}, key=lambda s: [int(v) for v in re.findall(r"\d+", s)][::-1])


class Worst:
    """Per kind: the largest time ratio (and its shape) and the largest memory ratio."""

    def __init__(self):
        self.by_kind = {}

    def add(self, kind, shape, time_ratio, mem_ratio):
        w = self.by_kind.setdefault(kind, [0.0, "", 0.0])
        if time_ratio > w[0]:
            w[0], w[1] = time_ratio, shape
        w[2] = max(w[2], mem_ratio)

    def print(self):
        print("worst over shapes: time/LoRA (shape), mem/LoRA")
        for k, (tr, s, mr) in self.by_kind.items():
            print(f"  {k:<24}{tr:7.3f} ({s})  {mr:7.3f}")


def quartiles(v):
    v = sorted(v)
    if len(v) < 4:
        return v[0], v[-1]
    q = statistics.quantiles(v, n=4)
    return q[0], q[2]


def report_rounds(paths):
    rounds = [{key: b["real_time"] for key, b in load(p, "Adapter").items()} for p in paths]  # ms
    mem = {key: b["peak_bytes"] for key, b in load(paths[0], "Adapter").items()}
    keys = set().union(*rounds)
    kinds = ["linear", "lora", "dora", "hyplora", "hyplora_official", "hyplora_stereographic"]
    print(f"{len(rounds)} paired rounds; time/LoRA = median of the per-round ratios "
          f"[{'interquartile range' if len(rounds) >= 4 else 'min, max'}]")
    print(f"{'shape':<22}{'kind':<24}{'ms (median)':>12}{'time/LoRA':>11}{'IQR':>16}{'peak MB':>9}{'mem/LoRA':>10}")
    worst = Worst()
    for s in shapes_of(keys):
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
                worst.add(k, s, tr, mr)
        print()
    worst.print()


def report_paired(mem_path, paths):
    mem = {key: b["peak_bytes"] for key, b in load(mem_path, "Adapter").items()}
    rounds = [load(p, "Paired") for p in paths]
    keys = set().union(*rounds)
    kinds = ["dora", "hyplora", "hyplora_official", "hyplora_stereographic"]
    print(f"{len(rounds)} rounds of step pairs; time/LoRA = median over rounds of each round's median "
          "per-pair ratio [min, max over rounds]; q1-q3 = quartiles of the pairs (median over rounds)")
    print(f"{'shape':<22}{'kind':<24}{'LoRA ms':>9}{'kind ms':>9}{'time/LoRA':>11}{'[min, max]':>17}"
          f"{'q1-q3':>14}{'pairs':>7}{'mem/LoRA':>10}")
    worst = Worst()
    for s in shapes_of(keys):
        for k in kinds:
            bs = [r[(s, k)] for r in rounds if (s, k) in r]
            if not bs:
                continue
            med = lambda name: statistics.median(b[name] for b in bs)
            rat = [b["ratio"] for b in bs]
            tr = statistics.median(rat)
            mr = mem[(s, k)] / mem[(s, "lora")] if (s, k) in mem and (s, "lora") in mem else float("nan")
            span = f"[{min(rat):.3f}, {max(rat):.3f}]"
            quart = f"{med('ratio_q1'):.2f}-{med('ratio_q3'):.2f}"
            print(f"{s:<22}{k:<24}{med('lora_ms'):>9.3f}{med('kind_ms'):>9.3f}{tr:>11.3f}{span:>17}{quart:>14}"
                  f"{int(med('pairs')):>7}{mr:>10.3f}")
            worst.add(k, s, tr, mr)
    print()
    worst.print()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "rounds":
        report_rounds(sys.argv[2:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "paired":
        report_paired(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
