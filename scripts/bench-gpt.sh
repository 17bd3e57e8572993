#!/usr/bin/env bash
# GPT training step, hyplora vs PyTorch: builds hyplora-finetune (Release) and runs
# benchmarks/compare/torch_gpt.py, which times both sides interleaved (one process per side and
# mode each round, medians) and prints ms/step, tokens/s and peak RSS per mode.
#
#   scripts/bench-gpt.sh [--build DIR] [--threads N] [--rounds N] [--iters N] [-- bench-step options]
#     --build DIR   build folder (default build-gpt-bench; configured here when missing)
#     --threads N   threads for both sides (default: nproc). C++: OMP_NUM_THREADS and
#                   OPENBLAS_NUM_THREADS; torch: torch.set_num_threads
#     everything after -- goes to `hyplora-finetune bench-step` (e.g. --width 256 --batch 8)
# Installs torch from benchmarks/compare/requirements.txt (pip --user) when it is missing, and says so.
# Goal: hyplora <= 0.8x PyTorch step time. Measure on an otherwise idle machine (the script prints
# the load average); with several threads, a loaded machine makes spinning thread pools collapse.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-gpt-bench
threads=$(nproc)
pass=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --rounds|--iters|--warmup|--modes|--wait-policy) pass+=("$1" "$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "usage: scripts/bench-gpt.sh [--build DIR] [--threads N] [--rounds N] [--iters N] [--warmup N] [--modes M] [--wait-policy P] [-- bench-step options]" >&2; exit 2 ;;
  esac
done
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHYPLORA_ENABLE_CUDA=OFF >/dev/null
fi
cmake --build "$build" --target hyplora-finetune -j "$(nproc)"
bin="$build/examples/transformer/hyplora-finetune"
[[ -x "$bin" ]] || { echo "bench-gpt.sh: $bin was not built (needs CLI11 and nlohmann-json)" >&2; exit 1; }
if ! python3 -c 'import torch' 2>/dev/null; then
  echo "bench-gpt.sh: torch is missing; installing it: pip install --user -r benchmarks/compare/requirements.txt" >&2
  python3 -m pip install --user -r benchmarks/compare/requirements.txt
fi
echo "bench-gpt.sh: $(uptime)" >&2
exec python3 benchmarks/compare/torch_gpt.py "$bin" --threads "$threads" "${pass[@]}" -- "$@"
