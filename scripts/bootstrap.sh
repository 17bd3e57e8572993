#!/usr/bin/env bash
# Installs the Debian packages hyplora's build, tests, examples and benchmarks need, when missing.
# Idempotent and quiet when everything is present.
set -euo pipefail
pkgs=(cmake g++ make ninja-build pkg-config libeigen3-dev doctest-dev libbenchmark-dev nlohmann-json3-dev
      libcli11-dev wordnet-base libopenblas-openmp-dev python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "bootstrap: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
