#!/usr/bin/env bash
# Builds hyplora-finetune and runs `compare`: pretrain a small byte-level GPT on WordNet glosses
# (cached under ./hyplora-data after the first run), fine-tune it with LoRA and HypLoRA on the
# hierarchy and arithmetic tasks with identical settings, and print a table and the loss plot's path.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target hyplora-finetune
start=$(date +%s)
./build/examples/transformer/hyplora-finetune compare --data-dir ./hyplora-data "$@"
echo "compare took $(( $(date +%s) - start )) s; the loss plot is ./hyplora-data/runs/loss_curves.svg"
