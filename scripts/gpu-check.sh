#!/usr/bin/env bash
# gpu-check.sh — build and run hyplora's CUDA tests and benchmarks on a machine with a GPU.
#   scripts/gpu-check.sh            logs + summary.txt in ./gpu-check-out (or "$OUT" if set)
# Steps keep going past a failure; each is recorded as PASS/FAIL/SKIP in summary.txt and the
# script exits non-zero if any step failed. Budget: 7.5 minutes in all (each step has a timeout,
# cut to what is left).
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
budget=450
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

step bootstrap 90 bash scripts/bootstrap.sh

# Configure. Until the top-level CMakeLists.txt includes cmake/hyplora_cuda.cmake, a small
# wrapper project adds hyplora and then includes it (the same thing the one-line include does).
src="$root"
if ! grep -q "hyplora_cuda.cmake" "$root/CMakeLists.txt"; then
  src="$out/wrapper"
  mkdir -p "$src"
  cat > "$src/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.21)
project(hyplora_gpu_check LANGUAGES CXX)
set(HYPLORA_BUILD_TESTS ON CACHE BOOL "" FORCE)
set(HYPLORA_BUILD_BENCHMARKS ON CACHE BOOL "" FORCE)
set(HYPLORA_BUILD_EXAMPLES OFF CACHE BOOL "" FORCE)
set(HYPLORA_INSTALL OFF CACHE BOOL "" FORCE)
enable_testing()
add_subdirectory("$root" hyplora)
set(HYPLORA_HAS_CUDA ON)
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
include("$root/cmake/hyplora_cuda.cmake")
CMAKE
fi
step configure 60 cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHYPLORA_WERROR=ON \
  -DHYPLORA_ENABLE_CUDA=ON -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"

# Build only the CUDA targets.
targets=()
for f in tests/cuda/test_*.cu; do [ -e "$f" ] && targets+=("cuda_$(basename "$f" .cu)"); done
for f in benchmarks/cuda/bench_*.cu; do [ -e "$f" ] && targets+=("$(basename "$f" .cu)"); done
step build 240 cmake --build "$build" -j "$jobs" --target "${targets[@]}"

step ctest_cuda 90 ctest --test-dir "$build" -L cuda --output-on-failure
for f in benchmarks/cuda/bench_*.cu; do
  [ -e "$f" ] || continue
  b=$(basename "$f" .cu)
  step "$b" 60 "$build/$b"
  grep -E "^(device|shape|lora|hyplora|ratio)" "$out/$b.log" >> "$summary" 2>/dev/null || true
done

# PyTorch CUDA comparisons, when the scripts exist and torch can see a GPU.
if compgen -G "benchmarks/compare/torch_*" > /dev/null; then
  if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    for s in benchmarks/compare/torch_*; do
      case "$s" in *.py) step "$(basename "$s" .py)" 60 python3 "$s" --device cuda ;; esac
    done
  else
    echo "torch_compare               SKIP (python3 has no CUDA-enabled torch)" | tee -a "$summary"
  fi
fi

echo "overall: $([ $failed -eq 0 ] && echo PASS || echo FAIL)" | tee -a "$summary"
exit $failed
