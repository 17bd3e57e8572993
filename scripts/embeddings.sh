#!/usr/bin/env bash
# Hyperbolic embeddings end to end (docs/embeddings.md): build in build-emb, train the mammal
# closure at dim 10 (Poincaré and Lorentz, RSGD then Riemannian Adam; table with MAP), draw the
# 2-D Poincaré disk, then pretrain a small GPT (if no checkpoint) and run embedding_geometry on it.
# One thread by default (the machine is shared): THREADS=2 scripts/embeddings.sh to use more.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-emb}"
threads="${THREADS:-1}"
export OMP_NUM_THREADS="$threads"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHYPLORA_ENABLE_CUDA=OFF >/dev/null
cmake --build "$build" -j2 --target poincare_embeddings embedding_geometry hyplora-finetune
bin="$build/examples/poincare_embeddings/poincare_embeddings"
"$bin" --model both --optim rsgd --dim 10 --epochs 50 --threads "$threads"
"$bin" --model both --optim radam --dim 10 --epochs 50 --threads "$threads"   # lr 0.02, both directions
"$bin" --model poincare --optim rsgd --dim 2 --epochs 100 --threads "$threads" --svg "$build/mammals_2d.svg"
# The full noun closure (82,115 nodes; docs/embeddings.md "Nouns"): opt-in,
# ≈ 35 min of CPU time, ≈ 19 min wall on two free cores (run 13, docs/embeddings.md: MAP dir 0.902):
# NOUNS=1 THREADS=2 scripts/embeddings.sh
if [[ "${NOUNS:-0}" == 1 ]]; then
  nice -n 19 "$bin" --root entity.n.01 --model poincare --dim 10 --burnin 5 --epochs 160 --lr 0.2 --lr-decay 1 \
    --negatives-from ancestors --degree-negatives 0.5 --hard-negatives 0.5 --hard-slots 32 --hard-filter 1 \
    --pin-roots 1 --ball-eps 1e-12 --threads "$threads" --eval-nodes 2000 --eval-every 40 --eval-directed 1 \
    --cpu-budget 3300 --diagnose 1
fi
# A short pretraining (about a minute on two idle cores), cached under $build/hyplora-data.
data="$build/hyplora-data"
"$build/examples/transformer/hyplora-finetune" pretrain --data-dir "$data" --width 64 --layers 2 --heads 4 \
  --pretrain-steps 300
ckpt="$(ls "$data"/checkpoints/gpt-C64-L2-H4-*-steps300-*.safetensors | grep -v '\.run\.' | head -n 1)"
"$build/examples/embedding_geometry/embedding_geometry" --checkpoint "$ckpt" --out-dir "$build/geometry"
