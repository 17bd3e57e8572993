#!/usr/bin/env bash
# The test command: bootstrap, configure, build, run every test. Non-zero on any failure.
#   scripts/test.sh              Release build in build/, warnings as errors
#   scripts/test.sh --sanitize   ASan + UBSan build in build-asan/
#   scripts/test.sh --clang      the same with clang++ in build-clang/
set -euo pipefail
cd "$(dirname "$0")/.."
mode=release
for a in "$@"; do
  case "$a" in
    --sanitize) mode=asan ;;
    --clang) mode=clang ;;
    *) echo "usage: scripts/test.sh [--sanitize|--clang]" >&2; exit 2 ;;
  esac
done
bash scripts/bootstrap.sh
jobs=$(nproc)
case "$mode" in
  release) dir=build; cfg=(-DCMAKE_BUILD_TYPE=Release -DHYPLORA_CUDA_EMULATION_TESTS=ON) ;;
  asan) dir=build-asan; cfg=(-DCMAKE_BUILD_TYPE=Debug -DHYPLORA_SANITIZE=address,undefined -DHYPLORA_BUILD_EXAMPLES=OFF
                             -DHYPLORA_ENABLE_CUDA=OFF -DHYPLORA_BUILD_BENCHMARKS=OFF)
        # clang++ compiles the instrumented Eigen code in ~0.7x g++'s CPU time and half its memory
        # (docs/hardening.md, Sanitizers); the build is -O1 with line tables (CMakeLists.txt).
        if command -v clang++ >/dev/null; then cfg+=(-DCMAKE_CXX_COMPILER=clang++); fi
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1}
        export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} ;;
  clang) dir=build-clang; cfg=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++
                               -DHYPLORA_ENABLE_CUDA=OFF -DHYPLORA_CUDA_EMULATION_TESTS=ON) ;;
esac
# The CUDA tests also run on the host emulator (tests/cuda_emu, label cuda_emu): on every machine,
# GPU or not, their kernels run against the CPU references. Not under sanitizers (its fibers).
# Without a GPU the CUDA tests only compile (they skip when run), so one device pass (sm_90 SASS)
# checks them; with a GPU the default architectures (cmake/hyplora_cuda.cmake) are built.
if [ "$mode" = release ]; then
  if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    cfg+=(-UHYPLORA_CUDA_ARCHITECTURES)
  else
    cfg+=(-DHYPLORA_CUDA_ARCHITECTURES=90-real)
  fi
fi
# Ninja when there is one (bootstrap installs ninja-build); a build folder keeps the generator it
# was first configured with.
if [ ! -f "$dir/CMakeCache.txt" ] && command -v ninja >/dev/null; then cfg+=(-G Ninja); fi
cmake -S . -B "$dir" -DHYPLORA_WERROR=ON "${cfg[@]}" >/dev/null
exclude=()
# header_check is not built under sanitizers (CMakeLists.txt), so its test is left out.
[ "$mode" = asan ] && exclude=(-E '^core\.header_check$')
cmake --build "$dir" -j "$jobs"
ctest --test-dir "$dir" --output-on-failure -j "$jobs" "${exclude[@]}"
