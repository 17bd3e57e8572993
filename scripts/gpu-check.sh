#!/usr/bin/env bash
# gpu-check.sh — build and run hyplora's CUDA tests and benchmarks on a machine with a GPU.
#   scripts/gpu-check.sh            logs + summary.txt in ./gpu-check-out (or "$OUT" if set)
# Steps keep going past a failure; each is recorded as PASS/FAIL/SKIP in summary.txt and the
# script exits non-zero if any step failed. Budget: 7.5 minutes in all, or GPU_CHECK_BUDGET
# seconds (each step has a timeout, cut to what is left).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${OUT:-$root/gpu-check-out}
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
failed=0
export PATH="/usr/local/cuda/bin:$PATH"
jobs=$(nproc 2>/dev/null || echo 2)
build="$root/build-gpu-check"

# step NAME TIMEOUT_S CMD...: runs CMD with its output in $out/NAME.log; 77 counts as a skip.
# A step's timeout is cut to what is left of the 7.5-minute budget.
budget=${GPU_CHECK_BUDGET:-450}
step() {
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS rc=0 left=$((budget - SECONDS))
  if [ "$left" -lt 10 ]; then
    printf '%-28s %-12s\n' "$name" "SKIP(budget)" | tee -a "$summary"; failed=1; return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  timeout "$limit" "$@" > "$out/$name.log" 2>&1 || rc=$?
  local status=PASS
  if [ "$rc" -eq 77 ]; then status=SKIP; elif [ "$rc" -ne 0 ]; then status="FAIL(rc=$rc)"; failed=1; fi
  printf '%-28s %-12s %4ds\n' "$name" "$status" $((SECONDS - t0)) | tee -a "$summary"
  return 0
}

{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: unavailable"
  nvcc --version 2>/dev/null | tail -1 || echo "nvcc: not found"
} > "$out/environment.txt"
cat "$out/environment.txt" | tee -a "$summary"

# Dependencies. The device machines have no package registry: when .deps/ holds Debian .deb
# files (scripts/gpu-deps.sh fetches them here and the device tool carries the folder), they
# are unpacked into a private prefix, never into /. Elsewhere bootstrap.sh installs them.
prefix_args=()
if compgen -G ".deps/*.deb" > /dev/null; then
  step deps 60 bash -c 'mkdir -p .deps/prefix && for f in .deps/*.deb; do dpkg -x "$f" .deps/prefix; done'
  prefix_args=(-DCMAKE_PREFIX_PATH="$root/.deps/prefix/usr")
else
  step bootstrap 90 bash scripts/bootstrap.sh
fi

# Ninja when there is one (unpacked from .deps or installed): several targets build in parallel,
# where Make's top-level Makefile builds the goals of one command one after the other.
generator_args=()
if [ -x .deps/prefix/usr/bin/ninja ]; then
  generator_args=(-G Ninja -DCMAKE_MAKE_PROGRAM="$root/.deps/prefix/usr/bin/ninja")
elif command -v ninja > /dev/null; then
  generator_args=(-G Ninja)
