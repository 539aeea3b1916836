#!/usr/bin/env bash
# End-to-end throughput of `raresynth generate` with -j 2 (every case file, manifest, checksum
# and the dataset files included), written to a scratch directory on the disk of $TMPDIR:
#   demo      configs/recipes/brain-glioblastoma-mri.json as shipped: 128³ at 1.75 mm, four MRI
#             channels, the fitted Colin27 texture;
#   demo_256  a copy with "phantom.dims" [256,256,256] and "spacing_mm" 1.0 (a 256 mm field of
#             view, the usual 1 mm head MRI; finer spacing is refused: the brain-mri preset's 2 mm
#             correlation lengths need >= 1 mm voxels), made in a temporary recipe folder laid out
#             like configs/ (as tests/integration.sh derives recipes);
#   ct        configs/recipes/chest-nodules-ct.json as shipped (Fleischner nodules, 384×384×224
#             at 1×1×1.25 mm, one int16 channel, the fast noise model).
# One machine-readable line per run:
#   bench generate <name> dims=AxBxC threads=2 cases=N seconds=S cases_per_min=R
#       MB_per_case=<dataset bytes / N / 1e6> peak_RSS_MB=<max resident set of the process>
#       cpu_s_per_case=<user + system CPU seconds of the process / N>
#       validate_s=<raresynth validate of the dataset> validate_RSS_MB=<its peak>
# cases_per_min is wall-clock and falls when other programs share the machine; cpu_s_per_case
# (core-seconds per case) is what a run on a cluster is planned with.
# and with BENCH_REPEAT=K > 1, a summary per recipe:
#   bench generate <name> runs=K cases_per_min_median=R min=R max=R
# Environment: RARESYNTH (default build/raresynth), BENCH_CASES (demo, default 8),
# BENCH_CASES_256 (default 4), BENCH_CASES_CT (default 4), BENCH_REPEAT (default 1),
# BENCH_ONLY (space-separated subset of "demo demo_256 ct"), PYTHON (default /usr/bin/python3).
set -eu
RARESYNTH=${RARESYNTH:-build/raresynth}
PYTHON=${PYTHON:-/usr/bin/python3}
REPEAT=${BENCH_REPEAT:-1}
ONLY=${BENCH_ONLY:-demo demo_256 ct}
REPO=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rsy-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT

# The derived recipe sits in a folder like configs/recipes, beside links to the priors, tissue
# tables, scanners and textures, so it finds them as the shipped recipe does.
mkdir -p "$work/configs/recipes"
for d in priors tissues scanners textures; do
    ln -s "$REPO/configs/$d" "$work/configs/$d"
done
"$PYTHON" - "$REPO/configs/recipes/brain-glioblastoma-mri.json" \
    "$work/configs/recipes/demo-256.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
r["phantom"]["dims"] = [256, 256, 256]
r["phantom"]["spacing_mm"] = 1.0
json.dump(r, open(sys.argv[2], "w"), indent=2)
EOF

# run NAME RECIPE CASES DIMS: one timed generate, one line.
results=$work/results
run() {
    local name=$1 recipe=$2 cases=$3 dims=$4
    rm -rf "$work/d"
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f "%M %U %S" -o "$work/rss" \
        "$RARESYNTH" generate --recipe "$recipe" --out "$work/d" --cases "$cases" -j 2 -q
    t1=$(date +%s.%N)
    local bytes rss cpu v0 v1 vrss
    bytes=$(du -sb "$work/d" | cut -f1)
    read -r rss cpu < <(tail -n 1 "$work/rss" | awk '{ print $1, $2 + $3 }')
    v0=$(date +%s.%N)
    /usr/bin/time -f %M -o "$work/rss" "$RARESYNTH" validate "$work/d" >/dev/null
    v1=$(date +%s.%N)
    vrss=$(tail -n 1 "$work/rss")
    awk -v n="$name" -v d="$dims" -v c="$cases" -v a="$t0" -v b="$t1" -v by="$bytes" \
        -v m="$rss" -v cpu="$cpu" -v va="$v0" -v vb="$v1" -v vm="$vrss" 'BEGIN { s = b - a;
        printf "bench generate %s dims=%s threads=2 cases=%d seconds=%.2f cases_per_min=%.2f MB_per_case=%.1f peak_RSS_MB=%.0f cpu_s_per_case=%.2f validate_s=%.2f validate_RSS_MB=%.0f\n",
            n, d, c, s, c / s * 60, by / c / 1e6, m / 1024, cpu / c, vb - va, vm / 1024 }' | tee -a "$results"
    rm -rf "$work/d"
}

summary() {
    local name=$1
    [ "$REPEAT" -gt 1 ] || return 0
    grep "^bench generate $name " "$results" | sed 's/.*cases_per_min=\([0-9.]*\).*/\1/' |
        sort -g | awk -v n="$name" '{ v[NR] = $1 } END {
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
            printf "bench generate %s runs=%d cases_per_min_median=%.2f min=%.2f max=%.2f\n",
                n, NR, m, v[1], v[NR] }'
}

for name in $ONLY; do
    for _ in $(seq "$REPEAT"); do
        case $name in
        demo) run demo "$REPO/configs/recipes/brain-glioblastoma-mri.json" \
            "${BENCH_CASES:-8}" 128x128x128 ;;
        demo_256) run demo_256 "$work/configs/recipes/demo-256.json" \
            "${BENCH_CASES_256:-4}" 256x256x256 ;;
        ct) run ct "$REPO/configs/recipes/chest-nodules-ct.json" \
            "${BENCH_CASES_CT:-4}" 384x384x224 ;;
        *) echo "bench_generate.sh: unknown BENCH_ONLY entry '$name'" >&2; exit 2 ;;
        esac
    done
    summary "$name"
done
