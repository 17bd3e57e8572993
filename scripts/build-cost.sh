#!/usr/bin/env bash
# build-cost.sh [BUILD_DIR] — where a Ninja build's CPU time went (docs/hardening.md, "CI build
# time"): per-job seconds from BUILD_DIR/.ninja_log (default build/) summed by kind of object,
# the build's wall time, and the five longest jobs. Run it after a fresh build (`.ci/run`): the
# log keeps only the last run of each job.
set -euo pipefail
log=${1:-build}/.ninja_log
[ -f "$log" ] || { echo "build-cost.sh: no $log (a Ninja build folder is needed)" >&2; exit 2; }
awk -F'\t' '
  NR > 1 {
    s = ($2 - $1) / 1000; out = $4; all += s; if ($2 / 1000 > wall) wall = $2 / 1000
    if (out ~ /header_check/) k = "header_check objects"
    else if (out ~ /\.cu\.o$/) k = "CUDA objects"
    else if (out ~ /^tests\/.*\.o$/) k = "CPU test objects"
    else if (out ~ /\.o$/) k = "other objects (examples, benchmarks)"
    else k = "links"
    sum[k] += s
    if (s > t[5]) { t[5] = s; n[5] = out; for (i = 5; i > 1 && t[i] > t[i-1]; --i) {
      x = t[i]; t[i] = t[i-1]; t[i-1] = x; y = n[i]; n[i] = n[i-1]; n[i-1] = y } }
  }
  END {
    for (k in sum) printf "%-40s %8.0f s\n", k, sum[k]
    printf "%-40s %8.0f s\n%-40s %8.0f s\n", "all jobs", all, "build wall (first start to last end)", wall
    for (i = 1; i <= 5; ++i) if (n[i] != "") printf "longest: %6.1f s  %s\n", t[i], n[i]
  }' "$log"
