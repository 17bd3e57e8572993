#!/usr/bin/env bash
# gpu-deps.sh — download (not install) the Debian packages that scripts/gpu-check.sh needs on a
# machine without a package registry (the lent GPU machines), into .deps/. gpu-check.sh unpacks
# them into .deps/prefix there. .deps/ is listed in .gitignore; carry it to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps
cd .deps
# ninja-build: gpu-check.sh builds its targets with Ninja, which runs them in parallel (Make's
# top-level Makefile is .NOTPARALLEL across goals: 215 s of serial nvcc on the H200 machine).
# wordnet-base: the GPT example pretrains on WordNet glosses (gpu-check.sh's compare_cuda step).
apt-get download libeigen3-dev doctest-dev libbenchmark-dev libbenchmark1debian nlohmann-json3-dev libcli11-dev ninja-build \
  wordnet-base
ls -l ./*.deb
