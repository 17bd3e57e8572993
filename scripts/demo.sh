#!/usr/bin/env bash
# Builds and runs the main example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target manifold_tour
./build/examples/manifold_tour