fi
[ ${#generator_args[@]} -gt 0 ] && build="$build-ninja"  # a build folder keeps its generator

# -Werror is CI's job (nvcc 13 here): the host compiler there differs, and a new warning must not
# cost the scarce device time.
step configure 90 cmake -S "$root" -B "$build" "${generator_args[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DHYPLORA_ENABLE_CUDA=ON -DHYPLORA_BUILD_EXAMPLES=ON -DHYPLORA_INSTALL=OFF "${prefix_args[@]}" \
  -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"

# Build the CUDA targets and hyplora-finetune (its --device cuda path is gpt_cuda.cu).
targets=(hyplora-finetune)
for f in tests/cuda/test_*.cu; do [ -e "$f" ] && targets+=("cuda_$(basename "$f" .cu)"); done
for f in benchmarks/cuda/bench_*.cu; do [ -e "$f" ] && targets+=("$(basename "$f" .cu)"); done
step build 240 cmake --build "$build" -j "$jobs" --target "${targets[@]}"

step ctest_cuda 120 ctest --test-dir "$build" -L cuda -V  # -V: the tests' own figures (worst errors) reach the log
grep -E "worst|first-step" "$out/ctest_cuda.log" >> "$summary" 2>/dev/null || true
# The goal shape of issue #6 (n=2048, d=4096, r=32) and two smaller ones.
for shape in "2048 4096 32" "2048 4096 8" "2048 1024 32"; do
  set -- $shape
  step "bench_cuda_adapters_$1_$2_$3" 60 "$build/bench_cuda_adapters" $1 $2 $3 30
  grep -E "^(device|shape|lora|hyplora|ratio|allocator)" "$out/bench_cuda_adapters_$1_$2_$3.log" >> "$summary" 2>/dev/null || true
done

# Fused (flash-style) vs cuBLAS + softmax attention, forward + backward, at the GPT example's shape
# and a larger one (bench_cuda_attention prints both and their ratio).
step bench_cuda_attention 60 "$build/bench_cuda_attention" 30
grep -E "^(attention|ratio|check)" "$out/bench_cuda_attention.log" >> "$summary" 2>/dev/null || true

# Issue #6 (b): the same 20 training steps on the CPU and the GPU (loss-check prints one loss per
# step); the largest relative difference per adapter goes to the summary.
ft="$build/examples/transformer/hyplora-finetune"
loss_check() {
  local a=$1
  "$ft" loss-check --device cpu --adapter "$a" --steps 20 > "$out/loss_cpu_$a.txt" || return 1
  "$ft" loss-check --device cuda --adapter "$a" --steps 20 > "$out/loss_cuda_$a.txt" || return 1
  paste "$out/loss_cpu_$a.txt" "$out/loss_cuda_$a.txt" | awk -v a="$a" '
    /^#/ {next} {d = ($4 - $2) / $2; if (d < 0) d = -d; if (d > m) m = d; last = $2 " " $4}
    END {printf "loss-check %-8s 20 steps: max rel diff cpu vs cuda %.2e (last losses cpu, cuda: %s)\n", a, m, last}'
}
export -f loss_check
export ft out
for a in full lora hyplora dora hyplora_official; do
  step "loss_check_$a" 60 bash -c 'loss_check "$0"' "$a"
  grep "^loss-check" "$out/loss_check_$a.log" >> "$summary" 2>/dev/null || true
done

# The newcomer's job on the GPU: pretrain, fine-tune each adapter and evaluate (hyplora-finetune
# compare --device cuda), small enough to take seconds; the tables go to the summary.
wordnet=/usr/share/wordnet
[ -f .deps/prefix/usr/share/wordnet/data.noun ] && wordnet="$root/.deps/prefix/usr/share/wordnet"
step compare_cuda 90 "$ft" compare --device cuda --data-dir "$out/demo-data" --wordnet-dir "$wordnet" \
  --adapters lora,hyplora,full --tasks arithmetic --pretrain-steps 100 --steps 60 --save-every 30 --eval-items 50
grep -E "^(pretrained|adapter|lora|hyplora|full) " "$out/compare_cuda.log" >> "$summary" 2>/dev/null || true

# PyTorch eager CUDA on the same machine: the GPT step (torch_gpt.py) and the adapter layers
# (torch_adapters.py, beside bench_cuda_adapters above).
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  step torch_gpt_cuda 150 env PYTHONUNBUFFERED=1 python3 benchmarks/compare/torch_gpt.py "$ft" --device cuda \
    --rounds 2 --iters 5 --warmup 3
  tail -n 12 "$out/torch_gpt_cuda.log" >> "$summary" 2>/dev/null || true
  step torch_adapters_cuda 90 python3 benchmarks/compare/torch_adapters.py --device cuda --reps 5
  grep -E "^(torch|n:)" "$out/torch_adapters_cuda.log" >> "$summary" 2>/dev/null || true
else
  echo "torch_compare               SKIP (python3 has no CUDA-enabled torch)" | tee -a "$summary"
fi

echo "overall: $([ $failed -eq 0 ] && echo PASS || echo FAIL)" | tee -a "$summary"
exit $failed
