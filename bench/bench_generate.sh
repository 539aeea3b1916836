#!/usr/bin/env bash
# End-to-end throughput: cases per minute of the demo recipe (128^3, four MRI channels) with
# -j 2, written to a scratch directory. One machine-readable line:
#   bench generate demo dims=128x128x128 threads=2 cases=N seconds=S cases_per_min=R
set -eu
RARESYNTH=${RARESYNTH:-build/raresynth}
CASES=${BENCH_CASES:-8}
out=$(mktemp -d "${TMPDIR:-/tmp}/rsy-bench-XXXXXX")
trap 'rm -rf "$out"' EXIT
t0=$(date +%s.%N)
"$RARESYNTH" generate --recipe configs/recipes/brain-glioblastoma-mri.json --out "$out/d" \
    --cases "$CASES" -j 2 -q
t1=$(date +%s.%N)
awk -v c="$CASES" -v a="$t0" -v b="$t1" 'BEGIN { s = b - a;
    printf "bench generate demo dims=128x128x128 threads=2 cases=%d seconds=%.2f cases_per_min=%.1f\n", c, s, c / s * 60 }'
