#!/usr/bin/env bash
# The mammal reconstruction experiment end to end (docs/embeddings.md): configure, build the
# example in build-emb, train Poincaré and Lorentz at dim 10 (table), then dim 2 with an SVG.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-emb}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHYPLORA_ENABLE_CUDA=OFF >/dev/null
cmake --build "$build" -j2 --target poincare_embeddings
bin="$build/examples/poincare_embeddings/poincare_embeddings"
"$bin" --root mammal.n.01 --model both --optim rsgd --dim 10 --epochs 50 --lr 0.3 --eval-every 25
"$bin" --root mammal.n.01 --model both --optim rsgd --dim 2 --epochs 50 --lr 0.3 --svg mammals.svg
